//! `http`: a generic provider configured in YAML, for token endpoints no dedicated kind
//! covers. Network I/O in `probe` (one read-only request); `parse` is pure.
//!
//! The config says where the token goes (bearer, a named header, basic auth, a form field;
//! never the URL), which answers mean which verdict (ordered rules on the status, headers
//! and JSON body), and where the expiry, scopes and subject are. What keeps it from being a
//! way to write to a provider: GET or POST only, a fixed URL without a query, no body but
//! the token in a form field beside fixed fields, no redirects. What keeps it from calling a
//! provider's failure an invalid token: no rule may match a 5xx (or 1xx/3xx), a class such
//! as `4xx` in a conclusive rule never covers 429, and an answer whose body the matching
//! rules read but which is not JSON is `unreachable`, whatever the rules say.

pub mod facts;
pub mod rules;

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use jiff::Timestamp;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::Value;

use super::http::{self, common_status};
use super::{BoxFuture, BuildContext, Provider, ProviderKind, refuse_params, require_secret};
use crate::model::{ProbeOutcome, Reason, Verdict};
use crate::schema::TokenSpec;
use crate::secret::Secret;
pub use facts::{
    Absent, ExpirySource, ListSource, Origin, ResetFormat, ResetSource, Source, TimeFormat,
    read_time,
};
pub use rules::{Condition, InvalidReason, Rule, RuleVerdict, StatusMatch, StatusSet};

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The server's address (scheme, host, port, and a path prefix if any).
    pub url: String,
    /// The endpoint's path, appended to `url`.
    pub path: String,
    #[serde(default)]
    pub method: Method,
    /// Where the token goes; `Authorization: Bearer` by default.
    #[serde(default)]
    pub token: Placement,
    /// Fixed request headers (an `Accept`, an API version). Never credentials.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Fixed form fields sent beside the token, with `token: {in: form}` only.
    #[serde(default)]
    pub form: BTreeMap<String, String>,
    pub rules: Vec<Rule>,
    pub expiry: Option<ExpirySource>,
    pub scopes: Option<ListSource>,
    pub subject: Option<Source>,
    /// When a rate-limited answer says to come back, beside `Retry-After`.
    pub rate_limit_reset: Option<ResetSource>,
    pub max_concurrency: Option<usize>,
}

/// GET, or POST for endpoints (introspection-style) that take the token in a form. Nothing
/// else: no method that could change anything is accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum Method {
    #[default]
    #[serde(alias = "get")]
    GET,
    #[serde(alias = "post")]
    POST,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    #[serde(rename = "in")]
    pub place: Place,
    /// The header's name (`in: header`) or the form field's (`in: form`).
    pub name: Option<String>,
    /// Text before the token in a header (`"Token "`, `"SSWS "`).
    pub prefix: Option<String>,
    /// Basic auth with the token as the password, under this user name.
    pub username: Option<String>,
    /// Basic auth with the token as the user name, with this password (often empty).
    pub password: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    #[default]
    Bearer,
    Header,
    Basic,
    Form,
}

/// Request headers a config may not set: the ones that carry credentials (a credential in
/// the config file would be neither redacted nor rotated) and the ones the client owns.
const REFUSED_HEADERS: [&str; 8] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
];

impl Config {
    fn endpoint(&self) -> String {
        format!("{}{}", self.url.trim_end_matches('/'), self.path)
    }

    /// Whether any fact is read from the body.
    fn facts_read_body(&self) -> bool {
        let sources = [
            self.expiry.as_ref().map(|s| s.from),
            self.scopes.as_ref().map(|s| s.from),
            self.subject.as_ref().map(|s| s.from),
        ];
        sources.contains(&Some(Origin::JsonPointer))
    }

    fn check_placement(&self) -> Result<(), String> {
        let t = &self.token;
        let named = matches!(t.place, Place::Header | Place::Form);
        if named != t.name.is_some() {
            return Err(if named {
                "token.name: required with in: header or in: form".into()
            } else {
                "token.name: only with in: header or in: form".into()
            });
        }
        if t.prefix.is_some() && t.place != Place::Header {
            return Err("token.prefix: only with in: header".into());
        }
        let basic = t.username.is_some() as u8 + t.password.is_some() as u8;
        match t.place {
            Place::Basic if basic != 1 => {
                return Err("token: with in: basic give exactly one of username (the token is the password) or password (the token is the user name)".into());
            }
            Place::Basic => {}
            _ if basic != 0 => {
                return Err("token.username, token.password: only with in: basic".into());
            }
            _ => {}
        }
        if t.username.as_deref().is_some_and(|u| u.contains(':')) {
            return Err("token.username: a basic-auth user name cannot contain ':'".into());
        }
        if let (Place::Header, Some(name)) = (t.place, &t.name) {
            let header = rules::check_header_name("token.name", name)?;
            if matches!(
                header.as_str(),
                "host" | "content-length" | "content-type" | "cookie"
            ) {
                return Err("token.name: not a header a token can travel in".into());
            }
            if t.prefix
                .as_deref()
                .is_some_and(|p| HeaderValue::try_from(p).is_err())
            {
                return Err("token.prefix: not valid in a header".into());
            }
        }
        if let (Place::Form, Some(name)) = (t.place, &t.name)
            && name.trim().is_empty()
        {
            return Err("token.name: the form field's name must not be empty".into());
        }
        match (t.place, self.method) {
            (Place::Form, Method::GET) => Err(
                "method: a token in a form field is sent with POST (a GET form would put it in the URL)"
                    .into(),
            ),
            _ => Ok(()),
        }
    }

