//! `entra_id`: checks a Microsoft Entra ID app's client secret or certificate with the
//! client-credentials grant at the tenant's token endpoint, and, with `graph: true`, reads
//! the credential's expiry from Microsoft Graph with the access token just issued. Network
//! I/O in `probe` (through [`graph`]); [`parse`] and [`graph_facts`] are pure.
//!
//! The access token is the app's own credential: it lives in a [`Secret`] for the one Graph
//! call and is zeroed with the answer's bytes; it is never stored, logged or shown.

pub mod assertion;
pub mod graph;

use std::sync::Arc;

use base64::Engine;
use jiff::{SignedDuration, Timestamp};
use reqwest::header::HeaderMap;

use super::http::{self, common_status};
use super::oauth2::safe_code;
use super::{BoxFuture, BuildContext, Provider, ProviderKind, refuse_params, require_secret};
use crate::model::{
    Anomaly, Expiry, ExpiryModel, ExpiryRead, ProbeOutcome, Reason, TokenFacts, Verdict,
};
use crate::schema::TokenSpec;
use crate::secret::Secret;
use graph::{Application, ClientCredential, Credential};

/// An `endDateTime` this far ahead is Entra's "never expires" (the portal once offered it,
/// and such secrets carry an end in year 2299 or 9999): the secret is treated as one without
/// an expiry, whose age is what matters.
pub const FAR_FUTURE: SignedDuration = SignedDuration::from_hours(36_525 * 24);

#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The directory (tenant) id, or one of its verified domain names.
    pub tenant_id: String,
    /// The application (client) id of the app whose credentials the tokens are.
    pub client_id: String,
    /// The identity platform's address; defaults to [`graph::DEFAULT_LOGIN_URL`].
    pub url: Option<String>,
    /// Microsoft Graph's address; defaults to [`graph::DEFAULT_GRAPH_URL`].
    pub graph_url: Option<String>,
    /// The scope asked for; defaults to [`graph::DEFAULT_SCOPE`].
    pub scope: Option<String>,
    /// Read each credential's expiry from Graph (needs `Application.Read.All`).
    #[serde(default)]
    pub graph: bool,
    pub max_concurrency: Option<usize>,
}

impl Config {
    /// The identity platform's address in use.
    pub fn login_url(&self) -> &str {
        self.url.as_deref().unwrap_or(graph::DEFAULT_LOGIN_URL)
    }
    /// Microsoft Graph's address in use.
    pub fn graph_url(&self) -> &str {
        self.graph_url
            .as_deref()
            .unwrap_or(graph::DEFAULT_GRAPH_URL)
    }
}

/// A GUID as Entra writes application and key ids: 8-4-4-4-12 hex digits.
pub fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl ProviderKind for Config {
    fn kind(&self) -> &'static str {
        "entra_id"
    }

    fn validate(&self) -> Result<(), String> {
        http::check_base_url("url", self.login_url())?;
        http::check_base_url("graph_url", self.graph_url())?;
        // The tenant becomes a path segment: a GUID or a domain name, nothing that could
        // turn into another path.
        let t = &self.tenant_id;
        if t.is_empty()
            || t.len() > 253
            || !t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Err(
                "tenant_id must be the directory (tenant) id or a verified domain name".into(),
            );
        }
        if ["common", "organizations", "consumers"].contains(&t.to_ascii_lowercase().as_str()) {
            return Err(
                "tenant_id must name one tenant: the client-credentials grant does not work with common, organizations or consumers"
                    .into(),
            );
        }
        if !is_guid(&self.client_id) {
            return Err(
                "client_id must be the application (client) id, a GUID like 00000000-0000-0000-0000-000000000000"
                    .into(),
            );
        }
        if self.scope.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return Err("scope must not be empty".into());
        }
        Ok(())
    }

    fn check_token(&self, token: &TokenSpec) -> Result<(), String> {
        require_secret(token, self.kind())?;
        refuse_params(token, self.kind(), &["key_id"])?;
        if let Some(id) = &token.params.key_id {
            if !is_guid(id) {
                return Err("key_id must be the credential's keyId, a GUID".into());
            }
            if !self.graph {
                return Err("key_id only applies with graph: true on the provider".into());
            }
        }
        Ok(())
    }

    fn max_concurrency(&self) -> Option<usize> {
        self.max_concurrency
    }

    fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Provider>, String> {
        Ok(Arc::new(EntraId {
            token_endpoint: graph::token_endpoint(self.login_url(), &self.tenant_id),
            client_id: self.client_id.clone(),
            tenant_id: self.tenant_id.clone(),
            scope: self
                .scope
                .clone()
                .unwrap_or_else(|| graph::DEFAULT_SCOPE.to_string()),
            application_url: self
                .graph
                .then(|| graph::application_url(self.graph_url(), &self.client_id)),
            http: ctx.http.clone(),
        }))
    }
}

