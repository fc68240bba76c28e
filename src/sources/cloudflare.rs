//! `kind: cloudflare`: Cloudflare's API token lists (developers.cloudflare.com/api,
//! "List Tokens" under user and under accounts), read with the source's credential as a
//! bearer token:
//!
//! - `user`: `GET /client/v4/user/tokens` (the tokens the credential's user created;
//!   permission "API Tokens Read");
//! - `account_id`: `GET /client/v4/accounts/{account_id}/tokens` (the account's own tokens;
//!   permission "Account API Tokens Read").
//!
//! Both are paged with `page` and `per_page` (at most 50) and state the page count in the
//! envelope's `result_info.total_pages`; at most [`MAX_PAGES`] pages a list. No token secret
//! is read: each active token enters with the dates Cloudflare states (`expires_on`,
//! `issued_on`) under the source's `static` entry; disabled and expired ones are skipped
//! (`inactive`).

use std::time::Duration;

use serde::Deserialize;

use super::{Discovered, FailReason, Identity, ListError, Listing, page};
use crate::config::sources::CloudflareSource;
use crate::provider::BuildContext;

/// The most pages read of one list (50 tokens each).
pub const MAX_PAGES: u32 = 200;

/// The largest page Cloudflare serves for these lists.
pub const PER_PAGE: usize = 50;

/// One token as Cloudflare lists it.
#[derive(Debug, Deserialize, PartialEq)]
pub struct Token {
    pub id: String,
    pub name: String,
    pub status: String,
    #[serde(default)]
    pub issued_on: Option<String>,
    #[serde(default)]
    pub expires_on: Option<String>,
    #[serde(default)]
    pub last_used_on: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    success: bool,
    #[serde(default)]
    result: Option<Vec<Token>>,
    #[serde(default)]
    result_info: Option<ResultInfo>,
}

#[derive(Deserialize)]
struct ResultInfo {
    #[serde(default)]
    total_pages: Option<u32>,
}

/// One page: its tokens and whether a later page follows. Pure.
pub fn parse_page(body: &[u8], page: u32) -> Result<(Vec<Token>, bool), String> {
    let doc: Envelope = serde_json::from_slice(body)
        .map_err(|_| format!("page {page} is not the envelope Cloudflare documents"))?;
    if !doc.success {
        return Err(format!("page {page} answered success: false"));
    }
    let tokens = doc
        .result
        .ok_or_else(|| format!("page {page} has no result list"))?;
    let more = match doc.result_info.and_then(|i| i.total_pages) {
        Some(total) => page < total,
        // Without a page count only a short page is known to be the last.
        None if tokens.len() < PER_PAGE => false,
        None => return Err(format!("page {page} is full but states no page count")),
    };
    Ok((tokens, more))
}

/// Lists the user's and the account's tokens, as `spec` asks.
pub async fn list(
    spec: &CloudflareSource,
    timeout: Duration,
    ctx: &BuildContext,
) -> Result<Listing, ListError> {
    let secret = spec.credential.read().await.map_err(|e| {
        ListError::new(
            FailReason::Misconfigured,
            format!("the source's credential cannot be read: {e}"),
        )
    })?;
    let bearer = zeroize::Zeroizing::new(format!("Bearer {}", secret.expose()));
    drop(secret);
    let mut lists: Vec<(&str, String)> = Vec::new();
    if spec.user {
        lists.push(("user", "/client/v4/user/tokens".into()));
    }
    if let Some(account) = &spec.account_id {
        lists.push(("account", format!("/client/v4/accounts/{account}/tokens")));
    }
    let mut listing = Listing::default();
    for (owner_kind, path) in lists {
        let hint = if owner_kind == "user" {
            ": the credential needs the API Tokens Read permission"
        } else {
            ": the credential needs the Account API Tokens Read permission on the account"
        };
        let mut page = 1u32;
        loop {
            if page > MAX_PAGES {
                return Err(page::too_long(MAX_PAGES));
            }
            let url = format!("{}{path}?page={page}&per_page={PER_PAGE}", spec.url);
            let request = ctx.http.get(url).header("authorization", (*bearer).clone());
            let what = format!("page {page} of the {owner_kind} tokens");
            let resp = page::send(request, timeout, &what, hint).await?;
            let (tokens, more) = parse_page(&resp.body, page)
                .map_err(|e| ListError::new(FailReason::BadResponse, e))?;
            for t in tokens {
                if t.status != "active" {
                    listing.skip("inactive");
                    continue;
                }
                listing.tokens.push(Discovered {
                    name: format!("{owner_kind}/{}-{}", t.name, t.id),
                    provider: spec.provider.clone(),
                    secret: None,
                    accessor: None,
                    owner: None,
                    state: Some(t.status),
                    identity: Identity::Listed(format!("cloudflare:{}:{}", spec.url, t.id)),
                    expires_at: page::date(t.expires_on, "a token's expires_on")?,
                    issued_at: page::date(t.issued_on, "a token's issued_on")?,
                    last_used_at: page::date(t.last_used_on, "a token's last_used_on")?,
                    sliding_window_seconds: None,
                });
            }
            if !more {
                break;
            }
            page += 1;
        }
    }
    listing.tokens.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(listing)
}

#[cfg(test)]
mod tests;
