//! `entra_id_password` against a local server answering as the Microsoft identity platform's
//! token endpoint and Microsoft Graph v1.0 document: the client-credentials answer and its
//! AADSTS error bodies, `GET /applications(appId='...')` with `passwordCredentials` (a 3
//! character `hint`, never the secret), `addPassword` (200 with the new `passwordCredential`
//! and its `secretText`), `removePassword` (204), Graph's `{"error":{"code":..,"message":..}}`
//! refusals. A secret just added is refused for a while (Entra's replication), as
//! configured per test. The test fails on any call outside the rotation's allowed list and
//! on any value in a URL, log line, metric, view or the state file after the rotation.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::rotation_crash::{assert_mode, crash_at, logs, resume};
use crate::rotation_oauth::read;
use crate::rotation_vault::Harness;
use crate::support::{Answer, MockServer, Recorded};
use api_token_exporter::model::rotation::{RotationResult, Step};
use api_token_exporter::model::{Expiry, Verdict};

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const CLIENT: &str = "0c5e3d9a-4b1f-4a6e-9d2c-7f8e1a2b3c4d";
const OLD_KEY: &str = "f1e2d3c4-b5a6-4789-8abc-def012345678";
pub const OLD_SECRET: &str = "Ab1Q~canaryOldEntraSecret.0123456789abcd";

pub struct Password {
    pub key_id: String,
    pub secret: String,
    display_name: String,
    end: String,
}

#[derive(Default)]
pub struct Entra {
    pub passwords: Vec<Password>,
    /// Secrets added but not yet accepted by the token endpoint, with how many more token
    /// requests refuse them.
    fresh: HashMap<String, u32>,
    /// How many refusals a newly added secret gets.
    propagation: u32,
    /// Access tokens issued, with the secret each was issued for.
    pub access: HashMap<String, String>,
    adds: Vec<Value>,
    removes: Vec<String>,
    pub deny_writes: bool,
    /// Each call, in order: (method, last path segment, the secret its bearer came from).
    calls: Vec<(String, String, Option<String>)>,
}

fn token_path() -> String {
    format!("/{TENANT}/oauth2/v2.0/token")
}

fn app_path(r: &Recorded) -> Option<String> {
    let path = r.path().replace("%27", "'");
    let rest = path.strip_prefix(&format!("/v1.0/applications(appId='{CLIENT}')"))?;
    Some(rest.to_string())
}

fn graph_error(status: u16, code: &str, message: &str) -> Answer {
    Answer::json(
        status,
        json!({"error": {"code": code, "message": message,
               "innerError": {"date": "2026-12-05T12:00:00", "request-id": "4d1e5f6a-req", "client-request-id": "4d1e5f6a-req"}}}),
    )
}

fn aadsts(code: u64, text: &str) -> Answer {
    Answer::json(
        401,
        json!({"error": "invalid_client",
               "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: 5f1c-trace\r\nCorrelation ID: 9a8b-corr\r\nTimestamp: 2026-12-05 12:00:00Z"),
               "error_codes": [code], "timestamp": "2026-12-05 12:00:00Z",
               "trace_id": "5f1c-trace", "correlation_id": "9a8b-corr",
               "error_uri": format!("https://login.microsoftonline.com/error?code={code}")}),
    )
}

fn credential(p: &Password, with_secret: bool) -> Value {
    json!({"customKeyIdentifier": null, "displayName": p.display_name, "endDateTime": p.end,
           "hint": &p.secret[..3], "keyId": p.key_id,
           "secretText": if with_secret { Value::from(p.secret.clone()) } else { Value::Null },
           "startDateTime": "2026-01-01T00:00:00Z"})
}

