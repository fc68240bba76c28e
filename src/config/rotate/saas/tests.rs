use std::path::PathBuf;
use std::time::Duration;

use crate::config::Config;
use crate::schema::rotate::{Rotator, When};
use crate::secret::SecretSource;

const PROVIDERS: &str = "providers:
  cf: {kind: cloudflare}
  slack: {kind: slack}
  gh: {kind: github}
";

fn parse(tokens: &str) -> Result<Config, String> {
    Config::parse(&format!("{PROVIDERS}tokens:\n{tokens}")).map_err(|e| e.to_string())
}

const CF: &str = "  - name: dns\n    provider: cf\n    secret: {file: /run/cf}\n    rotate:\n";
const SLACK: &str =
    "  - name: bot\n    provider: slack\n    secret: {file: /run/slack/access}\n    rotate:\n";
const SLACK_ROTATOR: &str = "      rotator: {kind: slack_refresh, client_id: '123.456', client_secret: {env: SLACK_SECRET}, refresh_token_file: /run/slack/refresh}\n";

#[test]
fn cloudflare_roll_takes_max_age_and_an_optional_credential() {
    let c = parse(&format!(
        "{CF}      max_age: 30d\n      rotator: {{kind: cloudflare_roll}}\n      deliver: [{{file: /run/cf}}]\n"
    ))
    .unwrap();
    let r = &c.rotations["dns"];
    assert_eq!(r.rotator, Rotator::CloudflareRoll { credential: None });
    assert_eq!(r.when, When::MaxAge(Duration::from_secs(30 * 86_400)));
    let c = parse(&format!(
        "{CF}      max_age: 30d\n      rotator: {{kind: cloudflare_roll, credential: {{file: /run/cf-admin}}}}\n      deliver: [{{file: /run/cf}}]\n"
    ))
    .unwrap();
    assert!(matches!(
        &c.rotations["dns"].rotator,
        Rotator::CloudflareRoll {
            credential: Some(SecretSource::File(_))
        }
    ));
}

#[test]
fn cloudflare_roll_refuses_a_plan_from_the_expiry_with_its_line() {
    for when in ["      before: 7d\n", "      before_fraction: 0.5\n", ""] {
        let e = parse(&format!(
            "{CF}{when}      rotator: {{kind: cloudflare_roll}}\n      deliver: [{{file: /run/cf}}]\n"
        ))
        .unwrap_err();
        assert!(e.contains("tokens[0].rotate.max_age"), "{e}");
        assert!(e.contains("keeps the token's expires_on"), "{e}");
        assert!(e.contains("token \"dns\""), "{e}");
        assert!(e.contains("line 10"), "{e}");
    }
}

#[test]
fn cloudflare_roll_refuses_other_kinds_settings_and_providers() {
    let e = parse(&format!(
        "{CF}      max_age: 30d\n      rotator: {{kind: cloudflare_roll, client_id: x}}\n      deliver: [{{file: /run/cf}}]\n"
    ))
    .unwrap_err();
    assert!(
        e.contains("rotator cloudflare_roll does not take client_id"),
        "{e}"
    );
    let e = parse(
        "  - name: ci\n    provider: gh\n    secret: {file: /run/gh}\n    rotate:\n      max_age: 30d\n      rotator: {kind: cloudflare_roll}\n      deliver: [{file: /run/gh}]\n",
    )
    .unwrap_err();
    assert!(
        e.contains("cannot rotate a token of provider kind github"),
        "{e}"
    );
    // The credential is the rotator's: no other kind takes it.
    let e = parse(
        "  - name: ci\n    provider: slack\n    secret: {file: /run/a}\n    rotate:\n      max_age: 10h\n      rotator: {kind: slack_refresh, client_id: a, client_secret: {env: S}, refresh_token_file: /r, credential: {env: C}}\n      deliver: [{file: /run/a}]\n",
    )
    .unwrap_err();
    assert!(e.contains("does not take credential"), "{e}");
}

#[test]
fn cloudflare_roll_must_deliver_where_the_token_is_read() {
    let e = parse(&format!(
        "{CF}      max_age: 30d\n      rotator: {{kind: cloudflare_roll}}\n      deliver: [{{file: /run/elsewhere}}]\n"
    ))
    .unwrap_err();
    assert!(e.contains("which no deliver entry writes"), "{e}");
}

#[test]
fn slack_refresh_takes_the_app_credentials_and_the_refresh_token_file() {
    let c = parse(&format!(
        "{SLACK}      max_age: 10h\n{SLACK_ROTATOR}      deliver: [{{file: /run/slack/access}}]\n"
    ))
    .unwrap();
    let r = &c.rotations["bot"];
    assert_eq!(r.when, When::MaxAge(Duration::from_secs(10 * 3600)));
    let Rotator::SlackRefresh(s) = &r.rotator else {
        panic!("{:?}", r.rotator)
    };
    assert_eq!(s.client_id, "123.456");
    assert!(matches!(s.client_secret, SecretSource::Env(_)));
    assert_eq!(s.refresh_token_file, PathBuf::from("/run/slack/refresh"));
}

#[test]
fn slack_refresh_needs_max_age_under_twelve_hours() {
    for (when, want) in [
        (
            "      before: 2h\n",
            "does not tell when a rotating token expires",
        ),
        ("", "does not tell when a rotating token expires"),
        ("      max_age: 12h\n", "must be under 12h"),
        ("      max_age: 2d\n", "must be under 12h"),
    ] {
        let e = parse(&format!(
            "{SLACK}{when}{SLACK_ROTATOR}      deliver: [{{file: /run/slack/access}}]\n"
        ))
        .unwrap_err();
        assert!(e.contains("tokens[0].rotate.max_age"), "{when}: {e}");
        assert!(e.contains(want), "{when}: {e}");
        assert!(e.contains("line 10"), "{when}: {e}");
    }
}

#[test]
fn slack_refresh_names_each_missing_setting() {
    for (rotator, want) in [
        (
            "{kind: slack_refresh, client_secret: {env: S}, refresh_token_file: /r}",
            "rotator.client_id",
        ),
        (
            "{kind: slack_refresh, client_id: a, refresh_token_file: /r}",
            "rotator.client_secret",
        ),
        (
            "{kind: slack_refresh, client_id: a, client_secret: {env: S}}",
            "rotator.refresh_token_file",
        ),
        (
            "{kind: slack_refresh, client_id: a, client_secret: {env: S}, refresh_token_file: /r, expires_in: 1d}",
            "does not take expires_in",
        ),
    ] {
        let e = parse(&format!(
            "{SLACK}      max_age: 10h\n      rotator: {rotator}\n      deliver: [{{file: /run/slack/access}}]\n"
        ))
        .unwrap_err();
        assert!(e.contains(want), "{rotator}: {e}");
        assert!(e.contains("token \"bot\""), "{e}");
    }
}

#[test]
fn slack_refresh_keeps_the_refresh_token_file_its_own() {
    let e = parse(&format!(
        "{SLACK}      max_age: 10h\n{SLACK_ROTATOR}      deliver: [{{file: /run/slack/access}}, {{file: /run/slack/refresh}}]\n"
    ))
    .unwrap_err();
    assert!(e.contains("written by the rotator itself"), "{e}");
}
