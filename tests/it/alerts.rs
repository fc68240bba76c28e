//! The bundled Prometheus alert rules, tested like code: the list of shipped alerts is a ratchet,
//! every rule carries what on-call needs, promtool accepts the rules and their unit tests pass,
//! the unit tests catch the mistakes they exist for, and the Kubernetes PrometheusRule manifest
//! is generated from the same rules file.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::support;
use serde_json::Value;
use support::prom::{
    ALERTMANAGER_EXAMPLE, APT_HINT, PROMETHEUS_RULE_FILE, RULES_FILE, alert_names, describe, peer,
    read, repo, rules_of, run, yaml, yaml_file,
};

/// Every alert this project ships. Dashboards, runbooks and users' Alertmanager routes refer to
/// these names, so removing or renaming one must be a deliberate change of this list too.
const SHIPPED_ALERTS: &[&str] = &[
    "ApiTokenExpiringSoon",
    "ApiTokenExpiringCritical",
    "ApiTokenExpired",
    "ApiTokenInvalid",
    "ApiTokenProbeFailing",
    "ApiTokenProviderMisconfigured",
    "ApiTokenPolicyViolation",
    "ApiTokenAnswerAnomaly",
    "ApiTokenRotationFailing",
    "ApiTokenExporterDown",
    "ApiTokenExporterAbsent",
    "ApiTokenExporterConfigReloadFailed",
    "ApiTokenExporterWebConfigReloadFailed",
    "ApiTokenNotificationsFailing",
    "ApiTokenSourceFailing",
];

/// Alerts about one token: they must name it, its provider and its owner.
const TOKEN_ALERTS: &[&str] = &[
    "ApiTokenExpiringSoon",
    "ApiTokenExpiringCritical",
    "ApiTokenExpired",
    "ApiTokenInvalid",
    "ApiTokenProbeFailing",
    "ApiTokenProviderMisconfigured",
    "ApiTokenPolicyViolation",
    "ApiTokenAnswerAnomaly",
    "ApiTokenRotationFailing",
];

/// Alerts that tell how much time is left (or how long ago the token expired).
const TIME_ALERTS: &[&str] = &[
    "ApiTokenExpiringSoon",
    "ApiTokenExpiringCritical",
    "ApiTokenExpired",
];

const RUNBOOK: &str = "alerts/runbook.md";

fn rules() -> Vec<Value> {
    rules_of(&yaml_file(RULES_FILE))
}

fn alert(name: &str) -> Value {
    rules()
        .into_iter()
        .find(|r| r["alert"] == name)
        .unwrap_or_else(|| panic!("{RULES_FILE} has no alert {name}"))
}

fn text(rule: &Value, path: &[&str]) -> String {
    let mut v = rule;
    for key in path {
        v = &v[*key];
    }
    v.as_str().unwrap_or("").to_owned()
}

#[test]
fn shipped_alert_names_are_exactly_the_known_list() {
    let shipped = alert_names(&yaml_file(RULES_FILE));
    let known: BTreeSet<&str> = SHIPPED_ALERTS.iter().copied().collect();
    let have: BTreeSet<&str> = shipped.iter().map(String::as_str).collect();
    let missing: Vec<_> = known.difference(&have).collect();
    let unknown: Vec<_> = have.difference(&known).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "{RULES_FILE} no longer ships {missing:?} and newly ships {unknown:?}. Alert names are a \
         contract (routes, silences and runbooks use them): if this is intended, update \
         SHIPPED_ALERTS in tests/it/alerts.rs, alerts/runbook.md and docs/alerts-and-dashboards.md."
    );
    assert_eq!(
        shipped.len(),
        have.len(),
        "{RULES_FILE} defines an alert name twice: {shipped:?}"
    );
}

