use super::*;
use crate::model::{Reason, Thresholds};

fn spec(interval: u64) -> TokenSpec {
    TokenSpec {
        name: "t".into(),
        provider: "p".into(),
        source: None,
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

/// A provider that is never called: the pause rules only read an entry's key and provider.
struct Idle;

impl Provider for Idle {
    fn probe<'a>(
        &'a self,
        _token: &'a TokenSpec,
        _secret: &'a crate::secret::Secret,
        _now: Timestamp,
    ) -> crate::provider::BoxFuture<'a, ProbeOutcome> {
        unreachable!("the pause rules never probe")
    }
}

fn entry(name: &str, limit: LimitKey) -> Entry {
    Entry {
        spec: Arc::new(TokenSpec {
            name: name.into(),
            ..spec(60)
        }),
        provider: Arc::new(Idle),
        generation: 1,
        failures: 0,
        in_flight: false,
        rerun: false,
        first: false,
        limit,
        paused_until: None,
    }
}

#[test]
fn a_pause_holds_the_tokens_that_share_the_limit() {
    let now = Instant::now();
    let hour = Duration::from_secs(3600);
    let mut paused = HashMap::new();
    let mut alice = entry("alice", LimitKey::Identity("1".into()));
    let mut alice_too = entry("alice-too", LimitKey::Identity("1".into()));
    let mut bob = entry("bob", LimitKey::Identity("2".into()));
    let mut unknown = entry("unknown", LimitKey::Token);
    assert_eq!(
        pause_tokens(&mut paused, &mut alice, false, now, hour),
        "identity"
    );
    assert_eq!(
        paused_until(&mut paused, &mut alice_too, now),
        Some(now + hour)
    );
    assert_eq!(paused_until(&mut paused, &mut bob, now), None);
    assert_eq!(paused_until(&mut paused, &mut unknown, now), None);
    // A token whose identity is not known pauses alone.
    assert_eq!(
        pause_tokens(&mut paused, &mut unknown, false, now, hour),
        "token"
    );
    assert_eq!(
        paused_until(&mut paused, &mut unknown, now),
        Some(now + hour)
    );
    assert_eq!(paused_until(&mut paused, &mut bob, now), None);
    // A refusal the answer marks as the whole entry's pauses everyone, whatever their key.
    let minute = Duration::from_secs(60);
    assert_eq!(
        pause_tokens(&mut paused, &mut bob, true, now, minute),
        "provider"
    );
    assert_eq!(paused_until(&mut paused, &mut bob, now), Some(now + minute));
    // The longest pause that applies wins, and pauses that are over are dropped.
    assert_eq!(
        paused_until(&mut paused, &mut alice_too, now),
        Some(now + hour)
    );
    let later = now + hour + Duration::from_secs(1);
    for e in [&mut alice, &mut alice_too, &mut bob, &mut unknown] {
        assert_eq!(paused_until(&mut paused, e, later), None);
    }
    assert!(paused.is_empty(), "pauses that are over were kept");
}

#[test]
fn a_kind_counted_per_entry_pauses_the_entry() {
    let now = Instant::now();
    let mut paused = HashMap::new();
    let mut a = entry("a", LimitKey::Entry);
    let mut b = entry("b", LimitKey::Entry);
    pause_tokens(&mut paused, &mut a, false, now, Duration::from_secs(30));
    assert_eq!(
        paused_until(&mut paused, &mut b, now),
        Some(now + Duration::from_secs(30))
    );
    // A shorter pause does not shorten a running one.
    pause_tokens(&mut paused, &mut b, false, now, Duration::from_secs(5));
    assert_eq!(
        paused_until(&mut paused, &mut a, now),
        Some(now + Duration::from_secs(30))
    );
}
