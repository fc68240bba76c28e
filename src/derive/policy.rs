//! Token hygiene policies: pure functions from what the store knows and `now` to findings.
//! No I/O.
//!
//! Each configured policy yields one [`Finding`] per token, violated or not, so the metric
//! `api_token_policy_violation{policy}` is present (1 or 0) for every token it applies to and
//! an alert can tell "fixed" from "not evaluated". A policy whose fact the provider does not
//! report (no last-use time, no subject) is still listed, not violated, with a detail saying
//! it cannot be checked, rather than inventing a violation.

use jiff::Timestamp;
use serde::Serialize;

use crate::config::Policies;
use crate::model::{Expiry, ExpiryModel, TokenFacts};
use crate::state::store::TokenState;

/// The result of one policy for one token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable label value: `max_age`, `allowed_scopes`, `forbidden_scopes`, `require_expiry`,
    /// `max_unused`, `expect_subject`, `expect_client_id`, `expect_account`, `expect_issuer`,
    /// `expect_audience`.
    pub policy: &'static str,
    pub violated: bool,
    /// One sentence for people. Never the secret: built from names, scopes and durations.
    pub detail: String,
}

/// Every policy name, for documentation and tests.
pub const POLICIES: [&str; 10] = [
    "max_age",
    "allowed_scopes",
    "forbidden_scopes",
    "require_expiry",
    "max_unused",
    "expect_subject",
    "expect_client_id",
    "expect_account",
    "expect_issuer",
    "expect_audience",
];

/// Where a token's age is counted from: the provider's issue time, else the first time this
/// fingerprint was seen (kept across restarts).
pub fn age_origin(state: &TokenState) -> Option<(Timestamp, &'static str)> {
    match (state.facts.issued_at, state.first_seen) {
        (Some(issued), _) => Some((issued, "issued")),
        (None, Some(seen)) => Some((seen, "first seen")),
        (None, None) => None,
    }
}

/// Evaluates every policy configured for the token. Nothing is returned before the first
/// conclusive answer: a token never seen says nothing about its hygiene.
pub fn evaluate(state: &TokenState, now: Timestamp) -> Vec<Finding> {
    if state.last_verdict_at.is_none() {
        return Vec::new();
    }
    check(&state.spec.policies, &state.facts, age_origin(state), now)
}

