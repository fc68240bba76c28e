//! The notification state machine. Pure: every step takes `now` (or the time a receiver
//! acknowledged a message) as an argument, and the whole state is one serializable value
//! that the service writes to `--storage.path` after every change.
//!
//! An *alert* is one condition of one token (see [`crate::notify::event`]) from the moment it
//! starts firing until it is resolved. For every *target* (a receiver, or an owner's address
//! on an email receiver) the alert remembers what was sent: when, at which level, whether the
//! resolution went out, and the *anchor* of the first message (Slack `ts`, email Message-ID)
//! that resolutions thread under.
//!
//! Per target, at `now`:
//!
//! - a new alert is *ready* when it starts (or when a route first sends it to the target) and
//!   *due* `group_wait` later; a level change and a resolution likewise;
//! - a reminder is ready and due `repeat_interval` after the last message about the alert;
//! - when anything is due, one batch takes everything that is ready, so alerts that start
//!   close together, and their later reminders, travel together.
//!
//! A batch is the intent to send: it is stored in the state (the *outbox*) before anything is
//! sent, and each of its messages is marked sent when its receiver acknowledged it. After a
//! restart the outbox is sent again, so a message is delivered at least once; a target has
//! at most one batch in flight, which bounds what a crash can duplicate to that batch.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

use crate::notify::event::{Derived, EventKind, FamilyBasis, TokenSnapshot};
use crate::notify::route::{Routing, Target};

mod state;
pub use state::*;

/// The state machine around a [`NotifyState`].
#[derive(Clone, Debug, Default)]
pub struct Engine {
    pub state: NotifyState,
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

fn short_hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What one target is owed about one alert, and when (without copying the alert).
struct Owed<'a> {
    alert: &'a Alert,
    delivery: &'a Delivery,
    change: Change,
    ready: Timestamp,
    due: Timestamp,
}

impl Owed<'_> {
    fn pending(&self) -> Pending {
        let (a, d) = (self.alert, self.delivery);
        Pending {
            item: Item {
                alert_id: a.id.clone(),
                kind: a.kind,
                policy: a.policy.clone(),
                level: a.level,
                change: self.change,
                previous_level: if self.change == Change::Changed {
                    d.sent_level
                } else {
                    None
                },
                detail: a.detail.clone(),
                started_at: a.started_at,
                resolved_at: a.resolved_at,
                resolution: a.resolution,
                supersedes: a.supersedes,
                token: a.token_view.clone(),
            },
            anchor: d.anchor.clone(),
        }
    }
}

/// An item on its way into a message, with the anchor of its alert at the target.
struct Pending {
    item: Item,
    anchor: Option<String>,
}

impl Engine {
    pub fn new(mut state: NotifyState) -> Self {
        state.version = STATE_VERSION;
        Engine { state }
    }

    /// Takes in the tokens' conditions at `now`: starts, changes and resolves alerts.
    /// Returns true when something that must survive a restart changed.
    pub fn observe(&mut self, now: Timestamp, observations: &[Observation]) -> bool {
        self.observe_holding(now, observations, &|_| false)
    }

    /// [`Engine::observe`], where a token absent from `observations` for which `held` is true
    /// is not taken as removed: its alerts and memory stay as they are (a discovered token
    /// whose source has not listed since the start).
    pub fn observe_holding(
        &mut self,
        now: Timestamp,
        observations: &[Observation],
        held: &dyn Fn(&str) -> bool,
    ) -> bool {
        let mut changed = false;
        let present: BTreeSet<&str> = observations.iter().map(|o| o.token.as_str()).collect();
        // The alerts of each token, so a token's evaluation touches its own alerts only.
        let mut by_token: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for a in self.state.alerts.values_mut() {
            if a.status == Status::Firing
                && !present.contains(a.token.as_str())
                && !held(a.token.as_str())
            {
                a.status = Status::Resolved;
                a.resolved_at = Some(now);
                a.resolution = Some(Resolution::Removed);
                changed = true;
            }
            by_token
                .entry(a.token.clone())
                .or_default()
                .push(a.id.clone());
        }
        let before = self.state.tokens.len();
        self.state
            .tokens
            .retain(|name, _| present.contains(name.as_str()) || held(name.as_str()));
        changed |= self.state.tokens.len() != before;

        for o in observations {
            let Some(derived) = &o.derived else {
                continue;
            };
            let ids = by_token.remove(&o.token).unwrap_or_default();
            changed |= self.observe_token(now, o, derived, &ids);
        }
        changed
    }

