//! The binary end to end, with providers that need no peer (JWTs read locally, and a local
//! introspection stand-in): metrics, reload (HTTP and SIGHUP), removal of tokens, readiness,
//! graceful shutdown, and `check` exit codes.

use std::time::{Duration, Instant};

use crate::support;
use base64::Engine;
use serde_json::{Value, json};
use support::daemon::{BIN, Daemon, write};

/// An unsigned JWT with the given claims (the jwt provider without keys reads, not verifies).
fn jwt(claims: Value) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2ln",
        b64(&json!({"alg": "ES256", "typ": "JWT"})),
        b64(&claims)
    )
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn inventory(dir: &std::path::Path, tokens: &[(&str, i64)]) -> String {
    let mut yaml = String::from("providers:\n  local:\n    kind: jwt\ntokens:\n");
    for (name, exp) in tokens {
        let secret = write(
            dir,
            name,
            &jwt(json!({"sub": format!("svc-{name}"), "exp": exp})),
        );
        yaml.push_str(&format!(
            "  - name: {name}\n    provider: local\n    secret: {{file: {}}}\n    labels: {{team: t-{name}}}\n",
            secret.display()
        ));
    }
    yaml
}

fn metric_lines(d: &Daemon, prefix: &str) -> Vec<String> {
    let (code, body) = d.get("/metrics");
    assert_eq!(code, 200);
    body.lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serves_metrics_reloads_and_drops_removed_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let exp = now() + 10 * 86_400;
    let config = write(
        dir.path(),
        "config.yml",
        &inventory(dir.path(), &[("alpha", exp), ("beta", exp)]),
    );
    let d = Daemon::start(&["--config.file", config.to_str().unwrap()]);
    d.wait_for("/-/ready", Duration::from_secs(10));

    let expiry = metric_lines(&d, "api_token_expiry_timestamp_seconds{");
    assert_eq!(expiry.len(), 2, "{expiry:?}");
    assert!(
        expiry.iter().any(|l| l
            == &format!(
                "api_token_expiry_timestamp_seconds{{token=\"alpha\",provider=\"local\"}} {exp}.0"
            )),
        "{expiry:?}"
    );
    let info = metric_lines(&d, "api_token_info{");
    assert!(
        info.iter().any(|l| l.contains("token=\"beta\"")
            && l.contains("team=\"t-beta\"")
            && l.contains("verified=\"false\"")),
        "{info:?}"
    );
    assert!(
        metric_lines(
            &d,
            "api_token_state{token=\"alpha\",provider=\"local\",state=\"unverified\"} 1"
        )
        .len()
            == 1
    );

    // A good new config: beta removed, gamma added.
    std::fs::write(
        &config,
        inventory(dir.path(), &[("alpha", exp), ("gamma", exp)]),
    )
    .unwrap();
    let (code, body) = d.post("/-/reload");
    assert_eq!(code, 200, "{body}");
    wait_until("gamma probed", Duration::from_secs(10), || {
        !metric_lines(&d, "api_token_expiry_timestamp_seconds{token=\"gamma\"").is_empty()
    });
    let all = d.get("/metrics").1;
    assert!(
        !all.contains("token=\"beta\""),
        "a removed token still has series:\n{all}"
    );
    assert!(all.contains("api_token_exporter_config_last_reload_successful 1"));

    // A bad config: the old inventory keeps running and the reload metric says so.
    std::fs::write(
        &config,
        "providers:\n  local:\n    kind: jwt\ntokens:\n  - name: x\n    provider: nope\n",
    )
    .unwrap();
    let (code, body) = d.post("/-/reload");
    assert_eq!(code, 400);
    assert!(
        body.contains("tokens[0].provider: unknown provider \"nope\""),
        "{body}"
    );
    let all = d.get("/metrics").1;
    assert!(
        all.contains("api_token_exporter_config_last_reload_successful 0"),
        "{all}"
    );
    assert!(all.contains("token=\"alpha\"") && all.contains("token=\"gamma\""));

    // SIGHUP with a good file recovers.
    std::fs::write(&config, inventory(dir.path(), &[("alpha", exp)])).unwrap();
    d.signal("HUP");
    wait_until("SIGHUP reload", Duration::from_secs(10), || {
        let all = d.get("/metrics").1;
        all.contains("api_token_exporter_config_last_reload_successful 1")
            && !all.contains("token=\"gamma\"")
    });

    let (code, tokens) = d.get("/api/v1/tokens");
    assert_eq!(code, 200);
    let doc: Value = serde_json::from_str(&tokens).unwrap();
    assert_eq!(doc["tokens"].as_array().unwrap().len(), 1);
    assert_eq!(doc["tokens"][0]["name"], "alpha");
    assert_eq!(doc["tokens"][0]["state"], "unverified");
    assert_eq!(doc["tokens"][0]["subject"], "svc-alpha");
    assert_eq!(d.get("/api/v1/tokens/alpha").0, 200);
    assert_eq!(d.get("/api/v1/tokens/nope").0, 404);
    let (code, page) = d.get("/");
    assert_eq!(code, 200);
    assert!(page.contains("alpha") && page.contains("unverified"));

    let status = d.stop();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
}

