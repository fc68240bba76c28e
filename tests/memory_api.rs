//! `GET /api/v1/tokens` at scale holds a chunk of its answer, not the whole: the answer is
//! written from the store a chunk at a time. Its own test binary, so no other test
//! allocates in this process while it measures, and so the allocator settings it applies
//! (`memory::tune_allocator`, process-wide) reach no other test: the integration tests in
//! `tests/it/` share one process.

#![cfg(all(target_os = "linux", target_env = "gnu"))]

mod support;

use std::sync::Arc;
use std::time::Duration;

use api_token_exporter::config::Config;
use api_token_exporter::model::{Expiry, ProbeOutcome, TokenFacts};
use api_token_exporter::provider::ProbeRun;
use api_token_exporter::server::tokens_body;
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
fn the_tokens_answer_is_never_held_whole() {
    api_token_exporter::memory::tune_allocator();
    let store = Arc::new(store_of(10_000));
    // A first answer, so whatever the first one keeps for good is in `before`.
    let mut warm = tokens_body(store.clone(), jiff::Timestamp::now(), None);
    while warm.next_chunk().is_some() {}
    drop(warm);

    let before = rss_anon_kib();
    let mut body = tokens_body(store, jiff::Timestamp::now(), None);
    let (mut total, mut peak) = (0usize, before);
    while let Some(chunk) = body.next_chunk() {
        total += chunk.len();
        peak = peak.max(rss_anon_kib());
    }
    let total_kib = (total / 1024) as u64;
    assert!(
        total_kib > 8 * 1024,
        "10,000 tokens should be megabytes of JSON: {total_kib} KiB"
    );
    // Generous: the order of names and a chunk are a small fraction of the answer, which
    // the handler used to build whole (and the views besides).
    assert!(
        peak.saturating_sub(before) < total_kib / 4,
        "RSS grew by {} KiB while writing a {total_kib} KiB answer",
        peak.saturating_sub(before)
    );
}
