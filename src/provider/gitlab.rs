//! `gitlab`: GitLab.com and self-managed GitLab tokens. Network I/O in `probe`; `parse_*` are
//! pure.
//!
//! Personal, project and group access tokens describe themselves at
//! `GET {url}/api/v4/personal_access_tokens/self` (GitLab 15.5+), sent as `PRIVATE-TOKEN`.
//! OAuth access tokens describe themselves at `GET {url}/oauth/token/info`, sent as a bearer.
//! Both calls only read: the rotate call next to them (`POST .../self/rotate`) and every
//! `DELETE` on token paths are never made.

use std::sync::Arc;

use jiff::Timestamp;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

use super::http::{self, common_status};
use super::{
    BoxFuture, BuildContext, LimitKey, Provider, ProviderKind, refuse_params, require_secret,
};
use crate::model::{Anomaly, Expiry, ProbeOutcome, Reason, TokenFacts, Verdict};
use crate::schema::TokenSpec;
use crate::secret::Secret;

/// GitLab.com. Self-managed instances give their base URL (with a relative root if any).
pub const DEFAULT_URL: &str = "https://gitlab.com";

/// Which kind of token a provider instance probes; GitLab cannot be asked "what is this".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    /// Personal, project and group access tokens (`glpat-...`).
    #[default]
    AccessToken,
    /// OAuth 2.0 access tokens issued by a GitLab OAuth application.
    Oauth,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The GitLab base URL, without `/api/v4`. Defaults to [`DEFAULT_URL`].
    pub url: Option<String>,
    #[serde(default)]
    pub token_type: TokenType,
    pub max_concurrency: Option<usize>,
}

impl Config {
    fn url(&self) -> &str {
        self.url.as_deref().unwrap_or(DEFAULT_URL)
    }
}

impl ProviderKind for Config {
    fn kind(&self) -> &'static str {
        "gitlab"
    }

    fn validate(&self) -> Result<(), String> {
        check_url(self.url())?;
        Ok(())
    }

    fn check_token(&self, token: &TokenSpec) -> Result<(), String> {
        require_secret(token, self.kind())?;
        refuse_params(token, self.kind(), &[])
    }

    fn max_concurrency(&self) -> Option<usize> {
        self.max_concurrency
    }

    fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Provider>, String> {
        check_url(self.url())?;
        Ok(Arc::new(GitLab {
            base: self.url().trim_end_matches('/').to_string(),
            token_type: self.token_type,
            http: ctx.http.clone(),
        }))
    }
}

fn check_url(value: &str) -> Result<(), String> {
    let url = http::check_base_url("url", value)?;
    // The API path is added by the exporter; with it in the URL every call would 404.
    if url.path().trim_end_matches('/').ends_with("/api/v4") {
        return Err("url: give GitLab's base URL without /api/v4".into());
    }
    Ok(())
}

struct GitLab {
    /// The base URL without a trailing slash.
    base: String,
    token_type: TokenType,
    http: http::Client,
}

impl Provider for GitLab {
    fn probe<'a>(
        &'a self,
        _token: &'a TokenSpec,
        secret: &'a Secret,
        now: Timestamp,
    ) -> BoxFuture<'a, ProbeOutcome> {
        Box::pin(async move {
            let request = match self.token_type {
                TokenType::AccessToken => self
                    .http
                    .get(format!("{}/api/v4/personal_access_tokens/self", self.base))
                    .header("private-token", secret.expose()),
                TokenType::Oauth => self
                    .http
                    .get(format!("{}/oauth/token/info", self.base))
                    .bearer_auth(secret.expose()),
            }
            .header(reqwest::header::ACCEPT, http::JSON);
            match http::send(request).await {
                Ok(resp) => match self.token_type {
                    TokenType::AccessToken => {
                        parse_access_token(resp.status, &resp.headers, &resp.body, now)
                    }
                    TokenType::Oauth => parse_oauth(resp.status, &resp.headers, &resp.body, now),
                },
                Err(outcome) => outcome,
            }
        })
    }

    /// GitLab's authenticated API limits are per user, so tokens pause together when their
    /// last answers named the same user ID. The 403 GitLab gives an address after repeated
    /// failed authentications is marked as the whole entry's by the parse.
    fn rate_limit_key(&self, known: &TokenFacts) -> LimitKey {
        match known.extra.get("user_id").or(known.subject.as_ref()) {
            Some(user) => LimitKey::Identity(user.clone()),
            None => LimitKey::Token,
        }
    }
}

