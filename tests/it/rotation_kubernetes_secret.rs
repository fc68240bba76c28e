//! The `kubernetes_secret` delivery target against a local server answering as the
//! Kubernetes API documents: the Secret read (`GET /api/v1/namespaces/{ns}/secrets/{name}`),
//! patched with `application/merge-patch+json` whose `metadata.resourceVersion` is a
//! precondition (409 Conflict with a `Status` body when the object changed), 404/403 as
//! `Status` objects, and the restart as a strategic merge patch of a Deployment's pod
//! template annotations. Any call outside those fails the test.

use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::{Value, json};

use crate::rotation_gitlab::{FIRST, Gitlab, server as gitlab_server};
use crate::rotation_vault::Harness;
use crate::support::{self, Answer, MockServer};
use api_token_exporter::model::rotation::RotationResult;
use api_token_exporter::rotate::deliver::{self, kubernetes_secret::RESTART_ANNOTATION};
use api_token_exporter::schema::rotate::{Deliver, KubernetesSecret};
use api_token_exporter::secret::{FileSource, SecretSource};

const WRITER: &str = "k8s-writer-canary-token";
const SECRET: &str = "/api/v1/namespaces/apps/secrets/ci-token";
const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/apps/deployments/web";
const FORBIDDEN: &str = "/apis/apps/v1/namespaces/apps/deployments/other";