/// A half-written file must not wipe the inventory: an empty file is refused, a file that
/// removes most tokens is refused by signal and by plain POST, and only a forced POST applies
/// it. Each refusal keeps every running token and sets the reload metric to 0.
#[test]
fn a_truncated_or_shrunken_config_is_refused_on_reload_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let exp = now() + 10 * 86_400;
    let all = [("a", exp), ("b", exp), ("c", exp), ("d", exp)];
    let config = write(dir.path(), "config.yml", &inventory(dir.path(), &all));
    let d = Daemon::start(&["--config.file", config.to_str().unwrap()]);
    d.wait_for("/-/ready", Duration::from_secs(10));
    let running = |d: &Daemon| -> usize {
        let doc: Value = serde_json::from_str(&d.get("/api/v1/tokens").1).unwrap();
        doc["tokens"].as_array().unwrap().len()
    };
    let reload_metric = |d: &Daemon| -> String {
        metric_lines(d, "api_token_exporter_config_last_reload_successful ").join("\n")
    };
    assert_eq!(running(&d), 4);

    // Truncated: `: > config`.
    std::fs::write(&config, "").unwrap();
    let (code, body) = d.post("/-/reload");
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("config.yml: the config file is empty"),
        "{body}"
    );
    assert_eq!(
        reload_metric(&d),
        "api_token_exporter_config_last_reload_successful 0"
    );
    assert_eq!(running(&d), 4);

    // A good file makes the metric 1 again; then one that keeps one token of four.
    std::fs::write(&config, inventory(dir.path(), &all)).unwrap();
    assert_eq!(d.post("/-/reload").0, 200);
    assert_eq!(
        reload_metric(&d),
        "api_token_exporter_config_last_reload_successful 1"
    );
    std::fs::write(&config, inventory(dir.path(), &[("a", exp)])).unwrap();
    let (code, body) = d.post("/-/reload");
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("removes 3 of the 4 running tokens (75%)") && body.contains("force=true"),
        "{body}"
    );
    assert_eq!(
        reload_metric(&d),
        "api_token_exporter_config_last_reload_successful 0"
    );
    assert_eq!(running(&d), 4);

    // SIGHUP does not force either: the refusal is logged at error a second time.
    d.signal("HUP");
    wait_until("the SIGHUP refusal", Duration::from_secs(10), || {
        d.logs()
            .lines()
            .filter(|l| l.contains("level=error") && l.contains("removes 3 of the 4"))
            .count()
            >= 2
    });
    assert_eq!(running(&d), 4);

    // Forced, it applies.
    let (code, body) = d.post("/-/reload?force=true");
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        reload_metric(&d),
        "api_token_exporter_config_last_reload_successful 1"
    );
    wait_until("the forced removal", Duration::from_secs(10), || {
        running(&d) == 1
    });
    let _ = d.stop();
}

#[test]
fn a_bad_config_at_start_exits_non_zero_with_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "c.yml",
        "tokens:\n  - name: a\n    provider: missing\n",
    );
    let out = std::process::Command::new(BIN)
        .args([
            "--config.file",
            config.to_str().unwrap(),
            "--web.listen-address",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("tokens[0].provider: unknown provider \"missing\" (defined: none) (line 3)")
    );
}

