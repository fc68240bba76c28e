//! `vault_renew` against a real OpenBao dev server, and the never-call discipline against a
//! recording mock answering as Vault's token API documents: a token without `rotate:` is
//! only ever looked up, and a renewing token calls renew-self and nothing else that writes.

use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::support;
use api_token_exporter::model::rotation::{RotationResult, Step};
use api_token_exporter::rotate::Rotations;
use api_token_exporter::rotate::machine::RotationFile;
use api_token_exporter::scheduler::Inventory;
use api_token_exporter::store::Store;
use support::bao::Bao;
use support::{Answer, MockServer, SecretFiles};

/// A config built as the daemon builds it, its store, and the rotation engine on a
/// storage directory of its own.
pub struct Harness {
    pub inventory: Inventory,
    pub store: Arc<Store>,
    pub rotations: Rotations,
    pub storage: tempfile::TempDir,
}

impl Harness {
    pub fn new(yaml: &str) -> Harness {
        let config = api_token_exporter::config::Config::parse(yaml)
            .unwrap_or_else(|e| panic!("config does not load:\n{e}"));
        let inventory =
            Inventory::build(config, &api_token_exporter::provider::BuildContext::new()).unwrap();
        let store = Arc::new(Store::new());
        store.reconcile(&inventory.config);
        let storage = tempfile::tempdir().unwrap();
        let rotations = Rotations::new(storage.path());
        Harness {
            inventory,
            store,
            rotations,
            storage,
        }
    }

    /// Probes `token` once, as the scheduler would, and records the answer.
    pub async fn probe(&self, token: &str) {
        let spec = self.inventory.config.token(token).unwrap();
        let provider = &self.inventory.providers[&spec.provider];
        let now = Timestamp::now();
        let run = api_token_exporter::provider::run_probe(provider.as_ref(), spec, now).await;
        self.store.record(token, run, now);
    }

    pub async fn tick(&mut self) {
        self.rotations.tick(&self.inventory, &self.store).await;
    }

    pub fn saved(&self) -> RotationFile {
        let text = std::fs::read(self.storage.path().join("rotation.json")).unwrap_or_default();
        serde_json::from_slice(&text).unwrap_or_default()
    }

    /// What `rotate --token` asks: rotate `token` now, whatever its plan.
    pub async fn rotate_now(&mut self, token: &str) -> Option<RotationResult> {
        let ask = api_token_exporter::rotate::Ask {
            forced: true,
            dry_run: false,
        };
        self.rotations
            .run(&self.inventory, &self.store, token, ask)
            .await
            .unwrap()
    }

    /// Saves what a kill -9 between saving `creating` and the provider's answer leaves.
    pub fn crashed_while_creating(&self, token: &str) {
        std::fs::write(
            self.storage.path().join("rotation.json"),
            format!(
                r#"{{"tokens":{{"{token}":{{"step":"creating","started_at":"2026-01-01T00:00:00Z"}}}}}}"#
            ),
        )
        .unwrap();
    }

    /// `/metrics` as the daemon renders it from this store.
    pub fn metrics(&self) -> String {
        api_token_exporter::metrics::render(&api_token_exporter::metrics::Metrics::new(
            self.store.clone(),
            Arc::new(api_token_exporter::metrics::ExporterStatus::new()),
        ))
    }

    /// `token`'s entry in the JSON API.
    pub fn view(&self, token: &str) -> Value {
        let inner = self.store.read();
        serde_json::to_value(api_token_exporter::view::TokenView::from_state(
            &inner.tokens[token],
            Timestamp::now(),
        ))
        .unwrap()
    }

    /// Each place `token`'s rotation shows or keeps something, as (what, text): a value
    /// must reach none of them.
    pub fn shown(&self, token: &str) -> Vec<(&'static str, String)> {
        vec![
            ("metrics", self.metrics()),
            ("view", self.view(token).to_string()),
            ("status", format!("{:?}", self.status(token))),
            (
                "rotation.json",
                std::fs::read_to_string(self.storage.path().join("rotation.json")).unwrap(),
            ),
        ]
    }

    pub fn status(&self, token: &str) -> api_token_exporter::model::rotation::RotationStatus {
        let inner = self.store.read();
        (*inner.tokens[token]
            .rotation
            .clone()
            .expect("a rotation status"))
        .clone()
    }
}

fn yaml(addr: &str, tokens: &str) -> String {
    format!(
        "global:\n  probe_timeout: 5s\nproviders:\n  bao:\n    kind: vault\n    url: {addr}\ntokens:\n{tokens}"
    )
}

