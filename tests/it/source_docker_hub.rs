//! The `docker_hub` source against a mock answering as Docker Hub's API reference documents
//! (docs.docker.com/reference/api/hub): `POST /v2/auth/token` (`{"identifier","secret"}` ->
//! `{"access_token"}`, 401 with `{"detail","message"}`), "List personal access tokens"
//! (`GET /v2/access-tokens`: `count`, `next` as a full URL, `previous`, `active_count`,
//! `results` with the value redacted) and the organization's "List access tokens"
//! (`GET /v2/orgs/{name}/access-tokens`: `next`, `previous`, `total`, `results`), both paged
//! with `page`/`page_size`; `X-RateLimit-*` headers and 429 with `Retry-After`. Every request
//! is checked: the sign-in POST and GETs on the two lists only, the bearer on every GET, the
//! credential in the sign-in body only and never in a URL.

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

pub(crate) const CREDENTIAL: &str = "dckr_pat_LISTCANARYCANARYCANARY";
const BEARER: &str = "eyJhbGciOiJSUzI1NiJ9.BEARERCANARY.sig";
const ORG: &str = "acme";

fn query(r: &support::Recorded, key: &str) -> Option<String> {
    r.uri.query().and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
    })
}

fn pat(i: usize, active: bool, expires: Option<&str>) -> Value {
    json!({"uuid": format!("b30bbf97-506c-4ecd-aabc-{i:012}"), "client_id": "HUB",
           "creator_ip": "192.0.2.10", "creator_ua": "docker/27.0",
           "created_at": "2025-07-20T12:00:00.000000Z", "last_used": "2025-11-10T08:30:00.000000Z",
           "generated_by": "manual", "is_active": active, "token": "***",
           "token_label": format!("p-{i}"), "scopes": ["repo:read"], "expires_at": expires})
}

fn oat(i: usize, expires: Option<&str>) -> Value {
    json!({"id": format!("a7a5ef25-8889-43a0-8cc7-{i:012}"), "label": format!("o-{i}"),
           "created_by": "johndoe", "created_at": "2025-05-20T00:54:18Z",
           "last_used_at": null, "is_active": true, "expires_at": expires})
}

