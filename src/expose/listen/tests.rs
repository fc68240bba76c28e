use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Context;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::*;

#[test]
fn the_bound_stays_below_the_open_file_limit() {
    let limits = Limits::default();
    assert_eq!(limits.fit_fd_limit(None), limits);
    assert_eq!(limits.fit_fd_limit(Some(1024)), limits);
    assert_eq!(limits.fit_fd_limit(Some(512)).max_connections, 384);
    assert_eq!(limits.fit_fd_limit(Some(100)).max_connections, 36);
    assert_eq!(limits.fit_fd_limit(Some(10)).max_connections, 1);
}

fn pool(max: u64) -> Pool {
    Pool {
        limits: Limits {
            max_connections: max,
            ..Limits::default()
        },
        stats: Arc::default(),
        open: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
        pressure: Mutex::new(Pressure::default()),
        closing: AtomicU64::new(0),
        closed: Notify::new(),
    }
}

#[test]
fn a_full_pool_evicts_idle_then_slow_and_refuses_only_when_all_are_busy() {
    let pool = pool(3);
    let read = |s: &Slot, bytes: bool| {
        s.polled.store(true, Ordering::Relaxed);
        if bytes {
            s.on_read(100);
        }
    };
    let slow = pool.admit().unwrap();
    read(&slow, true);
    let busy = pool.admit().unwrap();
    busy.set(Phase::Busy);
    read(&busy, true);
    let idle = pool.admit().unwrap();
    idle.set(Phase::Idle);
    read(&idle, false);

    // Full: the idle connection goes first, though it is the newest.
    let silent = pool.admit().unwrap();
    assert!(idle.evict.notified().now_or_never_ready());
    // Once read from, a connection that sent nothing goes before an older one that
    // sent bytes.
    read(&silent, false);
    let a = pool.admit().unwrap();
    assert!(silent.evict.notified().now_or_never_ready());
    // Then the oldest one still sending its head.
    let b = pool.admit().unwrap();
    assert!(slow.evict.notified().now_or_never_ready());
    // Connections not read from yet keep their places: nothing to take, refused.
    assert!(pool.admit().is_none());
    for s in [&a, &b] {
        read(s, true);
        s.set(Phase::Busy);
    }
    // All busy: refused, and the busy ones are untouched.
    assert!(pool.admit().is_none());
    assert!(!busy.evict.notified().now_or_never_ready());
    let dropped: HashMap<_, _> = pool.stats.dropped().into_iter().collect();
    assert_eq!(dropped["evicted"], 3);
    assert_eq!(pool.closing.load(Ordering::Relaxed), 3);
}

#[test]
fn head_and_idle_expire_busy_does_not() {
    let limits = Limits {
        max_connections: 1,
        read_header_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(5),
    };
    let slot = pool(1).admit().unwrap();
    let later = |s: u64| Instant::now() + Duration::from_secs(s);
    assert_eq!(slot.expired(later(0), &limits), None);
    assert_eq!(
        slot.expired(later(2), &limits),
        Some(DropReason::HeaderTimeout)
    );
    slot.set(Phase::Busy);
    assert_eq!(slot.expired(later(100), &limits), None);
    // A response the client stopped reading: closed after the idle timeout; a write
    // that goes through again clears it.
    slot.on_write(true);
    assert_eq!(slot.expired(later(2), &limits), None);
    assert_eq!(
        slot.expired(later(6), &limits),
        Some(DropReason::WriteTimeout)
    );
    slot.on_write(false);
    assert_eq!(slot.expired(later(6), &limits), None);
    slot.set(Phase::Idle);
    assert_eq!(slot.expired(later(2), &limits), None);
    assert_eq!(
        slot.expired(later(6), &limits),
        Some(DropReason::IdleTimeout)
    );
    // A byte of a new request restarts the clock as a head.
    slot.on_read(1);
    assert_eq!(
        slot.expired(later(2), &limits),
        Some(DropReason::HeaderTimeout)
    );
}

trait NowOrNever {
    fn now_or_never_ready(self) -> bool;
}

impl<F: Future> NowOrNever for F {
    /// Whether the future is ready at its first poll.
    fn now_or_never_ready(self) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut f = std::pin::pin!(self);
        f.as_mut().poll(&mut cx).is_ready()
    }
}
