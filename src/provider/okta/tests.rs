use super::*;
use crate::provider::http::test_headers as headers;

const NOW: i64 = 1_700_000_000;
const DAY: i64 = 86_400;

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// `GET /api/v1/users/me`, shortened from Okta's example.
const ME: &str = r#"{"id":"00ub0oNGTSWTBKOLGLNR","status":"ACTIVE","created":"2013-06-24T16:39:18.000Z",
  "activated":"2013-06-24T16:39:19.000Z","statusChanged":"2013-06-24T16:39:19.000Z",
  "lastLogin":"2013-06-24T17:39:19.000Z","lastUpdated":"2013-06-27T16:35:28.000Z",
  "profile":{"firstName":"Isaac","lastName":"Brock","email":"isaac.brock@example.com",
  "login":"isaac.brock@example.com","mobilePhone":"555-415-1337"},
  "credentials":{"provider":{"type":"OKTA","name":"OKTA"}},
  "_links":{"self":{"href":"https://acme.okta.com/api/v1/users/00ub0oNGTSWTBKOLGLNR"}}}"#;

/// `GET /api/v1/api-tokens`, as Okta's reference shows an entry.
const LIST: &str = r#"[{"name":"My API Token","userId":"00ub0oNGTSWTBKOLGLNR","tokenWindow":"P30D",
  "id":"00Tabcdefg1234567890","clientName":"Okta API","expiresAt":"2023-12-15T00:00:00.000Z",
  "created":"2023-10-01T20:38:10.000Z","lastUpdated":"2023-11-14T22:13:20.000Z",
  "_link":{"self":{"href":"https://acme.okta.com/api/v1/api-tokens/00Tabcdefg1234567890",
  "hints":{"allow":["GET","DELETE"]}}}},
  {"name":"other","userId":"00u0ther","tokenWindow":"P30D","id":"00T0ther","expiresAt":"2024-01-01T00:00:00.000Z"}]"#;

fn me() -> ProbeOutcome {
    parse(200, &HeaderMap::new(), ME.as_bytes(), now())
}

#[test]
fn a_valid_token_is_renewed_by_the_probe_itself() {
    let o = me();
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(o.facts.subject.as_deref(), Some("isaac.brock@example.com"));
    assert_eq!(o.facts.extra["user_id"], "00ub0oNGTSWTBKOLGLNR");
    assert_eq!(
        o.facts.expiry_model,
        ExpiryModel::Sliding {
            window_seconds: 30 * DAY as u64
        }
    );
    assert_eq!(o.facts.last_used_at, Some(now()));
    assert_eq!(
        o.facts.expiry,
        Expiry::At(Timestamp::from_second(NOW + 30 * DAY).unwrap())
    );
}

#[test]
fn invalid_only_on_e0000011() {
    let body = br#"{"errorCode":"E0000011","errorSummary":"Invalid token provided","errorLink":"E0000011","errorId":"oaeIM9IcG0uUbqnGxxV0HFtqw","errorCauses":[]}"#;
    let o = parse(401, &HeaderMap::new(), body, now());
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::UnknownToken)
    );
    assert!(!o.detail.contains("oaeIM9"));
    for body in [
        &b""[..],
        b"<html>401</html>",
        br#"{"errorCode":"E0000004"}"#,
        br#"{"errorCode":"SSWS-TOKEN"}"#,
    ] {
        let o = parse(401, &HeaderMap::new(), body, now());
        assert_eq!(
            o.verdict,
            Verdict::Unreachable,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn a_403_with_okta_error_is_forbidden() {
    let body = br#"{"errorCode":"E0000006","errorSummary":"You do not have permission to perform the requested action","errorLink":"E0000006","errorId":"x","errorCauses":[]}"#;
    let o = parse(403, &HeaderMap::new(), body, now());
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Forbidden, Reason::InsufficientScope)
    );
    let o = parse(403, &HeaderMap::new(), b"<html>blocked</html>", now());
    assert_eq!(o.verdict, Verdict::Unreachable);
}

#[test]
fn a_429_waits_for_the_reset() {
    let h = headers(&[
        ("x-rate-limit-limit", "600"),
        ("x-rate-limit-remaining", "0"),
        ("x-rate-limit-reset", &(NOW + 42).to_string()),
    ]);
    let body = br#"{"errorCode":"E0000047","errorSummary":"API call exceeded rate limit due to too many requests.","errorLink":"E0000047","errorId":"x","errorCauses":[]}"#;
    let o = parse(429, &h, body, now());
    assert_eq!(o.verdict, Verdict::RateLimited);
    assert_eq!(o.retry_after, Some(Duration::from_secs(42)));
    assert_eq!(o.rate_limit.and_then(|r| r.remaining), Some(0.0));
}

