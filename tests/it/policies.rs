//! Token hygiene end to end: rotation detected and kept across restarts, `check` levels and
//! selections, and scope and identity policies against real servers (oidc-provider, OpenBao).

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use crate::support;
use api_token_exporter::config::Config;
use api_token_exporter::policy::{self, Finding};
use api_token_exporter::provider::{BuildContext, run_probe};
use api_token_exporter::store::Store;
use support::daemon::{BIN, Daemon, write};
use support::{Answer, MockServer, SecretFiles};

fn unsigned_jwt(claims: Value) -> String {
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.c2ln", b64(json!({"alg": "ES256"})), b64(claims))
}

fn token_json(d: &Daemon, name: &str) -> Value {
    let (code, body) = d.get(&format!("/api/v1/tokens/{name}"));
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn rotation_is_detected_survives_restart_and_restarts_the_age() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("state");
    let secret = dir.path().join("deploy-bot.jwt");
    // No iat: the age can only come from the first sight of the fingerprint.
    std::fs::write(
        &secret,
        unsigned_jwt(json!({"sub": "svc", "exp": 4_000_000_000i64, "jti": "one"})),
    )
    .unwrap();
    let config = write(
        dir.path(),
        "c.yml",
        &format!(
            "global:\n  probe_interval: 1s\n  min_probe_interval: 1s\n  policies: {{max_age: 30d}}\nproviders:\n  local:\n    kind: jwt\ntokens:\n  - name: deploy-bot\n    provider: local\n    secret: {{file: {}}}\n",
            secret.display()
        ),
    );
    let args = [
        "--config.file",
        config.to_str().unwrap(),
        "--storage.path",
        storage.to_str().unwrap(),
        // Off by default: the rotation series is what this test reads.
        "--collector.rotated",
    ];

    let d = Daemon::start(&args);
    d.wait_for("/-/ready", Duration::from_secs(10));
    let first = token_json(&d, "deploy-bot");
    assert!(first["rotated_at"].is_null(), "{first}");
    let first_seen = first["first_seen_at"]
        .as_str()
        .expect("first seen")
        .to_string();
    let first_fp = first["fingerprint"].as_str().unwrap().to_string();
    assert_eq!(first["policies"][0]["policy"], "max_age");
    assert_eq!(first["policies"][0]["violated"], false);
    assert!(
        !d.get("/metrics")
            .1
            .contains("api_token_rotated_timestamp_seconds{")
    );

    // A rotation by whatever writes the file (a Vault agent, a Kubernetes secret mount).
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(
        &secret,
        unsigned_jwt(json!({"sub": "svc", "exp": 4_000_000_000i64, "jti": "two"})),
    )
    .unwrap();
    let mut rotated = Value::Null;
    wait_until("the rotation to be seen", Duration::from_secs(10), || {
        rotated = token_json(&d, "deploy-bot");
        !rotated["rotated_at"].is_null()
    });
    assert_ne!(rotated["fingerprint"], first_fp.as_str());
    assert_ne!(
        rotated["first_seen_at"],
        first_seen.as_str(),
        "the age did not restart"
    );
    assert_eq!(rotated["first_seen_at"], rotated["rotated_at"]);
    assert!(rotated["age_seconds"].as_i64().unwrap() <= 3, "{rotated}");
    assert!(
        d.get("/metrics").1.contains(
            "api_token_rotated_timestamp_seconds{token=\"deploy-bot\",provider=\"local\"}"
        )
    );
    let _ = d.stop();

    // After a restart the ledger gives back the same first sight and rotation.
    let d = Daemon::start(&args);
    d.wait_for("/-/ready", Duration::from_secs(10));
    let again = token_json(&d, "deploy-bot");
    assert_eq!(again["first_seen_at"], rotated["first_seen_at"]);
    assert_eq!(again["rotated_at"], rotated["rotated_at"]);
    assert_eq!(again["fingerprint"], rotated["fingerprint"]);
    let _ = d.stop();

    // A rotation while the exporter was down is seen at its first probe after the restart.
    std::fs::write(
        &secret,
        unsigned_jwt(json!({"sub": "svc", "exp": 4_000_000_000i64, "jti": "three"})),
    )
    .unwrap();
    let d = Daemon::start(&args);
    d.wait_for("/-/ready", Duration::from_secs(10));
    let third = token_json(&d, "deploy-bot");
    assert_ne!(third["rotated_at"], rotated["rotated_at"], "{third}");
    assert_ne!(third["fingerprint"], rotated["fingerprint"]);
}

