//! The rotation of a discovered token (a source's `rotate:` block, checked in
//! `config::sources::rotate`): the block is validated again for each token the source lists,
//! by the same `config::rotate::validate` a configured token goes through, with the token's
//! own provider and its delivery back where it was found:
//!
//! - a directory's file: the `file` target on that path (replaced atomically, mode kept);
//! - a Kubernetes Secret's key: the `kubernetes_secret` target on that Secret and key, with
//!   the source's server and credential and the block's `restart` workloads.
//!
//! A token the block does not suit (its provider is not one the rotator renews, it holds no
//! value) stays in the inventory, watched but not rotated, and is reported on the source's
//! health ([`NotRotated`]); it never fails the listing. Its rotation record is keyed by its
//! identity, so it resumes where it stopped if it leaves the listing and comes back.

use std::collections::BTreeMap;

use serde_saphyr::Spanned;

use super::{Discovered, Identity};
use crate::config::sources::rotate::SourceRotate;
use crate::config::sources::{SourceKind, SourceSpec};
use crate::provider::ProviderConfig;
use crate::schema::TokenSpec;
use crate::schema::rotate::{RawDeliver, RawKubernetesSecret, RotateSpec};
use crate::secret::SecretSource;

/// A discovered token its source's `rotate:` does not apply to.
#[derive(Clone, Debug, PartialEq)]
pub struct NotRotated {
    /// Its inventory name (`<source>/<name>`).
    pub token: String,
    /// `no_value` (the source does not hold its value: a legacy service-account token) or
    /// `rotator_unfit` (the block's rotator does not suit the token's provider, or lacks a
    /// setting this token needs).
    pub reason: &'static str,
    /// The validation's sentences, with paths and lines; never a value.
    pub detail: String,
}

/// Per source, the tokens its `rotate:` does not apply to.
pub type Notes = BTreeMap<String, Vec<NotRotated>>;

/// The token's rotation and the key of its record in `rotation.json`, or why it has none.
pub fn for_token(
    spec: &SourceSpec,
    rotate: &SourceRotate,
    d: &Discovered,
    token: &TokenSpec,
    provider: Option<&ProviderConfig>,
) -> Result<(RotateSpec, String), NotRotated> {
    let not = |reason, detail: String| NotRotated {
        token: token.name.clone(),
        reason,
        detail,
    };
    let key = match &d.identity {
        Identity::File(path) => format!("file:{}", path.display()),
        Identity::Listed(id) => id.clone(),
        Identity::Accessor { .. } => {
            return Err(not(
                "no_value",
                "a token accessor has no value to rotate".into(),
            ));
        }
    };
    let target = match (&spec.kind, &token.secret) {
        (SourceKind::Directory { .. }, Some(SecretSource::File(file))) => RawDeliver {
            file: Some(file.path().to_string_lossy().into_owned()),
            ..RawDeliver::default()
        },
        (SourceKind::KubernetesSecrets(k), Some(SecretSource::Memory(_))) => {
            // The name is `<namespace>/<secret>/<key>`: none of the three may hold a `/`.
            let parts: Vec<&str> = d.name.split('/').collect();
            let [namespace, name, key] = parts[..] else {
                return Err(not(
                    "no_value",
                    "the Secret's namespace, name and key are not known".into(),
                ));
            };
            RawDeliver {
                kubernetes_secret: Some(Spanned::new(
                    RawKubernetesSecret {
                        url: Some(k.url.clone()),
                        token: k.credential.clone(),
                        ca_file: k.ca_file.clone(),
                        namespace: Some(namespace.to_string()),
                        name: Some(name.to_string()),
                        key: Some(key.to_string()),
                        restart: rotate.restart.clone(),
                    },
                    rotate.raw.referenced,
                    rotate.raw.referenced,
                )),
                ..RawDeliver::default()
            }
        }
        _ => {
            return Err(not(
                "no_value",
                "the source does not hold this token's value (a legacy service-account token is listed by its dates)".into(),
            ));
        }
    };
    let mut raw = rotate.raw.clone();
    // A renewal keeps the value: nothing to deliver, and the validation refuses a target.
    let renews = match &raw.value.rotator {
        Some(r) => r.value.kind.value == "vault_renew",
        None => provider.is_some_and(|p| p.kind() == "vault"),
    };
    if !renews {
        raw.value.deliver.push(Spanned::new(
            target,
            rotate.raw.referenced,
            rotate.raw.referenced,
        ));
    }
    let (checked, issues) = crate::config::rotate::validate(&rotate.at, token, provider, raw);
    match checked {
        Some(r) if issues.is_empty() => Ok((r, key)),
        _ => Err(not(
            "rotator_unfit",
            issues
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )),
    }
}

#[cfg(test)]
mod tests;
