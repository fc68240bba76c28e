//! A reload that changes a receiver sends what was stuck in flight to the new settings; one
//! that removes a receiver forgets its queue and its metrics.

use std::time::Duration;

use crate::support;
use api_token_exporter::config::Config;
use support::notify::{DAY, Harness, inventory, valid_for, wait_until};
use support::{Answer, MockServer};

fn config(url: &str) -> String {
    format!(
        "{}notifications: {{group_wait: 0s}}\nnotifiers:\n  hook: {{kind: webhook, url: \"{url}/hook\"}}\nroutes:\n  - {{receiver: hook}}\n",
        inventory(&[("deploy-bot", "{team: platform}")])
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_receiver_gets_what_was_stuck_and_a_removed_one_is_forgotten() {
    let down = MockServer::start(|_| Answer::text(503, "text/plain", "down")).await;
    let up = MockServer::start(|_| Answer::text(200, "text/plain", "")).await;
    let h = Harness::start(&config(&down.url()));
    h.record("deploy-bot", valid_for(DAY + 3600), "sha256:aaaaaaaaaaaa");
    wait_until("failed attempts", Duration::from_secs(20), || {
        down.requests().len() >= 2
    })
    .await;
    let stuck = down.requests()[0]
        .header("idempotency-key")
        .unwrap()
        .to_string();

    h.handle
        .reload(&Config::parse(&config(&up.url())).unwrap().notify)
        .await;
    wait_until(
        "the stuck message at the new URL",
        Duration::from_secs(20),
        || !up.requests().is_empty(),
    )
    .await;
    assert_eq!(
        up.requests()[0].header("idempotency-key"),
        Some(stuck.as_str())
    );
    let attempts = down.requests().len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        down.requests().len(),
        attempts,
        "the old receiver is no longer tried"
    );
    assert_eq!(up.requests().len(), 1);
    wait_until(
        "the acknowledgement on disk",
        Duration::from_secs(5),
        || h.state_file().contains("\"outbox\":{}"),
    )
    .await;

    let without = inventory(&[("deploy-bot", "{team: platform}")]);
    h.handle
        .reload(&Config::parse(&without).unwrap().notify)
        .await;
    wait_until(
        "the notifier gone from the metrics",
        Duration::from_secs(5),
        || h.stats.snapshot().is_empty(),
    )
    .await;
}
