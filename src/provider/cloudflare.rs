//! `cloudflare`: asks Cloudflare's `tokens/verify` about an API token. Network I/O in `probe`;
//! `parse` is pure.
//!
//! User-owned tokens are verified at `/user/tokens/verify`, account-owned ones at
//! `/accounts/{account_id}/tokens/verify`. The user endpoint answers error 1000 ("Invalid API
//! Token") for a perfectly valid account-owned token, so with `account_id` configured the
//! account endpoint is asked first and the user endpoint second, and the token is only called
//! invalid when the account endpoint rejected it and the user endpoint did not accept it.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::http::{self, common_status};
use super::{
    BoxFuture, BuildContext, LimitKey, Provider, ProviderKind, Renamed, refuse_params,
    require_secret, url_or_old_endpoint,
};
use crate::model::{Expiry, ProbeOutcome, RateLimit, Reason, TokenFacts, Verdict};
use crate::schema::TokenSpec;
use crate::secret::Secret;

/// Cloudflare's API server. API v4 is under [`API_PATH`].
pub const DEFAULT_URL: &str = "https://api.cloudflare.com";

/// Where Cloudflare serves API v4, below the server's address.
pub const API_PATH: &str = "/client/v4";

/// Over 1,200 requests in 5 minutes Cloudflare blocks every call for the next 5 minutes.
/// When a 429 says nothing about when to come back, that is the wait.
pub const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(300);

/// Cloudflare error code for a token it does not accept.
const INVALID_TOKEN: i64 = 1000;
/// "Invalid request headers" and "Invalid format for Authorization header": the token cannot
/// even be read as a Cloudflare token.
const BAD_HEADER_CODES: [i64; 2] = [6003, 6111];

#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The server's address (a path prefix is kept); the kind appends `/client/v4/...`.
    /// Defaults to [`DEFAULT_URL`].
    pub url: Option<String>,
    /// The old name, kept with its old meaning: the API base, `/client/v4` included.
    pub api_url: Option<String>,
    /// The account that owns the tokens, for account-owned API tokens.
    pub account_id: Option<String>,
    pub max_concurrency: Option<usize>,
}

impl Config {
    /// The setting in use, by name, and the API v4 base it gives (`.../client/v4`).
    pub fn api_base(&self) -> Result<(&'static str, String), String> {
        url_or_old_endpoint(
            self.url.as_ref(),
            ("api_url", self.api_url.as_ref()),
            DEFAULT_URL,
            API_PATH,
        )
    }
}

impl ProviderKind for Config {
    fn kind(&self) -> &'static str {
        "cloudflare"
    }

    fn validate(&self) -> Result<(), String> {
        let (name, base) = self.api_base()?;
        http::check_base_url(name, &base)?;
        if let Some(id) = &self.account_id {
            // The id becomes a path segment: only the characters Cloudflare ids are made of,
            // so a typo cannot turn into a different path.
            if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(
                    "account_id must be the account's id (letters and digits, as shown in the dashboard URL)"
                        .into(),
                );
            }
        }
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
        let (_, base) = self.api_base()?;
        let base = base.trim_end_matches('/');
        Ok(Arc::new(Cloudflare {
            user_endpoint: format!("{base}/user/tokens/verify"),
            account_endpoint: self
                .account_id
                .as_ref()
                .map(|id| format!("{base}/accounts/{id}/tokens/verify")),
            http: ctx.http.clone(),
        }))
    }

    fn renamed_in_use(&self) -> Vec<Renamed> {
        self.api_url
            .iter()
            .map(|_| Renamed {
                old: "api_url",
                new: "url",
                rewrite: Some("the server's address, without `/client/v4`"),
            })
            .collect()
    }
}

struct Cloudflare {
    user_endpoint: String,
    account_endpoint: Option<String>,
    http: http::Client,
}

/// Which verify endpoint answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    User,
    Account,
}

impl Owner {
    fn as_str(self) -> &'static str {
        match self {
            Owner::User => "user",
            Owner::Account => "account",
        }
    }
}

impl Cloudflare {
    async fn verify(&self, url: &str, secret: &Secret, now: Timestamp, owner: Owner) -> Verified {
        let request = self
            .http
            .get(url)
            .bearer_auth(secret.expose())
            .header(reqwest::header::ACCEPT, http::JSON);
        match http::send(request).await {
            Ok(resp) => classify(resp.status, &resp.headers, &resp.body, now, owner),
            Err(outcome) => Verified {
                outcome,
                rejected: false,
            },
        }
    }
}

