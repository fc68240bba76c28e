use std::time::Duration;

use jiff::Timestamp;

use crate::notify::event::{Derived, EventKind, FamilyBasis, Level, TokenSnapshot};
use crate::notify::route::Routing;

use super::*;
use crate::notify::event::Condition;

const T0: i64 = 1_700_000_000;
const GW: Duration = Duration::from_secs(30);

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

fn routing(routes: &str) -> Routing {
    let yaml = format!(
        "notifiers:\n  chat: {{kind: slack_webhook, url: {{env: X}}}}\n  bot: {{kind: slack_bot, token: {{env: X}}, channel: C1}}\n  am: {{kind: alertmanager, url: \"http://127.0.0.1:1\", resend_interval: 1m}}\nnotifications: {{default_receiver: chat, repeat_interval: 4h}}\n{routes}"
    );
    Routing::new(&crate::config::Config::parse(&yaml).unwrap().notify)
}

fn snap(token: &str, fp: &str, exp: i64) -> TokenSnapshot {
    TokenSnapshot {
        token: token.into(),
        provider: "idp".into(),
        kind: "jwt".into(),
        state: "valid".into(),
        fingerprint: Some(fp.into()),
        expires_at: Some(at(exp)),
        ..TokenSnapshot::default()
    }
}

fn cond(kind: EventKind, level: Level) -> Condition {
    Condition {
        kind,
        policy: None,
        level,
        detail: format!("{} {}", kind.as_str(), level.as_str()),
    }
}

fn obs(token: &str, conditions: Vec<Condition>) -> Observation {
    obs_with(token, conditions, snap(token, "sha256:aaaa", T0 + 86_400))
}

fn obs_with(token: &str, conditions: Vec<Condition>, snapshot: TokenSnapshot) -> Observation {
    Observation {
        token: token.into(),
        derived: Some(Derived {
            conditions,
            basis: FamilyBasis::Verdict,
        }),
        snapshot,
    }
}

fn expiring(token: &str) -> Observation {
    obs(token, vec![cond(EventKind::Expiring, Level::Warning)])
}

/// (token, change) of every item of every message.
fn items(batches: &[Batch]) -> Vec<(String, String, Change)> {
    batches
        .iter()
        .flat_map(|b| b.messages.iter().flat_map(|m| m.items.iter()))
        .map(|i| (i.token.token.clone(), i.kind.as_str().to_string(), i.change))
        .collect()
}

fn ack(e: &mut Engine, batches: &[Batch], when: i64) {
    for b in batches {
        for (i, _) in b.messages.iter().enumerate() {
            assert!(e.sent(
                &b.target.id(),
                &b.id,
                i,
                Some(format!("anchor-{}", b.id)),
                at(when)
            ));
        }
    }
    assert!(e.state.outbox.is_empty());
}

#[test]
fn alerts_that_start_together_go_out_as_one_message_after_group_wait() {
    let r = routing("");
    let mut e = Engine::default();
    assert!(e.observe(at(T0), &[expiring("a")]));
    assert!(e.observe(at(T0 + 5), &[expiring("a"), expiring("b")]));
    assert!(e.observe(at(T0 + 10), &[expiring("a"), expiring("b"), expiring("c")]));
    assert!(
        !e.observe(at(T0 + 11), &[expiring("a"), expiring("b"), expiring("c")]),
        "nothing new"
    );
    assert!(e.plan(at(T0 + 29), &r, GW).is_empty());
    assert_eq!(e.next_due(&r, GW), Some(at(T0 + 30)));
    let batches = e.plan(at(T0 + 30), &r, GW);
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].messages.len(), 1);
    assert_eq!(
        items(&batches),
        [("a", Change::New), ("b", Change::New), ("c", Change::New)].map(|(t, c)| (
            t.to_string(),
            "expiring".to_string(),
            c
        ))
    );
    assert_eq!(batches[0].target.receiver, "chat");
    // Nothing more while the batch is in flight, nor once it is acknowledged.
    assert!(e.plan(at(T0 + 31), &r, GW).is_empty());
    ack(&mut e, &batches, T0 + 32);
    assert!(e.plan(at(T0 + 33), &r, GW).is_empty());
    assert_eq!(e.next_due(&r, GW), Some(at(T0 + 32 + 4 * 3600)));
}

