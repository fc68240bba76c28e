//! The rotators: the one provider call of a rotation's create step. Each is the only place
//! that calls its endpoint, and only for a token with a `rotate:` block. Errors are fixed
//! words with a status or a documented error code, never a provider's free text or a value.

use base64::Engine;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use crate::model::{Expiry, TokenFacts};
use crate::provider::ProviderConfig;
use crate::provider::http::{self, Response};
use crate::schema::TokenSpec;
use crate::schema::rotate::{Endpoint, Oauth2Refresh, Rotator};
use crate::secret::{FileSource, Secret, SecretSource};

use super::machine::Pending;

pub mod aws;
pub mod cloudflare_roll;
pub mod entra_id_password;
pub mod github_app;
pub mod slack_refresh;

/// Asks the provider for a renewal or a new value. `facts`: what the store knows, to tell
/// a renewal that extended nothing.
pub async fn create(
    rotator: &Rotator,
    token: &TokenSpec,
    provider: &ProviderConfig,
    facts: &TokenFacts,
    now: Timestamp,
) -> Result<Pending, String> {
    let work = async {
        match rotator {
            Rotator::VaultRenew { increment } => {
                vault_renew(token, provider, *increment, facts, now).await
            }
            Rotator::Oauth2Refresh(o) => oauth2_refresh(o, now).await,
            Rotator::GitlabRotate { expires_in } => {
                gitlab_rotate(token, provider, *expires_in, now).await
            }
            Rotator::AwsRotate { .. } => aws::create(token, provider, now).await,
            Rotator::CloudflareRoll { credential } => {
                cloudflare_roll::roll(credential.as_ref(), token, provider, facts).await
            }
            Rotator::SlackRefresh(s) => slack_refresh::refresh(s, provider, now).await,
            Rotator::GithubApp(app) => github_app::create(app, provider, now).await,
            Rotator::EntraIdPassword(e) => entra_id_password::create(e, token, provider, now).await,
        }
    };
    tokio::time::timeout(token.probe_timeout, work)
        .await
        .unwrap_or_else(|_| Err("the provider did not answer in time (probe_timeout)".into()))
}

fn unreachable(o: crate::model::ProbeOutcome) -> String {
    format!("the provider cannot be reached ({})", o.reason.as_str())
}

/// `POST /v1/auth/token/renew-self` with the token itself. The value stays the same.
async fn vault_renew(
    token: &TokenSpec,
    provider: &ProviderConfig,
    increment: Option<std::time::Duration>,
    facts: &TokenFacts,
    now: Timestamp,
) -> Result<Pending, String> {
    let ProviderConfig::Vault(config) = provider else {
        return Err("vault_renew needs a vault provider".into());
    };
    let base = config
        .url
        .as_deref()
        .or(config.address.as_deref())
        .unwrap_or(crate::provider::vault::DEFAULT_URL);
    let secret = read_secret(token).await?;
    let body = match increment {
        Some(d) => serde_json::json!({ "increment": format!("{}s", d.as_secs()) }),
        None => serde_json::json!({}),
    };
    let mut request = http::client()
        .post(http::join(base, "/v1/auth/token/renew-self"))
        .header("x-vault-token", secret.expose())
        .json(&body);
    if let Some(ns) = &config.namespace {
        request = request.header("x-vault-namespace", ns.as_str());
    }
    let answer = http::send(request).await.map_err(unreachable)?;
    parse_vault_renew(&answer, facts, now)
}

#[derive(Deserialize)]
struct VaultAnswer {
    auth: Option<VaultAuth>,
}

#[derive(Deserialize)]
struct VaultAuth {
    lease_duration: Option<i64>,
}

