use std::time::Duration;

use jiff::Timestamp;

use super::*;
use crate::model::{Expiry, TokenFacts};

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn facts(issued: Option<i64>, expires: i64) -> TokenFacts {
    TokenFacts {
        expiry: Expiry::At(t(expires)),
        issued_at: issued.map(t),
        ..TokenFacts::default()
    }
}

#[test]
fn before_plans_that_long_ahead_of_the_expiry() {
    let f = facts(None, 1000);
    assert_eq!(
        planned_at(When::Before(Duration::from_secs(100)), &f, None),
        Some(t(900))
    );
    let never = TokenFacts {
        expiry: Expiry::Never,
        ..TokenFacts::default()
    };
    assert_eq!(
        planned_at(When::Before(Duration::from_secs(1)), &never, None),
        None
    );
    assert_eq!(
        planned_at(
            When::Before(Duration::from_secs(1)),
            &TokenFacts::default(),
            None
        ),
        None
    );
}

#[test]
fn a_fraction_is_of_the_lifetime_from_issue_or_the_last_rotation() {
    assert_eq!(
        planned_at(When::Fraction(0.25), &facts(Some(0), 1000), None),
        Some(t(750))
    );
    assert_eq!(
        planned_at(When::Fraction(0.5), &facts(None, 1000), Some(t(600))),
        Some(t(800))
    );
    assert_eq!(
        planned_at(When::Fraction(0.5), &facts(None, 1000), None),
        None
    );
}

fn seen(f: &TokenFacts, answered: Option<i64>) -> Observed<'_> {
    Observed {
        facts: f,
        answered_at: answered.map(t),
        first_seen: None,
    }
}

const WHEN: When = When::Before(Duration::from_secs(100));

#[test]
fn a_due_token_is_created_then_walks_the_four_steps() {
    let f = facts(None, 1000);
    let mut r = Record::default();
    assert_eq!(
        r.action(WHEN, &seen(&f, Some(0)), true, false, t(899)),
        Action::Wait
    );
    assert_eq!(
        r.action(WHEN, &seen(&f, Some(0)), true, false, t(900)),
        Action::Create
    );
    r.begin(Some("sha256:old".into()), t(900));
    r.issued(Pending {
        value: Some("new".into()),
        ..Pending::default()
    });
    assert_eq!(
        r.action(WHEN, &seen(&f, Some(0)), false, false, t(901)),
        Action::Deliver
    );
    r.delivered();
    assert_eq!(
        r.action(WHEN, &seen(&f, Some(0)), false, false, t(901)),
        Action::Test
    );
    r.tested();
    assert_eq!(
        r.action(WHEN, &seen(&f, Some(0)), false, false, t(901)),
        Action::Finish
    );
    r.finished(t(902));
    assert_eq!(r.step, Step::Idle);
    assert!(r.pending.is_none());
    assert_eq!(r.last_success_at, Some(t(902)));
}

#[test]
fn nothing_is_planned_again_until_the_provider_answered_after_the_rotation() {
    let f = facts(None, 1000);
    let mut r = Record::default();
    r.finished(t(950));
    // Old facts (answered before the rotation) still show the old expiry: no second rotation.
    assert_eq!(
        r.action(WHEN, &seen(&f, Some(940)), true, false, t(960)),
        Action::Wait
    );
    assert_eq!(r.next_at(WHEN, &seen(&f, Some(940))), None);
    let renewed = facts(None, 5000);
    assert_eq!(r.next_at(WHEN, &seen(&renewed, Some(951))), Some(t(4900)));
}

#[test]
fn a_crash_during_a_non_idempotent_call_is_not_repeated_with_the_old_value() {
    let f = facts(None, 1000);
    let mut r = Record::default();
    r.begin(None, t(900));
    // A renewal may be asked again; a refresh grant may not.
    assert_eq!(
        r.action(WHEN, &seen(&f, Some(0)), true, false, t(901)),
        Action::Create
    );
    assert_eq!(
        r.action(WHEN, &seen(&f, Some(0)), false, false, t(901)),
        Action::Interrupt
    );
    r.interrupted(t(901));
    assert_eq!(
        r.action(WHEN, &seen(&f, Some(0)), false, false, t(5000)),
        Action::Wait
    );
    assert!(r.status("x", false, None, [0; 3]).failing());
    // Only an operator resumes it.
    assert_eq!(
        r.action(WHEN, &seen(&f, Some(0)), false, true, t(5000)),
        Action::Create
    );
}

#[test]
fn an_issued_value_survives_every_failure_after_it() {
    let f = facts(None, 1000);
    let mut r = Record::default();
    r.begin(None, t(900));
    r.issued(Pending {
        value: Some("new".into()),
        ..Pending::default()
    });
    r.failed("delivery failed", t(901));
    assert_eq!(r.step, Step::Issued);
    assert!(r.pending.is_some());
    assert_eq!(
        r.action(WHEN, &seen(&f, Some(0)), false, false, t(902)),
        Action::Wait
    );
    assert_eq!(
        r.action(WHEN, &seen(&f, Some(0)), false, false, t(931)),
        Action::Deliver
    );
}