#[test]
fn every_alert_has_severity_summary_description_and_runbook() {
    let runbook = read(RUNBOOK);
    for rule in rules() {
        let name = rule["alert"]
            .as_str()
            .unwrap_or_else(|| panic!("{RULES_FILE} has a rule without `alert`: {rule}"));
        assert!(
            name.starts_with("ApiToken") && name.chars().all(|c| c.is_ascii_alphanumeric()),
            "{name}: alert names are CamelCase and start with ApiToken"
        );
        let severity = text(&rule, &["labels", "severity"]);
        assert!(
            severity == "warning" || severity == "critical",
            "{name}: severity label must be warning or critical, got {severity:?}"
        );
        for key in ["summary", "description", "runbook_url"] {
            assert!(
                !text(&rule, &["annotations", key]).trim().is_empty(),
                "{name}: annotation {key} is missing or empty"
            );
        }
        let for_ = text(&rule, &["for"]);
        assert!(
            humantime::parse_duration(&for_).is_ok_and(|d| d.as_secs() >= 60),
            "{name}: needs an explicit `for:` of at least a minute, got {for_:?}"
        );
        let anchor = name.to_ascii_lowercase();
        assert!(
            text(&rule, &["annotations", "runbook_url"])
                .contains(&format!("alerts/runbook.md#{anchor}")),
            "{name}: runbook_url must fall back to alerts/runbook.md#{anchor}"
        );
        assert!(
            runbook.contains(&format!("\n## {name}\n")),
            "{RUNBOOK} has no section `## {name}` for the runbook_url to point at"
        );
    }
}

#[test]
fn token_alerts_name_token_provider_and_owner_joined_from_api_token_info() {
    for name in TOKEN_ALERTS {
        let rule = alert(name);
        let expr = text(&rule, &["expr"]);
        let description = text(&rule, &["annotations", "description"]);
        for label in ["token", "provider", "owner"] {
            assert!(
                description.contains(&format!("$labels.{label}")),
                "{name}: description must name the {label} ($labels.{label})"
            );
        }
        assert!(
            expr.contains("group_left (owner, team, runbook)") && expr.contains("api_token_info"),
            "{name}: owner, team and runbook come from api_token_info via group_left: {expr}"
        );
        assert!(
            text(&rule, &["annotations", "runbook_url"]).contains("$labels.runbook"),
            "{name}: runbook_url must prefer the token's own runbook label"
        );
    }
    for name in TIME_ALERTS {
        let rule = alert(name);
        assert!(
            text(&rule, &["annotations", "description"]).contains("$value | humanizeDuration"),
            "{name}: description must give the time in human units ($value | humanizeDuration)"
        );
    }
}

/// The monitoring-mixins guidelines: `summary` is a static sentence, so it reads the same in
/// every notification and Alertmanager can group on it; the per-token detail is in `description`.
#[test]
fn summaries_are_static_sentences() {
    for rule in rules() {
        let name = rule["alert"].as_str().expect("alert name");
        let summary = text(&rule, &["annotations", "summary"]);
        assert!(
            !summary.contains("{{"),
            "{name}: summary must not use templates (move them to description): {summary:?}"
        );
        assert!(
            summary.starts_with(|c: char| c.is_ascii_uppercase()) && summary.ends_with('.'),
            "{name}: summary must be a sentence with a capital letter and a final period: {summary:?}"
        );
    }
}

#[test]
fn expiry_bands_compare_with_the_per_token_windows_not_fixed_numbers() {
    for (name, window) in [
        (
            "ApiTokenExpiringSoon",
            "api_token_warning_threshold_seconds",
        ),
        (
            "ApiTokenExpiringCritical",
            "api_token_critical_threshold_seconds",
        ),
    ] {
        let expr = text(&alert(name), &["expr"]);
        // The token's own window where it has one, else the global one: the exporter writes
        // a token's window only where it differs from the global.
        let default = window.replace("api_token_", "api_token_default_");
        let compared = expr
            .split_once("<= on (job, instance, token, provider)")
            .map(|(_, rest)| rest.split_whitespace().collect::<Vec<_>>().join(" "));
        assert!(
            compared.as_deref().is_some_and(|rest| rest.starts_with(&format!(
                "( {window} or on (job, instance, token, provider) (0 * api_token_expiry_timestamp_seconds + on (job, instance) group_left () {default})"
            ))),
            "{name}: must compare time left with {window}, falling back to {default}: {expr}"
        );
    }
    for name in TIME_ALERTS {
        let expr = text(&alert(name), &["expr"]);
        let long_number = expr
            .split(|c: char| !c.is_ascii_digit())
            .find(|digits| digits.len() >= 3);
        assert!(
            long_number.is_none(),
            "{name}: a fixed number of seconds ({long_number:?}) would ignore per-token windows: {expr}"
        );
    }
}

