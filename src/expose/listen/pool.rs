//! The pool of open connections: each one's phase and clock, the bound on how many are
//! open, and which one gives its place to a new connection when the pool is full.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Head,
    Busy,
    Idle,
}

/// One open connection's place in the pool.
pub(super) struct Slot {
    pub(super) id: u64,
    pub(super) state: Mutex<State>,
    /// Whether the connection was read from at least once: until then it cannot be told
    /// from a scraper whose request is waiting in the socket, so it is not evicted.
    pub(super) polled: AtomicBool,
    /// Set with `evict`: the connection's place is already given away.
    pub(super) evicted: AtomicBool,
    /// Signalled when the pool gives this connection's place to a new one.
    pub(super) evict: Notify,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct State {
    pub(super) phase: Phase,
    /// When the phase began.
    pub(super) since: Instant,
    /// Bytes received since (TLS records included).
    pub(super) received: u64,
    /// Since when a write has waited for the client to read (its socket buffer full).
    pub(super) write_blocked: Option<Instant>,
}

impl Slot {
    pub(super) fn new(id: u64) -> Slot {
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

    pub(super) fn set(&self, phase: Phase) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = State {
            phase,
            since: Instant::now(),
            received: 0,
            write_blocked: None,
        };
    }

    /// The TLS handshake is done: the request head gets its own time, and the handshake's
    /// bytes keep counting, so a client that just completed one ranks as one that sends.
    pub(super) fn handshake_done(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.since = Instant::now();
    }

    pub(super) fn phase(&self) -> (Phase, Instant) {
        let s = self.state();
        (s.phase, s.since)
    }

    pub(super) fn state(&self) -> State {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `n` bytes arrived: an idle connection starts a new request head.
    pub(super) fn on_read(&self, n: usize) {
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
    pub(super) fn eviction_rank(&self, now: Instant) -> Option<(u8, u64, Instant)> {
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
    pub(super) fn on_write(&self, blocked: bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match (blocked, state.write_blocked) {
            (true, None) => state.write_blocked = Some(Instant::now()),
            (false, Some(_)) => state.write_blocked = None,
            _ => {}
        }
    }

    pub(super) fn expired(&self, now: Instant, limits: &Limits) -> Option<DropReason> {
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
pub(super) struct Pool {
    pub(super) limits: Limits,
    pub(super) stats: Arc<ConnectionStats>,
    pub(super) open: Mutex<HashMap<u64, Arc<Slot>>>,
    pub(super) next_id: AtomicU64,
    pub(super) pressure: Mutex<Pressure>,
    /// Evicted connections whose sockets are not closed yet, and a signal when one closes.
    pub(super) closing: AtomicU64,
    pub(super) closed: Notify,
}

/// Evicted connections still closing past which the accept loop waits: each holds a file
/// descriptor until its task runs, and a burst of evictions must not use up the reserve
/// that [`Limits::fit_fd_limit`] keeps.
pub(super) const CLOSING_MAX: u64 = 16;

/// Refusals and evictions since the last warning, so a flood logs one line every
/// [`PRESSURE_LOG_INTERVAL`] rather than one per connection.
#[derive(Default)]
pub(super) struct Pressure {
    pub(super) last_log: Option<Instant>,
    pub(super) refused: u64,
    pub(super) evicted: u64,
}

pub(super) const PRESSURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How long a new connection waits for a place before it is refused. Connections just
/// accepted keep their places until first read, which takes their tasks a moment under a
/// flood; meanwhile the accept loop pauses and the kernel queues new connections, so one
/// refusal costs a flood at most this long.
pub(super) const ADMIT_WAIT: Duration = Duration::from_millis(100);

impl Pool {
    /// A slot for a new connection, waiting up to [`ADMIT_WAIT`] for one; `None` (counted
    /// and logged) when none came: the new connection is refused.
    pub(super) async fn admit_waiting(&self) -> Option<Arc<Slot>> {
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
    /// connection, else that of the one sending its request head at the lowest rate. `None` when
    /// no connection can give its place (all busy or not read from yet).
    pub(super) fn admit(&self) -> Option<Arc<Slot>> {
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

    pub(super) fn note_pressure(&self, refused: bool) {
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
pub(super) struct SlotGuard {
    pub(super) pool: Arc<Pool>,
    pub(super) slot: Arc<Slot>,
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
    pub(super) async fn wait_for_closing(&self) {
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
