//! The `npm` provider against a local server that answers as the npm registry does:
//! `GET /-/whoami` (`{"username"}`, 401 for a token it does not accept, `WWW-Authenticate:
//! ipaddress` outside the token's allowed ranges) and `GET /-/npm/v1/tokens` (`objects`,
//! paged by `urls.next`; the entries as `npm token list --json` prints them).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support;
use crate::support::clock::now;
use api_token_exporter::config::Config;
use api_token_exporter::model::{Expiry, ProbeOutcome, Reason, Verdict};
use jiff::Timestamp;
use serde_json::{Value, json};
use support::daemon::write;
use support::{Answer, MockServer, Recorded, SecretFiles, probe_once};

/// A granular token as npm issues them, with a canary in it.
const TOKEN: &str = "npm_canaryNpmGranular0123456789abcdWxYz";
/// How npm lists [`TOKEN`]: its first eight and last four characters.
const REDACTED: &str = "npm_cana...WxYz";

/// The only calls a probe may make: who the token is, and its account's token list.
fn assert_read_only(server: &MockServer) {
    for r in server.requests() {
        let allowed = r.method == "GET"
            && (r.path() == "/-/whoami" || r.path() == "/-/npm/v1/tokens")
            && r.body.is_empty();
        assert!(
            allowed,
            "a call outside the allowed list: {} {}",
            r.method, r.uri
        );
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }
    server.assert_safe(&[], TOKEN);
}

fn yaml(url: &str, secret: &str, extra: &str) -> String {
    format!(
        "global:\n  probe_timeout: 1s\nproviders:\n  npm:\n    kind: npm\n    url: {url}\n{extra}tokens:\n  - name: publish\n    provider: npm\n    secret: {secret}\n"
    )
}

async fn probe_with(server: &MockServer, extra: &str) -> ProbeOutcome {
    let files = SecretFiles::new();
    let o = probe_once(
        &yaml(&server.url(), &files.put("npm", TOKEN), extra),
        "publish",
        now(),
    )
    .await;
    support::assert_outcome_hides(&o, TOKEN);
    assert_read_only(server);
    o
}

async fn probe(server: &MockServer) -> ProbeOutcome {
    probe_with(server, "").await
}

fn paths(server: &MockServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .map(|r: &Recorded| r.uri.to_string())
        .collect()
}

fn whoami() -> Answer {
    Answer::json(200, json!({"username": "grace"}))
}

fn entry(redacted: &str, expiry: &str) -> Value {
    json!({
        "name": "ci-publish", "description": "Publishing from CI", "key": "6f2b1c1e-3b1a-4c55-9f0e-2d4b8a7c9e11",
        "token": redacted, "expiry": expiry, "cidr": ["192.0.2.0/24"], "bypass_2fa": true,
        "revoked": null, "created": "2023-11-01T10:00:00.000Z", "updated": "2023-11-01T10:00:00.000Z",
        "accessed": null,
        "permissions": [{"name": "package", "action": "write"}, {"name": "org", "action": "write"}],
        "scopes": [{"name": null, "type": "package"}, {"name": "acme", "type": "org"}]
    })
}

fn list(objects: Vec<Value>, next: Option<&str>) -> Answer {
    let urls = match next {
        Some(n) => json!({"next": n}),
        None => json!({}),
    };
    Answer::json(200, json!({"objects": objects, "total": 3, "urls": urls}))
}

/// A registry answering whoami with `me` and the token list with `tokens`.
async fn registry(me: Answer, tokens: Answer) -> MockServer {
    MockServer::start(move |r| match r.path() {
        "/-/whoami" => me.clone(),
        "/-/npm/v1/tokens" => tokens.clone(),
        _ => Answer::json(404, json!({"error": "Not found"})),
    })
    .await
}