    /// One token's conditions against its alerts (`ids`).
    fn observe_token(
        &mut self,
        now: Timestamp,
        o: &Observation,
        d: &Derived,
        ids: &[String],
    ) -> bool {
        let mut changed = false;
        let invalid_firing = ids
            .iter()
            .filter_map(|id| self.state.alerts.get(id))
            .any(|a| a.status == Status::Firing && a.kind == EventKind::Invalid);
        // Whether this evaluation may touch the token family at all.
        let family_open = match d.basis {
            FamilyBasis::Verdict => true,
            FamilyBasis::ExpiryOnly => !invalid_firing,
            FamilyBasis::Unknown => false,
        };
        let new_family = d
            .conditions
            .iter()
            .find(|c| c.kind.is_token_family())
            .map(|c| c.kind)
            .filter(|_| family_open);
        let refresh = |view: &mut TokenSnapshot| {
            if *view != o.snapshot {
                *view = o.snapshot.clone();
            }
        };

        // Continue or resolve what fires.
        let mut superseded = None;
        for id in ids {
            let Some(a) = self.state.alerts.get_mut(id) else {
                continue;
            };
            if a.status != Status::Firing {
                continue;
            }
            if a.kind.is_token_family() && !family_open {
                refresh(&mut a.token_view);
                continue;
            }
            match d
                .conditions
                .iter()
                .find(|c| a.same_condition(c.kind, &c.policy))
            {
                Some(c) => {
                    if c.level != a.level {
                        a.level = c.level;
                        a.changed_at = now;
                        changed = true;
                    }
                    if a.detail != c.detail {
                        a.detail = c.detail.clone();
                    }
                    refresh(&mut a.token_view);
                }
                None => {
                    let resolution = if a.kind.is_token_family() && new_family.is_some() {
                        superseded = Some(a.kind);
                        Resolution::Superseded
                    } else {
                        cause(a, &o.snapshot)
                    };
                    a.status = Status::Resolved;
                    a.resolved_at = Some(now);
                    a.resolution = Some(resolution);
                    refresh(&mut a.token_view);
                    changed = true;
                }
            }
        }

        // Start what is new (or reopen what resolved a moment ago without anyone hearing).
        for c in &d.conditions {
            if c.kind.is_token_family() && !family_open {
                continue;
            }
            let mine = || ids.iter().filter_map(|id| self.state.alerts.get(id));
            let firing =
                mine().any(|a| a.status == Status::Firing && a.same_condition(c.kind, &c.policy));
            if firing {
                continue;
            }
            let reopen = mine()
                .filter(|a| {
                    a.status == Status::Resolved
                        && a.resolution != Some(Resolution::Superseded)
                        && a.same_condition(c.kind, &c.policy)
                })
                .map(|a| a.id.clone())
                .find(|id| !self.resolution_announced(id));
            changed = true;
            if let Some(id) = reopen {
                let a = self.state.alerts.get_mut(&id).expect("found above");
                a.status = Status::Firing;
                a.resolved_at = None;
                a.resolution = None;
                if a.level != c.level {
                    a.level = c.level;
                    a.changed_at = now;
                }
                a.detail = c.detail.clone();
                a.token_view = o.snapshot.clone();
                continue;
            }
            self.state.seq += 1;
            let id = short_hash(&[
                &o.token,
                c.kind.as_str(),
                c.policy.as_deref().unwrap_or(""),
                &now.as_nanosecond().to_string(),
                &self.state.seq.to_string(),
            ]);
            self.state.alerts.insert(
                id.clone(),
                Alert {
                    id,
                    token: o.token.clone(),
                    kind: c.kind,
                    policy: c.policy.clone(),
                    level: c.level,
                    status: Status::Firing,
                    detail: c.detail.clone(),
                    started_at: now,
                    changed_at: now,
                    resolved_at: None,
                    resolution: None,
                    supersedes: if c.kind.is_token_family() {
                        superseded
                    } else {
                        None
                    },
                    start_fingerprint: o.snapshot.fingerprint.clone(),
                    start_expires_at: o.snapshot.expires_at,
                    token_view: o.snapshot.clone(),
                    routed: false,
                    deliveries: BTreeMap::new(),
                },
            );
        }
        changed
    }

    /// Whether any target heard, or is being told, that the alert resolved.
    fn resolution_announced(&self, id: &str) -> bool {
        let Some(a) = self.state.alerts.get(id) else {
            return false;
        };
        a.deliveries.values().any(|d| d.resolved_sent)
            || self.state.outbox.values().any(|b| {
                b.messages.iter().any(|m| {
                    m.items
                        .iter()
                        .any(|i| i.alert_id == id && i.change == Change::Resolved)
                })
            })
    }