async fn ttl(bao: &Bao, token: &str) -> i64 {
    let (status, v) = bao
        .call("GET", "auth/token/lookup-self", token, None, None)
        .await;
    assert_eq!(status, 200, "{v}");
    v["data"]["ttl"].as_i64().unwrap()
}

#[tokio::test]
async fn renew_self_extends_a_real_openbao_token_once() {
    let Some(bao) = Bao::start().await else {
        return;
    };
    let (secret, _) = bao
        .create(
            None,
            json!({"ttl": "60s", "explicit_max_ttl": "2h", "renewable": true, "policies": ["default"]}),
        )
        .await;
    let (watched, _) = bao
        .create(
            None,
            json!({"ttl": "60s", "renewable": true, "policies": ["default"]}),
        )
        .await;
    let files = SecretFiles::new();
    let mut h = Harness::new(&yaml(
        &bao.addr,
        &format!(
            "  - name: renewed\n    provider: bao\n    secret: {}\n    rotate:\n      before: 1h\n      rotator: {{kind: vault_renew, increment: 10m}}\n  - name: watched\n    provider: bao\n    secret: {}\n",
            files.put("renewed", &secret),
            files.put("watched", &watched),
        ),
    ));
    // Nothing is decided before the provider has answered about the token.
    h.tick().await;
    assert_eq!(h.status("renewed").count(RotationResult::Success), 0);
    h.probe("renewed").await;
    h.probe("watched").await;
    h.tick().await;
    let status = h.status("renewed");
    assert_eq!(status.count(RotationResult::Success), 1, "{status:?}");
    assert_eq!(status.step, Step::Idle);
    assert!(status.last_success_at.is_some());
    let renewed = ttl(&bao, &secret).await;
    assert!(renewed > 500, "ttl after renewal: {renewed}");
    // The token without rotate: is watched, never renewed.
    assert!(ttl(&bao, &watched).await <= 60);
    assert!(h.store.read().tokens["watched"].rotation.is_none());
    // The facts from before the renewal are not acted on again.
    h.tick().await;
    assert_eq!(h.status("renewed").count(RotationResult::Success), 1);

    // /metrics: series for the rotating token only, every result created.
    let metrics = h.metrics();
    for line in [
        "api_token_rotations_total{token=\"renewed\",provider=\"bao\",result=\"success\"} 1\n",
        "api_token_rotations_total{token=\"renewed\",provider=\"bao\",result=\"failure\"} 0\n",
        "api_token_rotations_total{token=\"renewed\",provider=\"bao\",result=\"dry_run\"} 0\n",
        "api_token_rotation_failing{token=\"renewed\",provider=\"bao\"} 0\n",
        "api_token_rotation_last_success_timestamp_seconds{token=\"renewed\",provider=\"bao\"} ",
    ] {
        assert!(metrics.contains(line), "no {line:?} in\n{metrics}");
    }
    assert!(!metrics.contains("api_token_rotations_total{token=\"watched\""));
    assert!(!metrics.contains(&secret) && !metrics.contains(&watched));
    // The JSON API's view: a rotation object for the rotating token only.
    let renewed_view = h.view("renewed");
    assert_eq!(renewed_view["rotation"]["rotator"], "vault_renew");
    assert_eq!(renewed_view["rotation"]["step"], "idle");
    assert!(renewed_view["rotation"]["last_success_at"].is_string());
    assert!(h.view("watched").get("rotation").is_none());
    assert!(!renewed_view.to_string().contains(&secret));
    // The saved record holds no value and is private.
    let text = std::fs::read_to_string(h.storage.path().join("rotation.json")).unwrap();
    assert!(!text.contains(&secret), "{text}");
    crate::rotation_crash::assert_mode(
        &h.storage.path().join("rotation.json"),
        0o600,
        "rotation.json",
    );
}

#[tokio::test]
async fn a_renewal_that_extends_nothing_fails_and_backs_off() {
    let Some(bao) = Bao::start().await else {
        return;
    };
    // Its max TTL is its TTL: a renewal cannot extend it.
    let (secret, _) = bao
        .create(
            None,
            json!({"ttl": "1h", "explicit_max_ttl": "1h", "renewable": true, "policies": ["default"]}),
        )
        .await;
    let files = SecretFiles::new();
    let mut h = Harness::new(&yaml(
        &bao.addr,
        &format!(
            "  - name: capped\n    provider: bao\n    secret: {}\n    rotate: {{before: 2h}}\n",
            files.put("capped", &secret)
        ),
    ));
    h.probe("capped").await;
    h.tick().await;
    let status = h.status("capped");
    assert_eq!(status.count(RotationResult::Failure), 1, "{status:?}");
    assert!(status.failing());
    let error = status.last_error.clone().unwrap();
    assert!(error.contains("did not extend"), "{error}");
    assert!(!error.contains(&secret));
    // Backing off: the next tick does not call again.
    h.probe("capped").await;
    h.tick().await;
    assert_eq!(h.status("capped").count(RotationResult::Failure), 1);
    let saved = h.saved();
    assert_eq!(saved.tokens["capped"].step, Step::Idle);
    assert!(saved.tokens["capped"].retry_at.is_some());
}

