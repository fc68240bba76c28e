//! `kind: docker_hub` settings: the account the credential signs in as, and which lists it
//! reads (its own personal access tokens, an organization's access tokens). The listing is
//! `src/sources/docker_hub.rs`.

use super::simple::{credential_of, url_of};
use super::{Issues, RawSource, line_of};
use crate::secret::SecretSource;

/// Docker Hub's API, where `url` is not set.
pub const DOCKER_HUB_URL: &str = crate::provider::docker_hub::DEFAULT_URL;

/// A validated docker_hub source.
#[derive(Clone, Debug, PartialEq)]
pub struct DockerHubSource {
    /// The API's address, without a trailing `/`; `/v2/...` is appended to it.
    pub url: String,
    /// The `static` entry that holds the dates Docker Hub states for each token.
    pub provider: String,
    /// The Docker ID the credential signs in as (`identifier` of `POST /v2/auth/token`).
    pub username: String,
    /// The account's password or a personal access token, exchanged for a bearer token.
    pub credential: SecretSource,
    /// List the account's own personal access tokens (`GET /v2/access-tokens`).
    pub personal: bool,
    /// List this organization's access tokens (`GET /v2/orgs/{org}/access-tokens`).
    pub org: Option<String>,
}

/// A Docker ID or an organization name: it goes into a path and a JSON body, so letters,
/// digits, `-`, `_` and `.` only.
fn valid_name(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.')
}

/// The settings docker_hub shares with other kinds (`org` with github, `personal` with
/// gitlab) or has alone (`username`), each with whether it is set on a kind that does not
/// take it.
pub(super) fn set_elsewhere(raw: &RawSource) -> [(&'static str, bool); 3] {
    let kind = raw.kind.value.as_str();
    [
        (
            "org",
            raw.org.is_some() && !["github", "docker_hub"].contains(&kind),
        ),
        ("username", raw.username.is_some() && kind != "docker_hub"),
        (
            "personal",
            raw.personal && !["gitlab", "docker_hub"].contains(&kind),
        ),
    ]
}

/// Checks a docker_hub source's own settings; `None` when one is missing or wrong (each
/// issue is pushed with its field and line).
pub(super) fn decode(
    raw: &RawSource,
    provider: Option<String>,
    at: &dyn Fn(&str) -> String,
    issues: &mut Issues,
) -> Option<super::SourceKind> {
    let line = line_of(&raw.kind);
    if raw.path.is_some() {
        issues.push(
            at("path"),
            "path does not apply to a docker_hub source",
            line,
        );
    }
    let username = match &raw.username {
        Some(u) if valid_name(&u.value) => Some(u.value.clone()),
        Some(u) => {
            issues.push(
                at("username"),
                "a Docker ID: letters, digits, -, _ and .",
                line_of(u),
            );
            None
        }
        None => {
            issues.push(
                at("username"),
                "a docker_hub source needs username: the Docker ID its credential signs in as",
                line,
            );
            None
        }
    };
    let org = match &raw.org {
        Some(o) if valid_name(&o.value) => Some(o.value.clone()),
        Some(o) => {
            issues.push(
                at("org"),
                "a Docker Hub organization's name: letters, digits, -, _ and .",
                line_of(o),
            );
            return None;
        }
        None => None,
    };
    if !raw.personal && org.is_none() {
        issues.push(
            at("kind"),
            "a docker_hub source lists personal: true, org: NAME, or both",
            line,
        );
    }
    let url = url_of(raw, DOCKER_HUB_URL, at, issues);
    let credential = credential_of(
        raw,
        "the password or a personal access token of the account (an owner of org)",
        at,
        issues,
    );
    if !raw.personal && org.is_none() {
        return None;
    }
    Some(super::SourceKind::DockerHub(DockerHubSource {
        url,
        provider: provider?,
        username: username?,
        credential: credential?,
        personal: raw.personal,
        org,
    }))
}
