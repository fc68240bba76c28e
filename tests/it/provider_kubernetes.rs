//! The `kubernetes` provider against a local server that answers as the API server's
//! TokenReview API does, plus one real TLS handshake against a server signed by a private CA.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support;
use crate::support::clock::{NOW, now};
use api_token_exporter::config::Config;
use api_token_exporter::model::{Expiry, ProbeOutcome, Reason, Verdict};
use base64::Engine;
use jiff::Timestamp;
use serde_json::{Value, json};
use support::{Answer, MockServer, Recorded, SecretFiles, peer_missing, probe_once, probe_with};

const OWN_TOKEN: &str = "canary-exporter-own-service-account-token";
const REVIEW_PATH: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

/// Calls that mint, change or delete credentials or the objects tokens are bound to.
const NEVER_CALL: &[(&str, &str)] = &[
    ("POST", "/api/v1/namespaces"),
    ("PUT", "/api/v1/namespaces"),
    ("PATCH", "/api/v1/namespaces"),
    ("DELETE", "/api"),
    ("DELETE", "/apis"),
];

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn jwt(claims: Value) -> String {
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(&json!({"alg": "RS256", "kid": "k1"})),
        b64(&claims)
    )
}

/// A bound service-account token as the kubelet projects it: `exp` a year out, `warnafter`
/// an hour after issue.
fn bound_token() -> String {
    jwt(json!({
        "aud": ["https://kubernetes.default.svc.cluster.local"],
        "exp": NOW + 365 * 86_400,
        "iat": NOW - 600,
        "nbf": NOW - 600,
        "iss": "https://kubernetes.default.svc.cluster.local",
        "jti": "b1c2d3",
        "kubernetes.io": {
            "namespace": "ci",
            "node": {"name": "node-a", "uid": "n-uid"},
            "pod": {"name": "runner-1", "uid": "p-uid"},
            "serviceaccount": {"name": "deployer", "uid": "sa-uid"},
            "warnafter": NOW + 3000
        },
        "sub": "system:serviceaccount:ci:deployer"
    }))
}

/// A legacy token from a `kubernetes.io/service-account-token` secret: no `exp`.
fn legacy_token() -> String {
    jwt(json!({
        "iss": "kubernetes/serviceaccount",
        "kubernetes.io/serviceaccount/namespace": "ci",
        "kubernetes.io/serviceaccount/secret.name": "deployer-token-x7k2p",
        "kubernetes.io/serviceaccount/service-account.name": "deployer",
        "kubernetes.io/serviceaccount/service-account.uid": "sa-uid",
        "sub": "system:serviceaccount:ci:deployer"
    }))
}

fn review(status: Value) -> Answer {
    Answer::json(
        201,
        json!({
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            // The API server echoes the spec, token included: the parser must not use it.
            "spec": {"token": "echoed-token-value"},
            "status": status
        }),
    )
}

fn accepted(audiences: &[&str]) -> Answer {
    review(json!({
        "authenticated": true,
        "user": {
            "username": "system:serviceaccount:ci:deployer",
            "uid": "sa-uid",
            "groups": ["system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"],
            "extra": {
                "authentication.kubernetes.io/credential-id": ["JTI=b1c2d3"],
                "authentication.kubernetes.io/node-name": ["node-a"],
                "authentication.kubernetes.io/pod-name": ["runner-1"],
                "authentication.kubernetes.io/pod-uid": ["p-uid"]
            }
        },
        "audiences": audiences
    }))
}

fn refused(error: &str) -> Answer {
    // `authenticated` is omitted when false, as the API server's omitempty does.
    review(json!({"user": {}, "error": error}))
}

fn yaml(url: &str, own: &str, secret: &str, audiences: Option<&str>) -> String {
    let audiences = audiences
        .map(|a| format!("    audiences: [{a}]\n"))
        .unwrap_or_default();
    format!(
        "global:\n  probe_timeout: 1s\nproviders:\n  k8s:\n    kind: kubernetes\n    url: {url}\n    token: {own}\ntokens:\n  - name: deployer\n    provider: k8s\n    secret: {secret}\n{audiences}"
    )
}

