//! The bundled Grafana dashboards: what makes them importable anywhere (fixed uid, no `__inputs`,
//! one `datasource` variable used by every panel), that every query applies the job, provider
//! and token filters, that the overview has what on-call needs, that the layout does not
//! overlap, and that each dashboard passes the @grafana/schema type check. Whether every query
//! returns data from a real exporter is tested end to end in tests/e2e_alerting.rs.

use std::collections::BTreeSet;
use std::process::Command;

use crate::support;
use serde_json::{Value, json};
use support::prom::{
    APT_HINT, GRAFANA_PEER_DIR, RULES_FILE, SCRAPE_EXAMPLE, dashboards, describe, panel_queries,
    panels, peer, peer_missing, read, repo, run, variable_queries, which, yaml_file,
};

/// The dashboards this project ships and their fixed uids (links and bookmarks use them).
const SHIPPED: &[(&str, &str)] = &[
    ("dashboards/api-token-detail.json", "api-token-detail"),
    ("dashboards/api-token-overview.json", "api-token-overview"),
];

/// Metrics with `token` and `provider` labels.
const PER_TOKEN: &[&str] = &[
    "api_token_info",
    "api_token_state",
    "api_token_expiry_timestamp_seconds",
    "api_token_issued_timestamp_seconds",
    "api_token_last_used_timestamp_seconds",
    "api_token_scope_info",
    "api_token_last_probe_timestamp_seconds",
    "api_token_last_verdict_timestamp_seconds",
    "api_token_probe_duration_seconds",
    "api_token_warning_threshold_seconds",
    "api_token_critical_threshold_seconds",
    "api_token_policy_violation",
    "api_token_answer_anomaly",
];

/// Metrics with a `provider` label but no `token`.
const PER_PROVIDER: &[&str] = &[
    "api_token_provider_oldest_probe_timestamp_seconds",
    "api_token_provider_probe_duration_max_seconds",
    "api_token_provider_probe_duration_mean_seconds",
    "api_token_probes_total",
    "api_token_probe_failures_total",
    "api_token_provider_rate_limit_remaining",
    "api_token_provider_rate_limit_reset_timestamp_seconds",
];

/// Metrics of the exporter itself, and the series Prometheus adds for each scrape.
const PER_EXPORTER: &[&str] = &[
    "api_token_default_warning_threshold_seconds",
    "api_token_default_critical_threshold_seconds",
    "api_token_notifications_total",
    "api_token_notification_failures_total",
    "api_token_exporter_config_last_reload_successful",
    "api_token_exporter_config_last_reload_success_timestamp_seconds",
    "api_token_exporter_web_config_last_reload_successful",
    "api_token_exporter_web_config_last_reload_success_timestamp_seconds",
    "api_token_exporter_web_auth_refused_total",
    "api_token_exporter_answer_caps_applied_total",
    "api_token_exporter_http_requests_refused_total",
    "api_token_exporter_build_info",
    "api_token_exporter_http_connections",
    "api_token_exporter_http_connections_max",
    "api_token_exporter_http_connections_dropped_total",
    "api_token_source_up",
    "api_token_source_tokens",
    "api_token_source_failures_total",
    "api_token_source_last_success_timestamp_seconds",
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
];

fn dashboard(file: &str) -> Value {
    dashboards()
        .into_iter()
        .find(|(f, _)| f == file)
        .map(|(_, d)| d)
        .unwrap_or_else(|| panic!("{file} is not shipped"))
}

