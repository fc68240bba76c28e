//! `slack`: asks Slack's `auth.test` who a token is. Network I/O in `probe`; `parse` is pure.
//!
//! Slack answers almost every failure with HTTP 200 and `{"ok":false,"error":"<code>"}`, so the
//! verdict comes from the error code, not the status. Only the codes Slack documents as "this
//! token does not work" (`invalid_auth`, `not_authed`, `account_inactive`, `token_revoked`,
//! `token_expired`) make a token invalid; every other code says something about Slack or about
//! the request, and is never reported as an invalid token.
//!
//! The probe is read-only: it never calls `tooling.tokens.rotate` nor `oauth.v2.access` with
//! `grant_type=refresh_token`, so rotating tokens are watched, never rotated.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::http::{self, common_status};
use super::{
    BoxFuture, BuildContext, LimitKey, Provider, ProviderKind, Renamed, refuse_params,
    require_secret, url_or_old_endpoint,
};
use crate::model::{Expiry, ProbeOutcome, Reason, TokenFacts, Verdict};
use crate::schema::TokenSpec;
use crate::secret::Secret;

/// Slack's server. The Web API's methods are under [`API_PATH`].
pub const DEFAULT_URL: &str = "https://slack.com";

/// Where Slack serves its Web API methods, below the server's address.
pub const API_PATH: &str = "/api";

/// Access tokens of apps with token rotation enabled start with this prefix; they last 12 h.
const ROTATING_PREFIX: &str = "xoxe.";

#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The server's address (a path prefix is kept); the kind appends `/api/auth.test`.
    /// Defaults to [`DEFAULT_URL`].
    pub url: Option<String>,
    /// The old name, kept with its old meaning: the Web API base, `/api` included.
    pub api_url: Option<String>,
    pub max_concurrency: Option<usize>,
}

impl Config {
    /// The setting in use, by name, and the Web API base it gives (`.../api`).
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
        "slack"
    }

    fn validate(&self) -> Result<(), String> {
        let (name, base) = self.api_base()?;
        http::check_base_url(name, &base)?;
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
        Ok(Arc::new(Slack {
            endpoint: http::join(&self.api_base()?.1, "/auth.test"),
            http: ctx.http.clone(),
        }))
    }

    fn renamed_in_use(&self) -> Vec<Renamed> {
        self.api_url
            .iter()
            .map(|_| Renamed {
                old: "api_url",
                new: "url",
                rewrite: Some("the server's address, without `/api`"),
            })
            .collect()
    }
}

struct Slack {
    endpoint: String,
    http: http::Client,
}

impl Provider for Slack {
    fn probe<'a>(
        &'a self,
        _token: &'a TokenSpec,
        secret: &'a Secret,
        now: Timestamp,
    ) -> BoxFuture<'a, ProbeOutcome> {
        Box::pin(async move {
            // The token goes in the Authorization header only; the body stays empty so it
            // cannot be echoed by a proxy that logs form bodies.
            let request = self
                .http
                .post(&self.endpoint)
                .bearer_auth(secret.expose())
                .header(reqwest::header::ACCEPT, http::JSON)
                .header("content-type", "application/x-www-form-urlencoded");
            let rotating = secret.expose().trim().starts_with(ROTATING_PREFIX);
            match http::send(request).await {
                Ok(resp) => parse(resp.status, &resp.headers, &resp.body, now, rotating),
                Err(outcome) => outcome,
            }
        })
    }

    /// Slack limits each method per app per workspace. A bot token's answer names its bot,
    /// which is one app's in one workspace, so bot tokens of the same bot pause together;
    /// an answer for a user token does not name the app, so such a token pauses alone.
    fn rate_limit_key(&self, known: &TokenFacts) -> LimitKey {
        match (known.extra.get("team_id"), known.extra.get("bot_id")) {
            (Some(team), Some(bot)) => LimitKey::Identity(format!("{team}/{bot}")),
            _ => LimitKey::Token,
        }
    }
}

/// Turns an `auth.test` answer into an outcome. Pure.
///
/// `rotating` says whether the token is a rotating access token (`xoxe.` prefix), which
/// Slack lets live 12 hours; it is exported as a fact, never used to guess an expiry.
pub fn parse(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
    rotating: bool,
) -> ProbeOutcome {
    let rate = http::rate_limit(headers);
    if status != 200 {
        return common_status(status, headers, now);
    }
    let doc: Value = match http::json(body) {
        Ok(v) => v,
        Err(o) => return o.with_rate_limit(rate),
    };
    let Some(ok) = doc.get("ok").and_then(Value::as_bool) else {
        return ProbeOutcome::bad_response("no boolean \"ok\" member").with_rate_limit(rate);
    };
    if !ok {
        let Some(code) = doc.get("error").and_then(Value::as_str) else {
            return ProbeOutcome::bad_response("\"ok\" is false but there is no error code")
                .with_rate_limit(rate);
        };
        return error_outcome(code, headers, now).with_rate_limit(rate);
    }
    let facts = match facts(&doc, headers, now, rotating) {
        Ok(f) => f,
        Err(what) => return ProbeOutcome::bad_response(what).with_rate_limit(rate),
    };
    ProbeOutcome::valid(facts).with_rate_limit(rate)
}

