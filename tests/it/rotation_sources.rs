//! A source's `rotate:` applied to the tokens it discovers with their value: a directory's
//! files (a real OpenBao renewing, a GitLab token rotated back into its file, with GitLab's
//! reuse detection modelled by `rotation_gitlab::server`) and a Kubernetes Secret's key
//! (rotated back into the Secret through a server answering as the API server documents).
//! Tokens of a source without `rotate:` are only looked up. A discovered token's record is
//! kept by identity: one that leaves the listing mid-rotation resumes when it returns, under
//! any source name, and is never rotated again with its old value.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::{Value, json};

use crate::rotation_gitlab::{FIRST, Gitlab, server as gitlab_server};
use crate::rotation_vault::Harness;
use crate::support::{self, Answer, MockServer};
use api_token_exporter::config::Config;
use api_token_exporter::model::rotation::{RotationResult, Step};
use api_token_exporter::provider::BuildContext;
use api_token_exporter::sources::{self, Listing};
use support::bao::Bao;

const WATCHED: &str = "glpat-canaryWatchedOnly0002";
const NEW: &str = "glpat-newCanary0000000001";

/// Lists every source of `base` (as the daemon's listing tasks do), composes, and hands the
/// result to the harness as the daemon hands it to the scheduler and the rotation task.
async fn discover(h: &mut Harness, base: &Config) -> sources::rotate::Notes {
    let mut listings = BTreeMap::new();
    for s in &base.sources {
        let listing = sources::list(s, base, &BuildContext::new())
            .await
            .unwrap_or_else(|e| panic!("{}: {}", s.name, e.detail));
        listings.insert(s.name.clone(), listing);
    }
    apply(h, base, &listings)
}

fn apply(
    h: &mut Harness,
    base: &Config,
    listings: &BTreeMap<String, Listing>,
) -> sources::rotate::Notes {
    let (config, _, notes) = sources::compose_noted(base, listings);
    h.inventory.config = Arc::new(config);
    h.store.reconcile(&h.inventory.config);
    notes
}

fn parse(yaml: &str) -> Config {
    Config::parse(yaml).unwrap_or_else(|e| panic!("config does not load:\n{e}"))
}

fn canonical_key(path: &std::path::Path) -> String {
    format!("file:{}", std::fs::canonicalize(path).unwrap().display())
}

#[tokio::test]
async fn a_directory_source_renews_its_vault_tokens_on_a_real_openbao() {
    let Some(bao) = Bao::start().await else {
        return;
    };
    let create = || {
        bao.create(
            None,
            json!({"ttl": "60s", "explicit_max_ttl": "2h", "renewable": true, "policies": ["default"]}),
        )
    };
    let (renewed, _) = create().await;
    let (watched, _) = create().await;
    let agents = tempfile::tempdir().unwrap();
    let plain = tempfile::tempdir().unwrap();
    std::fs::write(agents.path().join("agent"), format!("{renewed}\n")).unwrap();
    std::fs::write(plain.path().join("agent"), format!("{watched}\n")).unwrap();
    let yaml = format!(
        "global:\n  probe_timeout: 5s\nproviders:\n  bao:\n    kind: vault\n    url: {addr}\nsources:\n  - name: agents\n    kind: directory\n    path: {a}\n    provider: bao\n    rotate:\n      before: 1h\n      rotator: {{kind: vault_renew, increment: 10m}}\n  - name: plain\n    kind: directory\n    path: {p}\n    provider: bao\n",
        addr = bao.addr,
        a = agents.path().display(),
        p = plain.path().display(),
    );
    let base = parse(&yaml);
    let mut h = Harness::new(&yaml);
    let notes = discover(&mut h, &base).await;
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(
        h.inventory.config.rotations.keys().collect::<Vec<_>>(),
        ["agents/agent"]
    );
    h.probe("agents/agent").await;
    h.probe("plain/agent").await;
    h.tick().await;
    let status = h.status("agents/agent");
    assert_eq!(status.count(RotationResult::Success), 1, "{status:?}");
    let (s, v) = bao
        .call("GET", "auth/token/lookup-self", &renewed, None, None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["data"]["ttl"].as_i64().unwrap() > 500, "{v}");
    // The token of the source without rotate: is watched, never renewed.
    let (_, v) = bao
        .call("GET", "auth/token/lookup-self", &watched, None, None)
        .await;
    assert!(v["data"]["ttl"].as_i64().unwrap() <= 60, "{v}");
    assert!(h.store.read().tokens["plain/agent"].rotation.is_none());
    // The record is the file's, not the name's; it holds no value.
    let saved = h.saved();
    assert!(saved.tokens.is_empty(), "{saved:?}");
    let key = canonical_key(&agents.path().join("agent"));
    assert_eq!(saved.discovered[&key].step, Step::Idle);
    let text = std::fs::read_to_string(h.storage.path().join("rotation.json")).unwrap();
    let shown = h.metrics();
    for value in [&renewed, &watched] {
        assert!(!text.contains(value.as_str()) && !shown.contains(value.as_str()));
    }
    assert!(shown.contains(
        "api_token_rotations_total{token=\"agents/agent\",provider=\"bao\",result=\"success\"} 1\n"
    ));
}

