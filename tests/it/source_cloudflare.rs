//! The `cloudflare` source against a mock answering as Cloudflare documents "List Tokens"
//! for users and accounts (developers.cloudflare.com/api/.../user/subresources/tokens and
//! .../accounts/subresources/tokens): the `{success, errors, messages, result,
//! result_info}` envelope, `page`/`per_page` paging with `result_info.total_pages`,
//! statuses `active`/`disabled`/`expired`, error envelopes with codes, a 429 with
//! `Retry-After`. Every request is checked: GET only, on the two documented paths, the
//! credential as a bearer and never in a URL.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use jiff::{Timestamp, ToSpan};
use serde_json::{Value, json};

use crate::support;
use api_token_exporter::config::Config;
use api_token_exporter::model::Verdict;
use api_token_exporter::sources::FailReason;
use support::daemon::{Daemon, wait_until, write};
use support::listing::{Listed, assert_lists_nothing, each_failure, list};
use support::{Answer, MockServer, SecretFiles};

pub(crate) const CREDENTIAL: &str = "cf-LISTCANARYCANARYCANARY";
const ACCOUNT: &str = "023e105f4ecef8ad9ca31a8372d0c353";

fn token(id: usize, name: &str, status: &str, expires: Option<&str>) -> Value {
    let mut t = json!({"id": format!("{id:032x}"), "name": name, "status": status,
        "issued_on": "2025-01-02T03:04:05Z", "modified_on": "2025-01-02T03:04:05Z",
        "not_before": "2025-01-02T03:04:05Z", "last_used_on": "2025-06-01T00:00:00Z",
        "policies": [{"id": "f267e341f3dd4697bd3b9f71dd96247f", "effect": "allow",
                      "resources": {"com.cloudflare.api.account.*": "*"},
                      "permission_groups": [{"id": "c8fed203ed3043cba015a93ad1616f1f", "name": "Zone Read"}]}]});
    if let Some(e) = expires {
        t["expires_on"] = json!(e);
    }
    t
}

fn query(r: &support::Recorded, key: &str) -> Option<String> {
    r.uri.query().and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
    })
}

