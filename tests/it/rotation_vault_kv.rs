//! The `vault_kv` delivery target against a real OpenBao dev server (KV v2 at `secret/`):
//! a write keeps the secret's other keys and is read back, a repeated delivery adds no
//! version, a write on a stale version is refused by check-and-set, a refused delivery is
//! retried later with the same issued value, and a kill -9 after `issued` then a restart
//! delivers exactly once. The rotator is `gitlab_rotate` against the documented GitLab
//! server of `rotation_gitlab` (reuse detection modelled); the token's own secret is read
//! from the KV with `bao kv get`, so the test step proves monitoring follows.

use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

use crate::rotation_crash;
use crate::rotation_gitlab::{FIRST, Gitlab, server};
use crate::rotation_vault::Harness;
use crate::support::{self, MockServer};
use api_token_exporter::model::rotation::{RotationResult, Step};
use api_token_exporter::rotate::deliver::{self, vault_kv};
use api_token_exporter::schema::rotate::{Deliver, VaultKv};
use api_token_exporter::secret::{FileSource, SecretSource};
use support::bao::{Bao, bao_binary};

const POLICY: &str = "kv-deliver";

/// The policy docs/rotation.md gives for `path: app/ci` under `secret`.
fn policy(path: &str) -> String {
    format!(
        "path \"secret/data/{path}\" {{\n  capabilities = [\"read\", \"create\", \"update\"]\n}}\n"
    )
}

async fn set_policy(bao: &Bao, text: &str) {
    let (code, v) = bao
        .root(
            "PUT",
            &format!("sys/policies/acl/{POLICY}"),
            Some(json!({ "policy": text })),
        )
        .await;
    assert!(code == 204 || code == 200, "{code} {v}");
}

/// A token holding only the delivery policy, written to `dir/kv-token`.
async fn writer(bao: &Bao, dir: &std::path::Path) -> std::path::PathBuf {
    let (token, _) = bao
        .create(
            None,
            json!({ "policies": [POLICY], "no_default_policy": true, "ttl": "1h" }),
        )
        .await;
    let path = dir.join("kv-token");
    std::fs::write(&path, format!("{token}\n")).unwrap();
    path
}

async fn kv_read(bao: &Bao, path: &str) -> (u64, Value) {
    let (code, v) = bao.root("GET", &format!("secret/data/{path}"), None).await;
    assert_eq!(code, 200, "{v}");
    (
        v["data"]["metadata"]["version"].as_u64().unwrap(),
        v["data"]["data"].clone(),
    )
}

async fn kv_write(bao: &Bao, path: &str, data: Value) {
    let (code, v) = bao
        .root(
            "POST",
            &format!("secret/data/{path}"),
            Some(json!({ "data": data })),
        )
        .await;
    assert_eq!(code, 200, "{v}");
}

fn target(bao: &Bao, path: &str, token: &std::path::Path) -> VaultKv {
    VaultKv {
        url: bao.addr.clone(),
        namespace: None,
        mount: "secret".into(),
        path: path.into(),
        key: "token".into(),
        token: SecretSource::File(FileSource::new(token)),
    }
}

#[tokio::test]
async fn a_kv_write_keeps_the_other_keys_and_check_and_set_refuses_a_stale_version() {
    let Some(bao) = Bao::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    set_policy(&bao, &policy("app/ci")).await;
    let token = writer(&bao, dir.path()).await;
    kv_write(
        &bao,
        "app/ci",
        json!({ "token": "old-canary-value", "user": "ci-bot" }),
    )
    .await;
    let kv = target(&bao, "app/ci", &token);
    let new = "new-canary-value-0001";

    deliver::deliver(&Deliver::VaultKv(Box::new(kv.clone())), "ci", new)
        .await
        .unwrap();
    let (version, data) = kv_read(&bao, "app/ci").await;
    assert_eq!(version, 2);
    assert_eq!(data, json!({ "token": new, "user": "ci-bot" }));
    // Delivered again (a resumed rotation): no new version.
    deliver::deliver(&Deliver::VaultKv(Box::new(kv.clone())), "ci", new)
        .await
        .unwrap();
    assert_eq!(kv_read(&bao, "app/ci").await.0, 2);

    // Someone writes between our read and our write: Vault refuses ours, theirs stays.
    let (read_version, mut mine) = vault_kv::read_current(&kv).await.unwrap();
    assert_eq!(read_version, 2);
    kv_write(
        &bao,
        "app/ci",
        json!({ "token": "theirs", "user": "ci-bot" }),
    )
    .await;
    mine.insert("token".into(), Value::String("mine".into()));
    let err = vault_kv::write_cas(&kv, read_version, &mine)
        .await
        .unwrap_err();
    assert!(err.contains("check-and-set"), "{err}");
    let (version, data) = kv_read(&bao, "app/ci").await;
    assert_eq!((version, data["token"].as_str()), (3, Some("theirs")));

    // A path never written is created with cas 0; a path outside the policy is a clear 403.
    let fresh = target(&bao, "app/ci", &token);
    let (code, _) = bao.root("DELETE", "secret/metadata/app/ci", None).await;
    assert_eq!(code, 204);
    deliver::deliver(&Deliver::VaultKv(Box::new(fresh)), "ci", new)
        .await
        .unwrap();
    assert_eq!(kv_read(&bao, "app/ci").await, (1, json!({ "token": new })));
    let outside = target(&bao, "app/other", &token);
    let err = deliver::deliver(&Deliver::VaultKv(Box::new(outside)), "ci", new)
        .await
        .unwrap_err();
    assert!(
        err.contains("403") && err.contains("secret/data/app/other"),
        "{err}"
    );
    assert!(!err.contains(new));
}

