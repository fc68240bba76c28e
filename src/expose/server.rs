//! HTTP endpoints: `fn router(state) -> axum::Router`, so tests can call it directly.
//! Reads the store; never calls a provider. `/-/reload` hands work to the reloader.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::derive::view::TokenView;
use crate::expose::compress::{Coding, Gzipped};
use crate::expose::metrics;
use crate::state::store::Store;

pub mod filter;
mod page;

use filter::ViewQuery;
use page::PageSummary;

/// A request to reload the config; the answer is the error text when it failed.
pub struct ReloadRequest {
    /// Apply a config even when it removes more tokens than `--config.reload-max-drop`.
    pub force: bool,
    pub reply: oneshot::Sender<Result<(), String>>,
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub metrics: metrics::Metrics,
    pub ready: Arc<AtomicBool>,
    pub reload: mpsc::Sender<ReloadRequest>,
    pub telemetry_path: String,
}

/// How many answers of `/` and `/api/v1/tokens` may be in progress at once; past it they
/// are refused with 503. Each holds its token order and a chunk, not its whole answer, but a
/// flood of them would still take the store's read lock and CPU from probes and scrapes.
pub const MAX_CONCURRENT_VIEWS: usize = 4;

/// How many `/metrics` answers may be in progress at once. A separate bound from the views',
/// so that a flood of API or page requests never starves a Prometheus scrape.
pub const MAX_CONCURRENT_SCRAPES: usize = 4;

/// How long a scrape past [`MAX_CONCURRENT_SCRAPES`] waits for a turn before it is refused:
/// scrapes of a few Prometheus servers overlap briefly, and a refused scrape is a gap.
pub const SCRAPE_QUEUE_WAIT: Duration = Duration::from_secs(2);

/// Tokens rendered per chunk of a streamed answer (about 60 KB of JSON), each chunk under a
/// read lock of its own.
const TOKENS_PER_CHUNK: usize = 64;

/// The bounds on heavy requests, one set per router.
#[derive(Clone)]
struct Limits {
    views: Arc<Semaphore>,
    scrapes: Arc<Semaphore>,
}

pub fn router(state: AppState) -> Router {
    let path = state.telemetry_path.clone();
    let limits = Limits {
        views: Arc::new(Semaphore::new(MAX_CONCURRENT_VIEWS)),
        scrapes: Arc::new(Semaphore::new(MAX_CONCURRENT_SCRAPES)),
    };
    Router::new()
        .route(&path, get(metrics_handler))
        .route("/", get(status_page))
        .route("/api/v1/tokens", get(tokens_api))
        .route("/api/v1/tokens/{name}", get(token_api))
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload).put(reload))
        .layer(Extension(limits))
        .with_state(state)
}

async fn metrics_handler(
    State(state): State<AppState>,
    Extension(limits): Extension<Limits>,
    headers: axum::http::HeaderMap,
) -> Response {
    let permit = match tokio::time::timeout(SCRAPE_QUEUE_WAIT, limits.scrapes.acquire_owned()).await
    {
        Ok(Ok(permit)) => permit,
        _ => return refuse(&state.metrics.status().requests_refused.metrics),
    };
    // Streamed a chunk at a time from a snapshot (see metrics.rs); the permit goes with the
    // body, so the bound covers the writing, not only the snapshot.
    // Compressed as it is written when the scraper accepts gzip (src/expose/compress.rs).
    let coding = Coding::negotiate(
        headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    let snapshot = state.metrics.snapshot();
    let vary = (header::VARY, "Accept-Encoding");
    match coding.header() {
        Some(encoding) => {
            let body = permitted(Gzipped::new(snapshot), permit);
            (
                [
                    (header::CONTENT_TYPE, metrics::CONTENT_TYPE),
                    (header::CONTENT_ENCODING, encoding),
                    vary,
                ],
                body,
            )
                .into_response()
        }
        None => {
            let body = permitted(snapshot, permit);
            ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE), vary], body).into_response()
        }
    }
}

/// A turn for a view (`/` or `/api/v1/tokens`), or the 503 that refuses it.
fn view_permit(
    limits: &Limits,
    state: &AppState,
    refused: fn(&metrics::RequestsRefused) -> &AtomicU64,
) -> Result<OwnedSemaphorePermit, Response> {
    limits
        .views
        .clone()
        .try_acquire_owned()
        .map_err(|_| refuse(refused(&state.metrics.status().requests_refused)))
}

