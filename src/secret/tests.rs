use std::collections::BTreeMap;
use std::time::Duration;

use super::*;

#[test]
fn debug_and_display_redact() {
    let s = Secret::new("canary-value-123");
    assert_eq!(format!("{s:?} {s}"), "<secret> <secret>");
    assert_eq!(s.expose(), "canary-value-123");
}

#[test]
fn fingerprint_is_short_and_stable() {
    let f = fingerprint("abc");
    assert_eq!(f, "sha256:ba7816bf8f01");
    assert_ne!(fingerprint("abd"), f);
}

#[tokio::test]
async fn file_source_trims_newline_and_rereads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t");
    std::fs::write(&path, "first\n").unwrap();
    let src = SecretSource::File(FileSource::new(&path));
    assert_eq!(src.read().await.unwrap().expose(), "first");
    std::fs::write(&path, "second\r\n").unwrap();
    assert_eq!(src.read().await.unwrap().expose(), "second");
}

/// Both reads, the inline one that stops at a short read and the pool's that reads to the
/// end, return every byte of files around the first buffer's size and its growth, and
/// stop one byte past the cap.
#[test]
fn reads_return_whole_files_of_every_size_up_to_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t");
    for size in [0, 1, 40, 1023, 1024, 1025, 8191, 8192, 8193, 65_536] {
        let content: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        for classify in [false, true] {
            let (read, _) = read_capped(&path, classify).unwrap();
            assert!(read == content, "{size} bytes, classify {classify}");
        }
    }
    std::fs::write(&path, vec![b'x'; MAX_SECRET_BYTES * 2]).unwrap();
    for classify in [false, true] {
        let (read, _) = read_capped(&path, classify).unwrap();
        assert_eq!(read.len(), MAX_SECRET_BYTES + 1, "classify {classify}");
    }
    assert!(read_capped(&dir.path().join("absent"), false).is_err());
}

#[tokio::test]
async fn file_source_errors_name_the_path_not_the_content() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    std::fs::write(&big, "x".repeat(MAX_SECRET_BYTES + 1)).unwrap();
    let err = SecretSource::File(FileSource::new(big))
        .read()
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::FileTooLarge(_)), "{err}");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let err = SecretSource::File(FileSource::new(empty))
        .read()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("empty secret"), "{err}");
    let missing = SecretSource::File(FileSource::new(dir.path().join("nope")))
        .read()
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("nope"), "{missing}");
}

#[tokio::test]
async fn exec_source_runs_without_shell_and_with_cleared_env() {
    // SAFETY-free: set_var is fine in a single test; the variable name is unique.
    let src = SecretSource::Exec(ExecSource {
        argv: vec![
            "sh".into(),
            "-c".into(),
            "printf '%s' \"${LEAK:-none}:$ONLY\"".into(),
        ],
        timeout: Duration::from_secs(5),
        env: BTreeMap::from([("ONLY".into(), "given".into())]),
    });
    // LEAK is not passed through: the child sees only PATH and the configured env.
    assert_eq!(src.read().await.unwrap().expose(), "none:given");
}

#[tokio::test]
async fn exec_source_times_out_and_reports_status() {
    let slow = SecretSource::Exec(ExecSource {
        argv: vec!["sleep".into(), "5".into()],
        timeout: Duration::from_millis(100),
        env: BTreeMap::new(),
    });
    assert!(matches!(
        slow.read().await,
        Err(SecretError::ExecTimeout(..))
    ));
    let failing = SecretSource::Exec(ExecSource {
        argv: vec!["false".into()],
        timeout: Duration::from_secs(5),
        env: BTreeMap::new(),
    });
    assert!(matches!(
        failing.read().await,
        Err(SecretError::ExecStatus(..))
    ));
}

