//! `docker_hub`: checks a Docker Hub personal access token (`dckr_pat_`) or organization
//! access token (`dckr_oat_`) the way Docker documents it: exchanged, with its account name,
//! for a short-lived bearer token at `POST /v2/auth/token`. Then, where Docker lets that
//! bearer read it, the personal access token's own record (`GET /v2/access-tokens/{uuid}`,
//! or the list `GET /v2/access-tokens`) gives its expiry, last use and scopes. Network I/O in
//! `probe`; [`answer`], [`parse`] and [`details`] are pure.
//!
//! The exchange is a token request, like an OAuth client-credentials grant: it changes
//! nothing on the account and its bearer (valid 10 minutes) is dropped after the probe. The
//! probe never creates, changes or deletes a token (`POST /v2/access-tokens`, `PATCH` or
//! `DELETE /v2/access-tokens/{uuid}`, the organization token routes).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use reqwest::header::HeaderMap;
use serde_json::Value;
use zeroize::Zeroize;

use super::http::pages::{self, Walk};
use super::http::{self, common_status};
use super::{BoxFuture, BuildContext, Provider, ProviderKind, refuse_params, require_secret};
use crate::model::{Anomaly, Expiry, ExpiryRead, ProbeOutcome, Reason, TokenFacts};
use crate::schema::TokenSpec;
use crate::secret::Secret;

/// Docker Hub's API server.
pub const DEFAULT_URL: &str = "https://hub.docker.com";

/// The documented exchange of an account name and a token for a bearer token.
pub const AUTH_PATH: &str = "/v2/auth/token";

/// The account's personal access tokens, below the server's address.
pub const ACCESS_TOKENS_PATH: &str = "/v2/access-tokens";

/// Personal access tokens start with this; organization access tokens with [`OAT_PREFIX`].
pub const PAT_PREFIX: &str = "dckr_pat_";
pub const OAT_PREFIX: &str = "dckr_oat_";

/// The most pages of the token list followed (100 tokens a page): one probe's calls stay
/// bounded even if the server links pages in a loop.
pub const MAX_PAGES: usize = 10;

#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The server's address (a path prefix is kept); the kind appends `/v2/...`. Defaults to
    /// [`DEFAULT_URL`].
    pub url: Option<String>,
    /// Whether to read a personal access token's record for its expiry (default true).
    #[serde(default = "yes")]
    pub token_details: bool,
    pub max_concurrency: Option<usize>,
}

fn yes() -> bool {
    true
}

impl Config {
    fn url(&self) -> &str {
        self.url.as_deref().unwrap_or(DEFAULT_URL)
    }
}

/// Whether `id` can be a token's UUID: it becomes a path segment, so only hex digits and
/// dashes, and a typo cannot turn into another path.
fn is_uuid_like(id: &str) -> bool {
    (8..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

impl ProviderKind for Config {
    fn kind(&self) -> &'static str {
        "docker_hub"
    }

    fn validate(&self) -> Result<(), String> {
        http::check_base_url("url", self.url())?;
        Ok(())
    }

    fn check_token(&self, token: &TokenSpec) -> Result<(), String> {
        require_secret(token, self.kind())?;
        refuse_params(token, self.kind(), &["username", "key_id"])?;
        match token.params.username.as_deref().map(str::trim) {
            None | Some("") => {
                return Err(
                    "username is required for a docker_hub token: the Docker ID of a personal access token's owner, or the organization of an organization access token"
                        .into(),
                );
            }
            Some(_) => {}
        }
        if let Some(id) = &token.params.key_id
            && !is_uuid_like(id)
        {
            return Err(
                "key_id must be the personal access token's UUID (hex digits and dashes)".into(),
            );
        }
        Ok(())
    }

    fn max_concurrency(&self) -> Option<usize> {
        self.max_concurrency
    }

    fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Provider>, String> {
        Ok(Arc::new(DockerHub {
            auth: http::join(self.url(), AUTH_PATH),
            tokens: self
                .token_details
                .then(|| http::join(self.url(), ACCESS_TOKENS_PATH)),
            http: ctx.http.clone(),
        }))
    }
}

struct DockerHub {
    auth: String,
    tokens: Option<String>,
    http: http::Client,
}

/// The exchange's body: built from borrowed text, so the token is not copied into a map.
/// The docker_hub source signs in with it too.
#[derive(serde::Serialize)]
pub struct Exchange<'a> {
    pub identifier: &'a str,
    pub secret: &'a str,
}

