//! `aws_rotate` against moto's server (a real implementation of IAM and STS that checks
//! Signature Version 4 signatures and the user's IAM policy): CreateAccessKey, delivery of
//! the key ID and the secret, the test with STS, UpdateAccessKey Inactive on the old key,
//! DeleteAccessKey after the grace. The exporter's requests are read back from moto's
//! recorder: only the allowed actions, in order, each signed by the right key; a user that
//! already has two keys makes the rotation fail with nothing created or deleted; kill -9
//! after `issued` and after `delivered` resumes with the saved key, creating no other.

use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;

use crate::rotation_crash::{assert_mode, crash_at, logs, resume};
use crate::rotation_oauth::read;
use crate::rotation_vault::Harness;
use crate::support::moto::{Moto, MotoRequest, between};
use api_token_exporter::model::rotation::{RotationResult, Step};
use api_token_exporter::provider::aws::{Endpoint, Keys, signed_post};

/// Every action the exporter may send when rotating: the probe's three reads and the
/// rotation's three writes. Anything else fails the test.
const ALLOWED: &[&str] = &[
    "GetCallerIdentity",
    "ListAccessKeys",
    "GetAccessKeyLastUsed",
    "CreateAccessKey",
    "UpdateAccessKey",
    "DeleteAccessKey",
];

/// The policy of the docs (docs/rotation.md), with `*` as the resource since moto matches
/// IAM resources only as `*`.
const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:ListAccessKeys","iam:GetAccessKeyLastUsed","iam:CreateAccessKey","iam:UpdateAccessKey","iam:DeleteAccessKey"],"Resource":"*"}]}"#;

