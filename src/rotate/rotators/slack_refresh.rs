//! `slack_refresh`: Slack's token rotation. `POST {url}/api/oauth.v2.access` with
//! `grant_type=refresh_token` and the refresh token from `refresh_token_file`, the app's
//! client ID and secret sent with HTTP Basic (Slack's advice over form parameters). Slack
//! answers a new 12-hour access token (`xoxe.xoxb-...` or `xoxe.xoxp-...`), a new refresh
//! token and `expires_in`; the refresh token used is spent, so the call is never repeated
//! after a crash (`Rotator::idempotent`). Slack answers failures with HTTP 200 and
//! `{"ok":false,"error":"<code>"}`: only documented codes are named in an error.

use jiff::Timestamp;
use serde::Deserialize;

use crate::provider::ProviderConfig;
use crate::provider::http::{self, Response};
use crate::schema::rotate::SlackRefresh;

use super::super::machine::Pending;
use super::{basic_auth, expires_after, read_refresh_token, unreachable};

/// The method, below the Web API base (`{url}/api`).
pub const METHOD_PATH: &str = "/oauth.v2.access";

/// Exchanges the refresh token for a new pair.
pub async fn refresh(
    s: &SlackRefresh,
    provider: &ProviderConfig,
    now: Timestamp,
) -> Result<Pending, String> {
    let ProviderConfig::Slack(config) = provider else {
        return Err("slack_refresh needs a slack provider".into());
    };
    let (_, base) = config.api_base()?;
    let refresh = read_refresh_token(&s.refresh_token_file).await?;
    let secret = s
        .client_secret
        .read()
        .await
        .map_err(|e| format!("cannot read client_secret: {e}"))?;
    let request = http::client()
        .post(http::join(&base, METHOD_PATH))
        .header("authorization", basic_auth(&s.client_id, secret.expose()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.expose()),
        ]);
    let answer = http::send(request).await.map_err(unreachable)?;
    parse_refresh(&answer, now)
}

#[derive(Deserialize)]
struct Answer {
    ok: Option<bool>,
    error: Option<String>,
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<serde_json::Value>,
    authed_user: Option<AuthedUser>,
}

#[derive(Deserialize)]
struct AuthedUser {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<serde_json::Value>,
}

/// What each documented error of `oauth.v2.access` means for a refresh.
fn explain(code: &str) -> Option<&'static str> {
    Some(match code {
        "invalid_refresh_token" => {
            "the refresh token is not valid: spent by an earlier refresh, revoked, or from another app; reinstall the app or put a current refresh token in refresh_token_file"
        }
        "invalid_client_id" => "client_id is not the app's Client ID",
        "bad_client_secret" => "client_secret is not the app's Client Secret",
        "invalid_grant_type" => "Slack does not take the refresh_token grant here",
        "token_rotation_not_enabled" => "the app does not have token rotation turned on",
        "ratelimited" => "Slack is rate limiting",
        "accesslimited" => "Slack limits this method on the exporter's network",
        "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" => {
            "Slack could not answer; try again later"
        }
        "team_added_to_org" => "the workspace is migrating to an Enterprise organization",
        "invalid_arguments" | "invalid_form_data" | "invalid_arg_name" | "invalid_charset"
        | "invalid_post_type" | "missing_post_type" => "Slack could not read the request",
        _ => return None,
    })
}

/// Reads Slack's answer. Pure. An error names a documented code only, never Slack's text
/// or a value.
pub fn parse_refresh(answer: &Response, now: Timestamp) -> Result<Pending, String> {
    match answer.status {
        200 => {}
        429 => return Err("slack is rate limiting (429)".into()),
        s @ 500..=599 => return Err(format!("the provider cannot be reached (status {s})")),
        s => return Err(format!("slack answered the refresh with status {s}")),
    }
    let parsed: Answer = serde_json::from_slice(&answer.body)
        .map_err(|_| "slack's refresh answer is not the documented JSON".to_string())?;
    match parsed.ok {
        Some(true) => {}
        Some(false) => {
            let code = parsed.error.as_deref().unwrap_or_default();
            return Err(match explain(code) {
                Some(meaning) => format!("slack refused the refresh ({code}: {meaning})"),
                None => "slack refused the refresh (an unrecognised error code)".into(),
            });
        }
        None => return Err("slack's refresh answer has no boolean \"ok\"".into()),
    }
    // A bot token's pair is at the top level; a user token's may come under authed_user.
    let (access, refresh, expires_in) = match (parsed.access_token, parsed.authed_user) {
        (Some(a), _) => (Some(a), parsed.refresh_token, parsed.expires_in),
        (None, Some(u)) => (u.access_token, u.refresh_token, u.expires_in),
        (None, None) => (None, None, None),
    };
    let usable = |t: &String| !t.is_empty() && t.chars().all(|c| c.is_ascii_graphic());
    let access = access
        .filter(usable)
        .ok_or("slack's refresh answer has no access_token")?;
    Ok(Pending {
        value: Some(access),
        refresh_token: refresh.filter(usable),
        expires_at: expires_after(expires_in, now),
        ..Pending::default()
    })
}

#[cfg(test)]
mod tests;
