//! `github`: GitHub.com and GitHub Enterprise Server tokens. Network I/O in `probe`; `parse`
//! and the helpers it uses are pure.
//!
//! By default a token is probed with the call GitHub documents for "who am I":
//! `GET {api}/user` with the token as a bearer. Installation tokens (`ghs_`) cannot call
//! `/user`, so they are probed with `GET {api}/installation/repositories`. With the credentials
//! of an OAuth app or GitHub App (`app_client_id`, `app_client_secret`), the app's OAuth tokens
//! are checked with `POST {api}/applications/{client_id}/token`, which GitHub built for this
//! and which does not count against the failed-login limits. Nothing else under
//! `/applications` is ever called: its `PATCH` resets the token and its `DELETE` revokes it.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use jiff::Timestamp;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

use super::http::{self, common_status};
use super::{
    BoxFuture, BuildContext, LimitKey, Provider, ProviderKind, Renamed, refuse_params,
    renamed_setting, require_secret,
};
use crate::model::{Anomaly, Expiry, ProbeOutcome, Reason, TokenFacts, Verdict};
use crate::schema::TokenSpec;
use crate::secret::{Credential, Secret, SecretSource};

/// GitHub.com's REST API. GitHub Enterprise Server serves it at `https://HOST/api/v3`, a path
/// prefix that is kept like any other.
pub const DEFAULT_URL: &str = "https://api.github.com";

/// The REST API version the parser was written against; GitHub answers in that version's
/// shape for as long as it supports it.
pub const API_VERSION: &str = "2022-11-28";

/// GitHub's advice when a secondary rate limit names no wait: retry after at least a minute.
const SECONDARY_LIMIT_WAIT: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The REST API's address: `https://api.github.com`, or `https://HOST/api/v3` for GitHub
    /// Enterprise Server (a path prefix, kept). Defaults to [`DEFAULT_URL`].
    pub url: Option<String>,
    /// The old name of `url`, kept with the same meaning.
    pub api_url: Option<String>,
    /// The client ID of the OAuth app or GitHub App whose tokens are checked (app mode).
    pub app_client_id: Option<String>,
    /// That app's client secret (app mode).
    pub app_client_secret: Option<SecretSource>,
    pub max_concurrency: Option<usize>,
}

impl Config {
    /// The setting in use, by name, and the REST API's address.
    pub fn api(&self) -> Result<(&'static str, &str), String> {
        Ok(
            match renamed_setting(
                ("url", self.url.as_ref()),
                ("api_url", self.api_url.as_ref()),
            )? {
                Some((name, url)) => (name, url.as_str()),
                None => ("url", DEFAULT_URL),
            },
        )
    }
}

impl ProviderKind for Config {
    fn kind(&self) -> &'static str {
        "github"
    }

    fn validate(&self) -> Result<(), String> {
        let (name, url) = self.api()?;
        http::check_base_url(name, url)?;
        match (&self.app_client_id, &self.app_client_secret) {
            (Some(id), Some(_)) => check_client_id(id)?,
            (None, None) => {}
            (Some(_), None) => {
                return Err("app_client_id needs app_client_secret (app mode takes both)".into());
            }
            (None, Some(_)) => {
                return Err("app_client_secret needs app_client_id (app mode takes both)".into());
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
        let (name, url) = self.api()?;
        http::check_base_url(name, url)?;
        let app = match (&self.app_client_id, &self.app_client_secret) {
            (Some(id), Some(secret)) => Some(App {
                client_id: id.clone(),
                client_secret: Credential::new(secret.clone()),
            }),
            _ => None,
        };
        Ok(Arc::new(GitHub {
            api: url.trim_end_matches('/').to_string(),
            app,
            http: ctx.http.clone(),
        }))
    }

    fn renamed_in_use(&self) -> Vec<Renamed> {
        self.api_url
            .iter()
            .map(|_| Renamed {
                old: "api_url",
                new: "url",
                rewrite: None,
            })
            .collect()
    }
}

/// The client ID goes into the request path, so only the characters GitHub uses in client
/// IDs (`Iv1.0123abcd...`, 20 hex digits for OAuth apps) are accepted.
fn check_client_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(
            "app_client_id must be a GitHub client ID (letters, digits, '.', '_' or '-')".into(),
        );
    }
    Ok(())
}

