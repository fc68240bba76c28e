//! The `github` provider against a local server that answers as GitHub's REST API documents:
//! every row of the GitHub section of the provider reference, garbage, outages, timeouts,
//! what the probe sends, and the calls it must never make.

use std::time::Duration;

use crate::support;
use api_token_exporter::config::Config;
use api_token_exporter::model::{Expiry, ProbeOutcome, Reason, Verdict};
use base64::Engine;
use jiff::Timestamp;
use serde_json::json;
use support::{Answer, MockServer, Recorded, SecretFiles, probe_once};

/// 2025-09-04 15:33:20 UTC, not `support::clock::NOW`: the recorded answers below carry 2025
/// dates, and the assertions on time left are computed from this instant.
const NOW: i64 = 1_757_000_000;
const CLIENT_ID: &str = "Iv1.8a61f9b3a7aba766";
const CLIENT_SECRET: &str = "app-client-secret-value";

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

/// Everything the probe may never do against GitHub: reset, revoke, or touch anything under
/// `/applications` other than the one `POST .../token` check (see [`assert_app_calls_only_check`]).
const NEVER: &[(&str, &str)] = &[
    ("PATCH", "/applications"),
    ("DELETE", "/applications"),
    ("PUT", "/applications"),
    ("GET", "/applications"),
    ("DELETE", "/"),
    ("PATCH", "/"),
];

/// Headers GitHub sends on every API answer.
fn gh(answer: Answer) -> Answer {
    answer
        .header("x-github-request-id", "C0DE:1234:5678")
        .header("x-github-media-type", "github.v3; format=json")
}

fn with_rate(answer: Answer, remaining: u32) -> Answer {
    answer
        .header("x-ratelimit-limit", "5000")
        .header("x-ratelimit-remaining", &remaining.to_string())
        .header("x-ratelimit-used", &(5000 - remaining).to_string())
        .header("x-ratelimit-reset", &(NOW + 1200).to_string())
        .header("x-ratelimit-resource", "core")
}

fn user_body() -> serde_json::Value {
    json!({"login": "octocat", "id": 583231, "type": "User", "site_admin": false,
           "name": "The Octocat"})
}

fn bad_credentials() -> Answer {
    gh(Answer::json(
        401,
        json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest",
               "status": "401"}),
    ))
}

fn bearer(r: &Recorded) -> Option<&str> {
    r.header("authorization")?.strip_prefix("Bearer ")
}

/// GitHub as its documentation describes it, for a fixed set of tokens. Paths may carry
/// GitHub Enterprise Server's `/api/v3` prefix.
fn github(r: &Recorded) -> Answer {
    let path = r.path().strip_prefix("/api/v3").unwrap_or(r.path());
    if r.method == "POST" && path == format!("/applications/{CLIENT_ID}/token") {
        return app_check(r);
    }
    let token = bearer(r).unwrap_or_default();
    match (r.method.as_str(), path) {
        ("GET", "/user") => user(token),
        ("GET", "/installation/repositories") => installation(token),
        _ => gh(Answer::json(
            404,
            json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}),
        )),
    }
}