#[test]
fn outages_and_garbage_are_unreachable() {
    for (status, body) in [
        (
            500,
            r#"{"errorCode":"E0000009","errorSummary":"Internal Server Error"}"#,
        ),
        (503, ""),
        (
            404,
            r#"{"errorCode":"E0000007","errorSummary":"Not found"}"#,
        ),
        (200, "<html>Okta sign-in</html>"),
        (200, "[]"),
        (200, r#"{"profile":{"login":"x"}}"#),
        (200, &"{\"a\":".repeat(10_000)),
    ] {
        let o = parse(status, &HeaderMap::new(), body.as_bytes(), now());
        assert_eq!(
            o.verdict,
            Verdict::Unreachable,
            "{status} {body:.40}: {o:?}"
        );
    }
}

#[test]
fn the_users_token_in_the_list_gives_its_expiry() {
    let found = parse_tokens(200, LIST.as_bytes(), "00ub0oNGTSWTBKOLGLNR", None).unwrap();
    assert_eq!(found.len(), 1);
    let mut facts = me().facts;
    apply_tokens(&found, false, now(), &mut facts);
    assert_eq!(facts.expiry, Expiry::At(at("2023-12-15T00:00:00Z")));
    assert_eq!(facts.issued_at, Some(at("2023-10-01T20:38:10Z")));
    assert_eq!(facts.extra["token_id"], "00Tabcdefg1234567890");
    assert_eq!(facts.extra["client_name"], "Okta API");
    assert!(facts.flags.is_empty(), "{:?}", facts.flags);
}

#[test]
fn key_id_picks_by_id_or_name_and_ambiguity_is_noted() {
    let by_id = parse_tokens(200, LIST.as_bytes(), "ignored", Some("00T0ther")).unwrap();
    assert_eq!(by_id.len(), 1);
    let by_name = parse_tokens(200, LIST.as_bytes(), "ignored", Some("My API Token")).unwrap();
    assert_eq!(by_name.len(), 1);
    let two = r#"[{"id":"a","userId":"u","expiresAt":"2023-12-15T00:00:00.000Z"},
                  {"id":"b","userId":"u","expiresAt":"2023-12-20T00:00:00.000Z"}]"#;
    let found = parse_tokens(200, two.as_bytes(), "u", None).unwrap();
    let mut facts = me().facts;
    let computed = facts.expiry;
    apply_tokens(&found, false, now(), &mut facts);
    assert_eq!(facts.expiry, computed, "ambiguous: stays computed");
    assert!(facts.extra["expiry_note"].contains("key_id"));
}

#[test]
fn list_failures_keep_the_computed_expiry() {
    assert_eq!(
        parse_tokens(403, b"{}", "u", None),
        Err(ListNote::NotPermitted)
    );
    assert_eq!(
        parse_tokens(401, b"{}", "u", None),
        Err(ListNote::NotPermitted)
    );
    for (status, body) in [(500, "[]"), (200, "{}"), (200, "<html>"), (200, "")] {
        assert_eq!(
            parse_tokens(status, body.as_bytes(), "u", None),
            Err(ListNote::Failed)
        );
    }
    let mut facts = me().facts;
    note(&mut facts, ListNote::NotPermitted);
    assert!(facts.extra["expiry_note"].contains("computed"));
    assert!(facts.flags.is_empty());
}

#[test]
fn token_window_and_odd_expiries() {
    let list = r#"[{"id":"a","userId":"u","tokenWindow":"P7D"}]"#;
    let found = parse_tokens(200, list.as_bytes(), "u", None).unwrap();
    let mut facts = me().facts;
    apply_tokens(&found, false, now(), &mut facts);
    assert_eq!(
        facts.expiry_model,
        ExpiryModel::Sliding {
            window_seconds: 7 * DAY as u64
        }
    );
    assert_eq!(
        facts.expiry,
        Expiry::At(Timestamp::from_second(NOW + 7 * DAY).unwrap())
    );
    let list = r#"[{"id":"a","userId":"u","expiresAt":"tomorrow"}]"#;
    let found = parse_tokens(200, list.as_bytes(), "u", None).unwrap();
    let mut facts = me().facts;
    apply_tokens(&found, false, now(), &mut facts);
    assert_eq!(facts.anomalies, [Anomaly::ExpiryUnreadable]);
    assert_eq!(
        facts.expiry,
        Expiry::At(Timestamp::from_second(NOW + 30 * DAY).unwrap())
    );
}

#[test]
fn iso_durations() {
    assert_eq!(iso_duration("P30D"), Some(Duration::from_secs(30 * 86_400)));
    assert_eq!(iso_duration("PT12H"), Some(Duration::from_secs(12 * 3_600)));
    assert_eq!(
        iso_duration("P1DT6H30M"),
        Some(Duration::from_secs(86_400 + 6 * 3_600 + 1_800))
    );
    for bad in [
        "",
        "P",
        "30D",
        "P1M",
        "P1Y",
        "PT",
        "P0D",
        "PxD",
        "P99999999999999999999D",
        "P1D2",
    ] {
        assert_eq!(iso_duration(bad), None, "{bad}");
    }
}

#[test]
fn next_links() {
    let h = headers(&[(
        "link",
        "<https://acme.okta.com/api/v1/api-tokens?limit=200>; rel=\"self\", <https://acme.okta.com/api/v1/api-tokens?after=00T2&limit=200>; rel=\"next\"",
    )]);
    assert_eq!(
        next_link(&h).as_deref(),
        Some("https://acme.okta.com/api/v1/api-tokens?after=00T2&limit=200")
    );
    assert_eq!(next_link(&HeaderMap::new()), None);
}

#[test]
fn config_requires_an_org_without_the_api_path() {
    let c = |url: Option<&str>| Config {
        url: url.map(str::to_owned),
        max_concurrency: None,
    };
    assert!(c(None).validate().unwrap_err().contains("url is required"));
    assert!(c(Some("https://acme.okta.com")).validate().is_ok());
    assert!(c(Some("https://acme.okta.com/api/v1")).validate().is_err());
}
