use super::*;
use crate::provider::http::test_headers as headers;
use serde_json::json;
use std::time::Duration;

const NOW: i64 = 1_757_000_000; // 2025-09-04 15:33:20 UTC

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

fn pat(status: u16, body: &Value) -> ProbeOutcome {
    parse_access_token(
        status,
        &HeaderMap::new(),
        body.to_string().as_bytes(),
        now(),
    )
}

fn token(active: bool, revoked: bool, expires_at: Value) -> Value {
    json!({
        "id": 42, "name": "ci-deploy", "description": "", "revoked": revoked,
        "active": active, "created_at": "2025-01-02T03:04:05.678Z",
        "scopes": ["read_api", "api"], "user_id": 7,
        "last_used_at": "2025-09-01T12:00:00.000Z", "expires_at": expires_at
    })
}

#[test]
fn active_token_facts() {
    let o = pat(200, &token(true, false, json!("2025-10-01")));
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok));
    assert_eq!(
        o.facts.expiry.timestamp().unwrap().to_string(),
        "2025-10-01T00:00:00Z"
    );
    assert_eq!(
        o.facts.issued_at.unwrap().to_string(),
        "2025-01-02T03:04:05.678Z"
    );
    assert_eq!(
        o.facts.last_used_at.unwrap().to_string(),
        "2025-09-01T12:00:00Z"
    );
    assert_eq!(o.facts.scopes, ["api", "read_api"]);
    assert_eq!(o.facts.subject.as_deref(), Some("7"));
    assert_eq!(o.facts.extra["user_id"], "7");
    assert_eq!(o.facts.extra["token_name"], "ci-deploy");
    assert_eq!(o.facts.extra["token_id"], "42");
    assert!(o.facts.flags.is_empty());
}

#[test]
fn null_expiry_is_never_and_null_last_use_is_none() {
    let mut body = token(true, false, Value::Null);
    body["last_used_at"] = Value::Null;
    let o = pat(200, &body);
    assert_eq!(o.facts.expiry, Expiry::Never);
    assert_eq!(o.facts.last_used_at, None);
}

#[test]
fn revoked_or_inactive_on_200_is_invalid() {
    let o = pat(200, &token(false, true, json!("2025-10-01")));
    assert_eq!((o.verdict, o.reason), (Verdict::Invalid, Reason::Revoked));
    assert_eq!(o.facts.extra["token_name"], "ci-deploy");
    let o = pat(200, &token(false, false, json!("2025-09-01")));
    assert_eq!((o.verdict, o.reason), (Verdict::Invalid, Reason::Expired));
    assert_eq!(
        o.facts.expiry.timestamp().unwrap().to_string(),
        "2025-09-01T00:00:00Z"
    );
}

#[test]
fn the_three_401_bodies() {
    let cases = [
        (json!({"message": "401 Unauthorized"}), Reason::UnknownToken),
        (
            json!({"error": "invalid_token", "error_description": "Token is expired. You can either do re-authorization or token refresh."}),
            Reason::Expired,
        ),
        (
            json!({"error": "invalid_token", "error_description": "Token was revoked. You have to re-authorize from the user."}),
            Reason::Revoked,
        ),
        (
            json!({"message": "Token is expired. You can either do re-authorization or token refresh."}),
            Reason::Expired,
        ),
    ];
    for (body, reason) in cases {
        let o = pat(401, &body);
        assert_eq!((o.verdict, o.reason), (Verdict::Invalid, reason), "{body}");
    }
    let proxy = parse_access_token(401, &HeaderMap::new(), b"<html>401</html>", now());
    assert_eq!(proxy.verdict, Verdict::Unreachable);
}

#[test]
fn forbidden_insufficient_scope_versus_blocked_address() {
    let o = pat(
        403,
        &json!({"error": "insufficient_scope", "error_description": "The request requires higher privileges than provided by the access token.", "scope": "api read_api"}),
    );
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Forbidden, Reason::InsufficientScope)
    );
    assert!(!o.limit_shared_by_entry);
    let o = pat(403, &json!({"message": "403 Forbidden"}));
    assert_eq!(o.verdict, Verdict::RateLimited);
    // An address block stops every token of the entry, whoever its user.
    assert!(o.limit_shared_by_entry);
    let o = parse_access_token(403, &HeaderMap::new(), b"Forbidden", now());
    assert_eq!(o.verdict, Verdict::RateLimited);
    assert!(pat(429, &json!({"message": "Retry later"})).verdict == Verdict::RateLimited);
    assert!(!pat(429, &json!({"message": "Retry later"})).limit_shared_by_entry);
}

/// GitLab's authenticated API limits are per user (issue 18): the key is the user ID of the
/// token's last answer, and the token alone before one.
#[test]
fn rate_limit_key_is_the_user() {
    let gitlab = Config {
        url: None,
        token_type: TokenType::AccessToken,
        max_concurrency: None,
    }
    .build(&BuildContext::new())
    .unwrap();
    let o = pat(200, &token(true, false, Value::Null));
    assert_eq!(
        gitlab.rate_limit_key(&o.facts),
        crate::provider::LimitKey::Identity("7".into())
    );
    assert_eq!(
        gitlab.rate_limit_key(&TokenFacts::default()),
        crate::provider::LimitKey::Token
    );
}

