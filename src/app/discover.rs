//! The daemon's inventory sources: one task per source lists it every `refresh`; one task
//! keeps every source's last good listing and hands the scheduler the configured tokens
//! plus the listed ones (`sources::compose`), as a reload of its token set.
//!
//! A failed listing changes nothing in the inventory: it is counted in the source's health
//! and logged, and the last good listing stays until a complete one replaces it. A config
//! reload goes through here too, so a reload and a listing can never hand the scheduler two
//! different ideas of the inventory.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::app::shard::Shard;
use crate::config::Config;
use crate::config::sources::SourceSpec;
use crate::probe::scheduler::{Inventory, SchedulerHandle};
use crate::provider::BuildContext;
use crate::sources::health::Health;
use crate::sources::{self, ListError, Listing};

/// Handle to the discovery task.
#[derive(Clone)]
pub struct DiscoveryHandle {
    commands: mpsc::Sender<Command>,
}

enum Command {
    /// A new configured inventory (start, or a config reload).
    Reload(Inventory, oneshot::Sender<()>),
    /// A source's listing ended.
    Listed {
        source: String,
        generation: u64,
        result: Result<Listing, ListError>,
        took: Duration,
    },
}

impl DiscoveryHandle {
    /// Takes a new configured inventory: sources are listed again, the inventory the
    /// scheduler runs is the new one plus the listings of sources that did not change.
    pub async fn reload(&self, inventory: Inventory) {
        let (tx, rx) = oneshot::channel();
        if self
            .commands
            .send(Command::Reload(inventory, tx))
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
    }
}

/// Starts listing `inventory`'s sources. With none it only passes reloads on.
pub fn spawn(
    scheduler: SchedulerHandle,
    inventory: Inventory,
    shard: Shard,
    ctx: BuildContext,
    health: Arc<Health>,
    rotation: tokio::sync::watch::Sender<Inventory>,
) -> DiscoveryHandle {
    let (tx, rx) = mpsc::channel(64);
    let handle = DiscoveryHandle {
        commands: tx.clone(),
    };
    let mut d = Discovery {
        scheduler,
        base: inventory,
        shard,
        ctx,
        health,
        rotation,
        notes: sources::rotate::Notes::new(),
        listings: BTreeMap::new(),
        tasks: BTreeMap::new(),
        generation: 0,
        reports: tx,
    };
    d.start_sources(&BTreeMap::new());
    tokio::spawn(d.run(rx));
    handle
}

struct Discovery {
    scheduler: SchedulerHandle,
    /// The configured inventory, this shard's tokens.
    base: Inventory,
    shard: Shard,
    ctx: BuildContext,
    health: Arc<Health>,
    /// The rotation task's inventory: configured tokens plus the listed ones, whose
    /// rotations come from their source's `rotate:` (`sources::rotate`).
    rotation: tokio::sync::watch::Sender<Inventory>,
    /// The last compose's listed tokens that are not rotated, to log each change once.
    notes: sources::rotate::Notes,
    /// Each source's last good listing.
    listings: BTreeMap<String, Listing>,
    /// Each source's listing task and its generation (a report from an older one is dropped).
    tasks: BTreeMap<String, (u64, JoinHandle<()>)>,
    generation: u64,
    reports: mpsc::Sender<Command>,
}

