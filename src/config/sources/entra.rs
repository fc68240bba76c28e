//! The settings of a `kind: entra_id` source (docs/sources.md), checked where they are
//! written. The listing is `src/sources/entra_id.rs`.

use super::{Issues, RawSource, SourceKind, line_of};
use crate::provider::ProviderKind;
use crate::provider::entra_id::graph;

/// What an `entra_id` source reads, and where.
#[derive(Clone, Debug, PartialEq)]
pub struct EntraSettings {
    /// The directory (tenant) id or a verified domain name.
    pub tenant_id: String,
    /// The application (client) id of the app that lists.
    pub client_id: String,
    /// The identity platform (its token endpoint); `url` in the config.
    pub url: String,
    pub graph_url: String,
    /// List the service principals' credentials too.
    pub service_principals: bool,
    /// Name each credential's owner (`$expand=owners`).
    pub read_owners: bool,
}

/// The `entra_id` arm of the validation: `provider` is the static entry already checked.
pub(super) fn decode(
    raw: &RawSource,
    at: &dyn Fn(&str) -> String,
    provider: Option<String>,
    issues: &mut Issues,
) -> Option<SourceKind> {
    let line = line_of(&raw.kind);
    let tenant_id = raw.tenant_id.as_ref().map(|t| t.value.clone());
    let client_id = raw.client_id.as_ref().map(|t| t.value.clone());
    if tenant_id.is_none() || client_id.is_none() {
        issues.push(
            at("tenant_id"),
            "an entra_id source needs tenant_id and client_id: the tenant, and the app whose credential lists",
            line,
        );
    }
    if raw.credential.is_none() {
        issues.push(
            at("credential"),
            "an entra_id source needs credential: {env: NAME}, {file: PATH} or {exec: [...]}, the listing app's client secret, or its private key and certificate as PEM",
            line,
        );
    }
    let url = raw
        .url
        .as_ref()
        .map_or(graph::DEFAULT_LOGIN_URL, |u| u.value.as_str())
        .trim_end_matches('/')
        .to_string();
    let graph_url = raw
        .graph_url
        .as_ref()
        .map_or(graph::DEFAULT_GRAPH_URL, |u| u.value.as_str())
        .trim_end_matches('/')
        .to_string();
    // The provider kind's own checks: the tenant as a path segment, the client id a GUID,
    // both addresses by the naming rule.
    let (Some(tenant_id), Some(client_id)) = (tenant_id, client_id) else {
        return None;
    };
    let check = crate::provider::entra_id::Config {
        tenant_id: tenant_id.clone(),
        client_id: client_id.clone(),
        url: Some(url.clone()),
        graph_url: Some(graph_url.clone()),
        scope: None,
        graph: true,
        max_concurrency: None,
    };
    if let Err(e) = check.validate() {
        let (field, spanned) = if e.starts_with("url") {
            ("url", raw.url.as_ref())
        } else if e.starts_with("graph_url") {
            ("graph_url", raw.graph_url.as_ref())
        } else if e.starts_with("client_id") {
            ("client_id", raw.client_id.as_ref())
        } else {
            ("tenant_id", raw.tenant_id.as_ref())
        };
        issues.push(at(field), e, spanned.and_then(line_of).or(line));
        return None;
    }
    Some(SourceKind::EntraId {
        settings: EntraSettings {
            tenant_id,
            client_id,
            url,
            graph_url,
            service_principals: raw.service_principals,
            read_owners: raw.read_owners,
        },
        provider: provider?,
        credential: raw.credential.clone()?,
    })
}
