//! The `terraform` provider against a local server that answers as HCP Terraform's API
//! documents: `GET /api/v2/account/details` (JSON:API, the service user of a team or
//! organization token with its `authenticated-resource`), the `authentication-tokens`
//! records and lists (`expired-at`, `links.next`), 401 with a JSON:API error, and 429 with
//! `X-RateLimit-*`.

use std::time::Duration;

use crate::support;
use crate::support::clock::now;
use api_token_exporter::config::Config;
use api_token_exporter::model::{Expiry, ProbeOutcome, Reason, Verdict};
use jiff::Timestamp;
use serde_json::{Value, json};
use support::daemon::write;
use support::{Answer, MockServer, SecretFiles, probe_once};

const TOKEN: &str = "canaryTfcToken.atlasv1.0123456789abcdefghijklmnopqrstuvwxyz";
const USER: &str = "user-V3R563qtJNcExAkN";
const TEAM: &str = "team-RGhi7xU4NWWmp1MQ";

/// The only calls a probe may make: GETs of the account and of token records.
fn assert_read_only(server: &MockServer) {
    for r in server.requests() {
        let p = r.path();
        let ok = r.method == "GET"
            && (p == "/api/v2/account/details"
                || p == format!("/api/v2/users/{USER}/authentication-tokens")
                || p == format!("/api/v2/teams/{TEAM}/authentication-tokens")
                || p == "/api/v2/organizations/acme/authentication-token"
                || p.starts_with("/api/v2/authentication-tokens/at-"));
        assert!(
            ok,
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
        "global:\n  probe_timeout: 1s\nproviders:\n  tfc:\n    kind: terraform\n    url: {url}\ntokens:\n  - name: deploy\n    provider: tfc\n    secret: {secret}\n{extra}"
    )
}

async fn probe_with(server: &MockServer, extra: &str) -> ProbeOutcome {
    let files = SecretFiles::new();
    let o = probe_once(
        &yaml(&server.url(), &files.put("tfc", TOKEN), extra),
        "deploy",
        now(),
    )
    .await;
    support::assert_outcome_hides(&o, TOKEN);
    assert_read_only(server);
    o
}

fn jsonapi(status: u16, body: Value) -> Answer {
    Answer::text(status, "application/vnd.api+json", &body.to_string())
}

fn details(kind: &str, id: &str) -> Answer {
    let (username, service) = if kind == "users" {
        ("admin", false)
    } else {
        ("api-team_0123456789", true)
    };
    jsonapi(
        200,
        json!({"data": {
            "id": (if kind == "users" { USER } else { "user-svc0123456789" }), "type": "users",
            "attributes": {"username": username, "is-service-account": service,
                           "email": (if service { Value::Null } else { json!("admin@example.com") })},
            "relationships": {
                "authentication-tokens": {"links": {"related": format!("/api/v2/users/{USER}/authentication-tokens")}},
                "authenticated-resource": {"data": {"id": id, "type": kind}, "links": {"related": format!("/api/v2/{kind}/{id}")}}
            },
            "links": {"self": format!("/api/v2/users/{USER}")}
        }}),
    )
    .header("x-ratelimit-limit", "30")
    .header("x-ratelimit-remaining", "29")
    .header("x-ratelimit-reset", "0.033")
}

fn token(id: &str, expired_at: Value) -> Value {
    json!({"id": id, "type": "authentication-tokens",
           "attributes": {"created-at": "2023-11-01T10:12:45.123Z", "last-used-at": "2023-11-13T08:00:00.000Z",
                          "description": "deploy pipeline", "token": null, "expired-at": expired_at},
           "relationships": {"created-by": {"data": {"id": USER, "type": "users"}}}})
}

fn list(records: Vec<Value>, next: Option<String>) -> Answer {
    jsonapi(
        200,
        json!({"data": records, "links": {"self": "x", "first": "x", "prev": null, "next": next, "last": "x"},
               "meta": {"pagination": {"current-page": 1, "page-size": 100, "total-count": 1}}}),
    )
}

fn not_found() -> Answer {
    jsonapi(
        404,
        json!({"errors": [{"status": "404", "title": "not found"}]}),
    )
}

/// An HCP Terraform answering the account details with `me` and every token route with
/// `record` (a single record) or `listed` (a list).
async fn tfc(me: Answer, record: Answer, listed: Answer) -> MockServer {
    MockServer::start(move |r| {
        let p = r.path();
        if p == "/api/v2/account/details" {
            me.clone()
        } else if p.ends_with("/authentication-tokens") {
            listed.clone()
        } else if p.ends_with("/authentication-token")
            || p.starts_with("/api/v2/authentication-tokens/")
        {
            record.clone()
        } else {
            not_found()
        }
    })
    .await
}

fn sent(server: &MockServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .map(|r| r.uri.to_string())
        .collect()
}

#[tokio::test]
async fn a_user_token_with_one_listed_token_gets_its_expiry() {
    let s = tfc(
        details("users", USER),
        not_found(),
        list(
            vec![token(
                "at-QmATJea6aWj1xR2t",
                json!("2024-02-01T00:00:00.000Z"),
            )],
            None,
        ),
    )
    .await;
    let o = probe_with(&s, "").await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(o.facts.subject.as_deref(), Some("admin"));
    assert_eq!(o.facts.token_type.as_deref(), Some("user"));
    assert_eq!(
        o.facts.expiry,
        Expiry::At("2024-02-01T00:00:00Z".parse::<Timestamp>().unwrap())
    );
    assert_eq!(
        o.facts.last_used_at,
        Some("2023-11-13T08:00:00Z".parse().unwrap())
    );
    assert_eq!(o.facts.extra["token_id"], "at-QmATJea6aWj1xR2t");
    assert_eq!(o.rate_limit.unwrap().remaining, Some(29.0));
    assert_eq!(
        sent(&s),
        [
            "/api/v2/account/details".to_string(),
            format!("/api/v2/users/{USER}/authentication-tokens?page%5Bsize%5D=100")
        ]
    );
}

#[tokio::test]
async fn key_id_reads_one_record_and_null_never_expires() {
    let s = tfc(
        details("teams", TEAM),
        jsonapi(
            200,
            json!({"data": token("at-ntv3HbhJqvFzamGK", Value::Null)}),
        ),
        not_found(),
    )
    .await;
    let o = probe_with(&s, "    key_id: at-ntv3HbhJqvFzamGK\n").await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.token_type.as_deref(), Some("team"));
    assert_eq!(o.facts.expiry, Expiry::Never);
    assert_eq!(
        sent(&s),
        [
            "/api/v2/account/details",
            "/api/v2/authentication-tokens/at-ntv3HbhJqvFzamGK"
        ]
    );
}

