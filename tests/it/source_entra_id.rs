//! The `entra_id` source against a local server answering as the Microsoft identity
//! platform's token endpoint (client credentials, its AADSTS error JSON) and Microsoft Graph
//! document them (learn.microsoft.com/graph/api/application-list,
//! serviceprincipal-list, graph/paging, graph/throttling, graph/errors): the
//! `application` collection with `passwordCredentials` and `keyCredentials`, opaque
//! `@odata.nextLink` links with a `$skiptoken`, `$expand=owners`, Graph's error body
//! (`{"error": {"code", "message", "innerError"}}`), 429 and 503 with `Retry-After`.
//! Every request is checked: the token request (POST) and GETs of the two collections only,
//! the credentials never in a URL.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support;
use api_token_exporter::config::Config;
use api_token_exporter::model::Verdict;
use api_token_exporter::sources::FailReason;
use support::daemon::{Daemon, write};
use support::listing::{Listed, assert_lists_nothing, each_failure, list};
use support::{Answer, MockServer, Recorded, SecretFiles};

pub(crate) const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub(crate) const CLIENT: &str = "0c5e3d9a-4b1f-4a6e-9d2c-7f8e1a2b3c4d";
/// The listing app's client secret.
pub(crate) const SECRET: &str = "Ab1Q~LISTCANARYentraListingSecret.0123456";
/// The access token the token endpoint mints for it.
const ACCESS: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.ACCESSCANARYminted.c2ln";

fn token_path() -> String {
    format!("/{TENANT}/oauth2/v2.0/token")
}

fn form(r: &Recorded) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(&r.body).into_owned().collect()
}

fn query(r: &Recorded) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(r.uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// Graph's error body.
fn graph_error(status: u16, code: &str, message: &str) -> Answer {
    Answer::json(
        status,
        json!({"error": {"code": code, "message": message,
               "innerError": {"date": "2026-12-05T08:00:00", "request-id": "r-1", "client-request-id": "c-1"}}}),
    )
}

fn days(n: i64) -> String {
    (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * n)).to_string()
}

fn password(key_id: &str, name: &str, start: &str, end: &str) -> Value {
    json!({"customKeyIdentifier": null, "displayName": name, "endDateTime": end, "hint": "Q7~",
           "keyId": key_id, "secretText": null, "startDateTime": start})
}

fn certificate(key_id: &str, name: &str, end: &str) -> Value {
    json!({"customKeyIdentifier": "52A4BB9D", "displayName": name, "endDateTime": end, "key": null,
           "keyId": key_id, "startDateTime": days(-300), "type": "AsymmetricX509Cert", "usage": "Verify"})
}

fn key(n: u32) -> String {
    format!("{n:08x}-1111-4111-8111-111111111111")
}

/// The tenant's applications, 5 of them: an expiring secret, an expired one, a certificate.
fn applications() -> Vec<Value> {
    vec![
        json!({"id": "o1", "appId": "a0000000-0000-0000-0000-000000000001", "displayName": "billing",
               "passwordCredentials": [password(&key(1), "ci", &days(-100), &days(10)),
                                       password(&key(2), "old", &days(-800), &days(-30))],
               "keyCredentials": []}),
        json!({"id": "o2", "appId": "a0000000-0000-0000-0000-000000000002", "displayName": "deploy",
               "passwordCredentials": [], "keyCredentials": [certificate(&key(3), "CN=deploy", &days(200))]}),
        json!({"id": "o3", "appId": "a0000000-0000-0000-0000-000000000003", "displayName": "no-creds",
               "passwordCredentials": [], "keyCredentials": []}),
        json!({"id": "o4", "appId": "a0000000-0000-0000-0000-000000000004", "displayName": "reports",
               "passwordCredentials": [password(&key(4), "nightly", &days(-10), &days(300))], "keyCredentials": []}),
        json!({"id": "o5", "appId": "a0000000-0000-0000-0000-000000000005", "displayName": "crm",
               "passwordCredentials": [password(&key(5), "sync", &days(-10), &days(400))], "keyCredentials": null}),
    ]
}

