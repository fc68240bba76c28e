//! HTTP endpoints: `fn router(state) -> axum::Router`, so tests can call it directly.
//! Reads the store; never calls a provider. `/-/reload` hands work to the reloader.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::metrics;
use crate::store::Store;
use crate::view::{self, TokenView};

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

pub fn router(state: AppState) -> Router {
    let path = state.telemetry_path.clone();
    Router::new()
        .route(&path, get(metrics_handler))
        .route("/", get(status_page))
        .route("/api/v1/tokens", get(tokens_api))
        .route("/api/v1/tokens/{name}", get(token_api))
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload).put(reload))
        .with_state(state)
}

async fn metrics_handler(State(state): State<AppState>) -> Response {
    // Streamed a chunk at a time from a snapshot (see metrics.rs).
    let body = axum::body::Body::new(state.metrics.snapshot());
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response()
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

#[derive(Serialize)]
struct TokensDoc {
    generated_at: String,
    counts: std::collections::BTreeMap<&'static str, usize>,
    tokens: Vec<TokenView>,
}

async fn tokens_api(State(state): State<AppState>) -> Response {
    let now = jiff::Timestamp::now();
    let views = view::all(&state.store.read(), now);
    let doc = TokensDoc {
        generated_at: now.to_string(),
        counts: view::counts(&views).into_iter().collect(),
        tokens: views,
    };
    axum::Json(doc).into_response()
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

/// Filters of the status page, from its query string. Empty means "all".
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct PageFilter {
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub team: String,
    #[serde(default)]
    pub provider: String,
}

impl PageFilter {
    pub fn admits(&self, v: &TokenView) -> bool {
        (self.state.is_empty() || v.state == self.state)
            && (self.team.is_empty() || v.labels.get("team").is_some_and(|t| *t == self.team))
            && (self.provider.is_empty() || v.provider == self.provider)
    }

    fn query(&self, state: &str) -> String {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        format!(
            "?state={}&team={}&provider={}",
            enc(state),
            enc(&self.team),
            enc(&self.provider)
        )
    }
}

async fn status_page(
    State(state): State<AppState>,
    Query(filter): Query<PageFilter>,
) -> Html<String> {
    let now = jiff::Timestamp::now();
    let views = view::all(&state.store.read(), now);
    Html(render_page(&views, &filter, &state.telemetry_path, now))
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

/// The status page: plain HTML, no JavaScript, refreshed every 30 seconds with its filters.
pub fn render_page(
    all: &[TokenView],
    filter: &PageFilter,
    telemetry_path: &str,
    now: jiff::Timestamp,
) -> String {
    let views: Vec<&TokenView> = all.iter().filter(|v| filter.admits(v)).collect();
    let mut html = String::with_capacity(4096 + views.len() * 640);
    let refresh = escape(&filter.query(&filter.state));
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
            ".badge.on{{outline:2px solid #333}}form{{margin:.6rem 0}}select,button{{font:inherit;margin-right:.4rem}}",
            ".s-valid{{color:#0a7d2c}}.s-invalid,.s-misconfigured{{color:#b00020;font-weight:bold}}",
            ".s-unreachable,.s-rate_limited,.s-forbidden{{color:#a15c00;font-weight:bold}}.s-unverified,.s-unknown{{color:#555}}",
            ".sev-critical{{background:#fde2e4}}.sev-warning{{background:#fff4d6}}small{{color:#666}}.violation{{color:#b00020}}",
            "</style></head><body><h1>api-token-exporter</h1>"
        ),
        refresh = refresh
    );
    let _ = write!(
        html,
        "<p><small>{} of {} tokens shown, generated {} &middot; <a href=\"{}\">metrics</a> &middot; <a href=\"/api/v1/tokens\">JSON</a></small></p><nav>",
        views.len(),
        all.len(),
        escape(&short_time(&now.to_string())),
        escape(telemetry_path)
    );
    for (state, n) in view::counts(all) {
        let on = if filter.state == state { " on" } else { "" };
        let _ = write!(
            html,
            "<a class=\"badge s-{state}{on}\" href=\"{}\">{state}: {n}</a>",
            escape(&filter.query(if filter.state == state { "" } else { state }))
        );
    }
    html.push_str("</nav>");

    // The filter form: plain GET, so it works without JavaScript and its URL can be shared.
    let options = |name: &str, values: Vec<String>, current: &str| {
        let mut out =
            format!("<label>{name} <select name=\"{name}\"><option value=\"\">all</option>");
        for v in values {
            let selected = if v == current { " selected" } else { "" };
            out.push_str(&format!(
                "<option value=\"{0}\"{selected}>{0}</option>",
                escape(&v)
            ));
        }
        out.push_str("</select></label>");
        out
    };
    let mut teams: Vec<String> = all
        .iter()
        .filter_map(|v| v.labels.get("team").cloned())
        .collect();
    teams.sort();
    teams.dedup();
    let mut providers: Vec<String> = all.iter().map(|v| v.provider.clone()).collect();
    providers.sort();
    providers.dedup();
    let mut states: Vec<String> = view::counts(all)
        .into_iter()
        .map(|(s, _)| s.to_string())
        .collect();
    states.sort();
    let _ = write!(
        html,
        "<form method=\"get\" action=\"/\">{}{}{}<button type=\"submit\">Filter</button> <a href=\"/\">clear</a></form>",
        options("state", states, &filter.state),
        options("team", teams, &filter.team),
        options("provider", providers, &filter.provider)
    );

    html.push_str("<table><thead><tr><th>Token</th><th>State</th><th>Expires</th><th>Provider</th><th>Owner / team</th><th>Scopes</th><th>Policies</th><th>Last probe</th></tr></thead><tbody>");
    for v in &views {
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
             <td>{expires_in}<br><small>{expires_at}</small></td><td>{provider}<br><small>{kind}</small></td>\
             <td>{owner}</td><td>{scopes}</td><td>{policies}</td><td><small>{last_probe}<br>{detail}</small></td></tr>",
            name = escape(&v.name),
            fp = escape(v.fingerprint.as_deref().unwrap_or("")),
            state = escape(&v.state),
            reason = escape(v.reason.as_deref().unwrap_or("")),
            expires_in = escape(&v.expires_in),
            expires_at = escape(&v.expires_at.as_deref().map(short_time).unwrap_or_default()),
            provider = escape(&v.provider),
            kind = escape(&v.kind),
            scopes = escape(&v.scopes.join(" ")),
            last_probe = escape(
                &v.last_probe_at
                    .as_deref()
                    .map(short_time)
                    .unwrap_or_else(|| "not yet".into())
            ),
            detail = escape(v.detail.as_deref().unwrap_or("")),
        );
    }
    if views.is_empty() {
        html.push_str("<tr><td colspan=\"8\">No token matches these filters.</td></tr>");
    }
    html.push_str("</tbody></table></body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
