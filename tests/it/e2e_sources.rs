//! Discovery sources end to end: one daemon lists tokens from one source of each covered kind,
//! each against its test server (the mocks of `source_<kind>.rs`), every listed token expiring
//! inside the warning window. The daemon's own `webhook` notifier must send one `expiring`
//! notification per source naming `<source>/<name>`, and a real Prometheus scraping the daemon
//! with the shipped rules must fire `ApiTokenExpiringSoon` for each listed token.
//!
//! The shipped rules join `owner`, `team` and `runbook` from `api_token_info`, not `source`, so
//! the alert names its token by the `token` label, whose `<source>/` prefix is the source; the
//! `source` label is checked on `api_token_info` in the same Prometheus.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicU8;
use std::time::{Duration, Instant};

use jiff::{Timestamp, ToSpan};
use serde_json::{Value, json};

use crate::support;
use crate::{
    source_cloudflare, source_docker_hub, source_entra_id, source_github, source_gitlab,
    source_kubernetes_secrets, source_okta, source_vault,
};
use api_token_exporter::config::sources::SOURCE_KINDS;
use support::daemon::{Daemon, free_port, write};
use support::prom::{APT_HINT, Proc, RULES_FILE, SCRAPE_EXAMPLE, peer, read, yaml_file};
use support::{Answer, MockServer};

