//! The expose stage: what the exporter serves. `/metrics` (the family list is the metrics
//! contract), the HTTP router and status page, and the web security in front of them.

pub mod compress;
pub mod listen;
pub mod memory;
pub mod metrics;
pub mod server;
pub mod web;
