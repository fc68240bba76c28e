//! Property-based fuzzing of everything that reads untrusted input: the config loader, and
//! every provider's pure parse function (arbitrary status, headers and bytes, and JSON that
//! has the right field names with the wrong shapes). Nothing may panic; where a provider's
//! parser makes it an invariant, a non-2xx or garbage answer is never `valid` (and often
//! never conclusive at all). Last, whatever a provider answers, the scheduler's waits stay
//! within bounds its time arithmetic can hold.
//!
//! Each target runs `PROPTEST_CASES` cases (proptest's own variable; 256 by default, so
//! `.ci/run` stays fast). A longer run:
//! `PROPTEST_CASES=20000 cargo test --release --test it fuzz_parse::`.

use std::sync::LazyLock;
use std::time::Duration;

use crate::support::clock::{NOW, now};
use api_token_exporter::config::Config;
use api_token_exporter::model::{Expiry, ProbeOutcome, Reason, Verdict, read_numeric_date};
use api_token_exporter::provider::{
    self, atlassian, aws, cloudflare, docker_hub, entra_id, generic, github, gitlab, google,
    grafana, jwt, kubernetes, npm, oauth2, okta, slack, r#static, terraform, vault,
};
use api_token_exporter::scheduler::{MAX_PROVIDER_WAIT, next_delay, provider_pause};
use jiff::Timestamp;
use proptest::prelude::*;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

/// Statuses: the ones parsers branch on, any HTTP status, and any u16 at all.
fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        3 => prop::sample::select(vec![200u16, 201, 204, 301, 307, 308, 400, 401, 403, 404, 412, 429, 500, 502, 503]),
        2 => 100u16..600,
        1 => any::<u16>(),
    ]
}

/// Header names the parsers read, plus a few they do not.
const HEADER_NAMES: &[&str] = &[
    "retry-after",
    "x-ratelimit-remaining",
    "x-ratelimit-limit",
    "x-ratelimit-reset",
    "x-ratelimit-used",
    "ratelimit-remaining",
    "ratelimit-limit",
    "ratelimit-reset",
    "x-rate-limit-remaining",
    "x-rate-limit-limit",
    "x-rate-limit-reset",
    "github-authentication-token-expiration",
    "x-oauth-scopes",
    "x-github-sso",
    "www-authenticate",
    "content-type",
    "x-unrelated",
];

/// Header values that sit on the parsers' edges, and arbitrary printable text.
fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "0",
            "-1",
            "1",
            "30",
            "60",
            "1e309",
            "-1e309",
            "NaN",
            "inf",
            "1.5",
            "",
            " ",
            "18446744073709551615",
            "18446744073709551616",
            "9223372036854775807",
            "-9223372036854775808",
            "1700000000",
            "253402300799",
            "253402300800",
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "Mon, 01 Jan 0001 00:00:00 GMT",
            "2025-09-05 17:55:53 UTC",
            "2025-09-05 17:55:53 +0500",
            "2025-09-05 17:55:53 +05:00",
            "9999-12-31 23:59:59 UTC",
            "0000-00-00 00:00:00 UTC",
            "2025-13-45 99:99:99 UTC",
            "required; url=https://github.com/orgs/acme/sso?x=1",
            "required; url=",
            "required",
            "partial-results; organizations=1,2",
            "Bearer error=\"insufficient_scope\"",
            "repo, , read:org,,",
            "application/json",
            "text/html",
        ])
        .prop_map(str::to_owned),
        "[ -~]{0,40}",
    ]
}

fn headers() -> impl Strategy<Value = HeaderMap> {
    prop::collection::vec((prop::sample::select(HEADER_NAMES), header_value()), 0..6).prop_map(
        |pairs| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    map.append(HeaderName::from_static(name), v);
                }
            }
            map
        },
    )
}

/// Field names the parsers look for, across every provider.
const KEYS: &[&str] = &[
    "active",
    "exp",
    "iat",
    "nbf",
    "sub",
    "username",
    "client_id",
    "azp",
    "iss",
    "aud",
    "scope",
    "scp",
    "token_type",
    "typ",
    "error",
    "message",
    "login",
    "id",
    "type",
    "total_count",
    "repository_selection",
    "repositories",
    "owner",
    "scopes",
    "expires_at",
    "created_at",
    "revoked",
    "last_used_at",
    "user_id",
    "name",
    "resource_owner_id",
    "expires_in",
    "expires_in_seconds",
    "application",
    "uid",
    "data",
    "errors",
    "expire_time",
    "creation_time",
    "issue_time",
    "ttl",
    "explicit_max_ttl",
    "num_uses",
    "policies",
    "identity_policies",
    "display_name",
    "entity_id",
    "accessor",
    "period",
    "renewable",
    "orphan",
    "path",
    "namespace_path",
    "kubernetes.io",
    "warnafter",
    "introspection_endpoint",
    "jwks_uri",
    "keys",
    "ok",
    "url",
    "team",
    "team_id",
    "bot_id",
    "success",
    "result",
    "status",
    "expires_on",
    "not_before",
    "email",
    "email_verified",
    "kind",
    "authenticated",
    "user",
    "groups",
    "extra",
    "audiences",
    "access_token",
    "error_codes",
    "error_description",
    "passwordCredentials",
    "keyCredentials",
    "startDateTime",
    "endDateTime",
    "hint",
    "keyId",
    "displayName",
    "accountId",
    "emailAddress",
    "expiration",
    "hasExpired",
    "isRevoked",
    "lastUsedAt",
];

/// JSON scalars on the edges of what the parsers convert: huge, negative, fractional and
/// non-integer numbers, dates in many shapes, empty and odd strings.
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        prop::sample::select(vec![
            0.0f64,
            -0.0,
            0.5,
            -1.5,
            1e-300,
            1e15,
            1e18,
            9.3e18,
            1.8e19,
            1e300,
            -1e300,
            f64::MAX,
            f64::MIN,
            f64::EPSILON,
            1_700_000_000.999,
        ])
        .prop_map(|f| json!(f)),
        prop::sample::select(vec![
            "",
            " ",
            "true",
            "false",
            "null",
            "0",
            "-1",
            "2023-12-15",
            "2023-12-15T00:00:00Z",
            "2023-12-15T00:00:00.123456789+05:00",
            "9999-12-31T23:59:59Z",
            "10000-01-01T00:00:00Z",
            "-0001-01-01T00:00:00Z",
            "2023-02-30",
            "2023-12-15 00:00:00 UTC",
            "1700000000",
            "invalid_client",
            "unsupported_token_type",
            "permission denied",
            "invalid token",
            "invalid accessor",
            "sealed",
            "namespace not found",
            "Bad credentials",
            "secondary rate limit",
            "insufficient_scope",
            "expired",
            "revoked",
            "https://x/y",
            "not a url",
            "\u{0}",
            "\u{202e}rtl",
            "ghp_0123456789abcdefghijklmnopqrstuvwxyz",
            "AADSTS7000222: The provided client secret keys are expired.",
            "AADSTS90002: Tenant not found.",
            "2299-12-31T00:00:00Z",
        ])
        .prop_map(|s| json!(s)),
        "\\PC{0,24}".prop_map(Value::String),
    ]
}

/// JSON built from the known field names with arbitrary shapes, nested a few levels.
fn wrong_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

/// A provider's good answer with one field (possibly nested under `data`) replaced by an
/// arbitrary value: structured, nearly right, and wrong.
fn near(base: Value) -> impl Strategy<Value = Value> {
    (
        prop::sample::select(KEYS),
        wrong_json(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(move |(key, value, nested, remove)| {
            let mut doc = base.clone();
            let into_data = nested && doc.get("data").is_some_and(Value::is_object);
            let target = if into_data {
                doc["data"].as_object_mut().expect("checked above")
            } else {
                doc.as_object_mut().expect("bases are objects")
            };
            if remove {
                target.remove(key);
            } else {
                target.insert(key.to_string(), value);
            }
            doc
        })
}

/// Bodies: raw bytes, text, JSON of the wrong shape, or a near-miss of `base`.
fn body(base: Value) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        "\\PC{0,200}".prop_map(String::into_bytes),
        Just(b"<html><body>Sign in</body></html>".to_vec()),
        // Past serde_json's recursion limit.
        (1usize..4000).prop_map(|n| "[".repeat(n).into_bytes()),
        wrong_json().prop_map(|v| v.to_string().into_bytes()),
        near(base).prop_map(|v| v.to_string().into_bytes()),
    ]
}

fn is_json(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok()
}

fn conclusive(o: &ProbeOutcome) -> bool {
    o.verdict.is_conclusive()
}

/// Checks every outcome must pass, whatever produced it: the detail is one line of text, a
/// failure carries a failure reason, and the scheduler can live with it.
fn sane(o: &ProbeOutcome) {
    assert!(!o.detail.is_empty(), "{o:?}");
    if o.verdict.is_failure() {
        // The failure counter pre-creates these reasons; any other would appear from nowhere.
        assert!(
            Reason::FAILURES.contains(&o.reason),
            "a failure with a verdict's reason: {o:?}"
        );
    }
    scheduler_copes(o);
}