/// (exit code, stdout + stderr) of `check` with these arguments.
fn check(config: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(BIN)
        .args([
            "check",
            "--config.file",
            config.to_str().unwrap(),
            "--storage.path",
            "/nonexistent/state",
        ])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_levels_and_selections() {
    let now = jiff::Timestamp::now().as_second();
    let day = 86_400;
    let server = MockServer::start(move |r| {
        let body = r.body_text();
        let (days, scope) = if body.contains("token=tok-long") {
            (90, "read")
        } else if body.contains("token=tok-warn") {
            (10, "read")
        } else if body.contains("token=tok-crit") {
            (1, "read")
        } else {
            (90, "read admin")
        };
        Answer::json(
            200,
            json!({"active": true, "exp": now + days * day, "scope": scope}),
        )
    })
    .await;
    let secrets = SecretFiles::new();
    let mut yaml = format!(
        "global:\n  policies: {{forbidden_scopes: [admin]}}\nproviders:\n  idp:\n    kind: oauth2_introspection\n    introspection_endpoint: {}/i\n    client_id: c\n    client_secret: {}\ntokens:\n",
        server.url(),
        secrets.put("client", "s")
    );
    for (name, team) in [("long", "a"), ("warn", "a"), ("crit", "b"), ("admin", "c")] {
        yaml.push_str(&format!(
            "  - name: {name}\n    provider: idp\n    secret: {}\n    labels: {{team: {team}}}\n",
            secrets.put(name, &format!("tok-{name}"))
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "c.yml", &yaml);
    let c = config.clone();
    let run = move |args: &'static [&'static str]| {
        let c = c.clone();
        async move {
            tokio::task::spawn_blocking(move || check(&c, args))
                .await
                .unwrap()
        }
    };

    // invalid: only states count; every token is valid.
    let (code, out) = run(&["--fail-on", "invalid"]).await;
    assert_eq!(code, 0, "{out}");
    // critical (default): crit fails; without it everything passes.
    let (code, out) = run(&[]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("crit") && l.contains("FAIL: inside critical window")),
        "{out}"
    );
    let (code, out) = run(&["--selector", "team!=b"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("crit"), "{out}");
    // warning: the warning window and policy violations fail too.
    let (code, out) = run(&["--fail-on", "warning", "--token", "warn"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL: inside warning window"), "{out}");
    let (code, out) = run(&[
        "--fail-on",
        "warning",
        "--token",
        "admin",
        "--output",
        "json",
    ])
    .await;
    assert_eq!(code, 1, "{out}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["tokens"].as_array().unwrap().len(), 1);
    let findings = doc["tokens"][0]["policies"].as_array().unwrap();
    assert_eq!(findings[0]["policy"], "forbidden_scopes");
    assert_eq!(findings[0]["violated"], true);
    let (code, out) = run(&["--fail-on", "warning", "--token", "long"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(&["--selector", "team=a", "--token", "long"]).await;
    assert_eq!(code, 0, "{out}");
    // The table shows the violation even where it does not fail the check.
    let (code, out) = run(&["--token", "admin"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("forbidden_scopes"), "{out}");
    // Selections that name nothing are configuration errors.
    let (code, out) = run(&["--token", "nope"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("no token named \"nope\""), "{out}");
    let (code, out) = run(&["--selector", "team=zzz"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("matches no token"), "{out}");
}

/// Probes a token of a config through the store and evaluates its policies.
async fn findings(yaml: &str, token: &str) -> Vec<Finding> {
    let config = Config::parse(yaml).unwrap_or_else(|e| panic!("{e}"));
    let store = Store::new();
    store.reconcile(&config);
    let spec = config.token(token).unwrap();
    let provider = config.providers[&spec.provider]
        .build(&BuildContext::new())
        .unwrap();
    let now = jiff::Timestamp::now();
    store.record(token, run_probe(provider.as_ref(), spec, now).await, now);
    let inner = store.read();
    let state = &inner.tokens[token];
    assert_eq!(
        state.verdict(),
        Some(api_token_exporter::model::Verdict::Valid),
        "{:?}",
        state.last
    );
    policy::evaluate(state, now)
}

fn violated(findings: &[Finding], policy: &str) -> bool {
    findings
        .iter()
        .find(|f| f.policy == policy)
        .unwrap_or_else(|| panic!("no {policy}: {findings:?}"))
        .violated
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_policy_catches_a_token_from_another_client() {
    if !support::oidc::available() {
        return;
    }
    let server = support::oidc::OidcServer::shared();
    let (ours, _) = server.mint(support::oidc::EXPORTER).await;
    let (theirs, _) = server.mint(support::oidc::OTHER).await;
    let secrets = SecretFiles::new();
    let yaml = format!(
        "providers:\n  idp:\n    kind: oauth2_introspection\n    issuer: {}\n    client_id: {}\n    client_secret: {}\n\
         tokens:\n\
         \x20 - name: ours\n    provider: idp\n    secret: {}\n    policies: {{expect: {{client_id: exporter}}, allowed_scopes: [\"api:read\"]}}\n\
         \x20 - name: theirs\n    provider: idp\n    secret: {}\n    policies: {{expect: {{client_id: exporter}}}}\n",
        server.issuer(),
        support::oidc::EXPORTER.0,
        secrets.put("client", support::oidc::EXPORTER.1),
        secrets.put("ours", &ours),
        secrets.put("theirs", &theirs),
    );
    let f = findings(&yaml, "ours").await;
    assert!(!violated(&f, "expect_client_id"), "{f:?}");
    assert!(!violated(&f, "allowed_scopes"), "{f:?}");
    let f = findings(&yaml, "theirs").await;
    assert!(violated(&f, "expect_client_id"), "{f:?}");
    let detail = &f
        .iter()
        .find(|x| x.policy == "expect_client_id")
        .unwrap()
        .detail;
    assert_eq!(detail, "client_id is other, expected exporter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_policy_catches_a_vault_token_with_the_root_policy() {
    let Some(bao) = support::bao::Bao::start().await else {
        return;
    };
    let (admin, _) = bao
        .create(None, json!({"policies": ["root"], "ttl": "1h"}))
        .await;
    let (plain, _) = bao
        .create(None, json!({"policies": ["default"], "ttl": "1h"}))
        .await;
    let secrets = SecretFiles::new();
    let yaml = format!(
        "global:\n  policies: {{forbidden_scopes: [root], require_expiry: true}}\nproviders:\n  bao:\n    kind: vault\n    url: {}\n\
         tokens:\n  - name: admin\n    provider: bao\n    secret: {}\n  - name: plain\n    provider: bao\n    secret: {}\n",
        bao.addr,
        secrets.put("admin", &admin),
        secrets.put("plain", &plain),
    );
    let f = findings(&yaml, "admin").await;
    assert!(violated(&f, "forbidden_scopes"), "{f:?}");
    assert!(!violated(&f, "require_expiry"), "{f:?}");
    let f = findings(&yaml, "plain").await;
    assert!(!violated(&f, "forbidden_scopes"), "{f:?}");
}