/// Reads a renew-self answer. Pure. A renewal that does not move the expiry past the one
/// known (the token's max TTL reached) is a failure: it would be "renewed" again each round.
pub fn parse_vault_renew(
    answer: &Response,
    facts: &TokenFacts,
    now: Timestamp,
) -> Result<Pending, String> {
    match answer.status {
        200 => {}
        400 => return Err("vault refused the renewal (400: not renewable or past its max TTL)".into()),
        403 => return Err("vault refused the renewal (403: the token is invalid or its policy does not allow renew-self)".into()),
        429 => return Err("vault is rate limiting (429)".into()),
        503 => return Err("vault is sealed or in standby (503)".into()),
        s => return Err(format!("vault answered the renewal with status {s}")),
    }
    let parsed: VaultAnswer = serde_json::from_slice(&answer.body)
        .map_err(|_| "vault's renewal answer is not the documented JSON".to_string())?;
    let lease = parsed
        .auth
        .and_then(|a| a.lease_duration)
        .ok_or("vault's renewal answer has no auth.lease_duration")?;
    if lease <= 0 {
        // A root or periodic-less token without a TTL: nothing to renew.
        return Err("vault says the token has no TTL: it needs no renewal".into());
    }
    let expires = now
        .checked_add(SignedDuration::from_secs(lease))
        .map_err(|_| "vault's lease_duration is out of range")?;
    // Vault rounds lease_duration to whole seconds: an answer within that of the expiry
    // known already extended nothing.
    if let Expiry::At(old) = facts.expiry
        && expires.as_second() <= old.as_second() + 2
    {
        return Err("the renewal did not extend the expiry (the token's max TTL is reached): it needs a new token".into());
    }
    Ok(Pending {
        value: None,
        refresh_token: None,
        expires_at: Some(expires),
        ..Pending::default()
    })
}

async fn read_secret(token: &TokenSpec) -> Result<Secret, String> {
    let source = token.secret.as_ref().ok_or("the token has no secret")?;
    source
        .read()
        .await
        .map_err(|e| format!("cannot read the token's secret: {e}"))
}

/// RFC 6749 §6: `grant_type=refresh_token` at the token endpoint.
async fn oauth2_refresh(o: &Oauth2Refresh, now: Timestamp) -> Result<Pending, String> {
    let endpoint = match &o.endpoint {
        Endpoint::Token(url) => url.clone(),
        Endpoint::Issuer(issuer) => discover_token_endpoint(issuer).await?,
    };
    let refresh = read_refresh_token(&o.refresh_token_file).await?;
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.expose()),
    ];
    if let Some(scope) = &o.scope {
        form.push(("scope", scope));
    }
    let mut request = http::client().post(endpoint.as_str());
    match &o.client_secret {
        Some(source) => {
            let secret = source
                .read()
                .await
                .map_err(|e| format!("cannot read client_secret: {e}"))?;
            request = request.header("authorization", basic_auth(&o.client_id, secret.expose()));
            let answer = http::send(request.form(&form)).await.map_err(unreachable)?;
            parse_refresh(&answer, now)
        }
        None => {
            form.push(("client_id", &o.client_id));
            let answer = http::send(request.form(&form)).await.map_err(unreachable)?;
            parse_refresh(&answer, now)
        }
    }
}

/// The refresh token a grant spends, from the rotator's own file (read before each grant:
/// the last grant replaced it).
async fn read_refresh_token(path: &std::path::Path) -> Result<Secret, String> {
    SecretSource::File(FileSource::new(path))
        .read()
        .await
        .map_err(|e| format!("cannot read the refresh token: {e}"))
}

/// A token answer's `expires_in` (seconds) as the time the token ends; none when it is
/// absent, not a positive whole number, or out of range.
fn expires_after(expires_in: Option<serde_json::Value>, now: Timestamp) -> Option<Timestamp> {
    match expires_in {
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .filter(|s| *s > 0)
            .and_then(|s| now.checked_add(SignedDuration::from_secs(s)).ok()),
        _ => None,
    }
}