/// Whatever the answer, the next probe is due within what `Instant` arithmetic holds: the
/// loop jitters the delay by up to 10 % and adds it to `Instant::now()`.
fn scheduler_copes(o: &ProbeOutcome) {
    static CONFIG: LazyLock<Config> = LazyLock::new(|| {
        Config::parse(
            "global:\n  probe_interval: 5m\n  min_probe_interval: 1m\n  max_backoff: 30m\nproviders:\n  p:\n    kind: static\ntokens:\n  - name: t\n    provider: p\n",
        )
        .unwrap()
    });
    let config = &*CONFIG;
    let spec = config.token("t").unwrap();
    let bound = MAX_PROVIDER_WAIT.max(Duration::from_secs(1800));
    for failures in [0u32, 1, 5, 40, u32::MAX] {
        let delay = next_delay(spec, &config.global, o, o.facts.expiry, failures, now());
        assert!(delay <= bound, "next_delay {delay:?} for {o:?}");
        assert!(
            tokio::time::Instant::now()
                .checked_add(delay.mul_f64(1.1))
                .is_some()
        );
    }
    if let Some(pause) = provider_pause(o, now()) {
        assert!(pause <= MAX_PROVIDER_WAIT, "pause {pause:?} for {o:?}");
    }
}

/// A member an introspection answer may have: one the exporter reads, or another.
fn claim_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "active", "active", "active", "exp", "iat", "nbf", "sub", "username", "client_id",
            "azp", "iss", "aud", "scope", "scp", "token_type", "typ",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z_]{1,8}",
    ]
}

/// Any JSON value, as text: the types a member may have, nested a little.
fn claim_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::from),
        2 => (0i64..4_000_000_000).prop_map(Value::from),
        1 => (-1e12f64..1e12).prop_map(Value::from),
        4 => "[a-z:./-]{1,6}( [a-z:./-]{1,6}){0,3}".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::vec(("[a-z]{1,4}", inner), 0..3)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
    .prop_map(|v| v.to_string())
}

fn good_introspection() -> Value {
    json!({"active": true, "exp": NOW + 3600, "iat": NOW - 60, "sub": "svc", "scope": "a b",
           "aud": ["x"], "client_id": "c"})
}

fn good_github_user() -> Value {
    json!({"login": "octocat", "id": 1, "type": "User"})
}

fn good_gitlab_pat() -> Value {
    json!({"id": 1, "name": "ci", "revoked": false, "active": true, "scopes": ["api"],
           "user_id": 7, "created_at": "2023-11-01T00:00:00Z", "expires_at": "2023-12-15"})
}

fn good_gitlab_oauth() -> Value {
    json!({"resource_owner_id": 7, "scope": ["api"], "expires_in": 7200,
           "application": {"uid": "abc"}, "created_at": 1_699_990_000})
}

fn good_vault() -> Value {
    json!({"data": {"accessor": "a", "creation_time": NOW - 60, "display_name": "t",
           "expire_time": "2023-12-15T00:00:00Z", "num_uses": 0, "policies": ["default"],
           "ttl": 3600, "type": "service"}})
}

/// RFC 6749 and friends: the codes the introspection parser may echo.
const REGISTERED_CODES: [&str; 10] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "unsupported_token_type",
    "invalid_token",
    "insufficient_scope",
    "server_error",
];

// ---------------------------------------------------------------------------------------
// Config loader
// ---------------------------------------------------------------------------------------

const MINIMAL: &str = include_str!("../../examples/minimal.yml");
const FULL: &str = include_str!("../../examples/full.yml");

/// One edit of a YAML text, on lines or on characters.
#[derive(Clone, Debug)]
enum Edit {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    Indent(usize, usize),
    Dedent(usize),
    InsertText(usize, String),
    DeleteChars(usize, usize),
    ReplaceValue(usize, String),
}

