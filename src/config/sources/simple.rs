//! Settings of the sources that read one provider's token list with one credential:
//! `cloudflare` (and the kinds that follow its shape). The listings are in `src/sources/`.

use super::{Issues, RawSource, line_of};
use crate::secret::SecretSource;

/// Cloudflare's API, where `url` is not set.
pub const CLOUDFLARE_URL: &str = crate::provider::cloudflare::DEFAULT_URL;

/// A validated cloudflare source.
#[derive(Clone, Debug, PartialEq)]
pub struct CloudflareSource {
    /// The API's address, without a trailing `/`; `/client/v4/...` is appended to it.
    pub url: String,
    /// The `static` entry that holds the dates Cloudflare states for each token.
    pub provider: String,
    pub credential: SecretSource,
    /// List the tokens of the credential's user (`/user/tokens`).
    pub user: bool,
    /// List this account's own tokens (`/accounts/{id}/tokens`).
    pub account_id: Option<String>,
}

/// "a cloudflare source", "an okta source": the kind as the messages name it.
pub(super) fn a_source(kind: &str) -> String {
    let an = kind.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {kind} source", if an { "an" } else { "a" })
}

/// The `url` of a source, checked like a provider kind's (`default` where it is not set),
/// without a trailing `/`.
pub(super) fn url_of(
    raw: &RawSource,
    default: &str,
    at: &dyn Fn(&str) -> String,
    issues: &mut Issues,
) -> String {
    let url = raw.url.as_ref().map_or(default, |u| u.value.as_str());
    if let Err(e) = crate::provider::http::check_base_url("url", url) {
        issues.push(
            at("url"),
            e,
            raw.url.as_ref().and_then(line_of).or(line_of(&raw.kind)),
        );
    }
    url.trim_end_matches('/').to_string()
}

/// The credential, or an issue saying what it must be.
pub(super) fn credential_of(
    raw: &RawSource,
    what: &str,
    at: &dyn Fn(&str) -> String,
    issues: &mut Issues,
) -> Option<SecretSource> {
    if raw.credential.is_none() {
        issues.push(
            at("credential"),
            format!(
                "{} needs credential: {{env: NAME}}, {{file: PATH}} or {{exec: [...]}}, {what}",
                a_source(&raw.kind.value)
            ),
            line_of(&raw.kind),
        );
    }
    raw.credential.clone()
}

/// Checks a cloudflare source's own settings; `None` when one is missing or wrong (each
/// issue is pushed with its field and line).
pub(super) fn cloudflare(
    raw: &RawSource,
    provider: Option<String>,
    at: &dyn Fn(&str) -> String,
    issues: &mut Issues,
) -> Option<super::SourceKind> {
    let line = line_of(&raw.kind);
    let account_id = match &raw.account_id {
        // Cloudflare's account identifiers are 32 hex digits; the id goes into a path.
        Some(a) if a.value.len() == 32 && a.value.chars().all(|c| c.is_ascii_hexdigit()) => {
            Some(a.value.clone())
        }
        Some(a) => {
            issues.push(
                at("account_id"),
                "a Cloudflare account identifier: 32 hexadecimal digits",
                line_of(a),
            );
            return None;
        }
        None => None,
    };
    if !raw.user && account_id.is_none() {
        issues.push(
            at("kind"),
            "a cloudflare source lists user: true, account_id: ID, or both",
            line,
        );
    }
    let url = url_of(raw, CLOUDFLARE_URL, at, issues);
    let credential = credential_of(
        raw,
        "an API token with API Tokens Read (user) or Account API Tokens Read (account)",
        at,
        issues,
    );
    if !raw.user && account_id.is_none() {
        return None;
    }
    Some(super::SourceKind::Cloudflare(CloudflareSource {
        url,
        provider: provider?,
        credential: credential?,
        user: raw.user,
        account_id,
    }))
}

/// A validated okta source.
#[derive(Clone, Debug, PartialEq)]
pub struct OktaSource {
    /// The org's address (`https://<org>.okta.com`), without a trailing `/`.
    pub url: String,
    /// The `static` entry that holds the dates Okta states for each token.
    pub provider: String,
    /// An API token (sent as `SSWS`) whose administrator role may read API tokens.
    pub credential: SecretSource,
}

/// Checks an okta source's own settings: `url` is required (an org has no default).
pub(super) fn okta(
    raw: &RawSource,
    provider: Option<String>,
    at: &dyn Fn(&str) -> String,
    issues: &mut Issues,
) -> Option<super::SourceKind> {
    let url = match &raw.url {
        None => {
            issues.push(
                at("url"),
                "an okta source needs url: the org's address (https://<org>.okta.com)",
                line_of(&raw.kind),
            );
            None
        }
        Some(u) if u.value.contains("/api/v1") => {
            issues.push(
                at("url"),
                "give the org's address without /api/v1; the source appends it",
                line_of(u),
            );
            None
        }
        Some(_) => Some(url_of(raw, "", at, issues)),
    };
    let credential = credential_of(
        raw,
        "an API token whose administrator role may read API tokens",
        at,
        issues,
    );
    Some(super::SourceKind::Okta(OktaSource {
        url: url?,
        provider: provider?,
        credential: credential?,
    }))
}
