//! `terraform`: asks HCP Terraform or Terraform Enterprise who a user, team or organization
//! API token is (`GET /api/v2/account/details`), then, where the token may read it, its own
//! authentication-token record for `expired-at`. Network I/O in `probe`; [`parse`],
//! [`token_record`] and [`record_facts`] are pure.
//!
//! The verdict comes from the account details alone; a refused or unreadable record leaves it
//! as it was and the expiry undisclosed, with a flag. The probe never creates, regenerates or
//! deletes a token (a `POST` to a legacy team or organization token route replaces the
//! existing token).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::http::pages::{self, Walk, next_on_origin as resolve};
use super::http::{self, common_status};
use super::{
    BoxFuture, BuildContext, LimitKey, Provider, ProviderKind, refuse_params, require_secret,
};
use crate::model::{
    Anomaly, Expiry, ExpiryRead, ProbeOutcome, RateLimit, Reason, TokenFacts, Verdict,
};
use crate::schema::TokenSpec;
use crate::secret::Secret;

/// HCP Terraform. A Terraform Enterprise installation is its own address.
pub const DEFAULT_URL: &str = "https://app.terraform.io";

/// The API, below the server's address.
pub const API_PATH: &str = "/api/v2";

/// JSON:API's media type, which the API answers with.
const JSON_API: &str = "application/vnd.api+json";

/// The most pages of a token list followed (100 tokens a page).
pub const MAX_PAGES: usize = 10;

#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The server's address (a path prefix is kept); the kind appends `/api/v2/...`.
    /// Defaults to [`DEFAULT_URL`].
    pub url: Option<String>,
    /// Whether to read the token's own record for its expiry (default true).
    #[serde(default = "yes")]
    pub token_details: bool,
    pub max_concurrency: Option<usize>,
}

fn yes() -> bool {
    true
}

impl Config {
    fn api(&self) -> String {
        http::join(self.url.as_deref().unwrap_or(DEFAULT_URL), API_PATH)
    }
}

/// Whether `id` may go into a path: the characters HCP Terraform's ids and organization
/// names are made of, so an answer cannot turn into another path.
fn is_path_safe(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !id.starts_with('.')
}

impl ProviderKind for Config {
    fn kind(&self) -> &'static str {
        "terraform"
    }

    fn validate(&self) -> Result<(), String> {
        http::check_base_url("url", self.url.as_deref().unwrap_or(DEFAULT_URL))?;
        Ok(())
    }

    fn check_token(&self, token: &TokenSpec) -> Result<(), String> {
        require_secret(token, self.kind())?;
        refuse_params(token, self.kind(), &["key_id"])?;
        if let Some(id) = &token.params.key_id
            && !(id.starts_with("at-") && is_path_safe(id))
        {
            return Err("key_id must be the token's id as HCP Terraform shows it (at-...)".into());
        }
        Ok(())
    }

    fn max_concurrency(&self) -> Option<usize> {
        self.max_concurrency
    }

    fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Provider>, String> {
        Ok(Arc::new(Terraform {
            api: self.api(),
            details: self.token_details,
            http: ctx.http.clone(),
        }))
    }
}

struct Terraform {
    api: String,
    details: bool,
    http: http::Client,
}

/// Whose token it is, from the account details' `authenticated-resource`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    User(String),
    Team(String),
    Organization(String),
}

impl Terraform {
    fn get(&self, url: &str, secret: &Secret) -> http::RequestBuilder {
        self.http
            .get(url)
            .bearer_auth(secret.expose())
            .header(reqwest::header::ACCEPT, JSON_API)
    }

