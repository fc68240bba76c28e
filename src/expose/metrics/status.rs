//! The exporter's own status that `/metrics` reports next to the tokens: reloads,
//! notifications, connections, web security and refused requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// Exporter-level status `/metrics` reports alongside the store.
#[derive(Debug)]
pub struct ExporterStatus {
    pub last_reload_successful: AtomicBool,
    /// Unix seconds of the last successful (re)load.
    pub last_reload_success: AtomicI64,
    /// Per-notifier counters of direct notifications.
    pub notifications: Arc<crate::notify::Stats>,
    /// The HTTP listener's open connections and the ones it closed or refused.
    pub connections: Arc<crate::expose::listen::ConnectionStats>,
    /// The web config's reloads and basic auth's refusals (`Web::stats`).
    pub web: Arc<crate::expose::web::WebStats>,
    /// Heavy requests (`/metrics`, `/`, `/api/v1/tokens`) answered 503 because too many
    /// were in progress (src/expose/server.rs).
    pub requests_refused: RequestsRefused,
    /// Each inventory source's listings (src/sources/health.rs).
    pub sources: Arc<crate::sources::health::Health>,
}

/// Counts of heavy requests refused, per handler (`metrics`, `page`, `api`).
#[derive(Debug, Default)]
pub struct RequestsRefused {
    pub metrics: std::sync::atomic::AtomicU64,
    pub page: std::sync::atomic::AtomicU64,
    pub api: std::sync::atomic::AtomicU64,
}

impl RequestsRefused {
    /// Every handler's count, each listed even at zero so the series exist before the first
    /// refusal (a `rate()` over a series that appears at its first increment misses it).
    pub fn snapshot(&self) -> [(&'static str, u64); 3] {
        [
            ("metrics", self.metrics.load(Ordering::Relaxed)),
            ("page", self.page.load(Ordering::Relaxed)),
            ("api", self.api.load(Ordering::Relaxed)),
        ]
    }
}

impl ExporterStatus {
    pub fn new() -> Self {
        ExporterStatus {
            last_reload_successful: AtomicBool::new(true),
            last_reload_success: AtomicI64::new(jiff::Timestamp::now().as_second()),
            notifications: Arc::default(),
            web: Arc::default(),
            requests_refused: RequestsRefused::default(),
            connections: Arc::default(),
            sources: Arc::default(),
        }
    }

    pub fn reload_succeeded(&self) {
        self.last_reload_successful.store(true, Ordering::Relaxed);
        self.last_reload_success
            .store(jiff::Timestamp::now().as_second(), Ordering::Relaxed);
    }

    pub fn reload_failed(&self) {
        self.last_reload_successful.store(false, Ordering::Relaxed);
    }
}

impl Default for ExporterStatus {
    fn default() -> Self {
        Self::new()
    }
}
