//! `entra_id_password`: a new client secret for the `entra_id` provider's app registration
//! (Microsoft Graph v1.0 `POST /applications(appId='{appId}')/addPassword`), delivered and
//! tested by the provider's own client-credentials probe, then the old secret removed
//! (`removePassword` with its `keyId`) at finish. Secrets coexist until then, so a failed
//! test leaves both working.
//!
//! Graph is called with an access token from the client-credentials grant, as the app itself
//! (its current secret) or as a managing app (`client_id`, `client_secret`). The least
//! permission: the application permission `Application.ReadWrite.OwnedBy`, with the caller
//! an owner of the app registration. The readers are pure; errors name a status and Graph's
//! documented error code, never a value or Graph's message.

use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use zeroize::Zeroize;

use crate::provider::ProviderConfig;
use crate::provider::entra_id::graph::{self, ClientCredential};
use crate::provider::entra_id::{Config, assertion, is_guid};
use crate::provider::http::{self, Response};
use crate::schema::TokenSpec;
use crate::schema::rotate::EntraIdPassword;
use crate::secret::Secret;

use super::super::machine::Pending;
use super::{read_secret, unreachable};

fn config(provider: &ProviderConfig) -> Result<&Config, String> {
    match provider {
        ProviderConfig::EntraId(c) => Ok(c),
        _ => Err("entra_id_password needs an entra_id provider".into()),
    }
}

fn graph_base(c: &Config) -> &str {
    c.graph_url().trim_end_matches('/')
}

/// `{graph}/v1.0/applications(appId='{appId}')/{action}`; the app id is a checked GUID.
pub fn action_url(graph_url: &str, app_id: &str, action: &str) -> String {
    format!(
        "{}/v1.0/applications(appId='{app_id}')/{action}",
        graph_url.trim_end_matches('/')
    )
}

/// Graph's error codes named in an error; any other is not quoted.
const GRAPH_CODES: [&str; 6] = [
    "Authorization_RequestDenied",
    "Authentication_MissingOrMalformed",
    "InvalidAuthenticationToken",
    "Request_BadRequest",
    "Request_ResourceNotFound",
    "TooManyRequests",
];

/// The error of a Graph refusal: the call, the status and Graph's documented `error.code`,
/// with what to do for the permission errors.
pub fn graph_refusal(call: &str, answer: &Response) -> String {
    #[derive(Deserialize)]
    struct Body {
        error: Option<Inner>,
    }
    #[derive(Deserialize)]
    struct Inner {
        code: Option<String>,
    }
    let code = serde_json::from_slice::<Body>(&answer.body)
        .ok()
        .and_then(|b| b.error)
        .and_then(|e| e.code);
    let named = match code.as_deref() {
        Some(c) if GRAPH_CODES.contains(&c) => c.to_string(),
        Some(_) => "an undocumented error code".into(),
        None => "no Graph error body".into(),
    };
    match answer.status {
        401 | 403 => format!(
            "Graph refused {call} ({}, {named}): the caller needs the application permission Application.ReadWrite.OwnedBy and must be an owner of the app registration",
            answer.status
        ),
        404 => format!("Graph finds no application with this client_id ({call}: 404, {named})"),
        429 => format!("Graph is throttling {call} (429)"),
        s => format!("Graph answered {call} with status {s} ({named})"),
    }
}

/// An access token for Graph, from the client-credentials grant: as the managing app, or as
/// the app itself with the secret its token's source holds now.
async fn graph_token(
    c: &Config,
    rotator: &EntraIdPassword,
    token: &TokenSpec,
) -> Result<Secret, String> {
    let (client_id, secret) = match &rotator.manager {
        Some((id, source)) => (
            id.as_str(),
            source
                .read()
                .await
                .map_err(|e| format!("cannot read client_secret: {e}"))?,
        ),
        None => (c.client_id.as_str(), read_secret(token).await?),
    };
    if assertion::is_pem(secret.expose()) {
        return Err(
            "entra_id_password rotates client secrets; this credential is a certificate".into(),
        );
    }
    let endpoint = graph::token_endpoint(c.login_url(), &c.tenant_id);
    let scope = format!("{}/.default", graph_base(c));
    let grant = graph::grant(
        &http::client(),
        &endpoint,
        client_id,
        &scope,
        ClientCredential::Secret(secret.expose()),
    )
    .await
    .map_err(unreachable)?;
    match grant {
        graph::Grant::Issued(token) => Ok(token),
        graph::Grant::Unreadable(what) => Err(format!(
            "the token endpoint's answer is not as documented: {what}"
        )),
        graph::Grant::Refused { status, error, .. } => {
            let e = error.unwrap_or_default();
            let codes: Vec<String> = e.codes.iter().map(|c| format!("AADSTS{c}")).collect();
            Err(format!(
                "Entra ID refused the token request for Graph (status {status}, error {}{}{})",
                e.error
                    .as_deref()
                    .map(crate::provider::oauth2::safe_code)
                    .unwrap_or_else(|| "none".into()),
                if codes.is_empty() { "" } else { " " },
                codes.join(" ")
            ))
        }
    }
}

/// The app's client secrets, as `GET /applications(appId=...)` lists them.
async fn application(c: &Config, bearer: &Secret) -> Result<graph::Application, String> {
    let url = graph::application_url(graph_base(c), &c.client_id);
    let mut answer = graph::get(&http::client(), &url, bearer)
        .await
        .map_err(unreachable)?;
    let app = if answer.status == 200 {
        graph::parse_application(&answer.body)
            .map_err(|_| "Graph's application answer is not the documented JSON".to_string())
    } else {
        Err(graph_refusal("the application read", &answer))
    };
    answer.body.zeroize();
    app
}

