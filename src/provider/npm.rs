//! `npm`: asks an npm registry who a token is (`GET /-/whoami`), then, where the token may
//! read it, finds the token in its owner's token list (`GET /-/npm/v1/tokens`) for its expiry,
//! type, allowed address ranges and creation time. Network I/O in `probe`; [`parse`] and
//! [`list_facts`] are pure.
//!
//! The verdict comes from `whoami` alone. The list only adds facts: a registry that refuses
//! it (a token type that may not read it, a registry without the endpoint) leaves the verdict
//! as `whoami` gave it and the expiry undisclosed, with a flag saying why.
//!
//! The probe is read-only: it never creates (`POST /-/npm/v1/tokens`) or revokes
//! (`DELETE /-/npm/v1/tokens/token/{key}`) a token, and never publishes.

use std::sync::Arc;

use jiff::Timestamp;
use reqwest::header::HeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha512};

use super::http::pages::{self, Walk};
use super::http::{self, common_status};
use super::{BoxFuture, BuildContext, Provider, ProviderKind, refuse_params, require_secret};
use crate::model::{Anomaly, Expiry, ExpiryRead, ProbeOutcome, Reason, TokenFacts, Verdict};
use crate::schema::TokenSpec;
use crate::secret::Secret;

/// The public npm registry.
pub const DEFAULT_URL: &str = "https://registry.npmjs.org";

/// Who the token is, below the registry's address.
pub const WHOAMI_PATH: &str = "/-/whoami";

/// The token owner's token list, below the registry's address.
pub const TOKENS_PATH: &str = "/-/npm/v1/tokens";

/// The most pages of the token list followed: npm allows 1,000 granular tokens per account,
/// so this bounds one probe's calls, and a registry linking pages in a loop cannot keep a
/// probe busy until its timeout.
pub const MAX_PAGES: usize = 20;

/// The shortest redacted form (prefix and suffix together) that may tie a list entry to the
/// token: `npm_` and four characters. Shorter, two different tokens fit too often.
const MIN_REDACTED: usize = 8;

#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The registry's address (a path prefix is kept); the kind appends `/-/whoami` and
    /// `/-/npm/v1/tokens`. Defaults to [`DEFAULT_URL`].
    pub url: Option<String>,
    /// Whether to read the token list for the expiry (default true). A registry without the
    /// list (many private registries) answers 404 there; `false` spares that call.
    #[serde(default = "yes")]
    pub token_list: bool,
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

impl ProviderKind for Config {
    fn kind(&self) -> &'static str {
        "npm"
    }

    fn validate(&self) -> Result<(), String> {
        http::check_base_url("url", self.url())?;
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
        Ok(Arc::new(Npm {
            whoami: http::join(self.url(), WHOAMI_PATH),
            tokens: self.token_list.then(|| http::join(self.url(), TOKENS_PATH)),
            http: ctx.http.clone(),
        }))
    }
}

struct Npm {
    whoami: String,
    tokens: Option<String>,
    http: http::Client,
}

impl Npm {
    fn get(&self, url: &str, secret: &Secret) -> http::RequestBuilder {
        self.http
            .get(url)
            .bearer_auth(secret.expose())
            .header(reqwest::header::ACCEPT, http::JSON)
    }

    /// Reads the token list page by page into `facts`. Never changes the verdict.
    async fn read_list(&self, first: &str, secret: &Secret, facts: &mut TokenFacts) {
        let held = Held::new(secret.expose());
        let fetch = |url: String| http::send(self.get(&url, secret));
        let parse = |status, body: &[u8]| list_page(status, body).map(|p| (p.objects, p.next));
        let follow = |current: &str, next: &str| next_page(first, current, next);
        let entries = match pages::walk(first, MAX_PAGES, fetch, parse, follow).await {
            Walk::Done(entries) => return list_facts(&entries, &held, facts),
            Walk::Unanswered(failed) => {
                return facts.flags.push(format!(
                    "npm's token list could not be read ({}); the expiry is not disclosed this time",
                    failed.reason
                ));
            }
            Walk::Bad(why) => return facts.flags.push(why),
            Walk::Refused(_) => {
                return facts.flags.push(
                    "npm's token list links its next page to another server; the listing stops there and the expiry is not disclosed"
                        .into(),
                );
            }
            Walk::TooMany(entries) => entries,
        };
        // Past the cap: what was read may still hold the token.
        list_facts(&entries, &held, facts);
        if facts.expiry == Expiry::Undisclosed {
            facts.flags.push(format!(
                "npm's token list has more than {MAX_PAGES} pages; the rest was not read"
            ));
        }
    }
}

