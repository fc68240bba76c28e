//! `oauth2_refresh` against a real oidc-provider with refresh-token rotation on: the access
//! token and the refresh token are both delivered, the token's own secret source reads the
//! new access token, and no refresh token is ever used twice (the server would revoke the
//! whole grant, and every later step would fail).

use std::path::Path;

use crate::rotation_vault::Harness;
use crate::support;
use api_token_exporter::model::Verdict;
use api_token_exporter::model::rotation::{RotationResult, Step};
use support::oidc::{self, OidcServer};

/// A config with one rotating token read from `dir/access`, its refresh token in
/// `dir/refresh`, and a hook that copies each new access token to `dir/hook`.
pub fn config(oidc: &OidcServer, dir: &Path, extra: &str) -> String {
    let secret = dir.join("client-secret");
    std::fs::write(&secret, format!("{}\n", oidc::ROTATING.1)).unwrap();
    let own = dir.join("own-secret");
    std::fs::write(&own, format!("{}\n", oidc::EXPORTER.1)).unwrap();
    format!(
        "global:\n  probe_timeout: 5s\nproviders:\n  idp:\n    kind: oauth2_introspection\n    issuer: {issuer}\n    client_id: {own_id}\n    client_secret: {{file: {own}}}\ntokens:\n  - name: app\n    provider: idp\n    secret: {{file: {access}}}\n    rotate:\n      before: 2m\n{extra}      rotator:\n        kind: oauth2_refresh\n        issuer: {issuer}\n        client_id: {id}\n        client_secret: {{file: {secret}}}\n        refresh_token_file: {refresh}\n      deliver:\n        - file: {access}\n        - exec: [/bin/sh, -c, 'cat > {hook}']\n",
        issuer = oidc.issuer(),
        own_id = oidc::EXPORTER.0,
        own = own.display(),
        access = dir.join("access").display(),
        id = oidc::ROTATING.0,
        secret = secret.display(),
        refresh = dir.join("refresh").display(),
        hook = dir.join("hook").display(),
    )
}

/// Writes a first access token and refresh token, as a login would have left them.
pub async fn seed(oidc: &OidcServer, dir: &Path) -> (String, String) {
    let rt = oidc.refresh_token().await;
    let (status, v) = oidc.refresh(&rt).await;
    assert_eq!(status, 200, "{v}");
    let access = v["access_token"].as_str().unwrap().to_string();
    let refresh = v["refresh_token"].as_str().unwrap().to_string();
    std::fs::write(dir.join("access"), format!("{access}\n")).unwrap();
    std::fs::write(dir.join("refresh"), format!("{refresh}\n")).unwrap();
    (access, refresh)
}

pub fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap()
        .trim()
        .to_string()
}

