//! `atlassian`: asks an Atlassian Cloud site who an API token is, with HTTP basic auth (the
//! account's email address and the token). Network I/O in `probe`; `parse` is pure.
//!
//! The REST API does not disclose an API token's expiry, although every token now has one
//! (a year at most): a valid answer leaves the expiry undisclosed rather than "never".
//!
//! The probe is one GET of the current user; it never creates, revokes or lists tokens.

use std::sync::Arc;

use base64::Engine;
use jiff::Timestamp;
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::http::{self, common_status};
use super::{BoxFuture, BuildContext, Provider, ProviderKind, refuse_params, require_secret};
use crate::model::{Expiry, ProbeOutcome, Reason, TokenFacts, Verdict};
use crate::schema::TokenSpec;
use crate::secret::Secret;

/// Which product's REST API answers "who am I" on the site.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Product {
    /// Jira: `GET /rest/api/3/myself`.
    #[default]
    Jira,
    /// Confluence: `GET /wiki/rest/api/user/current`.
    Confluence,
}

impl Product {
    /// The path the kind appends to `url`.
    pub fn path(self) -> &'static str {
        match self {
            Product::Jira => "/rest/api/3/myself",
            Product::Confluence => "/wiki/rest/api/user/current",
        }
    }
}

#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The site (`https://<site>.atlassian.net`) or the API gateway base of a scoped token
    /// (`https://api.atlassian.com/ex/jira/<cloudId>`). Required: there is no public default.
    pub url: Option<String>,
    #[serde(default)]
    pub product: Product,
    pub max_concurrency: Option<usize>,
}

impl Config {
    fn site(&self) -> Result<&str, String> {
        self.url.as_deref().ok_or_else(|| {
            "url is required: the site's address (https://<site>.atlassian.net), or the API \
             gateway base of a scoped token (https://api.atlassian.com/ex/jira/<cloudId>)"
                .to_string()
        })
    }
}

impl ProviderKind for Config {
    fn kind(&self) -> &'static str {
        "atlassian"
    }

    fn validate(&self) -> Result<(), String> {
        let url = http::check_base_url("url", self.site()?)?;
        // A URL that already holds the REST path would be appended to again and answer 404
        // at every probe: refuse it where the mistake is made.
        if url.path().contains("/rest/api") {
            return Err(format!(
                "url: give the site's address without the REST path; the kind appends {}",
                self.product.path()
            ));
        }
        Ok(())
    }

    fn check_token(&self, token: &TokenSpec) -> Result<(), String> {
        require_secret(token, self.kind())?;
        refuse_params(token, self.kind(), &["email"])?;
        let Some(email) = token.params.email.as_deref() else {
            return Err(
                "email is required for an atlassian provider: the address of the Atlassian account the API token belongs to (basic auth sends both)"
                    .into(),
            );
        };
        check_email(email)
    }

    fn max_concurrency(&self) -> Option<usize> {
        self.max_concurrency
    }

    fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Provider>, String> {
        Ok(Arc::new(Atlassian {
            endpoint: http::join(self.site()?, self.product.path()),
            http: ctx.http.clone(),
        }))
    }
}

/// An email address as basic auth needs it: one `@`, no colon (it would end the user part),
/// no spaces or control characters. The value is never quoted back: it might be a token
/// pasted into the wrong field.
pub fn check_email(email: &str) -> Result<(), String> {
    let ok = email.len() <= 254
        && email.matches('@').count() == 1
        && !email.starts_with('@')
        && !email.ends_with('@')
        && !email.contains(':')
        && email.chars().all(|c| c.is_ascii_graphic() || !c.is_ascii());
    if ok {
        Ok(())
    } else {
        Err("email is not an email address (one @, no colon, no spaces)".into())
    }
}

struct Atlassian {
    endpoint: String,
    http: http::Client,
}

impl Provider for Atlassian {
    fn probe<'a>(
        &'a self,
        token: &'a TokenSpec,
        secret: &'a Secret,
        now: Timestamp,
    ) -> BoxFuture<'a, ProbeOutcome> {
        Box::pin(async move {
            let email = token.params.email.as_deref().unwrap_or_default();
            // The Authorization header is marked sensitive by the client (HTTP/2 never
            // indexes it); the pair is encoded here and dropped with the request.
            let pair = format!("{email}:{}", secret.expose());
            let basic = base64::engine::general_purpose::STANDARD.encode(pair.as_bytes());
            let request = self
                .http
                .get(&self.endpoint)
                .header(reqwest::header::AUTHORIZATION, format!("Basic {basic}"))
                .header(reqwest::header::ACCEPT, http::JSON);
            match http::send(request).await {
                Ok(resp) => parse(resp.status, &resp.headers, &resp.body, now, email),
                Err(outcome) => outcome,
            }
        })
    }
}

