use super::*;
use crate::provider::http::test_headers as headers;
use std::time::Duration;

const NOW: i64 = 1_700_000_000;

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

fn p(body: &str) -> ProbeOutcome {
    parse(200, &HeaderMap::new(), body.as_bytes(), now(), false)
}

#[test]
fn user_token_identity_and_scopes() {
    let h = headers(&[("x-oauth-scopes", "chat:write, users:read,chat:write")]);
    let body = br#"{"ok":true,"url":"https://acme.slack.com/","team":"Acme","user":"grace",
            "team_id":"T123","user_id":"W123"}"#;
    let o = parse(200, &h, body, now(), false);
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok));
    assert_eq!(o.facts.subject.as_deref(), Some("grace"));
    assert_eq!(o.facts.token_type.as_deref(), Some("user"));
    assert_eq!(o.facts.scopes, ["chat:write", "users:read"]);
    assert_eq!(o.facts.extra["team"], "Acme");
    assert_eq!(o.facts.extra["team_id"], "T123");
    assert_eq!(o.facts.extra["user_id"], "W123");
    assert!(!o.facts.extra.contains_key("bot_id"));
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
}

#[test]
fn bot_token_and_enterprise() {
    let o = p(
        r#"{"ok":true,"team":"Acme","user":"deploybot","team_id":"T1","user_id":"U1",
            "bot_id":"B1","enterprise_id":"E1","is_enterprise_install":false}"#,
    );
    assert_eq!(o.facts.token_type.as_deref(), Some("bot"));
    assert_eq!(o.facts.extra["bot_id"], "B1");
    assert_eq!(o.facts.extra["enterprise_id"], "E1");
    assert_eq!(o.facts.extra["is_enterprise_install"], "false");
}

#[test]
fn expires_in_as_number_or_string() {
    for body in [
        r#"{"ok":true,"user":"u","expires_in":43200}"#,
        r#"{"ok":true,"user":"u","expires_in":"43200"}"#,
    ] {
        let o = p(body);
        assert_eq!(o.verdict, Verdict::Valid);
        assert_eq!(
            o.facts.expiry.timestamp().unwrap().as_second(),
            NOW + 12 * 3600
        );
        assert!(o.facts.flags.is_empty());
    }
    let o = p(r#"{"ok":true,"expires_in":0}"#);
    assert_eq!(o.facts.expiry.timestamp().unwrap().as_second(), NOW);
    assert_eq!(o.facts.flags.len(), 1);
    let o = p(r#"{"ok":true,"expires_in":"soon"}"#);
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::BadResponse)
    );
}

