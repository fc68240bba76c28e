//! `vault`: HashiCorp Vault and OpenBao tokens (the two share the token API). Network I/O in
//! `probe`; `parse` and `use_limited` are pure.
//!
//! A token given by its secret is looked up with `GET /v1/auth/token/lookup-self`, sent as
//! `X-Vault-Token`. A token given by its accessor is looked up with
//! `POST /v1/auth/token/lookup-accessor` under the exporter's own token, which needs no secret.
//!
//! Vault counts every request a token authenticates, lookup-self included, against the
//! token's `num_uses`, and revokes the token when they run out. So a token known to have
//! limited uses is never looked up by itself: the user marks it by configuring its accessor,
//! and when a lookup-self answer reveals `num_uses != 0` the provider remembers the accessor
//! from that answer and uses lookup-accessor for that token from then on. Nothing here calls
//! renew, revoke, create or any other endpoint that writes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::http::{self, common_status};
use super::{
    BoxFuture, BuildContext, Provider, ProviderKind, Renamed, refuse_params, renamed_setting,
};
use crate::model::{Expiry, ProbeOutcome, Reason, TokenFacts, Verdict};
use crate::schema::TokenSpec;
use crate::secret::{Credential, Secret, SecretSource};

/// Vault's own default address, the one its CLI uses when `VAULT_ADDR` is unset.
pub const DEFAULT_URL: &str = "https://127.0.0.1:8200";

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The server's address, e.g. `https://vault.example.com:8200` (a path prefix is kept);
    /// the kind appends `/v1/auth/token/...`. Defaults to [`DEFAULT_URL`].
    pub url: Option<String>,
    /// The old name of `url`, kept with the same meaning.
    pub address: Option<String>,
    /// Sent as `X-Vault-Namespace` on every request (Vault Enterprise, OpenBao namespaces).
    pub namespace: Option<String>,
    /// The exporter's own token. Needed for tokens configured by accessor, and for tokens
    /// found to have limited uses; its policy needs `update` on
    /// `auth/token/lookup-accessor`.
    pub token: Option<SecretSource>,
    /// Refuse tokens configured without an accessor, so that no lookup-self is ever made.
    /// For installations where tokens with limited uses are common.
    #[serde(default)]
    pub require_accessor: bool,
    pub max_concurrency: Option<usize>,
}

impl Config {
    /// The server's address without a trailing `/` (a listing source calls the same server).
    pub fn base_url(&self) -> Result<String, String> {
        Ok(self.server()?.1.trim_end_matches('/').to_string())
    }

    /// The setting in use, by name, and the server's address.
    fn server(&self) -> Result<(&'static str, &str), String> {
        Ok(
            match renamed_setting(
                ("url", self.url.as_ref()),
                ("address", self.address.as_ref()),
            )? {
                Some((name, url)) => (name, url.as_str()),
                None => ("url", DEFAULT_URL),
            },
        )
    }
}

