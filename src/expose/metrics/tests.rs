use std::sync::Arc;
use std::sync::atomic::Ordering;

use jiff::Timestamp;

use crate::model::epoch_seconds;
use crate::state::store::Store;

use super::*;
use crate::config::Config;
use crate::model::ProbeRun;
use crate::model::{Anomaly, Expiry, ProbeOutcome, RateLimit, Reason, TokenFacts, Verdict};
use std::time::Duration;

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

/// A store with a token in each shape `/metrics` distinguishes: never probed, valid with
/// every fact, invalid, failing with a kept expiry, with policies, and with label values
/// that need escaping; providers with failures and rate limits; two notifiers.
fn sample() -> (Arc<Store>, Arc<ExporterStatus>) {
    let config = Config::parse(
            r#"
global:
  policies: {max_age: 30d, forbidden_scopes: [admin]}
providers:
  idp: {kind: oauth2_introspection, introspection_endpoint: "http://127.0.0.1:9/introspect", client_id: x, client_secret: {env: CS}}
  declared: {kind: static}
tokens:
  - name: ci-deploy
    provider: idp
    secret: {env: A}
    labels: {team: "pay\"ments", note: "back\\slash\nnewline"}
  - name: fresh
    provider: idp
    secret: {env: B}
    policies: {max_age: off, forbidden_scopes: []}
  - name: revoked
    provider: idp
    secret: {env: C}
    warning_before: 3d
    critical_before: 12h
  - name: flaky
    provider: idp
    secret: {env: D}
  - name: partner
    provider: declared
    expires_at: 2031-06-30
"#,
        )
        .expect("the sample config loads");
    let store = Arc::new(Store::new());
    store.reconcile(&config);
    let facts = TokenFacts {
        expiry: Expiry::At(at(1_900_000_000)),
        issued_at: Some(at(1_700_000_000)),
        last_used_at: Some(Timestamp::from_millisecond(1_800_000_000_250).unwrap()),
        subject: Some("svc-\"deploy\"".into()),
        scopes: vec!["read".into(), "admin".into()],
        anomalies: vec![Anomaly::ExpiryMilliseconds, Anomaly::ScopesCapped],
        ..TokenFacts::default()
    };
    let run = |outcome: ProbeOutcome, fp: &str, ms: u64| ProbeRun {
        outcome,
        fingerprint: Some(format!("sha256:{fp}")),
        duration: Duration::from_millis(ms),
    };
    store.record(
        "ci-deploy",
        run(ProbeOutcome::valid(facts.clone()), "aaaaaaaaaaaa", 12),
        at(1_799_999_000),
    );
    let mut limited = ProbeOutcome::new(Verdict::RateLimited, Reason::RateLimited, "429");
    limited.rate_limit = Some(RateLimit {
        remaining: Some(0.0),
        limit: Some(5000.0),
        reset_at: Some(at(1_800_000_060)),
    });
    store.record(
        "flaky",
        run(ProbeOutcome::valid(facts), "dddddddddddd", 7),
        at(1_799_999_100),
    );
    store.record(
        "flaky",
        run(limited, "dddddddddddd", 1500),
        at(1_799_999_200),
    );
    store.record(
        "revoked",
        run(
            ProbeOutcome::valid(TokenFacts::default()),
            "bbbbbbbbbbbb",
            3,
        ),
        at(1_799_999_250),
    );
    store.record(
        "revoked",
        run(
            ProbeOutcome::new(Verdict::Invalid, Reason::Revoked, "revoked"),
            "cccccccccccc",
            3,
        ),
        at(1_799_999_300),
    );
    store.record(
        "partner",
        ProbeRun {
            outcome: ProbeOutcome::valid(TokenFacts {
                expiry: Expiry::At(at(1_940_976_000)),
                ..TokenFacts::default()
            }),
            fingerprint: None,
            duration: Duration::ZERO,
        },
        at(1_799_999_400),
    );
    let status = Arc::new(ExporterStatus::new());
    status
        .last_reload_success
        .store(1_799_990_000, Ordering::Relaxed);
    status
        .web
        .last_reload_success
        .store(1_799_980_000, Ordering::Relaxed);
    status
        .notifications
        .reconcile(["email", "team-slack"].into_iter());
    status.notifications.attempted("team-slack");
    status.notifications.failed("team-slack");
    status
        .notifications
        .succeeded("team-slack", at(1_799_999_500));
    (store, status)
}

/// The exposition, byte for byte. `tests/testdata/metrics.golden` was first written by
/// prometheus-client's encoder; the hand-written one must keep every byte of it (an
/// OpenMetrics parser in Prometheus reads it in tests/it/prometheus.rs). Policy findings
/// depend on the clock, so the sample keeps them far from any boundary.
#[test]
fn exposition_matches_the_golden_file() {
    let (store, status) = sample();
    // Every collector on: the golden file holds every family.
    let text = render(&Metrics::new(store, status).with_collectors(Collectors::all()));
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testdata/metrics.golden");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &text).unwrap();
    }
    let golden = std::fs::read_to_string(path).expect("run with UPDATE_GOLDEN=1 once");
    assert_eq!(text, golden);
}

/// Written in small chunks, the text is the same: no series lost or repeated at a chunk
/// boundary, whichever family or row the boundary falls in.
#[test]
fn chunked_writing_gives_the_same_text() {
    let (store, status) = sample();
    let metrics = Metrics::new(store, status);
    let whole = render(&metrics);
    for limit in [1, 7, 100, 1000] {
        let mut e = metrics.snapshot();
        let mut joined = String::new();
        let mut chunks = 0;
        loop {
            let mut chunk = String::new();
            let more = e.write_chunk(&mut chunk, limit);
            joined.push_str(&chunk);
            chunks += 1;
            if !more {
                break;
            }
        }
        assert_eq!(joined, whole, "chunk limit {limit}");
        assert!(chunks > 5, "limit {limit} gave {chunks} chunks");
    }
}

