//! Outbound HTTP shared by providers: one client, bounded bodies, and the mapping of
//! transport failures and common status codes to outcomes.
//!
//! The client is hyper's pooled client over rustls, used directly. reqwest is built on the
//! same crates, but each of its requests also passes its redirect layer (which parses the
//! request URL again even when redirects are off) and its retry layer (which copies the
//! request), work a probe that never follows redirects or retries has no use for.
//! Requests that a proxy from the environment (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`,
//! `NO_PROXY`) applies to go through reqwest, which implements proxies, with the same
//! settings and the same reading of the answer.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as Pool;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rustls::pki_types::CertificateDer;

use crate::model::{ProbeOutcome, Reason};

mod answer;
pub mod pages;
pub use answer::*;

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
/// about 400 KiB (8 KiB + 100 x 4 KiB).
pub const MAX_RESPONSE_HEADERS: usize = 100;

/// The most header bytes accepted in one HTTP/2 response (HPACK-decoded, as
/// SETTINGS_MAX_HEADER_LIST_SIZE counts them). Real providers send 1 to 4 KiB.
pub const MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;

/// Time to open a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// Time for a whole proxied request (the direct path is bounded by each probe's
/// `probe_timeout`, see [`send`]).
const PROXIED_TIMEOUT: Duration = Duration::from_secs(60);

const USER_AGENT: HeaderValue =
    HeaderValue::from_static(concat!("api-token-exporter/", env!("CARGO_PKG_VERSION")));

const FORM: HeaderValue = HeaderValue::from_static("application/x-www-form-urlencoded");

/// The client every provider shares (cheap to clone: one pool). Every answer is bounded:
/// headers (above), body ([`MAX_BODY_BYTES`]), time (10 s to connect; each probe has its
/// own `probe_timeout`, under which every provider call runs). Redirects are not followed:
/// a provider that redirects an API call is misrouted, and following would send the token
/// to wherever it points.
#[derive(Clone)]
pub struct Client(Arc<Inner>);

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("proxied", &self.0.proxied.is_some())
            .finish_non_exhaustive()
    }
}

struct Inner {
    direct: Pool<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// Set when the environment names a proxy: which requests it applies to, and reqwest
    /// to send those.
    proxied: Option<(Matcher, reqwest::Client)>,
}

