//! `parse` and the IAM readers against the answers AWS documents: the `GetCallerIdentity`,
//! `ListAccessKeys` and `GetAccessKeyLastUsed` examples of the API references, and the
//! common error XML of the Query protocol.

use std::time::Duration;

use super::iam::{access_keys_page, last_used};
use super::*;
use crate::provider::http::test_headers;

fn now() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

const IDENTITY: &str = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:iam::123456789012:user/Alice</Arn>
    <UserId>AIDACKCEVSQ6C2EXAMPLE</UserId>
    <Account>123456789012</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata>
    <RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId>
  </ResponseMetadata>
</GetCallerIdentityResponse>"#;

fn error(code: &str, message: &str) -> String {
    format!(
        r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
    <Type>Sender</Type>
    <Code>{code}</Code>
    <Message>{message}</Message>
  </Error>
  <RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId>
</ErrorResponse>"#
    )
}

fn parsed(status: u16, body: &str) -> ProbeOutcome {
    parse(status, &HeaderMap::new(), body.as_bytes(), now())
}

#[test]
fn a_long_term_key_is_valid_age_only_and_never_expires() {
    let o = parsed(200, IDENTITY);
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(
        o.facts.subject.as_deref(),
        Some("arn:aws:iam::123456789012:user/Alice")
    );
    assert_eq!(o.facts.extra["account"], "123456789012");
    assert_eq!(o.facts.extra["user_id"], "AIDACKCEVSQ6C2EXAMPLE");
    assert_eq!(o.facts.extra["principal_type"], "user");
    assert_eq!(o.facts.token_type.as_deref(), Some("access_key"));
    assert_eq!(o.facts.expiry, Expiry::Never);
    assert_eq!(o.facts.expiry_model, ExpiryModel::AgeOnly);
    assert!(o.facts.flags.is_empty(), "{:?}", o.facts.flags);
}

#[test]
fn session_credentials_do_not_disclose_their_expiry() {
    let body = IDENTITY.replace("user/Alice", "assumed-role/deploy/session-1");
    let o = parse_as(
        200,
        &HeaderMap::new(),
        body.as_bytes(),
        now(),
        Held::Session,
    );
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert_eq!(o.facts.expiry_model, ExpiryModel::Fixed);
    assert_eq!(o.facts.token_type.as_deref(), Some("session"));
    assert_eq!(o.facts.extra["principal_type"], "assumed-role");
}

#[test]
fn a_root_key_is_flagged() {
    let body = IDENTITY.replace("user/Alice", "root");
    let o = parsed(200, &body);
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.extra["principal_type"], "root");
    assert!(o.facts.flags.iter().any(|f| f.contains("root user")));
}

#[test]
fn documented_errors_map_to_their_verdicts() {
    for (status, code, message, verdict, reason) in [
        (
            403,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
            Verdict::Invalid,
            Reason::UnknownToken,
        ),
        (
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
            Verdict::Invalid,
            Reason::BadSignature,
        ),
        (
            403,
            "SignatureDoesNotMatch",
            "Signature expired: 20250101T000000Z is now earlier than 20250101T001000Z (20250101T002500Z - 15 min.)",
            Verdict::Misconfigured,
            Reason::UnexpectedStatus,
        ),
        (
            400,
            "RequestExpired",
            "Request has expired.",
            Verdict::Misconfigured,
            Reason::UnexpectedStatus,
        ),
        (
            403,
            "ExpiredToken",
            "The security token included in the request is expired",
            Verdict::Invalid,
            Reason::Expired,
        ),
        (
            400,
            "Throttling",
            "Rate exceeded",
            Verdict::RateLimited,
            Reason::RateLimited,
        ),
        (
            400,
            "ThrottlingException",
            "Rate exceeded",
            Verdict::RateLimited,
            Reason::RateLimited,
        ),
        (
            403,
            "AccessDenied",
            "User is not authorized",
            Verdict::Forbidden,
            Reason::InsufficientScope,
        ),
        (
            403,
            "RegionDisabledException",
            "STS is not activated in this region for account",
            Verdict::Misconfigured,
            Reason::UnexpectedStatus,
        ),
        (
            400,
            "IncompleteSignature",
            "a message AWS wrote",
            Verdict::Unreachable,
            Reason::UnexpectedStatus,
        ),
        (
            400,
            "InvalidAction",
            "a message AWS wrote",
            Verdict::Unreachable,
            Reason::UnexpectedStatus,
        ),
        (
            400,
            "SomethingAwsAddsNextYear",
            "a message AWS wrote",
            Verdict::Unreachable,
            Reason::UnexpectedStatus,
        ),
    ] {
        let o = parsed(status, &error(code, message));
        assert_eq!((o.verdict, o.reason), (verdict, reason), "{code}: {o:?}");
        assert!(!o.detail.contains(message), "the message is never copied");
    }
}

