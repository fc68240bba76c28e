//! Inventory discovery: tokens listed by a source (`sources:` in the config) instead of
//! written one by one. A source lists; [`compose`] turns the last good listing of every
//! source into inventory entries next to the configured ones; the daemon
//! (`app::discover`) hands the result to the scheduler like a reload.
//!
//! A listing is all or nothing: a source that fails on any call (a 5xx on page 7, a 401, a
//! 429) returns [`ListError`], and the caller keeps the previous listing. Only a complete
//! listing removes tokens, so an outage never reads as "every token gone". A token that
//! vanishes between the list and its lookup is just not listed.
//!
//! Sources make read calls only, with their own credential, sent in a header; no call here
//! renews, revokes or creates anything.

pub mod cloudflare;
pub mod directory;
pub mod docker_hub;
pub mod entra_id;
pub mod github;
pub mod gitlab;
pub mod health;
pub mod kubernetes_secrets;
pub mod okta;
pub mod page;
pub mod rotate;
pub mod vault;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::Config;
use crate::config::sources::{SourceKind, SourceSpec};
use crate::provider::BuildContext;
use crate::schema::{Memo, TokenParams, TokenSpec};
use crate::secret::SecretSource;

/// One token as a source lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct Discovered {
    /// Its name in the source (a file name, a display name); the filters match it, and the
    /// inventory calls it `<source>/<name>`.
    pub name: String,
    /// The provider entry that probes it.
    pub provider: String,
    pub secret: Option<SecretSource>,
    /// A Vault accessor: probed by `lookup-accessor`, without the secret.
    pub accessor: Option<String>,
    pub owner: Option<String>,
    pub state: Option<String>,
    /// What makes it the same token as a configured one.
    pub identity: Identity,
    /// Dates the listing states, for a token probed by a `static` entry (GitLab's lists).
    pub expires_at: Option<String>,
    pub issued_at: Option<String>,
    /// The last use the listing states (RFC 3339), for the same `static` entry; it reaches
    /// `api_token_last_used_timestamp_seconds`, the API and the `max_unused` policy.
    pub last_used_at: Option<String>,
    /// An expiry that moves with each use (Okta's `tokenWindow`), in seconds.
    pub sliding_window_seconds: Option<u64>,
}

/// The provider's own handle on a token, to tell a discovered token from a configured one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// A secret file, by its canonical path.
    File(PathBuf),
    /// A Vault token: the provider entry and the accessor.
    Accessor { provider: String, accessor: String },
    /// A token only a listing knows (its server and id); never configured by hand.
    Listed(String),
}

/// A complete listing, after the source's filters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Listing {
    pub tokens: Vec<Discovered>,
    /// Tokens listed but not kept, per reason (`filtered`, `vanished`, `no_provider`, ...).
    pub skipped: BTreeMap<&'static str, u64>,
}

impl Listing {
    pub fn skip(&mut self, reason: &'static str) {
        *self.skipped.entry(reason).or_default() += 1;
    }
}

/// Why a listing failed: the `reason` label of `api_token_source_failures_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailReason {
    /// 401: the credential is not accepted.
    Unauthorized,
    /// 403: the credential may not list.
    Forbidden,
    /// 429, or the provider's own rate-limit answer.
    RateLimited,
    /// A 5xx, a timeout, no connection.
    Unreachable,
    /// An answer that is not what the provider documents.
    BadResponse,
    /// The source's own settings: its credential cannot be read, its directory is missing.
    Misconfigured,
}

impl FailReason {
    pub const ALL: [FailReason; 6] = [
        FailReason::Unauthorized,
        FailReason::Forbidden,
        FailReason::RateLimited,
        FailReason::Unreachable,
        FailReason::BadResponse,
        FailReason::Misconfigured,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::Unauthorized => "unauthorized",
            FailReason::Forbidden => "forbidden",
            FailReason::RateLimited => "rate_limited",
            FailReason::Unreachable => "unreachable",
            FailReason::BadResponse => "bad_response",
            FailReason::Misconfigured => "misconfigured",
        }
    }

    /// The reason for an HTTP status that is not the documented success.
    pub fn of_status(status: u16) -> FailReason {
        match status {
            401 => FailReason::Unauthorized,
            403 => FailReason::Forbidden,
            429 => FailReason::RateLimited,
            500..=599 => FailReason::Unreachable,
            _ => FailReason::BadResponse,
        }
    }
}

