//! The Microsoft identity platform and Graph pieces an Entra ID probe and an Entra listing
//! share: the client-credentials token request, the reading of its answer (the access token
//! held as a [`Secret`], the answer's bytes zeroed), the `@odata.nextLink` paging helper, and
//! the JSON of `application` objects. Network I/O in [`request_token`], [`get`] and
//! [`get_pages`]; everything else is pure.

use std::borrow::Cow;

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;
use zeroize::Zeroize;

use crate::model::ProbeOutcome;
use crate::provider::http::{self, Response};
use crate::secret::Secret;

/// The Microsoft identity platform's public cloud.
pub const DEFAULT_LOGIN_URL: &str = "https://login.microsoftonline.com";
/// Microsoft Graph in the public cloud.
pub const DEFAULT_GRAPH_URL: &str = "https://graph.microsoft.com";
/// The client-credentials scope for Graph: the app's own application permissions.
pub const DEFAULT_SCOPE: &str = "https://graph.microsoft.com/.default";
/// The `client_assertion_type` of a certificate credential (RFC 7523).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The members of an application a credential check reads (`$select`): asking for
/// `keyCredentials` by name is what makes Graph include each certificate's `key`.
pub const APPLICATION_SELECT: &str = "id,appId,displayName,passwordCredentials,keyCredentials";

/// The most pages [`get_pages`] follows: `applications` pages hold up to 999 objects, so
/// this bounds a listing at a size no tenant reaches, and a server that links pages in a
/// loop cannot keep a caller busy forever.
pub const MAX_PAGES: usize = 200;

/// The token endpoint of a tenant: `{login}/{tenant}/oauth2/v2.0/token`.
pub fn token_endpoint(login_url: &str, tenant: &str) -> String {
    format!(
        "{}/{tenant}/oauth2/v2.0/token",
        login_url.trim_end_matches('/')
    )
}

/// One application by its application (client) id, with the members of
/// [`APPLICATION_SELECT`]: `GET /v1.0/applications(appId='{appId}')`. The id must already be
/// checked to be a GUID (it is written between quotes).
pub fn application_url(graph_url: &str, app_id: &str) -> String {
    format!(
        "{}/v1.0/applications(appId='{app_id}')?$select={APPLICATION_SELECT}",
        graph_url.trim_end_matches('/')
    )
}

/// Every application of the tenant, first page: `GET /v1.0/applications`.
pub fn applications_url(graph_url: &str) -> String {
    format!(
        "{}/v1.0/applications?$select={APPLICATION_SELECT}&$top=999",
        graph_url.trim_end_matches('/')
    )
}