async fn gitlab(first_active: bool) -> (MockServer, Arc<Mutex<Gitlab>>) {
    let state = Arc::new(Mutex::new(Gitlab {
        active: if first_active {
            vec![FIRST.into(), WATCHED.into()]
        } else {
            vec![WATCHED.into()]
        },
        ..Gitlab::default()
    }));
    (MockServer::start(gitlab_server(state.clone())).await, state)
}

fn directory_yaml(
    url: &str,
    name: &str,
    rotating: &std::path::Path,
    plain: &std::path::Path,
) -> String {
    format!(
        "providers:\n  gl:\n    kind: gitlab\n    url: {url}\n  gh:\n    kind: github\n    url: http://127.0.0.1:1\nsources:\n  - name: {name}\n    kind: directory\n    path: {r}\n    rotate:\n      before: 3d\n      rotator: {{kind: gitlab_rotate, expires_in: 30d}}\n  - name: plain\n    kind: directory\n    path: {p}\n",
        r = rotating.display(),
        p = plain.display(),
    )
}

/// Only `self` lookups, and one rotate call made with the rotating token itself.
fn only_allowed_calls(mock: &MockServer) {
    for r in mock.requests() {
        match r.method.as_str() {
            "POST" => {
                assert_eq!(r.path(), "/api/v4/personal_access_tokens/self/rotate");
                assert_eq!(r.header("private-token"), Some(FIRST));
            }
            "GET" => assert_eq!(r.path(), "/api/v4/personal_access_tokens/self"),
            m => panic!("a call outside the allowed list: {m} {}", r.path()),
        }
    }
    for value in [FIRST, WATCHED, NEW] {
        mock.assert_safe(&[], value);
    }
}