#[test]
fn reminders_come_once_per_repeat_interval_and_together() {
    let r = routing("");
    let mut e = Engine::default();
    let all = [expiring("a"), expiring("b")];
    e.observe(at(T0), &all);
    let first = e.plan(at(T0 + 30), &r, GW);
    ack(&mut e, &first, T0 + 31);
    let due = T0 + 31 + 4 * 3600;
    for t in [T0 + 3600, due - 1] {
        e.observe(at(t), &all);
        assert!(e.plan(at(t), &r, GW).is_empty(), "no reminder at {t}");
    }
    let reminder = e.plan(at(due), &r, GW);
    assert_eq!(
        items(&reminder).iter().map(|i| i.2).collect::<Vec<_>>(),
        [Change::Reminder, Change::Reminder]
    );
    ack(&mut e, &reminder, due + 2);
    assert_eq!(e.next_due(&r, GW), Some(at(due + 2 + 4 * 3600)));
}

#[test]
fn a_resolution_says_why_and_waits_group_wait() {
    let r = routing("");
    let mut e = Engine::default();
    e.observe(at(T0), &[expiring("renew"), expiring("rotate")]);
    let first = e.plan(at(T0 + 30), &r, GW);
    ack(&mut e, &first, T0 + 30);
    // Same secret with a later expiry; a new secret.
    let renewed = obs_with(
        "renew",
        vec![],
        snap("renew", "sha256:aaaa", T0 + 90 * 86_400),
    );
    let rotated = obs_with("rotate", vec![], snap("rotate", "sha256:bbbb", T0 + 86_400));
    assert!(e.observe(at(T0 + 100), &[renewed, rotated]));
    assert!(e.plan(at(T0 + 129), &r, GW).is_empty());
    let batches = e.plan(at(T0 + 130), &r, GW);
    let resolutions: Vec<(String, Option<Resolution>)> = batches[0].messages[0]
        .items
        .iter()
        .map(|i| (i.token.token.clone(), i.resolution))
        .collect();
    assert_eq!(
        resolutions,
        [
            ("renew".to_string(), Some(Resolution::Renewed)),
            ("rotate".to_string(), Some(Resolution::Rotated))
        ]
    );
    ack(&mut e, &batches, T0 + 131);
    // Nothing is owed any more: the alerts are forgotten.
    e.plan(at(T0 + 132), &r, GW);
    assert!(e.state.alerts.is_empty());
    assert_eq!(e.next_due(&r, GW), None);
}

#[test]
fn an_escalation_is_sent_at_once_not_at_the_next_reminder() {
    let r = routing("");
    let mut e = Engine::default();
    e.observe(at(T0), &[expiring("a")]);
    let first = e.plan(at(T0 + 30), &r, GW);
    ack(&mut e, &first, T0 + 30);
    assert!(e.observe(
        at(T0 + 600),
        &[obs("a", vec![cond(EventKind::Expiring, Level::Critical)])]
    ));
    let b = e.plan(at(T0 + 630), &r, GW);
    let item = &b[0].messages[0].items[0];
    assert_eq!(
        (item.change, item.level, item.previous_level),
        (Change::Changed, Level::Critical, Some(Level::Warning))
    );
    ack(&mut e, &b, T0 + 630);
    assert_eq!(e.next_due(&r, GW), Some(at(T0 + 630 + 4 * 3600)));
}

#[test]
fn expired_takes_over_from_expiring_without_a_false_resolution() {
    let r = routing("routes:\n  - {receiver: chat, continue: true}\n  - {receiver: am}\n");
    let mut e = Engine::default();
    e.observe(at(T0), &[expiring("a")]);
    let first = e.plan(at(T0 + 30), &r, GW);
    assert_eq!(first.len(), 2);
    ack(&mut e, &first, T0 + 30);
    e.observe(
        at(T0 + 40),
        &[obs("a", vec![cond(EventKind::Expired, Level::Critical)])],
    );
    let b = e.plan(at(T0 + 70), &r, GW);
    let chat: Vec<_> = b.iter().filter(|b| b.target.receiver == "chat").collect();
    let chat_items = &chat[0].messages[0].items;
    assert_eq!(chat_items.len(), 1, "{chat_items:?}");
    assert_eq!(
        (chat_items[0].kind, chat_items[0].change),
        (EventKind::Expired, Change::New)
    );
    assert_eq!(chat_items[0].supersedes, Some(EventKind::Expiring));
    // Alertmanager keeps its own alerts: it is told that the old one ended.
    let am: Vec<_> = b.iter().filter(|b| b.target.receiver == "am").collect();
    let mut am_items: Vec<(EventKind, Change)> = am[0].messages[0]
        .items
        .iter()
        .map(|i| (i.kind, i.change))
        .collect();
    am_items.sort_by_key(|i| i.0);
    assert_eq!(
        am_items,
        [
            (EventKind::Expiring, Change::Resolved),
            (EventKind::Expired, Change::New)
        ]
    );
}