#[test]
fn the_first_round_logs_what_needs_attention_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = inventory(
        dir.path(),
        &[
            ("fine-a", now() + 86_400),
            ("fine-b", now() + 86_400),
            ("gone", now() - 60),
        ],
    );
    let config = write(dir.path(), "c.yml", &yaml);
    let d = Daemon::start(&["--config.file", config.to_str().unwrap()]);
    d.wait_for("/-/ready", Duration::from_secs(10));
    let logs = d.logs();
    let changes: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("token state changed"))
        .collect();
    assert_eq!(changes.len(), 1, "{logs}");
    assert!(
        changes[0].contains("token=gone") && changes[0].contains("from=unknown"),
        "{logs}"
    );
    assert!(
        logs.contains(r#"msg="first probe round complete" states="invalid=1 unverified=2""#),
        "{logs}"
    );
}

#[test]
fn ready_waits_for_the_first_round() {
    // A secret command that takes a while keeps the first round open.
    let dir = tempfile::tempdir().unwrap();
    let token = jwt(json!({"exp": now() + 86_400}));
    let yaml = format!(
        "providers:\n  local:\n    kind: jwt\ntokens:\n  - name: slow\n    provider: local\n    secret: {{exec: [sh, -c, \"sleep 1; printf %s {token}\"]}}\n"
    );
    let config = write(dir.path(), "c.yml", &yaml);
    let d = Daemon::start(&["--config.file", config.to_str().unwrap()]);
    assert_eq!(d.get("/-/ready").0, 503, "ready before any probe finished");
    d.wait_for("/-/ready", Duration::from_secs(10));
    assert!(
        d.get("/metrics")
            .1
            .contains("api_token_state{token=\"slow\",provider=\"local\",state=\"unverified\"} 1")
    );
}

fn check(config: &std::path::Path, extra: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(BIN)
        .args(["check", "--config.file", config.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn check_exit_codes() {
    // A local RFC 7662 stand-in: one token valid for 30 days, one for 1 day, one revoked.
    let base = now();
    let server = support::MockServer::start(move |r| {
        let body = r.body_text();
        let answer = if body.contains("token=long") {
            json!({"active": true, "exp": base + 30 * 86_400, "scope": "read write"})
        } else if body.contains("token=short") {
            json!({"active": true, "exp": base + 86_400})
        } else {
            json!({"active": false})
        };
        support::Answer::json(200, answer)
    })
    .await;
    let secrets = support::SecretFiles::new();
    let provider = format!(
        "providers:\n  idp:\n    kind: oauth2_introspection\n    introspection_endpoint: {}/introspect\n    client_id: c\n    client_secret: {}\n",
        server.url(),
        secrets.put("client", "client-secret")
    );
    let token = |name: &str| {
        format!(
            "  - name: {name}\n    provider: idp\n    secret: {}\n",
            secrets.put(name, name)
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let all_ok = write(
        dir.path(),
        "ok.yml",
        &format!("{provider}tokens:\n{}", token("long")),
    );
    let critical = write(
        dir.path(),
        "crit.yml",
        &format!("{provider}tokens:\n{}{}", token("long"), token("short")),
    );
    let revoked = write(
        dir.path(),
        "rev.yml",
        &format!("{provider}tokens:\n{}{}", token("long"), token("gone")),
    );
    let broken = write(
        dir.path(),
        "bad.yml",
        "tokens:\n  - name: a\n    provider: x\n",
    );

    let (code, out) = tokio::task::spawn_blocking(move || check(&all_ok, &[]))
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("TOKEN")
            && out.contains("long")
            && out.contains("read,write")
            && (out.contains("in 29 days") || out.contains("in 30 days")),
        "{out}"
    );
    let (code, out) = tokio::task::spawn_blocking(move || check(&critical, &["--output", "json"]))
        .await
        .unwrap();
    assert_eq!(code, 1, "{out}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["passed"], false);
    assert_eq!(doc["failed"], 1);
    let (code, out) = tokio::task::spawn_blocking(move || check(&revoked, &[]))
        .await
        .unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL: inactive"), "{out}");
    let (code, out) = tokio::task::spawn_blocking(move || check(&broken, &[]))
        .await
        .unwrap();
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("unknown provider \"x\""), "{out}");
}
