//! `kind: okta`: an Okta org's API tokens (developer.okta.com, management API, "List all API
//! token metadata"): `GET /api/v1/api-tokens?limit=200` with the source's credential as
//! `Authorization: SSWS ...`, then each `Link: <...>; rel="next"` Okta gives, on the org's
//! own origin only (the credential goes with every page); at most [`MAX_PAGES`] pages.
//!
//! Okta lists active tokens only. No token secret is read: each enters under the source's
//! `static` entry with `expiresAt` and `created` as Okta states them. An Okta token expires
//! a window (`tokenWindow`, 30 days by default) after its last use, so `expiresAt` moves
//! forward whenever the token is used: each listing brings the latest, and between listings
//! the exporter shows the one it last read, never later than the truth. The listed token's
//! expiry model is `sliding` with that window, and its last use is `expiresAt` minus it.

use std::time::Duration;

use serde::Deserialize;

use super::{Discovered, FailReason, Identity, ListError, Listing, page};
use crate::config::sources::OktaSource;
use crate::provider::BuildContext;
use crate::provider::okta::{LIST_PATH, next_link};

/// The most pages read (200 tokens each).
pub const MAX_PAGES: u32 = 500;

/// One token as Okta lists it.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub client_name: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub token_window: Option<String>,
}

/// One page of the list: a JSON array of tokens. Pure.
pub fn parse_page(body: &[u8], page: u32) -> Result<Vec<Token>, String> {
    serde_json::from_slice(body)
        .map_err(|_| format!("page {page} is not the JSON array of API tokens Okta documents"))
}

/// A token's last use and its window. Okta lists no last use, but it renews `expiresAt` to
/// the last use plus `tokenWindow` at every use, so the last use is `expiresAt` minus the
/// window (`lastUpdated` is the record's last change, not a use). The window is Okta's
/// default of 30 days when `tokenWindow` is absent or not a fixed length. Pure.
pub fn last_use(
    expires_at: Option<&str>,
    token_window: Option<&str>,
) -> (Option<String>, Duration) {
    let window = token_window
        .and_then(crate::provider::okta::iso_duration)
        .unwrap_or(crate::provider::okta::DEFAULT_WINDOW);
    let used = expires_at
        .and_then(|e| crate::provider::r#static::parse_declared(e).ok())
        .and_then(|e| {
            let window = jiff::SignedDuration::try_from(window).ok()?;
            e.checked_sub(window).ok()
        })
        .map(|t| t.to_string());
    (used, window)
}

/// Lists every API token of the org.
pub async fn list(
    spec: &OktaSource,
    timeout: Duration,
    ctx: &BuildContext,
) -> Result<Listing, ListError> {
    let secret = spec.credential.read().await.map_err(|e| {
        ListError::new(
            FailReason::Misconfigured,
            format!("the source's credential cannot be read: {e}"),
        )
    })?;
    let ssws = zeroize::Zeroizing::new(format!("SSWS {}", secret.expose()));
    drop(secret);
    let origin = url::Url::parse(&spec.url)
        .map_err(|_| ListError::new(FailReason::Misconfigured, "url is not a URL"))?
        .origin();
    let mut listing = Listing::default();
    let mut url = format!("{}{LIST_PATH}", spec.url);
    let mut page = 1u32;
    loop {
        if page > MAX_PAGES {
            return Err(page::too_long(MAX_PAGES));
        }
        let request = ctx
            .http
            .get(url)
            .header("authorization", (*ssws).clone())
            .header("accept", "application/json");
        let what = format!("page {page} of the API tokens");
        let hint = ": the credential's administrator role may not read API tokens (a super administrator's token may)";
        let resp = page::send(request, timeout, &what, hint).await?;
        for t in
            parse_page(&resp.body, page).map_err(|e| ListError::new(FailReason::BadResponse, e))?
        {
            let expires_at = page::date(t.expires_at, "a token's expiresAt")?;
            let (last_used_at, window) = last_use(expires_at.as_deref(), t.token_window.as_deref());
            listing.tokens.push(Discovered {
                name: format!("{}-{}", t.name, t.id),
                provider: spec.provider.clone(),
                secret: None,
                accessor: None,
                owner: t.user_id,
                state: Some("active".into()),
                identity: Identity::Listed(format!("okta:{}:{}", spec.url, t.id)),
                expires_at,
                issued_at: page::date(t.created, "a token's created")?,
                last_used_at,
                sliding_window_seconds: Some(window.as_secs()),
            });
        }
        match next_link(&resp.headers) {
            None => break,
            Some(next) => {
                // The next page on another origin would take the credential there.
                if !url::Url::parse(&next).is_ok_and(|u| u.origin() == origin) {
                    return Err(ListError::new(
                        FailReason::BadResponse,
                        "a next link leads away from the org",
                    ));
                }
                url = next;
                page += 1;
            }
        }
    }
    listing.tokens.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(listing)
}

#[cfg(test)]
mod tests;
