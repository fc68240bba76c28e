//! The `slack` provider against a local server that answers as Slack's `auth.test` does.

use std::time::Duration;

use crate::support;
use crate::support::clock::{NOW, now};
use api_token_exporter::config::Config;
use api_token_exporter::model::{Expiry, ProbeOutcome, Reason, Verdict};
use jiff::Timestamp;
use serde_json::json;
use support::{Answer, MockServer, Recorded, SecretFiles, probe_once};

const BOT_TOKEN: &str = "xoxb-1111111111-2222222222-canarySlackBotToken";
const ROTATING_TOKEN: &str = "xoxe.xoxp-1-canaryRotatingSlackUserToken";

/// Calls that rotate, exchange or revoke Slack tokens: a probe must never make them.
const NEVER_CALL: &[(&str, &str)] = &[
    ("POST", "/api/tooling.tokens.rotate"),
    ("GET", "/api/tooling.tokens.rotate"),
    ("POST", "/api/oauth.v2.access"),
    ("GET", "/api/oauth.v2.access"),
    ("POST", "/api/oauth.access"),
    ("POST", "/api/auth.revoke"),
    ("GET", "/api/auth.revoke"),
];

fn yaml(url: &str, secret: &str) -> String {
    format!(
        "global:\n  probe_timeout: 1s\nproviders:\n  slack:\n    kind: slack\n    url: {url}\ntokens:\n  - name: bot\n    provider: slack\n    secret: {secret}\n"
    )
}

/// Probes `token` once against `server` (Slack's API living under `/api`, as in production).
async fn probe(server: &MockServer, token: &str) -> ProbeOutcome {
    let secrets = SecretFiles::new();
    let secret = secrets.put("slack", token);
    probe_once(&yaml(&server.url(), &secret), "bot", now()).await
}

/// Every request must be the documented auth.test call, the token only in the header.
fn assert_sent_auth_test(server: &MockServer, token: &str) {
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "exactly one call per probe");
    let r: &Recorded = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path(), "/api/auth.test");
    assert_eq!(r.uri.query(), None);
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );
    assert!(
        !r.body_text().contains(token),
        "the token must not be in the body"
    );
    assert!(!r.body_text().contains("refresh_token"));
    server.assert_safe(NEVER_CALL, token);
}

fn answer_ok(body: serde_json::Value) -> Answer {
    Answer::json(200, body)
}

#[tokio::test]
async fn valid_user_token_exports_identity_and_scopes() {
    let server = MockServer::start(|_| {
        answer_ok(json!({
            "ok": true,
            "url": "https://acme.slack.com/",
            "team": "Acme",
            "user": "grace",
            "team_id": "T12345678",
            "user_id": "W12345678"
        }))
        .header("x-oauth-scopes", "channels:read,chat:write,users:read")
        .header("x-accepted-oauth-scopes", "")
    })
    .await;
    let o = probe(&server, BOT_TOKEN).await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(o.facts.subject.as_deref(), Some("grace"));
    assert_eq!(o.facts.token_type.as_deref(), Some("user"));
    assert_eq!(
        o.facts.scopes,
        ["channels:read", "chat:write", "users:read"]
    );
    assert_eq!(o.facts.extra["team"], "Acme");
    assert_eq!(o.facts.extra["team_id"], "T12345678");
    assert_eq!(o.facts.extra["url"], "https://acme.slack.com/");
    // auth.test says nothing about expiry.
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert_sent_auth_test(&server, BOT_TOKEN);
}

#[tokio::test]
async fn valid_bot_token_names_the_bot() {
    let server = MockServer::start(|_| {
        answer_ok(json!({
            "ok": true,
            "url": "https://acme.slack.com/",
            "team": "Acme",
            "user": "deploybot",
            "team_id": "T1",
            "user_id": "U1",
            "bot_id": "B1",
            "is_enterprise_install": false
        }))
        .header("x-oauth-scopes", "chat:write")
    })
    .await;
    let o = probe(&server, BOT_TOKEN).await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.subject.as_deref(), Some("deploybot"));
    assert_eq!(o.facts.token_type.as_deref(), Some("bot"));
    assert_eq!(o.facts.extra["bot_id"], "B1");
    assert_eq!(o.facts.scopes, ["chat:write"]);
    assert_sent_auth_test(&server, BOT_TOKEN);
}

#[tokio::test]
async fn rotating_token_with_expires_in() {
    let server = MockServer::start(|_| {
        answer_ok(json!({"ok": true, "user": "grace", "user_id": "U1", "team_id": "T1", "expires_in": 43_200}))
    })
    .await;
    let o = probe(&server, ROTATING_TOKEN).await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(
        o.facts.expiry,
        Expiry::At(Timestamp::from_second(NOW + 43_200).unwrap())
    );
    assert_eq!(o.facts.extra["rotating"], "true");
    assert_sent_auth_test(&server, ROTATING_TOKEN);
}

#[tokio::test]
async fn rotating_token_without_expires_in_is_undisclosed() {
    let server = MockServer::start(|_| answer_ok(json!({"ok": true, "user": "grace"}))).await;
    let o = probe(&server, ROTATING_TOKEN).await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert_eq!(o.facts.extra["rotating"], "true");
}