fn user(token: &str) -> Answer {
    let ok = || with_rate(gh(Answer::json(200, user_body())), 4990);
    match token {
        "ghp_classic_expiring" => ok()
            .header(
                "github-authentication-token-expiration",
                "2025-10-01 12:00:00 UTC",
            )
            .header("x-oauth-scopes", "repo, read:org, workflow")
            .header("x-accepted-oauth-scopes", ""),
        "github_pat_fine_grained" => ok().header(
            "github-authentication-token-expiration",
            "2025-09-05 17:55:53 +0500",
        ),
        "ghp_classic_no_expiry" => ok().header("x-oauth-scopes", "repo"),
        "github_pat_suspect_expiry" => ok().header(
            "github-authentication-token-expiration",
            "2025-09-01 00:00:00 UTC",
        ),
        "ghp_bad" => bad_credentials(),
        "ghp_rate_limited" => with_rate(
            gh(Answer::json(
                403,
                json!({"message": "API rate limit exceeded for user ID 583231.",
                       "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}),
            )),
            0,
        ),
        "ghp_rate_limited_429" => with_rate(
            gh(Answer::json(
                429,
                json!({"message": "API rate limit exceeded for user ID 583231."}),
            )),
            0,
        ),
        "ghp_secondary" => with_rate(
            gh(Answer::json(
                403,
                json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID C0DE:1234.",
                       "documentation_url": "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}),
            )),
            4000,
        )
        .header("retry-after", "120"),
        "ghp_sso" => with_rate(
            gh(Answer::json(
                403,
                json!({"message": "Resource protected by organization SAML enforcement. You must grant your Personal Access token access to this organization.",
                       "documentation_url": "https://docs.github.com/articles/authenticating-to-a-github-organization-with-saml-single-sign-on/"}),
            )),
            4980,
        )
        .header(
            "x-github-sso",
            "required; url=https://github.com/orgs/acme-corp/sso?authorization_request=AZxy12",
        )
        .header(
            "github-authentication-token-expiration",
            "2025-12-31 00:00:00 UTC",
        )
        .header("x-oauth-scopes", "repo"),
        "ghp_forbidden" => with_rate(
            gh(Answer::json(
                403,
                json!({"message": "Must have admin rights to Repository.",
                       "documentation_url": "https://docs.github.com/rest"}),
            )),
            4970,
        ),
        // Installation tokens cannot call /user; the probe must not even try.
        t if t.starts_with("ghs_") => gh(Answer::json(
            403,
            json!({"message": "Resource not accessible by integration",
                   "documentation_url": "https://docs.github.com/rest/users/users#get-the-authenticated-user"}),
        )),
        "ghp_html" => Answer::text(200, "text/html", "<html><body>Captive portal</body></html>"),
        "ghp_truncated" => Answer::text(200, "application/json", r#"{"login": "octo"#),
        "ghp_500" => gh(Answer::json(500, json!({"message": "Server Error"}))),
        "ghp_502" => Answer::text(502, "text/html", "<html>502 Bad Gateway</html>"),
        "ghp_proxy_401" => Answer::text(401, "text/html", "<html>VPN login required</html>"),
        "ghp_slow" => ok().delayed(Duration::from_secs(3)),
        _ => bad_credentials(),
    }
}

fn installation(token: &str) -> Answer {
    match token {
        "ghs_installation" => with_rate(
            gh(Answer::json(
                200,
                json!({"total_count": 12, "repository_selection": "all",
                       "repositories": [{"id": 1, "full_name": "acme-corp/api",
                                         "owner": {"login": "acme-corp", "type": "Organization"}}]}),
            )),
            4999,
        )
        .header(
            "github-authentication-token-expiration",
            "2025-09-04 16:30:00 UTC",
        ),
        _ => bad_credentials(),
    }
}

/// `POST /applications/{client_id}/token`: Basic auth with the app's credentials, the token
/// in the JSON body; 200 with the authorization, 404 for a token the app does not know.
fn app_check(r: &Recorded) -> Answer {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if r.header("authorization") != Some(expected.as_str()) {
        return gh(Answer::json(
            401,
            json!({"message": "Requires authentication", "documentation_url": "https://docs.github.com/rest"}),
        ));
    }
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    let not_found = || {
        gh(Answer::json(
            404,
            json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest/apps/oauth-applications#check-a-token"}),
        ))
    };
    let authorization = |token: &str, expires_at: serde_json::Value| {
        gh(Answer::json(
            200,
            json!({
                "id": 1, "url": format!("https://api.github.com/authorizations/1"),
                "scopes": ["read:user", "repo"], "token": token,
                "token_last_eight": &token[token.len() - 8..], "hashed_token": "25f94a2a5c7fbaf4",
                "app": {"url": "https://example.com", "name": "Exporter App", "client_id": CLIENT_ID},
                "note": null, "note_url": null, "updated_at": "2025-08-01T09:00:00Z",
                "created_at": "2025-08-01T08:00:00Z", "fingerprint": null,
                "expires_at": expires_at,
                "user": {"login": "octocat", "id": 583231, "type": "User"},
                "installation": null
            }),
        ))
    };
    match body.get("access_token").and_then(|v| v.as_str()) {
        Some(t @ "ghu_user_token_valid") => authorization(t, json!("2025-09-04T23:33:20Z")),
        Some(t @ "gho_oauth_token_valid") => authorization(t, serde_json::Value::Null),
        Some(_) => not_found(),
        None => gh(Answer::json(
            422,
            json!({"message": "Invalid request.", "documentation_url": "https://docs.github.com/rest"}),
        )),
    }
}

/// A config with one `github` provider (extra settings given as YAML lines) and one token
/// per `(name, value)`. Each token's probe times out after a second.
fn config(files: &SecretFiles, provider: &str, tokens: &[(&str, &str)]) -> String {
    let mut out = format!("providers:\n  gh:\n    kind: github\n{provider}tokens:\n");
    for (name, value) in tokens {
        out.push_str(&format!(
            "  - name: {name}\n    provider: gh\n    probe_timeout: 1s\n    secret: {}\n",
            files.put(name, value)
        ));
    }
    out
}

fn api(server: &MockServer) -> String {
    format!("    url: {}\n", server.url())
}

/// Probes one token value against the server in default mode.
async fn probe(server: &MockServer, value: &str) -> ProbeOutcome {
    let files = SecretFiles::new();
    let yaml = config(&files, &api(server), &[("t", value)]);
    let outcome = probe_once(&yaml, "t", now()).await;
    support::assert_outcome_hides(&outcome, value);
    outcome
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[tokio::test]
async fn classic_pat_with_expiry_scopes_and_identity() {
    let server = MockServer::start(github).await;
    let o = probe(&server, "ghp_classic_expiring").await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(o.facts.expiry, Expiry::At(ts("2025-10-01T12:00:00Z")));
    assert_eq!(o.facts.scopes, ["read:org", "repo", "workflow"]);
    assert_eq!(o.facts.subject.as_deref(), Some("octocat"));
    assert_eq!(o.facts.extra["user_id"], "583231");
    assert_eq!(o.facts.token_type.as_deref(), Some("personal_access_token"));
    let rate = o.rate_limit.expect("rate headers are read");
    assert_eq!(rate.remaining, Some(4990.0));
    assert_eq!(rate.limit, Some(5000.0));
    assert!(o.facts.flags.is_empty());

    // What the probe sent: exactly one GET /user with the documented headers.
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!((r.method.as_str(), r.path()), ("GET", "/user"));
    assert_eq!(
        r.header("authorization"),
        Some("Bearer ghp_classic_expiring")
    );
    assert_eq!(r.header("accept"), Some("application/vnd.github+json"));
    assert_eq!(r.header("x-github-api-version"), Some("2022-11-28"));
    assert!(
        r.header("user-agent")
            .is_some_and(|ua| ua.starts_with("api-token-exporter/")),
        "{:?}",
        r.header("user-agent")
    );
    assert!(r.body.is_empty());
    server.assert_safe(NEVER, "ghp_classic_expiring");
}

#[tokio::test]
async fn fine_grained_pat_with_numeric_offset_and_no_scopes() {
    let server = MockServer::start(github).await;
    let o = probe(&server, "github_pat_fine_grained").await;
    assert_eq!(o.verdict, Verdict::Valid);
    // 17:55:53 at +05:00 is 12:55:53 UTC.
    assert_eq!(o.facts.expiry, Expiry::At(ts("2025-09-05T12:55:53Z")));
    assert!(o.facts.scopes.is_empty());
    assert_eq!(
        o.facts.token_type.as_deref(),
        Some("fine_grained_personal_access_token")
    );
    server.assert_safe(NEVER, "github_pat_fine_grained");
}

#[tokio::test]
async fn no_expiration_header_means_never() {
    let server = MockServer::start(github).await;
    let o = probe(&server, "ghp_classic_no_expiry").await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::Never);
    assert_eq!(o.facts.scopes, ["repo"]);
}

#[tokio::test]
async fn past_expiry_on_success_is_kept_flagged_and_still_valid() {
    let server = MockServer::start(github).await;
    let o = probe(&server, "github_pat_suspect_expiry").await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok));
    assert_eq!(o.facts.expiry, Expiry::At(ts("2025-09-01T00:00:00Z")));
    assert_eq!(o.facts.flags.len(), 1, "{:?}", o.facts.flags);
    assert!(o.facts.flags[0].contains("suspect"), "{:?}", o.facts.flags);
}

#[tokio::test]
async fn bad_credentials_is_invalid() {
    let server = MockServer::start(github).await;
    let o = probe(&server, "ghp_bad").await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::UnknownToken)
    );
    assert!(o.detail.contains("Bad credentials"), "{}", o.detail);
    server.assert_safe(NEVER, "ghp_bad");
}

