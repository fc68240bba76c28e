//! The rotation state machine: pure. What each token's record in `rotation.json` holds, what
//! to do next from it, when a rotation is due, and the waits after failures. The service
//! (`rotate::service`) saves the record BEFORE each external step it then takes, so a crash
//! at any point resumes from the last saved step:
//!
//! ```text
//! idle --begin--> creating --issued--> issued --delivered--> delivered --tested--> tested --finished--> idle
//!                    |  (crash: repeat only if the call is idempotent, else interrupted)
//! ```
//!
//! A value the provider issued is in the record from `issued` until `finished`, so it is
//! never lost: delivery and the test are repeated from it, and the provider is never asked
//! again with the old value.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::rotation::{RotationResult, RotationStatus, Step};
use crate::model::{Expiry, TokenFacts};
use crate::schema::rotate::When;

/// `rotation.json`: every rotating token's record, by name; a discovered token's by its
/// identity (`discovered`), so its record outlives a listing that leaves it out, or a
/// renamed source, and it resumes where it stopped when it is listed again.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RotationFile {
    #[serde(default)]
    pub tokens: BTreeMap<String, Record>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub discovered: BTreeMap<String, Record>,
}

impl RotationFile {
    /// The record of token `name`, kept under `identity` when it is a discovered token.
    pub fn record(&self, name: &str, identity: Option<&str>) -> Option<&Record> {
        match identity {
            Some(id) => self.discovered.get(id),
            None => self.tokens.get(name),
        }
    }

    pub fn put(&mut self, name: &str, identity: Option<&str>, record: Record) {
        match identity {
            Some(id) => self.discovered.insert(id.to_string(), record),
            None => self.tokens.insert(name.to_string(), record),
        };
    }
}

/// One token's rotation, as saved.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Record {
    pub step: Step,
    /// The fingerprint of the value in use when this rotation began.
    pub old_fingerprint: Option<String>,
    /// What the provider issued, from `issued` until `finished`.
    pub pending: Option<Pending>,
    pub started_at: Option<Timestamp>,
    /// Consecutive failures, for the backoff; 0 after a success.
    pub failures: u32,
    /// No new attempt before this (backoff after a failure).
    pub retry_at: Option<Timestamp>,
    pub last_success_at: Option<Timestamp>,
    pub last_failure_at: Option<Timestamp>,
    /// Fixed words: never a provider's text, never a value.
    pub last_error: Option<String>,
    /// An old credential still to delete at the provider (`aws_rotate`'s grace), kept
    /// after the rotation finished.
    pub retire: Option<Retire>,
}

/// An old credential to delete once `at` has passed. Its ID only: never a secret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Retire {
    pub key_id: String,
    pub at: Option<Timestamp>,
}

/// The new value(s) a provider issued. The state file holding them is mode 0600; `Debug`
/// never prints them.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// The new token value; `None` for a renewal (the value stays).
    pub value: Option<String>,
    /// A new refresh token (OAuth refresh-token rotation).
    pub refresh_token: Option<String>,
    /// The expiry the provider gave with it.
    pub expires_at: Option<Timestamp>,
    /// The provider's ID of the new credential (an AWS access key ID): not a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The ID of the credential it replaces, retired at finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_key_id: Option<String>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("value", &self.value.as_ref().map(|_| "<secret>"))
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<secret>"),
            )
            .field("expires_at", &self.expires_at)
            .field("key_id", &self.key_id)
            .field("old_key_id", &self.old_key_id)
            .finish()
    }
}

/// What the service does next for a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing now.
    Wait,
    /// Ask the provider for a new value (or a renewal).
    Create,
    /// Put the issued value where it goes.
    Deliver,
    /// Check the new value with the provider.
    Test,
    /// Retire the old value and clear the record.
    Finish,
    /// Record that a non-idempotent call was interrupted (see [`Step::Interrupted`]).
    Interrupt,
    /// Delete the old credential of a finished rotation ([`Record::retire`]).
    Retire,
}

