use std::sync::Arc;
use std::time::Duration;

use super::test_headers as headers;
use hyper_util::client::proxy::matcher::Matcher;
use jiff::Timestamp;
use reqwest::header::HeaderMap;

use crate::model::Reason;

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
    format!("{}/", recording_server(answer).await.0)
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
    let mut announced = format!("HTTP/1.1 200 OK\r\ncontent-length: {big}\r\n\r\n").into_bytes();
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

/// Answers one request on loopback with `answer`, verbatim, and hands back its origin
/// (`http://127.0.0.1:PORT`) and, once it came, the request it read.
async fn recording_server(answer: Vec<u8>) -> (String, tokio::sync::oneshot::Receiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let _ = tx.send(answer_one(stream, &answer).await);
    });
    (format!("http://{addr}"), rx)
}

/// Reads one request from `stream` (one read: the tests' requests are small), writes
/// `answer` verbatim and closes; returns the request as read.
async fn answer_one<S>(mut stream: S, answer: &[u8]) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 8192];
    let n = stream.read(&mut buf).await.unwrap_or(0);
    let _ = stream.write_all(answer).await;
    let _ = stream.shutdown().await;
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// A request the proxy settings apply to goes to the proxy, in absolute form, with its
/// headers and body; one they exclude goes straight to its server; both are read alike.
#[tokio::test]
async fn proxied_requests_go_to_the_proxy_and_others_go_direct() {
    let (proxy, proxy_saw) = recording_server(
        b"HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n{\"via\":\"proxy\"}".to_vec(),
    )
    .await;
    let (direct, direct_saw) = recording_server(
        b"HTTP/1.1 200 OK\r\ncontent-length: 16\r\n\r\n{\"via\":\"direct\"}".to_vec(),
    )
    .await;
    let client = Client::build(
        Roots::Platform,
        Some(Proxy {
            matcher: Matcher::builder()
                .http(proxy.clone())
                .no("127.0.0.1")
                .build(),
            explicit: Some(reqwest::Proxy::http(&proxy).unwrap()),
        }),
    )
    .unwrap();

    // `idp.invalid` resolves nowhere: only the proxy can answer for it.
    let request = client
        .post("http://idp.invalid/introspect")
        .bearer_auth("proxied-canary")
        .form(&[("token", "t")]);
    let answer = send(request).await.unwrap();
    assert_eq!(
        (answer.status, answer.body.as_slice()),
        (200, &b"{\"via\":\"proxy\"}"[..])
    );
    let seen = proxy_saw.await.unwrap();
    assert!(
        seen.starts_with("POST http://idp.invalid/introspect HTTP/1.1\r\n"),
        "{seen}"
    );
    assert!(
        seen.contains("authorization: Bearer proxied-canary"),
        "{seen}"
    );
    assert!(seen.ends_with("\r\n\r\ntoken=t"), "{seen}");

    let answer = send(client.get(format!("{direct}/x"))).await.unwrap();
    assert_eq!(answer.body, b"{\"via\":\"direct\"}");
    let seen = direct_saw.await.unwrap();
    assert!(seen.starts_with("GET /x HTTP/1.1\r\n"), "{seen}");
    assert!(seen.contains("user-agent: api-token-exporter/"), "{seen}");
}

/// A CA made for one test, as rcgen's issuer (its certificate is `.der()`).
fn test_ca() -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap()
}

/// An HTTPS server on loopback whose certificate `ca` signed, for 127.0.0.1: answers
/// every request with `{}`. Hands back its port and the requests it read, in order.
async fn tls_server(
    ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
) -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, ca)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = requests.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            // A handshake the client gives up on is the test's negative case.
            let Ok(tls) = acceptor.accept(stream).await else {
                continue;
            };
            let request = answer_one(tls, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").await;
            seen.lock().unwrap().push(request);
        }
    });
    (port, requests)
}

