//! A source's `rotate:`: refused where a source holds no value, checked with its line, and
//! applied per discovered token (delivery back where it was found, keyed by identity).

use std::collections::BTreeMap;

use crate::config::Config;
use crate::schema::rotate::{Deliver, Rotator, When};
use crate::sources::{Discovered, Identity, Listing, compose_noted};

fn errors(yaml: &str) -> String {
    Config::parse(yaml).unwrap_err().to_string()
}

const PROVIDERS: &str = "providers:\n  gl: {kind: gitlab, url: 'http://127.0.0.1:1'}\n  gh: {kind: github}\n  bao: {kind: vault, url: 'http://127.0.0.1:1', token: {env: NOPE}}\n  listed: {kind: static}\n";

#[test]
fn listing_only_sources_refuse_rotate_with_its_line() {
    for source in [
        "{name: g, kind: gitlab, provider: listed, credential: {env: X}, personal: true, rotate: {before: 7d, rotator: {kind: gitlab_rotate}}}",
        "{name: g, kind: vault, provider: bao, credential: {env: X}, rotate: {before: 7d}}",
        "{name: g, kind: cloudflare, provider: listed, credential: {env: X}, user: true, rotate: {before: 7d}}",
        "{name: g, kind: okta, url: 'https://acme.okta.com', provider: listed, credential: {env: X}, rotate: {before: 7d}}",
    ] {
        let e = errors(&format!("{PROVIDERS}sources:\n  - {source}\n"));
        assert!(
            e.contains("sources[0].rotate: source \"g\": rotate applies to sources that hold each token's value (directory, kubernetes_secrets)"),
            "{e}"
        );
        assert!(e.contains("(line 7)"), "{e}");
    }
}

#[test]
fn a_source_block_refuses_deliver_and_token_bound_rotators_naming_lines() {
    let e = errors(&format!(
        "{PROVIDERS}sources:\n  - name: d\n    kind: directory\n    path: /tmp\n    rotate:\n      rotator: {{kind: gitlab_rotate}}\n      deliver:\n        - file: /tmp/x\n"
    ));
    assert!(
        e.contains("sources[0].rotate.deliver: source \"d\": a discovered token's new value goes back where it was found (its own file)"),
        "{e}"
    );
    assert!(e.contains("(line 13)"), "{e}");
    let e = errors(&format!(
        "{PROVIDERS}sources:\n  - name: d\n    kind: directory\n    path: /tmp\n    rotate:\n      rotator: {{kind: oauth2_refresh, token_endpoint: 'https://idp/token', client_id: a, refresh_token_file: /tmp/r}}\n"
    ));
    assert!(
        e.contains("sources[0].rotate.rotator.kind: source \"d\": rotator oauth2_refresh cannot rotate a source's tokens"),
        "{e}"
    );
    // The rotator's own settings are checked as on a token, with the source named.
    let e = errors(&format!(
        "{PROVIDERS}sources:\n  - name: d\n    kind: directory\n    path: /tmp\n    rotate:\n      before: 0s\n      rotator: {{kind: gitlab_rotate, expires_in: 2h}}\n"
    ));
    assert!(
        e.contains("sources[0].rotate.before: source \"d\": must be greater than zero"),
        "{e}"
    );
    assert!(
        e.contains("sources[0].rotate.rotator.expires_in: source \"d\": must be at least 1d"),
        "{e}"
    );
    let e = errors(&format!(
        "{PROVIDERS}sources:\n  - name: d\n    kind: directory\n    path: /tmp\n    rotate:\n      rotator: {{kind: gitlab_rotate}}\n      restart: [{{kind: Deployment, name: web}}]\n"
    ));
    assert!(
        e.contains(
            "sources[0].rotate.restart: source \"d\": restart applies to kubernetes_secrets sources"
        ),
        "{e}"
    );
    let e = errors(&format!(
        "{PROVIDERS}sources:\n  - name: k\n    kind: kubernetes_secrets\n    url: 'https://127.0.0.1:6443'\n    credential: {{env: K}}\n    label_selector: a=b\n    rotate:\n      rotator: {{kind: gitlab_rotate}}\n      restart: [{{kind: Pod, name: web}}]\n"
    ));
    assert!(
        e.contains("sources[0].rotate.restart: source \"k\": restart: kind \"Pod\""),
        "{e}"
    );
}

