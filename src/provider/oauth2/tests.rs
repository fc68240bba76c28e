use super::*;
use crate::model::Anomaly;
use crate::model::Expiry;
use reqwest::header::HeaderValue;

const NOW: i64 = 1_700_000_000;

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

fn p(status: u16, body: &str) -> ProbeOutcome {
    parse(status, &HeaderMap::new(), body.as_bytes(), now())
}

#[test]
fn active_token_with_claims() {
    let o = p(
        200,
        r#"{"active":true,"client_id":"exporter","exp":1700086400,"iat":1699990000,
               "iss":"http://idp","scope":"api:read openid","token_type":"Bearer","aud":["a","b"]}"#,
    );
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(
        o.facts.expiry,
        Expiry::At(Timestamp::from_second(1_700_086_400).unwrap())
    );
    assert_eq!(o.facts.issued_at.unwrap().as_second(), 1_699_990_000);
    assert_eq!(o.facts.scopes, ["api:read", "openid"]);
    assert_eq!(o.facts.client_id.as_deref(), Some("exporter"));
    assert_eq!(o.facts.audience, ["a", "b"]);
    assert!(o.facts.flags.is_empty());
}

#[test]
fn missing_exp_is_undisclosed_not_never() {
    let o = p(200, r#"{"active":true}"#);
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
}

#[test]
fn inactive_is_invalid() {
    let o = p(200, r#"{"active":false}"#);
    assert_eq!((o.verdict, o.reason), (Verdict::Invalid, Reason::Inactive));
}

#[test]
fn client_auth_failures_are_misconfigured() {
    assert_eq!(
        p(401, r#"{"error":"invalid_client"}"#).verdict,
        Verdict::Misconfigured
    );
    assert_eq!(
        p(400, r#"{"error":"invalid_client"}"#).reason,
        Reason::ClientAuth
    );
    assert_eq!(p(403, "").verdict, Verdict::Misconfigured);
}

#[test]
fn garbage_and_outages_are_unreachable_never_invalid() {
    for (status, body) in [
        (200, "<html>login</html>"),
        (200, r#"{"active":"yes"}"#),
        (200, "[]"),
        (200, ""),
        (502, "bad gateway"),
        (503, ""),
        (400, r#"{"error":"unsupported_token_type"}"#),
        (404, ""),
    ] {
        let o = p(status, body);
        assert_eq!(o.verdict, Verdict::Unreachable, "{status} {body}: {o:?}");
    }
}

#[test]
fn rate_limited_with_retry_after() {
    let mut h = HeaderMap::new();
    h.insert("retry-after", HeaderValue::from_static("7"));
    let o = parse(429, &h, b"", now());
    assert_eq!(o.verdict, Verdict::RateLimited);
    assert_eq!(o.retry_after, Some(std::time::Duration::from_secs(7)));
}

#[test]
fn error_codes_are_not_echoed_unless_plain() {
    let o = p(401, r#"{"error":"ghp_secret value with spaces"}"#);
    assert!(!o.detail.contains("ghp_secret"), "{}", o.detail);
}

/// Issue 16 finding 6: every unusable `exp` of the issue's list in an `active: true`
/// answer is valid (the provider said active) but never silently "no expiry": it is
/// read with an anomaly, or undisclosed with one.
#[test]
fn unusable_exp_is_flagged_not_ignored() {
    let at = |s: i64| Some(Timestamp::from_second(s).unwrap());
    for (exp, expiry, anomaly) in [
        ("\"1900000000\"", at(1_900_000_000), Anomaly::ExpiryString),
        (
            "1900000000000",
            at(1_900_000_000),
            Anomaly::ExpiryMilliseconds,
        ),
        ("true", None, Anomaly::ExpiryUnreadable),
        ("{}", None, Anomaly::ExpiryUnreadable),
        ("null", None, Anomaly::ExpiryUnreadable),
        ("\"canary-5e1d\"", None, Anomaly::ExpiryUnreadable),
        ("253402300800", None, Anomaly::ExpiryOutOfRange),
        ("1e18", None, Anomaly::ExpiryOutOfRange),
        ("9223372036854775807", None, Anomaly::ExpiryOutOfRange),
        ("-5", None, Anomaly::ExpiryOutOfRange),
    ] {
        let o = p(200, &format!(r#"{{"active":true,"exp":{exp}}}"#));
        assert_eq!(o.verdict, Verdict::Valid, "{exp}");
        assert_eq!(o.facts.expiry.timestamp(), expiry, "{exp}");
        assert_ne!(o.facts.expiry, Expiry::Never, "{exp}");
        assert_eq!(o.facts.anomalies, [anomaly], "{exp}");
        assert_eq!(o.facts.flags.len(), 1, "{exp}: {:?}", o.facts.flags);
        assert!(!format!("{o:?}").contains("canary"), "{exp}");
    }
}

#[test]
fn fractional_numeric_dates() {
    let o = p(200, r#"{"active":true,"exp":1700086400.5}"#);
    assert_eq!(
        o.facts.expiry.timestamp().unwrap().as_millisecond(),
        1_700_086_400_500
    );
}

#[test]
fn discovery_urls_cover_oidc_and_rfc8414() {
    assert_eq!(
        discovery_urls("https://idp.example.com/realms/x/"),
        [
            "https://idp.example.com/realms/x/.well-known/openid-configuration",
            "https://idp.example.com/.well-known/oauth-authorization-server/realms/x"
        ]
    );
    assert!(parse_discovery(br#"{"introspection_endpoint":"http://h/i"}"#).is_ok());
    assert!(parse_discovery(br#"{"issuer":"x"}"#).is_err());
}

#[test]
fn basic_auth_urlencodes() {
    let h = basic_auth("a b", "s:e");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(h.trim_start_matches("Basic "))
        .unwrap();
    assert_eq!(String::from_utf8(raw).unwrap(), "a+b:s%3Ae");
}

/// The old `introspection_url` is `introspection_endpoint` under its old name: same meaning,
/// reported as renamed, and refused beside the new name or `issuer`.
#[test]
fn the_old_introspection_url_still_works() {
    let config = |yaml: &str| -> Config { serde_saphyr::from_str(yaml).unwrap() };
    let creds = "client_id: c\nclient_secret: {env: X}\n";
    let old = config(&format!(
        "introspection_url: http://idp/introspect\n{creds}"
    ));
    assert!(old.validate().is_ok());
    assert_eq!(
        old.endpoint().map(String::as_str),
        Some("http://idp/introspect")
    );
    assert_eq!(old.renamed_in_use()[0].new, "introspection_endpoint");
    let new = config(&format!(
        "introspection_endpoint: http://idp/introspect\n{creds}"
    ));
    assert!(new.validate().is_ok());
    assert!(new.renamed_in_use().is_empty());
    let both = config(&format!(
        "introspection_endpoint: http://idp/i\nintrospection_url: http://idp/i\n{creds}"
    ));
    let err = both.validate().unwrap_err();
    assert!(
        err.contains("introspection_endpoint and introspection_url"),
        "{err}"
    );
    let with_issuer = config(&format!(
        "introspection_url: http://idp/i\nissuer: http://idp\n{creds}"
    ));
    assert!(
        with_issuer
            .validate()
            .unwrap_err()
            .contains("introspection_url or issuer")
    );
    let neither = config(creds);
    assert!(
        neither
            .validate()
            .unwrap_err()
            .contains("introspection_endpoint or issuer")
    );
}