struct EntraId {
    token_endpoint: String,
    client_id: String,
    tenant_id: String,
    scope: String,
    application_url: Option<String>,
    http: http::Client,
}

/// What kind of credential the secret is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    ClientSecret,
    Certificate,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ClientSecret => "client_secret",
            Kind::Certificate => "certificate",
        }
    }
}

impl Provider for EntraId {
    fn probe<'a>(
        &'a self,
        token: &'a TokenSpec,
        secret: &'a Secret,
        now: Timestamp,
    ) -> BoxFuture<'a, ProbeOutcome> {
        Box::pin(async move {
            let value = secret.expose();
            let (kind, certificate) = if assertion::is_pem(value) {
                match assertion::read_pem(value) {
                    Ok(c) => (Kind::Certificate, Some(c)),
                    Err(what) => {
                        return ProbeOutcome::misconfigured(
                            Reason::Malformed,
                            format!("the secret looks like a certificate credential, but {what}"),
                        );
                    }
                }
            } else {
                (Kind::ClientSecret, None)
            };
            let signed;
            let credential = match &certificate {
                Some(cert) => {
                    let jti = assertion::new_jti();
                    signed = match cert.assertion(&self.client_id, &self.token_endpoint, now, &jti)
                    {
                        Ok(jwt) => Secret::new(jwt),
                        Err(what) => return ProbeOutcome::misconfigured(Reason::Malformed, what),
                    };
                    ClientCredential::Assertion(signed.expose())
                }
                None => ClientCredential::Secret(value),
            };
            let resp = match graph::request_token(
                &self.http,
                &self.token_endpoint,
                &self.client_id,
                &self.scope,
                credential,
            )
            .await
            {
                Ok(resp) => resp,
                Err(outcome) => return outcome,
            };
            let (mut outcome, issued) = answer(resp.status, &resp.headers, resp.body, now, kind);
            outcome.facts.client_id = Some(self.client_id.clone());
            outcome
                .facts
                .extra
                .insert("tenant_id".into(), self.tenant_id.clone());
            let (Some(issued), Some(url)) = (issued, &self.application_url) else {
                return outcome;
            };
            let prefix: String;
            let held = match &certificate {
                Some(cert) => Held::Certificate { der: &cert.der },
                None => {
                    prefix = value.chars().take(3).collect();
                    Held::Secret { prefix: &prefix }
                }
            };
            let key_id = token.params.key_id.as_deref();
            match graph::get(&self.http, url, &issued.access_token).await {
                Ok(mut resp) => {
                    graph_facts(
                        resp.status,
                        &resp.body,
                        now,
                        &held,
                        key_id,
                        &mut outcome.facts,
                    );
                    zeroize::Zeroize::zeroize(&mut resp.body);
                }
                Err(failed) => outcome.facts.flags.push(format!(
                    "Graph could not be asked ({}); the expiry is not disclosed this time",
                    failed.reason
                )),
            }
            outcome
        })
    }
}

/// Turns a token endpoint answer into an outcome. Pure.
pub fn parse(status: u16, headers: &HeaderMap, body: &[u8], now: Timestamp) -> ProbeOutcome {
    answer(status, headers, body.to_vec(), now, Kind::ClientSecret).0
}