struct App {
    client_id: String,
    client_secret: Credential,
}

struct GitHub {
    /// The API root without a trailing slash.
    api: String,
    app: Option<App>,
    http: http::Client,
}

/// Which call a token is probed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /user`: personal access tokens, OAuth and GitHub App user tokens.
    User,
    /// `GET /installation/repositories`: installation tokens (`ghs_`).
    Installation,
    /// `POST /applications/{client_id}/token` with the app's credentials (app mode).
    AppCheck,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Endpoint::User => "/user",
            // One repository is enough: `total_count` still counts them all.
            Endpoint::Installation => "/installation/repositories?per_page=1",
            Endpoint::AppCheck => "/applications/{client_id}/token",
        }
    }
}

/// What a token's prefix says it is. The prefixes are documented by GitHub; tokens issued
/// before 2021 have none.
pub fn token_type(token: &str) -> Option<&'static str> {
    const PREFIXES: [(&str, &str); 6] = [
        ("ghp_", "personal_access_token"),
        ("github_pat_", "fine_grained_personal_access_token"),
        ("gho_", "oauth"),
        ("ghu_", "app_user"),
        ("ghs_", "installation"),
        ("ghr_", "app_refresh"),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _)| token.starts_with(prefix))
        .map(|(_, kind)| *kind)
}

/// Picks the call for a token. Installation tokens always use the installation endpoint,
/// because `/user` refuses them and the app check covers OAuth tokens only. In app mode the
/// app check is used for everything that may be an OAuth token; personal access tokens
/// belong to no app, so they keep using `/user`. A refresh token (`ghr_`) gets `None`: it
/// only works at the token endpoint, where using it would consume it, so it is never sent.
pub fn endpoint_for(token: &str, app_mode: bool) -> Option<Endpoint> {
    match token_type(token) {
        Some("installation") => Some(Endpoint::Installation),
        Some("app_refresh") => None,
        Some("personal_access_token" | "fine_grained_personal_access_token") => {
            Some(Endpoint::User)
        }
        _ if app_mode => Some(Endpoint::AppCheck),
        _ => Some(Endpoint::User),
    }
}

/// The outcome for a secret that is a refresh token rather than an access token.
fn refresh_token_outcome() -> ProbeOutcome {
    ProbeOutcome::misconfigured(
        Reason::Malformed,
        "the secret is a GitHub App refresh token (ghr_), which cannot be probed without being \
         used up; configure the user access token (ghu_) instead",
    )
}

impl Provider for GitHub {
    fn probe<'a>(
        &'a self,
        _token: &'a TokenSpec,
        secret: &'a Secret,
        now: Timestamp,
    ) -> BoxFuture<'a, ProbeOutcome> {
        Box::pin(async move {
            let value = secret.expose();
            let Some(endpoint) = endpoint_for(value, self.app.is_some()) else {
                return refresh_token_outcome();
            };
            let request = match (endpoint, &self.app) {
                (Endpoint::AppCheck, Some(app)) => {
                    let client_secret = match app.client_secret.read().await {
                        Ok(s) => s,
                        Err(e) => {
                            return ProbeOutcome::misconfigured(
                                Reason::SecretUnavailable,
                                format!("app_client_secret: {e}"),
                            );
                        }
                    };
                    let url = format!("{}/applications/{}/token", self.api, app.client_id);
                    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                        "{}:{}",
                        app.client_id,
                        client_secret.expose()
                    ));
                    self.http
                        .post(url)
                        .header("authorization", format!("Basic {basic}"))
                        .json(&serde_json::json!({ "access_token": value }))
                }
                _ => self
                    .http
                    .get(format!("{}{}", self.api, endpoint.path()))
                    .bearer_auth(value),
            };
            let request = request
                .header("accept", "application/vnd.github+json")
                .header("x-github-api-version", API_VERSION);
            let mut outcome = match http::send(request).await {
                Ok(resp) => parse(endpoint, resp.status, &resp.headers, &resp.body, now),
                Err(outcome) => outcome,
            };
            if outcome.facts.token_type.is_none() {
                outcome.facts.token_type = token_type(value).map(str::to_owned);
            }
            outcome
        })
    }

    /// GitHub counts every request made for a user against that user's limit, whichever
    /// token made it (personal access tokens, OAuth and GitHub App user tokens), so tokens
    /// pause together when their last answers named the same user. An installation token
    /// spends its installation's limit, which its answer does not name: it pauses alone. In
    /// app mode the check is authenticated by the app's credentials, which the whole entry
    /// shares.
    fn rate_limit_key(&self, known: &TokenFacts) -> LimitKey {
        match known.token_type.as_deref() {
            Some("installation") => return LimitKey::Token,
            Some("personal_access_token" | "fine_grained_personal_access_token") => {}
            _ if self.app.is_some() => return LimitKey::Entry,
            _ => {}
        }
        match known.extra.get("user_id").or(known.subject.as_ref()) {
            Some(user) => LimitKey::Identity(user.clone()),
            None => LimitKey::Token,
        }
    }
}

