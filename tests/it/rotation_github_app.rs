//! `github_app` against a local server answering as GitHub documents installation tokens
//! (docs.github.com/rest/apps/apps "Create an installation access token for an app",
//! rest/apps/installations "List repositories accessible to the app installation"): the app
//! JWT verified (RS256 under the app's key, `iss`, `iat` not ahead, `exp` at most 10
//! minutes on), 201 with `token` and `expires_at`, 404 for an installation the app does
//! not have, 422 for a narrowing beyond the installation, GitHub's `{"message",
//! "documentation_url", "status"}` errors, 401 `Bad credentials` for a token it does not
//! know. The test fails on any call outside the rotation's allowed list (the mint and the
//! probe's `GET /installation/repositories`), and on any value in a URL, the status, a
//! metric, the view or the state file.

use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::rotation_crash::{crash_at, logs, resume};
use crate::rotation_vault::Harness;
use crate::support::{Answer, MockServer, Recorded};
use api_token_exporter::model::rotation::{RotationResult, Step};
use api_token_exporter::model::{Expiry, Verdict};

pub const INSTALLATION: u64 = 4242;
pub const CLIENT_ID: &str = "Iv23liAPPCLIENT";
/// The installation's repositories and permissions: a token can be narrowed within them.
const REPOSITORIES: [&str; 2] = ["api", "web"];

pub struct Github {
    pub public_pem: String,
    /// Tokens minted, with their expiry; all stay valid (GitHub lets them run out).
    pub minted: Vec<(String, Timestamp)>,
    pub asked: Vec<Value>,
}

fn github_error(status: u16, message: &str) -> Answer {
    Answer::json(
        status,
        json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": status.to_string()}),
    )
}

