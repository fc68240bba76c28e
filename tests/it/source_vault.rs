//! The `vault` source: token accessors listed from a real OpenBao dev server, and from a
//! recording mock that answers as Vault documents `LIST auth/token/accessors` and
//! `lookup-accessor` (developer.hashicorp.com/vault/api-docs/auth/token) for what a dev
//! server cannot be made to do (a 500 on one lookup, a 429, a garbage answer). Every request
//! is checked: only the list and lookup calls, the credential never in a URL.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::support;
use api_token_exporter::model::Verdict;
use api_token_exporter::sources::{FailReason, Listing};
use support::bao::Bao;
use support::daemon::{Daemon, wait_until, write};
use support::listing::{Listed, each_failure, list};
use support::{Answer, MockServer, SecretFiles};

/// The only calls a vault source (and the vault provider probing what it found) may make.
const ALLOWED: &[(&str, &str)] = &[
    ("GET", "/v1/auth/token/accessors"),
    ("POST", "/v1/auth/token/lookup-accessor"),
];

fn assert_only_reads(server: &MockServer, credentials: &[&str]) {
    for r in server.requests() {
        assert!(
            ALLOWED
                .iter()
                .any(|(m, p)| r.method.as_str() == *m && r.path() == *p),
            "a call outside the allowed list: {} {}",
            r.method,
            r.path()
        );
        for c in credentials {
            assert!(!r.uri.to_string().contains(c), "a credential in a URL");
        }
    }
}

fn yaml(
    addr: &str,
    files: &SecretFiles,
    list_token: &str,
    lookup_token: &str,
    extra: &str,
) -> String {
    format!(
        "global:\n  probe_timeout: 5s\nproviders:\n  bao:\n    kind: vault\n    url: {addr}\n    token: {}\n\
         sources:\n  - name: vt\n    kind: vault\n    provider: bao\n    credential: {}\n{extra}",
        files.put("lookup", lookup_token),
        files.put("list", list_token),
    )
}

