//! `oauth2_introspection`: RFC 7662 token introspection, against any compliant server
//! (Keycloak, Okta, ORY Hydra, node-oidc-provider...). Network I/O in `probe`; `parse` is pure.
//!
//! The endpoint is configured or discovered from the issuer (OIDC discovery, then RFC 8414).
//! The exporter authenticates itself with `client_secret_basic`, `client_secret_post` or a
//! bearer token of its own. An inactive token is `{"active":false}` and nothing else, so the
//! expiry vanishes exactly when the token dies: the store keeps the last one seen.

use std::sync::Arc;

use base64::Engine;
use jiff::Timestamp;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::OnceCell;
use url::Url;

use super::http::{self, common_status};
use super::{
    BoxFuture, BuildContext, Provider, ProviderKind, Renamed, refuse_params, renamed_setting,
    require_secret,
};
#[cfg(test)]
use crate::model::Verdict;
use crate::model::{ProbeOutcome, Reason, TokenFacts, read_numeric_date};
use crate::schema::TokenSpec;
use crate::secret::{Credential, Secret, SecretSource};

/// How the exporter authenticates to the introspection endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    #[default]
    ClientSecretBasic,
    ClientSecretPost,
    Bearer,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The introspection endpoint, named as RFC 8414 metadata names it; or give `issuer` to
    /// discover it.
    pub introspection_endpoint: Option<String>,
    /// The old name of `introspection_endpoint`, kept with the same meaning.
    pub introspection_url: Option<String>,
    /// Issuer URL for discovery (`/.well-known/openid-configuration`, then RFC 8414).
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretSource>,
    /// The exporter's own bearer token, with `auth_method: bearer`.
    pub bearer_token: Option<SecretSource>,
    #[serde(default)]
    pub auth_method: AuthMethod,
    pub max_concurrency: Option<usize>,
}

impl Config {
    /// The introspection endpoint under either name (`validate` refuses both at once).
    fn endpoint(&self) -> Option<&String> {
        self.introspection_endpoint
            .as_ref()
            .or(self.introspection_url.as_ref())
    }
}

impl ProviderKind for Config {
    fn kind(&self) -> &'static str {
        "oauth2_introspection"
    }

    fn validate(&self) -> Result<(), String> {
        let endpoint = renamed_setting(
            (
                "introspection_endpoint",
                self.introspection_endpoint.as_ref(),
            ),
            ("introspection_url", self.introspection_url.as_ref()),
        )?;
        match (endpoint, &self.issuer) {
            (Some((name, _)), Some(_)) => {
                return Err(format!("give {name} or issuer, not both"));
            }
            (None, None) => {
                return Err("introspection_endpoint or issuer is required".into());
            }
            (Some((name, u)), None) => {
                http::check_base_url(name, u)?;
            }
            (None, Some(u)) => {
                http::check_base_url("issuer", u)?;
            }
        }
        match self.auth_method {
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost => {
                if self.client_id.as_deref().is_none_or(str::is_empty)
                    || self.client_secret.is_none()
                {
                    return Err(format!(
                        "auth_method {:?} needs client_id and client_secret",
                        self.auth_method
                    )
                    .to_lowercase()
                    .replace("clientsecret", "client_secret_"));
                }
                if self.bearer_token.is_some() {
                    return Err("bearer_token applies only to auth_method: bearer".into());
                }
            }
            AuthMethod::Bearer => {
                if self.bearer_token.is_none() {
                    return Err("auth_method: bearer needs bearer_token".into());
                }
                if self.client_secret.is_some() {
                    return Err("client_secret does not apply to auth_method: bearer".into());
                }
            }
        }
        Ok(())
    }

    fn check_token(&self, token: &TokenSpec) -> Result<(), String> {
        require_secret(token, self.kind())?;
        refuse_params(token, self.kind(), &["token_type_hint"])?;
        match token.params.token_type_hint.as_deref() {
            None | Some("access_token") | Some("refresh_token") => Ok(()),
            Some(other) => Err(format!(
                "token_type_hint must be access_token or refresh_token, not \"{other}\""
            )),
        }
    }

    fn max_concurrency(&self) -> Option<usize> {
        self.max_concurrency
    }

    fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Provider>, String> {
        let endpoint = match self.endpoint() {
            Some(u) => OnceCell::new_with(Some(http::IntoUri::into_uri(u.as_str())?)),
            None => OnceCell::new(),
        };
        let credential = match self.auth_method {
            AuthMethod::Bearer => self.bearer_token.clone(),
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost => {
                self.client_secret.clone()
            }
        };
        Ok(Arc::new(Introspection {
            credential: credential.map(Credential::new),
            config: self.clone(),
            http: ctx.http.clone(),
            endpoint,
        }))
    }

    fn renamed_in_use(&self) -> Vec<Renamed> {
        self.introspection_url
            .iter()
            .map(|_| Renamed {
                old: "introspection_url",
                new: "introspection_endpoint",
                rewrite: None,
            })
            .collect()
    }
}

