//! The latest facts per token, and per-provider counters, in memory; and the rotation ledger
//! (when each token's fingerprint was first seen), the one part saved to `--storage.path`.
//!
//! The store is the only state the views read: metrics, the status page, the JSON API and
//! `check` all derive what they show from it at read time. It keeps the last known expiry
//! while a provider cannot answer, and after RFC 7662 answers `active:false`, as long as the
//! token's fingerprint has not changed. Tokens removed from the config are dropped, so their
//! series disappear from `/metrics`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::config::{Config, TokenSpec};
use crate::model::ProbeRun;
use crate::model::{Anomaly, Expiry, ProbeOutcome, RateLimit, Reason, TokenFacts, Verdict};
use crate::state::persist::StateFile;

/// What the store knows about one token.
#[derive(Clone, Debug)]
pub struct TokenState {
    pub spec: Arc<TokenSpec>,
    pub kind: &'static str,
    pub fingerprint: Option<String>,
    /// The last probe, whatever its verdict.
    pub last: Option<ProbeRecord>,
    /// Facts from the last conclusive answer, with the expiry carried over as described in
    /// the module docs. Kept while the provider fails. Shared, so a scrape's snapshot takes
    /// them without copying every string.
    pub facts: Arc<TokenFacts>,
    /// When the provider last gave a conclusive answer about the token.
    pub last_verdict_at: Option<Timestamp>,
    /// When the current fingerprint was first seen (survives restarts).
    pub first_seen: Option<Timestamp>,
    /// When a new fingerprint replaced an old one (survives restarts).
    pub rotated_at: Option<Timestamp>,
    /// Its `rotate:` block's progress, set by the rotate stage; `None` without one.
    pub rotation: Option<Arc<crate::model::rotation::RotationStatus>>,
}

/// What the ledger remembers per token. Read as owned strings; written borrowing the
/// token's own fingerprint ([`TokenState::seen`]), one definition for both, so the file
/// cannot drift from what is read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen<F = String> {
    pub fingerprint: F,
    pub first_seen: Timestamp,
    pub rotated_at: Option<Timestamp>,
}

/// The rotation ledger: token name -> what was seen. Saved as `tokens.json`.
pub type Ledger = BTreeMap<String, Seen>;

/// The ledger as written: each token's own fingerprint, first sight and rotation, for the
/// tokens whose secret has been read. The same JSON as a [`Ledger`], read from the store
/// rather than kept beside it, so the ledger costs no second map of every name and
/// fingerprint.
struct LedgerView<'a>(&'a BTreeMap<String, Box<TokenState>>);

impl Serialize for LedgerView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(
            self.0
                .iter()
                .filter_map(|(name, s)| Some((name, s.seen()?))),
        )
    }
}

/// The facts of a token never answered for: one shared value, not one per token, since a
/// first round holds every token in this state at once.
fn no_facts() -> Arc<TokenFacts> {
    static NONE: std::sync::LazyLock<Arc<TokenFacts>> = std::sync::LazyLock::new(Arc::default);
    NONE.clone()
}

impl TokenState {
    /// A token not probed yet, its secret never seen.
    fn new(spec: Arc<TokenSpec>, kind: &'static str) -> Self {
        TokenState {
            spec,
            kind,
            fingerprint: None,
            last: None,
            facts: no_facts(),
            last_verdict_at: None,
            first_seen: None,
            rotated_at: None,
            rotation: None,
        }
    }

    /// Its ledger entry: `None` until its secret has been read.
    fn seen(&self) -> Option<Seen<&str>> {
        Some(Seen {
            fingerprint: self.fingerprint.as_deref()?,
            first_seen: self.first_seen?,
            rotated_at: self.rotated_at,
        })
    }

    /// The current verdict; `None` before the first probe.
    pub fn verdict(&self) -> Option<Verdict> {
        self.last.as_ref().map(|r| r.verdict)
    }
}