/// Turns GitLab's answer to `GET /api/v4/personal_access_tokens/self` into an outcome. Pure.
pub fn parse_access_token(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
) -> ProbeOutcome {
    if status != 200 {
        return refusal(status, headers, body, now);
    }
    let rate = http::rate_limit(headers);
    let doc: Value = match http::json(body) {
        Ok(v) => v,
        Err(o) => return o.with_rate_limit(rate),
    };
    let active = doc.get("active").and_then(Value::as_bool);
    let revoked = doc.get("revoked").and_then(Value::as_bool);
    if active.is_none() && revoked.is_none() {
        return ProbeOutcome::bad_response("no boolean \"active\" or \"revoked\" in the token")
            .with_rate_limit(rate);
    }
    let mut facts = TokenFacts {
        token_type: Some("access_token".into()),
        issued_at: time(doc.get("created_at")),
        last_used_at: time(doc.get("last_used_at")),
        scopes: string_list(doc.get("scopes")),
        ..TokenFacts::default()
    };
    facts.expiry = match doc.get("expires_at") {
        None | Some(Value::Null) => Expiry::Never,
        Some(v) => match v.as_str().and_then(expiry_date) {
            Some(at) => Expiry::At(at),
            None => {
                facts.note(
                    Anomaly::ExpiryUnreadable,
                    "GitLab's expires_at could not be read",
                );
                Expiry::Undisclosed
            }
        },
    };
    if let Some(id) = number_or_text(doc.get("user_id")) {
        facts.subject = Some(id.clone());
        facts.extra.insert("user_id".into(), id);
    }
    if let Some(id) = number_or_text(doc.get("id")) {
        facts.extra.insert("token_id".into(), id);
    }
    if let Some(name) = doc.get("name").and_then(Value::as_str) {
        facts.extra.insert("token_name".into(), name.to_string());
    }
    let outcome = if revoked == Some(true) {
        ProbeOutcome::invalid(Reason::Revoked, "GitLab reports the token as revoked")
    } else if active == Some(false) {
        // GitLab's `active` is "neither revoked nor expired", so here it expired.
        ProbeOutcome::invalid(
            Reason::Expired,
            "GitLab reports the token as inactive: it has expired",
        )
    } else {
        facts.flag_past_expiry(
            now,
            "GitLab reports an expiry in the past for a token it accepted",
        );
        ProbeOutcome::new(Verdict::Valid, Reason::Ok, "GitLab confirmed the token")
    };
    outcome.with_facts(facts).with_rate_limit(rate)
}

/// Turns GitLab's answer to `GET /oauth/token/info` into an outcome. Pure.
///
/// GitLab answers in Doorkeeper's shape (`scope` array, `expires_in` seconds or null,
/// `created_at` epoch) and adds `scopes` and `expires_in_seconds`; both spellings, a
/// space-separated `scope` and an ISO `created_at` are accepted, since the shape is not
/// documented as a contract.
pub fn parse_oauth(status: u16, headers: &HeaderMap, body: &[u8], now: Timestamp) -> ProbeOutcome {
    if status != 200 {
        return refusal(status, headers, body, now);
    }
    let rate = http::rate_limit(headers);
    let doc: Value = match http::json(body) {
        Ok(v) => v,
        Err(o) => return o.with_rate_limit(rate),
    };
    let scope = doc.get("scope").or_else(|| doc.get("scopes"));
    if !doc.is_object() || (scope.is_none() && doc.get("resource_owner_id").is_none()) {
        return ProbeOutcome::bad_response(
            "no \"scope\" or \"resource_owner_id\" in the token info",
        )
        .with_rate_limit(rate);
    }
    let mut facts = TokenFacts {
        token_type: Some("oauth".into()),
        issued_at: time(doc.get("created_at")),
        ..TokenFacts::default()
    };
    facts.scopes = match scope {
        Some(Value::String(s)) => {
            let mut v: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
            v.sort();
            v.dedup();
            v
        }
        other => string_list(other),
    };
    // A null `expires_in` means "never"; no such key at all means the answer does not say.
    let given: Vec<&Value> = ["expires_in", "expires_in_seconds"]
        .iter()
        .filter_map(|k| doc.get(*k))
        .collect();
    facts.expiry = match given.iter().find(|v| !v.is_null()) {
        None if given.is_empty() => Expiry::Undisclosed,
        None => Expiry::Never,
        Some(v) => match v
            .as_i64()
            .and_then(|s| now.checked_add(jiff::SignedDuration::from_secs(s)).ok())
        {
            Some(at) => Expiry::At(at),
            None => {
                facts.note(
                    Anomaly::ExpiryUnreadable,
                    "GitLab's expires_in could not be read",
                );
                Expiry::Undisclosed
            }
        },
    };
    if let Some(id) = number_or_text(doc.get("resource_owner_id")) {
        facts.subject = Some(id.clone());
        facts.extra.insert("user_id".into(), id);
    }
    facts.client_id = doc
        .pointer("/application/uid")
        .and_then(Value::as_str)
        .map(str::to_owned);
    facts.flag_past_expiry(
        now,
        "GitLab reports an expiry in the past for a token it accepted",
    );
    ProbeOutcome::valid(facts).with_rate_limit(rate)
}

