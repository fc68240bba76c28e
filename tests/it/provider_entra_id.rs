//! The `entra_id` provider against a local server that answers as the Microsoft identity
//! platform's token endpoint and Microsoft Graph document: the client-credentials answer,
//! the AADSTS error bodies (`error`, `error_description` with trace ids, `error_codes`),
//! Graph's `application` object and its error body, `@odata.nextLink` paging. The server
//! answers only the calls a probe may make and the test fails on any other, and on any
//! credential in a URL.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support;
use crate::support::clock::{NOW, now};
use api_token_exporter::config::Config;
use api_token_exporter::model::{Expiry, ExpiryModel, ProbeOutcome, Reason, Verdict};
use api_token_exporter::provider::entra_id::graph;
use api_token_exporter::provider::http;
use api_token_exporter::secret::Secret;
use base64::Engine;
use serde_json::{Value, json};
use support::daemon::write;
use support::{Answer, MockServer, Recorded, SecretFiles, probe_once};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "0c5e3d9a-4b1f-4a6e-9d2c-7f8e1a2b3c4d";
const KEY_ID: &str = "f1e2d3c4-b5a6-4789-8abc-def012345678";
const OTHER_KEY_ID: &str = "a1b2c3d4-e5f6-4789-8abc-def012345678";
/// The client secret, as Entra generates them; its first three characters are Graph's hint.
const SECRET: &str = "Xy7Q~canaryEntraClientSecret.0123456789ab";
const HINT: &str = "Xy7";
/// The access token the token endpoint mints: the app's credential too.
const ACCESS: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.canaryMintedAccessToken.c2ln";

fn token_path() -> String {
    format!("/{TENANT}/oauth2/v2.0/token")
}

/// The application, as Graph's path names it (the quotes may come percent-encoded).
fn is_application_path(r: &Recorded) -> bool {
    let path = r.path().replace("%27", "'");
    path == format!("/v1.0/applications(appId='{CLIENT}')")
}

/// Write calls on applications a probe must never make (Graph documents them all as POST
/// or PATCH on the application).
fn assert_read_only(server: &MockServer) {
    for secret in [SECRET, ACCESS] {
        server.assert_safe(&[("PATCH", "/"), ("DELETE", "/"), ("PUT", "/")], secret);
    }
    for r in server.requests() {
        let path = r.path();
        assert!(
            !path.contains("addPassword")
                && !path.contains("removePassword")
                && !path.contains("addKey")
                && !path.contains("removeKey"),
            "a probe made a write call: {} {path}",
            r.method
        );
        let allowed = (r.method == "POST" && path == token_path())
            || (r.method == "GET" && is_application_path(&r));
        assert!(
            allowed,
            "a call outside the allowed list: {} {path}",
            r.method
        );
    }
}

/// The form a token request carried.
fn form(r: &Recorded) -> BTreeMap<String, String> {
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    url::form_urlencoded::parse(&r.body).into_owned().collect()
}

fn issued() -> Answer {
    Answer::json(
        200,
        json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": ACCESS}),
    )
}

/// An error answer as the platform writes it.
fn refused(status: u16, error: &str, code: u64, text: &str) -> Answer {
    Answer::json(
        status,
        json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: 5f1c2d3e-trace-0100\r\nCorrelation ID: 9a8b7c6d-corr-0200\r\nTimestamp: 2023-11-14 22:13:20Z"),
            "error_codes": [code],
            "timestamp": "2023-11-14 22:13:20Z",
            "trace_id": "5f1c2d3e-trace-0100",
            "correlation_id": "9a8b7c6d-corr-0200",
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}")
        }),
    )
}

fn application(passwords: Value, keys: Value) -> Answer {
    Answer::json(
        200,
        json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#applications(id,appId,displayName,passwordCredentials,keyCredentials)/$entity",
            "id": "03ef14b0-ca33-4840-8f4f-d6e91916010e",
            "appId": CLIENT,
            "displayName": "deploy-pipeline",
            "keyCredentials": keys,
            "passwordCredentials": passwords
        }),
    )
}

fn password(key_id: &str, hint: &str, end: &str) -> Value {
    json!({
        "customKeyIdentifier": null, "displayName": "ci secret", "endDateTime": end,
        "hint": hint, "keyId": key_id, "secretText": null,
        "startDateTime": "2023-05-20T08:00:00Z"
    })
}