#[test]
fn rate_limited_429() {
    let h = headers(&[
        ("ratelimit-limit", "2000"),
        ("ratelimit-remaining", "0"),
        ("ratelimit-reset", &(NOW + 60).to_string()),
        ("retry-after", "60"),
    ]);
    let o = parse_access_token(429, &h, b"Retry later", now());
    assert_eq!(o.verdict, Verdict::RateLimited);
    assert_eq!(o.retry_after, Some(Duration::from_secs(60)));
    assert_eq!(o.rate_limit.unwrap().limit, Some(2000.0));
}

#[test]
fn garbage_and_outages_are_unreachable() {
    for (status, body) in [
        (200, "<html>sign in</html>"),
        (200, "{}"),
        (200, "[]"),
        (500, ""),
        (502, "<html/>"),
        (404, r#"{"message":"404 Not Found"}"#),
    ] {
        let o = parse_access_token(status, &HeaderMap::new(), body.as_bytes(), now());
        assert_eq!(o.verdict, Verdict::Unreachable, "{status} {body}");
        let o = parse_oauth(status, &HeaderMap::new(), body.as_bytes(), now());
        assert_eq!(o.verdict, Verdict::Unreachable, "oauth {status} {body}");
    }
}

#[test]
fn oauth_both_shapes() {
    let gitlab = json!({
        "resource_owner_id": 7, "scope": ["api", "read_user"], "expires_in": 7200,
        "application": {"uid": "abc123"}, "created_at": 1_756_990_000,
        "scopes": ["api", "read_user"], "expires_in_seconds": 7200
    });
    let o = parse_oauth(200, &HeaderMap::new(), gitlab.to_string().as_bytes(), now());
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry.timestamp().unwrap().as_second(), NOW + 7200);
    assert_eq!(o.facts.issued_at.unwrap().as_second(), 1_756_990_000);
    assert_eq!(o.facts.scopes, ["api", "read_user"]);
    assert_eq!(o.facts.subject.as_deref(), Some("7"));
    assert_eq!(o.facts.client_id.as_deref(), Some("abc123"));

    let other = json!({"scopes": "read_user openid", "expires_in_seconds": null,
                           "created_at": "2025-09-04T10:00:00Z"});
    let o = parse_oauth(200, &HeaderMap::new(), other.to_string().as_bytes(), now());
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::Never);
    assert_eq!(o.facts.scopes, ["openid", "read_user"]);
    assert_eq!(
        o.facts.issued_at.unwrap().to_string(),
        "2025-09-04T10:00:00Z"
    );

    let silent = json!({"resource_owner_id": 7, "scope": []});
    let o = parse_oauth(200, &HeaderMap::new(), silent.to_string().as_bytes(), now());
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
}

#[test]
fn oauth_invalid_tokens() {
    for (description, reason) in [
        ("The access token expired", Reason::Expired),
        ("The access token was revoked", Reason::Revoked),
        ("The access token is invalid", Reason::UnknownToken),
    ] {
        let body = json!({"error": "invalid_token", "error_description": description, "state": "unauthorized"});
        let o = parse_oauth(401, &HeaderMap::new(), body.to_string().as_bytes(), now());
        assert_eq!((o.verdict, o.reason), (Verdict::Invalid, reason));
    }
}

/// Issue 16 finding 6, GitLab's `expires_at`: every unusable value of the issue's list is
/// undisclosed with `expiry_unreadable`, never "never".
#[test]
fn unusable_expires_at_is_flagged() {
    for bad in [
        json!("1900000000"),
        json!(1_900_000_000),
        json!(true),
        json!({}),
        json!("10000-01-01"),
        json!(i64::MAX),
    ] {
        let o = pat(200, &token(true, false, bad.clone()));
        assert_eq!(o.verdict, Verdict::Valid, "{bad}");
        assert_eq!(o.facts.expiry, Expiry::Undisclosed, "{bad}");
        assert_eq!(o.facts.anomalies, [Anomaly::ExpiryUnreadable], "{bad}");
    }
}

#[test]
fn expiry_dates() {
    assert_eq!(
        expiry_date("2025-10-01").unwrap().to_string(),
        "2025-10-01T00:00:00Z"
    );
    assert_eq!(
        expiry_date("2025-10-01T12:00:00Z").unwrap().to_string(),
        "2025-10-01T12:00:00Z"
    );
    assert!(expiry_date("soon").is_none());
    let o = pat(200, &token(true, false, json!("tomorrow")));
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert_eq!(o.facts.flags.len(), 1);
    assert_eq!(o.facts.anomalies, [Anomaly::ExpiryUnreadable]);
}

#[test]
fn config_checks() {
    let ok = Config {
        url: Some("https://gitlab.example.com/gitlab".into()),
        token_type: TokenType::AccessToken,
        max_concurrency: None,
    };
    assert!(ok.validate().is_ok());
    let api = Config {
        url: Some("https://gitlab.example.com/api/v4/".into()),
        ..ok.clone()
    };
    assert!(api.validate().unwrap_err().contains("/api/v4"));
    let ftp = Config {
        url: Some("ftp://gitlab.example.com".into()),
        ..ok
    };
    assert!(ftp.validate().is_err());
}
