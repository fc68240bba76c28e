//! The `gitlab` provider against a local server that answers as GitLab's REST API and OAuth
//! token-info endpoint document: every row of the GitLab section of the provider reference,
//! garbage, outages, timeouts, what the probe sends, and the calls it must never make.

use std::time::Duration;

use crate::support;
use api_token_exporter::config::Config;
use api_token_exporter::model::{Expiry, ProbeOutcome, Reason, Verdict};
use jiff::Timestamp;
use serde_json::{Value, json};
use support::{Answer, MockServer, Recorded, SecretFiles, probe_once};

/// 2025-09-04 15:33:20 UTC, not `support::clock::NOW`: the recorded answers below carry 2025
/// dates, and the assertions on time left are computed from this instant.
const NOW: i64 = 1_757_000_000;

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

/// Rotation, revocation and admin deletion: never called. Any DELETE at all is refused.
const NEVER: &[(&str, &str)] = &[
    ("POST", "/api/v4/personal_access_tokens"),
    ("PUT", "/api/v4/personal_access_tokens"),
    ("DELETE", "/"),
    ("POST", "/api/v4/admin"),
    ("POST", "/oauth/revoke"),
    ("POST", "/oauth/token"),
    ("POST", "/gitlab/api/v4/personal_access_tokens"),
];

fn token_json(active: bool, revoked: bool, expires_at: Value, last_used_at: Value) -> Value {
    json!({
        "id": 4711, "name": "deploy-bot", "description": "CI deploys", "revoked": revoked,
        "created_at": "2025-03-01T09:15:00.123Z", "scopes": ["api", "read_repository"],
        "user_id": 25, "last_used_at": last_used_at, "active": active, "expires_at": expires_at
    })
}

fn unauthorized() -> Answer {
    Answer::json(401, json!({"message": "401 Unauthorized"}))
}

/// GitLab as documented, for a fixed set of tokens. Paths may carry a relative URL root.
fn gitlab(r: &Recorded) -> Answer {
    let path = r.path().strip_prefix("/gitlab").unwrap_or(r.path());
    match (r.method.as_str(), path) {
        ("GET", "/api/v4/personal_access_tokens/self") => {
            access_token(r.header("private-token").unwrap_or_default())
        }
        ("GET", "/oauth/token/info") => oauth(
            r.header("authorization")
                .and_then(|a| a.strip_prefix("Bearer "))
                .unwrap_or_default(),
        ),
        _ => Answer::json(404, json!({"error": "404 Not Found"})),
    }
}

fn access_token(token: &str) -> Answer {
    let rate = |a: Answer| {
        a.header("ratelimit-name", "throttle_authenticated_api")
            .header("ratelimit-limit", "2000")
            .header("ratelimit-observed", "3")
            .header("ratelimit-remaining", "1997")
            .header("ratelimit-reset", &(NOW + 60).to_string())
    };
    match token {
        "glpat-valid" => rate(Answer::json(
            200,
            token_json(
                true,
                false,
                json!("2025-10-01"),
                json!("2025-09-03T22:10:05.456Z"),
            ),
        )),
        "glpat-never" => Answer::json(200, token_json(true, false, Value::Null, Value::Null)),
        "glpat-revoked-200" => Answer::json(
            200,
            token_json(false, true, json!("2025-10-01"), Value::Null),
        ),
        "glpat-inactive-200" => Answer::json(
            200,
            token_json(false, false, json!("2025-09-01"), Value::Null),
        ),
        "glpat-expired" => Answer::json(
            401,
            json!({"error": "invalid_token",
                   "error_description": "Token is expired. You can either do re-authorization or token refresh."}),
        ),
        "glpat-revoked" => Answer::json(
            401,
            json!({"error": "invalid_token",
                   "error_description": "Token was revoked. You have to re-authorize from the user."}),
        ),
        "glpat-scope" => Answer::json(
            403,
            json!({"error": "insufficient_scope",
                   "error_description": "The request requires higher privileges than provided by the access token.",
                   "scope": "api read_api read_user"}),
        )
        .header(
            "www-authenticate",
            "Bearer realm=\"\", error=\"insufficient_scope\", error_description=\"The request requires higher privileges than provided by the access token.\", scope=\"api read_api read_user\"",
        ),
        // GitLab.com's answer to an address that sent too many failed authentications.
        "glpat-blocked" => Answer::text(403, "text/plain", "Forbidden"),
        "glpat-throttled" => Answer::text(429, "text/plain", "Retry later\n")
            .header("ratelimit-name", "throttle_authenticated_api")
            .header("ratelimit-limit", "2000")
            .header("ratelimit-observed", "2001")
            .header("ratelimit-remaining", "0")
            .header("ratelimit-reset", &(NOW + 45).to_string())
            .header("ratelimit-resettime", "Thu, 04 Sep 2025 15:34:05 GMT")
            .header("retry-after", "45"),
        "glpat-html" => Answer::text(200, "text/html", "<html>Sign in · GitLab</html>"),
        "glpat-other-json" => Answer::json(200, json!({"version": "17.3.0"})),
        "glpat-500" => Answer::json(500, json!({"message": "500 Internal Server Error"})),
        "glpat-502" => Answer::text(502, "text/html", "<html>GitLab is not responding</html>"),
        "glpat-proxy-401" => Answer::text(401, "text/html", "<html>Login to proxy</html>"),
        "glpat-slow" => Answer::json(
            200,
            token_json(true, false, Value::Null, Value::Null),
        )
        .delayed(Duration::from_secs(3)),
        _ => unauthorized(),
    }
}

