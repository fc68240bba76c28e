use super::*;

fn routing(yaml: &str) -> Routing {
    let base = "notifiers:\n  chat: {kind: slack_webhook, url: {env: X}}\n  pager: {kind: webhook, url: \"http://127.0.0.1:1/p\"}\n  mail: {kind: email, host: smtp.example.com, from: a@example.com, to: [ops@example.com]}\n  owners: {kind: email, host: smtp.example.com, from: a@example.com}\n  am: {kind: alertmanager, url: \"http://127.0.0.1:1\", resend_interval: 2m}\n";
    let c =
        crate::config::Config::parse(&format!("{base}{yaml}")).unwrap_or_else(|e| panic!("{e}"));
    Routing::new(&c.notify)
}

fn token(labels: &[(&str, &str)]) -> TokenSnapshot {
    TokenSnapshot {
        token: "deploy-bot".into(),
        provider: "idp".into(),
        kind: "oauth2_introspection".into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..TokenSnapshot::default()
    }
}

fn receivers(r: &[Routed]) -> Vec<String> {
    r.iter().map(|r| r.target.id()).collect()
}

#[test]
fn first_match_wins_unless_continue() {
    let r = routing(
        "notifications: {default_receiver: chat, repeat_interval: 12h}\nroutes:\n  - {match: {team: payments}, severity: [critical], receiver: pager, continue: true, repeat_interval: 1h}\n  - {match: {team: payments}, receiver: mail}\n  - {receiver: chat}\n",
    );
    let payments = token(&[("team", "payments")]);
    let crit = r.route(&payments, EventKind::Expiring, Level::Critical);
    assert_eq!(receivers(&crit), ["pager", "mail"]);
    assert_eq!(crit[0].repeat_interval, Duration::from_secs(3600));
    assert_eq!(crit[1].repeat_interval, Duration::from_secs(12 * 3600));
    assert_eq!(
        receivers(&r.route(&payments, EventKind::Expiring, Level::Warning)),
        ["mail"]
    );
    assert_eq!(
        receivers(&r.route(
            &token(&[("team", "search")]),
            EventKind::Invalid,
            Level::Critical
        )),
        ["chat"]
    );
}

#[test]
fn events_filter_and_the_default_catches_the_rest() {
    let r = routing(
        "notifications: {default_receiver: chat}\nroutes:\n  - {events: [provider_failing, misconfigured], receiver: pager}\n  - {match: {provider: idp, env: prod}, receiver: mail}\n",
    );
    let t = token(&[("env", "dev")]);
    assert_eq!(
        receivers(&r.route(&t, EventKind::ProviderFailing, Level::Warning)),
        ["pager"]
    );
    assert_eq!(
        receivers(&r.route(&t, EventKind::Expired, Level::Critical)),
        ["chat"]
    );
    assert_eq!(
        receivers(&r.route(
            &token(&[("env", "prod")]),
            EventKind::Expired,
            Level::Critical
        )),
        ["mail"]
    );
    let none = routing("routes:\n  - {match: {team: x}, receiver: chat}\n");
    assert!(
        none.route(&t, EventKind::Expired, Level::Critical)
            .is_empty()
    );
}

#[test]
fn to_owner_addresses_the_owner_or_falls_back() {
    let r = routing(
        "routes:\n  - {receiver: mail, to_owner: true, continue: true}\n  - {receiver: owners, to_owner: true}\n",
    );
    let alice = token(&[("owner", "alice@example.com")]);
    assert_eq!(
        receivers(&r.route(&alice, EventKind::Expiring, Level::Warning)),
        ["mail to alice@example.com", "owners to alice@example.com"]
    );
    // Not an address: `mail` falls back to its own `to`; `owners` has none and is skipped.
    let team = token(&[("owner", "team-platform")]);
    assert_eq!(
        receivers(&r.route(&team, EventKind::Expiring, Level::Warning)),
        ["mail"]
    );
}

#[test]
fn alertmanager_uses_its_resend_interval() {
    let r = routing("routes:\n  - {receiver: am, repeat_interval: 6h}\n");
    let routed = r.route(&token(&[]), EventKind::Expired, Level::Critical);
    assert_eq!(routed[0].repeat_interval, Duration::from_secs(120));
    assert!(r.traits("am").unwrap().keeps_alerts);
    assert!(r.traits("mail").unwrap().threads);
}
