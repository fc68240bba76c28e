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
//! least likely to be worth keeping: the oldest idle one, else the oldest one that has sent
//! nothing yet, else the oldest one still sending its request head. A connection not yet
//! read from once is never taken (else a flood of new connections would close each other,
//! and a scraper's with them, before any request is read). When no place can be taken the
//! new one is refused. So a client that fills the pool with silent or slow connections
//! cannot keep a scraper out.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::{Service, service_fn};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio_rustls::TlsAcceptor;

use crate::expose::web::Web;

/// A TLS handshake that takes longer than this is dropped, so a client that connects and
/// says nothing holds a slot for a bounded time only.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// File descriptors kept out of the connection bound for everything else the exporter
/// opens: probe connections, the state files, secret files, the notifiers' connections.
const FD_RESERVE_MIN: u64 = 64;

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
    fn tick(&self) -> Duration {
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

/// Why the listener closed or refused a connection: the `reason` label of
/// `api_token_exporter_http_connections_dropped_total`, a stable contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Refused at once: every slot was serving a request.
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
        if web.tls_enabled() {
            // Each connection takes the settings current when it arrives: a rotated
            // certificate applies to new connections at once.
            let Some(config) = web.tls_config() else {
                continue;
            };
            tokio::spawn(ctx.serve_tls(stream, TlsAcceptor::from(config)));
        } else {
            let stream = TrackedIo {
                inner: stream,
                slot: ctx.guard.slot.clone(),
            };
            tokio::spawn(ctx.serve_http(stream));
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_rx);
    done_tx.closed().await;
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Head,
    Busy,
    Idle,
}

/// One open connection's place in the pool.
struct Slot {
    id: u64,
    state: Mutex<State>,
    /// Whether the connection was read from at least once: until then it cannot be told
    /// from a scraper whose request is waiting in the socket, so it is not evicted.
    polled: AtomicBool,
    /// Set with `evict`: the connection's place is already given away.
    evicted: AtomicBool,
    /// Signalled when the pool gives this connection's place to a new one.
    evict: Notify,
}

#[derive(Clone, Copy, Debug)]
struct State {
    phase: Phase,
    /// When the phase began.
    since: Instant,
    /// Bytes received since (TLS records included).
    received: u64,
    /// Since when a write has waited for the client to read (its socket buffer full).
    write_blocked: Option<Instant>,
}

impl Slot {
    fn new(id: u64) -> Slot {
        Slot {
            id,
            state: Mutex::new(State {
                phase: Phase::Head,
                since: Instant::now(),
                received: 0,
                write_blocked: None,
            }),
            polled: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
        }
    }

    fn set(&self, phase: Phase) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = State {
            phase,
            since: Instant::now(),
            received: 0,
            write_blocked: None,
        };
    }

    /// The TLS handshake is done: the request head gets its own time, and the handshake's
    /// bytes keep counting, so a client that just completed one ranks as one that sends.
    fn handshake_done(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.since = Instant::now();
    }

    fn phase(&self) -> (Phase, Instant) {
        let s = self.state();
        (s.phase, s.since)
    }

    fn state(&self) -> State {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `n` bytes arrived: an idle connection starts a new request head.
    fn on_read(&self, n: usize) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.phase == Phase::Idle {
            *state = State {
                phase: Phase::Head,
                since: Instant::now(),
                received: 0,
                write_blocked: None,
            };
        }
        state.received = state.received.saturating_add(n as u64);
    }

    /// How readily this connection gives its place to a new one, lowest first; `None`
    /// when it keeps it. Idle connections go first (closing one costs its client only a
    /// reconnect), then those still sending a request head, slowest first (bytes per
    /// second since the phase began): a silent or trickling client goes before a scraper
    /// that sent its request, or its TLS handshake, at once. Ties go to the oldest.
    fn eviction_rank(&self, now: Instant) -> Option<(u8, u64, Instant)> {
        if !self.polled.load(Ordering::Relaxed) {
            return None;
        }
        let s = self.state();
        match s.phase {
            Phase::Idle => Some((0, 0, s.since)),
            Phase::Head => {
                let millis = now.saturating_duration_since(s.since).as_millis().max(1);
                let rate = u128::from(s.received) * 1000 / millis;
                Some((1, u64::try_from(rate).unwrap_or(u64::MAX), s.since))
            }
            Phase::Busy => None,
        }
    }

    /// A write returned `Pending` (`blocked`) or made progress.
    fn on_write(&self, blocked: bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match (blocked, state.write_blocked) {
            (true, None) => state.write_blocked = Some(Instant::now()),
            (false, Some(_)) => state.write_blocked = None,
            _ => {}
        }
    }

    fn expired(&self, now: Instant, limits: &Limits) -> Option<DropReason> {
        let s = self.state();
        let age = now.saturating_duration_since(s.since);
        let stalled = s
            .write_blocked
            .is_some_and(|t| now.saturating_duration_since(t) >= limits.idle_timeout);
        match s.phase {
            Phase::Head if age >= limits.read_header_timeout => Some(DropReason::HeaderTimeout),
            Phase::Idle if age >= limits.idle_timeout => Some(DropReason::IdleTimeout),
            Phase::Busy if stalled => Some(DropReason::WriteTimeout),
            _ => None,
        }
    }
}

