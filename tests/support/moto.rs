//! moto's server (a real implementation of the AWS APIs: IAM and STS here) on a free
//! 127.0.0.1 port, with the setup calls tests make and the record of every request it
//! answered. `support::moto` in the support tree.
//!
//! moto checks signatures and IAM policies once `INITIAL_NO_AUTH_ACTION_COUNT` calls have
//! been made: [`Moto::start`] takes the number of setup calls the test makes before it
//! probes, so the probes themselves meet the real checks.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

/// One `moto_server` on a free port of 127.0.0.1, killed when dropped.
pub struct Moto {
    child: Child,
    pub url: String,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

/// One request moto answered, as its recorder kept it.
#[derive(Clone, Debug)]
pub struct MotoRequest {
    pub method: String,
    pub url: String,
    pub headers: serde_json::Map<String, Value>,
    /// The form body, decoded.
    pub body: String,
}

impl MotoRequest {
    /// The value of a form field of the body.
    pub fn param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

pub fn moto_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("moto_server"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let shared =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/peers/venv/bin/moto_server");
        shared.is_file().then_some(shared)
    })
}

impl Moto {
    /// Starts moto with signature and policy checks on after `setup_calls` calls; `None`
    /// only when the peer may be skipped.
    pub async fn start(setup_calls: u32) -> Option<Moto> {
        let Some(binary) = moto_binary() else {
            crate::support::peer_missing("moto (moto_server)");
            return None;
        };
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("moto.log")).unwrap();
        let child = Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", setup_calls.to_string())
            .env("MOTO_ENABLE_RECORDING", "True")
            // The recorder writes a file, by default in the working directory: each server
            // gets its own, so servers of tests running at once do not share a record.
            .env("MOTO_RECORDER_FILEPATH", dir.path().join("recording"))
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("moto_server starts");
        let mut moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            dir,
        };
        moto.wait_ready().await;
        Some(moto)
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let up = self
                .http
                .get(format!("{}/moto-api/", self.url))
                .send()
                .await;
            if up.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                let log =
                    std::fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default();
                panic!("moto_server exited with {status}:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One IAM setup call, as an administrator would make it (see [`Moto::call`]).
    pub async fn iam(&self, params: &[(&str, &str)]) -> (u16, String) {
        self.call("iam", "2010-05-08", params).await
    }

    /// One setup call to `service`: counted against `setup_calls`, so moto checks no
    /// signature. Returns the status and the XML body.
    pub async fn call(
        &self,
        service: &str,
        version: &str,
        params: &[(&str, &str)],
    ) -> (u16, String) {
        let mut form: Vec<(&str, &str)> = params.to_vec();
        form.push(("Version", version));
        // moto tells IAM from STS by the credential scope of the Authorization header.
        let resp = self
            .http
            .post(format!("{}/", self.url))
            .header(
                "authorization",
                format!("AWS4-HMAC-SHA256 Credential=AKIASETUP000000000/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"),
            )
            .form(&form)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    /// Creates a user and an access key for it; returns (access key ID, secret access key).
    pub async fn user_with_key(&self, user: &str) -> (String, String) {
        let (status, body) = self
            .iam(&[("Action", "CreateUser"), ("UserName", user)])
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = self
            .iam(&[("Action", "CreateAccessKey"), ("UserName", user)])
            .await;
        assert_eq!(status, 200, "{body}");
        (
            between(&body, "AccessKeyId"),
            between(&body, "SecretAccessKey"),
        )
    }

    /// Lets `user` read its own keys' metadata (moto matches IAM resources only as `*`).
    pub async fn allow_own_key_reads(&self, user: &str) {
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:ListAccessKeys","iam:GetAccessKeyLastUsed"],"Resource":"*"}]}"#;
        let (status, body) = self
            .iam(&[
                ("Action", "PutUserPolicy"),
                ("UserName", user),
                ("PolicyName", "read-own-keys"),
                ("PolicyDocument", policy),
            ])
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// Forgets what was recorded so far (the setup calls).
    pub async fn reset_recording(&self) {
        let resp = self
            .http
            .post(format!("{}/moto-api/recorder/reset-recording", self.url))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
    }

    /// Every request moto answered since the last reset, moto's own API excluded.
    pub async fn recorded(&self) -> Vec<MotoRequest> {
        let text = self
            .http
            .get(format!("{}/moto-api/recorder/download-recording", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let v: Value = serde_json::from_str(line).expect("a recorded request");
                let raw = v["body"].as_str().unwrap_or_default();
                let body = if v["body_encoded"].as_bool() == Some(true) {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(raw)
                        .expect("a base64 body");
                    String::from_utf8(bytes).expect("a text body")
                } else {
                    raw.to_string()
                };
                MotoRequest {
                    method: v["method"].as_str().unwrap_or_default().to_string(),
                    url: v["url"].as_str().unwrap_or_default().to_string(),
                    headers: v["headers"].as_object().cloned().unwrap_or_default(),
                    body,
                }
            })
            .filter(|r| !r.url.contains("/moto-api/"))
            .collect()
    }
}

/// The text of the first `<name>` element of an XML answer.
pub fn between(xml: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no <{name}> in {xml}"))
        + open.len();
    let end = xml[start..].find(&format!("</{name}>")).unwrap() + start;
    xml[start..end].to_string()
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
