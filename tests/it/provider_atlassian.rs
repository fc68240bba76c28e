//! The `atlassian` provider against a local server that answers as an Atlassian Cloud site
//! does: Jira's `GET /rest/api/3/myself` (Confluence's `GET /wiki/rest/api/user/current`)
//! with basic auth, 401 and the `X-Seraph-LoginReason` header for refused credentials, 403
//! with `AUTHENTICATION_DENIED` once a CAPTCHA is required, 429 with `Retry-After` and an ISO
//! 8601 `X-RateLimit-Reset`.

use std::time::Duration;

use crate::support;
use crate::support::clock::now;
use api_token_exporter::config::Config;
use api_token_exporter::model::{Expiry, ProbeOutcome, Reason, Verdict};
use base64::Engine;
use serde_json::json;
use support::{Answer, MockServer, Recorded, SecretFiles, assert_outcome_hides, probe_once};

const TOKEN: &str = "ATATT3xFfGF0canaryAtlassianToken0123456789abcdefABCDEF=9F3C2A1B";
const EMAIL: &str = "mia@example.com";

/// The only call a probe may make, per product.
const JIRA: &str = "/rest/api/3/myself";
const CONFLUENCE: &str = "/wiki/rest/api/user/current";

fn basic(email: &str, token: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{email}:{token}"))
    )
}

/// Jira's documented `myself` answer.
fn myself() -> serde_json::Value {
    json!({
        "accountId": "5b10a2844c20165700ede21g",
        "accountType": "atlassian",
        "active": true,
        "applicationRoles": {"items": [], "size": 1},
        "displayName": "Mia Krystof",
        "emailAddress": EMAIL,
        "groups": {"items": [], "size": 3},
        "key": "",
        "name": "",
        "self": "https://your-domain.atlassian.net/rest/api/3/user?accountId=5b10a2844c20165700ede21g",
        "timeZone": "Australia/Sydney"
    })
}

/// A site: the right email and token get the current user at `path`; other credentials get
/// 401 with Seraph's reason, as Atlassian's login layer answers them.
async fn site(path: &'static str, body: serde_json::Value) -> MockServer {
    MockServer::start(move |r: &Recorded| {
        if r.method != "GET" || r.path() != path {
            return Answer::json(404, json!({"errorMessages": ["Not found"]}));
        }
        if r.header("authorization") == Some(basic(EMAIL, TOKEN).as_str()) {
            Answer::json(200, body.clone())
                .header("x-ratelimit-limit", "100")
                .header("x-ratelimit-remaining", "99")
        } else {
            Answer::json(
                401,
                json!({"errorMessages": ["You are not authenticated. Authentication required to perform this operation."], "errors": {}}),
            )
            .header("x-seraph-loginreason", "AUTHENTICATED_FAILED")
            .header("www-authenticate", "Basic realm=\"protected-area\"")
        }
    })
    .await
}

fn yaml(url: &str, extra: &str, secret: &str, email: &str) -> String {
    format!(
        "global:\n  probe_timeout: 1s\nproviders:\n  atl:\n    kind: atlassian\n    url: {url}\n{extra}tokens:\n  - name: t\n    provider: atl\n    secret: {secret}\n    email: {email}\n"
    )
}

async fn probe_at(url: &str, extra: &str, token: &str, email: &str) -> ProbeOutcome {
    let secrets = SecretFiles::new();
    let secret = secrets.put("atl", token);
    let o = probe_once(&yaml(url, extra, &secret, email), "t", now()).await;
    assert_outcome_hides(&o, token);
    o
}

/// Every request was the one documented GET at `path`, the token only in the header.
fn assert_only(server: &MockServer, path: &str, token: &str) {
    let requests = server.requests();
    assert!(!requests.is_empty(), "no call was made");
    for r in &requests {
        assert_eq!(
            (r.method.as_str(), r.path()),
            ("GET", path),
            "a call outside the allowed list"
        );
        assert_eq!(r.uri.query(), None);
        assert!(!r.uri.to_string().contains(token), "the token in a URL");
        assert!(!r.body_text().contains(token), "the token in a body");
        assert_eq!(
            r.header("authorization"),
            Some(basic(EMAIL, token).as_str())
        );
    }
    server.assert_safe(&[], token);
}

#[tokio::test]
async fn a_valid_token_names_its_account_and_leaves_the_expiry_undisclosed() {
    let server = site(JIRA, myself()).await;
    let o = probe_at(&server.url(), "", TOKEN, EMAIL).await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(o.facts.subject.as_deref(), Some(EMAIL));
    assert_eq!(o.facts.extra["account_id"], "5b10a2844c20165700ede21g");
    assert_eq!(o.facts.token_type.as_deref(), Some("atlassian"));
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert_eq!(o.rate_limit.and_then(|r| r.remaining), Some(99.0));
    assert_eq!(server.requests().len(), 1, "one call per probe");
    assert_only(&server, JIRA, TOKEN);
}

#[tokio::test]
async fn confluence_asks_its_own_current_user() {
    let body = json!({"type": "known", "accountId": "5b10a2844c20165700ede21g",
        "accountType": "atlassian", "email": EMAIL, "publicName": "Mia Krystof",
        "displayName": "Mia Krystof"});
    let server = site(CONFLUENCE, body).await;
    let o = probe_at(&server.url(), "    product: confluence\n", TOKEN, EMAIL).await;
    assert_eq!(o.verdict, Verdict::Valid, "{o:?}");
    assert_eq!(o.facts.subject.as_deref(), Some(EMAIL));
    assert_only(&server, CONFLUENCE, TOKEN);
}

