//! `GET /api/v1/tokens` at scale holds a chunk of its answer, not the whole: the answer is
//! written from the store a chunk at a time. Its own test binary, so no other test
//! allocates in this process while it measures, and so the allocator settings it applies
//! (`memory::tune_allocator`, process-wide) reach no other test: the integration tests in
//! `tests/it/` share one process.

#![cfg(all(target_os = "linux", target_env = "gnu"))]

mod support;

use support::rss;

use std::sync::Arc;

use api_token_exporter::server::tokens_body;

#[test]
fn the_tokens_answer_is_never_held_whole() {
    api_token_exporter::memory::tune_allocator();
    let store = Arc::new(rss::store_of(10_000));
    // A first answer, so whatever the first one keeps for good is in `before`.
    let mut warm = tokens_body(store.clone(), jiff::Timestamp::now());
    while warm.next_chunk().is_some() {}
    drop(warm);

    let before = rss::rss_anon_kib();
    let mut body = tokens_body(store, jiff::Timestamp::now());
    let (mut total, mut peak) = (0usize, before);
    while let Some(chunk) = body.next_chunk() {
        total += chunk.len();
        peak = peak.max(rss::rss_anon_kib());
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