pub fn server(state: Arc<Mutex<Entra>>) -> impl Fn(&Recorded) -> Answer + Send + Sync {
    move |r| {
        let mut e = state.lock().unwrap();
        if r.method == "POST" && r.path() == token_path() {
            let form: HashMap<String, String> =
                url::form_urlencoded::parse(&r.body).into_owned().collect();
            let secret = form.get("client_secret").cloned().unwrap_or_default();
            e.calls
                .push(("POST".into(), "token".into(), Some(secret.clone())));
            let known = e.passwords.iter().any(|p| p.secret == secret);
            if form.get("client_id").map(String::as_str) != Some(CLIENT)
                || form.get("grant_type").map(String::as_str) != Some("client_credentials")
                || !form.get("scope").is_some_and(|s| s.ends_with("/.default"))
            {
                return aadsts(700016, "Application not found in the directory.");
            }
            if let Some(left) = e.fresh.get_mut(&secret)
                && *left > 0
            {
                *left -= 1;
                return aadsts(7000215, "Invalid client secret provided.");
            }
            if !known {
                return aadsts(7000215, "Invalid client secret provided.");
            }
            let access = format!("eyJ0eXAi.canaryAccess{}.c2ln", e.access.len());
            e.access.insert(access.clone(), secret);
            return Answer::json(
                200,
                json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": access}),
            );
        }
        let bearer = r
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .and_then(|a| e.access.get(a).cloned());
        let Some(action) = app_path(r) else {
            e.calls
                .push((r.method.to_string(), r.path().into(), bearer));
            return graph_error(404, "Request_ResourceNotFound", "Resource not found.");
        };
        let segment = action.trim_start_matches('/').to_string();
        e.calls
            .push((r.method.to_string(), segment.clone(), bearer.clone()));
        if bearer.is_none() {
            return graph_error(
                401,
                "InvalidAuthenticationToken",
                "Access token validation failure.",
            );
        }
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        match (r.method.as_str(), segment.as_str()) {
            ("GET", "") => {
                let creds: Vec<Value> = e.passwords.iter().map(|p| credential(p, false)).collect();
                Answer::json(
                    200,
                    json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#applications/$entity",
                           "id": "03ef14b0-ca33-4840-8f4f-d6e91916010e", "appId": CLIENT,
                           "displayName": "deploy-pipeline", "keyCredentials": [], "passwordCredentials": creds}),
                )
            }
            ("POST", "addPassword") if e.deny_writes => graph_error(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            ),
            ("POST", "addPassword") => {
                e.adds.push(body.clone());
                let n = e.adds.len();
                let p = Password {
                    key_id: format!("{n:08x}-1111-4222-8333-{n:012x}"),
                    secret: format!("N{n}wQ~canaryNewEntraSecret.{n:04}abcdefghijkl"),
                    display_name: body["passwordCredential"]["displayName"]
                        .as_str()
                        .unwrap_or_default()
                        .into(),
                    end: body["passwordCredential"]["endDateTime"]
                        .as_str()
                        .unwrap_or("2028-12-05T12:00:00Z")
                        .into(),
                };
                let answer = credential(&p, true);
                let left = e.propagation;
                e.fresh.insert(p.secret.clone(), left);
                e.passwords.push(p);
                Answer::json(200, answer)
            }
            ("POST", "removePassword") => {
                let key = body["keyId"].as_str().unwrap_or_default().to_string();
                let before = e.passwords.len();
                e.passwords.retain(|p| p.key_id != key);
                if e.passwords.len() == before {
                    return graph_error(
                        400,
                        "Request_BadRequest",
                        "No password credential with this keyId.",
                    );
                }
                e.removes.push(key);
                Answer::text(204, "text/plain", "")
            }
            _ => graph_error(405, "Request_BadRequest", "Unsupported request."),
        }
    }
}

/// Only the calls a rotation may make, and no value in any URL.
fn assert_allowed(mock: &MockServer, values: &[&str]) {
    for r in mock.requests() {
        let ok = (r.method == "POST" && r.path() == token_path())
            || app_path(&r).is_some_and(|a| {
                (r.method == "GET" && a.is_empty())
                    || (r.method == "POST" && (a == "/addPassword" || a == "/removePassword"))
            });
        assert!(
            ok,
            "a call outside the allowed list: {} {}",
            r.method,
            r.path()
        );
        for v in values {
            mock.assert_safe(&[], v);
        }
    }
}

