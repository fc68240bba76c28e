//! The only place that spawns probe tasks. Owns timing: per-token intervals with jitter,
//! global and per-provider concurrency limits, faster probing near expiry (with a floor),
//! backoff for failing providers honouring `Retry-After`, and pausing the tokens that share
//! a rate limit one of them hit (the provider entry, one identity, or one token, as the kind
//! counts its limit). Scrapes never trigger probes.
//!
//! One task runs the loop below; each probe runs in its own task holding a global permit
//! and, where limited, a provider permit. Results come back over a channel and the loop
//! records them in the store and computes the next due time. [`next_delay`] is pure.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use crate::config::{Config, ConfigError, ConfigIssue, Global, TokenSpec};
use crate::model::{Expiry, ProbeOutcome, TokenFacts, Verdict};
use crate::provider::{BuildContext, LimitKey, ProbeRun, Provider, run_probe};
use crate::state::store::Store;

/// A validated config with its providers built: what the scheduler runs.
#[derive(Clone)]
pub struct Inventory {
    pub config: Arc<Config>,
    pub providers: BTreeMap<String, Arc<dyn Provider>>,
}

impl Inventory {
    /// Builds every provider. A failure here is reported like any config error.
    pub fn build(config: Config, ctx: &BuildContext) -> Result<Inventory, ConfigError> {
        let mut providers = BTreeMap::new();
        let mut issues = Vec::new();
        for (name, pc) in &config.providers {
            match pc.build(ctx) {
                Ok(p) => {
                    providers.insert(name.clone(), p);
                }
                Err(message) => issues.push(ConfigIssue {
                    path: format!("providers.{name}"),
                    message,
                    line: None,
                }),
            }
        }
        if !issues.is_empty() {
            return Err(ConfigError { file: None, issues });
        }
        Ok(Inventory {
            config: Arc::new(config),
            providers,
        })
    }
}

/// Handle to the running scheduler.
#[derive(Clone)]
pub struct SchedulerHandle {
    commands: mpsc::Sender<Command>,
    /// True once every token of the initial config has been probed once.
    pub ready: Arc<AtomicBool>,
}

enum Command {
    Reload(Inventory, oneshot::Sender<()>),
}

impl SchedulerHandle {
    /// Swaps in a new inventory. Tokens whose spec did not change keep their schedule;
    /// new and changed tokens are probed at once; removed ones are dropped.
    pub async fn reload(&self, inventory: Inventory) {
        let (tx, rx) = oneshot::channel();
        if self
            .commands
            .send(Command::Reload(inventory, tx))
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
    }
}

struct Entry {
    spec: Arc<TokenSpec>,
    provider: Arc<dyn Provider>,
    generation: u64,
    /// Consecutive probes without a conclusive answer.
    failures: u32,
    in_flight: bool,
    /// Due again as soon as the probe in flight finishes (its spec changed meanwhile).
    rerun: bool,
    /// Not answered yet since the exporter started: the first round waits for it.
    first: bool,
    /// Whose rate limit the token spends, learned from the facts the store keeps for it
    /// ([`Provider::rate_limit_key`]); before its first answer, what the kind gives for no
    /// facts (the token alone for a kind that counts per identity).
    limit: LimitKey,
    /// Paused until then, when its limit is its own ([`LimitKey::Token`]).
    paused_until: Option<Instant>,
}

/// A provider entry's pauses: the whole entry's, and each identity's within it.
#[derive(Default)]
struct Pauses {
    entry: Option<Instant>,
    identities: HashMap<String, Instant>,
}

struct Done {
    name: String,
    generation: u64,
    run: ProbeRun,
    at: Timestamp,
}

/// Starts the scheduler loop on the current runtime.
pub fn spawn(store: Arc<Store>, inventory: Inventory) -> SchedulerHandle {
    let (tx, rx) = mpsc::channel(8);
    let ready = Arc::new(AtomicBool::new(inventory.config.tokens.is_empty()));
    let handle = SchedulerHandle {
        commands: tx,
        ready: ready.clone(),
    };
    store.reconcile(&inventory.config);
    tokio::spawn(run(store, inventory, rx, ready));
    handle
}

struct Limits {
    global: Arc<Semaphore>,
    per_provider: HashMap<String, Arc<Semaphore>>,
}