impl Provider for Npm {
    fn probe<'a>(
        &'a self,
        _token: &'a TokenSpec,
        secret: &'a Secret,
        now: Timestamp,
    ) -> BoxFuture<'a, ProbeOutcome> {
        Box::pin(async move {
            let mut outcome = match http::send(self.get(&self.whoami, secret)).await {
                Ok(resp) => parse(resp.status, &resp.headers, &resp.body, now),
                Err(outcome) => return outcome,
            };
            if let (Verdict::Valid, Some(first)) = (outcome.verdict, &self.tokens) {
                self.read_list(first, secret, &mut outcome.facts).await;
                outcome.facts.flag_past_expiry(
                    now,
                    "npm lists an expiry in the past for a token whoami accepted",
                );
            }
            outcome
        })
    }
}

/// Turns a `whoami` answer into an outcome. Pure.
///
/// The expiry is undisclosed here: `whoami` says nothing about it; the token list may.
pub fn parse(status: u16, headers: &HeaderMap, body: &[u8], now: Timestamp) -> ProbeOutcome {
    let rate = http::rate_limit(headers);
    match status {
        200 => {}
        401 => return unauthorized(headers).with_rate_limit(rate),
        403 => {
            return ProbeOutcome::new(
                Verdict::Forbidden,
                Reason::InsufficientScope,
                "the registry refused whoami for this token (HTTP 403)",
            )
            .with_rate_limit(rate);
        }
        _ => return common_status(status, headers, now),
    }
    let doc: Value = match http::json(body) {
        Ok(v) => v,
        Err(o) => return o.with_rate_limit(rate),
    };
    let Some(username) = doc
        .get("username")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
    else {
        return ProbeOutcome::bad_response("no \"username\" string").with_rate_limit(rate);
    };
    let facts = TokenFacts {
        subject: Some(username.to_string()),
        ..TokenFacts::default()
    };
    ProbeOutcome::valid(facts).with_rate_limit(rate)
}

/// A 401. npm's client reads `WWW-Authenticate` to tell a token refused from where it is
/// used (`ipaddress`: outside the token's allowed ranges) or one that needs a one-time
/// password (`otp`); only a plain 401 says the token itself is not accepted.
fn unauthorized(headers: &HeaderMap) -> ProbeOutcome {
    let challenges: Vec<String> = http::header(headers, reqwest::header::WWW_AUTHENTICATE)
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    if challenges.iter().any(|c| c == "ipaddress") {
        return ProbeOutcome::new(
            Verdict::Forbidden,
            Reason::InsufficientScope,
            "npm does not accept the token from this address (WWW-Authenticate: ipaddress): the exporter is outside the token's allowed IP ranges",
        );
    }
    if challenges.iter().any(|c| c == "otp") {
        return ProbeOutcome::new(
            Verdict::Forbidden,
            Reason::InsufficientScope,
            "npm asks for a one-time password for this call (WWW-Authenticate: otp)",
        );
    }
    ProbeOutcome::invalid(
        Reason::UnknownToken,
        "npm does not accept the token (HTTP 401: unknown, revoked or expired)",
    )
}

/// One page of the token list: its entries, and the next page's link.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    pub objects: Vec<Value>,
    pub next: Option<String>,
}

/// Reads one answer of the token list; the error is the flag to show. Pure.
pub fn list_page(status: u16, body: &[u8]) -> Result<Page, String> {
    let refused = |why: &str| {
        Err(format!(
            "npm refused the token list (HTTP {status}): {why}; whoami's verdict stands and the expiry is not disclosed"
        ))
    };
    match status {
        200 => {}
        401 | 403 => return refused("this token may not read its account's token list"),
        404 => return refused("the registry has no token list"),
        429 => return refused("rate limited, read again at the next probe"),
        _ => return refused("not an answer npm documents for this call"),
    }
    let bad = |what: &str| {
        format!("npm's token list is not the documented JSON ({what}); the expiry is not disclosed")
    };
    let doc: Value = serde_json::from_slice(body).map_err(|_| bad("not JSON"))?;
    let Some(objects) = doc.get("objects").and_then(Value::as_array) else {
        return Err(bad("no \"objects\" array"));
    };
    let next = match doc.get("urls").and_then(|u| u.get("next")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad("\"urls.next\" is not a string")),
    };
    Ok(Page {
        objects: objects.clone(),
        next,
    })
}

pub use super::http::pages::next_on_origin as next_page;

/// What the list is matched against: the token's SHA-512 (npm's key for tokens of the old
/// scheme) and its value, for the redacted form granular tokens are listed with.
pub struct Held<'a> {
    sha512_hex: String,
    value: &'a str,
}