pub fn entra(propagation: u32) -> Arc<Mutex<Entra>> {
    Arc::new(Mutex::new(Entra {
        passwords: vec![Password {
            key_id: OLD_KEY.into(),
            secret: OLD_SECRET.into(),
            display_name: "first".into(),
            end: (Timestamp::now() + SignedDuration::from_hours(240)).to_string(),
        }],
        propagation,
        ..Entra::default()
    }))
}

fn config(url: &str, dir: &Path) -> String {
    let secret = dir.join("secret");
    format!(
        "global:\n  probe_timeout: 5s\n  probe_interval: 1h\n  min_probe_interval: 1h\nproviders:\n  entra:\n    kind: entra_id\n    tenant_id: {TENANT}\n    client_id: {CLIENT}\n    url: {url}\n    graph_url: {url}\n    graph: true\ntokens:\n  - name: app\n    provider: entra\n    secret: {{file: {s}}}\n    rotate:\n      before: 30d\n      rotator: {{kind: entra_id_password, expires_in: 90d, display_name: ci-rotation}}\n      deliver: [{{file: {s}}}]\n",
        s = secret.display()
    )
}

async fn setup(propagation: u32) -> (MockServer, Arc<Mutex<Entra>>, tempfile::TempDir, Harness) {
    let state = entra(propagation);
    let mock = MockServer::start(server(state.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), format!("{OLD_SECRET}\n")).unwrap();
    let h = Harness::new(&config(&mock.url(), dir.path()));
    (mock, state, dir, h)
}

#[tokio::test]
async fn a_secret_is_added_tested_through_propagation_then_the_old_one_removed() {
    let (mock, state, dir, mut h) = setup(2).await;
    h.probe("app").await;
    let asked_at = Timestamp::now();
    h.tick().await;
    let status = h.status("app");
    assert_eq!(status.count(RotationResult::Success), 1, "{status:?}");
    let new = read(dir.path(), "secret");
    {
        let e = state.lock().unwrap();
        assert_eq!(e.adds.len(), 1);
        let asked = &e.adds[0]["passwordCredential"];
        assert_eq!(asked["displayName"], "ci-rotation");
        let end: Timestamp = asked["endDateTime"].as_str().unwrap().parse().unwrap();
        let want = asked_at + SignedDuration::from_hours(90 * 24);
        assert!((end.as_second() - want.as_second()).abs() < 60, "{end}");
        // Only the new secret is left, and it is the delivered one.
        assert_eq!(e.passwords.len(), 1);
        assert_eq!(e.passwords[0].secret, new);
        assert_eq!(e.removes, [OLD_KEY]);
        // addPassword with the old secret's token; the new secret refused twice (replication),
        // then accepted; removePassword only after that, with the new secret's token.
        let order: Vec<(String, Option<String>)> = e
            .calls
            .iter()
            .filter(|c| !c.1.is_empty())
            .map(|c| (c.1.clone(), c.2.clone()))
            .collect();
        let add = order.iter().position(|c| c.0 == "addPassword").unwrap();
        assert_eq!(order[add].1.as_deref(), Some(OLD_SECRET));
        let remove = order.iter().position(|c| c.0 == "removePassword").unwrap();
        assert_eq!(order[remove].1.as_deref(), Some(new.as_str()));
        let new_tries: Vec<usize> = order
            .iter()
            .enumerate()
            .filter(|(_, c)| c.0 == "token" && c.1.as_deref() == Some(new.as_str()))
            .map(|(i, _)| i)
            .collect();
        assert!(new_tries.len() >= 3, "{order:?}");
        assert!(new_tries.iter().all(|i| *i > add));
        assert!(new_tries[2] < remove, "{order:?}");
    }
    // The new secret is watched: valid, with the expiry Graph gives for it.
    h.probe("app").await;
    {
        let inner = h.store.read();
        let t = &inner.tokens["app"];
        assert_eq!(t.verdict(), Some(Verdict::Valid));
        let Expiry::At(at) = t.facts.expiry else {
            panic!("{:?}", t.facts.expiry)
        };
        assert!(at > Timestamp::now() + SignedDuration::from_hours(80 * 24));
    }
    h.tick().await;
    assert_eq!(state.lock().unwrap().adds.len(), 1, "rotated twice");

    let accesses: Vec<String> = state.lock().unwrap().access.keys().cloned().collect();
    let mut values: Vec<&str> = vec![OLD_SECRET, new.as_str()];
    values.extend(accesses.iter().map(String::as_str));
    assert_allowed(&mock, &values);
    assert!(h.metrics().contains(
        "api_token_rotations_total{token=\"app\",provider=\"entra\",result=\"success\"} 1\n"
    ));
    crate::support::assert_hidden_in(&h.shown("app"), &values);
    let state_file = std::fs::read_to_string(h.storage.path().join("rotation.json")).unwrap();
    for v in &values {
        // Not even Graph's hint of one.
        assert!(!state_file.contains(&v[..3]) || v.starts_with("eyJ"));
    }
}