#[tokio::test]
async fn primary_rate_limit_on_403_and_429() {
    let server = MockServer::start(github).await;
    for token in ["ghp_rate_limited", "ghp_rate_limited_429"] {
        let o = probe(&server, token).await;
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::RateLimited, Reason::RateLimited),
            "{token}"
        );
        // No Retry-After: the wait runs to x-ratelimit-reset.
        assert_eq!(o.retry_after, Some(Duration::from_secs(1200)), "{token}");
        assert_eq!(o.rate_limit.unwrap().remaining, Some(0.0));
    }
}

#[tokio::test]
async fn secondary_rate_limit_uses_retry_after() {
    let server = MockServer::start(github).await;
    let o = probe(&server, "ghp_secondary").await;
    assert_eq!(o.verdict, Verdict::RateLimited);
    assert_eq!(o.retry_after, Some(Duration::from_secs(120)));
    assert!(o.detail.contains("secondary"), "{}", o.detail);
    assert_eq!(o.rate_limit.unwrap().remaining, Some(4000.0));
}

#[tokio::test]
async fn saml_sso_required_is_forbidden_with_sso_reason() {
    let server = MockServer::start(github).await;
    let o = probe(&server, "ghp_sso").await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Forbidden, Reason::SsoRequired)
    );
    assert_eq!(o.reason.as_str(), "sso_required");
    assert!(o.detail.contains("SAML single sign-on"), "{}", o.detail);
    assert!(!o.detail.contains("AZxy12"), "{}", o.detail);
    assert_eq!(o.facts.extra["sso_organization"], "acme-corp");
    // The token authenticated, so what its headers say is still reported.
    assert_eq!(o.facts.expiry, Expiry::At(ts("2025-12-31T00:00:00Z")));
    assert_eq!(o.facts.scopes, ["repo"]);
}