#[test]
fn rotating_tokens_are_marked() {
    let o = parse(200, &HeaderMap::new(), br#"{"ok":true}"#, now(), true);
    assert_eq!(o.facts.extra["rotating"], "true");
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
}

#[test]
fn documented_invalid_codes_have_distinct_reasons() {
    for (code, reason) in [
        ("invalid_auth", Reason::UnknownToken),
        ("not_authed", Reason::Malformed),
        ("account_inactive", Reason::Disabled),
        ("token_revoked", Reason::Revoked),
        ("token_expired", Reason::Expired),
    ] {
        let o = p(&format!(r#"{{"ok":false,"error":"{code}"}}"#));
        assert_eq!((o.verdict, o.reason), (Verdict::Invalid, reason), "{code}");
        assert!(o.detail.contains(code), "{}", o.detail);
    }
}

#[test]
fn other_codes_are_never_invalid() {
    for (code, verdict, reason) in [
        ("ratelimited", Verdict::RateLimited, Reason::RateLimited),
        ("internal_error", Verdict::Unreachable, Reason::Http5xx),
        ("fatal_error", Verdict::Unreachable, Reason::Http5xx),
        ("service_unavailable", Verdict::Unreachable, Reason::Http5xx),
        (
            "missing_scope",
            Verdict::Forbidden,
            Reason::InsufficientScope,
        ),
        (
            "ekm_access_denied",
            Verdict::Forbidden,
            Reason::InsufficientScope,
        ),
        (
            "team_added_to_org",
            Verdict::Unreachable,
            Reason::UnexpectedStatus,
        ),
        (
            "invalid_form_data",
            Verdict::Unreachable,
            Reason::UnexpectedStatus,
        ),
        (
            "brand_new_code",
            Verdict::Unreachable,
            Reason::UnexpectedStatus,
        ),
    ] {
        let o = p(&format!(r#"{{"ok":false,"error":"{code}"}}"#));
        assert_eq!((o.verdict, o.reason), (verdict, reason), "{code}");
    }
}

#[test]
fn ratelimited_body_honours_retry_after() {
    let h = headers(&[("retry-after", "30")]);
    let o = parse(
        200,
        &h,
        br#"{"ok":false,"error":"ratelimited"}"#,
        now(),
        false,
    );
    assert_eq!(o.retry_after, Some(Duration::from_secs(30)));
    let o = parse(429, &h, b"", now(), false);
    assert_eq!(o.verdict, Verdict::RateLimited);
    assert_eq!(o.retry_after, Some(Duration::from_secs(30)));
}

/// Issue 16 finding 10: a code of the documented shape that is not a documented code
/// (here a fragment of the token) is not named in the detail.
#[test]
fn only_documented_error_codes_are_named() {
    let canary = "canary_7f3a9c2e_token_fragment";
    let o = p(&format!(r#"{{"ok":false,"error":"{canary}"}}"#));
    assert_eq!(o.verdict, Verdict::Unreachable);
    assert!(!format!("{o:?}").contains(canary), "{}", o.detail);
    let o = p(r#"{"ok":false,"error":"team_added_to_org"}"#);
    assert!(o.detail.contains("team_added_to_org"), "{}", o.detail);
}

#[test]
fn odd_error_codes_are_not_echoed() {
    let o = p(r#"{"ok":false,"error":"xoxb-1234 leaked value"}"#);
    assert_eq!(o.verdict, Verdict::Unreachable);
    assert!(!o.detail.contains("xoxb"), "{}", o.detail);
}

#[test]
fn garbage_and_outages_are_unreachable() {
    for (status, body) in [
        (200, "<html>captive portal</html>"),
        (200, ""),
        (200, "[]"),
        (200, r#"{"ok":"true"}"#),
        (200, r#"{"ok":false}"#),
        (200, r#"{"user":"x"}"#),
        (500, ""),
        (503, "<html>down</html>"),
        (302, ""),
        (404, "not found"),
    ] {
        let o = parse(status, &HeaderMap::new(), body.as_bytes(), now(), false);
        assert_eq!(o.verdict, Verdict::Unreachable, "{status} {body}: {o:?}");
    }
}

#[test]
fn config_checks() {
    let mut c = Config {
        url: None,
        api_url: None,
        max_concurrency: None,
    };
    assert!(c.validate().is_ok());
    assert_eq!(
        c.api_base().unwrap(),
        ("url", "https://slack.com/api".into())
    );
    c.url = Some("ftp://slack.com".into());
    assert!(c.validate().unwrap_err().contains("http or https"));
    c.url = Some("https://u:p@slack.com".into());
    assert!(c.validate().unwrap_err().contains("credentials"));
    c.url = None;
    c.max_concurrency = Some(0);
    // The registry checks max_concurrency for every kind.
    assert!(super::super::ProviderConfig::Slack(c).validate().is_err());
}

/// Slack limits per method per app per workspace (issue 18): bot tokens of the same bot
/// pause together; a user token's answer does not name its app, so it pauses alone.
#[test]
fn rate_limit_key_is_the_bot() {
    use crate::provider::LimitKey;
    let slack = Config {
        url: None,
        api_url: None,
        max_concurrency: None,
    }
    .build(&BuildContext::new())
    .unwrap();
    let bot = p(r#"{"ok":true,"user":"deploybot","team_id":"T1","user_id":"U1","bot_id":"B1"}"#);
    assert_eq!(
        slack.rate_limit_key(&bot.facts),
        LimitKey::Identity("T1/B1".into())
    );
    let user = p(r#"{"ok":true,"user":"grace","team_id":"T1","user_id":"W1"}"#);
    assert_eq!(slack.rate_limit_key(&user.facts), LimitKey::Token);
}

/// The old name keeps its old meaning (the Web API base, `/api` included), is reported as
/// renamed, and may not be given beside the new one.
#[test]
fn the_old_api_url_still_works() {
    let mut c = Config {
        url: None,
        api_url: Some("http://127.0.0.1:8080/slack/api".into()),
        max_concurrency: None,
    };
    assert!(c.validate().is_ok());
    assert_eq!(
        c.api_base().unwrap(),
        ("api_url", "http://127.0.0.1:8080/slack/api".into())
    );
    assert_eq!(c.renamed_in_use()[0].new, "url");
    c.url = Some("http://127.0.0.1:8080/slack".into());
    assert!(c.validate().unwrap_err().contains("url and api_url"));
    c.api_url = None;
    assert_eq!(c.api_base().unwrap().1, "http://127.0.0.1:8080/slack/api");
    assert!(c.renamed_in_use().is_empty());
}
