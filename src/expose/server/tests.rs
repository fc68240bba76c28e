use super::*;
use crate::config::Config;
use crate::derive::view;
use crate::expose::metrics::{ExporterStatus, Metrics};
use crate::model::ProbeRun;
use crate::model::{Expiry, ProbeOutcome, Reason, TokenFacts, Verdict};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A store of `n` tokens in every kind of state: valid far and near expiry, invalid,
/// rate limited, never probed; with teams, owners and characters JSON and HTML escape.
fn store_of(n: usize) -> Arc<Store> {
    let mut yaml = String::from(
        "providers:\n  idp: {kind: oauth2_introspection, introspection_endpoint: \"http://127.0.0.1:9/i\", client_id: x, client_secret: {env: CS}}\n  other: {kind: static}\ntokens:\n",
    );
    if n == 0 {
        yaml.push_str("  []\n");
    }
    for i in 0..n {
        if i % 7 == 6 {
            yaml.push_str(&format!(
                "  - name: t{i:05}\n    provider: other\n    expires_at: 2031-06-30\n"
            ));
        } else {
            yaml.push_str(&format!(
                    "  - name: t{i:05}\n    provider: idp\n    secret: {{env: S}}\n    labels: {{team: \"t<{}>\\\"q\", owner: o{}}}\n",
                    i % 3,
                    i % 5
                ));
        }
    }
    let config = Config::parse(&yaml).unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(Store::new());
    store.reconcile(&config);
    let now = jiff::Timestamp::now();
    for (i, spec) in config.tokens.iter().enumerate() {
        let outcome = match i % 5 {
            0 => ProbeOutcome::valid(TokenFacts {
                expiry: Expiry::At(now + jiff::SignedDuration::from_hours(24 * 400)),
                subject: Some(format!("svc-\"{i}\" <b>")),
                scopes: vec!["read".into(), "write".into()],
                ..TokenFacts::default()
            }),
            1 => ProbeOutcome::valid(TokenFacts {
                expiry: Expiry::At(now + jiff::SignedDuration::from_hours(30 + i as i64)),
                ..TokenFacts::default()
            }),
            2 => ProbeOutcome::new(Verdict::Invalid, Reason::Revoked, "revoked"),
            3 => ProbeOutcome::new(Verdict::RateLimited, Reason::RateLimited, "429"),
            _ => continue,
        };
        let run = ProbeRun {
            outcome,
            fingerprint: Some(format!("sha256:{i:012x}")),
            duration: std::time::Duration::from_millis(3),
        };
        store.record(&spec.name, run, now);
    }
    store
}

fn collect(mut body: ViewStream) -> (Vec<String>, String) {
    let mut chunks = Vec::new();
    while let Some(c) = body.next_chunk() {
        chunks.push(c);
    }
    let all = chunks.concat();
    (chunks, all)
}

/// The document as the handler built it before it streamed: one serde_json call.
#[derive(serde::Serialize)]
struct TokensDoc {
    generated_at: String,
    counts: std::collections::BTreeMap<&'static str, usize>,
    total: usize,
    limit: Option<usize>,
    next: Option<String>,
    tokens: Vec<TokenView>,
}

#[test]
fn the_streamed_api_answer_is_byte_for_byte_the_whole_document() {
    for n in [0, 1, 12, 200] {
        let store = store_of(n);
        let now = jiff::Timestamp::now();
        let views = view::all(&store.read(), now);
        let whole = serde_json::to_string(&TokensDoc {
            generated_at: now.to_string(),
            counts: counts(&views).into_iter().collect(),
            total: n,
            limit: None,
            next: None,
            tokens: views,
        })
        .unwrap();
        let (_, streamed) = collect(tokens_body(store, now));
        assert_eq!(streamed, whole, "{n} tokens");
        let parsed: serde_json::Value = serde_json::from_str(&streamed).unwrap();
        assert_eq!(parsed["tokens"].as_array().unwrap().len(), n);
    }
}

#[test]
fn the_streamed_page_is_byte_for_byte_the_whole_page() {
    let store = store_of(40);
    let now = jiff::Timestamp::now();
    let views = view::all(&store.read(), now);
    let cursor = |i: usize| cursor_of(&store, &views[i], now).to_string();
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let queries = [
        String::new(),
        "state=invalid".into(),
        "team=t%3C1%3E%22q&provider=idp".into(),
        "provider=nothing-matches".into(),
        "state=invalid&state=rate_limited&q=T0001".into(),
        "limit=7".into(),
        format!("limit=7&after={}", enc(&cursor(6))),
        format!("limit=7&after={}", enc(&cursor(20))),
        format!("limit=7&after={}", enc(&cursor(38))),
        format!("limit=7&after={}", enc(&cursor(39))),
        "owner=o1&owner=o2&limit=3".into(),
    ];
    for raw in queries {
        let filter = filter::parse(&raw).unwrap();
        let whole = render_page(&store, &views, &filter, "/metrics", now);
        let (_, streamed) = collect(page_body(store.clone(), filter.clone(), "/metrics", now));
        assert_eq!(streamed, whole, "{raw}");
    }
}