/// The first wait after a failure; doubled per consecutive failure up to [`MAX_BACKOFF`].
pub const BASE_BACKOFF: Duration = Duration::from_secs(30);
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// The wait after the `failures`-th consecutive failure.
pub fn backoff(failures: u32) -> Duration {
    let factor = 1u64 << failures.saturating_sub(1).min(16);
    BASE_BACKOFF.saturating_mul(factor as u32).min(MAX_BACKOFF)
}

/// When `when` plans the rotation of a token whose facts are `facts`; `since` is the start
/// of its lifetime when the provider does not give one (the last rotation, or first sight).
/// `None` when the expiry is unknown or never.
pub fn planned_at(when: When, facts: &TokenFacts, since: Option<Timestamp>) -> Option<Timestamp> {
    if let When::MaxAge(age) = when {
        let start = facts.issued_at.or(since)?;
        return start
            .checked_add(jiff::SignedDuration::try_from(age).ok()?)
            .ok();
    }
    let Expiry::At(expires) = facts.expiry else {
        return None;
    };
    match when {
        When::Before(d) => expires
            .checked_sub(jiff::SignedDuration::try_from(d).ok()?)
            .ok(),
        When::MaxAge(_) => None,
        When::Fraction(f) => {
            let start = facts.issued_at.or(since)?;
            let life = expires.as_millisecond() - start.as_millisecond();
            if life <= 0 {
                return Some(expires);
            }
            let left = (life as f64 * f) as i64;
            Timestamp::from_millisecond(expires.as_millisecond() - left).ok()
        }
    }
}

/// What a token's observed state is: the facts of its last conclusive answer and when that
/// answer came.
pub struct Observed<'a> {
    pub facts: &'a TokenFacts,
    pub answered_at: Option<Timestamp>,
    pub first_seen: Option<Timestamp>,
}

impl Record {
    /// When the next rotation is planned, from the latest answer. After a rotation, nothing
    /// is planned until the provider has answered about the token again: the facts from
    /// before it still show the old expiry, and acting on them would rotate twice.
    pub fn next_at(&self, when: When, seen: &Observed) -> Option<Timestamp> {
        if self.step != Step::Idle {
            return None;
        }
        if let Some(done) = self.last_success_at
            && seen.answered_at.is_none_or(|a| a <= done)
        {
            return None;
        }
        let planned = planned_at(when, seen.facts, self.last_success_at.or(seen.first_seen))?;
        Some(match self.retry_at {
            Some(r) if r > planned => r,
            _ => planned,
        })
    }

    /// What to do now. `idempotent`: whether the rotator's provider call may be repeated
    /// after a crash; `forced`: an operator asked (`rotate --token`), which starts a rotation
    /// that is not due and resumes an interrupted one.
    pub fn action(
        &self,
        when: When,
        seen: &Observed,
        idempotent: bool,
        forced: bool,
        now: Timestamp,
    ) -> Action {
        let backing_off = !forced && self.retry_at.is_some_and(|r| r > now);
        match self.step {
            Step::Idle => {
                let due = forced || self.next_at(when, seen).is_some_and(|at| at <= now);
                match &self.retire {
                    // The old credential goes first: the next one may not fit beside it
                    // (IAM allows two keys per user).
                    Some(_) if backing_off => Action::Wait,
                    Some(r) if due || r.at.is_none_or(|at| at <= now) => Action::Retire,
                    _ if due => Action::Create,
                    _ => Action::Wait,
                }
            }
            Step::Creating if idempotent => Action::Create,
            Step::Creating => Action::Interrupt,
            Step::Interrupted if forced => Action::Create,
            Step::Interrupted => Action::Wait,
            _ if backing_off => Action::Wait,
            Step::Issued => Action::Deliver,
            Step::Delivered => Action::Test,
            Step::Tested => Action::Finish,
        }
    }

