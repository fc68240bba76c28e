//! The app stage: the daemon wiring, reload and signals, and the subcommands.

pub mod check;
pub mod cli;
pub mod demo;
pub mod discover;
pub mod logging;
pub mod rotate;
pub mod run;
pub mod shard;