/// A server answering the token endpoint with `token` and Graph's application with `app`,
/// checking that Graph is asked with the access token just minted.
async fn server(token: Answer, app: Answer) -> MockServer {
    MockServer::start(move |r| {
        if r.method == "POST" && r.path() == token_path() {
            return token.clone();
        }
        if r.method == "GET" && is_application_path(r) {
            if r.header("authorization") != Some(&format!("Bearer {ACCESS}")) {
                return Answer::json(
                    401,
                    json!({"error": {"code": "InvalidAuthenticationToken"}}),
                );
            }
            return app.clone();
        }
        Answer::json(404, json!({"error": {"code": "Request_ResourceNotFound"}}))
    })
    .await
}

fn yaml(base: &str, graph_on: bool, secret: &str, token_extra: &str) -> String {
    format!(
        "global:\n  probe_timeout: 2s\nproviders:\n  entra:\n    kind: entra_id\n    tenant_id: {TENANT}\n    client_id: {CLIENT}\n    url: {base}\n    graph_url: {base}\n    graph: {graph_on}\ntokens:\n  - name: deploy\n    provider: entra\n    secret: {secret}\n{token_extra}"
    )
}

async fn probe(server: &MockServer, graph_on: bool, value: &str, extra: &str) -> ProbeOutcome {
    let files = SecretFiles::new();
    let secret = files.put("entra", value);
    let o = probe_once(
        &yaml(&server.url(), graph_on, &secret, extra),
        "deploy",
        now(),
    )
    .await;
    for credential in [value, ACCESS] {
        support::assert_outcome_hides(&o, credential);
    }
    o
}

#[tokio::test]
async fn a_working_secret_without_graph_is_valid_with_one_call() {
    let s = server(issued(), Answer::text(500, "text/plain", "")).await;
    let o = probe(&s, false, SECRET, "").await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert_eq!(o.facts.client_id.as_deref(), Some(CLIENT));
    assert_eq!(o.facts.token_type.as_deref(), Some("client_secret"));
    assert_read_only(&s);
    let calls = s.requests();
    assert_eq!(calls.len(), 1);
    let f = form(&calls[0]);
    assert_eq!(f["grant_type"], "client_credentials");
    assert_eq!(f["client_id"], CLIENT);
    assert_eq!(f["client_secret"], SECRET);
    assert_eq!(f["scope"], "https://graph.microsoft.com/.default");
    assert!(!f.contains_key("client_assertion"));
    assert_eq!(calls[0].header("authorization"), None);
}

#[tokio::test]
async fn graph_gives_the_secret_its_expiry_and_issue_time() {
    let s = server(
        issued(),
        application(
            json!([
                password(OTHER_KEY_ID, "abc", "2024-01-01T00:00:00Z"),
                password(KEY_ID, HINT, "2025-05-20T08:00:00Z")
            ]),
            json!([]),
        ),
    )
    .await;
    let o = probe(&s, true, SECRET, "").await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(
        o.facts.expiry,
        Expiry::At("2025-05-20T08:00:00Z".parse().unwrap())
    );
    assert_eq!(o.facts.expiry_model, ExpiryModel::Fixed);
    assert_eq!(
        o.facts.issued_at,
        Some("2023-05-20T08:00:00Z".parse().unwrap())
    );
    assert_eq!(o.facts.extra["key_id"], KEY_ID);
    assert_eq!(o.facts.extra["credential_name"], "ci secret");
    assert_eq!(o.facts.subject.as_deref(), Some("deploy-pipeline"));
    assert!(o.facts.flags.is_empty(), "{:?}", o.facts.flags);
    assert_read_only(&s);
    let calls = s.requests();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[1].uri.query(),
        Some("$select=id,appId,displayName,passwordCredentials,keyCredentials")
    );
}

#[tokio::test]
async fn a_never_expiring_secret_is_age_only() {
    let s = server(
        issued(),
        application(
            json!([password(KEY_ID, HINT, "2299-12-31T05:00:00Z")]),
            json!(null),
        ),
    )
    .await;
    let o = probe(&s, true, SECRET, "").await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::Never);
    assert_eq!(o.facts.expiry_model, ExpiryModel::AgeOnly);
    assert_eq!(
        o.facts.issued_at,
        Some("2023-05-20T08:00:00Z".parse().unwrap())
    );
}

#[tokio::test]
async fn twin_hints_need_key_id() {
    let twins = json!([
        password(OTHER_KEY_ID, HINT, "2024-01-01T00:00:00Z"),
        password(KEY_ID, HINT, "2025-05-20T08:00:00Z")
    ]);
    let s = server(issued(), application(twins.clone(), json!([]))).await;
    let o = probe(&s, true, SECRET, "").await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert!(
        o.facts.flags.iter().any(|f| f.contains("set key_id")),
        "{:?}",
        o.facts.flags
    );

    let s = server(issued(), application(twins, json!([]))).await;
    let o = probe(&s, true, SECRET, &format!("    key_id: {KEY_ID}\n")).await;
    assert_eq!(
        o.facts.expiry,
        Expiry::At("2025-05-20T08:00:00Z".parse().unwrap())
    );
}

