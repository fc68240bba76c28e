//! The `grafana` provider against a local server that answers as Grafana's HTTP API does:
//! `GET /api/user` with a service-account token (bearer), then
//! `GET /api/serviceaccounts/{id}/tokens` (the documented token list) when the token may
//! read it; 401 with Grafana's error JSON for an expired, revoked or unknown token.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use crate::support;
use crate::support::clock::now;
use api_token_exporter::config::Config;
use api_token_exporter::model::{Expiry, ProbeOutcome, Reason, Verdict};
use jiff::Timestamp;
use serde_json::json;
use support::{Answer, MockServer, Recorded, SecretFiles, assert_outcome_hides, probe_once};

const TOKEN: &str = "glsa_CanaryGrafanaServiceAccountTok01_5b582697";
const USER: &str = "/api/user";
const LIST: &str = "/api/serviceaccounts/42/tokens";

/// Calls that create, delete or convert tokens: never made.
const NEVER_CALL: &[(&str, &str)] = &[
    ("POST", "/api/serviceaccounts"),
    ("DELETE", "/api/serviceaccounts"),
    ("PATCH", "/api/serviceaccounts"),
    ("POST", "/api/auth/keys"),
    ("DELETE", "/api/auth/keys"),
];

fn sa_user() -> serde_json::Value {
    json!({"id": 0, "uid": "service-account:42", "email": "sa-1-deployer", "name": "deployer",
           "login": "sa-1-deployer", "theme": "", "orgId": 1, "isGrafanaAdmin": false,
           "isDisabled": false, "isExternal": false, "authLabels": null, "avatarUrl": ""})
}

fn tokens() -> serde_json::Value {
    json!([
        {"id": 1, "name": "old", "role": "Viewer", "created": "2022-03-23T10:31:02Z",
         "expiration": "2023-01-01T00:00:00Z", "secondsUntilExpiration": 0, "hasExpired": true},
        {"id": 2, "name": "ci", "role": "Viewer", "created": "2023-10-01T00:00:00Z",
         "expiration": "2023-12-15T00:00:00Z", "secondsUntilExpiration": 0, "hasExpired": false,
         "lastUsedAt": "2023-11-14T20:00:00Z"}
    ])
}

/// A Grafana: the known token gets its user and, with `list_status` 200, the token list;
/// other tokens get Grafana's 401.
async fn grafana(prefix: &'static str, list_status: Arc<AtomicU16>) -> MockServer {
    MockServer::start(move |r: &Recorded| {
        if r.header("authorization") != Some(format!("Bearer {TOKEN}").as_str()) {
            return Answer::json(
                401,
                json!({"message": "Invalid API key", "messageId": "api-key.invalid", "statusCode": 401, "traceID": ""}),
            );
        }
        let path = r.path().strip_prefix(prefix).unwrap_or("/not-under-prefix");
        match (r.method.as_str(), path) {
            ("GET", USER) => Answer::json(200, sa_user()),
            ("GET", LIST) => match list_status.load(Ordering::SeqCst) {
                200 => Answer::json(200, tokens()),
                403 => Answer::json(
                    403,
                    json!({"accessErrorId": "ACE1646206561", "message": "You'll need additional permissions to perform this action. Permissions needed: serviceaccounts:read", "title": "Access denied"}),
                ),
                s => Answer::text(s, "text/plain", "failure"),
            },
            _ => Answer::json(404, json!({"message": "Not found"})),
        }
    })
    .await
}

async fn probe(url: &str, token: &str, extra: &str) -> ProbeOutcome {
    let secrets = SecretFiles::new();
    let secret = secrets.put("g", token);
    let yaml = format!(
        "global:\n  probe_timeout: 1s\nproviders:\n  g:\n    kind: grafana\n    url: {url}\ntokens:\n  - name: t\n    provider: g\n    secret: {secret}\n{extra}"
    );
    let o = probe_once(&yaml, "t", now()).await;
    assert_outcome_hides(&o, token);
    o
}

/// Every request is one of the two documented GETs, in order, the token only as bearer.
fn assert_calls(server: &MockServer, prefix: &str, want: &[&str], token: &str) {
    let seen: Vec<String> = server
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path()))
        .collect();
    let want: Vec<String> = want.iter().map(|p| format!("GET {prefix}{p}")).collect();
    assert_eq!(
        seen, want,
        "calls outside the allowed list, or in another order"
    );
    for r in server.requests() {
        assert_eq!(r.uri.query(), None);
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {token}").as_str())
        );
    }
    server.assert_safe(NEVER_CALL, token);
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[tokio::test]
async fn a_service_account_token_gets_its_expiry_and_last_use_from_the_list() {
    let server = grafana("", Arc::new(AtomicU16::new(200))).await;
    let o = probe(&server.url(), TOKEN, "").await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(o.facts.subject.as_deref(), Some("sa-1-deployer"));
    assert_eq!(o.facts.token_type.as_deref(), Some("service_account"));
    assert_eq!(o.facts.expiry, Expiry::At(at("2023-12-15T00:00:00Z")));
    assert_eq!(o.facts.last_used_at, Some(at("2023-11-14T20:00:00Z")));
    assert_eq!(o.facts.issued_at, Some(at("2023-10-01T00:00:00Z")));
    assert_eq!(o.facts.extra["token_name"], "ci");
    assert_calls(&server, "", &[USER, LIST], TOKEN);
}

