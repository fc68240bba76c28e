//! What the memory tests measure with: the process's anonymous resident memory, and a store
//! filled with valid answers for a large inventory. Only `tests/memory.rs` and
//! `tests/memory_api.rs` use it, each in a process of its own.

use std::time::Duration;

use api_token_exporter::config::Config;
use api_token_exporter::model::{Expiry, ProbeOutcome, TokenFacts};
use api_token_exporter::provider::ProbeRun;
use api_token_exporter::store::Store;

pub fn rss_anon_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssAnon in /proc/self/status")
}

pub fn store_of(n: usize) -> Store {
    let config = Config::parse(&super::large_inventory(n)).unwrap_or_else(|e| panic!("{e}"));
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
