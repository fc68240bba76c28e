use super::*;
use crate::config::Expect;
use std::time::Duration;

const DAY: i64 = 86_400;

fn at(days: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + days * DAY).unwrap()
}

fn find<'a>(findings: &'a [Finding], policy: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.policy == policy)
        .unwrap_or_else(|| panic!("no {policy} in {findings:?}"))
}

#[test]
fn max_age_from_issue_time_or_first_sight() {
    let p = Policies {
        max_age: Some(Duration::from_secs(90 * DAY as u64)),
        ..Policies::default()
    };
    let facts = TokenFacts::default();
    let old = check(&p, &facts, Some((at(0), "issued")), at(100));
    assert!(find(&old, "max_age").violated);
    assert!(
        find(&old, "max_age")
            .detail
            .starts_with("100 days old (issued"),
        "{old:?}"
    );
    let young = check(&p, &facts, Some((at(50), "first seen")), at(100));
    assert!(!find(&young, "max_age").violated);
    let unknown = check(&p, &facts, None, at(100));
    assert!(!find(&unknown, "max_age").violated);
    assert!(
        find(&unknown, "max_age")
            .detail
            .starts_with("cannot be checked")
    );
}

#[test]
fn scope_allowance_and_forbidden_scopes() {
    let p = Policies {
        allowed_scopes: Some(vec!["repo".into(), "read:org".into()]),
        forbidden_scopes: vec!["admin:org".into(), "delete_repo".into()],
        ..Policies::default()
    };
    let ok = TokenFacts {
        scopes: vec!["repo".into()],
        ..TokenFacts::default()
    };
    let f = check(&p, &ok, None, at(0));
    assert!(!find(&f, "allowed_scopes").violated && !find(&f, "forbidden_scopes").violated);
    let bad = TokenFacts {
        scopes: vec!["delete_repo".into(), "repo".into(), "workflow".into()],
        ..TokenFacts::default()
    };
    let f = check(&p, &bad, None, at(0));
    assert_eq!(
        find(&f, "allowed_scopes").detail,
        "holds scopes outside its allowance: delete_repo, workflow"
    );
    assert_eq!(
        find(&f, "forbidden_scopes").detail,
        "holds forbidden scopes: delete_repo"
    );
}

#[test]
fn require_expiry() {
    let p = Policies {
        require_expiry: true,
        ..Policies::default()
    };
    let never = TokenFacts {
        expiry: Expiry::Never,
        ..TokenFacts::default()
    };
    assert!(find(&check(&p, &never, None, at(0)), "require_expiry").violated);
    let dated = TokenFacts {
        expiry: Expiry::At(at(10)),
        ..TokenFacts::default()
    };
    assert!(!find(&check(&p, &dated, None, at(0)), "require_expiry").violated);
    assert!(
        !find(
            &check(&p, &TokenFacts::default(), None, at(0)),
            "require_expiry"
        )
        .violated
    );
}

#[test]
fn max_unused_only_where_last_use_is_reported() {
    let p = Policies {
        max_unused: Some(Duration::from_secs(30 * DAY as u64)),
        ..Policies::default()
    };
    let idle = TokenFacts {
        last_used_at: Some(at(0)),
        ..TokenFacts::default()
    };
    assert!(find(&check(&p, &idle, None, at(31)), "max_unused").violated);
    assert!(!find(&check(&p, &idle, None, at(29)), "max_unused").violated);
    let unknown = check(&p, &TokenFacts::default(), None, at(31));
    assert!(!find(&unknown, "max_unused").violated);
}

#[test]
fn identity_assertions() {
    let p = Policies {
        expect: Expect {
            subject: Some("svc-deploy".into()),
            client_id: Some("exporter".into()),
            account: Some("T123".into()),
            issuer: Some("https://idp".into()),
            audience: Some("api".into()),
        },
        ..Policies::default()
    };
    let facts = TokenFacts {
        subject: Some("svc-deploy".into()),
        client_id: Some("other-client".into()),
        issuer: Some("https://idp".into()),
        audience: vec!["web".into(), "api".into()],
        extra: [("team_id".to_string(), "T999".to_string())].into(),
        ..TokenFacts::default()
    };
    let f = check(&p, &facts, None, at(0));
    assert!(!find(&f, "expect_subject").violated);
    assert!(find(&f, "expect_client_id").violated);
    assert_eq!(
        find(&f, "expect_client_id").detail,
        "client_id is other-client, expected exporter"
    );
    assert!(find(&f, "expect_account").violated);
    assert!(!find(&f, "expect_issuer").violated);
    assert!(!find(&f, "expect_audience").violated);
    let silent = check(&p, &TokenFacts::default(), None, at(0));
    assert!(silent.iter().all(|f| !f.violated));
    assert_eq!(silent.len(), 5);
}

#[test]
fn every_finding_names_a_documented_policy() {
    let p = Policies {
        max_age: Some(Duration::from_secs(DAY as u64)),
        age_only_max_age: Some(Duration::from_secs(DAY as u64)),
        allowed_scopes: Some(vec![]),
        forbidden_scopes: vec!["x".into()],
        expect: Expect {
            subject: Some("s".into()),
            client_id: Some("c".into()),
            account: Some("a".into()),
            issuer: Some("i".into()),
            audience: Some("u".into()),
        },
        require_expiry: true,
        max_unused: Some(Duration::from_secs(DAY as u64)),
    };
    let mut names: Vec<&str> = check(&p, &TokenFacts::default(), None, at(0))
        .iter()
        .map(|f| f.policy)
        .collect();
    names.sort();
    let mut documented = POLICIES.to_vec();
    documented.sort();
    assert_eq!(names, documented);
}

#[test]
fn nothing_configured_nothing_found() {
    assert!(check(&Policies::default(), &TokenFacts::default(), None, at(0)).is_empty());
}

#[test]
fn a_token_that_never_expires_is_held_to_the_age_only_default() {
    let age_only = TokenFacts {
        expiry: Expiry::Never,
        expiry_model: ExpiryModel::AgeOnly,
        ..TokenFacts::default()
    };
    let defaults = Policies::default();
    let old = check(&defaults, &age_only, Some((at(0), "issued")), at(91));
    assert!(find(&old, "max_age").violated, "{old:?}");
    assert!(find(&old, "max_age").detail.contains("age_only_max_age"));
    assert!(
        !find(
            &check(&defaults, &age_only, Some((at(0), "issued")), at(89)),
            "max_age"
        )
        .violated
    );

    // The default applies to age-only tokens only: a fixed or sliding expiry is its own watch.
    for model in [
        ExpiryModel::Fixed,
        ExpiryModel::Sliding {
            window_seconds: 30 * DAY as u64,
        },
    ] {
        let facts = TokenFacts {
            expiry_model: model,
            ..TokenFacts::default()
        };
        assert!(check(&defaults, &facts, Some((at(0), "issued")), at(400)).is_empty());
    }

    // An explicit max_age wins, and `off` (None) switches the default off.
    let explicit = Policies {
        max_age: Some(Duration::from_secs(200 * DAY as u64)),
        ..Policies::default()
    };
    let f = check(&explicit, &age_only, Some((at(0), "issued")), at(150));
    assert!(!find(&f, "max_age").violated && !find(&f, "max_age").detail.contains("age_only"));
    let off = Policies {
        age_only_max_age: None,
        ..Policies::default()
    };
    assert!(check(&off, &age_only, Some((at(0), "issued")), at(400)).is_empty());
}