#[tokio::test]
async fn a_directory_source_rotates_a_gitlab_token_back_into_its_file() {
    let (mock, state) = gitlab(true).await;
    let rotating = tempfile::tempdir().unwrap();
    let plain = tempfile::tempdir().unwrap();
    let deploy = rotating.path().join("deploy");
    std::fs::write(&deploy, format!("{FIRST}\n")).unwrap();
    std::fs::set_permissions(&deploy, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    std::fs::write(plain.path().join("watched"), format!("{WATCHED}\n")).unwrap();
    // A GitHub token in the same directory: gitlab_rotate does not suit it.
    std::fs::write(
        rotating.path().join("gh"),
        "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB\n",
    )
    .unwrap();
    let yaml = directory_yaml(&mock.url(), "ci", rotating.path(), plain.path());
    let base = parse(&yaml);
    let mut h = Harness::new(&yaml);
    let notes = discover(&mut h, &base).await;
    assert_eq!(notes["ci"].len(), 1, "{notes:?}");
    assert_eq!(
        (notes["ci"][0].token.as_str(), notes["ci"][0].reason),
        ("ci/gh", "rotator_unfit")
    );
    assert!(h.inventory.config.token("ci/gh").is_some(), "still watched");
    assert!(!h.inventory.config.rotations.contains_key("ci/gh"));
    let status = api_token_exporter::metrics::ExporterStatus::new();
    status
        .sources
        .configure([("ci", "directory"), ("plain", "directory")]);
    status.sources.not_rotated(&notes);
    let shown = api_token_exporter::metrics::render(&api_token_exporter::metrics::Metrics::new(
        h.store.clone(),
        Arc::new(status),
    ));
    assert!(
        shown.contains("api_token_source_tokens_not_rotated{source=\"ci\",kind=\"directory\",reason=\"rotator_unfit\"} 1\n"),
        "{shown}"
    );
    assert!(!shown.contains("api_token_source_tokens_not_rotated{source=\"plain\""));
    for _ in 0..3 {
        h.probe("ci/deploy").await;
        h.probe("plain/watched").await;
        h.tick().await;
    }
    let status = h.status("ci/deploy");
    assert_eq!(status.count(RotationResult::Success), 1, "{status:?}");
    {
        let g = state.lock().unwrap();
        assert!(!g.reuse_detected, "an already-rotated token was used again");
        assert_eq!(g.rotations, 1);
    }
    // Back into the file it was found in, its mode kept.
    assert_eq!(std::fs::read_to_string(&deploy).unwrap().trim(), NEW);
    crate::rotation_crash::assert_mode(&deploy, 0o640, "the delivered file");
    assert_eq!(
        std::fs::read_dir(rotating.path()).unwrap().count(),
        2,
        "no temporary file left beside it"
    );
    only_allowed_calls(&mock);
    // The next listing reads the new value: same token (same identity), no second rotation.
    discover(&mut h, &base).await;
    h.probe("ci/deploy").await;
    h.tick().await;
    assert_eq!(h.status("ci/deploy").count(RotationResult::Success), 1);
    assert_eq!(state.lock().unwrap().rotations, 1);
    assert!(h.store.read().tokens["plain/watched"].rotation.is_none());
    // Canary: neither value in the record, the metrics or the status.
    let text = std::fs::read_to_string(h.storage.path().join("rotation.json")).unwrap();
    let shown = h.metrics();
    for value in [FIRST, WATCHED, NEW] {
        assert!(!text.contains(value), "{text}");
        assert!(!shown.contains(value));
        assert!(!format!("{:?}", h.status("ci/deploy")).contains(value));
    }
}

#[tokio::test]
async fn a_discovered_token_that_leaves_mid_rotation_resumes_when_it_returns() {
    // GitLab answered the rotate call before a crash: FIRST is revoked, NEW is live, and
    // the record holds NEW (`issued`).
    let (mock, state) = gitlab(false).await;
    state.lock().unwrap().active.push(NEW.into());
    let rotating = tempfile::tempdir().unwrap();
    let plain = tempfile::tempdir().unwrap();
    let deploy = rotating.path().join("deploy");
    std::fs::write(&deploy, format!("{FIRST}\n")).unwrap();
    let yaml = directory_yaml(&mock.url(), "ci", rotating.path(), plain.path());
    let base = parse(&yaml);
    let mut h = Harness::new(&yaml);
    let key = canonical_key(&deploy);
    std::fs::write(
        h.storage.path().join("rotation.json"),
        json!({"discovered": {&key: {"step": "issued", "started_at": "2026-01-01T00:00:00Z",
               "pending": {"value": NEW}}}})
        .to_string(),
    )
    .unwrap();
    // A listing without it (the file was moved away for a while): nothing moves.
    let empty = BTreeMap::from([
        ("ci".to_string(), Listing::default()),
        ("plain".to_string(), Listing::default()),
    ]);
    apply(&mut h, &base, &empty);
    h.tick().await;
    assert_eq!(h.saved().discovered[&key].step, Step::Issued);
    assert_eq!(std::fs::read_to_string(&deploy).unwrap().trim(), FIRST);
    // It returns, under a renamed source: the record follows the file, and the issued value
    // is delivered and tested; GitLab is not asked again.
    let moved = parse(&directory_yaml(
        &mock.url(),
        "moved",
        rotating.path(),
        plain.path(),
    ));
    discover(&mut h, &moved).await;
    h.probe("moved/deploy").await;
    h.tick().await;
    let status = h.status("moved/deploy");
    assert_eq!(status.count(RotationResult::Success), 1, "{status:?}");
    assert_eq!(std::fs::read_to_string(&deploy).unwrap().trim(), NEW);
    let saved = h.saved();
    assert_eq!(saved.discovered[&key].step, Step::Idle);
    assert!(saved.discovered[&key].pending.is_none());
    assert_eq!(state.lock().unwrap().rotations, 0);
    assert!(mock.requests().iter().all(|r| r.method == "GET"));

    // A crash while GitLab was being asked (`creating`): the token returns, and the call is
    // not repeated with the old value; it waits for an operator.
    std::fs::write(&deploy, format!("{FIRST}\n")).unwrap();
    std::fs::write(
        h.storage.path().join("rotation.json"),
        json!({"discovered": {&key: {"step": "creating", "started_at": "2026-01-01T00:00:00Z"}}})
            .to_string(),
    )
    .unwrap();
    apply(&mut h, &base, &empty);
    discover(&mut h, &base).await;
    h.probe("ci/deploy").await;
    h.tick().await;
    h.tick().await;
    assert_eq!(h.saved().discovered[&key].step, Step::Interrupted);
    assert!(h.status("ci/deploy").failing());
    assert_eq!(state.lock().unwrap().rotations, 0);
    assert!(mock.requests().iter().all(|r| r.method == "GET"));
}

// --- kubernetes_secrets ---------------------------------------------------------------

const CREDENTIAL: &str = "k8s-source-canary-credential";
const LIST: &str = "/api/v1/namespaces/apps/secrets";
const SECRET: &str = "/api/v1/namespaces/apps/secrets/ci-token";
const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/apps/deployments/web";

struct Cluster {
    data: serde_json::Map<String, Value>,
    version: u64,
    annotation: Option<String>,
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn k8s_status(code: u16, reason: &str) -> Answer {
    Answer::json(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": reason, "reason": reason, "code": code}),
    )
}

fn object(c: &Cluster) -> Value {
    json!({"kind": "Secret", "apiVersion": "v1", "type": "Opaque",
           "metadata": {"name": "ci-token", "namespace": "apps", "resourceVersion": c.version.to_string(),
                        "labels": {"api-token-exporter.io/watch": "true"},
                        "annotations": {"api-token-exporter.io/provider": "gl"}},
           "data": c.data})
}

/// The API server: a labelled Secret list (one page), the Secret read and merge-patched
/// with a `resourceVersion` precondition, a Deployment's pod template annotated.
fn api(state: Arc<Mutex<Cluster>>) -> impl Fn(&support::Recorded) -> Answer + Send + Sync {
    move |r| {
        let mut c = state.lock().unwrap();
        if r.header("authorization") != Some(&format!("Bearer {CREDENTIAL}")) {
            return k8s_status(401, "Unauthorized");
        }
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        match (r.method.as_str(), r.path()) {
            ("GET", LIST) => Answer::json(
                200,
                json!({"kind": "SecretList", "apiVersion": "v1",
                       "metadata": {"resourceVersion": c.version.to_string()},
                       "items": [object(&c)]}),
            ),
            ("GET", SECRET) => Answer::json(200, object(&c)),
            ("PATCH", SECRET) => {
                assert_eq!(
                    r.header("content-type"),
                    Some("application/merge-patch+json")
                );
                if body["metadata"]["resourceVersion"].as_str() != Some(&c.version.to_string()) {
                    return k8s_status(409, "Conflict");
                }
                for (k, v) in body["data"].as_object().unwrap() {
                    c.data.insert(k.clone(), v.clone());
                }
                c.version += 1;
                Answer::json(200, object(&c))
            }
            ("PATCH", DEPLOYMENT) => {
                assert_eq!(
                    r.header("content-type"),
                    Some("application/strategic-merge-patch+json")
                );
                c.annotation = body["spec"]["template"]["metadata"]["annotations"]
                    ["api-token-exporter/rotated"]
                    .as_str()
                    .map(str::to_string);
                Answer::json(200, json!({"kind": "Deployment", "apiVersion": "apps/v1"}))
            }
            (m, p) => panic!("a call outside the allowed list: {m} {p}"),
        }
    }
}

#[tokio::test]
async fn a_kubernetes_secrets_source_rotates_a_key_back_into_its_secret() {
    let (gl, state) = gitlab(true).await;
    let mut data = serde_json::Map::new();
    data.insert("token".into(), Value::String(b64(FIRST)));
    data.insert("user".into(), Value::String(b64("ci-bot")));
    let cluster = Arc::new(Mutex::new(Cluster {
        data,
        version: 100,
        annotation: None,
    }));
    let kube = MockServer::start(api(cluster.clone())).await;
    let files = support::SecretFiles::new();
    let yaml = format!(
        "providers:\n  gl:\n    kind: gitlab\n    url: {gl}\nsources:\n  - name: cluster\n    kind: kubernetes_secrets\n    url: {kube}\n    credential: {cred}\n    label_selector: api-token-exporter.io/watch=true\n    namespaces: [apps]\n    rotate:\n      before: 3d\n      rotator: {{kind: gitlab_rotate, expires_in: 30d}}\n      restart: [{{kind: Deployment, name: web}}]\n",
        gl = gl.url(),
        kube = kube.url(),
        cred = files.put("credential", CREDENTIAL),
    );
    let base = parse(&yaml);
    let mut h = Harness::new(&yaml);
    let notes = discover(&mut h, &base).await;
    assert!(notes.is_empty(), "{notes:?}");
    let name = "cluster/apps/ci-token/token";
    h.probe(name).await;
    h.tick().await;
    let status = h.status(name);
    assert_eq!(status.count(RotationResult::Success), 1, "{status:?}");
    {
        let c = cluster.lock().unwrap();
        assert_eq!(c.data["token"], Value::String(b64(NEW)));
        assert_eq!(
            c.data["user"],
            Value::String(b64("ci-bot")),
            "the other keys stay"
        );
        assert_eq!(c.version, 101, "one patch");
        assert!(c.annotation.is_some(), "the workload was restarted");
    }
    assert_eq!(state.lock().unwrap().rotations, 1);
    only_allowed_calls(&gl);
    let calls: Vec<(String, String)> = kube
        .requests()
        .iter()
        .map(|r| (r.method.to_string(), r.path().to_string()))
        .collect();
    let want: Vec<(String, String)> = [
        ("GET", LIST),
        ("GET", SECRET),
        ("PATCH", SECRET),
        ("PATCH", DEPLOYMENT),
        ("GET", SECRET),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(
        calls, want,
        "list, deliver (read, patch, restart), read back for the test"
    );
    for value in [CREDENTIAL, FIRST, NEW] {
        kube.assert_safe(&[], value);
    }
    // The record is the Secret key's, by identity.
    let key = format!("kubernetes:{}:apps/ci-token/token", kube.url());
    assert_eq!(h.saved().discovered[&key].step, Step::Idle);
    // The next listing holds the new value: the same token, not rotated again.
    discover(&mut h, &base).await;
    h.probe(name).await;
    h.tick().await;
    assert_eq!(h.status(name).count(RotationResult::Success), 1);
    assert_eq!(state.lock().unwrap().rotations, 1);
    let text = std::fs::read_to_string(h.storage.path().join("rotation.json")).unwrap();
    let shown = h.metrics();
    for value in [CREDENTIAL, FIRST, NEW] {
        assert!(!text.contains(value) && !shown.contains(value));
    }
}

#[tokio::test]
async fn without_rotate_a_discovered_secret_is_never_written() {
    let (gl, state) = gitlab(true).await;
    let mut data = serde_json::Map::new();
    data.insert("token".into(), Value::String(b64(FIRST)));
    let cluster = Arc::new(Mutex::new(Cluster {
        data,
        version: 7,
        annotation: None,
    }));
    let kube = MockServer::start(api(cluster.clone())).await;
    let files = support::SecretFiles::new();
    let yaml = format!(
        "providers:\n  gl:\n    kind: gitlab\n    url: {gl}\nsources:\n  - name: cluster\n    kind: kubernetes_secrets\n    url: {kube}\n    credential: {cred}\n    label_selector: api-token-exporter.io/watch=true\n    namespaces: [apps]\n",
        gl = gl.url(),
        kube = kube.url(),
        cred = files.put("credential", CREDENTIAL),
    );
    let base = parse(&yaml);
    let mut h = Harness::new(&yaml);
    discover(&mut h, &base).await;
    assert!(h.inventory.config.rotations.is_empty());
    // Expiring tomorrow, probed and ticked: only reads, anywhere.
    for _ in 0..2 {
        h.probe("cluster/apps/ci-token/token").await;
        h.tick().await;
    }
    assert_eq!(state.lock().unwrap().rotations, 0);
    assert!(gl.requests().iter().all(|r| r.method == "GET"));
    assert!(
        kube.requests()
            .iter()
            .all(|r| r.method == "GET" && r.path() == LIST)
    );
    assert_eq!(cluster.lock().unwrap().version, 7);
}

// --- the daemon ------------------------------------------------------------------------

mod daemon {
    use std::process::Command;

    use super::*;
    use crate::rotation_crash::{logs, saved, start_on, stop, wait_exit, wait_saved};
    use support::daemon::{BIN, free_port, http_get};

    /// kill -9 right after GitLab's answer was saved, then a restart: the daemon lists the
    /// directory, finds the token's record by its file, delivers the saved value into that
    /// file and tests it; GitLab is asked once in all. Then the runbook: `rotate --token`
    /// on a discovered token lists its source first. No value reaches the log, `/metrics`
    /// or the JSON API.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_daemon_rotates_a_discovered_token_and_resumes_it_after_a_kill() {
        let (mock, state) = gitlab(true).await;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let tokens = dir.join("tokens");
        let plain = dir.join("plain");
        std::fs::create_dir_all(&tokens).unwrap();
        std::fs::create_dir_all(&plain).unwrap();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let deploy = tokens.join("deploy");
        std::fs::write(&deploy, format!("{FIRST}\n")).unwrap();
        std::fs::write(plain.join("watched"), format!("{WATCHED}\n")).unwrap();
        let yaml = directory_yaml(&mock.url(), "ci", &tokens, &plain).replace(
            "providers:\n",
            "global:\n  probe_interval: 1h\n  min_probe_interval: 1h\nproviders:\n",
        );
        std::fs::write(dir.join("config.yml"), yaml).unwrap();
        let key = canonical_key(&deploy);

        let mut first = start_on(dir, free_port(), Some("issued"));
        let status = wait_exit(&mut first, dir);
        assert!(!status.success(), "aborted, not exited: {status}");
        assert_eq!(
            saved(dir).discovered[&key].step,
            Step::Issued,
            "{}",
            logs(dir)
        );
        assert_eq!(std::fs::read_to_string(&deploy).unwrap().trim(), FIRST);

        let port = free_port();
        let second = start_on(dir, port, None);
        let file = wait_saved(dir, "the resumed rotation", |f| {
            f.discovered
                .get(&key)
                .is_some_and(|r| r.step == Step::Idle && r.last_success_at.is_some())
        });
        assert!(file.tokens.is_empty() && file.discovered[&key].pending.is_none());
        assert_eq!(std::fs::read_to_string(&deploy).unwrap().trim(), NEW);
        {
            let g = state.lock().unwrap();
            assert_eq!(g.rotations, 1, "GitLab was asked again");
            assert!(!g.reuse_detected);
        }
        let (_, metrics) = http_get(&format!("http://127.0.0.1:{port}/metrics")).unwrap();
        assert!(
            metrics.contains("api_token_rotations_total{token=\"ci/deploy\",provider=\"gl\",result=\"success\"} 1"),
            "{metrics}"
        );
        assert!(!metrics.contains("api_token_rotations_total{token=\"plain/watched\""));
        let (_, api) = http_get(&format!("http://127.0.0.1:{port}/api/v1/tokens")).unwrap();
        assert!(api.contains("\"rotator\":\"gitlab_rotate\""), "{api}");
        stop(second);
        only_allowed_calls(&mock);

        // The runbook resumes an interrupted rotation of a discovered token.
        std::fs::write(
            dir.join("data").join("rotation.json"),
            json!({"discovered": {&key: {"step": "interrupted", "failures": 1}}}).to_string(),
        )
        .unwrap();
        let out = Command::new(BIN)
            .arg(format!(
                "--config.file={}",
                dir.join("config.yml").display()
            ))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .args(["rotate", "--token", "ci/deploy"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
        assert!(
            stdout.contains("rotate: ci/deploy: rotated (gitlab_rotate)"),
            "{stdout}"
        );
        let newer = std::fs::read_to_string(&deploy).unwrap().trim().to_string();
        assert_eq!(newer, "glpat-newCanary0000000002");
        assert_eq!(saved(dir).discovered[&key].step, Step::Idle);
        // The second rotate call was made with the value then in the file, never the first.
        let posts: Vec<String> = mock
            .requests()
            .iter()
            .filter(|r| r.method == "POST")
            .map(|r| r.header("private-token").unwrap_or_default().to_string())
            .collect();
        assert_eq!(posts, [FIRST, NEW]);
        assert!(!state.lock().unwrap().reuse_detected);
        // A token of a source without rotate: is refused by the subcommand.
        let out = Command::new(BIN)
            .arg(format!(
                "--config.file={}",
                dir.join("config.yml").display()
            ))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .args(["rotate", "--token", "plain/watched"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let log = logs(dir);
        for value in [FIRST, NEW, WATCHED, newer.as_str()] {
            assert!(!log.contains(value), "a value in the log");
            assert!(!metrics.contains(value) && !api.contains(value));
            assert!(!stdout.contains(value) && !stderr.contains(value));
        }
    }
}

#[tokio::test]
async fn a_dry_run_source_plans_its_tokens_rotation_and_calls_nothing() {
    let (mock, state) = gitlab(true).await;
    let rotating = tempfile::tempdir().unwrap();
    let plain = tempfile::tempdir().unwrap();
    let deploy = rotating.path().join("deploy");
    std::fs::write(&deploy, format!("{FIRST}\n")).unwrap();
    let yaml = directory_yaml(&mock.url(), "ci", rotating.path(), plain.path()).replace(
        "      before: 3d\n",
        "      before: 3d\n      dry_run: true\n",
    );
    let base = parse(&yaml);
    let mut h = Harness::new(&yaml);
    discover(&mut h, &base).await;
    assert!(h.inventory.config.rotations["ci/deploy"].dry_run);
    h.probe("ci/deploy").await;
    h.tick().await;
    let status = h.status("ci/deploy");
    assert_eq!(status.count(RotationResult::DryRun), 1, "{status:?}");
    assert_eq!(status.count(RotationResult::Success), 0);
    assert_eq!(state.lock().unwrap().rotations, 0);
    assert!(mock.requests().iter().all(|r| r.method == "GET"));
    assert_eq!(std::fs::read_to_string(&deploy).unwrap().trim(), FIRST);
}