async fn probe(server: &MockServer, token: &str, audiences: Option<&str>) -> ProbeOutcome {
    let secrets = SecretFiles::new();
    let own = secrets.put("own", OWN_TOKEN);
    let secret = secrets.put("reviewed", token);
    probe_once(
        &yaml(&server.url(), &own, &secret, audiences),
        "deployer",
        now(),
    )
    .await
}

/// The one request must be the documented TokenReview create, with the exporter's own token
/// in the header and the reviewed token only in the body.
fn assert_sent_review(server: &MockServer, token: &str) -> Value {
    server.assert_safe(NEVER_CALL, token);
    server.assert_safe(NEVER_CALL, OWN_TOKEN);
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let r: &Recorded = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path(), REVIEW_PATH);
    assert_eq!(r.uri.query(), None);
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {OWN_TOKEN}").as_str())
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&r.body).expect("the review is JSON");
    assert_eq!(body["apiVersion"], "authentication.k8s.io/v1");
    assert_eq!(body["kind"], "TokenReview");
    assert_eq!(body["spec"]["token"], token);
    body
}

#[tokio::test]
async fn bound_token_is_valid_with_warnafter_expiry_and_server_identity() {
    let token = bound_token();
    let server =
        MockServer::start(|_| accepted(&["https://kubernetes.default.svc.cluster.local"])).await;
    let o = probe(&server, &token, None).await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(
        o.facts.expiry,
        Expiry::At(Timestamp::from_second(NOW + 3000).unwrap())
    );
    assert!(
        o.facts.extra.contains_key("exp"),
        "the extended exp is kept"
    );
    assert_eq!(o.facts.issued_at.unwrap().as_second(), NOW - 600);
    assert_eq!(
        o.facts.subject.as_deref(),
        Some("system:serviceaccount:ci:deployer")
    );
    assert_eq!(
        o.facts.audience,
        ["https://kubernetes.default.svc.cluster.local"]
    );
    assert_eq!(o.facts.token_type.as_deref(), Some("bound_service_account"));
    assert_eq!(o.facts.extra["pod_name"], "runner-1");
    assert_eq!(o.facts.extra["node_name"], "node-a");
    assert!(!o.detail.contains(&token));
    let body = assert_sent_review(&server, &token);
    assert!(body["spec"].get("audiences").is_none());
}

#[tokio::test]
async fn configured_audiences_are_sent_and_must_come_back() {
    let token = bound_token();
    let server = MockServer::start(|_| accepted(&["vault"])).await;
    let o = probe(&server, &token, Some("vault, https://vault.example.com")).await;
    assert_eq!(o.verdict, Verdict::Valid, "{o:?}");
    assert_eq!(o.facts.audience, ["vault"]);
    let body = assert_sent_review(&server, &token);
    assert_eq!(
        body["spec"]["audiences"],
        json!(["vault", "https://vault.example.com"])
    );

    // An authenticator that ignores audiences answers an empty list: not good enough.
    let server = MockServer::start(|_| accepted(&[])).await;
    let o = probe(&server, &token, Some("vault")).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::WrongAudience)
    );
}

#[tokio::test]
async fn legacy_secret_token_never_expires() {
    let token = legacy_token();
    let server = MockServer::start(|_| accepted(&[])).await;
    let o = probe(&server, &token, None).await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::Never);
    assert_eq!(
        o.facts.token_type.as_deref(),
        Some("legacy_service_account")
    );
    assert_sent_review(&server, &token);
}

