//! Inventory sources end to end: the binary lists a source, enters what it finds next to the
//! configured tokens (metrics with `source`, the API, the page), follows the listing as it
//! changes, and keeps the last good listing through a failed one.

use std::time::{Duration, Instant};

use crate::support;
use base64::Engine;
use serde_json::{Value, json};
use support::daemon::{Daemon, write};

/// An unsigned JWT (the jwt provider without keys reads, not verifies).
fn jwt(sub: &str, exp: i64) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2ln",
        b64(&json!({"alg": "ES256", "typ": "JWT"})),
        b64(&json!({"sub": sub, "exp": exp}))
    )
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn lines(d: &Daemon, prefix: &str) -> Vec<String> {
    let (code, body) = d.get("/metrics");
    assert_eq!(code, 200);
    body.lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn token_names(d: &Daemon) -> Vec<String> {
    let (code, body) = d.get("/api/v1/tokens");
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    let mut names: Vec<String> = v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn a_directory_source_is_followed_and_a_failed_listing_keeps_the_inventory() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("mount");
    std::fs::create_dir(&mount).unwrap();
    let exp = now() + 10 * 86_400;
    write(&mount, "alpha", &jwt("svc-alpha", exp));
    write(&mount, "beta", &jwt("svc-beta", exp));
    write(&mount, "beta.annotations", "owner: team-b\n");
    let by_hand = write(dir.path(), "by-hand", &jwt("svc-by-hand", exp));
    // The same file configured by hand and in the directory: one entry, the configured one.
    let linked = mount.join("by-hand");
    std::os::unix::fs::symlink(&by_hand, &linked).unwrap();
    let config = write(
        dir.path(),
        "config.yml",
        &format!(
            "providers:\n  local: {{kind: jwt}}\n\
             tokens:\n  - {{name: by-hand, provider: auto, secret: {{file: {}}}}}\n\
             sources:\n  - name: mounted\n    kind: directory\n    path: {}\n    refresh: 1s\n    labels: {{team: platform}}\n    exclude: ['*.tmp']\n",
            by_hand.display(),
            mount.display()
        ),
    );
    let d = Daemon::start(&["--config.file", config.to_str().unwrap()]);
    wait_until("the listing", Duration::from_secs(20), || {
        token_names(&d).len() == 3
    });
    assert_eq!(
        token_names(&d),
        ["by-hand", "mounted/alpha", "mounted/beta"]
    );
    wait_until("the probes", Duration::from_secs(20), || {
        lines(&d, "api_token_expiry_timestamp_seconds{token=\"mounted/").len() == 2
    });
    let info = lines(&d, "api_token_info{token=\"mounted/alpha\"");
    assert_eq!(info.len(), 1, "{info:?}");
    assert!(info[0].contains(",source=\"mounted\""), "{info:?}");
    assert!(info[0].contains(",team=\"platform\""), "{info:?}");
    let by_hand_info = lines(&d, "api_token_info{token=\"by-hand\"");
    assert!(!by_hand_info[0].contains("source="), "{by_hand_info:?}");
    let (_, api) = d.get("/api/v1/tokens");
    let api: Value = serde_json::from_str(&api).unwrap();
    let alpha = api["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "mounted/alpha")
        .unwrap();
    assert_eq!(alpha["source"], "mounted");
    assert_eq!(alpha["provider"], "local");
    let (_, page) = d.get("/");
    assert!(page.contains("source mounted"), "the page names the source");
    // The API's and the page's `source` filter keep the listed tokens only.
    let (code, only) = d.get("/api/v1/tokens?source=mounted");
    assert_eq!(code, 200, "{only}");
    let only: Value = serde_json::from_str(&only).unwrap();
    let listed: Vec<&str> = only["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["mounted/alpha", "mounted/beta"]);
    let (_, filtered_page) = d.get("/?source=mounted");
    assert!(filtered_page.contains("mounted/alpha") && !filtered_page.contains(">by-hand<"));
    assert_eq!(
        lines(&d, "api_token_source_up{"),
        ["api_token_source_up{source=\"mounted\",kind=\"directory\"} 1"]
    );
    assert_eq!(
        lines(&d, "api_token_source_tokens{"),
        ["api_token_source_tokens{source=\"mounted\",kind=\"directory\"} 2"]
    );
    assert!(
        lines(&d, "api_token_source_tokens_skipped{")
            .contains(&"api_token_source_tokens_skipped{source=\"mounted\",kind=\"directory\",reason=\"configured\"} 1".to_string())
    );

    // Files come and go: a new one enters, a removed one leaves, a filtered one never enters.
    write(&mount, "gamma", &jwt("svc-gamma", exp));
    write(&mount, "scratch.tmp", &jwt("svc-scratch", exp));
    std::fs::remove_file(mount.join("alpha")).unwrap();
    wait_until("the next listing", Duration::from_secs(20), || {
        token_names(&d) == ["by-hand", "mounted/beta", "mounted/gamma"]
    });
    assert!(lines(&d, "api_token_info{token=\"mounted/alpha\"").is_empty());

    // The directory goes away: the listing fails, the last good inventory stays.
    std::fs::rename(&mount, dir.path().join("moved")).unwrap();
    wait_until("a failed listing", Duration::from_secs(20), || {
        lines(&d, "api_token_source_up{")
            == ["api_token_source_up{source=\"mounted\",kind=\"directory\"} 0"]
    });
    assert_eq!(
        token_names(&d),
        ["by-hand", "mounted/beta", "mounted/gamma"]
    );
    let failures = lines(&d, "api_token_source_failures_total{");
    assert!(
        failures.iter().any(|l| l.starts_with(
            "api_token_source_failures_total{source=\"mounted\",kind=\"directory\",reason=\"misconfigured\"} "
        ) && !l.ends_with(" 0")),
        "{failures:?}"
    );
    assert_eq!(
        lines(&d, "api_token_source_last_success_timestamp_seconds{").len(),
        1
    );

    // A reload keeps the listed tokens while the source cannot list.
    let (code, body) = d.post("/-/reload");
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        token_names(&d),
        ["by-hand", "mounted/beta", "mounted/gamma"]
    );
    let logs = d.logs();
    assert!(logs.contains("source listing failed"), "{logs}");
    d.stop();
}

#[test]
fn check_lists_the_sources_and_checks_what_they_list() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("mount");
    std::fs::create_dir(&mount).unwrap();
    write(&mount, "fresh", &jwt("svc-fresh", now() + 30 * 86_400));
    write(&mount, "stale", &jwt("svc-stale", now() - 86_400));
    let yaml = |path: &std::path::Path| {
        format!(
            "providers:\n  local: {{kind: jwt}}\ntokens: []\n\
             sources:\n  - {{name: mounted, kind: directory, path: {}}}\n",
            path.display()
        )
    };
    let config = write(dir.path(), "config.yml", &yaml(&mount));
    let run = |args: &[&str]| {
        std::process::Command::new(support::daemon::BIN)
            .arg("check")
            .args(["--config.file", config.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    };
    let all = run(&[]);
    let out = String::from_utf8_lossy(&all.stdout);
    assert_eq!(all.status.code(), Some(1), "{out}");
    assert!(
        out.contains("mounted/fresh") && out.contains("mounted/stale"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("mounted/stale") && l.contains("FAIL: expired")),
        "{out}"
    );
    // Listed tokens are selected like configured ones, by name or by `source`.
    let fresh = run(&["--selector", "source=mounted", "--token", "mounted/fresh"]);
    let out = String::from_utf8_lossy(&fresh.stdout);
    assert!(
        out.contains("mounted/fresh") && !out.contains("mounted/stale"),
        "{out}"
    );
    assert!(out.contains("unverified"), "{out}");
    let none = run(&["--selector", "source=elsewhere"]);
    assert_eq!(none.status.code(), Some(2));
    // A source that cannot list fails the check, and says so.
    write(dir.path(), "config.yml", &yaml(&dir.path().join("absent")));
    let failed = std::process::Command::new(support::daemon::BIN)
        .arg("check")
        .args(["--config.file", config.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        err.contains("source mounted: listing failed (misconfigured)"),
        "{err}"
    );
}

#[test]
fn the_demo_shows_a_discovered_token_with_its_source() {
    let d = Daemon::start(&["demo"]);
    wait_until("the demo's source to list", Duration::from_secs(30), || {
        token_names(&d)
            .iter()
            .any(|n| n.starts_with("demo-vault-tokens/token-nightly-backup-"))
    });
    wait_until(
        "the discovered tokens' probes",
        Duration::from_secs(30),
        || {
            lines(
                &d,
                "api_token_expiry_timestamp_seconds{token=\"demo-vault-tokens/",
            )
            .len()
                == 2
        },
    );
    let info = lines(
        &d,
        "api_token_info{token=\"demo-vault-tokens/token-nightly-backup-",
    );
    assert_eq!(info.len(), 1, "{info:?}");
    assert!(
        info[0].contains("source=\"demo-vault-tokens\"") && info[0].contains("kind=\"vault\""),
        "{info:?}"
    );
    assert_eq!(
        lines(&d, "api_token_source_up{"),
        ["api_token_source_up{source=\"demo-vault-tokens\",kind=\"vault\"} 1"]
    );
    let (_, api) = d.get("/api/v1/tokens");
    let api: Value = serde_json::from_str(&api).unwrap();
    let backup = api["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| {
            t["name"]
                .as_str()
                .unwrap()
                .starts_with("demo-vault-tokens/token-nightly-backup-")
        })
        .unwrap();
    assert_eq!(backup["source"], "demo-vault-tokens");
    assert_eq!(backup["state"], "valid");
    assert_eq!(
        backup["severity"], "warning",
        "5 days left: inside the warning window"
    );
    // Configured tokens are there too, without a source.
    let billing = api["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "billing-api")
        .unwrap();
    assert!(billing.get("source").is_none());
    let (_, page) = d.get("/");
    assert!(page.contains("demo-vault-tokens/token-nightly-backup-"));
    assert!(page.contains("source demo-vault-tokens"));
    d.stop();
}