#[test]
fn dashboards_are_the_known_set_with_fixed_uids_and_no_inputs() {
    let shipped: Vec<(String, String)> = dashboards()
        .into_iter()
        .map(|(f, d)| (f, d["uid"].as_str().unwrap_or("").to_owned()))
        .collect();
    let expected: Vec<(String, String)> = SHIPPED
        .iter()
        .map(|(f, u)| ((*f).to_owned(), (*u).to_owned()))
        .collect();
    assert_eq!(
        shipped, expected,
        "dashboards/*.json and their uids changed; links between dashboards and users' bookmarks \
         use the uids, so update SHIPPED in tests/dashboards.rs deliberately"
    );
    for (file, d) in dashboards() {
        assert_eq!(
            d["id"],
            Value::Null,
            "{file}: id must be null so import creates it"
        );
        assert!(
            d.get("__inputs").is_none() && d.get("__requires").is_none(),
            "{file}: no __inputs/__requires; the datasource variable replaces them"
        );
        let text = d.to_string();
        assert!(
            !text.contains("${DS_"),
            "{file}: refers to an import-time input ${{DS_...}}"
        );
        assert!(
            d["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{file}: needs a title"
        );
        assert!(
            d["tags"]
                .as_array()
                .is_some_and(|t| t.contains(&json!("api-token-exporter"))),
            "{file}: tag api-token-exporter links the dashboards together"
        );
    }
}

#[test]
fn every_panel_and_query_uses_the_datasource_variable() {
    let ds = json!({"type": "prometheus", "uid": "${datasource}"});
    for (file, d) in dashboards() {
        let vars = d["templating"]["list"].as_array().expect("templating.list");
        let source = vars
            .iter()
            .find(|v| v["name"] == "datasource")
            .unwrap_or_else(|| panic!("{file}: no `datasource` variable"));
        assert_eq!(
            source["type"], "datasource",
            "{file}: datasource variable type"
        );
        assert_eq!(
            source["query"], "prometheus",
            "{file}: datasource variable plugin"
        );
        for name in ["job", "provider", "token"] {
            let var = vars
                .iter()
                .find(|v| v["name"] == name)
                .unwrap_or_else(|| panic!("{file}: no `{name}` filter variable"));
            assert_eq!(var["type"], "query", "{file}: variable {name}");
            assert_eq!(var["datasource"], ds, "{file}: variable {name} datasource");
        }
        for panel in panels(&d) {
            if panel["type"] == "row" {
                continue;
            }
            let title = panel["title"].as_str().unwrap_or("");
            assert_eq!(
                panel["datasource"], ds,
                "{file}: panel {title:?} datasource"
            );
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            assert!(!targets.is_empty(), "{file}: panel {title:?} has no query");
            for t in targets {
                assert_eq!(
                    t["datasource"], ds,
                    "{file}: panel {title:?} query datasource"
                );
                assert!(
                    t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                    "{file}: panel {title:?} has a query without expr"
                );
            }
        }
    }
}

#[test]
fn variables_filter_each_other_job_then_provider_then_token() {
    for (file, d) in dashboards() {
        let vars = variable_queries(&d);
        let find = |name: &str| {
            vars.iter()
                .find(|(n, _, _)| n == name)
                .cloned()
                .unwrap_or_else(|| panic!("{file}: no variable {name}"))
        };
        assert_eq!(
            find("job").2,
            "job",
            "{file}: job variable lists job values"
        );
        let (_, selector, label) = find("provider");
        assert!(
            selector.contains("job=~\"$job\"") && label == "provider",
            "{file}: provider"
        );
        let (_, selector, label) = find("token");
        assert!(
            selector.contains("job=~\"$job\"")
                && selector.contains("provider=~\"$provider\"")
                && label == "token",
            "{file}: token variable must be narrowed by job and provider"
        );
    }
}

/// Every metric a query reads, with the matchers of its selector (`None` for a bare name).
fn selectors(expr: &str) -> Vec<(String, Option<String>)> {
    let bytes = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let c = bytes[i] as char;
        if c == '"' {
            in_string = !in_string;
            i += 1;
            continue;
        }
        if in_string || !(c.is_ascii_alphabetic() || c == '_') {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && ((bytes[i] as char).is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        let word = &expr[start..i];
        let preceded_by_ident = start > 0 && (bytes[start - 1] as char).is_ascii_alphanumeric();
        let known = PER_TOKEN.contains(&word)
            || PER_PROVIDER.contains(&word)
            || PER_EXPORTER.contains(&word)
            || word.starts_with("api_token_");
        if !known || preceded_by_ident {
            continue;
        }
        let rest = &expr[i..];
        if rest.starts_with('{') {
            let end = rest.find('}').expect("selector closes");
            out.push((word.to_owned(), Some(rest[1..end].to_owned())));
            i += end + 1;
        } else {
            out.push((word.to_owned(), None));
        }
    }
    out
}

#[test]
fn every_query_applies_the_filters_its_metric_has_labels_for() {
    let mut problems = Vec::new();
    for (file, d) in dashboards() {
        for q in panel_queries(&file, &d) {
            for (metric, matchers) in selectors(&q.expr) {
                let known = PER_TOKEN.contains(&metric.as_str())
                    || PER_PROVIDER.contains(&metric.as_str())
                    || PER_EXPORTER.contains(&metric.as_str());
                if !known {
                    problems.push(format!("{}: unknown metric {metric}", q.origin));
                    continue;
                }
                let Some(matchers) = matchers else {
                    problems.push(format!("{}: {metric} without filters", q.origin));
                    continue;
                };
                let mut need = vec!["job=~\"$job\""];
                if PER_TOKEN.contains(&metric.as_str()) || PER_PROVIDER.contains(&metric.as_str()) {
                    need.push("provider=~\"$provider\"");
                }
                if PER_TOKEN.contains(&metric.as_str()) {
                    need.push("token=~\"$token\"");
                }
                for n in need {
                    if !matchers.contains(n) {
                        problems.push(format!("{}: {metric}{{{matchers}}} lacks {n}", q.origin));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn panels_have_unique_ids_and_do_not_overlap() {
    for (file, d) in dashboards() {
        let mut ids = BTreeSet::new();
        let mut boxes: Vec<(String, i64, i64, i64, i64)> = Vec::new();
        for panel in panels(&d) {
            let title = panel["title"].as_str().unwrap_or("").to_owned();
            let id = panel["id"].as_i64().expect("panel id");
            assert!(ids.insert(id), "{file}: panel id {id} used twice");
            let g = &panel["gridPos"];
            let (x, y, w, h) = (
                g["x"].as_i64().expect("x"),
                g["y"].as_i64().expect("y"),
                g["w"].as_i64().expect("w"),
                g["h"].as_i64().expect("h"),
            );
            assert!(
                w > 0 && h > 0 && x >= 0 && x + w <= 24,
                "{file}: panel {title:?} does not fit the 24-column grid"
            );
            for (other, ox, oy, ow, oh) in &boxes {
                let overlap = x < ox + ow && *ox < x + w && y < oy + oh && *oy < y + h;
                assert!(!overlap, "{file}: panels {title:?} and {other:?} overlap");
            }
            boxes.push((title.clone(), x, y, w, h));
            if panel["type"] != "row" {
                assert!(
                    panel["description"].as_str().is_some_and(|s| !s.is_empty()),
                    "{file}: panel {title:?} needs a description (the (i) a viewer hovers)"
                );
            }
        }
    }
}

fn uses(d: &Value, metric: &str) -> bool {
    panel_queries("", d)
        .iter()
        .any(|q| selectors(&q.expr).iter().any(|(m, _)| m.as_str() == metric))
}

#[test]
fn overview_shows_what_on_call_needs_at_a_glance() {
    let d = dashboard("dashboards/api-token-overview.json");
    let all = panels(&d);
    let stat_titles: Vec<&str> = all
        .iter()
        .filter(|p| p["type"] == "stat")
        .filter_map(|p| p["title"].as_str())
        .collect();
    for title in [
        "Valid", "Expiring", "Critical", "Expired", "Invalid", "Unknown",
    ] {
        assert!(
            stat_titles.contains(&title),
            "overview: no count of {title} tokens among {stat_titles:?}"
        );
    }
    // The counts sit in the first row, where the eye lands.
    for p in all.iter().filter(|p| p["type"] == "stat") {
        if [
            "Valid", "Expiring", "Critical", "Expired", "Invalid", "Unknown",
        ]
        .contains(&p["title"].as_str().unwrap_or(""))
        {
            assert!(
                p["gridPos"]["y"].as_i64() <= Some(1),
                "overview: {} not on top",
                p["title"]
            );
        }
    }

    let table = all
        .iter()
        .find(|p| p["type"] == "table")
        .expect("overview: a table of tokens");
    assert_eq!(
        table["options"]["sortBy"][0],
        json!({"desc": false, "displayName": "Time left"}),
        "overview: the token table is ordered by time left, soonest first"
    );
    let renamed = &table["transformations"]
        .as_array()
        .expect("transformations")
        .iter()
        .find(|t| t["id"] == "organize")
        .expect("organize transformation")["options"]["renameByName"];
    for (label, column) in [
        ("token", "Token"),
        ("owner", "Owner"),
        ("team", "Team"),
        ("provider", "Provider"),
        ("state", "State"),
    ] {
        assert_eq!(renamed[label], column, "overview table: column for {label}");
    }
    let table_exprs: String = table["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .filter_map(|t| t["expr"].as_str())
        .collect();
    assert!(
        table_exprs.contains("group_left (owner, team) api_token_info")
            && table_exprs.contains("group_left (state)"),
        "overview table: owner/team come from api_token_info and the state from api_token_state"
    );
    assert!(
        table.to_string().contains("/d/api-token-detail/"),
        "overview table: a token links to the drill-down dashboard"
    );

    for metric in [
        "api_token_expiry_timestamp_seconds",
        "api_token_probes_total",
        "api_token_probe_failures_total",
        "api_token_provider_probe_duration_max_seconds",
        "api_token_provider_oldest_probe_timestamp_seconds",
        "api_token_provider_rate_limit_remaining",
        "api_token_notifications_total",
        "api_token_notification_failures_total",
        "up",
        "api_token_exporter_config_last_reload_successful",
        "api_token_exporter_build_info",
        "api_token_source_up",
        "api_token_source_failures_total",
    ] {
        assert!(uses(&d, metric), "overview: no panel shows {metric}");
    }
}

#[test]
fn detail_dashboard_drills_into_one_token_and_its_history() {
    let d = dashboard("dashboards/api-token-detail.json");
    let token = d["templating"]["list"]
        .as_array()
        .expect("variables")
        .iter()
        .find(|v| v["name"] == "token")
        .expect("token variable")
        .clone();
    assert_eq!(token["multi"], false, "detail: one token at a time");
    assert_eq!(token["includeAll"], false, "detail: one token at a time");
    for metric in [
        "api_token_state",
        "api_token_expiry_timestamp_seconds",
        "api_token_warning_threshold_seconds",
        "api_token_critical_threshold_seconds",
        "api_token_info",
        "api_token_scope_info",
        "api_token_issued_timestamp_seconds",
        "api_token_last_used_timestamp_seconds",
        "api_token_last_verdict_timestamp_seconds",
        "api_token_probe_duration_seconds",
        "api_token_probe_failures_total",
    ] {
        assert!(uses(&d, metric), "detail: no panel shows {metric}");
    }
    assert!(
        panels(&d)
            .iter()
            .any(|p| p["type"] == "state-timeline" || p["type"] == "timeseries"),
        "detail: shows history"
    );
}

/// Panels that show the state as a number (1 = valid ... 8 = unknown) must encode and map every
/// state; a missing one would show as a bare number or not at all.
#[test]
fn state_codes_cover_every_state() {
    const STATES: &[&str] = &[
        "valid",
        "unverified",
        "invalid",
        "forbidden",
        "rate_limited",
        "unreachable",
        "misconfigured",
        "unknown",
    ];
    let mut seen = 0;
    for (file, d) in dashboards() {
        for panel in panels(&d) {
            let mappings = panel["fieldConfig"]["defaults"]["mappings"].to_string();
            if !mappings.contains(r#""1":{"color":"green","index":0,"text":"valid"}"#) {
                continue;
            }
            seen += 1;
            let title = panel["title"].as_str().unwrap_or("");
            let expr = panel["targets"][0]["expr"].as_str().unwrap_or("");
            for (i, state) in STATES.iter().enumerate() {
                let code = i + 1;
                assert!(
                    expr.contains(&format!("api_token_state{{state=\"{state}\""))
                        && expr.contains(&format!("== 1) * {code}")),
                    "{file}: panel {title:?} does not encode {state} as {code}"
                );
                assert!(
                    mappings.contains(&format!(r#""{code}":{{"#))
                        && mappings.contains(&format!(r#""text":"{state}""#)),
                    "{file}: panel {title:?} does not map {code} to {state}"
                );
            }
        }
    }
    assert!(
        seen >= 3,
        "expected the state panels of both dashboards, found {seen}"
    );
}

#[test]
fn grafana_schema_check_passes() {
    let dir = repo().join(GRAFANA_PEER_DIR);
    let Some(node) = which("node") else {
        peer_missing("`node`", "apt-get install -y nodejs npm");
        return;
    };
    if !dir.join("node_modules/@grafana/schema").is_dir() {
        peer_missing(
            "@grafana/schema",
            "npm ci --prefix tests/peers/grafana installs it",
        );
        return;
    }
    let out = run(Command::new(node)
        .current_dir(repo())
        .arg(dir.join("check-dashboards.mjs")));
    assert!(
        out.status.success(),
        "the dashboards do not match @grafana/schema: {}",
        describe(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{} dashboard(s) match", SHIPPED.len())),
        "the schema check did not check every dashboard: {stdout}"
    );
}

/// The schema check must reject what Grafana would not load, or passing it means nothing.
#[test]
fn grafana_schema_check_rejects_a_broken_dashboard() {
    let dir = repo().join(GRAFANA_PEER_DIR);
    let Some(node) = which("node") else {
        peer_missing("`node`", "apt-get install -y nodejs npm");
        return;
    };
    if !dir.join("node_modules/@grafana/schema").is_dir() {
        peer_missing(
            "@grafana/schema",
            "npm ci --prefix tests/peers/grafana installs it",
        );
        return;
    }
    let original = read("dashboards/api-token-overview.json");
    let breakages = [
        ("\"graphTooltip\": 1", "\"graphTooltip\": 7"),
        ("\"textMode\": \"value\"", "\"textMode\": \"bogus\""),
        ("\"type\": \"color-text\"", "\"type\": \"colour-text\""),
        ("\"schemaVersion\": 39", "\"schemaVersion\": \"39\""),
    ];
    let tmp = tempfile::tempdir().expect("tempdir");
    for (from, to) in breakages {
        assert!(
            original.contains(from),
            "breakage {from:?} is not in the dashboard"
        );
        let broken = tmp.path().join("broken.json");
        std::fs::write(&broken, original.replacen(from, to, 1)).expect("write broken dashboard");
        let out = run(Command::new(&node)
            .current_dir(repo())
            .arg(dir.join("check-dashboards.mjs"))
            .arg(&broken));
        assert!(
            !out.status.success(),
            "the schema check accepted a dashboard with {to}: {}",
            describe(&out)
        );
        // A failed check keeps its generated sources for reading; remove them here.
        for entry in std::fs::read_dir(&dir).expect("peer dir").flatten() {
            if entry.file_name().to_string_lossy().starts_with(".check-") {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

#[test]
fn provisioning_and_scrape_examples_are_valid_and_match_the_rules() {
    let providers = yaml_file("dashboards/provisioning/dashboards.yml");
    assert_eq!(providers["apiVersion"], 1);
    let provider = &providers["providers"][0];
    assert_eq!(provider["type"], "file");
    assert!(
        provider["options"]["path"]
            .as_str()
            .is_some_and(|p| !p.is_empty())
    );
    let sources = yaml_file("dashboards/provisioning/datasources.yml");
    assert_eq!(sources["apiVersion"], 1);
    assert_eq!(sources["datasources"][0]["type"], "prometheus");

    let scrape = yaml_file(SCRAPE_EXAMPLE);
    let job = scrape["scrape_configs"][0]["job_name"]
        .as_str()
        .expect("job_name");
    assert!(
        read(RULES_FILE).contains(&format!("up{{job=\"{job}\"}}")),
        "the exporter alerts must select the example's job name {job}"
    );
    let target = scrape["scrape_configs"][0]["static_configs"][0]["targets"][0]
        .as_str()
        .expect("target");
    assert!(
        target.ends_with(":10042"),
        "the exporter's default port is 10042"
    );

    let Some(promtool) = peer("promtool", APT_HINT) else {
        return;
    };
    let out =
        run(Command::new(promtool)
            .current_dir(repo())
            .args(["check", "config", SCRAPE_EXAMPLE]));
    assert!(
        out.status.success(),
        "promtool check config {SCRAPE_EXAMPLE}: {}",
        describe(&out)
    );
}