#[tokio::test]
async fn whoami_and_the_token_list_give_user_and_expiry() {
    let s = registry(
        whoami(),
        list(
            vec![
                entry("npm_zzzz...0000", "2024-01-30T10:00:00.000Z"),
                entry(REDACTED, "2024-01-30T10:00:00.000Z"),
            ],
            None,
        ),
    )
    .await;
    let o = probe(&s).await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(o.facts.subject.as_deref(), Some("grace"));
    assert_eq!(
        o.facts.expiry,
        Expiry::At("2024-01-30T10:00:00Z".parse::<Timestamp>().unwrap())
    );
    assert_eq!(o.facts.token_type.as_deref(), Some("granular"));
    assert_eq!(o.facts.scopes, ["org:write", "package:write"]);
    assert_eq!(o.facts.extra["cidr_whitelist"], "192.0.2.0/24");
    assert_eq!(o.facts.extra["bypass_2fa"], "true");
    assert_eq!(
        o.facts.issued_at,
        Some("2023-11-01T10:00:00Z".parse().unwrap())
    );
    assert!(o.facts.flags.is_empty(), "{:?}", o.facts.flags);
    assert_eq!(paths(&s), ["/-/whoami", "/-/npm/v1/tokens"]);
}

#[tokio::test]
async fn the_list_is_followed_by_urls_next() {
    let page = Arc::new(AtomicUsize::new(0));
    let seen = page.clone();
    let s = MockServer::start(move |r| match (r.path(), r.uri.query()) {
        ("/-/whoami", _) => whoami(),
        ("/-/npm/v1/tokens", None) => {
            seen.fetch_add(1, Ordering::SeqCst);
            list(
                vec![entry("npm_aaaa...1111", "2024-02-01T00:00:00.000Z")],
                Some("/-/npm/v1/tokens?page=1"),
            )
        }
        ("/-/npm/v1/tokens", Some("page=1")) => {
            seen.fetch_add(1, Ordering::SeqCst);
            list(vec![entry(REDACTED, "2024-01-15T00:00:00.000Z")], None)
        }
        _ => Answer::json(404, json!({"error": "Not found"})),
    })
    .await;
    let o = probe(&s).await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(
        o.facts.expiry,
        Expiry::At("2024-01-15T00:00:00Z".parse::<Timestamp>().unwrap())
    );
    assert_eq!(page.load(Ordering::SeqCst), 2);
    assert_eq!(
        paths(&s),
        ["/-/whoami", "/-/npm/v1/tokens", "/-/npm/v1/tokens?page=1"]
    );
}

#[tokio::test]
async fn a_next_link_to_another_server_is_not_followed() {
    let s = registry(
        whoami(),
        list(vec![], Some("http://127.0.0.1:9/-/npm/v1/tokens?page=1")),
    )
    .await;
    let o = probe(&s).await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert!(
        o.facts.flags[0].contains("another server"),
        "{:?}",
        o.facts.flags
    );
    assert_eq!(paths(&s), ["/-/whoami", "/-/npm/v1/tokens"]);
}

#[tokio::test]
async fn a_refused_list_keeps_the_whoami_verdict_with_the_expiry_undisclosed() {
    for (status, says) in [
        (403, "may not read"),
        (401, "may not read"),
        (404, "no token list"),
    ] {
        let s = registry(
            whoami(),
            Answer::json(status, json!({"error": "Forbidden"})),
        )
        .await;
        let o = probe(&s).await;
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Valid, Reason::Ok),
            "{status}"
        );
        assert_eq!(o.facts.expiry, Expiry::Undisclosed, "{status}");
        assert!(
            o.facts.flags.iter().any(|f| f.contains(says)),
            "{status}: {:?}",
            o.facts.flags
        );
    }
}

#[tokio::test]
async fn a_token_missing_from_the_list_discloses_no_expiry() {
    let s = registry(
        whoami(),
        list(
            vec![entry("npm_other...9999", "2024-01-30T10:00:00.000Z")],
            None,
        ),
    )
    .await;
    let o = probe(&s).await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert!(o.facts.flags[0].contains("not in its account's token list"));
}

#[tokio::test]
async fn token_list_false_makes_one_call() {
    let s = registry(
        whoami(),
        list(vec![entry(REDACTED, "2024-01-30T10:00:00Z")], None),
    )
    .await;
    let o = probe_with(&s, "    token_list: false\n").await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert_eq!(paths(&s), ["/-/whoami"]);
}

