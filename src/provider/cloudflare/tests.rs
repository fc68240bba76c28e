use super::*;
use crate::provider::http::test_headers as headers;

const NOW: i64 = 1_700_000_000;

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

fn p(status: u16, body: &str) -> ProbeOutcome {
    parse(
        status,
        &HeaderMap::new(),
        body.as_bytes(),
        now(),
        Owner::User,
    )
}

const INVALID: &str = r#"{"success":false,"errors":[{"code":1000,"message":"Invalid API Token"}],"messages":[],"result":null}"#;

#[test]
fn active_token_with_dates() {
    let o = p(
        200,
        r#"{"success":true,"errors":[],"messages":[{"code":10000,"message":"This API Token is valid and active","type":null}],
               "result":{"id":"ed17574386854bf78a67040be0a770b0","status":"active",
               "not_before":"2023-11-01T00:00:00Z","expires_on":"2024-01-01T00:00:00Z"}}"#,
    );
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok));
    assert_eq!(
        o.facts.expiry,
        Expiry::At("2024-01-01T00:00:00Z".parse().unwrap())
    );
    assert_eq!(
        o.facts.not_before,
        Some("2023-11-01T00:00:00Z".parse().unwrap())
    );
    assert_eq!(
        o.facts.extra["token_id"],
        "ed17574386854bf78a67040be0a770b0"
    );
    assert_eq!(o.facts.extra["owner"], "user");
    assert!(o.facts.flags.is_empty());
}

#[test]
fn absent_or_null_dates_mean_never() {
    for body in [
        r#"{"success":true,"errors":[],"messages":[],"result":{"id":"x","status":"active"}}"#,
        r#"{"success":true,"result":{"id":"x","status":"active","expires_on":null,"not_before":null}}"#,
    ] {
        let o = p(200, body);
        assert_eq!(o.verdict, Verdict::Valid);
        assert_eq!(o.facts.expiry, Expiry::Never);
        assert_eq!(o.facts.not_before, None);
    }
}

#[test]
fn disabled_and_expired_states() {
    let o = p(
        200,
        r#"{"success":true,"result":{"id":"x","status":"disabled"}}"#,
    );
    assert_eq!((o.verdict, o.reason), (Verdict::Invalid, Reason::Disabled));
    let o = p(
        200,
        r#"{"success":true,"result":{"id":"x","status":"expired","expires_on":"2023-01-01T00:00:00Z"}}"#,
    );
    assert_eq!((o.verdict, o.reason), (Verdict::Invalid, Reason::Expired));
    assert_eq!(
        o.facts.expiry.timestamp(),
        Some("2023-01-01T00:00:00Z".parse().unwrap())
    );
}

#[test]
fn suspect_dates_on_active_tokens_are_flagged() {
    let o = p(
        200,
        r#"{"success":true,"result":{"id":"x","status":"active","expires_on":"2023-01-01T00:00:00Z","not_before":"2030-01-01T00:00:00Z"}}"#,
    );
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.flags.len(), 2, "{:?}", o.facts.flags);
}

#[test]
fn error_1000_is_invalid_and_rejected() {
    let v = classify(
        401,
        &HeaderMap::new(),
        INVALID.as_bytes(),
        now(),
        Owner::User,
    );
    assert_eq!(
        (v.outcome.verdict, v.outcome.reason),
        (Verdict::Invalid, Reason::UnknownToken)
    );
    assert!(v.rejected);
    assert!(v.outcome.detail.contains("account_id"));
}

#[test]
fn bad_header_codes_are_malformed() {
    let o = p(
        400,
        r#"{"success":false,"errors":[{"code":6003,"message":"Invalid request headers","error_chain":[{"code":6111,"message":"Invalid format for Authorization header"}]}],"messages":[],"result":null}"#,
    );
    assert_eq!((o.verdict, o.reason), (Verdict::Invalid, Reason::Malformed));
    assert!(o.detail.contains("6111"), "{}", o.detail);
}

#[test]
fn other_error_codes_are_not_invalid() {
    let v = classify(
            403,
            &HeaderMap::new(),
            br#"{"success":false,"errors":[{"code":9109,"message":"Unauthorized to access requested resource"}]}"#,
            now(),
            Owner::Account,
        );
    assert_eq!(v.outcome.verdict, Verdict::Unreachable);
    assert!(v.rejected);
    assert!(v.outcome.detail.contains("9109"));
}

#[test]
fn combine_prefers_the_user_endpoint_unless_it_rejects() {
    let rejected = |owner| classify(401, &HeaderMap::new(), INVALID.as_bytes(), now(), owner);
    let ok = classify(
        200,
        &HeaderMap::new(),
        br#"{"success":true,"result":{"id":"x","status":"active"}}"#,
        now(),
        Owner::User,
    );
    let o = combine(rejected(Owner::Account), ok);
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.extra["owner"], "user");
    let o = combine(rejected(Owner::Account), rejected(Owner::User));
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::UnknownToken)
    );
    assert!(o.detail.contains("both"));
    let down = classify(503, &HeaderMap::new(), b"", now(), Owner::User);
    let o = combine(rejected(Owner::Account), down);
    assert_eq!(o.verdict, Verdict::Unreachable);
}

