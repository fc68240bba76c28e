use super::*;
use crate::model::{ExpiryModel, Thresholds};

fn state() -> TokenState {
    TokenState::new(
        Arc::new(TokenSpec {
            name: "t".into(),
            provider: "p".into(),
            source: None,
            secret: None,
            labels: Default::default(),
            thresholds: Thresholds {
                warning_before: Duration::from_secs(10),
                critical_before: Duration::from_secs(5),
            },
            probe_interval: Duration::from_secs(60),
            probe_timeout: Duration::from_secs(5),
            params: Default::default(),
            policies: Default::default(),
            metric_labels: Default::default(),
        }),
        "oauth2_introspection",
    )
}

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

fn valid_until(exp: i64) -> ProbeOutcome {
    ProbeOutcome::valid(TokenFacts {
        expiry: Expiry::At(at(exp)),
        ..TokenFacts::default()
    })
}

#[test]
fn expiry_survives_outage_and_inactive_answer() {
    let mut s = state();
    let fp = || Some("sha256:aaaaaaaaaaaa".to_string());
    apply(&mut s, valid_until(5000), fp(), at(100), Duration::ZERO);
    apply(
        &mut s,
        ProbeOutcome::unreachable(Reason::Connect, "down"),
        None,
        at(200),
        Duration::ZERO,
    );
    assert_eq!(s.facts.expiry, Expiry::At(at(5000)));
    assert_eq!(s.verdict(), Some(Verdict::Unreachable));
    assert_eq!(s.last_verdict_at, Some(at(100)));
    apply(
        &mut s,
        ProbeOutcome::invalid(Reason::Inactive, "inactive"),
        fp(),
        at(6000),
        Duration::ZERO,
    );
    assert_eq!(s.facts.expiry, Expiry::At(at(5000)));
    assert_eq!(s.verdict(), Some(Verdict::Invalid));
    assert_eq!(s.last_verdict_at, Some(at(6000)));
}

/// Issue 16 finding 5 (churn): a subject that changes between answers for the same
/// secret is an anomaly on the token; after a rotation it is not.
#[test]
fn a_changing_subject_is_an_anomaly() {
    let answer = |subject: &str| {
        ProbeOutcome::valid(TokenFacts {
            subject: Some(subject.into()),
            ..TokenFacts::default()
        })
    };
    let mut s = state();
    apply(
        &mut s,
        answer("a"),
        Some("fp".into()),
        at(1),
        Duration::ZERO,
    );
    apply(
        &mut s,
        answer("a"),
        Some("fp".into()),
        at(2),
        Duration::ZERO,
    );
    assert!(s.facts.anomalies.is_empty());
    apply(
        &mut s,
        answer("b"),
        Some("fp".into()),
        at(3),
        Duration::ZERO,
    );
    assert_eq!(s.facts.anomalies, [Anomaly::SubjectChanged]);
    apply(
        &mut s,
        answer("b"),
        Some("fp".into()),
        at(4),
        Duration::ZERO,
    );
    assert!(s.facts.anomalies.is_empty());
    apply(
        &mut s,
        answer("c"),
        Some("fp2".into()),
        at(5),
        Duration::ZERO,
    );
    assert!(s.facts.anomalies.is_empty(), "a rotation is a new token");
}

/// Issue 16 finding 6: a known token whose new answer has an unusable expiry keeps
/// the old expiry, but visibly: the anomaly and a flag saying so are on the token.
#[test]
fn an_unusable_expiry_keeps_the_old_one_visibly() {
    let mut s = state();
    apply(
        &mut s,
        valid_until(5000),
        Some("fp".into()),
        at(1),
        Duration::ZERO,
    );
    let mut facts = TokenFacts::default();
    facts.set_expiry(
        crate::model::read_numeric_date(Some(&serde_json::json!({}))),
        "exp",
    );
    apply(
        &mut s,
        ProbeOutcome::valid(facts),
        Some("fp".into()),
        at(2),
        Duration::ZERO,
    );
    assert_eq!(s.facts.expiry, Expiry::At(at(5000)));
    assert_eq!(s.facts.anomalies, [Anomaly::ExpiryUnreadable]);
    assert!(
        s.facts.flags.iter().any(|f| f == KEPT_EXPIRY),
        "{:?}",
        s.facts.flags
    );
    // An answer without any expiry field keeps it without the flag, as before.
    apply(
        &mut s,
        ProbeOutcome::valid(TokenFacts::default()),
        Some("fp".into()),
        at(3),
        Duration::ZERO,
    );
    assert_eq!(s.facts.expiry, Expiry::At(at(5000)));
    assert!(s.facts.flags.is_empty() && s.facts.anomalies.is_empty());
}

#[test]
fn rotation_forgets_the_old_expiry() {
    let mut s = state();
    apply(
        &mut s,
        valid_until(5000),
        Some("sha256:old".into()),
        at(100),
        Duration::ZERO,
    );
    apply(
        &mut s,
        ProbeOutcome::valid(TokenFacts::default()),
        Some("sha256:new".into()),
        at(200),
        Duration::ZERO,
    );
    assert_eq!(s.facts.expiry, Expiry::Undisclosed);
    assert_eq!(s.fingerprint.as_deref(), Some("sha256:new"));
    assert_eq!(s.first_seen, Some(at(200)));
    assert_eq!(s.rotated_at, Some(at(200)));
}