#[test]
fn a_failed_create_keeps_the_old_value_and_backs_off_exponentially() {
    let f = facts(None, 1000);
    let mut r = Record::default();
    r.begin(None, t(900));
    r.failed("refused", t(900));
    assert_eq!(r.step, Step::Idle);
    assert_eq!(r.retry_at, Some(t(930)));
    assert_eq!(
        r.action(WHEN, &seen(&f, Some(0)), true, false, t(929)),
        Action::Wait
    );
    assert_eq!(
        r.action(WHEN, &seen(&f, Some(0)), true, false, t(930)),
        Action::Create
    );
    r.begin(None, t(930));
    r.failed("refused", t(930));
    assert_eq!(r.retry_at, Some(t(990)));
    assert_eq!(backoff(1), Duration::from_secs(30));
    assert_eq!(backoff(3), Duration::from_secs(120));
    assert_eq!(backoff(40), MAX_BACKOFF);
}

#[test]
fn the_rate_spaces_starts_over_all_tokens() {
    let mut rate = Rate::new(Duration::from_secs(2));
    assert!(rate.take(t(0)));
    assert!(!rate.take(t(1)));
    assert!(rate.take(t(2)));
}

#[test]
fn pending_values_never_show_in_debug() {
    let p = Pending {
        value: Some("canary-new-value".into()),
        refresh_token: Some("canary-refresh".into()),
        expires_at: None,
        ..Pending::default()
    };
    let text = format!(
        "{p:?} {:?}",
        Record {
            pending: Some(p.clone()),
            ..Record::default()
        }
    );
    assert!(!text.contains("canary"), "{text}");
}

#[test]
fn the_file_round_trips() {
    let mut file = RotationFile::default();
    let mut r = Record::default();
    r.begin(Some("sha256:abc".into()), t(1));
    r.issued(Pending {
        value: Some("v".into()),
        refresh_token: None,
        expires_at: Some(t(99)),
        key_id: Some("AKIA0000000000000001".into()),
        old_key_id: Some("AKIA0000000000000000".into()),
    });
    file.tokens.insert("a".into(), r);
    let json = serde_json::to_string(&file).unwrap();
    assert!(json.contains("\"issued\""), "{json}");
    assert_eq!(serde_json::from_str::<RotationFile>(&json).unwrap(), file);
}

#[test]
fn max_age_plans_from_the_issue_time_even_without_an_expiry() {
    let mut f = facts(Some(100), 0);
    f.expiry = Expiry::Never;
    assert_eq!(
        planned_at(When::MaxAge(Duration::from_secs(50)), &f, None),
        Some(t(150))
    );
    f.issued_at = None;
    assert_eq!(
        planned_at(When::MaxAge(Duration::from_secs(50)), &f, Some(t(10))),
        Some(t(60))
    );
    assert_eq!(
        planned_at(When::MaxAge(Duration::from_secs(50)), &f, None),
        None
    );
}

#[test]
fn an_old_credential_is_retired_when_due_and_before_the_next_rotation() {
    let f = facts(Some(0), 1000);
    let seen = Observed {
        facts: &f,
        answered_at: Some(t(5)),
        first_seen: None,
    };
    let when = When::Before(Duration::from_secs(100));
    let r = Record {
        retire: Some(Retire {
            key_id: "AKIA0000000000000000".into(),
            at: Some(t(500)),
        }),
        ..Record::default()
    };
    assert_eq!(r.action(when, &seen, false, false, t(10)), Action::Wait);
    assert_eq!(r.action(when, &seen, false, false, t(500)), Action::Retire);
    // A rotation due first retires the old key: the new one may not fit beside it.
    assert_eq!(r.action(when, &seen, false, false, t(950)), Action::Retire);
    assert_eq!(r.action(when, &seen, false, true, t(10)), Action::Retire);
    let backing_off = Record {
        retry_at: Some(t(600)),
        ..r.clone()
    };
    assert_eq!(
        backing_off.action(when, &seen, false, false, t(550)),
        Action::Wait
    );
}

#[test]
fn a_discovered_tokens_record_is_kept_by_identity_apart_from_names() {
    let old: RotationFile = serde_json::from_str(r#"{"tokens":{"ci":{"step":"issued"}}}"#).unwrap();
    assert!(
        old.discovered.is_empty(),
        "a file from before reads as it was"
    );
    let mut file = old.clone();
    let mid = Record {
        step: Step::Issued,
        ..Record::default()
    };
    // Named `d/ci` today; the record follows the file, not the name.
    file.put("d/ci", Some("file:/srv/tokens/ci"), mid.clone());
    assert_eq!(file.record("d/ci", Some("file:/srv/tokens/ci")), Some(&mid));
    assert_eq!(
        file.record("renamed/ci", Some("file:/srv/tokens/ci")),
        Some(&mid)
    );
    assert_eq!(
        file.record("file:/srv/tokens/ci", None),
        None,
        "names and identities never mix"
    );
    assert_eq!(file.tokens, old.tokens);
    let text = serde_json::to_string(&file).unwrap();
    assert!(
        text.contains(r#""discovered":{"file:/srv/tokens/ci""#),
        "{text}"
    );
    assert!(!serde_json::to_string(&old).unwrap().contains("discovered"));
}
