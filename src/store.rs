//! The latest facts per token, and per-provider counters. In memory, no I/O.
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

use crate::config::{Config, TokenSpec};
use crate::model::{Expiry, ProbeOutcome, RateLimit, Reason, TokenFacts, Verdict};
use crate::provider::ProbeRun;

/// What the store knows about one token.
#[derive(Clone, Debug)]
pub struct TokenState {
    pub spec: Arc<TokenSpec>,
    pub kind: &'static str,
    pub fingerprint: Option<String>,
    /// The last probe, whatever its verdict.
    pub last: Option<ProbeRecord>,
    /// Facts from the last conclusive answer, with the expiry carried over as described in
    /// the module docs. Kept while the provider fails.
    pub facts: TokenFacts,
    /// When the provider last gave a conclusive answer about the token.
    pub last_verdict_at: Option<Timestamp>,
}

impl TokenState {
    /// The current verdict; `None` before the first probe.
    pub fn verdict(&self) -> Option<Verdict> {
        self.last.as_ref().map(|r| r.outcome.verdict)
    }
}

#[derive(Clone, Debug)]
pub struct ProbeRecord {
    pub outcome: ProbeOutcome,
    pub at: Timestamp,
    pub duration: Duration,
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
    pub tokens: BTreeMap<String, TokenState>,
    pub providers: BTreeMap<String, ProviderState>,
}

/// Shared, lock-protected store. Writers hold the lock for a map update only.
#[derive(Debug, Default)]
pub struct Store {
    inner: RwLock<Inner>,
}

impl Store {
    pub fn new() -> Self {
        Store::default()
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
        for spec in &config.tokens {
            let kind = config.providers[&spec.provider].kind();
            let spec = Arc::new(spec.clone());
            let state = match inner.tokens.remove(&spec.name) {
                Some(mut old) if old.spec.provider == spec.provider && old.kind == kind => {
                    old.spec = spec;
                    old
                }
                _ => TokenState {
                    spec,
                    kind,
                    fingerprint: None,
                    last: None,
                    facts: TokenFacts::default(),
                    last_verdict_at: None,
                },
            };
            tokens.insert(state.spec.name.clone(), state);
        }
        inner.tokens = tokens;
        inner.providers = providers;
    }

    /// Records a probe of `token` that started at `at`. A token removed meanwhile is ignored.
    pub fn record(&self, token: &str, run: ProbeRun, at: Timestamp) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let Some(state) = inner.tokens.get_mut(token) else {
            return;
        };
        let provider = state.spec.provider.clone();
        apply(
            state,
            run.outcome.clone(),
            run.fingerprint,
            at,
            run.duration,
        );
        if let Some(p) = inner.providers.get_mut(&provider) {
            p.probes += 1;
            if run.outcome.verdict.is_failure() {
                *p.failures.entry(run.outcome.reason).or_insert(0) += 1;
            }
            if run.outcome.rate_limit.is_some() {
                p.rate_limit = run.outcome.rate_limit;
            }
        }
    }
}

/// The expiry-keeping rules, on one token. Pure.
pub fn apply(
    state: &mut TokenState,
    outcome: ProbeOutcome,
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
        state.facts = TokenFacts::default();
    }
    if fingerprint.is_some() {
        state.fingerprint = fingerprint;
    }
    let known_expiry = state.facts.expiry;
    if outcome.verdict.is_conclusive() {
        let mut facts = outcome.facts.clone();
        if facts.expiry == Expiry::Undisclosed && matches!(known_expiry, Expiry::At(_)) {
            facts.expiry = known_expiry;
        }
        state.facts = facts;
        state.last_verdict_at = Some(at);
    } else if known_expiry == Expiry::Undisclosed && outcome.facts.expiry != Expiry::Undisclosed {
        // A failed probe may still have read the expiry locally (a JWT whose keys are
        // unreachable); take it when nothing better is known.
        state.facts.expiry = outcome.facts.expiry;
    }
    state.last = Some(ProbeRecord {
        outcome,
        at,
        duration,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Thresholds;

    fn state() -> TokenState {
        TokenState {
            spec: Arc::new(TokenSpec {
                name: "t".into(),
                provider: "p".into(),
                secret: None,
                labels: BTreeMap::new(),
                thresholds: Thresholds {
                    warning_before: Duration::from_secs(10),
                    critical_before: Duration::from_secs(5),
                },
                probe_interval: Duration::from_secs(60),
                probe_timeout: Duration::from_secs(5),
                params: Default::default(),
            }),
            kind: "oauth2_introspection",
            fingerprint: None,
            last: None,
            facts: TokenFacts::default(),
            last_verdict_at: None,
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn valid_until(exp: i64) -> ProbeOutcome {
        ProbeOutcome::valid(TokenFacts {
            expiry: Expiry::At(at(exp)),
            ..TokenFacts::default()
        })
    }

    #[test]
    fn expiry_survives_outage_and_inactive_answer() {
        let mut s = state();
        let fp = || Some("sha256:aaaaaaaaaaaa".to_string());
        apply(&mut s, valid_until(5000), fp(), at(100), Duration::ZERO);
        apply(
            &mut s,
            ProbeOutcome::unreachable(Reason::Connect, "down"),
            None,
            at(200),
            Duration::ZERO,
        );
        assert_eq!(s.facts.expiry, Expiry::At(at(5000)));
        assert_eq!(s.verdict(), Some(Verdict::Unreachable));
        assert_eq!(s.last_verdict_at, Some(at(100)));
        apply(
            &mut s,
            ProbeOutcome::invalid(Reason::Inactive, "inactive"),
            fp(),
            at(6000),
            Duration::ZERO,
        );
        assert_eq!(s.facts.expiry, Expiry::At(at(5000)));
        assert_eq!(s.verdict(), Some(Verdict::Invalid));
        assert_eq!(s.last_verdict_at, Some(at(6000)));
    }

    #[test]
    fn rotation_forgets_the_old_expiry() {
        let mut s = state();
        apply(
            &mut s,
            valid_until(5000),
            Some("sha256:old".into()),
            at(100),
            Duration::ZERO,
        );
        apply(
            &mut s,
            ProbeOutcome::valid(TokenFacts::default()),
            Some("sha256:new".into()),
            at(200),
            Duration::ZERO,
        );
        assert_eq!(s.facts.expiry, Expiry::Undisclosed);
        assert_eq!(s.fingerprint.as_deref(), Some("sha256:new"));
    }

    #[test]
    fn never_replaces_a_known_expiry() {
        let mut s = state();
        apply(&mut s, valid_until(5000), None, at(100), Duration::ZERO);
        apply(
            &mut s,
            ProbeOutcome::valid(TokenFacts {
                expiry: Expiry::Never,
                ..TokenFacts::default()
            }),
            None,
            at(200),
            Duration::ZERO,
        );
        assert_eq!(s.facts.expiry, Expiry::Never);
    }
}