#[tokio::test]
async fn opaque_token_is_still_reviewed() {
    let token = "opaque-webhook-token-0123456789";
    let server = MockServer::start(|_| {
        review(json!({"authenticated": true, "user": {"username": "ci-bot", "groups": ["ci"]}}))
    })
    .await;
    let o = probe(&server, token, None).await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert_eq!(o.facts.subject.as_deref(), Some("ci-bot"));
    assert_sent_review(&server, token);
}

#[tokio::test]
async fn refused_tokens_are_invalid_with_reasons() {
    let token = bound_token();
    for (error, reason) in [
        (
            "[invalid bearer token, service account token has expired]",
            Reason::Expired,
        ),
        (
            "[invalid bearer token, service account token has been invalidated]",
            Reason::Revoked,
        ),
        (
            "[invalid bearer token, token audiences [\"https://kubernetes.default.svc.cluster.local\"] is invalid for the target audiences [\"vault\"]]",
            Reason::WrongAudience,
        ),
        (
            "[invalid bearer token, square/go-jose: error in cryptographic primitive]",
            Reason::UnknownToken,
        ),
    ] {
        let server = MockServer::start(move |_| refused(error)).await;
        let o = probe(&server, &token, None).await;
        assert_eq!((o.verdict, o.reason), (Verdict::Invalid, reason), "{error}");
        assert!(!o.detail.contains("invalid bearer token"), "{}", o.detail);
        // The expiry read from the token stays known for the store.
        assert_eq!(o.facts.expiry.timestamp().unwrap().as_second(), NOW + 3000);
        assert_sent_review(&server, &token);
    }
}

#[tokio::test]
async fn own_credential_failures_are_misconfigured() {
    let token = bound_token();
    for (status, reason) in [(401, "Unauthorized"), (403, "Forbidden")] {
        let server = MockServer::start(move |_| {
            Answer::json(
                status,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": "tokenreviews.authentication.k8s.io is forbidden: User \"system:serviceaccount:monitoring:exporter\" cannot create resource \"tokenreviews\"",
                       "reason": reason, "code": status}),
            )
        })
        .await;
        let o = probe(&server, &token, None).await;
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Misconfigured, Reason::ClientAuth),
            "{status}"
        );
        assert_sent_review(&server, &token);
    }
}

#[tokio::test]
async fn unreadable_own_token_is_misconfigured_and_sends_nothing() {
    let server = MockServer::start(|_| accepted(&[])).await;
    let secrets = SecretFiles::new();
    let secret = secrets.put("reviewed", &bound_token());
    let o = probe_once(
        &yaml(
            &server.url(),
            "{file: /nonexistent/exporter-token}",
            &secret,
            None,
        ),
        "deployer",
        now(),
    )
    .await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Misconfigured, Reason::SecretUnavailable)
    );
    assert!(
        o.detail.contains("/nonexistent/exporter-token"),
        "{}",
        o.detail
    );
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn own_token_is_reread_for_every_probe() {
    let server = MockServer::start(|_| accepted(&[])).await;
    let dir = tempfile::tempdir().unwrap();
    let own = dir.path().join("own");
    std::fs::write(&own, "first-own-token\n").unwrap();
    let secrets = SecretFiles::new();
    let secret = secrets.put("reviewed", &bound_token());
    let config = Config::parse(&yaml(
        &server.url(),
        &format!("{{file: {}}}", own.display()),
        &secret,
        None,
    ))
    .unwrap();
    probe_with(&config, "deployer", now()).await;
    // The kubelet rotates the projected token in place.
    std::fs::write(&own, "second-own-token\n").unwrap();
    probe_with(&config, "deployer", now()).await;
    let sent: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.header("authorization").unwrap().to_string())
        .collect();
    assert_eq!(sent, ["Bearer first-own-token", "Bearer second-own-token"]);
}

