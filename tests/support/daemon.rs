//! Runs the real binary as a child process on a free loopback port.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_api-token-exporter");

/// A free port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The exporter running as a child; killed on drop. Its stderr goes to a file.
pub struct Daemon {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `api-token-exporter [args...] --web.listen-address 127.0.0.1:PORT` and waits
    /// until `/-/healthy` answers.
    pub fn start(args: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stderr.log");
        let port = free_port();
        let child = Command::new(BIN)
            .args(args)
            .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let d = Daemon {
            child,
            port,
            log,
            _dir: dir,
        };
        d.wait_for("/-/healthy", Duration::from_secs(20));
        d
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Polls `path` until it answers 200.
    pub fn wait_for(&self, path: &str, limit: Duration) {
        let start = Instant::now();
        loop {
            if let Ok(resp) = http_get(&self.url(path))
                && resp.0 == 200
            {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "{path} not 200 within {limit:?}; log:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls `/metrics` until it holds `line` and returns that body; fails with the log
    /// after `limit`. Async: the tests that wait so also serve a mock provider on their
    /// runtime, which a blocking wait could starve.
    pub async fn wait_metric(&self, line: &str, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            let (_, body) = self.get("/metrics");
            if body.contains(line) {
                return body;
            }
            assert!(
                start.elapsed() < limit,
                "no {line:?} in /metrics within {limit:?}; log:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.url(path)).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// The `/metrics` lines that start with `prefix`.
    pub fn metric_lines(&self, prefix: &str) -> Vec<String> {
        self.get("/metrics")
            .1
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_string)
            .collect()
    }

    /// The names of the JSON API's tokens, sorted.
    pub fn token_names(&self) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&self.get("/api/v1/tokens").1).unwrap();
        let mut n: Vec<String> = v["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    }

    pub fn post(&self, path: &str) -> (u16, String) {
        http_request("POST", &self.url(path)).unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    pub fn logs(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `done` until it holds; fails naming `what` after 20 seconds.
pub fn wait_until(what: &str, done: &dyn Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A blocking GET with a short timeout; returns (status, body).
pub fn http_get(url: &str) -> Result<(u16, String), String> {
    http_request("GET", url)
}

pub fn http_request(method: &str, url: &str) -> Result<(u16, String), String> {
    let out = Command::new("curl")
        .args([
            "-s",
            "-m",
            "10",
            "-X",
            method,
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            url,
        ])
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').ok_or("no status")?;
    let code: u16 = code
        .trim()
        .parse()
        .map_err(|_| format!("curl failed: {text}"))?;
    if code == 0 {
        return Err("connection failed".into());
    }
    Ok((code, body.to_string()))
}

/// Writes a file and returns its path.
pub fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

/// Runs the daemon on `config` with trace logging and proves no secret reaches its outputs:
/// `/metrics`, `/`, `/api/v1/tokens`, `/api/v1/tokens/<token>` and the logs. First checks
/// the token's API entry holds each of `expect` (the run saw the credential) and the logs
/// are not near-empty, so an absent secret means hidden, not never handled.
pub fn canary_through_daemon(config: &Path, token: &str, expect: &[&str], secrets: &[&str]) {
    let d = Daemon::start(&[
        "--config.file",
        config.to_str().unwrap(),
        "--log.level",
        "trace",
    ]);
    d.wait_for("/-/ready", Duration::from_secs(15));
    let own = format!("/api/v1/tokens/{token}");
    let mut outputs = Vec::new();
    for path in ["/metrics", "/", "/api/v1/tokens", own.as_str()] {
        outputs.push((path.to_string(), d.get(path).1));
    }
    let api = &outputs[3].1;
    for want in expect {
        assert!(api.contains(want), "{own} lacks {want}:\n{api}");
    }
    let logs = d.logs();
    let _ = d.stop();
    assert!(
        logs.lines().count() > 5,
        "trace logging produced too little"
    );
    outputs.push(("logs".into(), logs));
    for (what, text) in &outputs {
        for needle in secrets {
            assert!(
                !text.contains(needle),
                "a secret leaked into {what}:\n{text}"
            );
        }
    }
}