/// Every status but 200, for both calls.
fn refusal(status: u16, headers: &HeaderMap, body: &[u8], now: Timestamp) -> ProbeOutcome {
    let rate = http::rate_limit(headers);
    let doc: Option<Value> = serde_json::from_slice(body).ok().filter(Value::is_object);
    let text = |name: &str| {
        doc.as_ref()
            .and_then(|d| d.get(name))
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
    };
    let outcome = match status {
        401 => {
            let said = [text("message"), text("error_description"), text("error")];
            if said.iter().all(Option::is_none) {
                // A 401 page from a proxy in front of GitLab says nothing about the token.
                return ProbeOutcome::bad_response("a 401 without GitLab's JSON error body")
                    .with_rate_limit(rate);
            }
            let said: String = said.into_iter().flatten().collect::<Vec<_>>().join(" ");
            if said.contains("expired") {
                ProbeOutcome::invalid(Reason::Expired, "GitLab says the token has expired")
            } else if said.contains("revoked") {
                ProbeOutcome::invalid(Reason::Revoked, "GitLab says the token was revoked")
            } else {
                ProbeOutcome::invalid(
                    Reason::UnknownToken,
                    "GitLab does not know the token (401 Unauthorized)",
                )
            }
        }
        403 => {
            let www = http::header(headers, "www-authenticate")
                .unwrap_or_default()
                .to_ascii_lowercase();
            if text("error").as_deref() == Some("insufficient_scope")
                || www.contains("insufficient_scope")
            {
                ProbeOutcome::new(
                    Verdict::Forbidden,
                    Reason::InsufficientScope,
                    "GitLab answered 403 insufficient_scope: the token's scopes do not allow \
                     it to read its own details",
                )
            } else {
                // GitLab.com answers 403 to an address that sent many failed logins, before
                // looking at the token: that is a refusal to answer, not a verdict.
                ProbeOutcome::rate_limited(
                    http::retry_after(headers, now),
                    "GitLab answered 403 without insufficient_scope, as it does when it blocks \
                     an address after repeated failed authentications",
                )
                // The block is the exporter's address's: every token of the entry shares it.
                .shared_by_entry()
            }
        }
        _ => return common_status(status, headers, now),
    };
    outcome.with_rate_limit(rate)
}

/// `expires_at`: a date, meaning the token stops at 00:00 UTC that day. A full timestamp is
/// accepted too.
pub fn expiry_date(text: &str) -> Option<Timestamp> {
    // jiff reads a date out of a longer datetime too, so only a bare date is taken as one.
    if text.len() == 10 {
        let date = text.parse::<jiff::civil::Date>().ok()?;
        return date
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp());
    }
    text.parse::<Timestamp>().ok()
}

/// An ISO 8601 timestamp string, or an epoch number (Doorkeeper's `created_at`).
fn time(v: Option<&Value>) -> Option<Timestamp> {
    match v? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => Timestamp::from_second(n.as_i64()?).ok(),
        _ => None,
    }
}

fn number_or_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    let mut out: Vec<String> = v
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests;