/// The token `ci` of the GitLab server, its secret read from the KV by `bao kv get`.
fn rotating_yaml(gitlab: &str, bao: &Bao, kv_token: &std::path::Path, global: &str) -> String {
    let bao_bin = bao_binary().unwrap();
    let read = format!(
        "BAO_TOKEN=root exec {} kv get -address={} -field=token secret/app/ci",
        bao_bin.display(),
        bao.addr
    );
    format!(
        "global:\n  probe_timeout: 10s\n{global}providers:\n  gl:\n    kind: gitlab\n    url: {gitlab}\ntokens:\n  - name: ci\n    provider: gl\n    secret: {{exec: [sh, -c, {read:?}]}}\n    rotate:\n      before: 3d\n      rotator: {{kind: gitlab_rotate, expires_in: 30d}}\n      deliver:\n        - vault_kv: {{url: {addr}, path: app/ci, key: token, token: {{file: {kv}}}}}\n",
        addr = bao.addr,
        kv = kv_token.display(),
    )
}

fn gitlab() -> Arc<Mutex<Gitlab>> {
    Arc::new(Mutex::new(Gitlab {
        active: vec![FIRST.into()],
        ..Gitlab::default()
    }))
}

#[tokio::test]
async fn a_refused_kv_delivery_is_retried_with_the_issued_value() {
    let Some(bao) = Bao::start().await else {
        return;
    };
    let state = gitlab();
    let mock = MockServer::start(server(state.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    // The policy does not yet allow the path: the first delivery is refused.
    set_policy(&bao, &policy("elsewhere")).await;
    let kv_token = writer(&bao, dir.path()).await;
    kv_write(&bao, "app/ci", json!({ "token": FIRST, "user": "ci-bot" })).await;
    let mut h = Harness::new(&rotating_yaml(&mock.url(), &bao, &kv_token, ""));
    h.probe("ci").await;
    h.tick().await;
    let record = h.saved().tokens["ci"].clone();
    assert_eq!(record.step, Step::Issued, "{record:?}");
    let error = record.last_error.clone().unwrap();
    assert!(error.contains("403"), "{error}");
    let issued = record.pending.clone().unwrap().value.unwrap();
    assert_eq!(kv_read(&bao, "app/ci").await.0, 1);

    set_policy(&bao, &policy("app/ci")).await;
    let result = h.rotate_now("ci").await;
    assert_eq!(result, Some(RotationResult::Success), "{:?}", h.saved());
    let (version, data) = kv_read(&bao, "app/ci").await;
    assert_eq!(version, 2);
    assert_eq!(data, json!({ "token": issued, "user": "ci-bot" }));
    let g = state.lock().unwrap();
    assert_eq!(g.rotations, 1);
    assert!(!g.reuse_detected);
    assert!(g.active.contains(&issued));
    drop(g);
    let status = h.status("ci");
    for value in [FIRST, issued.as_str()] {
        mock.assert_safe(&[], value);
        assert!(!format!("{status:?}").contains(value));
        assert!(!error.contains(value));
    }
    for r in mock.requests() {
        let allowed = matches!(
            (r.method.as_str(), r.path()),
            ("GET", "/api/v4/personal_access_tokens/self")
                | ("POST", "/api/v4/personal_access_tokens/self/rotate")
        );
        assert!(allowed, "{} {}", r.method, r.path());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_after_issued_then_restart_delivers_to_the_kv_exactly_once() {
    let Some(bao) = Bao::start().await else {
        return;
    };
    let state = gitlab();
    let mock = MockServer::start(server(state.clone())).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    set_policy(&bao, &policy("app/ci")).await;
    let kv_token = writer(&bao, &dir).await;
    kv_write(&bao, "app/ci", json!({ "token": FIRST, "user": "ci-bot" })).await;
    let global = "  probe_interval: 1h\n  min_probe_interval: 1h\n";
    std::fs::write(
        dir.join("config.yml"),
        rotating_yaml(&mock.url(), &bao, &kv_token, global),
    )
    .unwrap();

    let d = dir.clone();
    let file = tokio::task::spawn_blocking(move || {
        let mut first = rotation_crash::start(&d, Some("issued"));
        let status = rotation_crash::wait_exit(&mut first, &d);
        assert!(!status.success(), "aborted, not exited: {status}");
        let after = rotation_crash::saved(&d);
        assert_eq!(after.tokens["ci"].step, Step::Issued);
        let second = rotation_crash::start(&d, None);
        let file = rotation_crash::wait_saved(&d, "a finished rotation", |f| {
            f.tokens
                .get("ci")
                .is_some_and(|r| r.step == Step::Idle && r.last_success_at.is_some())
        });
        rotation_crash::stop(second);
        file
    })
    .await
    .unwrap();
    let record = &file.tokens["ci"];
    assert!(record.pending.is_none());
    assert_eq!(
        record.failures,
        0,
        "{record:?}\n{}",
        rotation_crash::logs(&dir)
    );

    let (version, data) = kv_read(&bao, "app/ci").await;
    assert_eq!(version, 2, "exactly one delivery");
    let g = state.lock().unwrap();
    assert_eq!(g.rotations, 1);
    assert!(!g.reuse_detected);
    let new = data["token"].as_str().unwrap().to_string();
    assert!(g.active.contains(&new), "the KV holds a working token");
    assert_eq!(data["user"], "ci-bot");
    drop(g);
    let log = rotation_crash::logs(&dir);
    for value in [FIRST, new.as_str()] {
        assert!(!log.contains(value), "a value in the log");
    }
    let kept: Map<String, Value> = serde_json::from_value(data).unwrap();
    assert_eq!(kept.len(), 2);
}