fn edit() -> impl Strategy<Value = Edit> {
    let fragment = prop_oneof![
        prop::sample::select(vec![
            ":",
            ": ",
            "- ",
            "{",
            "}",
            "[",
            "]",
            "#",
            "&a ",
            "*a",
            "!!str ",
            "|\n",
            ">\n",
            "'",
            "\"",
            "%YAML 1.2\n",
            "---\n",
            "...\n",
            "\t",
            "\n",
            "  ",
            "? ",
            "<<: *a\n",
            "~",
            "null",
            "0",
            "-1",
            "1e400",
            "0s",
            "99999999999999999999d",
            "{env: X}",
            "{file: /nonexistent}",
            "{exec: []}",
            "kind: jwt",
            "kind: nope",
            "provider: corp-idp",
            "name: deploy-bot",
            "labels: {__name__: x}",
            "\u{feff}",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,12}",
    ];
    prop_oneof![
        any::<usize>().prop_map(Edit::DeleteLine),
        any::<usize>().prop_map(Edit::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        (any::<usize>(), 1usize..6).prop_map(|(a, n)| Edit::Indent(a, n)),
        any::<usize>().prop_map(Edit::Dedent),
        (any::<usize>(), fragment.clone()).prop_map(|(a, s)| Edit::InsertText(a, s)),
        (any::<usize>(), 1usize..20).prop_map(|(a, n)| Edit::DeleteChars(a, n)),
        (any::<usize>(), fragment).prop_map(|(a, s)| Edit::ReplaceValue(a, s)),
    ]
}

fn apply(text: &str, edit: &Edit) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let n = lines.len().max(1);
    match edit {
        Edit::DeleteLine(i) if !lines.is_empty() => {
            lines.remove(i % n);
        }
        Edit::DuplicateLine(i) if !lines.is_empty() => {
            let line = lines[i % n].clone();
            lines.insert(i % n, line);
        }
        Edit::SwapLines(a, b) if !lines.is_empty() => lines.swap(a % n, b % n),
        Edit::Indent(i, k) if !lines.is_empty() => {
            lines[i % n] = format!("{}{}", " ".repeat(*k), lines[i % n]);
        }
        Edit::Dedent(i) if !lines.is_empty() => {
            lines[i % n] = lines[i % n].trim_start().to_string();
        }
        Edit::ReplaceValue(i, s) if !lines.is_empty() => {
            let line = &lines[i % n];
            lines[i % n] = match line.split_once(": ") {
                Some((k, _)) => format!("{k}: {s}"),
                None => format!("{line}{s}"),
            };
        }
        Edit::InsertText(at, s) => {
            let chars: Vec<char> = text.chars().collect();
            let at = at % (chars.len() + 1);
            let mut out: String = chars[..at].iter().collect();
            out.push_str(s);
            out.extend(&chars[at..]);
            return out;
        }
        Edit::DeleteChars(at, len) => {
            let chars: Vec<char> = text.chars().collect();
            let at = at % (chars.len() + 1);
            let end = (at + len).min(chars.len());
            return chars[..at].iter().chain(&chars[end..]).collect();
        }
        _ => {}
    }
    lines.join("\n") + "\n"
}

/// What a config that loads must satisfy, whatever text it came from.
fn consistent(config: &Config) {
    let mut names = std::collections::HashSet::new();
    for t in &config.tokens {
        assert!(names.insert(t.name.clone()), "duplicate token {}", t.name);
        assert!(
            config.providers.contains_key(&t.provider),
            "token {} names a provider that is not defined",
            t.name
        );
        assert!(t.thresholds.critical_before < t.thresholds.warning_before);
        assert!(!t.probe_interval.is_zero() && !t.probe_timeout.is_zero());
    }
    assert!(config.global.max_concurrency >= 1);
}

fn load(text: &str) {
    match Config::parse(text) {
        Ok(config) => consistent(&config),
        Err(e) => {
            assert!(!e.issues.is_empty(), "an error without issues");
            assert!(!e.to_string().is_empty());
        }
    }
}

proptest! {
    #[test]
    fn config_parse_survives_arbitrary_text(text in "\\PC{0,400}") {
        load(&text);
    }

    #[test]
    fn config_parse_survives_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        load(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn config_parse_survives_mutated_examples(
        full in any::<bool>(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        let mut text = if full { FULL } else { MINIMAL }.to_string();
        for e in &edits {
            text = apply(&text, e);
        }
        load(&text);
    }

    /// A token pasted inline where a secret source belongs is refused, and never quoted
    /// back, wherever the config takes a secret.
    #[test]
    fn an_inline_secret_is_refused_and_never_quoted(
        value in "[A-Za-z0-9_.]{12,60}",
        field in 0usize..3,
    ) {
        let text = match field {
            0 => format!("providers:\n  p:\n    kind: jwt\ntokens:\n  - name: t\n    provider: p\n    secret: {value}\n"),
            1 => format!("providers:\n  p:\n    kind: oauth2_introspection\n    introspection_endpoint: https://idp.example.com/i\n    client_id: x\n    client_secret: {value}\ntokens: []\n"),
            _ => format!("providers:\n  p:\n    kind: vault\n    url: https://v.example.com\n    token: {value}\ntokens: []\n"),
        };
        let err = Config::parse(&text).expect_err("an inline secret loads");
        let shown = err.to_string();
        prop_assert!(!shown.contains(&value), "the secret is quoted: {shown}");
    }

    /// A token pasted as a key under a secret source (beside a real source or alone, in any
    /// field that takes one) is refused and never quoted back, in the message or the path.
    #[test]
    fn a_secret_written_as_a_key_is_refused_and_never_quoted(
        value in "[A-Za-z0-9_.]{12,60}",
        field in 0usize..3,
        beside in any::<bool>(),
    ) {
        let source = if beside { format!("{{env: A, {value}: x}}") } else { format!("{{{value}: x}}") };
        let text = match field {
            0 => format!("providers:\n  p:\n    kind: jwt\ntokens:\n  - name: t\n    provider: p\n    secret: {source}\n"),
            1 => format!("providers:\n  p:\n    introspection_endpoint: https://idp.example.com/i\n    client_id: x\n    client_secret: {source}\n    kind: oauth2_introspection\ntokens: []\n"),
            _ => format!("tokens: []\nnotifiers:\n  n:\n    kind: slack_webhook\n    url: {source}\n"),
        };
        let err = Config::parse(&text).expect_err("a secret key loads");
        let shown = format!("{err} {err:?}");
        prop_assert!(!shown.contains(&value), "the key is quoted: {shown}");
    }
}

// ---------------------------------------------------------------------------------------
// Provider parse functions
// ---------------------------------------------------------------------------------------

proptest! {
    /// RFC 7662: only a 200 with a JSON `active` is conclusive; `valid` needs
    /// `active: true`, `invalid` needs `active: false`.
    #[test]
    fn oauth2_parse(status in status(), headers in headers(), body in body(good_introspection())) {
        let o = oauth2::parse(status, &headers, &body, now());
        sane(&o);
        if status != 200 || !is_json(&body) {
            prop_assert!(!conclusive(&o), "{status}: {o:?}");
        }
        let active = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v.get("active").and_then(Value::as_bool));
        match o.verdict {
            Verdict::Valid => prop_assert_eq!(active, Some(true)),
            Verdict::Invalid => prop_assert_eq!(active, Some(false)),
            _ => {}
        }
        prop_assert!(o.verdict != Verdict::Forbidden && o.verdict != Verdict::Unverified);
    }

    /// An error code the introspection endpoint sends is echoed only when registered: a
    /// server may put anything there, the token included.
    #[test]
    fn oauth2_echoes_only_registered_error_codes(
        status in prop::sample::select(vec![400u16, 401, 403]),
        code in "[a-zA-Z0-9_.-]{6,40}",
    ) {
        let body = json!({"error": code}).to_string();
        let o = oauth2::parse(status, &HeaderMap::new(), body.as_bytes(), now());
        sane(&o);
        if !REGISTERED_CODES.contains(&code.as_str()) {
            prop_assert!(!o.detail.contains(&code), "{}", o.detail);
        }
    }

    /// Issue 16 finding 6: whatever `exp` an `active: true` answer holds, the token is
    /// never silently "no expiry": either the expiry is an instant, or an expiry anomaly
    /// says why not; and a read that needed tolerance carries its anomaly too.
    #[test]
    fn oauth2_an_exp_is_read_or_flagged(exp in prop_oneof![
        wrong_json(),
        any::<f64>().prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n.to_string())),
        (0i64..400_000_000_000_000).prop_map(|n| json!(n)),
    ]) {
        let body = json!({"active": true, "exp": exp}).to_string();
        let o = oauth2::parse(200, &HeaderMap::new(), body.as_bytes(), now());
        prop_assert_eq!(o.verdict, Verdict::Valid);
        prop_assert!(o.facts.expiry != Expiry::Never, "{body}");
        let plain_seconds = exp.as_f64().is_some_and(|n| (0.0..=253_402_207_200.0).contains(&n));
        if o.facts.expiry == Expiry::Undisclosed || !plain_seconds {
            prop_assert_eq!(o.facts.anomalies.len(), 1, "{}: {:?}", body, o.facts);
            prop_assert!(!o.facts.flags.is_empty(), "{}: {:?}", body, o.facts);
        } else {
            prop_assert!(o.facts.anomalies.is_empty(), "{}: {:?}", body, o.facts);
        }
    }

    /// The introspection answer's members are read straight from the body, not through a
    /// JSON value: for any object of the members it reads and others, of any JSON type,
    /// with repeats (the last counts) and whitespace, the outcome is the one a JSON value
    /// gives through the same `facts_from_claims`.
    #[test]
    fn oauth2_reads_members_as_a_json_value_would(
        mut members in prop::collection::vec((claim_name(), claim_value()), 0..12),
        active in prop_oneof![6 => Just("true".to_owned()), 1 => Just("false".to_owned()), 1 => claim_value()],
        at in any::<prop::sample::Index>(),
        pad in prop::sample::select(vec!["", " ", "\n\t "]),
    ) {
        // Mostly `active: true`, so that the facts are compared.
        members.insert(at.index(members.len() + 1), ("active".to_owned(), active));
        let text: Vec<String> = members
            .iter()
            .map(|(k, v)| format!("{}:{pad}{v}", Value::from(k.as_str())))
            .collect();
        let body = format!("{pad}{{{pad}{}{pad}}}{pad}", text.join(&format!(",{pad}")));
        let o = oauth2::parse(200, &HeaderMap::new(), body.as_bytes(), now());
        let doc: Value = serde_json::from_str(&body).unwrap();
        match doc.get("active").and_then(Value::as_bool) {
            Some(true) => {
                prop_assert_eq!(o.verdict, Verdict::Valid);
                let mut want = oauth2::facts_from_claims(&doc);
                want.flag_past_expiry(now(), oauth2::PAST_EXPIRY);
                prop_assert_eq!(o.facts, want);
            }
            Some(false) => prop_assert_eq!(o.verdict, Verdict::Invalid),
            None => prop_assert_eq!(o.reason, Reason::BadResponse),
        }
    }

    #[test]
    fn oauth2_discovery_survives_anything(body in body(json!({"introspection_endpoint": "https://x/i"}))) {
        let _ = oauth2::parse_discovery(&body);
    }

    /// GitHub: `valid` only on 200; a body that is not JSON is never `valid` or `invalid`
    /// (a 403 may still be `forbidden` from the SSO header alone).
    #[test]
    fn github_parse(
        endpoint in prop::sample::select(vec![github::Endpoint::User, github::Endpoint::Installation, github::Endpoint::AppCheck]),
        status in status(),
        headers in headers(),
        body in body(good_github_user()),
    ) {
        let o = github::parse(endpoint, status, &headers, &body, now());
        sane(&o);
        if status != 200 {
            prop_assert!(o.verdict != Verdict::Valid, "{status}: {o:?}");
        }
        if !is_json(&body) {
            prop_assert!(!matches!(o.verdict, Verdict::Valid | Verdict::Invalid), "{o:?}");
        }
        if o.verdict == Verdict::Invalid {
            prop_assert!(matches!(status, 401 | 404), "{status}: {o:?}");
        }
        prop_assert!(o.verdict != Verdict::Unverified);
    }

    #[test]
    fn github_expiration_header_survives_anything(value in "\\PC{0,40}") {
        if let Some(t) = github::parse_expiration(&value) {
            // Whatever is read is a real instant, printable again.
            prop_assert!(!t.to_string().is_empty());
        }
    }

    /// GitLab, both calls: `valid` only on 200; a body that is not JSON is never `valid`
    /// or `invalid`.
    #[test]
    fn gitlab_parse(
        oauth in any::<bool>(),
        status in status(),
        headers in headers(),
        body in prop_oneof![body(good_gitlab_pat()), body(good_gitlab_oauth())],
    ) {
        let o = if oauth {
            gitlab::parse_oauth(status, &headers, &body, now())
        } else {
            gitlab::parse_access_token(status, &headers, &body, now())
        };
        sane(&o);
        if status != 200 {
            prop_assert!(o.verdict != Verdict::Valid, "{status}: {o:?}");
        }
        if !is_json(&body) {
            prop_assert!(!matches!(o.verdict, Verdict::Valid | Verdict::Invalid), "{o:?}");
        }
        prop_assert!(o.verdict != Verdict::Unverified);
    }

    #[test]
    fn gitlab_expiry_date_survives_anything(value in "\\PC{0,40}") {
        let _ = gitlab::expiry_date(&value);
    }

    /// Vault: `valid` only on 200, and a body that is not Vault's JSON is never conclusive:
    /// its error strings are the only thing that makes a refusal a verdict.
    #[test]
    fn vault_parse(
        accessor in any::<bool>(),
        status in status(),
        headers in headers(),
        body in body(good_vault()),
    ) {
        let lookup = if accessor { vault::Lookup::Accessor } else { vault::Lookup::SelfToken };
        let o = vault::parse(lookup, status, &headers, &body, now());
        sane(&o);
        if status != 200 {
            prop_assert!(o.verdict != Verdict::Valid, "{status}: {o:?}");
        }
        if !is_json(&body) {
            prop_assert!(!conclusive(&o), "{o:?}");
        }
        prop_assert!(o.verdict != Verdict::Forbidden && o.verdict != Verdict::Unverified);
        let _ = vault::use_limited(&body);
    }

    /// JWT splitting: anything that is not a JWT is `invalid/malformed`, never a panic.
    #[test]
    fn jwt_split_survives_anything(token in prop_oneof![
        "\\PC{0,120}",
        "[A-Za-z0-9_=-]{0,40}\\.[A-Za-z0-9_=-]{0,40}\\.[A-Za-z0-9_=-]{0,20}",
        (wrong_json(), wrong_json()).prop_map(|(h, c)| {
            use base64::Engine;
            let b = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
            format!("{}.{}.sig", b(&h), b(&c))
        }),
    ]) {
        match jwt::split(&token) {
            Ok((header, claims)) => prop_assert!(header.is_object() && claims.is_object()),
            Err(o) => {
                prop_assert_eq!((o.verdict, o.reason), (Verdict::Invalid, Reason::Malformed));
                if token.len() >= 8 {
                    prop_assert!(!o.detail.contains(token.trim()), "{}", o.detail);
                }
            }
        }
    }

    /// Claims read without a key are never `valid`; a verified token past its `exp` is
    /// `invalid/expired` whatever else it claims.
    #[test]
    fn jwt_evaluate(claims in prop_oneof![wrong_json(), near(json!({"exp": NOW + 60, "sub": "x"}))], verified in any::<bool>()) {
        let o = jwt::evaluate(&claims, verified, now(), Duration::from_secs(60));
        sane(&o);
        if !verified {
            prop_assert!(o.verdict != Verdict::Valid, "{o:?}");
        }
        prop_assert!(matches!(o.verdict, Verdict::Valid | Verdict::Invalid | Verdict::Unverified), "{o:?}");
        let exp = read_numeric_date(claims.get("exp")).timestamp();
        if let Some(exp) = exp && exp <= now() {
            prop_assert_eq!((o.verdict, o.reason), (Verdict::Invalid, Reason::Expired));
        }
        prop_assert_eq!(o.facts.extra.get("verified").map(String::as_str), Some(if verified { "true" } else { "false" }));
    }

    /// Declared dates: a bad one is refused without quoting anything long enough to be a
    /// token; a good one is `valid` exactly while it lies ahead.
    #[test]
    fn static_dates(value in prop_oneof!["\\PC{0,80}", "[0-9]{4}-[0-9]{2}-[0-9]{2}", "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z"], iat in prop::option::of(-1_000_000_000i64..10_000_000_000)) {
        match r#static::parse_declared(&value) {
            Ok(exp) => {
                let iat = iat.and_then(|s| Timestamp::from_second(s).ok());
                let o = r#static::evaluate(Some(exp), iat, now());
                sane(&o);
                let expected = if exp > now() { Verdict::Valid } else { Verdict::Invalid };
                prop_assert_eq!(o.verdict, expected);
                prop_assert_eq!(o.facts.expiry, Expiry::At(exp));
            }
            Err(message) => {
                if value.trim().len() > 40 {
                    prop_assert!(!message.contains(value.trim()), "{message}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Every registry kind has a target
// ---------------------------------------------------------------------------------------

/// Each registry kind, and the call of its parser that a property above or below makes. The
/// test after it holds this list equal to the registry's, and checks that each call appears
/// in this file outside the list, so a name cannot stand here without a target.
const FUZZED: &[(&str, &str)] = &[
    ("oauth2_introspection", "oauth2::parse("),
    ("jwt", "jwt::evaluate("),
    ("github", "github::parse("),
    ("gitlab", "gitlab::parse_access_token("),
    ("vault", "vault::parse("),
    ("slack", "slack::parse("),
    ("cloudflare", "cloudflare::parse("),
    ("google", "google::parse("),
    ("kubernetes", "kubernetes::parse("),
    ("static", "r#static::evaluate("),
    ("entra_id", "entra_id::parse("),
    ("http", "generic::parse("),
    ("aws", "aws::parse("),
    ("atlassian", "atlassian::parse("),
    ("grafana", "grafana::parse("),
    ("okta", "okta::parse("),
    ("npm", "npm::parse("),
    ("docker_hub", "docker_hub::parse("),
    ("terraform", "terraform::parse("),
];

#[test]
fn every_registry_kind_has_a_fuzz_target() {
    let fuzzed: Vec<&str> = FUZZED.iter().map(|(kind, _)| *kind).collect();
    for kind in provider::KINDS {
        assert!(
            fuzzed.contains(kind),
            "the registry kind {kind} has no fuzz target"
        );
    }
    for kind in &fuzzed {
        assert!(
            provider::KINDS.contains(kind),
            "the fuzz target {kind} names no registry kind"
        );
    }
    assert_eq!(
        fuzzed.len(),
        provider::KINDS.len(),
        "a kind is listed twice"
    );
    let source = include_str!("fuzz_parse.rs");
    for (kind, call) in FUZZED {
        // Once in the list above, and at least once in a property.
        assert!(
            source.matches(call).count() >= 2,
            "{kind}: no property calls {call}"
        );
    }
}

fn good_slack() -> Value {
    json!({"ok": true, "url": "https://acme.slack.com/", "team": "Acme", "user": "bot",
           "team_id": "T1", "user_id": "U1", "bot_id": "B1", "expires_in": 43200})
}

fn good_cloudflare() -> Value {
    json!({"success": true, "errors": [], "messages": [],
           "result": {"id": "ed17", "status": "active", "expires_on": "2023-12-15T00:00:00Z",
                      "not_before": "2023-11-01T00:00:00Z"}})
}

fn good_google() -> Value {
    json!({"azp": "c.apps.googleusercontent.com", "aud": "c.apps.googleusercontent.com",
           "sub": "1098", "scope": "openid email", "exp": (NOW + 3600).to_string(),
           "expires_in": "3599", "email": "svc@example.com", "email_verified": "true"})
}

fn good_token_review() -> Value {
    json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
           "status": {"authenticated": true,
                      "user": {"username": "system:serviceaccount:ci:deployer", "uid": "u",
                               "groups": ["system:serviceaccounts"],
                               "extra": {"authentication.kubernetes.io/pod-name": ["p"]}},
                      "audiences": ["https://kubernetes.default.svc"]}})
}

fn good_service_account_claims() -> Value {
    json!({"iss": "https://kubernetes.default.svc", "sub": "system:serviceaccount:ci:deployer",
           "iat": NOW - 60, "exp": NOW + 3600,
           "kubernetes.io": {"namespace": "ci", "warnafter": NOW + 600}})
}

/// The member `name` of a JSON object body, if the body is one.
fn member(body: &[u8], name: &str) -> Option<Value> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .get(name)
        .cloned()
}

proptest! {
    /// Slack: `valid` only on 200 with `ok: true`; `invalid` only for the error codes Slack
    /// documents as a token that does not work; garbage is never conclusive.
    #[test]
    fn slack_parse(
        status in status(),
        headers in headers(),
        body in body(good_slack()),
        rotating in any::<bool>(),
    ) {
        let o = slack::parse(status, &headers, &body, now(), rotating);
        sane(&o);
        if status != 200 || !is_json(&body) {
            prop_assert!(!conclusive(&o), "{status}: {o:?}");
        }
        if o.verdict == Verdict::Valid {
            prop_assert_eq!(member(&body, "ok"), Some(Value::Bool(true)));
        }
        if o.verdict == Verdict::Invalid {
            let code = member(&body, "error");
            let code = code.as_ref().and_then(Value::as_str).unwrap_or_default();
            prop_assert!(
                ["invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"].contains(&code),
                "invalid from {code:?}: {o:?}"
            );
        }
        prop_assert!(o.verdict != Verdict::Unverified);
    }

    /// Cloudflare, either endpoint: `valid` only on 2xx; `invalid` only from a JSON answer
    /// with a 2xx or 4xx status other than 429; garbage is never `valid` or `invalid`.
    #[test]
    fn cloudflare_parse(
        account in any::<bool>(),
        status in status(),
        headers in headers(),
        body in body(good_cloudflare()),
    ) {
        let owner = if account { cloudflare::Owner::Account } else { cloudflare::Owner::User };
        let o = cloudflare::parse(status, &headers, &body, now(), owner);
        sane(&o);
        if !(200..300).contains(&status) {
            prop_assert!(o.verdict != Verdict::Valid, "{status}: {o:?}");
        }
        if !is_json(&body) {
            prop_assert!(!matches!(o.verdict, Verdict::Valid | Verdict::Invalid), "{o:?}");
        }
        if o.verdict == Verdict::Invalid {
            prop_assert!((200..500).contains(&status) && status != 429, "{status}: {o:?}");
        }
        prop_assert!(o.verdict != Verdict::Forbidden && o.verdict != Verdict::Unverified);
    }

    /// Google: `valid` only on 200; `invalid` only for `invalid_token` on 200 or 400;
    /// garbage is never `valid` or `invalid`.
    #[test]
    fn google_parse(status in status(), headers in headers(), body in body(good_google())) {
        let o = google::parse(status, &headers, &body, now());
        sane(&o);
        if status != 200 {
            prop_assert!(o.verdict != Verdict::Valid, "{status}: {o:?}");
        }
        if !is_json(&body) {
            prop_assert!(!matches!(o.verdict, Verdict::Valid | Verdict::Invalid), "{o:?}");
        }
        if o.verdict == Verdict::Invalid {
            prop_assert!(matches!(status, 200 | 400), "{status}: {o:?}");
            prop_assert_eq!(member(&body, "error"), Some(json!("invalid_token")));
        }
        prop_assert!(o.verdict != Verdict::Forbidden && o.verdict != Verdict::Unverified);
    }

    /// Kubernetes: a verdict on the token needs a TokenReview answered with 200 or 201;
    /// 401 and 403 concern the exporter's own credentials; garbage is never conclusive,
    /// whatever the reviewed token's own claims say.
    #[test]
    fn kubernetes_parse(
        status in status(),
        headers in headers(),
        body in body(good_token_review()),
        claims in prop::option::of(prop_oneof![wrong_json(), near(good_service_account_claims())]),
        audiences in prop::option::of(prop::collection::vec("[a-z:./-]{0,12}", 0..3)),
    ) {
        let o = kubernetes::parse(status, &headers, &body, now(), claims.as_ref(), audiences.as_deref());
        sane(&o);
        if !matches!(status, 200 | 201) || !is_json(&body) {
            prop_assert!(!conclusive(&o), "{status}: {o:?}");
        }
        if matches!(status, 401 | 403) {
            prop_assert_eq!((o.verdict, o.reason), (Verdict::Misconfigured, Reason::ClientAuth));
        }
        if conclusive(&o) {
            prop_assert_eq!(member(&body, "kind"), Some(json!("TokenReview")));
        }
        prop_assert!(o.verdict != Verdict::Forbidden && o.verdict != Verdict::Unverified);
    }
}

fn good_entra_token() -> Value {
    json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
           "access_token": "eyJ0eXAi.body.sig"})
}

