//! `kind: kubernetes_secrets`: Secrets chosen by a label selector, listed from the API server
//! (kubernetes.io/docs/reference/using-api/api-concepts, "Retrieving large results sets in
//! chunks"): `GET /api/v1/namespaces/{ns}/secrets` for each listed namespace, or
//! `GET /api/v1/secrets` for all, with `labelSelector`, `limit` and the `continue` token of
//! the previous page's `metadata`. A `410 Gone` on a continue token (it expired) restarts that
//! list once; a second one fails the listing. The source's bearer token and CA are the
//! `kubernetes` provider kind's: by default the pod's service-account token and `ca.crt`,
//! only ever sent to the in-cluster API server.
//!
//! Two kinds of Secret enter:
//! - a Secret holding a token: the `data` key named by `api-token-exporter.io/key` (else
//!   `token`, else the only key), base64-decoded into a [`MemorySource`]; probed by the entry
//!   named by `api-token-exporter.io/provider`, else the one its prefix names;
//! - a legacy service-account token (`type: kubernetes.io/service-account-token`): entered
//!   under the source's `static` entry with `issued_at` = its `creationTimestamp` and, when the
//!   API server marked it invalid (`kubernetes.io/legacy-token-invalid-since`), `expires_at`
//!   = that date, state `invalid`.
//!
//! A list page holds secret values: its body is wiped once parsed, every decoded value is
//! zeroed on drop, and no error built here quotes the body.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use zeroize::{Zeroize, Zeroizing};

use super::{Discovered, FailReason, Identity, ListError, Listing};
use crate::config::sources::{KubernetesSecrets as Settings, entry_of_kind};
use crate::provider::http;
use crate::provider::kubernetes;
use crate::provider::{BuildContext, ProviderConfig};
use crate::secret::{MemorySource, SecretSource};

/// Items asked per page. A Secret applied by kubectl holds its data twice (the
/// `last-applied-configuration` annotation), so a page of 100 token Secrets of a few KiB
/// stays well under the shared body cap ([`http::MAX_BODY_BYTES`]); a larger page fails.
pub const PAGE_LIMIT: u32 = 100;

/// The most pages read of one list: past it the listing fails rather than enter part of it.
pub const MAX_PAGES: u32 = 1000;

/// The annotation naming the `data` key that holds the token.
pub const KEY_ANNOTATION: &str = "api-token-exporter.io/key";
/// The annotation naming the provider entry that probes the token.
pub const PROVIDER_ANNOTATION: &str = "api-token-exporter.io/provider";
/// The annotation naming the token's owner.
pub const OWNER_ANNOTATION: &str = "api-token-exporter.io/owner";
/// The type of a legacy service-account token Secret.
pub const SA_TOKEN_TYPE: &str = "kubernetes.io/service-account-token";
/// Set by the API server on a legacy token's Secret: the day it was last used.
pub const LAST_USED_LABEL: &str = "kubernetes.io/legacy-token-last-used";
/// Set by the API server's cleaner: the day a legacy token stopped being accepted.
pub const INVALID_SINCE_LABEL: &str = "kubernetes.io/legacy-token-invalid-since";

/// A string of a list page that may hold a secret (a `data` value, an annotation holding
/// a copy of the object): zeroed on drop.
pub struct Held(pub String);

impl<'de> Deserialize<'de> for Held {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Held)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// One page of a Secret list.
#[derive(Deserialize)]
pub struct Page {
    #[serde(default)]
    pub metadata: ListMeta,
    pub items: Vec<Item>,
}

#[derive(Default, Deserialize)]
pub struct ListMeta {
    #[serde(rename = "continue", default)]
    pub continue_: Option<String>,
}

/// One Secret, as much of it as is read.
#[derive(Deserialize)]
pub struct Item {
    pub metadata: Meta,
    #[serde(rename = "type", default)]
    pub type_: Option<String>,
    #[serde(default)]
    pub data: BTreeMap<String, Held>,
}