/// [`parse`], also handing back the access token of a successful answer. Takes the body by
/// value and zeroes it, so the access token's bytes do not outlive this call but in the
/// returned [`graph::Issued`].
pub fn answer(
    status: u16,
    headers: &HeaderMap,
    mut body: Vec<u8>,
    now: Timestamp,
    kind: Kind,
) -> (ProbeOutcome, Option<graph::Issued>) {
    let outcome = match status {
        200 => match graph::read_issued(&mut body) {
            Ok(issued) => {
                let mut facts = TokenFacts {
                    token_type: Some(kind.as_str().into()),
                    ..TokenFacts::default()
                };
                facts
                    .extra
                    .insert("credential".into(), kind.as_str().into());
                return (ProbeOutcome::valid(facts), Some(issued));
            }
            Err(what) => ProbeOutcome::bad_response(&what),
        },
        400 | 401 => match graph::read_token_error(&body) {
            Some(error) => refused(status, &error, kind),
            None => ProbeOutcome::unreachable(
                Reason::UnexpectedStatus,
                format!(
                    "the token endpoint answered HTTP {status} without the identity platform's error JSON"
                ),
            ),
        },
        500..=599 => {
            common_status(status, headers, now).with_retry_after(http::retry_after(headers, now))
        }
        _ => common_status(status, headers, now),
    };
    zeroize::Zeroize::zeroize(&mut body);
    (outcome, None)
}

/// What one AADSTS code means for the credential.
struct Meaning {
    code: u64,
    verdict: Verdict,
    reason: Reason,
    detail: &'static str,
}

const fn m(code: u64, verdict: Verdict, reason: Reason, detail: &'static str) -> Meaning {
    Meaning {
        code,
        verdict,
        reason,
        detail,
    }
}

/// The AADSTS codes the exporter maps, with its own sentence for each (the platform's
/// `error_description` is never shown: it carries trace ids and may name the app). A code
/// not listed here is no verdict on the credential.
const MEANINGS: &[Meaning] = &[
    m(
        7000222,
        Verdict::Invalid,
        Reason::Expired,
        "Entra ID says the client secret has expired (AADSTS7000222); add a new secret to the app and deliver it",
    ),
    m(
        7000215,
        Verdict::Invalid,
        Reason::UnknownToken,
        "Entra ID does not accept the client secret (AADSTS7000215): it is not one of the app's secrets (removed, mistyped, or the secret's ID given instead of its value)",
    ),
    m(
        700016,
        Verdict::Invalid,
        Reason::UnknownToken,
        "Entra ID finds no application with this client_id in the tenant (AADSTS700016): the app was deleted, or tenant_id or client_id is wrong",
    ),
    m(
        7000112,
        Verdict::Invalid,
        Reason::Disabled,
        "Entra ID says the application is disabled (AADSTS7000112)",
    ),
    m(
        700027,
        Verdict::Invalid,
        Reason::UnknownToken,
        "Entra ID does not accept the certificate's assertion (AADSTS700027): the certificate is not (or no longer) registered on the app, has expired, or the key is not the certificate's",
    ),
    m(
        90002,
        Verdict::Misconfigured,
        Reason::Discovery,
        "Entra ID knows no tenant by this tenant_id (AADSTS90002)",
    ),
    m(
        700024,
        Verdict::Misconfigured,
        Reason::UnexpectedStatus,
        "Entra ID says the client assertion is outside its valid time (AADSTS700024): the exporter's clock is off",
    ),
    m(
        70011,
        Verdict::Misconfigured,
        Reason::UnexpectedStatus,
        "Entra ID refuses the scope (AADSTS70011): set scope to a resource's /.default",
    ),
    m(
        500011,
        Verdict::Misconfigured,
        Reason::UnexpectedStatus,
        "Entra ID finds no resource for the scope in the tenant (AADSTS500011): check scope",
    ),
    m(
        7000229,
        Verdict::Misconfigured,
        Reason::UnexpectedStatus,
        "the application has no service principal in this tenant (AADSTS7000229): it cannot get app-only tokens here",
    ),
];