/// Whether `pid` is gone: no such process, or a zombie (a container's init may not reap
/// it, but it runs nothing).
#[cfg(target_os = "linux")]
fn gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[cfg(target_os = "linux")]
async fn pid_from(file: &std::path::Path) -> String {
    for _ in 0..100 {
        if let Ok(pid) = std::fs::read_to_string(file)
            && !pid.trim().is_empty()
        {
            return pid.trim().to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the helper did not write its child's pid");
}

#[cfg(target_os = "linux")]
async fn assert_gone_soon(pid: &str) {
    for _ in 0..100 {
        if gone(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Do not leave it behind for the other tests either.
    let _ = std::process::Command::new("kill")
        .args(["-9", pid])
        .status();
    panic!("the helper's child {pid} outlived it");
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn exec_timeout_kills_what_the_helper_started() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let hanging = SecretSource::Exec(ExecSource {
        argv: vec![
            "sh".into(),
            "-c".into(),
            // The grandchild's own output goes elsewhere: only the timeout can end this.
            "sleep 300 >/dev/null & echo $! > \"$0\"; sleep 300".into(),
            pidfile.display().to_string(),
        ],
        timeout: Duration::from_millis(500),
        env: BTreeMap::new(),
    });
    assert!(matches!(
        hanging.read().await,
        Err(SecretError::ExecTimeout(..))
    ));
    let pid = pid_from(&pidfile).await;
    assert_gone_soon(&pid).await;
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn exec_helper_that_exits_leaving_its_output_open_is_not_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let leaky = SecretSource::Exec(ExecSource {
        argv: vec![
            "sh".into(),
            "-c".into(),
            // The background sleep inherits stdout and keeps the pipe open.
            "printf canary-token; sleep 300 & echo $! > \"$0\"".into(),
            pidfile.display().to_string(),
        ],
        timeout: Duration::from_secs(60),
        env: BTreeMap::new(),
    });
    // Generous next to the grace, far below the 60 s the read waited before.
    let read = tokio::time::timeout(Duration::from_secs(15), leaky.read())
        .await
        .expect("the read waited for the helper's leftover child");
    assert_eq!(read.unwrap().expose(), "canary-token");
    let pid = pid_from(&pidfile).await;
    assert_gone_soon(&pid).await;
}

#[test]
fn inline_values_are_refused_without_echo() {
    let err = serde_saphyr::from_str::<SecretSource>("ghp_canary").unwrap_err();
    let shown = format!("{err}");
    assert!(shown.contains("must not be written inline"), "{shown}");
    let msg = serde_saphyr::UserMessageFormatter;
    let plain = serde_saphyr::MessageFormatter::format_message(&msg, &err);
    assert!(!plain.contains("ghp_canary"), "{plain}");
}

#[test]
fn map_forms_decode() {
    let env: SecretSource = serde_saphyr::from_str("{env: X}").unwrap();
    assert_eq!(env, SecretSource::Env("X".into()));
    let exec: SecretSource = serde_saphyr::from_str("{exec: [a, b], timeout: 2s}").unwrap();
    match exec {
        SecretSource::Exec(e) => {
            assert_eq!(e.argv, ["a", "b"]);
            assert_eq!(e.timeout, Duration::from_secs(2));
        }
        other => panic!("{other:?}"),
    }
    assert!(serde_saphyr::from_str::<SecretSource>("{env: X, file: y}").is_err());
    assert!(serde_saphyr::from_str::<SecretSource>("{file: y, timeout: 1s}").is_err());
}

/// A directory on a filesystem [`is_local_filesystem`] accepts: `/dev/shm` (tmpfs) where
/// there is one, else the temporary directory.
fn local_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let fs = rustix::fs::statfs(dir.path()).unwrap();
    assert!(
        statfs_is_local(&fs),
        "{} is on filesystem {:#x}, which the exporter would not read inline",
        dir.path().display(),
        fs.f_type
    );
    dir
}

#[test]
fn mount_tables_with_only_local_filesystems() {
    let container = "\
22 1 0:21 / / rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
23 22 0:22 / /proc rw,nosuid - proc proc rw
24 22 0:23 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k
25 24 0:24 / /dev/pts rw - devpts devpts rw,gid=5
26 22 0:25 / /sys ro - sysfs sysfs ro
27 26 0:26 / /sys/fs/cgroup ro - cgroup2 cgroup rw
28 22 253:1 /var/lib/kubelet/pods/p/etc-hosts /etc/hosts rw shared:1 master:2 - ext4 /dev/vda1 rw
29 22 0:27 / /var/run/secrets/kubernetes.io/serviceaccount ro - tmpfs tmpfs rw,size=1G
";
    assert!(mounts_all_local(container));
    for remote in [
        "30 22 0:40 / /mnt/secrets rw - nfs4 server:/export rw,vers=4.2",
        "30 22 0:40 / /mnt/secrets rw - fuse.sshfs host:/s rw",
        "30 22 0:40 / /mnt/secrets rw - autofs systemd-1 rw",
        "30 22 0:40 / /mnt/secrets rw - cifs //server/share rw",
        "30 22 0:40 / /mnt/secrets rw - 9p drvfs rw",
        "a line that is not a mount",
    ] {
        assert!(
            !mounts_all_local(&format!("{container}{remote}\n")),
            "{remote}"
        );
    }
    assert!(!mounts_all_local(""));
}

/// With a mount table of local filesystems only, files are taken as local without a
/// system call each (a path that does not exist is marked local all the same); with one
/// network mount, each file is asked about (an existing one is local here, a missing one
/// stays unknown and goes to the blocking pool).
#[test]
fn classification_asks_each_file_only_when_a_remote_mount_exists() {
    let dir = tempfile::tempdir().unwrap();
    let present = dir.path().join("present");
    std::fs::write(&present, "x").unwrap();
    let sources = || {
        [
            SecretSource::File(FileSource::new(dir.path().join("absent"))),
            SecretSource::File(FileSource::new(&present)),
        ]
    };
    let inline = |s: &[SecretSource; 2]| {
        s.iter()
            .map(|s| match s {
                SecretSource::File(f) => f.reads_inline(),
                _ => unreachable!(),
            })
            .collect::<Vec<_>>()
    };
    let local = "1 0 0:1 / / rw - ext4 /dev/vda1 rw\n";
    let all_local = sources();
    classify_files_with(&all_local, Some(local));
    assert_eq!(inline(&all_local), [true, true]);

    let with_nfs = sources();
    let nfs = format!("{local}2 1 0:2 / /mnt rw - nfs4 server:/e rw\n");
    classify_files_with(&with_nfs, Some(&nfs));
    let tmp_is_local = std::fs::read_to_string("/proc/self/mountinfo")
        .is_ok_and(|_| rustix::fs::statfs(dir.path()).is_ok_and(|fs| statfs_is_local(&fs)));
    assert_eq!(inline(&with_nfs), [false, tmp_is_local]);
}

#[test]
fn local_filesystems_by_magic() {
    for local in [0x0102_1994, 0xef53, 0x5846_5342, 0x794c_7630] {
        assert!(is_local_filesystem(local), "{local:#x}");
    }
    // NFS, FUSE, SMB2, 9p, procfs: read on the blocking pool.
    for other in [0x6969, 0x6573_5546, 0xfe53_4d42, 0x0102_1997, 0x9fa0] {
        assert!(!is_local_filesystem(other), "{other:#x}");
    }
}

/// With the runtime's only blocking thread held, a file on a local filesystem is still
/// read (inline, once its first read classified it), and a file on any other filesystem
/// (procfs here) waits for the pool: it never runs on the async worker.
#[test]
fn local_files_are_read_inline_and_others_on_the_blocking_pool() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(1)
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = local_dir();
        let path = dir.path().join("t");
        std::fs::write(&path, "local-value\n").unwrap();
        let local = FileSource::new(&path);
        let proc = FileSource::new("/proc/self/comm");
        assert!(!local.reads_inline());
        assert_eq!(local.read().await.unwrap(), b"local-value\n");
        assert!(
            local.reads_inline(),
            "a tmpfs file is read inline after its first read"
        );
        assert!(!proc.read().await.unwrap().is_empty());
        assert!(!proc.reads_inline(), "procfs is not on the local list");

        let (release, held) = std::sync::mpsc::channel::<()>();
        let blocker = tokio::task::spawn_blocking(move || held.recv());
        let wait = Duration::from_millis(300);
        let read = tokio::time::timeout(wait, local.read()).await;
        assert_eq!(read.unwrap().unwrap(), b"local-value\n");
        let mut pending = Box::pin(proc.read());
        assert!(
            tokio::time::timeout(wait, &mut pending).await.is_err(),
            "a procfs read finished while the blocking pool was held"
        );
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        assert!(!pending.await.unwrap().is_empty());
    });
}