struct Introspection {
    config: Config,
    /// `client_secret` or `bearer_token`, as `auth_method` says.
    credential: Option<Credential>,
    http: http::Client,
    /// The endpoint, configured or discovered once and then kept (a failed discovery is
    /// tried again by the next probe).
    endpoint: OnceCell<::http::Uri>,
}

impl Provider for Introspection {
    fn probe<'a>(
        &'a self,
        token: &'a TokenSpec,
        secret: &'a Secret,
        now: Timestamp,
    ) -> BoxFuture<'a, ProbeOutcome> {
        Box::pin(async move {
            let endpoint = match self.endpoint(now).await {
                Ok(url) => url,
                Err(outcome) => return outcome,
            };
            let hint = token
                .params
                .token_type_hint
                .as_deref()
                .unwrap_or("access_token");
            let mut form: Vec<(&str, &str)> =
                vec![("token", secret.expose()), ("token_type_hint", hint)];
            let mut request = self
                .http
                .post(endpoint)
                .header(reqwest::header::ACCEPT, http::JSON);
            let credential = match read_own(self.credential.as_ref()).await {
                Ok(s) => s,
                Err(o) => return o,
            };
            let id = self.config.client_id.as_deref().unwrap_or_default();
            match self.config.auth_method {
                AuthMethod::ClientSecretBasic => {
                    request = request.header("authorization", basic_auth(id, credential.expose()));
                }
                AuthMethod::ClientSecretPost => {
                    form.push(("client_id", id));
                    form.push(("client_secret", credential.expose()));
                }
                AuthMethod::Bearer => request = request.bearer_auth(credential.expose()),
            }
            match http::send(request.form(&form)).await {
                Ok(resp) => parse(resp.status, &resp.headers, &resp.body, now),
                Err(outcome) => outcome,
            }
        })
    }
}

/// Reads the exporter's own credential; failing to is our misconfiguration, not the token's.
async fn read_own(source: Option<&Credential>) -> Result<Secret, ProbeOutcome> {
    let Some(source) = source else {
        return Err(ProbeOutcome::misconfigured(
            Reason::ClientAuth,
            "no client credential configured",
        ));
    };
    source.read().await.map_err(|e| {
        ProbeOutcome::misconfigured(Reason::SecretUnavailable, format!("client credential: {e}"))
    })
}