/// Turns GitHub's answer to `endpoint` into an outcome. Pure.
pub fn parse(
    endpoint: Endpoint,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
) -> ProbeOutcome {
    let rate = http::rate_limit(headers);
    let outcome = match (endpoint, status) {
        (Endpoint::AppCheck, 200) => app_check_ok(body, now),
        (Endpoint::AppCheck, 404) => match message(body) {
            Some(_) => ProbeOutcome::invalid(
                Reason::UnknownToken,
                "the app's token check does not know the token: it expired, was revoked, or \
                 was issued by another app (GitHub answered 404)",
            ),
            None => ProbeOutcome::bad_response("a 404 without GitHub's JSON error body"),
        },
        (Endpoint::AppCheck, 401) => ProbeOutcome::misconfigured(
            Reason::ClientAuth,
            "GitHub refused the app's client ID and secret (HTTP 401)",
        ),
        (_, 200) => bearer_ok(endpoint, headers, body, now),
        (_, 401) => match message(body) {
            // GitHub says "Bad credentials" for expired, revoked and unknown tokens alike.
            Some(_) => ProbeOutcome::invalid(
                Reason::UnknownToken,
                "GitHub answered 401 Bad credentials: the token is expired, revoked or unknown \
                 (GitHub does not say which)",
            ),
            // A 401 page from a proxy in front of GitHub Enterprise says nothing about the
            // token.
            None => ProbeOutcome::bad_response("a 401 without GitHub's JSON error body"),
        },
        (_, 403 | 429) => refused(endpoint, status, headers, body, now),
        _ => return common_status(status, headers, now),
    };
    outcome.with_rate_limit(rate)
}

/// The `message` of GitHub's JSON error body, if the body is one.
fn message(body: &[u8]) -> Option<String> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    doc.get("message")?.as_str().map(str::to_owned)
}

