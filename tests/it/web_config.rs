//! `--web.config.file` through the real binary: basic auth on every endpoint, response
//! headers on every answer, HTTPS with a CA made here, plain HTTP refused on a TLS port,
//! mutual TLS, a rotated certificate served after a reload and after a change on disk, and
//! a bad web config stopping the exporter at start. curl is the client, as a scraper would
//! be; a rustls client reads which certificate is served.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use support::daemon::{BIN, free_port, write};

/// Every endpoint, with the method it answers to and the status it gives an authorized
/// client (the unknown path included: the fallback is behind auth too).
const ENDPOINTS: [(&str, &str, u16); 9] = [
    ("GET", "/metrics", 200),
    ("GET", "/", 200),
    ("GET", "/api/v1/tokens", 200),
    ("GET", "/api/v1/tokens/partner-key", 200),
    ("GET", "/-/healthy", 200),
    ("GET", "/-/ready", 200),
    ("POST", "/-/reload", 200),
    ("PUT", "/-/reload", 200),
    ("GET", "/no-such-page", 404),
];

/// An inventory that needs no secret and no network: one declared token.
const INVENTORY: &str = "providers:\n  declared:\n    kind: static\ntokens:\n  - name: partner-key\n    provider: declared\n    expires_at: 2099-01-01\n";

