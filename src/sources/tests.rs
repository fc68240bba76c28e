use super::*;

use crate::config::Config;

fn config(dir: &std::path::Path, extra_tokens: &str) -> Config {
    Config::parse(&format!(
        "providers:\n  gh: {{kind: github}}\n  gl: {{kind: gitlab}}\n  v: {{kind: vault, url: 'http://127.0.0.1:1', token: {{env: NOPE}}}}\n\
         tokens:\n{extra_tokens}\
         sources:\n  - name: mounted\n    kind: directory\n    path: {}\n    labels: {{team: platform}}\n    warning_before: 30d\n    critical_before: 7d\n",
        dir.display()
    ))
    .unwrap_or_else(|e| panic!("{e}"))
}

fn write(dir: &std::path::Path, name: &str, value: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{value}\n")).unwrap();
    p
}

#[tokio::test]
async fn a_directory_lists_one_token_per_file_with_its_detected_provider() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "ci",
        "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB",
    );
    write(dir.path(), "deploy", "glpat-0123456789abcdefghij");
    write(
        dir.path(),
        "npm",
        "npm_0123456789abcdefghijklmnopqrstuvwxyz",
    );
    write(dir.path(), "mystery", "not-a-known-prefix");
    write(dir.path(), "named", "not-a-known-prefix");
    write(
        dir.path(),
        "named.annotations",
        "# who owns it\nprovider: gh\nowner: team-a\n",
    );
    write(dir.path(), ".hidden", "ghp_hidden");
    std::fs::create_dir(dir.path().join("..data")).unwrap();
    let c = config(dir.path(), "  []\n");
    let listing = list(&c.sources[0], &c, &BuildContext::new()).await.unwrap();
    let got: Vec<(&str, &str, Option<&str>)> = listing
        .tokens
        .iter()
        .map(|d| (d.name.as_str(), d.provider.as_str(), d.owner.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("ci", "gh", None),
            ("deploy", "gl", None),
            ("named", "gh", Some("team-a"))
        ]
    );
    assert_eq!(listing.skipped.get("undetected"), Some(&1));
    assert_eq!(listing.skipped.get("no_provider"), Some(&1));

    let (composed, left) = compose(&c, &BTreeMap::from([("mounted".into(), listing)]));
    assert!(left.is_empty());
    let ci = composed.token("mounted/ci").unwrap();
    assert_eq!(ci.source.as_deref(), Some("mounted"));
    assert_eq!(ci.labels.get("team").map(String::as_str), Some("platform"));
    assert_eq!(ci.thresholds.warning_before.as_secs(), 30 * 86_400);
    assert!(matches!(&ci.secret, Some(SecretSource::File(f)) if f.path().ends_with("ci")));
    assert_eq!(ci.labels.get("owner"), None);
    // The owner a source reports is the `owner` label, next to the source's labels.
    let named = composed.token("mounted/named").unwrap();
    assert_eq!(
        named.labels.get("owner").map(String::as_str),
        Some("team-a")
    );
    assert_eq!(
        named.labels.get("team").map(String::as_str),
        Some("platform")
    );
}

#[tokio::test]
async fn a_missing_directory_is_a_failed_listing_not_an_empty_one() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(&dir.path().join("absent"), "  []\n");
    let e = list(&c.sources[0], &c, &BuildContext::new())
        .await
        .unwrap_err();
    assert_eq!(e.reason, FailReason::Misconfigured);
    let empty = tempfile::tempdir().unwrap();
    let c = config(empty.path(), "  []\n");
    let l = list(&c.sources[0], &c, &BuildContext::new()).await.unwrap();
    assert!(l.tokens.is_empty());
}