fn owners(app: &str) -> Value {
    json!([{"@odata.type": "#microsoft.graph.user", "id": format!("u-{app}"),
            "displayName": "Owner", "userPrincipalName": format!("owner-of-{app}@contoso.com")}])
}

pub(crate) struct Mock {
    pub(crate) server: MockServer,
    mode: Arc<AtomicU8>,
}

/// Modes: 0 healthy, 1 a 503 on page 2, 2 a Graph 401, 3 a 403, 4 a 429, 5 an empty tenant,
/// 6 garbage on page 2, 7 the token endpoint refuses the secret, 8 a next link elsewhere.
/// Applications come 2 a page whatever `$top` asks, as Graph may.
pub(crate) async fn mock() -> Mock {
    let mode = Arc::new(AtomicU8::new(0));
    let m = mode.clone();
    let server = MockServer::start(move |r| {
        let mode = m.load(Ordering::SeqCst);
        let base = format!("http://{}", r.header("host").unwrap_or("127.0.0.1"));
        if r.method == "POST" && r.path() == token_path() {
            let f = form(r);
            let secret_ok = f.get("client_secret").map(String::as_str) == Some(SECRET);
            let assertion_ok = f.get("client_assertion_type").map(String::as_str)
                == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                && f.get("client_assertion").is_some_and(|a| a.split('.').count() == 3);
            if mode == 7
                || f.get("client_id").map(String::as_str) != Some(CLIENT)
                || f.get("grant_type").map(String::as_str) != Some("client_credentials")
                || f.get("scope").map(String::as_str) != Some("https://graph.microsoft.com/.default")
                || !(secret_ok || assertion_ok)
            {
                return Answer::json(
                    401,
                    json!({"error": "invalid_client",
                           "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: t\r\nCorrelation ID: c\r\nTimestamp: 2026-12-05 08:00:00Z",
                           "error_codes": [7000215], "timestamp": "2026-12-05 08:00:00Z",
                           "trace_id": "t", "correlation_id": "c",
                           "error_uri": "https://login.microsoftonline.com/error?code=7000215"}),
                );
            }
            return Answer::json(
                200,
                json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": ACCESS}),
            );
        }
        if r.header("authorization") != Some(&format!("Bearer {ACCESS}")) || mode == 2 {
            return graph_error(401, "InvalidAuthenticationToken", "Access token is empty.");
        }
        match mode {
            3 => {
                return graph_error(
                    403,
                    "Authorization_RequestDenied",
                    "Insufficient privileges to complete the operation.",
                );
            }
            4 => {
                return graph_error(429, "TooManyRequests", "Too many requests.")
                    .header("retry-after", "10");
            }
            _ => {}
        }
        let q = query(r);
        let expand = q.get("$expand").map(String::as_str) == Some("owners");
        let (collection, items) = match r.path() {
            "/v1.0/applications" if mode == 5 => ("applications", vec![]),
            "/v1.0/applications" => ("applications", applications()),
            "/v1.0/servicePrincipals" if mode == 5 => ("servicePrincipals", vec![]),
            "/v1.0/servicePrincipals" => (
                "servicePrincipals",
                vec![json!({"id": "s1", "appId": "a0000000-0000-0000-0000-000000000009",
                            "displayName": "saml-app",
                            "passwordCredentials": [],
                            "keyCredentials": [certificate(&key(9), "CN=saml", &days(60))]})],
            ),
            _ => return graph_error(404, "Request_ResourceNotFound", "Resource not found."),
        };
        let page: usize = q
            .get("$skiptoken")
            .and_then(|t| t.strip_prefix("RFNwdAIAAQAAA"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        if page == 2 && mode == 1 {
            return graph_error(503, "serviceNotAvailable", "Service unavailable.")
                .header("retry-after", "5");
        }
        if page == 2 && mode == 6 {
            return Answer::text(200, "text/html", "<html>maintenance</html>");
        }
        let slice: Vec<Value> = items
            .iter()
            .skip((page - 1) * 2)
            .take(2)
            .map(|a| {
                let mut a = a.clone();
                if expand {
                    a["owners"] = owners(a["displayName"].as_str().unwrap_or(""));
                }
                a
            })
            .collect();
        let mut body = json!({
            "@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#{collection}(id,appId,displayName,passwordCredentials,keyCredentials)"),
            "value": slice,
        });
        if page * 2 < items.len() {
            let origin = if mode == 8 { "http://graph.example.net".to_string() } else { base };
            let expand_part = if expand { "&$expand=owners&$top=100" } else { "&$top=999" };
            body["@odata.nextLink"] = json!(format!(
                "{origin}/v1.0/{collection}?$select=id,appId,displayName,passwordCredentials,keyCredentials{expand_part}&$skiptoken=RFNwdAIAAQAAA{}",
                page + 1
            ));
        }
        Answer::json(200, body)
    })
    .await;
    Mock { server, mode }
}

fn yaml(url: &str, files: &SecretFiles, extra: &str, credential: &str) -> String {
    format!(
        "global:\n  probe_timeout: 5s\nproviders:\n  dates: {{kind: static}}\n\
         sources:\n  - name: entra\n    kind: entra_id\n    url: {url}\n    graph_url: {url}\n    tenant_id: {TENANT}\n    client_id: {CLIENT}\n    provider: dates\n    credential: {}\n{extra}",
        files.put("cred", credential)
    )
}

/// Only the token request and reads of the two collections; no credential in a URL.
pub(crate) fn assert_only_documented_calls(server: &MockServer) {
    for r in server.requests() {
        let p = r.path();
        let allowed = (r.method == "POST" && p == token_path())
            || (r.method == "GET" && (p == "/v1.0/applications" || p == "/v1.0/servicePrincipals"));
        assert!(allowed, "a call outside the allowed list: {} {p}", r.method);
        assert!(
            !r.uri.to_string().contains("CANARY"),
            "a credential in a URL"
        );
        if r.method == "GET" {
            assert_eq!(
                query(&r).get("$select").map(String::as_str),
                Some("id,appId,displayName,passwordCredentials,keyCredentials")
            );
        }
    }
}

#[tokio::test]
async fn every_page_of_applications_and_service_principals_is_listed_with_owners_and_dates() {
    let m = mock().await;
    let files = SecretFiles::new();
    let y = yaml(
        &m.server.url(),
        &files,
        "    service_principals: true\n    read_owners: true\n",
        SECRET,
    );
    let listing = list(&y).await.unwrap();
    let names: Vec<&str> = listing.tokens.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "billing/ci-00000001",
            "billing/old-00000002",
            "crm/sync-00000005",
            "deploy/CN=deploy-00000003",
            "reports/nightly-00000004",
            "sp:saml-app/CN=saml-00000009",
        ]
    );
    let by = |n: &str| listing.tokens.iter().find(|d| d.name == n).unwrap();
    assert_eq!(by("billing/old-00000002").state.as_deref(), Some("expired"));
    assert_eq!(by("billing/ci-00000001").state.as_deref(), Some("active"));
    assert_eq!(
        by("crm/sync-00000005").owner.as_deref(),
        Some("owner-of-crm@contoso.com")
    );
    // Pages 1 to 3 of the applications: the next links were followed, as given.
    let tokens: Vec<Option<String>> = m
        .server
        .requests()
        .iter()
        .filter(|r| r.path() == "/v1.0/applications")
        .map(|r| query(r).get("$skiptoken").cloned())
        .collect();
    assert_eq!(
        tokens,
        [
            None,
            Some("RFNwdAIAAQAAA2".into()),
            Some("RFNwdAIAAQAAA3".into())
        ]
    );
    assert!(
        m.server
            .requests()
            .iter()
            .filter(|r| r.method == "GET")
            .all(|r| query(r).get("$expand").map(String::as_str) == Some("owners"))
    );
    assert_only_documented_calls(&m.server);

    // The listed dates become the token's facts through the static entry.
    let listed = Listed::new(&y, "entra", listing, "dates");
    let ci = listed.composed.token("entra/billing/ci-00000001").unwrap();
    assert_eq!(
        ci.labels.get("owner").map(String::as_str),
        Some("owner-of-billing@contoso.com")
    );
    let run = listed.probe(ci).await;
    assert_eq!(run.outcome.verdict, Verdict::Valid, "{:?}", run.outcome);
    let expires = run.outcome.facts.expiry.timestamp().unwrap();
    assert_eq!(expires.to_string(), ci.params.expires_at.clone().unwrap());
    let old = listed.composed.token("entra/billing/old-00000002").unwrap();
    let run = listed.probe(old).await;
    assert_eq!(run.outcome.verdict, Verdict::Invalid, "{:?}", run.outcome);
}