/// 403 and 429: rate limits first (GitHub uses 403 for them too), then SAML SSO, then a
/// missing permission.
fn refused(
    endpoint: Endpoint,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
) -> ProbeOutcome {
    let msg = message(body);
    let lower = msg.as_deref().unwrap_or_default().to_ascii_lowercase();
    let exhausted = http::header(headers, "x-ratelimit-remaining") == Some("0");
    // Older GitHub Enterprise versions call the secondary limit "abuse detection".
    let secondary = lower.contains("secondary rate limit") || lower.contains("abuse detection");
    if status == 429 || exhausted || secondary {
        let wait = http::retry_after(headers, now)
            .or_else(|| http::reset_wait(http::rate_limit(headers), now))
            .or(secondary.then_some(SECONDARY_LIMIT_WAIT));
        let detail = if secondary {
            format!("GitHub's secondary rate limit refused the probe (HTTP {status})")
        } else {
            format!("GitHub's rate limit for this token is used up (HTTP {status})")
        };
        return ProbeOutcome::rate_limited(wait, detail);
    }
    if endpoint == Endpoint::AppCheck {
        // The app's own credentials were refused, which says nothing about the token.
        return ProbeOutcome::misconfigured(
            Reason::ClientAuth,
            "GitHub refused the app's token check (HTTP 403)",
        );
    }
    let facts = header_facts(endpoint, Answer::Refused, headers, now);
    if let Some(sso) = http::header(headers, "x-github-sso")
        && sso.starts_with("required")
    {
        let mut facts = facts;
        if let Some(org) = sso_org(sso) {
            facts.extra.insert("sso_organization".into(), org);
        }
        return ProbeOutcome::new(
            Verdict::Forbidden,
            Reason::SsoRequired,
            "the token is valid, but an organization enforces SAML single sign-on and the \
             token is not authorized for it: its owner must authorize it for that organization \
             (Configure SSO in the token's settings on GitHub)",
        )
        .with_facts(facts);
    }
    if msg.is_none() {
        return ProbeOutcome::bad_response("a 403 without GitHub's JSON error body");
    }
    let detail = if lower.contains("not accessible by integration") {
        format!(
            "GitHub answered 403 Resource not accessible by integration: the token cannot call {}",
            endpoint.path()
        )
    } else {
        format!(
            "GitHub answered 403: the token authenticates but may not call {}",
            endpoint.path()
        )
    };
    ProbeOutcome::new(Verdict::Forbidden, Reason::InsufficientScope, detail).with_facts(facts)
}

/// The organization in `X-GitHub-SSO: required; url=https://github.com/orgs/ORG/sso?...`.
fn sso_org(value: &str) -> Option<String> {
    let url = value
        .split(';')
        .find_map(|part| part.trim().strip_prefix("url="))?;
    let url = url::Url::parse(url).ok()?;
    let mut segments = url.path_segments()?;
    if segments.next()? != "orgs" {
        return None;
    }
    let org = segments.next()?;
    let plain = !org.is_empty()
        && org.len() <= 64
        && org.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    plain.then(|| org.to_string())
}

/// Whether the call the headers came with was answered or refused.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    Accepted,
    Refused,
}

/// Facts carried by the response headers of any call authenticated by the token. A missing
/// expiration header means "never" only on an accepted call: a refusal (SAML SSO, a missing
/// permission) says nothing about expiry, so there its absence leaves the expiry undisclosed
/// (and the store keeps the last one known).
fn header_facts(
    endpoint: Endpoint,
    answer: Answer,
    headers: &HeaderMap,
    now: Timestamp,
) -> TokenFacts {
    let mut facts = TokenFacts::default();
    match http::header(headers, "github-authentication-token-expiration") {
        Some(value) => match parse_expiration(value) {
            Some(at) => {
                facts.expiry = Expiry::At(at);
                if at <= now {
                    facts.flags.push(
                        "GitHub reports an expiry in the past for a token it accepted; the \
                         expiry header is suspect"
                            .into(),
                    );
                }
            }
            None => facts.note(
                Anomaly::ExpiryUnreadable,
                "GitHub's token expiration header could not be read",
            ),
        },
        // Installation tokens always expire after an hour, so a missing header cannot mean
        // "never" for them; for every other token an accepted call without it does.
        None if endpoint == Endpoint::Installation || answer == Answer::Refused => {}
        None => facts.expiry = Expiry::Never,
    }
    if let Some(scopes) = http::header(headers, "x-oauth-scopes") {
        facts.scopes = split_scopes(scopes);
    }
    facts
}

/// `X-OAuth-Scopes: repo, read:org` as a sorted list.
fn split_scopes(value: &str) -> Vec<String> {
    let mut scopes: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    scopes.sort();
    scopes.dedup();
    scopes
}