/// 503 with `Retry-After`, counted. Not logged: a flood would flood the log too; the
/// counter is what an alert reads.
fn refuse(count: &AtomicU64) -> Response {
    count.fetch_add(1, Ordering::Relaxed);
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        "too many requests in progress; retry shortly\n",
    )
        .into_response()
}

/// `body` holding `permit` until it is written out or dropped: the bound on heavy requests
/// covers the writing, not only the handler.
fn permitted<B>(body: B, permit: OwnedSemaphorePermit) -> axum::body::Body
where
    B: http_body::Body<Data = Bytes, Error = Infallible> + Unpin + Send + 'static,
{
    axum::body::Body::new(Permitted {
        inner: body,
        _permit: permit,
    })
}

/// A body that holds a concurrency permit until it is written out or dropped.
struct Permitted<B> {
    inner: B,
    _permit: OwnedSemaphorePermit,
}

impl<B: http_body::Body + Unpin> http_body::Body for Permitted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "Ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "Not ready: first probe round in progress\n",
        )
            .into_response()
    }
}

async fn reload(State(state): State<AppState>, uri: axum::http::Uri) -> Response {
    let force = uri
        .query()
        .unwrap_or("")
        .split('&')
        .any(|kv| kv == "force=true" || kv == "force=1");
    let (tx, rx) = oneshot::channel();
    let request = ReloadRequest { force, reply: tx };
    if state.reload.send(request).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "reloader stopped\n").into_response();
    }
    match rx.await {
        Ok(Ok(())) => (StatusCode::OK, "config reloaded\n").into_response(),
        Ok(Err(e)) => (
            StatusCode::BAD_REQUEST,
            format!("config not reloaded, the previous one keeps running:\n{e}\n"),
        )
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "reloader stopped\n").into_response(),
    }
}

/// `{"generated_at":...,"counts":{...},"total":...,"limit":...,"next":...,"tokens":[...]}`,
/// streamed a chunk of tokens at a time, so the memory an answer takes is bounded by the
/// chunk, not by the inventory, however many requests are in progress.
async fn tokens_api(
    State(state): State<AppState>,
    Extension(limits): Extension<Limits>,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = match filter::parse(raw.as_deref().unwrap_or("")) {
        Ok(q) => q,
        Err(e) => return bad_query(&e, true),
    };
    let permit = match view_permit(&limits, &state, |r| &r.api) {
        Ok(p) => p,
        Err(refused) => return refused,
    };
    let body = tokens_page(state.store.clone(), &query, jiff::Timestamp::now());
    (
        [(header::CONTENT_TYPE, "application/json")],
        permitted(body, permit),
    )
        .into_response()
}

