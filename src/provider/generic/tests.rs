use serde_json::json;

use std::time::Duration;

use super::*;
use crate::model::{Anomaly, Expiry, ExpiryRead};
use crate::provider::ProviderConfig;
use crate::provider::http::test_headers as headers;

const NOW: i64 = 1_700_000_000;

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

fn config(v: serde_json::Value) -> Config {
    let mut base = json!({"url": "https://api.example.com", "path": "/v1/token"});
    for (k, value) in v.as_object().unwrap() {
        base[k] = value.clone();
    }
    let c: Config = serde_json::from_value(base).unwrap();
    c.validate().unwrap();
    c
}

/// Recipe: an introspection-style endpoint (form field, `active`, `exp`, `scope`, `sub`).
fn introspection() -> Config {
    config(json!({
        "method": "POST",
        "token": {"in": "form", "name": "token"},
        "form": {"token_type_hint": "access_token"},
        "rules": [
            {"status": 200, "when": [{"pointer": "/active", "equals": true}], "verdict": "valid"},
            {"status": 200, "when": [{"pointer": "/active", "equals": false}], "verdict": "invalid", "reason": "inactive"},
            {"status": 429, "verdict": "rate_limited"}
        ],
        "expiry": {"from": "json_pointer", "at": "/exp", "format": "unix_seconds"},
        "scopes": {"from": "json_pointer", "at": "/scope"},
        "subject": {"from": "json_pointer", "at": "/sub"}
    }))
}

/// Recipe: statuses only, the key in a named header.
fn status_only() -> Config {
    config(json!({
        "token": {"in": "header", "name": "X-Api-Key"},
        "rules": [
            {"status": ["200", 204], "verdict": "valid"},
            {"status": 401, "verdict": "invalid"},
            {"status": 403, "verdict": "forbidden"},
            {"status": 429, "verdict": "rate_limited"}
        ]
    }))
}

/// Recipe: the expiry and scopes in headers, the subject in the body.
fn expiry_header() -> Config {
    config(json!({
        "rules": [
            {"status": "2xx", "verdict": "valid"},
            {"status": 401, "when": [{"header": "WWW-Authenticate", "contains": "invalid_token"}], "verdict": "invalid"},
            {"status": "4xx", "verdict": "forbidden"},
            {"status": 429, "verdict": "rate_limited"}
        ],
        "expiry": {"from": "header", "at": "X-Token-Expires-At", "format": "rfc3339"},
        "scopes": {"from": "header", "at": "X-Token-Scopes"},
        "subject": {"from": "json_pointer", "at": "/login"},
        "rate_limit_reset": {"header": "X-RateLimit-Reset", "format": "unix_seconds"}
    }))
}

fn p(c: &Config, status: u16, h: &[(&str, &str)], body: &str) -> ProbeOutcome {
    parse(c, status, &headers(h), body.as_bytes(), now())
}

#[test]
fn introspection_recipe_reads_every_fact() {
    let c = introspection();
    let o = p(
        &c,
        200,
        &[],
        &json!({"active": true, "exp": NOW + 3600, "scope": "read write", "sub": "svc-ci"})
            .to_string(),
    );
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(
        o.facts.expiry,
        Expiry::At(Timestamp::from_second(NOW + 3600).unwrap())
    );
    assert_eq!(o.facts.scopes, ["read", "write"]);
    assert_eq!(o.facts.subject.as_deref(), Some("svc-ci"));
    let o = p(&c, 200, &[], r#"{"active": false}"#);
    assert_eq!((o.verdict, o.reason), (Verdict::Invalid, Reason::Inactive));
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    // `active` neither true nor false: no rule matches, which is no answer.
    let o = p(&c, 200, &[], r#"{"active": "yes"}"#);
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::BadResponse)
    );
}

#[test]
fn a_body_the_rules_read_that_is_not_json_is_unreachable() {
    let c = introspection();
    for body in ["", "<html>login</html>", "{\"active\": tru", "[[[["] {
        let o = p(&c, 200, &[], body);
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Unreachable, Reason::BadResponse),
            "{body}"
        );
    }
}

