//! `sources`: where the exporter finds tokens nobody listed (docs/sources.md). Raw structs
//! and their validation, called by `config.rs`; the listing itself is `src/sources/`.
//!
//! A source's credential lists tokens, so it is more privileged than any one of them: it is
//! a secret source like every other (`env`, `file`, `exec`), never written inline.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{Global, Issues, RESERVED_LABELS, RawPolicies, is_valid_label_name, line_of};
use crate::model::Thresholds;
use crate::provider::ProviderConfig;
use crate::schema::Policies;
use crate::secret::SecretSource;

mod simple;
pub use simple::{CloudflareSource, OktaSource};

mod auto;
mod docker_hub;
mod entra;
mod github;
mod gitlab;
mod kubernetes;
pub use docker_hub::DockerHubSource;
pub mod rotate;
pub use auto::{AUTO, detect_configured};
pub use entra::EntraSettings;
pub use github::GithubSource;
pub use gitlab::GitlabWalk;
pub use kubernetes::KubernetesSecrets;

/// The source kinds `kind:` accepts.
pub const SOURCE_KINDS: &[&str] = &[
    "directory",
    "vault",
    "gitlab",
    "github",
    "entra_id",
    "kubernetes_secrets",
    "cloudflare",
    "okta",
    "docker_hub",
];

/// GitLab's own server, where `url` is not set.
pub const GITLAB_URL: &str = "https://gitlab.com";

/// Lists a gitlab source walks at once when `max_concurrency` is not set.
pub const GITLAB_CONCURRENCY: usize = 4;

/// How often a source lists when `refresh` is not set.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(600);

/// The shortest `refresh`: a listing is many calls with a privileged credential.
pub const MIN_REFRESH: Duration = Duration::from_secs(1);

/// One validated source.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceSpec {
    pub name: String,
    pub kind: SourceKind,
    pub refresh: Duration,
    pub filter: Filter,
    /// Labels every token of this source gets on `api_token_info`.
    pub labels: BTreeMap<String, String>,
    pub thresholds: Thresholds,
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    /// `global.policies` with this source's overrides.
    pub policies: Arc<Policies>,
    /// `rotate:`, for the sources that hold their tokens' values (`sources::rotate`).
    pub rotate: Option<rotate::SourceRotate>,
}

/// What a source lists, and how.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceKind {
    /// One token per regular file of `path` (a Vault Agent or CSI mount). `provider`: the
    /// entry that probes them; `None` detects it from each token's prefix.
    Directory {
        path: PathBuf,
        provider: Option<String>,
    },
    /// Vault / OpenBao token accessors: `LIST auth/token/accessors`, then `lookup-accessor`.
    /// `provider` is the vault entry that probes the accessors found (its `url` and
    /// `namespace` are the listing's too); `credential` the token that may list them.
    Vault {
        provider: String,
        credential: SecretSource,
    },
    /// GitLab's token lists (`src/sources/gitlab.rs`): `provider` is the `static` entry that
    /// holds the dates GitLab states for each token.
    Gitlab {
        url: String,
        provider: String,
        credential: SecretSource,
        walk: GitlabWalk,
        max_concurrency: usize,
    },
    /// Cloudflare's user and account token lists (`src/sources/cloudflare.rs`).
    Cloudflare(CloudflareSource),
    /// An Okta org's API tokens (`src/sources/okta.rs`).
    Okta(OktaSource),
    /// An organization's fine-grained personal access tokens (and, optionally, its SAML
    /// credential authorizations) through a GitHub App (`src/sources/github.rs`).
    Github(GithubSource),
    /// Entra ID app registrations' secrets and certificates, from Microsoft Graph
    /// (`src/sources/entra_id.rs`): `provider` is the `static` entry that holds the dates.
    EntraId {
        settings: EntraSettings,
        provider: String,
        credential: SecretSource,
    },
    /// Secrets chosen by a label selector (`src/sources/kubernetes_secrets.rs`).
    KubernetesSecrets(KubernetesSecrets),
    /// Docker Hub's personal and organization access tokens (`src/sources/docker_hub.rs`).
    DockerHub(DockerHubSource),
}

impl SourceKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            SourceKind::Directory { .. } => "directory",
            SourceKind::Vault { .. } => "vault",
            SourceKind::Gitlab { .. } => "gitlab",
            SourceKind::Cloudflare(_) => "cloudflare",
            SourceKind::Okta(_) => "okta",
            SourceKind::Github(_) => "github",
            SourceKind::EntraId { .. } => "entra_id",
            SourceKind::KubernetesSecrets(_) => "kubernetes_secrets",
            SourceKind::DockerHub(_) => "docker_hub",
        }
    }
}