    /// Adds the token's own record to `facts`. Never changes the verdict.
    async fn read_record(
        &self,
        owner: &Owner,
        key_id: Option<&str>,
        secret: &Secret,
        facts: &mut TokenFacts,
    ) {
        let api = &self.api;
        let single = match (key_id, owner) {
            (Some(id), _) => Some(format!("{api}/authentication-tokens/{id}")),
            (None, Owner::Organization(org)) => {
                Some(format!("{api}/organizations/{org}/authentication-token"))
            }
            _ => None,
        };
        if let Some(url) = single {
            return match http::send(self.get(&url, secret)).await {
                Ok(resp) => match token_record(resp.status, &resp.body) {
                    Ok(record) => record_facts(&record, facts),
                    Err(why) => facts.flags.push(why),
                },
                Err(failed) => facts.flags.push(unreachable_flag(&failed)),
            };
        }
        let first = match owner {
            Owner::User(id) => format!("{api}/users/{id}/authentication-tokens?page%5Bsize%5D=100"),
            Owner::Team(id) => format!("{api}/teams/{id}/authentication-tokens?page%5Bsize%5D=100"),
            Owner::Organization(_) => unreachable!("an organization has one token"),
        };
        let fetch = |url: String| http::send(self.get(&url, secret));
        let follow = |current: &str, next: &str| resolve(&first, current, next);
        match pages::walk(&first, MAX_PAGES, fetch, token_list, follow).await {
            // A next link to another server ends the list where it is.
            Walk::Done(records) | Walk::Refused(records) => return only_record(&records, facts),
            Walk::Unanswered(failed) => return facts.flags.push(unreachable_flag(&failed)),
            Walk::Bad(why) => return facts.flags.push(why),
            Walk::TooMany(_) => {}
        }
        facts.flags.push(format!(
            "the token list has more than {MAX_PAGES} pages; set key_id to the token's id to see its expiry"
        ));
    }
}

fn unreachable_flag(failed: &ProbeOutcome) -> String {
    format!(
        "the token's record could not be read ({}); the expiry is not disclosed this time",
        failed.reason
    )
}

impl Provider for Terraform {
    fn probe<'a>(
        &'a self,
        token: &'a TokenSpec,
        secret: &'a Secret,
        now: Timestamp,
    ) -> BoxFuture<'a, ProbeOutcome> {
        Box::pin(async move {
            let url = format!("{}/account/details", self.api);
            let mut outcome = match http::send(self.get(&url, secret)).await {
                Ok(resp) => parse(resp.status, &resp.headers, &resp.body, now),
                Err(outcome) => return outcome,
            };
            if outcome.verdict != Verdict::Valid || !self.details {
                return outcome;
            }
            let facts = &mut outcome.facts;
            let Some(owner) = owner_of(facts) else {
                facts.flags.push(
                    "the account details name no token owner this exporter can look up; the expiry is not disclosed"
                        .into(),
                );
                return outcome;
            };
            let key_id = token.params.key_id.as_deref();
            self.read_record(&owner, key_id, secret, facts).await;
            facts.flag_past_expiry(
                now,
                "HCP Terraform lists an expiry in the past for a token it accepted",
            );
            outcome
        })
    }

    /// HCP Terraform counts its limit per user, and team and organization tokens each act as
    /// their own service user: tokens whose answers named the same user pause together.
    fn rate_limit_key(&self, known: &TokenFacts) -> LimitKey {
        match known.extra.get("user_id") {
            Some(id) => LimitKey::Identity(id.clone()),
            None => LimitKey::Token,
        }
    }
}

/// The owner [`parse`] recorded in `facts`, when its id is safe in a path.
fn owner_of(facts: &TokenFacts) -> Option<Owner> {
    let id = facts.extra.get("owner_id").filter(|id| is_path_safe(id))?;
    Some(match facts.token_type.as_deref()? {
        "user" => Owner::User(id.clone()),
        "team" => Owner::Team(id.clone()),
        "organization" => Owner::Organization(id.clone()),
        _ => return None,
    })
}