#[derive(Deserialize)]
pub struct Meta {
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(rename = "creationTimestamp", default)]
    pub creation_timestamp: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, Held>,
}

/// Parses one page; the error is fixed text. Pure.
pub fn parse_page(body: &[u8]) -> Result<Page, ListError> {
    serde_json::from_slice(body).map_err(|_| {
        ListError::new(
            FailReason::BadResponse,
            "a page is not the SecretList the API server documents",
        )
    })
}

/// Lists the source now.
pub async fn list(
    settings: &Settings,
    providers: &BTreeMap<String, ProviderConfig>,
    timeout: Duration,
    ctx: &BuildContext,
) -> Result<Listing, ListError> {
    let cfg = settings.as_provider();
    let secret = cfg.own_token().read().await.map_err(|e| {
        ListError::new(
            FailReason::Misconfigured,
            format!("the source's credential cannot be read: {e}"),
        )
    })?;
    let token = Zeroizing::new(secret.expose().to_string());
    drop(secret);
    let client = match cfg.ca_file() {
        Some(path) => kubernetes::client_with_ca(&path)
            .map_err(|e| ListError::new(FailReason::Misconfigured, e))?,
        None => ctx.http.clone(),
    };
    let server = cfg.server().to_string();
    let paths: Vec<String> = if settings.namespaces.is_empty() {
        vec!["/api/v1/secrets".into()]
    } else {
        settings
            .namespaces
            .iter()
            .map(|ns| format!("/api/v1/namespaces/{}/secrets", encode(ns)))
            .collect()
    };
    let mut items = Vec::new();
    for path in paths {
        let base = format!(
            "{}?labelSelector={}&limit={PAGE_LIMIT}",
            http::join(&server, &path),
            encode(&settings.label_selector)
        );
        items.extend(pages(&client, &base, &token, timeout).await?);
    }
    Ok(entries(
        items,
        &server,
        settings.provider.as_deref(),
        providers,
    ))
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Every page of one list, restarted once on a `410 Gone`.
async fn pages(
    client: &http::Client,
    base: &str,
    token: &str,
    timeout: Duration,
) -> Result<Vec<Item>, ListError> {
    let mut restarted = false;
    'list: loop {
        let mut out = Vec::new();
        let mut continue_: Option<String> = None;
        for page in 1..=MAX_PAGES {
            let url = match &continue_ {
                Some(c) => format!("{base}&continue={}", encode(c)),
                None => base.to_string(),
            };
            let request = client
                .get(url)
                .bearer_auth(token)
                .header(reqwest::header::ACCEPT, http::JSON);
            let mut resp = match tokio::time::timeout(timeout, http::send(request)).await {
                Ok(Ok(r)) => r,
                Ok(Err(outcome)) => {
                    return Err(ListError::new(FailReason::Unreachable, outcome.detail));
                }
                Err(_) => {
                    return Err(ListError::new(
                        FailReason::Unreachable,
                        format!("no answer within {}", humantime::format_duration(timeout)),
                    ));
                }
            };
            if resp.status == 410 && continue_.is_some() {
                resp.body.zeroize();
                if restarted {
                    return Err(ListError::new(
                        FailReason::Unreachable,
                        "the list's continue token expired twice (410 Gone): the Secrets change faster than they can be listed",
                    ));
                }
                restarted = true;
                continue 'list;
            }
            if resp.status != 200 {
                resp.body.zeroize();
                let reason = FailReason::of_status(resp.status);
                let hint = match reason {
                    FailReason::Unauthorized | FailReason::Forbidden => {
                        ": the credential needs list on secrets in the namespaces read"
                    }
                    _ => "",
                };
                return Err(ListError::of_answer(
                    resp.status,
                    &resp.headers,
                    format!("page {page} of a Secret list: HTTP {}{hint}", resp.status),
                ));
            }
            let parsed = parse_page(&resp.body);
            resp.body.zeroize();
            let parsed = parsed?;
            out.extend(parsed.items);
            match parsed.metadata.continue_.filter(|c| !c.is_empty()) {
                None => return Ok(out),
                Some(next) => continue_ = Some(next),
            }
        }
        return Err(ListError::new(
            FailReason::BadResponse,
            format!("a Secret list is longer than {MAX_PAGES} pages"),
        ));
    }
}

