//! Slack notifications against a local server that answers as Slack does: an incoming
//! webhook (`200 ok`, `429` with `Retry-After`, `500`) and `chat.postMessage` (`ok` in a 200
//! answer decides; the resolution goes in the alert's thread).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support;
use api_token_exporter::metrics::{self, ExporterStatus};
use api_token_exporter::notify;
use support::notify::{DAY, Harness, inventory, valid_for, wait_until};
use support::{Answer, MockServer};

const TOKENS: &[(&str, &str)] = &[
    ("deploy-bot", "{team: platform, owner: alice@example.com}"),
    ("ci-runner", "{team: platform, owner: bob@example.com}"),
];

fn body(r: &support::Recorded) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_gets_one_block_kit_message_and_retries_429_and_500() {
    let times = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let seen = times.clone();
    let server = MockServer::start(move |_| {
        let mut t = seen.lock().unwrap();
        t.push(Instant::now());
        match t.len() {
            1 => Answer::text(429, "text/plain", "rate_limited").header("Retry-After", "1"),
            2 => Answer::text(500, "text/plain", "internal_error"),
            _ => Answer::text(200, "text/plain", "ok"),
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("webhook-url");
    std::fs::write(
        &url_file,
        format!("{}/services/T0000/B0000/XXXXXXXXXXXX\n", server.url()),
    )
    .unwrap();
    let h = Harness::start(&format!(
        "{}notifications: {{group_wait: 2s}}\nnotifiers:\n  team-slack:\n    kind: slack_webhook\n    url: {{file: {}}}\nroutes:\n  - {{receiver: team-slack}}\n",
        inventory(TOKENS),
        url_file.display()
    ));
    h.record(
        "deploy-bot",
        valid_for(6 * DAY + 3600),
        "sha256:aaaaaaaaaaaa",
    );
    h.record("ci-runner", valid_for(DAY + 3600), "sha256:bbbbbbbbbbbb");
    wait_until("three attempts", Duration::from_secs(20), || {
        server.requests().len() >= 3
    })
    .await;
    // Give a wrongly planned second message the chance to show up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "one message, sent three times");
    let t = times.lock().unwrap().clone();
    assert!(
        t[1] - t[0] >= Duration::from_secs(1),
        "Retry-After: 1 was not honoured: {:?}",
        t[1] - t[0]
    );
    assert!(
        t[2] - t[1] >= Duration::from_millis(80),
        "no backoff after a 500"
    );
    for r in &requests {
        assert_eq!(r.path(), "/services/T0000/B0000/XXXXXXXXXXXX");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            body(r),
            body(&requests[0]),
            "a retry sends the same message"
        );
    }

    let msg = body(&requests[0]);
    let text = msg["text"].as_str().unwrap();
    assert!(
        text.starts_with("[FIRING:2] API tokens: ci-runner, deploy-bot\n"),
        "{text}"
    );
    assert!(
        text.contains("• ci-runner expires in 1 day (critical)"),
        "{text}"
    );
    assert!(
        text.contains("• deploy-bot expires in 6 days (warning)"),
        "{text}"
    );
    let blocks = msg["blocks"].as_array().unwrap();
    let types: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["header", "section", "context", "section", "context"]
    );
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    let first = blocks[1]["text"]["text"].as_str().unwrap();
    assert!(
        first.contains("*ci-runner expires in 1 day (critical)*"),
        "{first}"
    );
    let fields: Vec<&str> = blocks[1]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"*Owner*\nbob@example.com"), "{fields:?}");
    assert!(fields.contains(&"*Team*\nplatform"), "{fields:?}");
    assert!(
        fields
            .iter()
            .any(|f| f.starts_with("*Expires*\n") && f.ends_with("UTC (in 1 day)")),
        "{fields:?}"
    );
    assert!(
        blocks[2]["elements"][0]["text"]
            .as_str()
            .unwrap()
            .contains("fingerprint `sha256:bbbbbbbbbbbb`")
    );

    let stats = &h.stats.snapshot()["team-slack"];
    assert_eq!((stats.notifications, stats.failures), (1, 2));
    let status = Arc::new(ExporterStatus {
        notifications: h.stats.clone(),
        ..ExporterStatus::new()
    });
    let text = metrics::render(&metrics::Metrics::new(h.store.clone(), status));
    for line in [
        "api_token_notifications_total{notifier=\"team-slack\"} 1",
        "api_token_notification_failures_total{notifier=\"team-slack\"} 2",
        "api_token_notification_last_success_timestamp_seconds{notifier=\"team-slack\"} ",
    ] {
        assert!(text.contains(line), "{line} not in:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_posts_and_threads_the_resolution_under_the_alert() {
    let n = Arc::new(AtomicUsize::new(0));
    let count = n.clone();
    let server = MockServer::start(move |r| {
        if r.path() != "/api/chat.postMessage"
            || r.header("authorization") != Some("Bearer xoxb-test-bot-token")
        {
            return Answer::json(200, json!({"ok": false, "error": "invalid_auth"}));
        }
        let i = count.fetch_add(1, Ordering::SeqCst) + 1;
        Answer::json(
            200,
            json!({"ok": true, "channel": "C0123456789", "ts": format!("1700000000.00010{i}"),
                   "message": {"type": "message"}}),
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("bot-token");
    std::fs::write(&token_file, "xoxb-test-bot-token\n").unwrap();
    let h = Harness::start(&format!(
        "{}notifications: {{group_wait: 0s}}\nnotifiers:\n  bot:\n    kind: slack_bot\n    token: {{file: {}}}\n    channel: C0123456789\n    api_url: {}/api\nroutes:\n  - {{receiver: bot}}\n",
        inventory(&TOKENS[..1]),
        token_file.display(),
        server.url()
    ));
    h.record(
        "deploy-bot",
        valid_for(6 * DAY + 3600),
        "sha256:aaaaaaaaaaaa",
    );
    wait_until("the alert", Duration::from_secs(20), || {
        server.requests().len() == 1
    })
    .await;
    let alert = body(&server.requests()[0]);
    assert_eq!(alert["channel"], "C0123456789");
    assert!(alert.get("thread_ts").is_none(), "{alert}");
    assert!(alert["blocks"].as_array().is_some_and(|b| !b.is_empty()));
    assert!(
        alert["text"]
            .as_str()
            .unwrap()
            .starts_with("[FIRING] deploy-bot expires in 6 days")
    );

    // Rotated: a new secret.
    h.record("deploy-bot", valid_for(90 * DAY), "sha256:cccccccccccc");
    wait_until("the resolution", Duration::from_secs(20), || {
        server.requests().len() == 2
    })
    .await;
    let resolution = body(&server.requests()[1]);
    assert_eq!(resolution["thread_ts"], "1700000000.000101");
    assert_eq!(resolution["channel"], "C0123456789");
    assert_eq!(
        resolution["text"].as_str().unwrap().lines().next().unwrap(),
        "[RESOLVED] deploy-bot: expiring resolved (rotated: a new token is in place)"
    );
    assert_eq!(h.stats.snapshot()["bot"].failures, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_ok_false_is_a_failure_and_is_retried() {
    let n = Arc::new(AtomicUsize::new(0));
    let count = n.clone();
    let server = MockServer::start(move |_| {
        if count.fetch_add(1, Ordering::SeqCst) < 2 {
            Answer::json(200, json!({"ok": false, "error": "not_in_channel"}))
        } else {
            Answer::json(200, json!({"ok": true, "ts": "1700000000.000100"}))
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("bot-token");
    std::fs::write(&token_file, "xoxb-test-bot-token\n").unwrap();
    let yaml = format!(
        "{}notifications: {{group_wait: 0s}}\nnotifiers:\n  bot:\n    kind: slack_bot\n    token: {{file: {}}}\n    channel: \"#ops\"\n    api_url: {}/api\nroutes:\n  - {{receiver: bot}}\n",
        inventory(&TOKENS[..1]),
        token_file.display(),
        server.url()
    );
    let h = Harness::start(&yaml);
    h.record("deploy-bot", valid_for(DAY + 3600), "sha256:aaaaaaaaaaaa");
    wait_until(
        "a delivery after two refusals",
        Duration::from_secs(20),
        || {
            h.stats
                .snapshot()
                .get("bot")
                .is_some_and(|s| s.last_success.is_some())
        },
    )
    .await;
    let stats = &h.stats.snapshot()["bot"];
    assert_eq!((stats.notifications, stats.failures), (1, 2));
    assert_eq!(server.requests().len(), 3);

    // notify-test reports the code Slack gave.
    let refusing = MockServer::start(|_| {
        Answer::json(200, json!({"ok": false, "error": "channel_not_found"}))
    })
    .await;
    let file = dir.path().join("c.yml");
    std::fs::write(&file, yaml.replace(&server.url(), &refusing.url())).unwrap();
    let err = notify::send_test(&file, "bot").await.unwrap_err();
    assert_eq!(
        err,
        "bot (slack_bot): slack chat.postMessage: ok=false: channel_not_found"
    );
}