    fn check_request(&self) -> Result<(), String> {
        for (name, value) in &self.headers {
            let at = format!("headers.{name}");
            let header = rules::check_header_name(&at, name)?;
            let token_header = self.token.place == Place::Header
                && self
                    .token
                    .name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name));
            if REFUSED_HEADERS.contains(&header.as_str()) || token_header {
                return Err(format!(
                    "{at}: this header is not set from the config (credentials go in the token's secret)"
                ));
            }
            if HeaderValue::try_from(value.as_str()).is_err() {
                return Err(format!("{at}: not a valid header value"));
            }
        }
        if !self.form.is_empty() && self.token.place != Place::Form {
            return Err("form: fixed form fields go only with token: {in: form}".into());
        }
        for name in self.form.keys() {
            if name.trim().is_empty() || Some(name) == self.token.name.as_ref() {
                return Err(format!(
                    "form.{name}: a fixed field needs a name other than the token's"
                ));
            }
        }
        Ok(())
    }

    fn check_sources(&self) -> Result<(), String> {
        let check = |field: &str, from: Origin, at: &str| match from {
            Origin::JsonPointer => rules::check_pointer(&format!("{field}.at"), at),
            Origin::Header => rules::check_header_name(&format!("{field}.at"), at).map(|_| ()),
        };
        if let Some(s) = &self.expiry {
            check("expiry", s.from, &s.at)?;
            if s.from == Origin::Header && s.absent == Absent::Never {
                // A header dropped by a proxy would read as "never expires".
                return Err(
                    "expiry.absent: never is only accepted for a JSON pointer, not a header".into(),
                );
            }
        }
        if let Some(s) = &self.scopes {
            check("scopes", s.from, &s.at)?;
            if s.separator.as_deref().is_some_and(str::is_empty) {
                return Err("scopes.separator: must not be empty".into());
            }
        }
        if let Some(s) = &self.subject {
            check("subject", s.from, &s.at)?;
        }
        if let Some(r) = &self.rate_limit_reset {
            rules::check_header_name("rate_limit_reset.header", &r.header)?;
        }
        Ok(())
    }
}

impl ProviderKind for Config {
    fn kind(&self) -> &'static str {
        "http"
    }

    fn validate(&self) -> Result<(), String> {
        http::check_base_url("url", &self.url)?;
        if !self.path.starts_with('/')
            || self.path.contains(['?', '#'])
            || self
                .path
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(
                "path: must start with / and have no query, fragment or spaces; tokens never travel in URLs"
                    .into(),
            );
        }
        http::check_base_url("path", &self.endpoint())?;
        self.check_placement()?;
        self.check_request()?;
        rules::validate_rules(&self.rules)?;
        self.check_sources()
    }

    fn check_token(&self, token: &TokenSpec) -> Result<(), String> {
        require_secret(token, self.kind())?;
        refuse_params(token, self.kind(), &[])
    }

    fn max_concurrency(&self) -> Option<usize> {
        self.max_concurrency
    }

    fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Provider>, String> {
        let mut headers = Vec::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|_| format!("headers.{name}: not a valid HTTP header name"))?;
            let value = HeaderValue::try_from(value.as_str())
                .map_err(|_| format!("headers.{name}: not a valid header value"))?;
            headers.push((name, value));
        }
        Ok(Arc::new(Generic {
            config: Arc::new(self.clone()),
            endpoint: self.endpoint(),
            headers,
            http: ctx.http.clone(),
        }))
    }
}

struct Generic {
    config: Arc<Config>,
    endpoint: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    http: http::Client,
}