/// `/oauth/token/info`, in GitLab's shape (Doorkeeper's plus `scopes` and
/// `expires_in_seconds`) and in plain Doorkeeper's.
fn oauth(token: &str) -> Answer {
    let invalid = |description: &str| {
        Answer::json(
            401,
            json!({"error": "invalid_token", "error_description": description,
                   "state": "unauthorized"}),
        )
    };
    match token {
        "oauth-gitlab-shape" => Answer::json(
            200,
            json!({"resource_owner_id": 25, "scope": ["api", "read_user"], "expires_in": 7100,
                   "application": {"uid": "c0ffee0123456789"}, "created_at": 1_756_999_900,
                   "scopes": ["api", "read_user"], "expires_in_seconds": 7100}),
        ),
        "oauth-never" => Answer::json(
            200,
            json!({"resource_owner_id": 25, "scope": ["read_user"], "expires_in": null,
                   "application": {"uid": "c0ffee0123456789"}, "created_at": 1_700_000_000}),
        ),
        "oauth-string-scope" => Answer::json(
            200,
            json!({"resource_owner_id": "25", "scopes": "openid read_user",
                   "expires_in_seconds": 60, "created_at": "2025-09-04T15:00:00Z"}),
        ),
        "oauth-expired" => invalid("The access token expired"),
        "oauth-revoked" => invalid("The access token was revoked"),
        "oauth-html" => Answer::text(200, "text/html", "<html>maintenance</html>"),
        _ => invalid("The access token is invalid"),
    }
}

fn config(files: &SecretFiles, provider: &str, tokens: &[(&str, &str)]) -> String {
    let mut out = format!("providers:\n  gl:\n    kind: gitlab\n{provider}tokens:\n");
    for (name, value) in tokens {
        out.push_str(&format!(
            "  - name: {name}\n    provider: gl\n    probe_timeout: 1s\n    secret: {}\n",
            files.put(name, value)
        ));
    }
    out
}

async fn probe_with_provider(server: &MockServer, provider: &str, value: &str) -> ProbeOutcome {
    let files = SecretFiles::new();
    let yaml = config(
        &files,
        &format!("    url: {}\n{provider}", server.url()),
        &[("t", value)],
    );
    let outcome = probe_once(&yaml, "t", now()).await;
    support::assert_outcome_hides(&outcome, value);
    server.assert_safe(NEVER, value);
    outcome
}

async fn probe(server: &MockServer, value: &str) -> ProbeOutcome {
    probe_with_provider(server, "", value).await
}

