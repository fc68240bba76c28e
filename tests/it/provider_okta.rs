//! The `okta` provider against a local server that answers as Okta's management API does:
//! `GET /api/v1/users/me` with `Authorization: SSWS <token>`, 401 `E0000011` for a bad
//! token, 429 `E0000047` with `X-Rate-Limit-*` headers, and the API token list
//! `GET /api/v1/api-tokens` paged with `Link: <...>; rel="next"`.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support;
use crate::support::clock::{NOW, now};
use api_token_exporter::config::Config;
use api_token_exporter::model::{Expiry, ExpiryModel, ProbeOutcome, Reason, Verdict};
use jiff::Timestamp;
use serde_json::json;
use support::{Answer, MockServer, Recorded, SecretFiles, assert_outcome_hides, probe_once};

const TOKEN: &str = "00CanaryOktaApiToken-0123456789abcdefghijkLMNOP";
const ME: &str = "/api/v1/users/me";
const LIST: &str = "/api/v1/api-tokens";
const USER_ID: &str = "00ub0oNGTSWTBKOLGLNR";

/// Revocation and token management: never called.
const NEVER_CALL: &[(&str, &str)] = &[
    ("DELETE", "/api/v1/api-tokens"),
    ("PUT", "/api/v1/api-tokens"),
    ("POST", "/api/v1/api-tokens"),
    ("DELETE", "/api/v1/sessions"),
];

fn me() -> serde_json::Value {
    json!({"id": USER_ID, "status": "ACTIVE", "created": "2013-06-24T16:39:18.000Z",
           "lastUpdated": "2013-06-27T16:35:28.000Z",
           "profile": {"firstName": "Isaac", "lastName": "Brock",
                       "email": "isaac.brock@example.com", "login": "isaac.brock@example.com"},
           "credentials": {"provider": {"type": "OKTA", "name": "OKTA"}}})
}

fn error(code: &str, summary: &str) -> serde_json::Value {
    json!({"errorCode": code, "errorSummary": summary, "errorLink": code,
           "errorId": "oaeIM9IcG0uUbqnGxxV0HFtqw", "errorCauses": []})
}

/// An Okta org: the known token is the user's; the token list has two pages, the user's
/// token on the second; `list_status` other than 200 refuses the list as Okta refuses a
/// role without the permission.
async fn org(list_status: Arc<AtomicU16>) -> MockServer {
    // Okta's links are absolute, to itself: the handler learns its address after the start.
    let origin = Arc::new(Mutex::new(String::new()));
    let own = origin.clone();
    let server = MockServer::start(move |r: &Recorded| {
        if r.header("authorization") != Some(format!("SSWS {TOKEN}").as_str()) {
            return Answer::json(401, error("E0000011", "Invalid token provided"));
        }
        let limits = |a: Answer| {
            a.header("x-rate-limit-limit", "600")
                .header("x-rate-limit-remaining", "598")
                .header("x-rate-limit-reset", &(NOW + 60).to_string())
        };
        match (r.method.as_str(), r.path(), r.uri.query()) {
            ("GET", ME, None) => limits(Answer::json(200, me())),
            ("GET", LIST, query) => match list_status.load(Ordering::SeqCst) {
                200 if query == Some("limit=200") => Answer::json(
                    200,
                    json!([{"name": "someone else's", "userId": "00u0ther", "tokenWindow": "P30D",
                            "id": "00T0ther", "clientName": "Okta API",
                            "expiresAt": "2024-01-01T00:00:00.000Z"}]),
                )
                .header(
                    "link",
                    &format!(
                        "<{0}{LIST}?limit=200>; rel=\"self\", <{0}{LIST}?after=00T0ther&limit=200>; rel=\"next\"",
                        own.lock().unwrap()
                    ),
                ),
                200 => Answer::json(
                    200,
                    json!([{"name": "ci", "userId": USER_ID, "tokenWindow": "P30D",
                            "id": "00Tabcdefg1234567890", "clientName": "Okta API",
                            "expiresAt": "2023-12-15T00:00:00.000Z",
                            "created": "2023-10-01T20:38:10.000Z",
                            "lastUpdated": "2023-11-14T22:13:20.000Z"}]),
                ),
                403 => Answer::json(403, error("E0000006", "You do not have permission to perform the requested action")),
                s => Answer::text(s, "text/plain", "failure"),
            },
            _ => Answer::json(404, error("E0000007", "Not found: Resource not found")),
        }
    })
    .await;
    *origin.lock().unwrap() = server.url();
    server
}

async fn probe(url: &str, token: &str) -> ProbeOutcome {
    let secrets = SecretFiles::new();
    let secret = secrets.put("okta", token);
    let yaml = format!(
        "global:\n  probe_timeout: 1s\nproviders:\n  okta:\n    kind: okta\n    url: {url}\ntokens:\n  - name: t\n    provider: okta\n    secret: {secret}\n"
    );
    let o = probe_once(&yaml, "t", now()).await;
    assert_outcome_hides(&o, token);
    o
}