impl ProviderKind for Config {
    fn kind(&self) -> &'static str {
        "vault"
    }

    fn validate(&self) -> Result<(), String> {
        let (name, url) = self.server()?;
        http::check_base_url(name, url)?;
        if let Some(ns) = &self.namespace {
            if ns.trim_matches('/').trim().is_empty() {
                return Err(
                    "namespace: must not be empty (leave it out for the root namespace)".into(),
                );
            }
            if HeaderValue::from_str(ns).is_err() {
                return Err("namespace: must be printable text without control characters".into());
            }
        }
        if self.require_accessor && self.token.is_none() {
            return Err(
                "require_accessor needs token: lookups by accessor use the exporter's own token"
                    .into(),
            );
        }
        Ok(())
    }

    fn check_token(&self, token: &TokenSpec) -> Result<(), String> {
        refuse_params(token, self.kind(), &["accessor"])?;
        match (&token.params.accessor, &token.secret) {
            (Some(accessor), _) => {
                // The accessor is not echoed: it is not a credential, but Vault's audit log
                // hashes it, and we follow that lead.
                if accessor.trim().is_empty() {
                    return Err("accessor is empty".into());
                }
                if !accessor
                    .chars()
                    .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
                {
                    return Err(
                        "accessor must be printable ASCII without spaces or quotes".into(),
                    );
                }
                if self.token.is_none() {
                    return Err("accessor needs the provider's own token (token: {env: NAME}, {file: PATH} or {exec: [...]}), whose policy allows update on auth/token/lookup-accessor".into());
                }
                Ok(())
            }
            (None, Some(_)) if self.require_accessor => Err(
                "accessor is required: the provider sets require_accessor, so no token is looked up by its own secret".into(),
            ),
            (None, Some(_)) => Ok(()),
            (None, None) => Err(
                "a vault token needs a secret ({env: NAME}, {file: PATH} or {exec: [COMMAND, ARG...]}) or an accessor".into(),
            ),
        }
    }

    fn max_concurrency(&self) -> Option<usize> {
        self.max_concurrency
    }

    fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Provider>, String> {
        let namespace = match &self.namespace {
            Some(ns) => Some(HeaderValue::from_str(ns).map_err(|e| format!("namespace: {e}"))?),
            None => None,
        };
        Ok(Arc::new(Vault {
            base: self.server()?.1.trim_end_matches('/').to_string(),
            namespace,
            own_token: self.token.clone().map(Credential::new),
            http: ctx.http.clone(),
            limited: Mutex::new(HashMap::new()),
        }))
    }

    fn renamed_in_use(&self) -> Vec<Renamed> {
        self.address
            .iter()
            .map(|_| Renamed {
                old: "address",
                new: "url",
                rewrite: None,
            })
            .collect()
    }
}

/// Which lookup produced an answer. Both return the same `data`, but a 403 means different
/// things: on lookup-self the token itself is refused, on lookup-accessor the exporter's own
/// token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// `GET /v1/auth/token/lookup-self`, authenticated by the token itself.
    SelfToken,
    /// `POST /v1/auth/token/lookup-accessor`, authenticated by the exporter's own token.
    Accessor,
}

impl Lookup {
    fn as_str(self) -> &'static str {
        match self {
            Lookup::SelfToken => "lookup-self",
            Lookup::Accessor => "lookup-accessor",
        }
    }
}

/// A token that a lookup-self answer showed to have limited uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UseLimited {
    /// The accessor from that answer; empty accessors (batch tokens) are `None`.
    pub accessor: Option<String>,
    pub num_uses: i64,
}

/// What the provider remembers about a token whose lookup-self showed limited uses. Keyed by
/// token name; the fingerprint ties it to the secret, so a rotated secret is a new token.
#[derive(Clone, Debug)]
struct Remembered {
    fingerprint: String,
    accessor: Option<String>,
}

struct Vault {
    base: String,
    namespace: Option<HeaderValue>,
    own_token: Option<Credential>,
    http: http::Client,
    /// Tokens that must no longer be looked up by themselves. Lost on restart, which is why
    /// the docs ask users to configure the accessor of such tokens.
    limited: Mutex<HashMap<String, Remembered>>,
}

impl Provider for Vault {
    fn probe<'a>(
        &'a self,
        token: &'a TokenSpec,
        secret: &'a Secret,
        now: Timestamp,
    ) -> BoxFuture<'a, ProbeOutcome> {
        self.lookup(token, Some(secret), now)
    }

    /// A token may be watched by its accessor alone, with the exporter's own token.
    fn probe_without_secret<'a>(
        &'a self,
        token: &'a TokenSpec,
        now: Timestamp,
    ) -> Option<BoxFuture<'a, ProbeOutcome>> {
        Some(self.lookup(token, None, now))
    }
}