#[tokio::test]
async fn a_refresh_grant_rotates_and_delivers_both_tokens_twice_in_a_row() {
    if !oidc::available() {
        return;
    }
    let oidc = OidcServer::shared();
    let dir = tempfile::tempdir().unwrap();
    let (access0, refresh0) = seed(oidc, dir.path()).await;
    let mut h = Harness::new(&config(oidc, dir.path(), ""));
    h.probe("app").await;
    h.tick().await;
    let status = h.status("app");
    assert_eq!(status.count(RotationResult::Success), 1, "{status:?}");
    assert_eq!(status.step, Step::Idle);

    let access1 = read(dir.path(), "access");
    let refresh1 = read(dir.path(), "refresh");
    assert_ne!(access1, access0);
    assert_ne!(refresh1, refresh0);
    assert_eq!(read(dir.path(), "hook"), access1);
    assert_eq!(oidc.introspect(&access1).await["active"], true);
    // The old access token stays valid to its own expiry: the overlap the protocol allows.
    assert_eq!(oidc.introspect(&access0).await["active"], true);
    // The token's own secret source reads the new value: the test step's probe saw it.
    {
        let inner = h.store.read();
        let state = &inner.tokens["app"];
        assert_eq!(
            state.fingerprint.as_deref(),
            Some(api_token_exporter::secret::fingerprint(&access1).as_str())
        );
        assert_eq!(state.verdict(), Some(Verdict::Valid));
    }
    // Finished: the saved record no longer holds any value.
    let saved = std::fs::read_to_string(h.storage.path().join("rotation.json")).unwrap();
    for v in [&access0, &access1, &refresh0, &refresh1] {
        assert!(!saved.contains(v.as_str()), "{saved}");
        assert!(!serde_json::to_string(&status).unwrap().contains(v.as_str()));
        assert!(!format!("{status:?}").contains(v.as_str()));
    }

    // Not again on the facts from before the rotation.
    h.tick().await;
    assert_eq!(h.status("app").count(RotationResult::Success), 1);
    // After the next answer (60 s left, under `before`), once more, from the new refresh
    // token: had the old one been used, the server would have revoked the grant.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    h.probe("app").await;
    h.tick().await;
    assert_eq!(
        h.status("app").count(RotationResult::Success),
        2,
        "{:?}",
        h.status("app")
    );
    let access2 = read(dir.path(), "access");
    assert_ne!(access2, access1);
    assert_eq!(oidc.introspect(&access2).await["active"], true);
    // The rotated refresh token is spent.
    let (status, v) = oidc.refresh(&refresh0).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn a_refused_refresh_keeps_the_old_value_and_reports_a_fixed_error() {
    if !oidc::available() {
        return;
    }
    let oidc = OidcServer::shared();
    let dir = tempfile::tempdir().unwrap();
    let (access0, _) = seed(oidc, dir.path()).await;
    std::fs::write(dir.path().join("refresh"), "not-a-refresh-token-canary\n").unwrap();
    let mut h = Harness::new(&config(oidc, dir.path(), ""));
    h.probe("app").await;
    h.tick().await;
    let status = h.status("app");
    assert_eq!(status.count(RotationResult::Failure), 1, "{status:?}");
    let error = status.last_error.clone().unwrap();
    assert!(error.contains("invalid_grant"), "{error}");
    assert!(!error.contains("canary"), "{error}");
    assert_eq!(read(dir.path(), "access"), access0);
    assert!(!dir.path().join("hook").exists());
    assert_eq!(h.saved().tokens["app"].step, Step::Idle);
}

#[tokio::test]
async fn a_dry_run_calls_nothing_and_delivers_nothing() {
    if !oidc::available() {
        return;
    }
    let oidc = OidcServer::shared();
    let dir = tempfile::tempdir().unwrap();
    let (access0, refresh0) = seed(oidc, dir.path()).await;
    let mut h = Harness::new(&config(oidc, dir.path(), "      dry_run: true\n"));
    h.probe("app").await;
    h.tick().await;
    h.tick().await;
    let status = h.status("app");
    assert_eq!(status.count(RotationResult::DryRun), 1, "{status:?}");
    assert_eq!(status.count(RotationResult::Success), 0);
    assert_eq!(read(dir.path(), "access"), access0);
    assert_eq!(read(dir.path(), "refresh"), refresh0);
    // The refresh token was never used: it still works.
    let (code, v) = oidc.refresh(&refresh0).await;
    assert_eq!(code, 200, "{v}");
}

// ---------------------------------------------------------------------------------------
// The real binary against a recording IdP answering as RFC 7662 and RFC 6749 §5.1/§6 say,
// with canary values: exactly the calls a rotation needs, and no value anywhere.

const OLD: &str = "canary-old-access-7f3a91";
const NEW: &str = "canary-new-access-c04e52";
const REFRESH_OLD: &str = "canary-old-refresh-1b8d07";
const REFRESH_NEW: &str = "canary-new-refresh-e95f33";

fn form_value(body: &str, key: &str) -> Option<String> {
    url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn idp(r: &support::Recorded) -> support::Answer {
    use serde_json::json;
    use support::Answer;
    let now = jiff::Timestamp::now().as_second();
    let body = r.body_text();
    match (r.method.as_str(), r.path()) {
        ("POST", "/introspect") => match form_value(&body, "token").as_deref() {
            Some(OLD) => Answer::json(
                200,
                json!({"active": true, "client_id": "app", "exp": now + 60, "iat": now - 10}),
            ),
            Some(NEW) => Answer::json(
                200,
                json!({"active": true, "client_id": "app", "exp": now + 3600, "iat": now}),
            ),
            _ => Answer::json(200, json!({"active": false})),
        },
        ("POST", "/token") => {
            if form_value(&body, "grant_type").as_deref() == Some("refresh_token")
                && form_value(&body, "refresh_token").as_deref() == Some(REFRESH_OLD)
            {
                Answer::json(
                    200,
                    json!({"access_token": NEW, "token_type": "Bearer", "expires_in": 3600,
                           "refresh_token": REFRESH_NEW}),
                )
                .header("cache-control", "no-store")
            } else {
                Answer::json(400, json!({"error": "invalid_grant"}))
            }
        }
        _ => Answer::json(404, json!({"error": "not_found"})),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_makes_exactly_the_calls_a_rotation_needs_and_shows_no_value() {
    let server = support::MockServer::start(idp).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("access"), format!("{OLD}\n")).unwrap();
    std::fs::write(dir.join("refresh"), format!("{REFRESH_OLD}\n")).unwrap();
    std::fs::write(dir.join("secret"), "client-secret\n").unwrap();
    let yaml = format!(
        "providers:\n  idp:\n    kind: oauth2_introspection\n    introspection_endpoint: {url}/introspect\n    client_id: exporter\n    client_secret: {{file: {secret}}}\ntokens:\n  - name: app\n    provider: idp\n    secret: {{file: {access}}}\n    rotate:\n      before: 2m\n      rotator: {{kind: oauth2_refresh, token_endpoint: {url}/token, client_id: app, client_secret: {{file: {secret}}}, refresh_token_file: {refresh}}}\n      deliver: [{{file: {access}}}]\n",
        url = server.url(),
        secret = dir.join("secret").display(),
        access = dir.join("access").display(),
        refresh = dir.join("refresh").display(),
    );
    std::fs::write(dir.join("config.yml"), yaml).unwrap();
    let daemon = support::daemon::Daemon::start(&[
        &format!("--config.file={}", dir.join("config.yml").display()),
        &format!("--storage.path={}", dir.join("data").display()),
    ]);
    let success =
        "api_token_rotations_total{token=\"app\",provider=\"idp\",result=\"success\"} 1\n";
    let metrics = daemon
        .wait_metric(success, std::time::Duration::from_secs(30))
        .await;
    // A few more rounds: nothing more is called that writes.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(read(dir, "access"), NEW);
    assert_eq!(read(dir, "refresh"), REFRESH_NEW);

    let requests = server.requests();
    let grants: Vec<_> = requests.iter().filter(|r| r.path() == "/token").collect();
    assert_eq!(grants.len(), 1, "one refresh grant, never repeated");
    let grant = grants[0].body_text();
    assert_eq!(
        form_value(&grant, "grant_type").as_deref(),
        Some("refresh_token")
    );
    assert!(
        grants[0]
            .header("authorization")
            .is_some_and(|a| a.starts_with("Basic ")),
        "client_secret_basic"
    );
    for r in &requests {
        assert!(
            r.method == "POST" && matches!(r.path(), "/introspect" | "/token"),
            "a call outside the allowed list: {} {}",
            r.method,
            r.path()
        );
    }
    for value in [OLD, NEW, REFRESH_OLD, REFRESH_NEW] {
        server.assert_safe(&[], value);
    }
    // No crash log in `dir`: the log is the daemon's alone.
    let shown = crate::rotation_crash::Shown::of(&daemon, dir, metrics);
    support::assert_hidden_in(&shown.places, &[OLD, NEW, REFRESH_OLD, REFRESH_NEW]);
    let log = shown.log();
    assert!(
        log.contains("step=create") && log.contains("step=finish"),
        "{log}"
    );
}