#[tokio::test]
async fn classify_files_lets_the_first_read_run_inline_and_a_failure_forgets() {
    let dir = local_dir();
    let path = dir.path().join("t");
    std::fs::write(&path, "v").unwrap();
    let source = SecretSource::File(FileSource::new(&path));
    let missing = SecretSource::File(FileSource::new(dir.path().join("nope")));
    // A mount table with a network mount: each file is asked about.
    let with_nfs = "1 0 0:1 / / rw - ext4 /dev/vda1 rw\n2 1 0:2 / /mnt rw - nfs4 s:/e rw\n";
    classify_files_with(
        [&source, &missing, &SecretSource::Env("X".into())],
        Some(with_nfs),
    );
    let SecretSource::File(file) = &source else {
        unreachable!()
    };
    assert!(file.reads_inline());
    let SecretSource::File(absent) = &missing else {
        unreachable!()
    };
    assert!(
        !absent.reads_inline(),
        "a file that cannot be found is not classified"
    );

    // The file goes away: the failed read names it, and the next read asks again.
    std::fs::remove_file(&path).unwrap();
    let err = source.read().await.unwrap_err();
    assert!(err.to_string().contains("cannot read secret file"), "{err}");
    assert!(!file.reads_inline());
    std::fs::write(&path, "w").unwrap();
    assert_eq!(source.read().await.unwrap().expose(), "w");
    assert!(file.reads_inline());
    // The cache is not part of what a source is.
    assert_eq!(
        source,
        SecretSource::File(FileSource::new(&path)),
        "equality ignores the filesystem cache"
    );
}

#[tokio::test]
async fn a_credential_is_reused_for_a_second_and_a_failure_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cred");
    std::fs::write(&path, "first").unwrap();
    let cred = Credential::new(SecretSource::File(FileSource::new(&path)));
    assert_eq!(cred.read().await.unwrap().expose(), "first");
    std::fs::write(&path, "second").unwrap();
    assert_eq!(
        cred.read().await.unwrap().expose(),
        "first",
        "re-read within CREDENTIAL_REUSE"
    );
    tokio::time::sleep(CREDENTIAL_REUSE + Duration::from_millis(100)).await;
    assert_eq!(cred.read().await.unwrap().expose(), "second");

    let missing = Credential::new(SecretSource::File(FileSource::new(dir.path().join("n"))));
    assert!(missing.read().await.is_err());
    std::fs::write(dir.path().join("n"), "now-there").unwrap();
    assert_eq!(
        missing.read().await.unwrap().expose(),
        "now-there",
        "a failed read is tried again at once"
    );
}
