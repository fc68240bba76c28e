//! The notifier at runtime: one task that evaluates the store and plans, one task per
//! receiver that delivers. Touches the state file under `--storage.path` and, through the
//! receivers, the network.
//!
//! The planning task owns the [`Engine`]. Every second (and whenever a receiver reports) it
//! derives the tokens' conditions from the store, lets the engine start and resolve alerts,
//! and asks it for due batches. The state, with those batches in its outbox, is written
//! (write, fsync, rename) *before* a batch is handed to its receiver; each acknowledged
//! message is recorded and written again. A receiver's task retries with exponential
//! backoff and jitter, honouring `Retry-After`, and a slow or failing receiver holds up only
//! its own queue: probing and the other receivers go on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use rand::Rng;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::notify::Stats;
use crate::notify::config::{NotifierConfig, NotifyConfig};
use crate::notify::engine::{Batch, Engine, NotifyState, Observation};
use crate::notify::event::{PolicySource, TokenMemory, TokenSnapshot, derive};
use crate::notify::render::Context;
use crate::notify::route::Routing;
use crate::notify::send::Receiver;
use crate::sources::health::Health;
use crate::state::persist::StateFile;
use crate::state::store::Store;

/// The state file's name under `--storage.path`.
pub const STATE_FILE: &str = "notifications.json";

/// How often the store is evaluated.
pub const TICK: Duration = Duration::from_secs(1);

/// Backoff between delivery attempts: doubles from `initial` up to `max`, with ±20% jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `failures + 1`. A receiver's `Retry-After` wins, up to an hour.
    pub fn delay(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(r) = retry_after {
            return r.min(Duration::from_secs(3600));
        }
        let exp = self
            .initial
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20))
            .min(self.max);
        let jitter = rand::rng().random_range(0.8..1.2);
        exp.mul_f64(jitter)
    }
}

/// Handle to the running notifier.
#[derive(Clone)]
pub struct NotifyHandle {
    commands: mpsc::Sender<Arc<NotifyConfig>>,
}

impl NotifyHandle {
    /// Applies a new notifications config (after a successful reload).
    pub async fn reload(&self, config: &NotifyConfig) {
        let _ = self.commands.send(Arc::new(config.clone())).await;
    }
}

/// A receiver's acknowledgement of one message.
struct Done {
    target_id: String,
    batch_id: String,
    index: usize,
    anchor: Option<String>,
    at: Timestamp,
}

/// A receiver and its deliveries in progress. Each batch is sent by a task of its own: a
/// target has at most one batch in flight (the engine's outbox), so that is one queue per
/// target, and an owner whose mail server refuses does not hold up the other owners.
/// Dropping the worker (on a reload that changes the receiver) aborts its deliveries; the
/// batches stay in the outbox and go to the rebuilt receiver.
struct Worker {
    config: NotifierConfig,
    receiver: Arc<Receiver>,
    tasks: JoinSet<()>,
}

/// Starts the notifier on the current runtime.
pub fn spawn(
    store: Arc<Store>,
    config: &NotifyConfig,
    storage: &Path,
    stats: Arc<Stats>,
    policies: PolicySource,
    retry: RetryPolicy,
    sources: Arc<Health>,
) -> NotifyHandle {
    let (tx, rx) = mpsc::channel(4);
    let file = StateFile::new(storage, STATE_FILE);
    let state: NotifyState = file.load();
    let service = Service {
        store,
        file,
        engine: Engine::new(state),
        config: Arc::new(NotifyConfig::default()),
        routing: Routing::default(),
        workers: BTreeMap::new(),
        stats,
        policies,
        retry,
        sources,
        done: mpsc::unbounded_channel(),
    };
    let initial = Arc::new(config.clone());
    tokio::spawn(service.run(initial, rx));
    NotifyHandle { commands: tx }
}

struct Service {
    store: Arc<Store>,
    file: StateFile,
    engine: Engine,
    config: Arc<NotifyConfig>,
    routing: Routing,
    workers: BTreeMap<String, Worker>,
    stats: Arc<Stats>,
    policies: PolicySource,
    retry: RetryPolicy,
    /// Which sources have listed since the start: the tokens of one that has not are held,
    /// not resolved as removed (after a restart they reach the store only with the listing).
    sources: Arc<Health>,
    done: (mpsc::UnboundedSender<Done>, mpsc::UnboundedReceiver<Done>),
}