/// RFC 6749 section 2.3.1: id and secret are form-urlencoded before base64.
fn basic_auth(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let raw = format!("{}:{}", enc(id), enc(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

impl Introspection {
    async fn endpoint(&self, now: Timestamp) -> Result<&::http::Uri, ProbeOutcome> {
        self.endpoint
            .get_or_try_init(|| async {
                let issuer = self.config.issuer.as_deref().unwrap_or_default();
                let url = discover(&self.http, issuer, now).await?;
                http::IntoUri::into_uri(&url).map_err(|e| {
                    ProbeOutcome::unreachable(
                        Reason::Discovery,
                        format!("discovery failed: introspection_endpoint: {e}"),
                    )
                })
            })
            .await
    }
}

/// The discovery documents to try, in order: OIDC, then RFC 8414 (path after the well-known).
pub fn discovery_urls(issuer: &str) -> Vec<String> {
    let trimmed = issuer.trim_end_matches('/');
    let mut urls = vec![format!("{trimmed}/.well-known/openid-configuration")];
    if let Ok(parsed) = Url::parse(trimmed) {
        let path = parsed.path().trim_end_matches('/');
        let mut origin = parsed.clone();
        origin.set_path("");
        let origin = origin.as_str().trim_end_matches('/').to_string();
        urls.push(format!(
            "{origin}/.well-known/oauth-authorization-server{path}"
        ));
    }
    urls
}

async fn discover(http: &http::Client, issuer: &str, now: Timestamp) -> Result<Url, ProbeOutcome> {
    let mut last = String::from("no discovery document");
    for doc in discovery_urls(issuer) {
        let request = http.get(&doc).header(reqwest::header::ACCEPT, http::JSON);
        let resp = match http::send(request).await {
            Ok(r) => r,
            Err(o) => {
                // A transport failure is the provider being down, not a discovery problem.
                if o.reason != Reason::BadResponse {
                    return Err(o);
                }
                last = o.detail;
                continue;
            }
        };
        if resp.status != 200 {
            if resp.status >= 500 || resp.status == 429 {
                return Err(common_status(resp.status, &resp.headers, now));
            }
            last = format!("{doc} answered HTTP {}", resp.status);
            continue;
        }
        match parse_discovery(&resp.body) {
            Ok(url) => return Ok(url),
            Err(e) => last = format!("{doc}: {e}"),
        }
    }
    Err(ProbeOutcome::unreachable(
        Reason::Discovery,
        format!("discovery failed: {last}"),
    ))
}

/// Reads `introspection_endpoint` from a discovery document.
pub fn parse_discovery(body: &[u8]) -> Result<Url, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let endpoint = doc
        .get("introspection_endpoint")
        .and_then(Value::as_str)
        .ok_or("the document lists no introspection_endpoint")?;
    Url::parse(endpoint).map_err(|e| format!("introspection_endpoint is not a URL: {e}"))
}

/// Turns an introspection answer into an outcome. Pure.
pub fn parse(status: u16, headers: &HeaderMap, body: &[u8], now: Timestamp) -> ProbeOutcome {
    let rate = http::rate_limit(headers);
    match status {
        200 => {}
        400 | 401 | 403 => {
            let error = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned));
            if status != 400 || error.as_deref() == Some("invalid_client") {
                return ProbeOutcome::misconfigured(
                    Reason::ClientAuth,
                    format!(
                        "the introspection endpoint refused the exporter's credentials (HTTP {status}{})",
                        error.map(|e| format!(", {}", safe_code(&e))).unwrap_or_default()
                    ),
                )
                .with_rate_limit(rate);
            }
            return ProbeOutcome::unreachable(
                Reason::UnexpectedStatus,
                format!(
                    "the introspection endpoint answered HTTP 400{}",
                    error
                        .map(|e| format!(" ({})", safe_code(&e)))
                        .unwrap_or_default()
                ),
            )
            .with_rate_limit(rate);
        }
        _ => return common_status(status, headers, now),
    }
    let doc = match Introspected::parse(body) {
        Ok(Some(doc)) => doc,
        Ok(None) => {
            return ProbeOutcome::bad_response("no boolean \"active\" member")
                .with_rate_limit(rate);
        }
        Err(o) => return o.with_rate_limit(rate),
    };
    let Some(active) = doc.claim("active").and_then(Value::as_bool) else {
        return ProbeOutcome::bad_response("no boolean \"active\" member").with_rate_limit(rate);
    };
    if !active {
        return ProbeOutcome::invalid(
            Reason::Inactive,
            "the provider says the token is not active (expired, revoked or unknown)",
        )
        .with_rate_limit(rate);
    }
    let mut facts = facts_from_claims(&doc);
    facts.flag_past_expiry(now, PAST_EXPIRY);
    ProbeOutcome::valid(facts).with_rate_limit(rate)
}

/// Looks a claim up by name, in a JSON object or in an [`Introspected`] answer.
pub trait Claims {
    fn claim(&self, name: &str) -> Option<&Value>;
}