/// How an app proves itself at the token endpoint.
pub enum ClientCredential<'a> {
    /// `client_secret`: the secret's value.
    Secret(&'a str),
    /// `client_assertion`: a JWT signed with the app's certificate (see `assertion.rs`).
    Assertion(&'a str),
}

/// The client-credentials grant: `POST` to the token endpoint, form-encoded, the credential
/// in the body (never the URL).
pub async fn request_token(
    client: &http::Client,
    endpoint: &str,
    client_id: &str,
    scope: &str,
    credential: ClientCredential<'_>,
) -> Result<Response, ProbeOutcome> {
    let mut form: Vec<(&str, &str)> = vec![
        ("client_id", client_id),
        ("scope", scope),
        ("grant_type", "client_credentials"),
    ];
    match credential {
        ClientCredential::Secret(s) => form.push(("client_secret", s)),
        ClientCredential::Assertion(a) => {
            form.push(("client_assertion_type", JWT_BEARER));
            form.push(("client_assertion", a));
        }
    }
    let request = client
        .post(endpoint)
        .header(reqwest::header::ACCEPT, http::JSON)
        .form(&form);
    http::send(request).await
}

/// How a client-credentials grant ended, for a caller that needs only the access token
/// (the entra_id source, the `entra_id_password` rotator; the probe reads the whole answer).
pub enum Grant {
    Issued(Secret),
    /// A status other than 200, with the documented error it named, if any. The body is
    /// zeroed.
    Refused {
        status: u16,
        headers: reqwest::header::HeaderMap,
        error: Option<TokenError>,
    },
    /// A 200 that is not the documented answer: what is wrong with it.
    Unreadable(String),
}

/// [`request_token`], then the answer read as a [`Grant`]; `Err` when no answer came.
pub async fn grant(
    client: &http::Client,
    endpoint: &str,
    client_id: &str,
    scope: &str,
    credential: ClientCredential<'_>,
) -> Result<Grant, ProbeOutcome> {
    let mut resp = request_token(client, endpoint, client_id, scope, credential).await?;
    if resp.status == 200 {
        return Ok(match read_issued(&mut resp.body) {
            Ok(issued) => Grant::Issued(issued.access_token),
            Err(what) => Grant::Unreadable(what),
        });
    }
    let error = read_token_error(&resp.body);
    resp.body.zeroize();
    Ok(Grant::Refused {
        status: resp.status,
        headers: resp.headers,
        error,
    })
}

/// A successful token answer: the access token (kept only as long as the caller needs it for
/// Graph) and what the answer says about it.
pub struct Issued {
    pub access_token: Secret,
    pub token_type: Option<String>,
    pub expires_in: Option<u64>,
}

/// Reads a 200 answer of the token endpoint, then zeroes `body`: the access token is a
/// credential of the app, and nothing else may keep a copy. The error names what is not as
/// documented, for [`ProbeOutcome::bad_response`].
pub fn read_issued(body: &mut Vec<u8>) -> Result<Issued, String> {
    #[derive(Deserialize)]
    struct Raw<'a> {
        #[serde(borrow, default)]
        access_token: Option<Cow<'a, str>>,
        #[serde(default)]
        token_type: Option<String>,
        #[serde(default)]
        expires_in: Option<Value>,
    }
    // serde fills a struct from a JSON array too, by position: `["x"]` would read as an
    // answer whose access_token is "x". Only an object is the token endpoint's answer.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        body.zeroize();
        return Err("the token answer is not a JSON object".to_string());
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let read = match serde_path_to_error::deserialize::<_, Raw<'_>>(&mut de) {
        Ok(_) if de.end().is_err() => Err("the token answer has more after its JSON".to_string()),
        Ok(raw) => match raw.access_token {
            // A `Cow::Owned` (an access token with JSON escapes) moves into the secret.
            Some(token) if !token.is_empty() => Ok(Issued {
                access_token: Secret::new(token.into_owned()),
                token_type: raw.token_type,
                // Entra sends a number; the v1 endpoint sent a string of digits.
                expires_in: match raw.expires_in {
                    Some(Value::Number(n)) => n.as_u64(),
                    Some(Value::String(s)) => s.parse().ok(),
                    _ => None,
                },
            }),
            _ => Err("no \"access_token\" string".to_string()),
        },
        // The path only: serde's message could quote a value of the answer.
        Err(e) => Err(format!(
            "the token answer's {} is not as documented",
            e.path()
        )),
    };
    body.zeroize();
    read
}

/// An error answer of the token endpoint (the Microsoft identity platform's form): the OAuth
/// `error`, and the AADSTS numbers from `error_codes`, or when that is missing, from the
/// `AADSTS<digits>` that opens `error_description`. Nothing else of the description is kept:
/// it carries trace and correlation ids and may name the app.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenError {
    pub error: Option<String>,
    pub codes: Vec<u64>,
}

/// Reads an error answer; `None` when the body is not a JSON object with a string `error`
/// (a proxy's page, an HTML error).
pub fn read_token_error(body: &[u8]) -> Option<TokenError> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    let error = doc.get("error")?.as_str()?.to_string();
    let mut codes: Vec<u64> = doc
        .get("error_codes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).take(8).collect())
        .unwrap_or_default();
    if codes.is_empty()
        && let Some(code) = doc
            .get("error_description")
            .and_then(Value::as_str)
            .and_then(aadsts_prefix)
    {
        codes.push(code);
    }
    Some(TokenError {
        error: Some(error),
        codes,
    })
}

/// The number of an `AADSTS<digits>` that opens a description, if it does.
pub fn aadsts_prefix(description: &str) -> Option<u64> {
    let rest = description.trim_start().strip_prefix("AADSTS")?;
    let digits: &str = &rest[..rest.bytes().take_while(u8::is_ascii_digit).count()];
    if digits.is_empty() || digits.len() > 9 {
        return None;
    }
    digits.parse().ok()
}

/// A Graph `GET` with the access token as a bearer token.
pub async fn get(
    client: &http::Client,
    url: &str,
    access_token: &Secret,
) -> Result<Response, ProbeOutcome> {
    let request = client
        .get(url)
        .bearer_auth(access_token.expose())
        .header(reqwest::header::ACCEPT, http::JSON);
    http::send(request).await
}

/// One page of a Graph collection: its objects, and the next page's URL.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    pub value: Vec<Value>,
    pub next_link: Option<String>,
}

/// Reads a collection page (`{"value": [...], "@odata.nextLink": "..."}`). Pure.
pub fn parse_page(body: &[u8]) -> Result<Page, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let Some(value) = doc.get("value").and_then(Value::as_array) else {
        return Err("no \"value\" array".into());
    };
    let next_link = match doc.get("@odata.nextLink") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("\"@odata.nextLink\" is not a string".into()),
    };
    Ok(Page {
        value: value.clone(),
        next_link,
    })
}

