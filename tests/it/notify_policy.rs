//! Policy findings are one more input of the notifier: the daemon's policy source
//! (`policy::evaluate`) turns a violated policy into a `policy_violation` notification and
//! its fix into a resolution.

use std::time::Duration;

use serde_json::Value;

use crate::support;
use api_token_exporter::notify;
use support::notify::{DAY, Harness, valid_with_scopes, wait_until};
use support::{Answer, MockServer};

fn notifications(hook: &MockServer) -> Vec<Value> {
    hook.requests()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .flat_map(|v| v["notifications"].as_array().cloned().unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_violated_policy_is_notified_and_resolved_when_met() {
    let hook = MockServer::start(|_| Answer::text(200, "text/plain", "")).await;
    let yaml = format!(
        "providers:\n  local:\n    kind: jwt\ntokens:\n  - name: deploy-bot\n    provider: local\n    secret: {{env: NOTIFY_TEST_UNUSED}}\n    labels: {{team: platform}}\n    policies:\n      forbidden_scopes: [admin]\n\
         notifications: {{group_wait: 0s}}\nnotifiers:\n  hook: {{kind: webhook, url: \"{}/hook\"}}\nroutes:\n  - {{receiver: hook, events: [policy_violation]}}\n",
        hook.url()
    );
    let h = Harness::start_with(&yaml, notify::event::policies);
    h.record(
        "deploy-bot",
        valid_with_scopes(90 * DAY, &["deploy", "admin"]),
        "sha256:aaaaaaaaaaaa",
    );
    wait_until("the violation", Duration::from_secs(20), || {
        !notifications(&hook).is_empty()
    })
    .await;
    let n = &notifications(&hook)[0];
    assert_eq!(n["event"], "policy_violation");
    assert_eq!(n["policy"], "forbidden_scopes");
    assert_eq!(n["status"], "firing");
    assert_eq!(n["summary"], "deploy-bot violates policy forbidden_scopes");
    assert!(
        n["detail"].as_str().unwrap().contains("admin"),
        "{}",
        n["detail"]
    );

    // The scope is gone: the policy is met.
    h.record(
        "deploy-bot",
        valid_with_scopes(90 * DAY, &["deploy"]),
        "sha256:aaaaaaaaaaaa",
    );
    wait_until("the resolution", Duration::from_secs(20), || {
        notifications(&hook).len() == 2
    })
    .await;
    let r = &notifications(&hook)[1];
    assert_eq!(
        (
            r["event"].as_str(),
            r["status"].as_str(),
            r["resolution"].as_str()
        ),
        (
            Some("policy_violation"),
            Some("resolved"),
            Some("recovered")
        )
    );
}