impl Provider for Cloudflare {
    fn probe<'a>(
        &'a self,
        _token: &'a TokenSpec,
        secret: &'a Secret,
        now: Timestamp,
    ) -> BoxFuture<'a, ProbeOutcome> {
        Box::pin(async move {
            let Some(account_endpoint) = &self.account_endpoint else {
                return self
                    .verify(&self.user_endpoint, secret, now, Owner::User)
                    .await
                    .outcome;
            };
            let account = self
                .verify(account_endpoint, secret, now, Owner::Account)
                .await;
            if !account.rejected {
                return account.outcome;
            }
            // The account endpoint does not know the token; it may be a user-owned token.
            let user = self
                .verify(&self.user_endpoint, secret, now, Owner::User)
                .await;
            combine(account, user)
        })
    }

    /// Cloudflare's API limit is per user (user-owned tokens) or per account token, and the
    /// verify answer names neither the user nor anything shared: each token pauses alone.
    fn rate_limit_key(&self, _known: &TokenFacts) -> LimitKey {
        LimitKey::Token
    }
}

/// One endpoint's answer: the outcome, and whether the endpoint rejected the token outright
/// (a well-formed `success:false` answer), which is when the other endpoint is worth asking.
#[derive(Clone, Debug)]
pub struct Verified {
    pub outcome: ProbeOutcome,
    pub rejected: bool,
}

/// The verdict from both endpoints, when the account endpoint rejected the token. Pure.
///
/// The user endpoint decides when it accepts the token (a user-owned token under a provider
/// that also names an account) or when it has a state for it (disabled, expired). When it
/// rejects the token too, the account endpoint's answer stands. When it cannot answer, the
/// probe cannot tell either, so its failure is reported rather than "invalid".
pub fn combine(account: Verified, user: Verified) -> ProbeOutcome {
    if user.rejected {
        let mut outcome = account.outcome;
        if outcome.verdict == Verdict::Invalid {
            outcome.detail = format!(
                "{} (asked at both the account and the user endpoint)",
                outcome.detail
            );
        }
        outcome
    } else {
        user.outcome
    }
}

/// Turns a `tokens/verify` answer into an outcome. Pure.
pub fn parse(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
    owner: Owner,
) -> ProbeOutcome {
    classify(status, headers, body, now, owner).outcome
}

/// [`parse`], also telling whether the endpoint rejected the token.
pub fn classify(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
    owner: Owner,
) -> Verified {
    let rate = rate_limit(headers, now);
    let done = |outcome: ProbeOutcome| Verified {
        outcome: outcome.with_rate_limit(rate),
        rejected: false,
    };
    match status {
        429 => {
            let wait = http::retry_after(headers, now)
                .or_else(|| http::reset_wait(rate, now))
                .unwrap_or(DEFAULT_RATE_LIMIT_WAIT);
            return done(ProbeOutcome::rate_limited(
                Some(wait),
                "Cloudflare answered 429 Too Many Requests",
            ));
        }
        200..=299 | 400..=499 => {}
        _ => {
            let mut outcome = common_status(status, headers, now);
            outcome.rate_limit = rate;
            return Verified {
                outcome,
                rejected: false,
            };
        }
    }
    let doc: Value = match http::json(body) {
        Ok(v) => v,
        Err(o) => return done(o),
    };
    let Some(success) = doc.get("success").and_then(Value::as_bool) else {
        return done(ProbeOutcome::bad_response("no boolean \"success\" member"));
    };
    if !success || status >= 400 {
        let codes = error_codes(&doc);
        let outcome = if codes.contains(&INVALID_TOKEN) {
            ProbeOutcome::invalid(
                Reason::UnknownToken,
                match owner {
                    Owner::User => {
                        "Cloudflare does not accept the token (error 1000); an account-owned token is only recognised with account_id set"
                    }
                    Owner::Account => {
                        "Cloudflare does not accept the token for the configured account (error 1000)"
                    }
                },
            )
        } else if codes.iter().any(|c| BAD_HEADER_CODES.contains(c)) {
            ProbeOutcome::invalid(
                Reason::Malformed,
                format!(
                    "Cloudflare cannot read the token as an API token (errors {})",
                    show_codes(&codes)
                ),
            )
        } else {
            ProbeOutcome::unreachable(
                Reason::UnexpectedStatus,
                format!(
                    "Cloudflare answered HTTP {status} with errors {}",
                    show_codes(&codes)
                ),
            )
        };
        return Verified {
            outcome: outcome.with_rate_limit(rate),
            rejected: true,
        };
    }
    done(match facts(&doc, now, owner) {
        Ok((state, facts)) => match state.as_str() {
            "active" => ProbeOutcome::valid(facts),
            "disabled" => {
                ProbeOutcome::invalid(Reason::Disabled, "Cloudflare says the token is disabled")
                    .with_facts(facts)
            }
            "expired" => {
                ProbeOutcome::invalid(Reason::Expired, "Cloudflare says the token has expired")
                    .with_facts(facts)
            }
            _ => ProbeOutcome::bad_response("result.status is not active, disabled or expired"),
        },
        Err(what) => ProbeOutcome::bad_response(&what),
    })
}

