//! `okta`: asks an Okta org who an API token (`SSWS`) is, then reads the token's metadata
//! from the API token list when the token's admin role may read it. Network I/O in `probe`;
//! the parse functions are pure.
//!
//! Okta API tokens expire a window (30 days unless set otherwise) after their last use, and
//! every authenticated request is a use: the probe itself renews the token. So a valid answer
//! sets the expiry to the probe's time plus the window (expiry model `sliding`), or to the
//! list's own `expiresAt` when the list can be read.
//!
//! The probe only reads: it never calls `DELETE /api/v1/api-tokens/current` nor any other
//! revocation.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use reqwest::header::HeaderMap;
use serde_json::{Map, Value};

use super::http::{self, common_status};
use super::{BoxFuture, BuildContext, Provider, ProviderKind, refuse_params, require_secret};
use crate::model::{Anomaly, Expiry, ExpiryModel, ProbeOutcome, Reason, TokenFacts, Verdict};
use crate::schema::TokenSpec;
use crate::secret::Secret;

/// The current user, below the org's address.
pub const ME_PATH: &str = "/api/v1/users/me";
/// The API token list, as large a page as Okta gives.
pub const LIST_PATH: &str = "/api/v1/api-tokens?limit=200";
/// Okta's documented window: an API token unused for 30 days is revoked.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);
/// Pages of the token list read at most per probe.
const MAX_PAGES: usize = 5;

#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The org's address, `https://<org>.okta.com` (or a custom domain). Required.
    pub url: Option<String>,
    pub max_concurrency: Option<usize>,
}

impl Config {
    fn org(&self) -> Result<&str, String> {
        self.url.as_deref().ok_or_else(|| {
            "url is required: the Okta org's address (https://<org>.okta.com)".to_string()
        })
    }
}

impl ProviderKind for Config {
    fn kind(&self) -> &'static str {
        "okta"
    }

    fn validate(&self) -> Result<(), String> {
        let url = http::check_base_url("url", self.org()?)?;
        if url.path().contains("/api/v1") {
            return Err("url: give the org's address without /api/v1; the kind appends it".into());
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
        let base = self.org()?.trim_end_matches('/').to_string();
        let origin = url::Url::parse(&base)
            .map_err(|e| format!("url: {e}"))?
            .origin();
        Ok(Arc::new(Okta {
            base,
            origin,
            http: ctx.http.clone(),
        }))
    }
}

struct Okta {
    base: String,
    /// Where `Link: rel="next"` may lead: the org itself, never elsewhere (the token goes
    /// with the request).
    origin: url::Origin,
    http: http::Client,
}

impl Okta {
    async fn get(&self, url: &str, secret: &Secret) -> Result<http::Response, ProbeOutcome> {
        let request = self
            .http
            .get(url)
            .header(
                reqwest::header::AUTHORIZATION,
                format!("SSWS {}", secret.expose()),
            )
            .header(reqwest::header::ACCEPT, http::JSON);
        http::send(request).await
    }
}

impl Provider for Okta {
    fn probe<'a>(
        &'a self,
        token: &'a TokenSpec,
        secret: &'a Secret,
        now: Timestamp,
    ) -> BoxFuture<'a, ProbeOutcome> {
        Box::pin(async move {
            let mut outcome = match self.get(&http::join(&self.base, ME_PATH), secret).await {
                Ok(resp) => parse(resp.status, &resp.headers, &resp.body, now),
                Err(outcome) => return outcome,
            };
            if outcome.verdict != Verdict::Valid {
                return outcome;
            }
            let user = outcome
                .facts
                .extra
                .get("user_id")
                .cloned()
                .unwrap_or_default();
            let key_id = token.params.key_id.as_deref();
            let mut found = Vec::new();
            let mut url = http::join(&self.base, LIST_PATH);
            for _ in 0..MAX_PAGES {
                let resp = match self.get(&url, secret).await {
                    Ok(resp) => resp,
                    Err(_) => {
                        note(&mut outcome.facts, ListNote::Failed);
                        return outcome;
                    }
                };
                match parse_tokens(resp.status, &resp.body, &user, key_id) {
                    Ok(mut entries) => found.append(&mut entries),
                    Err(why) => {
                        note(&mut outcome.facts, why);
                        return outcome;
                    }
                }
                match next_link(&resp.headers).filter(|n| self.same_org(n)) {
                    Some(next) => url = next,
                    None => break,
                }
            }
            apply_tokens(&found, key_id.is_some(), now, &mut outcome.facts);
            outcome
        })
    }
}