    /// Updates each firing alert's targets from the routes, then returns a batch for every
    /// idle target that has something due at `now`; the batches are in the outbox when this
    /// returns, and the caller must persist the state before sending them.
    pub fn plan(&mut self, now: Timestamp, routing: &Routing, group_wait: Duration) -> Vec<Batch> {
        self.route(now, routing);
        // Items are copied only for the targets that get a batch now.
        let planned: Vec<(String, Target, Vec<Pending>)> = self
            .owed(routing, group_wait)
            .into_iter()
            .filter(|(_, owed)| owed.iter().any(|o| o.due <= now))
            .map(|(target_id, owed)| {
                let target = owed[0].delivery.target.clone();
                let ready = owed
                    .iter()
                    .filter(|o| o.ready <= now)
                    .map(Owed::pending)
                    .collect();
                (target_id.to_string(), target, ready)
            })
            .collect();
        let mut batches = Vec::new();
        for (target_id, target, mut ready) in planned {
            // Most urgent first, then by token, so messages read the same way every time.
            ready.sort_by_key(|p| {
                (
                    p.item.change == Change::Resolved,
                    std::cmp::Reverse(p.item.level),
                    p.item.token.token.clone(),
                    p.item.kind,
                )
            });
            self.state.seq += 1;
            let ids: Vec<&str> = ready.iter().map(|p| p.item.alert_id.as_str()).collect();
            let batch_id = short_hash(&[
                &target_id,
                &now.as_nanosecond().to_string(),
                &self.state.seq.to_string(),
                &ids.join(","),
            ]);
            let threads = routing.traits(&target.receiver).is_some_and(|t| t.threads);
            let messages = split(&batch_id, ready, threads);
            let batch = Batch {
                id: batch_id,
                target,
                planned_at: now,
                messages,
            };
            self.state.outbox.insert(target_id, batch.clone());
            batches.push(batch);
        }
        self.collect_garbage(routing);
        batches
    }

    /// When the next batch falls due (for the service's sleep, and for tests).
    pub fn next_due(&self, routing: &Routing, group_wait: Duration) -> Option<Timestamp> {
        self.owed(routing, group_wait)
            .values()
            .flat_map(|owed| owed.iter().map(|o| o.due))
            .min()
    }

    fn route(&mut self, now: Timestamp, routing: &Routing) {
        for a in self.state.alerts.values_mut() {
            a.deliveries
                .retain(|_, d| routing.traits(&d.target.receiver).is_some());
            if a.status != Status::Firing {
                continue;
            }
            let routed = routing.route(&a.token_view, a.kind, a.level);
            for d in a.deliveries.values_mut() {
                d.routed = false;
            }
            let attached_at = if a.routed { now } else { a.started_at };
            a.routed = true;
            for r in routed {
                let d = a
                    .deliveries
                    .entry(r.target.id())
                    .or_insert_with(|| Delivery {
                        target: r.target.clone(),
                        repeat_interval: r.repeat_interval,
                        attached_at,
                        routed: true,
                        last_sent_at: None,
                        sent_level: None,
                        resolved_sent: false,
                        anchor: None,
                    });
                d.routed = true;
                d.repeat_interval = r.repeat_interval;
            }
        }
    }

