//! `kind: docker_hub`: Docker Hub's access token lists (docs.docker.com/reference/api/hub,
//! "List personal access tokens" and the organization's "List access tokens"), read with a
//! bearer token the source obtains as Docker documents it: `POST /v2/auth/token` with the
//! account's Docker ID and its password or personal access token. That token request is the
//! only call that is not a read; the bearer (valid a few minutes) is dropped with the
//! listing.
//!
//! - `personal`: `GET /v2/access-tokens` (the signed-in account's own tokens);
//! - `org`: `GET /v2/orgs/{org}/access-tokens` (the organization's tokens; an owner may).
//!
//! Both are paged with `page` and `page_size` (100 asked), and each page names the `next`
//! page's URL, followed on the same origin only; at most [`MAX_PAGES`] pages a list. The page
//! body is read by `provider::docker_hub::parse_page`, which the probe uses too. No token
//! secret is read: each active token enters with the dates Docker Hub states (`expires_at`,
//! `created_at`, the last use) under the source's `static` entry; inactive and expired ones
//! are skipped (`inactive`).

use std::time::Duration;

use jiff::Timestamp;
use serde::Deserialize;

use super::{Discovered, FailReason, Identity, ListError, Listing, page};
use crate::config::sources::DockerHubSource;
use crate::provider::BuildContext;
use crate::provider::docker_hub::{AUTH_PATH, Exchange, parse_page};
use crate::provider::http;

/// The most pages read of one list (100 tokens each).
pub const MAX_PAGES: u32 = 200;

/// The page size asked for.
pub const PAGE_SIZE: u32 = 100;