/// A refused query: 400 naming the parameter, as JSON for the API and as text for the page.
fn bad_query(e: &filter::QueryError, json: bool) -> Response {
    if json {
        let parameter = (!e.parameter.is_empty()).then_some(&e.parameter);
        let body = serde_json::json!({"error": e.to_string(), "parameter": parameter});
        (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
    } else {
        (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response()
    }
}

/// The body of `GET /api/v1/tokens` at `now`, every token: the same bytes serde_json wrote
/// for the whole document at once.
pub fn tokens_body(store: Arc<Store>, now: jiff::Timestamp) -> ViewStream {
    tokens_page(store, &ViewQuery::default(), now)
}

/// The body of `GET /api/v1/tokens?<query>` at `now`. The store's lock is held for one pass
/// that filters and keys the tokens ([`filter::scan`]); ordering and paging run after it, and
/// only the page's names are copied.
pub fn tokens_page(store: Arc<Store>, query: &ViewQuery, now: jiff::Timestamp) -> ViewStream {
    // Chosen under the lock, as the entries borrow the store's names; a selection compares
    // integers only, and just the page's names are copied.
    let (selection, counts) = {
        let inner = store.read();
        let scan = filter::scan(&inner, query, now, false);
        let selection = filter::select(scan.entries, query.after.as_ref(), query.limit);
        (owned(selection), scan.counts)
    };
    let counts: std::collections::BTreeMap<&str, usize> = counts.into_iter().collect();
    // Serialised from strings and numbers: they cannot fail.
    let head = format!(
        "{{\"generated_at\":{},\"counts\":{},\"total\":{},\"limit\":{},\"next\":{},\"tokens\":[",
        serde_json::to_string(&now.to_string()).unwrap_or_default(),
        serde_json::to_string(&counts).unwrap_or_default(),
        selection.matching,
        serde_json::to_string(&query.limit).unwrap_or_default(),
        serde_json::to_string(&selection.next.as_ref().map(|c| c.to_string())).unwrap_or_default(),
    );
    ViewStream {
        store,
        now,
        order: names(selection.page).into_iter(),
        head: Some(head),
        tail: Some("]}".to_string()),
        rows_written: 0,
        row: Row::Json(query.clone()),
    }
}

/// The selection with its page's names copied, so the store's lock can go.
fn owned(s: filter::Selection<&str>) -> filter::Selection<String> {
    filter::Selection {
        page: s
            .page
            .into_iter()
            .map(|e| filter::Entry {
                rank: e.rank,
                expiry: e.expiry,
                seq: e.seq,
                name: e.name.to_string(),
            })
            .collect(),
        matching: s.matching,
        start: s.start,
        next: s.next,
        previous: s.previous,
    }
}

/// The page's names, in its order.
fn names(page: Vec<filter::Entry<String>>) -> Vec<String> {
    page.into_iter().map(|e| e.name).collect()
}

/// How a streamed answer writes one token, and the filters it re-checks: a token's state
/// may have changed since the order was taken.
#[derive(Clone)]
enum Row {
    Json(ViewQuery),
    Html(ViewQuery),
}

/// A streamed view of the store: a head, then each token of `order` rendered from its
/// current state, a chunk at a time under a short read lock, then a tail. The answer holds
/// the order (names) and one chunk, never every view at once. A token removed (by a reload)
/// while the answer is written is left out; one probed meanwhile shows its newer state.
pub struct ViewStream {
    store: Arc<Store>,
    now: jiff::Timestamp,
    order: std::vec::IntoIter<String>,
    head: Option<String>,
    tail: Option<String>,
    rows_written: usize,
    row: Row,
}

impl ViewStream {
    /// The next chunk, or None when all is written.
    pub fn next_chunk(&mut self) -> Option<String> {
        if let Some(head) = self.head.take() {
            return Some(head);
        }
        // Chunks whose tokens were all left out are skipped: an empty frame is no use.
        while self.order.len() > 0 {
            let mut out = String::new();
            let inner = self.store.read();
            for name in self.order.by_ref().take(TOKENS_PER_CHUNK) {
                let Some(s) = inner.tokens.get(&name) else {
                    continue;
                };
                let v = TokenView::from_state(s, self.now);
                let (Row::Json(query) | Row::Html(query)) = &self.row;
                if !query.admits(&filter::Parts::of_view(&v)) {
                    continue;
                }
                match &self.row {
                    Row::Json(_) => {
                        if self.rows_written > 0 {
                            out.push(',');
                        }
                        // A view holds strings, numbers and maps with string keys only.
                        out.push_str(&serde_json::to_string(&v).unwrap_or_default());
                    }
                    Row::Html(_) => render_row(&mut out, &v),
                }
                self.rows_written += 1;
            }
            if !out.is_empty() {
                return Some(out);
            }
        }
        self.tail.take()
    }
}

impl http_body::Body for ViewStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Poll::Ready(
            self.get_mut()
                .next_chunk()
                .map(|c| Ok(http_body::Frame::data(Bytes::from(c)))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.order.len() == 0 && self.tail.is_none()
    }
}

async fn token_api(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let now = jiff::Timestamp::now();
    let inner = state.store.read();
    match inner.tokens.get(&name) {
        Some(s) => axum::Json(TokenView::from_state(s, now)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"error": "no such token"})),
        )
            .into_response(),
    }
}