/// The last probe: its verdict and what it said, not its facts (a conclusive answer's facts
/// are in [`TokenState::facts`]; of an inconclusive one's, only the expiry and the flags are
/// ever used). One per token, so it is kept small.
#[derive(Clone, Debug)]
pub struct ProbeRecord {
    pub verdict: Verdict,
    pub reason: Reason,
    pub detail: String,
    /// An inconclusive answer's warnings (`TokenFacts::flags`); a conclusive answer's are in
    /// [`TokenState::facts`].
    pub flags: Vec<String>,
    pub at: Timestamp,
    pub duration: Duration,
}

impl ProbeRecord {
    /// The record of `outcome`, taking its detail and flags.
    pub fn new(outcome: ProbeOutcome, at: Timestamp, duration: Duration) -> Self {
        ProbeRecord {
            verdict: outcome.verdict,
            reason: outcome.reason,
            detail: outcome.detail,
            flags: outcome.facts.flags,
            at,
            duration,
        }
    }
}

/// Counters and headroom for one configured provider.
#[derive(Clone, Debug)]
pub struct ProviderState {
    pub kind: &'static str,
    pub probes: u64,
    pub failures: BTreeMap<Reason, u64>,
    pub rate_limit: Option<RateLimit>,
}

impl ProviderState {
    fn new(kind: &'static str) -> Self {
        ProviderState {
            kind,
            probes: 0,
            failures: Reason::FAILURES.iter().map(|r| (*r, 0)).collect(),
            rate_limit: None,
        }
    }
}

#[derive(Debug, Default)]
pub struct Inner {
    /// Boxed: a `TokenState` is over 800 bytes, and a B-tree's nodes are often half empty,
    /// so inline values cost twice their size (ARCHITECTURE.md, memory).
    pub tokens: BTreeMap<String, Box<TokenState>>,
    pub providers: BTreeMap<String, ProviderState>,
    /// The config's global thresholds, once a config is loaded: `/metrics` writes a token's
    /// own only where they differ from these.
    pub default_thresholds: Option<crate::model::Thresholds>,
    /// The ledger read from `tokens.json`, until the first [`Store::reconcile`] hands each
    /// entry to the token it names. From then on the ledger is the tokens' own fields
    /// ([`LedgerView`]).
    loaded: Ledger,
}

/// Shared, lock-protected store. Writers hold the lock for a map update only; the ledger is
/// written after the lock is released.
#[derive(Debug, Default)]
pub struct Store {
    inner: RwLock<Inner>,
    ledger_file: Option<StateFile>,
    /// Serialises ledger writes so an older snapshot never overwrites a newer one.
    ledger_write: std::sync::Mutex<()>,
    /// Set when the ledger changed since the last write. Writes are batched by
    /// [`Store::flush_ledger`] rather than done per probe: a first round over 10,000 tokens
    /// would otherwise rewrite and fsync a growing file 10,000 times.
    ledger_dirty: std::sync::atomic::AtomicBool,
}

impl Store {
    /// A store that keeps nothing across restarts.
    pub fn new() -> Self {
        Store::default()
    }

    /// A store whose rotation ledger lives in `dir/tokens.json`.
    pub fn with_storage(dir: &std::path::Path) -> Self {
        let file = StateFile::new(dir, "tokens.json");
        let ledger: Ledger = file.load();
        Store {
            inner: RwLock::new(Inner {
                loaded: ledger,
                ..Inner::default()
            }),
            ledger_file: Some(file),
            ledger_write: std::sync::Mutex::new(()),
            ledger_dirty: Default::default(),
        }
    }

    /// A store that reads the ledger in `dir` but never writes it (for `check`, which may run
    /// beside a daemon that owns the file).
    pub fn with_storage_read_only(dir: &std::path::Path) -> Self {
        let ledger: Ledger = StateFile::new(dir, "tokens.json").load_read_only();
        Store {
            inner: RwLock::new(Inner {
                loaded: ledger,
                ..Inner::default()
            }),
            ledger_file: None,
            ledger_write: std::sync::Mutex::new(()),
            ledger_dirty: Default::default(),
        }
    }

