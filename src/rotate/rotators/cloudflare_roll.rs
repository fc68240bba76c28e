//! `cloudflare_roll`: `PUT {url}/client/v4/user/tokens/{id}/value` (an account-owned token:
//! `/accounts/{account_id}/tokens/{id}/value`) with the body `{}`, authenticated by a
//! credential holding "API Tokens Write" (the rotator's `credential`, else the token itself).
//! Cloudflare answers the new value as `result` and the old value stops working at once, so
//! the answer is saved before anything else and the call is never repeated after a crash
//! (`Rotator::idempotent`): a second roll would discard the first new value.
//!
//! The token's id and owner come from its latest verify answer (`result.id`, and which
//! endpoint accepted it), never from the config: the id then always names the token whose
//! value is in use, and a typo cannot roll another token with a powerful credential.

use serde::Deserialize;

use crate::model::TokenFacts;
use crate::provider::ProviderConfig;
use crate::provider::http::{self, Response};
use crate::schema::TokenSpec;
use crate::secret::SecretSource;

use super::super::machine::Pending;
use super::{read_secret, unreachable};

/// Cloudflare's token ids: 32 characters (`maxLength: 32`), letters and digits. The id
/// becomes a path segment, so nothing else is accepted.
fn checked_id(id: &str) -> Result<&str, String> {
    if id.is_empty() || id.len() > 32 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err("the token id in the verify answer is not a Cloudflare id".into());
    }
    Ok(id)
}

/// The API path of the roll for the token the facts describe. Pure.
pub fn roll_path(facts: &TokenFacts, account_id: Option<&str>) -> Result<String, String> {
    let id = facts.extra.get("token_id").ok_or(
        "the token's id is not known yet: no verify answer has given result.id (it is rolled after Cloudflare has accepted it once)",
    )?;
    let id = checked_id(id)?;
    match (facts.extra.get("owner").map(String::as_str), account_id) {
        (Some("account"), Some(account)) => Ok(format!("/accounts/{account}/tokens/{id}/value")),
        (Some("account"), None) => {
            Err("the token is account-owned but the provider has no account_id".into())
        }
        _ => Ok(format!("/user/tokens/{id}/value")),
    }
}

/// Rolls the token's value. `facts`: the latest verify answer's.
pub async fn roll(
    credential: Option<&SecretSource>,
    token: &TokenSpec,
    provider: &ProviderConfig,
    facts: &TokenFacts,
) -> Result<Pending, String> {
    let ProviderConfig::Cloudflare(config) = provider else {
        return Err("cloudflare_roll needs a cloudflare provider".into());
    };
    let (_, base) = config.api_base()?;
    let path = roll_path(facts, config.account_id.as_deref())?;
    let credential = match credential {
        Some(source) => source
            .read()
            .await
            .map_err(|e| format!("cannot read the rotator's credential: {e}"))?,
        None => read_secret(token).await?,
    };
    let request = http::client()
        .put(http::join(&base, &path))
        .bearer_auth(credential.expose())
        .header(reqwest::header::ACCEPT, http::JSON)
        .json(&serde_json::json!({}));
    let answer = http::send(request).await.map_err(unreachable)?;
    parse_roll(&answer)
}

#[derive(Deserialize)]
struct Envelope {
    success: Option<bool>,
    #[serde(default)]
    errors: Vec<ErrorItem>,
    result: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ErrorItem {
    code: Option<i64>,
}

/// Reads Cloudflare's roll answer: the v4 envelope with the new value as `result`. Pure.
/// An error names the status and Cloudflare's numeric error codes, never a message text.
pub fn parse_roll(answer: &Response) -> Result<Pending, String> {
    let envelope = serde_json::from_slice::<Envelope>(&answer.body).ok();
    let codes = envelope
        .as_ref()
        .map(|e| {
            e.errors
                .iter()
                .filter_map(|i| i.code)
                .take(8)
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "none".into());
    match answer.status {
        200 => {}
        400 => return Err(format!("cloudflare refused the roll (400, errors {codes})")),
        401 | 403 => {
            return Err(format!(
                "cloudflare refused the roll ({}: the credential is not accepted or lacks the API Tokens Write permission; errors {codes})",
                answer.status
            ));
        }
        404 => {
            return Err(format!(
                "cloudflare does not know the token id (404, errors {codes})"
            ));
        }
        429 => return Err("cloudflare is rate limiting (429)".into()),
        s @ 500..=599 => {
            return Err(format!("the provider cannot be reached (status {s})"));
        }
        s => return Err(format!("cloudflare answered the roll with status {s}")),
    }
    let envelope = envelope.ok_or("cloudflare's roll answer is not the documented JSON")?;
    if envelope.success != Some(true) {
        return Err(format!(
            "cloudflare's roll answer says it did not succeed (errors {codes})"
        ));
    }
    let value = match envelope.result {
        Some(serde_json::Value::String(v))
            if !v.is_empty() && v.chars().all(|c| c.is_ascii_graphic()) =>
        {
            v
        }
        _ => return Err("cloudflare's roll answer has no token value in result".into()),
    };
    Ok(Pending {
        value: Some(value),
        // A roll keeps the token's expires_on; the next verify answer tells it.
        expires_at: None,
        ..Pending::default()
    })
}

#[cfg(test)]
mod tests;
