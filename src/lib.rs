//! # api-token-exporter
//!
//! Keeps automation from stalling on a dead credential. The exporter holds an inventory of
//! API tokens, asks each token's provider about it on a schedule, keeps the latest facts and
//! derives what it shows at read time: Prometheus metrics, a status page and a JSON API, the
//! one-shot preflight `check`, and direct notifications (Slack, email, a webhook,
//! Alertmanager).
//!
//! The modules follow the pipeline, one folder per stage, and a module imports only from
//! the stages before it (`layout_tests.rs` enforces it; ARCHITECTURE.md explains each
//! stage):
//!
//! [`model`] -> [`secret`] -> [`schema`] -> [`provider`] -> [`config`] -> [`sources`] -> [`state`] ->
//! [`derive`](mod@derive) -> [`probe`] -> [`rotate`] -> [`notify`] -> [`expose`] -> [`app`]
//!
//! Providers return outcomes, never errors; views never call providers; secrets live in
//! [`secret::Secret`] and only providers expose them, onto the wire.

// Probe helpers return `Result<_, ProbeOutcome>`: a failed step *is* the probe's answer, a
// value the caller passes on, not an exceptional error, so its size is not a concern.
#![allow(clippy::result_large_err)]

pub mod app;
pub mod config;
pub mod derive;
pub mod expose;
pub mod model;
pub mod notify;
pub mod probe;
pub mod provider;
pub mod rotate;
pub mod schema;
pub mod secret;
pub mod sources;
pub mod state;

#[cfg(test)]
mod layout_tests;

// The public paths the binary, the benches and `tests/` name, kept stable across the move
// into stage folders so callers outside `src/` do not depend on the folder layout. Code
// inside `src/` names the stage path instead, which is what the direction test reads.
pub use app::run::{
    RunError, RunOptions, load_inventory, load_inventory_shard, run, shutdown_signal,
};
pub use app::{check, cli, demo, logging, shard};
pub use derive::{policy, view};
pub use expose::{listen, memory, metrics, server, web};
pub use probe::scheduler;
pub use state::{persist, store};
