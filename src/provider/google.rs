//! `google`: asks Google's OAuth 2.0 `tokeninfo` endpoint about an access token. Network I/O in
//! `probe`; `parse` is pure.
//!
//! The request is `POST` with the token in the `Authorization: Bearer` header and an empty
//! form body, as Google's own client library sends it: the documented
//! `?access_token=` query form would put the token in URLs and in every proxy's access log.
//! Google answers an expired, revoked or unknown token alike with 400 `invalid_token`.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::http::{self, common_status};
use super::oauth2::safe_code;
use super::{
    BoxFuture, BuildContext, Provider, ProviderKind, Renamed, refuse_params, require_secret,
    url_or_old_endpoint,
};
use crate::model::{Anomaly, ExpiryRead, ProbeOutcome, Reason, TokenFacts, read_numeric_date};
use crate::schema::TokenSpec;
use crate::secret::Secret;

/// Google's OAuth 2.0 server. The token information endpoint is [`TOKENINFO_PATH`] on it.
pub const DEFAULT_URL: &str = "https://oauth2.googleapis.com";

/// Google's token information endpoint, below the server's address.
pub const TOKENINFO_PATH: &str = "/tokeninfo";

#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The server's address (a path prefix is kept); the kind appends `/tokeninfo`.
    /// Defaults to [`DEFAULT_URL`].
    pub url: Option<String>,
    /// The old name, kept with its old meaning: the whole tokeninfo endpoint.
    pub tokeninfo_url: Option<String>,
    pub max_concurrency: Option<usize>,
}

impl Config {
    /// The setting in use, by name, and the tokeninfo endpoint it gives.
    fn endpoint(&self) -> Result<(&'static str, String), String> {
        url_or_old_endpoint(
            self.url.as_ref(),
            ("tokeninfo_url", self.tokeninfo_url.as_ref()),
            DEFAULT_URL,
            TOKENINFO_PATH,
        )
    }
}

impl ProviderKind for Config {
    fn kind(&self) -> &'static str {
        "google"
    }

    fn validate(&self) -> Result<(), String> {
        let (name, endpoint) = self.endpoint()?;
        http::check_base_url(name, &endpoint)?;
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
        Ok(Arc::new(Google {
            endpoint: self.endpoint()?.1,
            http: ctx.http.clone(),
        }))
    }

    fn renamed_in_use(&self) -> Vec<Renamed> {
        self.tokeninfo_url
            .iter()
            .map(|_| Renamed {
                old: "tokeninfo_url",
                new: "url",
                rewrite: Some("the server's address, without `/tokeninfo`"),
            })
            .collect()
    }
}

struct Google {
    endpoint: String,
    http: http::Client,
}

impl Provider for Google {
    fn probe<'a>(
        &'a self,
        _token: &'a TokenSpec,
        secret: &'a Secret,
        now: Timestamp,
    ) -> BoxFuture<'a, ProbeOutcome> {
        Box::pin(async move {
            let request = self
                .http
                .post(&self.endpoint)
                .bearer_auth(secret.expose())
                .header(reqwest::header::ACCEPT, http::JSON)
                .header("content-type", "application/x-www-form-urlencoded");
            match http::send(request).await {
                Ok(resp) => parse(resp.status, &resp.headers, &resp.body, now),
                Err(outcome) => outcome,
            }
        })
    }
}

