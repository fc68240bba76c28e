//! `cloudflare_roll` against a local server answering as Cloudflare's API documents
//! (`GET .../tokens/verify` with the token's `result.id`; `PUT .../tokens/{id}/value` with
//! body `{}` and a Bearer credential holding "API Tokens Write", answered with the v4
//! envelope and the new value as `result`; 401 error 1000 for a value it does not know, 403
//! error 9109 for a credential without the permission, 404 for an unknown id). The old value
//! stops working at once. The server fails the test on any other call, on a roll asked with
//! a rolled (old) value, and on a token rolled twice.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::rotation_crash::{Shown, assert_mode, crash_at, restart};
use crate::rotation_oauth::read;
use crate::rotation_vault::Harness;
use crate::support::{self, Answer, MockServer};
use api_token_exporter::model::rotation::{RotationResult, Step};

const ID: &str = "ed17574386854bf78a67040be0a770b0";
const FIRST: &str = "cfut_canaryFirstValue0000000000000000000001";
const WATCHED_ID: &str = "0b9f3c2d1e4a5b6c7d8e9f0a1b2c3d4e";
const WATCHED: &str = "cfut_canaryWatchedValue00000000000000000002";
const ACCOUNT: &str = "023e105f4ecef8ad9ca31a8372d0c353";
const ADMIN: &str = "cfut_canaryAdminWriteCredential0000000000003";
const EXPIRES: &str = "2030-01-01T00:00:00Z";

#[derive(Default)]
pub struct Cloudflare {
    /// Live values: value -> (token id, may write API tokens).
    active: BTreeMap<String, (String, bool)>,
    rolled: Vec<String>,
    /// Rolls by token id.
    rolls: BTreeMap<String, u32>,
    /// A roll asked with a value already rolled away.
    reuse: bool,
    /// Any call outside verify and the roll.
    unexpected: Vec<String>,
}

impl Cloudflare {
    /// What every test asserts at the end: no reuse, nothing outside the allowed calls,
    /// the watched token never rolled, the rotating one rolled `rolls` times.
    fn assert_clean(&self, rolls: Option<u32>) {
        assert!(!self.reuse, "a rolled value was used to roll again");
        assert!(self.unexpected.is_empty(), "{:?}", self.unexpected);
        assert_eq!(self.rolls.get(ID).copied(), rolls, "rolls of the token");
        assert_eq!(
            self.rolls.get(WATCHED_ID),
            None,
            "the watched token was rolled"
        );
    }
}

fn envelope(status: u16, success: bool, errors: Value, result: Value) -> Answer {
    Answer::json(
        status,
        json!({"success": success, "errors": errors, "messages": [], "result": result}),
    )
}

fn server(state: Arc<Mutex<Cloudflare>>) -> impl Fn(&support::Recorded) -> Answer + Send + Sync {
    move |r| {
        let mut cf = state.lock().unwrap();
        let bearer = r
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_string();
        let invalid = || {
            envelope(
                401,
                false,
                json!([{"code": 1000, "message": "Invalid API Token"}]),
                Value::Null,
            )
        };
        let path = r.path().to_string();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (r.method.as_str(), segments.as_slice()) {
            ("GET", ["client", "v4", "user", "tokens", "verify"])
            | ("GET", ["client", "v4", "accounts", ACCOUNT, "tokens", "verify"]) => {
                match cf.active.get(&bearer) {
                    Some((id, _)) => Answer::json(
                        200,
                        json!({"success": true, "errors": [],
                               "messages": [{"code": 10000, "message": "This API Token is valid and active", "type": null}],
                               "result": {"id": id, "status": "active", "expires_on": EXPIRES}}),
                    ),
                    None => invalid(),
                }
            }
            ("PUT", ["client", "v4", "user", "tokens", id, "value"])
            | ("PUT", ["client", "v4", "accounts", ACCOUNT, "tokens", id, "value"]) => {
                let id = id.to_string();
                if cf.rolled.contains(&bearer) {
                    cf.reuse = true;
                    return invalid();
                }
                let Some((_, may_write)) = cf.active.get(&bearer).cloned() else {
                    return invalid();
                };
                if !may_write {
                    return envelope(
                        403,
                        false,
                        json!([{"code": 9109, "message": "Unauthorized to access requested resource"}]),
                        Value::Null,
                    );
                }
                if serde_json::from_slice::<Value>(&r.body).ok() != Some(json!({})) {
                    return envelope(
                        400,
                        false,
                        json!([{"code": 6007, "message": "Malformed JSON in request body"}]),
                        Value::Null,
                    );
                }
                let Some(old) = cf
                    .active
                    .iter()
                    .find(|(_, (i, _))| *i == id)
                    .map(|(v, _)| v.clone())
                else {
                    return envelope(
                        404,
                        false,
                        json!([{"code": 1003, "message": "Token not found"}]),
                        Value::Null,
                    );
                };
                let n = {
                    let n = cf.rolls.entry(id.clone()).or_default();
                    *n += 1;
                    *n
                };
                // The old value stops working at once; the new one keeps id and grants.
                let grants = cf.active.remove(&old).unwrap();
                cf.rolled.push(old);
                let new = format!("cfut_canaryRolled{n:04}{id}");
                cf.active.insert(new.clone(), grants);
                envelope(200, true, json!([]), json!(new))
            }
            (m, _) => {
                cf.unexpected.push(format!("{m} {path}"));
                envelope(
                    404,
                    false,
                    json!([{"code": 7000, "message": "No route for that URI"}]),
                    Value::Null,
                )
            }
        }
    }
}