/// A page of `items` as Docker Hub answers it: `next` is the full URL of the next page.
fn page_of(items: &[Value], r: &support::Recorded, personal: bool) -> Answer {
    let page: usize = query(r, "page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let size: usize = query(r, "page_size")
        .and_then(|p| p.parse().ok())
        .unwrap_or(10);
    let slice: Vec<Value> = items
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .cloned()
        .collect();
    let host = r.header("host").unwrap_or("127.0.0.1");
    let link = |p: usize| format!("http://{host}{}?page={p}&page_size={size}", r.path());
    let next = (page * size < items.len()).then(|| link(page + 1));
    let previous = (page > 1).then(|| link(page - 1));
    let body = if personal {
        json!({"count": items.len(), "next": next, "previous": previous,
               "active_count": items.len(), "results": slice})
    } else {
        json!({"next": next, "previous": previous, "total": items.len(), "results": slice})
    };
    Answer::json(200, body)
        .header("x-ratelimit-limit", "180")
        .header("x-ratelimit-remaining", "179")
        .header("x-ratelimit-reset", "1893456000")
}

fn error(status: u16, detail: &str) -> Answer {
    Answer::json(status, json!({"detail": detail, "message": detail}))
}

/// The account has 230 personal access tokens (three pages of 100): 228 active, one
/// inactive, one expired; the organization two active ones. Modes: 0 healthy, 1 a 500 on
/// page 2 of the personal list, 2 the sign-in refused (401), 3 a 403 on the organization's
/// list, 4 a 429, 5 nothing listed, 6 garbage on the organization's list, 7 `p-0` gone, 8 a
/// next link to another server.
pub(crate) async fn mock(mode: Arc<AtomicU8>, pat_expiry: String) -> MockServer {
    MockServer::start(move |r| {
        let mode = mode.load(Ordering::SeqCst);
        if r.path() == "/v2/auth/token" {
            let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            if mode == 2 || body["identifier"] != "deploybot" || body["secret"] != CREDENTIAL {
                return error(401, "Incorrect authentication credentials");
            }
            return Answer::json(200, json!({"access_token": BEARER}));
        }
        if r.header("authorization") != Some(&format!("Bearer {BEARER}")) {
            return error(401, "Authentication credentials were not provided.");
        }
        if mode == 4 {
            return error(429, "Too Many Requests")
                .header("retry-after", "60")
                .header("x-ratelimit-limit", "180")
                .header("x-ratelimit-remaining", "0");
        }
        let page = query(r, "page").unwrap_or_default();
        match r.path() {
            "/v2/access-tokens" => {
                if mode == 1 && page == "2" {
                    return Answer::text(500, "text/html", "<html>Server Error</html>");
                }
                if mode == 8 && page == "2" {
                    return Answer::json(
                        200,
                        json!({"count": 1, "next": "http://elsewhere.example/v2/access-tokens?page=3",
                               "previous": null, "active_count": 1, "results": [pat(999, true, None)]}),
                    );
                }
                let mut items: Vec<Value> = Vec::new();
                if mode != 5 {
                    let first = if mode == 7 { 1 } else { 0 };
                    for i in first..228 {
                        items.push(pat(i, true, Some(&pat_expiry)));
                    }
                    items.push(pat(500, false, Some("2099-01-01T00:00:00Z")));
                    items.push(pat(501, true, Some("2020-01-01T00:00:00Z")));
                }
                page_of(&items, r, true)
            }
            p if p == format!("/v2/orgs/{ORG}/access-tokens") => {
                match mode {
                    3 => return error(403, "You do not have permission to perform this action."),
                    6 => return Answer::text(200, "text/html", "<html>Docker Hub</html>"),
                    _ => {}
                }
                let items = if mode == 5 {
                    vec![]
                } else {
                    vec![oat(1, Some("2099-03-01T00:00:00Z")), oat(2, None)]
                };
                page_of(&items, r, false)
            }
            _ => error(404, "Not Found"),
        }
    })
    .await
}

fn yaml(url: &str, files: &SecretFiles) -> String {
    format!(
        "global:\n  probe_timeout: 5s\nproviders:\n  listed: {{kind: static}}\n\
         sources:\n  - {{name: hub, kind: docker_hub, url: '{url}', provider: listed, username: deploybot, credential: {}, personal: true, org: {ORG}}}\n",
        files.put("cred", CREDENTIAL)
    )
}

pub(crate) fn assert_only_documented_calls(server: &MockServer) {
    let org = format!("/v2/orgs/{ORG}/access-tokens");
    for r in server.requests() {
        let p = r.path();
        let sign_in = r.method == "POST" && p == "/v2/auth/token";
        assert!(
            sign_in || (r.method == "GET" && (p == "/v2/access-tokens" || p == org)),
            "a call outside the documented ones: {} {p}",
            r.method
        );
        assert!(
            !r.uri.to_string().contains("CANARY"),
            "a credential in a URL"
        );
        if sign_in {
            assert_eq!(r.header("authorization"), None);
        } else {
            assert_eq!(query(&r, "page_size").as_deref(), Some("100"));
            assert_eq!(
                r.header("authorization"),
                Some(format!("Bearer {BEARER}").as_str()),
                "the lists are read with the minted bearer, never the credential"
            );
        }
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
        230,
        "228 personal and 2 organization tokens"
    );
    assert_eq!(listing.skipped.get("inactive"), Some(&2));
    let o1 = &listing.tokens[0];
    assert_eq!(
        o1.name,
        format!("{ORG}/o-1-a7a5ef25-8889-43a0-8cc7-{:012}", 1)
    );
    assert_eq!(o1.owner.as_deref(), Some("johndoe"));
    assert_eq!(o1.last_used_at, None);
    let p7 = listing
        .tokens
        .iter()
        .find(|d| d.name == format!("deploybot/p-7-b30bbf97-506c-4ecd-aabc-{:012}", 7))
        .unwrap();
    assert_eq!(p7.owner.as_deref(), Some("deploybot"));
    assert_eq!(p7.state.as_deref(), Some("active"));
    assert_eq!(p7.issued_at.as_deref(), Some("2025-07-20T12:00:00.000000Z"));
    assert_eq!(
        p7.last_used_at.as_deref(),
        Some("2025-11-10T08:30:00.000000Z")
    );
    let pages: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.path() == "/v2/access-tokens")
        .filter_map(|r| query(r, "page"))
        .collect();
    assert_eq!(pages, ["1", "2", "3"]);
    let sign_ins = server
        .requests()
        .iter()
        .filter(|r| r.path() == "/v2/auth/token")
        .count();
    assert_eq!(sign_ins, 1, "one sign-in for the whole listing");
    assert_only_documented_calls(&server);

    // The listed dates are the token's facts through the static entry; no expires_at is a
    // token that never expires.
    let listed = Listed::new(&y, "hub", listing, "listed");
    let o1 = listed
        .composed
        .token(&format!("hub/{ORG}/o-1-a7a5ef25-8889-43a0-8cc7-{:012}", 1))
        .unwrap();
    let run = listed.probe(o1).await;
    assert_eq!(run.outcome.verdict, Verdict::Valid, "{:?}", run.outcome);
    assert_eq!(
        run.outcome.facts.expiry.timestamp().unwrap().to_string(),
        "2099-03-01T00:00:00Z"
    );
    let o2 = listed
        .composed
        .token(&format!("hub/{ORG}/o-2-a7a5ef25-8889-43a0-8cc7-{:012}", 2))
        .unwrap();
    let run = listed.probe(o2).await;
    assert_eq!(run.outcome.verdict, Verdict::Valid);
    assert!(run.outcome.facts.expiry.timestamp().is_none());
}