/// A page of `items` as Cloudflare answers it, `per_page` as the request asks.
fn page_of(items: &[Value], r: &support::Recorded) -> Answer {
    let page: usize = query(r, "page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let per_page: usize = query(r, "per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(20);
    let slice: Vec<Value> = items
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect();
    Answer::json(
        200,
        json!({"success": true, "errors": [], "messages": [], "result": slice,
               "result_info": {"page": page, "per_page": per_page, "count": slice.len(),
                               "total_count": items.len(),
                               "total_pages": items.len().div_ceil(per_page)}}),
    )
}

fn failure(status: u16, code: u32, message: &str) -> Answer {
    Answer::json(
        status,
        json!({"success": false, "errors": [{"code": code, "message": message}],
               "messages": [], "result": null}),
    )
}

/// The user has 120 tokens (three pages of 50): 118 active, one disabled, one expired; the
/// account has two active ones. Modes: 0 healthy, 1 a 500 on page 2 of the user's list,
/// 2 a 401, 3 a 403, 4 a 429, 5 nothing listed, 6 garbage on the account's list, 7 the
/// user's token `u-0` gone (a complete listing without it).
pub(crate) async fn mock(mode: Arc<AtomicU8>, user_expiry: String) -> MockServer {
    MockServer::start(move |r| {
        let mode = mode.load(Ordering::SeqCst);
        if r.header("authorization") != Some(&format!("Bearer {CREDENTIAL}")) {
            return failure(400, 6003, "Invalid request headers");
        }
        match mode {
            2 => return failure(401, 1000, "Invalid API Token"),
            3 => return failure(403, 9109, "Unauthorized to access requested resource"),
            4 => {
                return failure(
                    429,
                    971,
                    "Please wait and consider throttling your request speed",
                )
                .header("retry-after", "60");
            }
            _ => {}
        }
        let page = query(r, "page").unwrap_or_default();
        match r.path() {
            "/client/v4/user/tokens" => {
                if mode == 1 && page == "2" {
                    return failure(500, 10000, "Internal error");
                }
                let mut items: Vec<Value> = Vec::new();
                if mode != 5 {
                    let first = if mode == 7 { 1 } else { 0 };
                    for i in first..118 {
                        items.push(token(i, &format!("u-{i}"), "active", Some(&user_expiry)));
                    }
                    items.push(token(500, "off", "disabled", Some("2099-01-01T00:00:00Z")));
                    items.push(token(501, "old", "expired", Some("2020-01-01T00:00:00Z")));
                }
                page_of(&items, r)
            }
            p if p == format!("/client/v4/accounts/{ACCOUNT}/tokens") => {
                if mode == 6 {
                    return Answer::text(200, "text/html", "<html>Just a moment...</html>");
                }
                let items: Vec<Value> = if mode == 5 {
                    vec![]
                } else {
                    vec![
                        token(900, "deploy", "active", Some("2099-03-01T00:00:00Z")),
                        token(901, "forever", "active", None),
                    ]
                };
                page_of(&items, r)
            }
            _ => failure(
                404,
                7003,
                "Could not route to /client/v4/..., perhaps your object identifier is invalid?",
            ),
        }
    })
    .await
}

fn yaml(url: &str, files: &SecretFiles) -> String {
    format!(
        "global:\n  probe_timeout: 5s\nproviders:\n  listed: {{kind: static}}\n\
         sources:\n  - name: cf\n    kind: cloudflare\n    url: {url}\n    provider: listed\n    credential: {}\n    user: true\n    account_id: {ACCOUNT}\n",
        files.put("cred", CREDENTIAL)
    )
}

pub(crate) fn assert_only_documented_reads(server: &MockServer) {
    let account = format!("/client/v4/accounts/{ACCOUNT}/tokens");
    for r in server.requests() {
        let p = r.path();
        assert!(
            r.method == "GET" && (p == "/client/v4/user/tokens" || p == account),
            "a call outside the documented reads: {} {p}",
            r.method
        );
        assert!(
            !r.uri.to_string().contains("CANARY"),
            "a credential in a URL"
        );
        assert_eq!(query(&r, "per_page").as_deref(), Some("50"));
    }
}

#[tokio::test]
async fn every_page_of_both_lists_enters_the_active_tokens_with_their_dates() {
    let mode = Arc::new(AtomicU8::new(0));
    let server = mock(mode.clone(), "2099-01-01T00:00:00Z".into()).await;
    let files = SecretFiles::new();
    let y = yaml(&server.url(), &files);
    let listing = list(&y).await.unwrap();
    assert_eq!(
        listing.tokens.len(),
        120,
        "118 user tokens and 2 account tokens"
    );
    assert_eq!(listing.skipped.get("inactive"), Some(&2));
    let names: Vec<&str> = listing.tokens.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names[0], format!("account/deploy-{:032x}", 900));
    assert_eq!(names[1], format!("account/forever-{:032x}", 901));
    assert!(names.contains(&format!("user/u-117-{:032x}", 117).as_str()));
    let pages: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.path() == "/client/v4/user/tokens")
        .filter_map(|r| query(r, "page"))
        .collect();
    assert_eq!(pages, ["1", "2", "3"]);
    assert_only_documented_reads(&server);

    // The listed dates are the token's facts, through the static entry; no expires_on is
    // a token that never expires.
    let listed = Listed::new(&y, "cf", listing, "listed");
    let deploy = listed
        .composed
        .token(&format!("cf/account/deploy-{:032x}", 900))
        .unwrap();
    let run = listed.probe(deploy).await;
    assert_eq!(run.outcome.verdict, Verdict::Valid, "{:?}", run.outcome);
    assert_eq!(
        run.outcome.facts.expiry.timestamp().unwrap().to_string(),
        "2099-03-01T00:00:00Z"
    );
    let forever = listed
        .composed
        .token(&format!("cf/account/forever-{:032x}", 901))
        .unwrap();
    let run = listed.probe(forever).await;
    assert_eq!(run.outcome.verdict, Verdict::Valid);
    assert!(run.outcome.facts.expiry.timestamp().is_none());
}

#[tokio::test]
async fn a_failure_on_any_page_fails_the_listing_and_an_empty_account_lists_nothing() {
    let mode = Arc::new(AtomicU8::new(0));
    let server = mock(mode.clone(), "2099-01-01T00:00:00Z".into()).await;
    let files = SecretFiles::new();
    let y = yaml(&server.url(), &files);
    let cases = [
        (1, FailReason::Unreachable),
        (2, FailReason::Unauthorized),
        (3, FailReason::Forbidden),
        (4, FailReason::RateLimited),
        (6, FailReason::BadResponse),
    ];
    for (m, e) in each_failure(&mode, &y, &cases).await {
        let wanted = (m == 4).then(|| Duration::from_secs(60));
        assert_eq!(e.retry_after, wanted, "mode {m}");
    }
    assert_lists_nothing(&mode, 5, &y).await;
    assert_only_documented_reads(&server);
}

