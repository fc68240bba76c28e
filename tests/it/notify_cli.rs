//! Notifications through the binary and the config: `notify-test` exit codes, the demo's
//! `--demo.smtp` / `--demo.webhook`, and config errors with their paths and lines.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support;
use api_token_exporter::config::Config;
use support::daemon::{BIN, Daemon, write};
use support::notify::{Smtp, wait_until};
use support::{Answer, MockServer};

fn notify_test(config: &std::path::Path, receiver: &str) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(["--config.file", config.to_str().unwrap()])
        .args(["notify-test", "--receiver", receiver])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_test_exits_0_when_delivered_and_1_with_the_error() {
    let ok = MockServer::start(|_| Answer::text(200, "text/plain", "")).await;
    let broken = MockServer::start(|_| Answer::text(503, "text/plain", "maintenance")).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "c.yml",
        &format!(
            "notifiers:\n  hook: {{kind: webhook, url: \"{}/hook\"}}\n  broken: {{kind: webhook, url: \"{}/hook\"}}\n",
            ok.url(),
            broken.url()
        ),
    );
    let (code, stdout, stderr) = notify_test(&config, "hook");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout.trim(),
        "notify-test: sent a test notification through hook (webhook)"
    );
    let sent: Value = serde_json::from_slice(&ok.requests()[0].body).unwrap();
    assert_eq!(sent["notifications"][0]["token"]["name"], "notify-test");
    assert_eq!(sent["receiver"], "hook");

    let (code, _, stderr) = notify_test(&config, "broken");
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr.trim(),
        "notify-test: broken (webhook): webhook: HTTP 503: maintenance"
    );
    assert_eq!(broken.requests().len(), 1, "one attempt, no retries");

    let (code, _, stderr) = notify_test(&config, "nope");
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("no notifier \"nope\"") && stderr.contains("(defined: broken, hook)"),
        "{stderr}"
    );
    let bad = write(dir.path(), "bad.yml", "notifiers:\n  x: {kind: teams}\n");
    let (code, _, stderr) = notify_test(&bad, "x");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("unknown notifier kind `teams`"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_notifies_by_email_and_webhook() {
    if !Smtp::available() {
        return;
    }
    let smtp = Smtp::start(&[]);
    let hook = MockServer::start(|_| Answer::text(200, "text/plain", "")).await;
    let d = Daemon::start(&[
        "demo",
        "--demo.smtp",
        &format!("127.0.0.1:{}", smtp.port),
        "--demo.webhook",
        &format!("{}/hook", hook.url()),
    ]);
    wait_until("the demo's notifications", Duration::from_secs(30), || {
        !hook.requests().is_empty() && smtp.mails().len() >= 5
    })
    .await;
    let first: Value = serde_json::from_slice(&hook.requests()[0].body).unwrap();
    let mut seen: Vec<(String, String)> = first["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["token"]["name"].as_str().unwrap().to_string(),
                n["event"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    // The demo's listed tokens notify too, when their first probe made the first batch.
    seen.retain(|(token, _)| !token.starts_with("demo-vault-tokens/"));
    assert_eq!(
        seen,
        [
            ("billing-api", "policy_violation"),
            ("ci-runner", "expiring"),
            ("deploy-bot", "expiring"),
            ("legacy-sync", "expired"),
            ("old-integration", "invalid"),
            ("search-indexer", "expiring"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let mut owners: Vec<String> = smtp.mails().iter().filter_map(|m| m.header("To")).collect();
    owners.sort();
    owners.dedup();
    assert_eq!(
        owners,
        [
            "alice@example.com",
            "bob@example.com",
            "carol@example.com",
            "dave@example.com",
            "erin@example.com"
        ]
    );
    drop(d);
}

fn error_of(yaml: &str) -> String {
    Config::parse(yaml).unwrap_err().to_string()
}

const NOTIFIERS: &str = "notifiers:\n  chat:\n    kind: slack_webhook\n    url: {env: SLACK_URL}\n  owners:\n    kind: email\n    host: smtp.example.com\n    from: exporter@example.com\n";

#[test]
fn notification_config_errors_name_the_field_and_line() {
    let tokens = "providers:\n  local: {kind: jwt}\ntokens:\n  - {name: a, provider: local, secret: {env: A}, labels: {owner: team-a}}\n";
    assert_eq!(
        error_of(&format!("{NOTIFIERS}routes:\n  - {{receiver: nope}}\n")),
        "routes[0].receiver: unknown notifier \"nope\" (defined: chat, owners) (line 10)"
    );
    assert_eq!(
        error_of(&format!(
            "{NOTIFIERS}routes:\n  - {{receiver: chat, to_owner: true}}\n"
        )),
        "routes[0].to_owner: applies only to an email notifier (\"chat\" is slack_webhook) (line 10)"
    );
    assert_eq!(
        error_of(&format!(
            "{NOTIFIERS}notifications:\n  default_receiver: owners\n"
        )),
        "notifications.default_receiver: notifier \"owners\" has no `to` addresses (line 10)"
    );
    assert_eq!(
        error_of(&format!(
            "{tokens}{NOTIFIERS}routes:\n  - {{receiver: owners, to_owner: true}}\n"
        )),
        "routes[0].to_owner: token \"a\" has no owner label with an email address, and notifier \"owners\" has no `to` to fall back on (line 14)"
    );
    assert_eq!(
        error_of("notifications:\n  group_wait: soon\n"),
        "notifications.group_wait: invalid duration \"soon\": expected number at 0 (use e.g. 30s, 5m, 14d) (line 2)"
    );
    assert_eq!(
        error_of(
            "notifiers:\n  chat:\n    kind: slack_webhook\n    url: https://hooks.slack.com/services/T/B/SECRET\n"
        ),
        // Like a provider's, a notifier's fields are decoded field by field once its `kind` is
        // known: the error names the field and its line.
        "notifiers.chat.url: a secret must not be written inline in the config file; use {env: NAME}, {file: PATH} or {exec: [COMMAND, ARG...]} (line 4)"
    );
    assert_eq!(
        error_of(&format!(
            "{NOTIFIERS}routes:\n  - {{receiver: chat, events: [expiring_soon]}}\n"
        )),
        "routes[0].events[0]: unknown variant `expiring_soon`, expected one of expiring, expired, invalid, provider_failing, misconfigured, policy_violation, rotation_failing (line 10)"
    );
    let email = error_of(
        "notifiers:\n  m: {kind: email, host: h, from: not-an-address, to: [ops@example.com], password: {env: P}}\n",
    );
    assert_eq!(
        email,
        "notifiers.m: from: \"not-an-address\" is not an email address (line 2)\nnotifiers.m: username and password go together (line 2)"
    );
    // Every problem at once, with the rest of the file's.
    let many = Config::parse(&format!(
        "{NOTIFIERS}notifications: {{default_receiver: gone}}\nroutes:\n  - {{receiver: nope}}\n"
    ))
    .unwrap_err();
    assert_eq!(many.issues.len(), 2, "{many}");
}

#[test]
fn the_notifications_example_passes_config_check_and_is_the_one_documented() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = root.join("examples/notifications.yml");
    let out = Command::new(BIN)
        .args(["--config.check", "--config.file", example.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = Config::load(&example).unwrap();
    assert_eq!(config.notify.notifiers.len(), 6);
    let kinds: std::collections::BTreeSet<&str> =
        config.notify.notifiers.values().map(|n| n.kind()).collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [
            "alertmanager",
            "email",
            "slack_bot",
            "slack_webhook",
            "webhook"
        ]
    );
    let readme = std::fs::read_to_string(root.join("docs/notifications.md")).unwrap();
    let text = std::fs::read_to_string(&example).unwrap();
    assert!(
        readme.contains(&format!(
            "<!-- notifications-example:begin -->\n```yaml\n{text}```\n<!-- notifications-example:end -->"
        )),
        "docs/notifications.md's example differs from examples/notifications.yml"
    );
}
