//! `grafana`: asks a Grafana server (self-hosted or a Grafana Cloud stack) who a
//! service-account token (`glsa_`) is, then reads the token's expiry from its service
//! account's token list when the token may read it. Network I/O in `probe`; the parse
//! functions are pure.
//!
//! The first call decides the verdict; the second only adds facts. A token that may not read
//! its service account's tokens is still valid, with its expiry undisclosed.
//!
//! The probe only reads: it never creates, deletes or reverts a token.

use std::sync::Arc;

use jiff::Timestamp;
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::http::{self, common_status};
use super::{BoxFuture, BuildContext, Provider, ProviderKind, refuse_params, require_secret};
use crate::model::{Expiry, ProbeOutcome, Reason, TokenFacts, Verdict};
use crate::schema::TokenSpec;
use crate::secret::Secret;

/// The current identity, below the server's address.
pub const USER_PATH: &str = "/api/user";

#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The server's address (`https://grafana.example.com`, a Grafana Cloud stack
    /// `https://<stack>.grafana.net`); a path prefix (`root_url` under a sub-path) is kept.
    /// Required: there is no public Grafana.
    pub url: Option<String>,
    pub max_concurrency: Option<usize>,
}

impl Config {
    fn server(&self) -> Result<&str, String> {
        self.url.as_deref().ok_or_else(|| {
            "url is required: the Grafana server's address (https://grafana.example.com, or a Grafana Cloud stack https://<stack>.grafana.net)".to_string()
        })
    }
}

impl ProviderKind for Config {
    fn kind(&self) -> &'static str {
        "grafana"
    }

    fn validate(&self) -> Result<(), String> {
        let url = http::check_base_url("url", self.server()?)?;
        if url.path().trim_end_matches('/').ends_with("/api") {
            return Err(
                "url: give the server's address without /api; the kind appends /api/user".into(),
            );
        }
        Ok(())
    }

    fn check_token(&self, token: &TokenSpec) -> Result<(), String> {
        require_secret(token, self.kind())?;
        refuse_params(token, self.kind(), &["key_id"])
    }

    fn max_concurrency(&self) -> Option<usize> {
        self.max_concurrency
    }

    fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Provider>, String> {
        Ok(Arc::new(Grafana {
            base: self.server()?.trim_end_matches('/').to_string(),
            http: ctx.http.clone(),
        }))
    }
}

struct Grafana {
    base: String,
    http: http::Client,
}

impl Grafana {
    async fn get(&self, path: &str, secret: &Secret) -> Result<http::Response, ProbeOutcome> {
        let request = self
            .http
            .get(http::join(&self.base, path))
            .bearer_auth(secret.expose())
            .header(reqwest::header::ACCEPT, http::JSON);
        http::send(request).await
    }
}

impl Provider for Grafana {
    fn probe<'a>(
        &'a self,
        token: &'a TokenSpec,
        secret: &'a Secret,
        now: Timestamp,
    ) -> BoxFuture<'a, ProbeOutcome> {
        Box::pin(async move {
            let mut outcome = match self.get(USER_PATH, secret).await {
                Ok(resp) => parse(resp.status, &resp.headers, &resp.body, now),
                Err(outcome) => return outcome,
            };
            if outcome.verdict != Verdict::Valid {
                return outcome;
            }
            let Some(id) = service_account_id(&outcome.facts) else {
                outcome.facts.extra.insert(
                    "expiry_note".into(),
                    "the answer names no service account: not a service-account token".into(),
                );
                return outcome;
            };
            let path = format!("/api/serviceaccounts/{id}/tokens");
            let key_id = token.params.key_id.as_deref();
            match self.get(&path, secret).await {
                Ok(resp) => parse_tokens(resp.status, &resp.body, now, key_id, &mut outcome.facts),
                Err(_) => note_list_failure(&mut outcome.facts),
            }
            outcome
        })
    }
}