    /// Before the provider call: the step it will be resumed from.
    pub fn begin(&mut self, old_fingerprint: Option<String>, now: Timestamp) {
        self.step = Step::Creating;
        self.old_fingerprint = old_fingerprint;
        self.pending = None;
        self.started_at = Some(now);
    }

    /// The provider's answer, saved before anything is done with it.
    pub fn issued(&mut self, pending: Pending) {
        self.step = Step::Issued;
        self.pending = Some(pending);
    }

    /// A step that succeeds ends the wait a failure of it set: the next step follows at
    /// once (a forced run that delivered does not stop before the test).
    pub fn delivered(&mut self) {
        self.step = Step::Delivered;
        self.retry_at = None;
    }

    pub fn tested(&mut self) {
        self.step = Step::Tested;
        self.retry_at = None;
    }

    /// The old value retired: the rotation is over, the issued value no longer kept.
    pub fn finished(&mut self, now: Timestamp) {
        self.step = Step::Idle;
        self.pending = None;
        self.old_fingerprint = None;
        self.started_at = None;
        self.failures = 0;
        self.retry_at = None;
        self.last_error = None;
        self.last_success_at = Some(now);
    }

    /// A step failed. Creating falls back to idle (nothing was issued: the old value stays);
    /// a later step keeps the issued value and is retried after the backoff.
    pub fn failed(&mut self, error: &str, now: Timestamp) {
        if self.step == Step::Creating {
            self.step = Step::Idle;
            self.pending = None;
        }
        self.failures = self.failures.saturating_add(1);
        self.last_failure_at = Some(now);
        self.last_error = Some(error.to_string());
        let wait = jiff::SignedDuration::try_from(backoff(self.failures)).unwrap_or_default();
        self.retry_at = now.checked_add(wait).ok();
    }

    /// A non-repeatable call without its answer: stop until an operator resumes.
    pub fn interrupted(&mut self, now: Timestamp) {
        self.step = Step::Interrupted;
        self.failures = self.failures.saturating_add(1);
        self.last_failure_at = Some(now);
        self.last_error = Some(INTERRUPTED.to_string());
    }

    /// The status the views show, with the counters kept in memory.
    pub fn status(
        &self,
        rotator: &'static str,
        dry_run: bool,
        next_at: Option<Timestamp>,
        counts: [u64; 3],
    ) -> RotationStatus {
        RotationStatus {
            rotator,
            dry_run,
            step: self.step,
            next_at,
            last_success_at: self.last_success_at,
            last_failure_at: self.last_failure_at,
            failures: self.failures,
            last_error: self.last_error.clone(),
            counts,
        }
    }
}

pub const INTERRUPTED: &str = "interrupted while the provider was issuing a new value; not \
     repeated with the old value (it could revoke the new one): check the token, then run \
     `api-token-exporter rotate --token NAME`";

/// A global bound on how often rotations start: at most one per `gap`, over all tokens.
#[derive(Clone, Debug)]
pub struct Rate {
    gap: Duration,
    last: Option<Timestamp>,
}

/// The default gap between two rotations' starts.
pub const MIN_START_GAP: Duration = Duration::from_secs(2);

impl Rate {
    pub fn new(gap: Duration) -> Self {
        Rate { gap, last: None }
    }

    /// Takes a start at `now` if the gap since the last one has passed.
    pub fn take(&mut self, now: Timestamp) -> bool {
        let free = self.last.is_none_or(|last| {
            now.duration_since(last).as_millis() >= self.gap.as_millis() as i128
        });
        if free {
            self.last = Some(now);
        }
        free
    }
}

/// Index of a result in [`RotationStatus::counts`].
pub fn counted(counts: &mut [u64; 3], result: RotationResult) {
    counts[result as usize] += 1;
}

#[cfg(test)]
mod tests;