/// The error XML with the `<Errors>` list, as moto answers and the SDKs read it.
#[test]
fn the_errors_list_form_is_read_too() {
    let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ErrorResponse><Errors><Error><Code>InvalidClientTokenId</Code><Message>m</Message><Type>Sender</Type></Error></Errors></ErrorResponse>";
    let o = parsed(403, body);
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::UnknownToken)
    );
}

#[test]
fn only_documented_codes_are_named() {
    let o = parsed(400, &error("AKIAIOSFODNN7EXAMPLE", "x"));
    assert_eq!(o.verdict, Verdict::Unreachable);
    assert!(!o.detail.contains("AKIAIOSFODNN7EXAMPLE"), "{}", o.detail);
    assert!(o.detail.contains("unrecognised"));
    let o = parsed(400, &error("InvalidAction", "x"));
    assert!(o.detail.contains("InvalidAction"));
}

#[test]
fn throttling_takes_retry_after() {
    let o = parse(
        400,
        &test_headers(&[("retry-after", "7")]),
        error("Throttling", "Rate exceeded").as_bytes(),
        now(),
    );
    assert_eq!(o.verdict, Verdict::RateLimited);
    assert_eq!(o.retry_after, Some(Duration::from_secs(7)));
}

#[test]
fn server_failures_and_odd_statuses_are_unreachable() {
    for status in [500, 502, 503, 504] {
        let o = parsed(status, &error("ServiceUnavailable", "x"));
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Unreachable, Reason::Http5xx)
        );
    }
    let o = parse(503, &test_headers(&[("retry-after", "30")]), b"", now());
    assert_eq!(o.retry_after, Some(Duration::from_secs(30)));
    let o = parsed(429, "");
    assert_eq!(o.verdict, Verdict::RateLimited);
    for status in [301, 302, 304, 204, 100] {
        let o = parsed(status, IDENTITY);
        assert_eq!(o.verdict, Verdict::Unreachable, "{status}");
    }
    // A 4xx without AWS's error XML (a proxy's page) says nothing about the key.
    for body in [
        "<html><body>Forbidden</body></html>",
        "",
        "{\"message\":\"no\"}",
    ] {
        let o = parsed(403, body);
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Unreachable, Reason::UnexpectedStatus),
            "{body}"
        );
    }
}

#[test]
fn garbage_200_answers_are_bad_responses() {
    for body in [
        "",
        "not xml",
        "{\"Arn\": \"x\"}",
        "<html><body>ok</body></html>",
        "<GetCallerIdentityResponse></GetCallerIdentityResponse>",
        "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>a</Arn></GetCallerIdentityResult></GetCallerIdentityResponse>",
        "<GetCallerIdentityResponse><GetCallerIdentityResult><Account>1</Account></GetCallerIdentityResult></GetCallerIdentityResponse>",
        "<GetCallerIdentityResponse><GetCallerIdentityResult>",
        &error("InvalidClientTokenId", "x"),
        "<!DOCTYPE x [<!ENTITY a \"b\">]><GetCallerIdentityResponse/>",
    ] {
        let o = parsed(200, body);
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Unreachable, Reason::BadResponse),
            "{body}"
        );
    }
    let huge = format!(
        "<GetCallerIdentityResponse>{}</GetCallerIdentityResponse>",
        "<x>".repeat(100_000)
    );
    assert_eq!(parsed(200, &huge).verdict, Verdict::Unreachable);
    let o = parse(200, &HeaderMap::new(), &[0xff, 0xfe, 0x00, 0x3c], now());
    assert_eq!(o.reason, Reason::BadResponse);
}

const LIST: &str = r#"<ListAccessKeysResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
  <ListAccessKeysResult>
    <UserName>Bob</UserName>
    <AccessKeyMetadata>
      <member>
        <UserName>Bob</UserName>
        <AccessKeyId>AKIAIOSFODNN7EXAMPLE</AccessKeyId>
        <Status>Active</Status>
        <CreateDate>2012-05-08T23:34:01Z</CreateDate>
      </member>
      <member>
        <UserName>Bob</UserName>
        <AccessKeyId>AKIAI44QH8DHBEXAMPLE</AccessKeyId>
        <Status>Inactive</Status>
        <CreateDate>2012-05-08T23:34:01.500Z</CreateDate>
      </member>
    </AccessKeyMetadata>
    <IsTruncated>false</IsTruncated>
  </ListAccessKeysResult>
  <ResponseMetadata>
    <RequestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</RequestId>
  </ResponseMetadata>