/// The open connections and the bound.
struct Pool {
    limits: Limits,
    stats: Arc<ConnectionStats>,
    open: Mutex<HashMap<u64, Arc<Slot>>>,
    next_id: AtomicU64,
    pressure: Mutex<Pressure>,
    /// Evicted connections whose sockets are not closed yet, and a signal when one closes.
    closing: AtomicU64,
    closed: Notify,
}

/// Evicted connections still closing past which the accept loop waits: each holds a file
/// descriptor until its task runs, and a burst of evictions must not use up the reserve
/// that [`Limits::fit_fd_limit`] keeps.
const CLOSING_MAX: u64 = 16;

/// Refusals and evictions since the last warning, so a flood logs one line every
/// [`PRESSURE_LOG_INTERVAL`] rather than one per connection.
#[derive(Default)]
struct Pressure {
    last_log: Option<Instant>,
    refused: u64,
    evicted: u64,
}

const PRESSURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How long a new connection waits for a place before it is refused. Connections just
/// accepted keep their places until first read, which takes their tasks a moment under a
/// flood; meanwhile the accept loop pauses and the kernel queues new connections, so one
/// refusal costs a flood at most this long.
const ADMIT_WAIT: Duration = Duration::from_millis(100);

impl Pool {
    /// A slot for a new connection, waiting up to [`ADMIT_WAIT`] for one; `None` (counted
    /// and logged) when none came: the new connection is refused.
    async fn admit_waiting(&self) -> Option<Arc<Slot>> {
        let deadline = Instant::now() + ADMIT_WAIT;
        loop {
            if let Some(slot) = self.admit() {
                return Some(slot);
            }
            if Instant::now() >= deadline {
                self.stats.count(DropReason::Limit);
                self.note_pressure(true);
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A slot for a new connection: a free one, else the place of the oldest idle
    /// connection, else that of the oldest one still sending its request head. `None` when
    /// no connection can give its place (all busy or not read from yet).
    fn admit(&self) -> Option<Arc<Slot>> {
        let slot = Arc::new(Slot::new(self.next_id.fetch_add(1, Ordering::Relaxed)));
        let evicted = {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            let mut evicted = false;
            if open.len() as u64 >= self.limits.max_connections {
                let now = Instant::now();
                let victim = open
                    .values()
                    .filter_map(|s| Some((s.eviction_rank(now)?, s.id)))
                    .min();
                match victim {
                    Some((_, id)) => {
                        if let Some(victim) = open.remove(&id) {
                            victim.evicted.store(true, Ordering::Relaxed);
                            victim.evict.notify_one();
                        }
                        self.closing.fetch_add(1, Ordering::Relaxed);
                        evicted = true;
                    }
                    None => return None,
                }
            }
            open.insert(slot.id, slot.clone());
            evicted
        };
        if evicted {
            self.stats.count(DropReason::Evicted);
            self.note_pressure(false);
        }
        self.stats.open.fetch_add(1, Ordering::Relaxed);
        Some(slot)
    }

    fn note_pressure(&self, refused: bool) {
        let mut p = self.pressure.lock().unwrap_or_else(|e| e.into_inner());
        if refused {
            p.refused += 1;
        } else {
            p.evicted += 1;
        }
        let now = Instant::now();
        if p.last_log
            .is_none_or(|t| now.duration_since(t) >= PRESSURE_LOG_INTERVAL)
        {
            tracing::warn!(
                max_connections = self.limits.max_connections,
                refused = p.refused,
                evicted_idle_or_slow = p.evicted,
                "HTTP connection limit reached (--web.max-connections)"
            );
            *p = Pressure {
                last_log: Some(now),
                refused: 0,
                evicted: 0,
            };
        }
    }
}

/// Gives the slot back when the connection's task ends, however it ends.
struct SlotGuard {
    pool: Arc<Pool>,
    slot: Arc<Slot>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if self.slot.evicted.load(Ordering::Relaxed) {
            self.pool.closing.fetch_sub(1, Ordering::Relaxed);
            self.pool.closed.notify_waiters();
        } else {
            self.pool
                .open
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&self.slot.id);
        }
        self.pool.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pool {
    /// Waits while too many evicted connections are still closing.
    async fn wait_for_closing(&self) {
        loop {
            // Created before the check, so a close between the check and the wait wakes it.
            let closed = self.closed.notified();
            if self.closing.load(Ordering::Relaxed) < CLOSING_MAX {
                return;
            }
            closed.await;
        }
    }
}

/// What a connection's task owns.
struct ConnCtx {
    app: Router,
    guard: SlotGuard,
    stop: watch::Receiver<bool>,
    /// Held until the task ends, so shutdown waits for it.
    _done: watch::Receiver<()>,
    peer: SocketAddr,
}

impl ConnCtx {
    async fn serve_tls(mut self, stream: tokio::net::TcpStream, acceptor: TlsAcceptor) {
        let slot = self.guard.slot.clone();
        let stream = TrackedIo {
            inner: stream,
            slot: slot.clone(),
        };
        let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
        let tls = tokio::select! {
            done = handshake => match done {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    self.guard.pool.stats.count(DropReason::HandshakeTimeout);
                    tracing::debug!(peer = %self.peer, "TLS handshake timed out");
                    return;
                }
            },
            _ = slot.evict.notified() => {
                tracing::debug!(peer = %self.peer, "closed during its TLS handshake to make room for a new connection");
                return;
            }
            _ = self.stop.wait_for(|stop| *stop) => return,
        };
        slot.handshake_done();
        self.serve_http(tls).await;
    }

    async fn serve_http<I>(mut self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let slot = self.guard.slot.clone();
        let limits = self.guard.pool.limits;
        let stats = self.guard.pool.stats.clone();
        let app = TowerToHyperService::new(self.app.clone());
        let tracked = slot.clone();
        let service = service_fn(move |request: hyper::Request<Incoming>| {
            tracked.set(Phase::Busy);
            let busy = BusyGuard(tracked.clone());
            let response = app.call(request);
            async move {
                let response = response.await?;
                Ok::<_, Infallible>(response.map(|body| TrackedBody { body, _busy: busy }))
            }
        });
        // No hyper timer: hyper's own header-read timeout also runs while a kept-alive
        // connection waits for its next request, which would close Prometheus' connection
        // between scrapes at the header timeout. The phases here time head and idle apart.
        let conn = http1::Builder::new().serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let mut tick = tokio::time::interval(limits.tick());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopping = false;
        loop {
            tokio::select! {
                done = conn.as_mut() => {
                    if let Err(e) = done {
                        tracing::debug!(peer = %self.peer, error = %e, "HTTP connection ended");
                    }
                    return;
                }
                _ = slot.evict.notified() => {
                    tracing::debug!(peer = %self.peer, "closed to make room for a new connection");
                    return;
                }
                _ = tick.tick() => {
                    if let Some(reason) = slot.expired(Instant::now(), &limits) {
                        stats.count(reason);
                        tracing::debug!(peer = %self.peer, reason = reason.as_str(), "HTTP connection closed");
                        return;
                    }
                    if stopping && slot.phase().0 != Phase::Busy {
                        return;
                    }
                }
                _ = self.stop.wait_for(|stop| *stop), if !stopping => {
                    // Requests in progress finish; a connection between requests or still
                    // sending one closes now, so shutdown does not wait on a client.
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                    if slot.phase().0 != Phase::Busy {
                        return;
                    }
                }
            }
        }
    }
}

/// Marks the connection idle when the response body is done (sent or dropped).
struct BusyGuard(Arc<Slot>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.set(Phase::Idle);
    }
}

/// A response body that holds its connection busy until hyper drops it.
struct TrackedBody {
    body: Body,
    _busy: BusyGuard,
}

impl hyper::body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket (under TLS, if any), telling its slot when it is first read and when bytes
/// arrive.
struct TrackedIo<I> {
    inner: I,
    slot: Arc<Slot>,
}

impl<I: AsyncRead + Unpin> AsyncRead for TrackedIo<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.slot.polled.store(true, Ordering::Relaxed);
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.slot.on_read(buf.filled().len() - before);
        }
        read
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for TrackedIo<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.slot.on_write(written.is_pending());
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.slot.on_write(written.is_pending());
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests;
