use super::*;
use crate::model::{Reason, Thresholds};

fn spec(interval: u64) -> TokenSpec {
    TokenSpec {
        name: "t".into(),
        provider: "p".into(),
        secret: None,
        labels: Default::default(),
        thresholds: Thresholds {
            warning_before: Duration::from_secs(100),
            critical_before: Duration::from_secs(10),
        },
        probe_interval: Duration::from_secs(interval),
        probe_timeout: Duration::from_secs(5),
        params: Default::default(),
        policies: Default::default(),
        metric_labels: Default::default(),
    }
}

fn global() -> Global {
    Global {
        probe_interval: Duration::from_secs(300),
        probe_timeout: Duration::from_secs(10),
        min_probe_interval: Duration::from_secs(60),
        max_backoff: Duration::from_secs(1800),
        thresholds: Thresholds {
            warning_before: Duration::from_secs(100),
            critical_before: Duration::from_secs(10),
        },
        max_concurrency: 4,
        policies: Default::default(),
    }
}

fn now() -> Timestamp {
    Timestamp::from_second(1_000_000).unwrap()
}

fn expiring_in(secs: i64) -> Expiry {
    Expiry::At(Timestamp::from_second(1_000_000 + secs).unwrap())
}

#[test]
fn healthy_tokens_use_their_interval() {
    let ok = ProbeOutcome::valid(Default::default());
    assert_eq!(
        next_delay(&spec(300), &global(), &ok, expiring_in(86_400), 0, now()),
        Duration::from_secs(300)
    );
    assert_eq!(
        next_delay(&spec(300), &global(), &ok, Expiry::Never, 0, now()),
        Duration::from_secs(300)
    );
}

#[test]
fn probing_speeds_up_near_expiry_down_to_the_floor() {
    let ok = ProbeOutcome::valid(Default::default());
    let g = global();
    assert_eq!(
        next_delay(&spec(300), &g, &ok, expiring_in(800), 0, now()),
        Duration::from_secs(200)
    );
    assert_eq!(
        next_delay(&spec(300), &g, &ok, expiring_in(100), 0, now()),
        Duration::from_secs(60)
    );
}

#[test]
fn failures_back_off_and_honour_retry_after() {
    let down = ProbeOutcome::unreachable(Reason::Connect, "down");
    let g = global();
    let d = |n| next_delay(&spec(300), &g, &down, Expiry::Never, n, now());
    assert_eq!(d(1), Duration::from_secs(60));
    assert_eq!(d(2), Duration::from_secs(120));
    assert_eq!(d(3), Duration::from_secs(240));
    assert_eq!(d(20), Duration::from_secs(1800));
    let limited = ProbeOutcome::rate_limited(Some(Duration::from_secs(900)), "429");
    assert_eq!(
        next_delay(&spec(300), &g, &limited, Expiry::Never, 1, now()),
        Duration::from_secs(900)
    );
}

#[test]
fn provider_waits_are_honoured_up_to_a_day() {
    let g = global();
    let absurd = ProbeOutcome::rate_limited(Some(Duration::from_secs(u64::MAX)), "429");
    assert_eq!(
        next_delay(&spec(300), &g, &absurd, Expiry::Never, 1, now()),
        MAX_PROVIDER_WAIT
    );
    assert_eq!(provider_pause(&absurd, now()), Some(MAX_PROVIDER_WAIT));
    // The loop jitters and adds these to `Instant::now()`; neither may overflow.
    let delay = jitter(next_delay(&spec(300), &g, &absurd, Expiry::Never, 1, now()));
    assert!(Instant::now().checked_add(delay).is_some());
    let far_reset =
        ProbeOutcome::valid(Default::default()).with_rate_limit(Some(crate::model::RateLimit {
            remaining: Some(0.0),
            limit: None,
            reset_at: Some(jiff::Timestamp::MAX),
        }));
    assert_eq!(provider_pause(&far_reset, now()), Some(MAX_PROVIDER_WAIT));
}

#[test]
fn rate_limited_provider_is_paused() {
    let limited = ProbeOutcome::rate_limited(Some(Duration::from_secs(30)), "429");
    assert_eq!(
        provider_pause(&limited, now()),
        Some(Duration::from_secs(30))
    );
    let exhausted =
        ProbeOutcome::valid(Default::default()).with_rate_limit(Some(crate::model::RateLimit {
            remaining: Some(0.0),
            limit: Some(5000.0),
            reset_at: Some(Timestamp::from_second(1_000_120).unwrap()),
        }));
    assert_eq!(
        provider_pause(&exhausted, now()),
        Some(Duration::from_secs(120))
    );
    assert_eq!(
        provider_pause(&ProbeOutcome::valid(Default::default()), now()),
        None
    );
}
