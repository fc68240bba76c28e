//! `/api/v1/tokens` and the status page at a few thousand tokens, through the router the
//! daemon serves: walking the pages by their cursors visits every matching token exactly
//! once, most urgent first, the same order as the whole answer; filters combine.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use api_token_exporter::config::Config;
use api_token_exporter::metrics::{ExporterStatus, Metrics};
use api_token_exporter::model::{Expiry, ProbeOutcome, Reason, TokenFacts, Verdict};
use api_token_exporter::provider::ProbeRun;
use api_token_exporter::server::{AppState, router};
use api_token_exporter::store::Store;
use api_token_exporter::view::{self, TokenView};
use axum::Router;
use tower::ServiceExt;

use crate::support;

const N: usize = 3_000;

/// `support::large_inventory(N)` after one probe of each token but every ninth: valid with
/// expiries from hours to a year away (many equal, so names break ties), invalid, rate
/// limited, unreachable.
fn store() -> Arc<Store> {
    let config = Config::parse(&support::large_inventory(N)).unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(Store::new());
    store.reconcile(&config);
    let now = jiff::Timestamp::now();
    for (i, spec) in config.tokens.iter().enumerate() {
        let outcome = match i % 9 {
            0..=4 => ProbeOutcome::valid(TokenFacts {
                expiry: Expiry::At(now + jiff::SignedDuration::from_hours(6 * (i % 13) as i64 + 1)),
                ..TokenFacts::default()
            }),
            5 => ProbeOutcome::new(Verdict::Invalid, Reason::Revoked, "revoked"),
            6 => ProbeOutcome::new(Verdict::RateLimited, Reason::RateLimited, "429"),
            7 => ProbeOutcome::new(Verdict::Unreachable, Reason::Timeout, "timeout"),
            _ => continue,
        };
        let run = ProbeRun {
            outcome,
            fingerprint: Some(format!("sha256:{i:012x}")),
            duration: Duration::from_millis(2),
        };
        store.record(&spec.name, run, now);
    }
    store
}

fn app(store: Arc<Store>) -> Router {
    let metrics = Metrics::new(store.clone(), Arc::new(ExporterStatus::new()));
    router(AppState {
        store,
        metrics,
        ready: Arc::new(AtomicBool::new(true)),
        reload: tokio::sync::mpsc::channel(1).0,
        telemetry_path: "/metrics".into(),
    })
}

async fn get(app: &Router, path: &str) -> (u16, String) {
    let req = axum::http::Request::get(path)
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Every page of `/api/v1/tokens?<filters>&limit=<limit>`, by cursor: the names in order.
async fn walk_api(app: &Router, filters: &str, limit: usize) -> Vec<String> {
    let mut names = Vec::new();
    let mut after = String::new();
    let mut pages = 0;
    loop {
        let path = format!("/api/v1/tokens?{filters}&limit={limit}{after}");
        let (status, body) = get(app, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        let tokens = doc["tokens"].as_array().unwrap();
        assert!(tokens.len() <= limit);
        names.extend(
            tokens
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_owned()),
        );
        pages += 1;
        assert!(pages <= N, "the cursor does not advance");
        match doc["next"].as_str() {
            Some(next) => {
                assert_eq!(tokens.len(), limit, "only a full page has a next one");
                after = format!("&after={}", enc(next));
            }
            None => {
                assert_eq!(doc["total"].as_u64().unwrap() as usize, names.len());
                return names;
            }
        }
    }
}

fn once_each(names: &[String]) -> BTreeSet<&str> {
    let set: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(set.len(), names.len(), "a token came twice");
    set
}

#[tokio::test]
async fn paging_by_cursor_visits_every_token_once_most_urgent_first() {
    let store = store();
    let views = view::all(&store.read(), jiff::Timestamp::now());
    let order: Vec<String> = views.iter().map(|v| v.name.clone()).collect();
    let app = app(store);

    // The whole answer (no limit) is the reference order: the views' own urgency.
    let (_, whole) = get(&app, "/api/v1/tokens").await;
    let whole: serde_json::Value = serde_json::from_str(&whole).unwrap();
    let whole: Vec<&str> = whole["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(whole, order);
    assert_eq!(order.len(), N);

    for limit in [1000, 333, 100] {
        let paged = walk_api(&app, "", limit).await;
        assert_eq!(once_each(&paged).len(), N, "limit {limit}");
        assert_eq!(
            paged, order,
            "limit {limit}: pages in the whole answer's order"
        );
    }

    // Filters: two teams (OR), AND one state, AND a part of the name in another case.
    let want: Vec<String> = views
        .iter()
        .filter(|v: &&TokenView| {
            ["team-7", "team-8"].contains(&v.labels["team"].as_str())
                && v.state == "invalid"
                && v.name.contains("token-001")
        })
        .map(|v| v.name.clone())
        .collect();
    assert!(want.len() > 3, "the filter picks a few: {want:?}");
    let paged = walk_api(&app, "team=team-7&team=team-8&state=invalid&q=OKEN-001", 2).await;
    assert_eq!(paged, want);

    let owner = views[17].labels["owner"].clone();
    let want: Vec<String> = views
        .iter()
        .filter(|v| v.labels["owner"] == owner && v.provider == "idp")
        .map(|v| v.name.clone())
        .collect();
    let paged = walk_api(&app, &format!("owner={}&provider=idp", enc(&owner)), 3).await;
    assert_eq!(paged, want);
    // No token of a configured inventory has a source.
    assert!(walk_api(&app, "source=config", 10).await.is_empty());
}

#[tokio::test]
async fn the_status_page_pages_through_every_token_once_by_its_links() {
    let store = store();
    let order: Vec<String> = view::all(&store.read(), jiff::Timestamp::now())
        .into_iter()
        .map(|v| v.name)
        .collect();
    let app = app(store);
    let mut rows: Vec<String> = Vec::new();
    let mut path = "/".to_string();
    loop {
        let (status, page) = get(&app, &path).await;
        assert_eq!(status, 200);
        let here: Vec<String> = page
            .split("data-token=\"")
            .skip(1)
            .map(|r| r.split('"').next().unwrap().to_owned())
            .collect();
        assert!(here.len() <= 100, "the page's default is 100 rows");
        // The counts are the whole store's on every page.
        assert!(page.contains(&format!("of {N} matching ({N} in all)")));
        rows.extend(here);
        match page.split("rel=\"next\" href=\"").nth(1) {
            Some(rest) => path = rest.split('"').next().unwrap().replace("&amp;", "&"),
            None => break,
        }
    }
    assert_eq!(once_each(&rows).len(), N);
    assert_eq!(rows, order);
}
