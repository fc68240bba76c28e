//! `slack_refresh` against a local server answering as Slack's Web API documents:
//! `POST /api/auth.test` with a Bearer token (`{"ok":true,...}`, or HTTP 200 with
//! `{"ok":false,"error":"invalid_auth"}`), and `POST /api/oauth.v2.access` with
//! `grant_type=refresh_token`, the app's client ID and secret by HTTP Basic, answered with a
//! new `xoxe.xoxb-` access token, a new refresh token and `expires_in: 43200`; the refresh
//! token used is spent (`invalid_refresh_token` afterwards). The server fails the test on
//! any other call and on a spent refresh token used again.

use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::json;

use crate::rotation_crash::{Shown, assert_mode, crash_at, restart};
use crate::rotation_oauth::read;
use crate::rotation_vault::Harness;
use crate::support::{self, Answer, MockServer};
use api_token_exporter::model::rotation::{RotationResult, Step};

const CLIENT_ID: &str = "4123121235.9872358710";
const CLIENT_SECRET: &str = "canary-client-secret-e1b9e11dfc";
const ACCESS0: &str = "xoxe.xoxb-1-canaryAccessZero";
const REFRESH0: &str = "xoxe-1-canaryRefreshZero";
const WATCHED: &str = "xoxb-1-canaryWatchedBot";

#[derive(Default)]
pub struct Slack {
    /// Access tokens auth.test accepts.
    active: Vec<String>,
    /// The refresh token that works now, and the spent ones.
    refresh: String,
    spent: Vec<String>,
    refreshes: u32,
    /// A spent refresh token used again.
    reuse: bool,
    /// Any call outside auth.test and oauth.v2.access, or a refresh with the client
    /// credentials in the form.
    unexpected: Vec<String>,
}

impl Slack {
    fn assert_clean(&self, refreshes: u32) {
        assert!(!self.reuse, "a spent refresh token was used again");
        assert!(self.unexpected.is_empty(), "{:?}", self.unexpected);
        assert_eq!(self.refreshes, refreshes, "refreshes");
    }
}