    /// Writes the ledger if it changed since the last write. The daemon calls it every few
    /// seconds and at shutdown; a crash loses at most the changes since the last call.
    pub fn flush_ledger(&self) {
        let Some(file) = &self.ledger_file else {
            return;
        };
        let _guard = self.ledger_write.lock().unwrap_or_else(|e| e.into_inner());
        if !self
            .ledger_dirty
            .swap(false, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        // Serialised under the read lock rather than cloned first: the JSON is all that
        // leaves it, and a clone would be a second copy of every entry.
        let bytes = file.encode(&LedgerView(&self.read().tokens));
        let saved = bytes.and_then(|bytes| file.save_bytes(&bytes));
        if let Err(e) = saved {
            // Try again at the next flush; meanwhile the exporter keeps probing and serving.
            self.ledger_dirty
                .store(true, std::sync::atomic::Ordering::Release);
            tracing::warn!(error = %e, "cannot save the rotation ledger");
        }
    }

    fn mark_ledger_dirty(&self) {
        self.ledger_dirty
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the store match a (new) config: drops removed tokens and providers, adds new
    /// ones, and keeps what is known about tokens that stay on the same provider.
    pub fn reconcile(&self, config: &Config) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let mut providers = BTreeMap::new();
        for (name, pc) in &config.providers {
            let kept = inner
                .providers
                .remove(name)
                .filter(|p| p.kind == pc.kind())
                .unwrap_or_else(|| ProviderState::new(pc.kind()));
            providers.insert(name.clone(), kept);
        }
        let mut tokens = BTreeMap::new();
        let mut loaded = std::mem::take(&mut inner.loaded);
        for spec in &config.tokens {
            let kind = config.providers[&spec.provider].kind();
            let spec = spec.clone();
            let state = match inner.tokens.remove(&spec.name) {
                Some(mut old) if old.spec.provider == spec.provider && old.kind == kind => {
                    old.spec = spec;
                    old
                }
                // On another provider: a new token, but the same secret, seen when it was.
                Some(old) => Box::new(TokenState {
                    fingerprint: old.fingerprint,
                    first_seen: old.first_seen,
                    rotated_at: old.rotated_at,
                    ..TokenState::new(spec, kind)
                }),
                None => {
                    let seen = loaded.remove(&spec.name);
                    let (fingerprint, first_seen, rotated_at) = match seen {
                        Some(s) => (Some(s.fingerprint), Some(s.first_seen), s.rotated_at),
                        None => (None, None, None),
                    };
                    Box::new(TokenState {
                        fingerprint,
                        first_seen,
                        rotated_at,
                        ..TokenState::new(spec, kind)
                    })
                }
            };
            tokens.insert(state.spec.name.clone(), state);
        }
        // The ledger shrinks when a token it held is gone: one left in the old map, or one
        // in the file that the config no longer names.
        let shrunk = !loaded.is_empty() || inner.tokens.values().any(|s| s.seen().is_some());
        inner.tokens = tokens;
        inner.providers = providers;
        inner.default_thresholds = Some(config.global.thresholds);
        drop(inner);
        if shrunk {
            self.mark_ledger_dirty();
        }
    }

    /// Sets what the rotate stage reports about `token` (ignored for a token not in the
    /// store).
    pub fn set_rotation(&self, token: &str, status: crate::model::rotation::RotationStatus) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(state) = inner.tokens.get_mut(token) {
            state.rotation = Some(Arc::new(status));
        }
    }

    /// Records a probe of `token` that started at `at`, and says what the scheduler needs
    /// from the same lock: the verdict before, and the expiry after. A token removed
    /// meanwhile is ignored (`None`).
    pub fn record(&self, token: &str, run: ProbeRun, at: Timestamp) -> Option<Recorded> {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let Inner {
            tokens, providers, ..
        } = &mut *inner;
        let state = tokens.get_mut(token)?;
        let previous = state.verdict();
        let (verdict, reason, rate_limit) = (
            run.outcome.verdict,
            run.outcome.reason,
            run.outcome.rate_limit,
        );
        let ledger_before = (state.first_seen, state.rotated_at);
        let new_secret = run.fingerprint.is_some() && run.fingerprint != state.fingerprint;
        apply(state, run.outcome, run.fingerprint, at, run.duration);
        let recorded = Recorded {
            previous,
            expiry: state.facts.expiry,
            facts: state.facts.clone(),
        };
        let ledger_changed = new_secret || ledger_before != (state.first_seen, state.rotated_at);
        if let Some(p) = providers.get_mut(&state.spec.provider) {
            p.probes += 1;
            if verdict.is_failure() {
                *p.failures.entry(reason).or_insert(0) += 1;
            }
            if rate_limit.is_some() {
                p.rate_limit = rate_limit;
            }
        }
        drop(inner);
        if ledger_changed {
            self.mark_ledger_dirty();
        }
        Some(recorded)
    }
}

