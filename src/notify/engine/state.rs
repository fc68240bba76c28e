//! What the notification state machine remembers and produces: the serializable state
//! (alerts per token and condition, what each target was sent, the outbox) and the
//! batches of messages it hands to the receivers.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::notify::event::{Derived, EventKind, Level, TokenMemory, TokenSnapshot};
use crate::notify::route::Target;

use super::*;

/// The version of the state file's layout.
pub const STATE_VERSION: u32 = 1;

/// Everything the notifier must not forget across a restart.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NotifyState {
    #[serde(default)]
    pub version: u32,
    /// Alerts by id, firing and recently resolved.
    #[serde(default)]
    pub alerts: BTreeMap<String, Alert>,
    /// Per token: since when it fails.
    #[serde(default)]
    pub tokens: BTreeMap<String, TokenMemory>,
    /// Batches being sent, by target id: the "sending" intents.
    #[serde(default)]
    pub outbox: BTreeMap<String, Batch>,
    /// Makes ids unique within this state.
    #[serde(default)]
    pub seq: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Firing,
    Resolved,
}

/// Why an alert stopped firing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// Same secret, later expiry.
    Renewed,
    /// A new secret (another fingerprint).
    Rotated,
    /// The provider accepts the token again, or it left the warning window.
    ValidAgain,
    /// The provider answers again, the configuration works again, the policy is met.
    Recovered,
    /// The token was removed from the inventory.
    Removed,
    /// Another condition of the same token took over (expiring became expired): not
    /// announced as a resolution, the new alert says what it replaced.
    Superseded,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Renewed => "renewed",
            Resolution::Rotated => "rotated",
            Resolution::ValidAgain => "valid_again",
            Resolution::Recovered => "recovered",
            Resolution::Removed => "removed",
            Resolution::Superseded => "superseded",
        }
    }

    /// Words for people.
    pub fn describe(self) -> &'static str {
        match self {
            Resolution::Renewed => "renewed: the token now expires later",
            Resolution::Rotated => "rotated: a new token is in place",
            Resolution::ValidAgain => "valid again",
            Resolution::Recovered => "recovered",
            Resolution::Removed => "removed from the inventory",
            Resolution::Superseded => "superseded",
        }
    }
}

/// One condition of one token, from start to resolution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    pub token: String,
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    pub level: Level,
    pub status: Status,
    pub detail: String,
    pub started_at: Timestamp,
    /// The last change of level.
    pub changed_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// The token-family alert this one took over from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<EventKind>,
    /// The secret's fingerprint and the expiry when the alert started: a resolution compares
    /// them with the token's to tell a renewal from a rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_expires_at: Option<Timestamp>,
    /// The latest facts about the token.
    pub token_view: TokenSnapshot,
    /// Whether the routes have been applied to the alert yet: targets found then count from
    /// the alert's start, targets a later route change adds count from that change.
    #[serde(default)]
    pub routed: bool,
    /// What each target was told, by target id.
    #[serde(default)]
    pub deliveries: BTreeMap<String, Delivery>,
}

impl Alert {
    pub(super) fn same_condition(&self, kind: EventKind, policy: &Option<String>) -> bool {
        self.kind == kind && &self.policy == policy
    }
}

/// What one target was told about one alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub target: Target,
    #[serde(with = "secs")]
    pub repeat_interval: Duration,
    /// When a route first sent the alert to this target.
    pub attached_at: Timestamp,
    /// False when the routes no longer send the alert here: no reminders, but the
    /// resolution still goes to whoever heard about the alert.
    pub routed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sent_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_level: Option<Level>,
    #[serde(default)]
    pub resolved_sent: bool,
    /// The message that first announced the alert here (Slack `ts`, email Message-ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<String>,
}

/// What a message says about one alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// First message about the alert to this target.
    New,
    /// The level changed since the last message (warning became critical, or back).
    Changed,
    /// Still firing, `repeat_interval` after the last message.
    Reminder,
    Resolved,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Changed => "changed",
            Change::Reminder => "reminder",
            Change::Resolved => "resolved",
        }
    }

    pub fn is_firing(self) -> bool {
        self != Change::Resolved
    }
}

/// One alert in one message: a copy of what is needed to render it, so a message sent again
/// after a restart says what it said the first time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub alert_id: String,
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    pub level: Level,
    pub change: Change,
    /// For `changed`: the level the target last heard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_level: Option<Level>,
    pub detail: String,
    pub started_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<EventKind>,
    pub token: TokenSnapshot,
}

/// One message of a batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Stable across re-sends: `<batch id>.<index>`.
    pub id: String,
    pub items: Vec<Item>,
    /// Anchors this message replies to (a resolution under its alert's first message).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reply_to: Vec<String>,
    #[serde(default)]
    pub sent: bool,
}

/// What is (being) sent to one target at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub id: String,
    pub target: Target,
    pub planned_at: Timestamp,
    pub messages: Vec<Message>,
}

/// One token as the service sees it at an evaluation.
#[derive(Clone, Debug)]
pub struct Observation {
    pub token: String,
    /// `None` before the token's first probe: its alerts are kept as they are.
    pub derived: Option<Derived>,
    pub snapshot: TokenSnapshot,
}
