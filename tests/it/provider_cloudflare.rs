//! The `cloudflare` provider against a local server that answers as Cloudflare's
//! `tokens/verify` endpoints do.

use std::time::Duration;

use crate::support;
use crate::support::clock::{NOW, now};
use api_token_exporter::config::Config;
use api_token_exporter::model::{Expiry, ProbeOutcome, Reason, Verdict};
use serde_json::{Value, json};
use support::{Answer, MockServer, SecretFiles, probe_once};

const TOKEN: &str = "canaryCloudflareApiToken0123456789abcdefg";
const ACCOUNT: &str = "023e105f4ecef8ad9ca31a8372d0c353";
const USER_PATH: &str = "/client/v4/user/tokens/verify";
const ACCOUNT_PATH: &str = "/client/v4/accounts/023e105f4ecef8ad9ca31a8372d0c353/tokens/verify";

/// Token management calls (create, update, roll, delete): a probe only ever reads.
const NEVER_CALL: &[(&str, &str)] = &[
    ("POST", "/client/v4/user/tokens"),
    ("PUT", "/client/v4/user/tokens"),
    ("PATCH", "/client/v4/user/tokens"),
    ("DELETE", "/client/v4/user/tokens"),
    ("POST", "/client/v4/accounts"),
    ("PUT", "/client/v4/accounts"),
    ("PATCH", "/client/v4/accounts"),
    ("DELETE", "/client/v4/accounts"),
];

fn yaml(url: &str, account_id: Option<&str>, secret: &str) -> String {
    let account = account_id
        .map(|id| format!("    account_id: \"{id}\"\n"))
        .unwrap_or_default();
    format!(
        "global:\n  probe_timeout: 1s\nproviders:\n  cf:\n    kind: cloudflare\n    url: {url}\n{account}tokens:\n  - name: dns\n    provider: cf\n    secret: {secret}\n"
    )
}

async fn probe(server: &MockServer, account_id: Option<&str>) -> ProbeOutcome {
    let secrets = SecretFiles::new();
    let secret = secrets.put("cf", TOKEN);
    probe_once(&yaml(&server.url(), account_id, &secret), "dns", now()).await
}

/// The paths called, in order, after checking each call is a plain authenticated GET.
fn sent(server: &MockServer) -> Vec<String> {
    server.assert_safe(NEVER_CALL, TOKEN);
    server
        .requests()
        .iter()
        .map(|r| {
            assert_eq!(r.method, "GET");
            assert_eq!(r.uri.query(), None);
            assert_eq!(
                r.header("authorization"),
                Some(format!("Bearer {TOKEN}").as_str())
            );
            assert!(r.body.is_empty());
            r.path().to_string()
        })
        .collect()
}

fn verified(result: Value) -> Answer {
    Answer::json(
        200,
        json!({
            "success": true,
            "errors": [],
            "messages": [{"code": 10000, "message": "This API Token is valid and active", "type": null}],
            "result": result
        }),
    )
}

fn invalid_1000() -> Answer {
    Answer::json(
        401,
        json!({
            "success": false,
            "errors": [{"code": 1000, "message": "Invalid API Token"}],
            "messages": [],
            "result": null
        }),
    )
}

#[tokio::test]
async fn active_user_token_with_dates_and_rate_headers() {
    let server = MockServer::start(|r| {
        if r.path() != USER_PATH {
            return Answer::text(404, "text/plain", "");
        }
        verified(json!({
            "id": "ed17574386854bf78a67040be0a770b0",
            "status": "active",
            "not_before": "2023-11-01T00:00:00Z",
            "expires_on": "2024-02-01T00:00:00Z"
        }))
        .header("ratelimit", "\"default\";r=1187;t=212")
        .header("ratelimit-policy", "\"default\";q=1200;w=300")
    })
    .await;
    let o = probe(&server, None).await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(
        o.facts.expiry,
        Expiry::At("2024-02-01T00:00:00Z".parse().unwrap())
    );
    assert_eq!(
        o.facts.not_before,
        Some("2023-11-01T00:00:00Z".parse().unwrap())
    );
    assert_eq!(
        o.facts.extra["token_id"],
        "ed17574386854bf78a67040be0a770b0"
    );
    assert_eq!(o.facts.extra["owner"], "user");
    let rate = o.rate_limit.expect("rate headers are read");
    assert_eq!(rate.remaining, Some(1187.0));
    assert_eq!(rate.limit, Some(1200.0));
    assert_eq!(rate.reset_at.unwrap().as_second(), NOW + 212);
    assert_eq!(sent(&server), [USER_PATH]);
}