#[test]
fn expiry_and_validity_alerts_only_use_conclusive_states() {
    // The states that say something about the provider or the exporter, never about the token
    // (the core's `Verdict::is_conclusive` is false for them), plus "not probed yet".
    const INCONCLUSIVE: &[&str] = &["unreachable", "rate_limited", "misconfigured", "unknown"];
    for name in [
        "ApiTokenExpiringSoon",
        "ApiTokenExpiringCritical",
        "ApiTokenExpired",
        "ApiTokenInvalid",
    ] {
        let expr = text(&alert(name), &["expr"]);
        assert!(
            expr.contains("api_token_state{state"),
            "{name}: must be gated on api_token_state: {expr}"
        );
        for state in INCONCLUSIVE {
            assert!(
                !expr.contains(state),
                "{name}: must not key on the inconclusive state {state}: {expr}"
            );
        }
    }
}

/// The issue asks for each `for:` to be explained in a comment. The comment block right above
/// each alert must mention its `for:` value, so a changed duration with a stale reason fails.
#[test]
fn every_for_duration_is_explained_in_the_comment_above_the_alert() {
    let source = read(RULES_FILE);
    let lines: Vec<&str> = source.lines().collect();
    for rule in rules() {
        let name = rule["alert"].as_str().expect("alert name");
        let for_ = text(&rule, &["for"]);
        let at = lines
            .iter()
            .position(|l| l.trim() == format!("- alert: {name}"))
            .unwrap_or_else(|| panic!("cannot find `- alert: {name}` in {RULES_FILE}"));
        let comment: Vec<&str> = lines[..at]
            .iter()
            .rev()
            .take_while(|l| l.trim_start().starts_with('#'))
            .copied()
            .collect();
        assert!(
            comment.iter().any(|l| l.contains(&format!("for: {for_}."))),
            "{name}: the comment above it must say why `for: {for_}` (a line with \"for: {for_}.\")"
        );
    }
}

/// Every alert needs promtool cases where it fires and cases where it must stay silent.
#[test]
fn every_alert_has_promtool_cases_that_fire_and_that_must_not() {
    let mut fires = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for file in promtool_test_files() {
        let doc = yaml(
            &fs::read_to_string(repo().join(&file)).expect("read test"),
            &file,
        );
        for case in doc["tests"].as_array().expect("tests list") {
            for t in case["alert_rule_test"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let name = t["alertname"].as_str().unwrap_or("").to_owned();
                match t["exp_alerts"].as_array().map(Vec::len) {
                    Some(0) | None => silent.insert(name),
                    Some(_) => fires.insert(name),
                };
            }
        }
    }
    for name in SHIPPED_ALERTS {
        assert!(
            fires.contains(*name),
            "no promtool test in alerts/tests makes {name} fire"
        );
        assert!(
            silent.contains(*name),
            "no promtool test in alerts/tests checks that {name} stays silent"
        );
    }
}

fn promtool_test_files() -> Vec<String> {
    let mut files: Vec<String> = fs::read_dir(repo().join("alerts/tests"))
        .expect("alerts/tests")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".test.yml"))
        .map(|n| format!("alerts/tests/{n}"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "alerts/tests has no *.test.yml");
    files
}

#[test]
fn promtool_check_rules_accepts_the_rules() {
    let Some(promtool) = peer("promtool", APT_HINT) else {
        return;
    };
    let out = run(Command::new(promtool)
        .current_dir(repo())
        .args(["check", "rules", RULES_FILE]));
    assert!(
        out.status.success(),
        "promtool check rules {RULES_FILE}: {}",
        describe(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("SUCCESS: {} rules found", SHIPPED_ALERTS.len())),
        "promtool found another number of rules than SHIPPED_ALERTS lists: {stdout}"
    );
}

