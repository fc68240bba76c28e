use super::*;
use crate::notify::engine::{Item, Message, Resolution};
use crate::notify::event::{Level, TokenSnapshot};

const NOW: i64 = 1_700_000_000;

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

pub(crate) fn item(token: &str, kind: EventKind, change: Change) -> Item {
    Item {
        alert_id: format!("id-{token}"),
        kind,
        policy: None,
        level: Level::Warning,
        change,
        previous_level: None,
        detail: "the provider confirmed the token".into(),
        started_at: at(NOW - 3600),
        resolved_at: (change == Change::Resolved).then(|| at(NOW)),
        resolution: (change == Change::Resolved).then_some(Resolution::Renewed),
        supersedes: None,
        token: TokenSnapshot {
            token: token.into(),
            provider: "corp-idp".into(),
            kind: "oauth2_introspection".into(),
            state: "valid".into(),
            reason: Some("ok".into()),
            fingerprint: Some("sha256:0123456789ab".into()),
            expires_at: Some(at(NOW + 6 * 86_400 + 60)),
            never_expires: false,
            labels: [
                ("owner", "alice@example.com"),
                ("team", "platform"),
                ("runbook", "https://wiki.example.com/deploy?a=1&b=<2>"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            scopes: vec!["deploy".into(), "repo:read".into()],
            subject: Some("svc-deploy".into()),
        },
    }
}

fn message(items: Vec<Item>) -> Message {
    Message {
        id: "b1.0".into(),
        items,
        reply_to: vec![],
        sent: false,
    }
}

fn ctx() -> Context<'static> {
    Context {
        now: at(NOW),
        receiver: "team-slack",
        dashboard_url: Some(
            "https://grafana.example.com/d/tokens?var-token={token}&var-provider={provider}",
        ),
    }
}

#[test]
fn titles_and_subjects_read_naturally() {
    let firing = item("deploy-bot", EventKind::Expiring, Change::New);
    assert_eq!(
        title(&firing, at(NOW)),
        "deploy-bot expires in 6 days (warning)"
    );
    let m = message(vec![firing.clone()]);
    assert_eq!(
        subject(&m, at(NOW)),
        "[FIRING] deploy-bot expires in 6 days (warning)"
    );
    let resolved = item("deploy-bot", EventKind::Expiring, Change::Resolved);
    assert_eq!(
        subject(&message(vec![resolved.clone()]), at(NOW)),
        "[RESOLVED] deploy-bot: expiring resolved (renewed: the token now expires later)"
    );
    let many = message(vec![
        firing,
        item("ci-runner", EventKind::Invalid, Change::New),
        resolved,
    ]);
    assert_eq!(
        subject(&many, at(NOW)),
        "[FIRING:2, RESOLVED:1] API tokens: deploy-bot, ci-runner"
    );
    let mut changed = item("a", EventKind::Expiring, Change::Changed);
    changed.level = Level::Critical;
    changed.previous_level = Some(Level::Warning);
    assert_eq!(
        title(&changed, at(NOW)),
        "a expires in 6 days (critical): now critical, was warning"
    );
}

#[test]
fn slack_has_blocks_and_a_text_fallback() {
    let v = slack(
        &message(vec![item("deploy-bot", EventKind::Expiring, Change::New)]),
        &ctx(),
    );
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .starts_with("[FIRING] deploy-bot expires in 6 days")
    );
    let blocks = v["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[1]["type"], "section");
    let fields: Vec<&str> = blocks[1]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"*Expires*\n2023-11-20 22:14 UTC (in 6 days)"),
        "{fields:?}"
    );
    assert!(fields.contains(&"*Owner*\nalice@example.com"), "{fields:?}");
    let context = blocks[2]["elements"][0]["text"].as_str().unwrap();
    assert!(
        context.contains("fingerprint `sha256:0123456789ab`"),
        "{context}"
    );
    // Link targets cannot break out of Slack's <url|text> syntax.
    assert!(
        context.contains("<https://wiki.example.com/deploy?a=1&b=<2%3E|Runbook>"),
        "{context}"
    );
    assert!(context.contains("<https://grafana.example.com/d/tokens?var-token=deploy-bot&var-provider=corp-idp|Dashboard>"), "{context}");
}

#[test]
fn a_long_slack_message_stays_within_block_limits() {
    let items: Vec<Item> = (0..40)
        .map(|n| item(&format!("t{n}"), EventKind::Expiring, Change::New))
        .collect();
    let v = slack(&message(items), &ctx());
    let blocks = v["blocks"].as_array().unwrap();
    assert!(blocks.len() <= 50, "{}", blocks.len());
    let last = blocks.last().unwrap()["text"]["text"].as_str().unwrap();
    assert!(last.starts_with("…and 25 more:"), "{last}");
}

#[test]
fn email_parts_carry_the_same_facts() {
    let m = message(vec![item("deploy-bot", EventKind::Expiring, Change::New)]);
    let text = email_text(&m, &ctx());
    let html = email_html(&m, &ctx());
    for needle in [
        "deploy-bot expires in 6 days",
        "2023-11-20 22:14 UTC (in 6 days)",
        "sha256:0123456789ab",
        "deploy, repo:read",
        "platform",
    ] {
        assert!(text.contains(needle), "{needle} not in:\n{text}");
        assert!(html.contains(needle), "{needle} not in:\n{html}");
    }
    assert!(
        html.contains("https://wiki.example.com/deploy?a=1&amp;b=&lt;2&gt;"),
        "{html}"
    );
}

#[test]
fn alertmanager_alerts_end_in_the_future_while_firing_and_when_resolved() {
    let mut changed = item("a", EventKind::Expiring, Change::Changed);
    changed.level = Level::Critical;
    changed.previous_level = Some(Level::Warning);
    let m = message(vec![
        changed,
        item("b", EventKind::Expired, Change::Resolved),
    ]);
    let v = alertmanager(&m, &ctx(), Duration::from_secs(60));
    let alerts = v.as_array().unwrap();
    assert_eq!(alerts.len(), 3);
    assert_eq!(alerts[0]["labels"]["severity"], "warning");
    assert_eq!(alerts[0]["endsAt"], at(NOW).to_string());
    assert_eq!(alerts[1]["labels"]["severity"], "critical");
    assert_eq!(alerts[1]["labels"]["alertname"], "ApiTokenExpiring");
    assert_eq!(alerts[1]["labels"]["team"], "platform");
    assert_eq!(alerts[1]["endsAt"], at(NOW + 240).to_string());
    assert_eq!(alerts[2]["labels"]["alertname"], "ApiTokenExpired");
    assert_eq!(alerts[2]["endsAt"], at(NOW).to_string());
}

#[test]
fn the_webhook_payload_has_the_documented_fields() {
    let v = webhook(
        &message(vec![item("deploy-bot", EventKind::Expiring, Change::New)]),
        &ctx(),
    );
    assert_eq!(v["version"], "1");
    assert_eq!(v["id"], "b1.0");
    assert_eq!(v["status"], "firing");
    let n = &v["notifications"][0];
    assert_eq!(n["event"], "expiring");
    assert_eq!(n["change"], "new");
    assert_eq!(n["token"]["expires_in"], "in 6 days");
    assert_eq!(n["token"]["owner"], "alice@example.com");
    assert_eq!(n["token"]["fingerprint"], "sha256:0123456789ab");
}