    /// Everything owed to idle targets, by target id, with when it is ready and due.
    fn owed(&self, routing: &Routing, group_wait: Duration) -> BTreeMap<&str, Vec<Owed<'_>>> {
        let mut out: BTreeMap<&str, Vec<Owed<'_>>> = BTreeMap::new();
        for a in self.state.alerts.values() {
            for (target_id, d) in &a.deliveries {
                if self.state.outbox.contains_key(target_id) {
                    continue;
                }
                let Some(traits) = routing.traits(&d.target.receiver) else {
                    continue;
                };
                let (change, ready, due) = match (a.status, d.last_sent_at) {
                    (Status::Firing, _) if !d.routed => continue,
                    (Status::Firing, None) => {
                        let ready = a.started_at.max(d.attached_at);
                        (Change::New, ready, add(ready, group_wait))
                    }
                    (Status::Firing, Some(_)) if d.sent_level != Some(a.level) => {
                        (Change::Changed, a.changed_at, add(a.changed_at, group_wait))
                    }
                    (Status::Firing, Some(last)) => {
                        let at = add(last, d.repeat_interval);
                        (Change::Reminder, at, at)
                    }
                    (Status::Resolved, None) => continue,
                    (Status::Resolved, Some(_)) => {
                        if d.resolved_sent
                            || (a.resolution == Some(Resolution::Superseded)
                                && !traits.keeps_alerts)
                        {
                            continue;
                        }
                        let at = a.resolved_at.unwrap_or(a.changed_at);
                        (Change::Resolved, at, add(at, group_wait))
                    }
                };
                out.entry(target_id.as_str()).or_default().push(Owed {
                    alert: a,
                    delivery: d,
                    change,
                    ready,
                    due,
                });
            }
        }
        out
    }

    /// Records that a receiver acknowledged message `index` of the batch in flight to
    /// `target_id`, at `at`, with the anchor it returned. Returns true when the state changed.
    pub fn sent(
        &mut self,
        target_id: &str,
        batch_id: &str,
        index: usize,
        anchor: Option<String>,
        at: Timestamp,
    ) -> bool {
        let Some(batch) = self.state.outbox.get_mut(target_id) else {
            return false;
        };
        if batch.id != batch_id {
            return false;
        }
        let Some(message) = batch.messages.get_mut(index) else {
            return false;
        };
        if message.sent {
            return false;
        }
        message.sent = true;
        let items = message.items.clone();
        if batch.messages.iter().all(|m| m.sent) {
            self.state.outbox.remove(target_id);
        }
        for item in items {
            let Some(d) = self
                .state
                .alerts
                .get_mut(&item.alert_id)
                .and_then(|a| a.deliveries.get_mut(target_id))
            else {
                continue;
            };
            if item.change.is_firing() {
                d.last_sent_at = Some(at);
                d.sent_level = Some(item.level);
                if d.anchor.is_none() {
                    d.anchor = anchor.clone();
                }
            } else {
                d.resolved_sent = true;
            }
        }
        true
    }

    /// The batches to send again after a restart (or to a rebuilt receiver).
    pub fn in_flight(&self) -> Vec<Batch> {
        self.state.outbox.values().cloned().collect()
    }

    /// Forgets the batches of receivers that no longer exist.
    pub fn drop_unknown_receivers(&mut self, routing: &Routing) -> bool {
        let before = self.state.outbox.len();
        self.state
            .outbox
            .retain(|_, b| routing.traits(&b.target.receiver).is_some());
        before != self.state.outbox.len()
    }

    /// Drops resolved alerts that nobody is owed a message about.
    fn collect_garbage(&mut self, routing: &Routing) {
        let referenced: BTreeSet<String> = self
            .state
            .outbox
            .values()
            .flat_map(|b| b.messages.iter().flat_map(|m| m.items.iter()))
            .map(|i| i.alert_id.clone())
            .collect();
        self.state.alerts.retain(|id, a| {
            if a.status == Status::Firing || referenced.contains(id) {
                return true;
            }
            a.deliveries.values().any(|d| {
                let keeps = routing
                    .traits(&d.target.receiver)
                    .is_some_and(|t| t.keeps_alerts);
                d.last_sent_at.is_some()
                    && !d.resolved_sent
                    && (a.resolution != Some(Resolution::Superseded) || keeps)
            })
        });
    }
}

/// Why an alert resolved, from the token as it is now.
fn cause(a: &Alert, now: &TokenSnapshot) -> Resolution {
    if !a.kind.is_token_family() {
        return Resolution::Recovered;
    }
    match (&a.start_fingerprint, &now.fingerprint) {
        (Some(old), Some(new)) if old != new => return Resolution::Rotated,
        _ => {}
    }
    let later = match (a.start_expires_at, now.expires_at) {
        (Some(old), Some(new)) => new > old,
        (Some(_), None) => now.never_expires,
        _ => false,
    };
    if later {
        Resolution::Renewed
    } else {
        Resolution::ValidAgain
    }
}

/// Splits a batch into messages. Receivers that thread get the firing items in one message
/// and each group of resolutions as a reply to the message that announced them; others get
/// one message.
fn split(batch_id: &str, items: Vec<Pending>, threads: bool) -> Vec<Message> {
    let mut groups: Vec<(Vec<String>, Vec<Item>)> = Vec::new();
    if threads {
        let mut firing = Vec::new();
        // In the order of the items, so the first reply is about the most urgent alert.
        let mut replies: Vec<(Option<String>, Vec<Item>)> = Vec::new();
        for p in items {
            if p.item.change.is_firing() {
                firing.push(p.item);
            } else if let Some(group) = replies.iter_mut().find(|(a, _)| *a == p.anchor) {
                group.1.push(p.item);
            } else {
                replies.push((p.anchor, vec![p.item]));
            }
        }
        if !firing.is_empty() {
            groups.push((Vec::new(), firing));
        }
        for (anchor, items) in replies {
            groups.push((anchor.into_iter().collect(), items));
        }
    } else {
        groups.push((Vec::new(), items.into_iter().map(|p| p.item).collect()));
    }
    groups
        .into_iter()
        .enumerate()
        .map(|(i, (reply_to, items))| Message {
            id: format!("{batch_id}.{i}"),
            items,
            reply_to,
            sent: false,
        })
        .collect()
}

/// Durations as whole seconds in the state file.
mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

#[cfg(test)]
mod tests;
