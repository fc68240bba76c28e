//! The listener's bounds (`--web.max-connections`, the read-header and idle timeouts) and
//! the open-file limit they have to fit under.

use std::time::Duration;

/// File descriptors kept out of the connection bound for everything else the exporter
/// opens: probe connections, the state files, secret files, the notifiers' connections.
pub(super) const FD_RESERVE_MIN: u64 = 64;

/// The listener's bounds, from `--web.max-connections`, `--web.read-header-timeout` and
/// `--web.idle-timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: u64,
    pub read_header_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Limits {
    /// A few Prometheus servers, people on the status page and a burst of reloads need tens
    /// of connections; 512 leaves room for that many times over and stays well below
    /// systemd's default soft limit of 1024 open files.
    pub const DEFAULT_MAX_CONNECTIONS: u64 = 512;
    /// A scraper sends its request head in one packet; ten seconds covers a slow network
    /// and closes a slowloris connection soon after.
    pub const DEFAULT_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    /// Longer than the usual scrape intervals (15 s to 1 min), so Prometheus keeps reusing
    /// its connection; an idle connection closed costs it only a reconnect.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

    /// Caps the connection bound below the open-file limit (`None`: unlimited), keeping a
    /// reserve of descriptors for everything else, and logs when it does.
    pub fn fit_fd_limit(self, soft: Option<u64>) -> Limits {
        let Some(soft) = soft else { return self };
        let cap = soft.saturating_sub(FD_RESERVE_MIN.max(soft / 4)).max(1);
        if self.max_connections <= cap {
            return self;
        }
        tracing::warn!(
            requested = self.max_connections,
            used = cap,
            open_file_limit = soft,
            "--web.max-connections lowered to stay below the open-file limit"
        );
        Limits {
            max_connections: cap,
            ..self
        }
    }

    /// How often each connection checks its clock: a fraction of the shortest timeout, so a
    /// timeout is applied at most a quarter late.
    pub(super) fn tick(&self) -> Duration {
        (self.read_header_timeout.min(self.idle_timeout) / 4)
            .clamp(Duration::from_millis(20), Duration::from_secs(1))
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            read_header_timeout: Self::DEFAULT_READ_HEADER_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// Raises the soft open-file limit to the hard limit, as Go programs do at start, so the
/// connection bound is not the first thing the process runs out of. Returns the soft limit
/// now in force (`None`: unlimited, or not known on this platform).
pub fn raise_fd_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let before = getrlimit(Resource::Nofile);
        if before.current != before.maximum {
            let raised = Rlimit {
                current: before.maximum,
                maximum: before.maximum,
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => tracing::info!(
                    from = before.current.map_or(-1, |n| n as i64),
                    to = before.maximum.map_or(-1, |n| n as i64),
                    "raised the open-file limit to its hard limit (-1: unlimited)"
                ),
                Err(e) => tracing::warn!(
                    error = %e,
                    limit = before.current.map_or(-1, |n| n as i64),
                    "cannot raise the open-file limit; keeping it"
                ),
            }
        }
        let now = getrlimit(Resource::Nofile).current;
        tracing::debug!(
            open_file_limit = now.map_or(-1, |n| n as i64),
            "open-file limit"
        );
        now
    }
    #[cfg(not(unix))]
    {
        None
    }
}
