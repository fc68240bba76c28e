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
use super::{BoxFuture, BuildContext, Provider, ProviderKind, refuse_params, require_secret};
use crate::config::TokenSpec;
use crate::model::{Anomaly, Expiry, ProbeOutcome, Reason, TokenFacts, Verdict};
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
        flag_past_expiry(&mut facts, now);
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
    flag_past_expiry(&mut facts, now);
    ProbeOutcome::valid(facts).with_rate_limit(rate)
}

fn flag_past_expiry(facts: &mut TokenFacts, now: Timestamp) {
    if let Expiry::At(at) = facts.expiry
        && at <= now
    {
        facts
            .flags
            .push("GitLab reports an expiry in the past for a token it accepted".into());
    }
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
mod tests {
    use super::*;
    use crate::provider::http::test_headers as headers;
    use serde_json::json;
    use std::time::Duration;

    const NOW: i64 = 1_757_000_000; // 2025-09-04 15:33:20 UTC

    fn now() -> Timestamp {
        Timestamp::from_second(NOW).unwrap()
    }

    fn pat(status: u16, body: &Value) -> ProbeOutcome {
        parse_access_token(
            status,
            &HeaderMap::new(),
            body.to_string().as_bytes(),
            now(),
        )
    }

    fn token(active: bool, revoked: bool, expires_at: Value) -> Value {
        json!({
            "id": 42, "name": "ci-deploy", "description": "", "revoked": revoked,
            "active": active, "created_at": "2025-01-02T03:04:05.678Z",
            "scopes": ["read_api", "api"], "user_id": 7,
            "last_used_at": "2025-09-01T12:00:00.000Z", "expires_at": expires_at
        })
    }

    #[test]
    fn active_token_facts() {
        let o = pat(200, &token(true, false, json!("2025-10-01")));
        assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok));
        assert_eq!(
            o.facts.expiry.timestamp().unwrap().to_string(),
            "2025-10-01T00:00:00Z"
        );
        assert_eq!(
            o.facts.issued_at.unwrap().to_string(),
            "2025-01-02T03:04:05.678Z"
        );
        assert_eq!(
            o.facts.last_used_at.unwrap().to_string(),
            "2025-09-01T12:00:00Z"
        );
        assert_eq!(o.facts.scopes, ["api", "read_api"]);
        assert_eq!(o.facts.subject.as_deref(), Some("7"));
        assert_eq!(o.facts.extra["user_id"], "7");
        assert_eq!(o.facts.extra["token_name"], "ci-deploy");
        assert_eq!(o.facts.extra["token_id"], "42");
        assert!(o.facts.flags.is_empty());
    }

    #[test]
    fn null_expiry_is_never_and_null_last_use_is_none() {
        let mut body = token(true, false, Value::Null);
        body["last_used_at"] = Value::Null;
        let o = pat(200, &body);
        assert_eq!(o.facts.expiry, Expiry::Never);
        assert_eq!(o.facts.last_used_at, None);
    }

    #[test]
    fn revoked_or_inactive_on_200_is_invalid() {
        let o = pat(200, &token(false, true, json!("2025-10-01")));
        assert_eq!((o.verdict, o.reason), (Verdict::Invalid, Reason::Revoked));
        assert_eq!(o.facts.extra["token_name"], "ci-deploy");
        let o = pat(200, &token(false, false, json!("2025-09-01")));
        assert_eq!((o.verdict, o.reason), (Verdict::Invalid, Reason::Expired));
        assert_eq!(
            o.facts.expiry.timestamp().unwrap().to_string(),
            "2025-09-01T00:00:00Z"
        );
    }

    #[test]
    fn the_three_401_bodies() {
        let cases = [
            (json!({"message": "401 Unauthorized"}), Reason::UnknownToken),
            (
                json!({"error": "invalid_token", "error_description": "Token is expired. You can either do re-authorization or token refresh."}),
                Reason::Expired,
            ),
            (
                json!({"error": "invalid_token", "error_description": "Token was revoked. You have to re-authorize from the user."}),
                Reason::Revoked,
            ),
            (
                json!({"message": "Token is expired. You can either do re-authorization or token refresh."}),
                Reason::Expired,
            ),
        ];
        for (body, reason) in cases {
            let o = pat(401, &body);
            assert_eq!((o.verdict, o.reason), (Verdict::Invalid, reason), "{body}");
        }
        let proxy = parse_access_token(401, &HeaderMap::new(), b"<html>401</html>", now());
        assert_eq!(proxy.verdict, Verdict::Unreachable);
    }

    #[test]
    fn forbidden_insufficient_scope_versus_blocked_address() {
        let o = pat(
            403,
            &json!({"error": "insufficient_scope", "error_description": "The request requires higher privileges than provided by the access token.", "scope": "api read_api"}),
        );
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Forbidden, Reason::InsufficientScope)
        );
        let o = pat(403, &json!({"message": "403 Forbidden"}));
        assert_eq!(o.verdict, Verdict::RateLimited);
        let o = parse_access_token(403, &HeaderMap::new(), b"Forbidden", now());
        assert_eq!(o.verdict, Verdict::RateLimited);
    }

    #[test]
    fn rate_limited_429() {
        let h = headers(&[
            ("ratelimit-limit", "2000"),
            ("ratelimit-remaining", "0"),
            ("ratelimit-reset", &(NOW + 60).to_string()),
            ("retry-after", "60"),
        ]);
        let o = parse_access_token(429, &h, b"Retry later", now());
        assert_eq!(o.verdict, Verdict::RateLimited);
        assert_eq!(o.retry_after, Some(Duration::from_secs(60)));
        assert_eq!(o.rate_limit.unwrap().limit, Some(2000.0));
    }

    #[test]
    fn garbage_and_outages_are_unreachable() {
        for (status, body) in [
            (200, "<html>sign in</html>"),
            (200, "{}"),
            (200, "[]"),
            (500, ""),
            (502, "<html/>"),
            (404, r#"{"message":"404 Not Found"}"#),
        ] {
            let o = parse_access_token(status, &HeaderMap::new(), body.as_bytes(), now());
            assert_eq!(o.verdict, Verdict::Unreachable, "{status} {body}");
            let o = parse_oauth(status, &HeaderMap::new(), body.as_bytes(), now());
            assert_eq!(o.verdict, Verdict::Unreachable, "oauth {status} {body}");
        }
    }

    #[test]
    fn oauth_both_shapes() {
        let gitlab = json!({
            "resource_owner_id": 7, "scope": ["api", "read_user"], "expires_in": 7200,
            "application": {"uid": "abc123"}, "created_at": 1_756_990_000,
            "scopes": ["api", "read_user"], "expires_in_seconds": 7200
        });
        let o = parse_oauth(200, &HeaderMap::new(), gitlab.to_string().as_bytes(), now());
        assert_eq!(o.verdict, Verdict::Valid);
        assert_eq!(o.facts.expiry.timestamp().unwrap().as_second(), NOW + 7200);
        assert_eq!(o.facts.issued_at.unwrap().as_second(), 1_756_990_000);
        assert_eq!(o.facts.scopes, ["api", "read_user"]);
        assert_eq!(o.facts.subject.as_deref(), Some("7"));
        assert_eq!(o.facts.client_id.as_deref(), Some("abc123"));

        let other = json!({"scopes": "read_user openid", "expires_in_seconds": null,
                           "created_at": "2025-09-04T10:00:00Z"});
        let o = parse_oauth(200, &HeaderMap::new(), other.to_string().as_bytes(), now());
        assert_eq!(o.verdict, Verdict::Valid);
        assert_eq!(o.facts.expiry, Expiry::Never);
        assert_eq!(o.facts.scopes, ["openid", "read_user"]);
        assert_eq!(
            o.facts.issued_at.unwrap().to_string(),
            "2025-09-04T10:00:00Z"
        );

        let silent = json!({"resource_owner_id": 7, "scope": []});
        let o = parse_oauth(200, &HeaderMap::new(), silent.to_string().as_bytes(), now());
        assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    }

    #[test]
    fn oauth_invalid_tokens() {
        for (description, reason) in [
            ("The access token expired", Reason::Expired),
            ("The access token was revoked", Reason::Revoked),
            ("The access token is invalid", Reason::UnknownToken),
        ] {
            let body = json!({"error": "invalid_token", "error_description": description, "state": "unauthorized"});
            let o = parse_oauth(401, &HeaderMap::new(), body.to_string().as_bytes(), now());
            assert_eq!((o.verdict, o.reason), (Verdict::Invalid, reason));
        }
    }

    /// Issue 16 finding 6, GitLab's `expires_at`: every unusable value of the issue's list is
    /// undisclosed with `expiry_unreadable`, never "never".
    #[test]
    fn unusable_expires_at_is_flagged() {
        for bad in [
            json!("1900000000"),
            json!(1_900_000_000),
            json!(true),
            json!({}),
            json!("10000-01-01"),
            json!(i64::MAX),
        ] {
            let o = pat(200, &token(true, false, bad.clone()));
            assert_eq!(o.verdict, Verdict::Valid, "{bad}");
            assert_eq!(o.facts.expiry, Expiry::Undisclosed, "{bad}");
            assert_eq!(o.facts.anomalies, [Anomaly::ExpiryUnreadable], "{bad}");
        }
    }

    #[test]
    fn expiry_dates() {
        assert_eq!(
            expiry_date("2025-10-01").unwrap().to_string(),
            "2025-10-01T00:00:00Z"
        );
        assert_eq!(
            expiry_date("2025-10-01T12:00:00Z").unwrap().to_string(),
            "2025-10-01T12:00:00Z"
        );
        assert!(expiry_date("soon").is_none());
        let o = pat(200, &token(true, false, json!("tomorrow")));
        assert_eq!(o.facts.expiry, Expiry::Undisclosed);
        assert_eq!(o.facts.flags.len(), 1);
        assert_eq!(o.facts.anomalies, [Anomaly::ExpiryUnreadable]);
    }

    #[test]
    fn config_checks() {
        let ok = Config {
            url: Some("https://gitlab.example.com/gitlab".into()),
            token_type: TokenType::AccessToken,
            max_concurrency: None,
        };
        assert!(ok.validate().is_ok());
        let api = Config {
            url: Some("https://gitlab.example.com/api/v4/".into()),
            ..ok.clone()
        };
        assert!(api.validate().unwrap_err().contains("/api/v4"));
        let ftp = Config {
            url: Some("ftp://gitlab.example.com".into()),
            ..ok
        };
        assert!(ftp.validate().is_err());
    }
}
