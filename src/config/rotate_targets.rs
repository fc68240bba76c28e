//! Validation of the delivery targets that call a server (`vault_kv`), reusing the checks
//! of the provider kind that calls the same server, so a URL or namespace the `vault` kind
//! refuses is refused here with the same words. Pure.

use crate::provider::ProviderKind;
use crate::schema::rotate::{Deliver, KubernetesSecret, RawKubernetesSecret, RawVaultKv, VaultKv};

/// The KV v2 mount when the entry names none (the dev server's and the docs' default).
pub const DEFAULT_KV_MOUNT: &str = "secret";

pub fn vault_kv(raw: RawVaultKv) -> Result<Deliver, String> {
    let token = raw.token.ok_or(
        "token is required: the Vault token that writes the secret ({env: NAME}, {file: PATH} or {exec: [...]}), whose policy allows read, create and update on MOUNT/data/PATH",
    )?;
    let server = crate::provider::vault::Config {
        url: raw.url,
        address: None,
        namespace: raw.namespace,
        token: Some(token.clone()),
        require_accessor: false,
        max_concurrency: None,
    };
    server.validate()?;
    let mount = segments("mount", raw.mount.as_deref().unwrap_or(DEFAULT_KV_MOUNT))?;
    let path = segments(
        "path",
        raw.path
            .as_deref()
            .ok_or("path is required: the secret's path under the mount (app/token)")?,
    )?;
    let key = raw
        .key
        .filter(|k| !k.trim().is_empty())
        .ok_or("key is required: the key of the secret's data that holds the token")?;
    Ok(Deliver::VaultKv(Box::new(VaultKv {
        url: server.base_url()?,
        namespace: server.namespace,
        mount,
        path,
        key,
        token,
    })))
}

pub fn kubernetes_secret(raw: RawKubernetesSecret) -> Result<Deliver, String> {
    let server = crate::provider::kubernetes::Config {
        url: raw.url,
        api_server: None,
        token: raw.token,
        ca_file: raw.ca_file,
        max_concurrency: None,
    };
    server.validate()?;
    let namespace = dns_name("namespace", raw.namespace)?;
    let name = dns_name("name", raw.name)?;
    let key = raw
        .key
        .filter(|k| {
            !k.is_empty()
                && k.len() <= 253
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
        .ok_or("key is required: the Secret's data key (letters, digits, -, _ and .)")?;
    let mut restart = Vec::new();
    for w in raw.restart {
        let resource = match w.kind.as_str() {
            "Deployment" => "deployments",
            "StatefulSet" => "statefulsets",
            "DaemonSet" => "daemonsets",
            other => {
                return Err(format!(
                    "restart: kind {other:?} is not Deployment, StatefulSet or DaemonSet"
                ));
            }
        };
        restart.push((resource, dns_name("restart name", Some(w.name))?));
    }
    Ok(Deliver::KubernetesSecret(Box::new(KubernetesSecret {
        url: server.server().to_string(),
        token: server.own_token(),
        ca_file: server.ca_file(),
        namespace,
        name,
        key,
        restart,
    })))
}

/// A namespace or object name: a DNS subdomain (lower-case letters, digits, `-` and `.`).
fn dns_name(field: &str, value: Option<String>) -> Result<String, String> {
    let v = value.ok_or_else(|| format!("{field} is required"))?;
    let ok = !v.is_empty()
        && v.len() <= 253
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
        && !v.starts_with(['-', '.'])
        && !v.ends_with(['-', '.']);
    if ok {
        Ok(v)
    } else {
        Err(format!(
            "{field}: {v:?} is not a Kubernetes name (lower-case letters, digits, - and .)"
        ))
    }
}

/// A mount or secret path, without its outer `/`: segments that are neither empty nor `.`
/// or `..`, in characters that need no escaping in a URL path (the API path is built from it).
fn segments(field: &str, value: &str) -> Result<String, String> {
    let trimmed = value.trim_matches('/');
    let ok = !trimmed.is_empty()
        && trimmed
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
        && trimmed
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '?' | '#' | '%' | '"' | '\\'));
    if ok {
        Ok(trimmed.to_string())
    } else {
        Err(format!(
            "{field}: must be a path like app/token (no empty, . or .. segments, no spaces, ?, #, %, quotes or backslashes)"
        ))
    }
}
