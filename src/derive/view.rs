//! What a person sees about a token, derived from the store at read time. Pure.
//!
//! The status page, `/api/v1/tokens` and `check` all render [`TokenView`], so they cannot
//! disagree. It carries no secret: the fingerprint is the only thing derived from the value.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

use crate::derive::policy::{self, Finding};
use crate::model::{Anomaly, Expiry, ExpiryModel, Reason, Severity, human_relative};
use crate::state::store::{Inner, TokenState};

/// The state shown for a token: a verdict, or `unknown` before the first probe.
pub const UNKNOWN_STATE: &str = "unknown";

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TokenView {
    pub name: String,
    pub provider: String,
    pub kind: String,
    /// The source that listed the token (`sources:`); absent for a configured token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// A verdict (`valid`, `invalid`, ...) or `unknown`.
    pub state: String,
    pub reason: Option<String>,
    pub detail: Option<String>,
    /// `ok`, `warning` or `critical` against the token's own thresholds.
    pub severity: Severity,
    pub fingerprint: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// RFC 3339, when known.
    pub expires_at: Option<String>,
    pub never_expires: bool,
    /// How the lifetime is counted: `fixed`, `sliding` (renewed by each use; the window in
    /// `sliding_window_seconds`) or `age_only` (never expires; age policies apply).
    pub expiry_model: &'static str,
    pub sliding_window_seconds: Option<u64>,
    pub expires_in_seconds: Option<i64>,
    /// "in 6 days", "2 hours ago", "never", "unknown".
    pub expires_in: String,
    pub warning_before_seconds: u64,
    pub critical_before_seconds: u64,
    pub subject: Option<String>,
    pub client_id: Option<String>,
    pub issuer: Option<String>,
    pub audience: Vec<String>,
    pub scopes: Vec<String>,
    pub token_type: Option<String>,
    pub issued_at: Option<String>,
    pub last_used_at: Option<String>,
    pub last_probe_at: Option<String>,
    pub last_verdict_at: Option<String>,
    pub probe_duration_seconds: Option<f64>,
    pub flags: Vec<String>,
    /// Stable codes of what was wrong with the last conclusive answer (`expiry_unreadable`,
    /// `scopes_capped`...): the `anomaly` label values of `api_token_answer_anomaly`.
    pub anomalies: Vec<Anomaly>,
    pub extra: crate::model::Extra,
    /// When the current fingerprint was first seen, and when the last rotation happened.
    pub first_seen_at: Option<String>,
    pub rotated_at: Option<String>,
    /// Age in seconds, from the provider's issue time or else from first sight.
    pub age_seconds: Option<i64>,
    /// Every configured policy's result, violated or not.
    pub policies: Vec<Finding>,
    /// The `rotate:` block's progress; absent for a token without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation: Option<crate::model::rotation::RotationStatus>,
}

impl TokenView {
    pub fn from_state(s: &TokenState, now: Timestamp) -> Self {
        let facts = &s.facts;
        let expiry_at = facts.expiry.timestamp();
        let last = s.last.as_ref();
        let mut flags = facts.flags.clone();
        if let Some(r) = last {
            for f in &r.flags {
                if !flags.contains(f) {
                    flags.push(f.clone());
                }
            }
        }
        TokenView {
            name: s.spec.name.clone(),
            provider: s.spec.provider.clone(),
            kind: s.kind.to_string(),
            source: s.spec.source.as_deref().map(str::to_string),
            state: s
                .verdict()
                .map(|v| v.as_str().to_string())
                .unwrap_or_else(|| UNKNOWN_STATE.to_string()),
            reason: last.map(|r| r.reason.as_str().to_string()),
            detail: last.map(|r| r.detail.clone()),
            severity: severity(s, now),
            fingerprint: s.fingerprint.clone(),
            labels: s.spec.labels.to_map(),
            expires_at: expiry_at.map(|t| t.to_string()),
            never_expires: facts.expiry == Expiry::Never,
            expiry_model: facts.expiry_model.as_str(),
            sliding_window_seconds: match facts.expiry_model {
                ExpiryModel::Sliding { window_seconds } => Some(window_seconds),
                _ => None,
            },
            expires_in_seconds: expiry_at.map(|t| t.as_second() - now.as_second()),
            expires_in: match facts.expiry {
                Expiry::At(t) => human_relative(t, now),
                Expiry::Never => "never".into(),
                Expiry::Undisclosed => "unknown".into(),
            },
            warning_before_seconds: s.spec.thresholds.warning_before.as_secs(),
            critical_before_seconds: s.spec.thresholds.critical_before.as_secs(),
            subject: facts.subject.clone(),
            client_id: facts.client_id.clone(),
            issuer: facts.issuer.clone(),
            audience: facts.audience.clone(),
            scopes: facts.scopes.clone(),
            token_type: facts.token_type.clone(),
            issued_at: facts.issued_at.map(|t| t.to_string()),
            last_used_at: facts.last_used_at.map(|t| t.to_string()),
            last_probe_at: last.map(|r| r.at.to_string()),
            last_verdict_at: s.last_verdict_at.map(|t| t.to_string()),
            probe_duration_seconds: last.map(|r| r.duration.as_secs_f64()),
            rotation: s.rotation.as_deref().cloned(),
            flags,
            anomalies: facts.anomalies.clone(),
            extra: facts.extra.clone(),
            first_seen_at: s.first_seen.map(|t| t.to_string()),
            rotated_at: s.rotated_at.map(|t| t.to_string()),
            age_seconds: policy::age_origin(s).map(|(from, _)| now.as_second() - from.as_second()),
            policies: policy::evaluate(s, now),
        }
    }

