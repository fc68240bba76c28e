//! `kind: entra_id`: the client secrets (`passwordCredentials`) and certificates
//! (`keyCredentials`) of a tenant's app registrations, and optionally of its service
//! principals, from Microsoft Graph:
//!
//! - `GET /v1.0/applications?$select=id,appId,displayName,passwordCredentials,keyCredentials`
//! - `GET /v1.0/servicePrincipals?$select=...` (the same members) with `service_principals`;
//! - with `read_owners`, `$expand=owners` on the same calls (Graph then pages by 100).
//!
//! Every collection is read to its end through `@odata.nextLink` (same origin, at most
//! `graph::MAX_PAGES` pages). The source first gets an access token with the
//! client-credentials grant at the tenant's token endpoint, with a client secret or a
//! certificate (a signed client assertion): the pieces of the `entra_id` provider
//! (`provider::entra_id::{graph, assertion}`). The access token is held for the one listing
//! in a [`Secret`] and dropped with it; the listing credential never leaves the token
//! request's body.
//!
//! The listing holds no credential value: each credential enters with the dates Graph states
//! (`endDateTime`, `startDateTime`) under the source's `static` provider entry. Expired ones
//! stay listed (state `expired`): a credential still registered on an app is what an outage
//! comes from, and `states: [active]` leaves them out.

use std::time::Duration;

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;

use super::{Discovered, FailReason, Identity, ListError, Listing};
use crate::config::sources::EntraSettings;
use crate::provider::BuildContext;
use crate::provider::entra_id::graph::{
    self, APPLICATION_SELECT, Application, ClientCredential, Credential, PagesError,
};
use crate::provider::entra_id::{FAR_FUTURE, assertion};
use crate::provider::http;
use crate::secret::{Secret, SecretSource};

/// Lists the credentials of every application (and service principal).
pub async fn list(
    s: &EntraSettings,
    provider: &str,
    credential: &SecretSource,
    timeout: Duration,
    ctx: &BuildContext,
) -> Result<Listing, ListError> {
    let access_token = access_token(s, credential, timeout, &ctx.http).await?;
    let mut objects = Vec::new();
    let mut collections = vec![("app", "applications")];
    if s.service_principals {
        collections.push(("sp", "servicePrincipals"));
    }
    for (tag, collection) in collections {
        let first = first_page(&s.graph_url, collection, s.read_owners);
        let items = graph::collect_pages(&ctx.http, &first, &access_token, timeout)
            .await
            .map_err(|e| pages_error(collection, e))?;
        for item in items {
            objects.push((tag, parse_object(item)?));
        }
    }
    Ok(listing(&s.tenant_id, provider, objects, Timestamp::now()))
}

/// The first page of a collection. `$expand` makes Graph page by 100 at most, so `$top`
/// asks for no more then.
pub fn first_page(graph_url: &str, collection: &str, read_owners: bool) -> String {
    let base = graph_url.trim_end_matches('/');
    if read_owners {
        format!("{base}/v1.0/{collection}?$select={APPLICATION_SELECT}&$expand=owners&$top=100")
    } else {
        format!("{base}/v1.0/{collection}?$select={APPLICATION_SELECT}&$top=999")
    }
}

/// An application or service principal as the listing reads it: the credentials, and the
/// owners when expanded.
#[derive(Debug, Default, PartialEq)]
pub struct Object {
    pub app: Application,
    pub owners: Vec<String>,
}

/// One owner of `$expand=owners`: a user names itself by `userPrincipalName`, another
/// directory object (a service principal) by `displayName`, or at least its `id`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Owner {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    user_principal_name: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

/// Reads one entry of a page. Pure.
pub fn parse_object(mut item: Value) -> Result<Object, ListError> {
    let bad = |what: String| ListError::new(FailReason::BadResponse, what);
    let owners = match item.as_object_mut().and_then(|o| o.remove("owners")) {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => {
            let list: Vec<Owner> = serde_json::from_value(v)
                .map_err(|_| bad("an entry's \"owners\" is not the documented array".into()))?;
            let mut names: Vec<String> = list
                .into_iter()
                .filter_map(|o| o.user_principal_name.or(o.display_name).or(o.id))
                .collect();
            names.sort();
            names
        }
    };
    let app = graph::application_from(item).map_err(bad)?;
    Ok(Object { app, owners })
}

/// The listing of what the pages held. Pure: `now` decides which credentials are expired.
pub fn listing(
    tenant: &str,
    provider: &str,
    objects: Vec<(&str, Object)>,
    now: Timestamp,
) -> Listing {
    let mut out = Listing::default();
    for (tag, object) in objects {
        let app = &object.app;
        let Some(app_id) = app.app_id.as_deref().or(app.id.as_deref()) else {
            out.skip("no_id");
            continue;
        };
        let app_name = app
            .display_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| app_id.to_string());
        let creds = app
            .password_credentials
            .iter()
            .map(|c| ("secret", c))
            .chain(app.key_credentials.iter().map(|c| ("certificate", c)));
        for (what, c) in creds {
            match entry(tenant, provider, tag, app_id, &app_name, what, c, now) {
                Some(mut d) => {
                    d.owner = object.owners.first().cloned();
                    out.tokens.push(d);
                }
                None => out.skip("no_key_id"),
            }
        }
    }
    out.tokens.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// One credential's entry; `None` without a `keyId` (it could not be told apart).