impl Service {
    async fn run(
        mut self,
        initial: Arc<NotifyConfig>,
        mut commands: mpsc::Receiver<Arc<NotifyConfig>>,
    ) {
        self.apply(initial).await;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(config) => self.apply(config).await,
                    None => return,
                },
                Some(done) = self.done.1.recv() => {
                    let mut changed = self.engine.sent(&done.target_id, &done.batch_id, done.index, done.anchor, done.at);
                    // Take every acknowledgement that is already there before writing once.
                    while let Ok(d) = self.done.1.try_recv() {
                        changed |= self.engine.sent(&d.target_id, &d.batch_id, d.index, d.anchor, d.at);
                    }
                    if changed {
                        self.save().await;
                    }
                    continue;
                }
                _ = tick.tick() => {}
            }
            if self.config.enabled() {
                self.evaluate(Timestamp::now()).await;
            }
        }
    }

    /// Swaps in a config: rebuilds the receivers whose settings changed, forgets the ones
    /// that are gone, and (re)sends what is in flight to the rebuilt ones.
    async fn apply(&mut self, config: Arc<NotifyConfig>) {
        self.stats
            .reconcile(config.notifiers.keys().map(String::as_str));
        self.routing = Routing::new(&config);
        let mut rebuilt = BTreeSet::new();
        self.workers
            .retain(|name, w| config.notifiers.get(name) == Some(&w.config));
        for (name, nc) in &config.notifiers {
            if self.workers.contains_key(name) {
                continue;
            }
            match Receiver::build(nc) {
                Ok(receiver) => {
                    self.workers.insert(
                        name.clone(),
                        Worker {
                            config: nc.clone(),
                            receiver: Arc::new(receiver),
                            tasks: JoinSet::new(),
                        },
                    );
                    rebuilt.insert(name.clone());
                }
                Err(e) => tracing::error!(notifier = %name, error = %e, "cannot build notifier"),
            }
        }
        self.config = config;
        if self.engine.drop_unknown_receivers(&self.routing) {
            self.save().await;
        }
        for batch in self.engine.in_flight() {
            if rebuilt.contains(&batch.target.receiver) {
                tracing::info!(notifier = %batch.target.receiver, batch = %batch.id, "sending again what was in flight");
                self.dispatch(batch);
            }
        }
    }

    async fn evaluate(&mut self, now: Timestamp) {
        let mut changed = false;
        let observations = {
            let inner = self.store.read();
            let with_alerts: BTreeSet<&str> = self
                .engine
                .state
                .alerts
                .values()
                .map(|a| a.token.as_str())
                .collect();
            let mut out = Vec::with_capacity(inner.tokens.len());
            for (name, s) in &inner.tokens {
                let mut memory = self
                    .engine
                    .state
                    .tokens
                    .get(name)
                    .cloned()
                    .unwrap_or_default();
                if memory.observe(s) {
                    changed = true;
                }
                let findings = if s.last.is_some() {
                    (self.policies)(s, now)
                } else {
                    Vec::new()
                };
                let derived = derive(s, &memory, &findings, &self.config.settings, now);
                // A snapshot costs a copy of the token's labels and scopes: only tokens that
                // have or may start an alert need one.
                let needs_snapshot = with_alerts.contains(name.as_str())
                    || derived.as_ref().is_some_and(|d| !d.conditions.is_empty());
                out.push(Observation {
                    token: name.clone(),
                    derived,
                    snapshot: if needs_snapshot {
                        TokenSnapshot::from_state(s, now)
                    } else {
                        TokenSnapshot::default()
                    },
                });
                if memory == TokenMemory::default() {
                    self.engine.state.tokens.remove(name);
                } else {
                    self.engine.state.tokens.insert(name.clone(), memory);
                }
            }
            out
        };
        let unlisted = self.sources.unlisted();
        let held = |token: &str| {
            token
                .split_once('/')
                .is_some_and(|(source, _)| unlisted.contains(source))
        };
        changed |= self.engine.observe_holding(now, &observations, &held);
        let batches = self
            .engine
            .plan(now, &self.routing, self.config.settings.group_wait);
        if changed || !batches.is_empty() {
            // The intent is on disk before anything is sent.
            self.save().await;
        }
        for batch in batches {
            self.dispatch(batch);
        }
    }

    fn dispatch(&mut self, batch: Batch) {
        let name = batch.target.receiver.clone();
        match self.workers.get_mut(&name) {
            Some(w) => {
                // Reap the deliveries that finished.
                while w.tasks.try_join_next().is_some() {}
                w.tasks.spawn(deliver(
                    name,
                    w.receiver.clone(),
                    batch,
                    self.done.0.clone(),
                    self.stats.clone(),
                    self.config.settings.dashboard_url.clone(),
                    self.retry,
                ));
            }
            None => {
                tracing::warn!(notifier = %name, "no such notifier; the batch waits for a reload")
            }
        }
    }

    async fn save(&self) {
        let file = self.file.clone();
        let state = self.engine.state.clone();
        let result = tokio::task::spawn_blocking(move || file.save(&state)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot write the notification state; a restart may repeat or forget notifications")
            }
            Err(e) => tracing::error!(error = %e, "writing the notification state failed"),
        }
    }
}

/// Sends a batch's unsent messages in order, retrying each until the receiver accepts it.
async fn deliver(
    name: String,
    receiver: Arc<Receiver>,
    batch: Batch,
    done: mpsc::UnboundedSender<Done>,
    stats: Arc<Stats>,
    dashboard_url: Option<String>,
    retry: RetryPolicy,
) {
    let target_id = batch.target.id();
    for (index, message) in batch.messages.iter().enumerate() {
        if message.sent {
            continue;
        }
        stats.attempted(&name);
        let mut failures = 0u32;
        loop {
            let now = Timestamp::now();
            let ctx = Context {
                now,
                receiver: &name,
                dashboard_url: dashboard_url.as_deref(),
            };
            match receiver.send(&batch.target, message, &ctx).await {
                Ok(delivered) => {
                    let at = Timestamp::now();
                    stats.succeeded(&name, at);
                    tracing::info!(notifier = %name, target = %target_id, message = %message.id, items = message.items.len(), "notification sent");
                    let _ = done.send(Done {
                        target_id: target_id.clone(),
                        batch_id: batch.id.clone(),
                        index,
                        anchor: delivered.anchor,
                        at,
                    });
                    break;
                }
                Err(e) => {
                    failures += 1;
                    stats.failed(&name);
                    let wait = retry.delay(failures, e.retry_after);
                    tracing::warn!(notifier = %name, target = %target_id, message = %message.id, attempt = failures, error = %e, retry_in = ?wait, "notification failed");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}
