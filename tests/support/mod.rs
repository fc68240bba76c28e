//! The one support tree of the integration tests: a recording HTTP server that answers as a
//! provider's documentation says (this file), the binary as a child process (`daemon`), the
//! fixed clock (`clock`), the real peers (`prom`: Prometheus, Alertmanager, promtool, node;
//! `oidc`: oidc-provider; `bao`: OpenBao; `moto`: moto's STS and IAM) and the notification
//! harness (`notify`).
//! `tests/it/main.rs` includes it, and so does each binary that must run alone.
// Not every binary that includes the tree uses every helper.
#![allow(dead_code)]

pub mod bao;
pub mod clock;
pub mod daemon;
pub mod listing;
pub mod moto;
pub mod notify;
pub mod oidc;
pub mod prom;
pub mod rss;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, Response, StatusCode, Uri};

use api_token_exporter::config::{Config, TokenSpec};
use api_token_exporter::model::ProbeOutcome;
use api_token_exporter::provider::{BuildContext, run_probe};

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn path(&self) -> &str {
        self.uri.path()
    }
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A canned answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long before answering (for timeout tests).
    pub delay: Option<std::time::Duration>,
    /// Called after the delay and before the answer is written, so whatever it records
    /// happens before the client can see the answer.
    pub on_send: Option<OnSend>,
}

/// A callback of [`Answer::on_send`].
#[derive(Clone)]
pub struct OnSend(Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for OnSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnSend")
    }
}

impl Answer {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Answer {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
            delay: None,
            on_send: None,
        }
    }
    pub fn text(status: u16, content_type: &str, body: &str) -> Self {
        Answer {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.as_bytes().to_vec(),
            delay: None,
            on_send: None,
        }
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn delayed(mut self, d: std::time::Duration) -> Self {
        self.delay = Some(d);
        self
    }
    /// Runs `f` once the answer is due, just before it is written.
    pub fn on_send(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_send = Some(OnSend(Arc::new(f)));
        self
    }
}

type Handler = dyn Fn(&Recorded) -> Answer + Send + Sync;

/// A provider stand-in on 127.0.0.1:0 that records every request.
pub struct MockServer {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl MockServer {
    /// Starts a server whose answers come from `handler`.
    pub async fn start(handler: impl Fn(&Recorded) -> Answer + Send + Sync + 'static) -> Self {
        let handler: Arc<Handler> = Arc::new(handler);
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        let app = axum::Router::new().fallback(move |req: Request<Body>| {
            let handler = handler.clone();
            let log = log2.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body: Bytes = axum::body::to_bytes(body, 16 * 1024 * 1024)
                    .await
                    .unwrap_or_default();
                let rec = Recorded {
                    method: parts.method,
                    uri: parts.uri,
                    headers: parts.headers,
                    body: body.to_vec(),
                };
                let answer = handler(&rec);
                log.lock().unwrap().push(rec);
                if let Some(d) = answer.delay {
                    tokio::time::sleep(d).await;
                }
                if let Some(OnSend(f)) = &answer.on_send {
                    f();
                }
                let mut resp =
                    Response::builder().status(StatusCode::from_u16(answer.status).unwrap());
                for (k, v) in &answer.headers {
                    resp = resp.header(k, v);
                }
                resp.body(Body::from(answer.body)).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        MockServer { addr, log, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    /// Fails the test if any request used a forbidden (method, path prefix) pair, or carried
    /// `token` anywhere in its URL.
    pub fn assert_safe(&self, forbidden: &[(&str, &str)], token: &str) {
        for r in self.requests() {
            assert!(
                !r.uri.to_string().contains(token),
                "a probe put the token in a URL: {} {}",
                r.method,
                r.path()
            );
            for (method, prefix) in forbidden {
                assert!(
                    !(r.method.as_str() == *method && r.path().starts_with(prefix)),
                    "a probe made a forbidden call: {} {}",
                    r.method,
                    r.path()
                );
            }
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Writes `value` to a temp file and returns a `{file: ...}` source snippet for a config.
pub struct SecretFiles {
    dir: tempfile::TempDir,
}

impl SecretFiles {
    pub fn new() -> Self {
        SecretFiles {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    /// Writes a secret and returns the YAML flow mapping that points at it.
    pub fn put(&self, name: &str, value: &str) -> String {
        let path: PathBuf = self.dir.path().join(name);
        std::fs::write(&path, format!("{value}\n")).unwrap();
        format!("{{file: {}}}", path.display())
    }
}

/// Parses a config (panicking with its errors) and probes the named token once at `now`.
pub async fn probe_once(yaml: &str, token: &str, now: jiff::Timestamp) -> ProbeOutcome {
    let config = Config::parse(yaml).unwrap_or_else(|e| panic!("config does not load:\n{e}"));
    probe_with(&config, token, now).await
}

pub async fn probe_with(config: &Config, token: &str, now: jiff::Timestamp) -> ProbeOutcome {
    let spec: &TokenSpec = config.token(token).expect("token in config");
    let provider = config.providers[&spec.provider]
        .build(&BuildContext::new())
        .unwrap();
    run_probe(provider.as_ref(), spec, now).await.outcome
}

/// Fails when `token` shows in the outcome's `Debug` or JSON: what a log line or the API
/// would print of it.
pub fn assert_outcome_hides(outcome: &ProbeOutcome, token: &str) {
    assert!(
        !format!("{outcome:?}").contains(token),
        "the outcome's Debug holds the token"
    );
    let json = serde_json::to_string(outcome).expect("outcome as JSON");
    assert!(!json.contains(token), "the outcome's JSON holds the token");
}

/// Asserts no value of `values` is in any place of `places` (what, text); the failure names
/// the place, never the value.
pub fn assert_hidden_in<T: AsRef<str>>(places: &[(&str, T)], values: &[&str]) {
    for value in values {
        for (what, text) in places {
            assert!(!text.as_ref().contains(value), "a value in the {what}");
        }
    }
}

/// Header pairs as a sorted map, for assertions on what a probe sent.
pub fn headers_of(r: &Recorded) -> BTreeMap<String, String> {
    r.headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or("<binary>").to_string(),
            )
        })
        .collect()
}

/// Whether a missing peer may be skipped: only outside CI and with PEERS_OPTIONAL=1.
pub fn peer_missing(what: &str) -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let optional = std::env::var("PEERS_OPTIONAL").is_ok_and(|v| v == "1");
    if ci || !optional {
        panic!(
            "{what} is not installed: run .ci/run (it installs the test peers), or set PEERS_OPTIONAL=1 outside CI to skip"
        );
    }
    eprintln!("SKIPPED: {what} is not installed (PEERS_OPTIONAL=1)");
    true
}

/// An inventory of `n` `oauth2_introspection` tokens at the sizes the benchmarks use, each
/// with a file secret (never read: these tests load or store, they do not probe) and two
/// labels.
pub fn large_inventory(n: usize) -> String {
    let mut yaml = String::from(
        "providers:\n  idp:\n    kind: oauth2_introspection\n    introspection_endpoint: https://idp.example.com/introspect\n    client_id: exporter\n    client_secret: {env: IDP_SECRET}\ntokens:\n",
    );
    for i in 0..n {
        yaml.push_str(&format!(
            "  - name: token-{i:06}\n    provider: idp\n    secret: {{file: /run/secrets/t{i:06}}}\n    labels: {{team: team-{}, owner: owner-{}@example.com}}\n",
            i % 50,
            i % 500
        ));
    }
    yaml
}
