//! Notifications survive `kill -9`: the binary is killed while a webhook is being delivered
//! and again right after one was acknowledged, and restarted on the same `--storage.path`
//! each time. The local webhook receiver sees the interrupted message once more (same id:
//! at least once) and then each notification once per repeat interval, never sooner.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support;
use base64::Engine;
use serde_json::{Value, json};
use support::daemon::{Daemon, write};
use support::{Answer, MockServer};

const REPEAT: Duration = Duration::from_secs(6);

fn jwt(claims: Value) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2ln",
        b64(&json!({"alg": "ES256", "typ": "JWT"})),
        b64(&claims)
    )
}

/// One request the receiver got: when, its payload, and whether it was answered 200 at once.
#[derive(Clone, Debug)]
struct Delivery {
    at: Instant,
    body: Value,
    acknowledged: bool,
}

impl Delivery {
    fn id(&self) -> &str {
        self.body["id"].as_str().unwrap()
    }
    /// (token, event, change) of each notification in it.
    fn items(&self) -> Vec<(String, String, String)> {
        self.body["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n["token"]["name"].as_str().unwrap().to_string(),
                    n["event"].as_str().unwrap().to_string(),
                    n["change"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_neither_repeats_nor_loses_a_notification() {
    let deliveries = Arc::new(Mutex::new(Vec::<Delivery>::new()));
    // While `hang` is set, the receiver takes the request and does not answer: the exporter
    // is killed in the middle of the send.
    let hang = Arc::new(AtomicBool::new(true));
    let (seen, hanging) = (deliveries.clone(), hang.clone());
    let receiver = MockServer::start(move |r| {
        let hung = hanging.load(Ordering::SeqCst);
        seen.lock().unwrap().push(Delivery {
            at: Instant::now(),
            body: serde_json::from_slice(&r.body).unwrap_or(Value::Null),
            acknowledged: !hung,
        });
        let ok = Answer::text(200, "text/plain", "ok");
        if hung {
            ok.delayed(Duration::from_secs(60))
        } else {
            ok
        }
    })
    .await;

    let dir = tempfile::tempdir().unwrap();
    let now = jiff::Timestamp::now().as_second();
    let mut yaml = format!(
        "notifications:\n  group_wait: 1s\n  repeat_interval: {}s\nnotifiers:\n  hook:\n    kind: webhook\n    url: {}/hook\nroutes:\n  - {{receiver: hook}}\nproviders:\n  local:\n    kind: jwt\ntokens:\n",
        REPEAT.as_secs(),
        receiver.url()
    );
    for (name, days) in [("ci-runner", 2), ("deploy-bot", 10)] {
        let secret = write(
            dir.path(),
            name,
            &jwt(json!({"sub": name, "exp": now + days * 86_400})),
        );
        yaml.push_str(&format!(
            "  - name: {name}\n    provider: local\n    secret: {{file: {}}}\n",
            secret.display()
        ));
    }
    let config = write(dir.path(), "config.yml", &yaml);
    let storage = dir.path().join("data");
    let args = [
        "--config.file",
        config.to_str().unwrap(),
        "--storage.path",
        storage.to_str().unwrap(),
    ];
    let count = || deliveries.lock().unwrap().len();
    let get = |i: usize| deliveries.lock().unwrap()[i].clone();

    // 1. The first notification is being sent when the process is killed.
    let first = Daemon::start(&args);
    wait_for("the first delivery", Duration::from_secs(20), || {
        count() == 1
    });
    first.signal("KILL");
    drop(first);
    let interrupted = get(0);
    assert!(!interrupted.acknowledged);
    let mut items = interrupted.items();
    items.sort();
    assert_eq!(
        items,
        [
            ("ci-runner".into(), "expiring".into(), "new".into()),
            ("deploy-bot".into(), "expiring".into(), "new".into())
        ],
        "both tokens in one message"
    );

    // 2. After a restart the interrupted message is sent again, as it was.
    hang.store(false, Ordering::SeqCst);
    let second = Daemon::start(&args);
    wait_for("the re-send", Duration::from_secs(20), || count() == 2);
    let resent = get(1);
    assert!(resent.acknowledged);
    assert_eq!(
        resent.id(),
        interrupted.id(),
        "the same message, the same id"
    );
    assert_eq!(resent.items().len(), 2);
    // Let "sent" reach the disk, then kill it again.
    std::thread::sleep(Duration::from_millis(1000));
    second.signal("KILL");
    let logs = second.logs();
    drop(second);
    assert!(logs.contains("sending again what was in flight"), "{logs}");

    // 3. Restarted once more: nothing before the repeat interval, then one reminder.
    let third = Daemon::start(&args);
    wait_for("the reminder", Duration::from_secs(30), || count() == 3);
    let reminder = get(2);
    assert!(reminder.acknowledged);
    let gap = reminder.at - resent.at;
    assert!(
        gap >= REPEAT - Duration::from_millis(200),
        "a reminder {gap:?} after the acknowledged message, before the {REPEAT:?} repeat interval"
    );
    assert_ne!(reminder.id(), resent.id());
    let changes: Vec<String> = reminder.items().into_iter().map(|i| i.2).collect();
    assert_eq!(changes, ["reminder", "reminder"]);
    // And nothing else in between.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(), 3, "{:?}", deliveries.lock().unwrap());
    let state = std::fs::read_to_string(storage.join("notifications.json")).unwrap();
    let state: Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["alerts"].as_object().unwrap().len(), 2);
    assert!(state["outbox"].as_object().unwrap().is_empty());
    drop(third);
}