/// The token's state and facts from a successful answer.
/// The error names what is not as documented, for [`ProbeOutcome::bad_response`].
fn facts(doc: &Value, now: Timestamp, owner: Owner) -> Result<(String, TokenFacts), String> {
    let Some(result) = doc.get("result").filter(|r| r.is_object()) else {
        return Err("no \"result\" object".into());
    };
    let Some(state) = result.get("status").and_then(Value::as_str) else {
        return Err("no \"result.status\" string".into());
    };
    let time = |name: &str| -> Result<Option<Timestamp>, String> {
        match result.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => s
                .parse::<Timestamp>()
                .map(Some)
                .map_err(|_| format!("result.{name} is not an RFC 3339 time")),
            Some(_) => Err(format!("result.{name} is not a string")),
        }
    };
    let mut facts = TokenFacts {
        // Cloudflare omits expires_on when the token has no expiry date.
        expiry: match time("expires_on")? {
            Some(at) => Expiry::At(at),
            None => Expiry::Never,
        },
        not_before: time("not_before")?,
        ..TokenFacts::default()
    };
    // The token's id names it in the dashboard and the API; it is not the secret.
    if let Some(id) = result.get("id").and_then(Value::as_str) {
        facts.extra.insert("token_id".into(), id.to_string());
    }
    facts.extra.insert("owner".into(), owner.as_str().into());
    facts.extra.insert("status".into(), state.to_string());
    if state == "active" {
        facts.flag_past_expiry(
            now,
            "Cloudflare reports an expiry in the past for an active token",
        );
        if facts.not_before.is_some_and(|nbf| nbf > now) {
            facts
                .flags
                .push("Cloudflare reports a not_before in the future for an active token".into());
        }
    }
    Ok((state.to_string(), facts))
}

/// Every error code in `errors[]` and their `error_chain`s.
fn error_codes(doc: &Value) -> Vec<i64> {
    fn walk(items: Option<&Value>, out: &mut Vec<i64>) {
        for item in items.and_then(Value::as_array).into_iter().flatten() {
            if let Some(code) = item.get("code").and_then(Value::as_i64) {
                out.push(code);
            }
            walk(item.get("error_chain"), out);
        }
    }
    let mut out = Vec::new();
    walk(doc.get("errors"), &mut out);
    out
}

fn show_codes(codes: &[i64]) -> String {
    if codes.is_empty() {
        return "(none listed)".into();
    }
    codes
        .iter()
        .take(8)
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rate-limit headroom from Cloudflare's `Ratelimit: "default";r=50;t=30` and
/// `Ratelimit-Policy: "default";q=1200;w=300` headers (the IETF draft's structured form);
/// the item with the least remaining wins. Falls back to the classic header families.
pub fn rate_limit(headers: &HeaderMap, now: Timestamp) -> Option<RateLimit> {
    let items = |name: &str| -> Vec<(String, Vec<(String, f64)>)> {
        let Some(value) = http::header(headers, name) else {
            return Vec::new();
        };
        value
            .split(',')
            .filter_map(|item| {
                let mut parts = item.split(';').map(str::trim);
                let label = parts.next()?.trim_matches('"').to_string();
                let params = parts
                    .filter_map(|kv| {
                        let (k, v) = kv.split_once('=')?;
                        Some((k.trim().to_ascii_lowercase(), v.trim().parse::<f64>().ok()?))
                    })
                    .collect();
                Some((label, params))
            })
            .collect()
    };
    let param = |params: &[(String, f64)], key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| *v)
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    let policies = items("ratelimit-policy");
    let tightest = items("ratelimit")
        .into_iter()
        .filter_map(|(label, params)| Some((label, param(&params, "r")?, param(&params, "t"))))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    match tightest {
        Some((label, remaining, reset)) => Some(RateLimit {
            remaining: Some(remaining),
            limit: policies
                .iter()
                .find(|(l, _)| *l == label)
                .and_then(|(_, p)| param(p, "q")),
            reset_at: reset.and_then(|t| {
                Timestamp::from_second(now.as_second().saturating_add(t.ceil() as i64)).ok()
            }),
        }),
        None => http::rate_limit(headers),
    }
}

#[cfg(test)]
mod tests;
