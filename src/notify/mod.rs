//! Direct notifications: the exporter tells people itself, like Alertmanager would, over
//! Slack (incoming webhook or bot), email, a JSON webhook, or into an existing Alertmanager.
//!
//! ```text
//! store ──> event::derive ──> engine (pure: alerts, reminders, resolutions, outbox)
//!  (facts)   (+ policy findings)     │ plan: batches per target, written to disk first
//!                                    v
//!                        service: one queue per receiver ──> slack / email / webhook
//!                                    │ acknowledgements
//!                                    └──> engine.sent ──> written to disk
//! ```
//!
//! [`config`] is the inventory's `notifications`, `notifiers` and `routes`; [`event`],
//! [`route`], [`engine`] and [`render`] are pure and take `now`; [`service`] and the
//! senders ([`slack`], [`email`], [`webhook`]) are the only I/O. Nothing here ever holds a
//! token's value: it sees the store's facts, which carry only a fingerprint.

pub use crate::config::notify as config;
pub mod email;
pub mod engine;
pub mod event;
pub mod render;
pub mod route;
pub mod send;
pub mod service;
pub mod slack;
pub mod webhook;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use jiff::Timestamp;

pub use service::{NotifyHandle, RetryPolicy, spawn};

/// Per-notifier counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<BTreeMap<String, NotifierStats>>,
}

/// Counters of one notifier.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NotifierStats {
    /// Messages handed to the notifier (each once, however many attempts it takes).
    pub notifications: u64,
    /// Delivery attempts that failed (every failed retry counts).
    pub failures: u64,
    pub last_success: Option<Timestamp>,
}

impl Stats {
    fn with(&self, name: &str, f: impl FnOnce(&mut NotifierStats)) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(inner.entry(name.to_string()).or_default());
    }

    /// Keeps the counters of the named notifiers (creating them at zero) and drops the rest,
    /// so a removed notifier disappears from `/metrics`.
    pub fn reconcile<'a>(&self, names: impl Iterator<Item = &'a str>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut kept = BTreeMap::new();
        for n in names {
            kept.insert(n.to_string(), inner.remove(n).unwrap_or_default());
        }
        *inner = kept;
    }

    pub fn attempted(&self, name: &str) {
        self.with(name, |s| s.notifications += 1);
    }

    pub fn failed(&self, name: &str) {
        self.with(name, |s| s.failures += 1);
    }

    pub fn succeeded(&self, name: &str, at: Timestamp) {
        self.with(name, |s| s.last_success = Some(at));
    }

    pub fn snapshot(&self) -> BTreeMap<String, NotifierStats> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// `notify-test --receiver NAME`: sends one sample message about a made-up token named
/// `notify-test` through the named receiver, once, and returns what happened.
pub async fn send_test(config_file: &Path, receiver: &str) -> Result<String, String> {
    let config = crate::config::Config::load(config_file).map_err(|e| e.to_string())?;
    let notify = &config.notify;
    let Some(nc) = notify.notifiers.get(receiver) else {
        let known: Vec<&str> = notify.notifiers.keys().map(String::as_str).collect();
        return Err(format!(
            "no notifier \"{receiver}\" in {} (defined: {})",
            config_file.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ));
    };
    let r = send::Receiver::build(nc)?;
    let now = Timestamp::now();
    let message = sample_message(now);
    let target = route::Target::new(receiver);
    let ctx = render::Context {
        now,
        receiver,
        dashboard_url: notify.settings.dashboard_url.as_deref(),
    };
    r.send(&target, &message, &ctx)
        .await
        .map(|_| {
            format!(
                "sent a test notification through {receiver} ({})",
                nc.kind()
            )
        })
        .map_err(|e| format!("{receiver} ({}): {e}", nc.kind()))
}

/// The sample of `notify-test`: a made-up token in its warning window.
pub fn sample_message(now: Timestamp) -> engine::Message {
    let expires = now
        .checked_add(jiff::SignedDuration::from_hours(6 * 24))
        .unwrap_or(now);
    engine::Message {
        id: format!("notify-test-{}", now.as_second()),
        items: vec![engine::Item {
            alert_id: format!("notify-test-{}", now.as_second()),
            kind: event::EventKind::Expiring,
            policy: None,
            level: event::Level::Warning,
            change: engine::Change::New,
            previous_level: None,
            detail: "a test notification from api-token-exporter notify-test; no token is affected"
                .into(),
            started_at: now,
            resolved_at: None,
            resolution: None,
            supersedes: None,
            token: event::TokenSnapshot {
                token: "notify-test".into(),
                provider: "notify-test".into(),
                kind: "static".into(),
                state: "valid".into(),
                reason: Some("ok".into()),
                fingerprint: Some("sha256:000000000000".into()),
                expires_at: Some(expires),
                never_expires: false,
                labels: BTreeMap::from([("team".to_string(), "notify-test".to_string())]),
                scopes: vec!["example:read".into()],
                subject: None,
            },
        }],
        reply_to: Vec::new(),
        sent: false,
    }
}
