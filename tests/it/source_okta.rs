//! The `okta` source against a mock answering as Okta documents "List all API token
//! metadata" (developer.okta.com management API, ApiToken): a JSON array per page, `limit`
//! up to 200, `Link: <...?after=...>; rel="next"` to the next page, error objects with
//! `errorCode` (E0000011 401, E0000006 403, E0000047 429 with `X-Rate-Limit-*` and no
//! `Retry-After`). Every request is checked: GET only on the list, the credential as
//! `SSWS` and never in a URL.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::support;
use api_token_exporter::config::Config;
use api_token_exporter::model::ExpiryModel;
use api_token_exporter::sources::FailReason;
use support::listing::{Listed, assert_lists_nothing, each_failure, list};
use support::{Answer, MockServer, SecretFiles};

pub(crate) const CREDENTIAL: &str = "00LISTCANARYCANARYCANARY";

fn token(i: usize) -> Value {
    json!({"name": format!("t{i}"), "userId": format!("00u{:017}", i % 3),
           "tokenWindow": "P30D", "network": {"connection": "ANYWHERE"},
           "id": format!("00T{i:017}"), "clientName": "Okta API",
           "expiresAt": "2099-12-11T20:38:10.000Z", "created": "2021-11-09T20:38:10.000Z",
           "lastUpdated": "2021-11-11T20:38:10.000Z",
           "_links": {"self": {"hints": {"allow": ["GET", "DELETE"]}},
                      "user": {"hints": {"allow": ["GET"]}}}})
}

fn error(status: u16, code: &str, summary: &str) -> Answer {
    Answer::json(
        status,
        json!({"errorCode": code, "errorSummary": summary, "errorLink": code,
               "errorId": "oaeXyz123", "errorCauses": []}),
    )
}

fn query(r: &support::Recorded, key: &str) -> Option<String> {
    r.uri.query().and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
    })
}

/// 450 tokens, 200 a page, the cursor `after` the last id of the page. Modes: 0 healthy,
/// 1 a 500 on page 2, 2 a 401, 3 a 403, 4 a 429, 5 no tokens, 6 garbage on page 2, 7 a next
/// link to another origin.
pub(crate) async fn mock(mode: Arc<AtomicU8>) -> MockServer {
    MockServer::start(move |r| {
        let mode = mode.load(Ordering::SeqCst);
        if r.header("authorization") != Some(&format!("SSWS {CREDENTIAL}")) {
            return error(401, "E0000011", "Invalid token provided");
        }
        match mode {
            2 => return error(401, "E0000011", "Invalid token provided"),
            3 => {
                return error(
                    403,
                    "E0000006",
                    "You do not have permission to perform the requested action",
                );
            }
            4 => {
                let reset = Timestamp::now().as_second() + 30;
                return error(
                    429,
                    "E0000047",
                    "API call exceeded rate limit due to too many requests.",
                )
                .header("x-rate-limit-limit", "600")
                .header("x-rate-limit-remaining", "0")
                .header("x-rate-limit-reset", &reset.to_string());
            }
            _ => {}
        }
        if r.path() != "/api/v1/api-tokens" {
            return error(
                404,
                "E0000022",
                "The endpoint does not support the provided HTTP method",
            );
        }
        let limit: usize = query(r, "limit").and_then(|l| l.parse().ok()).unwrap_or(20);
        let total = if mode == 5 { 0 } else { 450 };
        let start = query(r, "after")
            .and_then(|a| a.trim_start_matches("00T").parse::<usize>().ok())
            .map_or(0, |i| i + 1);
        if start > 0 && mode == 1 {
            return error(500, "E0000009", "Internal Server Error");
        }
        if start > 0 && mode == 6 {
            return Answer::text(200, "text/html", "<html>Okta is down</html>");
        }
        let items: Vec<Value> = (start..total.min(start + limit)).map(token).collect();
        let host = r.header("host").unwrap_or("127.0.0.1").to_string();
        let base = format!("http://{host}/api/v1/api-tokens");
        let mut links = vec![format!("<{base}?limit={limit}>; rel=\"self\"")];
        if start + limit < total {
            let origin = if mode == 7 {
                "http://elsewhere.example/api/v1/api-tokens".to_string()
            } else {
                base
            };
            links.push(format!(
                "<{origin}?after=00T{:017}&limit={limit}>; rel=\"next\"",
                start + limit - 1
            ));
        }
        Answer::json(200, Value::Array(items))
            .header("link", &links.join(", "))
            .header("x-rate-limit-limit", "600")
            .header("x-rate-limit-remaining", "599")
    })
    .await
}

fn yaml(url: &str, files: &SecretFiles) -> String {
    format!(
        "global:\n  probe_timeout: 5s\nproviders:\n  listed: {{kind: static}}\n\
         sources:\n  - {{name: okta, kind: okta, url: '{url}', provider: listed, credential: {}}}\n",
        files.put("cred", CREDENTIAL)
    )
}