impl Generic {
    fn request(&self, secret: &str) -> http::RequestBuilder {
        let mut request = match self.config.method {
            Method::GET => self.http.get(&self.endpoint),
            Method::POST => self.http.post(&self.endpoint),
        };
        for (name, value) in &self.headers {
            request = request.header(name.clone(), value.clone());
        }
        let t = &self.config.token;
        match t.place {
            Place::Bearer => request.bearer_auth(secret),
            Place::Header => {
                let name = t.name.as_deref().unwrap_or_default();
                let value = format!("{}{secret}", t.prefix.as_deref().unwrap_or_default());
                request.sensitive_header(name, value)
            }
            Place::Basic => {
                let pair = match (&t.username, &t.password) {
                    (Some(user), _) => format!("{user}:{secret}"),
                    (None, password) => {
                        format!("{secret}:{}", password.as_deref().unwrap_or_default())
                    }
                };
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                request.header(reqwest::header::AUTHORIZATION, format!("Basic {encoded}"))
            }
            Place::Form => {
                let name = t.name.as_deref().unwrap_or_default();
                let mut fields: Vec<(&str, &str)> = self
                    .config
                    .form
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                fields.push((name, secret));
                request.form(&fields)
            }
        }
    }
}

impl Provider for Generic {
    fn probe<'a>(
        &'a self,
        _token: &'a TokenSpec,
        secret: &'a Secret,
        now: Timestamp,
    ) -> BoxFuture<'a, ProbeOutcome> {
        Box::pin(async move {
            match http::send(self.request(secret.expose())).await {
                Ok(resp) => parse(&self.config, resp.status, &resp.headers, &resp.body, now),
                Err(outcome) => outcome,
            }
        })
    }
}

/// Turns an answer into an outcome under `config`'s rules. Pure.
///
/// Whatever the rules say, a status outside 2xx and 4xx is the shared handling's
/// (`unreachable`, or `rate_limited` for 429), and an answer whose body a rule for its
/// status reads, but which is not JSON, is `unreachable/bad_response`.
pub fn parse(
    config: &Config,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
) -> ProbeOutcome {
    let rate = http::rate_limit(headers);
    if !matches!(status, 200..=299 | 400..=499) {
        return common_status(status, headers, now);
    }
    let covering: Vec<(usize, &Rule)> = config
        .rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.covers(status))
        .collect();
    if covering.is_empty() {
        if status == 429 {
            let detail = "the provider answered 429 Too Many Requests";
            return rate_limited(config, headers, now, detail).with_rate_limit(rate);
        }
        return common_status(status, headers, now);
    }
    let rules_read_body = covering.iter().any(|(_, r)| r.reads_body());
    let doc: Option<Value> = if rules_read_body || config.facts_read_body() {
        serde_json::from_slice(body).ok()
    } else {
        None
    };
    if rules_read_body && doc.is_none() {
        return ProbeOutcome::bad_response(&format!(
            "the rules for HTTP {status} read the body, which is not JSON"
        ))
        .with_rate_limit(rate);
    }
    let Some((i, rule)) = covering
        .into_iter()
        .find(|(_, r)| r.matches(headers, doc.as_ref()))
    else {
        return ProbeOutcome::bad_response(&format!("no rule matched the answer (HTTP {status})"))
            .with_rate_limit(rate);
    };
    let facts = facts::read_facts(config, headers, doc.as_ref());
    let outcome = match rule.verdict {
        RuleVerdict::Valid => match facts {
            Ok(mut facts) => {
                facts.flag_past_expiry(
                    now,
                    "the provider reports an expiry in the past for a token it accepted",
                );
                ProbeOutcome::valid(facts)
            }
            Err(what) => ProbeOutcome::bad_response(&what),
        },
        RuleVerdict::Invalid => ProbeOutcome::invalid(
            rule.reason.map_or(Reason::UnknownToken, InvalidReason::reason),
            format!("the answer (HTTP {status}) matched rules[{i}]: the token is not valid"),
        )
        .with_facts(facts.unwrap_or_default()),
        RuleVerdict::Forbidden => ProbeOutcome::new(
            Verdict::Forbidden,
            Reason::InsufficientScope,
            format!(
                "the answer (HTTP {status}) matched rules[{i}]: the token lacks the rights this call needs"
            ),
        )
        .with_facts(facts.unwrap_or_default()),
        RuleVerdict::RateLimited => rate_limited(
            config,
            headers,
            now,
            &format!("the answer (HTTP {status}) matched rules[{i}]: rate limited"),
        ),
    };
    outcome.with_rate_limit(rate)
}

/// A rate-limited outcome, waiting for `Retry-After`, else the configured reset header,
/// else the usual reset headers.
fn rate_limited(
    config: &Config,
    headers: &HeaderMap,
    now: Timestamp,
    detail: &str,
) -> ProbeOutcome {
    let wait = http::retry_after(headers, now)
        .or_else(|| facts::reset_wait(config, headers, now))
        .or_else(|| http::reset_wait(http::rate_limit(headers), now));
    ProbeOutcome::rate_limited(wait, detail)
}

#[cfg(test)]
mod tests;
