//! The vocabulary every provider reads answers with: transport failures and common status
//! codes mapped to outcomes, the headers that carry rate limits and retry times, JSON
//! bodies, and the check of a configured base URL. Pure.

use crate::model::{ProbeOutcome, RateLimit, Reason};
use jiff::Timestamp;
use reqwest::header::{AsHeaderName, HeaderMap, HeaderName, HeaderValue};
use std::error::Error as StdError;
use std::time::Duration;

/// Maps a transport error to `unreachable` with the most precise reason we can tell:
/// `timeout` when a timeout is anywhere in its causes, `tls` when they speak of
/// certificates or the handshake, `connect` when no connection was made, else `otherwise`
/// (`connect` for a failed exchange, `bad_response` for a body that broke off).
pub fn transport_outcome(e: &(dyn StdError + 'static), otherwise: Reason) -> ProbeOutcome {
    let chain = error_chain(e);
    let lower = chain.to_ascii_lowercase();
    let mut timed_out = false;
    let mut connect = false;
    let mut current: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
        } else if let Some(h) = err.downcast_ref::<hyper::Error>() {
            timed_out |= h.is_timeout();
        } else if let Some(r) = err.downcast_ref::<reqwest::Error>() {
            timed_out |= r.is_timeout();
            connect |= r.is_connect();
        } else if let Some(l) = err.downcast_ref::<hyper_util::client::legacy::Error>() {
            connect |= l.is_connect();
        }
        current = err.source();
    }
    let reason = if timed_out {
        Reason::Timeout
    } else if lower.contains("certificate")
        || lower.contains("tls")
        || lower.contains("handshake")
        || lower.contains("invalidcontenttype")
    {
        Reason::Tls
    } else if connect {
        Reason::Connect
    } else {
        otherwise
    };
    ProbeOutcome::unreachable(reason, chain)
}

/// The error and its sources in one line. URLs we build never hold a token, but a request
/// URL in reqwest's messages is removed all the same so nothing from the target leaks into
/// labels.
pub(super) fn error_chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = String::new();
    let mut current: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = current {
        let text = err.to_string();
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
        current = err.source();
    }
    if let Some(url) = e
        .downcast_ref::<reqwest::Error>()
        .and_then(reqwest::Error::url)
    {
        out = out.replace(url.as_str(), "<provider>");
    }
    out
}

/// `application/json`, the `Accept` of every JSON request (`.header(ACCEPT, http::JSON)`):
/// made once, not parsed from text at each request.
pub const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Checks a configured base URL: http or https, no credentials (they would reach logs), no
/// query or fragment (a query is how a token ends up in a URL). Every provider uses it.
pub fn check_base_url(field: &str, value: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(value).map_err(|e| format!("{field}: invalid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{field}: the URL must be http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{field}: credentials in the URL are not allowed; configure them as a secret"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{field}: the URL must not have a query or a fragment; tokens never travel in URLs"
        ));
    }
    Ok(url)
}

/// A configured server address and a path the kind appends: one slash between them, and
/// the address's own path prefix (a reverse proxy's) kept.
pub fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// A header as text, if present and visible ASCII. `name` is a `&str` or, on paths run at
/// every probe, a `HeaderName` (a `&str` is parsed into one at each lookup).
pub fn header(headers: &HeaderMap, name: impl AsHeaderName) -> Option<&str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap, now: Timestamp) -> Option<Duration> {
    let value = header(headers, reqwest::header::RETRY_AFTER)?;
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let secs = at.as_second() - now.as_second();
    Some(Duration::from_secs(secs.max(0) as u64))
}

/// Rate-limit headroom from the usual header families (`X-RateLimit-*` as GitHub sends,
/// `RateLimit-*` as GitLab sends, `X-Rate-Limit-*` as Okta sends). Reset is epoch seconds.
pub fn rate_limit(headers: &HeaderMap) -> Option<RateLimit> {
    // Read from every answer of every provider: names made once, not parsed per lookup.
    const fn name(s: &'static str) -> HeaderName {
        HeaderName::from_static(s)
    }
    static FAMILIES: [[HeaderName; 3]; 3] = [
        [
            name("x-ratelimit-remaining"),
            name("x-ratelimit-limit"),
            name("x-ratelimit-reset"),
        ],
        [
            name("ratelimit-remaining"),
            name("ratelimit-limit"),
            name("ratelimit-reset"),
        ],
        [
            name("x-rate-limit-remaining"),
            name("x-rate-limit-limit"),
            name("x-rate-limit-reset"),
        ],
    ];
    let num = |name: &HeaderName| header(headers, name).and_then(|v| v.parse::<f64>().ok());
    for [remaining, limit, reset] in &FAMILIES {
        let remaining = num(remaining);
        let limit = num(limit);
        if remaining.is_none() && limit.is_none() {
            continue;
        }
        let reset_at = num(reset).and_then(|s| Timestamp::from_second(s as i64).ok());
        return Some(RateLimit {
            remaining,
            limit,
            reset_at,
        });
    }
    None
}

/// When the rate-limit window resets, as a wait from `now`.
pub fn reset_wait(rate: Option<RateLimit>, now: Timestamp) -> Option<Duration> {
    let at = rate?.reset_at?;
    let secs = at.as_second() - now.as_second();
    (secs > 0).then(|| Duration::from_secs(secs as u64))
}

/// The outcome for statuses every provider treats alike: 429 and 5xx. Providers call it
/// after their own status handling, for whatever they did not recognise.
pub fn common_status(status: u16, headers: &HeaderMap, now: Timestamp) -> ProbeOutcome {
    let rate = rate_limit(headers);
    let outcome = match status {
        429 => ProbeOutcome::rate_limited(
            retry_after(headers, now).or_else(|| reset_wait(rate, now)),
            "the provider answered 429 Too Many Requests",
        ),
        500..=599 => ProbeOutcome::unreachable(
            Reason::Http5xx,
            format!("the provider answered HTTP {status}"),
        ),
        _ => ProbeOutcome::unreachable(
            Reason::UnexpectedStatus,
            format!(
                "the provider answered HTTP {status}, which it does not document for this call"
            ),
        ),
    };
    outcome.with_rate_limit(rate)
}

/// Parses a JSON body into `T`; a body that is not that JSON is `unreachable/bad_response`.
pub fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ProbeOutcome> {
    serde_json::from_slice(body).map_err(|e| {
        // serde_json's message says where and what kind of token it met, never the body.
        ProbeOutcome::bad_response(&e.to_string())
    })
}
