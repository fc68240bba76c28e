//! kill -9 at each step of a rotation, then a restart: the daemon (the real binary) aborts
//! right after saving the named step (the debug-only crash hook), and a second daemon on
//! the same storage finishes. Exactly one new value is in use, no refresh token is used
//! twice (oidc-provider would revoke the whole grant), and the delivered file holds a
//! working token. A crash during the non-idempotent provider call stops at `interrupted`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::rotation_oauth::{config, read, seed};
use crate::support;
use api_token_exporter::rotate::machine::{Record, RotationFile};
use api_token_exporter::rotate::{CRASH_AFTER_ENV, STATE_FILE};
use support::daemon::{BIN, Daemon, free_port};
use support::oidc::{self, OidcServer};

/// Starts the daemon on `dir`'s config and storage on a free port, stderr appended to
/// `dir/stderr.log`; with `crash_after`, it aborts right after saving that step.
pub fn start(dir: &Path, crash_after: Option<&str>) -> Child {
    start_on(dir, free_port(), crash_after)
}

/// [`start`] on a given `port`, for a test that reads the daemon's HTTP answers.
pub fn start_on(dir: &Path, port: u16, crash_after: Option<&str>) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.arg(format!(
        "--config.file={}",
        dir.join("config.yml").display()
    ))
    .arg(format!("--storage.path={}", dir.join("data").display()))
    .arg(format!("--web.listen-address=127.0.0.1:{port}"))
    .env_remove(CRASH_AFTER_ENV)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("stderr.log"))
            .unwrap(),
    );
    if let Some(step) = crash_after {
        cmd.env(CRASH_AFTER_ENV, step);
    }
    cmd.spawn().unwrap()
}

/// Asserts `path`'s permission bits are `want`: a file holding a value is readable by its
/// owner alone (or keeps the mode it was found with); `what` names it in the failure.
pub fn assert_mode(path: &Path, want: u32, what: &str) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, want, "{what}: mode {mode:o}, want {want:o}");
}

pub fn saved(dir: &Path) -> RotationFile {
    let bytes = std::fs::read(dir.join("data").join(STATE_FILE)).unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or_default()
}

pub fn logs(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default()
}