#[tokio::test]
async fn without_service_principals_or_owners_only_applications_are_read() {
    let m = mock().await;
    let files = SecretFiles::new();
    let listing = list(&yaml(&m.server.url(), &files, "", SECRET))
        .await
        .unwrap();
    assert_eq!(listing.tokens.len(), 5);
    assert!(listing.tokens.iter().all(|d| d.owner.is_none()));
    for r in m.server.requests().iter().filter(|r| r.method == "GET") {
        assert_eq!(r.path(), "/v1.0/applications");
        assert!(!query(r).contains_key("$expand"));
    }
    // The secret went in the token request's body, the access token in a header.
    let post = m
        .server
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    assert_eq!(
        form(&post).get("client_secret").map(String::as_str),
        Some(SECRET)
    );
    assert_only_documented_calls(&m.server);
}

#[tokio::test]
async fn a_failure_on_any_call_fails_the_listing_and_an_empty_tenant_lists_nothing() {
    let m = mock().await;
    let files = SecretFiles::new();
    let y = yaml(
        &m.server.url(),
        &files,
        "    service_principals: true\n",
        SECRET,
    );
    let cases = [
        (1, FailReason::Unreachable, "HTTP 503"),
        (2, FailReason::Unauthorized, "HTTP 401"),
        (3, FailReason::Forbidden, "Application.Read.All"),
        (4, FailReason::RateLimited, "retry after 10 s"),
        (6, FailReason::BadResponse, "applications"),
        (7, FailReason::Unauthorized, "AADSTS7000215"),
        (8, FailReason::BadResponse, "another server"),
    ];
    let reasons: Vec<_> = cases.iter().map(|&(mode, want, _)| (mode, want)).collect();
    let errors = each_failure(&m.mode, &y, &reasons).await;
    for ((mode, e), (_, _, says)) in errors.into_iter().zip(cases) {
        assert!(e.detail.contains(says), "mode {mode}: {e:?}");
        let wait = match mode {
            1 => Some(Duration::from_secs(5)),
            4 => Some(Duration::from_secs(10)),
            _ => None,
        };
        assert_eq!(e.retry_after, wait, "mode {mode}: Graph's Retry-After");
    }
    // A next link elsewhere is refused before any call (a call there would be unreachable).
    assert_lists_nothing(&m.mode, 5, &y).await;
    assert_only_documented_calls(&m.server);
}