#[tokio::test]
async fn key_id_picks_the_token_by_name() {
    let server = grafana("", Arc::new(AtomicU16::new(200))).await;
    let o = probe(&server.url(), TOKEN, "    key_id: old\n").await;
    // The named token is listed as expired although it answered: flagged, not believed over
    // the verdict.
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::At(at("2023-01-01T00:00:00Z")));
    assert_eq!(o.facts.flags.len(), 1, "{:?}", o.facts.flags);
}

#[tokio::test]
async fn a_token_that_may_not_read_the_list_is_valid_with_its_expiry_undisclosed() {
    let server = grafana("", Arc::new(AtomicU16::new(403))).await;
    let o = probe(&server.url(), TOKEN, "").await;
    assert_eq!(o.verdict, Verdict::Valid, "{o:?}");
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert!(o.facts.extra["expiry_note"].contains("serviceaccounts:read"));
    assert_calls(&server, "", &[USER, LIST], TOKEN);

    // A failing list call changes nothing but the expiry's freshness.
    let server = grafana("", Arc::new(AtomicU16::new(502))).await;
    let o = probe(&server.url(), TOKEN, "").await;
    assert_eq!(o.verdict, Verdict::Valid, "{o:?}");
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert_eq!(o.facts.flags.len(), 1);
}

#[tokio::test]
async fn a_sub_path_is_kept() {
    let server = grafana("/grafana", Arc::new(AtomicU16::new(200))).await;
    let o = probe(&format!("{}/grafana/", server.url()), TOKEN, "").await;
    assert_eq!(o.verdict, Verdict::Valid, "{o:?}");
    assert_calls(&server, "/grafana", &[USER, LIST], TOKEN);
}

#[tokio::test]
async fn an_unknown_or_expired_token_is_invalid_after_one_call() {
    let server = grafana("", Arc::new(AtomicU16::new(200))).await;
    let other = "glsa_CanaryUnknownServiceAccountToken0_0badc0de";
    let o = probe(&server.url(), other, "").await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::UnknownToken),
        "{o:?}"
    );
    assert_calls(&server, "", &[USER], other);

    let expired = MockServer::start(|_| {
        Answer::json(401, json!({"message": "Expired API key", "messageId": "api-key.expired", "statusCode": 401, "traceID": ""}))
    })
    .await;
    let o = probe(&expired.url(), TOKEN, "").await;
    assert_eq!((o.verdict, o.reason), (Verdict::Invalid, Reason::Expired));
    assert_calls(&expired, "", &[USER], TOKEN);
}

#[tokio::test]
async fn outages_and_garbage_are_unreachable() {
    let cases: Vec<(&str, Answer)> = vec![
        ("503", Answer::text(503, "text/plain", "")),
        (
            "login page",
            Answer::text(200, "text/html", "<html>Grafana login</html>"),
        ),
        (
            "proxy 401 page",
            Answer::text(401, "text/html", "<html>Sign in with SSO</html>"),
        ),
        (
            "429",
            Answer::json(429, json!({"message": "Too many requests"})).header("retry-after", "5"),
        ),
        ("no login", Answer::json(200, json!({"id": 1}))),
    ];
    for (what, answer) in cases {
        let server = MockServer::start(move |_| answer.clone()).await;
        let o = probe(&server.url(), TOKEN, "").await;
        assert!(
            matches!(o.verdict, Verdict::Unreachable | Verdict::RateLimited),
            "{what}: {o:?}"
        );
        assert_calls(&server, "", &[USER], TOKEN);
    }
}

#[test]
fn config_errors_name_the_setting() {
    let err = Config::parse("providers:\n  g:\n    kind: grafana\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("providers.g") && err.contains("url is required"),
        "{err}"
    );
    let err = Config::parse(
        "providers:\n  g:\n    kind: grafana\n    url: https://g.example.com\ntokens:\n  - name: t\n    provider: g\n    secret: {env: T}\n    email: a@b.c\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("email does not apply to a grafana provider"),
        "{err}"
    );
    Config::parse(
        "providers:\n  g:\n    kind: grafana\n    url: https://acme.grafana.net\ntokens:\n  - name: t\n    provider: g\n    secret: {env: T}\n    key_id: ci\n",
    )
    .unwrap();
}
