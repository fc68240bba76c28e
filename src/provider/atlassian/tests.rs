use super::*;
use crate::provider::http::test_headers as headers;
use std::time::Duration;

const NOW: i64 = 1_700_000_000;
const EMAIL: &str = "mia@example.com";

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

/// Jira's documented example answer of `GET /rest/api/3/myself`.
const MYSELF: &str = r#"{
  "accountId": "5b10a2844c20165700ede21g",
  "accountType": "atlassian",
  "active": true,
  "applicationRoles": {"items": [], "size": 1},
  "avatarUrls": {"16x16": "https://avatar-management--avatars.server-location.prod.public.atl-paas.net/initials/MK-5.png?size=16&s=16"},
  "displayName": "Mia Krystof",
  "emailAddress": "mia@example.com",
  "groups": {"items": [], "size": 3},
  "key": "",
  "name": "",
  "self": "https://your-domain.atlassian.net/rest/api/3/user?accountId=5b10a2844c20165700ede21g",
  "timeZone": "Australia/Sydney"
}"#;

/// Confluence's `GET /wiki/rest/api/user/current` answer.
const CURRENT: &str = r#"{
  "type": "known",
  "accountId": "5b10a2844c20165700ede21g",
  "accountType": "atlassian",
  "email": "mia@example.com",
  "publicName": "Mia Krystof",
  "displayName": "Mia Krystof",
  "timeZone": "Australia/Sydney",
  "isExternalCollaborator": false
}"#;

fn ok(body: &str) -> ProbeOutcome {
    parse(200, &HeaderMap::new(), body.as_bytes(), now(), EMAIL)
}

#[test]
fn jira_myself_is_valid_with_identity_and_no_expiry() {
    let o = ok(MYSELF);
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(o.facts.subject.as_deref(), Some(EMAIL));
    assert_eq!(o.facts.token_type.as_deref(), Some("atlassian"));
    assert_eq!(o.facts.extra["account_id"], "5b10a2844c20165700ede21g");
    assert_eq!(o.facts.extra["display_name"], "Mia Krystof");
    assert_eq!(o.facts.extra["active"], "true");
    // The REST API says nothing of the token's expiry: never "never".
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert_eq!(o.facts.expiry_model, crate::model::ExpiryModel::Fixed);
    assert!(o.facts.flags.is_empty(), "{:?}", o.facts.flags);
}

#[test]
fn confluence_current_user_is_valid() {
    let o = ok(CURRENT);
    assert_eq!(o.verdict, Verdict::Valid, "{o:?}");
    assert_eq!(o.facts.subject.as_deref(), Some(EMAIL));
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
}

#[test]
fn a_hidden_email_falls_back_to_the_account_id() {
    let o = ok(r#"{"accountId": "abc123", "accountType": "atlassian", "displayName": "M"}"#);
    assert_eq!(o.facts.subject.as_deref(), Some("abc123"));
}

#[test]
fn another_email_than_configured_is_flagged_not_refused() {
    let o = parse(
        200,
        &HeaderMap::new(),
        MYSELF.as_bytes(),
        now(),
        "MIA@example.com",
    );
    assert!(o.facts.flags.is_empty(), "case is not a difference");
    let o = parse(
        200,
        &HeaderMap::new(),
        MYSELF.as_bytes(),
        now(),
        "ops@example.com",
    );
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.flags.len(), 1);
}

#[test]
fn unauthorized_is_invalid() {
    for h in [
        headers(&[("x-seraph-loginreason", "AUTHENTICATED_FAILED")]),
        headers(&[("content-type", "application/json")]),
        HeaderMap::new(),
    ] {
        let body = br#"{"errorMessages":["You are not authenticated. Authentication required to perform this operation."],"errors":{}}"#;
        let o = parse(401, &h, body, now(), EMAIL);
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Invalid, Reason::UnknownToken)
        );
    }
    let o = parse(401, &HeaderMap::new(), b"Unauthorized", now(), EMAIL);
    assert_eq!(o.verdict, Verdict::Invalid);
}

#[test]
fn an_html_401_or_403_is_a_proxy_not_atlassian() {
    for status in [401, 403] {
        let h = headers(&[("content-type", "text/html; charset=utf-8")]);
        let o = parse(status, &h, b"<html>Sign in</html>", now(), EMAIL);
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Unreachable, Reason::BadResponse),
            "{status}"
        );
    }
}