#[tokio::test]
async fn a_path_prefix_is_kept_for_the_api_gateway() {
    const GATEWAY: &str = "/ex/jira/1324a887-45db-1bf4-1e99-ef0ff456d421/rest/api/3/myself";
    let server = site(GATEWAY, myself()).await;
    let url = format!(
        "{}/ex/jira/1324a887-45db-1bf4-1e99-ef0ff456d421/",
        server.url()
    );
    let o = probe_at(&url, "", TOKEN, EMAIL).await;
    assert_eq!(o.verdict, Verdict::Valid, "{o:?}");
    assert_only(&server, GATEWAY, TOKEN);
}

#[tokio::test]
async fn a_refused_token_or_email_is_invalid() {
    let server = site(JIRA, myself()).await;
    let wrong = "ATATT3xFfGF0canaryRevokedAtlassianToken00000000=00000000";
    let o = probe_at(&server.url(), "", wrong, EMAIL).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::UnknownToken),
        "{o:?}"
    );
    assert_only(&server, JIRA, wrong);
}

#[tokio::test]
async fn captcha_and_scope_refusals_are_not_invalid() {
    let captcha = MockServer::start(|_| {
        Answer::text(403, "text/plain", "")
            .header("x-seraph-loginreason", "AUTHENTICATION_DENIED")
            .header(
                "x-authentication-denied-reason",
                "CAPTCHA_CHALLENGE; login-url=https://id.atlassian.com/login",
            )
    })
    .await;
    let o = probe_at(&captcha.url(), "", TOKEN, EMAIL).await;
    assert_eq!(o.verdict, Verdict::Unreachable, "{o:?}");
    assert!(o.detail.contains("CAPTCHA"), "{}", o.detail);
    assert_only(&captcha, JIRA, TOKEN);

    let scope = MockServer::start(|_| {
        Answer::json(
            403,
            json!({"errorMessages": ["Unauthorized; scope does not match"]}),
        )
    })
    .await;
    let o = probe_at(&scope.url(), "", TOKEN, EMAIL).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Forbidden, Reason::InsufficientScope)
    );
    assert_only(&scope, JIRA, TOKEN);
}

#[tokio::test]
async fn rate_limits_wait_as_asked() {
    let server = MockServer::start(|_| {
        Answer::text(429, "text/plain", "")
            .header("retry-after", "45")
            .header("x-ratelimit-reset", "2023-11-14T22:30Z")
            .header("ratelimit-reason", "jira-burst-based")
    })
    .await;
    let o = probe_at(&server.url(), "", TOKEN, EMAIL).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::RateLimited, Reason::RateLimited)
    );
    assert_eq!(o.retry_after, Some(Duration::from_secs(45)));
    assert_only(&server, JIRA, TOKEN);
}

#[tokio::test]
async fn outages_and_garbage_are_unreachable() {
    let cases: Vec<(&str, Answer)> = vec![
        (
            "503 with Retry-After",
            Answer::text(503, "text/plain", "").header("retry-after", "10"),
        ),
        (
            "502 page",
            Answer::text(502, "text/html", "<html>Bad Gateway</html>"),
        ),
        (
            "sso page",
            Answer::text(200, "text/html", "<html>Log in to continue</html>"),
        ),
        (
            "html 401",
            Answer::text(401, "text/html", "<html>proxy login</html>"),
        ),
        ("no account", Answer::json(200, json!({"displayName": "x"}))),
        (
            "404",
            Answer::json(404, json!({"errorMessages": ["Not found"]})),
        ),
        (
            "redirect",
            Answer::text(302, "text/plain", "").header("location", "http://127.0.0.1:9/login"),
        ),
    ];
    for (what, answer) in cases {
        let server = MockServer::start(move |_| answer.clone()).await;
        let o = probe_at(&server.url(), "", TOKEN, EMAIL).await;
        assert_eq!(o.verdict, Verdict::Unreachable, "{what}: {o:?}");
        assert_only(&server, JIRA, TOKEN);
    }
}

#[test]
fn config_errors_name_the_setting() {
    let err = Config::parse(
        "providers:\n  atl:\n    kind: atlassian\ntokens:\n  - name: t\n    provider: atl\n    secret: {env: T}\n    email: a@b.c\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("providers.atl") && err.contains("url is required"),
        "{err}"
    );
    let err = Config::parse(
        "providers:\n  atl:\n    kind: atlassian\n    url: https://acme.atlassian.net\ntokens:\n  - name: t\n    provider: atl\n    secret: {env: T}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("tokens[0]") && err.contains("email is required"),
        "{err}"
    );
    let err = Config::parse(
        "providers:\n  gh:\n    kind: github\ntokens:\n  - name: t\n    provider: gh\n    secret: {env: T}\n    email: a@b.c\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("email does not apply to a github provider"),
        "{err}"
    );
    let err = Config::parse(
        "providers:\n  atl:\n    kind: atlassian\n    url: https://acme.atlassian.net\n    product: bitbucket\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("bitbucket") || err.contains("product"),
        "{err}"
    );
    let config = Config::parse(
        "providers:\n  atl:\n    kind: atlassian\n    url: https://acme.atlassian.net\ntokens:\n  - name: t\n    provider: atl\n    secret: {env: T}\n    email: mia@example.com\n",
    )
    .unwrap();
    assert_eq!(config.providers["atl"].kind(), "atlassian");
}