#[test]
fn facts_from_a_body_that_is_not_json_make_a_valid_rule_unreachable() {
    // The rule only looks at the status, but the subject is in the body.
    let c = expiry_header();
    let o = p(&c, 200, &[], "<html>proxy</html>");
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::BadResponse)
    );
    // The invalid rule does not need the facts: a 401 stays what the rule says.
    let o = p(
        &c,
        401,
        &[("www-authenticate", "Bearer error=\"invalid_token\"")],
        "",
    );
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::UnknownToken)
    );
}

#[test]
fn a_5xx_is_unreachable_whatever_the_rules_say() {
    // Validation refuses this rule; parse must hold even for a config that skipped it.
    let mut c = status_only();
    c.rules.insert(
        0,
        Rule {
            status: StatusSet(vec![StatusMatch::Class(5), StatusMatch::Exact(302)]),
            when: vec![],
            verdict: RuleVerdict::Invalid,
            reason: None,
        },
    );
    for status in [500, 502, 503, 504, 599] {
        let o = p(&c, status, &[], "{}");
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Unreachable, Reason::Http5xx),
            "{status}"
        );
    }
    let o = p(&c, 302, &[("location", "https://elsewhere")], "");
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::UnexpectedStatus)
    );
}

#[test]
fn status_only_recipe() {
    let c = status_only();
    for (status, verdict, reason) in [
        (200, Verdict::Valid, Reason::Ok),
        (204, Verdict::Valid, Reason::Ok),
        (401, Verdict::Invalid, Reason::UnknownToken),
        (403, Verdict::Forbidden, Reason::InsufficientScope),
        (404, Verdict::Unreachable, Reason::UnexpectedStatus),
        (429, Verdict::RateLimited, Reason::RateLimited),
    ] {
        let o = p(&c, status, &[], "whatever the body");
        assert_eq!((o.verdict, o.reason), (verdict, reason), "{status}: {o:?}");
    }
    // Nothing promised about the expiry: not disclosed, never "no expiry".
    assert_eq!(p(&c, 200, &[], "").facts.expiry, Expiry::Undisclosed);
}

#[test]
fn a_class_in_a_conclusive_rule_never_covers_429() {
    let c = config(json!({"rules": [
        {"status": "2xx", "verdict": "valid"},
        {"status": "4xx", "verdict": "invalid"}
    ]}));
    let o = p(&c, 429, &[("retry-after", "30")], "");
    assert_eq!(
        (o.verdict, o.retry_after),
        (Verdict::RateLimited, Some(Duration::from_secs(30)))
    );
    assert_eq!(p(&c, 401, &[], "").verdict, Verdict::Invalid);
}

#[test]
fn expiry_header_recipe() {
    let c = expiry_header();
    let o = p(
        &c,
        200,
        &[
            ("x-token-expires-at", "2024-06-30T12:00:00Z"),
            ("x-token-scopes", "repo, read:org ,"),
        ],
        r#"{"login": "octo"}"#,
    );
    assert_eq!(o.verdict, Verdict::Valid, "{o:?}");
    assert_eq!(
        o.facts.expiry,
        Expiry::At("2024-06-30T12:00:00Z".parse().unwrap())
    );
    assert_eq!(o.facts.scopes, ["repo", "read:org"]);
    assert_eq!(o.facts.subject.as_deref(), Some("octo"));
    // A 401 without the bearer error is not called invalid: the 4xx rule says forbidden.
    let o = p(&c, 401, &[], "{}");
    assert_eq!(o.verdict, Verdict::Forbidden);
    // An unreadable expiry header: undisclosed, with the anomaly.
    let o = p(&c, 200, &[("x-token-expires-at", "soon")], "{}");
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert_eq!(o.facts.anomalies, [Anomaly::ExpiryUnreadable]);
}

