//! A real OpenBao dev server (the Vault token API) on a free 127.0.0.1 port, with the
//! operator calls tests need. `support::bao` in the support tree.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// One `bao server -dev` on a free port of 127.0.0.1, killed when dropped.
pub struct Bao {
    child: Child,
    pub addr: String,
    http: reqwest::Client,
    _home: tempfile::TempDir,
}

pub fn bao_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("bao"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let fallback = PathBuf::from("/tmp/peers/venv/bin/bao");
        fallback.is_file().then_some(fallback)
    })
}

impl Bao {
    /// Starts a dev server with root token `root`; `None` only when the peer may be skipped.
    pub async fn start() -> Option<Bao> {
        let Some(binary) = bao_binary() else {
            crate::support::peer_missing("OpenBao (bao)");
            return None;
        };
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        // The dev server writes the root token to $HOME/.vault-token: keep it in a temp dir.
        let home = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(home.path().join("bao.log")).unwrap();
        let child = Command::new(binary)
            .args([
                "server",
                "-dev",
                &format!("-dev-listen-address=127.0.0.1:{port}"),
                "-dev-root-token-id=root",
            ])
            .env("HOME", home.path())
            .env_remove("VAULT_ADDR")
            .env_remove("BAO_ADDR")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("bao starts");
        let mut bao = Bao {
            child,
            addr: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            _home: home,
        };
        bao.wait_ready().await;
        Some(bao)
    }

    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let health = self
                .http
                .get(format!("{}/v1/sys/health", self.addr))
                .send()
                .await;
            // 200 means initialized, unsealed and active: ready for token calls.
            if health.is_ok_and(|r| r.status() == 200) {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                let log =
                    std::fs::read_to_string(self._home.path().join("bao.log")).unwrap_or_default();
                panic!("bao exited with {status}:\n{log}");
            }
            assert!(Instant::now() < deadline, "bao did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A call with the root token, as an operator would make it.
    pub async fn root(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, path, "root", None, body).await
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        namespace: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(
                method.parse().unwrap(),
                format!("{}/v1/{}", self.addr, path),
            )
            .header("x-vault-token", token);
        if let Some(ns) = namespace {
            req = req.header("x-vault-namespace", ns);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Creates a token with root; returns (secret, accessor).
    pub async fn create(&self, namespace: Option<&str>, body: Value) -> (String, String) {
        let (status, v) = self
            .call("POST", "auth/token/create", "root", namespace, Some(body))
            .await;
        assert_eq!(status, 200, "{v}");
        (
            v["auth"]["client_token"].as_str().unwrap().to_string(),
            v["auth"]["accessor"].as_str().unwrap().to_string(),
        )
    }

    /// The remaining uses of a token, read by accessor with root (which spends none of them).
    pub async fn uses_left(&self, accessor: &str) -> i64 {
        let (status, v) = self
            .root(
                "POST",
                "auth/token/lookup-accessor",
                Some(json!({ "accessor": accessor })),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        v["data"]["num_uses"].as_i64().unwrap()
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
