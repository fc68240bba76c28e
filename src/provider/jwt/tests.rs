use super::*;
use serde_json::json;

const NOW: i64 = 1_700_000_000;

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[test]
fn split_reads_header_and_claims() {
    let t = format!(
        "{}.{}.sig",
        b64(&json!({"alg":"RS256"})),
        b64(&json!({"sub":"x"}))
    );
    let (h, c) = split(&t).unwrap();
    assert_eq!(h["alg"], "RS256");
    assert_eq!(c["sub"], "x");
}

#[test]
fn split_refuses_non_jwts() {
    for t in [
        "ghp_abc",
        "a.b",
        "a.b.c.d.e",
        "!!.??.x",
        &format!("{}.{}.s", b64(&json!([1])), b64(&json!({}))),
    ] {
        let o = split(t).unwrap_err();
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Invalid, Reason::Malformed),
            "{t}"
        );
        assert!(
            !o.detail.contains(t) || t.len() < 4,
            "detail echoes the token"
        );
    }
}

#[test]
fn evaluate_states() {
    let leeway = Duration::from_secs(60);
    let valid = evaluate(
        &json!({"exp": NOW + 3600, "sub": "svc"}),
        true,
        now(),
        leeway,
    );
    assert_eq!(valid.verdict, Verdict::Valid);
    assert_eq!(
        valid.facts.expiry.timestamp().unwrap().as_second(),
        NOW + 3600
    );
    let unverified = evaluate(&json!({"exp": NOW + 3600}), false, now(), leeway);
    assert_eq!(
        (unverified.verdict, unverified.reason),
        (Verdict::Unverified, Reason::NoKey)
    );
    let expired = evaluate(&json!({"exp": NOW - 1}), true, now(), leeway);
    assert_eq!(
        (expired.verdict, expired.reason),
        (Verdict::Invalid, Reason::Expired)
    );
    assert_eq!(
        expired.facts.expiry.timestamp().unwrap().as_second(),
        NOW - 1
    );
    let early = evaluate(&json!({"nbf": NOW + 600}), true, now(), leeway);
    assert_eq!(early.reason, Reason::NotYetValid);
    let skewed = evaluate(&json!({"nbf": NOW + 30}), true, now(), leeway);
    assert_eq!(skewed.verdict, Verdict::Valid);
    let forever = evaluate(&json!({"sub": "x"}), true, now(), leeway);
    assert_eq!(forever.facts.expiry, Expiry::Never);
}

/// Issue 16 finding 6: a JWT without `exp` never expires, but one whose `exp` is there
/// and unusable is undisclosed with its anomaly, never "never".
#[test]
fn unusable_exp_is_not_never() {
    for exp in [
        json!(true),
        json!({}),
        json!(null),
        json!("soon"),
        json!(1e18),
    ] {
        let o = evaluate(
            &json!({"sub": "x", "exp": exp}),
            true,
            now(),
            Duration::ZERO,
        );
        assert_eq!(o.verdict, Verdict::Valid, "{exp}");
        assert_eq!(o.facts.expiry, Expiry::Undisclosed, "{exp}");
        assert_eq!(o.facts.anomalies.len(), 1, "{exp}");
        assert_eq!(o.facts.flags.len(), 1, "{exp}");
    }
    let ms = evaluate(
        &json!({"exp": (NOW + 60) * 1000}),
        true,
        now(),
        Duration::ZERO,
    );
    assert_eq!(ms.facts.expiry.timestamp().unwrap().as_second(), NOW + 60);
    assert_eq!(
        ms.facts.anomalies,
        [crate::model::Anomaly::ExpiryMilliseconds]
    );
}

#[test]
fn kubernetes_warnafter_wins_over_extended_exp() {
    let claims = json!({"exp": NOW + 365 * 86_400, "kubernetes.io": {"warnafter": NOW + 3600}});
    let o = evaluate(&claims, true, now(), Duration::ZERO);
    assert_eq!(o.facts.expiry.timestamp().unwrap().as_second(), NOW + 3600);
    assert!(o.facts.extra.contains_key("exp"));
}

#[test]
fn config_refuses_weak_or_unknown_algorithms() {
    let mut c = Config {
        jwks_uri: Some("http://127.0.0.1/jwks".into()),
        jwks_url: None,
        issuer: None,
        algorithms: Some(vec!["HS256".into()]),
        jwks_cache: None,
        leeway: None,
        max_concurrency: None,
    };
    assert!(c.validate().unwrap_err().contains("HS256"));
    c.algorithms = Some(vec!["none".into()]);
    assert!(c.validate().is_err());
    c.algorithms = Some(vec!["ES256".into()]);
    assert!(c.validate().is_ok());
}

/// The old `jwks_url` is `jwks_uri` under its old name: same meaning, reported as renamed,
/// and refused beside the new name.
#[test]
fn the_old_jwks_url_still_works() {
    let mut c = Config {
        jwks_uri: None,
        jwks_url: Some("http://127.0.0.1/jwks".into()),
        issuer: None,
        algorithms: Some(vec!["ES256".into()]),
        jwks_cache: None,
        leeway: None,
        max_concurrency: None,
    };
    assert!(c.validate().is_ok());
    assert_eq!(c.jwks().map(String::as_str), Some("http://127.0.0.1/jwks"));
    assert_eq!(c.renamed_in_use()[0].new, "jwks_uri");
    c.jwks_uri = Some("http://127.0.0.1/jwks".into());
    assert!(c.validate().unwrap_err().contains("jwks_uri and jwks_url"));
    c.jwks_url = None;
    assert!(c.validate().is_ok());
    assert!(c.renamed_in_use().is_empty());
}