/// Which certificate authorities a [`Client`] trusts.
enum Roots {
    /// The platform's, through rustls-platform-verifier (as reqwest does by default).
    Platform,
    /// Only these (a Kubernetes cluster's own CA).
    Only(Vec<CertificateDer<'static>>),
}

/// The shared client, trusting the platform's certificate authorities.
pub fn client() -> Client {
    Client::build(Roots::Platform, proxy_from_env()).expect("a client with static settings builds")
}

/// The names of the proxy variables, as curl and reqwest read them.
const PROXY_VARIABLES: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The environment's proxy settings, if it has any: which requests they apply to. reqwest
/// reads the same variables the same way (hyper-util's matcher) and sends those requests.
fn proxy_from_env() -> Option<Proxy> {
    PROXY_VARIABLES
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
        .then(|| Proxy {
            matcher: Matcher::from_system(),
            explicit: None,
        })
}

/// Which requests go through a proxy, and (in tests) the proxy reqwest is told of instead
/// of reading the environment.
struct Proxy {
    matcher: Matcher,
    explicit: Option<reqwest::Proxy>,
}

impl Client {
    /// A client that trusts only the certificates in `pem` (a CA bundle).
    pub fn trusting_only(pem: &[u8]) -> Result<Client, String> {
        use rustls::pki_types::pem::PemObject;
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("not a PEM certificate bundle: {e}"))?;
        if certs.is_empty() {
            return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) found".into());
        }
        Client::build(Roots::Only(certs), proxy_from_env())
    }

    fn build(roots: Roots, proxy: Option<Proxy>) -> Result<Client, String> {
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
        let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS settings: {e}"))?;
        let tls = match &roots {
            Roots::Platform => {
                let verifier = rustls_platform_verifier::Verifier::new(provider)
                    .map_err(|e| format!("the platform's certificate store: {e}"))?;
                tls.dangerous()
                    .with_custom_certificate_verifier(Arc::new(verifier))
            }
            Roots::Only(certs) => {
                let mut store = rustls::RootCertStore::empty();
                for cert in certs {
                    store
                        .add(cert.clone())
                        .map_err(|e| format!("the certificates cannot be used: {e}"))?;
                }
                tls.with_root_certificates(store)
            }
        }
        .with_no_client_auth();
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(tcp);
        let direct = Pool::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http1_max_headers(MAX_RESPONSE_HEADERS)
            .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
            .build(connector);
        let proxied = match proxy {
            None => None,
            Some(Proxy { matcher, explicit }) => {
                let mut builder = reqwest::Client::builder()
                    .user_agent(USER_AGENT)
                    .redirect(reqwest::redirect::Policy::none())
                    .connect_timeout(CONNECT_TIMEOUT)
                    .timeout(PROXIED_TIMEOUT)
                    .pool_idle_timeout(POOL_IDLE)
                    .http1_max_headers(MAX_RESPONSE_HEADERS)
                    .http2_max_header_list_size(MAX_HEADER_LIST_BYTES);
                if let Some(proxy) = explicit {
                    builder = builder.no_proxy().proxy(proxy);
                }
                if let Roots::Only(certs) = roots {
                    let certs = certs
                        .iter()
                        .map(|c| reqwest::Certificate::from_der(c))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| format!("the certificates cannot be used: {e}"))?;
                    builder = builder.tls_certs_only(certs);
                }
                let client = builder
                    .build()
                    .map_err(|e| format!("the proxied client: {e}"))?;
                Some((matcher, client))
            }
        };
        Ok(Client(Arc::new(Inner { direct, proxied })))
    }

    pub fn get(&self, url: impl IntoUri) -> RequestBuilder {
        self.request(::http::Method::GET, url)
    }

    pub fn post(&self, url: impl IntoUri) -> RequestBuilder {
        self.request(::http::Method::POST, url)
    }

    pub fn patch(&self, url: impl IntoUri) -> RequestBuilder {
        self.request(::http::Method::PATCH, url)
    }

    /// Only a rotator writes with it (Cloudflare's token roll).
    pub fn put(&self, url: impl IntoUri) -> RequestBuilder {
        self.request(::http::Method::PUT, url)
    }

    fn request(&self, method: ::http::Method, url: impl IntoUri) -> RequestBuilder {
        let mut headers = HeaderMap::with_capacity(6);
        headers.insert(reqwest::header::USER_AGENT, USER_AGENT);
        RequestBuilder {
            client: self.clone(),
            request: url.into_uri().map(|uri| {
                let mut request = ::http::Request::new(Bytes::new());
                *request.method_mut() = method;
                *request.uri_mut() = uri;
                *request.headers_mut() = headers;
                request
            }),
        }
    }
}

/// What a request's URL may be given as. Text is parsed as a URL first (as a browser would,
/// normalising it), so a URL read from a provider's document is taken as reqwest took it.
pub trait IntoUri {
    fn into_uri(self) -> Result<::http::Uri, String>;
}

impl IntoUri for &::http::Uri {
    fn into_uri(self) -> Result<::http::Uri, String> {
        Ok(self.clone())
    }
}

impl IntoUri for &url::Url {
    fn into_uri(self) -> Result<::http::Uri, String> {
        ::http::Uri::try_from(self.as_str()).map_err(|e| format!("invalid URL: {e}"))
    }
}

impl IntoUri for &str {
    fn into_uri(self) -> Result<::http::Uri, String> {
        let url = url::Url::parse(self).map_err(|e| format!("invalid URL: {e}"))?;
        url.into_uri()
    }
}

impl IntoUri for &String {
    fn into_uri(self) -> Result<::http::Uri, String> {
        self.as_str().into_uri()
    }
}

impl IntoUri for String {
    fn into_uri(self) -> Result<::http::Uri, String> {
        self.as_str().into_uri()
    }
}

/// A request being built: the subset of reqwest's builder the providers use. An error in
/// building is kept and reported by [`send`]; it names what was wrong, never a value.
pub struct RequestBuilder {
    client: Client,
    request: Result<::http::Request<Bytes>, String>,
}

/// The headers the providers send a token or credential in. Their values are marked
/// sensitive: HTTP/2 sends them never-indexed, so no HPACK table along the way keeps them.
const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "private-token", "x-vault-token"];

