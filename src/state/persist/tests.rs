use super::*;
use std::collections::BTreeMap;

#[test]
fn round_trip_and_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = StateFile::new(dir.path(), "s.json");
    let empty: BTreeMap<String, u64> = f.load();
    assert!(empty.is_empty());
    let v = BTreeMap::from([("a".to_string(), 1u64)]);
    f.save(&v).unwrap();
    assert_eq!(f.load::<BTreeMap<String, u64>>(), v);
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_corrupt_file_loads_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.json"), b"{not json").unwrap();
    let f = StateFile::new(dir.path(), "s.json");
    assert!(f.load::<BTreeMap<String, u64>>().is_empty());
}

#[test]
fn a_storage_path_that_is_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    let e = check_storage_dir(&file).unwrap_err();
    assert!(e.contains(&file.display().to_string()), "{e}");
    assert!(e.contains("not a directory"), "{e}");
    // A missing directory is created; an existing one passes and is left clean.
    let fresh = dir.path().join("a/b");
    check_storage_dir(&fresh).unwrap();
    check_storage_dir(&fresh).unwrap();
    assert_eq!(std::fs::read_dir(&fresh).unwrap().count(), 0);
}

fn backups(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("s.json.corrupt-")
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_corrupt_file_is_kept_beside_as_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.json"), b"{not json").unwrap();
    let f = StateFile::new(dir.path(), "s.json");
    assert!(f.load::<BTreeMap<String, u64>>().is_empty());
    let kept = backups(dir.path());
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(std::fs::read(&kept[0]).unwrap(), b"{not json");
    assert!(!f.path().exists());
    // The next save does not touch the backup.
    f.save(&BTreeMap::from([("a".to_string(), 1u64)])).unwrap();
    assert_eq!(std::fs::read(&kept[0]).unwrap(), b"{not json");
}

#[test]
fn read_only_load_leaves_a_corrupt_file_in_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.json"), b"{not json").unwrap();
    let f = StateFile::new(dir.path(), "s.json");
    assert!(f.load_read_only::<BTreeMap<String, u64>>().is_empty());
    assert_eq!(std::fs::read(f.path()).unwrap(), b"{not json");
    assert!(backups(dir.path()).is_empty());
}

#[test]
fn backups_are_bounded_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let f = StateFile::new(dir.path(), "s.json");
    for i in 0..(MAX_CORRUPT_BACKUPS + 2) {
        std::fs::write(f.path(), format!("bad {i}")).unwrap();
        assert!(f.load::<BTreeMap<String, u64>>().is_empty());
    }
    let kept = backups(dir.path());
    assert_eq!(kept.len(), MAX_CORRUPT_BACKUPS, "{kept:?}");
    let contents: Vec<String> = kept
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    // The newest ones survive (within one second the names differ by suffix only).
    assert!(
        contents.contains(&format!("bad {}", MAX_CORRUPT_BACKUPS + 1)),
        "{contents:?}"
    );
}

#[cfg(unix)]
#[test]
fn a_private_file_is_never_readable_by_others() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // A temp file left by a crash, readable by all, must not lend its mode.
    std::fs::write(
        dir.path()
            .join(format!(".rotation.json.tmp-{}", std::process::id())),
        b"",
    )
    .unwrap();
    let file = StateFile::private(dir.path(), "rotation.json");
    file.save(&serde_json::json!({"a": 1})).unwrap();
    let mode = std::fs::metadata(file.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}
