//! The allocator tuning of `src/expose/memory.rs`: a scrape's copy of the store goes back to the
//! system when the scrape ends, instead of staying in the scraping thread's glibc arena.
//! Its own test binary, so no other test allocates in this process while it measures, and so
//! the allocator settings it applies (`memory::tune_allocator`, process-wide) reach no other
//! test: the integration tests in `tests/it/` share one process.

#![cfg(all(target_os = "linux", target_env = "gnu"))]

mod support;

use support::rss;

use std::sync::Arc;

use api_token_exporter::metrics::{ExporterStatus, Metrics};

#[test]
fn a_finished_scrape_gives_its_copy_back_to_the_system() {
    api_token_exporter::memory::tune_allocator();
    // As loading a large config does: free a big mapping. Untuned, glibc then raises its
    // mmap threshold to this size and serves the scrape's buffers from its arena.
    let big = vec![1u8; 16 << 20];
    assert_eq!(big[big.len() - 1], 1);
    drop(big);

    let metrics = Metrics::new(
        Arc::new(rss::store_of(10_000)),
        Arc::new(ExporterStatus::new()),
    );
    // A first scrape, so whatever a scrape keeps for good (lazily built label text) is in
    // `before`.
    drop(metrics.snapshot());
    let before = rss::rss_anon_kib();
    let scrape = metrics.snapshot();
    let during = rss::rss_anon_kib();
    drop(scrape);
    let after = rss::rss_anon_kib();
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
