use super::*;
use crate::model::Verdict;
use crate::provider::http::test_headers as headers;
use serde_json::json;

const NOW: i64 = 1_700_000_000;

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

fn p(status: u16, h: &[(&str, &str)], body: &str) -> ProbeOutcome {
    parse(status, &headers(h), body.as_bytes(), now())
}

/// A record as Docker's reference shows it (`accessToken`, value redacted).
fn record_json() -> Value {
    json!({
        "uuid": "b30bbf97-506c-4ecd-aabc-842f3cb484fb", "client_id": "HUB",
        "creator_ip": "127.0.0.1", "creator_ua": "some user agent",
        "created_at": "2023-07-20T12:00:00.000000Z", "last_used": "2023-11-10T08:30:00.000000Z",
        "generated_by": "manual", "is_active": true, "token": "***",
        "token_label": "CI pull", "scopes": ["repo:read"],
        "expires_at": "2023-12-15T00:00:00.000000Z"
    })
}

#[test]
fn a_successful_exchange_is_valid_and_hands_over_the_bearer() {
    let (o, bearer) = answer(
        200,
        &HeaderMap::new(),
        br#"{"access_token":"eyJhbGciOiJSUzI1NiJ9.e30.sig"}"#.to_vec(),
        now(),
    );
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok));
    assert_eq!(bearer.unwrap().expose(), "eyJhbGciOiJSUzI1NiJ9.e30.sig");
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    // The bearer is never part of the outcome.
    assert!(!format!("{o:?}").contains("eyJhbGci"));
}

#[test]
fn a_401_is_invalid_and_nothing_else_is() {
    let o = p(
        401,
        &[],
        r#"{"detail":"Incorrect authentication credentials","message":"Incorrect authentication credentials"}"#,
    );
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::UnknownToken)
    );
    for status in [400, 403, 404, 302] {
        let o = p(status, &[], "{}");
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Unreachable, Reason::UnexpectedStatus),
            "{status}"
        );
    }
    for status in [500, 502, 503] {
        assert_eq!(p(status, &[], "").reason, Reason::Http5xx);
    }
}

#[test]
fn a_429_waits_as_docker_hub_says() {
    let o = p(429, &[("retry-after", "30")], "");
    assert_eq!(o.verdict, Verdict::RateLimited);
    assert_eq!(o.retry_after, Some(Duration::from_secs(30)));
    // X-Retry-After is the Unix time to call again.
    let o = p(429, &[("x-retry-after", &(NOW + 45).to_string())], "");
    assert_eq!(o.retry_after, Some(Duration::from_secs(45)));
    let o = p(
        429,
        &[
            ("x-ratelimit-limit", "180"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &(NOW + 20).to_string()),
        ],
        "",
    );
    assert_eq!(o.retry_after, Some(Duration::from_secs(20)));
    assert_eq!(o.rate_limit.unwrap().remaining, Some(0.0));
    let o = p(429, &[("x-retry-after", "soon")], "");
    assert_eq!((o.verdict, o.retry_after), (Verdict::RateLimited, None));
}

#[test]
fn garbage_exchanges_are_bad_responses() {
    for body in [
        "",
        "<html>Sign in</html>",
        "[]",
        r#"{"access_token":""}"#,
        r#"{"access_token":42}"#,
        r#"{"token":"eyJ"}"#,
    ] {
        let o = p(200, &[("content-type", "text/html")], body);
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Unreachable, Reason::BadResponse),
            "{body}"
        );
    }
    let deep = "[".repeat(100_000);
    assert_eq!(p(200, &[], &deep).reason, Reason::BadResponse);
}

#[test]
fn a_record_gives_expiry_last_use_and_scopes() {
    let mut f = TokenFacts::default();
    details(&record_json(), &mut f);
    assert_eq!(
        f.expiry,
        Expiry::At("2023-12-15T00:00:00Z".parse().unwrap())
    );
    assert_eq!(f.issued_at, Some("2023-07-20T12:00:00Z".parse().unwrap()));
    assert_eq!(
        f.last_used_at,
        Some("2023-11-10T08:30:00Z".parse().unwrap())
    );
    assert_eq!(f.scopes, ["repo:read"]);
    assert_eq!(f.extra["token_id"], "b30bbf97-506c-4ecd-aabc-842f3cb484fb");
    assert_eq!(f.extra["token_label"], "CI pull");
    assert!(f.flags.is_empty());
    // No expires_at: Docker documents such a token as valid indefinitely.
    let mut never = record_json();
    never["expires_at"] = Value::Null;
    let mut f = TokenFacts::default();
    details(&never, &mut f);
    assert_eq!(f.expiry, Expiry::Never);
    // Not a time: an anomaly, never "never".
    let mut bad = record_json();
    bad["expires_at"] = json!(1_702_598_400);
    let mut f = TokenFacts::default();
    details(&bad, &mut f);
    assert_eq!(f.expiry, Expiry::Undisclosed);
    assert_eq!(f.anomalies, [Anomaly::ExpiryUnreadable]);
    let mut inactive = record_json();
    inactive["is_active"] = json!(false);
    let mut f = TokenFacts::default();
    details(&inactive, &mut f);
    assert!(f.flags[0].contains("inactive"));
}

#[test]
fn only_a_single_listed_token_is_taken_for_the_probed_one() {
    let mut f = TokenFacts::default();
    only_entry(&[record_json()], &mut f);
    assert!(f.expiry.timestamp().is_some());
    let mut f = TokenFacts::default();
    only_entry(&[record_json(), record_json()], &mut f);
    assert_eq!(f.expiry, Expiry::Undisclosed);
    assert!(f.flags[0].contains("set key_id"), "{:?}", f.flags);
    let mut f = TokenFacts::default();
    only_entry(&[], &mut f);
    assert_eq!(f.expiry, Expiry::Undisclosed);
}

#[test]
fn records_and_pages_that_are_not_as_documented() {
    let page = json!({"count": 1, "next": "https://hub.docker.com/v2/access-tokens?page=2&page_size=100",
                      "previous": null, "active_count": 1, "results": [record_json()]});
    let (results, next) = list_page(200, page.to_string().as_bytes()).unwrap();
    assert_eq!(results.len(), 1);
    assert!(next.unwrap().ends_with("page=2&page_size=100"));
    for (status, says) in [
        (401, "cannot manage"),
        (403, "cannot manage"),
        (404, "no personal access token"),
        (429, "slow down"),
        (500, "HTTP 500"),
    ] {
        let err = list_page(status, b"{}").unwrap_err();
        assert!(err.contains(says), "{err}");
        assert!(record(status, b"{}").unwrap_err().contains(says));
    }
    for body in [
        &b"<html>"[..],
        b"{}",
        br#"{"results":{}}"#,
        br#"{"results":[],"next":5}"#,
    ] {
        assert!(list_page(200, body).is_err());
    }
    assert!(record(200, b"[]").is_err());
    assert!(record(200, b"nope").is_err());
}

#[test]
fn token_kinds_come_from_the_documented_prefixes() {
    assert_eq!(token_kind("dckr_pat_abc"), Some("personal"));
    assert_eq!(token_kind("dckr_oat_abc"), Some("organization"));
    assert_eq!(token_kind("hunter2"), None);
}

#[test]
fn key_ids_must_look_like_uuids() {
    assert!(is_uuid_like("b30bbf97-506c-4ecd-aabc-842f3cb484fb"));
    assert!(!is_uuid_like("../orgs/acme"));
    assert!(!is_uuid_like("abc"));
}