/// Every request is one of the allowed GETs, in order, the token only in the SSWS header.
fn assert_calls(server: &MockServer, want: &[&str], token: &str) {
    let seen: Vec<String> = server
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path()))
        .collect();
    let want: Vec<String> = want.iter().map(|p| format!("GET {p}")).collect();
    assert_eq!(
        seen, want,
        "calls outside the allowed list, or in another order"
    );
    for r in server.requests() {
        assert_eq!(
            r.header("authorization"),
            Some(format!("SSWS {token}").as_str())
        );
    }
    server.assert_safe(NEVER_CALL, token);
}

#[tokio::test]
async fn the_users_token_is_found_on_the_second_page() {
    let server = org(Arc::new(AtomicU16::new(200))).await;
    let o = probe(&server.url(), TOKEN).await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(o.facts.subject.as_deref(), Some("isaac.brock@example.com"));
    assert_eq!(
        o.facts.expiry_model,
        ExpiryModel::Sliding {
            window_seconds: 30 * 86_400
        }
    );
    assert_eq!(
        o.facts.expiry,
        Expiry::At("2023-12-15T00:00:00Z".parse().unwrap())
    );
    assert_eq!(o.facts.extra["token_id"], "00Tabcdefg1234567890");
    assert_eq!(o.facts.last_used_at, Some(now()), "the probe was a use");
    assert_eq!(o.rate_limit.and_then(|r| r.remaining), Some(598.0));
    assert_calls(&server, &[ME, LIST, LIST], TOKEN);
}

#[tokio::test]
async fn without_the_list_the_expiry_is_the_probe_plus_thirty_days() {
    let server = org(Arc::new(AtomicU16::new(403))).await;
    let o = probe(&server.url(), TOKEN).await;
    assert_eq!(o.verdict, Verdict::Valid, "{o:?}");
    assert_eq!(
        o.facts.expiry,
        Expiry::At(Timestamp::from_second(NOW + 30 * 86_400).unwrap())
    );
    assert!(o.facts.extra["expiry_note"].contains("computed"));
    assert_calls(&server, &[ME, LIST], TOKEN);
}

#[tokio::test]
async fn an_invalid_token_is_refused_after_one_call() {
    let server = org(Arc::new(AtomicU16::new(200))).await;
    let other = "00CanaryRevokedOktaToken-000000000000000000000";
    let o = probe(&server.url(), other).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::UnknownToken),
        "{o:?}"
    );
    assert!(!o.detail.contains("oaeIM9"), "the error id is not shown");
    assert_calls(&server, &[ME], other);
}

#[tokio::test]
async fn a_429_waits_until_the_reset() {
    let server = MockServer::start(|_| {
        Answer::json(
            429,
            error(
                "E0000047",
                "API call exceeded rate limit due to too many requests.",
            ),
        )
        .header("x-rate-limit-limit", "600")
        .header("x-rate-limit-remaining", "0")
        .header("x-rate-limit-reset", &(NOW + 42).to_string())
    })
    .await;
    let o = probe(&server.url(), TOKEN).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::RateLimited, Reason::RateLimited)
    );
    assert_eq!(o.retry_after, Some(Duration::from_secs(42)));
    assert_calls(&server, &[ME], TOKEN);
}

#[tokio::test]
async fn outages_and_garbage_are_unreachable() {
    let cases: Vec<(&str, Answer)> = vec![
        (
            "500",
            Answer::json(500, error("E0000009", "Internal Server Error")),
        ),
        (
            "sign-in page",
            Answer::text(200, "text/html", "<html>Okta sign-in</html>"),
        ),
        (
            "401 without code",
            Answer::text(401, "text/html", "<html>proxy</html>"),
        ),
        (
            "no id",
            Answer::json(200, json!({"profile": {"login": "x"}})),
        ),
        (
            "redirect",
            Answer::text(302, "text/plain", "").header("location", "http://127.0.0.1:9/"),
        ),
    ];
    for (what, answer) in cases {
        let server = MockServer::start(move |_| answer.clone()).await;
        let o = probe(&server.url(), TOKEN).await;
        assert_eq!(o.verdict, Verdict::Unreachable, "{what}: {o:?}");
        assert_calls(&server, &[ME], TOKEN);
    }
}

#[test]
fn config_errors_name_the_setting() {
    let err = Config::parse("providers:\n  okta:\n    kind: okta\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("providers.okta") && err.contains("url is required"),
        "{err}"
    );
    let err = Config::parse(
        "providers:\n  okta:\n    kind: okta\n    url: https://acme.okta.com/api/v1\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("without /api/v1"), "{err}");
    let err = Config::parse(
        "providers:\n  okta:\n    kind: okta\n    url: https://acme.okta.com\ntokens:\n  - name: t\n    provider: okta\n    secret: {env: T}\n    email: a@b.c\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("email does not apply to a okta provider"),
        "{err}"
    );
}