/// Waits until `done` holds for the saved state, or fails with the daemon's log.
pub fn wait_saved(dir: &Path, what: &str, done: impl Fn(&RotationFile) -> bool) -> RotationFile {
    let started = Instant::now();
    loop {
        let file = saved(dir);
        if done(&file) {
            return file;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what} not reached; saved: {file:?}\nlog:\n{}",
            logs(dir)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn wait_exit(child: &mut Child, dir: &Path) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the crash hook did not fire; log:\n{}",
            logs(dir)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a daemon that aborts right after saving `step`, and returns `token`'s saved record,
/// checked to be at that step.
pub fn crash_at(dir: &Path, token: &str, step: &str) -> Record {
    let mut first = start(dir, Some(step));
    let status = wait_exit(&mut first, dir);
    assert!(!status.success(), "aborted, not exited: {status}");
    let record = saved(dir).tokens[token].clone();
    assert_eq!(record.step.as_str(), step, "{record:?}");
    record
}

/// Runs a second daemon until `token`'s rotation has finished, and returns the saved file,
/// checked to hold no pending value and no failure for it.
pub fn resume(dir: &Path, token: &str) -> RotationFile {
    let second = start(dir, None);
    let file = wait_saved(dir, "a finished rotation", |f| {
        f.tokens
            .get(token)
            .is_some_and(|r| r.step.as_str() == "idle" && r.last_success_at.is_some())
    });
    stop(second);
    let record = &file.tokens[token];
    assert!(record.pending.is_none());
    assert_eq!(record.failures, 0, "{record:?}\n{}", logs(dir));
    file
}

/// Where a restarted daemon could show a value, as (what, text): `/metrics` (as waited
/// for), the JSON API, the page, both daemons' logs and the finished state file.
pub struct Shown {
    pub places: Vec<(&'static str, String)>,
}

impl Shown {
    pub fn of(daemon: &Daemon, dir: &Path, metrics: String) -> Shown {
        let (_, api) = daemon.get("/api/v1/tokens");
        let (_, page) = daemon.get("/");
        let log = format!("{}{}", logs(dir), daemon.logs());
        let finished = std::fs::read_to_string(dir.join("data").join(STATE_FILE)).unwrap();
        Shown {
            places: vec![
                ("metrics", metrics),
                ("api", api),
                ("page", page),
                ("log", log),
                ("finished state file", finished),
            ],
        }
    }

    pub fn log(&self) -> &str {
        &self.places[3].1
    }
}

/// Restarts the daemon on `dir`'s storage with `yaml` (its plan far off, so only a resumed
/// rotation writes), waits until `/metrics` holds `success`, then a little more for any
/// (wrong) second call, and returns the daemon and that `/metrics` body.
pub async fn restart(dir: &Path, yaml: &str, success: &str) -> (Daemon, String) {
    std::fs::write(dir.join("config.yml"), yaml).unwrap();
    let daemon = Daemon::start(&[
        &format!("--config.file={}", dir.join("config.yml").display()),
        &format!("--storage.path={}", dir.join("data").display()),
    ]);
    let metrics = daemon.wait_metric(success, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    (daemon, metrics)
}

pub fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// Crashes after `step`, restarts, and checks the outcome of the resumed rotation.
async fn crash_and_resume(step: &str) {
    let oidc = OidcServer::shared();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (access0, refresh0) = seed(oidc, dir).await;
    // probe_interval is long: after the rotation, no new answer comes to plan another.
    let yaml = config(oidc, dir, "").replace(
        "global:\n",
        "global:\n  probe_interval: 1h\n  min_probe_interval: 1h\n",
    );
    std::fs::write(dir.join("config.yml"), yaml).unwrap();

    let mut first = start(dir, Some(step));
    let status = wait_exit(&mut first, dir);
    assert!(!status.success(), "aborted, not exited: {status}");
    let after_crash = saved(dir);
    let record = &after_crash.tokens["app"];
    let expected = if step == "finished" { "idle" } else { step };
    assert_eq!(record.step.as_str(), expected, "{record:?}");

    // After `finished` nothing is left to resume (a restart would only plan the next
    // rotation, from a new answer); otherwise a second daemon finishes this one.
    let file = if step == "finished" {
        after_crash
    } else {
        let second = start(dir, None);
        let file = wait_saved(dir, "a finished rotation", |f| {
            f.tokens
                .get("app")
                .is_some_and(|r| r.step.as_str() == "idle" && r.last_success_at.is_some())
        });
        stop(second);
        file
    };
    let record = &file.tokens["app"];
    assert!(record.pending.is_none());
    assert_eq!(record.failures, 0, "{record:?}\n{}", logs(dir));

    // Exactly one new value in use, and it works.
    let access1 = read(dir, "access");
    assert_ne!(access1, access0);
    assert_eq!(read(dir, "hook"), access1);
    assert_eq!(oidc.introspect(&access1).await["active"], true);
    // The grant is intact (a refresh token used twice would have revoked it) and the
    // delivered refresh token is the one that works now; the first one is spent (asked
    // last: its reuse revokes the grant).
    let refresh1 = read(dir, "refresh");
    assert_ne!(refresh1, refresh0);
    let (code, v) = oidc.refresh(&refresh1).await;
    assert_eq!(code, 200, "the delivered refresh token does not work: {v}");
    let (code, v) = oidc.refresh(&refresh0).await;
    assert_eq!((code, v["error"].as_str()), (400, Some("invalid_grant")));
    // The value never reached the log.
    let log = logs(dir);
    for value in [&access0, &access1, &refresh0, &refresh1] {
        assert!(!log.contains(value.as_str()), "a value in the log");
    }
    assert!(log.contains("token=app"), "{log}");
}

#[tokio::test]
async fn kill_after_issued_resumes_with_the_saved_value() {
    if !oidc::available() {
        return;
    }
    crash_and_resume("issued").await;
}

#[tokio::test]
async fn kill_after_delivered_resumes_at_the_test() {
    if !oidc::available() {
        return;
    }
    crash_and_resume("delivered").await;
}

#[tokio::test]
async fn kill_after_tested_resumes_at_finish() {
    if !oidc::available() {
        return;
    }
    crash_and_resume("tested").await;
}

#[tokio::test]
async fn kill_after_finished_leaves_a_complete_rotation() {
    if !oidc::available() {
        return;
    }
    crash_and_resume("finished").await;
}

#[tokio::test]
async fn kill_during_the_refresh_call_is_never_repeated_with_the_old_value() {
    if !oidc::available() {
        return;
    }
    let oidc = OidcServer::shared();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (access0, refresh0) = seed(oidc, dir).await;
    std::fs::write(dir.join("config.yml"), config(oidc, dir, "")).unwrap();
    let mut first = start(dir, Some("creating"));
    wait_exit(&mut first, dir);
    assert_eq!(saved(dir).tokens["app"].step.as_str(), "creating");
    let second = start(dir, None);
    let file = wait_saved(dir, "interrupted", |f| {
        f.tokens
            .get("app")
            .is_some_and(|r| r.step.as_str() == "interrupted")
    });
    // Give it time to (wrongly) try again.
    std::thread::sleep(Duration::from_secs(3));
    stop(second);
    assert_eq!(saved(dir), file);
    assert_eq!(read(dir, "access"), access0);
    assert_eq!(read(dir, "refresh"), refresh0);
    assert!(logs(dir).contains("rotation interrupted"), "{}", logs(dir));

    // The runbook: a dry run changes nothing, then `rotate --token` resumes it.
    let rotate = |extra: &[&str]| {
        Command::new(BIN)
            .arg(format!(
                "--config.file={}",
                dir.join("config.yml").display()
            ))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .args(["rotate", "--token", "app"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = rotate(&["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(read(dir, "access"), access0);
    assert_eq!(saved(dir).tokens["app"].step.as_str(), "interrupted");
    let out = rotate(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("rotate: app: rotated (oauth2_refresh)"),
        "{stdout}"
    );
    let access1 = read(dir, "access");
    assert_ne!(access1, access0);
    assert_eq!(oidc.introspect(&access1).await["active"], true);
    assert_eq!(saved(dir).tokens["app"].step.as_str(), "idle");
    for value in [&access0, &access1, &refresh0] {
        assert!(!stdout.contains(value.as_str()) && !stderr.contains(value.as_str()));
    }
    // The new refresh token works (and the old one had not been used before).
    let refresh1 = read(dir, "refresh");
    let (code, v) = oidc.refresh(&refresh1).await;
    assert_eq!(code, 200, "{v}");
    // A token without rotate: is a config error.
    let out = Command::new(BIN)
        .arg(format!(
            "--config.file={}",
            dir.join("config.yml").display()
        ))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .args(["rotate", "--token", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no rotate: block"));
}