fn good_entra_error() -> Value {
    json!({"error": "invalid_client",
           "error_description": "AADSTS7000222: The provided client secret keys are expired.\r\nTrace ID: t",
           "error_codes": [7000222], "timestamp": "2023-11-14 22:13:20Z", "trace_id": "t",
           "correlation_id": "c"})
}

fn good_entra_application() -> Value {
    json!({"id": "obj", "appId": "app", "displayName": "deployer", "keyCredentials": [],
           "passwordCredentials": [{"keyId": "k1", "hint": "abc", "displayName": "ci",
               "startDateTime": "2023-11-01T00:00:00Z", "endDateTime": "2023-12-15T00:00:00Z"}]})
}

/// The AADSTS codes the `entra_id` provider calls a verdict on the credential.
const ENTRA_INVALID_CODES: [u64; 5] = [7000222, 7000215, 700016, 7000112, 700027];

proptest! {
    /// Entra ID's token endpoint: `valid` only on 200 with a non-empty `access_token`;
    /// `invalid` only on 400 or 401 for a documented AADSTS code; the answer's description
    /// never reaches the detail; garbage is never conclusive.
    #[test]
    fn entra_id_token_parse(
        status in status(),
        headers in headers(),
        body in prop_oneof![body(good_entra_token()), body(good_entra_error())],
    ) {
        let o = entra_id::parse(status, &headers, &body, now());
        sane(&o);
        if !is_json(&body) {
            prop_assert!(!conclusive(&o), "{status}: {o:?}");
        }
        if o.verdict == Verdict::Valid {
            prop_assert_eq!(status, 200);
            let token = member(&body, "access_token");
            prop_assert!(token.as_ref().and_then(Value::as_str).is_some_and(|t| !t.is_empty()), "{o:?}");
        }
        if o.verdict == Verdict::Invalid {
            prop_assert!(matches!(status, 400 | 401), "{status}: {o:?}");
            prop_assert!(ENTRA_INVALID_CODES.iter().any(|c| o.detail.contains(&format!("AADSTS{c}"))), "{o:?}");
        }
        if let Some(Value::String(d)) = member(&body, "error_description")
            && d.len() > 12
        {
            prop_assert!(!o.detail.contains(d.as_str()), "{o:?}");
        }
        prop_assert!(o.verdict != Verdict::Forbidden && o.verdict != Verdict::Unverified);
    }

    /// Graph's application answer: whatever it holds, it adds facts or a flag and never
    /// panics; an expiry comes only from a 200 answer, and a missing one is explained.
    #[test]
    fn entra_id_graph_facts(
        status in status(),
        body in body(good_entra_application()),
        prefix in prop_oneof![Just("abc".to_string()), "[a-z~]{0,3}"],
        key_id in prop::option::of(prop_oneof![Just("k1".to_string()), "[a-z0-9-]{0,8}"]),
    ) {
        let mut facts = api_token_exporter::model::TokenFacts::default();
        let held = entra_id::Held::Secret { prefix: &prefix };
        entra_id::graph_facts(status, &body, now(), &held, key_id.as_deref(), &mut facts);
        if status != 200 {
            prop_assert_eq!(facts.expiry, Expiry::Undisclosed);
            prop_assert_eq!(facts.flags.len(), 1);
        }
        // No expiry is always explained.
        if facts.expiry == Expiry::Undisclosed {
            prop_assert!(!facts.flags.is_empty(), "{facts:?}");
        }
        if facts.expiry == Expiry::Never {
            prop_assert_eq!(facts.expiry_model, api_token_exporter::model::ExpiryModel::AgeOnly);
        }
    }
}