/// A forward proxy on loopback that only tunnels (`CONNECT`), as corporate proxies do
/// for HTTPS. Hands back its URL and every byte a client sent it, the tunnelled ones
/// included.
async fn connect_proxy() -> (String, Arc<std::sync::Mutex<Vec<u8>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let relayed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = relayed.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = vec![0u8; 8192];
                while !head.ends_with(b"\r\n\r\n") {
                    let n = client.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&buf[..n]);
                }
                log.lock().unwrap().extend_from_slice(&head);
                let text = String::from_utf8_lossy(&head).into_owned();
                let Some(target) = text
                    .strip_prefix("CONNECT ")
                    .and_then(|rest| rest.split(' ').next())
                else {
                    let _ = client
                        .write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                        .await;
                    return;
                };
                let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let (mut from_client, mut to_client) = client.into_split();
                let (mut from_server, mut to_server) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
                });
                loop {
                    let n = from_client.read(&mut buf).await.unwrap_or(0);
                    if n == 0 || to_server.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    log.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    (format!("http://{addr}"), relayed)
}

/// An https request a proxy applies to is tunnelled through it: the proxy sees a
/// CONNECT and TLS records, never the token; the server's certificate is checked
/// against the configured CA (a kubernetes `ca_file`) at the far end of the tunnel.
#[tokio::test]
async fn https_through_a_proxy_is_tunnelled_and_checked_against_the_ca() {
    let ca = test_ca();
    let (port, requests) = tls_server(&ca).await;
    let (proxy, relayed) = connect_proxy().await;
    let via_proxy = |ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>| {
        Client::build(
            Roots::Only(vec![ca.der().clone()]),
            Some(Proxy {
                matcher: Matcher::builder().https(proxy.clone()).build(),
                explicit: Some(reqwest::Proxy::https(&proxy).unwrap()),
            }),
        )
        .unwrap()
    };
    let url = format!("https://127.0.0.1:{port}/x");

    let answer = send(via_proxy(&ca).get(&url).bearer_auth("tunnelled-canary"))
        .await
        .unwrap();
    assert_eq!((answer.status, answer.body.as_slice()), (200, &b"{}"[..]));
    let seen = requests.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with("GET /x HTTP/1.1\r\n"), "{}", seen[0]);
    assert!(
        seen[0].contains("authorization: Bearer tunnelled-canary"),
        "{}",
        seen[0]
    );
    let relayed = relayed.lock().unwrap().clone();
    let connect = format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n");
    assert!(
        relayed.starts_with(connect.as_bytes()),
        "{}",
        String::from_utf8_lossy(&relayed)
    );
    assert!(
        relayed.len() > connect.len() + 100,
        "no TLS records relayed"
    );
    assert!(
        !relayed.windows(16).any(|w| w == b"tunnelled-canary"),
        "the proxy saw the token"
    );

    // A client that trusts another CA refuses the server at the end of the tunnel.
    let err = send(
        via_proxy(&test_ca())
            .get(&url)
            .bearer_auth("tunnelled-canary"),
    )
    .await
    .unwrap_err();
    assert_eq!(
        (err.verdict, err.reason),
        (Verdict::Unreachable, Reason::Tls),
        "{}",
        err.detail
    );
    assert!(!err.detail.contains("tunnelled-canary"), "{}", err.detail);
    assert_eq!(requests.lock().unwrap().len(), 1);
}

/// Every header that carries a token is marked sensitive; the others are not.
#[test]
fn credential_headers_are_sensitive() {
    let built = client()
        .get("http://127.0.0.1:9/")
        .bearer_auth("a")
        .header("private-token", "b")
        .header("x-vault-token", "c")
        .header("x-vault-namespace", "team")
        .request
        .unwrap();
    let sensitive = |name: &str| built.headers()[name].is_sensitive();
    assert!(sensitive("authorization"));
    assert!(sensitive("private-token"));
    assert!(sensitive("x-vault-token"));
    assert!(!sensitive("x-vault-namespace"));
    assert!(!sensitive("user-agent"));
}

/// A request that cannot be made says what was wrong, never the value.
#[tokio::test]
async fn a_bad_request_names_the_problem_not_the_value() {
    let err = send(
        client()
            .get("http://127.0.0.1:9/")
            .header("x-token", "canary\nvalue"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.verdict, Verdict::Unreachable);
    assert!(err.detail.contains("x-token"), "{}", err.detail);
    assert!(!err.detail.contains("canary"), "{}", err.detail);
    let err = send(client().get("not a url")).await.unwrap_err();
    assert!(err.detail.contains("invalid URL"), "{}", err.detail);
}

#[test]
fn garbage_json_is_bad_response() {
    let err = json::<serde_json::Value>(b"<html>proxy</html>").unwrap_err();
    assert_eq!(err.verdict, Verdict::Unreachable);
    assert_eq!(err.reason, Reason::BadResponse);
}