#[tokio::test]
async fn token_without_expiry_never_expires() {
    let server = MockServer::start(|_| verified(json!({"id": "abc", "status": "active"}))).await;
    let o = probe(&server, None).await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::Never);
}

#[tokio::test]
async fn disabled_and_expired_tokens_are_invalid() {
    for (status, reason) in [("disabled", Reason::Disabled), ("expired", Reason::Expired)] {
        let server = MockServer::start(move |_| {
            verified(json!({"id": "abc", "status": status, "expires_on": "2023-10-01T00:00:00Z"}))
        })
        .await;
        let o = probe(&server, None).await;
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Invalid, reason),
            "{status}"
        );
        assert_eq!(
            o.facts.expiry,
            Expiry::At("2023-10-01T00:00:00Z".parse().unwrap())
        );
        assert_eq!(sent(&server), [USER_PATH]);
    }
}

#[tokio::test]
async fn error_1000_without_account_id_is_invalid() {
    let server = MockServer::start(|_| invalid_1000()).await;
    let o = probe(&server, None).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::UnknownToken)
    );
    assert!(o.detail.contains("account_id"), "{}", o.detail);
    assert_eq!(sent(&server), [USER_PATH]);
}

#[tokio::test]
async fn account_owned_token_is_verified_at_the_account_endpoint() {
    // The user endpoint answers 1000 for an account-owned token, as Cloudflare does.
    let server = MockServer::start(|r| match r.path() {
        ACCOUNT_PATH => verified(json!({"id": "acct-token", "status": "active"})),
        _ => invalid_1000(),
    })
    .await;
    let o = probe(&server, Some(ACCOUNT)).await;
    assert_eq!(o.verdict, Verdict::Valid, "{o:?}");
    assert_eq!(o.facts.extra["owner"], "account");
    assert_eq!(o.facts.extra["token_id"], "acct-token");
    assert_eq!(sent(&server), [ACCOUNT_PATH]);
}

#[tokio::test]
async fn user_owned_token_under_an_account_provider_is_valid() {
    let server = MockServer::start(|r| match r.path() {
        USER_PATH => verified(json!({"id": "user-token", "status": "active"})),
        _ => invalid_1000(),
    })
    .await;
    let o = probe(&server, Some(ACCOUNT)).await;
    assert_eq!(o.verdict, Verdict::Valid, "{o:?}");
    assert_eq!(o.facts.extra["owner"], "user");
    assert_eq!(sent(&server), [ACCOUNT_PATH, USER_PATH]);
}

#[tokio::test]
async fn invalid_only_when_the_account_endpoint_rejects_too() {
    let server = MockServer::start(|_| invalid_1000()).await;
    let o = probe(&server, Some(ACCOUNT)).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::UnknownToken)
    );
    assert_eq!(sent(&server), [ACCOUNT_PATH, USER_PATH]);
}

#[tokio::test]
async fn account_rejection_with_user_endpoint_down_is_not_invalid() {
    let server = MockServer::start(|r| match r.path() {
        USER_PATH => Answer::text(503, "text/html", "<html>503</html>"),
        _ => invalid_1000(),
    })
    .await;
    let o = probe(&server, Some(ACCOUNT)).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::Http5xx)
    );
}

#[tokio::test]
async fn account_endpoint_down_does_not_fall_back() {
    let server = MockServer::start(|r| match r.path() {
        USER_PATH => invalid_1000(),
        _ => Answer::text(502, "text/html", "<html>bad gateway</html>"),
    })
    .await;
    let o = probe(&server, Some(ACCOUNT)).await;
    assert_eq!(o.verdict, Verdict::Unreachable);
    assert_eq!(sent(&server), [ACCOUNT_PATH]);
}

#[tokio::test]
async fn malformed_authorization_header_is_malformed() {
    let server = MockServer::start(|_| {
        Answer::json(
            400,
            json!({
                "success": false,
                "errors": [{"code": 6003, "message": "Invalid request headers",
                            "error_chain": [{"code": 6111, "message": "Invalid format for Authorization header"}]}],
                "messages": [],
                "result": null
            }),
        )
    })
    .await;
    let o = probe(&server, None).await;
    assert_eq!((o.verdict, o.reason), (Verdict::Invalid, Reason::Malformed));
}