fn good_npm_list() -> Value {
    json!({"objects": [{"name": "ci", "key": "6f2b1c1e-3b1a-4c55-9f0e-2d4b8a7c9e11",
                        "token": "npm_aBcD...WxYz", "expiry": "2023-12-15T00:00:00.000Z",
                        "created": "2023-11-01T00:00:00.000Z", "cidr": ["10.0.0.0/8"],
                        "bypass_2fa": true, "revoked": null,
                        "permissions": [{"name": "package", "action": "write"}]}],
           "total": 1, "urls": {"next": "/-/npm/v1/tokens?page=1"}})
}

proptest! {
    /// npm's whoami: `valid` only on 200 with a `username`; `invalid` only on a 401 whose
    /// `WWW-Authenticate` names neither `ipaddress` nor `otp`; garbage is never conclusive.
    #[test]
    fn npm_whoami_parse(
        status in status(),
        headers in headers(),
        body in body(json!({"username": "grace"})),
    ) {
        let o = npm::parse(status, &headers, &body, now());
        sane(&o);
        if o.verdict == Verdict::Valid {
            prop_assert_eq!(status, 200);
            prop_assert!(member(&body, "username").as_ref().and_then(Value::as_str).is_some(), "{o:?}");
        }
        if o.verdict == Verdict::Invalid {
            prop_assert_eq!(status, 401);
            let challenge = headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_ascii_lowercase();
            prop_assert!(!challenge.split(',').any(|c| matches!(c.trim(), "ipaddress" | "otp")), "{o:?}");
        }
        if status == 200 && !is_json(&body) {
            prop_assert!(!conclusive(&o), "{o:?}");
        }
        prop_assert!(o.verdict != Verdict::Unverified);
    }

    /// npm's token list: any page adds facts or a flag, never panics, and an expiry comes
    /// only from a 200 page whose entry fits the token.
    #[test]
    fn npm_token_list(
        status in status(),
        body in body(good_npm_list()),
        token in prop_oneof![Just("npm_aBcD0123456789abcdefghijklmnopqrWxYz".to_string()), "[a-zA-Z0-9_]{0,40}"],
    ) {
        let mut facts = api_token_exporter::model::TokenFacts::default();
        match npm::list_page(status, &body) {
            Ok(page) => {
                prop_assert_eq!(status, 200);
                let held = npm::Held::new(&token);
                npm::list_facts(&page.objects, &held, &mut facts);
                // No expiry is always explained.
                if facts.expiry == Expiry::Undisclosed {
                    prop_assert!(!facts.flags.is_empty(), "{facts:?}");
                }
                if let Some(next) = page.next {
                    let first = "https://registry.npmjs.org/-/npm/v1/tokens";
                    if let Some(url) = npm::next_page(first, first, &next) {
                        prop_assert!(url.starts_with("https://registry.npmjs.org/"), "{url}");
                    }
                }
            }
            Err(flag) => {
                prop_assert!(flag.contains("not disclosed"), "{flag}");
                prop_assert!(!flag.contains(&token) || token.len() < 6, "{flag}");
            }
        }
    }
}

fn good_docker_hub_record() -> Value {
    json!({"uuid": "b30bbf97-506c-4ecd-aabc-842f3cb484fb", "client_id": "HUB",
           "created_at": "2023-07-20T12:00:00.000000Z", "last_used": null, "generated_by": "manual",
           "is_active": true, "token": "", "token_label": "ci", "scopes": ["repo:read"],
           "expires_at": "2023-12-15T00:00:00.000000Z"})
}