#[test]
fn the_ledger_survives_a_new_store_once_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::parse(
            "providers:\n  k:\n    kind: jwt\ntokens:\n  - name: t\n    provider: k\n    secret: {env: T}\n",
        )
        .unwrap();
    let run = |fp: &str| ProbeRun {
        outcome: valid_until(5000),
        fingerprint: Some(fp.to_string()),
        duration: Duration::ZERO,
    };
    let store = Store::with_storage(dir.path());
    store.reconcile(&config);
    store.record("t", run("sha256:aaa"), at(100));
    // Nothing is written until a flush: probes never wait for the disk.
    assert!(!dir.path().join("tokens.json").exists());
    store.flush_ledger();
    let again = Store::with_storage(dir.path());
    again.reconcile(&config);
    {
        let inner = again.read();
        let t = &inner.tokens["t"];
        assert_eq!(t.fingerprint.as_deref(), Some("sha256:aaa"));
        assert_eq!(t.first_seen, Some(at(100)));
    }
    // A different secret after the restart is a rotation.
    again.record("t", run("sha256:bbb"), at(300));
    assert_eq!(again.read().tokens["t"].rotated_at, Some(at(300)));
}

/// The file holds each token whose secret was read, and only those: a removed token
/// leaves it, a token moved to another provider keeps its first sight, and a probe
/// that changes nothing writes nothing.
#[test]
fn the_ledger_file_follows_the_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    let config = |tokens: &[(&str, &str)]| {
        let mut yaml =
            String::from("providers:\n  k:\n    kind: jwt\n  k2:\n    kind: jwt\ntokens:\n");
        for (name, provider) in tokens {
            yaml.push_str(&format!(
                "  - name: {name}\n    provider: {provider}\n    secret: {{env: T}}\n"
            ));
        }
        Config::parse(&yaml).unwrap()
    };
    let run = |fp: &str| ProbeRun {
        outcome: valid_until(5000),
        fingerprint: Some(fp.to_string()),
        duration: Duration::ZERO,
    };
    let read = || -> Ledger { serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap() };

    let store = Store::with_storage(dir.path());
    store.reconcile(&config(&[("a", "k"), ("b", "k"), ("c", "k")]));
    store.record("a", run("sha256:aaa"), at(100));
    store.record("b", run("sha256:bbb"), at(200));
    store.flush_ledger();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!(
            r#"{{"a":{{"fingerprint":"sha256:aaa","first_seen":"{}","rotated_at":null}},"b":{{"fingerprint":"sha256:bbb","first_seen":"{}","rotated_at":null}}}}"#,
            at(100),
            at(200)
        ),
        "c was never read, so it is not in the file"
    );

    // The same secret again changes nothing, so nothing is written.
    std::fs::remove_file(&file).unwrap();
    store.record("a", run("sha256:aaa"), at(150));
    store.flush_ledger();
    assert!(!file.exists());

    // b removed, a moved to k2: b leaves the file, a keeps its first sight.
    store.reconcile(&config(&[("a", "k2"), ("c", "k")]));
    store.flush_ledger();
    let ledger = read();
    assert_eq!(ledger.keys().collect::<Vec<_>>(), ["a"]);
    assert_eq!(ledger["a"].first_seen, at(100));

    // After a restart, a token the config no longer names leaves the file too.
    let again = Store::with_storage(dir.path());
    again.reconcile(&config(&[("c", "k")]));
    again.flush_ledger();
    assert!(read().is_empty());
}

#[test]
fn first_sight_sets_first_seen_once() {
    let mut s = state();
    apply(
        &mut s,
        valid_until(5000),
        Some("sha256:a".into()),
        at(100),
        Duration::ZERO,
    );
    apply(
        &mut s,
        valid_until(5000),
        Some("sha256:a".into()),
        at(200),
        Duration::ZERO,
    );
    assert_eq!(s.first_seen, Some(at(100)));
    assert_eq!(s.rotated_at, None);
}

#[test]
fn never_replaces_a_known_expiry() {
    let mut s = state();
    apply(&mut s, valid_until(5000), None, at(100), Duration::ZERO);
    apply(
        &mut s,
        ProbeOutcome::valid(TokenFacts {
            expiry: Expiry::Never,
            ..TokenFacts::default()
        }),
        None,
        at(200),
        Duration::ZERO,
    );
    assert_eq!(s.facts.expiry, Expiry::Never);
}

#[test]
fn a_kept_expiry_keeps_the_model_it_was_learnt_with() {
    let mut s = state();
    let fp = || Some("sha256:aaaaaaaaaaaa".to_string());
    let sliding = ExpiryModel::Sliding {
        window_seconds: 2_592_000,
    };
    let outcome = ProbeOutcome::valid(TokenFacts {
        expiry: Expiry::At(at(5000)),
        expiry_model: sliding,
        ..TokenFacts::default()
    });
    apply(&mut s, outcome, fp(), at(100), Duration::ZERO);
    apply(
        &mut s,
        ProbeOutcome::invalid(Reason::Inactive, "inactive"),
        fp(),
        at(200),
        Duration::ZERO,
    );
    assert_eq!(s.facts.expiry, Expiry::At(at(5000)));
    assert_eq!(s.facts.expiry_model, sliding);
}

/// A conclusive answer that discloses nothing (a GitHub SSO refusal, RFC 7662 `active:false`)
/// keeps a known "never" as it keeps a known instant: "never" is a known expiry too.
#[test]
fn undisclosed_answer_keeps_a_known_never() {
    let mut s = state();
    apply(
        &mut s,
        ProbeOutcome::valid(TokenFacts {
            expiry: Expiry::Never,
            ..TokenFacts::default()
        }),
        None,
        at(100),
        Duration::ZERO,
    );
    apply(
        &mut s,
        ProbeOutcome::new(Verdict::Forbidden, Reason::SsoRequired, "refused"),
        None,
        at(200),
        Duration::ZERO,
    );
    assert_eq!(s.facts.expiry, Expiry::Never);
    assert_eq!(s.last.as_ref().unwrap().verdict, Verdict::Forbidden);
}