fn app_jwt_ok(r: &Recorded, public_pem: &str) -> bool {
    let Some(jwt) = r
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
    else {
        return false;
    };
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(public_pem.as_bytes()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_issuer(&[CLIENT_ID]);
    let Ok(data) = jsonwebtoken::decode::<Value>(jwt, &key, &v) else {
        return false;
    };
    let now = Timestamp::now().as_second();
    let (iat, exp) = (
        data.claims["iat"].as_i64().unwrap_or(i64::MAX),
        data.claims["exp"].as_i64().unwrap_or(0),
    );
    iat <= now && exp > now && exp - now <= 600
}

pub fn server(state: Arc<Mutex<Github>>) -> impl Fn(&Recorded) -> Answer + Send + Sync {
    move |r| {
        let mut g = state.lock().unwrap();
        let path = r.path().to_string();
        if r.method == "POST" && path.starts_with("/app/installations/") {
            if !app_jwt_ok(r, &g.public_pem) {
                return github_error(401, "A JSON web token could not be decoded");
            }
            if path != format!("/app/installations/{INSTALLATION}/access_tokens") {
                return github_error(404, "Not Found");
            }
            if r.header("x-github-api-version") != Some("2022-11-28") {
                return github_error(400, "Invalid API version");
            }
            let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            g.asked.push(body.clone());
            let beyond = body["repositories"].as_array().is_some_and(|names| {
                names
                    .iter()
                    .any(|n| !REPOSITORIES.contains(&n.as_str().unwrap_or_default()))
            });
            if beyond {
                return github_error(
                    422,
                    "There is at least one repository that does not exist or is not accessible to the parent installation.",
                );
            }
            let n = g.minted.len() + 1;
            let token = format!("ghs_canaryMinted{n:04}abcdefghijklmnopqrstu");
            // GitHub states whole seconds.
            let expires = Timestamp::from_second(Timestamp::now().as_second() + 3600).unwrap();
            g.minted.push((token.clone(), expires));
            let permissions = if body["permissions"].is_object() {
                body["permissions"].clone()
            } else {
                json!({"contents": "write", "metadata": "read"})
            };
            return Answer::json(
                201,
                json!({"token": token, "expires_at": expires.to_string(),
                       "permissions": permissions, "repository_selection": "selected"}),
            );
        }
        if r.method == "GET" && path == "/installation/repositories" {
            let known = r
                .header("authorization")
                .and_then(|a| a.strip_prefix("Bearer "))
                .is_some_and(|t| g.minted.iter().any(|(m, _)| m == t));
            if !known {
                return github_error(401, "Bad credentials");
            }
            return Answer::json(
                200,
                json!({"total_count": 2, "repository_selection": "selected",
                       "repositories": [{"id": 1, "name": "api", "full_name": "acme/api", "owner": {"login": "acme"}}]}),
            )
            .header("x-ratelimit-remaining", "4999");
        }
        github_error(404, "Not Found")
    }
}

fn assert_allowed(mock: &MockServer, values: &[&str]) {
    for r in mock.requests() {
        let ok = (r.method == "POST"
            && r.path() == format!("/app/installations/{INSTALLATION}/access_tokens"))
            || (r.method == "GET" && r.path() == "/installation/repositories");
        assert!(
            ok,
            "a call outside the allowed list: {} {}",
            r.method,
            r.path()
        );
    }
    for v in values {
        mock.assert_safe(&[], v);
    }
}

pub struct Setup {
    pub mock: MockServer,
    pub state: Arc<Mutex<Github>>,
    pub dir: tempfile::TempDir,
    pub key_pem: String,
}

pub async fn setup() -> Setup {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let state = Arc::new(Mutex::new(Github {
        public_pem: key.public_key_pem(),
        minted: vec![],
        asked: vec![],
    }));
    let mock = MockServer::start(server(state.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.pem"), key.serialize_pem()).unwrap();
    Setup {
        mock,
        state,
        dir,
        key_pem: key.serialize_pem(),
    }
}

fn config(url: &str, dir: &std::path::Path, installation: u64, narrowing: &str) -> String {
    let token = dir.join("token");
    format!(
        "global:\n  probe_timeout: 5s\n  probe_interval: 1h\n  min_probe_interval: 1h\nproviders:\n  gh:\n    kind: github\n    url: {url}\ntokens:\n  - name: ci\n    provider: gh\n    secret: {{file: {t}}}\n    rotate:\n      before: 10m\n      rotator: {{kind: github_app, app_id: {CLIENT_ID}, installation_id: {installation}, private_key: {{file: {k}}}{narrowing}}}\n      deliver: [{{file: {t}}}]\n",
        t = token.display(),
        k = dir.join("app.pem").display(),
    )
}

/// A line of the private key's base64 body: what a leak of the key would show.
pub fn key_line(pem: &str) -> String {
    pem.lines().nth(3).unwrap().to_string()
}

#[tokio::test]
async fn a_first_token_is_minted_delivered_and_renewed_only_before_it_expires() {
    let s = setup().await;
    let mut h = Harness::new(&config(
        &s.mock.url(),
        s.dir.path(),
        INSTALLATION,
        ", repositories: [api], permissions: {contents: read}",
    ));
    // No token file yet: the first one is minted at once.
    h.tick().await;
    let status = h.status("ci");
    assert_eq!(status.count(RotationResult::Success), 1, "{status:?}");
    let delivered = std::fs::read_to_string(s.dir.path().join("token")).unwrap();
    let (first, expires) = s.state.lock().unwrap().minted[0].clone();
    assert_eq!(delivered.trim(), first);
    assert_eq!(
        s.state.lock().unwrap().asked[0],
        json!({"repositories": ["api"], "permissions": {"contents": "read"}})
    );
    // The test step kept GitHub's expires_at: the next mint is planned 10 minutes before it.
    h.probe("ci").await;
    {
        let inner = h.store.read();
        let t = &inner.tokens["ci"];
        assert_eq!(t.verdict(), Some(Verdict::Valid));
        assert_eq!(t.facts.expiry, Expiry::At(expires));
    }
    h.tick().await;
    let status = h.status("ci");
    assert_eq!(s.state.lock().unwrap().minted.len(), 1, "minted before due");
    let next = status.next_at.expect("a planned mint");
    assert_eq!(next.as_second(), expires.as_second() - 600, "{status:?}");

    let minted: Vec<String> = s
        .state
        .lock()
        .unwrap()
        .minted
        .iter()
        .map(|m| m.0.clone())
        .collect();
    let line = key_line(&s.key_pem);
    let mut values: Vec<&str> = minted.iter().map(String::as_str).collect();
    values.push(&line);
    assert_allowed(&s.mock, &values);
    assert!(h.metrics().contains(
        "api_token_rotations_total{token=\"ci\",provider=\"gh\",result=\"success\"} 1\n"
    ));
    crate::support::assert_hidden_in(&h.shown("ci"), &values);
}

#[tokio::test]
async fn a_token_whose_expiry_is_unknown_after_a_restart_is_replaced_once() {
    let s = setup().await;
    let yaml = config(&s.mock.url(), s.dir.path(), INSTALLATION, "");
    let mut h = Harness::new(&yaml);
    h.tick().await;
    assert_eq!(s.state.lock().unwrap().minted.len(), 1);
    assert_eq!(s.state.lock().unwrap().asked[0], json!({}));
    // A restart: the store is new (GitHub's answers never state an installation token's
    // expiry), the rotation record is the one saved.
    let storage = std::mem::replace(&mut h.storage, tempfile::tempdir().unwrap());
    let mut h = Harness::new(&yaml);
    h.storage = storage;
    h.rotations = api_token_exporter::rotate::Rotations::new(h.storage.path());
    // Nothing before GitHub has answered about the token since the last mint.
    h.tick().await;
    assert_eq!(s.state.lock().unwrap().minted.len(), 1);
    h.probe("ci").await;
    h.tick().await;
    h.tick().await;
    let minted = s.state.lock().unwrap().minted.clone();
    assert_eq!(minted.len(), 2, "replaced once");
    let delivered = std::fs::read_to_string(s.dir.path().join("token")).unwrap();
    assert_eq!(delivered.trim(), minted[1].0);
    // The old token was not revoked: nothing but the mint and the probe was called.
    assert_allowed(&s.mock, &[&minted[0].0, &minted[1].0]);
}

#[tokio::test]
async fn githubs_refusals_fail_the_rotation_and_write_nothing() {
    for (installation, narrowing, words) in [
        (9999, "", "404"),
        (INSTALLATION, ", repositories: [secret-repo]", "422"),
    ] {
        let s = setup().await;
        let mut h = Harness::new(&config(
            &s.mock.url(),
            s.dir.path(),
            installation,
            narrowing,
        ));
        h.tick().await;
        let status = h.status("ci");
        assert_eq!(status.count(RotationResult::Failure), 1, "{status:?}");
        let error = status.last_error.clone().unwrap();
        assert!(error.contains(words), "{error}");
        assert!(!error.contains("repository that does not exist"), "{error}");
        assert!(!s.dir.path().join("token").exists());
        assert_eq!(h.saved().tokens["ci"].step, Step::Idle);
        assert!(s.state.lock().unwrap().minted.is_empty());
        // A wrong key: the JWT is refused (401).
        if installation == INSTALLATION {
            let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
            std::fs::write(s.dir.path().join("app.pem"), other.serialize_pem()).unwrap();
            let mut h = Harness::new(&config(&s.mock.url(), s.dir.path(), INSTALLATION, ""));
            h.tick().await;
            let error = h.status("ci").last_error.clone().unwrap();
            assert!(
                error.contains("401") && error.contains("app JWT"),
                "{error}"
            );
            assert!(!error.contains(&key_line(&other.serialize_pem())));
        }
    }
}

/// kill -9 right after the minted token was saved: a second daemon delivers the saved
/// token and does not mint another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_after_issued_delivers_the_saved_token() {
    let s = setup().await;
    let dir = s.dir.path();
    std::fs::write(
        dir.join("config.yml"),
        config(&s.mock.url(), dir, INSTALLATION, ""),
    )
    .unwrap();
    let record = crash_at(dir, "ci", "issued");
    let issued = record.pending.unwrap().value.unwrap();
    resume(dir, "ci");
    let minted = s.state.lock().unwrap().minted.clone();
    assert_eq!(minted.len(), 1, "minted again after the crash");
    assert_eq!(
        std::fs::read_to_string(dir.join("token")).unwrap().trim(),
        issued
    );
    let log = logs(dir);
    assert!(!log.contains(&issued), "the token in the log");
    assert!(!log.contains(&key_line(&s.key_pem)), "the key in the log");
    assert_allowed(&s.mock, &[&issued]);
}

/// A crash before GitHub's answer was saved mints again: the lost token expires unused
/// within the hour, so nothing stops at `interrupted`.
#[tokio::test]
async fn a_crash_during_the_mint_mints_again() {
    let s = setup().await;
    let mut h = Harness::new(&config(&s.mock.url(), s.dir.path(), INSTALLATION, ""));
    h.crashed_while_creating("ci");
    h.tick().await;
    let record = h.saved().tokens["ci"].clone();
    assert_eq!(record.step, Step::Idle, "{record:?}");
    assert!(record.last_success_at.is_some());
    let minted = s.state.lock().unwrap().minted.clone();
    assert_eq!(minted.len(), 1);
    assert_eq!(
        std::fs::read_to_string(s.dir.path().join("token"))
            .unwrap()
            .trim(),
        minted[0].0
    );
}
