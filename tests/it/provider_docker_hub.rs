//! The `docker_hub` provider against a local server that answers as Docker Hub's API
//! reference documents: `POST /v2/auth/token` (`{"identifier","secret"}` -> `{"access_token"}`,
//! 401 with `{"detail","message"}`), `GET /v2/access-tokens` (`count`, `next`, `results`, the
//! value redacted) and `GET /v2/access-tokens/{uuid}`; 429 with `X-Retry-After`.

use std::time::Duration;

use crate::support;
use crate::support::clock::{NOW, now};
use api_token_exporter::config::Config;
use api_token_exporter::model::{Expiry, ProbeOutcome, Reason, Verdict};
use jiff::Timestamp;
use serde_json::{Value, json};
use support::daemon::write;
use support::{Answer, MockServer, SecretFiles, probe_once};

const PAT: &str = "dckr_pat_canaryDockerHubPat0123456789ab";
const OAT: &str = "dckr_oat_canaryDockerHubOat0123456789ab";
/// The bearer Docker Hub mints: it must never show either.
const BEARER: &str = "eyJhbGciOiJSUzI1NiJ9.canaryDockerHubBearer.sig";
const UUID: &str = "b30bbf97-506c-4ecd-aabc-842f3cb484fb";

/// The only calls a probe may make: the exchange, and reads of the token's record.
fn assert_read_only(server: &MockServer, token: &str) {
    for r in server.requests() {
        let path = r.path();
        let ok = (r.method == "POST" && path == "/v2/auth/token")
            || (r.method == "GET"
                && (path == "/v2/access-tokens" || path == format!("/v2/access-tokens/{UUID}")));
        assert!(
            ok,
            "a call outside the allowed list: {} {}",
            r.method, r.uri
        );
        if r.method == "POST" {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(body["identifier"], "deploybot");
            assert_eq!(body["secret"], token);
            assert_eq!(r.header("authorization"), None);
        } else {
            assert_eq!(
                r.header("authorization"),
                Some(format!("Bearer {BEARER}").as_str()),
                "the record is read with the minted bearer, never the token"
            );
        }
    }
    server.assert_safe(&[], token);
}

fn yaml(url: &str, secret: &str, extra: &str) -> String {
    format!(
        "global:\n  probe_timeout: 1s\nproviders:\n  hub:\n    kind: docker_hub\n    url: {url}\ntokens:\n  - name: ci\n    provider: hub\n    secret: {secret}\n    username: deploybot\n{extra}"
    )
}

async fn probe_with(server: &MockServer, token: &str, extra: &str) -> ProbeOutcome {
    let files = SecretFiles::new();
    let o = probe_once(
        &yaml(&server.url(), &files.put("hub", token), extra),
        "ci",
        now(),
    )
    .await;
    support::assert_outcome_hides(&o, token);
    support::assert_outcome_hides(&o, BEARER);
    assert_read_only(server, token);
    o
}

fn minted() -> Answer {
    Answer::json(200, json!({"access_token": BEARER}))
}

fn record(uuid: &str, expires_at: Value) -> Value {
    json!({
        "uuid": uuid, "client_id": "HUB", "creator_ip": "192.0.2.10", "creator_ua": "docker/27.0",
        "created_at": "2023-07-20T12:00:00.000000Z", "last_used": "2023-11-10T08:30:00.000000Z",
        "generated_by": "manual", "is_active": true, "token": "", "token_label": "CI pull",
        "scopes": ["repo:read"], "expires_at": expires_at
    })
}

fn page(results: Vec<Value>, next: Option<String>) -> Answer {
    Answer::json(
        200,
        json!({"count": results.len(), "next": next, "previous": null, "active_count": results.len(), "results": results}),
    )
}

/// A Docker Hub whose exchange answers `auth`, whose list answers `list`, and whose record
/// route answers `one`.
async fn hub(auth: Answer, list: Answer, one: Answer) -> MockServer {
    MockServer::start(move |r| {
        if r.path() == "/v2/auth/token" {
            auth.clone()
        } else if r.path() == "/v2/access-tokens" {
            list.clone()
        } else if r.path().starts_with("/v2/access-tokens/") {
            one.clone()
        } else {
            Answer::json(404, json!({"detail": "Not Found"}))
        }
    })
    .await
}

fn not_found() -> Answer {
    Answer::json(404, json!({"detail": "Not Found"}))
}

fn sent(server: &MockServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.uri))
        .collect()
}

