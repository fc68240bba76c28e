//! The `google` provider against a local server that answers as Google's OAuth 2.0
//! `tokeninfo` endpoint does.

use std::time::Duration;

use crate::support;
use crate::support::clock::{NOW, now};
use api_token_exporter::config::Config;
use api_token_exporter::model::{Expiry, ProbeOutcome, Reason, Verdict};
use jiff::Timestamp;
use serde_json::json;
use support::{Answer, MockServer, SecretFiles, probe_once};

const TOKEN: &str = "ya29.a0canaryGoogleAccessToken-0123456789";

/// Revocation: a probe must never call it. The token grant endpoint (`/token`, where a
/// refresh would go) shares its prefix with `/tokeninfo`, so it is checked by exact path in
/// [`assert_sent`].
const NEVER_CALL: &[(&str, &str)] = &[
    ("POST", "/revoke"),
    ("GET", "/revoke"),
    ("POST", "/o/oauth2/revoke"),
];

fn yaml(url: &str, secret: &str) -> String {
    format!(
        "global:\n  probe_timeout: 1s\nproviders:\n  google:\n    kind: google\n    url: {url}\ntokens:\n  - name: drive-sync\n    provider: google\n    secret: {secret}\n"
    )
}

async fn probe(server: &MockServer) -> ProbeOutcome {
    let secrets = SecretFiles::new();
    let secret = secrets.put("google", TOKEN);
    probe_once(&yaml(&server.url(), &secret), "drive-sync", now()).await
}

/// One POST to /tokeninfo, the token only in the Authorization header.
fn assert_sent(server: &MockServer) {
    server.assert_safe(NEVER_CALL, TOKEN);
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_ne!(r.path(), "/token", "never the token grant endpoint");
    assert_eq!(r.method, "POST");
    assert_eq!(r.path(), "/tokeninfo");
    assert_eq!(r.uri.query(), None, "never ?access_token=");
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert!(
        !r.body_text().contains(TOKEN),
        "the token is sent once, in the header"
    );
    assert!(!r.body_text().contains("refresh_token"));
}

#[tokio::test]
async fn valid_token_exports_identity_scopes_and_expiry() {
    let server = MockServer::start(|_| {
        Answer::json(
            200,
            json!({
                "azp": "407408718192.apps.googleusercontent.com",
                "aud": "407408718192.apps.googleusercontent.com",
                "sub": "110169484474386276334",
                "scope": "https://www.googleapis.com/auth/drive.readonly openid https://www.googleapis.com/auth/userinfo.email",
                "exp": "1700003599",
                "expires_in": "3599",
                "email": "sync@example.com",
                "email_verified": "true",
                "access_type": "offline"
            }),
        )
    })
    .await;
    let o = probe(&server).await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(
        o.facts.expiry,
        Expiry::At(Timestamp::from_second(NOW + 3599).unwrap())
    );
    assert_eq!(o.facts.subject.as_deref(), Some("sync@example.com"));
    assert_eq!(
        o.facts.client_id.as_deref(),
        Some("407408718192.apps.googleusercontent.com")
    );
    assert_eq!(
        o.facts.audience,
        ["407408718192.apps.googleusercontent.com"]
    );
    assert_eq!(
        o.facts.scopes,
        [
            "https://www.googleapis.com/auth/drive.readonly",
            "https://www.googleapis.com/auth/userinfo.email",
            "openid"
        ]
    );
    assert_eq!(o.facts.extra["sub"], "110169484474386276334");
    assert_eq!(o.facts.extra["email_verified"], "true");
    assert_eq!(o.facts.extra["access_type"], "offline");
    assert!(o.facts.flags.is_empty());
    assert_sent(&server);
}

#[tokio::test]
async fn numeric_fields_as_numbers_are_tolerated() {
    let server = MockServer::start(|_| {
        Answer::json(
            200,
            json!({"azp": "c", "aud": "c", "scope": "s", "exp": NOW + 60, "expires_in": 60}),
        )
    })
    .await;
    let o = probe(&server).await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry.timestamp().unwrap().as_second(), NOW + 60);
}