async fn probe_oauth(server: &MockServer, value: &str) -> ProbeOutcome {
    probe_with_provider(server, "    token_type: oauth\n", value).await
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[tokio::test]
async fn active_access_token_facts_and_what_was_sent() {
    let server = MockServer::start(gitlab).await;
    let o = probe(&server, "glpat-valid").await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    // expires_at is a date: the token stops at 00:00 UTC that day.
    assert_eq!(o.facts.expiry, Expiry::At(ts("2025-10-01T00:00:00Z")));
    assert_eq!(o.facts.issued_at, Some(ts("2025-03-01T09:15:00.123Z")));
    assert_eq!(o.facts.last_used_at, Some(ts("2025-09-03T22:10:05.456Z")));
    assert_eq!(o.facts.scopes, ["api", "read_repository"]);
    assert_eq!(o.facts.subject.as_deref(), Some("25"));
    assert_eq!(o.facts.extra["user_id"], "25");
    assert_eq!(o.facts.extra["token_name"], "deploy-bot");
    assert_eq!(o.facts.extra["token_id"], "4711");
    assert!(o.facts.flags.is_empty());
    let rate = o.rate_limit.expect("RateLimit headers are read");
    assert_eq!(rate.remaining, Some(1997.0));

    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(
        (r.method.as_str(), r.path()),
        ("GET", "/api/v4/personal_access_tokens/self")
    );
    assert_eq!(r.header("private-token"), Some("glpat-valid"));
    assert_eq!(r.header("authorization"), None);
    assert!(r.uri.query().is_none());
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn null_expiry_means_never_and_null_last_use_is_absent() {
    let server = MockServer::start(gitlab).await;
    let o = probe(&server, "glpat-never").await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::Never);
    assert_eq!(o.facts.last_used_at, None);
}

#[tokio::test]
async fn revoked_or_inactive_on_200_is_invalid() {
    let server = MockServer::start(gitlab).await;
    let o = probe(&server, "glpat-revoked-200").await;
    assert_eq!((o.verdict, o.reason), (Verdict::Invalid, Reason::Revoked));
    assert_eq!(o.facts.extra["token_name"], "deploy-bot");
    let o = probe(&server, "glpat-inactive-200").await;
    assert_eq!((o.verdict, o.reason), (Verdict::Invalid, Reason::Expired));
    assert_eq!(o.facts.expiry, Expiry::At(ts("2025-09-01T00:00:00Z")));
}

#[tokio::test]
async fn the_three_401_bodies() {
    let server = MockServer::start(gitlab).await;
    for (token, reason) in [
        ("glpat-unknown", Reason::UnknownToken),
        ("glpat-expired", Reason::Expired),
        ("glpat-revoked", Reason::Revoked),
    ] {
        let o = probe(&server, token).await;
        assert_eq!((o.verdict, o.reason), (Verdict::Invalid, reason), "{token}");
    }
}

#[tokio::test]
async fn insufficient_scope_is_forbidden() {
    let server = MockServer::start(gitlab).await;
    let o = probe(&server, "glpat-scope").await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Forbidden, Reason::InsufficientScope)
    );
}

#[tokio::test]
async fn other_403_is_rate_limited_not_invalid() {
    let server = MockServer::start(gitlab).await;
    let o = probe(&server, "glpat-blocked").await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::RateLimited, Reason::RateLimited)
    );
}

#[tokio::test]
async fn throttled_429_with_ratelimit_headers() {
    let server = MockServer::start(gitlab).await;
    let o = probe(&server, "glpat-throttled").await;
    assert_eq!(o.verdict, Verdict::RateLimited);
    assert_eq!(o.retry_after, Some(Duration::from_secs(45)));
    let rate = o.rate_limit.unwrap();
    assert_eq!(rate.remaining, Some(0.0));
    assert_eq!(rate.limit, Some(2000.0));
    assert_eq!(rate.reset_at.unwrap().as_second(), NOW + 45);
}

#[tokio::test]
async fn garbage_and_outages_are_unreachable_never_invalid() {
    let server = MockServer::start(gitlab).await;
    for (token, reason) in [
        ("glpat-html", Reason::BadResponse),
        ("glpat-other-json", Reason::BadResponse),
        ("glpat-proxy-401", Reason::BadResponse),
        ("glpat-500", Reason::Http5xx),
        ("glpat-502", Reason::Http5xx),
        ("glpat-slow", Reason::Timeout),
    ] {
        let o = probe(&server, token).await;
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Unreachable, reason),
            "{token}: {o:?}"
        );
    }
    let o = probe_oauth(&server, "oauth-html").await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::BadResponse)
    );
}

#[tokio::test]
async fn connection_refused_is_unreachable() {
    // An address nothing listens on.
    let addr = format!("127.0.0.1:{}", support::daemon::free_port());
    let files = SecretFiles::new();
    let yaml = config(
        &files,
        &format!("    url: http://{addr}\n"),
        &[("t", "glpat-valid")],
    );
    let o = probe_once(&yaml, "t", now()).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::Connect)
    );
}