/// Rate-limit headroom: `X-RateLimit-Limit`, `X-RateLimit-Remaining`, and
/// `X-RateLimit-Reset`, which HCP Terraform sends as the seconds (a decimal) until the
/// window resets, not as a time.
pub fn rate_limit(headers: &HeaderMap, now: Timestamp) -> Option<RateLimit> {
    let num = |name: &str| {
        http::header(headers, name)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    let remaining = num("x-ratelimit-remaining");
    let limit = num("x-ratelimit-limit");
    if remaining.is_none() && limit.is_none() {
        return None;
    }
    let reset_at = num("x-ratelimit-reset")
        .filter(|s| *s < 86_400.0)
        .and_then(|s| Timestamp::from_second(now.as_second() + s.ceil() as i64).ok());
    Some(RateLimit {
        remaining,
        limit,
        reset_at,
    })
}

/// The wait a 429 asks for: `Retry-After`, else the seconds of `X-RateLimit-Reset`
/// (at least one: the window is a second long).
fn wait(headers: &HeaderMap, now: Timestamp) -> Option<Duration> {
    http::retry_after(headers, now).or_else(|| {
        let secs = http::header(headers, "x-ratelimit-reset")?
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0 && *s < 86_400.0)?;
        Some(Duration::from_secs(secs.ceil().max(1.0) as u64))
    })
}

/// Turns an account-details answer into an outcome. Pure.
pub fn parse(status: u16, headers: &HeaderMap, body: &[u8], now: Timestamp) -> ProbeOutcome {
    let rate = rate_limit(headers, now);
    match status {
        200 => {}
        401 => {
            return ProbeOutcome::invalid(
                Reason::UnknownToken,
                "HCP Terraform does not accept the token (HTTP 401: unknown, revoked or expired)",
            )
            .with_rate_limit(rate);
        }
        429 => {
            return ProbeOutcome::rate_limited(
                wait(headers, now),
                "HCP Terraform answered 429 Too Many Requests",
            )
            .with_rate_limit(rate);
        }
        _ => {
            let mut o = common_status(status, headers, now);
            o.rate_limit = rate;
            return o;
        }
    }
    let doc: Value = match http::json(body) {
        Ok(v) => v,
        Err(o) => return o.with_rate_limit(rate),
    };
    match account_facts(&doc) {
        Ok(facts) => ProbeOutcome::valid(facts),
        Err(what) => ProbeOutcome::bad_response(what),
    }
    .with_rate_limit(rate)
}

/// The facts of a successful account-details answer.
fn account_facts(doc: &Value) -> Result<TokenFacts, &'static str> {
    let data = doc
        .get("data")
        .filter(|d| d.is_object())
        .ok_or("no \"data\" object")?;
    let user_id = data
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("no \"data.id\" string")?;
    let attributes = data.get("attributes").filter(|a| a.is_object());
    let text = |name: &str| {
        attributes
            .and_then(|a| a.get(name))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let mut facts = TokenFacts {
        subject: text("username").map(str::to_owned),
        ..TokenFacts::default()
    };
    facts.extra.insert("user_id".into(), user_id.to_string());
    let resource = data
        .pointer("/relationships/authenticated-resource/data")
        .filter(|r| r.is_object());
    let (kind, owner_id) = match resource {
        Some(r) => (
            r.get("type").and_then(Value::as_str),
            r.get("id").and_then(Value::as_str),
        ),
        // Older installations do not send the relationship: the user is the token's owner
        // unless HCP Terraform says it is a service account.
        None => (None, None),
    };
    let service = attributes
        .and_then(|a| a.get("is-service-account"))
        .and_then(Value::as_bool);
    let kind = match (kind, service) {
        (Some("users"), _) | (None, Some(false)) => Some("user"),
        (Some("teams"), _) => Some("team"),
        (Some("organizations"), _) => Some("organization"),
        _ => None,
    };
    if let Some(kind) = kind {
        facts.token_type = Some(kind.into());
        let owner = owner_id.unwrap_or(if kind == "user" { user_id } else { "" });
        if !owner.is_empty() {
            facts.extra.insert("owner_id".into(), owner.to_string());
        }
    }
    if let Some(email) = text("email") {
        facts.extra.insert("email".into(), email.to_string());
    }
    Ok(facts)
}