struct Cluster {
    data: serde_json::Map<String, Value>,
    version: u64,
    /// Someone else writes the Secret between our read and our patch.
    race: bool,
    patches: u32,
    annotation: Option<String>,
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn status(code: u16, reason: &str, message: &str) -> Answer {
    Answer::json(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

fn secret(c: &Cluster) -> Answer {
    Answer::json(
        200,
        json!({"kind": "Secret", "apiVersion": "v1", "type": "Opaque",
               "metadata": {"name": "ci-token", "namespace": "apps", "resourceVersion": c.version.to_string()},
               "data": c.data}),
    )
}

fn api(state: Arc<Mutex<Cluster>>) -> impl Fn(&support::Recorded) -> Answer + Send + Sync {
    move |r| {
        let mut c = state.lock().unwrap();
        if r.header("authorization") != Some(&format!("Bearer {WRITER}")) {
            return status(401, "Unauthorized", "Unauthorized");
        }
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        match (r.method.as_str(), r.path()) {
            ("GET", SECRET) => {
                let answer = secret(&c);
                if c.race {
                    c.version += 1;
                }
                answer
            }
            ("PATCH", SECRET) => {
                assert_eq!(
                    r.header("content-type"),
                    Some("application/merge-patch+json")
                );
                if body["metadata"]["resourceVersion"].as_str() != Some(&c.version.to_string()) {
                    return status(
                        409,
                        "Conflict",
                        "Operation cannot be fulfilled on secrets \"ci-token\": the object has been modified; please apply your changes to the latest version and try again",
                    );
                }
                for (k, v) in body["data"].as_object().unwrap() {
                    c.data.insert(k.clone(), v.clone());
                }
                c.version += 1;
                c.patches += 1;
                secret(&c)
            }
            ("GET", p) | ("PATCH", p) if p.starts_with("/api/v1/namespaces/apps/secrets/") => {
                status(404, "NotFound", "secrets \"x\" not found")
            }
            ("PATCH", DEPLOYMENT) => {
                assert_eq!(
                    r.header("content-type"),
                    Some("application/strategic-merge-patch+json")
                );
                c.annotation = body["spec"]["template"]["metadata"]["annotations"]
                    [RESTART_ANNOTATION]
                    .as_str()
                    .map(str::to_string);
                Answer::json(200, json!({"kind": "Deployment", "apiVersion": "apps/v1"}))
            }
            ("PATCH", FORBIDDEN) => status(
                403,
                "Forbidden",
                "deployments.apps \"other\" is forbidden: User cannot patch resource",
            ),
            (m, p) => panic!("a call outside the allowed list: {m} {p}"),
        }
    }
}

fn cluster() -> Arc<Mutex<Cluster>> {
    let mut data = serde_json::Map::new();
    data.insert("token".into(), Value::String(b64(FIRST)));
    data.insert("user".into(), Value::String(b64("ci-bot")));
    Arc::new(Mutex::new(Cluster {
        data,
        version: 100,
        race: false,
        patches: 0,
        annotation: None,
    }))
}

fn allowed(mock: &MockServer) {
    for r in mock.requests() {
        let ok = matches!(
            (r.method.as_str(), r.path()),
            ("GET", SECRET)
                | ("PATCH", SECRET)
                | ("PATCH", DEPLOYMENT)
                | ("PATCH", FORBIDDEN)
                | ("GET", "/api/v1/namespaces/apps/secrets/absent")
        );
        assert!(ok, "{} {}", r.method, r.path());
        assert!(!r.uri.to_string().contains(WRITER));
    }
}

fn target(url: &str, token: &std::path::Path, restart: &[&str]) -> KubernetesSecret {
    KubernetesSecret {
        url: url.into(),
        token: SecretSource::File(FileSource::new(token)),
        ca_file: None,
        namespace: "apps".into(),
        name: "ci-token".into(),
        key: "token".into(),
        restart: restart
            .iter()
            .map(|n| ("deployments", n.to_string()))
            .collect(),
    }
}

#[tokio::test]
async fn one_key_is_patched_with_its_resource_version_and_the_workload_restarted_once() {
    let state = cluster();
    let mock = MockServer::start(api(state.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("k8s-token");
    std::fs::write(&token, WRITER).unwrap();
    let new = "glpat-newCanaryK8s0001";
    let k = Deliver::KubernetesSecret(Box::new(target(&mock.url(), &token, &["web"])));
    deliver::deliver(&k, "ci", new).await.unwrap();
    {
        let c = state.lock().unwrap();
        assert_eq!(c.data["token"], b64(new));
        assert_eq!(c.data["user"], b64("ci-bot"));
        assert_eq!((c.version, c.patches), (101, 1));
        let a = c.annotation.clone().unwrap();
        assert!(a.starts_with("sha256-") && !a.contains(new), "{a}");
    }
    // Delivered again (a resumed rotation): no second patch; the same annotation.
    let before = state.lock().unwrap().annotation.clone();
    deliver::deliver(&k, "ci", new).await.unwrap();
    assert_eq!(state.lock().unwrap().patches, 1);
    assert_eq!(state.lock().unwrap().annotation, before);

    // Someone else wrote after our read: 409, and their write stays.
    state.lock().unwrap().race = true;
    let err = deliver::deliver(&k, "ci", "glpat-newCanaryK8s0002")
        .await
        .unwrap_err();
    assert!(
        err.contains("409 Conflict") && err.contains("apps/ci-token"),
        "{err}"
    );
    assert_eq!(state.lock().unwrap().data["token"], b64(new));
    state.lock().unwrap().race = false;

    // A workload RBAC does not allow, a Secret that does not exist: clear, named errors.
    let k = Deliver::KubernetesSecret(Box::new(target(&mock.url(), &token, &["other"])));
    let forbidden = deliver::deliver(&k, "ci", new).await.unwrap_err();
    assert!(
        forbidden.contains("403") && forbidden.contains("deployments/other"),
        "{forbidden}"
    );
    let mut missing = target(&mock.url(), &token, &[]);
    missing.name = "absent".into();
    let err = deliver::deliver(&Deliver::KubernetesSecret(Box::new(missing)), "ci", new)
        .await
        .unwrap_err();
    assert!(err.contains("404"), "{err}");
    for e in [&err, &forbidden] {
        assert!(!e.contains(new) && !e.contains(WRITER));
    }
    allowed(&mock);
}

#[tokio::test]
async fn a_rotated_gitlab_token_reaches_the_secret_and_the_file_it_is_read_from() {
    let state = cluster();
    let mock = MockServer::start(api(state.clone())).await;
    let gl = Arc::new(Mutex::new(Gitlab {
        active: vec![FIRST.into()],
        ..Gitlab::default()
    }));
    let gitlab = MockServer::start(gitlab_server(gl.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("k8s-token");
    std::fs::write(&token, WRITER).unwrap();
    let access = dir.path().join("ci");
    std::fs::write(&access, format!("{FIRST}\n")).unwrap();
    let yaml = format!(
        "providers:\n  gl:\n    kind: gitlab\n    url: {gl}\ntokens:\n  - name: ci\n    provider: gl\n    secret: {{file: {access}}}\n    rotate:\n      before: 3d\n      rotator: {{kind: gitlab_rotate, expires_in: 30d}}\n      deliver:\n        - file: {access}\n        - kubernetes_secret: {{url: {k8s}, token: {{file: {token}}}, namespace: apps, name: ci-token, key: token, restart: [{{kind: Deployment, name: web}}]}}\n",
        gl = gitlab.url(),
        k8s = mock.url(),
        access = access.display(),
        token = token.display(),
    );
    let mut h = Harness::new(&yaml);
    for _ in 0..2 {
        h.probe("ci").await;
        h.tick().await;
    }
    assert_eq!(
        h.status("ci").count(RotationResult::Success),
        1,
        "{:?}",
        h.saved()
    );
    let new = std::fs::read_to_string(&access).unwrap().trim().to_string();
    assert_ne!(new, FIRST);
    let c = state.lock().unwrap();
    assert_eq!(c.data["token"], b64(&new));
    assert_eq!(c.data["user"], b64("ci-bot"));
    assert_eq!(c.patches, 1);
    assert!(c.annotation.is_some());
    assert_eq!(gl.lock().unwrap().rotations, 1);
    drop(c);
    allowed(&mock);
    for value in [FIRST, new.as_str(), WRITER] {
        gitlab.assert_safe(&[], value);
        assert!(!format!("{:?}", h.status("ci")).contains(value));
    }
}