/// The outcome of a 400 or 401 with the platform's error JSON: the first mapped code decides.
fn refused(status: u16, error: &graph::TokenError, kind: Kind) -> ProbeOutcome {
    for code in &error.codes {
        if let Some(meaning) = MEANINGS.iter().find(|m| m.code == *code) {
            // A certificate cannot be "a wrong secret", nor a secret a wrong assertion: the
            // code is read, but the sentence names what was sent.
            let detail = match (kind, meaning.code) {
                (Kind::Certificate, 7000215 | 7000222) | (Kind::ClientSecret, 700027) => {
                    format!(
                        "Entra ID refuses the {} (AADSTS{code})",
                        kind.as_str().replace('_', " ")
                    )
                }
                _ => meaning.detail.to_string(),
            };
            return ProbeOutcome::new(meaning.verdict, meaning.reason, detail);
        }
    }
    let codes = if error.codes.is_empty() {
        "no AADSTS code".to_string()
    } else {
        error
            .codes
            .iter()
            .map(|c| format!("AADSTS{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    ProbeOutcome::unreachable(
        Reason::UnexpectedStatus,
        format!(
            "the token endpoint answered HTTP {status} ({}, {codes}), which the exporter does not map to a verdict",
            error
                .error
                .as_deref()
                .map(safe_code)
                .unwrap_or_else(|| "no error".into())
        ),
    )
}

/// The credential the probe holds, to find it among the app's credentials.
pub enum Held<'a> {
    /// A client secret, by its first three characters (Graph's `hint`).
    Secret { prefix: &'a str },
    /// A certificate, by its DER (Graph's `key`).
    Certificate { der: &'a [u8] },
}

/// Adds what Graph's answer about the application says of the held credential to `facts`:
/// expiry, issue time, key id, names. Graph trouble never changes the verdict (the token
/// endpoint already decided); it leaves the expiry undisclosed with a flag. Pure.
pub fn graph_facts(
    status: u16,
    body: &[u8],
    now: Timestamp,
    held: &Held<'_>,
    key_id: Option<&str>,
    facts: &mut TokenFacts,
) {
    let mut flag = |text: String| facts.flags.push(text);
    let app = match status {
        200 => match graph::parse_application(body) {
            Ok(app) => app,
            Err(what) => {
                return flag(format!(
                    "Graph's answer is not the documented application JSON ({what}); the expiry is not disclosed"
                ));
            }
        },
        403 => {
            return flag(
                "Graph refused to read the application (HTTP 403): grant the app Application.Read.All to see its credentials' expiry"
                    .into(),
            );
        }
        404 => {
            return flag(
                "Graph finds no application with this client_id (HTTP 404); the expiry is not disclosed"
                    .into(),
            );
        }
        429 => {
            return flag(
                "Graph asked to slow down (HTTP 429); the expiry is read again at the next probe"
                    .into(),
            );
        }
        _ => {
            return flag(format!(
                "Graph answered HTTP {status} when asked for the application; the expiry is not disclosed"
            ));
        }
    };
    if let Some(name) = app.display_name.as_ref().or(app.app_id.as_ref()) {
        facts.subject = Some(name.clone());
    }
    if let Some(id) = &app.id {
        facts.extra.insert("application_id".into(), id.clone());
    }
    let credential = match select(&app, held, key_id) {
        Ok(c) => c,
        Err(why) => return facts.flags.push(why),
    };
    credential_facts(credential, now, facts);
}

/// Finds the held credential among the application's. The error says why none could be
/// chosen, naming counts and the configured key id, never a hint.
pub fn select<'c>(
    app: &'c Application,
    held: &Held<'_>,
    key_id: Option<&str>,
) -> Result<&'c Credential, String> {
    let same_id = |c: &&Credential| {
        key_id.is_some_and(|id| {
            c.key_id
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case(id))
        })
    };
    match held {
        Held::Secret { prefix } => {
            let all = &app.password_credentials;
            if let Some(id) = key_id {
                let Some(c) = all.iter().find(same_id) else {
                    return Err(format!(
                        "the app has no client secret with keyId {id}; the expiry is not disclosed"
                    ));
                };
                if c.hint.as_deref().is_some_and(|h| h != *prefix) {
                    return Err(format!(
                        "the client secret with keyId {id} does not begin as this secret does (Graph's hint): key_id names another secret"
                    ));
                }
                return Ok(c);
            }
            let matching: Vec<&Credential> = all
                .iter()
                .filter(|c| c.hint.as_deref() == Some(*prefix))
                .collect();
            match matching.as_slice() {
                [one] => Ok(one),
                [] => Err(format!(
                    "none of the app's {} client secrets begins as this secret does (Graph's hint); the expiry is not disclosed",
                    all.len()
                )),
                many => Err(format!(
                    "{} of the app's client secrets begin as this secret does (Graph's hint); set key_id on the token to the keyId of this one",
                    many.len()
                )),
            }
        }
        Held::Certificate { der } => {
            let all = &app.key_credentials;
            let same_key = |c: &&Credential| {
                c.key.as_deref().is_some_and(|k| {
                    base64::engine::general_purpose::STANDARD
                        .decode(k)
                        .is_ok_and(|d| d == *der)
                })
            };
            let chosen = match key_id {
                Some(id) => match all.iter().find(same_id) {
                    // A listed certificate that is not this one: key_id names another.
                    Some(c) if c.key.is_some() && !same_key(&c) => {
                        return Err(format!(
                            "the certificate with keyId {id} is not this certificate: key_id names another"
                        ));
                    }
                    found => found,
                },
                None => all.iter().find(same_key),
            };
            chosen.ok_or_else(|| match key_id {
                Some(id) => format!(
                    "the app has no certificate with keyId {id}; the expiry is not disclosed"
                ),
                None => format!(
                    "none of the app's {} certificates is this one; the expiry is not disclosed",
                    all.len()
                ),
            })
        }
    }
}

