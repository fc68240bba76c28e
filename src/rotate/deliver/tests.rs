use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use super::*;

#[test]
fn a_file_is_replaced_whole_and_keeps_its_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "old\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let inode_before = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
    write_file(&path, b"new\n").unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    // Renamed over, not written in place: a reader holding the old file keeps it whole.
    assert_ne!(std::os::unix::fs::MetadataExt::ino(&meta), inode_before);
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1);
}

#[test]
fn a_new_file_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh");
    write_file(&path, b"v\n").unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn a_missing_directory_fails_naming_the_path_not_the_value() {
    let e = write_file(Path::new("/nonexistent-dir/x"), b"canary-value").unwrap_err();
    assert!(e.contains("/nonexistent-dir/x"), "{e}");
    assert!(!e.contains("canary"), "{e}");
}

#[tokio::test]
async fn a_hook_gets_the_value_on_stdin_and_the_token_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let script = format!(
        "read v; printf '%s %s' \"$API_TOKEN_EXPORTER_TOKEN\" \"$v\" > {}",
        out.display()
    );
    let target = Deliver::Exec {
        argv: vec!["/bin/sh".into(), "-c".into(), script],
        timeout: Duration::from_secs(5),
    };
    deliver(&target, "ci", "the-new-value").await.unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "ci the-new-value");
}

#[tokio::test]
async fn a_failing_or_slow_hook_fails_the_delivery() {
    let fail = Deliver::Exec {
        argv: vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo canary >&2; exit 3".into(),
        ],
        timeout: Duration::from_secs(5),
    };
    let e = deliver(&fail, "ci", "canary").await.unwrap_err();
    assert!(e.contains("exited"), "{e}");
    assert!(!e.contains("canary"), "{e}");
    let slow = Deliver::Exec {
        argv: vec!["/bin/sh".into(), "-c".into(), "sleep 30".into()],
        timeout: Duration::from_millis(200),
    };
    let started = Instant::now();
    let e = deliver(&slow, "ci", "v").await.unwrap_err();
    assert!(e.contains("did not finish"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