</ListAccessKeysResponse>"#;

#[test]
fn list_access_keys_gives_the_creation_date_of_the_key() {
    let mut facts = TokenFacts::default();
    let next = access_keys_page(200, LIST.as_bytes(), "AKIAIOSFODNN7EXAMPLE", &mut facts);
    assert_eq!(next, None);
    assert_eq!(
        facts.issued_at,
        Some("2012-05-08T23:34:01Z".parse().unwrap())
    );
    assert_eq!(facts.extra["user_name"], "Bob");
    assert!(facts.flags.is_empty(), "{:?}", facts.flags);
    // The other key of the user, inactive: its status is said.
    let mut facts = TokenFacts::default();
    access_keys_page(200, LIST.as_bytes(), "AKIAI44QH8DHBEXAMPLE", &mut facts);
    assert_eq!(facts.extra["key_status"], "inactive");
    assert!(facts.issued_at.is_some());
}

#[test]
fn list_access_keys_pages_and_refusals() {
    let truncated = LIST
        .replace("AKIAIOSFODNN7EXAMPLE", "AKIAOTHER0000000000")
        .replace("AKIAI44QH8DHBEXAMPLE", "AKIAOTHER0000000001")
        .replace(
            "<IsTruncated>false</IsTruncated>",
            "<IsTruncated>true</IsTruncated><Marker>page-2</Marker>",
        );
    let mut facts = TokenFacts::default();
    assert_eq!(
        access_keys_page(
            200,
            truncated.as_bytes(),
            "AKIAIOSFODNN7EXAMPLE",
            &mut facts
        ),
        Some("page-2".to_string())
    );
    assert!(facts.flags.is_empty());
    let last = truncated.replace(
        "<IsTruncated>true</IsTruncated>",
        "<IsTruncated>false</IsTruncated>",
    );
    access_keys_page(200, last.as_bytes(), "AKIAIOSFODNN7EXAMPLE", &mut facts);
    assert!(facts.flags[0].contains("does not list this access key"));

    let denied = error(
        "AccessDenied",
        "User: arn:aws:iam::123456789012:user/Bob is not authorized to perform: iam:ListAccessKeys",
    );
    let mut facts = TokenFacts::default();
    access_keys_page(403, denied.as_bytes(), "AKIAIOSFODNN7EXAMPLE", &mut facts);
    assert_eq!(facts.issued_at, None);
    assert!(
        facts.flags[0].contains("allow iam:ListAccessKeys"),
        "{:?}",
        facts.flags
    );
    assert!(
        !facts.flags[0].contains("arn:aws"),
        "the message is never copied"
    );

    for (status, body) in [
        (400, error("Throttling", "Rate exceeded")),
        (500, String::new()),
        (200, "garbage".to_string()),
        (200, IDENTITY.to_string()),
        (200, LIST.replace("2012-05-08T23:34:01Z", "yesterday")),
    ] {
        let mut facts = TokenFacts::default();
        access_keys_page(status, body.as_bytes(), "AKIAIOSFODNN7EXAMPLE", &mut facts);
        assert_eq!(facts.issued_at, None, "{status} {body}");
        assert_eq!(facts.flags.len(), 1, "{status} {body}");
    }
}

const LAST_USED: &str = r#"<GetAccessKeyLastUsedResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
  <GetAccessKeyLastUsedResult>
    <AccessKeyLastUsed>
      <Region>us-west-2</Region>
      <LastUsedDate>2015-03-13T10:45:00Z</LastUsedDate>
      <ServiceName>s3</ServiceName>
    </AccessKeyLastUsed>
    <UserName>bob</UserName>
  </GetAccessKeyLastUsedResult>
  <ResponseMetadata>
    <RequestId>510a6abf-d022-11e4-abe8-9b0ebEXAMPLE</RequestId>
  </ResponseMetadata>
</GetAccessKeyLastUsedResponse>"#;

