//! The Alertmanager sink against a real Alertmanager 0.25: the exporter's alert shows up in
//! `amtool alert query`, Alertmanager routes it to its own webhook receiver, and the
//! resolution ends it there too.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support;
use support::notify::{Harness, have, inventory, revoked, valid_for, wait_until};
use support::{Answer, MockServer};

struct Alertmanager {
    url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_alertmanager(webhook: &str) -> Alertmanager {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname, token]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {webhook}\n        send_resolved: true\n"
        ),
    )
    .unwrap();
    let port = support::daemon::free_port();
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("am.log")).unwrap())
        .spawn()
        .unwrap();
    let am = Alertmanager {
        url: format!("http://127.0.0.1:{port}"),
        child,
        _dir: dir,
    };
    let start = Instant::now();
    while support::daemon::http_get(&format!("{}/-/ready", am.url)).map(|r| r.0) != Ok(200) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "alertmanager not ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    am
}

/// `amtool alert query` as JSON.
fn amtool_query(am: &Alertmanager, matcher: &str) -> Vec<Value> {
    let out = Command::new("amtool")
        .args([
            "alert",
            "query",
            &format!("--alertmanager.url={}", am.url),
            "-o",
            "json",
            matcher,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "amtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// The statuses of the notifications Alertmanager sent to its webhook.
fn am_notifications(hook: &MockServer) -> Vec<(String, String)> {
    hook.requests()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .flat_map(|v| {
            v["alerts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|a| {
                    (
                        a["labels"]["alertname"].as_str().unwrap_or("").to_string(),
                        a["status"].as_str().unwrap_or("").to_string(),
                    )
                })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_reaches_alertmanager_and_resolves_there() {
    if !have(
        "prometheus-alertmanager",
        "--version",
        "prometheus-alertmanager (Debian package prometheus-alertmanager)",
    ) || !have(
        "amtool",
        "--version",
        "amtool (Debian package prometheus-alertmanager)",
    ) {
        return;
    }
    let hook = MockServer::start(|_| Answer::text(200, "text/plain", "")).await;
    let am = start_alertmanager(&format!("{}/am", hook.url()));
    let h = Harness::start(&format!(
        "{}notifications:\n  group_wait: 0s\n  dashboard_url: \"https://grafana.example.com/d/t?var-token={{token}}\"\nnotifiers:\n  am:\n    kind: alertmanager\n    url: {}\n    resend_interval: 1m\nroutes:\n  - {{receiver: am}}\n",
        inventory(&[("deploy-bot", "{team: platform, owner: alice@example.com}")]),
        am.url
    ));
    h.record("deploy-bot", revoked(), "sha256:aaaaaaaaaaaa");

    let am2 = &am;
    wait_until("the alert in amtool", Duration::from_secs(20), || {
        !amtool_query(am2, "alertname=ApiTokenInvalid").is_empty()
    })
    .await;
    let alerts = amtool_query(&am, "alertname=ApiTokenInvalid");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!(a["labels"]["token"], "deploy-bot");
    assert_eq!(a["labels"]["provider"], "local");
    assert_eq!(a["labels"]["severity"], "critical");
    assert_eq!(a["labels"]["event"], "invalid");
    assert_eq!(a["labels"]["team"], "platform");
    assert_eq!(a["labels"]["source"], "api-token-exporter");
    assert_eq!(a["annotations"]["fingerprint"], "sha256:aaaaaaaaaaaa");
    assert_eq!(
        a["annotations"]["summary"],
        "deploy-bot is invalid (revoked)"
    );
    assert_eq!(
        a["generatorURL"],
        "https://grafana.example.com/d/t?var-token=deploy-bot"
    );
    assert_eq!(a["status"]["state"], "active");
    // Alertmanager routed it on to its own receiver.
    wait_until(
        "alertmanager's firing notification",
        Duration::from_secs(20),
        || am_notifications(&hook).contains(&("ApiTokenInvalid".into(), "firing".into())),
    )
    .await;

    // Valid again: the resolution ends the alert.
    h.record("deploy-bot", valid_for(90 * 86_400), "sha256:aaaaaaaaaaaa");
    wait_until(
        "the alert to end in amtool",
        Duration::from_secs(20),
        || amtool_query(am2, "alertname=ApiTokenInvalid").is_empty(),
    )
    .await;
    wait_until(
        "alertmanager's resolved notification",
        Duration::from_secs(20),
        || am_notifications(&hook).contains(&("ApiTokenInvalid".into(), "resolved".into())),
    )
    .await;
    let stats = &h.stats.snapshot()["am"];
    assert_eq!((stats.notifications, stats.failures), (2, 0));
}
