//! Shared harness for the tests of the bundled alert rules and dashboards: finding the real
//! peers (promtool, Prometheus, Alertmanager, node), running them on 127.0.0.1 with free ports,
//! stopping them again, and reading the shipped rule and dashboard files.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The repository root (where Cargo.toml is).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub const RULES_FILE: &str = "alerts/api-token-exporter.rules.yml";
pub const PROMETHEUS_RULE_FILE: &str = "alerts/kubernetes/prometheusrule.yaml";
pub const ALERTMANAGER_EXAMPLE: &str = "alerts/alertmanager.example.yml";
pub const SCRAPE_EXAMPLE: &str = "dashboards/prometheus-scrape.example.yml";
pub const GRAFANA_PEER_DIR: &str = "tests/peers/grafana";

/// Decides what a missing peer means. Under CI (`CI=true`) it is a failure: CI installs every
/// peer, so a missing one is a broken CI script, not a reason to skip. On a developer machine it
/// is a failure too, unless `PEERS_OPTIONAL=1` says the developer accepts skipping; then it
/// prints why and the caller returns early.
pub fn peer_missing(what: &str, install_hint: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let optional = std::env::var("PEERS_OPTIONAL").is_ok_and(|v| v == "1");
    if !ci && optional {
        eprintln!("SKIPPED: {what} is not available and PEERS_OPTIONAL=1 ({install_hint})");
        return;
    }
    panic!(
        "{what} is not available ({install_hint}). Tests need the real peer; set PEERS_OPTIONAL=1 \
         outside CI to skip instead."
    );
}

/// Finds an executable on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The path of a peer binary, or `None` after [`peer_missing`] allowed skipping.
pub fn peer(name: &str, install_hint: &str) -> Option<PathBuf> {
    match which(name) {
        Some(path) => Some(path),
        None => {
            peer_missing(&format!("`{name}`"), install_hint);
            None
        }
    }
}

pub const APT_HINT: &str =
    "apt-get install -y --no-install-recommends prometheus prometheus-alertmanager";

/// Runs a command to completion and returns its output; panics if it cannot be started.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Formats a command's output for an assertion message.
pub fn describe(output: &Output) -> String {
    format!(
        "exit status {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Reads a repository file as text.
pub fn read(rel: &str) -> String {
    let path = repo().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Parses YAML text into a JSON value (YAML is a superset of what these files use).
pub fn yaml(text: &str, what: &str) -> Value {
    serde_saphyr::from_str::<Value>(text)
        .unwrap_or_else(|e| panic!("{what} is not valid YAML: {e}"))
}

/// Parses a repository file as YAML.
pub fn yaml_file(rel: &str) -> Value {
    yaml(&read(rel), rel)
}

/// Parses a repository file as JSON.
pub fn json_file(rel: &str) -> Value {
    serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid JSON: {e}"))
}

/// Every rule of a rules document (`{groups: [{rules: [...]}]}`), in file order.
pub fn rules_of(doc: &Value) -> Vec<Value> {
    doc["groups"]
        .as_array()
        .expect("rules file has a `groups` list")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("group has `rules`").clone())
        .collect()
}

/// The alert names of a rules document, in file order.
pub fn alert_names(doc: &Value) -> Vec<String> {
    rules_of(doc)
        .iter()
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
        .collect()
}

/// The dashboards shipped in `dashboards/`, as (relative path, parsed JSON), sorted by path.
pub fn dashboards() -> Vec<(String, Value)> {
    let dir = repo().join("dashboards");
    let mut files: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| {
            e.expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".json"))
        .map(|name| format!("dashboards/{name}"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|f| (f.clone(), json_file(&f)))
        .collect()
}

/// Every panel of a dashboard, including the panels nested in collapsed rows.
pub fn panels(dashboard: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().cloned().unwrap_or_default() {
        let nested = p["panels"].as_array().cloned().unwrap_or_default();
        out.push(p);
        out.extend(nested);
    }
    out
}

/// A PromQL expression of a dashboard: where it comes from and its text.
#[derive(Debug, Clone)]
pub struct DashboardQuery {
    pub origin: String,
    pub expr: String,
}

/// Every PromQL expression of a dashboard's panels.
pub fn panel_queries(file: &str, dashboard: &Value) -> Vec<DashboardQuery> {
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().cloned().unwrap_or_default() {
            if let Some(expr) = target["expr"].as_str() {
                out.push(DashboardQuery {
                    origin: format!(
                        "{file} panel {} \"{}\" target {}",
                        panel["id"],
                        panel["title"].as_str().unwrap_or(""),
                        target["refId"].as_str().unwrap_or("?")
                    ),
                    expr: expr.to_owned(),
                });
            }
        }
    }
    out
}

/// The `label_values(selector, label)` queries of a dashboard's template variables, as
/// (variable name, selector, label).
pub fn variable_queries(dashboard: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for var in dashboard["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        if var["type"] != "query" {
            continue;
        }
        let name = var["name"].as_str().unwrap_or("").to_owned();
        let query = var["query"]
            .as_str()
            .unwrap_or_else(|| panic!("variable {name}: query must be a label_values(...) string"));
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {name}: expected label_values(...), got {query}"));
        let (selector, label) = inner
            .rsplit_once(',')
            .unwrap_or_else(|| panic!("variable {name}: expected label_values(selector, label)"));
        out.push((name, selector.trim().to_owned(), label.trim().to_owned()));
    }
    out
}

/// Substitutes Grafana's variables in a panel expression the way a dashboard showing "All" would:
/// every template variable matcher matches everything, and the interval variables become fixed
/// durations that suit a Prometheus scraping every second.
pub fn substitute_variables(expr: &str) -> String {
    let mut out = expr.to_owned();
    for var in ["job", "provider", "token"] {
        out = out.replace(&format!("=~\"${var}\""), "=~\".*\"");
        out = out.replace(&format!("=~\"${{{var}}}\""), "=~\".*\"");
    }
    for (var, value) in [
        ("$__rate_interval", "30s"),
        ("$__interval", "5s"),
        ("$__range", "5m"),
        ("${__rate_interval}", "30s"),
        ("${__interval}", "5s"),
        ("${__range}", "5m"),
    ] {
        out = out.replace(var, value);
    }
    assert!(
        !out.contains('$'),
        "expression still has a variable this harness does not substitute: {out}"
    );
    out
}

/// A process started by a test. Dropping it kills the process and waits for it, so nothing
/// outlives the test, also when an assertion panics.
pub struct Proc {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr going to `<log_dir>/<name>.log`.
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> Proc {
        let log = log_dir.join(format!("{name}.log"));
        let out = fs::File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log file handle");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// The last lines the process wrote, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(40);
        format!(
            "--- last lines of {} ---\n{}",
            self.name,
            lines[start..].join("\n")
        )
    }

    /// Panics with the log tail if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!(
                "{} exited early with {status}\n{}",
                self.name,
                self.log_tail()
            );
        }
    }

    /// Stops the process now (the same as dropping it).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `check` every 200 ms until it returns `Some`, or panics after `timeout` with `what` and
/// the last state `check` described.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last state: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