#[tokio::test]
async fn a_certificate_credential_signs_a_client_assertion_instead_of_a_secret() {
    let m = mock().await;
    let files = SecretFiles::new();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["lister".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let pem = format!("{}{}", key.serialize_pem(), cert.pem());
    let listing = list(&yaml(&m.server.url(), &files, "", &pem))
        .await
        .unwrap();
    assert_eq!(listing.tokens.len(), 5);
    let post = m
        .server
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    let f = form(&post);
    assert!(!f.contains_key("client_secret"));
    assert!(f.contains_key("client_assertion"));
    assert!(!post.body_text().contains("PRIVATE KEY"));
    assert_only_documented_calls(&m.server);
}

#[test]
fn entra_source_settings_are_checked_where_they_are_written() {
    let err = |y: &str| Config::parse(y).unwrap_err().to_string();
    let base = "providers:\n  dates: {kind: static}\nsources:\n";
    let e = err(&format!(
        "{base}  - {{name: a, kind: entra_id, provider: dates, credential: {{env: X}}}}\n"
    ));
    assert!(
        e.contains("sources[0].tenant_id: an entra_id source needs tenant_id and client_id"),
        "{e}"
    );
    let e = err(&format!(
        "{base}  - {{name: a, kind: entra_id, provider: dates, credential: {{env: X}}, tenant_id: common, client_id: {CLIENT}}}\n"
    ));
    assert!(
        e.contains("sources[0].tenant_id: tenant_id must name one tenant"),
        "{e}"
    );
    let e = err(&format!(
        "{base}  - {{name: a, kind: entra_id, provider: dates, credential: {{env: X}}, tenant_id: {TENANT}, client_id: nope}}\n"
    ));
    assert!(
        e.contains("sources[0].client_id: client_id must be the application"),
        "{e}"
    );
    let e = err(&format!(
        "{base}  - {{name: a, kind: entra_id, provider: dates, credential: {{env: X}}, tenant_id: {TENANT}, client_id: {CLIENT}, graph_url: 'https://u:p@graph.example.com'}}\n"
    ));
    assert!(e.contains("sources[0].graph_url"), "{e}");
    let e = err(&format!(
        "{base}  - {{name: a, kind: entra_id, tenant_id: {TENANT}, client_id: {CLIENT}}}\n"
    ));
    assert!(
        e.contains("sources[0].provider: an entra_id source needs provider"),
        "{e}"
    );
    assert!(
        e.contains("sources[0].credential: an entra_id source needs credential"),
        "{e}"
    );
    let e = err(&format!(
        "{base}  - {{name: a, kind: directory, path: /x, tenant_id: {TENANT}, read_owners: true}}\n"
    ));
    assert!(
        e.contains("sources[0].tenant_id: tenant_id does not apply to a directory source"),
        "{e}"
    );
    assert!(
        e.contains("sources[0].read_owners: read_owners does not apply"),
        "{e}"
    );
}

/// End to end: the daemon lists the tenant, exports the credentials with their `source`,
/// an expiring secret reaches the warning severity, and a failed listing keeps them.
#[test]
fn the_daemon_exports_listed_credentials_and_warns_of_an_expiring_secret() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let m = rt.block_on(mock());
    let files = SecretFiles::new();
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "config.yml",
        &format!(
            "{}    refresh: 1s\n    warning_before: 30d\n    critical_before: 3d\n",
            yaml(&m.server.url(), &files, "", SECRET)
        ),
    );
    let d = Daemon::start(&["--config.file", config.to_str().unwrap()]);
    let start = std::time::Instant::now();
    let api = loop {
        let (_, body) = d.get("/api/v1/tokens");
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let probed = v["tokens"]
            .as_array()
            .is_some_and(|t| t.len() == 5 && t.iter().all(|t| !t["last_probe_at"].is_null()));
        if probed {
            break v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no listing: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let token = |n: &str| {
        api["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == n)
            .unwrap_or_else(|| panic!("{n} not in {api}"))
            .clone()
    };
    let ci = token("entra/billing/ci-00000001");
    assert_eq!(ci["source"], "entra");
    assert_eq!(ci["severity"], "warning", "{ci}");
    assert_eq!(token("entra/reports/nightly-00000004")["severity"], "ok");
    assert_eq!(token("entra/billing/old-00000002")["severity"], "critical");
    let (_, metrics) = d.get("/metrics");
    assert!(
        metrics.lines().any(|l| l
            .starts_with("api_token_info{token=\"entra/billing/ci-00000001\"")
            && l.contains("source=\"entra\"")),
        "{metrics}"
    );
    assert!(
        metrics.contains("api_token_source_up{source=\"entra\",kind=\"entra_id\"} 1"),
        "{metrics}"
    );
    // A 503 on page 2 fails the listing: the source is down, its tokens stay.
    m.mode.store(1, Ordering::SeqCst);
    let start = std::time::Instant::now();
    while !d
        .get("/metrics")
        .1
        .contains("api_token_source_up{source=\"entra\",kind=\"entra_id\"} 0")
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no failed listing"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, body) = d.get("/api/v1/tokens");
    let kept: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(kept["tokens"].as_array().unwrap().len(), 5, "{kept}");
    let logs = d.logs();
    let _ = d.stop();
    for out in [&metrics, &logs, &api.to_string()] {
        assert!(!out.contains("CANARY"), "a credential in an output");
    }
    assert_only_documented_calls(&m.server);
}
