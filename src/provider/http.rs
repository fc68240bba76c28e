//! Outbound HTTP shared by providers: one client, bounded bodies, and the mapping of
//! transport failures and common status codes to outcomes.

use std::time::Duration;

use jiff::Timestamp;
use reqwest::header::HeaderMap;

use crate::model::{ProbeOutcome, RateLimit, Reason, Verdict};

/// The most of a provider's answer we read. Real answers are a few KiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A provider's answer, read whole (up to [`MAX_BODY_BYTES`]).
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// The client every provider shares. Redirects are not followed: a provider that redirects
/// an API call is misrouted, and following would send the token to wherever it points.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("api-token-exporter/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
        .expect("a client with static settings builds")
}

/// Sends a request and reads the body up to the cap. Transport failures become outcomes.
pub async fn send(request: reqwest::RequestBuilder) -> Result<Response, ProbeOutcome> {
    let mut resp = request.send().await.map_err(|e| transport_outcome(&e))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    if let Some(len) = resp.content_length()
        && len > MAX_BODY_BYTES as u64
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err(transport_outcome(&e)),
        }
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn too_large() -> ProbeOutcome {
    ProbeOutcome::unreachable(
        Reason::BadResponse,
        format!("the provider's answer is larger than {MAX_BODY_BYTES} bytes"),
    )
}

/// Maps a transport error to `unreachable` with the most precise reason we can tell.
pub fn transport_outcome(e: &reqwest::Error) -> ProbeOutcome {
    let chain = error_chain(e);
    let lower = chain.to_ascii_lowercase();
    let reason = if e.is_timeout() {
        Reason::Timeout
    } else if lower.contains("certificate")
        || lower.contains("tls")
        || lower.contains("handshake")
        || lower.contains("invalidcontenttype")
    {
        Reason::Tls
    } else if e.is_connect() {
        Reason::Connect
    } else if e.is_body() || e.is_decode() {
        Reason::BadResponse
    } else {
        Reason::Connect
    };
    ProbeOutcome::unreachable(reason, chain)
}

/// The error and its sources in one line. URLs we build never hold a token, but the
/// request URL is removed all the same so nothing from the target leaks into labels.
fn error_chain(e: &reqwest::Error) -> String {
    let mut out = String::new();
    let mut current: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = current {
        let text = err.to_string();
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
        current = err.source();
    }
    if let Some(url) = e.url() {
        out = out.replace(url.as_str(), "<provider>");
    }
    out
}

/// A header as text, if present and visible ASCII.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap, now: Timestamp) -> Option<Duration> {
    let value = header(headers, "retry-after")?;
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
    for prefix in ["x-ratelimit-", "ratelimit-", "x-rate-limit-"] {
        let num = |suffix: &str| {
            header(headers, &format!("{prefix}{suffix}")).and_then(|v| v.parse::<f64>().ok())
        };
        let remaining = num("remaining");
        let limit = num("limit");
        if remaining.is_none() && limit.is_none() {
            continue;
        }
        let reset_at = num("reset").and_then(|s| Timestamp::from_second(s as i64).ok());
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

/// True when an outcome says nothing about the token (for fault tests and the store).
pub fn is_provider_fault(outcome: &ProbeOutcome) -> bool {
    matches!(outcome.verdict, Verdict::Unreachable | Verdict::RateLimited)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = Timestamp::from_second(784_111_777).unwrap(); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            retry_after(&headers(&[("retry-after", "120")]), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Sun, 06 Nov 1994 08:50:37 GMT")]),
                now
            ),
            Some(Duration::from_secs(60))
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
    }

    #[test]
    fn rate_limit_families() {
        let gh = rate_limit(&headers(&[
            ("x-ratelimit-remaining", "4999"),
            ("x-ratelimit-limit", "5000"),
            ("x-ratelimit-reset", "1700000000"),
        ]))
        .unwrap();
        assert_eq!(gh.remaining, Some(4999.0));
        assert_eq!(gh.reset_at.unwrap().as_second(), 1_700_000_000);
        let okta = rate_limit(&headers(&[("x-rate-limit-remaining", "3")])).unwrap();
        assert_eq!(okta.remaining, Some(3.0));
        assert!(rate_limit(&headers(&[])).is_none());
    }

    #[test]
    fn common_statuses() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let h = headers(&[("retry-after", "30")]);
        let o = common_status(429, &h, now);
        assert_eq!(o.verdict, Verdict::RateLimited);
        assert_eq!(o.retry_after, Some(Duration::from_secs(30)));
        assert_eq!(
            common_status(503, &HeaderMap::new(), now).reason,
            Reason::Http5xx
        );
        assert_eq!(
            common_status(302, &HeaderMap::new(), now).reason,
            Reason::UnexpectedStatus
        );
    }

    #[test]
    fn garbage_json_is_bad_response() {
        let err = json::<serde_json::Value>(b"<html>proxy</html>").unwrap_err();
        assert_eq!(err.verdict, Verdict::Unreachable);
        assert_eq!(err.reason, Reason::BadResponse);
    }
}