#[tokio::test]
async fn priority_and_fairness_429_is_rate_limited() {
    let server = MockServer::start(|_| {
        Answer::json(
            429,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                   "message": "Too many requests, please try again later.", "reason": "TooManyRequests", "code": 429}),
        )
        .header("retry-after", "1")
    })
    .await;
    let o = probe(&server, &bound_token(), None).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::RateLimited, Reason::RateLimited)
    );
    assert_eq!(o.retry_after, Some(Duration::from_secs(1)));
}

#[tokio::test]
async fn garbage_and_server_errors_are_unreachable() {
    let token = bound_token();
    let cases: Vec<(&str, Answer)> = vec![
        (
            "html",
            Answer::text(201, "text/html", "<html>proxy login</html>"),
        ),
        ("empty", Answer::text(201, "application/json", "")),
        (
            "status object",
            Answer::json(201, json!({"kind": "Status", "status": "Success"})),
        ),
        (
            "no status",
            Answer::json(201, json!({"kind": "TokenReview"})),
        ),
        (
            "string bool",
            review(json!({"authenticated": "true", "user": {"username": "x"}})),
        ),
        (
            "404",
            Answer::json(
                404,
                json!({"kind": "Status", "code": 404, "reason": "NotFound"}),
            ),
        ),
        (
            "500",
            Answer::json(500, json!({"kind": "Status", "code": 500})),
        ),
        (
            "503",
            Answer::text(503, "text/plain", "apiserver is shutting down"),
        ),
        (
            "redirect",
            Answer::text(307, "text/plain", "").header("location", "http://127.0.0.1:9/"),
        ),
    ];
    for (what, answer) in cases {
        let server = MockServer::start(move |_| answer.clone()).await;
        let o = probe(&server, &token, None).await;
        assert_eq!(o.verdict, Verdict::Unreachable, "{what}: {o:?}");
        assert_sent_review(&server, &token);
    }
}

#[tokio::test]
async fn timeout_is_unreachable() {
    let server = MockServer::start(|_| accepted(&[]).delayed(Duration::from_secs(3))).await;
    let o = probe(&server, &bound_token(), None).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::Timeout)
    );
}

#[tokio::test]
async fn connection_refused_is_unreachable() {
    // A port nothing listens on.
    let port = support::daemon::free_port();
    let secrets = SecretFiles::new();
    let own = secrets.put("own", OWN_TOKEN);
    let secret = secrets.put("reviewed", &bound_token());
    let o = probe_once(
        &yaml(&format!("http://127.0.0.1:{port}"), &own, &secret, None),
        "deployer",
        now(),
    )
    .await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::Connect)
    );
    // A failed review still reports what the JWT says about its expiry.
    assert_eq!(o.facts.expiry.timestamp().unwrap().as_second(), NOW + 3000);
}

/// An HTTPS TokenReview endpoint whose certificate is signed by a private CA, as a cluster's
/// API server is. Python's standard library serves it; openssl makes the certificates.
struct TlsApiServer {
    child: Child,
    port: u16,
}

impl Drop for TlsApiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const TLS_SERVER: &str = r#"
import http.server, json, ssl, sys
class Review(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        body = json.dumps({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
            "status": {"authenticated": True,
                       "user": {"username": "system:serviceaccount:ci:deployer"}}}).encode()
        self.send_response(201)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Review)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes a CA in `dir/<name>-ca.crt` and, when `server` is set, a server certificate for
/// 127.0.0.1 signed by it (`dir/server.crt`, `dir/server.key`).
fn make_ca(dir: &Path, name: &str, server: bool) {
    let ca_key = dir.join(format!("{name}-ca.key"));
    let ca_crt = dir.join(format!("{name}-ca.crt"));
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca_crt)
        .args(["-days", "2", "-subj", &format!("/CN={name}-cluster-ca")]));
    if !server {
        return;
    }
    let ext = dir.join("server.ext");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(dir.join("server.key"))
        .arg("-out")
        .arg(dir.join("server.csr"))
        .args(["-subj", "/CN=kube-apiserver"]));
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-set_serial", "2"])
        .arg("-in")
        .arg(dir.join("server.csr"))
        .arg("-CA")
        .arg(&ca_crt)
        .arg("-CAkey")
        .arg(&ca_key)
        .arg("-extfile")
        .arg(&ext)
        .arg("-out")
        .arg(dir.join("server.crt")));
}