/// The listed Secrets as inventory entries. Pure.
pub fn entries(
    items: Vec<Item>,
    server: &str,
    legacy_provider: Option<&str>,
    providers: &BTreeMap<String, ProviderConfig>,
) -> Listing {
    let mut listing = Listing::default();
    for item in items {
        let m = &item.metadata;
        let identity = |key: &str| {
            Identity::Listed(format!(
                "kubernetes:{server}:{}/{}/{key}",
                m.namespace, m.name
            ))
        };
        if item.type_.as_deref() == Some(SA_TOKEN_TYPE) {
            let Some(provider) = legacy_provider else {
                listing.skip("no_provider");
                continue;
            };
            let invalid_since = m.labels.get(INVALID_SINCE_LABEL);
            let dates_ok = [invalid_since, m.labels.get(LAST_USED_LABEL)]
                .into_iter()
                .flatten()
                .all(|d| d.parse::<jiff::civil::Date>().is_ok());
            if !dates_ok {
                listing.skip("bad_label");
                continue;
            }
            listing.tokens.push(Discovered {
                name: format!("{}/{}/token", m.namespace, m.name),
                provider: provider.to_string(),
                secret: None,
                accessor: None,
                owner: m.annotations.get(OWNER_ANNOTATION).map(|h| h.0.clone()),
                state: Some(
                    if invalid_since.is_some() {
                        "invalid"
                    } else {
                        "active"
                    }
                    .into(),
                ),
                identity: identity("token"),
                expires_at: invalid_since.cloned(),
                issued_at: m.creation_timestamp.clone(),
                last_used_at: m.labels.get(LAST_USED_LABEL).cloned(),
                sliding_window_seconds: None,
            });
            continue;
        }
        let key = match m.annotations.get(KEY_ANNOTATION) {
            Some(k) => Some(k.0.as_str()),
            None if item.data.contains_key("token") => Some("token"),
            None if item.data.len() == 1 => item.data.keys().next().map(String::as_str),
            None => None,
        };
        let Some((key, encoded)) = key.and_then(|k| item.data.get_key_value(k)) else {
            listing.skip("no_key");
            continue;
        };
        let mut bytes = Zeroizing::new(Vec::new());
        if base64::engine::general_purpose::STANDARD
            .decode_vec(encoded.0.as_bytes(), &mut bytes)
            .is_err()
        {
            listing.skip("bad_value");
            continue;
        }
        let Ok(value) = std::str::from_utf8(&bytes) else {
            listing.skip("bad_value");
            continue;
        };
        if value.trim().is_empty() {
            listing.skip("bad_value");
            continue;
        }
        let entry = match m.annotations.get(PROVIDER_ANNOTATION) {
            Some(named) => providers.contains_key(&named.0).then(|| named.0.clone()),
            None => match crate::provider::detect::detect(value.trim()).map(|row| row.kind) {
                None => {
                    listing.skip("undetected");
                    continue;
                }
                Some(kind) => {
                    kind.and_then(|k| entry_of_kind(providers, k).ok().map(str::to_string))
                }
            },
        };
        let Some(entry) = entry else {
            listing.skip("no_provider");
            continue;
        };
        listing.tokens.push(Discovered {
            name: format!("{}/{}/{key}", m.namespace, m.name),
            provider: entry,
            secret: Some(SecretSource::Memory(MemorySource::new(bytes))),
            accessor: None,
            owner: m.annotations.get(OWNER_ANNOTATION).map(|h| h.0.clone()),
            state: None,
            identity: identity(key),
            expires_at: None,
            issued_at: None,
            last_used_at: None,
            sliding_window_seconds: None,
        });
    }
    listing.tokens.sort_by(|a, b| a.name.cmp(&b.name));
    listing
}

#[cfg(test)]
mod tests;