#[tokio::test]
async fn relative_url_root() {
    let server = MockServer::start(gitlab).await;
    let files = SecretFiles::new();
    let yaml = config(
        &files,
        &format!("    url: {}/gitlab/\n", server.url()),
        &[("t", "glpat-valid")],
    );
    let o = probe_once(&yaml, "t", now()).await;
    assert_eq!(o.verdict, Verdict::Valid, "{o:?}");
    assert_eq!(
        server.requests()[0].path(),
        "/gitlab/api/v4/personal_access_tokens/self"
    );
    server.assert_safe(NEVER, "glpat-valid");
}

#[tokio::test]
async fn oauth_token_info_gitlab_shape_and_what_was_sent() {
    let server = MockServer::start(gitlab).await;
    let o = probe_oauth(&server, "oauth-gitlab-shape").await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(o.facts.expiry, Expiry::At(ts("2025-09-04T17:31:40Z")));
    assert_eq!(o.facts.issued_at.unwrap().as_second(), 1_756_999_900);
    assert_eq!(o.facts.scopes, ["api", "read_user"]);
    assert_eq!(o.facts.subject.as_deref(), Some("25"));
    assert_eq!(o.facts.client_id.as_deref(), Some("c0ffee0123456789"));
    assert_eq!(o.facts.token_type.as_deref(), Some("oauth"));

    let r = &server.requests()[0];
    assert_eq!((r.method.as_str(), r.path()), ("GET", "/oauth/token/info"));
    assert_eq!(r.header("authorization"), Some("Bearer oauth-gitlab-shape"));
    assert_eq!(r.header("private-token"), None);
    assert!(r.uri.query().is_none());
}

#[tokio::test]
async fn oauth_token_info_other_shapes() {
    let server = MockServer::start(gitlab).await;
    let o = probe_oauth(&server, "oauth-never").await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::Never);
    let o = probe_oauth(&server, "oauth-string-scope").await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.scopes, ["openid", "read_user"]);
    assert_eq!(o.facts.expiry.timestamp().unwrap().as_second(), NOW + 60);
    assert_eq!(o.facts.issued_at, Some(ts("2025-09-04T15:00:00Z")));
    assert_eq!(o.facts.subject.as_deref(), Some("25"));
}

#[tokio::test]
async fn oauth_invalid_tokens() {
    let server = MockServer::start(gitlab).await;
    for (token, reason) in [
        ("oauth-expired", Reason::Expired),
        ("oauth-revoked", Reason::Revoked),
        ("oauth-unknown", Reason::UnknownToken),
    ] {
        let o = probe_oauth(&server, token).await;
        assert_eq!((o.verdict, o.reason), (Verdict::Invalid, reason), "{token}");
    }
}

#[test]
fn minimal_config_loads() {
    let files = SecretFiles::new();
    let yaml = format!(
        "providers:\n  gl:\n    kind: gitlab\ntokens:\n  - name: ci\n    provider: gl\n    secret: {}\n",
        files.put("ci", "glpat-x")
    );
    let cfg = Config::parse(&yaml).unwrap();
    assert_eq!(cfg.providers["gl"].kind(), "gitlab");
}

#[test]
fn wrong_configs_give_clear_errors() {
    let files = SecretFiles::new();
    let secret = files.put("ci", "glpat-x");
    let cases = [
        (
            "    url: https://gitlab.example.com/api/v4\n",
            "providers.gl: url: give GitLab's base URL without /api/v4",
        ),
        ("    token_type: deploy_token\n", "deploy_token"),
        ("    base_url: https://gitlab.example.com\n", "base_url"),
    ];
    for (provider, expected) in cases {
        let yaml = format!(
            "providers:\n  gl:\n    kind: gitlab\n{provider}tokens:\n  - name: ci\n    provider: gl\n    secret: {secret}\n"
        );
        let err = Config::parse(&yaml).unwrap_err().to_string();
        assert!(err.contains(expected), "{err}");
        assert!(err.contains("line"), "{err}");
    }
    let yaml = "providers:\n  gl:\n    kind: gitlab\ntokens:\n  - name: ci\n    provider: gl\n";
    let err = Config::parse(yaml).unwrap_err().to_string();
    assert!(
        err.contains("secret is required for a gitlab provider"),
        "{err}"
    );
}