impl Limits {
    fn of(config: &Config) -> Self {
        Limits {
            global: Arc::new(Semaphore::new(config.global.max_concurrency)),
            per_provider: config
                .providers
                .iter()
                .filter_map(|(name, pc)| {
                    pc.max_concurrency()
                        .map(|n| (name.clone(), Arc::new(Semaphore::new(n))))
                })
                .collect(),
        }
    }
}

/// A token in the queue: when it is due, its generation, its name. Tokens due at the same
/// instant (a whole first round) are ordered by generation, which no two tokens share, so
/// the heap compares numbers, not names.
type Due = Reverse<(Instant, u64, String)>;

async fn run(
    store: Arc<Store>,
    mut inventory: Inventory,
    mut commands: mpsc::Receiver<Command>,
    ready: Arc<AtomicBool>,
) {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let mut entries: HashMap<String, Entry> = HashMap::new();
    let mut queue: BinaryHeap<Due> = BinaryHeap::new();
    let mut paused: HashMap<String, Pauses> = HashMap::new();
    let mut limits = Limits::of(&inventory.config);
    let mut generation: u64 = 0;

    classify_secret_files(inventory.config.tokens.clone());
    let start = Instant::now();
    for spec in &inventory.config.tokens {
        generation += 1;
        let provider = inventory.providers[&spec.provider].clone();
        let limit = provider.rate_limit_key(&TokenFacts::default());
        entries.insert(
            spec.name.clone(),
            Entry {
                spec: spec.clone(),
                provider,
                generation,
                failures: 0,
                in_flight: false,
                rerun: false,
                first: true,
                limit,
                paused_until: None,
            },
        );
        queue.push(Reverse((start, generation, spec.name.clone())));
    }

    // Tokens the first round still waits for (`Entry::first`).
    let mut first_left = entries.len();
    // Whether due tokens are waiting for a probe to end: every global permit is out.
    let mut saturated = false;
    loop {
        let next_due = if saturated {
            None
        } else {
            queue.peek().map(|Reverse((t, _, _))| *t)
        };
        tokio::select! {
            _ = sleep_until_opt(next_due) => {
                saturated = spawn_due(&mut queue, &mut entries, &mut paused, &limits, &done_tx);
            }
            Some(done) = done_rx.recv() => {
                // The probe gave its permit back before reporting: the next due token can go.
                if saturated {
                    saturated =
                        spawn_due(&mut queue, &mut entries, &mut paused, &limits, &done_tx);
                }
                let Some(entry) = entries.get_mut(&done.name) else { continue };
                entry.in_flight = false;
                if entry.generation != done.generation && !entry.rerun {
                    continue;
                }
                // The store takes the facts; the rest of this arm needs only the outcome's head.
                let outcome = done.run.outcome.without_facts();
                let duration = done.run.duration;
                let recorded = store.record(&done.name, done.run, done.at);
                log_change(
                    &done.name,
                    recorded.as_ref().and_then(|r| r.previous),
                    &outcome,
                    duration,
                );
                if let Some(r) = &recorded {
                    // The identity the store now knows for the token (reset with a new
                    // secret): what its next pause is keyed by.
                    entry.limit = entry.provider.rate_limit_key(&r.facts);
                }
                if std::mem::take(&mut entry.first) {
                    first_left -= 1;
                    if first_left == 0 {
                        // Logged before readiness, so whoever sees `/-/ready` answer 200
                        // finds the summary in the log (at 100,000 tokens the summary takes
                        // long enough for the benchmark to have read the log without it).
                        tracing::info!(
                            states = %state_summary(&store),
                            "first probe round complete"
                        );
                        ready.store(true, Ordering::Release);
                    }
                }
                if entry.rerun {
                    entry.rerun = false;
                    queue.push(Reverse((Instant::now(), entry.generation, done.name)));
                    continue;
                }
                entry.failures = if outcome.verdict.is_failure() { entry.failures + 1 } else { 0 };
                let expiry = recorded.map(|r| r.expiry).unwrap_or_default();
                let wall_now = Timestamp::now();
                let delay = jitter(next_delay(
                    &entry.spec,
                    &inventory.config.global,
                    &outcome,
                    expiry,
                    entry.failures,
                    wall_now,
                ));
                if let Some(pause) = provider_pause(&outcome, wall_now) {
                    let scope = pause_tokens(
                        &mut paused,
                        entry,
                        outcome.limit_shared_by_entry,
                        Instant::now(),
                        pause,
                    );
                    tracing::warn!(
                        provider = %entry.spec.provider,
                        token = %done.name,
                        paused = scope,
                        pause_seconds = pause.as_secs(),
                        "provider is rate limiting: pausing the probes that share the limit"
                    );
                }
                queue.push(Reverse((Instant::now() + delay, entry.generation, done.name)));
            }
            permit = limits.global.clone().acquire_owned(), if saturated => {
                // A permit is free. Its probe's report usually comes too and spawns the next
                // token itself; this branch does not rely on it, so a task lost without a
                // report cannot leave the queue waiting for good.
                drop(permit);
                saturated = spawn_due(&mut queue, &mut entries, &mut paused, &limits, &done_tx);
            }
            Some(cmd) = commands.recv() => {
                match cmd {
                    Command::Reload(new, ack) => {
                        store.reconcile(&new.config);
                        let now = Instant::now();
                        let mut next = HashMap::new();
                        for spec in &new.config.tokens {
                            let provider = new.providers[&spec.provider].clone();
                            let unchanged = entries.get(&spec.name).is_some_and(|e| {
                                e.spec == *spec
                                    && new.config.providers.get(&spec.provider)
                                        == inventory.config.providers.get(&spec.provider)
                            });
                            match entries.remove(&spec.name) {
                                Some(mut e) if unchanged => {
                                    // Same token, same provider settings: keep its schedule.
                                    e.provider = provider;
                                    next.insert(spec.name.clone(), e);
                                }
                                old => {
                                    generation += 1;
                                    let in_flight = old.as_ref().is_some_and(|e| e.in_flight);
                                    // A changed token keeps its pause, as its entry's pause
                                    // is kept; its identity is learned again from its facts.
                                    let facts = store
                                        .read()
                                        .tokens
                                        .get(&spec.name)
                                        .map(|t| t.facts.clone())
                                        .unwrap_or_default();
                                    let limit = provider.rate_limit_key(&facts);
                                    let paused_until = old.as_ref().and_then(|e| e.paused_until);
                                    next.insert(spec.name.clone(), Entry {
                                        spec: spec.clone(),
                                        provider,
                                        generation,
                                        failures: 0,
                                        in_flight,
                                        rerun: in_flight,
                                        // A token the reload adds is not part of the first round.
                                        first: old.is_some_and(|e| e.first),
                                        limit,
                                        paused_until,
                                    });
                                    if !in_flight {
                                        queue.push(Reverse((now, generation, spec.name.clone())));
                                    }
                                }
                            }
                        }
                        first_left = next.values().filter(|e| e.first).count();
                        if first_left == 0 {
                            ready.store(true, Ordering::Release);
                        }
                        entries = next;
                        // Unchanged tokens keep their spec, already classified.
                        classify_secret_files(entries.values().map(|e| e.spec.clone()).collect());
                        paused.retain(|p, _| new.config.providers.contains_key(p));
                        limits = Limits::of(&new.config);
                        saturated = false;
                        inventory = new;
                        let _ = ack.send(());
                    }
                }
            }
            else => break,
        }
    }
}