#[tokio::test]
async fn a_failure_on_any_call_fails_the_listing_and_an_empty_account_lists_nothing() {
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
        (8, FailReason::BadResponse),
    ];
    for (m, e) in each_failure(&mode, &y, &cases).await {
        let wanted = (m == 4).then(|| Duration::from_secs(60));
        assert_eq!(e.retry_after, wanted, "mode {m}");
    }
    assert!(
        !server
            .requests()
            .iter()
            .any(|r| r.uri.host() == Some("elsewhere.example")
                || r.header("host") == Some("elsewhere.example")),
        "a next link to another server was followed"
    );
    assert_lists_nothing(&mode, 5, &y).await;
    assert_only_documented_calls(&server);
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
             sources:\n  - {{name: hub, kind: docker_hub, url: '{}', provider: listed, username: deploybot, credential: {{file: {}}}, personal: true, refresh: 1s, include: ['deploybot/p-0-*', 'deploybot/p-1-*']}}\n",
            server.url(),
            cred.display()
        ),
    );
    let d = Daemon::start(&[
        "--config.file",
        config.to_str().unwrap(),
        "--collector.last_used",
    ]);
    let p0 = format!("hub/deploybot/p-0-b30bbf97-506c-4ecd-aabc-{:012}", 0);
    let p1 = format!("hub/deploybot/p-1-b30bbf97-506c-4ecd-aabc-{:012}", 1);
    wait_until("the first listing and probes", &|| {
        d.metric_lines(&format!("api_token_state{{token=\"{p0}\""))
            .iter()
            .any(|l| l.contains("state=\"valid\"} 1"))
    });
    assert_eq!(d.token_names(), [p0.clone(), p1.clone()]);
    let info = d.metric_lines(&format!("api_token_info{{token=\"{p0}\""));
    assert!(info[0].contains("source=\"hub\""), "{info:?}");
    assert!(info[0].contains("owner=\"deploybot\""), "{info:?}");
    let v: Value = serde_json::from_str(&d.get("/api/v1/tokens").1).unwrap();
    assert_eq!(v["tokens"][0]["severity"], "warning", "{v}");
    assert_eq!(v["tokens"][0]["source"], "hub");
    assert_eq!(
        v["tokens"][0]["last_used_at"], "2025-11-10T08:30:00Z",
        "{v}"
    );
    let used = d.metric_lines(&format!(
        "api_token_last_used_timestamp_seconds{{token=\"{p0}\""
    ));
    assert!(
        used.len() == 1 && used[0].ends_with(" 1762763400.0"),
        "{used:?}"
    );
    let page = d.get("/?q=p-0").1;
    assert!(page.contains("last used 2025-11-10 08:30:00 UTC"), "{page}");
    // The sign-in refused: the source is down, the tokens stay, none turns invalid.
    mode.store(2, Ordering::SeqCst);
    wait_until("an unauthorized listing", &|| {
        d.metric_lines("api_token_source_failures_total{source=\"hub\",kind=\"docker_hub\",reason=\"unauthorized\"}")
            .iter()
            .any(|l| !l.ends_with(" 0"))
    });
    assert_eq!(
        d.metric_lines("api_token_source_up{"),
        ["api_token_source_up{source=\"hub\",kind=\"docker_hub\"} 0"]
    );
    assert_eq!(d.token_names(), [p0.clone(), p1.clone()]);
    assert!(
        d.metric_lines(&format!("api_token_state{{token=\"{p0}\""))
            .iter()
            .any(|l| l.contains("state=\"valid\"} 1"))
    );
    // A complete listing without p-0: it leaves.
    mode.store(7, Ordering::SeqCst);
    wait_until("p-0 leaving", &|| d.token_names() == [p1.clone()]);
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
    assert_only_documented_calls(&server);
}