async fn status_page(
    State(state): State<AppState>,
    Extension(limits): Extension<Limits>,
    RawQuery(raw): RawQuery,
) -> Response {
    let filter = match filter::parse(raw.as_deref().unwrap_or("")) {
        Ok(q) => q,
        Err(e) => return bad_query(&e, false),
    };
    let permit = match view_permit(&limits, &state, |r| &r.page) {
        Ok(p) => p,
        Err(refused) => return refused,
    };
    let body = page_body(
        state.store.clone(),
        filter,
        &state.telemetry_path,
        jiff::Timestamp::now(),
    );
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        permitted(body, permit),
    )
        .into_response()
}

/// The status page at `now`, streamed a chunk of rows at a time: one page of
/// [`filter::PAGE_LIMIT`] rows unless the query sets `limit`.
pub fn page_body(
    store: Arc<Store>,
    filter: ViewQuery,
    telemetry_path: &str,
    now: jiff::Timestamp,
) -> ViewStream {
    let limit = filter.limit.unwrap_or(filter::PAGE_LIMIT);
    let (selection, total, counts, choices) = {
        let inner = store.read();
        let filter::Scan {
            entries,
            total,
            counts,
            choices,
        } = filter::scan(&inner, &filter, now, true);
        let selection = filter::select(entries, filter.after.as_ref(), Some(limit));
        (owned(selection), total, counts, choices)
    };
    let summary = PageSummary {
        shown: selection.page.len(),
        matching: selection.matching,
        start: selection.start,
        total,
        counts,
        choices,
        next: selection.next,
        previous: selection.previous,
    };
    let mut head = String::with_capacity(8192);
    render_head(&mut head, &summary, &filter, telemetry_path, now);
    let nav = page::nav(&summary, &filter);
    head.push_str(&nav);
    head.push_str(page::TABLE_HEAD);
    ViewStream {
        store,
        now,
        order: names(selection.page).into_iter(),
        head: Some(head),
        tail: Some(render_tail(summary.shown == 0, &nav)),
        rows_written: 0,
        row: Row::Html(filter),
    }
}

/// An RFC 3339 timestamp as people read it: to the second, in UTC.
fn short_time(rfc3339: &str) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => rfc3339.to_string(),
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Everything before the first row: styles, counts, the filter form, the table's head.
fn render_head(
    html: &mut String,
    summary: &PageSummary,
    filter: &ViewQuery,
    telemetry_path: &str,
    now: jiff::Timestamp,
) {
    let refresh = escape(&format!("/{}", filter.href()));
    let _ = write!(
        html,
        concat!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
            "<meta http-equiv=\"refresh\" content=\"30; url={refresh}\">",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            "<title>api-token-exporter</title><style>",
            "body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d1d1f}}",
            "table{{border-collapse:collapse;width:100%}}th,td{{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #ddd;vertical-align:top}}",
            "th{{background:#f4f4f4}}",
            ".badge{{display:inline-block;padding:.25rem .7rem;margin:0 .4rem .4rem 0;border-radius:1rem;background:#eee;text-decoration:none;color:inherit}}",
            ".badge.on{{outline:2px solid #333}}form{{margin:.6rem 0}}input,select,button{{font:inherit;margin-right:.4rem}}",
            ".pages{{margin:.6rem 0}}.pages a{{margin-right:.8rem}}",
            ".s-valid{{color:#0a7d2c}}.s-invalid,.s-misconfigured{{color:#b00020;font-weight:bold}}",
            ".s-unreachable,.s-rate_limited,.s-forbidden{{color:#a15c00;font-weight:bold}}.s-unverified,.s-unknown{{color:#555}}",
            ".sev-critical{{background:#fde2e4}}.sev-warning{{background:#fff4d6}}small{{color:#666}}.violation{{color:#b00020}}",
            "</style></head><body><h1>api-token-exporter</h1>"
        ),
        refresh = refresh
    );
    let _ = write!(
        html,
        "<p><small>{}, generated {} &middot; <a href=\"{}\">metrics</a> &middot; <a href=\"/api/v1/tokens{}\">JSON</a></small></p>",
        page::shown(summary),
        escape(&short_time(&now.to_string())),
        escape(telemetry_path),
        escape(&filter.href())
    );
    page::badges(html, summary, filter);
    page::form(html, summary, filter);
}

