//! What is worth telling someone about a token, derived from the store's facts. Pure: every
//! function takes `now`.
//!
//! A token has at most one condition of the *token* family (expiring, expired, invalid: they
//! exclude each other), plus provider failing, misconfigured, and one per violated policy.
//! When the last probe says nothing about the token itself (the provider failed), the token
//! family is decided from the last known expiry alone, or held as it was: an outage must
//! neither resolve an `invalid` alert nor raise a new one.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::{Expiry, Reason, Severity, Verdict};
use crate::notify::config::Settings;
use crate::state::store::TokenState;

pub use crate::model::event::{EventKind, Level};

/// One policy finding about a token: the shape `policy::evaluate` returns, owned so that
/// findings from any source (a policy module, a test) are one input of [`derive`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyFinding {
    pub policy: String,
    pub violated: bool,
    pub detail: String,
}

/// Where policy findings come from: one function the service calls for every probed token.
/// The daemon passes [`policies`]; a test may pass [`no_policies`] or findings of its own.
pub type PolicySource = fn(&TokenState, Timestamp) -> Vec<PolicyFinding>;

/// The token's configured policies (`crate::derive::policy::evaluate`), as findings.
pub fn policies(state: &TokenState, now: Timestamp) -> Vec<PolicyFinding> {
    crate::derive::policy::evaluate(state, now)
        .into_iter()
        .map(|f| PolicyFinding {
            policy: f.policy.to_string(),
            violated: f.violated,
            detail: f.detail,
        })
        .collect()
}

/// No policies at all.
pub fn no_policies(_: &TokenState, _: Timestamp) -> Vec<PolicyFinding> {
    Vec::new()
}

/// One active condition of a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub kind: EventKind,
    /// The policy's name, for policy violations.
    pub policy: Option<String>,
    pub level: Level,
    /// One sentence for people (from the probe's detail or the policy finding).
    pub detail: String,
}

/// The conditions of one token, and what its token family was decided from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Derived {
    pub conditions: Vec<Condition>,
    pub basis: FamilyBasis,
}

/// What the token family (expiring, expired, invalid) of a derivation rests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FamilyBasis {
    /// A conclusive answer of the provider: the family is decided.
    Verdict,
    /// Only the last known expiry (the provider is silent): expiring and expired are decided,
    /// but whether the token is invalid is not, so an `invalid` alert is kept as it is.
    ExpiryOnly,
    /// Nothing: token-family alerts are kept as they are.
    Unknown,
}

/// What a notification shows about a token, taken from [`crate::derive::view::TokenView`] (so it
/// carries no secret: the fingerprint is the only thing derived from the value). Kept with
/// each alert so a resolution can say what changed, and a removed token can still be named.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSnapshot {
    pub token: String,
    pub provider: String,
    pub kind: String,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    #[serde(default)]
    pub never_expires: bool,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

impl TokenSnapshot {
    pub fn from_state(s: &TokenState, now: Timestamp) -> Self {
        let v = crate::derive::view::TokenView::from_state(s, now);
        TokenSnapshot {
            token: v.name,
            provider: v.provider,
            kind: v.kind,
            state: v.state,
            reason: v.reason,
            fingerprint: v.fingerprint,
            expires_at: s.facts.expiry.timestamp(),
            never_expires: v.never_expires,
            labels: v.labels,
            scopes: v.scopes,
            subject: v.subject,
        }
    }

    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

/// What the notifier remembers about a token between probes (and restarts): since when it
/// has been failing, so "failing for 30 minutes" survives a restart.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenMemory {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub misconfigured_since: Option<Timestamp>,
}

impl TokenMemory {
    /// Updates the memory from the token's last probe; true when it changed.
    pub fn observe(&mut self, s: &TokenState) -> bool {
        let Some(last) = &s.last else {
            return false;
        };
        let before = self.clone();
        let v = last.verdict;
        if matches!(v, Verdict::Unreachable | Verdict::RateLimited) {
            self.failing_since.get_or_insert(last.at);
        } else {
            self.failing_since = None;
        }
        if v == Verdict::Misconfigured {
            self.misconfigured_since.get_or_insert(last.at);
        } else {
            self.misconfigured_since = None;
        }
        *self != before
    }
}