fn directory_listing(dir: &std::path::Path, tokens: &[(&str, &str)]) -> Listing {
    Listing {
        tokens: tokens
            .iter()
            .map(|(name, provider)| {
                let path = dir.join(name);
                Discovered {
                    name: name.to_string(),
                    provider: provider.to_string(),
                    secret: Some(crate::secret::SecretSource::File(
                        crate::secret::FileSource::new(&path),
                    )),
                    accessor: None,
                    owner: None,
                    state: None,
                    identity: Identity::File(path),
                    expires_at: None,
                    issued_at: None,
                    last_used_at: None,
                    sliding_window_seconds: None,
                }
            })
            .collect(),
        skipped: BTreeMap::new(),
    }
}

#[test]
fn each_fitting_token_rotates_back_into_its_file_and_the_others_are_noted() {
    let c = Config::parse(&format!(
        "{PROVIDERS}sources:\n  - name: d\n    kind: directory\n    path: /srv/tokens\n    rotate:\n      before: 7d\n      rotator: {{kind: gitlab_rotate, expires_in: 30d}}\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(c.rotations.is_empty(), "nothing rotates before a listing");
    let dir = std::path::Path::new("/srv/tokens");
    let listing = directory_listing(dir, &[("deploy", "gl"), ("ci", "gh")]);
    let (composed, left, notes) = compose_noted(&c, &BTreeMap::from([("d".into(), listing)]));
    assert!(left.is_empty());
    // Both stay in the inventory.
    assert!(composed.token("d/deploy").is_some() && composed.token("d/ci").is_some());
    let r = &composed.rotations["d/deploy"];
    assert_eq!(
        r.when,
        When::Before(std::time::Duration::from_secs(7 * 86_400))
    );
    assert!(matches!(r.rotator, Rotator::GitlabRotate { .. }));
    assert_eq!(r.deliver, [Deliver::File(dir.join("deploy"))]);
    assert_eq!(
        composed.rotation_keys["d/deploy"],
        format!("file:{}", dir.join("deploy").display())
    );
    // A GitHub token does not fit gitlab_rotate: watched, not rotated, said why.
    assert!(!composed.rotations.contains_key("d/ci"));
    let n = &notes["d"];
    assert_eq!(n.len(), 1);
    assert_eq!(
        (n[0].token.as_str(), n[0].reason),
        ("d/ci", "rotator_unfit")
    );
    assert!(
        n[0].detail
            .contains("rotator gitlab_rotate cannot rotate a token of provider kind github"),
        "{}",
        n[0].detail
    );
    assert!(
        n[0].detail.contains("sources[0].rotate.rotator.kind"),
        "{}",
        n[0].detail
    );
}

#[test]
fn vault_tokens_default_to_a_renewal_with_nothing_to_deliver() {
    let c = Config::parse(&format!(
        "{PROVIDERS}sources:\n  - name: d\n    kind: directory\n    path: /srv/tokens\n    rotate: {{before: 1h}}\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let listing = directory_listing(
        std::path::Path::new("/srv/tokens"),
        &[("agent", "bao"), ("ci", "gh")],
    );
    let (composed, _, notes) = compose_noted(&c, &BTreeMap::from([("d".into(), listing)]));
    let r = &composed.rotations["d/agent"];
    assert_eq!(r.rotator, Rotator::VaultRenew { increment: None });
    assert!(r.deliver.is_empty());
    // No rotator named, and a GitHub token has no default one.
    assert_eq!(notes["d"][0].token, "d/ci");
    assert!(
        notes["d"][0].detail.contains("rotator is required"),
        "{}",
        notes["d"][0].detail
    );
}

#[test]
fn a_secret_key_rotates_back_into_its_secret_and_a_legacy_token_is_noted() {
    let c = Config::parse(&format!(
        "{PROVIDERS}sources:\n  - name: k\n    kind: kubernetes_secrets\n    url: 'https://127.0.0.1:6443'\n    credential: {{env: K}}\n    label_selector: a=b\n    provider: listed\n    rotate:\n      rotator: {{kind: gitlab_rotate}}\n      restart: [{{kind: Deployment, name: web}}]\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let held = |v: &str| {
        Some(crate::secret::SecretSource::Memory(
            crate::secret::MemorySource::new(zeroize::Zeroizing::new(v.as_bytes().to_vec())),
        ))
    };
    let listing = Listing {
        tokens: vec![
            Discovered {
                name: "ci/deploy-token/token".into(),
                provider: "gl".into(),
                secret: held("glpat-0123456789abcdefghij"),
                accessor: None,
                owner: None,
                state: None,
                identity: Identity::Listed(
                    "kubernetes:https://127.0.0.1:6443:ci/deploy-token/token".into(),
                ),
                expires_at: None,
                issued_at: None,
                last_used_at: None,
                sliding_window_seconds: None,
            },
            Discovered {
                name: "ci/old-sa/token".into(),
                provider: "listed".into(),
                secret: None,
                accessor: None,
                owner: None,
                state: Some("active".into()),
                identity: Identity::Listed(
                    "kubernetes:https://127.0.0.1:6443:ci/old-sa/token".into(),
                ),
                expires_at: None,
                issued_at: Some("2024-01-01T00:00:00Z".into()),
                last_used_at: None,
                sliding_window_seconds: None,
            },
        ],
        skipped: BTreeMap::new(),
    };
    let (composed, _, notes) = compose_noted(&c, &BTreeMap::from([("k".into(), listing)]));
    let r = &composed.rotations["k/ci/deploy-token/token"];
    let [Deliver::KubernetesSecret(k)] = &r.deliver[..] else {
        panic!("{:?}", r.deliver);
    };
    assert_eq!(
        (
            k.url.as_str(),
            k.namespace.as_str(),
            k.name.as_str(),
            k.key.as_str()
        ),
        ("https://127.0.0.1:6443", "ci", "deploy-token", "token")
    );
    assert_eq!(k.restart, [("deployments", "web".to_string())]);
    assert_eq!(
        composed.rotation_keys["k/ci/deploy-token/token"],
        "kubernetes:https://127.0.0.1:6443:ci/deploy-token/token"
    );
    assert_eq!(notes["k"].len(), 1);
    assert_eq!(notes["k"][0].reason, "no_value");
    assert!(!composed.rotations.contains_key("k/ci/old-sa/token"));
}

#[test]
fn a_source_without_rotate_gives_its_tokens_no_rotation() {
    let c = Config::parse(&format!(
        "{PROVIDERS}sources:\n  - name: d\n    kind: directory\n    path: /srv/tokens\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let listing = directory_listing(
        std::path::Path::new("/srv/tokens"),
        &[("agent", "bao"), ("deploy", "gl")],
    );
    let (composed, _, notes) = compose_noted(&c, &BTreeMap::from([("d".into(), listing)]));
    assert!(composed.rotations.is_empty() && composed.rotation_keys.is_empty() && notes.is_empty());
}

#[test]
fn in_cluster_defaults_carry_over_to_the_delivery() {
    let c = Config::parse(&format!(
        "{PROVIDERS}sources:\n  - name: k\n    kind: kubernetes_secrets\n    label_selector: a=b\n    rotate:\n      rotator: {{kind: gitlab_rotate}}\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let listing = Listing {
        tokens: vec![Discovered {
            name: "ci/t/token".into(),
            provider: "gl".into(),
            secret: Some(crate::secret::SecretSource::Memory(
                crate::secret::MemorySource::new(zeroize::Zeroizing::new(b"glpat-x".to_vec())),
            )),
            accessor: None,
            owner: None,
            state: None,
            identity: Identity::Listed("kubernetes:in-cluster:ci/t/token".into()),
            expires_at: None,
            issued_at: None,
            last_used_at: None,
            sliding_window_seconds: None,
        }],
        skipped: BTreeMap::new(),
    };
    let (composed, _, notes) = compose_noted(&c, &BTreeMap::from([("k".into(), listing)]));
    assert!(notes.is_empty(), "{notes:?}");
    let [Deliver::KubernetesSecret(k)] = &composed.rotations["k/ci/t/token"].deliver[..] else {
        panic!()
    };
    let source = match &c.sources[0].kind {
        crate::config::sources::SourceKind::KubernetesSecrets(s) => s.as_provider(),
        _ => unreachable!(),
    };
    // The same server, token and CA as the source's listing.
    assert_eq!(k.url, source.server());
    assert_eq!(k.token, source.own_token());
    assert_eq!(k.ca_file, source.ca_file());
}

#[test]
fn the_notes_reach_the_sources_health_and_metrics() {
    let health = crate::sources::health::Health::default();
    health.configure([("d", "directory"), ("other", "directory")]);
    let note = |token: &str, reason| crate::sources::rotate::NotRotated {
        token: token.into(),
        reason,
        detail: String::new(),
    };
    let notes = BTreeMap::from([(
        "d".to_string(),
        vec![
            note("d/a", "rotator_unfit"),
            note("d/b", "rotator_unfit"),
            note("d/c", "no_value"),
        ],
    )]);
    health.not_rotated(&notes);
    let snap = health.snapshot();
    assert_eq!(
        snap["d"].not_rotated,
        BTreeMap::from([("no_value", 1), ("rotator_unfit", 2)])
    );
    assert!(snap["other"].not_rotated.is_empty());
    // The next compose replaces them.
    health.not_rotated(&BTreeMap::new());
    assert!(health.snapshot()["d"].not_rotated.is_empty());
}