#[tokio::test]
async fn a_secret_never_accepted_keeps_the_old_one_until_a_test_passes() {
    let (mock, state, dir, mut h) = setup(u32::MAX).await;
    h.probe("app").await;
    h.tick().await;
    let status = h.status("app");
    assert_eq!(status.count(RotationResult::Failure), 1, "{status:?}");
    assert!(status.failing());
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("did not accept the new value")),
        "{status:?}"
    );
    let record = h.saved().tokens["app"].clone();
    assert_eq!(record.step, Step::Delivered);
    assert_eq!(
        record.pending.as_ref().unwrap().old_key_id.as_deref(),
        Some(OLD_KEY)
    );
    let new = read(dir.path(), "secret");
    {
        let e = state.lock().unwrap();
        // Asked once at first and after 1, 2, 4, 8 and 15 s, then given up: both secrets stay.
        let tries = e
            .calls
            .iter()
            .filter(|c| c.1 == "token" && c.2.as_deref() == Some(new.as_str()))
            .count();
        assert_eq!(tries, 6);
        assert_eq!(e.passwords.len(), 2);
        assert!(e.removes.is_empty());
        assert_eq!(e.adds.len(), 1);
    }
    // The backoff holds the next try; replication completes; an operator resumes.
    h.tick().await;
    assert!(state.lock().unwrap().removes.is_empty());
    state.lock().unwrap().fresh.clear();
    let done = h.rotate_now("app").await;
    assert_eq!(done, Some(RotationResult::Success));
    let e = state.lock().unwrap();
    assert_eq!(
        e.adds.len(),
        1,
        "resumed at the test, not with a second addPassword"
    );
    assert_eq!(e.removes, [OLD_KEY]);
    assert_eq!(e.passwords.len(), 1);
    assert_eq!(e.passwords[0].secret, new);
    drop(e);
    assert_allowed(&mock, &[OLD_SECRET, new.as_str()]);
}

#[tokio::test]
async fn without_the_permission_nothing_is_added_or_removed() {
    let (mock, state, dir, mut h) = setup(0).await;
    state.lock().unwrap().deny_writes = true;
    h.probe("app").await;
    h.tick().await;
    let status = h.status("app");
    assert_eq!(status.count(RotationResult::Failure), 1);
    let error = status.last_error.clone().unwrap();
    assert!(error.contains("Authorization_RequestDenied"), "{error}");
    assert!(error.contains("Application.ReadWrite.OwnedBy"), "{error}");
    assert!(
        !error.contains("Insufficient"),
        "Graph's message quoted: {error}"
    );
    assert_eq!(h.saved().tokens["app"].step, Step::Idle);
    assert!(h.saved().tokens["app"].pending.is_none());
    assert_eq!(read(dir.path(), "secret"), OLD_SECRET);
    let e = state.lock().unwrap();
    assert_eq!(e.passwords.len(), 1);
    assert!(e.removes.is_empty());
    drop(e);
    assert_allowed(&mock, &[OLD_SECRET]);
}

