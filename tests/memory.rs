//! The allocator tuning of `src/expose/memory.rs`: a scrape's copy of the store goes back to the
//! system when the scrape ends, instead of staying in the scraping thread's glibc arena.
//! Its own test binary, so no other test allocates in this process while it measures, and so
//! the allocator settings it applies (`memory::tune_allocator`, process-wide) reach no other
//! test: the integration tests in `tests/it/` share one process.

#![cfg(all(target_os = "linux", target_env = "gnu"))]

mod support;

use std::sync::Arc;
use std::time::Duration;

use api_token_exporter::config::Config;
use api_token_exporter::metrics::{ExporterStatus, Metrics};
use api_token_exporter::model::{Expiry, ProbeOutcome, TokenFacts};
use api_token_exporter::provider::ProbeRun;
use api_token_exporter::store::Store;

fn rss_anon_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssAnon in /proc/self/status")
}

fn store_of(n: usize) -> Store {
    let config = Config::parse(&support::large_inventory(n)).unwrap_or_else(|e| panic!("{e}"));
    let store = Store::new();
    store.reconcile(&config);
    let now = jiff::Timestamp::now();
    for spec in &config.tokens {
        let facts = TokenFacts {
            expiry: Expiry::At(now + jiff::SignedDuration::from_hours(24 * 30)),
            subject: Some(format!("svc-{}", spec.name)),
            scopes: vec!["read".into(), "write".into()],
            ..TokenFacts::default()
        };
        let run = ProbeRun {
            outcome: ProbeOutcome::valid(facts),
            fingerprint: Some(format!("sha256:{:012x}", spec.name.len() * 7919)),
            duration: Duration::from_millis(3),
        };
        store.record(&spec.name, run, now);
    }
    store
}

#[test]
fn a_finished_scrape_gives_its_copy_back_to_the_system() {
    api_token_exporter::memory::tune_allocator();
    // As loading a large config does: free a big mapping. Untuned, glibc then raises its
    // mmap threshold to this size and serves the scrape's buffers from its arena.
    let big = vec![1u8; 16 << 20];
    assert_eq!(big[big.len() - 1], 1);
    drop(big);

    let metrics = Metrics::new(Arc::new(store_of(10_000)), Arc::new(ExporterStatus::new()));
    // A first scrape, so whatever a scrape keeps for good (lazily built label text) is in
    // `before`.
    drop(metrics.snapshot());
    let before = rss_anon_kib();
    let scrape = metrics.snapshot();
    let during = rss_anon_kib();
    drop(scrape);
    let after = rss_anon_kib();
    assert!(
        during >= before + 2048,
        "a 10,000-token copy should be megabytes of fresh mappings, not old heap: {before} kB before, {during} kB during"
    );
    // A megabyte of slack: the kernel's RSS counters may lag by some pages per CPU, and
    // the copy that must go is four times that.
    assert!(
        after <= before + 1024,
        "the copy stayed after the scrape: {before} kB before, {during} kB during, {after} kB after"
    );
}