fn tls_api_server(dir: &Path) -> TlsApiServer {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(TLS_SERVER)
        .arg(dir.join("server.crt"))
        .arg(dir.join("server.key"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("the server prints its port");
    TlsApiServer { child, port }
}

#[tokio::test]
async fn ca_file_is_the_trust_anchor_for_the_api_server() {
    for tool in ["openssl", "python3"] {
        if Command::new(tool).arg("--version").output().is_err() && peer_missing(tool) {
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    make_ca(dir.path(), "cluster", true);
    make_ca(dir.path(), "other", false);
    let server = tls_api_server(dir.path());
    let secrets = SecretFiles::new();
    let own = secrets.put("own", OWN_TOKEN);
    let secret = secrets.put("reviewed", &bound_token());
    let api = format!("https://127.0.0.1:{}", server.port);
    let with_ca = |ca: Option<&str>| {
        let mut y = yaml(&api, &own, &secret, None);
        if let Some(ca) = ca {
            y = y.replace(
                "    token: ",
                &format!(
                    "    ca_file: {}\n    token: ",
                    dir.path().join(format!("{ca}-ca.crt")).display()
                ),
            );
        }
        y
    };

    let o = probe_once(&with_ca(Some("cluster")), "deployer", now()).await;
    assert_eq!(o.verdict, Verdict::Valid, "{o:?}");
    assert_eq!(
        o.facts.subject.as_deref(),
        Some("system:serviceaccount:ci:deployer")
    );

    // Another cluster's CA, or the public roots, must not vouch for this server.
    for ca in [Some("other"), None] {
        let o = probe_once(&with_ca(ca), "deployer", now()).await;
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Unreachable, Reason::Tls),
            "{ca:?}: {o:?}"
        );
    }
}

#[test]
fn minimal_in_cluster_config_loads() {
    let config = Config::parse(
        "providers:\n  k8s:\n    kind: kubernetes\ntokens:\n  - name: deployer\n    provider: k8s\n    secret: {file: /var/run/secrets/ci/token}\n    audiences: [vault]\n",
    )
    .unwrap();
    assert_eq!(config.providers["k8s"].kind(), "kubernetes");
    assert_eq!(
        config
            .token("deployer")
            .unwrap()
            .params
            .audiences
            .as_deref(),
        Some(&["vault".to_string()][..])
    );
}

#[test]
fn wrong_configs_give_clear_errors() {
    // The pod's own token is never sent to an API server the user named without a token.
    let err = Config::parse(
        "providers:\n  k8s:\n    kind: kubernetes\n    url: https://k8s.example.com:6443\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("providers.k8s") && err.contains("token is required"),
        "{err}"
    );
    let err = Config::parse(
        "providers:\n  k8s:\n    kind: kubernetes\n    insecure_skip_tls_verify: true\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("unknown field `insecure_skip_tls_verify`"),
        "{err}"
    );
    let err = Config::parse(
        "providers:\n  k8s:\n    kind: kubernetes\n    ca_file: /nonexistent/ca.crt\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("ca_file /nonexistent/ca.crt"), "{err}");
    let err = Config::parse(
        "providers:\n  k8s:\n    kind: kubernetes\ntokens:\n  - name: t\n    provider: k8s\n    secret: {env: T}\n    audiences: []\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("audiences must list"), "{err}");
    let err = Config::parse(
        "providers:\n  k8s:\n    kind: kubernetes\ntokens:\n  - name: t\n    provider: k8s\n    secret: {env: T}\n    accessor: abc\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("accessor does not apply to a kubernetes provider"),
        "{err}"
    );
}
