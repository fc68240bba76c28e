use super::*;
use std::sync::Arc;
use std::time::Duration;

use crate::model::{ProbeOutcome, Thresholds, TokenFacts};
use crate::schema::TokenSpec;
use crate::state::store::{ProbeRecord, TokenState};

const DAY: i64 = 86_400;

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

fn token(outcome: Option<ProbeOutcome>, expiry: Expiry, probed: i64) -> TokenState {
    TokenState {
        spec: Arc::new(TokenSpec {
            name: "t".into(),
            provider: "p".into(),
            source: None,
            secret: None,
            labels: Default::default(),
            thresholds: Thresholds {
                warning_before: Duration::from_secs(14 * DAY as u64),
                critical_before: Duration::from_secs(3 * DAY as u64),
            },
            probe_interval: Duration::from_secs(60),
            probe_timeout: Duration::from_secs(5),
            params: Default::default(),
            policies: Default::default(),
            metric_labels: Default::default(),
        }),
        kind: "jwt",
        fingerprint: Some("sha256:aaaaaaaaaaaa".into()),
        last: outcome.map(|outcome| ProbeRecord::new(outcome, at(probed), Duration::ZERO)),
        facts: Arc::new(TokenFacts {
            expiry,
            ..TokenFacts::default()
        }),
        last_verdict_at: None,
        first_seen: None,
        rotated_at: None,
        rotation: None,
    }
}

fn kinds(d: &Derived) -> Vec<(EventKind, Level)> {
    d.conditions.iter().map(|c| (c.kind, c.level)).collect()
}

const NOW: i64 = 1_700_000_000;

fn settings() -> Settings {
    Settings {
        provider_failing_for: Duration::from_secs(1800),
        misconfigured_for: Duration::from_secs(0),
        ..Settings::default()
    }
}

#[test]
fn nothing_is_decided_before_the_first_probe() {
    let s = token(None, Expiry::At(at(NOW + DAY)), NOW);
    assert_eq!(
        derive(&s, &TokenMemory::default(), &[], &settings(), at(NOW)),
        None
    );
}

#[test]
fn expiry_bands_and_verdicts() {
    let m = TokenMemory::default();
    let valid = |exp: i64| {
        token(
            Some(ProbeOutcome::valid(TokenFacts::default())),
            Expiry::At(at(exp)),
            NOW,
        )
    };
    let d = |s: &TokenState| derive(s, &m, &[], &settings(), at(NOW)).unwrap();
    assert_eq!(kinds(&d(&valid(NOW + 30 * DAY))), vec![]);
    assert_eq!(
        kinds(&d(&valid(NOW + 10 * DAY))),
        vec![(EventKind::Expiring, Level::Warning)]
    );
    assert_eq!(
        kinds(&d(&valid(NOW + DAY))),
        vec![(EventKind::Expiring, Level::Critical)]
    );
    assert_eq!(
        kinds(&d(&valid(NOW - 1))),
        vec![(EventKind::Expired, Level::Critical)]
    );
    let revoked = token(
        Some(ProbeOutcome::invalid(Reason::Revoked, "revoked")),
        Expiry::At(at(NOW + 30 * DAY)),
        NOW,
    );
    assert_eq!(
        kinds(&d(&revoked)),
        vec![(EventKind::Invalid, Level::Critical)]
    );
    // RFC 7662 says only "inactive"; a known expiry in the past makes it "expired".
    let inactive = token(
        Some(ProbeOutcome::invalid(Reason::Inactive, "inactive")),
        Expiry::At(at(NOW - DAY)),
        NOW,
    );
    assert_eq!(
        kinds(&d(&inactive)),
        vec![(EventKind::Expired, Level::Critical)]
    );
}

#[test]
fn a_failing_provider_holds_the_token_family_unless_the_expiry_is_known() {
    let down = ProbeOutcome::unreachable(Reason::Connect, "connection refused");
    let unknown_expiry = token(Some(down.clone()), Expiry::Undisclosed, NOW);
    let d = derive(
        &unknown_expiry,
        &TokenMemory::default(),
        &[],
        &settings(),
        at(NOW),
    )
    .unwrap();
    assert_eq!(d.basis, FamilyBasis::Unknown);
    let known = token(Some(down), Expiry::At(at(NOW - 5)), NOW);
    let d = derive(&known, &TokenMemory::default(), &[], &settings(), at(NOW)).unwrap();
    assert_eq!(d.basis, FamilyBasis::ExpiryOnly);
    assert_eq!(kinds(&d), vec![(EventKind::Expired, Level::Critical)]);
    assert!(
        d.conditions[0]
            .detail
            .starts_with("the last known expiry has passed")
    );
}