/// The flag for an answer that gives no token record.
fn refused(status: u16) -> String {
    match status {
        401 | 403 | 404 => format!(
            "HCP Terraform does not let this token read its own token record (HTTP {status}); the expiry is not disclosed"
        ),
        429 => "HCP Terraform asked to slow down (HTTP 429) when asked for the token's record; read again at the next probe".into(),
        _ => format!(
            "HCP Terraform answered HTTP {status} when asked for the token's record; the expiry is not disclosed"
        ),
    }
}

fn bad(what: &str) -> String {
    format!(
        "the token's record is not the documented JSON:API document ({what}); the expiry is not disclosed"
    )
}

/// One token record (`{"data": {...}}`); the error is the flag to show. Pure.
pub fn token_record(status: u16, body: &[u8]) -> Result<Value, String> {
    if status != 200 {
        return Err(refused(status));
    }
    let doc: Value = serde_json::from_slice(body).map_err(|_| bad("not JSON"))?;
    match doc.get("data") {
        Some(d) if d.is_object() => Ok(d.clone()),
        _ => Err(bad("no \"data\" object")),
    }
}

/// One page of a token list (`{"data": [...], "links": {"next": ...}}`). Pure.
pub fn token_list(status: u16, body: &[u8]) -> Result<(Vec<Value>, Option<String>), String> {
    if status != 200 {
        return Err(refused(status));
    }
    let doc: Value = serde_json::from_slice(body).map_err(|_| bad("not JSON"))?;
    let Some(data) = doc.get("data").and_then(Value::as_array) else {
        return Err(bad("no \"data\" array"));
    };
    let next = match doc.pointer("/links/next") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad("\"links.next\" is not a string")),
    };
    Ok((data.clone(), next))
}

/// The token's record when the list holds exactly one: the owner's only token is the one
/// that authenticated. The API lists no part of a token's value, so with more the token
/// cannot be told apart without its id. Pure.
pub fn only_record(records: &[Value], facts: &mut TokenFacts) {
    match records {
        [one] => record_facts(one, facts),
        _ => facts.flags.push(format!(
            "the owner has {} tokens and HCP Terraform lists none of their values; set key_id to the token's id (at-...) to see its expiry",
            records.len()
        )),
    }
}

/// Adds what an `authentication-tokens` record says to `facts`. Pure.
pub fn record_facts(record: &Value, facts: &mut TokenFacts) {
    let Some(attributes) = record.get("attributes").filter(|a| a.is_object()) else {
        return facts.flags.push(bad("no \"attributes\" object"));
    };
    let text = |name: &str| {
        attributes
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let time = |name: &str| text(name).and_then(|s| s.parse::<Timestamp>().ok());
    facts.issued_at = time("created-at");
    facts.last_used_at = time("last-used-at");
    if let Some(id) = record.get("id").and_then(Value::as_str) {
        facts.extra.insert("token_id".into(), id.to_string());
    }
    if let Some(d) = text("description") {
        facts.extra.insert("description".into(), d.to_string());
    }
    // HashiCorp documents `expired-at` null as a token that does not expire.
    let read = match attributes.get("expired-at") {
        None | Some(Value::Null) => {
            facts.expiry = Expiry::Never;
            ExpiryRead::Absent
        }
        Some(Value::String(s)) => match s.trim().parse::<Timestamp>() {
            Ok(at) => ExpiryRead::At(at, None),
            Err(_) => ExpiryRead::Unusable(Anomaly::ExpiryUnreadable),
        },
        Some(_) => ExpiryRead::Unusable(Anomaly::ExpiryUnreadable),
    };
    facts.set_expiry(read, "expired-at");
}

#[cfg(test)]
mod tests;