/// The header Atlassian's login layer (Seraph) sets on a refused authentication.
const LOGIN_REASON: &str = "x-seraph-loginreason";

/// Turns a current-user answer (Jira's `myself` or Confluence's `user/current`) into an
/// outcome. `email` is the configured account address, compared with the one answered. Pure.
pub fn parse(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
    email: &str,
) -> ProbeOutcome {
    let rate = http::rate_limit(headers);
    let login_reason = http::header(headers, LOGIN_REASON).unwrap_or_default();
    match status {
        200 => {}
        401 if is_html(headers) => {
            return ProbeOutcome::bad_response("a 401 with an HTML page, not Atlassian's answer")
                .with_rate_limit(rate);
        }
        401 => {
            return ProbeOutcome::invalid(
                Reason::UnknownToken,
                "Atlassian refused the email and API token (401): the token expired or was revoked, or the email is not the token's account",
            )
            .with_rate_limit(rate);
        }
        403 if login_reason.contains("AUTHENTICATION_DENIED") => {
            // CAPTCHA: after failed logins the account must sign in once in a browser; until
            // then no credentials of the account are checked, so nothing is known of the token.
            return ProbeOutcome::unreachable(
                Reason::UnexpectedStatus,
                "Atlassian did not check the token: the account must pass a CAPTCHA after failed logins (403, X-Seraph-LoginReason: AUTHENTICATION_DENIED); sign in once in a browser",
            )
            .with_rate_limit(rate);
        }
        403 if is_html(headers) => {
            return ProbeOutcome::bad_response("a 403 with an HTML page, not Atlassian's answer")
                .with_rate_limit(rate);
        }
        403 => {
            return ProbeOutcome::new(
                Verdict::Forbidden,
                Reason::InsufficientScope,
                "Atlassian accepted the token but refused the current-user call (403): a scoped token without read:jira-user / read:confluence-user, or an account without access to the product",
            )
            .with_rate_limit(rate);
        }
        429 => {
            let wait = http::retry_after(headers, now).or_else(|| reset_wait(headers, now));
            return ProbeOutcome::rate_limited(wait, "Atlassian answered 429 Too Many Requests")
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
    let Some(account_id) = text("accountId") else {
        return ProbeOutcome::bad_response("no \"accountId\" string").with_rate_limit(rate);
    };
    if text("type").as_deref() == Some("anonymous") {
        // Confluence names an anonymous caller this way: the credentials were not used, so
        // the answer says nothing about them.
        return ProbeOutcome::unreachable(
            Reason::BadResponse,
            "Atlassian answered for an anonymous user: the credentials were not used",
        )
        .with_rate_limit(rate);
    }
    let answered_email = text("emailAddress").or_else(|| text("email"));
    let mut facts = TokenFacts {
        subject: Some(answered_email.clone().unwrap_or_else(|| account_id.clone())),
        token_type: text("accountType"),
        // Atlassian states no expiry through the REST API, though every API token has one.
        expiry: Expiry::Undisclosed,
        ..TokenFacts::default()
    };
    facts.extra.insert("account_id".into(), account_id);
    if let Some(name) = text("displayName") {
        facts.extra.insert("display_name".into(), name);
    }
    if let Some(active) = user.get("active").and_then(Value::as_bool) {
        facts.extra.insert("active".into(), active.to_string());
    }
    if let Some(answered) = &answered_email
        && !answered.eq_ignore_ascii_case(email.trim())
    {
        facts.flags.push(
            "the account's email address differs from the configured email (the site may show an alias)"
                .into(),
        );
    }
    ProbeOutcome::valid(facts).with_rate_limit(rate)
}

fn is_html(headers: &HeaderMap) -> bool {
    http::header(headers, reqwest::header::CONTENT_TYPE)
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/html"))
}

/// Atlassian's `X-RateLimit-Reset` is an instant in ISO 8601 (`2024-05-01T12:30Z`), not the
/// epoch seconds other providers send: a wait from `now`, when it lies ahead.
pub fn reset_wait(headers: &HeaderMap, now: Timestamp) -> Option<std::time::Duration> {
    let value = http::header(headers, "x-ratelimit-reset")?;
    let at = parse_reset(value)?;
    let secs = at.as_second() - now.as_second();
    (secs > 0).then(|| std::time::Duration::from_secs(secs as u64))
}

/// `yyyy-MM-ddTHH:mmZ` (as documented) or a full RFC 3339 instant.
fn parse_reset(value: &str) -> Option<Timestamp> {
    if let Ok(t) = value.parse::<Timestamp>() {
        return Some(t);
    }
    let minutes = value.strip_suffix('Z')?;
    format!("{minutes}:00Z").parse::<Timestamp>().ok()
}

#[cfg(test)]
mod tests;
