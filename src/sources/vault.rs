//! `kind: vault`: Vault / OpenBao token accessors. `LIST /v1/auth/token/accessors` (sent as
//! `GET ...?list=true`, which Vault documents as the same call) returns every accessor in
//! one answer, without paging; then `POST /v1/auth/token/lookup-accessor` for each, which
//! reads the token's display name and metadata without its secret. Both with the source's
//! own credential in `X-Vault-Token`.
//!
//! The entries found are probed by the source's vault provider entry, by accessor, like a
//! configured `accessor:` token. An accessor is not echoed anywhere: the token's name is its
//! display name and a digest of the accessor (Vault's audit log hashes accessors too).

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::{Discovered, FailReason, Identity, ListError, Listing};
use crate::provider::BuildContext;
use crate::provider::http;
use crate::provider::vault::Config;
use crate::secret::SecretSource;

/// Lookups in flight at once, unless the provider entry allows fewer.
pub const LOOKUPS_AT_ONCE: usize = 8;

/// The answer of `LIST auth/token/accessors`.
#[derive(Deserialize)]
struct Keys {
    data: KeysData,
}

#[derive(Deserialize)]
struct KeysData {
    #[serde(default)]
    keys: Vec<String>,
}

/// What a lookup-accessor answer gives a listing.
#[derive(Deserialize)]
struct Lookup {
    data: LookupData,
}

#[derive(Deserialize)]
struct LookupData {
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    meta: Option<serde_json::Map<String, Value>>,
}

/// Lists the accessors of the server `vault` points at, for the entry `provider`.
pub async fn list(
    vault: &Config,
    provider: &str,
    credential: &SecretSource,
    timeout: Duration,
    ctx: &BuildContext,
) -> Result<Listing, ListError> {
    let base = vault
        .base_url()
        .map_err(|e| ListError::new(FailReason::Misconfigured, e))?;
    let secret = credential.read().await.map_err(|e| {
        ListError::new(
            FailReason::Misconfigured,
            format!("the source's credential cannot be read: {e}"),
        )
    })?;
    // Wiped when the listing ends; each request's header holds its own marked-sensitive copy.
    let token = zeroize::Zeroizing::new(secret.expose().to_string());
    let request = |builder: http::RequestBuilder| {
        let builder = builder.sensitive_header("x-vault-token", (*token).clone());
        match &vault.namespace {
            Some(ns) => builder.header("x-vault-namespace", ns.clone()),
            None => builder,
        }
    };
    let list = request(
        ctx.http
            .get(format!("{base}/v1/auth/token/accessors?list=true")),
    );
    let resp = send(list, timeout).await?;
    let keys = match resp.status {
        200 => {
            serde_json::from_slice::<Keys>(&resp.body)
                .map_err(|_| {
                    ListError::new(
                        FailReason::BadResponse,
                        "the accessor list is not the JSON Vault documents",
                    )
                })?
                .data
                .keys
        }
        // Vault answers a LIST with nothing under it 404 and an empty `errors`.
        404 if empty_errors(&resp.body) => Vec::new(),
        _ => return Err(status_error("listing accessors", &resp)),
    };
    let limit = vault
        .max_concurrency
        .unwrap_or(LOOKUPS_AT_ONCE)
        .clamp(1, LOOKUPS_AT_ONCE);
    let permits = Arc::new(Semaphore::new(limit));
    let mut tasks = tokio::task::JoinSet::new();
    for accessor in keys {
        let call = request(
            ctx.http
                .post(format!("{base}/v1/auth/token/lookup-accessor"))
                .json(&json!({ "accessor": accessor })),
        );
        let permits = permits.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (accessor, send(call, timeout).await)
        });
    }
    let mut listing = Listing::default();
    while let Some(done) = tasks.join_next().await {
        let Ok((accessor, answer)) = done else {
            return Err(ListError::new(FailReason::Unreachable, "a lookup stopped"));
        };
        let resp = answer?;
        match resp.status {
            200 => {}
            // Revoked or expired between the list and the lookup: not a token any more.
            400 if invalid_accessor(&resp.body) => {
                listing.skip("vanished");
                continue;
            }
            _ => return Err(status_error("looking up an accessor", &resp)),
        }
        let data = serde_json::from_slice::<Lookup>(&resp.body)
            .map_err(|_| {
                ListError::new(
                    FailReason::BadResponse,
                    "a lookup-accessor answer is not the JSON Vault documents",
                )
            })?
            .data;
        let owner = data
            .meta
            .as_ref()
            .and_then(|m| m.get("owner"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let display = if data.display_name.is_empty() {
            "token"
        } else {
            &data.display_name
        };
        listing.tokens.push(Discovered {
            name: format!("{display}-{}", digest(&accessor)),
            provider: provider.to_string(),
            secret: None,
            identity: Identity::Accessor {
                provider: provider.to_string(),
                accessor: accessor.clone(),
            },
            accessor: Some(accessor),
            expires_at: None,
            issued_at: None,
            last_used_at: None,
            sliding_window_seconds: None,
            owner,
            state: Some("active".into()),
        });
    }
    listing.tokens.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(listing)
}

/// The first 8 hex digits of the accessor's SHA-256: tells tokens with one display name
/// apart without showing the accessor.
pub fn digest(accessor: &str) -> String {
    let d = Sha256::digest(accessor.as_bytes());
    d[..4].iter().map(|b| format!("{b:02x}")).collect()
}

async fn send(
    request: http::RequestBuilder,
    timeout: Duration,
) -> Result<http::Response, ListError> {
    match tokio::time::timeout(timeout, http::send(request)).await {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(outcome)) => Err(ListError::new(FailReason::Unreachable, outcome.detail)),
        Err(_) => Err(ListError::new(
            FailReason::Unreachable,
            format!("no answer within {}", humantime::format_duration(timeout)),
        )),
    }
}

fn status_error(what: &str, resp: &http::Response) -> ListError {
    let status = resp.status;
    let reason = FailReason::of_status(status);
    let hint = match reason {
        FailReason::Unauthorized | FailReason::Forbidden => {
            ": the credential needs sudo and list on auth/token/accessors, update on auth/token/lookup-accessor"
        }
        _ => "",
    };
    ListError::of_answer(
        status,
        &resp.headers,
        format!("{what}: HTTP {status}{hint}"),
    )
}

fn errors(body: &[u8]) -> Option<Vec<String>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("errors")?
        .as_array()?
        .iter()
        .map(|e| e.as_str().map(str::to_string))
        .collect()
}

fn empty_errors(body: &[u8]) -> bool {
    errors(body).is_some_and(|e| e.is_empty())
}

/// Vault's and OpenBao's answer to an accessor that names no token.
fn invalid_accessor(body: &[u8]) -> bool {
    errors(body).is_some_and(|e| e.iter().any(|m| m.contains("invalid accessor")))
}