/// Learns, off the async workers, which token secret files can be read inline (see
/// `secret::FileSource`), so that a round need not send each first read to the blocking pool.
/// A file already classified costs nothing.
fn classify_secret_files(specs: Vec<Arc<TokenSpec>>) {
    tokio::task::spawn_blocking(move || {
        crate::secret::classify_files(specs.iter().filter_map(|s| s.secret.as_ref()));
    });
}

/// `valid=9990 invalid=10`: how many tokens are in each state, the empty states left out.
fn state_summary(store: &Store) -> String {
    let inner = store.read();
    let states = inner.tokens.values().map(|s| {
        s.verdict()
            .map_or(crate::derive::view::UNKNOWN_STATE, Verdict::as_str)
    });
    let counts: Vec<String> = crate::derive::view::count_states(states)
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{s}={n}"))
        .collect();
    counts.join(" ")
}

/// Spawns every due token there is a global permit for, each task holding its permit; a
/// token past the limit waits in the queue, not as a task parked on the semaphore, so the
/// memory of a round is bounded by the concurrency limit, not by the inventory's size.
/// Returns whether it stopped for want of a permit with due tokens left.
fn spawn_due(
    queue: &mut BinaryHeap<Due>,
    entries: &mut HashMap<String, Entry>,
    paused: &mut HashMap<String, Pauses>,
    limits: &Limits,
    done: &mpsc::UnboundedSender<Done>,
) -> bool {
    let now = Instant::now();
    while queue.peek().is_some_and(|Reverse((due, _, _))| *due <= now) {
        let Ok(permit) = limits.global.clone().try_acquire_owned() else {
            return true;
        };
        let Some(Reverse((_, generation_due, name))) = queue.pop() else {
            break;
        };
        let Some(entry) = entries.get_mut(&name) else {
            continue;
        };
        if entry.generation != generation_due || entry.in_flight {
            continue;
        }
        if let Some(until) = paused_until(paused, entry, now) {
            let delay = jitter(Duration::from_millis(500));
            queue.push(Reverse((until + delay, generation_due, name)));
            continue;
        }
        entry.in_flight = true;
        let task = ProbeTask {
            name,
            generation: generation_due,
            spec: entry.spec.clone(),
            provider: entry.provider.clone(),
            global: permit,
            local: limits.per_provider.get(&entry.spec.provider).cloned(),
            done: done.clone(),
        };
        tokio::spawn(task.run());
    }
    false
}

