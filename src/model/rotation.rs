//! What a person, a scrape or a notification may know about a token's rotation: the step it
//! is at, when it last succeeded or failed, when the next one is planned. Neutral values,
//! set by the `rotate` stage and kept in the store. Never a token value.

use jiff::Timestamp;
use serde::Serialize;

/// The steps of a rotation, modelled on AWS Secrets Manager's four (create, set, test,
/// finish). The strings are a contract: the JSON API and logs name them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Nothing in progress.
    #[default]
    Idle,
    /// The provider was asked for a new value (or a renewal); its answer is not recorded yet.
    Creating,
    /// The provider issued the new value; it is in the state file, not yet delivered.
    Issued,
    /// The new value is where its consumers (and the token's own secret source) read it.
    Delivered,
    /// The provider accepted the new value.
    Tested,
    /// A crash left a non-repeatable provider call without its answer: repeating it with
    /// the old value could revoke the new one, so only an operator resumes it.
    Interrupted,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Idle => "idle",
            Step::Creating => "creating",
            Step::Issued => "issued",
            Step::Delivered => "delivered",
            Step::Tested => "tested",
            Step::Interrupted => "interrupted",
        }
    }
}

/// How the last rotation attempt ended. Label values of `api_token_rotations_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RotationResult {
    Success,
    Failure,
    DryRun,
}

impl RotationResult {
    pub const ALL: [RotationResult; 3] = [
        RotationResult::Success,
        RotationResult::Failure,
        RotationResult::DryRun,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RotationResult::Success => "success",
            RotationResult::Failure => "failure",
            RotationResult::DryRun => "dry_run",
        }
    }
}

/// A token's rotation as the views show it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RotationStatus {
    /// The rotator's kind (`vault_renew`, `oauth2_refresh`).
    pub rotator: &'static str,
    pub dry_run: bool,
    pub step: Step,
    /// When the next rotation is planned (the expiry minus `before`); `None` while the
    /// expiry is unknown or a rotation is in progress.
    pub next_at: Option<Timestamp>,
    pub last_success_at: Option<Timestamp>,
    pub last_failure_at: Option<Timestamp>,
    /// Consecutive failed attempts; 0 after a success.
    pub failures: u32,
    /// Why the last attempt failed, in fixed words (never a provider's free text or a value).
    pub last_error: Option<String>,
    /// Attempts since the exporter started, by result (counters for `/metrics`).
    #[serde(skip)]
    pub counts: [u64; 3],
}

impl RotationStatus {
    /// True while the last attempt failed (what the `ApiTokenRotationFailing` alert reads).
    pub fn failing(&self) -> bool {
        self.failures > 0 || self.step == Step::Interrupted
    }

    pub fn count(&self, result: RotationResult) -> u64 {
        self.counts[result as usize]
    }
}