/// A personal access token as `GET /v2/access-tokens` lists it (the value is redacted).
#[derive(Debug, Deserialize, PartialEq)]
pub struct Personal {
    pub uuid: String,
    #[serde(default)]
    pub token_label: Option<String>,
    pub is_active: bool,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub last_used: Option<String>,
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// An organization access token as `GET /v2/orgs/{name}/access-tokens` lists it.
#[derive(Debug, Deserialize, PartialEq)]
pub struct Organization {
    pub id: String,
    #[serde(default)]
    pub label: Option<String>,
    pub is_active: bool,
    #[serde(default)]
    pub created_by: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub last_used_at: Option<String>,
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// What the two records share, as the listing enters it.
struct Entry {
    id: String,
    label: String,
    active: bool,
    owner: Option<String>,
    created_at: Option<String>,
    last_used: Option<String>,
    expires_at: Option<String>,
}

impl From<Personal> for Entry {
    fn from(t: Personal) -> Self {
        Entry {
            id: t.uuid,
            label: t.token_label.unwrap_or_default(),
            active: t.is_active,
            owner: None,
            created_at: t.created_at,
            last_used: t.last_used,
            expires_at: t.expires_at,
        }
    }
}

impl From<Organization> for Entry {
    fn from(t: Organization) -> Self {
        Entry {
            id: t.id,
            label: t.label.unwrap_or_default(),
            active: t.is_active,
            owner: t.created_by,
            created_at: t.created_at,
            last_used: t.last_used_at,
            expires_at: t.expires_at,
        }
    }
}

/// Lists the account's and the organization's tokens, as `spec` asks.
pub async fn list(
    spec: &DockerHubSource,
    timeout: Duration,
    ctx: &BuildContext,
) -> Result<Listing, ListError> {
    let bearer = sign_in(spec, timeout, ctx).await?;
    let mut listing = Listing::default();
    let now = Timestamp::now();
    if spec.personal {
        let path = "/v2/access-tokens".to_string();
        let hint = ": the credential may not read the account's access tokens";
        for t in pages::<Personal>(spec, &path, &bearer, timeout, ctx, hint).await? {
            let owner = Some(spec.username.clone());
            enter(
                spec,
                &mut listing,
                "pat",
                &spec.username,
                owner,
                t.into(),
                now,
            )?;
        }
    }
    if let Some(org) = &spec.org {
        let path = format!("/v2/orgs/{org}/access-tokens");
        let hint = ": the credential's account must be an owner of the organization";
        for t in pages::<Organization>(spec, &path, &bearer, timeout, ctx, hint).await? {
            let t: Entry = t.into();
            let owner = t.owner.clone();
            enter(spec, &mut listing, "oat", org, owner, t, now)?;
        }
    }
    listing.tokens.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(listing)
}

/// Adds one listed token, or counts it skipped.
fn enter(
    spec: &DockerHubSource,
    listing: &mut Listing,
    tag: &str,
    under: &str,
    owner: Option<String>,
    t: Entry,
    now: Timestamp,
) -> Result<(), ListError> {
    let expires_at = page::date(t.expires_at, "a token's expires_at")?;
    let expired = expires_at
        .as_deref()
        .and_then(|e| crate::provider::r#static::parse_declared_expiry(e).ok())
        .flatten()
        .is_some_and(|e| e <= now);
    if !t.active || expired {
        listing.skip("inactive");
        return Ok(());
    }
    listing.tokens.push(Discovered {
        name: format!("{under}/{}-{}", t.label, t.id),
        provider: spec.provider.clone(),
        secret: None,
        accessor: None,
        owner,
        state: Some("active".into()),
        identity: Identity::Listed(format!("docker_hub:{}:{tag}:{}", spec.url, t.id)),
        expires_at,
        issued_at: page::date(t.created_at, "a token's created_at")?,
        last_used_at: page::date(t.last_used, "a token's last use")?,
        sliding_window_seconds: None,
    });
    Ok(())
}

/// The bearer token for the listing: Docker's documented exchange of the account's Docker
/// ID and its password or personal access token. Returned as the `Authorization` value,
/// wiped when the listing drops it; the answer's bytes are wiped at once.
async fn sign_in(
    spec: &DockerHubSource,
    timeout: Duration,
    ctx: &BuildContext,
) -> Result<zeroize::Zeroizing<String>, ListError> {
    let secret = spec.credential.read().await.map_err(|e| {
        ListError::new(
            FailReason::Misconfigured,
            format!("the source's credential cannot be read: {e}"),
        )
    })?;
    let request = ctx
        .http
        .post(http::join(&spec.url, AUTH_PATH))
        .header("accept", http::JSON)
        .json(&Exchange {
            identifier: &spec.username,
            secret: secret.expose().trim(),
        });
    drop(secret);
    let hint = ": Docker Hub refused the username and credential";
    let mut resp = page::send(request, timeout, "the sign-in", hint).await?;
    let bearer = crate::provider::docker_hub::bearer(&resp.body).map_err(|_| {
        ListError::new(
            FailReason::BadResponse,
            "the sign-in answer is not the documented JSON with an access_token",
        )
    });
    zeroize::Zeroize::zeroize(&mut resp.body);
    Ok(zeroize::Zeroizing::new(format!(
        "Bearer {}",
        bearer?.expose()
    )))
}

/// Every page of one list, following `next` on the server's own origin.
async fn pages<T: serde::de::DeserializeOwned>(
    spec: &DockerHubSource,
    path: &str,
    bearer: &zeroize::Zeroizing<String>,
    timeout: Duration,
    ctx: &BuildContext,
    hint: &str,
) -> Result<Vec<T>, ListError> {
    let first = format!("{}{path}?page=1&page_size={PAGE_SIZE}", spec.url);
    let mut url = first.clone();
    let mut out = Vec::new();
    for page_no in 1..=MAX_PAGES {
        let request = ctx
            .http
            .get(url.as_str())
            .sensitive_header("authorization", (**bearer).clone())
            .header("accept", http::JSON);
        let what = format!("page {page_no} of a token list");
        let resp = page::send(request, timeout, &what, hint).await?;
        let (items, next) = parse_page::<T>(&resp.body).map_err(|e| {
            ListError::new(
                FailReason::BadResponse,
                format!("page {page_no} of a token list is not the documented JSON ({e})"),
            )
        })?;
        out.extend(items);
        match next {
            None => return Ok(out),
            // The next page on another origin would take the bearer there.
            Some(next) => match http::pages::next_on_origin(&first, &url, &next) {
                Some(next) => url = next,
                None => {
                    return Err(ListError::new(
                        FailReason::BadResponse,
                        "a next link leads away from the server",
                    ));
                }
            },
        }
    }
    Err(page::too_long(MAX_PAGES))
}

#[cfg(test)]
mod tests;
