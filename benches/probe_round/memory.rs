//! Phase `memory`: the bytes the exporter holds per token, by part, counted by this
//! program's own allocator while it builds the parts in-process from the same inventory the
//! real binary loads: the config's token specs, the store's states, the facts and records of
//! one probe each (the real RFC 7662 parser reading the benchmark server's answer), the label
//! text `/metrics` keeps per token, a scrape's snapshot, and the peaks of the config load and
//! of one scrape. Byte counts do not depend on the machine's load or on the build's
//! optimisation, so one run is the figure; RSS (what the kernel sees, fragmentation
//! included) is the `sizes` phase's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use api_token_exporter::config::Config;
use api_token_exporter::metrics::{ExporterStatus, Metrics};
use api_token_exporter::model::ProbeRun;
use api_token_exporter::store::Store;

/// The benchmark program's allocator: the system's, counting live and peak bytes while
/// [`COUNTING`] is set (only in this phase, so the other roles' CPU is not charged for it).
pub struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Live allocations: each costs the allocator's own header and rounding on top of its bytes
/// (glibc: 8 bytes and a 16-byte multiple, 32 bytes at least).
static BLOCKS: AtomicUsize = AtomicUsize::new(0);

fn add(n: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        BLOCKS.fetch_add(1, Ordering::Relaxed);
        let live = LIVE.fetch_add(n, Ordering::Relaxed) + n;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
}

fn sub(n: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        BLOCKS.fetch_sub(1, Ordering::Relaxed);
        LIVE.fetch_sub(n, Ordering::Relaxed);
    }
}

fn resize(old: usize, new: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        let live = LIVE.fetch_add(new, Ordering::Relaxed) + new;
        LIVE.fetch_sub(old, Ordering::Relaxed);
        PEAK.fetch_max(live - old, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed on to `System` unchanged; the counters are only arithmetic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        sub(layout.size());
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        resize(layout.size(), new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Live bytes now, and the peak since the last call (which restarts it from now).
fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn peak_since_reset() -> usize {
    PEAK.swap(live(), Ordering::Relaxed)
}

/// What one inventory size costs, in bytes (not per token).
pub struct Breakdown {
    pub tokens: usize,
    /// The config as loaded: the token specs (shared with the store), the providers.
    pub config: usize,
    /// The highest the config load went above what it keeps.
    pub config_peak: usize,
    /// The store's states and its map, before any probe.
    pub store: usize,
    /// What one probe of each token adds: its facts, its record, its fingerprint.
    pub facts: usize,
    /// The label text `/metrics` escapes once per token and keeps.
    pub labels: usize,
    /// The allocations the four parts above hold.
    pub blocks: usize,
    /// A scrape's snapshot, held while its body is written.
    pub snapshot: usize,
    /// The highest a whole scrape went above what it started from.
    pub scrape_peak: usize,
    /// The plain exposition's length.
    pub body: usize,
}

/// The introspection answer the benchmark's server gives for token `i`.
fn answer(i: usize, exp: i64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "active": true, "exp": exp, "iat": exp - 60 * 86_400,
        "sub": format!("svc-{i:06}"), "client_id": "bench",
        "scope": "read write", "token_type": "Bearer"
    }))
    .unwrap()
}

/// Builds the parts for the inventory `config` (`n` tokens) and counts each.
pub fn measure(config: &Path, n: usize) -> Breakdown {
    let now = jiff::Timestamp::now();
    let exp = now.as_second() + 30 * 86_400;
    let answers: Vec<Vec<u8>> = (0..n).map(|i| answer(i, exp)).collect();
    let headers = http::HeaderMap::new();
    COUNTING.store(true, Ordering::Relaxed);
    let base = live();
    let blocks0 = BLOCKS.load(Ordering::Relaxed);
    peak_since_reset();

    let cfg = Config::load(config).expect("the benchmark's config loads");
    let config_bytes = live() - base;
    let config_peak = peak_since_reset() - base - config_bytes;

    let before = live();
    let store = Arc::new(Store::new());
    store.reconcile(&cfg);
    let store_bytes = live() - before;

    let before = live();
    for (i, spec) in cfg.tokens.iter().enumerate() {
        let outcome = api_token_exporter::provider::oauth2::parse(200, &headers, &answers[i], now);
        let run = ProbeRun {
            outcome,
            fingerprint: Some(api_token_exporter::secret::fingerprint(
                &crate::token_value(i),
            )),
            duration: Duration::from_micros(500),
        };
        store.record(&spec.name, run, now);
    }
    let facts = live() - before;

    let metrics = Metrics::new(store.clone(), Arc::new(ExporterStatus::new()));
    // The first snapshot escapes every token's labels, which the specs then keep.
    let before = live();
    drop(metrics.snapshot());
    let labels = live() - before;
    let blocks = BLOCKS.load(Ordering::Relaxed) - blocks0;

    let before = live();
    peak_since_reset();
    let mut e = metrics.snapshot();
    let snapshot = live() - before;
    let mut chunk = String::new();
    let mut body = 0;
    loop {
        chunk.clear();
        let more = e.write_chunk(&mut chunk, 256 * 1024);
        body += chunk.len();
        if !more {
            break;
        }
    }
    drop(e);
    drop(chunk);
    let scrape_peak = peak_since_reset() - before;
    COUNTING.store(false, Ordering::Relaxed);
    drop((metrics, store, cfg));
    Breakdown {
        tokens: n,
        config: config_bytes,
        config_peak,
        store: store_bytes,
        facts,
        labels,
        blocks,
        snapshot,
        scrape_peak,
        body,
    }
}

impl Breakdown {
    /// `B/token` of `bytes`, and the total in MB.
    fn per(&self, bytes: usize) -> String {
        format!(
            "{} B ({:.1} MB)",
            bytes / self.tokens.max(1),
            bytes as f64 / 1e6
        )
    }

    /// The table rows of this size.
    pub fn rows(&self) -> Vec<(String, String)> {
        let n = self.tokens;
        let held = self.config + self.store + self.facts + self.labels;
        vec![
            (
                format!("{n} tokens, bytes per token: config (token specs)"),
                self.per(self.config),
            ),
            (
                format!("{n} tokens, bytes per token: store states (before a probe)"),
                self.per(self.store),
            ),
            (
                format!("{n} tokens, bytes per token: facts and records of one probe"),
                self.per(self.facts),
            ),
            (
                format!("{n} tokens, bytes per token: label text kept for /metrics"),
                self.per(self.labels),
            ),
            (
                format!("{n} tokens, bytes per token: held in all (the four above)"),
                self.per(held),
            ),
            (
                format!("{n} tokens: allocations held per token"),
                format!("{:.1}", self.blocks as f64 / n as f64),
            ),
            (
                format!("{n} tokens, bytes per token: a scrape's snapshot"),
                self.per(self.snapshot),
            ),
            (
                format!("{n} tokens, bytes per token: a scrape's peak (snapshot and chunk)"),
                self.per(self.scrape_peak),
            ),
            (
                format!("{n} tokens, bytes per token: config load's transient peak"),
                self.per(self.config_peak),
            ),
            (
                format!("{n} tokens: plain body"),
                format!("{:.1} MB", self.body as f64 / 1e6),
            ),
        ]
    }
}