/// Which listed tokens become inventory entries. Each list, when not empty, must admit a
/// token: `include` by one pattern, `exclude` by none, `owners` and `states` by one value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filter {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub owners: Vec<String>,
    pub states: Vec<String>,
}

impl Filter {
    /// Whether a listed token (its name in the source, owner and state) is kept.
    pub fn admits(&self, name: &str, owner: Option<&str>, state: Option<&str>) -> bool {
        let listed = |list: &[String], v: Option<&str>| {
            list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x == v))
        };
        (self.include.is_empty() || self.include.iter().any(|p| glob(p, name)))
            && !self.exclude.iter().any(|p| glob(p, name))
            && listed(&self.owners, owner)
            && listed(&self.states, state)
    }
}

/// A name pattern: `*` any run of characters, `?` one character, everything else itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut back: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            back = Some((pi, ti));
            pi += 1;
        } else if let Some((bp, bt)) = back {
            pi = bp + 1;
            ti = bt + 1;
            back = Some((bp, bt + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    name: Spanned<String>,
    kind: Spanned<String>,
    path: Option<Spanned<String>>,
    provider: Option<Spanned<String>>,
    #[serde(default)]
    credential: Option<SecretSource>,
    url: Option<Spanned<String>>,
    #[serde(default)]
    personal: bool,
    #[serde(default)]
    groups: bool,
    #[serde(default)]
    projects: bool,
    max_concurrency: Option<Spanned<usize>>,
    #[serde(default)]
    deploy_tokens: bool,
    #[serde(default)]
    instance_deploy_tokens: bool,
    #[serde(default)]
    user: bool,
    account_id: Option<Spanned<String>>,
    org: Option<Spanned<String>>,
    username: Option<Spanned<String>>,
    app_id: Option<Spanned<String>>,
    installation_id: Option<Spanned<u64>>,
    #[serde(default)]
    credential_authorizations: bool,
    tenant_id: Option<Spanned<String>>,
    client_id: Option<Spanned<String>>,
    graph_url: Option<Spanned<String>>,
    #[serde(default)]
    service_principals: bool,
    #[serde(default)]
    read_owners: bool,
    ca_file: Option<Spanned<String>>,
    label_selector: Option<Spanned<String>>,
    namespaces: Option<Vec<String>>,
    refresh: Option<Spanned<String>>,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    owners: Vec<String>,
    #[serde(default)]
    states: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, Spanned<String>>,
    warning_before: Option<Spanned<String>>,
    critical_before: Option<Spanned<String>>,
    probe_interval: Option<Spanned<String>>,
    probe_timeout: Option<Spanned<String>>,
    #[serde(default)]
    policies: RawPolicies,
    rotate: Option<Spanned<rotate::RawSourceRotate>>,
}

/// Validates every source; issues go to `issues` with `sources[i].field` paths.
pub(super) fn validate(
    raw: Vec<RawSource>,
    global: &Global,
    providers: &BTreeMap<String, ProviderConfig>,
    issues: &mut Issues,
) -> Vec<Arc<SourceSpec>> {
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, raw) in raw.into_iter().enumerate() {
        let at = |field: &str| format!("sources[{i}].{field}");
        let name = raw.name.value.clone();
        let name_line = line_of(&raw.name);
        if name.trim().is_empty()
            || name.contains(['/', '"', '\\'])
            || name.contains(char::is_control)
        {
            issues.push(
                at("name"),
                "a source name must not be empty nor hold /, quotes, backslashes or control characters (it is the prefix of its tokens' names)",
                name_line,
            );
        }
        if let Some(first) = seen.insert(name.clone(), raw.name.referenced.line()) {
            issues.push(
                at("name"),
                format!("duplicate source name \"{name}\" (first defined on line {first})"),
                name_line,
            );
        }
        let provider_of = |issues: &mut Issues, want: &str| -> Option<String> {
            let p = raw.provider.as_ref()?;
            match providers.get(&p.value) {
                Some(pc) if want.is_empty() || pc.kind() == want => Some(p.value.clone()),
                Some(pc) => {
                    issues.push(
                        at("provider"),
                        format!(
                            "provider \"{}\" is of kind {}, not {want}",
                            p.value,
                            pc.kind()
                        ),
                        line_of(p),
                    );
                    None
                }
                None => {
                    issues.push(
                        at("provider"),
                        format!("unknown provider \"{}\"", p.value),
                        line_of(p),
                    );
                    None
                }
            }
        };
        let line = line_of(&raw.kind);
        let not_for = |issues: &mut Issues, field: &str, set: bool| {
            if set {
                issues.push(
                    at(field),
                    format!("{field} does not apply to a {} source", raw.kind.value),
                    line,
                );
            }
        };
        if raw.kind.value != "cloudflare" {
            not_for(issues, "user", raw.user);
            not_for(issues, "account_id", raw.account_id.is_some());
        }
        for (field, set) in docker_hub::set_elsewhere(&raw) {
            not_for(issues, field, set);
        }
        if raw.kind.value != "github" {
            for (field, set) in [
                ("app_id", raw.app_id.is_some()),
                ("installation_id", raw.installation_id.is_some()),
                ("credential_authorizations", raw.credential_authorizations),
            ] {
                not_for(issues, field, set);
            }
        }
        if raw.kind.value != "kubernetes_secrets" {
            for (field, set) in [
                ("ca_file", raw.ca_file.is_some()),
                ("label_selector", raw.label_selector.is_some()),
                ("namespaces", raw.namespaces.is_some()),
            ] {
                not_for(issues, field, set);
            }
        }
        if ![
            "gitlab",
            "github",
            "entra_id",
            "kubernetes_secrets",
            "cloudflare",
            "okta",
            "docker_hub",
        ]
        .contains(&raw.kind.value.as_str())
        {
            not_for(issues, "url", raw.url.is_some());
        }
        if raw.kind.value != "entra_id" {
            for (field, set) in [
                ("tenant_id", raw.tenant_id.is_some()),
                ("client_id", raw.client_id.is_some()),
                ("graph_url", raw.graph_url.is_some()),
                ("service_principals", raw.service_principals),
                ("read_owners", raw.read_owners),
            ] {
                not_for(issues, field, set);
            }
        }
        if raw.kind.value != "gitlab" {
            for (field, set) in [
                ("groups", raw.groups),
                ("projects", raw.projects),
                ("max_concurrency", raw.max_concurrency.is_some()),
                ("deploy_tokens", raw.deploy_tokens),
                ("instance_deploy_tokens", raw.instance_deploy_tokens),
            ] {
                not_for(issues, field, set);
            }
        }
        // The kinds that list dates only: `provider` is the static entry that holds them.
        let static_entry = |issues: &mut Issues, who: &str| {
            if raw.provider.is_none() {
                issues.push(
                    at("provider"),
                    format!(
                        "{} needs provider: a static entry, which holds the dates {who} states",
                        simple::a_source(&raw.kind.value)
                    ),
                    line,
                );
                return None;
            }
            provider_of(issues, "static")
        };
        let kind = match raw.kind.value.as_str() {
            "directory" => {
                not_for(issues, "credential", raw.credential.is_some());
                let provider = match &raw.provider {
                    Some(p) if p.value == "auto" => None,
                    Some(_) => provider_of(issues, ""),
                    None => None,
                };
                match &raw.path {
                    Some(p) if !p.value.trim().is_empty() => Some(SourceKind::Directory {
                        path: PathBuf::from(&p.value),
                        provider,
                    }),
                    _ => {
                        issues.push(at("path"), "a directory source needs path", line);
                        None
                    }
                }
            }
            "vault" => {
                not_for(issues, "path", raw.path.is_some());
                let provider = if raw.provider.is_none() {
                    issues.push(
                        at("provider"),
                        "a vault source needs provider: the vault entry that probes the accessors it finds",
                        line,
                    );
                    None
                } else {
                    provider_of(issues, "vault")
                };
                if raw.credential.is_none() {
                    issues.push(
                        at("credential"),
                        "a vault source needs credential: {env: NAME}, {file: PATH} or {exec: [...]}, a token allowed to list accessors",
                        line,
                    );
                }
                match (provider, raw.credential.clone()) {
                    (Some(provider), Some(credential)) => Some(SourceKind::Vault {
                        provider,
                        credential,
                    }),
                    _ => None,
                }
            }
            "gitlab" => {
                not_for(issues, "path", raw.path.is_some());
                let provider = static_entry(issues, "GitLab");
                gitlab::decode(&raw, provider, &at, issues)
            }
            "cloudflare" => {
                not_for(issues, "path", raw.path.is_some());
                let provider = static_entry(issues, "Cloudflare");
                simple::cloudflare(&raw, provider, &at, issues)
            }
            "okta" => {
                not_for(issues, "path", raw.path.is_some());
                let provider = static_entry(issues, "Okta");
                simple::okta(&raw, provider, &at, issues)
            }
            "docker_hub" => {
                docker_hub::decode(&raw, static_entry(issues, "Docker Hub"), &at, issues)
            }
            kind @ ("github" | "entra_id") => {
                not_for(issues, "path", raw.path.is_some());
                let provider = if raw.provider.is_none() {
                    issues.push(
                        at("provider"),
                        if kind == "github" {
                            "a github source needs provider: a static entry, which holds the dates GitHub states"
                        } else {
                            "an entra_id source needs provider: a static entry, which holds the dates Graph states"
                        },
                        line,
                    );
                    None
                } else {
                    provider_of(issues, "static")
                };
                if kind == "github" {
                    github::decode(&raw, provider, &at, issues)
                } else {
                    entra::decode(&raw, &at, provider, issues)
                }
            }
            "kubernetes_secrets" => {
                not_for(issues, "path", raw.path.is_some());
                let provider = raw
                    .provider
                    .is_some()
                    .then(|| provider_of(issues, "static"))
                    .flatten();
                kubernetes::decode(&raw, &at, provider, issues)
            }
            other => {
                issues.push(
                    at("kind"),
                    format!(
                        "unknown source kind \"{other}\", expected one of {}",
                        SOURCE_KINDS.join(", ")
                    ),
                    line,
                );
                None
            }
        };
        let refresh = issues
            .duration(&at("refresh"), &raw.refresh)
            .unwrap_or(DEFAULT_REFRESH);
        if refresh < MIN_REFRESH {
            issues.push(
                at("refresh"),
                format!(
                    "must be at least {}",
                    humantime::format_duration(MIN_REFRESH)
                ),
                raw.refresh.as_ref().and_then(line_of),
            );
        }
        let mut labels = BTreeMap::new();
        for (key, value) in raw.labels {
            if !is_valid_label_name(&key) || RESERVED_LABELS.contains(&key.as_str()) {
                issues.push(
                    format!("sources[{i}].labels.{key}"),
                    format!("\"{key}\" is not a label name a source may set (a Prometheus label name, not one the exporter sets itself)"),
                    line_of(&value),
                );
            }
            labels.insert(key, value.value);
        }
        let warning_before = issues
            .duration(&at("warning_before"), &raw.warning_before)
            .unwrap_or(global.thresholds.warning_before);
        let critical_before = issues
            .duration(&at("critical_before"), &raw.critical_before)
            .unwrap_or(global.thresholds.critical_before);
        if critical_before >= warning_before {
            issues.push(
                at("critical_before"),
                "must be shorter than warning_before",
                raw.critical_before
                    .as_ref()
                    .or(raw.warning_before.as_ref())
                    .and_then(line_of),
            );
        }
        let probe_interval = issues
            .duration(&at("probe_interval"), &raw.probe_interval)
            .unwrap_or(global.probe_interval);
        let probe_timeout = issues
            .duration(&at("probe_timeout"), &raw.probe_timeout)
            .unwrap_or(global.probe_timeout);
        if probe_interval.is_zero() || probe_timeout.is_zero() {
            issues.push(
                at("probe_interval"),
                "probe_interval and probe_timeout must be greater than zero",
                name_line,
            );
        }
        let policies = issues.policies(&at("policies"), &global.policies, &raw.policies);
        let rotate = raw.rotate.clone().and_then(|r| {
            rotate::decode(&format!("sources[{i}]"), &name, &raw.kind.value, r, issues)
        });
        if let Some(kind) = kind {
            out.push(Arc::new(SourceSpec {
                name,
                kind,
                refresh,
                filter: Filter {
                    include: raw.include,
                    exclude: raw.exclude,
                    owners: raw.owners,
                    states: raw.states,
                },
                labels,
                thresholds: Thresholds {
                    warning_before,
                    critical_before,
                },
                probe_interval,
                probe_timeout,
                policies: Arc::new(policies),
                rotate,
            }));
        }
    }
    out
}

/// The one provider entry of `kind`, for a token whose provider is detected: `Err` says why
/// none is chosen (no entry of that kind, or several).
pub fn entry_of_kind<'a>(
    providers: &'a BTreeMap<String, ProviderConfig>,
    kind: &str,
) -> Result<&'a str, String> {
    let mut of_kind = providers.iter().filter(|(_, pc)| pc.kind() == kind);
    match (of_kind.next(), of_kind.next()) {
        (Some((name, _)), None) => Ok(name),
        (None, _) => Err(format!("no provider of kind {kind} is defined")),
        (Some(_), Some(_)) => Err(format!(
            "several providers are of kind {kind}: name one instead of auto"
        )),
    }
}

#[cfg(test)]
mod tests;