impl DockerHub {
    /// Adds the personal access token's record to `facts`. Never changes the verdict.
    async fn read_details(
        &self,
        base: &str,
        key_id: Option<&str>,
        bearer: &Secret,
        facts: &mut TokenFacts,
    ) {
        let get = |url: &str| {
            self.http
                .get(url)
                .bearer_auth(bearer.expose())
                .header(reqwest::header::ACCEPT, http::JSON)
        };
        if let Some(id) = key_id {
            match http::send(get(&format!("{base}/{id}"))).await {
                Ok(resp) => match record(resp.status, &resp.body) {
                    Ok(entry) => details(&entry, facts),
                    Err(why) => facts.flags.push(why),
                },
                Err(failed) => facts.flags.push(unreachable_flag(&failed)),
            }
            return;
        }
        let first = format!("{base}?page_size=100");
        let fetch = |url: String| http::send(get(&url));
        let follow = |_: &str, next: &str| same_origin(&first, next).then(|| next.to_string());
        match pages::walk(&first, MAX_PAGES, fetch, list_page, follow).await {
            Walk::Done(entries) => return only_entry(&entries, facts),
            Walk::Unanswered(failed) => return facts.flags.push(unreachable_flag(&failed)),
            Walk::Bad(why) => return facts.flags.push(why),
            Walk::Refused(_) => {
                return facts.flags.push(
                    "Docker Hub's token list links its next page to another server; the expiry is not disclosed"
                        .into(),
                );
            }
            Walk::TooMany(_) => {}
        }
        facts.flags.push(format!(
            "Docker Hub's token list has more than {MAX_PAGES} pages; set key_id to the token's UUID to see its expiry"
        ));
    }
}

fn unreachable_flag(failed: &ProbeOutcome) -> String {
    format!(
        "Docker Hub's token record could not be read ({}); the expiry is not disclosed this time",
        failed.reason
    )
}

fn same_origin(first: &str, next: &str) -> bool {
    match (url::Url::parse(first), url::Url::parse(next)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

impl Provider for DockerHub {
    fn probe<'a>(
        &'a self,
        token: &'a TokenSpec,
        secret: &'a Secret,
        now: Timestamp,
    ) -> BoxFuture<'a, ProbeOutcome> {
        Box::pin(async move {
            let Some(username) = token.params.username.as_deref().map(str::trim) else {
                return ProbeOutcome::misconfigured(
                    Reason::SecretUnavailable,
                    "a docker_hub token needs its username",
                );
            };
            let value = secret.expose().trim();
            let request = self
                .http
                .post(&self.auth)
                .header(reqwest::header::ACCEPT, http::JSON)
                .json(&Exchange {
                    identifier: username,
                    secret: value,
                });
            let (mut outcome, bearer) = match http::send(request).await {
                Ok(resp) => answer(resp.status, &resp.headers, resp.body, now),
                Err(outcome) => return outcome,
            };
            let facts = &mut outcome.facts;
            facts.subject = Some(username.to_string());
            let kind = token_kind(value);
            if let Some(kind) = kind {
                facts.token_type = Some(kind.into());
            }
            let (Some(bearer), Some(base)) = (bearer, &self.tokens) else {
                return outcome;
            };
            if kind == Some("organization") {
                facts.flags.push(
                    "Docker Hub shows an organization access token's expiry only to organization owners; the expiry is not disclosed"
                        .into(),
                );
                return outcome;
            }
            let key_id = token.params.key_id.as_deref();
            self.read_details(base, key_id, &bearer, facts).await;
            facts.flag_past_expiry(
                now,
                "Docker Hub lists an expiry in the past for a token it accepted",
            );
            outcome
        })
    }
}

/// `personal` or `organization` from the token's documented prefix.
fn token_kind(value: &str) -> Option<&'static str> {
    if value.starts_with(PAT_PREFIX) {
        Some("personal")
    } else if value.starts_with(OAT_PREFIX) {
        Some("organization")
    } else {
        None
    }
}

/// Turns the exchange's answer into an outcome. Pure.
pub fn parse(status: u16, headers: &HeaderMap, body: &[u8], now: Timestamp) -> ProbeOutcome {
    answer(status, headers, body.to_vec(), now).0
}

/// [`parse`], also returning the bearer token of a successful exchange, held as a
/// [`Secret`]; the answer's bytes are zeroed.
pub fn answer(
    status: u16,
    headers: &HeaderMap,
    mut body: Vec<u8>,
    now: Timestamp,
) -> (ProbeOutcome, Option<Secret>) {
    let rate = http::rate_limit(headers);
    let outcome = match status {
        200 => match bearer(&body) {
            Ok(bearer) => {
                body.zeroize();
                return (
                    ProbeOutcome::valid(TokenFacts::default()).with_rate_limit(rate),
                    Some(bearer),
                );
            }
            Err(what) => ProbeOutcome::bad_response(what),
        },
        401 => ProbeOutcome::invalid(
            Reason::UnknownToken,
            "Docker Hub refused the token for this username (HTTP 401: unknown, revoked, inactive or expired token, or a username it does not belong to)",
        ),
        429 => ProbeOutcome::rate_limited(
            wait(headers, now),
            "Docker Hub answered 429 Too Many Requests",
        ),
        _ => common_status(status, headers, now),
    };
    body.zeroize();
    (outcome.with_rate_limit(rate), None)
}

/// The `access_token` of a 200 answer, borrowed from the body and copied once, into the
/// [`Secret`]: no other copy outlives the body, which the caller zeroes.
pub fn bearer(body: &[u8]) -> Result<Secret, &'static str> {
    #[derive(serde::Deserialize)]
    struct Raw<'a> {
        #[serde(borrow, default)]
        access_token: Option<std::borrow::Cow<'a, str>>,
    }
    let raw: Raw<'_> =
        serde_json::from_slice(body).map_err(|_| "the answer is not the documented JSON object")?;
    match raw.access_token {
        // A `Cow::Owned` (a token with JSON escapes) moves into the secret.
        Some(t) if !t.trim().is_empty() => Ok(Secret::new(t.into_owned())),
        _ => Err("no \"access_token\" string"),
    }
}