#[tokio::test]
async fn an_organization_token_reads_the_organizations_token() {
    let s = tfc(
        details("organizations", "acme"),
        jsonapi(
            200,
            json!({"data": token("at-org0123456789", json!("2024-06-30T00:00:00Z"))}),
        ),
        not_found(),
    )
    .await;
    let o = probe_with(&s, "").await;
    assert_eq!(o.facts.token_type.as_deref(), Some("organization"));
    assert!(o.facts.expiry.timestamp().is_some());
    assert_eq!(
        sent(&s),
        [
            "/api/v2/account/details",
            "/api/v2/organizations/acme/authentication-token"
        ]
    );
}

#[tokio::test]
async fn team_tokens_are_paged_and_several_need_key_id() {
    let s = MockServer::start(|r| {
        let host = r.header("host").unwrap().to_string();
        match (r.path(), r.uri.query()) {
            ("/api/v2/account/details", _) => details("teams", TEAM),
            (p, Some(q)) if p.ends_with("/authentication-tokens") && q.contains("number%5D=2") => {
                list(vec![token("at-b", json!("2024-03-01T00:00:00Z"))], None)
            }
            (p, _) if p.ends_with("/authentication-tokens") => list(
                vec![token("at-a", json!("2024-02-01T00:00:00Z"))],
                Some(format!("http://{host}/api/v2/teams/{TEAM}/authentication-tokens?page%5Bnumber%5D=2&page%5Bsize%5D=100")),
            ),
            _ => not_found(),
        }
    })
    .await;
    let o = probe_with(&s, "").await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert!(
        o.facts.flags[0].contains("has 2 tokens"),
        "{:?}",
        o.facts.flags
    );
    assert_eq!(sent(&s).len(), 3);
}

