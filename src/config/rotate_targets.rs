//! Validation of the delivery targets that call a server (`vault_kv`), reusing the checks
//! of the provider kind that calls the same server, so a URL or namespace the `vault` kind
//! refuses is refused here with the same words. Pure.

use crate::provider::ProviderKind;
use crate::schema::rotate::{Deliver, RawVaultKv, VaultKv};

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