/// Records a pause of `pause` from `now` for the tokens that share `entry`'s rate limit:
/// the whole provider entry when the answer says so or the kind counts per entry, else the
/// token's identity, else the token alone. A pause already longer is kept. Returns which.
fn pause_tokens(
    paused: &mut HashMap<String, Pauses>,
    entry: &mut Entry,
    shared_by_entry: bool,
    now: Instant,
    pause: Duration,
) -> &'static str {
    let until = now + pause;
    let later = |slot: &mut Option<Instant>| *slot = Some(slot.map_or(until, |t| t.max(until)));
    let key = if shared_by_entry {
        &LimitKey::Entry
    } else {
        &entry.limit
    };
    match key {
        LimitKey::Token => {
            later(&mut entry.paused_until);
            "token"
        }
        LimitKey::Entry => {
            later(&mut paused.entry(entry.spec.provider.clone()).or_default().entry);
            "provider"
        }
        LimitKey::Identity(id) => {
            let pauses = paused.entry(entry.spec.provider.clone()).or_default();
            // Identities whose pause is over go, so the map holds only running pauses.
            pauses.identities.retain(|_, t| *t > now);
            let slot = pauses.identities.entry(id.clone()).or_insert(until);
            *slot = (*slot).max(until);
            "identity"
        }
    }
}

/// When `entry` may be probed again, if one of the pauses that apply to it still runs: its
/// provider entry's, its identity's, its own. Pauses found over are dropped.
fn paused_until(
    paused: &mut HashMap<String, Pauses>,
    entry: &mut Entry,
    now: Instant,
) -> Option<Instant> {
    let running = |slot: &mut Option<Instant>| match *slot {
        Some(t) if t > now => Some(t),
        _ => {
            *slot = None;
            None
        }
    };
    let own = running(&mut entry.paused_until);
    let Some(pauses) = paused.get_mut(&entry.spec.provider) else {
        return own;
    };
    let whole = running(&mut pauses.entry);
    let identity = match &entry.limit {
        LimitKey::Identity(id) => match pauses.identities.get(id) {
            Some(t) if *t > now => Some(*t),
            Some(_) => {
                pauses.identities.remove(id);
                None
            }
            None => None,
        },
        _ => None,
    };
    if pauses.entry.is_none() && pauses.identities.is_empty() {
        paused.remove(&entry.spec.provider);
    }
    [own, whole, identity].into_iter().flatten().max()
}

struct ProbeTask {
    name: String,
    generation: u64,
    spec: Arc<TokenSpec>,
    provider: Arc<dyn Provider>,
    /// Taken by the scheduler's loop before spawning.
    global: OwnedSemaphorePermit,
    local: Option<Arc<Semaphore>>,
    done: mpsc::UnboundedSender<Done>,
}

