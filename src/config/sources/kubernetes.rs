//! The `kubernetes_secrets` source's settings, checked by the `kubernetes` provider kind's own
//! rules (the pod's token goes to the in-cluster API server only).

use std::path::PathBuf;

use super::{Issues, RawSource, SourceKind, line_of};
use crate::secret::SecretSource;

/// What a kubernetes_secrets source reads (`src/sources/kubernetes_secrets.rs`).
#[derive(Clone, Debug, PartialEq)]
pub struct KubernetesSecrets {
    pub url: String,
    pub credential: Option<SecretSource>,
    pub ca_file: Option<PathBuf>,
    pub label_selector: String,
    /// Empty: every namespace.
    pub namespaces: Vec<String>,
    /// The `static` entry for legacy service-account tokens; without it they are skipped.
    pub provider: Option<String>,
}

impl KubernetesSecrets {
    /// The same settings as a `kubernetes` provider entry, whose in-cluster defaults apply.
    pub fn as_provider(&self) -> crate::provider::kubernetes::Config {
        crate::provider::kubernetes::Config {
            url: Some(self.url.clone()),
            api_server: None,
            token: self.credential.clone(),
            ca_file: self.ca_file.clone(),
            max_concurrency: None,
        }
    }
}

/// The `kubernetes_secrets` arm of the validation: `provider` is the static entry already
/// checked, for legacy service-account tokens.
pub(super) fn decode(
    raw: &RawSource,
    at: &dyn Fn(&str) -> String,
    provider: Option<String>,
    issues: &mut Issues,
) -> Option<SourceKind> {
    let line = line_of(&raw.kind);
    let selector = match &raw.label_selector {
        Some(s) if !s.value.trim().is_empty() => Some(s.value.trim().to_string()),
        other => {
            issues.push(
                at("label_selector"),
                "a kubernetes_secrets source needs label_selector (for example api-token-exporter.io/watch=true): listing every Secret is never what is meant",
                other.as_ref().and_then(line_of).or(line),
            );
            None
        }
    };
    let namespaces = raw.namespaces.clone().unwrap_or_default();
    if raw.namespaces.is_some() && namespaces.is_empty() {
        issues.push(
            at("namespaces"),
            "an empty list reads no namespace; leave namespaces out to read every namespace",
            line,
        );
    }
    if let Some(bad) = namespaces.iter().find(|n| !is_dns_label(n)) {
        issues.push(
            at("namespaces"),
            format!("\"{bad}\" is not a namespace name (a DNS label: a-z, 0-9, -)"),
            line,
        );
    }
    let url = raw
        .url
        .as_ref()
        .map_or(crate::provider::kubernetes::DEFAULT_URL, |u| {
            u.value.as_str()
        });
    let settings = KubernetesSecrets {
        url: url.trim_end_matches('/').to_string(),
        credential: raw.credential.clone(),
        ca_file: raw.ca_file.as_ref().map(|p| PathBuf::from(&p.value)),
        label_selector: selector.clone().unwrap_or_default(),
        namespaces,
        provider,
    };
    // The kubernetes provider kind's rules: the pod's token goes to the
    // in-cluster API server only, and a CA file must hold a certificate.
    if let Err(e) = crate::provider::ProviderKind::validate(&settings.as_provider()) {
        let line = if e.starts_with("ca_file") {
            raw.ca_file.as_ref().and_then(line_of)
        } else {
            raw.url.as_ref().and_then(line_of)
        };
        let field = if e.starts_with("ca_file") {
            "ca_file"
        } else {
            "url"
        };
        issues.push(at(field), e, line.or(line_of(&raw.kind)));
        None
    } else {
        selector.map(|_| SourceKind::KubernetesSecrets(settings))
    }
}

/// A Kubernetes namespace name: a DNS label (RFC 1123).
fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}