#[test]
fn rate_limited_waits_for_retry_after_then_the_reset_header() {
    let c = expiry_header();
    let o = p(
        &c,
        429,
        &[
            ("retry-after", "12"),
            ("x-ratelimit-reset", &(NOW + 99).to_string()),
        ],
        "",
    );
    assert_eq!(o.retry_after, Some(Duration::from_secs(12)));
    let o = p(
        &c,
        429,
        &[("x-ratelimit-reset", &(NOW + 99).to_string())],
        "",
    );
    assert_eq!(o.retry_after, Some(Duration::from_secs(99)));
    let o = p(&c, 429, &[], "");
    assert_eq!((o.verdict, o.retry_after), (Verdict::RateLimited, None));
    // A 429 no rule names waits for the configured reset header too.
    let mut c = c;
    c.rules.retain(|r| r.verdict != RuleVerdict::RateLimited);
    let o = p(
        &c,
        429,
        &[("x-ratelimit-reset", &(NOW + 45).to_string())],
        "",
    );
    assert_eq!(
        (o.verdict, o.retry_after),
        (Verdict::RateLimited, Some(Duration::from_secs(45)))
    );
}

#[test]
fn expiry_formats_go_through_the_shared_reader() {
    use Origin::{Header, JsonPointer};
    use TimeFormat::*;
    let at = |s: i64| ExpiryRead::At(Timestamp::from_second(s).unwrap(), None);
    let r = |v: serde_json::Value, f, o| read_time(Some(&v), f, o);
    assert_eq!(r(json!(NOW), UnixSeconds, JsonPointer), at(NOW));
    assert_eq!(r(json!(NOW.to_string()), UnixSeconds, Header), at(NOW));
    assert_eq!(
        r(json!(NOW.to_string()), UnixSeconds, JsonPointer),
        ExpiryRead::At(
            Timestamp::from_second(NOW).unwrap(),
            Some(Anomaly::ExpiryString)
        )
    );
    assert_eq!(
        r(json!(NOW * 1000), UnixSeconds, JsonPointer),
        ExpiryRead::At(
            Timestamp::from_second(NOW).unwrap(),
            Some(Anomaly::ExpiryMilliseconds)
        )
    );
    assert_eq!(r(json!(NOW * 1000), UnixMillis, JsonPointer), at(NOW));
    assert_eq!(
        r(json!(NOW), UnixMillis, JsonPointer),
        ExpiryRead::Unusable(Anomaly::ExpiryOutOfRange)
    );
    assert_eq!(
        r(json!(-5), UnixSeconds, JsonPointer),
        ExpiryRead::Unusable(Anomaly::ExpiryOutOfRange)
    );
    assert_eq!(
        r(json!(null), UnixSeconds, JsonPointer),
        ExpiryRead::Unusable(Anomaly::ExpiryUnreadable)
    );
    assert_eq!(r(json!("2023-12-15"), Date, JsonPointer), at(1_702_598_400));
    assert_eq!(
        r(json!("2023-12-15T00:00:00Z"), Date, JsonPointer),
        ExpiryRead::Unusable(Anomaly::ExpiryUnreadable)
    );
    assert_eq!(
        r(json!("2023-12-15T00:00:00Z"), Rfc3339, Header),
        at(1_702_598_400)
    );
    assert_eq!(
        r(json!(1_702_598_400), Rfc3339, JsonPointer),
        ExpiryRead::Unusable(Anomaly::ExpiryUnreadable)
    );
    assert_eq!(read_time(None, Rfc3339, Header), ExpiryRead::Absent);
}