#[test]
fn docker_hub_source_settings_are_checked_where_they_are_written() {
    let err = |y: &str| Config::parse(y).unwrap_err().to_string();
    let base = "providers:\n  listed: {kind: static}\n  hub: {kind: docker_hub}\nsources:\n";
    let e = err(&format!(
        "{base}  - {{name: a, kind: docker_hub, provider: hub, username: u, credential: {{env: X}}, personal: true}}\n"
    ));
    assert!(
        e.contains("sources[0].provider: provider \"hub\" is of kind docker_hub, not static"),
        "{e}"
    );
    let e = err(&format!(
        "{base}  - {{name: a, kind: docker_hub, provider: listed, username: u, credential: {{env: X}}}}\n"
    ));
    assert!(e.contains("personal: true, org: NAME, or both"), "{e}");
    let e = err(&format!(
        "{base}  - {{name: a, kind: docker_hub, provider: listed, credential: {{env: X}}, personal: true}}\n"
    ));
    assert!(
        e.contains("sources[0].username: a docker_hub source needs username"),
        "{e}"
    );
    let e = err(&format!(
        "{base}  - {{name: a, kind: docker_hub, provider: listed, username: u, credential: {{env: X}}, org: '../x'}}\n"
    ));
    assert!(
        e.contains("sources[0].org: a Docker Hub organization's name"),
        "{e}"
    );
    assert!(e.contains("line 5"), "{e}");
    let e = err(&format!(
        "{base}  - {{name: a, kind: docker_hub, provider: listed, username: u, personal: true}}\n"
    ));
    assert!(
        e.contains("sources[0].credential: a docker_hub source needs credential"),
        "{e}"
    );
    let e = err(&format!(
        "{base}  - {{name: a, kind: docker_hub, provider: listed, username: u, credential: {{env: X}}, personal: true, url: 'https://u:p@hub.example.com'}}\n"
    ));
    assert!(e.contains("sources[0].url"), "{e}");
    let e = err(&format!(
        "{base}  - {{name: a, kind: cloudflare, provider: listed, credential: {{env: X}}, user: true, username: u}}\n"
    ));
    assert!(
        e.contains("sources[0].username: username does not apply to a cloudflare source"),
        "{e}"
    );
    let ok = Config::parse(&format!(
        "{base}  - {{name: a, kind: docker_hub, provider: listed, username: u, credential: {{env: X}}, org: acme}}\n"
    ))
    .unwrap();
    let api_token_exporter::config::sources::SourceKind::DockerHub(hub) = &ok.sources[0].kind
    else {
        panic!("not a docker_hub source")
    };
    assert_eq!(hub.url, "https://hub.docker.com");
    assert_eq!(hub.org.as_deref(), Some("acme"));
    assert!(!hub.personal);
}