#[tokio::test]
async fn other_403_is_forbidden() {
    let server = MockServer::start(github).await;
    let o = probe(&server, "ghp_forbidden").await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Forbidden, Reason::InsufficientScope)
    );
}

#[tokio::test]
async fn installation_token_uses_installation_endpoint_never_user() {
    let server = MockServer::start(github).await;
    let o = probe(&server, "ghs_installation").await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(o.facts.expiry, Expiry::At(ts("2025-09-04T16:30:00Z")));
    assert_eq!(o.facts.extra["repository_count"], "12");
    assert_eq!(o.facts.extra["installation_account"], "acme-corp");
    assert_eq!(o.facts.token_type.as_deref(), Some("installation"));
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].path(), "/installation/repositories");
    assert_eq!(
        reqs[0].header("authorization"),
        Some("Bearer ghs_installation")
    );
    server.assert_safe(&[("GET", "/user")], "ghs_installation");
    server.assert_safe(NEVER, "ghs_installation");
}

#[tokio::test]
async fn refresh_token_is_never_sent() {
    let server = MockServer::start(github).await;
    let o = probe(&server, "ghr_refresh_token_value").await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Misconfigured, Reason::Malformed)
    );
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn garbage_answers_are_unreachable_never_invalid() {
    let server = MockServer::start(github).await;
    for (token, reason) in [
        ("ghp_html", Reason::BadResponse),
        ("ghp_truncated", Reason::BadResponse),
        ("ghp_proxy_401", Reason::BadResponse),
        ("ghp_500", Reason::Http5xx),
        ("ghp_502", Reason::Http5xx),
    ] {
        let o = probe(&server, token).await;
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Unreachable, reason),
            "{token}: {o:?}"
        );
    }
}