impl ProbeTask {
    async fn run(self) {
        let local = match self.local {
            Some(s) => Some(s.acquire_owned().await),
            None => None,
        };
        let at = Timestamp::now();
        // Boxed, so the probe's state is allocated only once the provider's permit is held:
        // tasks of a provider with its own limit wait for it holding only this small task.
        let run = Box::pin(run_probe(self.provider.as_ref(), &self.spec, at)).await;
        // Released before the report, so the loop finds the permit free when it wakes.
        drop(local);
        drop(self.global);
        let _ = self.done.send(Done {
            name: self.name,
            generation: self.generation,
            run,
            at,
        });
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Logs a change of state at `info`. A token's first answer is a change from `unknown`, but a
/// first `valid` (or `unverified`, for a JWT read without keys) is what every healthy token
/// says at start, so it is logged at `debug` only: a start with 10,000 tokens writes the few
/// that need attention and the first round's summary line.
fn log_change(token: &str, previous: Option<Verdict>, outcome: &ProbeOutcome, duration: Duration) {
    let quiet_first =
        previous.is_none() && matches!(outcome.verdict, Verdict::Valid | Verdict::Unverified);
    if previous != Some(outcome.verdict) && !quiet_first {
        tracing::info!(
            token = %token,
            from = previous.map(Verdict::as_str).unwrap_or("unknown"),
            to = outcome.verdict.as_str(),
            reason = outcome.reason.as_str(),
            detail = %outcome.detail,
            "token state changed"
        );
    } else {
        tracing::debug!(
            token = %token,
            state = outcome.verdict.as_str(),
            reason = outcome.reason.as_str(),
            duration_ms = duration.as_millis() as u64,
            "probed"
        );
    }
}

/// The longest wait a provider can impose. Its `Retry-After` and rate-limit reset are
/// honoured up to this; a provider asking for more (a broken proxy once sent 2^64-1
/// seconds) is asked again after a day rather than never, and every wait stays far inside
/// what `Instant` and `Duration` arithmetic can hold, so no answer can panic this loop.
pub const MAX_PROVIDER_WAIT: Duration = Duration::from_secs(24 * 3600);

/// ±10 % so that tokens configured together do not probe in lockstep.
fn jitter(d: Duration) -> Duration {
    let factor = rand::rng().random_range(0.9..=1.1);
    d.mul_f64(factor).max(Duration::from_millis(100))
}

/// How long a provider is paused after this answer: while it rate limits us, or when its
/// rate-limit headers say the window is used up. `None` when it may be called.
pub fn provider_pause(outcome: &ProbeOutcome, now: Timestamp) -> Option<Duration> {
    if outcome.verdict == Verdict::RateLimited {
        let wait = outcome.retry_after.unwrap_or(Duration::from_secs(60));
        return Some(wait.min(MAX_PROVIDER_WAIT));
    }
    let rate = outcome.rate_limit?;
    if rate.remaining? <= 0.0 {
        let reset = rate.reset_at?;
        let secs = reset.as_second() - now.as_second();
        return (secs > 0).then(|| Duration::from_secs(secs as u64).min(MAX_PROVIDER_WAIT));
    }
    None
}

/// When to probe a token again, before jitter. Pure.
///
/// - Conclusive answers: the token's interval, shortened near expiry to a quarter of the
///   time left, but never below `min_probe_interval`; right after the expiry passes the
///   token is probed once more so its state turns promptly.
/// - Unreachable or rate limited: exponential backoff from `min_probe_interval`, capped at
///   `max(probe_interval, max_backoff)`, and never sooner than the provider's `Retry-After`
///   (itself honoured up to [`MAX_PROVIDER_WAIT`]).
/// - Misconfigured: the normal interval (a fix arrives by reload, which re-probes at once).
pub fn next_delay(
    spec: &TokenSpec,
    global: &Global,
    outcome: &ProbeOutcome,
    expiry: Expiry,
    failures: u32,
    now: Timestamp,
) -> Duration {
    let floor = global.min_probe_interval.min(spec.probe_interval);
    match outcome.verdict {
        Verdict::Unreachable | Verdict::RateLimited => {
            let cap = spec.probe_interval.max(global.max_backoff);
            let exp = failures.saturating_sub(1).min(16);
            let backoff = floor.saturating_mul(1u32 << exp).min(cap);
            let asked = outcome
                .retry_after
                .unwrap_or_default()
                .min(MAX_PROVIDER_WAIT);
            backoff.max(asked)
        }
        Verdict::Misconfigured => spec.probe_interval,
        _ => {
            let Some(at) = expiry.timestamp() else {
                return spec.probe_interval;
            };
            let left = at.as_second() - now.as_second();
            if left <= 0 {
                return spec.probe_interval;
            }
            let left = Duration::from_secs(left as u64);
            let near = (left / 4).max(floor);
            // Probe just after the expiry passes, unless that is sooner than the floor.
            let at_expiry = (left + Duration::from_secs(1)).max(floor);
            spec.probe_interval.min(near).min(at_expiry)
        }
    }
}

#[cfg(test)]
mod tests;
