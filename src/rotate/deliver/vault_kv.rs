//! `vault_kv`: one key of a Vault / OpenBao KV v2 secret. The secret is read
//! (`GET /v1/{mount}/data/{path}`), the key set in its data, and the whole data written back
//! (`POST` to the same path) with `options.cas` = the version read, so a write by anyone else
//! in between makes Vault refuse ours instead of one of the two being lost. The other keys
//! are kept. A key that already holds the value is not written again: a delivery repeated
//! after a crash adds no version.
//!
//! Errors are fixed words with a status; Vault's own error text is matched only against
//! the documented check-and-set message and never repeated (it could echo a path or key).

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::provider::http::{self, Response};
use crate::schema::rotate::VaultKv;

/// A read and a write; Vault answers both in milliseconds.
pub const TIMEOUT: Duration = Duration::from_secs(30);

pub async fn deliver(kv: &VaultKv, value: &str) -> Result<(), String> {
    let at = format!("vault_kv {}/data/{}", kv.mount, kv.path);
    tokio::time::timeout(TIMEOUT, write(kv, &at, value))
        .await
        .unwrap_or_else(|_| Err(format!("{at}: Vault did not answer within {TIMEOUT:?}")))
}

async fn write(kv: &VaultKv, at: &str, value: &str) -> Result<(), String> {
    let (version, mut data) = read_current(kv).await?;
    if data.get(&kv.key).and_then(Value::as_str) == Some(value) {
        wipe(&mut data);
        return Ok(());
    }
    data.insert(kv.key.clone(), Value::String(value.to_string()));
    let written = write_cas(kv, version, &data).await;
    wipe(&mut data);
    written.map_err(|e| format!("{at}: {e}"))
}

/// The secret's current version and data (`GET /v1/{mount}/data/{path}`).
pub async fn read_current(kv: &VaultKv) -> Result<(u64, Map<String, Value>), String> {
    let at = format!("vault_kv {}/data/{}", kv.mount, kv.path);
    let read = send(kv, Method::Get)
        .await
        .map_err(|e| format!("{at}: {e}"))?;
    current(&read).map_err(|e| format!("{at}: {e}"))
}

/// Writes `data` as the secret's next version, only if `version` is still the current one.
pub async fn write_cas(
    kv: &VaultKv,
    version: u64,
    data: &Map<String, Value>,
) -> Result<(), String> {
    let body = json!({ "options": { "cas": version }, "data": data });
    let written = send(kv, Method::Post(&body)).await;
    if let Value::Object(mut m) = body {
        wipe(&mut m);
    }
    let written = written?;
    match written.status {
        200 | 204 => Ok(()),
        400 if errors(&written).iter().any(|e| e.contains("check-and-set")) => Err(format!(
            "the secret changed since it was read (check-and-set on version {version} refused); delivery is retried"
        )),
        s => Err(format!("the write was refused ({})", refused(s))),
    }
}

enum Method<'a> {
    Get,
    Post(&'a Value),
}

async fn send(kv: &VaultKv, method: Method<'_>) -> Result<Response, String> {
    let token = kv
        .token
        .read()
        .await
        .map_err(|e| format!("cannot read its token: {e}"))?;
    let url = http::join(&kv.url, &format!("/v1/{}/data/{}", kv.mount, kv.path));
    let client = http::client();
    let mut request = match method {
        Method::Get => client.get(url.as_str()),
        Method::Post(body) => client.post(url.as_str()).json(body),
    };
    request = request.sensitive_header("x-vault-token", token.expose().to_string());
    if let Some(ns) = &kv.namespace {
        request = request.header("x-vault-namespace", ns.as_str());
    }
    http::send(request)
        .await
        .map_err(|o| format!("Vault cannot be reached ({})", o.reason.as_str()))
}

/// The version to check against and the data to keep, from the read's answer. A path never
/// written is version 0 (check-and-set then means "only if it still does not exist"); a
/// deleted or destroyed version answers 404 with its metadata, and the next write follows it.
pub fn current(read: &Response) -> Result<(u64, Map<String, Value>), String> {
    let body: Value = serde_json::from_slice(&read.body).unwrap_or(Value::Null);
    let version = body["data"]["metadata"]["version"].as_u64();
    match read.status {
        200 => {
            let version = version.ok_or(
                "Vault's answer has no data.metadata.version (is the mount KV version 2?)",
            )?;
            let data = match &body["data"]["data"] {
                Value::Object(m) => m.clone(),
                Value::Null => Map::new(),
                _ => return Err("Vault's answer has data.data that is not an object".into()),
            };
            Ok((version, data))
        }
        404 => Ok((version.unwrap_or(0), Map::new())),
        s => Err(format!("the read was refused ({})", refused(s))),
    }
}

fn refused(status: u16) -> String {
    match status {
        403 => "403: the token's policy needs read, create and update on MOUNT/data/PATH".into(),
        400 => "400: is the mount a KV version 2 engine?".into(),
        405 => "405: is the mount a KV version 2 engine?".into(),
        503 => "503: Vault is sealed or in standby".into(),
        s => format!("status {s}"),
    }
}

fn errors(answer: &Response) -> Vec<String> {
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    body["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The data holds secrets (ours and the other keys): wipe the strings before they are freed.
fn wipe(m: &mut Map<String, Value>) {
    for v in m.values_mut() {
        match v {
            Value::String(s) => zeroize::Zeroize::zeroize(s),
            Value::Object(o) => wipe(o),
            _ => {}
        }
    }
}
