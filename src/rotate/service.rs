//! The daemon's rotation task: once a second, every rotating token's status is published to
//! the store and what is due runs, one rotation at a time. It follows reloads through a
//! watch channel. Nothing is spawned when no token has a `rotate:` block.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::probe::scheduler::Inventory;
use crate::state::store::Store;

use super::Rotations;

/// How often the task looks at the rotating tokens.
pub const TICK: Duration = Duration::from_secs(1);

/// Starts the task; send each reloaded inventory to the returned sender.
pub fn spawn(store: Arc<Store>, inventory: Inventory, dir: PathBuf) -> watch::Sender<Inventory> {
    let (tx, mut rx) = watch::channel(inventory);
    tokio::spawn(async move {
        let mut rotations = Rotations::new(&dir);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let inventory = rx.borrow_and_update().clone();
            if inventory.config.rotations.is_empty() {
                // Nothing to rotate: wait for a reload rather than tick.
                if rx.changed().await.is_err() {
                    return;
                }
                continue;
            }
            rotations.tick(&inventory, &store).await;
        }
    });
    tx
}
