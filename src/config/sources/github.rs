//! `kind: github` settings: the organization, the GitHub App that lists its tokens (its id
//! and private key) and where its REST API is. The listing is `src/sources/github.rs`.

use super::{Issues, RawSource, line_of};
use crate::secret::SecretSource;

/// GitHub.com's REST API, where `url` is not set (GitHub Enterprise: `https://HOST/api/v3`).
pub const GITHUB_URL: &str = crate::provider::github::DEFAULT_URL;

/// A validated github source.
#[derive(Clone, Debug, PartialEq)]
pub struct GithubSource {
    /// The REST API's address, without a trailing `/`; the API paths are appended to it.
    pub url: String,
    /// The `static` entry that holds the dates GitHub states for each token.
    pub provider: String,
    pub org: String,
    /// The app's client ID (`Iv23...`) or its numeric app ID: the app JWT's `iss`.
    pub app_id: String,
    /// Looked up with `GET /orgs/{org}/installation` when not set.
    pub installation_id: Option<u64>,
    /// The app's private key (PEM), which signs the app JWT.
    pub credential: SecretSource,
    /// Also list the SAML SSO credential authorizations (GitHub Enterprise Cloud).
    pub credential_authorizations: bool,
}

/// Checks a github source's own settings; `None` when one is missing or wrong (each issue is
/// pushed with its field and line).
pub(super) fn decode(
    raw: &RawSource,
    provider: Option<String>,
    at: &dyn Fn(&str) -> String,
    issues: &mut Issues,
) -> Option<super::SourceKind> {
    let line = line_of(&raw.kind);
    let org = match &raw.org {
        Some(o) if valid_name(&o.value) => Some(o.value.clone()),
        Some(o) => {
            issues.push(
                at("org"),
                "an organization's login: letters, digits and hyphens",
                line_of(o),
            );
            None
        }
        None => {
            issues.push(
                at("org"),
                "a github source needs org: the organization whose tokens it lists",
                line,
            );
            None
        }
    };
    let app_id = match &raw.app_id {
        Some(a)
            if !a.value.trim().is_empty() && a.value.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            Some(a.value.trim().to_string())
        }
        Some(a) => {
            issues.push(
                at("app_id"),
                "the GitHub App's client ID (Iv23...) or app ID: letters and digits",
                line_of(a),
            );
            None
        }
        None => {
            issues.push(
                at("app_id"),
                "a github source needs app_id: the GitHub App's client ID or app ID",
                line,
            );
            None
        }
    };
    if let Some(id) = &raw.installation_id
        && id.value == 0
    {
        issues.push(
            at("installation_id"),
            "must be a GitHub App installation's id",
            line_of(id),
        );
    }
    if raw.credential.is_none() {
        issues.push(
            at("credential"),
            "a github source needs credential: {env: NAME}, {file: PATH} or {exec: [...]}, the GitHub App's private key (PEM)",
            line,
        );
    }
    let url = raw.url.as_ref().map_or(GITHUB_URL, |u| u.value.as_str());
    if let Err(e) = crate::provider::http::check_base_url("url", url) {
        issues.push(at("url"), e, raw.url.as_ref().and_then(line_of).or(line));
    }
    Some(super::SourceKind::Github(GithubSource {
        url: url.trim_end_matches('/').to_string(),
        provider: provider?,
        org: org?,
        app_id: app_id?,
        installation_id: raw.installation_id.as_ref().map(|i| i.value),
        credential: raw.credential.clone()?,
        credential_authorizations: raw.credential_authorizations,
    }))
}

/// A GitHub login: 1 to 39 letters, digits and hyphens (it goes into the API's paths).
fn valid_name(name: &str) -> bool {
    (1..=39).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}
