//! A real OAuth 2.0 / OIDC server (panva/node-oidc-provider, `tests/peers/oidc/server.mjs`)
//! started on a free 127.0.0.1 port, and the client calls a test needs to mint, revoke and
//! introspect tokens against it. `support::oidc` in the support tree.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The exporter's own client at the server (also used to mint ordinary test tokens).
pub const EXPORTER: (&str, &str) = ("exporter", "exporter-secret");
/// A client whose tokens live only [`SHORT_TTL`] seconds.
pub const SHORT_LIVED: (&str, &str) = ("short-lived", "short-lived-secret");
/// A second client, for tokens the exporter's client did not mint.
pub const OTHER: (&str, &str) = ("other", "other-secret");
/// A client whose secret is only accepted when encoded as RFC 6749 section 2.3.1 says. The
/// characters are all VSCHAR (RFC 6749 appendix A), which is all a client secret may hold.
pub const SPECIAL: (&str, &str) = ("special", "s:e+c r%e/t&");
/// A client that holds refresh tokens (grant `refresh_token`, rotation always on: a rotated
/// refresh token used again revokes the whole grant).
pub const ROTATING: (&str, &str) = ("rotating", "rotating-secret");
/// Lifetime in seconds of [`ROTATING`]'s access tokens.
pub const ROTATING_TTL: i64 = 60;
/// Lifetime in seconds of tokens minted by [`SHORT_LIVED`]. Long enough that a probe right
/// after minting still sees the token active on a loaded machine.
pub const SHORT_TTL: i64 = 3;
/// Lifetime in seconds of the other clients' tokens.
pub const TTL: i64 = 3600;

/// How long the server may take to answer discovery after start (about 1 s when idle).
const READY_WITHIN: Duration = Duration::from_secs(20);

fn peer_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/oidc")
}

/// True when the npm package is installed; otherwise reports the missing peer (which
/// panics unless `PEERS_OPTIONAL=1` outside CI) and returns false so the test can return.
pub fn available() -> bool {
    let installed = peer_dir()
        .join("node_modules/oidc-provider/package.json")
        .is_file();
    let has_node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if installed && has_node {
        return true;
    }
    !crate::support::peer_missing("oidc-provider (npm ci --prefix tests/peers/oidc)")
}

/// One running server. Dropping it kills the process.
pub struct OidcServer {
    pub addr: SocketAddr,
    child: Child,
    /// Held open so the server exits when this process does (`EXIT_WITH_STDIN=1`).
    _stdin: Option<ChildStdin>,
    log: tempfile::NamedTempFile,
}

impl OidcServer {
    /// Starts a server of its own and waits until discovery answers.
    pub fn start() -> OidcServer {
        let mut last_log = String::new();
        // A free port found by binding :0 can be taken before node binds it; try again then.
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free loopback port")
                .port();
            let log = tempfile::NamedTempFile::new().unwrap();
            let mut child = Command::new("node")
                .arg("server.mjs")
                .current_dir(peer_dir())
                .env("NODE_PATH", peer_dir().join("node_modules"))
                .env("PORT", port.to_string())
                .env("TTL", TTL.to_string())
                .env("SHORT_TTL", SHORT_TTL.to_string())
                .env("ROTATING_TTL", ROTATING_TTL.to_string())
                .env("EXIT_WITH_STDIN", "1")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(log.reopen().unwrap())
                .spawn()
                .expect("node starts");
            let stdin = child.stdin.take();
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let started = Instant::now();
            loop {
                if discovery_answers(addr) {
                    return OidcServer {
                        addr,
                        child,
                        _stdin: stdin,
                        log,
                    };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    last_log = std::fs::read_to_string(log.path()).unwrap_or_default();
                    break;
                }
                if started.elapsed() > READY_WITHIN {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "oidc-provider did not answer discovery within {READY_WITHIN:?}; its stderr:\n{}",
                        std::fs::read_to_string(log.path()).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !last_log.contains("EADDRINUSE") {
                break;
            }
        }
        panic!("oidc-provider exited before it was ready; its stderr:\n{last_log}");
    }

    /// One server shared by every test of the binary that does not need to stop it. It
    /// is never dropped; it exits when the test process closes its stdin by exiting.
    pub fn shared() -> &'static OidcServer {
        static SHARED: OnceLock<OidcServer> = OnceLock::new();
        SHARED.get_or_init(OidcServer::start)
    }

    /// The issuer, as configured in the server.
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn introspection_url(&self) -> String {
        format!("{}/token/introspection", self.issuer())
    }

    /// Stops the server and waits for it to exit.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What the server wrote to stderr so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Mints an opaque access token with the client credentials grant. Returns the token
    /// and its `expires_in`.
    pub async fn mint(&self, (id, secret): (&str, &str)) -> (String, i64) {
        let resp = reqwest::Client::new()
            .post(format!("{}/token", self.issuer()))
            .basic_auth(enc(id), Some(enc(secret)))
            .form(&[("grant_type", "client_credentials"), ("scope", "api:read")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "token endpoint: {}", self.log());
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        let token = body["access_token"].as_str().unwrap().to_string();
        (token, body["expires_in"].as_i64().unwrap())
    }

    /// A refresh token for [`ROTATING`], as a completed authorization-code flow leaves one
    /// (the server's test-only route).
    pub async fn refresh_token(&self) -> String {
        let resp = reqwest::Client::new()
            .post(format!("{}/test/refresh-token", self.issuer()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "test route: {}", self.log());
        let body: Value = resp.json().await.unwrap();
        body["refresh_token"].as_str().unwrap().to_string()
    }

    /// The refresh-token grant as [`ROTATING`]: (status, answer).
    pub async fn refresh(&self, refresh_token: &str) -> (u16, Value) {
        let resp = reqwest::Client::new()
            .post(format!("{}/token", self.issuer()))
            .basic_auth(ROTATING.0, Some(ROTATING.1))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ])
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Revokes a token (RFC 7009) as the client that minted it.
    pub async fn revoke(&self, (id, secret): (&str, &str), token: &str) {
        let resp = reqwest::Client::new()
            .post(format!("{}/token/revocation", self.issuer()))
            .basic_auth(enc(id), Some(enc(secret)))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "revocation endpoint: {}", self.log());
    }

    /// Introspects a token as the exporter's client, independently of the code under test,
    /// so tests can compare the exporter's reading with the server's own answer.
    pub async fn introspect(&self, token: &str) -> Value {
        let resp = reqwest::Client::new()
            .post(self.introspection_url())
            .basic_auth(EXPORTER.0, Some(EXPORTER.1))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "introspection endpoint: {}", self.log());
        resp.json().await.unwrap()
    }
}

impl Drop for OidcServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// RFC 6749 section 2.3.1: Basic credentials are form-urlencoded before base64.
fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A plain HTTP/1.0 GET of the discovery document: readiness polling needs no runtime.
fn discovery_answers(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!(
        "GET /.well-known/openid-configuration HTTP/1.0\r\nHost: {addr}\r\nAccept: application/json\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") && answer.contains("\"introspection_endpoint\"")
}