impl<'a> Held<'a> {
    pub fn new(value: &'a str) -> Held<'a> {
        let value = value.trim();
        let digest = Sha512::digest(value.as_bytes());
        let mut sha512_hex = String::with_capacity(128);
        for b in digest {
            sha512_hex.push_str(&format!("{b:02x}"));
        }
        Held { sha512_hex, value }
    }

    fn is_key(&self, key: &str) -> bool {
        key.eq_ignore_ascii_case(&self.sha512_hex)
    }

    /// Whether npm's redacted form (`npm_aBcD...wxyz`, or a bare prefix) fits the token.
    fn fits(&self, redacted: &str) -> bool {
        let (prefix, suffix) = redacted
            .split_once("...")
            .or_else(|| redacted.split_once('\u{2026}'))
            .unwrap_or((redacted, ""));
        prefix.len() + suffix.len() >= MIN_REDACTED
            && self.value.len() >= prefix.len() + suffix.len()
            && self.value.starts_with(prefix)
            && self.value.ends_with(suffix)
    }
}

/// Finds the token among the list's entries and adds what its entry says to `facts`: by
/// `key` (the SHA-512 of the token), else by the redacted `token` when exactly one entry
/// fits. No entry, or several, leaves the expiry undisclosed with a flag. Pure.
pub fn list_facts(entries: &[Value], held: &Held<'_>, facts: &mut TokenFacts) {
    let by_key = entries.iter().find(|e| {
        e.get("key")
            .and_then(Value::as_str)
            .is_some_and(|k| held.is_key(k))
    });
    let entry = match by_key {
        Some(e) => e,
        None => {
            let fitting: Vec<&Value> = entries
                .iter()
                .filter(|e| {
                    e.get("token")
                        .and_then(Value::as_str)
                        .is_some_and(|r| held.fits(r))
                })
                .collect();
            match fitting.as_slice() {
                [one] => *one,
                [] => {
                    return facts.flags.push(format!(
                        "the token is not in its account's token list ({} entries; a session token from npm login is not listed); the expiry is not disclosed",
                        entries.len()
                    ));
                }
                many => {
                    return facts.flags.push(format!(
                        "{} entries of the token list fit the token's redacted form; the expiry is not disclosed",
                        many.len()
                    ));
                }
            }
        }
    };
    entry_facts(entry, facts);
}

/// The facts of the token's own list entry.
fn entry_facts(entry: &Value, facts: &mut TokenFacts) {
    let text = |name: &str| {
        entry
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let time = |name: &str| text(name).and_then(|s| s.parse::<Timestamp>().ok());
    let permissions: Vec<String> = entry
        .get("permissions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let name = p.get("name").and_then(Value::as_str)?;
            let action = p.get("action").and_then(Value::as_str)?;
            Some(format!("{name}:{action}"))
        })
        .collect();
    let granular = entry.get("permissions").is_some() || entry.get("expiry").is_some();
    let flag = |name: &str| entry.get(name).and_then(Value::as_bool);
    facts.token_type = Some(
        if granular {
            "granular"
        } else if flag("automation") == Some(true) {
            "automation"
        } else if flag("readonly") == Some(true) {
            "read-only"
        } else {
            "publish"
        }
        .into(),
    );
    facts.scopes = permissions;
    facts.scopes.sort();
    facts.scopes.dedup();
    facts.issued_at = time("created");
    facts.last_used_at = time("accessed");
    if let Some(name) = text("name") {
        facts.extra.insert("token_name".into(), name.to_string());
    }
    if let Some(readonly) = flag("readonly") {
        facts.extra.insert("readonly".into(), readonly.to_string());
    }
    if let Some(bypass) = flag("bypass_2fa") {
        facts.extra.insert("bypass_2fa".into(), bypass.to_string());
    }
    let ranges: Vec<&str> = ["cidr_whitelist", "cidr"]
        .iter()
        .filter_map(|n| entry.get(*n).and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !ranges.is_empty() {
        facts
            .extra
            .insert("cidr_whitelist".into(), ranges.join(","));
    }
    if text("revoked").is_some() {
        facts
            .flags
            .push("npm lists the token as revoked, though whoami accepted it".into());
    }
    // Tokens of the old scheme had no expiry and are listed without the member; every
    // granular token has one.
    let read = match entry.get("expiry") {
        None if !granular => {
            facts.expiry = Expiry::Never;
            ExpiryRead::Absent
        }
        None | Some(Value::Null) => {
            facts.flags.push(
                "npm lists no expiry for a granular token, though npm gives every granular token one"
                    .into(),
            );
            ExpiryRead::Absent
        }
        Some(Value::String(s)) => match s.trim().parse::<Timestamp>() {
            Ok(at) => ExpiryRead::At(at, None),
            Err(_) => ExpiryRead::Unusable(Anomaly::ExpiryUnreadable),
        },
        Some(_) => ExpiryRead::Unusable(Anomaly::ExpiryUnreadable),
    };
    facts.set_expiry(read, "expiry");
}

#[cfg(test)]
mod tests;