/// RFC 6749 section 2.3.1: id and secret are form-urlencoded before base64.
fn basic_auth(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let raw = format!("{}:{}", enc(id), enc(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

async fn discover_token_endpoint(issuer: &str) -> Result<String, String> {
    let url = http::join(issuer, "/.well-known/openid-configuration");
    let answer = http::send(http::client().get(url.as_str()))
        .await
        .map_err(unreachable)?;
    if answer.status != 200 {
        return Err(format!(
            "discovery of the token endpoint failed (status {})",
            answer.status
        ));
    }
    #[derive(Deserialize)]
    struct Metadata {
        token_endpoint: Option<String>,
    }
    let meta: Metadata = serde_json::from_slice(&answer.body)
        .map_err(|_| "the discovery document is not JSON".to_string())?;
    let endpoint = meta
        .token_endpoint
        .ok_or("the discovery document has no token_endpoint")?;
    http::check_base_url("token_endpoint", &endpoint)?;
    Ok(endpoint)
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: Option<String>,
}

/// Reads a token endpoint's answer. Pure. An error names only a documented RFC 6749 code.
pub fn parse_refresh(answer: &Response, now: Timestamp) -> Result<Pending, String> {
    if answer.status != 200 {
        let code = serde_json::from_slice::<ErrorAnswer>(&answer.body)
            .ok()
            .and_then(|e| e.error)
            .map(|c| crate::provider::oauth2::safe_code(&c))
            .unwrap_or_else(|| "none".into());
        return Err(format!(
            "the token endpoint refused the refresh (status {}, error {code})",
            answer.status
        ));
    }
    let parsed: TokenAnswer = serde_json::from_slice(&answer.body)
        .map_err(|_| "the token endpoint's answer is not the documented JSON".to_string())?;
    let access = parsed
        .access_token
        .filter(|a| !a.trim().is_empty())
        .ok_or("the token endpoint's answer has no access_token")?;
    Ok(Pending {
        value: Some(access),
        refresh_token: parsed.refresh_token.filter(|r| !r.trim().is_empty()),
        expires_at: expires_after(parsed.expires_in, now),
        ..Pending::default()
    })
}

/// `POST {url}/api/v4/personal_access_tokens/self/rotate` with the token itself, sent as
/// `PRIVATE-TOKEN`. GitLab revokes the old token at once; using it to rotate again would
/// revoke the new one too (reuse detection), which is why this call is never repeated after
/// a crash (see `Rotator::idempotent`).
async fn gitlab_rotate(
    token: &TokenSpec,
    provider: &ProviderConfig,
    expires_in: Option<std::time::Duration>,
    now: Timestamp,
) -> Result<Pending, String> {
    let ProviderConfig::Gitlab(config) = provider else {
        return Err("gitlab_rotate needs a gitlab provider".into());
    };
    let base = config
        .url
        .as_deref()
        .unwrap_or(crate::provider::gitlab::DEFAULT_URL);
    let secret = read_secret(token).await?;
    let mut request = http::client()
        .post(http::join(
            base,
            "/api/v4/personal_access_tokens/self/rotate",
        ))
        .header("private-token", secret.expose());
    if let Some(d) = expires_in {
        let date = now
            .checked_add(SignedDuration::from_secs(d.as_secs() as i64))
            .map_err(|_| "expires_in is out of range")?
            .strftime("%Y-%m-%d")
            .to_string();
        request = request.json(&serde_json::json!({ "expires_at": date }));
    }
    let answer = http::send(request).await.map_err(unreachable)?;
    parse_gitlab_rotate(&answer)
}

#[derive(Deserialize)]
struct GitlabToken {
    token: Option<String>,
    expires_at: Option<String>,
}

/// Reads GitLab's rotate answer (the token's JSON with its new `token`). Pure.
pub fn parse_gitlab_rotate(answer: &Response) -> Result<Pending, String> {
    match answer.status {
        200 => {}
        400 => return Err("gitlab refused the rotation (400: the expiry is not allowed, e.g. past the instance's maximum lifetime)".into()),
        401 => return Err("gitlab refused the rotation (401: the token is revoked, expired or unknown)".into()),
        403 => return Err("gitlab refused the rotation (403: the token lacks the api or self_rotate scope)".into()),
        404 => return Err("gitlab has no token rotation API here (404: GitLab 16.10 or later is needed)".into()),
        429 => return Err("gitlab is rate limiting (429)".into()),
        s => return Err(format!("gitlab answered the rotation with status {s}")),
    }
    let parsed: GitlabToken = serde_json::from_slice(&answer.body)
        .map_err(|_| "gitlab's rotation answer is not the documented JSON".to_string())?;
    let value = parsed
        .token
        .filter(|t| !t.trim().is_empty())
        .ok_or("gitlab's rotation answer has no token")?;
    let expires_at = parsed.expires_at.and_then(|d| {
        d.parse::<jiff::civil::Date>()
            .ok()?
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp())
    });
    Ok(Pending {
        value: Some(value),
        refresh_token: None,
        expires_at,
        ..Pending::default()
    })
}

#[cfg(test)]
mod tests;
