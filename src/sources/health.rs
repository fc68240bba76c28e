//! Each source's health, for `/metrics`: up, tokens found, last success, how long the last
//! listing took, failures per reason and tokens left out per reason. Written by the listing
//! task, read by a scrape; a few series per source.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use super::{FailReason, Left, ListError, Listing};

/// One source's health.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceHealth {
    pub kind: &'static str,
    /// Whether the last listing was complete.
    pub up: bool,
    /// Whether the source has listed at all since it was configured.
    pub listed: bool,
    /// Tokens in the last good listing, after the filters.
    pub found: u64,
    /// When the last good listing ended (Unix seconds).
    pub last_success: Option<i64>,
    pub last_duration: Duration,
    /// Failed listings per reason, since the exporter started.
    pub failures: BTreeMap<FailReason, u64>,
    /// Tokens listed but not entered, per reason, in the last good listing.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Tokens of that listing the last compose left out (already configured, name taken).
    pub left: BTreeMap<&'static str, u64>,
    /// Entries of a source with `rotate:` that the block does not apply to, per reason
    /// (`no_value`, `rotator_unfit`): watched, never rotated (`sources::rotate`).
    pub not_rotated: BTreeMap<&'static str, u64>,
}

impl SourceHealth {
    /// Tokens of the last good listing that are inventory entries.
    pub fn tokens(&self) -> u64 {
        self.found.saturating_sub(self.left.values().sum())
    }

    /// Tokens listed but not entries, per reason.
    pub fn not_entered(&self) -> BTreeMap<&'static str, u64> {
        let mut all = self.skipped.clone();
        for (why, n) in &self.left {
            *all.entry(why).or_default() += n;
        }
        all
    }
}

/// Every source's health, shared by the listing tasks and `/metrics`.
#[derive(Debug, Default)]
pub struct Health(Mutex<BTreeMap<String, SourceHealth>>);

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, SourceHealth>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps the sources of a new config (their counters too), adds new ones, drops the rest.
    pub fn configure<'a>(&self, sources: impl IntoIterator<Item = (&'a str, &'static str)>) {
        let mut map = self.lock();
        let mut next = BTreeMap::new();
        for (name, kind) in sources {
            let h = map
                .remove(name)
                .filter(|h| h.kind == kind)
                .unwrap_or_else(|| SourceHealth {
                    kind,
                    ..SourceHealth::default()
                });
            next.insert(name.to_string(), h);
        }
        *map = next;
    }

    /// Records a listing's end.
    pub fn record(
        &self,
        name: &str,
        result: Result<&Listing, &ListError>,
        took: Duration,
        now: i64,
    ) {
        let mut map = self.lock();
        let Some(h) = map.get_mut(name) else {
            return;
        };
        h.last_duration = took;
        h.listed = true;
        match result {
            Ok(listing) => {
                h.up = true;
                h.last_success = Some(now);
                h.found = listing.tokens.len() as u64;
                h.skipped = listing.skipped.clone();
            }
            Err(e) => {
                h.up = false;
                *h.failures.entry(e.reason).or_default() += 1;
            }
        }
    }

    /// Takes in what the last compose left out of each source (replacing the previous).
    pub fn composed(&self, left: &Left) {
        for (name, h) in self.lock().iter_mut() {
            h.left = left.get(name).cloned().unwrap_or_default();
        }
    }

    /// Takes in the last compose's rotation notes (replacing the previous ones).
    pub fn not_rotated(&self, notes: &super::rotate::Notes) {
        for (name, h) in self.lock().iter_mut() {
            let mut counts = BTreeMap::new();
            for n in notes.get(name).into_iter().flatten() {
                *counts.entry(n.reason).or_default() += 1;
            }
            h.not_rotated = counts;
        }
    }

    /// The sources without a good listing since this process started: their tokens are not
    /// in the inventory yet, which says nothing about whether they still exist.
    pub fn unlisted(&self) -> std::collections::BTreeSet<String> {
        self.lock()
            .iter()
            .filter(|(_, h)| h.last_success.is_none())
            .map(|(name, _)| name.clone())
            .collect()
    }

    pub fn snapshot(&self) -> BTreeMap<String, SourceHealth> {
        self.lock().clone()
    }
}
