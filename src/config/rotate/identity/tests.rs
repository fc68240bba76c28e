use std::time::Duration;

use crate::config::Config;
use crate::schema::rotate::{Rotator, When};

const PROVIDERS: &str = "providers:
  gh: {kind: github}
  entra: {kind: entra_id, tenant_id: contoso.onmicrosoft.com, client_id: 11111111-2222-3333-4444-555555555555, graph: true}
  gl: {kind: gitlab}
";

fn parse(tokens: &str) -> Result<Config, String> {
    Config::parse(&format!("{PROVIDERS}tokens:\n{tokens}")).map_err(|e| e.to_string())
}

fn github(rotator: &str) -> String {
    format!(
        "  - name: ci\n    provider: gh\n    secret: {{file: /run/ci/token}}\n    rotate:\n      before: 10m\n      rotator: {rotator}\n      deliver: [{{file: /run/ci/token}}]\n"
    )
}

#[test]
fn a_github_app_rotator_is_read_with_its_narrowing() {
    let c = parse(&github(
        "{kind: github_app, app_id: Iv23liAPP, installation_id: 42, private_key: {file: /run/app.pem}, repositories: [api, web.site], permissions: {contents: read, pull_requests: write}}",
    ))
    .unwrap();
    let r = &c.rotations["ci"];
    assert_eq!(r.when, When::Before(Duration::from_secs(600)));
    let Rotator::GithubApp(app) = &r.rotator else {
        panic!("{:?}", r.rotator)
    };
    assert_eq!(app.app_id, "Iv23liAPP");
    assert_eq!(app.installation_id, 42);
    assert_eq!(app.repositories, ["api", "web.site"]);
    assert_eq!(app.permissions["pull_requests"], "write");
    assert!(r.rotator.issues_new_value());
    assert!(r.rotator.idempotent());
}

#[test]
fn github_app_mistakes_are_located() {
    for (rotator, field, words) in [
        (
            "{kind: github_app, installation_id: 42, private_key: {env: K}}",
            "rotator.app_id",
            "needs app_id",
        ),
        (
            "{kind: github_app, app_id: 'a/b', installation_id: 42, private_key: {env: K}}",
            "rotator.app_id",
            "client ID",
        ),
        (
            "{kind: github_app, app_id: '12', private_key: {env: K}}",
            "rotator.installation_id",
            "needs installation_id",
        ),
        (
            "{kind: github_app, app_id: '12', installation_id: 0, private_key: {env: K}}",
            "rotator.installation_id",
            "greater than zero",
        ),
        (
            "{kind: github_app, app_id: '12', installation_id: 4}",
            "rotator.private_key",
            "needs private_key",
        ),
        (
            "{kind: github_app, app_id: '12', installation_id: 4, private_key: {env: K}, repositories: [acme/api]}",
            "rotator.repositories",
            "without its owner",
        ),
        (
            "{kind: github_app, app_id: '12', installation_id: 4, private_key: {env: K}, permissions: {contents: all}}",
            "rotator.permissions",
            "read, write or admin",
        ),
        (
            "{kind: github_app, app_id: '12', installation_id: 4, private_key: {env: K}, expires_in: 1d}",
            "rotator.expires_in",
            "does not take expires_in",
        ),
    ] {
        let e = parse(&github(rotator)).unwrap_err();
        assert!(
            e.contains(&format!("tokens[0].rotate.{field}")),
            "{rotator}: {e}"
        );
        assert!(e.contains(words), "{rotator}: {e}");
        assert!(e.contains("token \"ci\"") && e.contains("line "), "{e}");
    }
    // Only a github token can take it.
    let e = parse("  - name: g\n    provider: gl\n    secret: {file: /t}\n    rotate:\n      rotator: {kind: github_app, app_id: '1', installation_id: 1, private_key: {env: K}}\n      deliver: [{file: /t}]\n").unwrap_err();
    assert!(e.contains("provider kind gitlab"), "{e}");
}

fn entra(extra: &str, rotator: &str) -> String {
    format!(
        "  - name: app\n    provider: entra\n    secret: {{file: /run/app/secret}}\n{extra}    rotate:\n      before: 30d\n      rotator: {rotator}\n      deliver: [{{file: /run/app/secret}}]\n"
    )
}

#[test]
fn an_entra_password_rotator_defaults_to_the_app_itself() {
    let c = parse(&entra("", "{kind: entra_id_password}")).unwrap();
    let Rotator::EntraIdPassword(e) = &c.rotations["app"].rotator else {
        panic!()
    };
    assert_eq!(e.expires_in, super::DEFAULT_SECRET_LIFETIME);
    assert_eq!(e.display_name, super::DEFAULT_DISPLAY_NAME);
    assert!(e.manager.is_none());
    assert!(!c.rotations["app"].rotator.idempotent());
    assert!(!c.rotations["app"].rotator.settle_waits().is_empty());
    let c = parse(&entra(
        "",
        "{kind: entra_id_password, expires_in: 90d, display_name: ci, client_id: aaaaaaaa-2222-3333-4444-555555555555, client_secret: {file: /run/mgr}}",
    ))
    .unwrap();
    let Rotator::EntraIdPassword(e) = &c.rotations["app"].rotator else {
        panic!()
    };
    assert_eq!(e.expires_in, Duration::from_secs(90 * 86_400));
    assert_eq!(e.display_name, "ci");
    assert_eq!(
        e.manager.as_ref().unwrap().0,
        "aaaaaaaa-2222-3333-4444-555555555555"
    );
}

#[test]
fn entra_password_mistakes_are_located() {
    for (extra, rotator, field, words) in [
        (
            "",
            "{kind: entra_id_password, expires_in: 10m}",
            "rotator.expires_in",
            "at least 1h",
        ),
        (
            "",
            "{kind: entra_id_password, client_id: aaaaaaaa-2222-3333-4444-555555555555}",
            "rotator.client_id",
            "both",
        ),
        (
            "",
            "{kind: entra_id_password, client_id: app, client_secret: {env: S}}",
            "rotator.client_id",
            "GUID",
        ),
        (
            "",
            "{kind: entra_id_password, display_name: ' '}",
            "rotator.display_name",
            "1 to 256",
        ),
        (
            "",
            "{kind: entra_id_password, app_id: '1'}",
            "rotator.app_id",
            "does not take app_id",
        ),
        (
            "    key_id: 90f3a4e2-4b7c-4a57-9a0f-3b5e2c1d0e9f\n",
            "{kind: entra_id_password}",
            "rotator",
            "remove key_id",
        ),
    ] {
        let e = parse(&entra(extra, rotator)).unwrap_err();
        assert!(
            e.contains(&format!("tokens[0].rotate.{field}")),
            "{rotator}: {e}"
        );
        assert!(e.contains(words), "{rotator}: {e}");
    }
    // The delivered file must be the one the token reads.
    let e = parse("  - name: app\n    provider: entra\n    secret: {file: /run/app/secret}\n    rotate:\n      rotator: {kind: entra_id_password}\n      deliver: [{file: /elsewhere}]\n").unwrap_err();
    assert!(e.contains("no deliver entry writes"), "{e}");
}