#[tokio::test]
async fn a_refused_record_keeps_the_verdict() {
    for status in [401, 403, 404] {
        let refusal = jsonapi(
            status,
            json!({"errors": [{"status": status.to_string(), "title": "forbidden"}]}),
        );
        let s = tfc(details("users", USER), refusal.clone(), refusal).await;
        let o = probe_with(&s, "").await;
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Valid, Reason::Ok),
            "{status}"
        );
        assert_eq!(o.facts.expiry, Expiry::Undisclosed);
        assert!(
            o.facts.flags[0].contains("does not let this token"),
            "{:?}",
            o.facts.flags
        );
    }
}

#[tokio::test]
async fn token_details_false_makes_one_call() {
    let s = tfc(details("users", USER), not_found(), list(vec![], None)).await;
    let o = probe_with(&s, "").await;
    assert!(o.facts.flags[0].contains("has 0 tokens"));
    let files = SecretFiles::new();
    let text = yaml(&s.url(), &files.put("tfc", TOKEN), "").replace(
        "kind: terraform\n",
        "kind: terraform\n    token_details: false\n",
    );
    let before = s.requests().len();
    let o = probe_once(&text, "deploy", now()).await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(s.requests().len(), before + 1);
}

#[tokio::test]
async fn account_refusals_and_limits() {
    let cases: Vec<(Answer, Verdict, Reason, Option<u64>)> = vec![
        (
            jsonapi(
                401,
                json!({"errors": [{"status": "401", "title": "unauthorized"}]}),
            ),
            Verdict::Invalid,
            Reason::UnknownToken,
            None,
        ),
        (
            jsonapi(
                429,
                json!({"errors": [{"status": "429", "title": "too many requests"}]}),
            )
            .header("x-ratelimit-limit", "30")
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset", "0.458"),
            Verdict::RateLimited,
            Reason::RateLimited,
            Some(1),
        ),
        (
            jsonapi(429, json!({"errors": [{"status": "429"}]})).header("retry-after", "12"),
            Verdict::RateLimited,
            Reason::RateLimited,
            Some(12),
        ),
        (
            Answer::text(503, "text/html", "<html>maintenance</html>"),
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
            Answer::text(302, "text/plain", "").header("location", "http://127.0.0.1:9/session"),
            Verdict::Unreachable,
            Reason::UnexpectedStatus,
            None,
        ),
    ];
    for (answer, verdict, reason, wait) in cases {
        let s = tfc(answer, not_found(), list(vec![], None)).await;
        let o = probe_with(&s, "").await;
        assert_eq!((o.verdict, o.reason), (verdict, reason), "{o:?}");
        if let Some(secs) = wait {
            assert_eq!(o.retry_after, Some(Duration::from_secs(secs)));
        }
        assert_eq!(sent(&s), ["/api/v2/account/details"]);
    }
}

#[test]
fn wrong_configs_give_clear_errors() {
    let base = "providers:\n  tfc:\n    kind: terraform\ntokens:\n  - name: t\n    provider: tfc\n";
    for (text, says) in [
        (
            format!("{base}    secret: {{env: X}}\n    key_id: ../x\n"),
            "key_id must be the token's id",
        ),
        (
            format!("{base}    secret: {{env: X}}\n    username: u\n"),
            "username does not apply to a terraform provider",
        ),
        (base.to_string(), "secret is required"),
        (
            "providers:\n  tfc:\n    kind: terraform\n    url: app.terraform.io\n".into(),
            "providers.tfc: url: invalid URL",
        ),
        (
            "providers:\n  tfc:\n    kind: terraform\n    organization: acme\n".into(),
            "organization",
        ),
    ] {
        let err = Config::parse(&text).unwrap_err().to_string();
        assert!(err.contains(says), "{text}\n{err}");
    }
}

/// The token reaches no output of the daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_the_token_reaches_no_output() {
    let s = tfc(
        details("users", USER),
        not_found(),
        list(
            vec![token(
                "at-QmATJea6aWj1xR2t",
                json!("2099-05-20T08:00:00.000Z"),
            )],
            None,
        ),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let files = SecretFiles::new();
    let config = write(
        dir.path(),
        "config.yml",
        &yaml(&s.url(), &files.put("tfc", TOKEN), ""),
    );
    support::daemon::canary_through_daemon(
        &config,
        "deploy",
        &["\"valid\"", "2099-05-20"],
        &[TOKEN, "canaryTfcToken"],
    );
    assert_read_only(&s);
}