fn model() -> Arc<Mutex<Cloudflare>> {
    let mut cf = Cloudflare::default();
    cf.active.insert(FIRST.into(), (ID.into(), true));
    cf.active.insert(WATCHED.into(), (WATCHED_ID.into(), true));
    Arc::new(Mutex::new(cf))
}

/// The config of the rotating `cf` token (value in `dir/cf`) and a watched one.
fn config(url: &str, dir: &Path, max_age: &str) -> String {
    std::fs::write(dir.join("cf"), format!("{FIRST}\n")).unwrap();
    std::fs::write(dir.join("watched"), format!("{WATCHED}\n")).unwrap();
    format!(
        "global:\n  probe_timeout: 5s\nproviders:\n  cf:\n    kind: cloudflare\n    url: {url}\ntokens:\n  - name: cf\n    provider: cf\n    secret: {{file: {cf}}}\n    rotate:\n      max_age: {max_age}\n      rotator: {{kind: cloudflare_roll}}\n      deliver: [{{file: {cf}}}]\n  - name: watched\n    provider: cf\n    secret: {{file: {watched}}}\n",
        cf = dir.join("cf").display(),
        watched = dir.join("watched").display(),
    )
}

#[tokio::test]
async fn a_cloudflare_token_is_rolled_once_when_old_enough_and_the_new_value_works() {
    let state = model();
    let mock = MockServer::start(server(state.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::new(&config(&mock.url(), dir.path(), "2s"));
    h.probe("cf").await;
    h.probe("watched").await;
    // Not old enough yet: nothing is written.
    h.tick().await;
    assert_eq!(h.status("cf").count(RotationResult::Success), 0);
    assert!(mock.requests().iter().all(|r| r.method == "GET"));
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    for _ in 0..3 {
        h.probe("cf").await;
        h.probe("watched").await;
        h.tick().await;
    }
    let status = h.status("cf");
    assert_eq!(status.count(RotationResult::Success), 1, "{status:?}");
    let new = read(dir.path(), "cf");
    {
        let cf = state.lock().unwrap();
        cf.assert_clean(Some(1));
        assert!(cf.active.contains_key(&new), "the delivered value works");
        assert!(!cf.active.contains_key(FIRST), "the old value is dead");
    }
    // The roll used the user path and the token itself; nothing else wrote.
    for r in mock.requests() {
        if r.method == "PUT" {
            assert_eq!(r.path(), format!("/client/v4/user/tokens/{ID}/value"));
            assert_eq!(
                r.header("authorization"),
                Some(format!("Bearer {FIRST}").as_str())
            );
        } else {
            assert_eq!(r.method, "GET");
            assert_eq!(r.path(), "/client/v4/user/tokens/verify");
        }
    }
    // The record is finished: no value kept; nothing in the status, the state file or a URL.
    assert!(h.saved().tokens["cf"].pending.is_none());
    let state_file = std::fs::read_to_string(h.storage.path().join("rotation.json")).unwrap();
    for value in [FIRST, WATCHED, new.as_str()] {
        mock.assert_safe(&[], value);
        assert!(!format!("{status:?}").contains(value));
        assert!(!state_file.contains(value));
    }
}

#[tokio::test]
async fn an_account_token_is_rolled_with_a_separate_credential_and_a_missing_permission_is_named() {
    let state = model();
    {
        // The account token itself may not write API tokens; ADMIN may.
        let mut cf = state.lock().unwrap();
        cf.active.insert(FIRST.into(), (ID.into(), false));
        cf.active.insert(ADMIN.into(), ("adm".into(), true));
    }
    let mock = MockServer::start(server(state.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin"), format!("{ADMIN}\n")).unwrap();
    let base = config(&mock.url(), dir.path(), "30d").replace(
        "kind: cloudflare\n",
        &format!("kind: cloudflare\n    account_id: {ACCOUNT}\n"),
    );
    let with_credential = base.replace(
        "{kind: cloudflare_roll}",
        &format!(
            "{{kind: cloudflare_roll, credential: {{file: {}}}}}",
            dir.path().join("admin").display()
        ),
    );

    // Without the credential the token's own roll is refused, and the permission named.
    let mut h = Harness::new(&base);
    h.probe("cf").await;
    let result = h.rotate_now("cf").await;
    assert_eq!(result, Some(RotationResult::Failure));
    let record = &h.saved().tokens["cf"];
    assert_eq!(record.step, Step::Idle);
    let error = record.last_error.clone().unwrap();
    assert!(error.contains("API Tokens Write"), "{error}");
    assert_eq!(
        read(dir.path(), "cf"),
        FIRST,
        "a failed roll keeps the value"
    );

    let mut h = Harness::new(&with_credential);
    h.probe("cf").await;
    let result = h.rotate_now("cf").await;
    assert_eq!(result, Some(RotationResult::Success), "{:?}", h.saved());
    let new = read(dir.path(), "cf");
    let cf = state.lock().unwrap();
    cf.assert_clean(Some(1));
    assert!(cf.active.contains_key(&new));
    let puts: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 2);
    for put in &puts {
        assert_eq!(
            put.path(),
            format!("/client/v4/accounts/{ACCOUNT}/tokens/{ID}/value")
        );
    }
    assert_eq!(
        puts[1].header("authorization"),
        Some(format!("Bearer {ADMIN}").as_str())
    );
    for value in [FIRST, ADMIN, new.as_str()] {
        mock.assert_safe(&[], value);
        assert!(!error.contains(value));
    }
}

#[tokio::test]
async fn a_crash_during_the_roll_is_not_repeated() {
    let state = model();
    let mock = MockServer::start(server(state.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::new(&config(&mock.url(), dir.path(), "1s"));
    // What a kill -9 between saving `creating` and Cloudflare's answer leaves.
    h.crashed_while_creating("cf");
    h.probe("cf").await;
    h.tick().await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    h.probe("cf").await;
    h.tick().await;
    assert_eq!(h.saved().tokens["cf"].step, Step::Interrupted);
    assert!(h.status("cf").failing());
    state.lock().unwrap().assert_clean(None);
    assert_eq!(read(dir.path(), "cf"), FIRST);
}

/// kill -9 right after Cloudflare's answer was saved: a restarted daemon delivers the saved
/// value and never rolls again (a second roll would lose the first new value). The old and
/// new values appear nowhere: not in the log, metrics, API, page or finished state file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_after_issued_delivers_the_saved_value_once_and_shows_no_value() {
    let state = model();
    let mock = MockServer::start(server(state.clone())).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let once = "global:\n  probe_interval: 1h\n  min_probe_interval: 1h\n";
    let yaml = config(&mock.url(), dir, "1s").replace("global:\n", once);
    std::fs::write(dir.join("config.yml"), &yaml).unwrap();
    let record = crash_at(dir, "cf", "issued");
    assert_eq!(read(dir, "cf"), FIRST, "not delivered before the crash");
    let issued = record.pending.unwrap().value.unwrap();
    assert_mode(
        &dir.join("data/rotation.json"),
        0o600,
        "the issued value is in a 0600 record only",
    );
    // The restart resumes from the record; its plan is far off, so only the resumed
    // rotation can write.
    let success = "api_token_rotations_total{token=\"cf\",provider=\"cf\",result=\"success\"} 1\n";
    let (daemon, metrics) =
        restart(dir, &yaml.replace("max_age: 1s", "max_age: 1h"), success).await;
    let new = read(dir, "cf");
    assert_eq!(new, issued, "the saved value is the one delivered");
    {
        let cf = state.lock().unwrap();
        cf.assert_clean(Some(1));
        assert!(cf.active.contains_key(&new), "the delivered value works");
    }
    let shown = Shown::of(&daemon, dir, metrics);
    let values = [FIRST, WATCHED, new.as_str()];
    for value in values {
        mock.assert_safe(&[], value);
    }
    support::assert_hidden_in(&shown.places, &values);
    let log = shown.log();
    assert!(
        log.contains("token=cf") && log.contains("step=finish"),
        "{log}"
    );
}
