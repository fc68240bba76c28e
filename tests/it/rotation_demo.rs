//! The demo's self-rotating token: `/metrics` counts a successful rotation within 60 seconds
//! of start, the JSON API and the page show it, and neither the old nor the new value shows
//! anywhere (metrics, API, page, log).

use std::time::{Duration, Instant};

use crate::support::daemon::Daemon;

const SUCCESS: &str =
    "api_token_rotations_total{token=\"session-api\",provider=\"demo-idp\",result=\"success\"} ";

#[test]
fn the_demo_counts_a_rotation_within_a_minute() {
    let started = Instant::now();
    let demo = Daemon::start(&["demo"]);
    let mut first_value = None;
    let metrics = loop {
        let log = demo.logs();
        if first_value.is_none()
            && let Some(dir) = log
                .split("config at ")
                .nth(1)
                .and_then(|rest| rest.lines().next())
                .and_then(|p| {
                    std::path::Path::new(p.trim())
                        .parent()
                        .map(|d| d.to_path_buf())
                })
        {
            first_value = std::fs::read_to_string(dir.join("session-api"))
                .ok()
                .map(|v| (dir, v.trim().to_string()));
        }
        let (status, body) = demo.get("/metrics");
        assert_eq!(status, 200);
        let count = body
            .lines()
            .find_map(|l| l.strip_prefix(SUCCESS))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if count >= 1 {
            break body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no successful rotation within 60 s of start; log:\n{}",
            demo.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        metrics.contains(
            "api_token_rotation_failing{token=\"session-api\",provider=\"demo-idp\"} 0\n"
        )
    );
    let (dir, old) = first_value.expect("the demo names its config file");
    let new = std::fs::read_to_string(dir.join("session-api"))
        .unwrap()
        .trim()
        .to_string();
    let refresh = std::fs::read_to_string(dir.join("session-api.refresh"))
        .unwrap()
        .trim()
        .to_string();
    assert_ne!(old, new, "the delivered file holds the new value");

    let (status, api) = demo.get("/api/v1/tokens/session-api");
    assert_eq!(status, 200, "{api}");
    let v: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(v["rotation"]["rotator"], "oauth2_refresh", "{api}");
    assert!(v["rotation"]["last_success_at"].is_string(), "{api}");
    assert_eq!(v["state"], "valid", "{api}");
    let (_, page) = demo.get("/");
    assert!(
        page.contains("rotation (oauth2_refresh)"),
        "the page shows the rotation"
    );
    let (_, all) = demo.get("/api/v1/tokens");
    let log = demo.logs();
    assert!(
        log.contains("token=session-api") && log.contains("step=deliver"),
        "{log}"
    );
    for value in [&old, &new, &refresh] {
        for (what, text) in [
            ("metrics", &metrics),
            ("api", &all),
            ("page", &page),
            ("log", &log),
        ] {
            assert!(
                !text.contains(value.as_str()),
                "a token value in the {what}"
            );
        }
    }
}