#[test]
fn rate_limited_waits_five_minutes_by_default() {
    let o = p(429, "");
    assert_eq!(o.verdict, Verdict::RateLimited);
    assert_eq!(o.retry_after, Some(DEFAULT_RATE_LIMIT_WAIT));
    let h = headers(&[("retry-after", "42")]);
    let o = parse(429, &h, b"", now(), Owner::User);
    assert_eq!(o.retry_after, Some(Duration::from_secs(42)));
}

#[test]
fn structured_rate_limit_headers() {
    let h = headers(&[
        ("ratelimit", "\"default\";r=1150;t=240, \"burst\";r=90;t=30"),
        (
            "ratelimit-policy",
            "\"default\";q=1200;w=300, \"burst\";q=100;w=60",
        ),
    ]);
    let rate = rate_limit(&h, now()).unwrap();
    assert_eq!(rate.remaining, Some(90.0));
    assert_eq!(rate.limit, Some(100.0));
    assert_eq!(rate.reset_at.unwrap().as_second(), NOW + 30);
    let o = parse(
        200,
        &h,
        br#"{"success":true,"result":{"id":"x","status":"active"}}"#,
        now(),
        Owner::User,
    );
    assert_eq!(o.rate_limit.unwrap().remaining, Some(90.0));
    assert!(rate_limit(&headers(&[("ratelimit", "garbage")]), now()).is_none());
}

#[test]
fn garbage_and_outages_are_unreachable() {
    for (status, body) in [
        (200, "<html>Attention Required! | Cloudflare</html>"),
        (200, ""),
        (200, "{}"),
        (200, r#"{"success":"true"}"#),
        (200, r#"{"success":true,"result":null}"#),
        (200, r#"{"success":true,"result":{"status":"paused"}}"#),
        (
            200,
            r#"{"success":true,"result":{"status":"active","expires_on":"tomorrow"}}"#,
        ),
        (
            200,
            r#"{"success":true,"result":{"status":"active","expires_on":1700000000}}"#,
        ),
        (401, "<html>401</html>"),
        (500, ""),
        (502, "<html>bad gateway</html>"),
        (302, ""),
    ] {
        let o = p(status, body);
        assert_eq!(o.verdict, Verdict::Unreachable, "{status} {body}: {o:?}");
    }
}

#[test]
fn config_checks() {
    let mut c = Config {
        url: None,
        api_url: None,
        account_id: Some("023e105f4ecef8ad9ca31a8372d0c353".into()),
        max_concurrency: None,
    };
    assert!(c.validate().is_ok());
    assert_eq!(
        c.api_base().unwrap(),
        ("url", "https://api.cloudflare.com/client/v4".into())
    );
    c.account_id = Some("../zones".into());
    assert!(c.validate().unwrap_err().contains("account_id"));
    c.account_id = None;
    c.url = Some("not a url".into());
    assert!(c.validate().unwrap_err().starts_with("url: "));
}

/// The old name keeps its old meaning (the API base, `/client/v4` included), is reported as
/// renamed, and may not be given beside the new one.
#[test]
fn the_old_api_url_still_works() {
    let mut c = Config {
        url: None,
        api_url: Some("http://127.0.0.1:8080/cf/client/v4/".into()),
        account_id: None,
        max_concurrency: None,
    };
    assert!(c.validate().is_ok());
    assert_eq!(
        c.api_base().unwrap(),
        ("api_url", "http://127.0.0.1:8080/cf/client/v4/".into())
    );
    assert_eq!(c.renamed_in_use()[0].old, "api_url");
    let new = Config {
        url: Some("http://127.0.0.1:8080/cf".into()),
        api_url: None,
        ..c.clone()
    };
    assert_eq!(
        new.api_base().unwrap().1,
        "http://127.0.0.1:8080/cf/client/v4"
    );
    assert!(new.renamed_in_use().is_empty());
    c.url = Some("http://127.0.0.1:8080/cf".into());
    let err = c.validate().unwrap_err();
    assert!(err.contains("url and api_url"), "{err}");
}

/// Cloudflare's limit is per user or per account token, and the verify answer names no
/// user (issue 18): each token pauses alone, never the whole entry.
#[test]
fn rate_limit_key_is_the_token() {
    let cloudflare = Config {
        url: None,
        api_url: None,
        account_id: None,
        max_concurrency: None,
    }
    .build(&BuildContext::new())
    .unwrap();
    let o = p(
        200,
        r#"{"success":true,"errors":[],"messages":[],"result":{"id":"ed17","status":"active"}}"#,
    );
    assert_eq!(
        cloudflare.rate_limit_key(&o.facts),
        crate::provider::LimitKey::Token
    );
}