#[tokio::test]
async fn a_crash_during_add_password_is_not_repeated() {
    let (_mock, state, dir, mut h) = setup(0).await;
    h.crashed_while_creating("app");
    h.probe("app").await;
    h.tick().await;
    h.tick().await;
    assert_eq!(h.saved().tokens["app"].step, Step::Interrupted);
    assert!(h.status("app").failing());
    assert!(state.lock().unwrap().adds.is_empty());
    assert_eq!(read(dir.path(), "secret"), OLD_SECRET);
}

/// kill -9 right after the new secret was saved: a second daemon delivers, tests and
/// removes the old one with the saved secret, and never calls addPassword again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_after_issued_finishes_with_the_saved_secret_and_one_add_password() {
    let state = entra(1);
    let mock = MockServer::start(server(state.clone())).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("secret"), format!("{OLD_SECRET}\n")).unwrap();
    std::fs::write(dir.join("config.yml"), config(&mock.url(), dir)).unwrap();

    let record = crash_at(dir, "app", "issued");
    let pending = record.pending.clone().unwrap();
    let issued = pending.value.clone().unwrap();
    assert_eq!(pending.old_key_id.as_deref(), Some(OLD_KEY));
    assert_eq!(
        read(dir, "secret"),
        OLD_SECRET,
        "nothing delivered before the crash"
    );
    assert_mode(&dir.join("data/rotation.json"), 0o600, "rotation.json");

    resume(dir, "app");
    assert_eq!(
        read(dir, "secret"),
        issued,
        "the saved secret is the one delivered"
    );
    {
        let e = state.lock().unwrap();
        assert_eq!(e.adds.len(), 1, "addPassword repeated after the crash");
        assert_eq!(e.removes, [OLD_KEY]);
        assert_eq!(e.passwords.len(), 1);
        assert_eq!(e.passwords[0].secret, issued);
    }
    assert_allowed(&mock, &[OLD_SECRET, issued.as_str()]);
    let log = logs(dir);
    for v in [OLD_SECRET, issued.as_str()] {
        assert!(!log.contains(v), "a secret in the log");
    }
    let after = std::fs::read_to_string(dir.join("data/rotation.json")).unwrap();
    assert!(!after.contains(&issued) && !after.contains(OLD_SECRET));
    assert!(log.contains("token=app"), "{log}");
}

#[tokio::test]
async fn two_secrets_with_the_same_hint_add_nothing() {
    let (mock, state, dir, mut h) = setup(0).await;
    state.lock().unwrap().passwords.push(Password {
        key_id: "a1b2c3d4-e5f6-4789-8abc-def012345678".into(),
        secret: "Ab1Q~canaryAnotherSecretSameHint.0123456".into(),
        display_name: "second".into(),
        end: (Timestamp::now() + SignedDuration::from_hours(240)).to_string(),
    });
    // The probe cannot tell the expiry either (same hint), so an operator asks.
    h.probe("app").await;
    let result = h.rotate_now("app").await;
    assert_eq!(result, Some(RotationResult::Failure));
    let status = h.status("app");
    let error = status.last_error.clone().unwrap();
    assert!(error.contains("2 of the app's client secrets"), "{error}");
    let e = state.lock().unwrap();
    assert!(e.adds.is_empty() && e.removes.is_empty());
    drop(e);
    assert_eq!(read(dir.path(), "secret"), OLD_SECRET);
    assert_allowed(&mock, &[OLD_SECRET]);
}