#[tokio::test]
async fn large_answers_arrive_in_many_bounded_frames() {
    let (app, _) = app(store_of(2_000));
    for path in ["/api/v1/tokens", "/?limit=1000"] {
        let mut body = get(&app, path).await.into_body();
        let (mut frames, mut total, mut largest) = (0, 0, 0);
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            frames += 1;
            total += data.len();
            largest = largest.max(data.len());
        }
        // The whole answer is never one buffer: each frame is a chunk of tokens.
        assert!(frames >= 1_000 / 64, "{path}: {frames} frames");
        assert!(
            largest * 10 < total,
            "{path}: a frame of {largest} bytes out of {total}"
        );
    }
}

#[test]
fn a_token_removed_while_streaming_is_left_out_and_the_json_stays_valid() {
    let store = store_of(200);
    let now = jiff::Timestamp::now();
    let mut body = tokens_body(store.clone(), now);
    let mut text = body.next_chunk().unwrap();
    text.push_str(&body.next_chunk().unwrap());
    // A reload that keeps only the first 10 tokens of the file.
    let kept = Config::parse(
            "providers:\n  idp: {kind: oauth2_introspection, introspection_endpoint: \"http://127.0.0.1:9/i\", client_id: x, client_secret: {env: CS}}\ntokens:\n  - {name: t00000, provider: idp, secret: {env: S}}\n",
        )
        .unwrap();
    store.reconcile(&kept);
    while let Some(c) = body.next_chunk() {
        assert!(!c.is_empty(), "an empty chunk");
        text.push_str(&c);
    }
    let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        parsed["tokens"].as_array().unwrap().len(),
        TOKENS_PER_CHUNK + 1
    );
}

fn app(store: Arc<Store>) -> (Router, Metrics) {
    let metrics = Metrics::new(store.clone(), Arc::new(ExporterStatus::new()));
    let state = AppState {
        store,
        metrics: metrics.clone(),
        ready: Arc::new(AtomicBool::new(true)),
        reload: mpsc::channel(1).0,
        telemetry_path: "/metrics".into(),
    };
    (router(state), metrics)
}

async fn get(app: &Router, path: &str) -> Response {
    let req = axum::http::Request::get(path)
        .body(axum::body::Body::empty())
        .unwrap();
    app.clone().oneshot(req).await.unwrap()
}