#[test]
fn provider_failing_only_after_the_configured_time() {
    let down = token(
        Some(ProbeOutcome::unreachable(Reason::Http5xx, "503")),
        Expiry::Undisclosed,
        NOW,
    );
    let mut m = TokenMemory::default();
    assert!(m.observe(&down));
    assert!(!m.observe(&down), "a second failing probe changes nothing");
    assert_eq!(m.failing_since, Some(at(NOW)));
    let d = derive(&down, &m, &[], &settings(), at(NOW + 1799)).unwrap();
    assert!(d.conditions.is_empty());
    let d = derive(&down, &m, &[], &settings(), at(NOW + 1800)).unwrap();
    assert_eq!(
        kinds(&d),
        vec![(EventKind::ProviderFailing, Level::Warning)]
    );
    assert!(
        d.conditions[0]
            .detail
            .contains("since 2023-11-14 22:13:20 UTC"),
        "{:?}",
        d.conditions
    );
    let ok = token(
        Some(ProbeOutcome::valid(TokenFacts::default())),
        Expiry::Never,
        NOW + 2000,
    );
    assert!(m.observe(&ok));
    assert_eq!(m, TokenMemory::default());
}

#[test]
fn misconfigured_and_policy_findings() {
    let broken = token(
        Some(ProbeOutcome::misconfigured(
            Reason::SecretUnavailable,
            "file missing",
        )),
        Expiry::Undisclosed,
        NOW,
    );
    let mut m = TokenMemory::default();
    m.observe(&broken);
    let findings = [
        PolicyFinding {
            policy: "max-age".into(),
            violated: true,
            detail: "issued 400 days ago".into(),
        },
        PolicyFinding {
            policy: "no-admin".into(),
            violated: false,
            detail: "fine".into(),
        },
    ];
    let d = derive(&broken, &m, &findings, &settings(), at(NOW)).unwrap();
    assert_eq!(
        kinds(&d),
        vec![
            (EventKind::Misconfigured, Level::Warning),
            (EventKind::PolicyViolation, Level::Warning)
        ]
    );
    assert_eq!(d.conditions[1].policy.as_deref(), Some("max-age"));
}

#[test]
fn the_daemons_policy_source_feeds_policy_findings_in() {
    let mut s = token(
        Some(ProbeOutcome::valid(TokenFacts::default())),
        Expiry::Never,
        NOW,
    );
    let mut spec = (*s.spec).clone();
    Arc::make_mut(&mut spec.policies).forbidden_scopes = vec!["admin".into()];
    s.spec = Arc::new(spec);
    Arc::make_mut(&mut s.facts).scopes = vec!["read".into(), "admin".into()];
    s.last_verdict_at = Some(at(NOW));
    let findings = policies(&s, at(NOW));
    assert!(
        findings
            .iter()
            .any(|f| f.policy == "forbidden_scopes" && f.violated)
    );
    let d = derive(&s, &TokenMemory::default(), &findings, &settings(), at(NOW)).unwrap();
    assert_eq!(
        kinds(&d),
        vec![(EventKind::PolicyViolation, Level::Warning)]
    );
    assert_eq!(d.conditions[0].policy.as_deref(), Some("forbidden_scopes"));
    assert!(no_policies(&s, at(NOW)).is_empty());
}

#[test]
fn a_failing_rotation_is_an_event_and_an_interrupted_one_is_critical() {
    use crate::model::rotation::{RotationStatus, Step};
    let m = TokenMemory::default();
    let mut s = token(
        Some(ProbeOutcome::valid(TokenFacts::default())),
        Expiry::At(at(NOW + 30 * DAY)),
        NOW,
    );
    let d = |s: &TokenState| derive(s, &m, &[], &settings(), at(NOW)).unwrap();
    s.rotation = Some(Arc::new(RotationStatus {
        rotator: "vault_renew",
        ..RotationStatus::default()
    }));
    assert_eq!(kinds(&d(&s)), vec![]);
    s.rotation = Some(Arc::new(RotationStatus {
        rotator: "vault_renew",
        failures: 2,
        last_error: Some("vault refused the renewal (403)".into()),
        ..RotationStatus::default()
    }));
    let derived = d(&s);
    assert_eq!(
        kinds(&derived),
        vec![(EventKind::RotationFailing, Level::Warning)]
    );
    assert_eq!(
        derived.conditions[0].detail,
        "rotation (vault_renew) failed: vault refused the renewal (403)"
    );
    s.rotation = Some(Arc::new(RotationStatus {
        rotator: "oauth2_refresh",
        step: Step::Interrupted,
        failures: 1,
        ..RotationStatus::default()
    }));
    assert_eq!(
        kinds(&d(&s)),
        vec![(EventKind::RotationFailing, Level::Critical)]
    );
    assert_eq!(
        EventKind::RotationFailing.alertname(),
        "ApiTokenRotationFailing"
    );
}
