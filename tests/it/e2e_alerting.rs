//! End to end: the exporter's `demo` is scraped by a real Prometheus that loads the shipped alert
//! rules and sends to a real Alertmanager configured from the shipped example, which posts to a
//! webhook receiver in this test. Every PromQL expression of the shipped dashboards is run
//! against that Prometheus and must parse and return data.
//!
//! Everything binds 127.0.0.1 on free ports and is stopped when the test ends (see
//! `support::prom::Proc`).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};
use support::daemon::free_port;
use support::prom::{
    ALERTMANAGER_EXAMPLE, APT_HINT, DashboardQuery, Proc, RULES_FILE, SCRAPE_EXAMPLE, dashboards,
    eventually, panel_queries, peer, read, substitute_variables, variable_queries, yaml_file,
};

const JOB: &str = "api-token-exporter";

/// Metrics the rules or dashboards read that the demo does not serve yet, with the reason.
/// Queries that read only these must still parse, but may return nothing. The test also checks
/// that the demo really lacks them, so once it serves one, its entry must go and the panels
/// that show it must return data.
const DEMO_LACKS: &[(&str, &str)] = &[
    (
        "api_token_last_probe_timestamp_seconds",
        "off by default (--collector.last_probe); the panels read the per-provider oldest probe, and the detail dashboard shows it when on",
    ),
    (
        "api_token_probe_duration_seconds",
        "off by default (--collector.probe_duration); the panels read the per-provider max and mean, and the detail dashboard shows it when on",
    ),
    (
        "api_token_issued_timestamp_seconds",
        "off by default (--collector.issued); the detail dashboard's events panel shows it when on",
    ),
    (
        "api_token_notifications_total",
        "the demo configures no notifier",
    ),
    (
        "api_token_notification_failures_total",
        "the demo configures no notifier",
    ),
    (
        "api_token_notification_last_success_timestamp_seconds",
        "the demo configures no notifier",
    ),
    (
        "api_token_last_used_timestamp_seconds",
        "no demo provider discloses last use",
    ),
];

fn lacks(metric: &str) -> bool {
    DEMO_LACKS.iter().any(|(m, _)| *m == metric)
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// The alerts the webhook receiver got, one entry per alert of each notification.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Value>>>);

impl Received {
    fn all(&self) -> Vec<Value> {
        self.0.lock().expect("lock").clone()
    }

    fn has(&self, status: &str, alertname: &str, token: Option<&str>) -> Option<Value> {
        self.all().into_iter().find(|a| {
            a["status"] == status
                && a["labels"]["alertname"] == alertname
                && token.is_none_or(|t| a["labels"]["token"] == t)
        })
    }
}

async fn hook(State(received): State<Received>, Json(body): Json<Value>) -> &'static str {
    let mut all = received.0.lock().expect("lock");
    for alert in body["alerts"].as_array().cloned().unwrap_or_default() {
        all.push(alert);
    }
    "ok"
}

/// Why a query failed: the expression is wrong (Prometheus said so) or the call did not work.
enum QueryError {
    Rejected(String),
    Transport(String),
}

struct Prom {
    base: String,
    client: reqwest::Client,
}