#[test]
fn a_flap_inside_group_wait_is_not_announced() {
    let r = routing("");
    let mut e = Engine::default();
    e.observe(at(T0), &[expiring("a")]);
    let first = e.plan(at(T0 + 30), &r, GW);
    ack(&mut e, &first, T0 + 30);
    let id = e.state.alerts.keys().next().unwrap().clone();
    e.observe(at(T0 + 100), &[obs("a", vec![])]);
    e.observe(at(T0 + 110), &[expiring("a")]);
    assert_eq!(
        e.state.alerts.keys().collect::<Vec<_>>(),
        [&id],
        "the same alert reopened"
    );
    assert!(e.plan(at(T0 + 200), &r, GW).is_empty());
    assert_eq!(e.next_due(&r, GW), Some(at(T0 + 30 + 4 * 3600)));
}

#[test]
fn unknown_tokens_are_held_and_removed_tokens_resolve() {
    let r = routing("");
    let mut e = Engine::default();
    e.observe(at(T0), &[expiring("a"), expiring("b")]);
    let first = e.plan(at(T0 + 30), &r, GW);
    ack(&mut e, &first, T0 + 30);
    // After a restart nothing is probed yet: `a` is unknown and keeps firing; `b` is gone.
    let unknown = Observation {
        token: "a".into(),
        derived: None,
        snapshot: snap("a", "sha256:aaaa", T0 + 86_400),
    };
    assert!(e.observe(at(T0 + 60), &[unknown]));
    let b = e.plan(at(T0 + 90), &r, GW);
    let got: Vec<_> = b[0].messages[0]
        .items
        .iter()
        .map(|i| (i.token.token.as_str(), i.change, i.resolution))
        .collect();
    assert_eq!(got, [("b", Change::Resolved, Some(Resolution::Removed))]);
}

#[test]
fn a_silent_provider_keeps_invalid_but_time_still_expires_tokens() {
    let r = routing("");
    let mut e = Engine::default();
    e.observe(
        at(T0),
        &[
            obs("a", vec![cond(EventKind::Invalid, Level::Critical)]),
            expiring("b"),
        ],
    );
    let first = e.plan(at(T0 + 30), &r, GW);
    ack(&mut e, &first, T0 + 30);
    let silent = |token: &str, conditions| Observation {
        token: token.into(),
        derived: Some(Derived {
            conditions,
            basis: FamilyBasis::ExpiryOnly,
        }),
        snapshot: snap(token, "sha256:aaaa", T0 + 86_400),
    };
    // `a` was invalid: an outage says nothing new. `b`'s expiry passed meanwhile.
    e.observe(
        at(T0 + 100),
        &[
            silent("a", vec![]),
            silent("b", vec![cond(EventKind::Expired, Level::Critical)]),
        ],
    );
    let b = e.plan(at(T0 + 130), &r, GW);
    assert_eq!(
        items(&b),
        [("b".to_string(), "expired".to_string(), Change::New)]
    );
}

#[test]
fn an_unacknowledged_batch_survives_a_restart_and_is_sent_again_as_it_was() {
    let r = routing("");
    let mut e = Engine::default();
    e.observe(at(T0), &[expiring("a")]);
    let planned = e.plan(at(T0 + 30), &r, GW);
    // The process dies here: the intent was written, the receiver never answered.
    let saved = serde_json::to_string(&e.state).unwrap();
    let mut restarted = Engine::new(serde_json::from_str(&saved).unwrap());
    assert_eq!(restarted.in_flight(), planned);
    assert!(
        restarted.plan(at(T0 + 40), &r, GW).is_empty(),
        "never planned twice"
    );
    ack(&mut restarted, &planned, T0 + 41);
    // Acknowledged, then killed: nothing is sent again before the repeat interval.
    let saved = serde_json::to_string(&restarted.state).unwrap();
    let mut again = Engine::new(serde_json::from_str(&saved).unwrap());
    assert!(again.in_flight().is_empty());
    again.observe(at(T0 + 60), &[expiring("a")]);
    assert!(again.plan(at(T0 + 41 + 4 * 3600 - 1), &r, GW).is_empty());
    assert_eq!(items(&again.plan(at(T0 + 41 + 4 * 3600), &r, GW)).len(), 1);
}