impl Okta {
    fn same_org(&self, next: &str) -> bool {
        url::Url::parse(next).is_ok_and(|u| u.origin() == self.origin)
    }
}

/// Turns the `GET /api/v1/users/me` answer into an outcome. A valid answer was a use of the
/// token, so its expiry is `now` plus [`DEFAULT_WINDOW`] until the list says otherwise. Pure.
pub fn parse(status: u16, headers: &HeaderMap, body: &[u8], now: Timestamp) -> ProbeOutcome {
    let rate = http::rate_limit(headers);
    let code = error_code(body);
    match (status, code.as_deref()) {
        (200, _) => {}
        (401, Some("E0000011")) => {
            return ProbeOutcome::invalid(
                Reason::UnknownToken,
                "Okta does not accept the API token (E0000011 Invalid token provided): unknown, revoked, expired after 30 days unused, or its user deactivated",
            )
            .with_rate_limit(rate);
        }
        (403, Some(_)) => {
            return ProbeOutcome::new(
                Verdict::Forbidden,
                Reason::InsufficientScope,
                "Okta accepted the API token but refused GET /api/v1/users/me (403)",
            )
            .with_rate_limit(rate);
        }
        (429, _) => {
            let wait = http::retry_after(headers, now).or_else(|| http::reset_wait(rate, now));
            return ProbeOutcome::rate_limited(wait, "Okta answered 429 (E0000047 rate limit)")
                .with_rate_limit(rate);
        }
        (401 | 403, _) => {
            return ProbeOutcome::unreachable(
                Reason::UnexpectedStatus,
                format!("Okta answered {status} without an Okta error code"),
            )
            .with_rate_limit(rate);
        }
        _ => return common_status(status, headers, now),
    }
    let doc: Value = match http::json(body) {
        Ok(v) => v,
        Err(o) => return o.with_rate_limit(rate),
    };
    let Some(id) = doc
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return ProbeOutcome::bad_response("no \"id\" string").with_rate_limit(rate);
    };
    let profile = doc.get("profile");
    let text = |v: Option<&Value>, name: &str| {
        v.and_then(|p| p.get(name))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let mut facts = TokenFacts {
        subject: Some(text(profile, "login").unwrap_or_else(|| id.to_string())),
        token_type: Some("api_token".into()),
        expiry_model: ExpiryModel::Sliding {
            window_seconds: DEFAULT_WINDOW.as_secs(),
        },
        // This answer was a use: the window restarts now.
        last_used_at: Some(now),
        ..TokenFacts::default()
    };
    facts.expiry = window_end(now, DEFAULT_WINDOW);
    facts.extra.insert("user_id".into(), id.to_string());
    if let Some(status) = text(Some(&doc), "status") {
        facts.extra.insert("user_status".into(), status);
    }
    ProbeOutcome::valid(facts).with_rate_limit(rate)
}

fn window_end(from: Timestamp, window: Duration) -> Expiry {
    SignedDuration::try_from(window)
        .ok()
        .and_then(|w| from.checked_add(w).ok())
        .map_or(Expiry::Undisclosed, Expiry::At)
}

/// Okta's `errorCode` (`E0000011`), when the body is Okta's error JSON and the code has
/// Okta's shape (so nothing else is ever shown).
fn error_code(body: &[u8]) -> Option<String> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    let code = doc.get("errorCode")?.as_str()?;
    let shaped =
        code.len() == 8 && code.starts_with('E') && code[1..].bytes().all(|b| b.is_ascii_digit());
    shaped.then(|| code.to_string())
}

/// Why the token list added nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListNote {
    /// 401/403: the token's admin role may not read API tokens.
    NotPermitted,
    /// Any other failure (5xx, garbage, a broken connection): the expiry is not updated.
    Failed,
}

fn note(facts: &mut TokenFacts, why: ListNote) {
    match why {
        ListNote::NotPermitted => {
            facts.extra.insert(
                "expiry_note".into(),
                "computed: last use (this probe) plus 30 days; the token list is not readable with this token's admin role".into(),
            );
        }
        ListNote::Failed => facts.flags.push(
            "Okta's API token list could not be read this time; the expiry is computed from this probe".into(),
        ),
    }
}