pub(crate) fn assert_only_documented_reads(server: &MockServer) {
    for r in server.requests() {
        assert!(
            r.method == "GET" && r.path() == "/api/v1/api-tokens",
            "a call outside the documented read: {} {}",
            r.method,
            r.path()
        );
        assert!(
            !r.uri.to_string().contains("CANARY"),
            "a credential in a URL"
        );
        assert_eq!(query(&r, "limit").as_deref(), Some("200"));
    }
}

#[tokio::test]
async fn every_page_is_followed_and_each_token_enters_with_its_owner_and_dates() {
    let mode = Arc::new(AtomicU8::new(0));
    let server = mock(mode.clone()).await;
    let files = SecretFiles::new();
    let y = yaml(&server.url(), &files);
    let listing = list(&y).await.unwrap();
    assert_eq!(listing.tokens.len(), 450);
    let t7 = listing
        .tokens
        .iter()
        .find(|d| d.name == format!("t7-00T{:017}", 7))
        .unwrap();
    assert_eq!(t7.owner.as_deref(), Some(format!("00u{:017}", 1).as_str()));
    assert_eq!(t7.expires_at.as_deref(), Some("2099-12-11T20:38:10.000Z"));
    assert_eq!(t7.issued_at.as_deref(), Some("2021-11-09T20:38:10.000Z"));
    assert_eq!(server.requests().len(), 3, "three pages of 200");
    // Okta renews expiresAt to the last use plus tokenWindow: the listed token's expiry is
    // sliding with that window, and its last use is the expiry less the window.
    let listed = Listed::new(&y, "okta", listing.clone(), "listed");
    let spec = listed
        .composed
        .token(&format!("okta/t7-00T{:017}", 7))
        .unwrap();
    let run = listed.probe(spec).await;
    let facts = &run.outcome.facts;
    assert_eq!(
        facts.expiry_model,
        ExpiryModel::Sliding {
            window_seconds: 30 * 24 * 3600
        }
    );
    assert_eq!(
        facts.expiry.timestamp().map(|t| t.to_string()).as_deref(),
        Some("2099-12-11T20:38:10Z")
    );
    assert_eq!(
        facts.last_used_at.map(|t| t.to_string()).as_deref(),
        Some("2099-11-11T20:38:10Z")
    );
    assert_only_documented_reads(&server);
    // owners: filters on Okta's userId.
    let y2 = y.replace(
        "credential:",
        &format!("owners: ['00u{:017}'], credential:", 0),
    );
    let kept = list(&y2).await.unwrap();
    assert_eq!(kept.tokens.len(), 150);
    assert_eq!(kept.skipped.get("filtered"), Some(&300));
}

#[tokio::test]
async fn a_failure_on_any_page_fails_the_listing_and_an_empty_org_lists_nothing() {
    let mode = Arc::new(AtomicU8::new(0));
    let server = mock(mode.clone()).await;
    let files = SecretFiles::new();
    let y = yaml(&server.url(), &files);
    let cases = [
        (1, FailReason::Unreachable),
        (2, FailReason::Unauthorized),
        (3, FailReason::Forbidden),
        (4, FailReason::RateLimited),
        (6, FailReason::BadResponse),
        (7, FailReason::BadResponse),
    ];
    for (m, e) in each_failure(&mode, &y, &cases).await {
        if m == 4 {
            // No Retry-After: the wait is until X-Rate-Limit-Reset.
            let wait = e.retry_after.expect("the reset is the wait");
            assert!(
                wait > Duration::from_secs(20) && wait <= Duration::from_secs(30),
                "{wait:?}"
            );
        } else {
            assert_eq!(e.retry_after, None, "mode {m}");
        }
    }
    assert_lists_nothing(&mode, 5, &y).await;
    assert_only_documented_reads(&server);
}

#[test]
fn okta_source_settings_are_checked_where_they_are_written() {
    let err = |y: &str| Config::parse(y).unwrap_err().to_string();
    let base = "providers:\n  listed: {kind: static}\nsources:\n";
    let e = err(&format!(
        "{base}  - {{name: a, kind: okta, provider: listed, credential: {{env: X}}}}\n"
    ));
    assert!(
        e.contains("sources[0].url: an okta source needs url"),
        "{e}"
    );
    assert!(e.contains("line 4"), "{e}");
    let e = err(&format!(
        "{base}  - {{name: a, kind: okta, url: 'https://acme.okta.com/api/v1', provider: listed, credential: {{env: X}}}}\n"
    ));
    assert!(
        e.contains("sources[0].url: give the org's address without /api/v1"),
        "{e}"
    );
    let e = err(&format!(
        "{base}  - {{name: a, kind: okta, url: 'https://acme.okta.com', credential: {{env: X}}}}\n"
    ));
    assert!(
        e.contains("sources[0].provider: an okta source needs provider"),
        "{e}"
    );
    let e = err(&format!(
        "{base}  - {{name: a, kind: okta, url: 'https://acme.okta.com', provider: listed}}\n"
    ));
    assert!(
        e.contains("sources[0].credential: an okta source needs credential"),
        "{e}"
    );
}