/// The conditions of a token at `now`; `None` before its first probe (nothing is decided
/// about a token nobody has asked about, which is also what keeps a restart quiet).
pub fn derive(
    s: &TokenState,
    memory: &TokenMemory,
    findings: &[PolicyFinding],
    settings: &Settings,
    now: Timestamp,
) -> Option<Derived> {
    let last = s.last.as_ref()?;
    let verdict = last.verdict;
    let mut conditions = Vec::new();
    let detail = last.detail.clone();

    let basis = if verdict.is_conclusive() {
        if let Some(c) = token_condition(s, Some((verdict, last.reason)), &detail, now) {
            conditions.push(c);
        }
        FamilyBasis::Verdict
    } else if let Expiry::At(_) = s.facts.expiry {
        // The provider is silent, but time still passes on the last known expiry.
        if let Some(c) = token_condition(s, None, &detail, now) {
            conditions.push(c);
        }
        FamilyBasis::ExpiryOnly
    } else {
        FamilyBasis::Unknown
    };

    let elapsed = |since: Option<Timestamp>| {
        since.map(|t| now.as_second().saturating_sub(t.as_second()).max(0) as u64)
    };
    if let Some(secs) = elapsed(memory.failing_since)
        && matches!(verdict, Verdict::Unreachable | Verdict::RateLimited)
        && secs >= settings.provider_failing_for.as_secs()
    {
        // The text is stable while the outage lasts (no "for N minutes"), so the alert does
        // not change at every evaluation; renderers show the start time.
        conditions.push(Condition {
            kind: EventKind::ProviderFailing,
            policy: None,
            level: Level::Warning,
            detail: format!(
                "no answer from provider {} since {} ({}: {})",
                s.spec.provider,
                memory
                    .failing_since
                    .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_default(),
                verdict.as_str(),
                detail
            ),
        });
    }
    if let Some(secs) = elapsed(memory.misconfigured_since)
        && verdict == Verdict::Misconfigured
        && secs >= settings.misconfigured_for.as_secs()
    {
        conditions.push(Condition {
            kind: EventKind::Misconfigured,
            policy: None,
            level: Level::Warning,
            detail: format!("{}: {}", last.reason.as_str(), detail),
        });
    }
    for f in findings.iter().filter(|f| f.violated) {
        conditions.push(Condition {
            kind: EventKind::PolicyViolation,
            policy: Some(f.policy.clone()),
            level: Level::Warning,
            detail: f.detail.clone(),
        });
    }
    if let Some(r) = &s.rotation
        && r.failing()
    {
        // An interrupted rotation waits for a person; a failing one is retried.
        let level = if r.step == crate::model::rotation::Step::Interrupted {
            Level::Critical
        } else {
            Level::Warning
        };
        conditions.push(Condition {
            kind: EventKind::RotationFailing,
            policy: None,
            level,
            detail: format!(
                "rotation ({}) failed: {}",
                r.rotator,
                r.last_error.as_deref().unwrap_or("unknown error")
            ),
        });
    }
    Some(Derived { conditions, basis })
}

/// The token-family condition from a conclusive verdict (or, with `None`, from the last
/// known expiry alone).
fn token_condition(
    s: &TokenState,
    verdict: Option<(Verdict, Reason)>,
    detail: &str,
    now: Timestamp,
) -> Option<Condition> {
    let expired_at = s.facts.expiry.timestamp().filter(|t| *t <= now);
    let expired = |level| Condition {
        kind: EventKind::Expired,
        policy: None,
        level,
        detail: match verdict {
            Some(_) => detail.to_string(),
            // The failing probe's own detail ("connection refused") would read as the cause.
            None => "the last known expiry has passed; the provider is not answering now".into(),
        },
    };
    match verdict {
        Some((Verdict::Invalid, reason)) => {
            if reason == Reason::Expired || expired_at.is_some() {
                Some(expired(Level::Critical))
            } else {
                Some(Condition {
                    kind: EventKind::Invalid,
                    policy: None,
                    level: Level::Critical,
                    detail: detail.to_string(),
                })
            }
        }
        _ if expired_at.is_some() => Some(expired(Level::Critical)),
        _ => {
            let level = match s.spec.thresholds.severity(s.facts.expiry, now) {
                Severity::Ok => return None,
                Severity::Warning => Level::Warning,
                Severity::Critical => Level::Critical,
            };
            // The probe's own detail ("the provider confirmed the token") says nothing here;
            // the windows say why this is an event.
            let th = &s.spec.thresholds;
            Some(Condition {
                kind: EventKind::Expiring,
                policy: None,
                level,
                detail: format!(
                    "inside its {} window (warning {} before expiry, critical {} before)",
                    level.as_str(),
                    humantime::format_duration(th.warning_before),
                    humantime::format_duration(th.critical_before)
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests;
