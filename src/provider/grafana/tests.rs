use super::*;
use crate::provider::http::test_headers as headers;

const NOW: i64 = 1_700_000_000;

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// `GET /api/user` with a service-account token on a current server: the identity is typed
/// (`uid` `service-account:<id>`), `id` is 0.
const SA_USER: &str = r#"{"id":0,"uid":"service-account:42","email":"sa-1-deployer","name":"deployer",
  "login":"sa-1-deployer","theme":"","orgId":1,"isGrafanaAdmin":false,"isDisabled":false,
  "isExternal":false,"isExternallySynced":false,"isGrafanaAdminExternallySynced":false,
  "authLabels":null,"updatedAt":"0001-01-01T00:00:00Z","createdAt":"0001-01-01T00:00:00Z",
  "avatarUrl":""}"#;

/// The documented example of `GET /api/serviceaccounts/:id/tokens`.
const TOKENS: &str = r#"[{"id":1,"name":"grafana","role":"Viewer","created":"2022-03-23T10:31:02Z",
  "expiration":null,"secondsUntilExpiration":0,"hasExpired":false}]"#;

fn user(body: &str) -> ProbeOutcome {
    parse(200, &HeaderMap::new(), body.as_bytes(), now())
}

#[test]
fn a_service_account_token_is_valid_and_names_its_account() {
    let o = user(SA_USER);
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(o.facts.subject.as_deref(), Some("sa-1-deployer"));
    assert_eq!(o.facts.token_type.as_deref(), Some("service_account"));
    assert_eq!(service_account_id(&o.facts), Some(42));
    assert_eq!(o.facts.extra["org_id"], "1");
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
}

#[test]
fn an_older_server_names_the_account_by_its_user_id() {
    let o = user(
        r#"{"id":7,"email":"sa-deployer","name":"deployer","login":"sa-deployer","orgId":1,"isGrafanaAdmin":false}"#,
    );
    assert_eq!(service_account_id(&o.facts), Some(7));
    // A person's login does not start `sa-`: no token list is asked.
    let o = user(r#"{"id":3,"email":"ops@example.com","login":"ops","orgId":1}"#);
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.token_type.as_deref(), Some("user"));
    assert_eq!(service_account_id(&o.facts), None);
    let o = user(r#"{"id":0,"uid":"api-key:9","login":"api-key","orgId":1}"#);
    assert_eq!(o.facts.token_type.as_deref(), Some("api_key"));
    assert_eq!(service_account_id(&o.facts), None);
}

#[test]
fn unauthorized_answers_say_why() {
    for (body, reason) in [
        (
            r#"{"message":"Expired API key","messageId":"api-key.expired","statusCode":401,"traceID":""}"#,
            Reason::Expired,
        ),
        (
            r#"{"message":"Revoked API key","messageId":"api-key.revoked","statusCode":401,"traceID":""}"#,
            Reason::Revoked,
        ),
        (
            r#"{"message":"Invalid API key","messageId":"api-key.invalid","statusCode":401,"traceID":""}"#,
            Reason::UnknownToken,
        ),
        (r#"{"message":"Unauthorized"}"#, Reason::UnknownToken),
        ("", Reason::UnknownToken),
    ] {
        let o = parse(401, &HeaderMap::new(), body.as_bytes(), now());
        assert_eq!((o.verdict, o.reason), (Verdict::Invalid, reason), "{body}");
        assert!(!o.detail.contains("traceID"));
    }
    let h = headers(&[("content-type", "text/html")]);
    let o = parse(401, &h, b"<html>oauth2-proxy</html>", now());
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::BadResponse)
    );
}