impl RequestBuilder {
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        HeaderValue: TryFrom<V>,
    {
        if let Ok(request) = &mut self.request {
            match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                (Ok(name), Ok(mut value)) => {
                    if CREDENTIAL_HEADERS.contains(&name.as_str()) {
                        value.set_sensitive(true);
                    }
                    request.headers_mut().insert(name, value);
                }
                (Err(_), _) => self.request = Err("invalid header name".into()),
                (Ok(name), Err(_)) => {
                    self.request = Err(format!("invalid value for the {name} header"));
                }
            }
        }
        self
    }

    /// A header that carries a token or credential under a name the config chooses (the
    /// generic `http` kind): marked sensitive like [`CREDENTIAL_HEADERS`].
    pub fn sensitive_header(mut self, name: &str, value: String) -> Self {
        if let Ok(request) = &mut self.request {
            match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                (Ok(name), Ok(mut value)) => {
                    value.set_sensitive(true);
                    request.headers_mut().insert(name, value);
                }
                (Err(_), _) => self.request = Err("invalid header name".into()),
                (Ok(name), Err(_)) => {
                    self.request = Err(format!("invalid value for the {name} header"));
                }
            }
        }
        self
    }

    pub fn bearer_auth(self, token: &str) -> Self {
        self.header(reqwest::header::AUTHORIZATION, format!("Bearer {token}"))
    }

    /// The body, form-urlencoded, with its content type.
    pub fn form<T: serde::Serialize + ?Sized>(self, form: &T) -> Self {
        let encoded = serde_urlencoded::to_string(form).map(Bytes::from);
        self.body(encoded.map_err(|_| "the form cannot be encoded"), FORM)
    }

    /// The body as JSON, with its content type.
    pub fn json<T: serde::Serialize + ?Sized>(self, json: &T) -> Self {
        let encoded = serde_json::to_vec(json).map(Bytes::from);
        self.body(encoded.map_err(|_| "the JSON body cannot be encoded"), JSON)
    }

    fn body(mut self, encoded: Result<Bytes, &str>, content_type: HeaderValue) -> Self {
        if let Ok(request) = &mut self.request {
            match encoded {
                Ok(body) => {
                    *request.body_mut() = body;
                    request
                        .headers_mut()
                        .insert(reqwest::header::CONTENT_TYPE, content_type);
                }
                Err(e) => self.request = Err(e.into()),
            }
        }
        self
    }
}

/// The outcome of a request that could not be made (what was wrong, never a value).
fn unbuildable(e: impl std::fmt::Display) -> ProbeOutcome {
    ProbeOutcome::unreachable(Reason::Connect, format!("the request cannot be made: {e}"))
}

/// Sends a request and reads the body up to the cap. Transport failures become outcomes.
///
/// The direct path sets no overall deadline of its own: every provider call runs inside
/// `run_probe`, under the token's `probe_timeout`, which drops the request when it expires.
pub async fn send(request: RequestBuilder) -> Result<Response, ProbeOutcome> {
    let RequestBuilder { client, request } = request;
    let request = request.map_err(unbuildable)?;
    if let Some((matcher, proxied)) = &client.0.proxied
        && matcher.intercept(request.uri()).is_some()
    {
        return send_proxied(proxied, request).await;
    }
    let response = client
        .0
        .direct
        .request(request.map(Full::new))
        .await
        .map_err(|e| transport_outcome(&e, Reason::Connect))?;
    let (head, body) = response.into_parts();
    read_capped(head.status.as_u16(), head.headers, body).await
}

/// Sends through reqwest, which applies the proxy.
async fn send_proxied(
    client: &reqwest::Client,
    request: ::http::Request<Bytes>,
) -> Result<Response, ProbeOutcome> {
    let request =
        reqwest::Request::try_from(request.map(reqwest::Body::from)).map_err(unbuildable)?;
    let mut response = client
        .execute(request)
        .await
        .map_err(|e| transport_outcome(&e, Reason::Connect))?;
    let status = response.status().as_u16();
    let headers = std::mem::take(response.headers_mut());
    read_capped(status, headers, reqwest::Body::from(response)).await
}

/// Reads an answer's body, refusing one over [`MAX_BODY_BYTES`] (announced or not).
async fn read_capped<B>(status: u16, headers: HeaderMap, body: B) -> Result<Response, ProbeOutcome>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: StdError + 'static,
{
    if let Some(len) = body.size_hint().exact()
        && len > MAX_BODY_BYTES as u64
    {
        return Err(too_large());
    }
    let mut body = std::pin::pin!(body);
    let mut read: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| transport_outcome(&e, Reason::BadResponse))?;
        if let Ok(chunk) = frame.into_data() {
            if read.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_large());
            }
            if read.is_empty() {
                // Most answers are one chunk: take it whole.
                read = Vec::from(chunk);
            } else {
                read.extend_from_slice(&chunk);
            }
        }
    }
    Ok(Response {
        status,
        headers,
        body: read,
    })
}

fn too_large() -> ProbeOutcome {
    ProbeOutcome::unreachable(
        Reason::BadResponse,
        format!("the provider's answer is larger than {MAX_BODY_BYTES} bytes"),
    )
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
mod tests;