/// The shipped rules with every `for:` shortened to 2 s (the real durations are promtool's
/// business, see `alerts.rs`); two seconds still takes each alert through pending to firing.
fn rules_with_short_for() -> String {
    read(RULES_FILE)
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with("for: ") {
                format!("{}for: 2s", &line[..line.len() - trimmed.len()])
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn notifications(hook: &MockServer) -> Vec<Value> {
    hook.requests()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .flat_map(|v| v["notifications"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn wait(what: &str, limit: Duration, mut f: impl FnMut() -> Result<(), String>) {
    let start = Instant::now();
    loop {
        match f() {
            Ok(()) => return,
            Err(e) if start.elapsed() > limit => panic!("timed out: {what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

#[test]
fn every_source_kind_reaches_metrics_alerts_and_notifications() {
    let Some(prometheus) = peer("prometheus", APT_HINT) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Five days left: inside the default warning window (7 days), outside the critical one.
    let soon = (Timestamp::now() + 120.hours()).to_string();
    let cf = rt.block_on(source_cloudflare::mock(
        Arc::new(AtomicU8::new(0)),
        soon.clone(),
    ));
    let hub = rt.block_on(source_docker_hub::mock(
        Arc::new(AtomicU8::new(0)),
        soon.clone(),
    ));
    let entra = rt.block_on(source_entra_id::mock());
    let gitlab = rt.block_on(source_gitlab::mock());
    let okta = rt.block_on(source_okta::mock(Arc::new(AtomicU8::new(0))));
    let hook = rt.block_on(MockServer::start(|_| Answer::text(200, "text/plain", "")));
    let dir = tempfile::tempdir().unwrap();
    let cf_cred = write(dir.path(), "cf", source_cloudflare::CREDENTIAL);
    let hub_cred = write(dir.path(), "hub", source_docker_hub::CREDENTIAL);
    let entra_cred = write(dir.path(), "entra", source_entra_id::SECRET);
    // A directory source: one mounted JWT (the `jwt` provider reads its `exp` offline).
    let tokens_dir = dir.path().join("tokens");
    std::fs::create_dir(&tokens_dir).unwrap();
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let exp = (Timestamp::now() + 120.hours()).as_second();
    let jwt_value = format!(
        "{}.{}.c2lnbmF0dXJlQ0FOQVJZ",
        b64(&json!({"alg": "RS256", "typ": "JWT"})),
        b64(&json!({"sub": "deploy", "exp": exp, "iat": exp - 86400 * 30}))
    );
    write(&tokens_dir, "deploy", &jwt_value);
    let gitlab_cred = write(dir.path(), "gitlab", source_gitlab::CREDENTIAL);
    let okta_cred = write(dir.path(), "okta", source_okta::CREDENTIAL);

    // (kind, source name, source entry, the listed token's name under the source)
    let mut table: Vec<(&str, &str, String, String)> = vec![
        (
            "cloudflare",
            "cf",
            format!(
                "{{name: cf, kind: cloudflare, url: '{}', provider: listed, credential: {{file: {}}}, user: true, refresh: 1s, include: ['user/u-0-*']}}",
                cf.url(),
                cf_cred.display()
            ),
            format!("cf/user/u-0-{:032x}", 0),
        ),
        (
            "docker_hub",
            "hub",
            format!(
                "{{name: hub, kind: docker_hub, url: '{}', provider: listed, username: deploybot, credential: {{file: {}}}, personal: true, refresh: 1s, include: ['deploybot/p-0-*']}}",
                hub.url(),
                hub_cred.display()
            ),
            format!("hub/deploybot/p-0-b30bbf97-506c-4ecd-aabc-{:012}", 0),
        ),
        (
            "entra_id",
            "entra",
            // The mock's secret `billing/ci` expires in 10 days: inside a 30-day window.
            format!(
                "{{name: entra, kind: entra_id, url: '{url}', graph_url: '{url}', tenant_id: {}, client_id: {}, provider: listed, credential: {{file: {}}}, refresh: 1s, warning_before: 30d, critical_before: 3d, include: ['billing/ci-*']}}",
                source_entra_id::TENANT,
                source_entra_id::CLIENT,
                entra_cred.display(),
                url = entra.server.url(),
            ),
            "entra/billing/ci-00000001".to_string(),
        ),
        (
            "gitlab",
            "gl",
            // The GitLab and Okta mocks date their tokens in 2099 (shared with their own tests):
            // a warning window of 30000 days puts that expiry inside it.
            format!(
                "{{name: gl, kind: gitlab, url: '{}', provider: listed, credential: {{file: {}}}, personal: true, refresh: 1s, warning_before: 30000d, include: ['user-10/ci-1']}}",
                gitlab.server.url(),
                gitlab_cred.display()
            ),
            "gl/user-10/ci-1".to_string(),
        ),
        (
            "okta",
            "okta",
            format!(
                "{{name: okta, kind: okta, url: '{}', provider: listed, credential: {{file: {}}}, refresh: 1s, warning_before: 30000d, include: ['t0-*']}}",
                okta.url(),
                okta_cred.display()
            ),
            format!("okta/t0-00T{:017}", 0),
        ),
    ];
    table.push((
        "directory",
        "dir",
        format!(
            "{{name: dir, kind: directory, path: '{}', provider: local, refresh: 1s}}",
            tokens_dir.display()
        ),
        "dir/deploy".to_string(),
    ));
    // Vault accessors (the documented accessor API; its tokens are probed by accessor through
    // the `bao` provider), a GitHub organization through a GitHub App, and labelled Secrets
    // whose `ghp_` values are probed by the `gh` provider. Their mocks date tokens in 2099 (a
    // 30000-day window) except the Secret's, which GitHub's answer dates in five days.
    let vault = rt.block_on(source_vault::mock(Arc::new(AtomicU8::new(0))));
    let vault_list = write(dir.path(), "vault-list", "LIST-CANARY");
    let vault_lookup = write(dir.path(), "vault-lookup", "LOOKUP-CANARY");
    let github = rt.block_on(source_github::mock());
    let app_key = write(dir.path(), "app.pem", &github.key_pem);
    let kube = rt.block_on(source_kubernetes_secrets::mock());
    let kube_cred = write(dir.path(), "kube", source_kubernetes_secrets::CREDENTIAL);
    let in_five_days = (Timestamp::now() + 120.hours())
        .strftime("%Y-%m-%d %H:%M:%S UTC")
        .to_string();
    let gh_probe = rt.block_on(MockServer::start(move |r| match r.path() {
        "/user" => Answer::json(200, json!({"login": "bot", "id": 1, "type": "User"}))
            .header("github-authentication-token-expiration", &in_five_days),
        _ => Answer::json(404, json!({"message": "Not Found"})),
    }));
    table.push((
        "vault",
        "vt",
        format!(
            "{{name: vt, kind: vault, provider: bao, credential: {{file: {}}}, refresh: 1s, warning_before: 30000d, include: ['token-alpha-*']}}",
            vault_list.display()
        ),
        format!(
            "vt/token-alpha-{}",
            api_token_exporter::sources::vault::digest("acc-a")
        ),
    ));
    table.push((
        "github",
        "gh",
        format!(
            "{{name: gh, kind: github, url: '{}', provider: listed, org: acme, app_id: Iv23liAPPCLIENT, credential: {{file: {}}}, refresh: 1s, warning_before: 30000d, include: ['octocat/ci-1']}}",
            github.server.url(),
            app_key.display()
        ),
        "gh/octocat/ci-1".to_string(),
    ));
    table.push((
        "kubernetes_secrets",
        "k",
        format!(
            "{{name: k, kind: kubernetes_secrets, url: '{}', credential: {{file: {}}}, label_selector: api-token-exporter.io/watch=true, namespaces: [b], refresh: 1s}}",
            kube.server.url(),
            kube_cred.display()
        ),
        "k/b/only/token".to_string(),
    ));
    // Every kind is driven: a new kind in `SOURCE_KINDS` fails the test until it is added.
    let mut kinds: Vec<&str> = table.iter().map(|t| t.0).collect();
    kinds.sort();
    let mut all: Vec<&str> = SOURCE_KINDS.to_vec();
    all.sort();
    assert_eq!(kinds, all, "every source kind is in the table");

    let sources: String = table.iter().map(|t| format!("  - {}\n", t.2)).collect();
    let config = write(
        dir.path(),
        "config.yml",
        &format!(
            "providers:\n  listed: {{kind: static}}\n  local: {{kind: jwt}}\n  bao: {{kind: vault, url: '{}', token: {{file: {}}}}}\n  github: {{kind: github, url: '{}'}}\ntokens: []\n\
             notifications: {{group_wait: 0s}}\nnotifiers:\n  hook: {{kind: webhook, url: \"{}/hook\"}}\n\
             routes:\n  - {{receiver: hook, events: [expiring]}}\nsources:\n{sources}",
            vault.url(),
            vault_lookup.display(),
            gh_probe.url(),
            hook.url()
        ),
    );
    // Its own state: the default `data/` is shared with the other daemons of this binary,
    // whose notification state would otherwise leak in.
    let storage = dir.path().join("data");
    let d = Daemon::start(&[
        "--config.file",
        config.to_str().unwrap(),
        "--storage.path",
        storage.to_str().unwrap(),
    ]);

    // Listed -> /metrics with the source label.
    wait(
        "every listed token on /metrics",
        Duration::from_secs(20),
        || {
            let metrics = d.get("/metrics").1;
            for (kind, source, _, token) in &table {
                let info = metrics
                    .lines()
                    .find(|l| l.starts_with(&format!("api_token_info{{token=\"{token}\"")))
                    .ok_or(format!("{kind}: no api_token_info for {token}"))?;
                if !info.contains(&format!("source=\"{source}\"")) {
                    return Err(format!("{kind}: {info}"));
                }
            }
            Ok(())
        },
    );

    // The daemon's notifier: one expiring notification per source, naming the listed token.
    wait(
        "an expiring notification per source",
        Duration::from_secs(20),
        || {
            let got = notifications(&hook);
            for (kind, _, _, token) in &table {
                if !got
                    .iter()
                    .any(|n| n["event"] == "expiring" && n["token"]["name"] == json!(token))
                {
                    return Err(format!("{kind}: none for {token} in {got:?}"));
                }
            }
            Ok(())
        },
    );
    let got = notifications(&hook);
    for (kind, source, _, token) in &table {
        assert!(token.starts_with(&format!("{source}/")), "{kind}: {token}");
        let n = got
            .iter()
            .filter(|n| n["event"] == "expiring" && n["token"]["name"] == json!(token))
            .count();
        assert_eq!(n, 1, "{kind}: expiring notifications for {token}: {got:?}");
    }

    // A real Prometheus with the shipped rules, scraping this daemon.
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, rules_with_short_for()).unwrap();
    let prom_addr = format!("127.0.0.1:{}", free_port());
    let mut prom_config = yaml_file(SCRAPE_EXAMPLE);
    prom_config["global"]["scrape_interval"] = json!("1s");
    prom_config["global"]["evaluation_interval"] = json!("1s");
    prom_config["rule_files"] = json!([rules.display().to_string()]);
    prom_config.as_object_mut().unwrap().remove("alerting");
    let job = &mut prom_config["scrape_configs"][0];
    job["scrape_interval"] = json!("1s");
    job["scrape_timeout"] = json!("1s");
    job["static_configs"][0]["targets"] = json!([format!("127.0.0.1:{}", d.port)]);
    let prom_file = dir.path().join("prometheus.yml");
    std::fs::write(&prom_file, prom_config.to_string()).unwrap();
    let mut cmd = Command::new(prometheus);
    cmd.arg(format!("--config.file={}", prom_file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("prom-data").display()
        ))
        .arg(format!("--web.listen-address={prom_addr}"));
    let mut prom = Proc::spawn("prometheus", cmd, dir.path());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let get = |path: &str| -> Result<Value, String> {
        rt.block_on(async {
            let r = client
                .get(format!("http://{prom_addr}{path}"))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            r.json::<Value>().await.map_err(|e| e.to_string())
        })
    };
    wait(
        "the expiry alert for every listed token",
        Duration::from_secs(40),
        || {
            prom.assert_running();
            let alerts = get("/api/v1/alerts")?;
            let alerts = alerts["data"]["alerts"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for (kind, _, _, token) in &table {
                if !alerts.iter().any(|a| {
                    a["state"] == "firing"
                        && a["labels"]["alertname"] == "ApiTokenExpiringSoon"
                        && a["labels"]["token"] == json!(token)
                }) {
                    return Err(format!("{kind}: {token} not firing in {alerts:?}"));
                }
            }
            Ok(())
        },
    );
    // The alert's token joins api_token_info's source label, as the dashboards join it.
    let joined = get(
        "/api/v1/query?query=ALERTS%7Balertname%3D%22ApiTokenExpiringSoon%22%2Calertstate%3D%22firing%22%7D%20*%20on%20(token)%20group_left(source)%20max%20by%20(token%2C%20source)%20(api_token_info)",
    )
    .unwrap();
    let result = joined["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (kind, source, _, token) in &table {
        assert!(
            result
                .iter()
                .any(|s| s["metric"]["token"] == json!(token)
                    && s["metric"]["source"] == json!(source)),
            "{kind}: {token} with source {source} in {result:?}"
        );
    }
    prom.stop();

    // Nothing a listing credential or a bearer minted from it reaches a page or a notification.
    let shown = [
        d.get("/metrics").1,
        d.get("/api/v1/tokens").1,
        d.get("/").1,
        d.logs(),
        serde_json::to_string(&notifications(&hook)).unwrap(),
    ];
    for s in &shown {
        assert!(!s.contains(&jwt_value), "a listed token's value shown");
    }
    d.stop();
    for s in shown {
        assert!(!s.contains("CANARY"), "a credential shown");
    }
    source_cloudflare::assert_only_documented_reads(&cf);
    source_docker_hub::assert_only_documented_calls(&hub);
    source_entra_id::assert_only_documented_calls(&entra.server);
    source_gitlab::assert_only_documented_reads(&gitlab.server);
    source_okta::assert_only_documented_reads(&okta);
}

/// A restart does not page twice: while a source has not listed again, the alerts of its
/// tokens (kept in the notifier's state) are held, not resolved as "removed from the
/// inventory" and then fired again as new once the listing returns.
#[test]
fn a_restart_holds_listed_tokens_alerts_until_their_source_lists_again() {
    use std::sync::atomic::Ordering;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let soon = (Timestamp::now() + 120.hours()).to_string();
    let mode = Arc::new(AtomicU8::new(0));
    let cf = rt.block_on(source_cloudflare::mock(mode.clone(), soon));
    let hook = rt.block_on(MockServer::start(|_| Answer::text(200, "text/plain", "")));
    let dir = tempfile::tempdir().unwrap();
    let cred = write(dir.path(), "cf", source_cloudflare::CREDENTIAL);
    let token = format!("cf/user/u-0-{:032x}", 0);
    let config = write(
        dir.path(),
        "config.yml",
        &format!(
            "providers:\n  listed: {{kind: static}}\ntokens: []\n\
             notifications: {{group_wait: 0s}}\nnotifiers:\n  hook: {{kind: webhook, url: \"{}/hook\"}}\n\
             routes:\n  - {{receiver: hook}}\nsources:\n  - {{name: cf, kind: cloudflare, url: '{}', provider: listed, credential: {{file: {}}}, user: true, refresh: 1s, include: ['user/u-0-{:032x}']}}\n",
            hook.url(),
            cf.url(),
            cred.display(),
            0
        ),
    );
    let storage = dir.path().join("data");
    let args = [
        "--config.file",
        config.to_str().unwrap(),
        "--storage.path",
        storage.to_str().unwrap(),
    ];
    let d = Daemon::start(&args);
    wait(
        "the first expiring notification",
        Duration::from_secs(20),
        || {
            let got = notifications(&hook);
            match got.iter().any(|n| n["token"]["name"] == json!(token)) {
                true => Ok(()),
                false => Err(format!("{got:?}")),
            }
        },
    );
    // Past the notifier's next tick, so its state file holds the acknowledged alert.
    std::thread::sleep(Duration::from_millis(2500));
    let _ = d.stop();

    // The source refuses its listings after the restart (a 401): the token is not in the
    // store for several notifier ticks.
    mode.store(2, Ordering::SeqCst);
    let d = Daemon::start(&args);
    wait("a failed listing", Duration::from_secs(20), || {
        let m = d.get("/metrics").1;
        match m.lines().any(|l| {
            l.starts_with("api_token_source_failures_total{source=\"cf\"") && !l.ends_with(" 0")
        }) {
            true => Ok(()),
            false => Err("none yet".into()),
        }
    });
    std::thread::sleep(Duration::from_secs(3));
    mode.store(0, Ordering::SeqCst);
    wait(
        "the token listed again",
        Duration::from_secs(20),
        || match d
            .get("/metrics")
            .1
            .contains(&format!("api_token_info{{token=\"{token}\""))
        {
            true => Ok(()),
            false => Err("not yet".into()),
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    let logs = d.logs();
    let _ = d.stop();
    let got = notifications(&hook);
    assert_eq!(
        got.len(),
        1,
        "one notification across the restart, not a resolution and a second firing: {got:?}\n{logs}"
    );
}