/// How long a 429 asks to wait: `Retry-After`, else Docker Hub's `X-Retry-After` (the Unix
/// time to call again), else the `X-RateLimit-Reset` time.
pub fn wait(headers: &HeaderMap, now: Timestamp) -> Option<Duration> {
    http::retry_after(headers, now)
        .or_else(|| {
            let at = http::header(headers, "x-retry-after")?
                .parse::<i64>()
                .ok()?;
            let secs = at.checked_sub(now.as_second())?;
            Some(Duration::from_secs(secs.max(0) as u64))
        })
        .or_else(|| http::reset_wait(http::rate_limit(headers), now))
}

/// The flag for a record or list answer that gives no record.
fn refused(status: u16) -> String {
    match status {
        401 | 403 => format!(
            "Docker Hub does not let this token read its own record (HTTP {status}: access tokens cannot manage the account's tokens); the expiry is not disclosed"
        ),
        404 => "Docker Hub has no personal access token with this key_id (HTTP 404); the expiry is not disclosed".into(),
        429 => "Docker Hub asked to slow down (HTTP 429) when asked for the token's record; read again at the next probe".into(),
        _ => format!(
            "Docker Hub answered HTTP {status} when asked for the token's record; the expiry is not disclosed"
        ),
    }
}

/// One token record (`GET /v2/access-tokens/{uuid}`); the error is the flag to show. Pure.
pub fn record(status: u16, body: &[u8]) -> Result<Value, String> {
    if status != 200 {
        return Err(refused(status));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(
            "Docker Hub's token record is not the documented JSON; the expiry is not disclosed"
                .into(),
        ),
    }
}

/// One page of `GET /v2/access-tokens`: its records and the next page's URL. Pure.
pub fn list_page(status: u16, body: &[u8]) -> Result<(Vec<Value>, Option<String>), String> {
    if status != 200 {
        return Err(refused(status));
    }
    parse_page(body).map_err(|what| {
        format!(
            "Docker Hub's token list is not the documented JSON ({what}); the expiry is not disclosed"
        )
    })
}

/// The body of one page of a Docker Hub token list (`/v2/access-tokens`,
/// `/v2/orgs/{name}/access-tokens`): each of its `results` as a `T`, and the URL of the
/// `next` page (none when `null` or empty). The error says what is not as documented. Pure;
/// the probe reads its entries as JSON values, the docker_hub source as typed records.
pub fn parse_page<T: serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<(Vec<T>, Option<String>), &'static str> {
    let doc: Value = serde_json::from_slice(body).map_err(|_| "not JSON")?;
    let Some(results) = doc.get("results").and_then(Value::as_array) else {
        return Err("no \"results\" array");
    };
    let next = match doc.get("next") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("\"next\" is not a string"),
    };
    let results = results
        .iter()
        .map(|r| T::deserialize(r).map_err(|_| "an entry is not the documented record"))
        .collect::<Result<Vec<T>, _>>()?;
    Ok((results, next))
}

/// The token's record when the list holds exactly one (the account's only personal access
/// token is the one that was exchanged). Docker Hub lists no part of a token's value, so with
/// more than one the token cannot be told apart without its UUID. Pure.
pub fn only_entry(entries: &[Value], facts: &mut TokenFacts) {
    match entries {
        [one] => details(one, facts),
        _ => facts.flags.push(format!(
            "the account has {} personal access tokens and Docker Hub lists none of their values; set key_id to the token's UUID to see its expiry",
            entries.len()
        )),
    }
}

/// Adds what a personal access token's record says to `facts`. Pure.
pub fn details(entry: &Value, facts: &mut TokenFacts) {
    if !entry.is_object() {
        return facts.flags.push(
            "Docker Hub's token record is not the documented JSON; the expiry is not disclosed"
                .into(),
        );
    }
    let text = |name: &str| {
        entry
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let time = |name: &str| text(name).and_then(|s| s.parse::<Timestamp>().ok());
    facts.issued_at = time("created_at");
    facts.last_used_at = time("last_used");
    let mut scopes: Vec<String> = entry
        .get("scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    scopes.sort();
    scopes.dedup();
    facts.scopes = scopes;
    for (from, to) in [
        ("uuid", "token_id"),
        ("token_label", "token_label"),
        ("generated_by", "generated_by"),
    ] {
        if let Some(v) = text(from) {
            facts.extra.insert(to.into(), v.to_string());
        }
    }
    if entry.get("is_active").and_then(Value::as_bool) == Some(false) {
        facts
            .flags
            .push("Docker Hub lists the token as inactive, though it accepted it".into());
    }
    // Docker documents a token created without an expiry date as valid indefinitely.
    let read = match entry.get("expires_at") {
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
    facts.set_expiry(read, "expires_at");
}

#[cfg(test)]
mod tests;