#[tokio::test]
async fn timeout_is_unreachable() {
    let server = MockServer::start(github).await;
    let o = probe(&server, "ghp_slow").await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::Timeout)
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
        &[("t", "ghp_classic_expiring")],
    );
    let o = probe_once(&yaml, "t", now()).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::Connect)
    );
    support::assert_outcome_hides(&o, "ghp_classic_expiring");
}

#[tokio::test]
async fn enterprise_server_api_prefix() {
    let server = MockServer::start(github).await;
    let files = SecretFiles::new();
    let yaml = config(
        &files,
        &format!("    url: {}/api/v3/\n", server.url()),
        &[("t", "ghp_classic_expiring")],
    );
    let o = probe_once(&yaml, "t", now()).await;
    assert_eq!(o.verdict, Verdict::Valid, "{o:?}");
    assert_eq!(server.requests()[0].path(), "/api/v3/user");
}

fn app_provider(server: &MockServer, files: &SecretFiles, secret: &str) -> String {
    format!(
        "{}    app_client_id: {CLIENT_ID}\n    app_client_secret: {}\n",
        api(server),
        files.put("app-secret", secret)
    )
}

/// In app mode the one call under `/applications` is `POST /applications/{id}/token`.
fn assert_app_calls_only_check(server: &MockServer) {
    for r in server.requests() {
        if r.path().starts_with("/applications") {
            assert_eq!(r.method, "POST");
            assert_eq!(r.path(), format!("/applications/{CLIENT_ID}/token"));
        }
    }
}

#[tokio::test]
async fn app_mode_checks_oauth_tokens_with_the_app_credentials() {
    let server = MockServer::start(github).await;
    let files = SecretFiles::new();
    let yaml = config(
        &files,
        &app_provider(&server, &files, CLIENT_SECRET),
        &[
            ("user", "ghu_user_token_valid"),
            ("oauth", "gho_oauth_token_valid"),
            ("gone", "gho_revoked_token_xyz"),
            ("pat", "ghp_classic_expiring"),
        ],
    );
    let cfg = Config::parse(&yaml).unwrap();

    let o = support::probe_with(&cfg, "user", now()).await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(o.facts.expiry, Expiry::At(ts("2025-09-04T23:33:20Z")));
    assert_eq!(o.facts.issued_at, Some(ts("2025-08-01T08:00:00Z")));
    assert_eq!(o.facts.scopes, ["read:user", "repo"]);
    assert_eq!(o.facts.subject.as_deref(), Some("octocat"));
    assert_eq!(o.facts.client_id.as_deref(), Some(CLIENT_ID));
    assert_eq!(o.facts.token_type.as_deref(), Some("app_user"));
    // The answer echoes the token and its last eight characters; neither may surface.
    support::assert_outcome_hides(&o, "ghu_user_token_valid");
    support::assert_outcome_hides(&o, "en_valid");

    let r = &server.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path(), format!("/applications/{CLIENT_ID}/token"));
    let sent: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(sent, json!({"access_token": "ghu_user_token_valid"}));
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(r.header("accept"), Some("application/vnd.github+json"));
    assert_eq!(r.header("x-github-api-version"), Some("2022-11-28"));
    assert!(r.header("authorization").unwrap().starts_with("Basic "));

    let o = support::probe_with(&cfg, "oauth", now()).await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::Never);

    let o = support::probe_with(&cfg, "gone", now()).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::UnknownToken)
    );

    // A personal access token belongs to no app: it is probed with /user as usual.
    let o = support::probe_with(&cfg, "pat", now()).await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(server.requests().last().unwrap().path(), "/user");

    for token in [
        "ghu_user_token_valid",
        "gho_oauth_token_valid",
        "gho_revoked_token_xyz",
        "ghp_classic_expiring",
    ] {
        server.assert_safe(NEVER, token);
    }
    assert_app_calls_only_check(&server);
}