#[tokio::test]
async fn graph_refusing_leaves_the_verdict_and_flags_the_permission() {
    let s = server(
        issued(),
        Answer::json(
            403,
            json!({"error": {"code": "Authorization_RequestDenied",
                             "message": "Insufficient privileges to complete the operation.",
                             "innerError": {"date": "2023-11-14T22:13:20", "request-id": "r-1", "client-request-id": "c-1"}}}),
        ),
    )
    .await;
    let o = probe(&s, true, SECRET, "").await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok));
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert!(
        o.facts
            .flags
            .iter()
            .any(|f| f.contains("Application.Read.All")),
        "{:?}",
        o.facts.flags
    );
    assert_read_only(&s);
}

#[tokio::test]
async fn refused_credentials_map_to_their_verdicts_and_never_echo_the_description() {
    let cases = [
        (
            refused(
                401,
                "invalid_client",
                7000222,
                "The provided client secret keys for app '0c5e3d9a' are expired.",
            ),
            Verdict::Invalid,
            Reason::Expired,
        ),
        (
            refused(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided.",
            ),
            Verdict::Invalid,
            Reason::UnknownToken,
        ),
        (
            refused(
                400,
                "unauthorized_client",
                700016,
                "Application with identifier '0c5e3d9a' was not found in the directory 'Contoso'.",
            ),
            Verdict::Invalid,
            Reason::UnknownToken,
        ),
        (
            refused(
                400,
                "invalid_request",
                90002,
                "Tenant '72f988bf' not found.",
            ),
            Verdict::Misconfigured,
            Reason::Discovery,
        ),
        (
            refused(
                400,
                "invalid_request",
                50059,
                "No tenant-identifying information found.",
            ),
            Verdict::Unreachable,
            Reason::UnexpectedStatus,
        ),
    ];
    for (answer, verdict, reason) in cases {
        let s = server(answer, application(json!([]), json!([]))).await;
        let o = probe(&s, true, SECRET, "").await;
        assert_eq!((o.verdict, o.reason), (verdict, reason), "{o:?}");
        for never in ["Trace ID", "5f1c2d3e", "9a8b7c6d", "Contoso", "directory"] {
            assert!(!o.detail.contains(never), "{}", o.detail);
        }
        // A refused credential mints nothing, so Graph is never asked.
        assert_eq!(s.requests().len(), 1);
        assert_read_only(&s);
    }
}

#[tokio::test]
async fn throttling_is_rate_limited_with_its_wait() {
    let s = server(
        Answer::json(429, json!({"error": "temporarily_unavailable"})).header("retry-after", "17"),
        application(json!([]), json!([])),
    )
    .await;
    let o = probe(&s, true, SECRET, "").await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::RateLimited, Reason::RateLimited)
    );
    assert_eq!(o.retry_after, Some(Duration::from_secs(17)));
}

#[tokio::test]
async fn garbage_and_server_errors_are_unreachable() {
    let cases = [
        Answer::text(200, "text/html", "<html>Sign in to your proxy</html>"),
        Answer::json(200, json!({"token_type": "Bearer"})),
        Answer::text(400, "text/html", "<html>Bad Request</html>"),
        Answer::text(503, "text/html", "<html>busy</html>").header("retry-after", "5"),
        Answer::json(
            500,
            json!({"error": "server_error", "error_codes": [7000222]}),
        ),
        Answer::text(302, "text/plain", "").header("location", "http://127.0.0.1:9/"),
    ];
    for answer in cases {
        let s = server(answer.clone(), application(json!([]), json!([]))).await;
        let o = probe(&s, true, SECRET, "").await;
        assert_eq!(o.verdict, Verdict::Unreachable, "{answer:?}: {o:?}");
        assert_eq!(s.requests().len(), 1);
    }
}

