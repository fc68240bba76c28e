use super::*;
use crate::provider::http::test_headers as headers;
use serde_json::json;
use std::time::Duration;

const NOW: i64 = 1_700_000_000;
/// A granular token as npm issues them: `npm_` and 36 letters and digits.
const TOKEN: &str = "npm_aBcD0123456789abcdefghijklmnopqrWxYz";

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

fn whoami(status: u16, h: &[(&str, &str)], body: &str) -> ProbeOutcome {
    parse(status, &headers(h), body.as_bytes(), now())
}

fn sha512_hex(v: &str) -> String {
    Sha512::digest(v.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The entry npm lists for a granular token (the shape `npm token list --json` prints).
fn granular(redacted: &str) -> Value {
    json!({
        "name": "ci-publish", "description": "", "key": "a1b2c3d4-e5f6-4789-abcd-ef1234567890",
        "token": redacted, "expiry": "2023-12-15T00:00:00.000Z", "cidr": ["10.0.0.0/8"],
        "bypass_2fa": true, "revoked": null, "created": "2023-11-01T00:00:00.000Z",
        "updated": "2023-11-01T00:00:00.000Z", "accessed": "2023-11-10T08:00:00.000Z",
        "permissions": [{"name": "package", "action": "write"}, {"name": "org", "action": "read"}],
        "scopes": [{"name": null, "type": "package"}, {"name": "acme", "type": "org"}]
    })
}

fn facts_from(entries: &[Value], token: &str) -> TokenFacts {
    let mut facts = TokenFacts::default();
    list_facts(entries, &Held::new(token), &mut facts);
    facts
}

#[test]
fn whoami_names_the_user_and_leaves_the_expiry_to_the_list() {
    let o = whoami(200, &[], r#"{"username":"grace"}"#);
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok));
    assert_eq!(o.facts.subject.as_deref(), Some("grace"));
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert_eq!(o.facts.expiry_model, crate::model::ExpiryModel::Fixed);
}

#[test]
fn a_plain_401_is_invalid_and_a_challenge_is_not() {
    let o = whoami(401, &[], r#"{"error":"Unauthorized"}"#);
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::UnknownToken)
    );
    // An unrelated scheme in the challenge does not change that.
    let o = whoami(401, &[("www-authenticate", "Bearer")], "");
    assert_eq!(o.verdict, Verdict::Invalid);
    let o = whoami(401, &[("www-authenticate", "ipaddress")], "");
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Forbidden, Reason::InsufficientScope)
    );
    assert!(o.detail.contains("IP ranges"), "{}", o.detail);
    let o = whoami(401, &[("www-authenticate", "Basic, OTP")], "");
    assert_eq!(o.verdict, Verdict::Forbidden);
    let o = whoami(403, &[], r#"{"error":"Forbidden"}"#);
    assert_eq!(o.verdict, Verdict::Forbidden);
}

#[test]
fn rate_limits_and_server_errors_are_never_conclusive() {
    let o = whoami(429, &[("retry-after", "60")], "");
    assert_eq!(o.verdict, Verdict::RateLimited);
    assert_eq!(o.retry_after, Some(Duration::from_secs(60)));
    let o = whoami(
        429,
        &[
            ("x-ratelimit-reset", &(NOW + 90).to_string()),
            ("x-ratelimit-remaining", "0"),
        ],
        "",
    );
    assert_eq!(o.retry_after, Some(Duration::from_secs(90)));
    for status in [500, 502, 503, 504] {
        let o = whoami(status, &[], "<html>down</html>");
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Unreachable, Reason::Http5xx)
        );
    }
    let o = whoami(404, &[], "{}");
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::UnexpectedStatus)
    );
}

