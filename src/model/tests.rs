use super::*;

fn ts(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

#[test]
fn severity_uses_both_windows() {
    let th = Thresholds {
        warning_before: Duration::from_secs(14 * 86_400),
        critical_before: Duration::from_secs(3 * 86_400),
    };
    let now = ts(1_000_000_000);
    let at = |days: i64| Expiry::At(ts(1_000_000_000 + days * 86_400));
    assert_eq!(th.severity(at(30), now), Severity::Ok);
    assert_eq!(th.severity(at(10), now), Severity::Warning);
    assert_eq!(th.severity(at(2), now), Severity::Critical);
    assert_eq!(th.severity(at(-1), now), Severity::Critical);
    assert_eq!(th.severity(Expiry::Never, now), Severity::Ok);
    assert_eq!(th.severity(Expiry::Undisclosed, now), Severity::Ok);
}

#[test]
fn relative_time_reads_naturally() {
    let now = ts(1_000_000_000);
    assert_eq!(
        human_relative(ts(1_000_000_000 + 6 * 86_400 + 5), now),
        "in 6 days"
    );
    assert_eq!(human_relative(ts(1_000_000_000 - 3_600), now), "1 hour ago");
    assert_eq!(human_relative(ts(1_000_000_000 + 59), now), "in 59 seconds");
}

#[test]
fn redact_replaces_the_secret_everywhere() {
    let mut o = ProbeOutcome::invalid(Reason::Revoked, "token s3cr3t-value was revoked");
    o.facts.subject = Some("s3cr3t-value".into());
    o.facts.extra.insert("k".into(), "x s3cr3t-value".into());
    o.facts.scopes = vec!["s3cr3t-value".into()];
    o.redact("s3cr3t-value");
    let text = format!("{o:?}");
    assert!(!text.contains("s3cr3t-value"), "{text}");
    assert_eq!(o.detail, "token <secret> was revoked");
}

/// Issue 16 finding 6: every value of the list is either read (with the anomaly
/// it needed) or unusable with a stable anomaly; none is silently "no expiry".
#[test]
fn numeric_dates_are_read_or_flagged_never_ignored() {
    use serde_json::json;
    let at = |s: i64| Timestamp::from_second(s).unwrap();
    let cases = [
        (
            json!(1_900_000_000),
            ExpiryRead::At(at(1_900_000_000), None),
        ),
        (
            json!("1900000000"),
            ExpiryRead::At(at(1_900_000_000), Some(Anomaly::ExpiryString)),
        ),
        (
            json!(1_900_000_000_000_i64),
            ExpiryRead::At(at(1_900_000_000), Some(Anomaly::ExpiryMilliseconds)),
        ),
        (json!(true), ExpiryRead::Unusable(Anomaly::ExpiryUnreadable)),
        (json!({}), ExpiryRead::Unusable(Anomaly::ExpiryUnreadable)),
        (json!([]), ExpiryRead::Unusable(Anomaly::ExpiryUnreadable)),
        (json!(null), ExpiryRead::Unusable(Anomaly::ExpiryUnreadable)),
        (
            json!("soon"),
            ExpiryRead::Unusable(Anomaly::ExpiryUnreadable),
        ),
        (json!(""), ExpiryRead::Unusable(Anomaly::ExpiryUnreadable)),
        // Year 10000 in seconds: neither seconds nor plausible milliseconds.
        (
            json!(253_402_300_800_i64),
            ExpiryRead::Unusable(Anomaly::ExpiryOutOfRange),
        ),
        (json!(1e18), ExpiryRead::Unusable(Anomaly::ExpiryOutOfRange)),
        (
            json!(i64::MAX),
            ExpiryRead::Unusable(Anomaly::ExpiryOutOfRange),
        ),
        (
            json!(u64::MAX),
            ExpiryRead::Unusable(Anomaly::ExpiryOutOfRange),
        ),
        (json!(-1), ExpiryRead::Unusable(Anomaly::ExpiryOutOfRange)),
        (
            json!(1e308),
            ExpiryRead::Unusable(Anomaly::ExpiryOutOfRange),
        ),
        (
            json!("99999999999999999999"),
            ExpiryRead::Unusable(Anomaly::ExpiryOutOfRange),
        ),
    ];
    for (value, want) in cases {
        assert_eq!(read_numeric_date(Some(&value)), want, "{value}");
    }
    assert_eq!(read_numeric_date(None), ExpiryRead::Absent);
}

#[test]
fn set_expiry_notes_the_anomaly_without_the_value() {
    let mut facts = TokenFacts {
        expiry: Expiry::Never,
        ..TokenFacts::default()
    };
    facts.set_expiry(
        read_numeric_date(Some(&serde_json::json!("canary-3f9a"))),
        "exp",
    );
    assert_eq!(facts.expiry, Expiry::Undisclosed);
    assert_eq!(facts.anomalies, [Anomaly::ExpiryUnreadable]);
    assert_eq!(facts.flags.len(), 1);
    assert!(!facts.flags[0].contains("canary"), "{:?}", facts.flags);
    facts.note(Anomaly::ExpiryUnreadable, "again");
    facts.note(Anomaly::ExpiryMilliseconds, "ms");
    assert_eq!(
        facts.anomalies,
        [Anomaly::ExpiryUnreadable, Anomaly::ExpiryMilliseconds]
    );
}

#[test]
fn only_answers_about_the_token_are_conclusive() {
    let failing: Vec<_> = Verdict::ALL.iter().filter(|v| v.is_failure()).collect();
    assert_eq!(
        failing,
        [
            &Verdict::RateLimited,
            &Verdict::Unreachable,
            &Verdict::Misconfigured
        ]
    );
}