#[test]
fn threaded_receivers_reply_under_the_first_message() {
    let r = routing("routes:\n  - {receiver: bot}\n");
    let mut e = Engine::default();
    e.observe(at(T0), &[expiring("a"), expiring("b")]);
    let first = e.plan(at(T0 + 30), &r, GW);
    ack(&mut e, &first, T0 + 30);
    e.observe(at(T0 + 40), &[expiring("a"), expiring("b"), expiring("c")]);
    let second = e.plan(at(T0 + 70), &r, GW);
    ack(&mut e, &second, T0 + 70);
    // a and c resolve together: two replies, one in each thread.
    e.observe(
        at(T0 + 100),
        &[obs("a", vec![]), expiring("b"), obs("c", vec![])],
    );
    let b = e.plan(at(T0 + 130), &r, GW);
    let replies: Vec<(Vec<String>, Vec<String>)> = b[0]
        .messages
        .iter()
        .map(|m| {
            (
                m.reply_to.clone(),
                m.items.iter().map(|i| i.token.token.clone()).collect(),
            )
        })
        .collect();
    assert_eq!(
        replies,
        [
            (
                vec![format!("anchor-{}", first[0].id)],
                vec!["a".to_string()]
            ),
            (
                vec![format!("anchor-{}", second[0].id)],
                vec!["c".to_string()]
            ),
        ]
    );
}

#[test]
fn a_target_the_routes_drop_hears_no_reminders_but_the_resolution() {
    let mut e = Engine::default();
    let to_bot = routing("routes:\n  - {receiver: bot}\n");
    e.observe(at(T0), &[expiring("a")]);
    let first = e.plan(at(T0 + 30), &to_bot, GW);
    ack(&mut e, &first, T0 + 30);
    let to_chat = routing("");
    // A target added by a route change counts from the change.
    assert!(e.plan(at(T0 + 100), &to_chat, GW).is_empty());
    let b = e.plan(at(T0 + 130), &to_chat, GW);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].target.receiver, "chat");
    ack(&mut e, &b, T0 + 130);
    assert!(
        e.plan(at(T0 + 30 + 4 * 3600), &to_chat, GW)
            .iter()
            .all(|b| b.target.receiver != "bot")
    );
    e.observe(at(T0 + 200), &[obs("a", vec![])]);
    let b = e.plan(at(T0 + 230), &to_chat, GW);
    let mut who: Vec<&str> = b.iter().map(|b| b.target.receiver.as_str()).collect();
    who.sort();
    assert_eq!(who, ["bot", "chat"]);
}

#[test]
fn a_held_token_absent_from_the_store_is_neither_resolved_nor_refired() {
    let r = routing("");
    let mut e = Engine::default();
    e.observe(at(T0), &[expiring("src/a"), expiring("b")]);
    let first = e.plan(at(T0 + 30), &r, GW);
    ack(&mut e, &first, T0 + 30);
    // After a restart `src`'s listing has not come back yet: `src/a` is absent but held.
    let held = |t: &str| t.starts_with("src/");
    e.observe_holding(at(T0 + 60), &[expiring("b")], &held);
    assert!(
        e.plan(at(T0 + 90), &r, GW).is_empty(),
        "a held token resolved"
    );
    // The listing is back: the alert continues, nothing is sent again.
    e.observe(at(T0 + 120), &[expiring("src/a"), expiring("b")]);
    assert!(
        e.plan(at(T0 + 150), &r, GW).is_empty(),
        "a held token fired again"
    );
    // Once the source has listed and the token is gone, it resolves as removed.
    e.observe(at(T0 + 180), &[expiring("b")]);
    let b = e.plan(at(T0 + 210), &r, GW);
    let got: Vec<_> = b[0].messages[0]
        .items
        .iter()
        .map(|i| (i.token.token.as_str(), i.change, i.resolution))
        .collect();
    assert_eq!(
        got,
        [("src/a", Change::Resolved, Some(Resolution::Removed))]
    );
}