#[test]
fn absent_never_only_where_configured() {
    let mut c = introspection();
    let o = p(&c, 200, &[], r#"{"active": true}"#);
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    c.expiry.as_mut().unwrap().absent = Absent::Never;
    assert_eq!(
        p(&c, 200, &[], r#"{"active": true}"#).facts.expiry,
        Expiry::Never
    );
    // A present but unusable value is never read as "never".
    let o = p(&c, 200, &[], r#"{"active": true, "exp": "later"}"#);
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
}

#[test]
fn facts_of_the_wrong_shape_on_a_valid_answer_are_no_answer() {
    let c = introspection();
    for body in [
        r#"{"active": true, "scope": 5}"#,
        r#"{"active": true, "scope": ["a", 1]}"#,
        r#"{"active": true, "sub": {"id": 1}}"#,
    ] {
        let o = p(&c, 200, &[], body);
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Unreachable, Reason::BadResponse),
            "{body}"
        );
    }
    let o = p(
        &c,
        200,
        &[],
        r#"{"active": true, "scope": ["a", "b"], "sub": 42}"#,
    );
    assert_eq!(o.facts.scopes, ["a", "b"]);
    assert_eq!(o.facts.subject.as_deref(), Some("42"));
}

#[test]
fn conditions() {
    let h = headers(&[("x-state", "Active"), ("x-note", "token revoked today")]);
    let doc = json!({"a": {"b": 1.0, "s": "revoked"}, "n": null});
    let cond = |v: serde_json::Value| -> bool {
        let c: Condition = serde_json::from_value(v).unwrap();
        c.holds(&h, Some(&doc))
    };
    assert!(cond(json!({"pointer": "/a/b", "equals": 1})));
    assert!(cond(json!({"pointer": "/a/s", "contains": "vok"})));
    assert!(cond(json!({"pointer": "/n", "exists": true})));
    assert!(cond(json!({"pointer": "/missing", "exists": false})));
    assert!(!cond(json!({"pointer": "/a/b", "equals": "1"})));
    assert!(cond(json!({"header": "X-State", "equals": "active"})));
    let texts = headers(&[("x-count", "1"), ("x-flag", "TRUE")]);
    for (name, want) in [("x-count", json!(1)), ("x-flag", json!(true))] {
        let c: Condition = serde_json::from_value(json!({"header": name, "equals": want})).unwrap();
        assert!(c.holds(&texts, None), "{name}");
    }
    let c: Condition = serde_json::from_value(json!({"header": "x-count", "equals": 2})).unwrap();
    assert!(!c.holds(&texts, None));
    assert!(cond(json!({"header": "x-note", "contains": "revoked"})));
    assert!(cond(json!({"header": "x-absent", "exists": false})));
    assert!(!cond(json!({"header": "x-absent", "contains": "x"})));
    // No body: a pointer condition never holds.
    let c: Condition = serde_json::from_value(json!({"pointer": "/x", "exists": false})).unwrap();
    assert!(!c.holds(&h, None));
}

/// The error of a provider entry, decoded the way the inventory decodes it, then validated.
fn error(yaml: &str) -> String {
    match crate::schema::decode::<ProviderConfig>(&format!("kind: http\n{yaml}")) {
        Err(e) => format!("{}: {}", e.path, e.message),
        Ok(c) => c.validate().expect_err("the config was accepted"),
    }
}

const BASE: &str = "url: https://api.example.com\npath: /v1/me\n";

#[test]
fn validation_refuses_what_could_call_a_failure_invalid_or_write() {
    let cases: &[(&str, &str)] = &[
        (
            "rules: [{status: 200, verdict: valid}, {status: 5xx, verdict: invalid}]",
            "rules[1].status: 5xx is the provider's own failure",
        ),
        (
            "rules: [{status: 200, verdict: valid}, {status: [401, 503], verdict: rate_limited}]",
            "rules[1].status: 503 is the provider's own failure",
        ),
        (
            "rules: [{status: 200, verdict: valid}, {status: 302, verdict: invalid}]",
            "rules[1].status: 302 is not an answer about the token",
        ),
        (
            "rules: [{status: 200, verdict: valid}, {status: 429, verdict: invalid}]",
            "429 is a rate limit",
        ),
        (
            "rules: [{status: 401, verdict: invalid}]",
            "no rule gives verdict: valid",
        ),
        ("rules: []", "list at least one rule"),
        (
            "rules: [{status: 200, when: [{pointer: /ok, equals: true}], verdict: valid}, {status: 2xx, verdict: invalid}]",
            "rules[1]: a 2xx alone never says a token is invalid",
        ),
        (
            "rules: [{status: 204, verdict: valid}, {status: [200, 401], verdict: forbidden}]",
            "rules[1]: a 2xx alone never says a token is forbidden",
        ),
        (
            "rules: [{status: 200, verdict: valid, reason: expired}]",
            "rules[0].reason: only an invalid rule",
        ),
        (
            "rules: [{status: 200, verdict: valid, when: [{pointer: active, equals: true}]}]",
            "rules[0].when[0].pointer: must be a JSON pointer",
        ),
        (
            "rules: [{status: 200, verdict: valid, when: [{pointer: /a, header: X, exists: true}]}]",
            "rules[0].when[0]: give exactly one of pointer or header",
        ),
        (
            "rules: [{status: 200, verdict: valid, when: [{pointer: /a, exists: true, equals: 1}]}]",
            "give exactly one of equals, exists or contains",
        ),
        (
            "token: {in: form, name: token}\nrules: [{status: 200, verdict: valid}]",
            "method: a token in a form field is sent with POST",
        ),
        (
            "token: {in: header}\nrules: [{status: 200, verdict: valid}]",
            "token.name: required",
        ),
        (
            "token: {in: basic}\nrules: [{status: 200, verdict: valid}]",
            "exactly one of username",
        ),
        (
            "headers: {Authorization: Basic abc}\nrules: [{status: 200, verdict: valid}]",
            "headers.Authorization: this header is not set from the config",
        ),
        (
            "form: {a: b}\nmethod: POST\nrules: [{status: 200, verdict: valid}]",
            "form: fixed form fields go only with",
        ),
        (
            "expiry: {from: header, at: X-Exp, format: rfc3339, absent: never}\nrules: [{status: 200, verdict: valid}]",
            "expiry.absent: never is only accepted for a JSON pointer",
        ),
    ];
    for (yaml, want) in cases {
        let e = error(&format!("{BASE}{yaml}\n"));
        assert!(e.contains(want), "{yaml}\n  gave: {e}\n  want: {want}");
    }
    let e = error(&format!(
        "{BASE}method: PUT\nrules: [{{status: 200, verdict: valid}}]\n"
    ));
    assert!(
        e.contains("method") && e.contains("PUT") || e.contains("unknown variant"),
        "{e}"
    );
    let e = error(&format!(
        "{BASE}rules: [{{status: 200, verdict: valid}}]\nbody: '{{}}'\n"
    ));
    assert!(e.contains("unknown field `body`"), "{e}");
    let e = error(
        "url: https://api.example.com\npath: /v1/me?token=x\nrules: [{status: 200, verdict: valid}]\n",
    );
    assert!(e.starts_with("path: must start with /"), "{e}");
    let e = error(&format!(
        "{BASE}rules: [{{status: 2xxx, verdict: valid}}]\n"
    ));
    assert!(
        e.contains("rules[0].status") && e.contains("class (4xx)"),
        "{e}"
    );
}

#[test]
fn the_recipes_and_defaults_validate() {
    for c in [introspection(), status_only(), expiry_header()] {
        assert_eq!(c.validate(), Ok(()));
    }
    let c: ProviderConfig = crate::schema::decode(&format!(
        "kind: http\n{BASE}rules:\n  - status: 200\n    verdict: valid\n  - {{status: 401, verdict: invalid, reason: revoked}}\n"
    ))
    .unwrap_or_else(|e| panic!("{}: {}", e.path, e.message));
    assert_eq!(c.validate(), Ok(()));
    let ProviderConfig::Http(c) = c else { panic!() };
    assert_eq!((c.method, c.token.place), (Method::GET, Place::Bearer));
    assert_eq!(c.endpoint(), "https://api.example.com/v1/me");
}
