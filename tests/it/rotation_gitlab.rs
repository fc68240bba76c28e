//! `gitlab_rotate` against a local server answering as GitLab's personal access token API
//! documents (`GET /api/v4/personal_access_tokens/self`, `POST .../self/rotate` with
//! `PRIVATE-TOKEN`, the token JSON with its new `token`, 401 for a revoked token), with
//! GitLab's reuse detection modelled: rotating again with an already-rotated token revokes
//! the new one too (gitlab-org/gitlab#524639). The test fails if that ever happens.

use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use serde_json::json;

use crate::rotation_vault::Harness;
use crate::support::{self, Answer, MockServer};
use api_token_exporter::model::rotation::{RotationResult, Step};

pub const FIRST: &str = "glpat-canaryFirstToken0001";
const WATCHED: &str = "glpat-canaryWatchedOnly0002";

#[derive(Default)]
pub struct Gitlab {
    pub active: Vec<String>,
    pub revoked: Vec<String>,
    pub rotations: u32,
    pub reuse_detected: bool,
    pub asked_expiry: Option<String>,
}

fn date_in(days: i64) -> String {
    Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24 * days))
        .unwrap()
        .strftime("%Y-%m-%d")
        .to_string()
}

pub fn server(state: Arc<Mutex<Gitlab>>) -> impl Fn(&support::Recorded) -> Answer + Send + Sync {
    move |r| {
        let mut g = state.lock().unwrap();
        let token = r.header("private-token").unwrap_or_default().to_string();
        let unauthorized = || Answer::json(401, json!({"message": "401 Unauthorized"}));
        match (r.method.as_str(), r.path()) {
            ("GET", "/api/v4/personal_access_tokens/self") => {
                if !g.active.contains(&token) {
                    return unauthorized();
                }
                // The first token expires tomorrow; rotated ones in 30 days.
                let days = if token == FIRST || token == WATCHED {
                    1
                } else {
                    30
                };
                Answer::json(
                    200,
                    json!({"id": 42, "name": "ci", "revoked": false, "created_at": "2026-01-01T00:00:00.000Z",
                           "scopes": ["api"], "user_id": 7, "last_used_at": null, "active": true,
                           "expires_at": date_in(days)}),
                )
            }
            ("POST", "/api/v4/personal_access_tokens/self/rotate") => {
                if g.revoked.contains(&token) {
                    // Reuse detection: the token rotated from this one is revoked as well.
                    g.reuse_detected = true;
                    let descendants: Vec<String> = g
                        .active
                        .iter()
                        .filter(|t| t.starts_with("glpat-new"))
                        .cloned()
                        .collect();
                    g.active.retain(|t| !descendants.contains(t));
                    g.revoked.extend(descendants);
                    return unauthorized();
                }
                if !g.active.contains(&token) {
                    return unauthorized();
                }
                let body: serde_json::Value =
                    serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null);
                g.asked_expiry = body["expires_at"].as_str().map(str::to_string);
                g.rotations += 1;
                let new = format!("glpat-newCanary{:010}", g.rotations);
                g.active.retain(|t| *t != token);
                g.revoked.push(token);
                g.active.push(new.clone());
                Answer::json(
                    200,
                    json!({"id": 43, "name": "ci", "revoked": false, "created_at": "2026-01-01T00:00:00.000Z",
                           "scopes": ["api"], "user_id": 7, "last_used_at": null, "active": true,
                           "expires_at": g.asked_expiry.clone().unwrap_or_else(|| date_in(7)),
                           "token": new}),
                )
            }
            _ => Answer::json(404, json!({"message": "404 Not Found"})),
        }
    }
}

async fn setup() -> (MockServer, Arc<Mutex<Gitlab>>, tempfile::TempDir, Harness) {
    let state = Arc::new(Mutex::new(Gitlab {
        active: vec![FIRST.into(), WATCHED.into()],
        ..Gitlab::default()
    }));
    let mock = MockServer::start(server(state.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ci"), format!("{FIRST}\n")).unwrap();
    std::fs::write(dir.path().join("watched"), format!("{WATCHED}\n")).unwrap();
    let access = dir.path().join("ci");
    let yaml = format!(
        "providers:\n  gl:\n    kind: gitlab\n    url: {url}\ntokens:\n  - name: ci\n    provider: gl\n    secret: {{file: {access}}}\n    rotate:\n      before: 3d\n      rotator: {{kind: gitlab_rotate, expires_in: 30d}}\n      deliver: [{{file: {access}}}]\n  - name: watched\n    provider: gl\n    secret: {{file: {watched}}}\n",
        url = mock.url(),
        access = access.display(),
        watched = dir.path().join("watched").display(),
    );
    let h = Harness::new(&yaml);
    (mock, state, dir, h)
}

#[tokio::test]
async fn a_gitlab_token_is_rotated_once_and_never_rotated_again_with_the_old_value() {
    let (mock, state, dir, mut h) = setup().await;
    for _ in 0..3 {
        h.probe("ci").await;
        h.probe("watched").await;
        h.tick().await;
    }
    let status = h.status("ci");
    assert_eq!(status.count(RotationResult::Success), 1, "{status:?}");
    let new = {
        let g = state.lock().unwrap();
        assert!(
            !g.reuse_detected,
            "an already-rotated token was used to rotate again"
        );
        assert_eq!(g.rotations, 1);
        assert_eq!(g.asked_expiry.as_deref(), Some(date_in(30).as_str()));
        let new = std::fs::read_to_string(dir.path().join("ci")).unwrap();
        assert_eq!(new.trim(), "glpat-newCanary0000000001");
        assert!(g.active.contains(&new.trim().to_string()));
        new
    };
    // Only the rotating token wrote; the watched one was only looked up.
    for r in mock.requests() {
        if r.method == "POST" {
            assert_eq!(r.path(), "/api/v4/personal_access_tokens/self/rotate");
            assert_eq!(r.header("private-token"), Some(FIRST));
        } else {
            assert_eq!(r.path(), "/api/v4/personal_access_tokens/self");
        }
    }
    for value in [FIRST, WATCHED, new.trim()] {
        mock.assert_safe(&[], value);
        assert!(!format!("{status:?}").contains(value));
    }
    // The model is live: rotating with the old token now would revoke the new one.
    let code = reqwest::Client::new()
        .post(format!(
            "{}/api/v4/personal_access_tokens/self/rotate",
            mock.url()
        ))
        .header("private-token", FIRST)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(code, 401);
    assert!(
        !state
            .lock()
            .unwrap()
            .active
            .contains(&new.trim().to_string())
    );
}

#[tokio::test]
async fn a_crash_during_the_gitlab_call_is_not_repeated() {
    let (_mock, state, dir, mut h) = setup().await;
    // What a kill -9 between saving `creating` and GitLab's answer leaves.
    h.crashed_while_creating("ci");
    h.probe("ci").await;
    h.tick().await;
    h.tick().await;
    assert_eq!(h.saved().tokens["ci"].step, Step::Interrupted);
    assert!(h.status("ci").failing());
    assert_eq!(state.lock().unwrap().rotations, 0);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ci"))
            .unwrap()
            .trim(),
        FIRST
    );
}
