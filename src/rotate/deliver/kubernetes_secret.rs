//! `kubernetes_secret`: one key of a Secret, then a restart annotation on named workloads.
//!
//! The Secret is read (`GET /api/v1/namespaces/{ns}/secrets/{name}`) and patched
//! (`PATCH`, `application/merge-patch+json`) with `metadata.resourceVersion` set to the
//! version read: the API server refuses the patch with 409 Conflict when anyone wrote in
//! between, instead of one write being lost. Only the key is in the patch; the others stay.
//! The Secret is never created: it belongs to whoever deploys the consumers.
//!
//! Pods that read the Secret as env vars or through subPath mounts never see an update, so
//! each named Deployment/StatefulSet/DaemonSet gets its pod template annotated
//! (`PATCH /apis/apps/v1/...`, `application/strategic-merge-patch+json`), which rolls it as
//! `kubectl rollout restart` does. The annotation's value is the new value's fingerprint:
//! repeating it after a crash changes nothing, so no second rollout.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::provider::http::{self, Response};
use crate::schema::rotate::KubernetesSecret;

/// The pod-template annotation that rolls the named workloads.
pub const RESTART_ANNOTATION: &str = "api-token-exporter/rotated";

/// The read, the patch and the restarts together.
pub const TIMEOUT: Duration = Duration::from_secs(60);

pub async fn deliver(k: &KubernetesSecret, value: &str) -> Result<(), String> {
    bounded(k, write(k, value)).await
}

/// `work` on target `k` within [`TIMEOUT`], its error prefixed with the Secret it concerns.
async fn bounded<T>(
    k: &KubernetesSecret,
    work: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Err(format!("the API server did not answer within {TIMEOUT:?}")))
        .map_err(|e| format!("kubernetes_secret {}/{}: {e}", k.namespace, k.name))
}

/// A target's API server: the client (with the target's CA), its token, the Secret's URL.
struct Api {
    client: http::Client,
    token: crate::secret::Secret,
    secret_url: String,
}

impl Api {
    async fn of(k: &KubernetesSecret) -> Result<Api, String> {
        let client = match &k.ca_file {
            Some(path) => crate::provider::kubernetes::client_with_ca(path)?,
            None => http::client(),
        };
        let token = k
            .token
            .read()
            .await
            .map_err(|e| format!("cannot read its token: {e}"))?;
        let secret_url = http::join(
            &k.url,
            &format!("/api/v1/namespaces/{}/secrets/{}", k.namespace, k.name),
        );
        Ok(Api {
            client,
            token,
            secret_url,
        })
    }

    /// One call with the token as its bearer.
    async fn send(&self, request: http::RequestBuilder) -> Result<Response, String> {
        http::send(
            request.sensitive_header("authorization", format!("Bearer {}", self.token.expose())),
        )
        .await
        .map_err(|o| format!("the API server cannot be reached ({})", o.reason.as_str()))
    }

    /// `GET` of the Secret.
    async fn read(&self) -> Result<Response, String> {
        self.send(self.client.get(self.secret_url.as_str())).await
    }
}

async fn write(k: &KubernetesSecret, value: &str) -> Result<(), String> {
    let api = Api::of(k).await?;
    let read = api.read().await?;
    let (version, current) = secret_version(&read, &k.key)?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(value);
    if current.as_deref() != Some(encoded.as_str()) {
        let patch = json!({
            "metadata": { "resourceVersion": version },
            "data": { k.key.as_str(): encoded },
        });
        let answer = api
            .send(
                api.client
                    .patch(api.secret_url.as_str())
                    .json(&patch)
                    .header("content-type", "application/merge-patch+json"),
            )
            .await?;
        match answer.status {
            200 => {}
            409 => {
                return Err(format!(
                    "the Secret changed since it was read (resourceVersion {version}: 409 Conflict); delivery is retried"
                ));
            }
            s => {
                return Err(format!(
                    "the patch was refused ({})",
                    refused(s, "patch on the Secret")
                ));
            }
        }
    }
    let fingerprint = crate::secret::fingerprint(value).replace(':', "-");
    for (resource, name) in &k.restart {
        let url = http::join(
            &k.url,
            &format!("/apis/apps/v1/namespaces/{}/{resource}/{name}", k.namespace),
        );
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {RESTART_ANNOTATION: fingerprint}}}}});
        let answer = api
            .send(
                api.client
                    .patch(url.as_str())
                    .json(&patch)
                    .header("content-type", "application/strategic-merge-patch+json"),
            )
            .await?;
        if answer.status != 200 {
            return Err(format!(
                "the restart of {resource}/{name} was refused ({})",
                refused(answer.status, "patch on the workload")
            ));
        }
    }
    Ok(())
}

/// The Secret's `resourceVersion` and the key's current (base64) value.
pub fn secret_version(read: &Response, key: &str) -> Result<(String, Option<String>), String> {
    if read.status != 200 {
        return Err(format!(
            "the read was refused ({})",
            refused(read.status, "get on the Secret")
        ));
    }
    let body: Value = serde_json::from_slice(&read.body)
        .map_err(|_| "the API server's answer is not JSON".to_string())?;
    let version = body["metadata"]["resourceVersion"]
        .as_str()
        .filter(|v| !v.is_empty())
        .ok_or("the API server's answer has no metadata.resourceVersion")?;
    Ok((
        version.to_string(),
        body["data"][key].as_str().map(str::to_string),
    ))
}

fn refused(status: u16, needs: &str) -> String {
    match status {
        401 => "401: the API server does not accept the exporter's token".into(),
        403 => format!("403 Forbidden: RBAC must allow {needs} (resourceNames)"),
        404 => "404 Not Found: the object does not exist (it is never created)".into(),
        422 => "422 Unprocessable Entity".into(),
        s => format!("status {s}"),
    }
}

/// The key's value as the Secret holds it now: what the test step of a token discovered in
/// that Secret probes, since its source holds the value it listed until it lists again.
/// The answer (every key of the Secret) is wiped once read.
pub async fn read_key(k: &KubernetesSecret) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
    bounded(k, async {
        let mut answer = Api::of(k).await?.read().await?;
        let found = secret_version(&answer, &k.key).map(|(_, value)| value);
        zeroize::Zeroize::zeroize(&mut answer.body);
        let encoded = zeroize::Zeroizing::new(
            found?.ok_or_else(|| format!("the Secret has no key {:?}", k.key))?,
        );
        let mut bytes = zeroize::Zeroizing::new(Vec::new());
        base64::engine::general_purpose::STANDARD
            .decode_vec(encoded.as_bytes(), &mut bytes)
            .map_err(|_| "the key's value is not base64".to_string())?;
        Ok(bytes)
    })
    .await
}
