//! Outbound HTTP shared by providers: one client, bounded bodies, and the mapping of
//! transport failures and common status codes to outcomes.

use std::time::Duration;

use jiff::Timestamp;
use reqwest::header::{AsHeaderName, HeaderMap, HeaderName};

use crate::model::{ProbeOutcome, RateLimit, Reason};

/// The most of a provider's answer we read. Real answers are a few KiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A provider's answer, read whole (up to [`MAX_BODY_BYTES`]).
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// The most response headers accepted over HTTP/1 (hyper's default, pinned so an upgrade
/// cannot loosen it). The whole HTTP/1 response head must also fit hyper's read buffer,
/// about 400 KiB (8 KiB + 100 x 4 KiB), which reqwest does not expose.
pub const MAX_RESPONSE_HEADERS: usize = 100;

/// The most header bytes accepted in one HTTP/2 response (HPACK-decoded, as
/// SETTINGS_MAX_HEADER_LIST_SIZE counts them). Real providers send 1 to 4 KiB.
pub const MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;

/// The client every provider shares. Every answer is bounded: headers (above), body
/// ([`MAX_BODY_BYTES`]), time (10 s to connect, 60 s in all; each probe also has its own
/// `probe_timeout`). Redirects are not followed: a provider that redirects an API call is
/// misrouted, and following would send the token to wherever it points.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("api-token-exporter/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .pool_idle_timeout(Duration::from_secs(90))
        .http1_max_headers(MAX_RESPONSE_HEADERS)
        .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
        .build()
        .expect("a client with static settings builds")
}

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

/// Sends a request and reads the body up to the cap. Transport failures become outcomes.
pub async fn send(request: reqwest::RequestBuilder) -> Result<Response, ProbeOutcome> {
    let mut resp = request.send().await.map_err(|e| transport_outcome(&e))?;
    let status = resp.status().as_u16();
    let headers = std::mem::take(resp.headers_mut());
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

/// `application/json`, the `Accept` of every JSON request (`.header(ACCEPT, http::JSON)`):
/// made once, not parsed from text at each request.
pub const JSON: reqwest::header::HeaderValue =
    reqwest::header::HeaderValue::from_static("application/json");

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

/// A header map from pairs, for the providers' table tests.
#[cfg(test)]
pub(crate) fn test_headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            reqwest::header::HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

#[cfg(test)]
mod tests {
    use super::test_headers as headers;
    use super::*;
    use crate::model::Verdict;

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

    /// Answers one request on loopback with `answer`, verbatim, and returns its URL.
    async fn raw_server(answer: Vec<u8>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let _ = stream.read(&mut buf).await;
            let _ = stream.write_all(&answer).await;
            let _ = stream.shutdown().await;
        });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn answers_are_bounded() {
        // Too many headers: the answer is refused before the body is read.
        let mut many = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n".to_vec();
        for i in 0..MAX_RESPONSE_HEADERS {
            many.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n{}");
        let url = raw_server(many).await;
        let err = send(client().get(&url)).await.unwrap_err();
        assert_eq!(err.verdict, Verdict::Unreachable);

        // A body past the cap, announced or not.
        let big = MAX_BODY_BYTES + 1;
        let mut announced =
            format!("HTTP/1.1 200 OK\r\ncontent-length: {big}\r\n\r\n").into_bytes();
        announced.resize(announced.len() + big, b'x');
        let url = raw_server(announced).await;
        assert_eq!(
            send(client().get(&url)).await.unwrap_err().reason,
            Reason::BadResponse
        );
        let mut unannounced = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_vec();
        unannounced.resize(unannounced.len() + big, b'x');
        let url = raw_server(unannounced).await;
        assert_eq!(
            send(client().get(&url)).await.unwrap_err().reason,
            Reason::BadResponse
        );

        // A redirect comes back as the answer; nothing is fetched from where it points.
        let url = raw_server(
            b"HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:9/steal\r\ncontent-length: 0\r\n\r\n"
                .to_vec(),
        )
        .await;
        assert_eq!(send(client().get(&url)).await.unwrap().status, 302);

        // Within the bounds, an answer is read whole.
        let url = raw_server(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".to_vec()).await;
        let ok = send(client().get(&url)).await.unwrap();
        assert_eq!((ok.status, ok.body.as_slice()), (200, &b"{}"[..]));
    }

    #[test]
    fn garbage_json_is_bad_response() {
        let err = json::<serde_json::Value>(b"<html>proxy</html>").unwrap_err();
        assert_eq!(err.verdict, Verdict::Unreachable);
        assert_eq!(err.reason, Reason::BadResponse);
    }
}