proptest! {
    /// Docker Hub's token exchange: `valid` only on 200 with a non-empty `access_token`;
    /// `invalid` only on 401; garbage is never conclusive.
    #[test]
    fn docker_hub_parse(
        status in status(),
        headers in headers(),
        body in body(json!({"access_token": "eyJhbGciOiJSUzI1NiJ9.e30.sig"})),
    ) {
        let o = docker_hub::parse(status, &headers, &body, now());
        sane(&o);
        if o.verdict == Verdict::Valid {
            prop_assert_eq!(status, 200);
            let token = member(&body, "access_token");
            prop_assert!(token.as_ref().and_then(Value::as_str).is_some_and(|t| !t.trim().is_empty()), "{o:?}");
            prop_assert_eq!(o.facts.expiry, Expiry::Undisclosed);
        }
        if o.verdict == Verdict::Invalid {
            prop_assert_eq!(status, 401);
        }
        if status == 200 && !is_json(&body) {
            prop_assert!(!conclusive(&o), "{o:?}");
        }
        prop_assert!(o.verdict != Verdict::Forbidden && o.verdict != Verdict::Unverified);
    }

    /// Docker Hub's token record and list: any answer adds facts or a flag and never panics;
    /// no expiry is always explained, unless the record says the token never expires.
    #[test]
    fn docker_hub_token_record(
        status in status(),
        record in body(good_docker_hub_record()),
        page in body(json!({"count": 1, "next": null, "results": [good_docker_hub_record()]})),
    ) {
        let mut facts = api_token_exporter::model::TokenFacts::default();
        match docker_hub::record(status, &record) {
            Ok(entry) => {
                prop_assert_eq!(status, 200);
                docker_hub::details(&entry, &mut facts);
            }
            Err(flag) => prop_assert!(flag.contains("not disclosed") || flag.contains("next probe"), "{flag}"),
        }
        let mut listed = api_token_exporter::model::TokenFacts::default();
        match docker_hub::list_page(status, &page) {
            Ok((results, _next)) => {
                docker_hub::only_entry(&results, &mut listed);
                if listed.expiry == Expiry::Undisclosed {
                    prop_assert!(!listed.flags.is_empty(), "{listed:?}");
                }
            }
            Err(flag) => prop_assert!(!flag.is_empty()),
        }
        // The docker_hub source reads the same page as typed records: a page the probe
        // cannot read, the source cannot either, and neither panics.
        let typed = docker_hub::parse_page::<api_token_exporter::sources::docker_hub::Personal>(&page);
        if docker_hub::list_page(200, &page).is_err() {
            prop_assert!(typed.is_err());
        }
    }
}

fn good_terraform_details() -> Value {
    json!({"data": {"id": "user-V3R563qtJNcExAkN", "type": "users",
                    "attributes": {"username": "admin", "is-service-account": false},
                    "relationships": {"authenticated-resource": {"data": {"id": "team-1", "type": "teams"}}}}})
}

fn good_terraform_token() -> Value {
    json!({"data": {"id": "at-1", "type": "authentication-tokens",
                    "attributes": {"created-at": "2023-11-01T00:00:00.000Z", "last-used-at": null,
                                   "description": "ci", "token": null,
                                   "expired-at": "2023-12-15T00:00:00.000Z"}},
           "links": {"next": null}})
}

proptest! {
    /// HCP Terraform's account details: `valid` only on 200 with a `data.id`; `invalid` only
    /// on 401; garbage is never conclusive; a 429 never waits a day or more.
    #[test]
    fn terraform_parse(
        status in status(),
        headers in headers(),
        body in body(good_terraform_details()),
    ) {
        let o = terraform::parse(status, &headers, &body, now());
        sane(&o);
        if o.verdict == Verdict::Valid {
            prop_assert_eq!(status, 200);
            prop_assert_eq!(o.facts.expiry, Expiry::Undisclosed);
        }
        if o.verdict == Verdict::Invalid {
            prop_assert_eq!(status, 401);
        }
        if status == 200 && !is_json(&body) {
            prop_assert!(!conclusive(&o), "{o:?}");
        }
        if let Some(wait) = o.retry_after
            && headers.get("retry-after").is_none()
        {
            prop_assert!(wait <= Duration::from_secs(86_400), "{wait:?}");
        }
        prop_assert!(o.verdict != Verdict::Forbidden && o.verdict != Verdict::Unverified);
    }

    /// HCP Terraform's token records and lists: any answer adds facts or a flag and never
    /// panics; no expiry is always explained.
    #[test]
    fn terraform_token_record(status in status(), body in body(good_terraform_token())) {
        let mut facts = api_token_exporter::model::TokenFacts::default();
        match terraform::token_record(status, &body) {
            Ok(record) => {
                prop_assert_eq!(status, 200);
                terraform::record_facts(&record, &mut facts);
                if facts.expiry == Expiry::Undisclosed {
                    prop_assert!(!facts.flags.is_empty(), "{facts:?}");
                }
            }
            Err(flag) => prop_assert!(!flag.is_empty()),
        }
        let mut listed = api_token_exporter::model::TokenFacts::default();
        if let Ok((records, _next)) = terraform::token_list(status, &body) {
            terraform::only_record(&records, &mut listed);
            if listed.expiry == Expiry::Undisclosed {
                prop_assert!(!listed.flags.is_empty(), "{listed:?}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The generic `http` kind: rule sets are input too
// ---------------------------------------------------------------------------------------

/// Statuses a rule may name, the refused ones (5xx, 3xx, 429 in a conclusive rule) among
/// them, so the property also meets rule sets that validation must refuse.
fn rule_status() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => prop::sample::select(vec![
            json!(200),
            json!(201),
            json!(204),
            json!(400),
            json!(401),
            json!(403),
            json!(404),
            json!(429),
            json!("2xx"),
            json!("4xx"),
        ]),
        1 => prop::sample::select(vec![json!(500), json!(503), json!("5xx"), json!(302), json!("3xx")]),
    ]
}

/// A condition on a body member or a header, any of the three tests.
fn rule_condition() -> impl Strategy<Value = Value> {
    let target = prop_oneof![
        prop::sample::select(vec!["/active", "/exp", "/sub", "/data/state", "/error", ""])
            .prop_map(|p| json!({"pointer": p})),
        prop::sample::select(vec!["www-authenticate", "x-unrelated", "content-type"])
            .prop_map(|h| json!({"header": h})),
    ];
    let test = prop_oneof![
        prop::sample::select(vec![json!(true), json!(false), json!("active"), json!(1)])
            .prop_map(|v| ("equals", v)),
        any::<bool>().prop_map(|b| ("exists", json!(b))),
        prop::sample::select(vec!["invalid", "act", "a"]).prop_map(|t| ("contains", json!(t))),
    ];
    (target, test).prop_map(|(mut c, (k, v))| {
        c[k] = v;
        c
    })
}

fn rule() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(rule_status(), 1..3),
        prop::collection::vec(rule_condition(), 0..2),
        prop::sample::select(vec!["valid", "invalid", "forbidden", "rate_limited"]),
    )
        .prop_map(
            |(status, when, verdict)| json!({"status": status, "when": when, "verdict": verdict}),
        )
}

/// A whole `http` provider: rules, and facts from the body or from headers.
fn generic_config() -> impl Strategy<Value = generic::Config> {
    let source = |ats: Vec<&'static str>| {
        prop::option::of(prop_oneof![
            prop::sample::select(vec!["/exp", "/sub", "/scope", "/data"])
                .prop_map(|a| json!({"from": "json_pointer", "at": a})),
            prop::sample::select(ats).prop_map(|a| json!({"from": "header", "at": a})),
        ])
    };
    let format = prop::sample::select(vec!["rfc3339", "unix_seconds", "unix_millis", "date"]);
    (
        prop::collection::vec(rule(), 0..4),
        // One `valid` rule somewhere, as validation requires one.
        (any::<prop::sample::Index>(), rule()),
        (source(vec!["x-ratelimit-reset", "x-unrelated"]), format),
        source(vec!["x-oauth-scopes"]),
        source(vec!["x-unrelated"]),
    )
        .prop_map(
            |(mut rules, (at, mut valid), (expiry, format), scopes, subject)| {
                valid["verdict"] = json!("valid");
                rules.insert(at.index(rules.len() + 1), valid);
                let mut c = json!({"url": "http://127.0.0.1:1", "path": "/t", "rules": rules});
                if let Some(mut e) = expiry {
                    e["format"] = json!(format);
                    c["expiry"] = e;
                }
                if let Some(s) = scopes {
                    c["scopes"] = s;
                }
                if let Some(s) = subject {
                    c["subject"] = s;
                }
                serde_json::from_value(c).expect("the strategy writes well-typed configs")
            },
        )
}

fn good_generic() -> Value {
    json!({"active": true, "exp": NOW + 3600, "sub": "svc", "scope": "a b",
           "data": {"state": "active"}})
}

