use super::*;
use crate::model::Expiry;
use crate::model::Verdict;
use reqwest::header::HeaderValue;

const NOW: i64 = 1_700_000_000;

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

fn p(status: u16, body: &str) -> ProbeOutcome {
    parse(status, &HeaderMap::new(), body.as_bytes(), now())
}

#[test]
fn valid_token_with_string_numbers() {
    let o = p(
        200,
        r#"{"azp":"123.apps.googleusercontent.com","aud":"123.apps.googleusercontent.com",
               "sub":"10769150350006150715113082367","scope":"openid https://www.googleapis.com/auth/userinfo.email",
               "exp":"1700003599","expires_in":"3599","email":"ops@example.com","email_verified":"true",
               "access_type":"offline"}"#,
    );
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok));
    assert_eq!(o.facts.expiry.timestamp().unwrap().as_second(), NOW + 3599);
    assert_eq!(o.facts.subject.as_deref(), Some("ops@example.com"));
    assert_eq!(
        o.facts.client_id.as_deref(),
        Some("123.apps.googleusercontent.com")
    );
    assert_eq!(o.facts.audience, ["123.apps.googleusercontent.com"]);
    assert_eq!(
        o.facts.scopes,
        ["https://www.googleapis.com/auth/userinfo.email", "openid"]
    );
    assert_eq!(o.facts.extra["sub"], "10769150350006150715113082367");
    assert_eq!(o.facts.extra["email_verified"], "true");
    assert_eq!(o.facts.extra["access_type"], "offline");
    assert!(o.facts.flags.is_empty());
}

#[test]
fn numbers_are_tolerated_and_expires_in_is_the_fallback() {
    let o = p(200, r#"{"aud":"a","exp":1700000600,"expires_in":600}"#);
    assert_eq!(o.facts.expiry.timestamp().unwrap().as_second(), NOW + 600);
    let o = p(200, r#"{"aud":"a","expires_in":"120"}"#);
    assert_eq!(o.facts.expiry.timestamp().unwrap().as_second(), NOW + 120);
    let o = p(200, r#"{"aud":"a","scope":"x"}"#);
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    // No email scope: the subject is the stable id.
    let o = p(200, r#"{"aud":"a","sub":"42","exp":"1700000600"}"#);
    assert_eq!(o.facts.subject.as_deref(), Some("42"));
}

#[test]
fn past_expiry_on_success_is_flagged() {
    let o = p(200, r#"{"aud":"a","exp":"1699999000"}"#);
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.flags.len(), 1);
}

#[test]
fn invalid_token_is_invalid() {
    let o = p(
        400,
        r#"{"error":"invalid_token","error_description":"Invalid Value"}"#,
    );
    assert_eq!((o.verdict, o.reason), (Verdict::Invalid, Reason::Inactive));
    assert!(!o.detail.contains("Invalid Value"));
    let o = p(400, r#"{"error":"invalid_token"}"#);
    assert_eq!(o.verdict, Verdict::Invalid);
}

#[test]
fn other_errors_are_not_invalid() {
    let o = p(
        400,
        r#"{"error":"invalid_request","error_description":"Either access_token, id_token, or token_handle required"}"#,
    );
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::UnexpectedStatus)
    );
    assert!(o.detail.contains("invalid_request"));
    let o = p(400, r#"{"error":"ya29.leaked value"}"#);
    assert!(!o.detail.contains("ya29"), "{}", o.detail);
}

/// Issue 16 finding 10: an `error` of the shape of a code (letters, digits,
/// underscores) that is not a registered OAuth code, here most of a token, is not named.
#[test]
fn only_registered_error_codes_are_named() {
    let canary = "ya29_a0AfH6SMBcanary7f3a9c2e";
    let o = p(400, &format!(r#"{{"error":"{canary}"}}"#));
    assert_eq!(o.verdict, Verdict::Unreachable);
    assert!(!format!("{o:?}").contains(canary), "{}", o.detail);
}

/// Issue 16 finding 6: an `exp` in milliseconds is read as such, with its anomaly.
#[test]
fn exp_in_milliseconds_is_read_with_an_anomaly() {
    let o = p(
        200,
        &format!(r#"{{"aud":"a","exp":"{}"}}"#, (NOW + 3600) * 1000),
    );
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry.timestamp().unwrap().as_second(), NOW + 3600);
    assert_eq!(o.facts.anomalies, [Anomaly::ExpiryMilliseconds]);
    // Google documents exp as a string: that alone is no anomaly.
    let o = p(200, &format!(r#"{{"aud":"a","exp":"{}"}}"#, NOW + 3600));
    assert!(o.facts.anomalies.is_empty(), "{:?}", o.facts);
}

#[test]
fn garbage_and_outages_are_unreachable() {
    for (status, body) in [
        (200, "<html>sign in</html>"),
        (200, ""),
        (200, "[]"),
        (200, "{}"),
        (200, r#"{"aud":"a","exp":"soon"}"#),
        (200, r#"{"aud":"a","expires_in":true}"#),
        (400, "<html>400</html>"),
        (400, "{}"),
        (401, r#"{"error":"invalid_token"}"#),
        (500, ""),
        (503, "unavailable"),
        (301, ""),
    ] {
        let o = p(status, body);
        assert_eq!(o.verdict, Verdict::Unreachable, "{status} {body}: {o:?}");
    }
}

#[test]
fn rate_limited() {
    let mut h = HeaderMap::new();
    h.insert("retry-after", HeaderValue::from_static("9"));
    let o = parse(429, &h, b"", now());
    assert_eq!(o.verdict, Verdict::RateLimited);
    assert_eq!(o.retry_after, Some(std::time::Duration::from_secs(9)));
}

#[test]
fn config_refuses_a_query_string() {
    let c = Config {
        url: Some("https://oauth2.googleapis.com?access_token=x".into()),
        tokeninfo_url: None,
        max_concurrency: None,
    };
    assert!(c.validate().unwrap_err().contains("must not have a query"));
}

/// `url` is the server, `/tokeninfo` appended; the old `tokeninfo_url` is the whole
/// endpoint as before, is reported as renamed, and may not be given beside `url`.
#[test]
fn url_and_the_old_tokeninfo_url() {
    let mut c = Config {
        url: None,
        tokeninfo_url: None,
        max_concurrency: None,
    };
    assert_eq!(
        c.endpoint().unwrap(),
        ("url", "https://oauth2.googleapis.com/tokeninfo".into())
    );
    c.url = Some("http://127.0.0.1:8080/google/".into());
    assert_eq!(
        c.endpoint().unwrap().1,
        "http://127.0.0.1:8080/google/tokeninfo"
    );
    assert!(c.renamed_in_use().is_empty());
    c.tokeninfo_url = Some("http://127.0.0.1:8080/google/tokeninfo".into());
    assert!(c.validate().unwrap_err().contains("url and tokeninfo_url"));
    c.url = None;
    assert!(c.validate().is_ok());
    assert_eq!(
        c.endpoint().unwrap(),
        (
            "tokeninfo_url",
            "http://127.0.0.1:8080/google/tokeninfo".into()
        )
    );
    assert_eq!(c.renamed_in_use()[0].old, "tokeninfo_url");
}
