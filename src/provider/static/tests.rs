use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[test]
fn declared_formats() {
    assert_eq!(
        parse_declared("2025-06-30").unwrap(),
        ts("2025-06-30T00:00:00Z")
    );
    assert_eq!(
        parse_declared("2025-06-30T12:00:00+02:00").unwrap(),
        ts("2025-06-30T10:00:00Z")
    );
    assert_eq!(
        parse_declared("2025-06-30T12:00:00.25Z")
            .unwrap()
            .as_millisecond(),
        ts("2025-06-30T12:00:00Z").as_millisecond() + 250
    );
}

#[test]
fn bad_dates_name_the_value_or_describe_it() {
    for bad in ["2025-13-01", "30/06/2025", "2025-06-30T12:00:00", "soon"] {
        let err = parse_declared(bad).unwrap_err();
        assert!(err.contains(&format!("\"{bad}\"")), "{err}");
        assert!(err.contains("YYYY-MM-DD"), "{err}");
    }
    let pasted = "glpat-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let err = parse_declared(pasted).unwrap_err();
    assert!(!err.contains("glpat"), "{err}");
    assert!(
        err.contains(&format!("({} characters)", pasted.len())),
        "{err}"
    );
}

#[test]
fn the_year_9999_means_never() {
    for never in [
        "9999-12-31",
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59.999999999+00:00",
        "9999-01-01",
        " 9999-12-31 ",
    ] {
        assert_eq!(parse_declared_expiry(never), Ok(None), "{never}");
    }
    assert_eq!(
        parse_declared_expiry("2030-01-01"),
        Ok(Some(ts("2030-01-01T00:00:00Z")))
    );
    // Without an offset the sentinel is as wrong as any other date without one.
    assert!(parse_declared_expiry("9999-12-31T23:59:59").is_err());
    let err = parse_declared_expiry("10000-01-01").unwrap_err();
    assert!(err.contains("is not a date"), "{err}");
}

#[test]
fn verdict_follows_the_declared_expiry() {
    let exp = ts("2025-06-30T00:00:00Z");
    let before = evaluate(Some(exp), None, ts("2025-06-29T23:59:59Z"));
    assert_eq!(
        (before.verdict, before.reason),
        (Verdict::Valid, Reason::Ok)
    );
    assert_eq!(before.facts.expiry, Expiry::At(exp));
    assert_eq!(before.facts.extra["declared"], "true");
    assert!(before.detail.contains("not checked with a provider"));
    let at = evaluate(Some(exp), None, exp);
    assert_eq!((at.verdict, at.reason), (Verdict::Invalid, Reason::Expired));
    assert_eq!(at.facts.expiry, Expiry::At(exp));
    assert!(at.detail.contains("declared"));
    let never = evaluate(None, None, exp);
    assert_eq!(never.verdict, Verdict::Valid);
    assert_eq!(never.facts.expiry, Expiry::Never);
}

#[test]
fn issued_at_is_a_fact_and_the_future_is_flagged() {
    let now = ts("2025-01-01T00:00:00Z");
    let o = evaluate(None, Some(ts("2024-01-01T00:00:00Z")), now);
    assert_eq!(o.facts.issued_at, Some(ts("2024-01-01T00:00:00Z")));
    assert!(o.facts.flags.is_empty());
    let o = evaluate(None, Some(ts("2026-01-01T00:00:00Z")), now);
    assert_eq!(o.facts.flags.len(), 1);
}

#[test]
fn a_listed_last_use_and_window_become_facts() {
    let params = crate::schema::TokenParams {
        last_used_at: Some("2025-05-01T10:00:00Z".into()),
        sliding_window_seconds: Some(2_592_000),
        ..Default::default()
    };
    let mut o = evaluate(
        Some(ts("2025-05-31T10:00:00Z")),
        None,
        ts("2025-05-02T00:00:00Z"),
    );
    listed(&params, &mut o.facts);
    assert_eq!(o.facts.last_used_at, Some(ts("2025-05-01T10:00:00Z")));
    assert_eq!(
        o.facts.expiry_model,
        crate::model::ExpiryModel::Sliding {
            window_seconds: 2_592_000
        }
    );
    let mut o = evaluate(None, None, ts("2025-05-02T00:00:00Z"));
    listed(&Default::default(), &mut o.facts);
    assert_eq!(o.facts.last_used_at, None);
    assert_eq!(o.facts.expiry_model, crate::model::ExpiryModel::Fixed);
}