/// The facts of one credential: issue time (`startDateTime`), expiry (`endDateTime`, or
/// none past [`FAR_FUTURE`]), key id and name.
pub fn credential_facts(c: &Credential, now: Timestamp, facts: &mut TokenFacts) {
    if let Some(id) = &c.key_id {
        facts.extra.insert("key_id".into(), id.clone());
    }
    if let Some(name) = c.display_name.as_ref().filter(|n| !n.is_empty()) {
        facts.extra.insert("credential_name".into(), name.clone());
    }
    match graph::credential_time(c.start_date_time.as_deref()) {
        Ok(start) => facts.issued_at = start,
        Err(graph::NotATime) => facts
            .flags
            .push("Graph's startDateTime is not a time; the issue time is not disclosed".into()),
    }
    match graph::credential_time(c.end_date_time.as_deref()) {
        Ok(Some(end)) if end.duration_since(now) > FAR_FUTURE => {
            facts.expiry = Expiry::Never;
            set_age_only(facts);
        }
        Ok(Some(end)) => {
            facts.expiry = Expiry::At(end);
            facts.flag_past_expiry(
                now,
                "Graph reports an endDateTime in the past for a credential Entra ID accepted",
            );
        }
        Ok(None) => facts.flags.push(
            "Graph gives no endDateTime for the credential; the expiry is not disclosed".into(),
        ),
        // An end past what a timestamp holds (9999-12-31T23:59:59Z is past jiff's last
        // instant) is as far ahead as a date can be.
        Err(graph::NotATime) if year_of(c.end_date_time.as_deref()).is_some_and(|y| y >= 2299) => {
            facts.expiry = Expiry::Never;
            set_age_only(facts);
        }
        Err(graph::NotATime) => facts.set_expiry(
            ExpiryRead::Unusable(Anomaly::ExpiryUnreadable),
            "endDateTime",
        ),
    }
}

/// The year of an ISO 8601 date-time text: its first four digits, when it starts `YYYY-`.
fn year_of(text: Option<&str>) -> Option<u32> {
    let text = text?;
    let year = text.get(..4)?;
    (year.bytes().all(|b| b.is_ascii_digit()) && text.as_bytes().get(4) == Some(&b'-'))
        .then(|| year.parse().ok())
        .flatten()
}

/// Marks a credential without an expiry as one whose age is what matters.
fn set_age_only(facts: &mut TokenFacts) {
    facts.expiry_model = ExpiryModel::AgeOnly;
}

#[cfg(test)]
mod tests;
