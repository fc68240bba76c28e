//! `kind: gitlab` settings: which of GitLab's token lists the source reads, where, and how
//! many at once. The listing is `src/sources/gitlab.rs`.

use super::{GITLAB_CONCURRENCY, GITLAB_URL, Issues, RawSource, line_of};

/// Which of GitLab's lists a gitlab source reads.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GitlabWalk {
    /// Every user's personal access tokens (an administrator's credential).
    pub personal: bool,
    /// The access tokens of every group the credential owns.
    pub groups: bool,
    /// The access tokens of every project the credential maintains.
    pub projects: bool,
    /// Also the deploy tokens of each group and project walked.
    pub deploy_tokens: bool,
    /// Every deploy token of the instance (an administrator's credential, self-managed and
    /// Dedicated only).
    pub instance_deploy_tokens: bool,
}

/// Checks a gitlab source's own settings; `None` when one is missing or wrong (each issue is
/// pushed with its field and line).
pub(super) fn decode(
    raw: &RawSource,
    provider: Option<String>,
    at: &dyn Fn(&str) -> String,
    issues: &mut Issues,
) -> Option<super::SourceKind> {
    let line = line_of(&raw.kind);
    if raw.credential.is_none() {
        issues.push(
            at("credential"),
            "a gitlab source needs credential: {env: NAME}, {file: PATH} or {exec: [...]}, a token with read_api",
            line,
        );
    }
    if !(raw.personal || raw.groups || raw.projects || raw.instance_deploy_tokens) {
        issues.push(
            at("kind"),
            "a gitlab source reads at least one of personal, groups, projects, instance_deploy_tokens (set it to true)",
            line,
        );
    }
    if raw.deploy_tokens && !(raw.groups || raw.projects) {
        issues.push(
            at("deploy_tokens"),
            "deploy_tokens reads the deploy tokens of the groups and projects walked: set groups or projects too (instance_deploy_tokens reads the instance's)",
            line,
        );
    }
    let url = raw.url.as_ref().map_or(GITLAB_URL, |u| u.value.as_str());
    if let Err(e) = crate::provider::http::check_base_url("url", url) {
        issues.push(at("url"), e, raw.url.as_ref().and_then(line_of).or(line));
    }
    let max_concurrency = match &raw.max_concurrency {
        Some(n) if n.value == 0 => {
            issues.push(at("max_concurrency"), "must be at least 1", line_of(n));
            1
        }
        Some(n) => n.value,
        None => GITLAB_CONCURRENCY,
    };
    Some(super::SourceKind::Gitlab {
        url: url.trim_end_matches('/').to_string(),
        provider: provider?,
        credential: raw.credential.clone()?,
        walk: GitlabWalk {
            personal: raw.personal,
            groups: raw.groups,
            projects: raw.projects,
            deploy_tokens: raw.deploy_tokens,
            instance_deploy_tokens: raw.instance_deploy_tokens,
        },
        max_concurrency,
    })
}