/// What [`Store::record`] reports back.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    /// The verdict before this probe (`None` before the first).
    pub previous: Option<Verdict>,
    /// The expiry now known, after the keeping rules.
    pub expiry: Expiry,
    /// The facts now kept for the token (its last conclusive answer's, none after a new
    /// secret): what the scheduler learns the token's rate-limit identity from.
    pub facts: Arc<TokenFacts>,
}

/// The flag on a token whose shown expiry is the last readable one, the latest answer's
/// being unusable.
pub const KEPT_EXPIRY: &str =
    "the expiry shown is the last readable one: the latest answer's expiry field was unusable";

/// The expiry-keeping rules, on one token. Pure.
pub fn apply(
    state: &mut TokenState,
    mut outcome: ProbeOutcome,
    fingerprint: Option<String>,
    at: Timestamp,
    duration: Duration,
) {
    let rotated = match (&state.fingerprint, &fingerprint) {
        (Some(old), Some(new)) => old != new,
        _ => false,
    };
    if rotated {
        // A new secret is a new token: nothing known about the old one carries over.
        state.facts = no_facts();
        state.rotated_at = Some(at);
        state.first_seen = Some(at);
    }
    if fingerprint.is_some() {
        if state.first_seen.is_none() {
            state.first_seen = Some(at);
        }
        state.fingerprint = fingerprint;
    }
    let (known_expiry, known_model) = (state.facts.expiry, state.facts.expiry_model);
    if outcome.verdict.is_conclusive() {
        // Moved, not copied: the facts of a conclusive answer live in `state.facts` only.
        let mut facts = std::mem::take(&mut outcome.facts);
        // A provider answering another subject for the same secret at each probe would make
        // a new `api_token_info` series each time: made visible, so it can be acted on.
        if let (Some(old), Some(new)) = (&state.facts.subject, &facts.subject)
            && old != new
        {
            facts.note(
                Anomaly::SubjectChanged,
                "the provider names another subject than in its previous answer for the same secret",
            );
        }
        // Any known expiry is kept, "never" as much as an instant: an answer that does not
        // disclose one (a refusal, RFC 7662 `active:false`) says nothing new about it.
        if facts.expiry == Expiry::Undisclosed && known_expiry != Expiry::Undisclosed {
            facts.expiry = known_expiry;
            // The expiry kept is read the way it was when it was learnt.
            facts.expiry_model = known_model;
            // The old expiry is still the best guess when the new answer's expiry field was
            // unusable, but it must not pass for what the provider said now: the anomaly
            // stays on the token and the flag says which expiry is shown.
            if facts
                .anomalies
                .iter()
                .any(|a| matches!(a, Anomaly::ExpiryUnreadable | Anomaly::ExpiryOutOfRange))
            {
                facts.flags.push(KEPT_EXPIRY.into());
            }
        }
        // Kept until the next conclusive answer, one per token: a list grown while an
        // answer was parsed holds up to twice its length.
        facts.scopes.shrink_to_fit();
        facts.audience.shrink_to_fit();
        facts.flags.shrink_to_fit();
        facts.extra.shrink_to_fit();
        state.facts = Arc::new(facts);
        state.last_verdict_at = Some(at);
    } else if known_expiry == Expiry::Undisclosed && outcome.facts.expiry != Expiry::Undisclosed {
        // A failed probe may still have read the expiry locally (a JWT whose keys are
        // unreachable); take it when nothing better is known.
        let facts = Arc::make_mut(&mut state.facts);
        facts.expiry = outcome.facts.expiry;
        facts.expiry_model = outcome.facts.expiry_model;
    }
    state.last = Some(ProbeRecord::new(outcome, at, duration));
}

#[cfg(test)]
mod tests;
