//! State under `--storage.path`, through the binary: a storage path the exporter cannot use
//! stops the start with the flag named, and a corrupt state file is kept beside as a backup
//! (and said so at error) instead of being silently replaced.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support;
use support::daemon::{BIN, Daemon, free_port, write};

/// One token the jwt provider reads locally, so the daemon needs no peer.
fn config(dir: &std::path::Path) -> std::path::PathBuf {
    // header {"alg":"ES256","typ":"JWT"}, claims {"sub":"svc","exp":4102444800}
    let jwt = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJzdmMiLCJleHAiOjQxMDI0NDQ4MDB9.c2ln";
    let secret = write(dir, "alpha.jwt", jwt);
    write(
        dir,
        "config.yml",
        &format!(
            "providers:\n  local:\n    kind: jwt\ntokens:\n  - name: alpha\n    provider: local\n    secret: {{file: {}}}\n",
            secret.display()
        ),
    )
}

#[test]
fn a_storage_path_that_is_a_file_fails_the_start_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let not_a_dir = write(dir.path(), "storage-file", "x");
    let mut child = Command::new(BIN)
        .args(["--config.file", config.to_str().unwrap()])
        .args(["--storage.path", not_a_dir.to_str().unwrap()])
        .args([
            "--web.listen-address",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a daemon that kept running here would log an error at every save, forever.
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the exporter kept running with --storage.path pointing at a file");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("--storage.path"), "{stderr}");
    assert!(
        stderr.contains(&not_a_dir.display().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("not a directory"), "{stderr}");
    // Nothing was written over the file.
    assert_eq!(std::fs::read_to_string(&not_a_dir).unwrap(), "x");
}

#[test]
fn corrupt_state_files_are_kept_as_backups_and_logged_at_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let storage = dir.path().join("data");
    std::fs::create_dir(&storage).unwrap();
    let garbage: &[(&str, &[u8])] = &[
        ("tokens.json", b"{\"tokens\": [truncated"),
        ("notifications.json", b"\x00\x01not json at all"),
    ];
    for (name, bytes) in garbage {
        std::fs::write(storage.join(name), bytes).unwrap();
    }
    let d = Daemon::start(&[
        "--config.file",
        config.to_str().unwrap(),
        "--storage.path",
        storage.to_str().unwrap(),
        "--log.format",
        "json",
    ]);
    d.wait_for("/-/ready", Duration::from_secs(10));
    let logs = d.logs();
    for (name, bytes) in garbage {
        let prefix = format!("{name}.corrupt-");
        let backups: Vec<_> = std::fs::read_dir(&storage)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with(&prefix)
            })
            .collect();
        assert_eq!(backups.len(), 1, "{name}: {backups:?}\n{logs}");
        assert_eq!(&std::fs::read(&backups[0]).unwrap(), bytes, "{name}");
        let line = logs
            .lines()
            .find(|l| l.contains(&backups[0].display().to_string()))
            .unwrap_or_else(|| panic!("no log line names the backup of {name}:\n{logs}"));
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["level"], "ERROR", "{line}");
    }
}