/// moto with user `ci` holding one key (or two), allowed the rotation's calls; the key ID
/// and secret files written under `dir`. Returns the first key.
async fn setup(moto: &Moto, dir: &Path, second_key: bool) -> (String, String) {
    let (id, secret) = moto.user_with_key("ci").await;
    let (status, body) = moto
        .iam(&[
            ("Action", "PutUserPolicy"),
            ("UserName", "ci"),
            ("PolicyName", "rotate-own-key"),
            ("PolicyDocument", POLICY),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    if second_key {
        let (status, body) = moto
            .iam(&[("Action", "CreateAccessKey"), ("UserName", "ci")])
            .await;
        assert_eq!(status, 200, "{body}");
    }
    moto.reset_recording().await;
    std::fs::write(dir.join("key-id"), format!("{id}\n")).unwrap();
    std::fs::write(dir.join("secret"), format!("{secret}\n")).unwrap();
    (id, secret)
}

fn config(moto: &Moto, dir: &Path, retire_after: &str) -> String {
    format!(
        "global:\n  probe_timeout: 10s\n  probe_interval: 1h\n  min_probe_interval: 1h\nproviders:\n  aws:\n    kind: aws\n    url: {url}\n    iam_url: {url}\ntokens:\n  - name: ci\n    provider: aws\n    access_key_id_file: {id}\n    secret: {{file: {secret}}}\n    rotate:\n      max_age: 1s\n      rotator: {{kind: aws_rotate, retire_after: {retire_after}}}\n      deliver: [{{file: {secret}}}]\n",
        url = moto.url,
        id = dir.join("key-id").display(),
        secret = dir.join("secret").display(),
    )
}

/// The actions of `requests`, after checking each is allowed, POSTed to `/`, signed by one
/// of `keys` (the signer's index is returned with it) and carries no secret in its body.
fn actions(requests: &[MotoRequest], keys: &[&str], secrets: &[&str]) -> Vec<(String, usize)> {
    requests
        .iter()
        .map(|r| {
            assert_eq!(r.method, "POST", "{r:?}");
            let action = r.param("Action").unwrap_or_default();
            assert!(
                ALLOWED.contains(&action.as_str()),
                "the exporter called {action}"
            );
            let auth = r.headers["Authorization"].as_str().unwrap();
            let signer = keys
                .iter()
                .position(|k| auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={k}/")))
                .unwrap_or_else(|| panic!("{action} signed by an unknown key: {auth}"));
            for s in secrets {
                assert!(
                    !r.body.contains(s) && !r.url.contains(s),
                    "a secret sent in {action}"
                );
            }
            (action, signer)
        })
        .collect()
}

/// The user's keys and their status, asked with the key `id`/`secret` (a signed call).
async fn keys_of_user(moto: &Moto, id: &str, secret: &str) -> Vec<(String, String)> {
    let endpoint = Endpoint::new(&moto.url, "us-east-1", "iam").unwrap();
    let keys = Keys {
        access_key_id: id,
        secret_access_key: secret,
        session_token: None,
    };
    let client = api_token_exporter::provider::http::client();
    let resp = signed_post(
        &client,
        &endpoint,
        &keys,
        &[("Action", "ListAccessKeys"), ("Version", "2010-05-08")],
        Timestamp::now(),
    )
    .await
    .unwrap();
    let body = String::from_utf8(resp.body.to_vec()).unwrap();
    assert_eq!(resp.status, 200, "{body}");
    body.split("<member>")
        .skip(1)
        .map(|m| (between(m, "AccessKeyId"), between(m, "Status")))
        .collect()
}

#[tokio::test]
async fn a_key_is_replaced_tested_deactivated_then_deleted_after_the_grace() {
    let Some(moto) = Moto::start(3).await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (id0, secret0) = setup(&moto, dir, false).await;
    let mut h = Harness::new(&config(&moto, dir, "3s"));
    // max_age counts from IAM's CreateDate (whole seconds).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    h.probe("ci").await;
    h.tick().await;
    let status = h.status("ci");
    assert_eq!(status.count(RotationResult::Success), 1, "{status:?}");
    let (id1, secret1) = (read(dir, "key-id"), read(dir, "secret"));
    assert_ne!(id1, id0);
    assert_ne!(secret1, secret0);
    let record = h.saved().tokens["ci"].clone();
    assert_eq!(record.step, Step::Idle);
    assert!(record.pending.is_none());
    assert_eq!(record.retire.as_ref().unwrap().key_id, id0);
    // Nothing is rotated again from the facts of before the rotation.
    h.tick().await;
    assert_eq!(h.status("ci").count(RotationResult::Success), 1);

    let recorded = moto.recorded().await;
    let got = actions(&recorded, &[&id0, &id1], &[&secret0, &secret1]);
    let want: Vec<(String, usize)> = [
        // The probe with the old key.
        ("GetCallerIdentity", 0),
        ("ListAccessKeys", 0),
        ("GetAccessKeyLastUsed", 0),
        // create: room for a second key, then the key.
        ("ListAccessKeys", 0),
        ("CreateAccessKey", 0),
        // test: the probe through the token's files, now the new key.
        ("GetCallerIdentity", 1),
        ("ListAccessKeys", 1),
        ("GetAccessKeyLastUsed", 1),
        // finish: the old key made inactive, with the new one.
        ("UpdateAccessKey", 1),
    ]
    .iter()
    .map(|(a, k)| (a.to_string(), *k))
    .collect();
    assert_eq!(got, want);
    let update = recorded.last().unwrap();
    assert_eq!(update.param("AccessKeyId").as_deref(), Some(id0.as_str()));
    assert_eq!(update.param("Status").as_deref(), Some("Inactive"));
    assert_eq!(update.param("UserName"), None);
    moto.reset_recording().await;
    let mut listed = keys_of_user(&moto, &id1, &secret1).await;
    listed.sort();
    let mut want = vec![
        (id0.clone(), "Inactive".to_string()),
        (id1.clone(), "Active".to_string()),
    ];
    want.sort();
    assert_eq!(listed, want);
    moto.reset_recording().await;

    // After the grace, the old key is deleted (signed by the new one), once.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    h.tick().await;
    h.tick().await;
    let recorded = moto.recorded().await;
    let got = actions(&recorded, &[&id0, &id1], &[&secret0, &secret1]);
    assert_eq!(got, vec![("DeleteAccessKey".to_string(), 1)]);
    assert_eq!(
        recorded[0].param("AccessKeyId").as_deref(),
        Some(id0.as_str())
    );
    assert!(h.saved().tokens["ci"].retire.is_none());
    assert_eq!(
        keys_of_user(&moto, &id1, &secret1).await,
        vec![(id1.clone(), "Active".to_string())]
    );
    // Neither secret is in the saved state (the issued one was removed at finish) nor in
    // the status the views show.
    let state = std::fs::read_to_string(h.storage.path().join("rotation.json")).unwrap();
    let status = format!("{:?}", h.status("ci"));
    for s in [&secret0, &secret1] {
        assert!(!state.contains(s.as_str()) && !status.contains(s.as_str()));
    }
}

#[tokio::test]
async fn a_user_with_two_keys_already_fails_clearly_and_nothing_is_written() {
    let Some(moto) = Moto::start(4).await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (id0, secret0) = setup(&moto, dir, true).await;
    let mut h = Harness::new(&config(&moto, dir, "24h"));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    h.probe("ci").await;
    h.tick().await;
    let status = h.status("ci");
    assert_eq!(status.count(RotationResult::Failure), 1, "{status:?}");
    let error = status.last_error.clone().unwrap();
    assert!(error.contains("already has 2 access keys"), "{error}");
    assert!(error.contains("nothing was created or deleted"), "{error}");
    assert_eq!(h.saved().tokens["ci"].step, Step::Idle);
    let got = actions(&moto.recorded().await, &[&id0], &[&secret0]);
    assert!(
        got.iter().all(|(a, _)| a != "CreateAccessKey"
            && a != "UpdateAccessKey"
            && a != "DeleteAccessKey"),
        "{got:?}"
    );
    assert_eq!((read(dir, "key-id"), read(dir, "secret")), (id0, secret0));
}

/// The daemon aborts right after saving `step`; a second one finishes the rotation with the
/// saved key: one CreateAccessKey in all, the delivered pair works, the old key inactive.
async fn crash_and_resume(step: &str) {
    let Some(moto) = Moto::start(3).await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (id0, secret0) = setup(&moto, dir, false).await;
    std::fs::write(dir.join("config.yml"), config(&moto, dir, "24h")).unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let record = crash_at(dir, "ci", step);
    // The issued key is kept (mode 0600) from the provider's answer on.
    let new_id = record.pending.as_ref().unwrap().key_id.clone().unwrap();
    assert_mode(&dir.join("data/rotation.json"), 0o600, "rotation.json");

    resume(dir, "ci");
    let (id1, secret1) = (read(dir, "key-id"), read(dir, "secret"));
    assert_eq!(id1, new_id, "the saved key is the one delivered");
    let recorded = moto.recorded().await;
    let got = actions(&recorded, &[&id0, &id1], &[&secret0, &secret1]);
    let created = got.iter().filter(|(a, _)| a == "CreateAccessKey").count();
    assert_eq!(created, 1, "{got:?}");
    assert!(got.iter().all(|(a, _)| a != "DeleteAccessKey"), "{got:?}");
    let mut listed = keys_of_user(&moto, &id1, &secret1).await;
    listed.sort();
    let mut want = vec![
        (id0.clone(), "Inactive".to_string()),
        (id1.clone(), "Active".to_string()),
    ];
    want.sort();
    assert_eq!(listed, want);
    let log = logs(dir);
    for s in [&secret0, &secret1] {
        assert!(!log.contains(s.as_str()), "a secret in the log");
    }
    assert!(log.contains("token=ci"), "{log}");
}

#[tokio::test]
async fn kill_after_issued_delivers_the_saved_key_without_creating_another() {
    crash_and_resume("issued").await;
}

#[tokio::test]
async fn kill_after_delivered_resumes_at_the_test() {
    crash_and_resume("delivered").await;
}
