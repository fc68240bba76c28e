//! A source's `rotate:` block (docs/rotation.md, "Rotating discovered tokens"): one block for
//! every token a source finds WITH its value (a directory's files, Kubernetes Secrets' keys).
//! Listing-only sources (gitlab, github, cloudflare, okta, entra_id, vault, ...) never hold a
//! value, so they have nothing to rotate or deliver, and the block is refused on them.
//!
//! What can be checked without a token is checked here, with the line: the timing, the
//! rotator and its settings (by `config::rotate`, the same words as on a token), `restart`.
//! Whether the rotator suits a token's provider is known only once the token is listed:
//! `sources::rotate` validates the block again for each discovered token, with its delivery
//! back where it was found, and a token it does not suit stays in the inventory, unrotated.

use std::sync::Arc;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{Issues, line_of};
use crate::schema::rotate::{RawDeliver, RawKubernetesSecret, RawRotate, RawRotator, RawWorkload};
use crate::schema::{Labels, Memo, TokenSpec};
use crate::secret::{MemorySource, SecretSource};

/// The source kinds whose tokens carry their value, and so may rotate.
pub const ROTATING_KINDS: &[&str] = &["directory", "kubernetes_secrets"];

/// The rotators a source may apply to every token it finds. The others name one token's own
/// files in their settings (`refresh_token_file`, `access_key_id_file`), which many tokens
/// cannot share: such a token is configured under `tokens:`.
pub const SOURCE_ROTATORS: &[&str] = &["vault_renew", "gitlab_rotate"];

/// `rotate:` as written under a source: a token's block without `deliver` (refused, with
/// its line: the value goes back where it was found), plus `restart` for Secrets.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSourceRotate {
    pub before: Option<Spanned<String>>,
    pub before_fraction: Option<Spanned<f64>>,
    pub max_age: Option<Spanned<String>>,
    pub rotator: Option<Spanned<RawRotator>>,
    /// Refused: read only to name its line.
    #[serde(default)]
    pub deliver: Vec<Spanned<RawDeliver>>,
    #[serde(default)]
    pub dry_run: bool,
    /// `kubernetes_secrets` only: workloads restarted after each delivery to a Secret.
    #[serde(default)]
    pub restart: Vec<RawWorkload>,
}

/// A source's checked `rotate:` block, applied to each token the source discovers.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceRotate {
    /// The block as a token's (`deliver` empty), validated again per discovered token with
    /// that token's delivery added.
    pub raw: Spanned<RawRotate>,
    /// Workloads restarted after a delivery to a Secret (`kubernetes_secrets`).
    pub restart: Vec<RawWorkload>,
    /// The source's path in the file (`sources[2]`), for the per-token messages.
    pub at: String,
}

/// Checks `raw`, the `rotate:` of source `name` of kind `kind` at `at` (`sources[2]`).
pub(super) fn decode(
    at: &str,
    name: &str,
    kind: &str,
    raw: Spanned<RawSourceRotate>,
    issues: &mut Issues,
) -> Option<SourceRotate> {
    let block = raw.referenced;
    let line = line_of(&raw);
    let r = raw.value;
    let before = issues.0.len();
    if !ROTATING_KINDS.contains(&kind) {
        issues.push(
            format!("{at}.rotate"),
            format!(
                "source \"{name}\": rotate applies to sources that hold each token's value ({}); a {kind} source lists tokens without their value, so there is nothing to rotate or deliver (configure a token under tokens: to rotate it)",
                ROTATING_KINDS.join(", ")
            ),
            line,
        );
        return None;
    }
    if let Some(d) = r.deliver.first() {
        issues.push(
            format!("{at}.rotate.deliver"),
            format!(
                "source \"{name}\": a discovered token's new value goes back where it was found ({}); deliver cannot be set on a source",
                if kind == "directory" {
                    "its own file"
                } else {
                    "its own Secret key"
                }
            ),
            line_of(d),
        );
    }
    if kind != "kubernetes_secrets" && !r.restart.is_empty() {
        issues.push(
            format!("{at}.rotate.restart"),
            format!("source \"{name}\": restart applies to kubernetes_secrets sources"),
            line,
        );
    } else if !r.restart.is_empty() {
        let probe = RawKubernetesSecret {
            namespace: Some("ns".into()),
            name: Some("secret".into()),
            key: Some("key".into()),
            restart: r.restart.clone(),
            ..RawKubernetesSecret::default()
        };
        if let Err(e) = crate::config::rotate_targets::kubernetes_secret(probe) {
            issues.push(
                format!("{at}.rotate.restart"),
                format!("source \"{name}\": {e}"),
                line,
            );
        }
    }
    let rotator_kind = r.rotator.as_ref().map(|k| k.value.kind.value.clone());
    if let (Some(k), Some(rot)) = (&rotator_kind, &r.rotator)
        && crate::config::rotate::ROTATORS.contains(&k.as_str())
        && !SOURCE_ROTATORS.contains(&k.as_str())
    {
        issues.push(
            format!("{at}.rotate.rotator.kind"),
            format!(
                "source \"{name}\": rotator {k} cannot rotate a source's tokens (its settings name one token's own files, which many tokens cannot share); a source may use {}, or configure the token under tokens:",
                SOURCE_ROTATORS.join(", ")
            ),
            line_of(&rot.value.kind),
        );
        return None;
    }
    let raw = Spanned::new(
        RawRotate {
            before: r.before,
            before_fraction: r.before_fraction,
            max_age: r.max_age,
            rotator: r.rotator,
            deliver: Vec::new(),
            dry_run: r.dry_run,
        },
        block,
        block,
    );
    // The checks that need no token: the timing, the rotator's own settings. A value-
    // changing rotator is given a stand-in delivery here; each token gets its real one.
    let mut trial = raw.clone();
    if rotator_kind.as_deref().is_some_and(|k| k != "vault_renew") {
        trial.value.deliver.push(Spanned::new(
            RawDeliver {
                file: Some("/dev/null".into()),
                ..RawDeliver::default()
            },
            block,
            block,
        ));
    }
    let (_, found) = crate::config::rotate::validate(at, &stand_in(name), None, trial);
    let token_said = format!("token \"{name}\": ");
    for mut issue in found {
        if let Some(rest) = issue.message.strip_prefix(&token_said) {
            issue.message = format!("source \"{name}\": {rest}");
        }
        issues.0.push(issue);
    }
    (issues.0.len() == before).then(|| SourceRotate {
        raw,
        restart: r.restart,
        at: at.to_string(),
    })
}

/// A token with a value and no provider, to check the block before any token is listed.
fn stand_in(name: &str) -> TokenSpec {
    TokenSpec {
        name: name.to_string(),
        provider: String::new(),
        source: None,
        secret: Some(SecretSource::Memory(MemorySource::new(
            zeroize::Zeroizing::new(Vec::new()),
        ))),
        labels: Labels::default(),
        thresholds: crate::model::Thresholds {
            warning_before: std::time::Duration::ZERO,
            critical_before: std::time::Duration::ZERO,
        },
        probe_interval: std::time::Duration::from_secs(1),
        probe_timeout: std::time::Duration::from_secs(1),
        params: Default::default(),
        policies: Arc::default(),
        metric_labels: Memo::default(),
    }
}
