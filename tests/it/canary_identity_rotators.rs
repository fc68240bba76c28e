//! Canary for the identity rotators through the daemon at trace level: the GitHub App's
//! private key, the installation tokens it mints, the Entra app's old and new client secrets
//! and the access tokens Graph is called with reach no log line, metric, page or JSON; and
//! the errors of servers that echo a request's credential back (GitHub's mint echoing the
//! `Authorization` header, Graph echoing it in its error message) quote none of it.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::rotation_entra_id::{self as entra, CLIENT, OLD_SECRET, TENANT};
use crate::rotation_github_app::{self as github, CLIENT_ID, INSTALLATION, key_line};
use crate::support::daemon::{Daemon, write};
use crate::support::{Answer, MockServer};

/// `entra_when`: the Entra token's trigger (a Graph that refuses to read the app discloses no
/// expiry, so only `max_age` plans a rotation there).
fn yaml(gh_url: &str, entra_url: &str, dir: &std::path::Path, entra_when: &str) -> String {
    format!(
        "global:\n  probe_interval: 1h\n  min_probe_interval: 1h\nproviders:\n  gh:\n    kind: github\n    url: {gh_url}\n  entra:\n    kind: entra_id\n    tenant_id: {TENANT}\n    client_id: {CLIENT}\n    url: {entra_url}\n    graph_url: {entra_url}\n    graph: true\ntokens:\n  - name: ci\n    provider: gh\n    secret: {{file: {t}}}\n    rotate:\n      before: 10m\n      rotator: {{kind: github_app, app_id: {CLIENT_ID}, installation_id: {INSTALLATION}, private_key: {{file: {k}}}}}\n      deliver: [{{file: {t}}}]\n  - name: app\n    provider: entra\n    secret: {{file: {s}}}\n    rotate:\n      {entra_when}\n      rotator: {{kind: entra_id_password}}\n      deliver: [{{file: {s}}}]\n",
        t = dir.join("token").display(),
        k = dir.join("app.pem").display(),
        s = dir.join("secret").display(),
    )
}

/// Waits until `/metrics` has a line starting with each of `lines`, not ending in ` 0`.
fn wait_counted(d: &Daemon, lines: &[&str]) {
    let start = Instant::now();
    loop {
        let body = d.get("/metrics").1;
        if lines.iter().all(|want| {
            body.lines()
                .any(|l| l.starts_with(want) && !l.ends_with(" 0"))
        }) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not counted: {lines:?}\n{}",
            d.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn outputs(d: Daemon) -> Vec<String> {
    let mut out: Vec<String> = ["/metrics", "/", "/api/v1/tokens"]
        .iter()
        .map(|p| d.get(p).1)
        .collect();
    out.push(d.logs());
    let _ = d.stop();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_rotators_show_no_key_secret_or_token() {
    let gh = github::setup().await;
    let state = entra::entra(0);
    let graph = MockServer::start(entra::server(state.clone())).await;
    let dir = gh.dir.path();
    std::fs::write(dir.join("secret"), format!("{OLD_SECRET}\n")).unwrap();
    let config = write(
        dir,
        "config.yml",
        &yaml(&gh.mock.url(), &graph.url(), dir, "before: 30d"),
    );
    let storage = dir.join("data");
    let d = Daemon::start(&[
        "--config.file",
        config.to_str().unwrap(),
        "--storage.path",
        storage.to_str().unwrap(),
        "--log.level",
        "trace",
    ]);
    wait_counted(
        &d,
        &[
            "api_token_rotations_total{token=\"ci\",provider=\"gh\",result=\"success\"}",
            "api_token_rotations_total{token=\"app\",provider=\"entra\",result=\"success\"}",
        ],
    );
    let out = outputs(d);
    assert!(
        out[3].contains("token=app") && out[3].contains("token=ci"),
        "{}",
        out[3]
    );
    let mut values: Vec<String> = gh
        .state
        .lock()
        .unwrap()
        .minted
        .iter()
        .map(|m| m.0.clone())
        .collect();
    assert_eq!(values.len(), 1);
    {
        let e = state.lock().unwrap();
        assert_eq!(e.passwords.len(), 1, "the old secret removed");
        values.push(e.passwords[0].secret.clone());
        values.extend(e.access.keys().cloned());
    }
    values.push(OLD_SECRET.into());
    values.push(key_line(&gh.key_pem));
    for o in &out {
        for v in &values {
            assert!(!o.contains(v.as_str()), "a value shown in:\n{o}");
        }
        assert!(
            !o.contains("PRIVATE KEY") && !o.to_lowercase().contains("canary"),
            "{o}"
        );
    }
    let state_file = std::fs::read_to_string(storage.join("rotation.json")).unwrap();
    for v in &values {
        assert!(!state_file.contains(v.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_echoing_credentials_in_refusals_are_not_quoted() {
    let gh = github::setup().await;
    // GitHub (or a proxy in front of it) echoing the app JWT.
    let echo_gh = MockServer::start(|r| {
        let auth = r.header("authorization").unwrap_or("").to_string();
        Answer::json(
            403,
            json!({"message": format!("refused {auth}"), "documentation_url": "https://docs.github.com/rest", "status": "403"}),
        )
    })
    .await;
    // Graph echoing the bearer in its error message; the token endpoint issues one.
    let access = "eyJ0eXAi.canaryEchoedAccess.c2ln";
    let echo_graph = MockServer::start(move |r| {
        if r.path().ends_with("/oauth2/v2.0/token") {
            return Answer::json(
                200,
                json!({"token_type": "Bearer", "expires_in": 3599, "access_token": access}),
            );
        }
        let auth = r.header("authorization").unwrap_or("").to_string();
        Answer::json(
            403,
            json!({"error": {"code": "Authorization_RequestDenied", "message": format!("denied {auth}")}}),
        )
    })
    .await;
    let dir = gh.dir.path();
    std::fs::write(dir.join("secret"), format!("{OLD_SECRET}\n")).unwrap();
    let config = write(
        dir,
        "config.yml",
        &yaml(&echo_gh.url(), &echo_graph.url(), dir, "max_age: 1s"),
    );
    let d = Daemon::start(&[
        "--config.file",
        config.to_str().unwrap(),
        "--storage.path",
        dir.join("data").to_str().unwrap(),
        "--log.level",
        "trace",
    ]);
    wait_counted(
        &d,
        &[
            "api_token_rotations_total{token=\"ci\",provider=\"gh\",result=\"failure\"}",
            "api_token_rotations_total{token=\"app\",provider=\"entra\",result=\"failure\"}",
        ],
    );
    let out = outputs(d);
    assert!(out[2].contains("403"), "{}", out[2]);
    for o in &out {
        assert!(!o.contains("Bearer ") && !o.contains(access), "{o}");
        assert!(
            !o.contains(OLD_SECRET) && !o.contains(&key_line(&gh.key_pem)),
            "{o}"
        );
        assert!(!o.to_lowercase().contains("canary"), "{o}");
    }
    // Nothing was written anywhere: the echoing servers were only asked.
    for r in echo_graph.requests() {
        assert!(!r.path().contains("removePassword"), "{}", r.path());
    }
}