fn form_value(body: &str, key: &str) -> Option<String> {
    url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn error(code: &str) -> Answer {
    Answer::json(200, json!({"ok": false, "error": code}))
}

fn server(state: Arc<Mutex<Slack>>) -> impl Fn(&support::Recorded) -> Answer + Send + Sync {
    move |r| {
        let mut s = state.lock().unwrap();
        let body = r.body_text();
        match (r.method.as_str(), r.path()) {
            ("POST", "/api/auth.test") => {
                let bearer = r
                    .header("authorization")
                    .and_then(|h| h.strip_prefix("Bearer "))
                    .unwrap_or_default();
                if !s.active.iter().any(|a| a == bearer) {
                    return error("invalid_auth");
                }
                Answer::json(
                    200,
                    json!({"ok": true, "url": "https://softball.slack.com/", "team": "Slack Softball Team",
                           "user": "alerts", "team_id": "T9TK3CUKW", "user_id": "U0KRQLJ9H", "bot_id": "B0KRQLJ9H"}),
                )
            }
            ("POST", "/api/oauth.v2.access") => {
                if form_value(&body, "client_id").is_some()
                    || form_value(&body, "client_secret").is_some()
                {
                    s.unexpected
                        .push("client credentials in the form, not Basic".into());
                }
                let basic = r
                    .header("authorization")
                    .and_then(|h| h.strip_prefix("Basic "))
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .and_then(|b| String::from_utf8(b).ok())
                    .unwrap_or_default();
                let Some((id, secret)) = basic.split_once(':') else {
                    return error("invalid_client_id");
                };
                if id != CLIENT_ID {
                    return error("invalid_client_id");
                }
                if secret != CLIENT_SECRET {
                    return error("bad_client_secret");
                }
                if form_value(&body, "grant_type").as_deref() != Some("refresh_token") {
                    return error("invalid_grant_type");
                }
                let given = form_value(&body, "refresh_token").unwrap_or_default();
                if s.spent.contains(&given) {
                    s.reuse = true;
                    return error("invalid_refresh_token");
                }
                if given != s.refresh {
                    return error("invalid_refresh_token");
                }
                s.refreshes += 1;
                let n = s.refreshes;
                let access = format!("xoxe.xoxb-1-canaryAccess{n:04}");
                let refresh = format!("xoxe-1-canaryRefresh{n:04}");
                s.spent.push(given);
                s.refresh = refresh.clone();
                s.active.push(access.clone());
                Answer::json(
                    200,
                    json!({"ok": true, "access_token": access, "token_type": "bot",
                           "scope": "chat:write", "bot_user_id": "U0KRQLJ9H", "app_id": "A0KRD7HC3",
                           "expires_in": 43200, "refresh_token": refresh,
                           "team": {"name": "Slack Softball Team", "id": "T9TK3CUKW"}, "enterprise": null}),
                )
            }
            (m, p) => {
                s.unexpected.push(format!("{m} {p}"));
                error("unknown_method")
            }
        }
    }
}

fn model() -> Arc<Mutex<Slack>> {
    Arc::new(Mutex::new(Slack {
        active: vec![ACCESS0.into(), WATCHED.into()],
        refresh: REFRESH0.into(),
        ..Slack::default()
    }))
}

/// The rotating `bot` token (access in `dir/access`, refresh in `dir/refresh`) and a
/// watched one.
fn config(url: &str, dir: &Path, max_age: &str) -> String {
    std::fs::write(dir.join("access"), format!("{ACCESS0}\n")).unwrap();
    std::fs::write(dir.join("refresh"), format!("{REFRESH0}\n")).unwrap();
    std::fs::write(dir.join("secret"), format!("{CLIENT_SECRET}\n")).unwrap();
    std::fs::write(dir.join("watched"), format!("{WATCHED}\n")).unwrap();
    format!(
        "global:\n  probe_timeout: 5s\nproviders:\n  slack:\n    kind: slack\n    url: {url}\ntokens:\n  - name: bot\n    provider: slack\n    secret: {{file: {access}}}\n    rotate:\n      max_age: {max_age}\n      rotator: {{kind: slack_refresh, client_id: '{CLIENT_ID}', client_secret: {{file: {secret}}}, refresh_token_file: {refresh}}}\n      deliver: [{{file: {access}}}]\n  - name: watched\n    provider: slack\n    secret: {{file: {watched}}}\n",
        access = dir.join("access").display(),
        refresh = dir.join("refresh").display(),
        secret = dir.join("secret").display(),
        watched = dir.join("watched").display(),
    )
}

fn values() -> Vec<String> {
    let mut v: Vec<String> = [ACCESS0, REFRESH0, WATCHED, CLIENT_SECRET]
        .map(str::to_string)
        .to_vec();
    for n in 1..=3 {
        v.push(format!("canaryAccess{n:04}"));
        v.push(format!("canaryRefresh{n:04}"));
    }
    v
}

#[tokio::test]
async fn a_slack_token_is_refreshed_once_when_old_enough_and_both_tokens_are_delivered() {
    let state = model();
    let mock = MockServer::start(server(state.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::new(&config(&mock.url(), dir.path(), "2s"));
    h.probe("bot").await;
    h.probe("watched").await;
    h.tick().await;
    assert_eq!(h.status("bot").count(RotationResult::Success), 0);
    assert!(
        mock.requests().iter().all(|r| r.path() == "/api/auth.test"),
        "nothing but auth.test before the token is old enough"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    for _ in 0..3 {
        h.probe("bot").await;
        h.probe("watched").await;
        h.tick().await;
    }
    let status = h.status("bot");
    assert_eq!(status.count(RotationResult::Success), 1, "{status:?}");
    let (access, refresh) = (read(dir.path(), "access"), read(dir.path(), "refresh"));
    assert_eq!(access, "xoxe.xoxb-1-canaryAccess0001");
    assert_eq!(refresh, "xoxe-1-canaryRefresh0001");
    {
        let s = state.lock().unwrap();
        s.assert_clean(1);
        assert!(
            s.active.contains(&access),
            "the delivered access token works"
        );
        assert_eq!(
            s.refresh, refresh,
            "the delivered refresh token is the live one"
        );
    }
    let grants: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|r| r.path() == "/api/oauth.v2.access")
        .collect();
    assert_eq!(grants.len(), 1);
    assert!(
        grants[0]
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
    );
    let saved = h.saved();
    assert!(saved.tokens["bot"].pending.is_none());
    assert!(!saved.tokens.contains_key("watched"));
    let state_file = std::fs::read_to_string(h.storage.path().join("rotation.json")).unwrap();
    for value in values() {
        mock.assert_safe(&[], &value);
        assert!(
            !format!("{status:?}").contains(&value),
            "{value} in the status"
        );
        assert!(!state_file.contains(&value), "{value} in the state file");
    }
}

#[tokio::test]
async fn slack_errors_fail_the_rotation_by_their_code_and_keep_the_values() {
    let state = model();
    let mock = MockServer::start(server(state.clone())).await;
    // A refresh token spent already (by something else), then a wrong client secret.
    for (refresh, secret, code) in [
        (
            "xoxe-1-canarySpentElsewhere",
            CLIENT_SECRET,
            "invalid_refresh_token",
        ),
        (REFRESH0, "canary-wrong-secret", "bad_client_secret"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut h = Harness::new(&config(&mock.url(), dir.path(), "10h"));
        std::fs::write(dir.path().join("refresh"), format!("{refresh}\n")).unwrap();
        std::fs::write(dir.path().join("secret"), format!("{secret}\n")).unwrap();
        h.probe("bot").await;
        let result = h.rotate_now("bot").await;
        assert_eq!(result, Some(RotationResult::Failure));
        let record = &h.saved().tokens["bot"];
        assert_eq!(record.step, Step::Idle);
        assert!(record.retry_at.is_some(), "backs off");
        let error = record.last_error.clone().unwrap();
        assert!(error.contains(code), "{error}");
        assert!(!error.contains("canary"), "{error}");
        assert_eq!(read(dir.path(), "access"), ACCESS0);
        assert_eq!(read(dir.path(), "refresh"), refresh);
    }
    state.lock().unwrap().assert_clean(0);
}

/// kill -9 right after Slack's answer was saved: a restarted daemon delivers the saved pair
/// and never refreshes again (the refresh token it would use is spent). No value appears in
/// the log, metrics, API, page or finished state file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_after_issued_delivers_the_saved_pair_once_and_shows_no_value() {
    let state = model();
    let mock = MockServer::start(server(state.clone())).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let once = "global:\n  probe_interval: 1h\n  min_probe_interval: 1h\n";
    let yaml = config(&mock.url(), dir, "1s").replace("global:\n", once);
    std::fs::write(dir.join("config.yml"), &yaml).unwrap();
    crash_at(dir, "bot", "issued");
    assert_eq!(
        read(dir, "access"),
        ACCESS0,
        "not delivered before the crash"
    );
    assert_eq!(read(dir, "refresh"), REFRESH0);
    assert_mode(
        &dir.join("data/rotation.json"),
        0o600,
        "the issued pair is in a 0600 record only",
    );
    let success =
        "api_token_rotations_total{token=\"bot\",provider=\"slack\",result=\"success\"} 1\n";
    let (daemon, metrics) =
        restart(dir, &yaml.replace("max_age: 1s", "max_age: 10h"), success).await;
    let (access, refresh) = (read(dir, "access"), read(dir, "refresh"));
    assert_eq!(access, "xoxe.xoxb-1-canaryAccess0001");
    assert_eq!(refresh, "xoxe-1-canaryRefresh0001");
    {
        let s = state.lock().unwrap();
        s.assert_clean(1);
        assert!(s.active.contains(&access));
        assert_eq!(s.refresh, refresh);
    }
    let shown = Shown::of(&daemon, dir, metrics);
    let values = values();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    for value in &values {
        mock.assert_safe(&[], value);
    }
    support::assert_hidden_in(&shown.places, &values);
    let log = shown.log();
    assert!(
        log.contains("token=bot") && log.contains("step=finish"),
        "{log}"
    );
}