/// Finds the old secret's `keyId` (by Graph's hint), then `addPassword`. The answer holds
/// the new secret: the caller saves it before anything else and never repeats this call
/// after a crash (`Rotator::idempotent`).
pub async fn create(
    rotator: &EntraIdPassword,
    token: &TokenSpec,
    provider: &ProviderConfig,
    now: Timestamp,
) -> Result<Pending, String> {
    let c = config(provider)?;
    let current = read_secret(token).await?;
    if assertion::is_pem(current.expose()) {
        return Err("entra_id_password rotates client secrets; this token is a certificate".into());
    }
    let bearer = graph_token(c, rotator, token).await?;
    let app = application(c, &bearer).await?;
    let old = old_key_id(&app, current.expose())?;
    let end = now
        .checked_add(SignedDuration::try_from(rotator.expires_in).unwrap_or_default())
        .map_err(|_| "expires_in is out of range")?;
    let body = serde_json::json!({"passwordCredential": {
        "displayName": rotator.display_name,
        "endDateTime": end.to_string(),
    }});
    let request = http::client()
        .post(action_url(graph_base(c), &c.client_id, "addPassword"))
        .bearer_auth(bearer.expose())
        .header("accept", http::JSON)
        .json(&body);
    let mut answer = http::send(request).await.map_err(unreachable)?;
    let added = parse_added(&answer);
    answer.body.zeroize();
    let mut pending = added?;
    if pending.key_id.as_deref() == Some(old.as_str()) {
        return Err("Graph answered addPassword with the old secret's keyId".into());
    }
    pending.old_key_id = Some(old);
    Ok(pending)
}

/// The `keyId` of the app's client secret that begins as `secret` does (Graph's 3-character
/// `hint`). Pure. Two such secrets cannot be told apart, so nothing is added then.
pub fn old_key_id(app: &graph::Application, secret: &str) -> Result<String, String> {
    let prefix: String = secret.chars().take(3).collect();
    let all = &app.password_credentials;
    let matching: Vec<&graph::Credential> = all
        .iter()
        .filter(|c| c.hint.as_deref() == Some(prefix.as_str()))
        .collect();
    match matching.as_slice() {
        [one] => one.key_id.clone().filter(|k| is_guid(k)).ok_or_else(|| {
            "Graph lists the token's secret without a keyId; nothing was added".into()
        }),
        [] => Err(format!(
            "none of the app's {} client secrets begins as the token's does (Graph's hint): it is not a secret of this app; nothing was added",
            all.len()
        )),
        many => Err(format!(
            "{} of the app's client secrets begin as the token's does (Graph's hint), so the one to remove cannot be told: remove the unused one by hand; nothing was added",
            many.len()
        )),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Added {
    key_id: Option<String>,
    secret_text: Option<String>,
    end_date_time: Option<String>,
}

/// Reads `addPassword`'s answer: 200 with the new `passwordCredential`. Pure.
pub fn parse_added(answer: &Response) -> Result<Pending, String> {
    if answer.status != 200 {
        return Err(graph_refusal("addPassword", answer));
    }
    let added: Added = serde_json::from_slice(&answer.body)
        .map_err(|_| "Graph's addPassword answer is not the documented JSON".to_string())?;
    let key_id = added
        .key_id
        .filter(|k| is_guid(k))
        .ok_or("Graph's addPassword answer has no keyId")?;
    let secret = added
        .secret_text
        .filter(|s| !s.trim().is_empty())
        .ok_or("Graph's addPassword answer has no secretText")?;
    Ok(Pending {
        value: Some(secret),
        key_id: Some(key_id),
        expires_at: added
            .end_date_time
            .and_then(|e| graph::credential_time(Some(&e)).ok().flatten()),
        ..Pending::default()
    })
}

/// `removePassword` of the old secret, with the token's sources now holding the new one.
/// Repeatable: a keyId the app no longer lists is already removed (a finish repeated after
/// a crash).
pub async fn remove(
    rotator: &EntraIdPassword,
    token: &TokenSpec,
    provider: &ProviderConfig,
    old_key_id: &str,
    new_key_id: Option<&str>,
) -> Result<(), String> {
    let c = config(provider)?;
    if new_key_id.is_some_and(|n| n.eq_ignore_ascii_case(old_key_id)) {
        return Err("the secret to remove is the new one: not removed".into());
    }
    let bearer = graph_token(c, rotator, token).await?;
    let app = application(c, &bearer).await?;
    let listed = |id: &str| {
        app.password_credentials.iter().any(|p| {
            p.key_id
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case(id))
        })
    };
    if !listed(old_key_id) {
        return Ok(());
    }
    if new_key_id.is_some_and(|n| !listed(n)) {
        return Err(
            "the app no longer lists the new secret: the old one is kept (check the app registration)"
                .into(),
        );
    }
    let request = http::client()
        .post(action_url(graph_base(c), &c.client_id, "removePassword"))
        .bearer_auth(bearer.expose())
        .header("accept", http::JSON)
        .json(&serde_json::json!({ "keyId": old_key_id }));
    let answer = http::send(request).await.map_err(unreachable)?;
    check_removed(&answer)
}

/// Reads `removePassword`'s answer: 204 No Content. Pure.
pub fn check_removed(answer: &Response) -> Result<(), String> {
    match answer.status {
        204 | 200 => Ok(()),
        _ => Err(graph_refusal("removePassword", answer)),
    }
}

#[cfg(test)]
mod tests;