/// Turns the `GET /api/user` answer into an outcome. Pure.
pub fn parse(status: u16, headers: &HeaderMap, body: &[u8], now: Timestamp) -> ProbeOutcome {
    let rate = http::rate_limit(headers);
    match status {
        200 => {}
        401 if is_html(headers) => {
            return ProbeOutcome::bad_response("a 401 with an HTML page, not Grafana's answer")
                .with_rate_limit(rate);
        }
        401 => return unauthorized(body).with_rate_limit(rate),
        403 if is_html(headers) => {
            return ProbeOutcome::bad_response("a 403 with an HTML page, not Grafana's answer")
                .with_rate_limit(rate);
        }
        403 => {
            return ProbeOutcome::new(
                Verdict::Forbidden,
                Reason::InsufficientScope,
                "Grafana accepted the token but refused GET /api/user (403)",
            )
            .with_rate_limit(rate);
        }
        _ => return common_status(status, headers, now),
    }
    let doc: Value = match http::json(body) {
        Ok(v) => v,
        Err(o) => return o.with_rate_limit(rate),
    };
    let Some(user) = doc.as_object() else {
        return ProbeOutcome::bad_response("not a JSON object").with_rate_limit(rate);
    };
    let text = |name: &str| {
        user.get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let Some(login) = text("login") else {
        return ProbeOutcome::bad_response("no \"login\" string").with_rate_limit(rate);
    };
    let mut facts = TokenFacts {
        subject: Some(login),
        // The expiry comes from the token list, if at all.
        expiry: Expiry::Undisclosed,
        ..TokenFacts::default()
    };
    let uid = text("uid");
    // Newer servers name a service account `service-account:<id>` in `uid` (with `id` 0);
    // older ones answer the service account's user row, whose `id` is the account's id.
    let from_uid = uid
        .as_deref()
        .and_then(|u| u.strip_prefix("service-account:"))
        .and_then(|n| n.parse::<u64>().ok());
    let id = user.get("id").and_then(Value::as_u64).filter(|n| *n > 0);
    let service_account = user.get("isServiceAccount").and_then(Value::as_bool);
    match (from_uid, id, service_account) {
        (Some(n), _, _) | (None, Some(n), Some(true)) => {
            facts.token_type = Some("service_account".into());
            facts
                .extra
                .insert("service_account_id".into(), n.to_string());
        }
        (None, Some(n), _) if login_is_service_account(&facts) => {
            facts.token_type = Some("service_account".into());
            facts
                .extra
                .insert("service_account_id".into(), n.to_string());
        }
        _ => {
            facts.token_type = Some(
                if uid.as_deref().is_some_and(|u| u.starts_with("api-key:")) {
                    "api_key".into()
                } else {
                    "user".into()
                },
            );
        }
    }
    if let Some(org) = user.get("orgId").and_then(Value::as_u64) {
        facts.extra.insert("org_id".into(), org.to_string());
    }
    if let Some(name) = text("name") {
        facts.extra.insert("name".into(), name);
    }
    if let Some(admin) = user.get("isGrafanaAdmin").and_then(Value::as_bool) {
        facts
            .extra
            .insert("grafana_admin".into(), admin.to_string());
    }
    ProbeOutcome::valid(facts).with_rate_limit(rate)
}

/// Service accounts' logins start `sa-` (`sa-1-deployer`, or `sa-deployer` before Grafana 11).
fn login_is_service_account(facts: &TokenFacts) -> bool {
    facts
        .subject
        .as_deref()
        .is_some_and(|l| l.starts_with("sa-"))
}

/// The service account a valid answer named, for the token-list call.
pub fn service_account_id(facts: &TokenFacts) -> Option<u64> {
    facts.extra.get("service_account_id")?.parse().ok()
}

/// A 401: Grafana's error names why (`Expired API key`, `Revoked API key`, `Invalid API key`,
/// in `message` or as `messageId` `api-key.expired`...). Each is the token's end; the reason
/// says which, and only fixed text reaches the detail.
fn unauthorized(body: &[u8]) -> ProbeOutcome {
    let doc: Option<Value> = serde_json::from_slice(body).ok();
    let said = |name: &str| {
        doc.as_ref()
            .and_then(|d| d.get(name))
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
            .unwrap_or_default()
    };
    let (message, id) = (said("message"), said("messageId"));
    if message.contains("expired") || id.ends_with(".expired") {
        ProbeOutcome::invalid(Reason::Expired, "Grafana says the token has expired (401)")
    } else if message.contains("revoked") || id.ends_with(".revoked") {
        ProbeOutcome::invalid(Reason::Revoked, "Grafana says the token was revoked (401)")
    } else {
        ProbeOutcome::invalid(
            Reason::UnknownToken,
            "Grafana does not accept the token (401): unknown, deleted, or its service account disabled",
        )
    }
}

fn is_html(headers: &HeaderMap) -> bool {
    http::header(headers, reqwest::header::CONTENT_TYPE)
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/html"))
}

/// Adds what `GET /api/serviceaccounts/{id}/tokens` says about the probed token to `facts`.
/// `key_id` picks the token by its name or numeric id; without it, the one token of the list
/// that still works is the probed one (the probe just authenticated with it). Pure; never
/// changes the verdict.
pub fn parse_tokens(
    status: u16,
    body: &[u8],
    now: Timestamp,
    key_id: Option<&str>,
    facts: &mut TokenFacts,
) {
    match status {
        200 => {}
        401 | 403 => {
            facts.extra.insert(
                "expiry_note".into(),
                "not readable: the token may not list its service account's tokens (serviceaccounts:read)".into(),
            );
            return;
        }
        _ => {
            note_list_failure(facts);
            return;
        }
    }
    let Ok(Value::Array(tokens)) = serde_json::from_slice::<Value>(body) else {
        note_list_failure(facts);
        return;
    };
    let tokens: Vec<&serde_json::Map<String, Value>> =
        tokens.iter().filter_map(Value::as_object).collect();
    let working = |t: &&&serde_json::Map<String, Value>| {
        t.get("hasExpired").and_then(Value::as_bool) != Some(true)
            && t.get("isRevoked").and_then(Value::as_bool) != Some(true)
    };
    let mine: Vec<_> = match key_id {
        Some(k) => {
            let by_id: Vec<_> = tokens
                .iter()
                .filter(|t| {
                    t.get("id")
                        .and_then(Value::as_u64)
                        .map(|n| n.to_string())
                        .as_deref()
                        == Some(k)
                })
                .collect();
            if by_id.is_empty() {
                tokens
                    .iter()
                    .filter(|t| t.get("name").and_then(Value::as_str) == Some(k))
                    .collect()
            } else {
                by_id
            }
        }
        None => tokens.iter().filter(working).collect(),
    };
    let [token] = mine.as_slice() else {
        let note = match (key_id, mine.len()) {
            (Some(_), 0) => "no token of the service account has the configured key_id".to_string(),
            (None, 0) => "the service account lists no working token".to_string(),
            (_, n) => format!(
                "{n} working tokens on the service account: set key_id (the token's name or id) to pick this one"
            ),
        };
        facts.extra.insert("expiry_note".into(), note);
        return;
    };
    let time = |name: &str| {
        token
            .get(name)
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Timestamp>().ok())
    };
    facts.expiry = match token.get("expiration") {
        None => Expiry::Undisclosed,
        Some(Value::Null) => Expiry::Never,
        Some(_) => match time("expiration") {
            Some(at) => Expiry::At(at),
            None => {
                facts.note(
                    crate::model::Anomaly::ExpiryUnreadable,
                    "the provider's expiration is not a usable expiry; the expiry is shown as not disclosed",
                );
                Expiry::Undisclosed
            }
        },
    };
    facts.issued_at = time("created");
    facts.last_used_at = time("lastUsedAt");
    if let Some(id) = token.get("id").and_then(Value::as_u64) {
        facts.extra.insert("token_id".into(), id.to_string());
    }
    if let Some(name) = token.get("name").and_then(Value::as_str) {
        facts.extra.insert("token_name".into(), name.to_string());
    }
    if token.get("hasExpired").and_then(Value::as_bool) == Some(true) {
        facts
            .flags
            .push("Grafana lists the token as expired although it was just accepted".into());
    } else {
        facts.flag_past_expiry(
            now,
            "Grafana states an expiry in the past for a token it just accepted",
        );
    }
}

/// The token list could not be read this time: the verdict stands, the expiry is not
/// disclosed by this answer (the store keeps the last one seen).
fn note_list_failure(facts: &mut TokenFacts) {
    facts.flags.push(
        "the service account's token list could not be read this time; the expiry is not updated"
            .into(),
    );
}

#[cfg(test)]
mod tests;