/// Turns a tokeninfo answer into an outcome. Pure.
pub fn parse(status: u16, headers: &HeaderMap, body: &[u8], now: Timestamp) -> ProbeOutcome {
    let rate = http::rate_limit(headers);
    if !matches!(status, 200 | 400) {
        return common_status(status, headers, now);
    }
    let doc: Value = match http::json(body) {
        Ok(v) => v,
        Err(o) => return o.with_rate_limit(rate),
    };
    if !doc.is_object() {
        return ProbeOutcome::bad_response("not a JSON object").with_rate_limit(rate);
    }
    if let Some(error) = doc.get("error") {
        let code = error.as_str().unwrap_or_default();
        let outcome = if code == "invalid_token" {
            ProbeOutcome::invalid(
                Reason::Inactive,
                "Google answered invalid_token (expired, revoked or unknown)",
            )
        } else {
            ProbeOutcome::unreachable(
                Reason::UnexpectedStatus,
                format!(
                    "Google's tokeninfo answered HTTP {status} with error {}",
                    safe_code(code)
                ),
            )
        };
        return outcome.with_rate_limit(rate);
    }
    if status != 200 {
        return ProbeOutcome::bad_response("HTTP 400 without an error code").with_rate_limit(rate);
    }
    match facts(&doc, now) {
        Ok(facts) => ProbeOutcome::valid(facts),
        Err(what) => ProbeOutcome::bad_response(&what),
    }
    .with_rate_limit(rate)
}

/// The error names what is not as documented, for [`ProbeOutcome::bad_response`].
fn facts(doc: &Value, now: Timestamp) -> Result<TokenFacts, String> {
    let text = |name: &str| {
        doc.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    // A JSON object without any tokeninfo field is some other service's answer.
    if ["aud", "azp", "scope", "exp", "expires_in"]
        .iter()
        .all(|k| doc.get(*k).is_none())
    {
        return Err("none of the tokeninfo fields".into());
    }
    // Google documents `exp` as a string of digits, so that form is not an anomaly here. An
    // unusable `exp` stays a bad answer (tokeninfo is strict, so it is not Google talking);
    // milliseconds are read, with their anomaly, as for every provider.
    let exp = match read_numeric_date(doc.get("exp").filter(|v| !v.is_null())) {
        ExpiryRead::At(at, Some(Anomaly::ExpiryString)) => ExpiryRead::At(at, None),
        ExpiryRead::Unusable(Anomaly::ExpiryOutOfRange) => {
            return Err("\"exp\" is out of range".into());
        }
        ExpiryRead::Unusable(_) => return Err("\"exp\" is not a number of seconds".into()),
        read => read,
    };
    let expires_in = number(doc, "expires_in")?;
    // `exp` is the absolute instant; `expires_in` is relative to when Google answered, so it
    // is only the fallback. Google access tokens always expire: no field means undisclosed.
    let expiry = match (exp, expires_in) {
        (ExpiryRead::Absent, Some(left)) => ExpiryRead::At(
            now.checked_add(SignedDuration::from_secs(left))
                .map_err(|_| "\"expires_in\" is out of range".to_string())?,
            None,
        ),
        (read, _) => read,
    };
    let mut scopes: Vec<String> = text("scope")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    scopes.sort();
    scopes.dedup();
    let sub = text("sub");
    let email = text("email");
    let mut facts = TokenFacts {
        // The email is what people recognise; `sub` is the stable id and is kept in extra.
        subject: email.clone().or_else(|| sub.clone()),
        client_id: text("azp"),
        audience: text("aud").into_iter().collect(),
        scopes,
        ..TokenFacts::default()
    };
    facts.set_expiry(expiry, "exp");
    for (name, value) in [
        ("sub", sub),
        ("email", email),
        ("access_type", text("access_type")),
    ] {
        if let Some(value) = value {
            facts.extra.insert(name.into(), value);
        }
    }
    match doc.get("email_verified") {
        Some(Value::String(s)) => {
            facts.extra.insert("email_verified".into(), s.clone());
        }
        Some(Value::Bool(b)) => {
            facts.extra.insert("email_verified".into(), b.to_string());
        }
        _ => {}
    }
    facts.flag_past_expiry(
        now,
        "Google reports an expiry in the past for a token it accepted",
    );
    Ok(facts)
}

/// A whole number of seconds, given (as Google does) as a numeric string, or as a number.
fn number(doc: &Value, name: &str) -> Result<Option<i64>, String> {
    let bad = || format!("\"{name}\" is not a number of seconds");
    match doc.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => s.trim().parse::<i64>().map(Some).map_err(|_| bad()),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

#[cfg(test)]
mod tests;