#[tokio::test]
async fn service_account_token_without_email_uses_expires_in() {
    // Without `exp`, `expires_in` counts from the answer.
    let server = MockServer::start(|_| {
        Answer::json(
            200,
            json!({"azp": "1234", "aud": "1234", "scope": "https://www.googleapis.com/auth/cloud-platform", "expires_in": "1800", "access_type": "online"}),
        )
    })
    .await;
    let o = probe(&server).await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry.timestamp().unwrap().as_second(), NOW + 1800);
    assert_eq!(o.facts.subject, None);
}

#[tokio::test]
async fn invalid_token_is_invalid() {
    let server = MockServer::start(|_| {
        Answer::json(
            400,
            json!({"error": "invalid_token", "error_description": "Invalid Value"}),
        )
    })
    .await;
    let o = probe(&server).await;
    assert_eq!((o.verdict, o.reason), (Verdict::Invalid, Reason::Inactive));
    assert!(!o.detail.contains(TOKEN));
    assert_sent(&server);
}

#[tokio::test]
async fn other_400_errors_are_not_invalid() {
    // What Google answers when it sees no token at all: a request problem, not a token state.
    let server = MockServer::start(|_| {
        Answer::json(
            400,
            json!({"error": "invalid_request", "error_description": "Either access_token, id_token, or token_handle required"}),
        )
    })
    .await;
    let o = probe(&server).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::UnexpectedStatus)
    );
}

#[tokio::test]
async fn rate_limited_with_retry_after() {
    let server = MockServer::start(|_| {
        Answer::json(
            429,
            json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}),
        )
        .header("retry-after", "20")
    })
    .await;
    let o = probe(&server).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::RateLimited, Reason::RateLimited)
    );
    assert_eq!(o.retry_after, Some(Duration::from_secs(20)));
}

#[tokio::test]
async fn garbage_and_server_errors_are_unreachable() {
    let cases: Vec<(&str, Answer)> = vec![
        (
            "html",
            Answer::text(
                200,
                "text/html",
                "<html><title>Sign in - Google Accounts</title></html>",
            ),
        ),
        ("empty", Answer::text(200, "application/json", "")),
        ("unrelated json", Answer::json(200, json!({"status": "ok"}))),
        (
            "bad exp",
            Answer::json(200, json!({"aud": "a", "exp": "tomorrow"})),
        ),
        (
            "html 400",
            Answer::text(400, "text/html", "<html>Bad Request</html>"),
        ),
        ("401", Answer::json(401, json!({"error": "invalid_token"}))),
        (
            "500",
            Answer::json(500, json!({"error": "internal_failure"})),
        ),
        (
            "503",
            Answer::text(503, "text/html", "<html>unavailable</html>"),
        ),
        (
            "redirect",
            Answer::text(302, "text/plain", "").header("location", "http://127.0.0.1:9/"),
        ),
    ];
    for (what, answer) in cases {
        let server = MockServer::start(move |_| answer.clone()).await;
        let o = probe(&server).await;
        assert_eq!(o.verdict, Verdict::Unreachable, "{what}: {o:?}");
        assert_sent(&server);
    }
}

#[tokio::test]
async fn timeout_is_unreachable() {
    let server = MockServer::start(|_| {
        Answer::json(200, json!({"aud": "a", "expires_in": "10"})).delayed(Duration::from_secs(3))
    })
    .await;
    let o = probe(&server).await;
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
    let secret = secrets.put("google", TOKEN);
    let o = probe_once(
        &yaml(&format!("http://127.0.0.1:{port}"), &secret),
        "drive-sync",
        now(),
    )
    .await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::Connect)
    );
}

#[test]
fn minimal_config_loads() {
    let config = Config::parse(
        "providers:\n  google:\n    kind: google\ntokens:\n  - name: t\n    provider: google\n    secret: {file: /run/secrets/google-token}\n",
    )
    .unwrap();
    assert_eq!(config.providers["google"].kind(), "google");
}

#[test]
fn wrong_configs_give_clear_errors() {
    let err = Config::parse(
        "providers:\n  google:\n    kind: google\n    url: \"https://oauth2.googleapis.com?access_token=x\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("providers.google") && err.contains("must not have a query"),
        "{err}"
    );
    let err = Config::parse("providers:\n  google:\n    kind: google\n    endpoint: https://x\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `endpoint`"), "{err}");
}