/// `GitHub-Authentication-Token-Expiration`: `2025-09-05 17:55:53 UTC`, or with a numeric
/// offset (`+0500`, seen in the wild) instead of `UTC`.
pub fn parse_expiration(value: &str) -> Option<Timestamp> {
    let value = value.trim();
    for zone in [" UTC", " GMT"] {
        if let Some(civil) = value.strip_suffix(zone) {
            let dt = jiff::fmt::strtime::parse("%Y-%m-%d %H:%M:%S", civil.trim())
                .ok()?
                .to_datetime()
                .ok()?;
            return dt
                .to_zoned(jiff::tz::TimeZone::UTC)
                .ok()
                .map(|z| z.timestamp());
        }
    }
    ["%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S %:z"]
        .iter()
        .find_map(|format| {
            jiff::fmt::strtime::parse(format, value)
                .ok()?
                .to_timestamp()
                .ok()
        })
}

/// 200 from `/user` or `/installation/repositories`.
fn bearer_ok(endpoint: Endpoint, headers: &HeaderMap, body: &[u8], now: Timestamp) -> ProbeOutcome {
    let doc: Value = match http::json(body) {
        Ok(v) => v,
        Err(o) => return o,
    };
    let mut facts = header_facts(endpoint, Answer::Accepted, headers, now);
    match endpoint {
        Endpoint::User => {
            let Some(login) = doc.get("login").and_then(Value::as_str) else {
                return ProbeOutcome::bad_response("no \"login\" in the user object");
            };
            facts.subject = Some(login.to_string());
            if let Some(id) = doc.get("id").and_then(Value::as_u64) {
                facts.extra.insert("user_id".into(), id.to_string());
            }
            if let Some(kind) = doc.get("type").and_then(Value::as_str) {
                facts.extra.insert("account_type".into(), kind.to_string());
            }
        }
        _ => {
            let Some(count) = doc.get("total_count").and_then(Value::as_u64) else {
                return ProbeOutcome::bad_response("no \"total_count\" in the repository list");
            };
            facts
                .extra
                .insert("repository_count".into(), count.to_string());
            if let Some(selection) = doc.get("repository_selection").and_then(Value::as_str) {
                facts
                    .extra
                    .insert("repository_selection".into(), selection.to_string());
            }
            // The installation's account is the owner of its repositories.
            if let Some(owner) = doc
                .pointer("/repositories/0/owner/login")
                .and_then(Value::as_str)
            {
                facts
                    .extra
                    .insert("installation_account".into(), owner.to_string());
            }
        }
    }
    ProbeOutcome::valid(facts)
}

/// 200 from the app's token check. The body also carries the token itself and its last
/// eight characters: neither is read.
fn app_check_ok(body: &[u8], now: Timestamp) -> ProbeOutcome {
    let doc: Value = match http::json(body) {
        Ok(v) => v,
        Err(o) => return o,
    };
    let Some(scopes) = doc.get("scopes").and_then(Value::as_array) else {
        return ProbeOutcome::bad_response("no \"scopes\" array in the authorization");
    };
    let mut facts = TokenFacts::default();
    let mut list: Vec<String> = scopes
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    list.sort();
    list.dedup();
    facts.scopes = list;
    facts.expiry = match doc.get("expires_at") {
        None | Some(Value::Null) => Expiry::Never,
        Some(v) => match v.as_str().and_then(|s| s.parse::<Timestamp>().ok()) {
            Some(at) => {
                if at <= now {
                    facts.flags.push(
                        "GitHub reports an expiry in the past for a token its check accepted"
                            .into(),
                    );
                }
                Expiry::At(at)
            }
            None => {
                facts.note(
                    Anomaly::ExpiryUnreadable,
                    "GitHub's expires_at could not be read",
                );
                Expiry::Undisclosed
            }
        },
    };
    facts.issued_at = doc
        .get("created_at")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok());
    facts.subject = doc
        .pointer("/user/login")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(id) = doc.pointer("/user/id").and_then(Value::as_u64) {
        facts.extra.insert("user_id".into(), id.to_string());
    }
    facts.client_id = doc
        .pointer("/app/client_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(name) = doc.pointer("/app/name").and_then(Value::as_str) {
        facts.extra.insert("app_name".into(), name.to_string());
    }
    ProbeOutcome::valid(facts)
}

#[cfg(test)]
mod tests;