/// A self-signed RSA certificate: (PEM of key and certificate, DER, public key PEM).
fn certificate() -> (String, Vec<u8>, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["deploy-pipeline".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (
        format!("{}{}", key.serialize_pem(), cert.pem()),
        cert.der().to_vec(),
        key.public_key_pem(),
    )
}

#[tokio::test]
async fn a_certificate_credential_signs_an_assertion_and_finds_its_expiry() {
    let (pem, der, public) = certificate();
    let key_b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let seen_assertion = Arc::new(Mutex::new(String::new()));
    let seen = seen_assertion.clone();
    let s = MockServer::start(move |r| {
        if r.method == "POST" && r.path() == token_path() {
            let f: BTreeMap<String, String> =
                url::form_urlencoded::parse(&r.body).into_owned().collect();
            if f.get("client_assertion_type").map(String::as_str) != Some(graph::JWT_BEARER)
                || f.contains_key("client_secret")
            {
                return refused(400, "invalid_request", 7000218, "The request body must contain client_assertion or client_secret.");
            }
            *seen.lock().unwrap() = f["client_assertion"].clone();
            return issued();
        }
        if is_application_path(r) {
            return application(
                json!([]),
                json!([
                    {"customKeyIdentifier": "AB12", "displayName": "CN=other", "endDateTime": "2024-02-01T00:00:00Z",
                     "key": base64::engine::general_purpose::STANDARD.encode(b"other"), "keyId": OTHER_KEY_ID,
                     "startDateTime": "2023-02-01T00:00:00Z", "type": "AsymmetricX509Cert", "usage": "Verify"},
                    {"customKeyIdentifier": "CD34", "displayName": "CN=deploy-pipeline", "endDateTime": "2024-09-30T12:00:00Z",
                     "key": key_b64.clone(), "keyId": KEY_ID,
                     "startDateTime": "2023-09-30T12:00:00Z", "type": "AsymmetricX509Cert", "usage": "Verify"}
                ]),
            );
        }
        Answer::json(404, json!({}))
    })
    .await;
    let o = probe(&s, true, &pem, "").await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(o.facts.token_type.as_deref(), Some("certificate"));
    assert_eq!(
        o.facts.expiry,
        Expiry::At("2024-09-30T12:00:00Z".parse().unwrap())
    );
    assert_eq!(o.facts.extra["key_id"], KEY_ID);
    assert_read_only(&s);

    // The assertion is what the platform checks: PS256 with the certificate's key, for this
    // token endpoint, issued by and about the app.
    let jwt = seen_assertion.lock().unwrap().clone();
    let header = jsonwebtoken::decode_header(&jwt).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::PS256);
    assert!(header.x5t_s256.is_some());
    let audience = format!("{}{}", s.url(), token_path());
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::PS256);
    validation.set_audience(&[audience.as_str()]);
    validation.set_issuer(&[CLIENT]);
    validation.validate_exp = false;
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(public.as_bytes()).unwrap();
    let claims = jsonwebtoken::decode::<Value>(&jwt, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], CLIENT);
    assert_eq!(claims["nbf"], NOW);
    // No private key material goes anywhere but into the signature.
    for r in s.requests() {
        assert!(!r.body_text().contains("PRIVATE KEY"));
    }
}

#[tokio::test]
async fn a_broken_pem_is_misconfigured_without_a_call() {
    let s = server(issued(), application(json!([]), json!([]))).await;
    let o = probe(
        &s,
        false,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
        "",
    )
    .await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Misconfigured, Reason::Malformed)
    );
    assert!(o.detail.contains("no private key"), "{}", o.detail);
    assert!(s.requests().is_empty());
}

#[tokio::test]
async fn paging_follows_next_links_on_the_same_server_only() {
    let elsewhere =
        MockServer::start(|_| Answer::json(200, json!({"value": [{"id": "stolen"}]}))).await;
    let elsewhere_url = elsewhere.url();
    let s = MockServer::start(move |r| {
        let base = format!("http://{}", r.header("host").unwrap());
        let query = r.uri.query().unwrap_or_default().to_string();
        let page = |ids: &[&str], next: Option<String>| {
            let mut doc = json!({
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#applications",
                "value": ids.iter().map(|id| json!({"id": id, "appId": id, "passwordCredentials": [], "keyCredentials": []})).collect::<Vec<_>>()
            });
            if let Some(next) = next {
                doc["@odata.nextLink"] = json!(next);
            }
            Answer::json(200, doc)
        };
        if r.method != "GET" || r.path() != "/v1.0/applications" {
            return Answer::json(404, json!({}));
        }
        if r.header("authorization") != Some(&format!("Bearer {ACCESS}")) {
            return Answer::json(401, json!({}));
        }
        match query.as_str() {
            q if q.starts_with("$select=") => page(&["a1", "a2"], Some(format!("{base}/v1.0/applications?$skiptoken=p2"))),
            "$skiptoken=p2" => page(&["a3"], Some(format!("{base}/v1.0/applications?$skiptoken=p3"))),
            "$skiptoken=p3" => page(&["a4"], None),
            "$skiptoken=away" => page(&["a5"], Some(format!("{elsewhere_url}/v1.0/applications"))),
            _ => Answer::json(400, json!({})),
        }
    })
    .await;
    let client = http::client();
    let token = Secret::new(ACCESS);
    let first = graph::applications_url(&s.url());
    let all = graph::get_pages(&client, &first, &token, now())
        .await
        .unwrap();
    let ids: Vec<&str> = all.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a1", "a2", "a3", "a4"]);
    let apps: Vec<graph::Application> = all
        .into_iter()
        .map(|v| graph::application_from(v).unwrap())
        .collect();
    assert_eq!(apps[3].app_id.as_deref(), Some("a4"));

    let away = format!("{}/v1.0/applications?$skiptoken=away", s.url());
    let err = graph::get_pages(&client, &away, &token, now())
        .await
        .unwrap_err();
    assert_eq!(err.reason, Reason::BadResponse);
    assert!(
        elsewhere.requests().is_empty(),
        "the token went to another server"
    );
    for r in s.requests() {
        assert!(!r.uri.to_string().contains(ACCESS));
    }
}