impl Prom {
    async fn call(&self, path: &str, form: &[(&str, String)]) -> Result<Value, QueryError> {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .map_err(|e| QueryError::Transport(e.to_string()))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| QueryError::Transport(e.to_string()))?;
        if body["status"] != "success" {
            let message = format!("HTTP {status}: {} {}", body["errorType"], body["error"]);
            return Err(if status.is_client_error() {
                QueryError::Rejected(message)
            } else {
                QueryError::Transport(message)
            });
        }
        Ok(body["data"].clone())
    }

    /// An instant query; returns the result vector.
    async fn query(&self, promql: &str) -> Result<Vec<Value>, QueryError> {
        let data = self
            .call("/api/v1/query", &[("query", promql.to_owned())])
            .await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// A range query with a 1 s step, as a Grafana time-series panel would run it.
    async fn query_range(&self, promql: &str, start: f64) -> Result<Vec<Value>, QueryError> {
        let data = self
            .call(
                "/api/v1/query_range",
                &[
                    ("query", promql.to_owned()),
                    ("start", format!("{start:.3}")),
                    ("end", format!("{:.3}", now())),
                    ("step", "1".to_owned()),
                ],
            )
            .await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    async fn alerts(&self) -> Result<Vec<Value>, String> {
        let response = self
            .client
            .get(format!("{}/api/v1/alerts", self.base))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        Ok(body["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

async fn http_ok(client: &reqwest::Client, url: &str) -> Result<(), String> {
    match client.get(url).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("{url}: HTTP {}", r.status())),
        Err(e) => Err(format!("{url}: {e}")),
    }
}

/// Waits for `url` to answer 200 while checking that `proc` is still running.
async fn wait_ready(client: &reqwest::Client, proc: &mut Proc, url: &str, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        proc.assert_running();
        match http_ok(client, url).await {
            Ok(()) => return,
            Err(e) if std::time::Instant::now() > deadline => {
                panic!(
                    "{} not ready after {timeout:?}: {e}\n{}",
                    proc.name,
                    proc.log_tail()
                )
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The shipped rules with every `for:` shortened to 2 s. The real durations (minutes to an hour)
/// are there to avoid false pages and are tested with promtool; here they would only make the
/// test wait. Two seconds still takes each alert through pending to firing.
fn rules_with_short_for() -> String {
    read(RULES_FILE)
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with("for: ") {
                format!("{}for: 2s", &line[..line.len() - trimmed.len()])
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The shipped Alertmanager example with the receivers pointed at this test and the timings
/// shortened.
fn alertmanager_config(hook_url: &str) -> Value {
    let mut config = yaml_file(ALERTMANAGER_EXAMPLE);
    for receiver in config["receivers"].as_array_mut().expect("receivers") {
        for webhook in receiver["webhook_configs"]
            .as_array_mut()
            .expect("webhook_configs")
        {
            webhook["url"] = json!(hook_url);
        }
    }
    let route = &mut config["route"];
    route["group_wait"] = json!("2s");
    route["group_interval"] = json!("1s");
    route["repeat_interval"] = json!("1h");
    config
}

/// The shipped Prometheus example with this test's addresses and a 1 s scrape and evaluation.
fn prometheus_config(rules: &Path, exporter: &str, alertmanager: &str) -> Value {
    let mut config = yaml_file(SCRAPE_EXAMPLE);
    config["global"]["scrape_interval"] = json!("1s");
    config["global"]["evaluation_interval"] = json!("1s");
    config["rule_files"] = json!([rules.display().to_string()]);
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = json!([alertmanager]);
    let job = &mut config["scrape_configs"][0];
    assert_eq!(job["job_name"], JOB, "{SCRAPE_EXAMPLE}: job name");
    job["scrape_interval"] = json!("1s");
    job["scrape_timeout"] = json!("1s");
    job["static_configs"][0]["targets"] = json!([exporter]);
    config
}

/// The `api_token_*` metrics an expression reads.
fn metrics_in(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("api_token_"))
        .map(str::to_owned)
        .collect()
}

/// Whether an expression reads nothing but metrics the demo lacks (see `DEMO_LACKS`).
fn only_demo_gaps(expr: &str) -> bool {
    let metrics = metrics_in(expr);
    !metrics.is_empty() && metrics.iter().all(|m| lacks(m))
}

fn label<'a>(alert: &'a Value, name: &str) -> &'a str {
    alert["labels"][name].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_rules_and_dashboards_work_against_the_demo() {
    let Some(prometheus) = peer("prometheus", APT_HINT) else {
        return;
    };
    let Some(alertmanager) = peer("prometheus-alertmanager", APT_HINT) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client");

    // The webhook receiver Alertmanager posts to.
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind webhook");
    let hook_url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(received.clone());
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("webhook server");
    });

    // The exporter on its demo inventory.
    let exporter_addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_api-token-exporter"));
    cmd.args(["demo", "--web.listen-address", &exporter_addr]);
    let mut exporter = Proc::spawn("api-token-exporter demo", cmd, dir);
    wait_ready(
        &client,
        &mut exporter,
        &format!("http://{exporter_addr}/-/ready"),
        Duration::from_secs(30),
    )
    .await;

    // Alertmanager from the shipped example.
    let am_addr = format!("127.0.0.1:{}", free_port());
    let am_config = dir.join("alertmanager.yml");
    std::fs::write(&am_config, alertmanager_config(&hook_url).to_string()).expect("write am");
    let mut cmd = Command::new(alertmanager);
    cmd.arg(format!("--config.file={}", am_config.display()))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address={am_addr}"))
        .arg("--cluster.listen-address=");
    let mut am = Proc::spawn("alertmanager", cmd, dir);
    wait_ready(
        &client,
        &mut am,
        &format!("http://{am_addr}/-/ready"),
        Duration::from_secs(15),
    )
    .await;

    // Prometheus from the shipped example, with the shipped rules.
    let rules = dir.join("api-token-exporter.rules.yml");
    std::fs::write(&rules, rules_with_short_for()).expect("write rules");
    let prom_addr = format!("127.0.0.1:{}", free_port());
    let prom_config = dir.join("prometheus.yml");
    std::fs::write(
        &prom_config,
        prometheus_config(&rules, &exporter_addr, &am_addr).to_string(),
    )
    .expect("write prometheus config");
    let mut cmd = Command::new(prometheus);
    cmd.arg(format!("--config.file={}", prom_config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("prom-data").display()
        ))
        .arg(format!("--web.listen-address={prom_addr}"));
    let mut prom_proc = Proc::spawn("prometheus", cmd, dir);
    let started = now();
    wait_ready(
        &client,
        &mut prom_proc,
        &format!("http://{prom_addr}/-/ready"),
        Duration::from_secs(15),
    )
    .await;
    let prom = Prom {
        base: format!("http://{prom_addr}"),
        client: client.clone(),
    };
    let up = format!("up{{job=\"{JOB}\"}} == 1");
    // `eventually` calls its closure many times; the closures below capture references, which
    // are Copy, so each future can own a copy.
    let (prom_ref, up_ref, received_ref) = (&prom, &up, &received);
    eventually(
        "Prometheus to scrape the exporter",
        Duration::from_secs(30),
        move || async move {
            let (prom, up) = (prom_ref, up_ref);
            match prom.query(up).await {
                Ok(r) if !r.is_empty() => Ok(()),
                Ok(_) => Err("no successful scrape yet".to_owned()),
                Err(QueryError::Rejected(e) | QueryError::Transport(e)) => Err(e),
            }
        },
    )
    .await;

    // 1. The demo serves every metric the rules and dashboards read, except the known gaps.
    let mut wanted: BTreeSet<String> = metrics_in(&read(RULES_FILE));
    for (file, d) in dashboards() {
        for q in panel_queries(&file, &d) {
            wanted.extend(metrics_in(&q.expr));
        }
    }
    let served: BTreeSet<String> = prom
        .query(&format!(
            "count by (__name__) ({{job=\"{JOB}\", __name__=~\"api_token_.+\"}})"
        ))
        .await
        .unwrap_or_else(|_| panic!("listing the served metrics failed"))
        .iter()
        .filter_map(|s| s["metric"]["__name__"].as_str().map(str::to_owned))
        .collect();
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|m| !served.contains(*m) && !lacks(m))
        .collect();
    assert!(
        missing.is_empty(),
        "the rules or dashboards read metrics the exporter does not serve: {missing:?} \
         (served: {served:?})"
    );
    let now_served: Vec<&str> = DEMO_LACKS
        .iter()
        .map(|(m, _)| *m)
        .filter(|m| served.contains(*m))
        .collect();
    assert!(
        now_served.is_empty(),
        "the demo now serves {now_served:?}: remove them from DEMO_LACKS in \
         tests/e2e_alerting.rs so the panels showing them must return data"
    );

    // 2. Every dashboard query parses and returns data, as Grafana would run it with "All"
    //    selected: tables and stats as instant queries, graphs as range queries.
    let mut queries: Vec<(DashboardQuery, bool)> = Vec::new();
    for (file, d) in dashboards() {
        let targets: Vec<bool> = support::prom::panels(&d)
            .iter()
            .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
            .filter(|t| t["expr"].is_string())
            .map(|t| t["instant"] == true)
            .collect();
        let found = panel_queries(&file, &d);
        assert_eq!(found.len(), targets.len(), "{file}: queries and targets");
        queries.extend(found.into_iter().zip(targets));
        // Template variables: label_values(selector, label) must find values.
        for (name, selector, label_name) in variable_queries(&d) {
            let expr = substitute_variables(&selector);
            queries.push((
                DashboardQuery {
                    origin: format!("{file} variable {name} (label {label_name})"),
                    expr: format!("count by ({label_name}) ({expr})"),
                },
                true,
            ));
        }
    }
    let mut pending: Vec<(DashboardQuery, bool)> = queries;
    let mut rejected = Vec::new();
    let mut may_be_empty = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !pending.is_empty() {
        let mut still = Vec::new();
        for (q, instant) in pending {
            let expr = substitute_variables(&q.expr);
            let result = if instant {
                prom.query(&expr).await
            } else {
                prom.query_range(&expr, started).await
            };
            match result {
                Ok(r) if !r.is_empty() => {}
                Ok(_) if only_demo_gaps(&q.expr) => {
                    may_be_empty.push(q.origin.clone());
                }
                Ok(_) | Err(QueryError::Transport(_)) => still.push((q, instant)),
                Err(QueryError::Rejected(e)) => {
                    rejected.push(format!("{}: {e}\n    {expr}", q.origin));
                }
            }
        }
        pending = still;
        if pending.is_empty() || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        rejected.is_empty(),
        "Prometheus rejects dashboard queries:\n{}",
        rejected.join("\n")
    );
    let empty: Vec<String> = pending
        .iter()
        .map(|(q, _)| format!("{}\n    {}", q.origin, substitute_variables(&q.expr)))
        .collect();
    assert!(
        empty.is_empty(),
        "dashboard queries that return no data from the demo after 60 s:\n{}",
        empty.join("\n")
    );
    eprintln!(
        "dashboard queries allowed to be empty (demo gaps, see DEMO_LACKS): {may_be_empty:?}"
    );

    // The overview's token table: every demo token, soonest expiry first, with owner, team and
    // state; tokens without a known expiry last.
    let overview = dashboards()
        .into_iter()
        .find(|(f, _)| f.ends_with("api-token-overview.json"))
        .expect("overview dashboard")
        .1;
    let table = support::prom::panels(&overview)
        .into_iter()
        .find(|p| p["title"] == "Tokens by time to expiry")
        .expect("token table");
    let rows = prom
        .query(&substitute_variables(
            table["targets"][0]["expr"].as_str().expect("expr"),
        ))
        .await
        .unwrap_or_else(|_| panic!("token table query failed"));
    let order: Vec<(&str, &str, &str, &str)> = rows
        .iter()
        .map(|r| {
            let m = &r["metric"];
            (
                m["token"].as_str().unwrap_or(""),
                m["owner"].as_str().unwrap_or(""),
                m["state"].as_str().unwrap_or(""),
                r["value"][1].as_str().unwrap_or(""),
            )
        })
        .collect();
    // The demo's listed tokens (its vault source) interleave by their expiry; the order of the
    // configured ones is what this checks, and that the listed ones are in the table too.
    assert!(
        order
            .iter()
            .any(|r| r.0.starts_with("demo-vault-tokens/") && r.1 == "bob@example.com"),
        "{order:?}"
    );
    let tokens: Vec<&str> = order
        .iter()
        .map(|r| r.0)
        .filter(|t| !t.starts_with("demo-vault-tokens/"))
        .collect();
    assert_eq!(
        &tokens[..8],
        [
            "legacy-sync",
            // Two minutes at most: it rotates itself 100 s before expiry.
            "session-api",
            "ci-runner",
            "deploy-bot",
            "search-indexer",
            "partner-webhook",
            "billing-api",
            "metrics-reader"
        ],
        "token table order: {order:?}"
    );
    let mut last: Vec<&str> = tokens[8..].to_vec();
    last.sort_unstable();
    assert_eq!(last, ["old-integration", "reporting-job"], "{order:?}");
    let configured: Vec<_> = order
        .iter()
        .filter(|r| !r.0.starts_with("demo-vault-tokens/"))
        .collect();
    assert!(
        configured[8..].iter().all(|r| r.3 == "+Inf"),
        "tokens without a known expiry sort last as +Inf: {order:?}"
    );
    assert!(
        order
            .iter()
            .all(|r| r.1.ends_with("@example.com") && !r.2.is_empty()),
        "every row has the owner and the state: {order:?}"
    );
    assert!(
        order.contains(&("reporting-job", "erin@example.com", "unreachable", "+Inf")),
        "{order:?}"
    );

    // 3. The expected alerts fire in Prometheus.
    let expected_firing: &[(&str, &str)] = &[
        ("ApiTokenExpired", "legacy-sync"),
        ("ApiTokenInvalid", "old-integration"),
        ("ApiTokenExpiringSoon", "deploy-bot"),
        ("ApiTokenExpiringSoon", "search-indexer"),
        ("ApiTokenExpiringSoon", "ci-runner"),
        ("ApiTokenExpiringCritical", "ci-runner"),
        ("ApiTokenProbeFailing", "reporting-job"),
    ];
    let firing = eventually(
        "the expected alerts to fire in Prometheus",
        Duration::from_secs(60),
        move || async move {
            let prom = prom_ref;
            let alerts = prom.alerts().await?;
            let firing: Vec<Value> = alerts
                .into_iter()
                .filter(|a| a["state"] == "firing")
                .collect();
            let missing: Vec<_> = expected_firing
                .iter()
                .filter(|(name, token)| {
                    !firing
                        .iter()
                        .any(|a| label(a, "alertname") == *name && label(a, "token") == *token)
                })
                .collect();
            if missing.is_empty() {
                Ok(firing)
            } else {
                Err(format!("not firing yet: {missing:?}"))
            }
        },
    )
    .await;
    let deploy = firing
        .iter()
        .find(|a| {
            label(a, "alertname") == "ApiTokenExpiringSoon" && label(a, "token") == "deploy-bot"
        })
        .expect("deploy-bot alert");
    assert_eq!(
        label(deploy, "owner"),
        "bob@example.com",
        "owner joined from api_token_info"
    );
    assert_eq!(
        label(deploy, "team"),
        "platform",
        "team joined from api_token_info"
    );
    assert_eq!(deploy["labels"]["severity"], "warning");
    let description = deploy["annotations"]["description"].as_str().unwrap_or("");
    assert!(
        description.contains("deploy-bot")
            && description.contains("demo-idp")
            && description.contains("bob@example.com")
            && description.contains("expires in 9d 23h"),
        "description names token, provider, owner and the time left: {description}"
    );
    assert_eq!(
        deploy["annotations"]["runbook_url"], "https://runbooks.example.com/tokens/deploy-bot",
        "the token's runbook label wins over the generic runbook"
    );
    let search = firing
        .iter()
        .find(|a| {
            label(a, "alertname") == "ApiTokenExpiringSoon" && label(a, "token") == "search-indexer"
        })
        .expect("search-indexer alert");
    assert!(
        search["annotations"]["description"]
            .as_str()
            .is_some_and(|s| s.contains("expires in 24d 23h")),
        "search-indexer (25 days left) fires inside its own 30d window: {}",
        search["annotations"]["description"]
    );
    for a in &firing {
        for (key, value) in a["annotations"].as_object().expect("annotations") {
            let value = value.as_str().unwrap_or("");
            assert!(
                !value.contains("<no value>") && !value.contains("<error expanding"),
                "{} {}: annotation {key} did not render: {value}",
                label(a, "alertname"),
                label(a, "token")
            );
        }
    }

    // 4. They reach Alertmanager and the webhook; the warning about ci-runner is held back by
    //    the example's inhibition while its critical alert fires.
    let delivered: Vec<&(&str, &str)> = expected_firing
        .iter()
        .filter(|e| **e != ("ApiTokenExpiringSoon", "ci-runner"))
        .collect();
    let delivered_ref = &delivered;
    eventually(
        "the alerts to arrive at the webhook",
        Duration::from_secs(30),
        move || async move {
            let (received, delivered) = (received_ref, delivered_ref);
            let missing: Vec<_> = delivered
                .iter()
                .filter(|(name, token)| received.has("firing", name, Some(token)).is_none())
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("not delivered yet: {missing:?}"))
            }
        },
    )
    .await;
    let am_alerts: Vec<Value> = client
        .get(format!("http://{am_addr}/api/v2/alerts"))
        .send()
        .await
        .expect("alertmanager alerts")
        .json()
        .await
        .expect("alertmanager alerts JSON");
    let ci_warning = am_alerts
        .iter()
        .find(|a| {
            label(a, "alertname") == "ApiTokenExpiringSoon" && label(a, "token") == "ci-runner"
        })
        .expect("Alertmanager has ci-runner's warning");
    assert_eq!(
        ci_warning["status"]["state"], "suppressed",
        "ci-runner's warning is inhibited by its critical alert: {ci_warning}"
    );
    assert!(
        received
            .has("firing", "ApiTokenExpiringSoon", Some("ci-runner"))
            .is_none(),
        "the inhibited warning for ci-runner was delivered"
    );

    // 5. What must never fire: a provider outage is not a verdict on the token, an expired token
    //    is not also "invalid", and tokens far from expiry raise nothing.
    let all_prometheus = prom.alerts().await.expect("alerts");
    let forbidden: &[(&str, &str)] = &[
        ("ApiTokenInvalid", "reporting-job"),
        ("ApiTokenExpired", "reporting-job"),
        ("ApiTokenInvalid", "legacy-sync"),
        ("ApiTokenExpiringSoon", "billing-api"),
        ("ApiTokenExpiringSoon", "metrics-reader"),
        ("ApiTokenExpiringSoon", "partner-webhook"),
        ("ApiTokenExpiringSoon", "old-integration"),
        ("ApiTokenExpiringCritical", "deploy-bot"),
        ("ApiTokenExpiringCritical", "search-indexer"),
        ("ApiTokenExpired", "old-integration"),
    ];
    for (name, token) in forbidden {
        let in_prometheus = all_prometheus
            .iter()
            .find(|a| label(a, "alertname") == *name && label(a, "token") == *token);
        assert!(
            in_prometheus.is_none(),
            "{name} must not fire for {token}: {in_prometheus:?}"
        );
        assert!(
            received.has("firing", name, Some(token)).is_none(),
            "{name} for {token} reached the webhook"
        );
    }
    for name in [
        "ApiTokenExporterDown",
        "ApiTokenExporterAbsent",
        "ApiTokenExporterConfigReloadFailed",
        "ApiTokenProviderMisconfigured",
    ] {
        assert!(
            !all_prometheus.iter().any(|a| label(a, "alertname") == name),
            "{name} fires against a healthy demo"
        );
    }

    // 6. The exporter goes away: ApiTokenExporterDown reaches the webhook, and the token alerts
    //    resolve (their series go stale) with a resolved notification.
    exporter.stop();
    eventually(
        "ApiTokenExporterDown at the webhook and ApiTokenExpired resolved",
        Duration::from_secs(45),
        move || async move {
            let received = received_ref;
            let down = received.has("firing", "ApiTokenExporterDown", None);
            let resolved = received.has("resolved", "ApiTokenExpired", Some("legacy-sync"));
            match (down, resolved) {
                (Some(_), Some(_)) => Ok(()),
                (d, r) => Err(format!(
                    "ExporterDown delivered: {}, Expired resolved: {}",
                    d.is_some(),
                    r.is_some()
                )),
            }
        },
    )
    .await;

    prom_proc.assert_running();
    am.assert_running();
}