#[tokio::test]
async fn a_single_listed_token_gives_its_expiry_last_use_and_scopes() {
    let s = hub(
        minted(),
        page(
            vec![record(UUID, json!("2024-02-01T00:00:00.000000Z"))],
            None,
        ),
        not_found(),
    )
    .await;
    let o = probe_with(&s, PAT, "").await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(o.facts.subject.as_deref(), Some("deploybot"));
    assert_eq!(o.facts.token_type.as_deref(), Some("personal"));
    assert_eq!(
        o.facts.expiry,
        Expiry::At("2024-02-01T00:00:00Z".parse::<Timestamp>().unwrap())
    );
    assert_eq!(o.facts.scopes, ["repo:read"]);
    assert_eq!(
        o.facts.last_used_at,
        Some("2023-11-10T08:30:00Z".parse().unwrap())
    );
    assert_eq!(o.facts.extra["token_id"], UUID);
    assert_eq!(
        sent(&s),
        ["POST /v2/auth/token", "GET /v2/access-tokens?page_size=100"]
    );
}

#[tokio::test]
async fn key_id_reads_the_token_record_by_uuid() {
    let s = hub(
        minted(),
        not_found(),
        Answer::json(200, record(UUID, Value::Null)),
    )
    .await;
    let o = probe_with(&s, PAT, &format!("    key_id: {UUID}\n")).await;
    assert_eq!(o.verdict, Verdict::Valid);
    // Created without an expiry date: valid indefinitely, as Docker documents.
    assert_eq!(o.facts.expiry, Expiry::Never);
    assert_eq!(
        sent(&s),
        [
            "POST /v2/auth/token".to_string(),
            format!("GET /v2/access-tokens/{UUID}")
        ]
    );
}

#[tokio::test]
async fn several_tokens_without_key_id_disclose_no_expiry_and_say_why() {
    let s = hub(
        minted(),
        page(
            vec![
                record(UUID, json!("2024-02-01T00:00:00Z")),
                record(
                    "0f0e0d0c-0000-4000-8000-000000000001",
                    json!("2024-03-01T00:00:00Z"),
                ),
            ],
            None,
        ),
        not_found(),
    )
    .await;
    let o = probe_with(&s, PAT, "").await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert!(
        o.facts.flags[0].contains("set key_id"),
        "{:?}",
        o.facts.flags
    );
}

#[tokio::test]
async fn the_list_is_followed_by_next_on_the_same_server_only() {
    let s = MockServer::start(|r| match (r.path(), r.uri.query()) {
        ("/v2/auth/token", _) => minted(),
        ("/v2/access-tokens", Some("page_size=100")) => Answer::json(
            200,
            json!({"count": 1, "next": format!("http://{}/v2/access-tokens?page=2&page_size=100", r.header("host").unwrap()),
                   "previous": null, "results": []}),
        ),
        ("/v2/access-tokens", Some("page=2&page_size=100")) => {
            page(vec![record(UUID, json!("2024-02-01T00:00:00Z"))], None)
        }
        _ => not_found(),
    })
    .await;
    let o = probe_with(&s, PAT, "").await;
    assert_eq!(
        o.facts.expiry.timestamp().map(|t| t.as_second() > NOW),
        Some(true)
    );
    assert_eq!(sent(&s).len(), 3);

    let elsewhere = hub(
        minted(),
        page(
            vec![],
            Some("http://127.0.0.1:9/v2/access-tokens?page=2".into()),
        ),
        not_found(),
    )
    .await;
    let o = probe_with(&elsewhere, PAT, "").await;
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert!(o.facts.flags[0].contains("another server"));
    assert_eq!(sent(&elsewhere).len(), 2);
}

#[tokio::test]
async fn a_refused_record_keeps_the_verdict_with_the_expiry_undisclosed() {
    for status in [401, 403] {
        let refusal = Answer::json(
            status,
            json!({"detail": "access denied", "message": "access denied"}),
        );
        let s = hub(minted(), refusal.clone(), refusal).await;
        let o = probe_with(&s, PAT, "").await;
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Valid, Reason::Ok),
            "{status}"
        );
        assert_eq!(o.facts.expiry, Expiry::Undisclosed);
        assert!(
            o.facts.flags[0].contains("cannot manage"),
            "{:?}",
            o.facts.flags
        );
    }
}

