//! `github_app`: a new installation token (`ghs_`, one hour) minted from the app's private
//! key, the same way the `github` discovery source mints its own (its JWT signer is reused):
//! the app JWT (RS256, `iat` 60 s back, `exp` 9 minutes ahead, `iss` the app), then
//! `POST /app/installations/{id}/access_tokens`, optionally narrowed to repositories and
//! permissions. The old token is not revoked: it ends at its own expiry within the hour
//! (`DELETE /installation/token` would cut off a consumer still finishing with it, for no
//! gain). The reader is pure; errors name a status and a fixed meaning, never a value.

use jiff::Timestamp;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::provider::ProviderConfig;
use crate::provider::github::API_VERSION;
use crate::provider::http::{self, Response};
use crate::schema::rotate::GithubApp;
use crate::sources::FailReason;
use crate::sources::github::{app_jwt, failure, signing_key};

use super::super::machine::Pending;
use super::unreachable;

/// The path of the mint call for `installation_id`.
pub fn mint_path(installation_id: u64) -> String {
    format!("/app/installations/{installation_id}/access_tokens")
}

/// The body of the mint call: `{}` for a token with everything the installation has, or
/// the narrowing asked for.
pub fn mint_body(app: &GithubApp) -> serde_json::Value {
    let mut body = serde_json::json!({});
    if !app.repositories.is_empty() {
        body["repositories"] = serde_json::json!(app.repositories);
    }
    if !app.permissions.is_empty() {
        body["permissions"] = serde_json::json!(app.permissions);
    }
    body
}

/// Signs the app JWT and mints the token. Idempotent in effect: a token whose answer is
/// lost expires within the hour, so a crash before the answer is saved mints again.
pub async fn create(
    app: &GithubApp,
    provider: &ProviderConfig,
    now: Timestamp,
) -> Result<Pending, String> {
    let ProviderConfig::Github(config) = provider else {
        return Err("github_app needs a github provider".into());
    };
    let (_, base) = config.api()?;
    let pem = app
        .private_key
        .read()
        .await
        .map_err(|e| format!("cannot read the GitHub App's private_key: {e}"))?;
    let key = signing_key(pem.expose())?;
    let jwt = Zeroizing::new(app_jwt(&key, &app.app_id, now)?);
    let request = http::client()
        .post(http::join(base, &mint_path(app.installation_id)))
        .bearer_auth(jwt.as_str())
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", API_VERSION)
        .json(&mint_body(app));
    let answer = http::send(request).await.map_err(unreachable)?;
    parse_minted(&answer)
}

#[derive(Deserialize)]
struct Minted {
    token: Option<String>,
    expires_at: Option<String>,
}

/// Reads GitHub's answer to the mint call (201 with `token` and `expires_at`). Pure.
pub fn parse_minted(answer: &Response) -> Result<Pending, String> {
    match failure(answer.status, &answer.headers, &answer.body) {
        None if answer.status == 201 => {}
        None => {
            return Err(format!(
                "GitHub answered the installation token request with status {} where it documents 201",
                answer.status
            ));
        }
        Some(FailReason::RateLimited) => {
            return Err(format!(
                "GitHub is rate limiting the installation token request ({})",
                answer.status
            ));
        }
        Some(_) => {
            return Err(match answer.status {
                401 => "GitHub refused the app JWT (401: check app_id, the private key, and the clock)".into(),
                403 => "GitHub refused the installation token (403: the installation is suspended, or the app lacks a permission asked for)".into(),
                404 => "GitHub knows no such installation of this app (404: check installation_id)".into(),
                422 => "GitHub refused the narrowing (422: a repository or permission the installation does not have)".into(),
                s => format!("GitHub answered the installation token request with status {s}"),
            });
        }
    }
    let parsed: Minted = serde_json::from_slice(&answer.body)
        .map_err(|_| "GitHub's installation token answer is not the documented JSON".to_string())?;
    // `ghs_` opens every installation token, the stateless `ghs_APPID_JWT` form too; its
    // length is not fixed.
    let value = parsed
        .token
        .filter(|t| t.starts_with("ghs_") && t.len() > 4 && !t.contains(char::is_whitespace))
        .ok_or("GitHub's installation token answer has no ghs_ token")?;
    let expires_at = parsed
        .expires_at
        .and_then(|e| e.parse::<Timestamp>().ok())
        .ok_or("GitHub's installation token answer has no expires_at time")?;
    Ok(Pending {
        value: Some(value),
        expires_at: Some(expires_at),
        ..Pending::default()
    })
}

#[cfg(test)]
mod tests;
