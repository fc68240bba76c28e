use super::*;

#[test]
fn glob_matches_stars_and_question_marks() {
    for (p, t, want) in [
        ("*", "", true),
        ("ci-*", "ci-deploy", true),
        ("ci-*", "cd-deploy", false),
        ("*-test", "a-test", true),
        ("*-test", "a-tests", false),
        ("a?c", "abc", true),
        ("a?c", "ac", false),
        ("*a*b*", "xxaxxbxx", true),
        ("*a*b", "xxaxxbx", false),
        ("exact", "exact", true),
    ] {
        assert_eq!(glob(p, t), want, "{p} {t}");
    }
}

#[test]
fn a_filter_needs_every_list_that_is_set() {
    let f = Filter {
        include: vec!["ci-*".into()],
        exclude: vec!["*-old".into()],
        owners: vec!["team-a".into()],
        states: vec![],
    };
    assert!(f.admits("ci-deploy", Some("team-a"), None));
    assert!(!f.admits("ci-deploy-old", Some("team-a"), None));
    assert!(!f.admits("ci-deploy", Some("team-b"), None));
    assert!(!f.admits("ci-deploy", None, None));
    assert!(!f.admits("deploy", Some("team-a"), None));
    assert!(Filter::default().admits("anything", None, None));
}

fn errors(yaml: &str) -> String {
    crate::config::Config::parse(yaml).unwrap_err().to_string()
}

#[test]
fn source_errors_name_the_field_and_line() {
    let e = errors(
        "providers:\n  gh: {kind: github}\nsources:\n  - name: a\n    kind: gitlab_groups\n",
    );
    assert!(
        e.contains("sources[0].kind: unknown source kind \"gitlab_groups\""),
        "{e}"
    );
    assert!(e.contains("line 5"), "{e}");
    let e = errors("sources:\n  - {name: a, kind: directory}\n");
    assert!(
        e.contains("sources[0].path: a directory source needs path"),
        "{e}"
    );
    let e = errors(
        "providers:\n  gh: {kind: github}\nsources:\n  - {name: v, kind: vault, provider: gh, credential: {env: X}}\n",
    );
    assert!(
        e.contains("sources[0].provider: provider \"gh\" is of kind github, not vault"),
        "{e}"
    );
    let e = errors(
        "sources:\n  - {name: d, kind: directory, path: /x, refresh: 10ms, labels: {token: x}}\n",
    );
    assert!(e.contains("sources[0].refresh: must be at least 1s"), "{e}");
    assert!(e.contains("sources[0].labels.token"), "{e}");
    let e = errors(
        "sources:\n  - {name: d, kind: directory, path: /x}\n  - {name: d, kind: directory, path: /y}\n",
    );
    assert!(e.contains("duplicate source name \"d\""), "{e}");
    let e = errors("sources:\n  - {name: d, kind: directory, path: /x, colour: red}\n");
    assert!(e.contains("colour"), "{e}");
}

#[test]
fn a_credential_is_never_inline_and_never_quoted() {
    let canary = "hvs.CANARYCANARYCANARY";
    let e = errors(&format!(
        "providers:\n  v: {{kind: vault, url: 'http://127.0.0.1:1', token: {{env: T}}}}\nsources:\n  - {{name: s, kind: vault, provider: v, credential: {canary}}}\n"
    ));
    assert!(e.contains("must not be written inline"), "{e}");
    assert!(!e.contains(canary), "{e}");
}

#[test]
fn provider_auto_detects_a_configured_token_without_quoting_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t");
    let canary = "glpat-CANARYCANARYCANARY";
    std::fs::write(&file, format!("{canary}\n")).unwrap();
    let yaml = |providers: &str| {
        format!(
            "providers:\n{providers}tokens:\n  - {{name: t, provider: auto, secret: {{file: {}}}}}\n",
            file.display()
        )
    };
    let c = crate::config::Config::parse(&yaml("  gl: {kind: gitlab}\n  gh: {kind: github}\n"))
        .unwrap();
    assert_eq!(c.tokens[0].provider, "gl");
    let e = errors(&yaml("  gh: {kind: github}\n"));
    assert!(
        e.contains("tokens[0].provider: provider: auto: the secret is a GitLab"),
        "{e}"
    );
    assert!(e.contains("no provider of kind gitlab"), "{e}");
    let e = errors(&yaml("  a: {kind: gitlab}\n  b: {kind: gitlab}\n"));
    assert!(e.contains("several providers are of kind gitlab"), "{e}");
    std::fs::write(&file, "CANARY-unknown\n").unwrap();
    let e = errors(&yaml("  gl: {kind: gitlab}\n"));
    assert!(e.contains("names no known provider"), "{e}");
    assert!(!e.contains("CANARY"), "{e}");
}