/// The outcome for an `ok:false` answer.
fn error_outcome(code: &str, headers: &HeaderMap, now: Timestamp) -> ProbeOutcome {
    let shown = safe_code(code);
    match code {
        "invalid_auth" => ProbeOutcome::invalid(
            Reason::UnknownToken,
            "Slack does not accept the token (invalid_auth: unknown token, or a request from an IP the workspace does not allow)",
        ),
        "not_authed" => ProbeOutcome::invalid(
            Reason::Malformed,
            "Slack saw no usable token in the request (not_authed)",
        ),
        "account_inactive" => ProbeOutcome::invalid(
            Reason::Disabled,
            "the token belongs to a deactivated user or a deleted workspace (account_inactive)",
        ),
        "token_revoked" => ProbeOutcome::invalid(
            Reason::Revoked,
            "Slack says the token was revoked (token_revoked)",
        ),
        "token_expired" => ProbeOutcome::invalid(
            Reason::Expired,
            "Slack says the token has expired (token_expired)",
        ),
        "ratelimited" => ProbeOutcome::rate_limited(
            http::retry_after(headers, now),
            "Slack answered ratelimited",
        ),
        // Slack's own failures, reported in an HTTP 200 answer: the same as a 5xx.
        "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" => {
            ProbeOutcome::unreachable(
                Reason::Http5xx,
                format!("Slack reported a failure on its side ({shown})"),
            )
        }
        // The token authenticated but may not call auth.test (workspace policies, token
        // types an admin restricted). It still works, so this is not "invalid".
        "missing_scope"
        | "no_permission"
        | "not_allowed_token_type"
        | "ekm_access_denied"
        | "access_denied"
        | "accesslimited"
        | "team_access_not_granted"
        | "two_factor_setup_required"
        | "enterprise_is_restricted" => ProbeOutcome::new(
            Verdict::Forbidden,
            Reason::InsufficientScope,
            format!("Slack refused auth.test for this token ({shown})"),
        ),
        // Anything else (workspace migrations, request-format errors, codes Slack adds later)
        // says nothing about the token.
        _ => ProbeOutcome::unreachable(
            Reason::UnexpectedStatus,
            format!(
                "Slack answered an error code the exporter does not map to a token state ({shown})"
            ),
        ),
    }
}

/// Facts from a successful `auth.test` answer; the error names what is not as documented.
fn facts(
    doc: &Value,
    headers: &HeaderMap,
    now: Timestamp,
    rotating: bool,
) -> Result<TokenFacts, &'static str> {
    let text = |name: &str| {
        doc.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let mut facts = TokenFacts {
        subject: text("user"),
        token_type: if text("bot_id").is_some() {
            Some("bot".into())
        } else if text("user_id").is_some() {
            Some("user".into())
        } else {
            None
        },
        scopes: scopes(headers),
        ..TokenFacts::default()
    };
    for name in [
        "url",
        "team",
        "team_id",
        "user_id",
        "bot_id",
        "enterprise_id",
    ] {
        if let Some(value) = text(name) {
            facts.extra.insert(name.into(), value);
        }
    }
    if let Some(b) = doc.get("is_enterprise_install").and_then(Value::as_bool) {
        facts
            .extra
            .insert("is_enterprise_install".into(), b.to_string());
    }
    if rotating {
        facts.extra.insert("rotating".into(), "true".into());
    }
    // `expires_in` is not documented for auth.test; if Slack sends it (rotating tokens), it is
    // the seconds left. Without it the expiry is undisclosed: auth.test is silent on expiry,
    // and a rotating token that omits it still dies within 12 hours, so "never" would lie.
    facts.expiry = match doc.get("expires_in") {
        None | Some(Value::Null) => Expiry::Undisclosed,
        Some(v) => {
            let secs = seconds(v).ok_or("\"expires_in\" is not a number of seconds")?;
            let at = now
                .checked_add(SignedDuration::from_secs(secs))
                .map_err(|_| "\"expires_in\" is out of range")?;
            if secs <= 0 {
                facts
                    .flags
                    .push("Slack reports no time left for a token it accepted".into());
            }
            Expiry::At(at)
        }
    };
    Ok(facts)
}

/// A whole number of seconds, given as a JSON number or a numeric string.
fn seconds(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

/// Granted scopes from `x-oauth-scopes` (comma separated), sorted and deduplicated.
fn scopes(headers: &HeaderMap) -> Vec<String> {
    let mut out: Vec<String> = http::header(headers, "x-oauth-scopes")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Only the codes Slack documents for `auth.test` are named; anything else is not echoed,
/// because a misbehaving proxy could put anything there.
fn safe_code(code: &str) -> String {
    if DOCUMENTED_CODES.contains(&code) {
        code.to_string()
    } else {
        "unrecognised error code".to_string()
    }
}

/// The error codes Slack documents for `auth.test`. Only these are named in a detail: a code
/// of the right shape can still be a fragment of the token echoed back.
const DOCUMENTED_CODES: &[&str] = &[
    "access_denied",
    "accesslimited",
    "account_inactive",
    "deprecated_endpoint",
    "ekm_access_denied",
    "enterprise_is_restricted",
    "fatal_error",
    "internal_error",
    "invalid_arg_name",
    "invalid_array_arg",
    "invalid_auth",
    "invalid_charset",
    "invalid_form_data",
    "invalid_post_type",
    "method_deprecated",
    "missing_post_type",
    "missing_scope",
    "no_permission",
    "not_allowed_token_type",
    "not_authed",
    "org_login_required",
    "ratelimited",
    "request_timeout",
    "service_unavailable",
    "team_access_not_granted",
    "team_added_to_org",
    "token_expired",
    "token_revoked",
    "two_factor_setup_required",
];

#[cfg(test)]
mod tests;