/// A rotating token's line under its expiry: the step, the last failure or the next
/// planned rotation (fixed words and times only).
fn rotation_cell(v: &TokenView) -> String {
    let Some(r) = &v.rotation else {
        return String::new();
    };
    let mut text = format!("rotation ({}): {}", r.rotator, r.step.as_str());
    if r.dry_run {
        text.push_str(", dry run");
    }
    if r.failing() {
        text.push_str(", failing");
        if let Some(e) = &r.last_error {
            text.push_str(": ");
            text.push_str(e);
        }
    } else if let Some(next) = r.next_at {
        text.push_str(", next ");
        text.push_str(&short_time(&next.to_string()));
    }
    format!("<br><small class=\"rotation\">{}</small>", escape(&text))
}

/// One token's row of the status page's table.
fn render_row(html: &mut String, v: &TokenView) {
    let severity = match v.severity {
        crate::model::Severity::Critical => "sev-critical",
        crate::model::Severity::Warning => "sev-warning",
        crate::model::Severity::Ok => "",
    };
    let owner = [v.labels.get("owner"), v.labels.get("team")]
        .into_iter()
        .flatten()
        .map(|s| escape(s))
        .collect::<Vec<_>>()
        .join(" / ");
    let policies = {
        let violated: Vec<String> = v
            .violations()
            .map(|f| {
                format!(
                    "<span class=\"violation\" title=\"{}\">{}</span>",
                    escape(&f.detail),
                    escape(f.policy)
                )
            })
            .collect();
        if violated.is_empty() {
            if v.policies.is_empty() {
                String::new()
            } else {
                "ok".to_string()
            }
        } else {
            violated.join("<br>")
        }
    };
    let _ = write!(
        html,
        "<tr class=\"{severity}\" data-token=\"{name}\" data-state=\"{state}\"><td><b>{name}</b><br><small>{fp}</small></td>\
         <td class=\"s-{state}\">{state}<br><small>{reason}</small></td>\
         <td>{expires_in}<br><small>{expires_at}</small>{used}{rotation}</td><td>{provider}<br><small>{kind}{source}</small></td>\
         <td>{owner}</td><td>{scopes}</td><td>{policies}</td><td><small>{last_probe}<br>{detail}</small></td></tr>",
        name = escape(&v.name),
        fp = escape(v.fingerprint.as_deref().unwrap_or("")),
        state = escape(&v.state),
        reason = escape(v.reason.as_deref().unwrap_or("")),
        expires_in = escape(&v.expires_in),
        expires_at = escape(&v.expires_at.as_deref().map(short_time).unwrap_or_default()),
        used = v
            .last_used_at
            .as_deref()
            .map(|t| format!(
                "<br><small class=\"used\">last used {}</small>",
                escape(&short_time(t))
            ))
            .unwrap_or_default(),
        provider = escape(&v.provider),
        kind = escape(&v.kind),
        rotation = rotation_cell(v),
        source = v
            .source
            .as_deref()
            .map(|s| format!(" · source {}", escape(s)))
            .unwrap_or_default(),
        scopes = escape(&v.scopes.join(" ")),
        last_probe = escape(
            &v.last_probe_at
                .as_deref()
                .map(short_time)
                .unwrap_or_else(|| "not yet".into())
        ),
        detail = escape(&with_anomalies(
            v.detail.as_deref().unwrap_or(""),
            &v.anomalies
        )),
    );
}

/// The end of the page, with the row that says nothing matched when nothing did.
fn render_tail(empty: bool, nav: &str) -> String {
    let mut html = String::new();
    if empty {
        html.push_str("<tr><td colspan=\"8\">No token matches these filters.</td></tr>");
    }
    html.push_str("</tbody></table>");
    html.push_str(nav);
    html.push_str("</body></html>\n");
    html
}

/// The detail a row shows, followed by the answer's anomaly codes when it had any: the
/// codes alerts use, so a person finds on the page the word the alert named.
fn with_anomalies(detail: &str, anomalies: &[crate::model::Anomaly]) -> String {
    if anomalies.is_empty() {
        return detail.to_string();
    }
    let codes: Vec<&str> = anomalies.iter().map(|a| a.as_str()).collect();
    format!("{detail} (answer anomaly: {})", codes.join(", "))
}

#[cfg(test)]
mod tests;