#[test]
fn captcha_is_not_a_verdict_on_the_token() {
    let h = headers(&[("x-seraph-loginreason", "AUTHENTICATION_DENIED")]);
    let o = parse(403, &h, b"", now(), EMAIL);
    assert_eq!(o.verdict, Verdict::Unreachable, "{o:?}");
    assert!(o.detail.contains("CAPTCHA"));
}

#[test]
fn other_403_is_forbidden() {
    let body = br#"{"errorMessages":["Unauthorized; scope does not match"],"errors":{}}"#;
    let o = parse(403, &HeaderMap::new(), body, now(), EMAIL);
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Forbidden, Reason::InsufficientScope)
    );
}

#[test]
fn rate_limits_use_retry_after_then_the_iso_reset() {
    let h = headers(&[
        ("retry-after", "17"),
        ("x-ratelimit-reset", "2023-11-14T22:30Z"),
    ]);
    let o = parse(429, &h, b"", now(), EMAIL);
    assert_eq!(o.verdict, Verdict::RateLimited);
    assert_eq!(o.retry_after, Some(Duration::from_secs(17)));
    // NOW is 2023-11-14T22:13:20Z: the reset is 16 min 40 s ahead.
    let h = headers(&[("x-ratelimit-reset", "2023-11-14T22:30Z")]);
    let o = parse(429, &h, b"", now(), EMAIL);
    assert_eq!(o.retry_after, Some(Duration::from_secs(1000)));
    let h = headers(&[("x-ratelimit-reset", "not a date")]);
    let o = parse(429, &h, b"", now(), EMAIL);
    assert_eq!((o.verdict, o.retry_after), (Verdict::RateLimited, None));
}

#[test]
fn headroom_headers_are_kept() {
    let h = headers(&[
        ("x-ratelimit-limit", "100"),
        ("x-ratelimit-remaining", "97"),
    ]);
    let o = parse(200, &h, MYSELF.as_bytes(), now(), EMAIL);
    assert_eq!(o.rate_limit.and_then(|r| r.remaining), Some(97.0));
}

#[test]
fn server_errors_and_garbage_are_unreachable() {
    let h = headers(&[("retry-after", "30")]);
    let o = parse(503, &h, b"", now(), EMAIL);
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::Http5xx)
    );
    for (status, body) in [
        (200, "<html>login</html>"),
        (200, ""),
        (200, "[1,2]"),
        (200, r#"{"displayName": "no id"}"#),
        (200, r#"{"accountId": 42}"#),
        (404, r#"{"errorMessages":["Not found"]}"#),
    ] {
        let o = parse(status, &HeaderMap::new(), body.as_bytes(), now(), EMAIL);
        assert_eq!(o.verdict, Verdict::Unreachable, "{status} {body}: {o:?}");
    }
    let o = ok(r#"{"type": "anonymous", "accountId": "x"}"#);
    assert_eq!(o.verdict, Verdict::Unreachable);
}

#[test]
fn a_huge_or_deep_body_is_unreachable_not_a_panic() {
    let deep = "[".repeat(100_000);
    let o = ok(&deep);
    assert_eq!(o.verdict, Verdict::Unreachable);
    let big = format!(
        r#"{{"accountId": "a", "displayName": "{}"}}"#,
        "x".repeat(900_000)
    );
    let o = ok(&big);
    assert_eq!(o.verdict, Verdict::Valid);
}

#[test]
fn emails_are_checked_without_quoting_them() {
    assert!(check_email("mia@example.com").is_ok());
    assert!(check_email("mïa@exämple.com").is_ok());
    for bad in [
        "",
        "mia",
        "@example.com",
        "mia@",
        "a@b@c",
        "mia@ex ample.com",
        "m:ia@x.com",
    ] {
        let e = check_email(bad).unwrap_err();
        assert!(bad.is_empty() || !e.contains(bad), "{e}");
    }
}

#[test]
fn config_requires_a_site_without_the_rest_path() {
    let c = |url: Option<&str>| Config {
        url: url.map(str::to_owned),
        product: Product::Jira,
        max_concurrency: None,
    };
    assert!(c(None).validate().unwrap_err().contains("url is required"));
    assert!(c(Some("https://acme.atlassian.net")).validate().is_ok());
    assert!(
        c(Some(
            "https://api.atlassian.com/ex/jira/1324a887-45db-1bf4-1e99-ef0ff456d421"
        ))
        .validate()
        .is_ok()
    );
    assert!(
        c(Some("https://acme.atlassian.net/rest/api/3"))
            .validate()
            .unwrap_err()
            .contains("without the REST path")
    );
    assert_eq!(Product::Confluence.path(), "/wiki/rest/api/user/current");
}
