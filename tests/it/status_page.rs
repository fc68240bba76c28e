//! The status page as a person sees it: headless Chromium loads it from the running demo,
//! the rows and states are checked in the rendered DOM, a filter is applied through the
//! page's own form URL, and a screenshot is saved (`UPDATE_GOLDEN=1` refreshes the one
//! docs/http-api.md shows, docs/status-page.png).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support;
use support::daemon::Daemon;

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        })
}

/// Runs headless Chromium with the flags this machine needs (no sandbox as root, no
/// background network) and the given action flags.
fn run_chromium(bin: &Path, profile: &Path, action: &[&str], url: &str) -> std::process::Output {
    Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(action)
        .arg(url)
        .output()
        .expect("chromium runs")
}

/// The rendered DOM's table rows as (token, state).
fn table_rows(dom: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in dom.split("<tr ").skip(1) {
        let attr = |name: &str| {
            part.split(&format!("{name}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .map(str::to_owned)
        };
        if let (Some(token), Some(state)) = (attr("data-token"), attr("data-state")) {
            out.push((token, state));
        }
    }
    out
}

#[test]
fn the_status_page_in_a_real_browser() {
    let Some(bin) = chromium() else {
        support::peer_missing("chromium (apt-get install chromium)");
        return;
    };
    // `last_probe` (off by default) tells when the listed tokens have been probed.
    let demo = Daemon::start(&["demo", "--collector.last_probe"]);
    demo.wait_for("/-/ready", Duration::from_secs(20));
    // The two tokens the demo's vault source lists are rows too, once listed and probed.
    let start = std::time::Instant::now();
    while demo
        .get("/metrics")
        .1
        .matches("api_token_last_probe_timestamp_seconds{token=\"demo-vault-tokens/")
        .count()
        < 2
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the demo's source"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let profile = tempfile::tempdir().unwrap();

    let all = run_chromium(&bin, profile.path(), &["--dump-dom"], &demo.url("/"));
    let dom = String::from_utf8_lossy(&all.stdout).into_owned();
    let rows = table_rows(&dom);
    assert_eq!(
        rows.len(),
        12,
        "every demo token is a row: {rows:?}\n{}",
        String::from_utf8_lossy(&all.stderr)
    );
    let state = |t: &str| {
        rows.iter()
            .find(|(n, _)| n == t)
            .map(|(_, s)| s.as_str())
            .unwrap_or("absent")
    };
    assert_eq!(state("billing-api"), "valid");
    assert_eq!(state("old-integration"), "invalid");
    assert_eq!(state("legacy-sync"), "invalid");
    assert_eq!(state("reporting-job"), "unreachable");
    assert_eq!(state("partner-webhook"), "unverified");
    assert_eq!(state("session-api"), "valid");
    // Most urgent first: the invalid tokens lead, healthy far-off ones come last.
    assert_eq!(rows[0].1, "invalid");
    assert_eq!(rows.last().unwrap().0, "metrics-reader", "{rows:?}");
    assert!(
        dom.contains("invalid: 2") && dom.contains("valid: 8"),
        "badges with counts"
    );
    assert!(
        dom.contains("allowed_scopes"),
        "the policy violation is shown"
    );

    // The filter form is a plain GET: submitting it with team=platform loads this URL.
    assert!(dom.contains("<form method=\"get\" action=\"/\">") && dom.contains("name=\"team\""));
    let filtered = run_chromium(
        &bin,
        profile.path(),
        &["--dump-dom"],
        &demo.url("/?state=&team=platform&provider="),
    );
    let filtered_rows = table_rows(&String::from_utf8_lossy(&filtered.stdout));
    let mut names: Vec<&str> = filtered_rows.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ci-runner",
            "demo-vault-tokens/token-nightly-backup-0f522ab4",
            "demo-vault-tokens/token-terraform-ci-727c2ee6",
            "deploy-bot"
        ]
    );
    let invalid_only = run_chromium(
        &bin,
        profile.path(),
        &["--dump-dom"],
        &demo.url("/?state=invalid"),
    );
    assert_eq!(
        table_rows(&String::from_utf8_lossy(&invalid_only.stdout)).len(),
        2
    );

    // The search field and a state filter through the form's own URL (a GET form sends
    // every field, empty ones too), then paging: three rows a page, by the page's links.
    assert!(dom.contains("name=\"q\"") && dom.contains("name=\"owner\""));
    let searched = run_chromium(
        &bin,
        profile.path(),
        &["--dump-dom"],
        &demo.url("/?q=BOT&state=valid&team=&provider=&owner="),
    );
    let searched = String::from_utf8_lossy(&searched.stdout).into_owned();
    assert_eq!(
        table_rows(&searched),
        [("deploy-bot".to_string(), "valid".to_string())]
    );
    assert!(
        searched.contains("valid: 8"),
        "the badges count every token"
    );
    let mut paged = Vec::new();
    let mut url = demo.url("/?limit=3");
    for _ in 0..5 {
        let out = run_chromium(&bin, profile.path(), &["--dump-dom"], &url);
        let dom = String::from_utf8_lossy(&out.stdout).into_owned();
        let rows = table_rows(&dom);
        assert!(rows.len() <= 3, "{rows:?}");
        paged.extend(rows);
        // Chromium's DOM serialisation escapes `&` in attributes, as the page wrote it.
        match dom.split("rel=\"next\" href=\"").nth(1) {
            Some(rest) => url = demo.url(&rest.split('"').next().unwrap().replace("&amp;", "&")),
            None => break,
        }
    }
    assert_eq!(paged, rows, "pages of three are the whole page, in order");

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let taken = run_chromium(
        &bin,
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,900",
        ],
        &demo.url("/"),
    );
    let png = std::fs::read(&shot)
        .unwrap_or_else(|_| panic!("no screenshot: {}", String::from_utf8_lossy(&taken.stderr)));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        png.len() > 20_000,
        "a screenshot of a full page is more than {} bytes",
        png.len()
    );
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::copy(
            &shot,
            Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/status-page.png"),
        )
        .unwrap();
    }
}