#[tokio::test]
async fn an_organization_token_is_checked_without_reading_records() {
    let s = hub(minted(), page(vec![], None), not_found()).await;
    let o = probe_with(&s, OAT, "").await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.token_type.as_deref(), Some("organization"));
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert!(o.facts.flags[0].contains("organization owners"));
    assert_eq!(sent(&s), ["POST /v2/auth/token"]);
}

#[tokio::test]
async fn exchange_refusals_and_limits() {
    let cases: Vec<(Answer, Verdict, Reason, Option<u64>)> = vec![
        (
            Answer::json(
                401,
                json!({"detail": "Incorrect authentication credentials", "message": "Incorrect authentication credentials"}),
            ),
            Verdict::Invalid,
            Reason::UnknownToken,
            None,
        ),
        (
            Answer::json(429, json!({"detail": "Too Many Requests"})).header(
                "x-retry-after",
                &(Timestamp::now().as_second() + 3600).to_string(),
            ),
            Verdict::RateLimited,
            Reason::RateLimited,
            None,
        ),
        (
            Answer::json(429, json!({"detail": "Too Many Requests"})).header("retry-after", "60"),
            Verdict::RateLimited,
            Reason::RateLimited,
            Some(60),
        ),
        (
            Answer::text(502, "text/html", "<html>Bad Gateway</html>"),
            Verdict::Unreachable,
            Reason::Http5xx,
            None,
        ),
        (
            Answer::text(200, "text/html", "<html>Sign in</html>"),
            Verdict::Unreachable,
            Reason::BadResponse,
            None,
        ),
        (
            Answer::json(200, json!({"token": BEARER})),
            Verdict::Unreachable,
            Reason::BadResponse,
            None,
        ),
        (
            Answer::text(301, "text/plain", "").header("location", "http://127.0.0.1:9/login"),
            Verdict::Unreachable,
            Reason::UnexpectedStatus,
            None,
        ),
    ];
    for (answer, verdict, reason, wait) in cases {
        let s = hub(answer, page(vec![], None), not_found()).await;
        let o = probe_with(&s, PAT, "").await;
        assert_eq!((o.verdict, o.reason), (verdict, reason), "{o:?}");
        if let Some(secs) = wait {
            assert_eq!(o.retry_after, Some(Duration::from_secs(secs)));
        }
        assert_eq!(
            sent(&s),
            ["POST /v2/auth/token"],
            "only a valid token's record is read"
        );
    }
}

#[test]
fn wrong_configs_give_clear_errors() {
    let base =
        "providers:\n  hub:\n    kind: docker_hub\ntokens:\n  - name: ci\n    provider: hub\n";
    for (text, says) in [
        (
            format!("{base}    secret: {{env: X}}\n"),
            "username is required",
        ),
        (
            format!("{base}    secret: {{env: X}}\n    username: \"\"\n"),
            "username is required",
        ),
        (format!("{base}    username: u\n"), "secret is required"),
        (
            format!("{base}    secret: {{env: X}}\n    username: u\n    key_id: ../orgs\n"),
            "key_id must be the personal access token's UUID",
        ),
        (
            format!("{base}    secret: {{env: X}}\n    username: u\n    accessor: a\n"),
            "accessor does not apply",
        ),
        (
            "providers:\n  hub:\n    kind: docker_hub\n    url: https://hub.docker.com/?x=1\n"
                .into(),
            "providers.hub: url: the URL must not have a query",
        ),
    ] {
        let err = Config::parse(&text).unwrap_err().to_string();
        assert!(err.contains(says), "{text}\n{err}");
    }
    // username belongs to docker_hub tokens only.
    let err = Config::parse(
        "providers:\n  gh:\n    kind: github\ntokens:\n  - name: t\n    provider: gh\n    secret: {env: X}\n    username: u\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("username does not apply to a github provider"),
        "{err}"
    );
}

/// Neither the token nor the bearer it is exchanged for reaches any output of the daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_no_token_or_bearer_in_any_output() {
    let s = hub(
        minted(),
        page(
            vec![record(UUID, json!("2099-05-20T08:00:00.000000Z"))],
            None,
        ),
        not_found(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let files = SecretFiles::new();
    let config = write(
        dir.path(),
        "config.yml",
        &yaml(&s.url(), &files.put("hub", PAT), ""),
    );
    support::daemon::canary_through_daemon(
        &config,
        "ci",
        &["\"valid\"", "2099-05-20"],
        &[PAT, BEARER, "canaryDockerHubPat", "canaryDockerHubBearer"],
    );
    assert_read_only(&s, PAT);
}