/// [`evaluate`] without the sentences: `found(policy, violated, detail)` for each policy,
/// `detail` writing the sentence only if called. `/metrics` needs only the first two, for
/// every token at every scrape, and formatting dates and durations it would discard cost
/// about a microsecond per token and policy.
pub fn each_finding(
    state: &TokenState,
    now: Timestamp,
    found: impl FnMut(&'static str, bool, &dyn Fn() -> String),
) {
    if state.last_verdict_at.is_some() {
        check_each(
            &state.spec.policies,
            &state.facts,
            age_origin(state),
            now,
            found,
        );
    }
}

/// The policies against facts. Pure; `evaluate` is the entry point.
pub fn check(
    p: &Policies,
    facts: &TokenFacts,
    origin: Option<(Timestamp, &'static str)>,
    now: Timestamp,
) -> Vec<Finding> {
    let mut out = Vec::new();
    check_each(p, facts, origin, now, |policy, violated, detail| {
        out.push(Finding {
            policy,
            violated,
            detail: detail(),
        })
    });
    out
}

fn check_each(
    p: &Policies,
    facts: &TokenFacts,
    origin: Option<(Timestamp, &'static str)>,
    now: Timestamp,
    mut found: impl FnMut(&'static str, bool, &dyn Fn() -> String),
) {
    let days = |secs: i64| secs / 86_400;

    // A token that never expires is watched by its age even where no max_age is set.
    let (max_age, by_default) = match (p.max_age, facts.expiry_model) {
        (Some(max), _) => (Some(max), false),
        (None, ExpiryModel::AgeOnly) => (p.age_only_max_age, true),
        (None, _) => (None, false),
    };
    if let Some(max) = max_age {
        match origin {
            Some((from, what)) => {
                let age = now.as_second() - from.as_second();
                found("max_age", age > max.as_secs() as i64, &|| {
                    format!(
                        "{} days old ({what} {}); at most {} days allowed{}",
                        days(age),
                        from.strftime("%Y-%m-%d"),
                        max.as_secs() / 86_400,
                        if by_default {
                            " for a token that never expires (age_only_max_age)"
                        } else {
                            ""
                        }
                    )
                });
            }
            None => found("max_age", false, &|| {
                "cannot be checked: no issue time and no fingerprint yet".into()
            }),
        }
    }
    if let Some(allowed) = &p.allowed_scopes {
        let extra = || facts.scopes.iter().filter(|s| !allowed.contains(s));
        found("allowed_scopes", extra().next().is_some(), &|| {
            let extra: Vec<&str> = extra().map(String::as_str).collect();
            if extra.is_empty() {
                "holds only allowed scopes".into()
            } else {
                format!("holds scopes outside its allowance: {}", extra.join(", "))
            }
        });
    }
    if !p.forbidden_scopes.is_empty() {
        let held = || {
            facts
                .scopes
                .iter()
                .filter(|s| p.forbidden_scopes.contains(s))
        };
        found("forbidden_scopes", held().next().is_some(), &|| {
            let held: Vec<&str> = held().map(String::as_str).collect();
            if held.is_empty() {
                "holds no forbidden scope".into()
            } else {
                format!("holds forbidden scopes: {}", held.join(", "))
            }
        });
    }
    if p.require_expiry {
        found(
            "require_expiry",
            facts.expiry == Expiry::Never,
            &|| match facts.expiry {
                Expiry::Never => "never expires".into(),
                Expiry::At(_) => "has an expiry".into(),
                Expiry::Undisclosed => {
                    "cannot be checked: the provider does not disclose the expiry".into()
                }
            },
        );
    }
    if let Some(max) = p.max_unused {
        match facts.last_used_at {
            Some(used) => {
                let idle = now.as_second() - used.as_second();
                found("max_unused", idle > max.as_secs() as i64, &|| {
                    format!(
                        "last used {} days ago ({}); at most {} days unused allowed",
                        days(idle),
                        used.strftime("%Y-%m-%d"),
                        max.as_secs() / 86_400
                    )
                });
            }
            None => found("max_unused", false, &|| {
                "cannot be checked: the provider does not report last use".into()
            }),
        }
    }

    // Borrowed, not cloned: this runs for every token at every scrape, mostly with no
    // identity expectation configured at all.
    let account = facts
        .extra
        .get("account")
        .or_else(|| facts.extra.get("team_id"))
        .or_else(|| facts.extra.get("account_id"));
    let account: &[String] = account.map(std::slice::from_ref).unwrap_or_default();
    let identity: [(&'static str, &'static str, &Option<String>, &[String]); 5] = [
        (
            "expect_subject",
            "subject",
            &p.expect.subject,
            facts.subject.as_slice(),
        ),
        (
            "expect_client_id",
            "client_id",
            &p.expect.client_id,
            facts.client_id.as_slice(),
        ),
        ("expect_account", "account", &p.expect.account, account),
        (
            "expect_issuer",
            "issuer",
            &p.expect.issuer,
            facts.issuer.as_slice(),
        ),
        (
            "expect_audience",
            "audience",
            &p.expect.audience,
            &facts.audience,
        ),
    ];
    for (policy, field, expected, actual) in identity {
        let Some(expected) = expected else { continue };
        if actual.is_empty() {
            found(policy, false, &|| {
                format!("cannot be checked: the provider does not report {field}")
            });
        } else if actual.contains(expected) {
            found(policy, false, &|| format!("{field} is {expected}"));
        } else {
            found(policy, true, &|| {
                format!("{field} is {}, expected {expected}", actual.join(", "))
            });
        }
    }
}

#[cfg(test)]
mod tests;
