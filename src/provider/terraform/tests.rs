use super::*;
use crate::provider::http::test_headers as headers;
use serde_json::json;

const NOW: i64 = 1_700_000_000;

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

fn p(status: u16, h: &[(&str, &str)], body: &str) -> ProbeOutcome {
    parse(status, &headers(h), body.as_bytes(), now())
}

/// The account details of a user token, trimmed from HashiCorp's sample.
fn user_details() -> Value {
    json!({"data": {
        "id": "user-V3R563qtJNcExAkN", "type": "users",
        "attributes": {"username": "admin", "is-service-account": false,
                       "email": "admin@hashicorp.com", "two-factor": {"enabled": false}},
        "relationships": {"authenticated-resource": {
            "data": {"id": "user-V3R563qtJNcExAkN", "type": "users"},
            "links": {"related": "/api/v2/users/user-V3R563qtJNcExAkN"}}},
        "links": {"self": "/api/v2/users/user-V3R563qtJNcExAkN"}
    }})
}

fn service_details(kind: &str, id: &str) -> Value {
    json!({"data": {
        "id": "user-svc0123456789", "type": "users",
        "attributes": {"username": "api-team_123456", "is-service-account": true},
        "relationships": {"authenticated-resource": {"data": {"id": id, "type": kind}}}
    }})
}

fn token(expired_at: Value) -> Value {
    json!({"id": "at-QmATJea6aWj1xR2t", "type": "authentication-tokens",
           "attributes": {"created-at": "2023-11-01T10:12:45.123Z", "last-used-at": "2023-11-10T08:00:00.000Z",
                          "description": "CI", "token": null, "expired-at": expired_at},
           "relationships": {"created-by": {"data": {"id": "user-V3R563qtJNcExAkN", "type": "users"}}}})
}

#[test]
fn account_details_name_the_owner() {
    let o = p(200, &[], &user_details().to_string());
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok));
    assert_eq!(o.facts.subject.as_deref(), Some("admin"));
    assert_eq!(o.facts.token_type.as_deref(), Some("user"));
    assert_eq!(o.facts.extra["user_id"], "user-V3R563qtJNcExAkN");
    assert_eq!(o.facts.extra["owner_id"], "user-V3R563qtJNcExAkN");
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert_eq!(
        owner_of(&o.facts),
        Some(Owner::User("user-V3R563qtJNcExAkN".into()))
    );

    let o = p(
        200,
        &[],
        &service_details("teams", "team-RGhi7xU4NWWmp1MQ").to_string(),
    );
    assert_eq!(o.facts.token_type.as_deref(), Some("team"));
    assert_eq!(
        owner_of(&o.facts),
        Some(Owner::Team("team-RGhi7xU4NWWmp1MQ".into()))
    );
    let o = p(
        200,
        &[],
        &service_details("organizations", "acme-corp").to_string(),
    );
    assert_eq!(
        owner_of(&o.facts),
        Some(Owner::Organization("acme-corp".into()))
    );
    // An owner id that is not safe in a path is never looked up.
    let o = p(
        200,
        &[],
        &service_details("teams", "../users/x").to_string(),
    );
    assert_eq!(owner_of(&o.facts), None);
    // Without the relationship, a user that is not a service account owns its token.
    let o = p(
        200,
        &[],
        r#"{"data":{"id":"user-1","type":"users","attributes":{"username":"u","is-service-account":false}}}"#,
    );
    assert_eq!(owner_of(&o.facts), Some(Owner::User("user-1".into())));
    let o = p(
        200,
        &[],
        r#"{"data":{"id":"user-1","type":"users","attributes":{"username":"api-x","is-service-account":true}}}"#,
    );
    assert_eq!((o.verdict, o.facts.token_type), (Verdict::Valid, None));
}

#[test]
fn a_401_is_invalid_and_other_failures_are_not() {
    let o = p(
        401,
        &[],
        r#"{"errors":[{"status":"401","title":"unauthorized"}]}"#,
    );
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::UnknownToken)
    );
    for status in [403, 404, 400] {
        let o = p(
            status,
            &[],
            r#"{"errors":[{"status":"404","title":"not found"}]}"#,
        );
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Unreachable, Reason::UnexpectedStatus)
        );
    }
    assert_eq!(p(503, &[], "").reason, Reason::Http5xx);
}

#[test]
fn rate_limits_read_the_reset_as_seconds_left() {
    let o = p(
        429,
        &[
            ("x-ratelimit-limit", "30"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "0.034"),
        ],
        r#"{"errors":[{"status":"429","title":"too many requests"}]}"#,
    );
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::RateLimited, Reason::RateLimited)
    );
    assert_eq!(o.retry_after, Some(Duration::from_secs(1)));
    let rate = o.rate_limit.unwrap();
    assert_eq!((rate.remaining, rate.limit), (Some(0.0), Some(30.0)));
    assert_eq!(
        rate.reset_at,
        Some(Timestamp::from_second(NOW + 1).unwrap())
    );
    let o = p(
        429,
        &[("retry-after", "7"), ("x-ratelimit-reset", "2.5")],
        "",
    );
    assert_eq!(o.retry_after, Some(Duration::from_secs(7)));
    let o = p(429, &[("x-ratelimit-reset", "2.5")], "");
    assert_eq!(o.retry_after, Some(Duration::from_secs(3)));
    // An epoch time in the header is not seconds left: ignored rather than a day-long pause.
    let o = p(429, &[("x-ratelimit-reset", "1700000060")], "");
    assert_eq!(o.retry_after, None);
    let o = p(
        200,
        &[("x-ratelimit-limit", "30"), ("x-ratelimit-remaining", "29")],
        &user_details().to_string(),
    );
    assert_eq!(o.rate_limit.unwrap().remaining, Some(29.0));
}