impl Vault {
    fn lookup<'a>(
        &'a self,
        token: &'a TokenSpec,
        secret: Option<&'a Secret>,
        now: Timestamp,
    ) -> BoxFuture<'a, ProbeOutcome> {
        Box::pin(async move {
            // A configured accessor always wins: the secret, if any, is then only
            // fingerprinted by the generic handler and never sent.
            if let Some(accessor) = &token.params.accessor {
                return self.by_accessor(accessor, now).await;
            }
            let Some(secret) = secret else {
                return ProbeOutcome::misconfigured(
                    Reason::SecretUnavailable,
                    "the token has neither a secret nor an accessor",
                );
            };
            let fingerprint = secret.fingerprint();
            if let Some(remembered) = self.remembered(&token.name, &fingerprint) {
                return match remembered.accessor {
                    Some(accessor) if self.own_token.is_some() => {
                        self.by_accessor(&accessor, now).await
                    }
                    _ => ProbeOutcome::misconfigured(
                        Reason::ClientAuth,
                        "the token has limited uses, so it is no longer looked up by itself; \
                         looking it up by accessor needs the provider's own token: set token on \
                         the provider and accessor on this token",
                    ),
                };
            }
            self.by_self(token, secret, &fingerprint, now).await
        })
    }
}

impl Vault {
    fn remembered(&self, name: &str, fingerprint: &str) -> Option<Remembered> {
        let mut map = self.limited.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(name) {
            Some(r) if r.fingerprint == fingerprint => Some(r.clone()),
            // A different secret is a different token: what we knew no longer applies.
            Some(_) => {
                map.remove(name);
                None
            }
            None => None,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/auth/token/{path}", self.base)
    }

    fn with_namespace(&self, request: http::RequestBuilder) -> http::RequestBuilder {
        match &self.namespace {
            Some(ns) => request.header("x-vault-namespace", ns.clone()),
            None => request,
        }
    }

    async fn by_self(
        &self,
        token: &TokenSpec,
        secret: &Secret,
        fingerprint: &str,
        now: Timestamp,
    ) -> ProbeOutcome {
        let Some(auth) = token_header(secret) else {
            return ProbeOutcome::invalid(
                Reason::Malformed,
                "the secret contains characters that cannot be sent in a header",
            );
        };
        let request = self
            .with_namespace(self.http.get(self.url("lookup-self")))
            .header("x-vault-token", auth);
        let resp = match http::send(request).await {
            Ok(r) => r,
            Err(outcome) => return outcome,
        };
        let mut outcome = parse(
            Lookup::SelfToken,
            resp.status,
            &resp.headers,
            &resp.body,
            now,
        );
        if resp.status != 200 {
            return outcome;
        }
        if let Some(limited) = use_limited(&resp.body) {
            let next = if limited.accessor.is_some() && self.own_token.is_some() {
                "it is looked up by accessor from now on"
            } else {
                "it is not looked up again until the provider has its own token"
            };
            tracing::warn!(
                token = %token.name,
                "vault token has limited uses: one was spent by lookup-self, and {next}"
            );
            outcome.facts.flags.push(format!(
                "the token has limited uses: this lookup-self spent one, and {next}; \
                 configure accessor for this token so that no use is spent after a restart"
            ));
            let mut map = self.limited.lock().unwrap_or_else(|e| e.into_inner());
            map.insert(
                token.name.clone(),
                Remembered {
                    fingerprint: fingerprint.to_string(),
                    accessor: limited.accessor,
                },
            );
        }
        outcome
    }

    async fn by_accessor(&self, accessor: &str, now: Timestamp) -> ProbeOutcome {
        let Some(source) = &self.own_token else {
            return ProbeOutcome::misconfigured(
                Reason::ClientAuth,
                "lookup by accessor needs the provider's own token, and none is configured",
            );
        };
        let own = match source.read().await {
            Ok(s) => s,
            Err(e) => {
                return ProbeOutcome::misconfigured(
                    Reason::SecretUnavailable,
                    format!("the provider's own token: {e}"),
                );
            }
        };
        let Some(auth) = token_header(&own) else {
            return ProbeOutcome::misconfigured(
                Reason::ClientAuth,
                "the provider's own token contains characters that cannot be sent in a header",
            );
        };
        let request = self
            .with_namespace(self.http.post(self.url("lookup-accessor")))
            .header("x-vault-token", auth)
            .json(&serde_json::json!({ "accessor": accessor }));
        match http::send(request).await {
            Ok(resp) => parse(
                Lookup::Accessor,
                resp.status,
                &resp.headers,
                &resp.body,
                now,
            ),
            Err(outcome) => outcome,
        }
    }
}

/// The `X-Vault-Token` value, marked sensitive so no debug output of the request shows it.
fn token_header(secret: &Secret) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(secret.expose()).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Turns a lookup answer into an outcome. Pure.
pub fn parse(
    lookup: Lookup,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
) -> ProbeOutcome {
    let rate = http::rate_limit(headers);
    let retry = http::retry_after(headers, now);
    let errors = vault_errors(body);
    let says = |phrase: &str| errors.iter().any(|e| e.contains(phrase));
    let outcome = match status {
        200 => return parse_data(lookup, body, now).with_rate_limit(rate),
        400 if lookup == Lookup::Accessor && says("invalid accessor") => ProbeOutcome::invalid(
            Reason::UnknownToken,
            "Vault knows no token with this accessor: it expired, was revoked, used up its uses, \
             or never existed",
        ),
        403 if says("permission denied") || says("invalid token") => match lookup {
            Lookup::SelfToken => ProbeOutcome::invalid(
                Reason::UnknownToken,
                "Vault refuses the token (permission denied): it expired, was revoked or never \
                 existed; a token created without the default policy gets the same answer, so \
                 configure such a token by its accessor",
            ),
            Lookup::Accessor => ProbeOutcome::misconfigured(
                Reason::ClientAuth,
                "Vault refused the provider's own token on lookup-accessor (permission denied): \
                 it is invalid, or its policy lacks update on auth/token/lookup-accessor",
            ),
        },
        403 => ProbeOutcome::unreachable(
            Reason::UnexpectedStatus,
            "HTTP 403 without Vault's error body: something in front of Vault refused the call",
        ),
        404 if says("namespace") => ProbeOutcome::misconfigured(
            Reason::UnexpectedStatus,
            "Vault does not know the namespace configured for this provider",
        ),
        // Vault Enterprise answers 412 when a standby has not caught up with the state the
        // request needs; it asks to be retried a little later.
        412 => ProbeOutcome::unreachable(
            Reason::UnexpectedStatus,
            "Vault cannot answer yet (HTTP 412: a standby has not caught up); retrying later",
        ),
        503 => ProbeOutcome::unreachable(
            Reason::Sealed,
            if says("sealed") {
                "Vault is sealed"
            } else {
                "Vault is unavailable (HTTP 503: sealed, standby or in maintenance)"
            },
        ),
        // A standby without request forwarding redirects to the active node. The shared
        // client does not follow redirects, so the token is never sent to where it points.
        307 | 308 => ProbeOutcome::unreachable(
            Reason::UnexpectedStatus,
            format!(
                "Vault redirected the call (HTTP {status}, probably a standby node): point \
                 address at the active node or at the load balancer"
            ),
        ),
        _ => return common_status(status, headers, now),
    };
    outcome.with_rate_limit(rate).with_retry_after(retry)
}

/// Vault's error strings (`{"errors":[...]}`), lower-cased. Empty when the body is anything
/// else, so a proxy's page never reads as a verdict about the token. The strings are only
/// matched against fixed phrases, never copied into a detail.
fn vault_errors(body: &[u8]) -> Vec<String> {
    let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    match doc.get("errors") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_ascii_lowercase)
            .collect(),
        _ => Vec::new(),
    }
}