#[tokio::test]
async fn app_mode_with_wrong_app_secret_is_misconfigured() {
    let server = MockServer::start(github).await;
    let files = SecretFiles::new();
    let yaml = config(
        &files,
        &app_provider(&server, &files, "wrong-secret"),
        &[("user", "ghu_user_token_valid")],
    );
    let o = probe_once(&yaml, "user", now()).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Misconfigured, Reason::ClientAuth)
    );
    assert!(!o.detail.contains("wrong-secret"));
    assert_app_calls_only_check(&server);
}

#[tokio::test]
async fn app_mode_with_unreadable_app_secret_is_misconfigured_without_a_call() {
    let server = MockServer::start(github).await;
    let files = SecretFiles::new();
    let provider = format!(
        "{}    app_client_id: {CLIENT_ID}\n    app_client_secret: {{env: API_TOKEN_EXPORTER_TEST_UNSET_VARIABLE}}\n",
        api(&server)
    );
    let yaml = config(&files, &provider, &[("user", "ghu_user_token_valid")]);
    let o = probe_once(&yaml, "user", now()).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Misconfigured, Reason::SecretUnavailable)
    );
    assert!(server.requests().is_empty());
}

#[test]
fn minimal_config_loads() {
    let files = SecretFiles::new();
    let yaml = format!(
        "providers:\n  gh:\n    kind: github\ntokens:\n  - name: ci\n    provider: gh\n    secret: {}\n",
        files.put("ci", "ghp_x")
    );
    let cfg = Config::parse(&yaml).unwrap();
    assert_eq!(cfg.providers["gh"].kind(), "github");
}

#[test]
fn wrong_configs_give_clear_errors() {
    let files = SecretFiles::new();
    let secret = files.put("ci", "ghp_x");
    let cases = [
        (
            "    app_client_id: Iv1.abc\n",
            "providers.gh: app_client_id needs app_client_secret",
        ),
        (
            "    url: ftp://example.com\n",
            "providers.gh: url: the URL must be http or https",
        ),
        ("    api_ur: https://x\n", "api_ur"),
    ];
    for (provider, expected) in cases {
        let yaml = format!(
            "providers:\n  gh:\n    kind: github\n{provider}tokens:\n  - name: ci\n    provider: gh\n    secret: {secret}\n"
        );
        let err = Config::parse(&yaml).unwrap_err().to_string();
        assert!(err.contains(expected), "{err}");
        assert!(err.contains("line"), "{err}");
    }
    // A token without a secret, and a per-token setting github does not use.
    let yaml = "providers:\n  gh:\n    kind: github\ntokens:\n  - name: ci\n    provider: gh\n";
    let err = Config::parse(yaml).unwrap_err().to_string();
    assert!(
        err.contains("secret is required for a github provider"),
        "{err}"
    );
    let yaml = format!(
        "providers:\n  gh:\n    kind: github\ntokens:\n  - name: ci\n    provider: gh\n    secret: {secret}\n    accessor: abc\n"
    );
    let err = Config::parse(&yaml).unwrap_err().to_string();
    assert!(
        err.contains("accessor does not apply to a github provider"),
        "{err}"
    );
}