fn names(l: &Listing) -> Vec<String> {
    l.tokens
        .iter()
        .map(|d| d.name.rsplit_once('-').unwrap().0.to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------
// A real OpenBao dev server.

#[tokio::test]
async fn real_openbao_accessors_are_listed_and_probed_by_accessor() {
    let Some(bao) = Bao::start().await else {
        return;
    };
    let policy = "path \"auth/token/accessors\" { capabilities = [\"list\", \"sudo\"] }\n\
                  path \"auth/token/lookup-accessor\" { capabilities = [\"update\"] }\n";
    let (s, v) = bao
        .root(
            "PUT",
            "sys/policies/acl/lister",
            Some(json!({ "policy": policy })),
        )
        .await;
    assert!(s == 200 || s == 204, "{v}");
    let (lister, _) = bao
        .create(
            None,
            json!({"policies": ["lister"], "display_name": "lister", "no_parent": true, "ttl": "1h"}),
        )
        .await;
    let (weak, _) = bao
        .create(
            None,
            json!({"policies": ["default"], "display_name": "weak", "no_parent": true, "ttl": "1h"}),
        )
        .await;
    let (ci, _) = bao
        .create(
            None,
            json!({"display_name": "ci-deploy", "ttl": "2h", "no_parent": true,
                   "meta": {"owner": "team-a"}}),
        )
        .await;
    let (_, gone_accessor) = bao
        .create(
            None,
            json!({"display_name": "short-lived", "ttl": "1h", "no_parent": true}),
        )
        .await;

    let files = SecretFiles::new();
    let config_yaml = yaml(
        &bao.addr,
        &files,
        &lister,
        &lister,
        "    exclude: ['token-????????']\n",
    );
    let listing = list(&config_yaml).await.unwrap();
    let got = names(&listing);
    // The dev server's root token (display name `token`) is listed too, and filtered out.
    for created in [
        "token-ci-deploy",
        "token-lister",
        "token-short-lived",
        "token-weak",
    ] {
        assert!(
            got.contains(&created.to_string()),
            "{created} not in {got:?}"
        );
    }
    assert!(!got.iter().any(|n| n == "token"), "{got:?}");
    assert_eq!(listing.skipped.get("filtered"), Some(&1), "the root token");
    let ci_entry = listing
        .tokens
        .iter()
        .find(|d| d.name.starts_with("token-ci-deploy-"))
        .unwrap();
    assert_eq!(ci_entry.owner.as_deref(), Some("team-a"));
    let shown = format!("{listing:?}");
    for secret in [&lister, &weak, &ci] {
        assert!(!shown.contains(secret.as_str()), "a token in the listing");
    }

    // The found token is probed by the provider, by accessor, without its secret.
    let listed = Listed::new(&config_yaml, "vt", listing.clone(), "bao");
    let spec = listed
        .composed
        .tokens
        .iter()
        .find(|t| t.name.starts_with("vt/token-ci-deploy-"))
        .unwrap();
    assert!(spec.secret.is_none());
    let run = listed.probe(spec).await;
    assert_eq!(run.outcome.verdict, Verdict::Valid, "{:?}", run.outcome);
    let left =
        run.outcome.facts.expiry.timestamp().unwrap().as_second() - Timestamp::now().as_second();
    assert!((7000..=7200).contains(&left), "{left}");

    // Revoked: gone from the next listing, which is complete.
    let (s, v) = bao
        .root(
            "POST",
            "auth/token/revoke-accessor",
            Some(json!({ "accessor": gone_accessor })),
        )
        .await;
    assert!(s == 204 || s == 200, "{v}");
    let again = list(&config_yaml).await.unwrap();
    assert!(!names(&again).contains(&"token-short-lived".to_string()));

    // A credential without sudo: forbidden, a source failure that names no token.
    let weak_files = SecretFiles::new();
    let weak_yaml = yaml(&bao.addr, &weak_files, &weak, &lister, "");
    let e = list(&weak_yaml).await.unwrap_err();
    assert_eq!(e.reason, FailReason::Forbidden, "{e:?}");
    assert!(!e.detail.contains(weak.as_str()));
    // The tokens themselves were not touched: a lookup still answers.
    let (s, _) = bao
        .call("GET", "auth/token/lookup-self", &ci, None, None)
        .await;
    assert_eq!(s, 200);
}

// ---------------------------------------------------------------------------------------
// A mock answering as Vault documents.

fn accessors(keys: &[&str]) -> Answer {
    Answer::json(
        200,
        json!({"request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0,
               "data": {"keys": keys}, "wrap_info": null, "warnings": null, "auth": null}),
    )
}

fn lookup(accessor: &str, display: &str, expire: &str) -> Answer {
    Answer::json(
        200,
        json!({"request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0,
               "data": {"accessor": accessor, "creation_time": 1_700_000_000, "creation_ttl": 2_764_800,
                        "display_name": display, "entity_id": "", "expire_time": expire,
                        "explicit_max_ttl": 0, "id": "", "issue_time": "2023-11-14T22:13:20Z",
                        "meta": null, "num_uses": 0, "orphan": true, "path": "auth/token/create",
                        "policies": ["default"], "renewable": true, "ttl": 2_764_790, "type": "service"},
               "wrap_info": null, "warnings": null, "auth": null}),
    )
}

fn vault_errors(status: u16, errors: &[&str]) -> Answer {
    Answer::json(status, json!({ "errors": errors }))
}

fn accessor_of(r: &support::Recorded) -> String {
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    v["accessor"].as_str().unwrap_or("").to_string()
}

/// What the mock answers, switched by a test: 0 healthy (a, b, c), 1 a 500 on b's lookup,
/// 2 healthy without c, 3 a 401, 4 a 429 on the list, 5 b vanished (400 invalid accessor),
/// 6 an empty server (404, no errors), 7 garbage, 8 a 403.
pub(crate) async fn mock(mode: Arc<AtomicU8>) -> MockServer {
    MockServer::start(move |r| {
        let m = mode.load(Ordering::SeqCst);
        if r.header("x-vault-token") != Some("LIST-CANARY") && r.path().ends_with("/accessors") {
            return vault_errors(403, &["permission denied"]);
        }
        if r.path() == "/v1/auth/token/accessors" {
            return match m {
                2 => accessors(&["acc-a", "acc-b"]),
                3 => vault_errors(401, &["missing client token"]),
                4 => vault_errors(
                    429,
                    &["request path \"auth/token/accessors\": rate limit quota exceeded"],
                )
                .header("retry-after", "30"),
                6 => Answer::json(404, json!({"errors": []})),
                7 => Answer::text(200, "text/html", "<html>proxy</html>"),
                8 => vault_errors(403, &["permission denied"]),
                _ => accessors(&["acc-a", "acc-b", "acc-c"]),
            };
        }
        let accessor = accessor_of(r);
        match (m, accessor.as_str()) {
            (1, "acc-b") => vault_errors(500, &["internal error"]),
            (5, "acc-b") => vault_errors(400, &["invalid accessor"]),
            (_, "acc-a") => lookup("acc-a", "token-alpha", "2099-01-01T00:00:00Z"),
            (_, "acc-b") => lookup("acc-b", "token-beta", "2099-01-01T00:00:00Z"),
            (_, "acc-c") => lookup("acc-c", "token-gamma", "2099-01-01T00:00:00Z"),
            _ => vault_errors(400, &["invalid accessor"]),
        }
    })
    .await
}

#[tokio::test]
async fn every_documented_failure_is_a_source_failure_and_a_vanished_token_is_skipped() {
    let mode = Arc::new(AtomicU8::new(0));
    let server = mock(mode.clone()).await;
    let files = SecretFiles::new();
    let y = yaml(
        &server.url(),
        &files,
        "LIST-CANARY",
        "LOOKUP-TOKEN-CANARY",
        "",
    );
    let ok = list(&y).await.unwrap();
    assert_eq!(names(&ok), ["token-alpha", "token-beta", "token-gamma"]);
    let cases = [
        (1, FailReason::Unreachable),
        (3, FailReason::Unauthorized),
        (4, FailReason::RateLimited),
        (7, FailReason::BadResponse),
        (8, FailReason::Forbidden),
    ];
    for (m, e) in each_failure(&mode, &y, &cases).await {
        assert_eq!(
            e.retry_after,
            (m == 4).then(|| Duration::from_secs(30)),
            "mode {m}: Retry-After"
        );
    }
    mode.store(5, Ordering::SeqCst);
    let vanished = list(&y).await.unwrap();
    assert_eq!(names(&vanished), ["token-alpha", "token-gamma"]);
    assert_eq!(vanished.skipped.get("vanished"), Some(&1));
    mode.store(6, Ordering::SeqCst);
    assert!(list(&y).await.unwrap().tokens.is_empty());
    assert_only_reads(&server, &["LIST-CANARY", "LOOKUP-TOKEN-CANARY"]);
    // The listing credential went in its header, and only on the source's calls.
    let r = server.requests();
    assert!(
        r.iter()
            .filter(|r| r.path().ends_with("/accessors"))
            .all(|r| r.header("x-vault-token") == Some("LIST-CANARY"))
    );
}

#[test]
fn the_daemon_keeps_the_last_good_listing_through_a_failure_and_drops_what_a_complete_one_lacks() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mode = Arc::new(AtomicU8::new(0));
    let server = rt.block_on(mock(mode.clone()));
    let dir = tempfile::tempdir().unwrap();
    let list_file = write(dir.path(), "list", "LIST-CANARY");
    let lookup_file = write(dir.path(), "lookup", "LOOKUP-TOKEN-CANARY");
    let config = write(
        dir.path(),
        "config.yml",
        &format!(
            "providers:\n  bao:\n    kind: vault\n    url: {}\n    token: {{file: {}}}\n\
             tokens:\n  - {{name: by-hand, provider: bao, accessor: acc-a}}\n\
             sources:\n  - name: vt\n    kind: vault\n    provider: bao\n    credential: {{file: {}}}\n    refresh: 1s\n    labels: {{team: platform}}\n",
            server.url(),
            lookup_file.display(),
            list_file.display()
        ),
    );
    let d = Daemon::start(&["--config.file", config.to_str().unwrap()]);
    let names = |d: &Daemon| {
        let (_, body) = d.get("/api/v1/tokens");
        let v: Value = serde_json::from_str(&body).unwrap();
        let mut n: Vec<String> = v["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                t["name"].as_str().unwrap().rsplit_once('-').map_or_else(
                    || t["name"].as_str().unwrap().to_string(),
                    |(a, _)| a.to_string(),
                )
            })
            .collect();
        n.sort();
        n
    };
    // acc-a is configured by hand: it appears once, as configured.
    wait_until("the first listing", &|| {
        names(&d) == ["by", "vt/token-beta", "vt/token-gamma"]
    });
    wait_until("the probes", &|| {
        d.metric_lines("api_token_state{token=\"vt/token-beta")
            .iter()
            .any(|l| l.contains("state=\"valid\"} 1"))
    });
    // A 500 on one lookup: the listing fails whole, and the inventory stays.
    mode.store(1, Ordering::SeqCst);
    wait_until("a failed listing", &|| {
        d.metric_lines("api_token_source_up{")
            == ["api_token_source_up{source=\"vt\",kind=\"vault\"} 0"]
    });
    assert_eq!(names(&d), ["by", "vt/token-beta", "vt/token-gamma"]);
    // A 401: still kept, never invalid.
    mode.store(3, Ordering::SeqCst);
    wait_until("an unauthorized listing", &|| {
        d.metric_lines(
            "api_token_source_failures_total{source=\"vt\",kind=\"vault\",reason=\"unauthorized\"}",
        )
        .iter()
        .any(|l| !l.ends_with(" 0"))
    });
    assert_eq!(names(&d), ["by", "vt/token-beta", "vt/token-gamma"]);
    assert!(
        d.metric_lines("api_token_state{token=\"vt/token-beta")
            .iter()
            .any(|l| l.contains("state=\"valid\"} 1"))
    );
    // A complete listing without gamma: gamma leaves.
    mode.store(2, Ordering::SeqCst);
    wait_until("gamma leaving", &|| names(&d) == ["by", "vt/token-beta"]);
    assert_eq!(
        d.metric_lines("api_token_source_tokens{"),
        ["api_token_source_tokens{source=\"vt\",kind=\"vault\"} 1"]
    );
    let (_, body) = d.get("/metrics");
    let (_, api) = d.get("/api/v1/tokens");
    let logs = d.logs();
    for shown in [&body, &api, &logs] {
        assert!(!shown.contains("CANARY"), "a credential shown");
        assert!(!shown.contains("acc-b"), "an accessor shown");
    }
    d.stop();
    assert_only_reads(&server, &["LIST-CANARY", "LOOKUP-TOKEN-CANARY"]);
}
