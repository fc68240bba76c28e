//! api-token-exporter (bird's-eye doc written below once the modules exist).
pub mod config;
pub mod model;
pub mod provider;
pub mod secret;