/// A failed listing: a reason and a sentence built from fixed text (never a credential,
/// never a provider's free text).
#[derive(Clone, Debug, PartialEq)]
pub struct ListError {
    pub reason: FailReason,
    pub detail: String,
    /// How long the provider asked to wait (`Retry-After` on a 429 or a 503): the next
    /// listing waits at least this long, whatever `refresh` says.
    pub retry_after: Option<std::time::Duration>,
}

/// The longest `Retry-After` honoured: a provider's absurd wait must not stop a source for good.
pub const MAX_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

impl ListError {
    pub fn new(reason: FailReason, detail: impl Into<String>) -> Self {
        ListError {
            reason,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// The failure for an answer that is not the documented success, with its `Retry-After`.
    pub fn of_answer(status: u16, headers: &http::HeaderMap, detail: String) -> Self {
        let retry_after = crate::provider::http::retry_after(headers, jiff::Timestamp::now())
            .map(|d| d.min(MAX_RETRY_AFTER));
        ListError {
            reason: FailReason::of_status(status),
            detail,
            retry_after,
        }
    }
}

/// Lists one source now, with its filters applied.
pub async fn list(
    spec: &SourceSpec,
    config: &Config,
    ctx: &BuildContext,
) -> Result<Listing, ListError> {
    let mut listing = match &spec.kind {
        SourceKind::Directory { path, provider } => {
            directory::list(path, provider.as_deref(), &config.providers).await?
        }
        SourceKind::Vault {
            provider,
            credential,
        } => {
            let Some(crate::provider::ProviderConfig::Vault(vault)) =
                config.providers.get(provider)
            else {
                return Err(ListError::new(
                    FailReason::Misconfigured,
                    "the source's provider is not a vault entry",
                ));
            };
            vault::list(vault, provider, credential, spec.probe_timeout, ctx).await?
        }
        SourceKind::Gitlab {
            url,
            provider,
            credential,
            walk,
            max_concurrency,
        } => {
            gitlab::list(
                url,
                walk,
                provider,
                credential,
                *max_concurrency,
                spec.probe_timeout,
                ctx,
            )
            .await?
        }
        SourceKind::Cloudflare(cf) => cloudflare::list(cf, spec.probe_timeout, ctx).await?,
        SourceKind::Okta(okta) => okta::list(okta, spec.probe_timeout, ctx).await?,
        SourceKind::DockerHub(hub) => docker_hub::list(hub, spec.probe_timeout, ctx).await?,
        SourceKind::Github(gh) => github::list(gh, spec.probe_timeout, ctx).await?,
        SourceKind::EntraId {
            settings,
            provider,
            credential,
        } => entra_id::list(settings, provider, credential, spec.probe_timeout, ctx).await?,
        SourceKind::KubernetesSecrets(settings) => {
            kubernetes_secrets::list(settings, &config.providers, spec.probe_timeout, ctx).await?
        }
    };
    let before = listing.tokens.len();
    listing.tokens.retain(|d| {
        spec.filter
            .admits(&d.name, d.owner.as_deref(), d.state.as_deref())
    });
    let filtered = (before - listing.tokens.len()) as u64;
    if filtered > 0 {
        *listing.skipped.entry("filtered").or_default() += filtered;
    }
    Ok(listing)
}

/// What [`compose`] left out, per source and reason (`configured`: the same token is
/// configured by hand; `name_taken`: another entry has its name).
pub type Left = BTreeMap<String, BTreeMap<&'static str, u64>>;

/// The inventory with every source's last good listing added: configured tokens first, as
/// written; then each source's tokens, named `<source>/<name>`. A discovered token that is
/// configured too (same [`Identity`]) is left out, so it appears once, as configured. Pure
/// but for canonicalizing configured secret file paths.
pub fn compose(config: &Config, listings: &BTreeMap<String, Listing>) -> (Config, Left) {
    let (out, left, _) = compose_noted(config, listings);
    (out, left)
}

/// [`compose`], and the rotations of discovered tokens: a token of a source with `rotate:`
/// gets its [`rotate::for_token`] rotation in `rotations` (and its record's key in
/// `rotation_keys`), or a note saying why it is watched but not rotated.
pub fn compose_noted(
    config: &Config,
    listings: &BTreeMap<String, Listing>,
) -> (Config, Left, rotate::Notes) {
    let mut out = config.clone();
    let mut left = Left::new();
    let mut notes = rotate::Notes::new();
    let configured: HashSet<Identity> = config
        .tokens
        .iter()
        .filter(|t| t.source.is_none())
        .filter_map(|t| identity_of(t))
        .collect();
    let mut names: HashSet<String> = config.tokens.iter().map(|t| t.name.clone()).collect();
    for spec in &config.sources {
        let Some(listing) = listings.get(&spec.name) else {
            continue;
        };
        let source: Arc<str> = Arc::from(spec.name.as_str());
        let labels: crate::schema::Labels = spec.labels.clone().into();
        // The owner the source reports becomes the `owner` label, which alerts and the
        // page join in, unless the source sets one for every token.
        // One copy per owner, shared by the owner's tokens.
        let mut owners: HashMap<String, crate::schema::Labels> = HashMap::new();
        let mut with_owner = |owner: &Option<String>| match owner {
            Some(owner) if !spec.labels.contains_key("owner") => {
                if let Some(shared) = owners.get(owner) {
                    return shared.clone();
                }
                let mut map = spec.labels.clone();
                map.insert("owner".into(), owner.clone());
                let shared: crate::schema::Labels = map.into();
                owners.insert(owner.clone(), shared.clone());
                shared
            }
            _ => labels.clone(),
        };
        for d in &listing.tokens {
            let skip = |left: &mut Left, why| {
                *left
                    .entry(spec.name.clone())
                    .or_default()
                    .entry(why)
                    .or_default() += 1
            };
            if configured.contains(&d.identity) {
                skip(&mut left, "configured");
                continue;
            }
            let name = format!("{}/{}", spec.name, d.name);
            if !config.providers.contains_key(&d.provider) || !names.insert(name.clone()) {
                skip(&mut left, "name_taken");
                continue;
            }
            let token = TokenSpec {
                name,
                provider: d.provider.clone(),
                source: Some(source.clone()),
                secret: d.secret.clone(),
                labels: with_owner(&d.owner),
                thresholds: spec.thresholds,
                probe_interval: spec.probe_interval,
                probe_timeout: spec.probe_timeout,
                params: TokenParams {
                    accessor: d.accessor.clone(),
                    expires_at: d.expires_at.clone(),
                    issued_at: d.issued_at.clone(),
                    last_used_at: d.last_used_at.clone(),
                    sliding_window_seconds: d.sliding_window_seconds,
                    ..TokenParams::default()
                }
                .into(),
                policies: spec.policies.clone(),
                metric_labels: Memo::default(),
            };
            if let Some(r) = &spec.rotate {
                let provider = config.providers.get(&token.provider);
                match rotate::for_token(spec, r, d, &token, provider) {
                    Ok((rotation, key)) => {
                        out.rotations.insert(token.name.clone(), Arc::new(rotation));
                        Arc::make_mut(&mut out.rotation_keys).insert(token.name.clone(), key);
                    }
                    Err(note) => notes.entry(spec.name.clone()).or_default().push(note),
                }
            }
            out.tokens.push(Arc::new(token));
        }
    }
    (out, left, notes)
}

/// A configured token's [`Identity`], where it has one.
fn identity_of(token: &TokenSpec) -> Option<Identity> {
    if let Some(accessor) = &token.params.accessor {
        return Some(Identity::Accessor {
            provider: token.provider.clone(),
            accessor: accessor.clone(),
        });
    }
    match &token.secret {
        Some(SecretSource::File(file)) => Some(Identity::File(canonical(file.path()))),
        _ => None,
    }
}

/// A path with its symlinks resolved, or as written when it cannot be (a missing file).
pub fn canonical(path: &std::path::Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests;