#[tokio::test]
async fn a_token_configured_by_hand_and_listed_appears_once() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "ci",
        "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB",
    );
    write(
        dir.path(),
        "other",
        "ghp_1123456789abcdefghijklmnopqrstuvwxyzAB",
    );
    // Configured through a path with a `..` in it: the same file all the same.
    let alias = dir.path().join("sub/../ci");
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let c = config(
        dir.path(),
        &format!(
            "  - {{name: by-hand, provider: gh, secret: {{file: {}}}}}\n",
            alias.display()
        ),
    );
    assert!(p.exists());
    let listing = list(&c.sources[0], &c, &BuildContext::new()).await.unwrap();
    let (composed, left) = compose(&c, &BTreeMap::from([("mounted".into(), listing)]));
    let names: Vec<&str> = composed.tokens.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["by-hand", "mounted/other"]);
    assert_eq!(left["mounted"]["configured"], 1);
}

#[test]
fn compose_names_discovered_tokens_after_their_source_and_skips_taken_names() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(
        dir.path(),
        "  - {name: mounted/a, provider: gh, secret: {env: X}}\n",
    );
    let d = |name: &str| Discovered {
        name: name.into(),
        provider: "gh".into(),
        secret: Some(SecretSource::Env("Y".into())),
        accessor: None,
        owner: None,
        state: None,
        identity: Identity::File(PathBuf::from(format!("/nowhere/{name}"))),
        expires_at: None,
        issued_at: None,
        last_used_at: None,
        sliding_window_seconds: None,
    };
    let listing = Listing {
        tokens: vec![d("a"), d("b")],
        skipped: BTreeMap::new(),
    };
    let (composed, left) = compose(&c, &BTreeMap::from([("mounted".into(), listing)]));
    let names: Vec<&str> = composed.tokens.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["mounted/a", "mounted/b"]);
    assert_eq!(composed.tokens[0].source, None);
    assert_eq!(left["mounted"]["name_taken"], 1);
    // A source with no listing yet adds nothing.
    let (nothing, _) = compose(&c, &BTreeMap::new());
    assert_eq!(nothing.tokens.len(), 1);
}

#[test]
fn health_keeps_the_last_good_count_through_a_failure() {
    let h = health::Health::default();
    h.configure([("s", "vault")]);
    let ok = Listing {
        tokens: vec![],
        skipped: BTreeMap::from([("vanished", 2)]),
    };
    h.record("s", Ok(&ok), std::time::Duration::from_millis(5), 100);
    h.record(
        "s",
        Err(&ListError::new(FailReason::Unreachable, "HTTP 503")),
        std::time::Duration::from_millis(7),
        200,
    );
    let s = &h.snapshot()["s"];
    assert!(!s.up);
    assert_eq!(s.last_success, Some(100));
    assert_eq!(s.failures[&FailReason::Unreachable], 1);
    assert_eq!(s.not_entered()["vanished"], 2);
    h.configure([("t", "directory")]);
    assert!(!h.snapshot().contains_key("s"));
}

#[tokio::test]
async fn a_kubernetes_secret_mount_lists_each_key_once_through_its_links() {
    // What the kubelet writes: the keys in a timestamped directory, `..data` linking to it,
    // and one link per key through `..data`, so an update swaps one link.
    let dir = tempfile::tempdir().unwrap();
    let version = dir.path().join("..2026_12_05_07_00_00.123");
    std::fs::create_dir(&version).unwrap();
    write(&version, "deploy", "glpat-0123456789abcdefghij");
    write(&version, "deploy.annotations", "owner: team-k\n");
    std::os::unix::fs::symlink("..2026_12_05_07_00_00.123", dir.path().join("..data")).unwrap();
    for key in ["deploy", "deploy.annotations"] {
        std::os::unix::fs::symlink(format!("..data/{key}"), dir.path().join(key)).unwrap();
    }
    let c = config(dir.path(), "  []\n");
    let listing = list(&c.sources[0], &c, &BuildContext::new()).await.unwrap();
    let got: Vec<(&str, &str, Option<&str>)> = listing
        .tokens
        .iter()
        .map(|d| (d.name.as_str(), d.provider.as_str(), d.owner.as_deref()))
        .collect();
    assert_eq!(got, [("deploy", "gl", Some("team-k"))]);
    assert!(listing.skipped.is_empty(), "{:?}", listing.skipped);
}
