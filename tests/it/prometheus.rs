//! A real Prometheus scrapes the exporter and sees the expected values; `promtool check
//! metrics` accepts what `/metrics` serves.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support;
use base64::Engine;
use serde_json::{Value, json};
use support::daemon::{Daemon, free_port, http_get, write};

fn have(bin: &str) -> bool {
    Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = write(
            dir.path(),
            "prometheus.yml",
            &format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: api-token-exporter\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        );
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        Prometheus {
            child,
            port,
            _dir: dir,
        }
    }

    /// Runs an instant query until it returns at least one series, or fails after `limit`.
    fn query_until_data(&self, promql: &str, limit: Duration) -> Vec<Value> {
        let start = Instant::now();
        let url = format!(
            "http://127.0.0.1:{}/api/v1/query?query={}",
            self.port,
            url::form_urlencoded::byte_serialize(promql.as_bytes()).collect::<String>()
        );
        loop {
            if let Ok((200, body)) = http_get(&url) {
                let doc: Value = serde_json::from_str(&body).unwrap();
                let result = doc["data"]["result"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if !result.is_empty() {
                    return result;
                }
            }
            assert!(
                start.elapsed() < limit,
                "no data for {promql} within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// A TCP relay between Prometheus and the exporter that keeps the first bytes of each
/// direction of every connection, so a test can read the headers Prometheus really sent and
/// got back.
struct Relay {
    port: u16,
    seen: std::sync::Arc<std::sync::Mutex<(String, String)>>,
}

impl Relay {
    fn start(upstream: u16) -> Relay {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new((String::new(), String::new())));
        let keep = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                for (mut from, mut to, request) in [
                    (
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                        true,
                    ),
                    (server, client, false),
                ] {
                    let keep = keep.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            let mut seen = keep.lock().unwrap();
                            let side = if request { &mut seen.0 } else { &mut seen.1 };
                            if side.len() < 64 * 1024 {
                                side.push_str(&String::from_utf8_lossy(&buf[..n]));
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Relay { port, seen }
    }
}

fn unsigned_jwt(exp: i64) -> String {
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2ln",
        b64(json!({"alg": "ES256"})),
        b64(json!({"sub": "svc", "exp": exp}))
    )
}

#[test]
fn prometheus_scrapes_the_expected_expiry() {
    if !have("prometheus") && support::peer_missing("prometheus (apt-get install prometheus)") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exp: i64 = 2_000_000_123;
    let secret = write(dir.path(), "t", &unsigned_jwt(exp));
    let config = write(
        dir.path(),
        "c.yml",
        &format!(
            "providers:\n  local:\n    kind: jwt\ntokens:\n  - name: deploy-bot\n    provider: local\n    secret: {{file: {}}}\n    labels: {{team: platform}}\n",
            secret.display()
        ),
    );
    let exporter = Daemon::start(&["--config.file", config.to_str().unwrap()]);
    exporter.wait_for("/-/ready", Duration::from_secs(10));
    // Through a relay that records the exchange: Prometheus asks for gzip and gets it.
    let relay = Relay::start(exporter.port);
    let prom = Prometheus::start(&format!("127.0.0.1:{}", relay.port));
    let result = prom.query_until_data(
        "api_token_expiry_timestamp_seconds{token=\"deploy-bot\"}",
        Duration::from_secs(30),
    );
    assert_eq!(result.len(), 1);
    assert_eq!(result[0]["metric"]["provider"], "local");
    assert_eq!(result[0]["metric"]["job"], "api-token-exporter");
    assert_eq!(result[0]["value"][1], exp.to_string());
    // The join docs/metrics.md recommends works: owner labels come from api_token_info.
    let joined = prom.query_until_data(
        "api_token_expiry_timestamp_seconds * on(token, provider) group_left(team) api_token_info",
        Duration::from_secs(10),
    );
    assert_eq!(joined[0]["metric"]["team"], "platform");
    let up = prom.query_until_data(
        "up{job=\"api-token-exporter\"} == 1",
        Duration::from_secs(10),
    );
    assert_eq!(up.len(), 1);
    let (request, response) = relay.seen.lock().unwrap().clone();
    let request = request.to_ascii_lowercase();
    assert!(
        request.contains("get /metrics ") && request.contains("accept-encoding: gzip"),
        "{request}"
    );
    let response = response.to_ascii_lowercase();
    assert!(
        response.contains("content-encoding: gzip") && response.contains("vary: accept-encoding"),
        "{}",
        &response[..response.len().min(600)]
    );
}

/// promtool 2.42 lints OpenMetrics as the classic format: counters' HELP/TYPE must name the
/// `_total` sample, and `# UNIT`/`# EOF` are unknown to it. Convert, then lint.
fn to_classic(openmetrics: &str) -> String {
    let mut counters = Vec::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some(name) = rest.strip_suffix(" counter")
        {
            counters.push(name.to_string());
        }
    }
    let mut out = String::new();
    for line in openmetrics.lines() {
        if line.starts_with("# EOF") || line.starts_with("# UNIT") {
            continue;
        }
        let mut line = line.to_string();
        for c in &counters {
            for kind in ["# HELP ", "# TYPE "] {
                let prefix = format!("{kind}{c} ");
                if line.starts_with(&prefix) {
                    line = format!("{kind}{c}_total {}", &line[prefix.len()..]);
                }
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[test]
fn promtool_accepts_the_demo_metrics() {
    if !have("promtool") && support::peer_missing("promtool (apt-get install prometheus)") {
        return;
    }
    // Every collector on, the ones off by default too, so every family is linted.
    let demo = Daemon::start(&[
        "demo",
        "--collector.issued",
        "--collector.last_used",
        "--collector.first_seen",
        "--collector.rotated",
        "--collector.last_probe",
        "--collector.probe_duration",
    ]);
    demo.wait_for("/-/ready", Duration::from_secs(20));
    let (_, body) = demo.get("/metrics");
    // Every family of the contract is present in the demo.
    for family in [
        "api_token_info",
        "api_token_state",
        "api_token_expiry_timestamp_seconds",
        "api_token_issued_timestamp_seconds",
        "api_token_scope_info",
        "api_token_last_probe_timestamp_seconds",
        "api_token_last_verdict_timestamp_seconds",
        "api_token_probe_duration_seconds",
        "api_token_probes_total",
        "api_token_probe_failures_total",
        "api_token_provider_oldest_probe_timestamp_seconds",
        "api_token_provider_probe_duration_max_seconds",
        "api_token_provider_probe_duration_mean_seconds",
        "api_token_warning_threshold_seconds",
        "api_token_critical_threshold_seconds",
        "api_token_exporter_config_last_reload_successful",
        "api_token_exporter_web_config_last_reload_successful",
        "api_token_exporter_web_config_last_reload_success_timestamp_seconds",
        "api_token_exporter_web_auth_refused_total",
        "api_token_exporter_answer_caps_applied_total",
        "api_token_exporter_http_requests_refused_total",
        "api_token_exporter_http_connections",
        "api_token_exporter_http_connections_max",
        "api_token_exporter_http_connections_dropped_total",
        "api_token_exporter_build_info",
    ] {
        assert!(
            body.lines().any(|l| l.starts_with(family)),
            "{family} missing from the demo's /metrics"
        );
    }
    let classic = to_classic(&body);
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "metrics.txt", &classic);
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("promtool check metrics < {}", file.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
