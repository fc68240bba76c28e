//! The HTTP listener: accepts connections (over TLS when the web config says so), serves
//! each with hyper, bounds how many are open at once, and closes the ones that are slow to
//! send a request or sit idle too long. Touches sockets and the process's open-file limit.
//!
//! A connection is always in one of three phases, and its clock is the time it entered it:
//!
//! - *head*: accepted (or handshaking, over TLS), or the first byte of a new request has
//!   arrived on a kept-alive connection; closed when the request head is not complete within
//!   `--web.read-header-timeout`.
//! - *busy*: a request is being served; closed only when the client stops reading the
//!   response (a write that has waited `--web.idle-timeout`), never for the handler's own
//!   time.
//! - *idle*: kept alive between requests; closed after `--web.idle-timeout`.
//!
//! At `--web.max-connections`, a new connection takes the place of the open one that is
//! least likely to be worth keeping: the oldest idle one, else the one still sending its
//! request head at the lowest rate (bytes per second). A connection not yet
//! read from once is never taken (else a flood of new connections would close each other,
//! and a scraper's with them, before any request is read). When no place can be taken the
//! new one is refused. So a client that fills the pool with silent or slow connections
//! cannot keep a scraper out.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio_rustls::TlsAcceptor;

use crate::expose::web::Web;

mod limits;
pub use limits::*;
mod pool;
use pool::*;
mod conn;
use conn::*;

/// A TLS handshake that takes longer than this is dropped, so a client that connects and
/// says nothing holds a slot for a bounded time only.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the listener closed or refused a connection: the `reason` label of
/// `api_token_exporter_http_connections_dropped_total`, a stable contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Refused: for a short wait no open connection could give its place (all serving a
    /// request, or not read from yet).
    Limit,
    /// An idle or slow connection closed to make room for a new one.
    Evicted,
    HeaderTimeout,
    IdleTimeout,
    HandshakeTimeout,
    /// A response the client stopped reading for `--web.idle-timeout`.
    WriteTimeout,
}

impl DropReason {
    pub const ALL: [DropReason; 6] = [
        DropReason::Limit,
        DropReason::Evicted,
        DropReason::HeaderTimeout,
        DropReason::IdleTimeout,
        DropReason::HandshakeTimeout,
        DropReason::WriteTimeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Limit => "limit",
            DropReason::Evicted => "evicted",
            DropReason::HeaderTimeout => "header_timeout",
            DropReason::IdleTimeout => "idle_timeout",
            DropReason::HandshakeTimeout => "handshake_timeout",
            DropReason::WriteTimeout => "write_timeout",
        }
    }
}

/// The listener's counters, read by `/metrics`.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    open: AtomicU64,
    max: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
}

impl ConnectionStats {
    /// Connections open now, TLS handshakes included.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// The bound in force (0 before the listener starts).
    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    /// Every reason with its count, zeros included.
    pub fn dropped(&self) -> [(&'static str, u64); DropReason::ALL.len()] {
        DropReason::ALL.map(|r| (r.as_str(), self.dropped[r as usize].load(Ordering::Relaxed)))
    }

    fn count(&self, reason: DropReason) {
        self.dropped[reason as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Serves `app` on `listener`, over TLS when the web config says so, within `limits`,
/// until `shutdown` completes; then stops accepting, lets requests in progress finish,
/// closes idle connections and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    web: Arc<Web>,
    limits: Limits,
    stats: Arc<ConnectionStats>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    stats.max.store(limits.max_connections, Ordering::Relaxed);
    let pool = Arc::new(Pool {
        limits,
        stats,
        open: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
        pressure: Mutex::new(Pressure::default()),
        closing: AtomicU64::new(0),
        closed: Notify::new(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a receiver; `closed()` completes when the last one ends.
    let (done_tx, done_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        pool.wait_for_closing().await;
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(slot) = pool.admit_waiting().await else {
            continue;
        };
        let guard = SlotGuard {
            pool: pool.clone(),
            slot,
        };
        let ctx = ConnCtx {
            app: app.clone(),
            guard,
            stop: stop_rx.clone(),
            _done: done_rx.clone(),
            peer,
        };
        let stream = TrackedIo {
            inner: stream,
            slot: ctx.guard.slot.clone(),
        };
        // Each connection takes the settings current when it arrives: a rotated certificate
        // applies to new connections at once.
        match web.tls_config() {
            Some(config) => tokio::spawn(ctx.serve_tls(stream, TlsAcceptor::from(config))),
            None => tokio::spawn(ctx.serve_http(stream)),
        };
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_rx);
    done_tx.closed().await;
    Ok(())
}

#[cfg(test)]
mod tests;