/// The entries of one page of `GET /api/v1/api-tokens` that may be the probed token: the one
/// named by `key_id` (id or name), else those of the answering user. Pure.
pub fn parse_tokens(
    status: u16,
    body: &[u8],
    user_id: &str,
    key_id: Option<&str>,
) -> Result<Vec<Map<String, Value>>, ListNote> {
    match status {
        200 => {}
        401 | 403 => return Err(ListNote::NotPermitted),
        _ => return Err(ListNote::Failed),
    }
    let Ok(Value::Array(entries)) = serde_json::from_slice::<Value>(body) else {
        return Err(ListNote::Failed);
    };
    let field =
        |t: &Map<String, Value>, name: &str| t.get(name).and_then(Value::as_str).map(str::to_owned);
    Ok(entries
        .into_iter()
        .filter_map(|e| match e {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .filter(|t| match key_id {
            Some(k) => {
                field(t, "id").as_deref() == Some(k) || field(t, "name").as_deref() == Some(k)
            }
            None => !user_id.is_empty() && field(t, "userId").as_deref() == Some(user_id),
        })
        .collect())
}

/// Sets the facts from the list entries that may be the probed token: with exactly one, its
/// `expiresAt`, `tokenWindow`, `created`, `lastUpdated`; otherwise a note. Pure.
pub fn apply_tokens(
    found: &[Map<String, Value>],
    by_key_id: bool,
    now: Timestamp,
    facts: &mut TokenFacts,
) {
    let [token] = found else {
        let note = match (by_key_id, found.len()) {
            (true, 0) => {
                "computed from this probe: no listed token has the configured key_id".to_string()
            }
            (false, 0) => {
                "computed from this probe: the user's token is not in the list".to_string()
            }
            (_, n) => format!(
                "computed from this probe: {n} listed tokens match; set key_id (the token's id or name) to pick this one"
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
    if let Some(window) = token
        .get("tokenWindow")
        .and_then(Value::as_str)
        .and_then(iso_duration)
    {
        facts.expiry_model = ExpiryModel::Sliding {
            window_seconds: window.as_secs(),
        };
        facts.expiry = window_end(now, window);
    }
    match token.get("expiresAt") {
        None | Some(Value::Null) => {}
        Some(_) => match time("expiresAt") {
            Some(at) => facts.expiry = Expiry::At(at),
            None => facts.note(
                Anomaly::ExpiryUnreadable,
                "the provider's expiresAt is not a usable expiry; the expiry is computed from this probe",
            ),
        },
    }
    facts.issued_at = time("created");
    for (key, name) in [
        ("id", "token_id"),
        ("name", "token_name"),
        ("clientName", "client_name"),
    ] {
        if let Some(v) = token.get(key).and_then(Value::as_str) {
            facts.extra.insert(name.into(), v.to_string());
        }
    }
    facts.flag_past_expiry(
        now,
        "Okta states an expiry in the past for a token it just accepted",
    );
}

/// An ISO 8601 duration of days, hours, minutes and seconds (`P30D`, `PT12H`, `P1DT6H`), as
/// Okta writes `tokenWindow`. Years, months and weeks are not fixed lengths and are refused.
pub fn iso_duration(text: &str) -> Option<Duration> {
    let rest = text.trim().strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut secs: u64 = 0;
    let mut any = false;
    let mut read = |part: &str, units: &[(char, u64)]| -> Option<()> {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let (_, unit) = units.iter().find(|(u, _)| *u == c)?;
            let n: u64 = number.parse().ok()?;
            secs = secs.checked_add(n.checked_mul(*unit)?)?;
            number.clear();
            any = true;
        }
        number.is_empty().then_some(())
    };
    read(date, &[('D', 86_400)])?;
    if let Some(t) = time {
        read(t, &[('H', 3_600), ('M', 60), ('S', 1)])?;
    }
    (any && secs > 0).then(|| Duration::from_secs(secs))
}

/// The `Link: <url>; rel="next"` of a page, as Okta pages its lists.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find(|part| part.contains("rel=\"next\""))
        .and_then(|part| {
            let start = part.find('<')? + 1;
            let end = part.find('>')?;
            (start < end).then(|| part[start..end].trim().to_string())
        })
}

#[cfg(test)]
mod tests;
