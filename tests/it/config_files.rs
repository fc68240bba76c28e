//! Config loading through the public API and the binary: every bad fixture gives its exact
//! message (field path and line), examples load, and `--config.check` exits 0 / 1.

use std::path::{Path, PathBuf};
use std::process::Command;

use api_token_exporter::config::Config;

fn bad(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata/config/bad")
        .join(name)
}

/// Each bad fixture and the exact message it must produce (after the `path: ` prefix).
const BAD: &[(&str, &str)] = &[
    (
        "unknown_field.yml",
        "tokens[0].lables: unknown field `lables`, expected one of name, provider, secret, labels, warning_before, critical_before, probe_interval, probe_timeout, token_type_hint, audiences, accessor, expires_at, issued_at, key_id, access_key_id, access_key_id_file, session_token, email, username, policies, rotate (line 13)",
    ),
    (
        "unknown_global_field.yml",
        "global.probe_intervall: unknown field `probe_intervall`, expected one of probe_interval, probe_timeout, min_probe_interval, max_backoff, warning_before, critical_before, max_concurrency, policies (line 2)",
    ),
    (
        "unknown_kind.yml",
        "providers.gh.kind: unknown provider kind `gihtub`, expected one of oauth2_introspection, jwt, github, gitlab, vault, slack, cloudflare, google, kubernetes, static, entra_id, http, aws, atlassian, grafana, okta, npm, docker_hub, terraform (line 3)",
    ),
    (
        "unknown_provider_field.yml",
        "providers.keys.jwks_endpoint: unknown field `jwks_endpoint`, expected one of jwks_uri, jwks_url, issuer, algorithms, jwks_cache, leeway, max_concurrency (line 4)",
    ),
    (
        "provider_field_type.yml",
        "providers.v.namespace: expected string scalar (line 5)",
    ),
    (
        "empty.yml",
        "the config file is empty: it holds no providers and no tokens (a truncated write?); write `tokens: []` to run without tokens on purpose",
    ),
    (
        "only_comments.yml",
        "the config file is empty: it holds no providers and no tokens (a truncated write?); write `tokens: []` to run without tokens on purpose",
    ),
    (
        "secret_key.yml",
        "tokens[0].secret: a secret source takes the keys env, file, exec, timeout and exec_env; another key is not shown, as it may be a token (line 7)",
    ),
    (
        "unknown_provider.yml",
        "tokens[2].provider: unknown provider \"gihtub\" (defined: github) (line 12)",
    ),
    (
        "duplicate_token.yml",
        "tokens[1].name: duplicate token name \"deploy-bot\" (first defined on line 5) (line 8)",
    ),
    (
        "bad_duration.yml",
        "global.probe_interval: invalid duration \"5 minutes and a bit\": expected number at 10 (use e.g. 30s, 5m, 14d) (line 2)",
    ),
    (
        "bad_token_duration.yml",
        "tokens[0].warning_before: invalid duration \"two weeks\": expected number at 0 (use e.g. 30s, 5m, 14d) (line 8)",
    ),
    (
        "critical_not_below_warning.yml",
        "global.critical_before: must be shorter than warning_before (7days >= 7days) (line 3)",
    ),
    (
        "token_critical_not_below_warning.yml",
        "tokens[0].critical_before: must be shorter than warning_before (3days >= 2days) (line 8)",
    ),
    (
        "bad_label_name.yml",
        "tokens[0].labels.cost-center: \"cost-center\" is not a valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __) (line 10)",
    ),
    (
        "reserved_label.yml",
        "tokens[0].labels.provider: \"provider\" is set by the exporter itself; choose another label name (line 8)",
    ),
    (
        "inline_secret.yml",
        "tokens[0].secret: a secret must not be written inline in the config file; use {env: NAME}, {file: PATH} or {exec: [COMMAND, ARG...]} (line 7)",
    ),
    (
        "missing_secret.yml",
        "tokens[0]: secret is required for a jwt provider ({env: NAME}, {file: PATH} or {exec: [COMMAND, ARG...]}) (line 5)",
    ),
    (
        "secret_two_sources.yml",
        "tokens[0].secret: a secret source takes exactly one of env, file or exec (line 7)",
    ),
    (
        "introspection_without_endpoint.yml",
        "providers.idp: introspection_endpoint or issuer is required (line 3)",
    ),
    (
        "introspection_without_client_secret.yml",
        "providers.idp: auth_method client_secret_basic needs client_id and client_secret (line 3)",
    ),
    (
        "param_for_wrong_kind.yml",
        "tokens[0]: token_type_hint does not apply to a jwt provider (line 5)",
    ),
    (
        "rotator_for_wrong_kind.yml",
        "tokens[0].rotate.rotator.kind: token \"deploy\": rotator vault_renew cannot rotate a token of provider kind github (it renews vault tokens) (line 10)",
    ),
    (
        "yaml_syntax.yml",
        "while parsing a block mapping, did not find expected key (line 4)",
    ),
    (
        "zero_interval.yml",
        "global.probe_interval: must be greater than zero (line 2)",
    ),
];

#[test]
fn every_bad_fixture_gives_its_exact_message() {
    for (file, expected) in BAD {
        let path = bad(file);
        let err = Config::load(&path).expect_err(file);
        assert_eq!(
            err.to_string(),
            format!("{}: {expected}", path.display()),
            "fixture {file}"
        );
    }
}