#[test]
fn the_daemon_shows_listed_tokens_keeps_them_through_failures_and_drops_what_is_gone() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mode = Arc::new(AtomicU8::new(0));
    // Five days left: inside the default warning window.
    let soon = (Timestamp::now() + 120.hours()).to_string();
    let server = rt.block_on(mock(mode.clone(), soon));
    let dir = tempfile::tempdir().unwrap();
    let cred = write(dir.path(), "cred", CREDENTIAL);
    let config = write(
        dir.path(),
        "config.yml",
        &format!(
            "providers:\n  listed: {{kind: static}}\ntokens: []\n\
             sources:\n  - {{name: cf, kind: cloudflare, url: '{}', provider: listed, credential: {{file: {}}}, user: true, refresh: 1s, include: ['user/u-0-*', 'user/u-1-*'], policies: {{max_unused: 30d}}}}\n",
            server.url(),
            cred.display()
        ),
    );
    let d = Daemon::start(&[
        "--config.file",
        config.to_str().unwrap(),
        "--collector.last_used",
    ]);
    let u0 = format!("cf/user/u-0-{:032x}", 0);
    let u1 = format!("cf/user/u-1-{:032x}", 1);
    wait_until("the first listing and probes", &|| {
        d.metric_lines(&format!("api_token_state{{token=\"{u0}\""))
            .iter()
            .any(|l| l.contains("state=\"valid\"} 1"))
    });
    assert_eq!(d.token_names(), [u0.clone(), u1.clone()]);
    let info = d.metric_lines(&format!("api_token_info{{token=\"{u0}\""));
    assert!(info[0].contains("source=\"cf\""), "{info:?}");
    let v: Value = serde_json::from_str(&d.get("/api/v1/tokens").1).unwrap();
    assert_eq!(v["tokens"][0]["severity"], "warning", "{v}");
    assert_eq!(v["tokens"][0]["source"], "cf");
    // The last use Cloudflare lists (`last_used_on`) is the token's, as a probed token's is:
    // in the JSON, the metric and the max_unused policy (a year and more unused).
    assert_eq!(
        v["tokens"][0]["last_used_at"], "2025-06-01T00:00:00Z",
        "{v}"
    );
    let used = d.metric_lines(&format!(
        "api_token_last_used_timestamp_seconds{{token=\"{u0}\""
    ));
    assert!(
        used.len() == 1 && used[0].ends_with(" 1748736000.0"),
        "{used:?}"
    );
    let unused = d.metric_lines(&format!("api_token_policy_violation{{token=\"{u0}\""));
    assert!(
        unused
            .iter()
            .any(|l| l.contains("policy=\"max_unused\"") && l.ends_with(" 1")),
        "{unused:?}"
    );
    // A 401: the source is down, the tokens stay, none turns invalid.
    mode.store(2, Ordering::SeqCst);
    wait_until("an unauthorized listing", &|| {
        d.metric_lines("api_token_source_failures_total{source=\"cf\",kind=\"cloudflare\",reason=\"unauthorized\"}")
            .iter()
            .any(|l| !l.ends_with(" 0"))
    });
    assert_eq!(
        d.metric_lines("api_token_source_up{"),
        ["api_token_source_up{source=\"cf\",kind=\"cloudflare\"} 0"]
    );
    assert_eq!(d.token_names(), [u0.clone(), u1.clone()]);
    // A complete listing without u-0: it leaves.
    mode.store(7, Ordering::SeqCst);
    wait_until("u-0 leaving", &|| d.token_names() == [u1.clone()]);
    let shown = [
        d.get("/metrics").1,
        d.get("/api/v1/tokens").1,
        d.get("/").1,
        d.logs(),
    ];
    d.stop();
    for s in shown {
        assert!(!s.contains("CANARY"), "a credential shown");
    }
    assert_only_documented_reads(&server);
}

#[test]
fn cloudflare_source_settings_are_checked_where_they_are_written() {
    let err = |y: &str| Config::parse(y).unwrap_err().to_string();
    let base = "providers:\n  listed: {kind: static}\n  cf: {kind: cloudflare}\nsources:\n";
    let e = err(&format!(
        "{base}  - {{name: a, kind: cloudflare, provider: cf, credential: {{env: X}}, user: true}}\n"
    ));
    assert!(
        e.contains("sources[0].provider: provider \"cf\" is of kind cloudflare, not static"),
        "{e}"
    );
    let e = err(&format!(
        "{base}  - {{name: a, kind: cloudflare, provider: listed, credential: {{env: X}}}}\n"
    ));
    assert!(e.contains("user: true, account_id: ID, or both"), "{e}");
    let e = err(&format!(
        "{base}  - {{name: a, kind: cloudflare, provider: listed, credential: {{env: X}}, account_id: '../x', url: 'https://u:p@api.example.com'}}\n"
    ));
    assert!(
        e.contains("sources[0].account_id: a Cloudflare account identifier"),
        "{e}"
    );
    assert!(e.contains("line 5"), "{e}");
    let e = err(&format!(
        "{base}  - {{name: a, kind: cloudflare, provider: listed, user: true}}\n"
    ));
    assert!(
        e.contains("sources[0].credential: a cloudflare source needs credential"),
        "{e}"
    );
    let e = err(&format!(
        "{base}  - {{name: a, kind: cloudflare, provider: listed, credential: {{env: X}}, user: true, url: 'https://u:p@api.example.com'}}\n"
    ));
    assert!(e.contains("sources[0].url"), "{e}");
    let e = err(&format!(
        "{base}  - {{name: a, kind: directory, path: /x, user: true}}\n"
    ));
    assert!(
        e.contains("sources[0].user: user does not apply to a directory source"),
        "{e}"
    );
    let ok = Config::parse(&format!(
        "{base}  - {{name: a, kind: cloudflare, provider: listed, credential: {{env: X}}, user: true}}\n"
    ))
    .unwrap();
    let api_token_exporter::config::sources::SourceKind::Cloudflare(cf) = &ok.sources[0].kind
    else {
        panic!("not a cloudflare source")
    };
    assert_eq!(cf.url, "https://api.cloudflare.com");
}