/// Whether `next` may be fetched with the token that fetched `first`: same scheme, host and
/// port. A next link elsewhere would carry the access token to another server.
pub fn same_origin(first: &str, next: &str) -> bool {
    match (url::Url::parse(first), url::Url::parse(next)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

/// Why [`collect_pages`] stopped: a status other than 200 (with its headers, for
/// `Retry-After`), no answer, or an answer that is not what Graph documents.
#[derive(Debug)]
pub enum PagesError {
    Status(u16, reqwest::header::HeaderMap),
    Unanswered(Box<ProbeOutcome>),
    Bad(String),
}

/// Every object of a Graph collection, following `@odata.nextLink` (opaque: used as given)
/// up to [`MAX_PAGES`] pages, each call bounded by `per_call`. A page that is not the
/// documented JSON, a status other than 200, or a next link to another origin ends the
/// reading: a caller never gets part of a collection.
pub async fn collect_pages(
    client: &http::Client,
    first: &str,
    access_token: &Secret,
    per_call: std::time::Duration,
) -> Result<Vec<Value>, PagesError> {
    let mut out = Vec::new();
    let mut url = first.to_string();
    for _ in 0..MAX_PAGES {
        let mut resp = match tokio::time::timeout(per_call, get(client, &url, access_token)).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(outcome)) => return Err(PagesError::Unanswered(Box::new(outcome))),
            Err(_) => {
                return Err(PagesError::Unanswered(Box::new(ProbeOutcome::unreachable(
                    crate::model::Reason::Timeout,
                    format!(
                        "Graph gave no answer within {}",
                        humantime::format_duration(per_call)
                    ),
                ))));
            }
        };
        if resp.status != 200 {
            return Err(PagesError::Status(resp.status, resp.headers));
        }
        let page = parse_page(&resp.body).map_err(PagesError::Bad);
        // A page may hold credentials' `hint`s: its bytes go as soon as it is read.
        resp.body.zeroize();
        let page = page?;
        out.extend(page.value);
        match page.next_link {
            None => return Ok(out),
            Some(next) if same_origin(first, &next) => url = next,
            Some(_) => {
                return Err(PagesError::Bad(
                    "\"@odata.nextLink\" points to another server; the listing stops there".into(),
                ));
            }
        }
    }
    Err(PagesError::Bad(format!(
        "more than {MAX_PAGES} pages of \"@odata.nextLink\""
    )))
}

/// [`collect_pages`] with its failure as a probe outcome.
pub async fn get_pages(
    client: &http::Client,
    first: &str,
    access_token: &Secret,
    now: Timestamp,
) -> Result<Vec<Value>, ProbeOutcome> {
    collect_pages(
        client,
        first,
        access_token,
        std::time::Duration::from_secs(300),
    )
    .await
    .map_err(|e| match e {
        PagesError::Status(status, headers) => http::common_status(status, &headers, now),
        PagesError::Unanswered(outcome) => *outcome,
        PagesError::Bad(what) => ProbeOutcome::bad_response(&what),
    })
}

/// An `application` object, as far as credentials go.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub app_id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub password_credentials: Vec<Credential>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub key_credentials: Vec<Credential>,
}

/// A `passwordCredential` or a `keyCredential`: the members both have, and the ones only a
/// certificate has. Times stay text until [`credential_time`] reads them.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credential {
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub start_date_time: Option<String>,
    #[serde(default)]
    pub end_date_time: Option<String>,
    /// A secret's first three characters (password credentials only). Part of the secret:
    /// compared, never shown.
    #[serde(default)]
    pub hint: Option<String>,
    /// The certificate, base64 DER (key credentials, when selected by name).
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub usage: Option<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Credential>, D::Error> {
    Ok(Option::<Vec<Credential>>::deserialize(d)?.unwrap_or_default())
}

/// Reads one `application` object. Pure.
pub fn parse_application(body: &[u8]) -> Result<Application, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    application_from(doc)
}

/// An `application` from a JSON value (a page's entry, or a whole answer).
pub fn application_from(doc: Value) -> Result<Application, String> {
    if !doc.is_object() {
        return Err("not a JSON object".into());
    }
    // Only the member's path is named: serde's own message would quote a mistyped string.
    serde_path_to_error::deserialize(doc)
        .map_err(|e| format!("the application's {} is not as documented", e.path()))
}

/// A time member that is present but not an instant a timestamp can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotATime;

/// A credential's time member (`startDateTime`, `endDateTime`): ISO 8601 in UTC, as Graph
/// documents. `None` when absent; an error when present but not a time.
pub fn credential_time(value: Option<&str>) -> Result<Option<Timestamp>, NotATime> {
    match value {
        None => Ok(None),
        Some(s) => s.parse::<Timestamp>().map(Some).map_err(|_| NotATime),
    }
}