#[test]
fn refusals_outages_and_garbage() {
    let o = parse(
        403,
        &HeaderMap::new(),
        br#"{"message":"Permission denied"}"#,
        now(),
    );
    assert_eq!(o.verdict, Verdict::Forbidden);
    let h = headers(&[("retry-after", "12")]);
    let o = parse(429, &h, b"", now());
    assert_eq!(
        (o.verdict, o.retry_after),
        (
            Verdict::RateLimited,
            Some(std::time::Duration::from_secs(12))
        )
    );
    for (status, body) in [
        (500, r#"{"message":"Internal Server Error"}"#),
        (502, "<html>bad gateway</html>"),
        (404, r#"{"message":"Not found"}"#),
        (200, "<html>login</html>"),
        (200, "[]"),
        (200, r#"{"id": 1}"#),
        (200, &"[".repeat(50_000)),
    ] {
        let o = parse(status, &HeaderMap::new(), body.as_bytes(), now());
        assert_eq!(
            o.verdict,
            Verdict::Unreachable,
            "{status} {body:.40}: {o:?}"
        );
    }
}

fn listed(status: u16, body: &str, key_id: Option<&str>) -> TokenFacts {
    let mut facts = user(SA_USER).facts;
    parse_tokens(status, body.as_bytes(), now(), key_id, &mut facts);
    facts
}

#[test]
fn the_only_working_token_is_the_probed_one() {
    let f = listed(200, TOKENS, None);
    assert_eq!(f.expiry, Expiry::Never);
    assert_eq!(f.issued_at, Some(at("2022-03-23T10:31:02Z")));
    assert_eq!(f.extra["token_name"], "grafana");
    assert_eq!(f.extra["token_id"], "1");
    let body = r#"[
      {"id":1,"name":"old","created":"2022-03-23T10:31:02Z","expiration":"2023-01-01T00:00:00Z","secondsUntilExpiration":0,"hasExpired":true},
      {"id":2,"name":"ci","created":"2023-10-01T00:00:00Z","expiration":"2023-12-15T00:00:00Z","secondsUntilExpiration":0,"hasExpired":false,"lastUsedAt":"2023-11-14T20:00:00Z","isRevoked":false}
    ]"#;
    let f = listed(200, body, None);
    assert_eq!(f.expiry, Expiry::At(at("2023-12-15T00:00:00Z")));
    assert_eq!(f.last_used_at, Some(at("2023-11-14T20:00:00Z")));
    assert!(f.flags.is_empty(), "{:?}", f.flags);
}

#[test]
fn several_working_tokens_need_key_id() {
    let body = r#"[
      {"id":2,"name":"ci","expiration":"2023-12-15T00:00:00Z","hasExpired":false},
      {"id":3,"name":"backup","expiration":null,"hasExpired":false}
    ]"#;
    let f = listed(200, body, None);
    assert_eq!(f.expiry, Expiry::Undisclosed);
    assert!(f.extra["expiry_note"].contains("key_id"));
    assert_eq!(listed(200, body, Some("backup")).expiry, Expiry::Never);
    assert_eq!(
        listed(200, body, Some("2")).expiry,
        Expiry::At(at("2023-12-15T00:00:00Z"))
    );
    let f = listed(200, body, Some("nope"));
    assert_eq!(f.expiry, Expiry::Undisclosed);
    assert!(f.extra["expiry_note"].contains("key_id"));
}

#[test]
fn an_unreadable_list_leaves_the_verdict_and_the_expiry_undisclosed() {
    let f = listed(
        403,
        r#"{"message":"You'll need additional permissions to perform this action. Permissions needed: serviceaccounts:read"}"#,
        None,
    );
    assert_eq!(f.expiry, Expiry::Undisclosed);
    assert!(f.extra["expiry_note"].contains("serviceaccounts:read"));
    assert!(f.flags.is_empty());
    for (status, body) in [
        (500, ""),
        (200, "{}"),
        (200, "<html>"),
        (404, r#"{"message":"Not found"}"#),
    ] {
        let f = listed(status, body, None);
        assert_eq!(f.expiry, Expiry::Undisclosed, "{status} {body}");
        assert_eq!(f.flags.len(), 1);
    }
}

#[test]
fn odd_expiries_are_noted_not_believed() {
    let f = listed(
        200,
        r#"[{"id":1,"name":"a","expiration":"soon","hasExpired":false}]"#,
        None,
    );
    assert_eq!(f.expiry, Expiry::Undisclosed);
    assert_eq!(f.anomalies, [crate::model::Anomaly::ExpiryUnreadable]);
    let f = listed(
        200,
        r#"[{"id":1,"name":"a","expiration":"2020-01-01T00:00:00Z","hasExpired":false}]"#,
        None,
    );
    assert_eq!(f.flags.len(), 1, "a past expiry on an accepted token");
    let f = listed(
        200,
        r#"[{"id":1,"name":"a","expiration":"2020-01-01T00:00:00Z","hasExpired":true}]"#,
        Some("a"),
    );
    assert_eq!(f.expiry, Expiry::At(at("2020-01-01T00:00:00Z")));
    assert_eq!(f.flags.len(), 1);
}

#[test]
fn config_requires_a_server_without_api() {
    let c = |url: Option<&str>| Config {
        url: url.map(str::to_owned),
        max_concurrency: None,
    };
    assert!(c(None).validate().unwrap_err().contains("url is required"));
    assert!(c(Some("https://acme.grafana.net")).validate().is_ok());
    assert!(c(Some("https://example.com/grafana/")).validate().is_ok());
    assert!(c(Some("https://example.com/api")).validate().is_err());
}
