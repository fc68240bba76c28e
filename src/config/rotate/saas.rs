//! Validation of the `cloudflare_roll` and `slack_refresh` rotators (their shape in
//! [`crate::schema::rotate`]). Neither provider tells an expiry a rotation could be planned
//! from: a Cloudflare roll keeps the token's `expires_on`, and Slack's `auth.test` does not
//! say when a rotating token ends. Both rotate by age (`max_age`).

use std::path::PathBuf;
use std::time::Duration;

use crate::config::TokenSpec;
use crate::schema::rotate::{RawRotator, Rotator, SlackRefresh, When};

use super::Check;

/// How long Slack's rotating access tokens live (`expires_in: 43200`).
pub const SLACK_TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

pub(super) fn cloudflare_roll(
    c: &mut Check,
    token: &TokenSpec,
    at_line: Option<u64>,
    r: RawRotator,
) -> Option<Rotator> {
    if token.secret.is_none() {
        c.push(
            "rotator",
            "cloudflare_roll replaces the token's value, so the token needs a secret (where the new value is read)",
            at_line,
        );
        return None;
    }
    Some(Rotator::CloudflareRoll {
        credential: r.credential,
    })
}

pub(super) fn slack_refresh(
    c: &mut Check,
    token: &TokenSpec,
    at_line: Option<u64>,
    r: RawRotator,
) -> Option<Rotator> {
    if token.secret.is_none() {
        c.push(
            "rotator",
            "slack_refresh replaces the token's value, so the token needs a secret (where the new value is read)",
            at_line,
        );
        return None;
    }
    let Some(client_id) = r.client_id.filter(|s| !s.value.trim().is_empty()) else {
        c.push(
            "rotator.client_id",
            "slack_refresh needs client_id (the app's Client ID, under Basic Information)",
            at_line,
        );
        return None;
    };
    let Some(client_secret) = r.client_secret else {
        c.push(
            "rotator.client_secret",
            "slack_refresh needs client_secret (the app's Client Secret), e.g. {file: PATH} or {env: NAME}",
            at_line,
        );
        return None;
    };
    let Some(file) = r.refresh_token_file.filter(|s| !s.value.trim().is_empty()) else {
        c.push(
            "rotator.refresh_token_file",
            "slack_refresh needs refresh_token_file: the file that holds the refresh token (xoxe-1-...), replaced by each new one",
            at_line,
        );
        return None;
    };
    Some(Rotator::SlackRefresh(Box::new(SlackRefresh {
        client_id: client_id.value,
        client_secret,
        refresh_token_file: PathBuf::from(file.value),
    })))
}

/// Both rotators rotate by age only: a plan from the expiry would roll a Cloudflare token
/// again after every answer (a roll keeps `expires_on`), and never rotate a Slack token
/// (`auth.test` tells no expiry).
pub(super) fn check_when(c: &mut Check, rotator: &Rotator, when: &When, block_line: Option<u64>) {
    match (rotator, when) {
        (Rotator::CloudflareRoll { .. }, When::MaxAge(_)) => {}
        (Rotator::CloudflareRoll { .. }, _) => c.push(
            "max_age",
            "cloudflare_roll keeps the token's expires_on, so a plan from the expiry would roll it again after every answer: say how old the value may get (max_age: 30d)",
            block_line,
        ),
        (Rotator::SlackRefresh(_), When::MaxAge(age)) if *age >= SLACK_TOKEN_LIFETIME => c.push(
            "max_age",
            "must be under 12h: Slack's rotating access tokens expire 12 hours after they are issued (e.g. max_age: 10h)",
            block_line,
        ),
        (Rotator::SlackRefresh(_), When::MaxAge(_)) => {}
        (Rotator::SlackRefresh(_), _) => c.push(
            "max_age",
            "Slack's auth.test does not tell when a rotating token expires, so a plan from the expiry would never run: say how old the access token may get, under Slack's 12 hours (max_age: 10h)",
            block_line,
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