    /// The policies this token violates.
    pub fn violations(&self) -> impl Iterator<Item = &Finding> {
        self.policies.iter().filter(|f| f.violated)
    }

    /// Sort key: most urgent first. Invalid and failing before warnings, then by expiry.
    pub fn urgency(&self) -> (u8, i64, String) {
        (
            rank(&self.state, self.severity),
            self.expires_in_seconds.unwrap_or(i64::MAX),
            self.name.clone(),
        )
    }
}

/// The first two parts of [`TokenView::urgency`] (the third is the name), from the state
/// itself: a streamed answer orders its tokens before it builds any view.
pub fn urgency_of(s: &TokenState, now: Timestamp) -> (u8, i64) {
    (
        rank(state_name(s), severity(s, now)),
        s.facts
            .expiry
            .timestamp()
            .map_or(i64::MAX, |t| t.as_second() - now.as_second()),
    )
}

/// The state a view shows for a token: its verdict, or [`UNKNOWN_STATE`].
pub fn state_name(s: &TokenState) -> &'static str {
    s.verdict().map_or(UNKNOWN_STATE, |v| v.as_str())
}

fn rank(state: &str, severity: Severity) -> u8 {
    match state {
        "invalid" => 0,
        "misconfigured" | "forbidden" => 1,
        "unreachable" | "rate_limited" => 2,
        _ => match severity {
            Severity::Critical => 0,
            Severity::Warning => 3,
            Severity::Ok => 4,
        },
    }
}

/// Severity of a token: its expiry against its thresholds. A token whose secret is gone
/// (invalid) is critical whatever its expiry says.
pub fn severity(s: &TokenState, now: Timestamp) -> Severity {
    let by_expiry = s.spec.thresholds.severity(s.facts.expiry, now);
    match s.last.as_ref().map(|r| (r.verdict, r.reason)) {
        Some((crate::model::Verdict::Invalid, _)) => Severity::Critical,
        Some((_, Reason::Expired)) => Severity::Critical,
        _ => by_expiry,
    }
}

/// Every token, most urgent first.
pub fn all(inner: &Inner, now: Timestamp) -> Vec<TokenView> {
    let mut views: Vec<TokenView> = inner
        .tokens
        .values()
        .map(|s| TokenView::from_state(s, now))
        .collect();
    views.sort_by_key(TokenView::urgency);
    views
}

/// Counts of state names (`Verdict::as_str` or [`UNKNOWN_STATE`]), every state listed, in the
/// order of `Verdict::ALL` and then `unknown`.
pub fn count_states<'a>(states: impl IntoIterator<Item = &'a str>) -> Vec<(&'static str, usize)> {
    let mut out: Vec<(&'static str, usize)> = crate::model::Verdict::ALL
        .iter()
        .map(|v| (v.as_str(), 0))
        .collect();
    out.push((UNKNOWN_STATE, 0));
    for state in states {
        if let Some(entry) = out.iter_mut().find(|(s, _)| *s == state) {
            entry.1 += 1;
        }
    }
    out
}