fn parse_data(lookup: Lookup, body: &[u8], now: Timestamp) -> ProbeOutcome {
    let doc: Value = match http::json(body) {
        Ok(v) => v,
        Err(o) => return o,
    };
    let Some(data) = doc.get("data").and_then(Value::as_object) else {
        return ProbeOutcome::bad_response("no \"data\" object");
    };
    let facts = match facts(lookup, data, now) {
        Ok(f) => f,
        Err(what) => return ProbeOutcome::bad_response(what),
    };
    let num_uses = data.get("num_uses").and_then(Value::as_i64).unwrap_or(0);
    if num_uses < 0 {
        // Vault reports -1 once a request has spent the last use; the token is revoked when
        // that request ends.
        return ProbeOutcome::invalid(
            Reason::Revoked,
            "the token's uses are spent (num_uses -1), so Vault revokes it",
        )
        .with_facts(facts);
    }
    ProbeOutcome::new(
        Verdict::Valid,
        Reason::Ok,
        format!("Vault confirmed the token ({})", lookup.as_str()),
    )
    .with_facts(facts)
}

/// Facts from a lookup's `data`. `id` is the token itself and is never read. Fields of the
/// wrong type are a bad answer, not a guess.
fn facts(
    lookup: Lookup,
    data: &Map<String, Value>,
    now: Timestamp,
) -> Result<TokenFacts, &'static str> {
    let expiry = match data.get("expire_time") {
        Some(Value::String(s)) => Expiry::At(
            s.parse::<Timestamp>()
                .map_err(|_| "expire_time is not an RFC 3339 time")?,
        ),
        // Null is how Vault says "never expires" (root tokens, some periodic setups).
        Some(Value::Null) => Expiry::Never,
        // Without expire_time, a positive ttl is the time left and 0 (or none) means never;
        // a ttl of another type is a bad answer like any other field, never read as "never".
        None => match data.get("ttl") {
            None | Some(Value::Null) => Expiry::Never,
            Some(ttl) => match ttl.as_i64().ok_or("ttl is not a whole number of seconds")? {
                ttl if ttl > 0 => Expiry::At(
                    now.checked_add(Duration::from_secs(ttl as u64))
                        .map_err(|_| "ttl is out of range")?,
                ),
                _ => Expiry::Never,
            },
        },
        Some(_) => return Err("expire_time is neither a string nor null"),
    };
    let issued_at = match data.get("creation_time") {
        Some(Value::Number(n)) => Some(
            n.as_i64()
                .and_then(|s| Timestamp::from_second(s).ok())
                .ok_or("creation_time is not epoch seconds")?,
        ),
        None | Some(Value::Null) => match data.get("issue_time").and_then(Value::as_str) {
            Some(s) => s.parse::<Timestamp>().ok(),
            None => None,
        },
        Some(_) => return Err("creation_time is not a number"),
    };
    let text = |name: &str| {
        data.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let entity = text("entity_id");
    let mut facts = TokenFacts {
        expiry,
        issued_at,
        subject: text("display_name").or_else(|| entity.clone()),
        token_type: text("type"),
        ..TokenFacts::default()
    };
    let mut scopes = Vec::new();
    for field in ["policies", "identity_policies"] {
        match data.get(field) {
            Some(Value::Array(items)) => {
                scopes.extend(items.iter().filter_map(Value::as_str).map(str::to_owned))
            }
            None | Some(Value::Null) => {}
            Some(_) => return Err("policies is not a list"),
        }
    }
    scopes.sort();
    scopes.dedup();
    facts.scopes = scopes;
    facts.extra.insert("lookup".into(), lookup.as_str().into());
    for field in ["ttl", "explicit_max_ttl", "num_uses", "period"] {
        // A period of 0 only says the token is not periodic.
        if let Some(n) = data.get(field).and_then(Value::as_i64)
            && (field != "period" || n > 0)
        {
            facts.extra.insert(field.into(), n.to_string());
        }
    }
    for field in ["renewable", "orphan"] {
        if let Some(b) = data.get(field).and_then(Value::as_bool) {
            facts.extra.insert(field.into(), b.to_string());
        }
    }
    if let Some(entity) = entity {
        facts.extra.insert("entity_id".into(), entity);
    }
    if let Some(path) = text("path") {
        facts.extra.insert("path".into(), path);
    }
    if let Some(ns) = text("namespace_path") {
        facts.extra.insert("namespace_path".into(), ns);
    }
    facts.flag_past_expiry(
        now,
        "Vault reports an expiry in the past for a token it still accepts",
    );
    Ok(facts)
}

/// Whether a successful lookup shows limited uses (`num_uses` other than 0, where -1 means
/// the last use was just spent). Pure.
pub fn use_limited(body: &[u8]) -> Option<UseLimited> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    let data = doc.get("data")?;
    let num_uses = data.get("num_uses")?.as_i64()?;
    if num_uses == 0 {
        return None;
    }
    let accessor = data
        .get("accessor")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    Some(UseLimited { accessor, num_uses })
}

#[cfg(test)]
mod tests;