#[test]
fn wrong_configs_give_clear_errors() {
    let base = "providers:\n  entra:\n    kind: entra_id\n";
    for (yaml, says) in [
        (
            format!("{base}    client_id: {CLIENT}\n"),
            "missing field `tenant_id`",
        ),
        (
            format!("{base}    tenant_id: common\n    client_id: {CLIENT}\n"),
            "one tenant",
        ),
        (
            format!("{base}    tenant_id: {TENANT}\n    client_id: my-app\n"),
            "client_id",
        ),
        (
            format!(
                "{base}    tenant_id: {TENANT}\n    client_id: {CLIENT}\n    url: ftp://login\n"
            ),
            "url",
        ),
        (
            format!(
                "{base}    tenant_id: {TENANT}\n    client_id: {CLIENT}\ntokens:\n  - name: t\n    provider: entra\n    secret: {{env: X}}\n    key_id: {KEY_ID}\n"
            ),
            "key_id only applies with graph: true",
        ),
        (
            format!(
                "{base}    tenant_id: {TENANT}\n    client_id: {CLIENT}\n    graph: true\ntokens:\n  - name: t\n    provider: entra\n    secret: {{env: X}}\n    key_id: nope\n"
            ),
            "key_id must be",
        ),
        (
            format!(
                "{base}    tenant_id: {TENANT}\n    client_id: {CLIENT}\ntokens:\n  - name: t\n    provider: entra\n    secret: {{env: X}}\n    accessor: a\n"
            ),
            "accessor does not apply to a entra_id provider",
        ),
    ] {
        let err = Config::parse(&yaml).unwrap_err().to_string();
        assert!(
            err.contains(says) && err.contains("providers.entra")
                || err.contains(says) && err.contains("tokens[0]"),
            "{yaml}\n{err}"
        );
    }
}

/// Neither the client secret nor the access token it mints reaches any output of the
/// daemon: trace logs, `/metrics`, `/`, `/api/v1/tokens`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_no_secret_or_access_token_in_any_output() {
    let s = server(
        issued(),
        application(
            json!([password(KEY_ID, HINT, "2099-05-20T08:00:00Z")]),
            json!([]),
        ),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let files = SecretFiles::new();
    let yaml = yaml(&s.url(), true, &files.put("entra", SECRET), "");
    let config = write(dir.path(), "config.yml", &yaml);
    support::daemon::canary_through_daemon(
        &config,
        "deploy",
        &["\"valid\"", "2099-05-20"],
        &[
            SECRET,
            ACCESS,
            "canaryEntraClientSecret",
            "canaryMintedAccessToken",
        ],
    );
    assert_read_only(&s);
}

#[tokio::test]
async fn graph_out_of_reach_keeps_the_verdict() {
    let s = server(issued(), application(json!([]), json!([]))).await;
    let files = SecretFiles::new();
    let secret = files.put("entra", SECRET);
    let down = format!("http://127.0.0.1:{}", support::daemon::free_port());
    let text = yaml(&s.url(), true, &secret, "").replace(
        &format!("graph_url: {}", s.url()),
        &format!("graph_url: {down}"),
    );
    let o = probe_once(&text, "deploy", now()).await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert!(
        o.facts
            .flags
            .iter()
            .any(|f| f.contains("Graph could not be asked (connect)")),
        "{:?}",
        o.facts.flags
    );
    support::assert_outcome_hides(&o, ACCESS);
}