#[tokio::test]
async fn whoami_refusals_map_to_their_verdicts() {
    let cases: Vec<(Answer, Verdict, Reason)> = vec![
        (
            Answer::json(401, json!({"error": "Unauthorized"})),
            Verdict::Invalid,
            Reason::UnknownToken,
        ),
        (
            Answer::json(401, json!({"error": "Unauthorized"}))
                .header("www-authenticate", "ipaddress"),
            Verdict::Forbidden,
            Reason::InsufficientScope,
        ),
        (
            Answer::json(401, json!({"error": "otp required"})).header("www-authenticate", "OTP"),
            Verdict::Forbidden,
            Reason::InsufficientScope,
        ),
        (
            Answer::json(429, json!({"error": "Too Many Requests"})).header("retry-after", "120"),
            Verdict::RateLimited,
            Reason::RateLimited,
        ),
    ];
    for (answer, verdict, reason) in cases {
        let s = registry(answer, list(vec![], None)).await;
        let o = probe(&s).await;
        assert_eq!((o.verdict, o.reason), (verdict, reason), "{o:?}");
        // The list is read only for a token whoami accepted.
        assert_eq!(paths(&s), ["/-/whoami"]);
        if verdict == Verdict::RateLimited {
            assert_eq!(o.retry_after, Some(Duration::from_secs(120)));
        }
    }
}

#[tokio::test]
async fn garbage_and_server_errors_are_unreachable() {
    let cases: Vec<(&str, Answer, Reason)> = vec![
        (
            "html",
            Answer::text(200, "text/html", "<html><body>Sign in</body></html>"),
            Reason::BadResponse,
        ),
        (
            "no username",
            Answer::json(200, json!({"ok": true})),
            Reason::BadResponse,
        ),
        (
            "huge",
            Answer::text(200, "application/json", &"x".repeat(2 * 1024 * 1024)),
            Reason::BadResponse,
        ),
        (
            "502",
            Answer::text(502, "text/html", "<html>Bad Gateway</html>"),
            Reason::Http5xx,
        ),
        (
            "redirect",
            Answer::text(302, "text/plain", "").header("location", "http://127.0.0.1:9/login"),
            Reason::UnexpectedStatus,
        ),
    ];
    for (what, answer, reason) in cases {
        let s = registry(answer, list(vec![], None)).await;
        let o = probe(&s).await;
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Unreachable, reason),
            "{what}: {o:?}"
        );
        assert_eq!(paths(&s), ["/-/whoami"], "{what}");
    }
}

#[tokio::test]
async fn a_garbage_list_keeps_the_verdict() {
    let s = registry(
        whoami(),
        Answer::text(200, "text/html", "<html>Sign in</html>"),
    )
    .await;
    let o = probe(&s).await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert!(o.facts.flags[0].contains("not the documented JSON"));
}

#[test]
fn wrong_configs_give_clear_errors() {
    for (text, says) in [
        (
            "providers:\n  n:\n    kind: npm\n    registry: https://registry.npmjs.org\n",
            "registry",
        ),
        (
            "providers:\n  n:\n    kind: npm\n    url: https://u:p@registry.npmjs.org\n",
            "providers.n: url: credentials",
        ),
        (
            "providers:\n  n:\n    kind: npm\ntokens:\n  - name: t\n    provider: n\n",
            "secret is required",
        ),
        (
            "providers:\n  n:\n    kind: npm\ntokens:\n  - name: t\n    provider: n\n    secret: {env: X}\n    accessor: a\n",
            "accessor does not apply to a npm provider",
        ),
    ] {
        let err = Config::parse(text).unwrap_err().to_string();
        assert!(err.contains(says), "{text}\n{err}");
    }
    let ok = Config::parse(
        "providers:\n  n:\n    kind: npm\ntokens:\n  - name: t\n    provider: n\n    secret: {env: NPM_TOKEN}\n",
    )
    .unwrap();
    assert_eq!(ok.providers["n"].kind(), "npm");
}

/// The token reaches no output of the daemon: trace logs, `/metrics`, `/`, the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_the_token_reaches_no_output() {
    let s = registry(
        whoami(),
        list(vec![entry(REDACTED, "2099-05-20T08:00:00.000Z")], None),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let files = SecretFiles::new();
    let config = write(
        dir.path(),
        "config.yml",
        &yaml(&s.url(), &files.put("npm", TOKEN), ""),
    );
    support::daemon::canary_through_daemon(
        &config,
        "publish",
        &["\"valid\"", "2099-05-20"],
        &[TOKEN, "canaryNpmGranular"],
    );
    assert_read_only(&s);
}