proptest! {
    /// The generic kind: for every rule set validation accepts, a 5xx is `unreachable`, and
    /// a body the rules for its status read but which is not JSON is never conclusive; in
    /// particular neither is ever `invalid`. `invalid` needs a 2xx or 4xx other than 429.
    #[test]
    fn generic_parse(
        config in generic_config(),
        status in prop_oneof![
            2 => status(),
            1 => 500u16..600,
            3 => prop::sample::select(vec![200u16, 201, 204, 400, 401, 403, 404, 429]),
        ],
        headers in headers(),
        body in prop_oneof![
            body(good_generic()),
            prop::sample::select(vec![
                good_generic(),
                json!({"active": true}),
                json!({"active": false}),
                json!({"error": "invalid_token"}),
                json!({}),
            ])
            .prop_map(|v| v.to_string().into_bytes()),
        ],
    ) {
        let accepted = provider::ProviderConfig::Http(config.clone()).validate().is_ok();
        let o = generic::parse(&config, status, &headers, &body, now());
        sane(&o);
        // Whatever validation says: the runtime defence holds for every rule set.
        if (500..600).contains(&status) {
            prop_assert_eq!((o.verdict, o.reason), (Verdict::Unreachable, Reason::Http5xx));
        }
        prop_assert!(o.verdict != Verdict::Unverified);
        if !accepted {
            return Ok(());
        }
        let reads_body = config.rules.iter().any(|r| r.covers(status) && r.reads_body());
        if reads_body && !is_json(&body) {
            prop_assert_eq!((o.verdict, o.reason), (Verdict::Unreachable, Reason::BadResponse));
        }
        if o.verdict == Verdict::Invalid {
            prop_assert!(matches!(status, 200..=299 | 400..=499) && status != 429, "{status}: {o:?}");
        }
        // A success status alone never says invalid or forbidden: a rule with a condition did.
        if matches!(o.verdict, Verdict::Invalid | Verdict::Forbidden) && (200..300).contains(&status) {
            prop_assert!(
                config.rules.iter().any(|r| r.covers(status) && !r.when.is_empty()),
                "{status}: {o:?}"
            );
        }
        if conclusive(&o) {
            prop_assert!(config.rules.iter().any(|r| r.covers(status)), "{status}: {o:?}");
        }
    }

    /// Garbage answers (not JSON) where a rule for the status reads the body, or with a
    /// 5xx: never conclusive, so never `invalid`. This holds for any rule set, accepted by
    /// validation or not: it is the runtime defence alone.
    #[test]
    fn generic_parse_garbage_is_never_invalid(
        config in generic_config(),
        status in status(),
        headers in headers(),
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            Just(b"<html><body>Sign in</body></html>".to_vec()),
            Just(Vec::new()),
        ],
    ) {
        prop_assume!(!is_json(&body));
        let reads_body = config.rules.iter().any(|r| r.covers(status) && r.reads_body());
        let o = generic::parse(&config, status, &headers, &body, now());
        sane(&o);
        if reads_body || (500..600).contains(&status) {
            prop_assert!(o.verdict != Verdict::Invalid, "{status}: {o:?}");
            prop_assert!(!conclusive(&o), "{status}: {o:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// The `aws` kind: XML answers, read by the kind's own reader
// ---------------------------------------------------------------------------------------

/// Element names of the STS and IAM answers, and one that none has.
const AWS_NAMES: &[&str] = &[
    "GetCallerIdentityResponse",
    "GetCallerIdentityResult",
    "Arn",
    "Account",
    "UserId",
    "ErrorResponse",
    "Errors",
    "Error",
    "Code",
    "Message",
    "Type",
    "ListAccessKeysResponse",
    "ListAccessKeysResult",
    "AccessKeyMetadata",
    "member",
    "AccessKeyId",
    "Status",
    "CreateDate",
    "IsTruncated",
    "Marker",
    "GetAccessKeyLastUsedResponse",
    "GetAccessKeyLastUsedResult",
    "AccessKeyLastUsed",
    "LastUsedDate",
    "ServiceName",
    "Region",
    "sts:Arn",
    "Unrelated",
];

/// Texts the readers branch on, texts XML must escape, and arbitrary text.
fn aws_text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "InvalidClientTokenId",
            "SignatureDoesNotMatch",
            "ExpiredToken",
            "Throttling",
            "AccessDenied",
            "RequestExpired",
            "Signature expired: 20250101T000000Z is now earlier than 20250101T001000Z",
            "arn:aws:iam::123456789012:user/Alice",
            "arn:aws:iam::123456789012:root",
            "123456789012",
            "AKIAIOSFODNN7EXAMPLE",
            "Active",
            "Inactive",
            "true",
            "false",
            "N/A",
            "2012-05-08T23:34:01Z",
            "2012-05-08T23:34:01.123456+00:00",
            "yesterday",
            "",
            "a < b & c > \"d\" 'e'",
        ])
        .prop_map(str::to_string),
        "\\PC{0,40}",
    ]
}

/// An element tree of AWS names and texts.
#[derive(Clone, Debug)]
struct XmlNode {
    name: &'static str,
    text: String,
    children: Vec<XmlNode>,
}

fn xml_tree() -> impl Strategy<Value = XmlNode> {
    let leaf = (prop::sample::select(AWS_NAMES), aws_text()).prop_map(|(name, text)| XmlNode {
        name,
        text,
        children: Vec::new(),
    });
    leaf.prop_recursive(5, 64, 6, |inner| {
        (
            prop::sample::select(AWS_NAMES),
            prop::collection::vec(inner, 0..6),
        )
            .prop_map(|(name, children)| XmlNode {
                name,
                text: String::new(),
                children,
            })
    })
}

/// Writes a tree as XML, escaping text as XML requires.
fn write_xml(node: &XmlNode, out: &mut String) {
    out.push('<');
    out.push_str(node.name);
    out.push('>');
    for c in node.text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    for child in &node.children {
        write_xml(child, out);
    }
    out.push_str("</");
    out.push_str(node.name);
    out.push('>');
}

/// AWS-shaped bodies: generated trees, the documented answers with one part cut or
/// replaced, and garbage.
fn aws_body() -> impl Strategy<Value = Vec<u8>> {
    const IDENTITY: &str = "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/Alice</Arn><UserId>AIDA</UserId><Account>123456789012</Account></GetCallerIdentityResult></GetCallerIdentityResponse>";
    const ERROR: &str = "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message></Error></ErrorResponse>";
    prop_oneof![
        3 => xml_tree().prop_map(|t| {
            let mut s = String::new();
            write_xml(&t, &mut s);
            s.into_bytes()
        }),
        2 => (prop::sample::select(vec![IDENTITY, ERROR]), any::<prop::sample::Index>())
            .prop_map(|(doc, cut)| doc.as_bytes()[..cut.index(doc.len() + 1)].to_vec()),
        2 => (prop::sample::select(vec![IDENTITY, ERROR]), any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(doc, at, junk)| {
                let mut b = doc.as_bytes().to_vec();
                let i = at.index(b.len());
                b.splice(i..i, junk);
                b
            }),
        1 => prop::collection::vec(any::<u8>(), 0..256),
        1 => Just(b"<!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\">]><r>&a;&a;</r>".to_vec()),
        1 => (1usize..200).prop_map(|n| "<a>".repeat(n).into_bytes()),
    ]
}

/// The codes AWS documents as "this key does not work" (`SignatureDoesNotMatch` is the
/// wrong secret for a known key ID; docs/providers/aws.md says why that is invalid).
const AWS_INVALID_CODES: &[&str] = &[
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
];

/// The text of the first `<Code>` element, when the body is AWS's error XML.
fn aws_code(body: &[u8]) -> Option<String> {
    let doc = aws::xml::parse(body).ok()?;
    let error = match doc.name.as_str() {
        "ErrorResponse" | "Response" => doc
            .child("Error")
            .or_else(|| doc.child("Errors").and_then(|e| e.child("Error")))?,
        "Error" => &doc,
        _ => return None,
    };
    error.text_at(&["Code"]).map(str::to_string)
}