// ---------------------------------------------------------------------------------------
// Never-call discipline, on a recording mock.

const WATCHED: &str = "s.WatchedOnlyToken000000001";
const RENEWED: &str = "s.RenewedToken0000000000002";

/// Vault's lookup-self answer (data.expire_time, data.ttl: 600 s left, 7200 s once renewed)
/// and its renew-self answer (auth.lease_duration), per token.
fn vault_mock() -> impl Fn(&support::Recorded) -> Answer + Send + Sync + 'static {
    let renewed = std::sync::Mutex::new(std::collections::HashSet::<String>::new());
    move |r| {
        let token = r.header("x-vault-token").unwrap_or_default().to_string();
        if r.method == "POST" && r.path() == "/v1/auth/token/renew-self" {
            renewed.lock().unwrap().insert(token.clone());
        }
        let ttl = if renewed.lock().unwrap().contains(&token) {
            7200
        } else {
            600
        };
        vault_answer(r, ttl)
    }
}

fn vault_answer(r: &support::Recorded, ttl: i64) -> Answer {
    match (r.method.as_str(), r.path()) {
        ("GET", "/v1/auth/token/lookup-self") => {
            let expire = Timestamp::now()
                .checked_add(jiff::SignedDuration::from_secs(ttl))
                .unwrap();
            Answer::json(
                200,
                json!({"data": {"accessor": "acc", "creation_time": Timestamp::now().as_second() - 10,
                    "creation_ttl": ttl, "expire_time": expire.to_string(), "explicit_max_ttl": 0,
                    "num_uses": 0, "policies": ["default"], "renewable": true, "ttl": ttl,
                    "type": "service"}}),
            )
        }
        ("POST", "/v1/auth/token/renew-self") => Answer::json(
            200,
            json!({"auth": {"client_token": "", "accessor": "acc", "policies": ["default"],
                "lease_duration": 7200, "renewable": true}}),
        ),
        _ => Answer::json(404, json!({"errors": []})),
    }
}

fn writes(server: &MockServer) -> Vec<(String, String, Option<String>)> {
    server
        .requests()
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| {
            (
                r.method.to_string(),
                r.path().to_string(),
                r.header("x-vault-token").map(str::to_string),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_token_without_rotate_never_causes_a_write_call() {
    let server = MockServer::start(vault_mock()).await;
    let files = SecretFiles::new();
    let mut h = Harness::new(&yaml(
        &server.url(),
        &format!(
            "  - name: watched\n    provider: bao\n    secret: {}\n",
            files.put("w", WATCHED)
        ),
    ));
    for _ in 0..3 {
        h.probe("watched").await;
        h.tick().await;
    }
    assert!(writes(&server).is_empty(), "{:?}", writes(&server));
    server.assert_safe(&[("POST", "/"), ("PUT", "/"), ("DELETE", "/")], WATCHED);
}

#[tokio::test]
async fn a_renewing_token_makes_exactly_the_writes_it_needs() {
    let server = MockServer::start(vault_mock()).await;
    let files = SecretFiles::new();
    let mut h = Harness::new(&yaml(
        &server.url(),
        &format!(
            "  - name: watched\n    provider: bao\n    secret: {}\n  - name: renewed\n    provider: bao\n    secret: {}\n    rotate: {{before: 1h}}\n",
            files.put("w", WATCHED),
            files.put("r", RENEWED)
        ),
    ));
    for _ in 0..3 {
        h.probe("watched").await;
        h.probe("renewed").await;
        h.tick().await;
    }
    // One renewal (the facts after it show 2 h left, past `before`), by the renewed token
    // itself; none by the watched one.
    assert_eq!(
        writes(&server),
        vec![(
            "POST".to_string(),
            "/v1/auth/token/renew-self".to_string(),
            Some(RENEWED.to_string())
        )]
    );
    for r in server.requests() {
        assert!(
            matches!(
                (r.method.as_str(), r.path()),
                ("GET", "/v1/auth/token/lookup-self") | ("POST", "/v1/auth/token/renew-self")
            ),
            "unexpected call {} {}",
            r.method,
            r.path()
        );
    }
    let body: Value = serde_json::from_slice(
        &server
            .requests()
            .iter()
            .find(|r| r.method == "POST")
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(body, json!({}));
}