#[tokio::test]
async fn heavy_requests_past_the_bound_get_503_while_scrapes_go_on() {
    let (app, metrics) = app(store_of(300));
    // Answers in progress: their bodies are not read yet, so each holds its turn.
    let mut held = Vec::new();
    for i in 0..MAX_CONCURRENT_VIEWS {
        let path = if i % 2 == 0 { "/api/v1/tokens" } else { "/" };
        let r = get(&app, path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        held.push(r);
    }
    for path in ["/api/v1/tokens", "/?state=valid"] {
        let r = get(&app, path).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }
    // Light endpoints are not bounded.
    assert_eq!(
        get(&app, "/api/v1/tokens/t00000").await.status(),
        StatusCode::OK
    );
    assert_eq!(get(&app, "/-/healthy").await.status(), StatusCode::OK);
    // A scrape has a bound of its own: the flood does not starve it.
    let scrape = get(&app, "/metrics").await;
    assert_eq!(scrape.status(), StatusCode::OK);
    let text = String::from_utf8(
        scrape
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    for line in [
        "api_token_exporter_http_requests_refused_total{handler=\"api\"} 1",
        "api_token_exporter_http_requests_refused_total{handler=\"page\"} 1",
        "api_token_exporter_http_requests_refused_total{handler=\"metrics\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
    }
    // A finished answer gives its turn back.
    let done = held.pop().unwrap();
    let _ = done.into_body().collect().await.unwrap();
    assert_eq!(get(&app, "/api/v1/tokens").await.status(), StatusCode::OK);
    // Scrapes past their own bound wait, then are refused and counted.
    let mut scrapes = Vec::new();
    for _ in 0..MAX_CONCURRENT_SCRAPES {
        let r = get(&app, "/metrics").await;
        assert_eq!(r.status(), StatusCode::OK);
        scrapes.push(r);
    }
    assert_eq!(
        get(&app, "/metrics").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    drop(scrapes);
    let text = crate::expose::metrics::render(&metrics);
    assert!(
        text.contains("api_token_exporter_http_requests_refused_total{handler=\"metrics\"} 1\n"),
        "{text}"
    );
}

async fn scrape(app: &Router, accept_encoding: Option<&str>) -> (axum::http::HeaderMap, Vec<u8>) {
    let mut req = axum::http::Request::get("/metrics");
    if let Some(a) = accept_encoding {
        req = req.header(header::ACCEPT_ENCODING, a);
    }
    let r = app
        .clone()
        .oneshot(req.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let headers = r.headers().clone();
    let body = r.into_body().collect().await.unwrap().to_bytes().to_vec();
    (headers, body)
}

/// The text of a scrape with the time-dependent series left out, for comparing two scrapes.
fn steady(text: &str) -> String {
    text.lines()
        .filter(|l| !l.contains("timestamp_seconds") && !l.contains("http_connections"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn metrics_are_gzipped_only_for_a_scraper_that_asks() {
    let (app, metrics) = app(store_of(3000));
    let whole = crate::expose::metrics::render(&metrics);

    // Not asked (no header, or only codings the exporter does not write): identity.
    for accept in [
        None,
        Some("identity"),
        Some("br, deflate"),
        Some("gzip;q=0"),
    ] {
        let (headers, body) = scrape(&app, accept).await;
        assert!(
            headers.get(header::CONTENT_ENCODING).is_none(),
            "{accept:?}: {headers:?}"
        );
        assert_eq!(headers[header::VARY], "Accept-Encoding");
        assert_eq!(headers[header::CONTENT_TYPE], metrics::CONTENT_TYPE);
        let text = String::from_utf8(body).expect("identity is the text itself");
        assert_eq!(steady(&text), steady(&whole), "{accept:?}");
    }

    // Asked as Prometheus asks, and as curl --compressed does: gzip, the same text.
    for accept in ["gzip", "deflate, gzip, br, zstd"] {
        let (headers, body) = scrape(&app, Some(accept)).await;
        assert_eq!(headers[header::CONTENT_ENCODING], "gzip", "{accept}");
        assert_eq!(headers[header::VARY], "Accept-Encoding");
        assert_eq!(headers[header::CONTENT_TYPE], metrics::CONTENT_TYPE);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
            .expect("a valid gzip stream");
        assert_eq!(steady(&text), steady(&whole), "{accept}");
        assert!(
            body.len() * 5 < text.len(),
            "{} of {}",
            body.len(),
            text.len()
        );
    }
}

#[test]
fn escape_covers_markup() {
    assert_eq!(
        escape("<a href=\"x\">'&'</a>"),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );
}

/// Counts per state of whole views, in [`view::count_states`]' order.
fn counts(views: &[TokenView]) -> Vec<(&'static str, usize)> {
    view::count_states(views.iter().map(|v| v.state.as_str()))
}

/// The cursor that places a page after `v`, from its state: rank and expiry.
fn cursor_of(store: &Store, v: &TokenView, now: jiff::Timestamp) -> filter::Cursor {
    let rank = view::urgency_of(&store.read().tokens[&v.name], now).0;
    filter::Cursor {
        rank,
        expiry: v.expires_at.as_deref().map_or(i64::MAX, |t| {
            t.parse::<jiff::Timestamp>().unwrap().as_second()
        }),
        name: v.name.clone(),
    }
}

/// The status page as it was written before it streamed, all at once from every view, most
/// urgent first: the oracle the streamed page ([`page_body`]) must equal byte for byte. Pages
/// by position in the whole order.
fn render_page(
    store: &Store,
    all: &[TokenView],
    filter: &ViewQuery,
    telemetry_path: &str,
    now: jiff::Timestamp,
) -> String {
    let matching: Vec<&TokenView> = all
        .iter()
        .filter(|v| filter.admits(&filter::Parts::of_view(v)))
        .collect();
    let limit = filter.limit.unwrap_or(filter::PAGE_LIMIT);
    let start = filter.after.as_ref().map_or(0, |c| {
        matching.iter().position(|v| v.name == c.name).unwrap() + 1
    });
    let views = &matching[start..(start + limit).min(matching.len())];
    let summary = PageSummary {
        shown: views.len(),
        matching: matching.len(),
        start,
        total: all.len(),
        counts: counts(all),
        choices: filter::Choices {
            teams: all
                .iter()
                .filter_map(|v| v.labels.get("team").cloned())
                .collect(),
            providers: all.iter().map(|v| v.provider.clone()).collect(),
            sources: Default::default(),
        },
        next: (start + views.len() < matching.len())
            .then(|| cursor_of(store, views.last().unwrap(), now)),
        previous: match start {
            0 => None,
            s if s <= limit => Some(filter::Back::First),
            s => Some(filter::Back::After(cursor_of(
                store,
                matching[s - limit - 1],
                now,
            ))),
        },
    };
    let mut html = String::with_capacity(4096 + views.len() * 640);
    render_head(&mut html, &summary, filter, telemetry_path, now);
    let nav = page::nav(&summary, filter);
    html.push_str(&nav);
    html.push_str(page::TABLE_HEAD);
    for v in views {
        render_row(&mut html, v);
    }
    html.push_str(&render_tail(views.is_empty(), &nav));
    html
}

async fn text_of(r: Response) -> String {
    String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn the_api_pages_by_cursor_through_every_matching_token_once() {
    let store = store_of(250);
    let want: Vec<String> = view::all(&store.read(), jiff::Timestamp::now())
        .into_iter()
        .filter(|v| v.provider == "idp")
        .map(|v| v.name)
        .collect();
    let (app, _) = app(store);
    let mut seen: Vec<String> = Vec::new();
    let mut path = "/api/v1/tokens?provider=idp&limit=40".to_string();
    loop {
        let r = get(&app, &path).await;
        assert_eq!(r.status(), StatusCode::OK);
        let doc: serde_json::Value = serde_json::from_str(&text_of(r).await).unwrap();
        assert_eq!(doc["total"], want.len());
        assert_eq!(doc["limit"], 40);
        // Counts are over the whole store, whatever the filter and page.
        let counted: u64 = doc["counts"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum();
        assert_eq!(counted, 250);
        let tokens = doc["tokens"].as_array().unwrap();
        assert!(tokens.len() <= 40);
        seen.extend(
            tokens
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_string()),
        );
        match doc["next"].as_str() {
            Some(next) => {
                path = format!("/api/v1/tokens?provider=idp&limit=40&after={}", enc(next))
            }
            None => break,
        }
    }
    assert_eq!(seen, want);
    // Without a limit the answer is every token, as before paging existed.
    let doc: serde_json::Value =
        serde_json::from_str(&text_of(get(&app, "/api/v1/tokens").await).await).unwrap();
    assert_eq!(doc["tokens"].as_array().unwrap().len(), 250);
    assert_eq!(
        (&doc["limit"], &doc["next"]),
        (&serde_json::Value::Null, &serde_json::Value::Null)
    );
}

#[tokio::test]
async fn a_bad_query_is_a_400_naming_the_parameter() {
    let (app, _) = app(store_of(5));
    for (path, parameter) in [
        ("/api/v1/tokens?limit=0", "limit"),
        ("/api/v1/tokens?limit=5000", "limit"),
        ("/api/v1/tokens?state=expired", "state"),
        ("/api/v1/tokens?after=nonsense", "after"),
        ("/api/v1/tokens?colour=red", "colour"),
    ] {
        let r = get(&app, path).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let doc: serde_json::Value = serde_json::from_str(&text_of(r).await).unwrap();
        assert_eq!(doc["parameter"], parameter, "{path}");
        assert!(doc["error"].as_str().unwrap().contains(parameter), "{doc}");
    }
    // A name that is no parameter's is not sent back: it may be a pasted token.
    let r = get(&app, "/api/v1/tokens?glpat-Canary0123456789").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let text = text_of(r).await;
    assert!(!text.contains("Canary"), "{text}");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["parameter"], serde_json::Value::Null);
    let r = get(&app, "/?limit=abc").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(text_of(r).await.starts_with("query parameter `limit`"));
}

#[tokio::test]
async fn the_page_shows_one_page_with_links_to_the_others() {
    let (app, _) = app(store_of(250));
    let first = text_of(get(&app, "/?limit=100").await).await;
    assert_eq!(first.matches("<tr class=").count(), 100);
    assert!(first.contains("tokens 1&ndash;100 of 250 matching (250 in all)"));
    assert!(!first.contains("rel=\"prev\"") && first.contains("rel=\"next\""));
    // The badges count the whole store, not the page.
    assert!(first.contains(">valid: 100<") && first.contains(">unknown: 50<"));
    let next = first
        .split("rel=\"next\" href=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    let second = text_of(get(&app, &next).await).await;
    assert!(second.contains("tokens 101&ndash;200 of 250"));
    assert!(second.contains("rel=\"prev\" href=\"/?limit=100\""));
    // A filter narrows the rows and the range, and the links keep it.
    let filtered = text_of(get(&app, "/?state=invalid&q=t000").await).await;
    assert!(filtered.contains("of 20 matching (250 in all)"));
    assert_eq!(filtered.matches("data-state=\"invalid\"").count(), 20);
    assert!(filtered.contains("name=\"q\" value=\"t000\""));
}