#[test]
fn promtool_unit_tests_pass() {
    let Some(promtool) = peer("promtool", APT_HINT) else {
        return;
    };
    let out = run(Command::new(promtool)
        .current_dir(repo())
        .args(["test", "rules"])
        .args(promtool_test_files()));
    assert!(
        out.status.success(),
        "promtool test rules alerts/tests/*.test.yml: {}",
        describe(&out)
    );
}

/// Replaces `from` by `to` inside the rule block of `alert` (from its `- alert:` line to the
/// next one), panicking if `from` is not there, so a mutation cannot silently miss.
fn mutate(source: &str, alert: &str, from: &str, to: &str) -> String {
    let start = source
        .find(&format!("- alert: {alert}\n"))
        .unwrap_or_else(|| panic!("no alert {alert}"));
    let end = source[start + 1..]
        .find("- alert: ")
        .map_or(source.len(), |i| start + 1 + i);
    let block = &source[start..end];
    assert!(
        block.contains(from),
        "mutation for {alert}: {from:?} is not in its rule"
    );
    format!(
        "{}{}{}",
        &source[..start],
        block.replacen(from, to, 1),
        &source[end..]
    )
}

fn promtool_tests_pass_on(promtool: &Path, rules_text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("api-token-exporter.rules.yml"), rules_text).expect("write rules");
    fs::create_dir(dir.path().join("tests")).expect("mkdir tests");
    let mut files = Vec::new();
    for file in promtool_test_files() {
        let to = dir
            .path()
            .join("tests")
            .join(Path::new(&file).file_name().expect("file name"));
        fs::copy(repo().join(&file), &to).expect("copy test");
        files.push(to);
    }
    let out = run(Command::new(promtool).args(["test", "rules"]).args(&files));
    (out.status.success(), describe(&out))
}

