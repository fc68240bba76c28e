//! What a notification is about: the event kinds and levels routes match on. Pure.

use serde::{Deserialize, Serialize};

/// The kinds of events. The strings are a contract: routes match on them, the webhook and
/// Alertmanager payloads carry them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Valid, inside the warning or critical window.
    Expiring,
    /// Past its expiry.
    Expired,
    /// The provider says the token is revoked, unknown or otherwise dead.
    Invalid,
    /// The provider has not answered (unreachable, rate limited) for a while.
    ProviderFailing,
    /// The exporter's own credentials or the token's secret source failed for a while.
    Misconfigured,
    /// A policy finding (too old, too broad...).
    PolicyViolation,
    /// The token's `rotate:` block failed its last attempt (or was interrupted); its
    /// resolution is the next successful rotation.
    RotationFailing,
}

impl EventKind {
    pub const ALL: [EventKind; 7] = [
        EventKind::Expiring,
        EventKind::Expired,
        EventKind::Invalid,
        EventKind::ProviderFailing,
        EventKind::Misconfigured,
        EventKind::PolicyViolation,
        EventKind::RotationFailing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Expiring => "expiring",
            EventKind::Expired => "expired",
            EventKind::Invalid => "invalid",
            EventKind::ProviderFailing => "provider_failing",
            EventKind::Misconfigured => "misconfigured",
            EventKind::PolicyViolation => "policy_violation",
            EventKind::RotationFailing => "rotation_failing",
        }
    }

    /// The token family: at most one of these is active for a token.
    pub fn is_token_family(self) -> bool {
        matches!(
            self,
            EventKind::Expiring | EventKind::Expired | EventKind::Invalid
        )
    }

    /// The Alertmanager `alertname`.
    pub fn alertname(self) -> &'static str {
        match self {
            EventKind::Expiring => "ApiTokenExpiring",
            EventKind::Expired => "ApiTokenExpired",
            EventKind::Invalid => "ApiTokenInvalid",
            EventKind::ProviderFailing => "ApiTokenProviderFailing",
            EventKind::Misconfigured => "ApiTokenMisconfigured",
            EventKind::PolicyViolation => "ApiTokenPolicyViolation",
            EventKind::RotationFailing => "ApiTokenRotationFailing",
        }
    }
}

/// How urgent an event is. Only the two bands that notify: `ok` is not an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Warning,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Warning => "warning",
            Level::Critical => "critical",
        }
    }
}