impl Claims for Value {
    fn claim(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

/// The members of an introspection answer that [`parse`] and [`facts_from_claims`] read,
/// each as the JSON value it was (`null` included: present and null is not absent). Read
/// straight from the body, the others skipped, so a probe builds no map of every member
/// (keys and all) only to look a few of them up by name.
#[derive(Debug, Deserialize)]
pub struct Introspected {
    #[serde(default, deserialize_with = "present")]
    active: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    exp: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    iat: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    nbf: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    sub: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    username: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    client_id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    azp: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    iss: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    aud: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    scope: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    scp: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    token_type: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    typ: Option<Value>,
}

/// A member that is there, whatever its value (serde's `Option` would read `null` as absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl Introspected {
    /// The answer's members; `None` when it is JSON but not an object. Read directly when
    /// the body is UTF-8 text of an object without repeated members; otherwise (repeated
    /// members, where the last one counts, or a body that is not an object) through a JSON
    /// value, as before, so both ways read a body alike. One leniency remains: a member
    /// not read is skipped as serde_json skips, checking a `\u` escape's form but not that
    /// a surrogate is paired, where the JSON value refused the whole answer.
    pub fn parse(body: &[u8]) -> Result<Option<Introspected>, ProbeOutcome> {
        if let Ok(text) = std::str::from_utf8(body)
            && text.trim_start().starts_with('{')
            && let Ok(doc) = serde_json::from_str::<Introspected>(text)
        {
            return Ok(Some(doc));
        }
        let doc: Value = http::json(body)?;
        if !doc.is_object() {
            return Ok(None);
        }
        // Every member is optional and takes any value: an object always fits.
        Ok(serde_json::from_value(doc).ok())
    }
}

impl Claims for Introspected {
    fn claim(&self, name: &str) -> Option<&Value> {
        match name {
            "active" => self.active.as_ref(),
            "exp" => self.exp.as_ref(),
            "iat" => self.iat.as_ref(),
            "nbf" => self.nbf.as_ref(),
            "sub" => self.sub.as_ref(),
            "username" => self.username.as_ref(),
            "client_id" => self.client_id.as_ref(),
            "azp" => self.azp.as_ref(),
            "iss" => self.iss.as_ref(),
            "aud" => self.aud.as_ref(),
            "scope" => self.scope.as_ref(),
            "scp" => self.scp.as_ref(),
            "token_type" => self.token_type.as_ref(),
            "typ" => self.typ.as_ref(),
            _ => None,
        }
    }
}

/// Echoes an OAuth error code only when it is a registered one (RFC 6749 section 5.2, RFC
/// 6750, RFC 7009). A server may put anything in `error`, the token included.
pub(crate) fn safe_code(code: &str) -> String {
    const REGISTERED: [&str; 10] = [
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "unsupported_token_type",
        "invalid_token",
        "insufficient_scope",
        "server_error",
    ];
    if REGISTERED.contains(&code) {
        code.to_string()
    } else {
        "an unregistered error code".to_string()
    }
}

/// The flag [`parse`] raises for an active token whose expiry has passed.
pub const PAST_EXPIRY: &str = "the provider reports an expiry in the past for an active token";

/// Facts from RFC 7662 / RFC 7519 claims (the two share names). Shared with the JWT provider.
pub fn facts_from_claims<C: Claims + ?Sized>(doc: &C) -> TokenFacts {
    let time = |name: &str| read_numeric_date(doc.claim(name)).timestamp();
    let text = |name: &str| doc.claim(name).and_then(Value::as_str).map(str::to_owned);
    let mut facts = TokenFacts {
        issued_at: time("iat"),
        not_before: time("nbf"),
        subject: text("sub").or_else(|| text("username")),
        client_id: text("client_id").or_else(|| text("azp")),
        issuer: text("iss"),
        audience: string_or_array(doc.claim("aud")),
        scopes: scopes(doc),
        token_type: text("token_type").or_else(|| text("typ")),
        ..TokenFacts::default()
    };
    // An `exp` that is there but unusable is noted, never read as "no expiry".
    facts.set_expiry(read_numeric_date(doc.claim("exp")), "exp");
    if let Some(user) = text("username")
        && facts.subject.as_deref() != Some(user.as_str())
    {
        facts.extra.insert("username".into(), user);
    }
    facts
}

fn string_or_array(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// `scope` as a space-separated string (RFC 7662, RFC 8693) or `scp` as an array (Okta, Azure).
fn scopes<C: Claims + ?Sized>(doc: &C) -> Vec<String> {
    let mut out: Vec<String> = match doc.claim("scope").or_else(|| doc.claim("scp")) {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests;