// --- a CA and certificates, made fresh for each test -------------------------------------

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf certificate and its key, as PEM.
    fn leaf(&self, name: &str, usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn server(&self, name: &str) -> (String, String) {
        self.leaf(name, ExtendedKeyUsagePurpose::ServerAuth)
    }

    fn client(&self, name: &str) -> (String, String) {
        self.leaf(name, ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// Writes a file by writing a sibling and renaming it over, as a rotation does, so the
/// exporter never reads half a file.
fn replace(dir: &Path, name: &str, content: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

// --- the exporter as a child process ------------------------------------------------------

struct Exporter {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Exporter {
    /// Starts the exporter with `web.yml` from `dir` and waits until it answers `probe`
    /// (curl arguments that reach it through whatever TLS and auth the test set up).
    fn start(dir: &Path, probe: &[&str]) -> Exporter {
        let config = write(dir, "config.yml", INVENTORY);
        let log = dir.join("stderr.log");
        let port = free_port();
        let child = Command::new(BIN)
            .arg("--config.file")
            .arg(&config)
            .arg("--web.config.file")
            .arg(dir.join("web.yml"))
            .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut exporter = Exporter { child, port, log };
        let start = Instant::now();
        loop {
            if let Ok(reply) = curl(&[probe, &[&exporter.url("https", "/-/ready")]].concat())
                && reply.code == 200
            {
                break;
            }
            if let Ok(reply) = curl(&[probe, &[&exporter.url("http", "/-/ready")]].concat())
                && reply.code == 200
            {
                break;
            }
            if let Some(status) = exporter.child.try_wait().unwrap() {
                panic!("exporter exited ({status}):\n{}", exporter.logs());
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "exporter not ready within 20 s:\n{}",
                exporter.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        exporter
    }

    fn url(&self, scheme: &str, path: &str) -> String {
        // "localhost" so the certificate's DNS name is what curl checks over TLS.
        format!("{scheme}://localhost:{}{path}", self.port)
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One answer as curl saw it.
#[derive(Debug)]
struct Reply {
    code: u16,
    /// Header lines, names lower-cased.
    headers: Vec<String>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.headers
            .iter()
            .find(|h| h.starts_with(&prefix))
            .map(|h| h[prefix.len()..].trim())
    }
}

/// Runs curl with `args` (the URL last). Err when no HTTP answer came: connection refused
/// or reset, a failed TLS handshake, a certificate curl does not trust.
fn curl(args: &[&str]) -> Result<Reply, String> {
    let out = Command::new("curl")
        .args(["-s", "-m", "10", "--noproxy", "*", "-D", "-", "-o", "-"])
        .args(["-w", "\n%{http_code}"])
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (rest, code) = text.rsplit_once('\n').ok_or("no status")?;
    let code: u16 = code.trim().parse().map_err(|_| format!("curl: {text}"))?;
    if code == 0 {
        return Err(format!(
            "no HTTP answer (curl exit {:?})",
            out.status.code()
        ));
    }
    let (head, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
    Ok(Reply {
        code,
        headers: head
            .lines()
            .skip(1)
            .map(|l| match l.split_once(':') {
                Some((n, v)) => format!("{}:{v}", n.to_ascii_lowercase()),
                None => l.to_string(),
            })
            .collect(),
        body: body.to_string(),
    })
}

/// curl's arguments for one endpoint.
fn request<'a>(method: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["-X", method];
    args.extend_from_slice(extra);
    args
}

/// The leaf certificate the exporter presents, read with a rustls client that trusts `ca`.
fn served_certificate(port: u16, ca: &str) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    // A request completes the handshake; the answer (401: no credentials) is not needed.
    tls.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer);
    conn.peer_certificates().unwrap()[0].to_vec()
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

// --- the tests ----------------------------------------------------------------------------

#[test]
fn basic_auth_guards_every_endpoint_and_headers_mark_every_answer() {
    let dir = tempfile::tempdir().unwrap();
    // The hash is made here, with the cost the bcrypt crate's users would pick for tests.
    let password = "correct horse battery staple";
    let hash = bcrypt::hash(password, 6).unwrap();
    write(
        dir.path(),
        "web.yml",
        &format!(
            "basic_auth_users:\n  prometheus: '{hash}'\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n    Content-Security-Policy: \"default-src 'none'\"\n"
        ),
    );
    let good = format!("prometheus:{password}");
    let exporter = Exporter::start(dir.path(), &["-u", &good]);

    for (method, path, status) in ENDPOINTS {
        let url = exporter.url("http", path);
        for (who, creds) in [
            ("no credentials", None),
            ("a wrong password", Some("prometheus:wrong")),
            (
                "an unknown user",
                Some(format!("grafana:{password}").as_str()),
            ),
            ("an empty password", Some("prometheus:")),
        ] {
            let mut args = request(method, &[]);
            if let Some(c) = creds {
                args.extend(["-u", c]);
            }
            args.push(&url);
            let reply = curl(&args).unwrap();
            assert_eq!(reply.code, 401, "{method} {path} with {who}: {reply:?}");
            assert!(
                reply
                    .header("www-authenticate")
                    .is_some_and(|v| v.starts_with("Basic")),
                "{method} {path}: {reply:?}"
            );
            assert!(
                !reply.body.contains("api_token"),
                "{method} {path} leaked: {reply:?}"
            );
            assert_eq!(reply.header("x-frame-options"), Some("deny"), "{reply:?}");
        }
        // The right credentials, twice: the second answer comes from the cache of
        // successful checks and must be the same.
        for _ in 0..2 {
            let reply = curl(&request(method, &["-u", &good, &url])).unwrap();
            assert_eq!(
                reply.code, status,
                "{method} {path} with the password: {reply:?}"
            );
            assert_eq!(reply.header("x-frame-options"), Some("deny"), "{reply:?}");
            assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
            assert_eq!(
                reply.header("content-security-policy"),
                Some("default-src 'none'")
            );
        }
    }
    let metrics = curl(&["-u", &good, &exporter.url("http", "/metrics")]).unwrap();
    assert!(
        metrics
            .body
            .contains("api_token_expiry_timestamp_seconds{token=\"partner-key\""),
        "{}",
        metrics.body
    );
    // A password never reaches the log, whichever way it was wrong or right.
    let logs = exporter.logs();
    assert!(!logs.contains(password), "{logs}");
    assert!(!logs.contains(&hash), "{logs}");
    assert!(logs.contains("basic auth without TLS"), "{logs}");
}

#[test]
fn example_web_config_serves_https_only() {
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/web-config.yml");
    std::fs::copy(&example, dir.path().join("web.yml")).unwrap();
    // The example names tls.crt and tls.key beside it.
    let ca = Ca::new("test CA");
    let (cert, key) = ca.server("exporter");
    write(dir.path(), "ca.crt", &ca.pem());
    write(dir.path(), "tls.crt", &cert);
    write(dir.path(), "tls.key", &key);
    let cacert = dir.path().join("ca.crt");
    let cacert = cacert.to_str().unwrap();
    let check = Command::new(BIN)
        .args(["--config.check", "--config.file"])
        .arg(write(dir.path(), "config.yml", INVENTORY))
        .arg("--web.config.file")
        .arg(dir.path().join("web.yml"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("web.yml: OK"));
    // The example's documented password.
    let exporter = Exporter::start(
        dir.path(),
        &["--cacert", cacert, "-u", "prometheus:example"],
    );

    let reply = curl(&[
        "--cacert",
        cacert,
        "-u",
        "prometheus:example",
        &exporter.url("https", "/metrics"),
    ])
    .unwrap();
    assert_eq!(reply.code, 200, "{reply:?}");
    assert!(reply.body.contains("api_token_exporter_build_info"));
    assert_eq!(
        reply.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    let unauthorized = curl(&["--cacert", cacert, &exporter.url("https", "/metrics")]).unwrap();
    assert_eq!(unauthorized.code, 401);

    // Plain HTTP on the TLS port gets no HTTP answer at all.
    let plain = curl(&[
        "-u",
        "prometheus:example",
        &exporter.url("http", "/metrics"),
    ]);
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");
    // A client that does not trust the CA refuses the server, and the server's certificate
    // is the one signed by it.
    assert!(curl(&[&exporter.url("https", "/-/healthy")]).is_err());
    assert_eq!(served_certificate(exporter.port, &ca.pem()), der(&cert));
}

#[test]
fn min_version_tls13_refuses_tls12_clients() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (cert, key) = ca.server("exporter");
    write(dir.path(), "ca.crt", &ca.pem());
    write(dir.path(), "tls.crt", &cert);
    write(dir.path(), "tls.key", &key);
    write(
        dir.path(),
        "web.yml",
        "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  min_version: TLS13\n",
    );
    let cacert = dir.path().join("ca.crt");
    let cacert = cacert.to_str().unwrap();
    let exporter = Exporter::start(dir.path(), &["--cacert", cacert]);
    let tls13 = curl(&["--cacert", cacert, &exporter.url("https", "/-/healthy")]).unwrap();
    assert_eq!(tls13.code, 200);
    let tls12 = curl(&[
        "--cacert",
        cacert,
        "--tls-max",
        "1.2",
        &exporter.url("https", "/-/healthy"),
    ]);
    assert!(tls12.is_err(), "a TLS 1.2 client was served: {tls12:?}");
}

#[test]
fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let stranger_ca = Ca::new("someone else's CA");
    let (cert, key) = server_ca.server("exporter");
    write(dir.path(), "ca.crt", &server_ca.pem());
    write(dir.path(), "tls.crt", &cert);
    write(dir.path(), "tls.key", &key);
    write(dir.path(), "clients-ca.crt", &client_ca.pem());
    let (client_cert, client_key) = client_ca.client("prometheus");
    write(dir.path(), "client.crt", &client_cert);
    write(dir.path(), "client.key", &client_key);
    let (stranger_cert, stranger_key) = stranger_ca.client("prometheus");
    write(dir.path(), "stranger.crt", &stranger_cert);
    write(dir.path(), "stranger.key", &stranger_key);
    write(
        dir.path(),
        "web.yml",
        "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: clients-ca.crt\n",
    );
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (cacert, client_crt, client_key) = (p("ca.crt"), p("client.crt"), p("client.key"));
    let with_client = [
        "--cacert",
        &cacert,
        "--cert",
        &client_crt,
        "--key",
        &client_key,
    ];
    let exporter = Exporter::start(dir.path(), &with_client);

    for (_, path, status) in ENDPOINTS.iter().filter(|(m, _, _)| *m == "GET") {
        let url = exporter.url("https", path);
        let reply = curl(&[&with_client[..], &[&url]].concat()).unwrap();
        assert_eq!(reply.code, *status, "{path}: {reply:?}");
        let anonymous = curl(&["--cacert", &cacert, &url]);
        assert!(
            anonymous.is_err(),
            "{path} answered without a client certificate: {anonymous:?}"
        );
    }
    let stranger = curl(&[
        "--cacert",
        &cacert,
        "--cert",
        &p("stranger.crt"),
        "--key",
        &p("stranger.key"),
        &exporter.url("https", "/metrics"),
    ]);
    assert!(
        stranger.is_err(),
        "a certificate from another CA was accepted: {stranger:?}"
    );
}

#[test]
fn a_rotated_certificate_is_served_after_reload_and_after_it_changes_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (first, first_key) = ca.server("first");
    write(dir.path(), "ca.crt", &ca.pem());
    write(dir.path(), "tls.crt", &first);
    write(dir.path(), "tls.key", &first_key);
    let hash = bcrypt::hash("pw", 4).unwrap();
    write(
        dir.path(),
        "web.yml",
        &format!(
            "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\nbasic_auth_users:\n  ops: '{hash}'\n"
        ),
    );
    let cacert = dir.path().join("ca.crt");
    let cacert = cacert.to_str().unwrap();
    let exporter = Exporter::start(dir.path(), &["--cacert", cacert, "-u", "ops:pw"]);
    assert_eq!(served_certificate(exporter.port, &ca.pem()), der(&first));

    // Rotation 1, then POST /-/reload: the next connection gets the new certificate.
    let (second, second_key) = ca.server("second");
    replace(dir.path(), "tls.key", &second_key);
    replace(dir.path(), "tls.crt", &second);
    let reload = curl(&[
        "--cacert",
        cacert,
        "-u",
        "ops:pw",
        "-X",
        "POST",
        &exporter.url("https", "/-/reload"),
    ])
    .unwrap();
    assert_eq!(reload.code, 200, "{reload:?}");
    assert_eq!(served_certificate(exporter.port, &ca.pem()), der(&second));

    // A broken rotation (a certificate without its key) keeps the working one serving.
    let (third, third_key) = ca.server("third");
    replace(dir.path(), "tls.crt", &third);
    let reload = curl(&[
        "--cacert",
        cacert,
        "-u",
        "ops:pw",
        "-X",
        "POST",
        &exporter.url("https", "/-/reload"),
    ])
    .unwrap();
    assert_eq!(
        reload.code, 200,
        "the inventory itself reloaded: {reload:?}"
    );
    assert_eq!(served_certificate(exporter.port, &ca.pem()), der(&second));
    assert!(
        exporter.logs().contains("web config not reloaded"),
        "{}",
        exporter.logs()
    );

    // The key lands: no signal, no request; the change on disk is enough.
    replace(dir.path(), "tls.key", &third_key);
    let start = Instant::now();
    while served_certificate(exporter.port, &ca.pem()) != der(&third) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the rotated certificate was not picked up from disk:\n{}",
            exporter.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // No key material in the log.
    let logs = exporter.logs();
    assert!(!logs.contains("PRIVATE KEY"), "{logs}");
}

#[test]
fn a_bad_web_config_stops_the_exporter_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "config.yml", INVENTORY);
    let run = |web: &str| {
        let web = write(dir.path(), "web.yml", web);
        let port = free_port();
        let out = Command::new(BIN)
            .arg("--config.file")
            .arg(&config)
            .arg("--web.config.file")
            .arg(&web)
            .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let web_path = dir.path().join("web.yml").display().to_string();
    let cases: [(&str, &[&str]); 5] = [
        (
            "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
            &[
                "tls_server_config.cipher_suites: unknown field `cipher_suites`",
                "(line 4)",
            ],
        ),
        (
            "basic_auth_users:\n  prometheus: plain-text-password\n",
            &["basic_auth_users.prometheus: not a bcrypt hash", "(line 2)"],
        ),
        (
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
            &[
                "tls_server_config.cert_file: cannot read",
                "missing.crt",
                "tls_server_config.key_file: cannot read",
            ],
        ),
        (
            "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  client_auth_type: RequireAndVerifyClientCert\n",
            &[
                "tls_server_config.client_ca_file: is required by client_auth_type RequireAndVerifyClientCert",
            ],
        ),
        (
            "http_server_config:\n  headers:\n    Set-Cookie: a=b\n",
            &["http_server_config.headers.Set-Cookie: this header cannot be set"],
        ),
    ];
    for (web, expected) in cases {
        let (code, stderr) = run(web);
        assert_eq!(code, Some(1), "{web}\n{stderr}");
        assert!(stderr.contains(&web_path), "the file is named: {stderr}");
        for e in expected {
            assert!(stderr.contains(e), "expected {e:?} in:\n{stderr}");
        }
        assert!(!stderr.contains("plain-text-password"), "{stderr}");
        assert!(!stderr.contains("listening"), "{stderr}");

        // --config.check finds the same problems without starting anything.
        let out = Command::new(BIN)
            .args(["--config.check", "--config.file"])
            .arg(&config)
            .arg("--web.config.file")
            .arg(dir.path().join("web.yml"))
            .output()
            .unwrap();
        let checked = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{checked}");
        for e in expected {
            assert!(
                checked.contains(e),
                "--config.check: expected {e:?} in:\n{checked}"
            );
        }
    }
}

/// One plain-HTTP request, its answer read to the end: (status, head, body).
fn raw(port: u16, method: &str, path: &str, user_password: Option<&str>) -> (u16, String, String) {
    use base64::Engine;
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let auth = user_password
        .map(|up| {
            format!(
                "Authorization: Basic {}\r\n",
                base64::engine::general_purpose::STANDARD.encode(up)
            )
        })
        .unwrap_or_default();
    write!(
        sock,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    sock.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer:?}"));
    (code, head.to_ascii_lowercase(), body.to_string())
}

/// The value of an unlabelled (or fully labelled) sample in a `/metrics` body.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn a_truncated_or_weakened_web_config_never_turns_basic_auth_off() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("pw", 4).unwrap();
    let web = format!("basic_auth_users:\n  ops: '{hash}'\n");
    write(dir.path(), "web.yml", &web);
    let exporter = Exporter::start(dir.path(), &["-u", "ops:pw"]);
    let port = exporter.port;
    let refusals = || exporter.logs().matches("web config not reloaded").count();
    assert_eq!(raw(port, "GET", "/metrics", None).0, 401);

    // A truncated file, found by the watcher: no signal, no request.
    std::fs::write(dir.path().join("web.yml"), "").unwrap();
    let start = Instant::now();
    while refusals() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the truncated web config was not checked:\n{}",
            exporter.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for path in ["/metrics", "/api/v1/tokens", "/"] {
        assert_eq!(raw(port, "GET", path, None).0, 401, "GET {path}");
    }
    assert_eq!(raw(port, "POST", "/-/reload", None).0, 401);
    let (code, _, body) = raw(port, "GET", "/metrics", Some("ops:pw"));
    assert_eq!(code, 200);
    assert_eq!(
        sample(
            &body,
            "api_token_exporter_web_config_last_reload_successful"
        ),
        Some(0.0),
        "{body}"
    );

    // A half-finished write that left only other sections, and a file with no users, read
    // by a forced reload: refused too, and said so at error level.
    for weakened in [
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n",
        "basic_auth_users: {}\n",
    ] {
        let before = refusals();
        std::fs::write(dir.path().join("web.yml"), weakened).unwrap();
        assert_eq!(raw(port, "POST", "/-/reload", Some("ops:pw")).0, 200);
        assert!(refusals() > before, "{weakened:?}:\n{}", exporter.logs());
        assert_eq!(raw(port, "GET", "/metrics", None).0, 401, "{weakened:?}");
    }
    let logs = exporter.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("web config not reloaded"))
        .unwrap();
    assert!(
        line.contains("level=error") || line.contains("ERROR"),
        "{line}"
    );
    assert!(logs.contains("basic_auth_users"), "{logs}");
    assert!(!logs.contains(&hash), "{logs}");
    assert!(!logs.contains("web config reloaded"), "{logs}");

    // Putting the users back is taken at the next check, and the metric says so.
    std::fs::write(dir.path().join("web.yml"), &web).unwrap();
    let start = Instant::now();
    loop {
        let (_, _, body) = raw(port, "GET", "/metrics", Some("ops:pw"));
        if sample(
            &body,
            "api_token_exporter_web_config_last_reload_successful",
        ) == Some(1.0)
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{}",
            exporter.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(raw(port, "GET", "/metrics", None).0, 401);
}

#[test]
fn a_wrong_password_flood_is_refused_fast_and_real_logins_get_through() {
    const FLOOD: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    // A cost high enough that forty checks in a row would take seconds.
    let (prom, graf) = (
        bcrypt::hash("prom-pw", 10).unwrap(),
        bcrypt::hash("graf-pw", 10).unwrap(),
    );
    write(
        dir.path(),
        "web.yml",
        &format!("basic_auth_users:\n  prometheus: '{prom}'\n  grafana: '{graf}'\n"),
    );
    let exporter = Exporter::start(dir.path(), &["-u", "prometheus:prom-pw"]);
    let port = exporter.port;
    // Prometheus has scraped before: its login is cached. Grafana's is not.
    assert_eq!(
        raw(port, "GET", "/metrics", Some("prometheus:prom-pw")).0,
        200
    );

    let go = Arc::new(std::sync::Barrier::new(FLOOD + 1));
    let flood: Vec<_> = (0..FLOOD)
        .map(|i| {
            let go = go.clone();
            std::thread::spawn(move || {
                go.wait();
                let (code, head, _) = raw(
                    port,
                    "GET",
                    "/metrics",
                    Some(&format!("prometheus:guess-{i}")),
                );
                if code == 503 {
                    assert!(head.contains("retry-after: 1"), "{head}");
                }
                code
            })
        })
        .collect();
    go.wait();
    std::thread::sleep(Duration::from_millis(50));

    // During the flood: the cached scrape is answered at once, never refused.
    let start = Instant::now();
    assert_eq!(
        raw(port, "GET", "/metrics", Some("prometheus:prom-pw")).0,
        200
    );
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );

    // A login that is not cached yet gets 503 while the checks admitted are busy, then 200,
    // retrying as its Retry-After says.
    let mut busy = 0;
    let start = Instant::now();
    loop {
        match raw(port, "GET", "/-/healthy", Some("grafana:graf-pw")).0 {
            200 => break,
            503 => busy += 1,
            other => panic!("grafana got {other}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "grafana not let in within 15 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let codes: Vec<u16> = flood.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(codes.iter().all(|c| *c == 401 || *c == 503), "{codes:?}");
    let flood_busy = codes.iter().filter(|c| **c == 503).count();
    assert!(
        flood_busy > 0,
        "forty concurrent wrong passwords were all queued for bcrypt: {codes:?}"
    );

    // Every refusal is counted, by reason.
    let (_, _, body) = raw(port, "GET", "/metrics", Some("prometheus:prom-pw"));
    assert_eq!(
        sample(
            &body,
            "api_token_exporter_web_auth_refused_total{reason=\"busy\"}"
        ),
        Some((flood_busy + busy) as f64),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            "api_token_exporter_web_auth_refused_total{reason=\"invalid\"}"
        ),
        Some((FLOOD - flood_busy) as f64),
        "{body}"
    );
    let logs = exporter.logs();
    assert!(logs.contains("basic auth busy"), "{logs}");
    assert!(!logs.contains("prom-pw") && !logs.contains(&prom), "{logs}");
}