/// The unit tests exist to guard a few properties; each mutation below breaks one of them, and
/// promtool must then fail. A suite that still passes would not protect anything.
#[test]
fn promtool_unit_tests_catch_rules_that_break_the_promises() {
    let Some(promtool) = peer("promtool", APT_HINT) else {
        return;
    };
    let source = read(RULES_FILE);
    let (ok, out) = promtool_tests_pass_on(&promtool, &source);
    assert!(ok, "the unmodified rules must pass: {out}");

    let mutations = [
        (
            "per-token warning windows are honoured",
            "ApiTokenExpiringSoon",
            "api_token_warning_threshold_seconds",
            "api_token_no_own_warning_threshold_seconds",
        ),
        (
            "per-token critical windows are honoured",
            "ApiTokenExpiringCritical",
            "api_token_critical_threshold_seconds",
            "api_token_no_own_critical_threshold_seconds",
        ),
        (
            "tokens on the global warning window still warn",
            "ApiTokenExpiringSoon",
            "api_token_default_warning_threshold_seconds",
            "api_token_no_default_warning_threshold_seconds",
        ),
        (
            "tokens on the global critical window still page",
            "ApiTokenExpiringCritical",
            "api_token_default_critical_threshold_seconds",
            "api_token_no_default_critical_threshold_seconds",
        ),
        (
            "a provider outage never fires ApiTokenExpired",
            "ApiTokenExpired",
            "state=~\"valid|invalid|unverified|forbidden\"",
            "state=~\".+\"",
        ),
        (
            "a provider outage never fires ApiTokenInvalid",
            "ApiTokenInvalid",
            "state=\"invalid\"",
            "state=~\"invalid|unreachable\"",
        ),
        (
            "an expired token raises ApiTokenExpired, not ApiTokenInvalid too",
            "ApiTokenInvalid",
            "unless on (job, instance, token, provider)",
            "or on (job, instance, token, provider)",
        ),
        (
            "a short blip does not fire ApiTokenProbeFailing",
            "ApiTokenProbeFailing",
            "for: 15m",
            "for: 5m",
        ),
        (
            "expiry bands need a conclusive answer",
            "ApiTokenExpiringCritical",
            "state=~\"valid|unverified|forbidden\"",
            "state=~\".+\"",
        ),
        (
            "a one-off odd answer does not raise ApiTokenAnswerAnomaly",
            "ApiTokenAnswerAnomaly",
            "for: 1h",
            "for: 5m",
        ),
        (
            "a revoked token does not also raise the expiry bands",
            "ApiTokenExpiringCritical",
            "state=\"invalid\"",
            "state=\"no-such-state\"",
        ),
    ];
    // Each mutation runs promtool on its own copy; running them side by side keeps the test
    // short.
    let survivors: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = mutations
            .iter()
            .map(|(promise, alert, from, to)| {
                let mutated = mutate(&source, alert, from, to);
                let promtool = &promtool;
                scope.spawn(move || {
                    let (ok, _) = promtool_tests_pass_on(promtool, &mutated);
                    ok.then(|| format!("{alert} changed ({from} -> {to}) breaks \"{promise}\""))
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().expect("mutation thread"))
            .collect()
    });
    assert!(
        survivors.is_empty(),
        "promtool tests still pass on broken rules, so nothing guards these promises:\n{}",
        survivors.join("\n")
    );
}

#[test]
fn prometheus_rule_manifest_holds_the_same_groups_and_promtool_accepts_them() {
    // mixin/render.py writes both files; this holds the committed twin to the rules file.
    let manifest = yaml_file(PROMETHEUS_RULE_FILE);
    assert_eq!(manifest["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(manifest["kind"], "PrometheusRule");
    assert_eq!(manifest["metadata"]["name"], "api-token-exporter");
    let rules = yaml_file(RULES_FILE);
    assert_eq!(
        manifest["spec"]["groups"], rules["groups"],
        "the PrometheusRule's spec.groups differ from the rules file's groups"
    );

    let Some(promtool) = peer("promtool", APT_HINT) else {
        return;
    };
    // A rules file may be JSON; promtool checks the manifest's spec exactly as the operator
    // would hand it to Prometheus.
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("spec.rules.json");
    fs::write(&spec, manifest["spec"].to_string()).expect("write spec");
    let out = run(Command::new(promtool).arg("check").arg("rules").arg(&spec));
    assert!(
        out.status.success(),
        "promtool check rules on the PrometheusRule spec: {}",
        describe(&out)
    );
}

#[test]
fn alertmanager_example_is_valid_and_holds_back_warnings_during_critical() {
    let example = yaml_file(ALERTMANAGER_EXAMPLE);
    let inhibit = example["inhibit_rules"]
        .as_array()
        .expect("inhibit_rules list");
    assert!(
        inhibit.iter().any(|r| {
            r["source_matchers"][0] == "alertname=\"ApiTokenExpiringCritical\""
                && r["target_matchers"][0] == "alertname=\"ApiTokenExpiringSoon\""
                && r["equal"]
                    .as_array()
                    .is_some_and(|e| e.iter().any(|l| l == "token"))
        }),
        "{ALERTMANAGER_EXAMPLE} must inhibit ApiTokenExpiringSoon while ApiTokenExpiringCritical \
         fires for the same token"
    );
    for receiver in example["receivers"].as_array().expect("receivers") {
        let name = receiver["name"].as_str().unwrap_or("");
        assert!(
            example["route"]
                .to_string()
                .contains(&format!("\"{name}\"")),
            "receiver {name} is not used by any route"
        );
    }
    let Some(amtool) = peer("amtool", APT_HINT) else {
        return;
    };
    let out = run(Command::new(amtool)
        .current_dir(repo())
        .args(["check-config", ALERTMANAGER_EXAMPLE]));
    assert!(
        out.status.success(),
        "amtool check-config {ALERTMANAGER_EXAMPLE}: {}",
        describe(&out)
    );
}

/// The alert table of the documentation lists every shipped alert with its real severity and
/// `for:`, in docs/alerts-and-dashboards.md.
#[test]
fn documentation_lists_every_alert_with_its_severity_and_for() {
    let docs = fs::read_to_string(repo().join("docs/alerts-and-dashboards.md"))
        .expect("read docs/alerts-and-dashboards.md");
    for rule in rules() {
        let name = rule["alert"].as_str().expect("alert name");
        let row = format!(
            "| `{name}` | {} | {} |",
            text(&rule, &["labels", "severity"]),
            text(&rule, &["for"])
        );
        assert!(
            docs.contains(&row),
            "the documentation's alert table has no row starting {row:?}"
        );
    }
}