#[test]
fn last_used_gives_time_service_and_region() {
    let mut facts = TokenFacts::default();
    last_used(200, LAST_USED.as_bytes(), &mut facts);
    assert_eq!(
        facts.last_used_at,
        Some("2015-03-13T10:45:00Z".parse().unwrap())
    );
    assert_eq!(facts.extra["last_used_service"], "s3");
    assert_eq!(facts.extra["last_used_region"], "us-west-2");
    assert!(facts.flags.is_empty());

    // Never used: no date, N/A service and region.
    let never = LAST_USED
        .replace("<LastUsedDate>2015-03-13T10:45:00Z</LastUsedDate>", "")
        .replace("us-west-2", "N/A")
        .replace("s3", "N/A");
    let mut facts = TokenFacts::default();
    last_used(200, never.as_bytes(), &mut facts);
    assert_eq!(facts.last_used_at, None);
    assert_eq!(facts.extra["last_used"], "never");
    assert!(!facts.extra.contains_key("last_used_service"));

    let mut facts = TokenFacts::default();
    last_used(403, error("AccessDenied", "no").as_bytes(), &mut facts);
    assert!(facts.flags[0].contains("allow iam:GetAccessKeyLastUsed"));
    for body in ["", "<x/>", LIST] {
        let mut facts = TokenFacts::default();
        last_used(200, body.as_bytes(), &mut facts);
        assert_eq!(facts.last_used_at, None);
        assert_eq!(facts.flags.len(), 1, "{body}");
    }
}

#[test]
fn endpoints_follow_the_region_and_keep_a_path_prefix() {
    let c = |yaml: &str| -> Config { serde_json::from_str(yaml).unwrap() };
    let plain = c("{}");
    assert_eq!(plain.sts_url(), DEFAULT_URL);
    assert_eq!(plain.iam_url(), "https://iam.amazonaws.com");
    let eu = c(r#"{"region": "eu-west-1"}"#);
    assert_eq!(eu.sts_url(), "https://sts.eu-west-1.amazonaws.com");
    assert_eq!(eu.iam_url(), "https://iam.amazonaws.com");
    let cn = c(r#"{"region": "cn-northwest-1"}"#);
    assert_eq!(cn.sts_url(), "https://sts.cn-northwest-1.amazonaws.com.cn");
    assert_eq!(iam::endpoint("cn-northwest-1").1, "cn-north-1");
    assert_eq!(iam::endpoint("us-gov-east-1").1, "us-gov-west-1");

    let e = Endpoint::new("http://127.0.0.1:4566/aws-proxy", "us-east-1", "sts").unwrap();
    assert_eq!(e.url, "http://127.0.0.1:4566/aws-proxy/");
    assert_eq!(e.path, "/aws-proxy/");
    assert_eq!(e.host, "127.0.0.1:4566");
    let e = Endpoint::new("https://sts.amazonaws.com:443", "us-east-1", "sts").unwrap();
    assert_eq!(
        (e.host.as_str(), e.path.as_str()),
        ("sts.amazonaws.com", "/")
    );
}

#[test]
fn config_checks() {
    let c = |yaml: &str| -> Config { serde_json::from_str(yaml).unwrap() };
    assert!(c("{}").validate().is_ok());
    for bad in [
        r#"{"region": "EU-WEST-1"}"#,
        r#"{"region": "eu-west-1.evil.com/"}"#,
        r#"{"region": ""}"#,
        r#"{"url": "ftp://sts.amazonaws.com"}"#,
        r#"{"url": "https://sts.amazonaws.com/?x=1"}"#,
        r#"{"iam_url": "https://user:pw@iam.amazonaws.com"}"#,
        r#"{"iam": false, "iam_url": "https://iam.amazonaws.com"}"#,
    ] {
        assert!(c(bad).validate().is_err(), "{bad}");
    }
    assert!(serde_json::from_str::<Config>(r#"{"regoin": "x"}"#).is_err());
    assert!(is_access_key_id("AKIAIOSFODNN7EXAMPLE"));
    assert!(!is_access_key_id("AKIA"));
    assert!(!is_access_key_id("AKIAIOSFODNN7EXAMPLE/"));
}

/// STS and IAM count quotas per account: keys pause with the other keys of their account,
/// and alone until an answer named it.
#[test]
fn rate_limits_are_keyed_by_account() {
    let config: Config = serde_json::from_str("{}").unwrap();
    let provider = config.build(&BuildContext::new()).unwrap();
    assert_eq!(
        provider.rate_limit_key(&TokenFacts::default()),
        LimitKey::Token
    );
    let facts = parsed(200, IDENTITY).facts;
    assert_eq!(
        provider.rate_limit_key(&facts),
        LimitKey::Identity("123456789012".into())
    );
}