#[tokio::test]
async fn documented_failures_are_invalid_with_distinct_reasons() {
    for (code, reason) in [
        ("invalid_auth", Reason::UnknownToken),
        ("not_authed", Reason::Malformed),
        ("account_inactive", Reason::Disabled),
        ("token_revoked", Reason::Revoked),
        ("token_expired", Reason::Expired),
    ] {
        // Slack answers these with HTTP 200.
        let server =
            MockServer::start(move |_| answer_ok(json!({"ok": false, "error": code}))).await;
        let o = probe(&server, BOT_TOKEN).await;
        assert_eq!((o.verdict, o.reason), (Verdict::Invalid, reason), "{code}");
        assert!(!o.detail.contains(BOT_TOKEN));
        assert_sent_auth_test(&server, BOT_TOKEN);
    }
}

#[tokio::test]
async fn other_error_codes_are_never_invalid() {
    for (code, verdict) in [
        ("ratelimited", Verdict::RateLimited),
        ("internal_error", Verdict::Unreachable),
        ("fatal_error", Verdict::Unreachable),
        ("request_timeout", Verdict::Unreachable),
        ("team_added_to_org", Verdict::Unreachable),
        ("org_login_required", Verdict::Unreachable),
        ("invalid_arguments", Verdict::Unreachable),
        ("a_code_slack_invents_next_year", Verdict::Unreachable),
        ("missing_scope", Verdict::Forbidden),
        ("not_allowed_token_type", Verdict::Forbidden),
        ("ekm_access_denied", Verdict::Forbidden),
    ] {
        let server =
            MockServer::start(move |_| answer_ok(json!({"ok": false, "error": code}))).await;
        let o = probe(&server, BOT_TOKEN).await;
        assert_eq!(o.verdict, verdict, "{code}: {o:?}");
    }
}

#[tokio::test]
async fn http_429_is_rate_limited_with_retry_after() {
    let server = MockServer::start(|_| {
        Answer::json(429, json!({"ok": false, "error": "ratelimited"})).header("retry-after", "30")
    })
    .await;
    let o = probe(&server, BOT_TOKEN).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::RateLimited, Reason::RateLimited)
    );
    assert_eq!(o.retry_after, Some(Duration::from_secs(30)));
    assert_sent_auth_test(&server, BOT_TOKEN);
}

#[tokio::test]
async fn garbage_and_server_errors_are_unreachable() {
    let cases: Vec<(&str, Answer)> = vec![
        (
            "html",
            Answer::text(200, "text/html", "<html><body>Captive portal</body></html>"),
        ),
        ("empty", Answer::text(200, "application/json", "")),
        ("not ok", Answer::json(200, json!({"user": "grace"}))),
        ("array", Answer::json(200, json!([1, 2]))),
        (
            "500",
            Answer::json(500, json!({"ok": false, "error": "fatal_error"})),
        ),
        (
            "502",
            Answer::text(502, "text/html", "<html>Bad Gateway</html>"),
        ),
        ("503", Answer::text(503, "text/plain", "")),
        (
            "redirect",
            Answer::text(302, "text/plain", "").header("location", "http://127.0.0.1:9/elsewhere"),
        ),
    ];
    for (what, answer) in cases {
        let server = MockServer::start(move |_| answer.clone()).await;
        let o = probe(&server, BOT_TOKEN).await;
        assert_eq!(o.verdict, Verdict::Unreachable, "{what}: {o:?}");
        // A redirect is not followed: the token is sent to the configured host only.
        assert_sent_auth_test(&server, BOT_TOKEN);
    }
}

#[tokio::test]
async fn timeout_is_unreachable() {
    let server = MockServer::start(|_| {
        answer_ok(json!({"ok": true, "user": "grace"})).delayed(Duration::from_secs(3))
    })
    .await;
    let o = probe(&server, BOT_TOKEN).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::Timeout)
    );
}

#[tokio::test]
async fn connection_refused_is_unreachable() {
    // A port nothing listens on.
    let port = support::daemon::free_port();
    let secrets = SecretFiles::new();
    let secret = secrets.put("slack", BOT_TOKEN);
    let o = probe_once(
        &yaml(&format!("http://127.0.0.1:{port}"), &secret),
        "bot",
        now(),
    )
    .await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::Connect)
    );
    assert!(!o.detail.contains(BOT_TOKEN));
}

#[test]
fn minimal_config_loads_and_defaults_to_slack_com() {
    let config = Config::parse(
        "providers:\n  slack:\n    kind: slack\ntokens:\n  - name: bot\n    provider: slack\n    secret: {env: SLACK_BOT_TOKEN}\n",
    )
    .unwrap();
    assert_eq!(config.providers["slack"].kind(), "slack");
}

#[test]
fn wrong_configs_give_clear_errors() {
    let err =
        Config::parse("providers:\n  slack:\n    kind: slack\n    apiurl: https://slack.com/api\n")
            .unwrap_err()
            .to_string();
    assert!(err.contains("apiurl"), "{err}");
    let err = Config::parse("providers:\n  slack:\n    kind: slack\n    url: slack.com\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("providers.slack: url: invalid URL"), "{err}");
    let err = Config::parse(
        "providers:\n  slack:\n    kind: slack\ntokens:\n  - name: bot\n    provider: slack\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("tokens[0]") && err.contains("secret is required"),
        "{err}"
    );
    let err = Config::parse(
        "providers:\n  slack:\n    kind: slack\ntokens:\n  - name: bot\n    provider: slack\n    secret: {env: X}\n    audiences: [a]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("audiences does not apply to a slack provider"),
        "{err}"
    );
}