proptest! {
    /// STS: `valid` only on a 200 GetCallerIdentityResponse with an ARN and an account;
    /// `invalid` only on a 4xx whose error code AWS documents as a key that does not work;
    /// what the reader refuses is never conclusive; a message is never copied.
    #[test]
    fn aws_parse(status in status(), headers in headers(), body in aws_body()) {
        let o = aws::parse(status, &headers, &body, now());
        sane(&o);
        let xml = aws::xml::parse(&body);
        if xml.is_err() {
            prop_assert!(!conclusive(&o), "{status}: {o:?}");
        }
        if o.verdict == Verdict::Valid {
            prop_assert_eq!(status, 200);
            let doc = xml.as_ref().unwrap();
            prop_assert_eq!(doc.name.as_str(), "GetCallerIdentityResponse");
            prop_assert_eq!(o.facts.expiry, Expiry::Never);
        }
        if o.verdict == Verdict::Invalid {
            prop_assert!((400..500).contains(&status) && status != 429, "{status}: {o:?}");
            let code = aws_code(&body);
            prop_assert!(code.as_deref().is_some_and(|c| AWS_INVALID_CODES.contains(&c)), "{code:?}: {o:?}");
        }
        if (500..600).contains(&status) {
            prop_assert_eq!(o.verdict, Verdict::Unreachable);
        }
        prop_assert!(!o.detail.contains("security token included"), "{o:?}");
    }

    /// The XML reader never panics, and reads back what a writer wrote: names and texts.
    #[test]
    fn aws_xml_reader_reads_what_was_written(tree in xml_tree(), junk in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = aws::xml::parse(&junk);
        let mut text = String::new();
        write_xml(&tree, &mut text);
        let read = aws::xml::parse(text.as_bytes()).unwrap();
        fn same(written: &XmlNode, read: &aws::xml::Element) -> bool {
            let local = written.name.rsplit(':').next().unwrap();
            local == read.name
                && written.text.trim() == read.text.trim()
                && written.children.len() == read.children.len()
                && written.children.iter().zip(&read.children).all(|(w, r)| same(w, r))
        }
        prop_assert!(same(&tree, &read), "{text}");
    }

    /// IAM's answers never change more than facts and flags: a creation date and a last
    /// use come only from a 200 answer, and anything left undisclosed is explained.
    #[test]
    fn aws_iam_readers(status in status(), body in aws_body(), key in prop_oneof![Just("AKIAIOSFODNN7EXAMPLE"), Just("AIDA")]) {
        let mut facts = api_token_exporter::model::TokenFacts::default();
        let next = aws::iam::access_keys_page(status, &body, key, &mut facts);
        if status != 200 {
            prop_assert_eq!(facts.issued_at, None);
            prop_assert_eq!(next.as_deref(), None);
        }
        if facts.issued_at.is_none() && next.is_none() {
            prop_assert!(!facts.flags.is_empty(), "{facts:?}");
        }
        let mut facts = api_token_exporter::model::TokenFacts::default();
        aws::iam::last_used(status, &body, &mut facts);
        if status != 200 {
            prop_assert_eq!(facts.last_used_at, None);
            prop_assert_eq!(facts.flags.len(), 1);
        }
        if facts.last_used_at.is_none() && !facts.extra.contains_key("last_used") {
            prop_assert!(!facts.flags.is_empty(), "{facts:?}");
        }
    }
}

fn good_atlassian_myself() -> Value {
    json!({"accountId": "5b10a2844c20165700ede21g", "accountType": "atlassian", "active": true,
           "displayName": "Mia Krystof", "emailAddress": "mia@example.com",
           "timeZone": "Australia/Sydney"})
}

/// Whether the answer says it is an HTML page.
fn html(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("text/html"))
}

proptest! {
    /// Atlassian: `valid` only on 200 with a JSON object naming an account; `invalid` only on
    /// a 401 that is not an HTML page; `forbidden` only on 403; the expiry is never stated.
    #[test]
    fn atlassian_parse(
        status in status(),
        headers in headers(),
        body in body(good_atlassian_myself()),
        email in prop_oneof![Just("mia@example.com".to_string()), "\\PC{0,30}"],
    ) {
        let o = atlassian::parse(status, &headers, &body, now(), &email);
        sane(&o);
        if o.verdict == Verdict::Valid {
            prop_assert_eq!(status, 200);
            prop_assert!(member(&body, "accountId").is_some_and(|v| v.is_string()), "{o:?}");
        }
        if o.verdict == Verdict::Invalid {
            prop_assert!(status == 401 && !html(&headers), "{status}: {o:?}");
        }
        if o.verdict == Verdict::Forbidden {
            prop_assert_eq!(status, 403);
        }
        if (500..600).contains(&status) || (status == 200 && !is_json(&body)) {
            prop_assert!(!conclusive(&o), "{status}: {o:?}");
        }
        prop_assert_eq!(o.facts.expiry, Expiry::Undisclosed);
        prop_assert!(o.verdict != Verdict::Unverified);
    }
}

fn good_grafana_user() -> Value {
    json!({"id": 0, "uid": "service-account:42", "login": "sa-1-deployer", "email": "sa-1-deployer",
           "name": "deployer", "orgId": 1, "isGrafanaAdmin": false})
}

fn good_grafana_token() -> Value {
    json!({"id": 2, "name": "ci", "created": "2023-11-01T00:00:00Z",
           "expiration": "2023-12-15T00:00:00Z", "secondsUntilExpiration": 0,
           "hasExpired": false, "lastUsedAt": "2023-11-14T20:00:00Z"})
}

/// Token lists: anything `body` makes, or a list of near-misses of a good token.
fn grafana_tokens() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        body(good_grafana_token()),
        prop::collection::vec(near(good_grafana_token()), 0..4)
            .prop_map(|list| Value::Array(list).to_string().into_bytes()),
    ]
}

proptest! {
    /// Grafana's `/api/user`: `valid` only on 200 with a `login`; `invalid` only on a 401
    /// that is not an HTML page; `forbidden` only on 403; 5xx and non-JSON 200s never
    /// conclusive. The token list then only adds facts: whatever it answers, the verdict and
    /// the subject stay, and the expiry is only set from a 200.
    #[test]
    fn grafana_parse(
        status in status(),
        headers in headers(),
        body in body(good_grafana_user()),
        list_status in status(),
        list in grafana_tokens(),
        key_id in prop::option::of(prop_oneof![Just("ci".to_string()), Just("2".to_string()), "\\PC{0,8}"]),
    ) {
        let o = grafana::parse(status, &headers, &body, now());
        sane(&o);
        if o.verdict == Verdict::Valid {
            prop_assert_eq!(status, 200);
            prop_assert!(member(&body, "login").is_some_and(|v| v.is_string()), "{o:?}");
        }
        if o.verdict == Verdict::Invalid {
            prop_assert!(status == 401 && !html(&headers), "{status}: {o:?}");
        }
        if o.verdict == Verdict::Forbidden {
            prop_assert_eq!(status, 403);
        }
        if (500..600).contains(&status) || (status == 200 && !is_json(&body)) {
            prop_assert!(!conclusive(&o), "{status}: {o:?}");
        }
        prop_assert_eq!(o.facts.expiry, Expiry::Undisclosed);
        let mut facts = o.facts.clone();
        grafana::parse_tokens(list_status, &list, now(), key_id.as_deref(), &mut facts);
        prop_assert_eq!(&facts.subject, &o.facts.subject);
        if list_status != 200 || !is_json(&list) {
            prop_assert_eq!(facts.expiry, Expiry::Undisclosed);
        }
    }
}

fn good_okta_me() -> Value {
    json!({"id": "00ub0oNGTSWTBKOLGLNR", "status": "ACTIVE",
           "profile": {"login": "isaac.brock@example.com", "email": "isaac.brock@example.com"}})
}

fn good_okta_token() -> Value {
    json!({"name": "ci", "userId": "00ub0oNGTSWTBKOLGLNR", "tokenWindow": "P30D",
           "id": "00Tabcdefg1234567890", "expiresAt": "2023-12-15T00:00:00.000Z",
           "created": "2023-10-01T20:38:10.000Z"})
}

proptest! {
    /// Okta: `valid` only on 200 with an `id`; `invalid` only on 401 with `E0000011`;
    /// `forbidden` only on 403 with an Okta error code; a valid answer always has the sliding
    /// model and an expiry; whatever the token list answers, the verdict stays and the
    /// window stays positive.
    #[test]
    fn okta_parse(
        status in status(),
        headers in headers(),
        body in body(good_okta_me()),
        list_status in status(),
        list in prop_oneof![
            body(good_okta_token()),
            prop::collection::vec(near(good_okta_token()), 0..4)
                .prop_map(|l| Value::Array(l).to_string().into_bytes()),
        ],
        key_id in prop::option::of(prop_oneof![Just("ci".to_string()), "\\PC{0,8}"]),
        window in "\\PC{0,12}",
    ) {
        let o = okta::parse(status, &headers, &body, now());
        sane(&o);
        if o.verdict == Verdict::Valid {
            prop_assert_eq!(status, 200);
            prop_assert!(member(&body, "id").is_some_and(|v| v.is_string()), "{o:?}");
            let sliding = matches!(
                o.facts.expiry_model,
                api_token_exporter::model::ExpiryModel::Sliding { .. }
            );
            prop_assert!(sliding, "{:?}", o.facts.expiry_model);
            prop_assert!(o.facts.expiry.timestamp().is_some());
        }
        if o.verdict == Verdict::Invalid {
            prop_assert_eq!(status, 401);
            prop_assert_eq!(member(&body, "errorCode"), Some(json!("E0000011")));
        }
        if o.verdict == Verdict::Forbidden {
            prop_assert_eq!(status, 403);
        }
        if (500..600).contains(&status) || !is_json(&body) {
            prop_assert!(!conclusive(&o), "{status}: {o:?}");
        }
        let mut facts = o.facts.clone();
        if let Ok(found) = okta::parse_tokens(list_status, &list, "00ub0oNGTSWTBKOLGLNR", key_id.as_deref()) {
            okta::apply_tokens(&found, key_id.is_some(), now(), &mut facts);
        }
        prop_assert_eq!(&facts.subject, &o.facts.subject);
        if let Some(d) = okta::iso_duration(&window) {
            prop_assert!(d.as_secs() > 0);
        }
    }
}