#[tokio::test]
async fn rate_limited_honours_retry_after_or_waits_five_minutes() {
    let server = MockServer::start(|_| {
        Answer::json(
            429,
            json!({"success": false, "errors": [{"code": 10000, "message": "Rate limited"}]}),
        )
        .header("retry-after", "61")
    })
    .await;
    let o = probe(&server, Some(ACCOUNT)).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::RateLimited, Reason::RateLimited)
    );
    assert_eq!(o.retry_after, Some(Duration::from_secs(61)));
    // A rate-limited account endpoint is not a rejection: no second call.
    assert_eq!(sent(&server), [ACCOUNT_PATH]);

    let server = MockServer::start(|_| Answer::text(429, "text/plain", "")).await;
    let o = probe(&server, None).await;
    assert_eq!(o.verdict, Verdict::RateLimited);
    assert_eq!(o.retry_after, Some(Duration::from_secs(300)));
}

#[tokio::test]
async fn garbage_and_server_errors_are_unreachable() {
    let cases: Vec<(&str, Answer)> = vec![
        (
            "challenge page",
            Answer::text(
                200,
                "text/html",
                "<!DOCTYPE html><title>Just a moment...</title>",
            ),
        ),
        (
            "waf block",
            Answer::text(
                403,
                "text/html",
                "<html>Attention Required! | Cloudflare</html>",
            ),
        ),
        ("empty", Answer::text(200, "application/json", "")),
        (
            "no success",
            Answer::json(200, json!({"result": {"status": "active"}})),
        ),
        (
            "no result",
            Answer::json(200, json!({"success": true, "result": null})),
        ),
        (
            "unknown status",
            verified(json!({"id": "x", "status": "suspended"})),
        ),
        (
            "bad date",
            verified(json!({"id": "x", "status": "active", "expires_on": "next week"})),
        ),
        (
            "500",
            Answer::json(500, json!({"success": false, "errors": []})),
        ),
        ("502", Answer::text(502, "text/html", "<html>502</html>")),
        (
            "redirect",
            Answer::text(301, "text/plain", "").header("location", "http://127.0.0.1:9/"),
        ),
    ];
    for (what, answer) in cases {
        let server = MockServer::start(move |_| answer.clone()).await;
        let o = probe(&server, None).await;
        assert_eq!(o.verdict, Verdict::Unreachable, "{what}: {o:?}");
        assert_eq!(sent(&server).len(), 1);
    }
}

#[tokio::test]
async fn timeout_is_unreachable() {
    let server = MockServer::start(|_| {
        verified(json!({"id": "x", "status": "active"})).delayed(Duration::from_secs(3))
    })
    .await;
    let o = probe(&server, None).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::Timeout)
    );
}

#[tokio::test]
async fn connection_refused_is_unreachable() {
    // A port nothing listens on.
    let port = support::daemon::free_port();
    let secrets = SecretFiles::new();
    let secret = secrets.put("cf", TOKEN);
    let o = probe_once(
        &yaml(&format!("http://127.0.0.1:{port}"), None, &secret),
        "dns",
        now(),
    )
    .await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::Connect)
    );
}

#[test]
fn minimal_config_loads() {
    let config = Config::parse(
        "providers:\n  cf:\n    kind: cloudflare\ntokens:\n  - name: dns\n    provider: cf\n    secret: {env: CF_API_TOKEN}\n",
    )
    .unwrap();
    assert_eq!(config.providers["cf"].kind(), "cloudflare");
}

#[test]
fn wrong_configs_give_clear_errors() {
    let err = Config::parse("providers:\n  cf:\n    kind: cloudflare\n    account: abc\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `account`"), "{err}");
    let err =
        Config::parse("providers:\n  cf:\n    kind: cloudflare\n    account_id: \"a/../b\"\n")
            .unwrap_err()
            .to_string();
    assert!(
        err.contains("providers.cf") && err.contains("account_id"),
        "{err}"
    );
    let err = Config::parse(
        "providers:\n  cf:\n    kind: cloudflare\ntokens:\n  - name: dns\n    provider: cf\n    secret: {env: X}\n    token_type_hint: access_token\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("token_type_hint does not apply to a cloudflare provider"),
        "{err}"
    );
}