#[test]
fn garbage_whoami_answers_are_bad_responses() {
    for body in [
        "",
        "<html><body>Sign in</body></html>",
        "[]",
        r#"{"username":""}"#,
        r#"{"username":42}"#,
        r#"{"user":"grace"}"#,
        "null",
    ] {
        let o = whoami(200, &[("content-type", "text/html")], body);
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Unreachable, Reason::BadResponse),
            "{body}"
        );
    }
    let huge = format!(r#"{{"username":"{}"}}"#, "a".repeat(2 * 1024 * 1024));
    assert_eq!(whoami(200, &[], &huge).verdict, Verdict::Valid);
    let deep = "[".repeat(100_000);
    assert_eq!(whoami(200, &[], &deep).reason, Reason::BadResponse);
}

#[test]
fn a_granular_entry_is_found_by_its_redacted_form() {
    let entries = [
        granular("npm_zzzz...9999"),
        granular("npm_aBcD...WxYz"),
        json!({"key": "b91f80", "token": "npm_YO", "readonly": true, "created": "2017-10-02T00:00:00.000Z"}),
    ];
    let f = facts_from(&entries, TOKEN);
    assert_eq!(
        f.expiry,
        Expiry::At("2023-12-15T00:00:00Z".parse().unwrap())
    );
    assert_eq!(f.token_type.as_deref(), Some("granular"));
    assert_eq!(f.scopes, ["org:read", "package:write"]);
    assert_eq!(f.issued_at, Some("2023-11-01T00:00:00Z".parse().unwrap()));
    assert_eq!(
        f.last_used_at,
        Some("2023-11-10T08:00:00Z".parse().unwrap())
    );
    assert_eq!(f.extra["cidr_whitelist"], "10.0.0.0/8");
    assert_eq!(f.extra["bypass_2fa"], "true");
    assert_eq!(f.extra["token_name"], "ci-publish");
    assert!(f.flags.is_empty(), "{:?}", f.flags);
    // A bare prefix of eight characters, or the unicode ellipsis, fits as well.
    assert!(
        facts_from(&[granular("npm_aBcD")], TOKEN)
            .expiry
            .timestamp()
            .is_some()
    );
    assert!(
        facts_from(&[granular("npm_aBcD\u{2026}WxYz")], TOKEN)
            .expiry
            .timestamp()
            .is_some()
    );
}

#[test]
fn an_old_scheme_entry_is_found_by_its_key_and_never_expires() {
    let legacy = "a73c9572-f1b9-8983-983d-ba3ac3cc913d";
    let entries = [json!({
        "cidr_whitelist": ["192.168.0.1/24"], "readonly": true, "automation": false,
        "created": "2017-10-02T00:00:00.000Z", "updated": "2017-10-02T00:00:00.000Z",
        "key": sha512_hex(legacy).to_uppercase(), "token": "a73c95"
    })];
    let f = facts_from(&entries, legacy);
    assert_eq!(f.expiry, Expiry::Never);
    assert_eq!(f.token_type.as_deref(), Some("read-only"));
    assert_eq!(f.extra["cidr_whitelist"], "192.168.0.1/24");
    assert_eq!(f.extra["readonly"], "true");
    let automation = [json!({"key": sha512_hex(legacy), "token": "a73c95", "automation": true})];
    assert_eq!(
        facts_from(&automation, legacy).token_type.as_deref(),
        Some("automation")
    );
    let publish = [json!({"key": sha512_hex(legacy), "token": "a73c95", "readonly": false})];
    assert_eq!(
        facts_from(&publish, legacy).token_type.as_deref(),
        Some("publish")
    );
}

#[test]
fn no_match_or_an_ambiguous_one_discloses_nothing() {
    // Six characters (the old scheme's `token`) are too few to tell two tokens apart.
    let f = facts_from(&[granular("npm_aB")], TOKEN);
    assert_eq!(f.expiry, Expiry::Undisclosed);
    assert!(
        f.flags[0].contains("not in its account's token list"),
        "{:?}",
        f.flags
    );
    let f = facts_from(
        &[granular("npm_aBcD...WxYz"), granular("npm_aBcD...")],
        TOKEN,
    );
    assert_eq!(f.expiry, Expiry::Undisclosed);
    assert!(f.flags[0].starts_with("2 entries"), "{:?}", f.flags);
    let f = facts_from(&[], TOKEN);
    assert_eq!(f.expiry, Expiry::Undisclosed);
    // A suffix that does not fit is another token.
    let f = facts_from(&[granular("npm_aBcD...0000")], TOKEN);
    assert_eq!(f.expiry, Expiry::Undisclosed);
    // Entries of the wrong shape are skipped, not a panic.
    let f = facts_from(
        &[json!(1), json!(null), json!({"token": 5, "key": []})],
        TOKEN,
    );
    assert_eq!(f.expiry, Expiry::Undisclosed);
}