/// As an HTTP body: frames until the end, then the end, and the same text.
#[tokio::test]
async fn the_body_streams_the_exposition() {
    use http_body_util::BodyExt;
    let (store, status) = sample();
    let metrics = Metrics::new(store, status);
    let body = metrics.snapshot();
    assert!(!http_body::Body::is_end_stream(&body));
    let bytes = body.collect().await.unwrap().to_bytes();
    assert_eq!(std::str::from_utf8(&bytes).unwrap(), render(&metrics));
}

#[test]
fn whole_floats_are_written_as_dtoa_writes_them() {
    let mut values = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        1e14,
        -1e14,
        999_999_999_999_999.0,
        1e15,
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..100_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let magnitude = 10f64.powi((x % 16) as i32);
        values.push(((x >> 11) as f64 / (1u64 << 53) as f64 * magnitude).trunc());
        values.push(-(((x >> 20) % 4_000_000_000) as f64));
    }
    for v in values {
        let mut ours = String::new();
        push_f64(&mut ours, v);
        let theirs = format!("{}\n", dtoa::Buffer::new().format(v));
        assert_eq!(ours, theirs, "{v:?}");
    }
}

#[test]
fn timestamps_are_written_as_dtoa_writes_them() {
    let mut ms: Vec<i64> = vec![0, 1, 10, 100, 999, 1000, 1001, 1_800_000_000_250, -1, -1500];
    ms.extend([99_999_999_999_999, 100_000_000_000_000, i64::MIN / 2]);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ms.push((x % 100_000_000_000_000) as i64);
        ms.push(1_700_000_000_000 + (x % 200_000_000_000) as i64);
    }
    for ms in ms {
        let Ok(t) = Timestamp::from_millisecond(ms) else {
            continue;
        };
        let mut ours = String::new();
        push_timestamp(&mut ours, t);
        let theirs = format!("{}\n", dtoa::Buffer::new().format(epoch_seconds(t)));
        assert_eq!(ours, theirs, "{ms} ms");
    }
}

/// Each collector and the per-token families it switches, as docs/metrics.md lists them.
const COLLECTED: &[(&str, &[&str])] = &[
    ("info", &["api_token_info"]),
    ("state", &["api_token_state"]),
    ("expiry", &["api_token_expiry_timestamp_seconds"]),
    ("issued", &["api_token_issued_timestamp_seconds"]),
    ("last_used", &["api_token_last_used_timestamp_seconds"]),
    ("scope", &["api_token_scope_info"]),
    ("anomaly", &["api_token_answer_anomaly"]),
    ("first_seen", &["api_token_first_seen_timestamp_seconds"]),
    ("rotated", &["api_token_rotated_timestamp_seconds"]),
    ("policy", &["api_token_policy_violation"]),
    ("last_probe", &["api_token_last_probe_timestamp_seconds"]),
    (
        "last_verdict",
        &["api_token_last_verdict_timestamp_seconds"],
    ),
    ("probe_duration", &["api_token_probe_duration_seconds"]),
    (
        "threshold",
        &[
            "api_token_warning_threshold_seconds",
            "api_token_critical_threshold_seconds",
        ],
    ),
];

/// The names of the families a text declares.
fn families_in(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect()
}

/// The text without the families named.
fn without(text: &str, families: &[&str]) -> String {
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let name = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
            .unwrap_or(line);
        let name = name.split(['{', ' ']).next().unwrap_or("");
        if !families.contains(&name) {
            out.push_str(line);
        }
    }
    out
}

#[test]
fn each_collector_writes_exactly_its_families() {
    let (store, status) = sample();
    let metrics = Metrics::new(store, status);
    let all = render(&metrics.clone().with_collectors(Collectors::all()));
    assert_eq!(Collector::ALL.len(), COLLECTED.len());
    for c in Collector::ALL {
        let (_, families) = COLLECTED
            .iter()
            .find(|(name, _)| *name == c.name())
            .unwrap_or_else(|| panic!("{} is not in COLLECTED", c.name()));
        for f in *families {
            assert!(families_in(&all).contains(f), "the sample lacks {f}");
        }
        // Off: exactly its families are gone, nothing else changes.
        let mut set = Collectors::all();
        set.set(c, false);
        let text = render(&metrics.clone().with_collectors(set));
        assert_eq!(text, without(&all, families), "without {}", c.name());
        // Alone: its families and the exporter's own, no other per-token family.
        let text = render(&metrics.clone().with_collectors(Collectors::of([c])));
        let others: Vec<&str> = COLLECTED
            .iter()
            .filter(|(name, _)| *name != c.name())
            .flat_map(|(_, f)| f.iter().copied())
            .collect();
        assert_eq!(text, without(&all, &others), "only {}", c.name());
    }
}

#[test]
fn the_defaults_leave_out_what_no_shipped_alert_or_panel_reads() {
    let (store, status) = sample();
    let metrics = Metrics::new(store, status);
    let all = render(&metrics.clone().with_collectors(Collectors::all()));
    let off = [
        "api_token_issued_timestamp_seconds",
        "api_token_last_used_timestamp_seconds",
        "api_token_first_seen_timestamp_seconds",
        "api_token_rotated_timestamp_seconds",
        "api_token_last_probe_timestamp_seconds",
        "api_token_probe_duration_seconds",
    ];
    assert_eq!(render(&metrics), without(&all, &off));
}