#[allow(clippy::too_many_arguments)]
fn entry(
    tenant: &str,
    provider: &str,
    tag: &str,
    app_id: &str,
    app_name: &str,
    what: &str,
    c: &Credential,
    now: Timestamp,
) -> Option<Discovered> {
    let key_id = c.key_id.as_deref().filter(|k| !k.is_empty())?;
    let short: String = key_id.chars().take(8).collect();
    let label = c
        .display_name
        .as_deref()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or(what);
    let prefix = if tag == "sp" { "sp:" } else { "" };
    // A time Graph gives but that is not a time is left out: the static entry then reports
    // no expiry rather than a wrong one.
    let end = graph::credential_time(c.end_date_time.as_deref())
        .ok()
        .flatten();
    let start = graph::credential_time(c.start_date_time.as_deref())
        .ok()
        .flatten();
    // "Never expires" (year 2299, 9999) is an expiry no one waits for: like the provider,
    // the credential counts as one without an expiry.
    let end = end.filter(|e| e.duration_since(now) < FAR_FUTURE);
    let state = match (start, end) {
        (_, Some(e)) if e <= now => "expired",
        (Some(s), _) if s > now => "future",
        _ => "active",
    };
    Some(Discovered {
        name: format!("{prefix}{app_name}/{label}-{short}"),
        provider: provider.to_string(),
        secret: None,
        accessor: None,
        owner: None,
        state: Some(state.into()),
        identity: Identity::Listed(format!("entra_id:{tenant}:{tag}:{app_id}:{key_id}")),
        expires_at: end.map(|t| t.to_string()),
        issued_at: start.map(|t| t.to_string()),
        // Graph states no last use of an app credential (sign-in logs are another API).
        last_used_at: None,
        sliding_window_seconds: None,
    })
}

/// The source's access token, from the client-credentials grant with its secret or its
/// certificate.
async fn access_token(
    s: &EntraSettings,
    credential: &SecretSource,
    timeout: Duration,
    client: &http::Client,
) -> Result<Secret, ListError> {
    let secret = credential.read().await.map_err(|e| {
        ListError::new(
            FailReason::Misconfigured,
            format!("the source's credential cannot be read: {e}"),
        )
    })?;
    let endpoint = graph::token_endpoint(&s.url, &s.tenant_id);
    let value = secret.expose();
    let signed;
    let credential = if assertion::is_pem(value) {
        let cert = assertion::read_pem(value).map_err(|what| {
            ListError::new(
                FailReason::Misconfigured,
                format!("the source's credential looks like a certificate, but {what}"),
            )
        })?;
        let jwt = cert
            .assertion(
                &s.client_id,
                &endpoint,
                Timestamp::now(),
                &assertion::new_jti(),
            )
            .map_err(|what| ListError::new(FailReason::Misconfigured, what))?;
        signed = Secret::new(jwt);
        ClientCredential::Assertion(signed.expose())
    } else {
        ClientCredential::Secret(value)
    };
    let request = graph::grant(
        client,
        &endpoint,
        &s.client_id,
        graph::DEFAULT_SCOPE,
        credential,
    );
    let grant = match tokio::time::timeout(timeout, request).await {
        Ok(Ok(grant)) => grant,
        Ok(Err(outcome)) => {
            return Err(ListError::new(
                FailReason::Unreachable,
                format!("the token endpoint: {}", outcome.detail),
            ));
        }
        Err(_) => {
            return Err(ListError::new(
                FailReason::Unreachable,
                format!(
                    "the token endpoint gave no answer within {}",
                    humantime::format_duration(timeout)
                ),
            ));
        }
    };
    match grant {
        graph::Grant::Issued(token) => Ok(token),
        graph::Grant::Unreadable(what) => Err(ListError::new(FailReason::BadResponse, what)),
        graph::Grant::Refused {
            status: status @ (400 | 401),
            error,
            ..
        } => {
            let codes = error
                .map(|e| {
                    e.codes
                        .iter()
                        .map(|c| format!(" AADSTS{c}"))
                        .collect::<String>()
                })
                .unwrap_or_default();
            Err(ListError::new(
                FailReason::Unauthorized,
                format!(
                    "the token endpoint refuses the source's credential (HTTP {status}{codes}): check tenant_id, client_id and the secret or certificate"
                ),
            ))
        }
        graph::Grant::Refused {
            status, headers, ..
        } => Err(status_error("the token endpoint", status, &headers, "")),
    }
}

fn pages_error(collection: &str, e: PagesError) -> ListError {
    match e {
        PagesError::Status(status, headers) => status_error(
            collection,
            status,
            &headers,
            ": the app needs the application permission Application.Read.All, with admin consent",
        ),
        PagesError::Unanswered(outcome) => ListError::new(
            FailReason::Unreachable,
            format!("{collection}: {}", outcome.detail),
        ),
        PagesError::Bad(what) => {
            ListError::new(FailReason::BadResponse, format!("{collection}: {what}"))
        }
    }
}

/// A status other than the documented success. Graph throttles with 429 and `Retry-After`
/// (and may send one with a 503): the next listing waits that long.
fn status_error(
    what: &str,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    hint: &str,
) -> ListError {
    let reason = FailReason::of_status(status);
    let tail = match reason {
        FailReason::Unauthorized | FailReason::Forbidden => hint.to_string(),
        FailReason::RateLimited => match http::header(headers, "retry-after") {
            Some(after) if after.bytes().all(|b| b.is_ascii_digit()) && after.len() < 8 => {
                format!(": Graph asks to retry after {after} s")
            }
            _ => String::new(),
        },
        _ => String::new(),
    };
    ListError::of_answer(status, headers, format!("{what}: HTTP {status}{tail}"))
}

#[cfg(test)]
mod tests;