#[test]
fn every_bad_fixture_is_covered() {
    let mut on_disk: Vec<String> = std::fs::read_dir(bad(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = BAD.iter().map(|(f, _)| f.to_string()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "a fixture without an expected message, or the reverse"
    );
}

#[test]
fn an_inline_token_is_never_echoed() {
    let err = Config::load(&bad("inline_secret.yml"))
        .unwrap_err()
        .to_string();
    assert!(!err.contains("CANARY_INLINE_TOKEN"), "{err}");
    assert!(!err.contains("eyJ"), "{err}");
}

#[test]
fn all_semantic_errors_are_reported_at_once() {
    let yaml = "providers:\n  k:\n    kind: jwt\ntokens:\n  - name: a\n    provider: nope\n    secret: {env: A}\n  - name: a\n    provider: k\n    secret: {env: A}\n    labels: {9x: y}\n";
    let err = Config::parse(yaml).unwrap_err();
    let text = err.to_string();
    assert_eq!(err.issues.len(), 3, "{text}");
    assert!(
        text.contains("tokens[0].provider: unknown provider \"nope\""),
        "{text}"
    );
    assert!(
        text.contains("tokens[1].name: duplicate token name"),
        "{text}"
    );
    assert!(text.contains("tokens[1].labels.9x"), "{text}");
}

#[test]
fn examples_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        // web-config.yml is a --web.config.file, not an inventory: tests/web_config.rs runs it.
        let is_web_config = path.file_name().is_some_and(|n| n == "web-config.yml");
        if path.extension().is_some_and(|e| e == "yml" || e == "yaml") && !is_web_config {
            Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(
        n >= 2,
        "examples/ holds at least the minimal and full configs"
    );
}

#[test]
fn defaults_apply_and_per_token_overrides_win() {
    let c = Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/full.yml")).unwrap();
    let deploy = c.token("deploy-bot").unwrap();
    assert_eq!(deploy.thresholds.warning_before.as_secs(), 30 * 86_400);
    assert_eq!(deploy.thresholds.critical_before.as_secs(), 7 * 86_400);
    let nightly = c.token("nightly-refresh").unwrap();
    assert_eq!(nightly.thresholds.warning_before.as_secs(), 14 * 86_400);
    assert_eq!(nightly.probe_interval.as_secs(), 3600);
    assert_eq!(c.global.max_concurrency, 32);
}

#[test]
fn config_check_exit_codes() {
    let bin = env!("CARGO_BIN_EXE_api-token-exporter");
    let ok = Command::new(bin)
        .args(["--config.check", "--config.file"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/minimal.yml"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("OK (1 providers, 1 tokens)"));
    let bad_run = Command::new(bin)
        .args(["--config.check", "--config.file"])
        .arg(bad("unknown_provider.yml"))
        .output()
        .unwrap();
    assert_eq!(bad_run.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad_run.stderr)
            .contains("tokens[2].provider: unknown provider \"gihtub\"")
    );
    // An empty file is refused with a message that says so (a truncated write must not pass
    // a pipeline's check and then wipe the inventory).
    let empty = Command::new(bin)
        .args(["--config.check", "--config.file"])
        .arg(bad("empty.yml"))
        .output()
        .unwrap();
    assert_eq!(empty.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&empty.stderr).contains("empty.yml: the config file is empty"),
        "{}",
        String::from_utf8_lossy(&empty.stderr)
    );
    // A token pasted as a key under `secret:` is not echoed on either stream.
    let key = Command::new(bin)
        .args(["--config.check", "--config.file"])
        .arg(bad("secret_key.yml"))
        .output()
        .unwrap();
    assert_eq!(key.status.code(), Some(1));
    let both = format!(
        "{}{}",
        String::from_utf8_lossy(&key.stdout),
        String::from_utf8_lossy(&key.stderr)
    );
    assert!(
        both.contains("tokens[0].secret: a secret source takes"),
        "{both}"
    );
    assert!(!both.contains("CANARY"), "{both}");
    let missing = Command::new(bin)
        .args(["--config.check", "--config.file", "/nonexistent/config.yml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/config.yml: cannot read")
    );
}

/// A config that still writes settings under their old names loads as before, and says so:
/// `--config.check` prints one warning per provider naming the old and the new name, and the
/// daemon logs the same warning once per provider when it loads the file.
#[test]
fn old_setting_names_warn_in_config_check_and_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::support::daemon::write(
        dir.path(),
        "config.yml",
        "providers:\n  gh:\n    kind: github\n    api_url: http://127.0.0.1:9\n  bao:\n    kind: vault\n    address: http://127.0.0.1:9\n  idp:\n    kind: jwt\n    jwks_uri: http://127.0.0.1:9/jwks\ntokens: []\n",
    );
    let wanted = [
        "providers.bao: deprecated setting name: `address` is now `url`",
        "providers.gh: deprecated setting name: `api_url` is now `url`",
    ];
    let bin = env!("CARGO_BIN_EXE_api-token-exporter");
    let check = Command::new(bin)
        .args(["--config.check", "--config.file"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{stderr}");
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("OK (3 providers, 0 tokens)"),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("warning:")).collect();
    assert_eq!(warnings.len(), 2, "{stderr}");
    for (line, want) in warnings.iter().zip(wanted) {
        assert!(line.contains(want), "{line}");
    }

    let d = crate::support::daemon::Daemon::start(&["--config.file", config.to_str().unwrap()]);
    d.wait_for("/-/ready", std::time::Duration::from_secs(10));
    let logs = d.logs();
    let logged: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("deprecated setting name"))
        .collect();
    assert_eq!(logged.len(), 2, "{logs}");
    for want in wanted {
        assert!(logged.iter().any(|l| l.contains(want)), "{logs}");
    }
    assert!(!logs.contains("providers.idp"), "{logs}");
}
