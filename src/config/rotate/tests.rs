use std::time::Duration;

use crate::config::Config;
use crate::schema::rotate::{DEFAULT_FRACTION, Deliver, Endpoint, Rotator, When};

const PROVIDERS: &str = "providers:
  bao: {kind: vault, url: http://127.0.0.1:8200}
  idp: {kind: oauth2_introspection, introspection_endpoint: http://127.0.0.1:9/i, client_id: rs, client_secret: {env: RS}}
  gh: {kind: github}
  gl: {kind: gitlab}
  gl-oauth: {kind: gitlab, token_type: oauth}
";

fn parse(tokens: &str) -> Result<Config, String> {
    Config::parse(&format!("{PROVIDERS}tokens:\n{tokens}")).map_err(|e| e.to_string())
}

#[test]
fn without_a_block_nothing_rotates() {
    let c = parse("  - {name: a, provider: bao, secret: {env: A}}\n").unwrap();
    assert!(c.rotations.is_empty());
}

#[test]
fn a_vault_token_defaults_to_renew_self_at_a_third_of_its_life() {
    let c =
        parse("  - name: a\n    provider: bao\n    secret: {env: A}\n    rotate: {}\n").unwrap();
    let r = &c.rotations["a"];
    assert_eq!(r.rotator, Rotator::VaultRenew { increment: None });
    assert_eq!(r.when, When::Fraction(DEFAULT_FRACTION));
    assert!(!r.dry_run);
    let c = parse(
        "  - name: a\n    provider: bao\n    secret: {env: A}\n    rotate: {before: 7d, dry_run: true, rotator: {kind: vault_renew, increment: 24h}}\n",
    )
    .unwrap();
    let r = &c.rotations["a"];
    assert_eq!(r.when, When::Before(Duration::from_secs(7 * 86_400)));
    assert_eq!(
        r.rotator,
        Rotator::VaultRenew {
            increment: Some(Duration::from_secs(86_400))
        }
    );
    assert!(r.dry_run);
}

#[test]
fn a_rotator_the_provider_kind_cannot_do_names_the_token_and_line() {
    let e = parse(
        "  - name: ci\n    provider: gh\n    secret: {env: A}\n    rotate:\n      rotator: {kind: vault_renew}\n",
    )
    .unwrap_err();
    assert!(e.contains("tokens[0].rotate.rotator.kind"), "{e}");
    assert!(e.contains("token \"ci\""), "{e}");
    assert!(e.contains("provider kind github"), "{e}");
    assert!(e.contains("line 12"), "{e}");
}

#[test]
fn a_kind_without_a_default_rotator_asks_for_one() {
    let e =
        parse("  - name: ci\n    provider: gh\n    secret: {env: A}\n    rotate: {before: 1d}\n")
            .unwrap_err();
    assert!(e.contains("rotator is required for a github token"), "{e}");
}

#[test]
fn timing_errors_are_located() {
    let e = parse(
        "  - name: a\n    provider: bao\n    secret: {env: A}\n    rotate: {before: 1d, before_fraction: 0.5}\n",
    )
    .unwrap_err();
    assert!(e.contains("not both"), "{e}");
    let e = parse(
        "  - name: a\n    provider: bao\n    secret: {env: A}\n    rotate: {before_fraction: 1.5}\n",
    )
    .unwrap_err();
    assert!(e.contains("tokens[0].rotate.before_fraction"), "{e}");
    let e =
        parse("  - name: a\n    provider: bao\n    secret: {env: A}\n    rotate: {before: soon}\n")
            .unwrap_err();
    assert!(e.contains("tokens[0].rotate.before"), "{e}");
    let e =
        parse("  - name: a\n    provider: bao\n    secret: {env: A}\n    rotate: {befor: 1d}\n")
            .unwrap_err();
    assert!(
        e.contains("tokens[0].rotate.befor") && e.contains("line 11"),
        "{e}"
    );
}

#[test]
fn renewal_delivers_nothing_and_needs_the_secret() {
    let e = parse(
        "  - name: a\n    provider: bao\n    secret: {env: A}\n    rotate: {deliver: [{file: /tmp/x}]}\n",
    )
    .unwrap_err();
    assert!(e.contains("nothing to deliver"), "{e}");
}

const REFRESH: &str = "  - name: app
    provider: idp
    secret: {file: /run/app/access}
    rotate:
      before: 2m
      rotator:
        kind: oauth2_refresh
        issuer: http://127.0.0.1:9/
        client_id: app
        client_secret: {env: APP_SECRET}
        refresh_token_file: /run/app/refresh
      deliver:
        - file: /run/app/access
        - exec: [/usr/local/bin/reload-app]
          timeout: 5s
";

#[test]
fn a_refresh_grant_delivers_to_the_file_the_token_is_read_from() {
    let c = parse(REFRESH).unwrap();
    let r = &c.rotations["app"];
    let Rotator::Oauth2Refresh(o) = &r.rotator else {
        panic!("{:?}", r.rotator)
    };
    assert_eq!(o.endpoint, Endpoint::Issuer("http://127.0.0.1:9/".into()));
    assert_eq!(o.client_id, "app");
    assert_eq!(r.deliver.len(), 2);
    assert_eq!(r.deliver[0], Deliver::File("/run/app/access".into()));
    assert!(
        matches!(&r.deliver[1], Deliver::Exec { timeout, .. } if *timeout == Duration::from_secs(5))
    );

    let e = parse(&REFRESH.replace("        - file: /run/app/access\n", "")).unwrap_err();
    assert!(
        e.contains("monitoring would keep reading the old value"),
        "{e}"
    );
    let e = parse(&REFRESH.replace("{file: /run/app/access}", "{env: ACCESS}")).unwrap_err();
    assert!(e.contains("environment variable cannot follow"), "{e}");
    let e = parse(&REFRESH.replace("        client_id: app\n", "")).unwrap_err();
    assert!(e.contains("needs client_id"), "{e}");
    let e = parse(&REFRESH.replace(
        "        client_id: app\n",
        "        increment: 1h\n        client_id: app\n",
    ))
    .unwrap_err();
    assert!(e.contains("does not take increment"), "{e}");
    let e = parse(&REFRESH.replace("issuer: http://127.0.0.1:9/", "issuer: ftp://x/")).unwrap_err();
    assert!(e.contains("rotate.rotator.issuer"), "{e}");
    let e =
        parse(&REFRESH.replace("          timeout: 5s\n", "          timeout: 0s\n")).unwrap_err();
    assert!(e.contains("deliver[1].timeout"), "{e}");
}

#[test]
fn errors_never_quote_a_secret_written_inline() {
    let e = parse(&REFRESH.replace("{env: APP_SECRET}", "s3cr3t-canary")).unwrap_err();
    assert!(!e.contains("s3cr3t-canary"), "{e}");
}

#[test]
fn gitlab_rotate_takes_an_expiry_and_refuses_oauth_tokens() {
    let c = parse(
        "  - name: ci\n    provider: gl\n    secret: {file: /run/ci}\n    rotate:\n      rotator: {kind: gitlab_rotate, expires_in: 30d}\n      deliver: [{file: /run/ci}]\n",
    )
    .unwrap();
    assert_eq!(
        c.rotations["ci"].rotator,
        Rotator::GitlabRotate {
            expires_in: Some(Duration::from_secs(30 * 86_400))
        }
    );
    assert!(!c.rotations["ci"].rotator.idempotent());
    let e = parse(
        "  - name: ci\n    provider: gl-oauth\n    secret: {file: /run/ci}\n    rotate:\n      rotator: {kind: gitlab_rotate}\n      deliver: [{file: /run/ci}]\n",
    )
    .unwrap_err();
    assert!(e.contains("not OAuth tokens"), "{e}");
    let e = parse(
        "  - name: ci\n    provider: gl\n    secret: {file: /run/ci}\n    rotate:\n      rotator: {kind: gitlab_rotate, expires_in: 2h}\n      deliver: [{file: /run/ci}]\n",
    )
    .unwrap_err();
    assert!(e.contains("rotate.rotator.expires_in"), "{e}");
    let e = parse(
        "  - name: ci\n    provider: gl\n    secret: {file: /run/ci}\n    rotate:\n      rotator: {kind: gitlab_rotate}\n",
    )
    .unwrap_err();
    assert!(e.contains("issues a new value"), "{e}");
}

const GL_ROTATE: &str = "  - name: ci\n    provider: gl\n    secret: {exec: [bao, kv, get, -field=token, secret/app/ci]}\n    rotate:\n      rotator: {kind: gitlab_rotate}\n      deliver:\n";

#[test]
fn a_vault_kv_target_reuses_the_vault_kinds_url_and_namespace_checks() {
    let c = parse(&format!(
        "{GL_ROTATE}        - vault_kv: {{url: 'https://vault.example:8200/', namespace: team, path: /app/ci/, key: token, token: {{env: VT}}}}\n"
    ))
    .unwrap();
    let Deliver::VaultKv(kv) = &c.rotations["ci"].deliver[0] else {
        panic!("{:?}", c.rotations["ci"].deliver);
    };
    assert_eq!(kv.url, "https://vault.example:8200");
    assert_eq!(
        (kv.mount.as_str(), kv.path.as_str(), kv.key.as_str()),
        ("secret", "app/ci", "token")
    );
    assert_eq!(kv.namespace.as_deref(), Some("team"));
    for (entry, says) in [
        ("{path: app/ci, key: token}", "token is required"),
        ("{key: token, token: {env: VT}}", "path is required"),
        ("{path: app/ci, token: {env: VT}}", "key is required"),
        ("{path: '../x', key: k, token: {env: VT}}", "path: must be"),
        (
            "{mount: 'a b', path: p, key: k, token: {env: VT}}",
            "mount: must be",
        ),
        (
            "{url: 'http://u:p@vault', path: p, key: k, token: {env: VT}}",
            "credentials in the URL",
        ),
        (
            "{namespace: '/', path: p, key: k, token: {env: VT}}",
            "namespace",
        ),
    ] {
        let e = parse(&format!("{GL_ROTATE}        - vault_kv: {entry}\n")).unwrap_err();
        assert!(e.contains("tokens[0].rotate.deliver[0].vault_kv"), "{e}");
        assert!(e.contains(says), "{entry}: {e}");
        assert!(e.contains("line 14"), "{e}");
    }
    let e = parse(&format!(
        "{GL_ROTATE}        - {{file: /x, vault_kv: {{path: p, key: k, token: {{env: VT}}}}}}\n"
    ))
    .unwrap_err();
    assert!(e.contains("each delivery is one of"), "{e}");
}

#[test]
fn a_file_secret_that_no_target_writes_says_how_monitoring_can_follow_the_kv() {
    let e = parse(
        "  - name: ci\n    provider: gl\n    secret: {file: /run/ci}\n    rotate:\n      rotator: {kind: gitlab_rotate}\n      deliver: [{vault_kv: {path: app/ci, key: token, token: {env: VT}}}]\n",
    )
    .unwrap_err();
    assert!(e.contains("/run/ci, which no deliver entry writes"), "{e}");
    assert!(e.contains("bao, kv, get"), "{e}");
}

#[test]
fn a_kubernetes_secret_target_is_checked_like_the_kubernetes_kind() {
    let c = parse(&format!(
        "{GL_ROTATE}        - kubernetes_secret: {{url: 'https://k8s.example:6443', token: {{env: KT}}, namespace: apps, name: ci-token, key: token, restart: [{{kind: StatefulSet, name: db}}]}}\n"
    ))
    .unwrap();
    let Deliver::KubernetesSecret(k) = &c.rotations["ci"].deliver[0] else {
        panic!("{:?}", c.rotations["ci"].deliver);
    };
    assert_eq!(k.restart, vec![("statefulsets", "db".to_string())]);
    for (entry, says) in [
        (
            "{url: 'https://k8s.example', namespace: a, name: b, key: c}",
            "token is required",
        ),
        (
            "{token: {env: KT}, url: 'https://k', name: b, key: c}",
            "namespace is required",
        ),
        (
            "{token: {env: KT}, url: 'https://k', namespace: A, name: b, key: c}",
            "not a Kubernetes name",
        ),
        (
            "{token: {env: KT}, url: 'https://k', namespace: a, name: b, key: 'c d'}",
            "key is required",
        ),
        (
            "{token: {env: KT}, url: 'https://k', namespace: a, name: b, key: c, restart: [{kind: Job, name: j}]}",
            "Job",
        ),
    ] {
        let e = parse(&format!(
            "{GL_ROTATE}        - kubernetes_secret: {entry}\n"
        ))
        .unwrap_err();
        assert!(
            e.contains("tokens[0].rotate.deliver[0].kubernetes_secret"),
            "{e}"
        );
        assert!(e.contains(says), "{entry}: {e}");
        assert!(e.contains("line 14"), "{e}");
    }
}