impl Discovery {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        while let Some(cmd) = commands.recv().await {
            match cmd {
                Command::Reload(inventory, ack) => {
                    let old: BTreeMap<String, Arc<SourceSpec>> = self
                        .base
                        .config
                        .sources
                        .iter()
                        .map(|s| (s.name.clone(), s.clone()))
                        .collect();
                    self.base = inventory;
                    self.start_sources(&old);
                    self.apply().await;
                    let _ = ack.send(());
                }
                Command::Listed {
                    source,
                    generation,
                    result,
                    took,
                } => {
                    if self.tasks.get(&source).map(|t| t.0) != Some(generation) {
                        continue;
                    }
                    let now = jiff::Timestamp::now().as_second();
                    self.health.record(&source, result.as_ref(), took, now);
                    match result {
                        Ok(mut listing) => {
                            // Kept until the next listing: not the room a growing list left.
                            listing.tokens.shrink_to_fit();
                            if self.listings.get(&source) != Some(&listing) {
                                tracing::info!(
                                    source = %source,
                                    tokens = listing.tokens.len(),
                                    "source listed"
                                );
                                self.listings.insert(source, listing);
                                self.apply().await;
                            }
                        }
                        Err(e) => tracing::warn!(
                            source = %source,
                            reason = e.reason.as_str(),
                            detail = %e.detail,
                            "source listing failed; its last good listing stays in the inventory"
                        ),
                    }
                }
            }
        }
    }

    /// (Re)starts a listing task per source of the base config. A source whose spec is
    /// the same as in `old` keeps its last listing until the new task reports.
    fn start_sources(&mut self, old: &BTreeMap<String, Arc<SourceSpec>>) {
        for (_, (_, task)) in std::mem::take(&mut self.tasks) {
            task.abort();
        }
        let config = self.base.config.clone();
        self.listings.retain(|name, _| {
            let now = config.sources.iter().find(|s| &s.name == name);
            now.is_some_and(|s| old.get(name).is_some_and(|o| o == s))
        });
        self.health.configure(
            config
                .sources
                .iter()
                .map(|s| (s.name.as_str(), s.kind.as_str())),
        );
        for spec in &config.sources {
            self.generation += 1;
            let task = tokio::spawn(list_forever(
                spec.clone(),
                config.clone(),
                self.ctx.clone(),
                self.generation,
                self.reports.clone(),
            ));
            self.tasks
                .insert(spec.name.clone(), (self.generation, task));
        }
    }

    /// Hands the scheduler the configured tokens plus every source's last good listing.
    async fn apply(&mut self) {
        let (mut config, left, notes) = sources::compose_noted(&self.base.config, &self.listings);
        config
            .tokens
            .retain(|t| t.source.is_none() || self.shard.owns(&t.name));
        let kept: std::collections::HashSet<&str> =
            config.tokens.iter().map(|t| t.name.as_str()).collect();
        config
            .rotations
            .retain(|name, _| kept.contains(name.as_str()));
        Arc::make_mut(&mut config.rotation_keys).retain(|name, _| kept.contains(name.as_str()));
        drop(kept);
        self.health.composed(&left);
        self.health.not_rotated(&notes);
        let known: std::collections::HashSet<(&str, &str, &str)> = self
            .notes
            .values()
            .flatten()
            .map(|n| (n.token.as_str(), n.reason, n.detail.as_str()))
            .collect();
        for note in notes.values().flatten() {
            if !known.contains(&(note.token.as_str(), note.reason, note.detail.as_str())) {
                tracing::warn!(
                    token = %note.token,
                    reason = note.reason,
                    detail = %note.detail,
                    "the source's rotate: does not apply to this token: it is watched, not rotated"
                );
            }
        }
        drop(known);
        self.notes = notes;
        let inventory = Inventory {
            config: Arc::new(config),
            providers: self.base.providers.clone(),
        };
        self.rotation.send_replace(inventory.clone());
        self.scheduler.reload(inventory).await;
    }
}

/// Lists one source now and then every `refresh`, reporting each listing.
async fn list_forever(
    spec: Arc<SourceSpec>,
    config: Arc<Config>,
    ctx: BuildContext,
    generation: u64,
    reports: mpsc::Sender<Command>,
) {
    loop {
        let started = Instant::now();
        let result = sources::list(&spec, &config, &ctx).await;
        // A provider that asked for a longer wait gets it: listing sooner would be refused again.
        let wait = match &result {
            Err(e) => e.retry_after.map_or(spec.refresh, |w| w.max(spec.refresh)),
            Ok(_) => spec.refresh,
        };
        let report = Command::Listed {
            source: spec.name.clone(),
            generation,
            result,
            took: started.elapsed(),
        };
        if reports.send(report).await.is_err() {
            return;
        }
        tokio::time::sleep(wait).await;
    }
}