#[test]
fn unusable_expiries_are_noted_never_read_as_never() {
    for expiry in [json!("soon"), json!(1_702_598_400), json!(true)] {
        let mut e = granular("npm_aBcD...WxYz");
        e["expiry"] = expiry.clone();
        let f = facts_from(&[e], TOKEN);
        assert_eq!(f.expiry, Expiry::Undisclosed, "{expiry}");
        assert_eq!(f.anomalies, [Anomaly::ExpiryUnreadable], "{expiry}");
    }
    let mut e = granular("npm_aBcD...WxYz");
    e["expiry"] = Value::Null;
    let f = facts_from(&[e], TOKEN);
    assert_eq!(f.expiry, Expiry::Undisclosed);
    assert!(f.flags[0].contains("no expiry for a granular token"));
    let mut e = granular("npm_aBcD...WxYz");
    e["revoked"] = json!("2023-11-20T00:00:00.000Z");
    assert!(facts_from(&[e], TOKEN).flags[0].contains("revoked"));
}

#[test]
fn list_pages_and_refusals() {
    let page = list_page(
        200,
        br#"{"objects":[{"key":"k"}],"total":2,"urls":{"next":"/-/npm/v1/tokens?page=1"}}"#,
    )
    .unwrap();
    assert_eq!(page.objects.len(), 1);
    assert_eq!(page.next.as_deref(), Some("/-/npm/v1/tokens?page=1"));
    let last = list_page(200, br#"{"objects":[],"urls":{}}"#).unwrap();
    assert_eq!(last.next, None);
    for (status, why) in [
        (401, "may not read"),
        (403, "may not read"),
        (404, "no token list"),
        (429, "rate limited"),
        (500, "not an answer"),
    ] {
        let err = list_page(status, b"{}").unwrap_err();
        assert!(err.contains(why) && err.contains("not disclosed"), "{err}");
    }
    for body in [
        &b"<html>"[..],
        b"{}",
        br#"{"objects":{}}"#,
        br#"{"objects":[],"urls":{"next":1}}"#,
    ] {
        assert!(list_page(200, body).is_err());
    }
}

#[test]
fn next_pages_stay_on_the_registry() {
    let first = "https://registry.npmjs.org/-/npm/v1/tokens";
    assert_eq!(
        next_page(first, first, "/-/npm/v1/tokens?page=1").as_deref(),
        Some("https://registry.npmjs.org/-/npm/v1/tokens?page=1")
    );
    assert_eq!(
        next_page(
            first,
            first,
            "https://registry.npmjs.org/-/npm/v1/tokens?page=2"
        )
        .as_deref(),
        Some("https://registry.npmjs.org/-/npm/v1/tokens?page=2")
    );
    assert_eq!(next_page(first, first, "https://evil.example/steal"), None);
    assert_eq!(next_page(first, first, "//evil.example/steal"), None);
}

#[test]
fn config_checks() {
    let c = |url: &str| Config {
        url: Some(url.into()),
        token_list: true,
        max_concurrency: None,
    };
    assert!(c("https://registry.npmjs.org").validate().is_ok());
    assert!(c("http://127.0.0.1:4873/verdaccio").validate().is_ok());
    assert!(c("https://u:p@registry.npmjs.org").validate().is_err());
    assert!(c("https://registry.npmjs.org/?x=1").validate().is_err());
    assert!(c("registry.npmjs.org").validate().is_err());
}