#[test]
fn garbage_answers_are_bad_responses() {
    for body in [
        "",
        "<html>Sign in</html>",
        "[]",
        r#"{"data":[]}"#,
        r#"{"data":{"type":"users"}}"#,
        r#"{"data":{"id":"","type":"users"}}"#,
        r#"{"errors":[]}"#,
    ] {
        let o = p(200, &[("content-type", "text/html")], body);
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Unreachable, Reason::BadResponse),
            "{body}"
        );
    }
    assert_eq!(
        p(200, &[], &"[".repeat(100_000)).reason,
        Reason::BadResponse
    );
}

#[test]
fn a_token_record_gives_its_expiry() {
    let mut f = TokenFacts::default();
    record_facts(&token(json!("2023-12-15T00:00:00.000Z")), &mut f);
    assert_eq!(
        f.expiry,
        Expiry::At("2023-12-15T00:00:00Z".parse().unwrap())
    );
    assert_eq!(
        f.issued_at,
        Some("2023-11-01T10:12:45.123Z".parse().unwrap())
    );
    assert_eq!(
        f.last_used_at,
        Some("2023-11-10T08:00:00Z".parse().unwrap())
    );
    assert_eq!(f.extra["token_id"], "at-QmATJea6aWj1xR2t");
    assert_eq!(f.extra["description"], "CI");
    let mut f = TokenFacts::default();
    record_facts(&token(Value::Null), &mut f);
    assert_eq!(f.expiry, Expiry::Never);
    let mut f = TokenFacts::default();
    record_facts(&token(json!("next tuesday")), &mut f);
    assert_eq!(f.expiry, Expiry::Undisclosed);
    assert_eq!(f.anomalies, [Anomaly::ExpiryUnreadable]);
    let mut f = TokenFacts::default();
    record_facts(&json!({"id": "at-1"}), &mut f);
    assert_eq!(f.expiry, Expiry::Undisclosed);
    assert!(!f.flags.is_empty());
}

#[test]
fn records_lists_and_refusals() {
    let one = json!({"data": token(Value::Null)}).to_string();
    assert!(token_record(200, one.as_bytes()).is_ok());
    for (status, says) in [
        (401, "does not let"),
        (403, "does not let"),
        (404, "does not let"),
        (429, "slow down"),
        (500, "HTTP 500"),
    ] {
        assert!(token_record(status, b"{}").unwrap_err().contains(says));
        assert!(token_list(status, b"{}").unwrap_err().contains(says));
    }
    assert!(token_record(200, b"{\"data\":[]}").is_err());
    let page = json!({"data": [token(Value::Null)],
                      "links": {"self": "x", "next": "https://app.terraform.io/api/v2/users/u/authentication-tokens?page%5Bnumber%5D=2"},
                      "meta": {"pagination": {"current-page": 1, "total-pages": 2}}});
    let (records, next) = token_list(200, page.to_string().as_bytes()).unwrap();
    assert_eq!(records.len(), 1);
    assert!(next.unwrap().contains("page%5Bnumber%5D=2"));
    assert!(token_list(200, br#"{"data":{}}"#).is_err());
    assert!(token_list(200, br#"{"data":[],"links":{"next":3}}"#).is_err());
    let mut f = TokenFacts::default();
    only_record(&[token(Value::Null), token(Value::Null)], &mut f);
    assert_eq!(f.expiry, Expiry::Undisclosed);
    assert!(f.flags[0].contains("set key_id"));
}

#[test]
fn next_pages_stay_on_the_server() {
    let first = "https://app.terraform.io/api/v2/users/u/authentication-tokens?page%5Bsize%5D=100";
    assert!(
        resolve(
            first,
            first,
            "/api/v2/users/u/authentication-tokens?page%5Bnumber%5D=2"
        )
        .is_some()
    );
    assert_eq!(resolve(first, first, "https://evil.example/x"), None);
}

#[test]
fn the_limit_is_keyed_by_the_user_the_answer_named() {
    let t = Terraform {
        api: String::new(),
        details: true,
        http: crate::provider::http::client(),
    };
    let mut known = TokenFacts::default();
    assert_eq!(t.rate_limit_key(&known), LimitKey::Token);
    known.extra.insert("user_id".into(), "user-1".into());
    assert_eq!(
        t.rate_limit_key(&known),
        LimitKey::Identity("user-1".into())
    );
}
