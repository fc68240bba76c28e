//! `static`: tokens no provider can introspect, with an expiry declared in the config. No
//! I/O at all: `evaluate` compares the declared dates with `now`.
//!
//! Nothing is checked with a provider, so the outcome says so in its detail and carries
//! `declared=true` in its extra facts. A secret is optional; when one is given it is only
//! read by the generic handler to fingerprint it, so a rotation still shows.

use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Deserialize;

use super::{BoxFuture, BuildContext, Provider, ProviderKind, refuse_params};
use crate::model::{Expiry, ProbeOutcome, Reason, TokenFacts, Verdict};
use crate::schema::TokenSpec;
use crate::secret::Secret;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub max_concurrency: Option<usize>,
}

impl ProviderKind for Config {
    fn kind(&self) -> &'static str {
        "static"
    }

    fn validate(&self) -> Result<(), String> {
        Ok(())
    }

    fn check_token(&self, token: &TokenSpec) -> Result<(), String> {
        refuse_params(
            token,
            self.kind(),
            &[
                "expires_at",
                "issued_at",
                "last_used_at",
                "sliding_window_seconds",
            ],
        )?;
        if let Some(used) = &token.params.last_used_at {
            parse_declared(used).map_err(|e| format!("last_used_at: {e}"))?;
        }
        let (expires_at, issued_at) = declared(token)?;
        if let (Some(exp), Some(iat)) = (expires_at, issued_at)
            && iat > exp
        {
            return Err("issued_at lies after expires_at".into());
        }
        Ok(())
    }

    fn max_concurrency(&self) -> Option<usize> {
        self.max_concurrency
    }

    fn build(&self, _ctx: &BuildContext) -> Result<Arc<dyn Provider>, String> {
        Ok(Arc::new(Static))
    }
}

/// The declared dates of a token, parsed.
fn declared(token: &TokenSpec) -> Result<(Option<Timestamp>, Option<Timestamp>), String> {
    let parse = |field: &str, value: &Option<String>| {
        value
            .as_deref()
            .map(|v| parse_declared(v).map_err(|e| format!("{field}: {e}")))
            .transpose()
    };
    let expires_at = token
        .params
        .expires_at
        .as_deref()
        .map(|v| parse_declared_expiry(v).map_err(|e| format!("expires_at: {e}")))
        .transpose()?
        .flatten();
    Ok((expires_at, parse("issued_at", &token.params.issued_at)?))
}

/// A declared instant: RFC 3339 with an offset, or a date alone meaning 00:00 UTC that day
/// (as GitLab states its own `expires_at`). Pure.
pub fn parse_declared(value: &str) -> Result<Timestamp, String> {
    let trimmed = value.trim();
    let parsed = if trimmed.len() == 10 {
        trimmed
            .parse::<Date>()
            .ok()
            .and_then(|d| d.to_zoned(TimeZone::UTC).ok())
            .map(|z| z.timestamp())
    } else {
        trimmed.parse::<Timestamp>().ok()
    };
    parsed.ok_or_else(|| {
        // A date is short and printable; anything else might be a token pasted into the
        // wrong field, so it is described rather than quoted.
        let shown = if trimmed.len() <= 40 && trimmed.chars().all(|c| c.is_ascii_graphic() || c == ' ')
        {
            format!("\"{trimmed}\"")
        } else {
            format!("the value ({} characters)", trimmed.chars().count())
        };
        format!(
            "{shown} is not a date: use RFC 3339 with an offset (2025-06-30T12:00:00Z) or YYYY-MM-DD (00:00 UTC)"
        )
    })
}

/// A declared expiry; `None` means the token never expires. Any instant in the year 9999
/// (`9999-12-31`, `9999-12-31T23:59:59Z`) is the usual way of writing "never" where a date is
/// required, and most of them lie past the last instant a timestamp holds, so the sentinel
/// year is read as never rather than refused or clamped to a date nobody meant. Pure.
pub fn parse_declared_expiry(value: &str) -> Result<Option<Timestamp>, String> {
    let trimmed = value.trim();
    let date_only = trimmed.len() == 10;
    let sentinel = jiff::fmt::temporal::Pieces::parse(trimmed)
        .ok()
        .filter(|p| date_only || (p.time().is_some() && p.offset().is_some()))
        .is_some_and(|p| p.date().year() == 9999);
    if sentinel {
        return Ok(None);
    }
    parse_declared(value).map(Some)
}

/// The outcome for declared dates at `now`. Pure.
pub fn evaluate(
    expires_at: Option<Timestamp>,
    issued_at: Option<Timestamp>,
    now: Timestamp,
) -> ProbeOutcome {
    let mut facts = TokenFacts {
        expiry: match expires_at {
            Some(at) => Expiry::At(at),
            None => Expiry::Never,
        },
        issued_at,
        ..TokenFacts::default()
    };
    facts.extra.insert("declared".into(), "true".into());
    if issued_at.is_some_and(|iat| iat > now) {
        facts
            .flags
            .push("the declared issue time lies in the future".into());
    }
    match expires_at {
        Some(at) if at <= now => ProbeOutcome::invalid(
            Reason::Expired,
            "the declared expiry has passed (declared in the config, not checked with a provider)",
        ),
        Some(_) => ProbeOutcome::new(
            Verdict::Valid,
            Reason::Ok,
            "the declared expiry has not passed (declared in the config, not checked with a provider)",
        ),
        None => ProbeOutcome::new(
            Verdict::Valid,
            Reason::Ok,
            "no expiry is declared (declared in the config, not checked with a provider)",
        ),
    }
    .with_facts(facts)
}

/// Adds what a source's listing stated beyond the dates (`last_used_at`, a sliding
/// window) to `facts`. A last use that is not a date is left out: sources check their dates
/// before they list a token, so only a hand-made spec reaches this with a bad one. Pure.
pub fn listed(params: &crate::schema::TokenParams, facts: &mut TokenFacts) {
    facts.last_used_at = params
        .last_used_at
        .as_deref()
        .and_then(|v| parse_declared(v).ok());
    if let Some(window_seconds) = params.sliding_window_seconds {
        facts.expiry_model = crate::model::ExpiryModel::Sliding { window_seconds };
    }
}

struct Static;

impl Provider for Static {
    fn probe<'a>(
        &'a self,
        token: &'a TokenSpec,
        _secret: &'a Secret,
        now: Timestamp,
    ) -> BoxFuture<'a, ProbeOutcome> {
        self.declared_outcome(token, now)
    }

    /// A static token is declared, not asked about: it needs no secret.
    fn probe_without_secret<'a>(
        &'a self,
        token: &'a TokenSpec,
        now: Timestamp,
    ) -> Option<BoxFuture<'a, ProbeOutcome>> {
        Some(self.declared_outcome(token, now))
    }
}

impl Static {
    fn declared_outcome<'a>(
        &'a self,
        token: &'a TokenSpec,
        now: Timestamp,
    ) -> BoxFuture<'a, ProbeOutcome> {
        Box::pin(async move {
            match declared(token) {
                Ok((expires_at, issued_at)) => {
                    let mut outcome = evaluate(expires_at, issued_at, now);
                    listed(&token.params, &mut outcome.facts);
                    outcome
                }
                // Config loading refuses bad dates, so this is only reached by a token that
                // bypassed it; it is our configuration's fault, not the token's.
                Err(e) => ProbeOutcome::misconfigured(Reason::Malformed, e),
            }
        })
    }
}

#[cfg(test)]
mod tests;
