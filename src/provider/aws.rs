//! `aws`: checks an IAM access key pair with STS `GetCallerIdentity`, signed here with
//! Signature Version 4 ([`sigv4`]), and, for a long-term key, reads its creation date and
//! last use from IAM (`ListAccessKeys`, `GetAccessKeyLastUsed`, signed with the same key)
//! when the key's policies allow it. Network I/O in `probe`; [`parse`] and the [`iam`]
//! readers are pure.
//!
//! The probe only reads: it never calls `CreateAccessKey`, `UpdateAccessKey`,
//! `DeleteAccessKey` nor any STS call that mints credentials (`GetSessionToken`,
//! `AssumeRole`).

pub mod iam;
pub mod sigv4;
pub mod xml;

use std::sync::Arc;

use jiff::Timestamp;
use reqwest::header::HeaderMap;

use super::http::{self, common_status};
use super::{BoxFuture, BuildContext, LimitKey, Provider, ProviderKind, refuse_params};
use crate::model::{Expiry, ExpiryModel, ProbeOutcome, Reason, TokenFacts, Verdict};
use crate::schema::TokenSpec;
use crate::secret::Secret;

/// STS's global endpoint, signed for `us-east-1`.
pub const DEFAULT_URL: &str = "https://sts.amazonaws.com";

/// The region the global STS endpoint is signed for.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The STS API version the probe speaks.
pub const STS_VERSION: &str = "2011-06-15";

#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// STS's address (a path prefix is kept); the probe POSTs to `{url}/`. Defaults to the
    /// regional endpoint of `region` when one is set, else [`DEFAULT_URL`].
    pub url: Option<String>,
    /// The region STS requests are signed for (and whose endpoint is the default `url`).
    pub region: Option<String>,
    /// IAM's address; defaults to the partition's IAM endpoint (see [`iam::endpoint`]).
    pub iam_url: Option<String>,
    /// Read a long-term key's age and last use from IAM (on unless `false`).
    pub iam: Option<bool>,
    pub max_concurrency: Option<usize>,
}

impl Config {
    fn region(&self) -> &str {
        self.region.as_deref().unwrap_or(DEFAULT_REGION)
    }

    fn sts_url(&self) -> String {
        match (&self.url, &self.region) {
            (Some(url), _) => url.clone(),
            (None, Some(region)) => format!("https://sts.{region}.{}", dns_suffix(region)),
            (None, None) => DEFAULT_URL.to_string(),
        }
    }

    /// The IAM endpoint requests are signed for (the probe's reads, `aws_rotate`'s writes).
    pub fn iam_endpoint(&self) -> Result<Endpoint, String> {
        Endpoint::new(&self.iam_url(), iam::endpoint(self.region()).1, "iam")
    }

    fn iam_url(&self) -> String {
        self.iam_url
            .clone()
            .unwrap_or_else(|| iam::endpoint(self.region()).0.to_string())
    }
}

/// The DNS suffix of a region's partition: China's regions are under `amazonaws.com.cn`.
fn dns_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    }
}

/// A region name as AWS writes them (`us-east-1`, `eu-central-2`, `us-gov-west-1`): it
/// becomes part of a host name and of the signature's scope.
fn is_region(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// An access key ID as IAM documents it: 16 to 128 word characters (`AKIA...` for a
/// long-term key, `ASIA...` for temporary credentials).
pub fn is_access_key_id(s: &str) -> bool {
    (16..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl ProviderKind for Config {
    fn kind(&self) -> &'static str {
        "aws"
    }

    fn validate(&self) -> Result<(), String> {
        if let Some(region) = &self.region
            && !is_region(region)
        {
            return Err("region must be an AWS region name like us-east-1".into());
        }
        http::check_base_url("url", &self.sts_url())?;
        http::check_base_url("iam_url", &self.iam_url())?;
        if self.iam == Some(false) && self.iam_url.is_some() {
            return Err("iam_url is set but iam is false: IAM is never asked".into());
        }
        Ok(())
    }

    fn check_token(&self, token: &TokenSpec) -> Result<(), String> {
        if token.secret.is_none() {
            return Err(
                "secret is required for an aws provider: the secret access key ({env: NAME}, {file: PATH} or {exec: [COMMAND, ARG...]})"
                    .into(),
            );
        }
        refuse_params(
            token,
            self.kind(),
            &["access_key_id", "access_key_id_file", "session_token"],
        )?;
        match (
            token.params.access_key_id.as_deref(),
            token.params.access_key_id_file.as_deref(),
        ) {
            (Some(_), Some(_)) => Err(
                "give access_key_id or access_key_id_file, not both".into(),
            ),
            (None, Some(path)) if path.trim().is_empty() => {
                Err("access_key_id_file is empty: give the path of the file holding the key's ID".into())
            }
            (None, Some(_)) => Ok(()),
            (None, None) => Err(
                "access_key_id (or access_key_id_file) is required for an aws provider (the key's ID, AKIA...; the secret is its secret access key)"
                    .into(),
            ),
            (Some(id), None) if !is_access_key_id(id) => Err(
                "access_key_id must be an access key ID: 16 to 128 letters and digits (AKIA...)"
                    .into(),
            ),
            (Some(_), None) => Ok(()),
        }
    }

    fn max_concurrency(&self) -> Option<usize> {
        self.max_concurrency
    }

    fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Provider>, String> {
        let sts = Endpoint::new(&self.sts_url(), self.region(), "sts")?;
        let iam = match self.iam {
            Some(false) => None,
            _ => Some(self.iam_endpoint()?),
        };
        Ok(Arc::new(Aws {
            sts,
            iam,
            http: ctx.http.clone(),
        }))
    }
}

/// A server the probe signs requests for: where it POSTs, and what the signature covers.
#[derive(Debug)]
pub struct Endpoint {
    /// `{url}/`: the configured address with one slash appended.
    pub url: String,
    /// The `Host` header as the client sends it: host, and port when not the scheme's.
    pub host: String,
    /// The path as sent.
    pub path: String,
    pub region: String,
    pub service: &'static str,
}

impl Endpoint {
    pub fn new(base: &str, region: &str, service: &'static str) -> Result<Endpoint, String> {
        let url = http::join(base, "/");
        let parsed = url::Url::parse(&url).map_err(|e| format!("invalid URL: {e}"))?;
        let host = parsed.host_str().ok_or("the URL has no host")?;
        let host = match parsed.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        Ok(Endpoint {
            path: parsed.path().to_string(),
            url: parsed.to_string(),
            host,
            region: region.to_string(),
            service,
        })
    }
}

struct Aws {
    sts: Endpoint,
    iam: Option<Endpoint>,
    http: http::Client,
}

/// What the secret is: a long-term key, or temporary credentials with a session token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    AccessKey,
    Session,
}

/// The credentials of one probe.
pub struct Keys<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
}

/// Sends one signed Query-protocol call (form-encoded POST) to `endpoint`.
pub async fn signed_post(
    client: &http::Client,
    endpoint: &Endpoint,
    keys: &Keys<'_>,
    params: &[(&str, &str)],
    now: Timestamp,
) -> Result<http::Response, ProbeOutcome> {
    // The body is encoded here and by `form` below with the same function, so the bytes
    // signed are the bytes sent.
    let body = serde_urlencoded::to_string(params)
        .map_err(|_| ProbeOutcome::unreachable(Reason::Connect, "the request cannot be encoded"))?;
    let amz_date = sigv4::amz_date(now);
    let mut signed: Vec<(&str, &str)> = vec![("host", &endpoint.host), ("x-amz-date", &amz_date)];
    if let Some(token) = keys.session_token {
        signed.push(("x-amz-security-token", token));
    }
    let authorization = sigv4::authorization(
        &sigv4::Credentials {
            access_key_id: keys.access_key_id,
            secret_access_key: keys.secret_access_key,
        },
        sigv4::Scope {
            region: &endpoint.region,
            service: endpoint.service,
        },
        &sigv4::Request {
            method: "POST",
            path: &endpoint.path,
            query: "",
            headers: &signed,
            body: body.as_bytes(),
        },
        &amz_date,
    );
    let mut request = client
        .post(&endpoint.url)
        .header("x-amz-date", amz_date.as_str())
        .header(reqwest::header::AUTHORIZATION, authorization)
        .form(params);
    if let Some(token) = keys.session_token {
        request = request.sensitive_header("x-amz-security-token", token.to_string());
    }
    http::send(request).await
}

impl Provider for Aws {
    fn probe<'a>(
        &'a self,
        token: &'a TokenSpec,
        secret: &'a Secret,
        now: Timestamp,
    ) -> BoxFuture<'a, ProbeOutcome> {
        Box::pin(async move {
            let access_key_id = match access_key_id(token).await {
                Ok(id) => id,
                Err(e) => return ProbeOutcome::misconfigured(Reason::SecretUnavailable, e),
            };
            let access_key_id = access_key_id.as_str();
            let session = match &token.params.session_token {
                Some(source) => match source.read().await {
                    Ok(s) => Some(s),
                    Err(e) => {
                        return ProbeOutcome::misconfigured(
                            Reason::SecretUnavailable,
                            format!("the session token cannot be read: {e}"),
                        );
                    }
                },
                None => None,
            };
            let keys = Keys {
                access_key_id,
                secret_access_key: secret.expose(),
                session_token: session.as_ref().map(Secret::expose),
            };
            let held = if session.is_some() {
                Held::Session
            } else {
                Held::AccessKey
            };
            let params = [("Action", "GetCallerIdentity"), ("Version", STS_VERSION)];
            let mut outcome = match signed_post(&self.http, &self.sts, &keys, &params, now).await {
                Ok(resp) => parse_as(resp.status, &resp.headers, &resp.body, now, held),
                Err(outcome) => outcome,
            };
            outcome
                .facts
                .extra
                .insert("access_key_id".into(), access_key_id.to_string());
            if outcome.verdict == Verdict::Valid
                && held == Held::AccessKey
                && let Some(endpoint) = &self.iam
            {
                iam::read(&self.http, endpoint, &keys, now, &mut outcome.facts).await;
            }
            if let Some(session) = &session {
                outcome.redact(session.expose());
            }
            outcome
        })
    }

    /// STS and IAM count their request quotas per account: keys of the same account pause
    /// together once an answer named the account; before that a key pauses alone.
    fn rate_limit_key(&self, known: &TokenFacts) -> LimitKey {
        match known.extra.get("account") {
            Some(account) => LimitKey::Identity(account.clone()),
            None => LimitKey::Token,
        }
    }
}

/// The token's access key ID: as configured, or read from `access_key_id_file` (trimmed),
/// which a rotation rewrites; the file is read at each probe so a new key is followed.
pub async fn access_key_id(token: &TokenSpec) -> Result<String, String> {
    if let Some(id) = &token.params.access_key_id {
        return Ok(id.clone());
    }
    let Some(path) = token.params.access_key_id_file.clone() else {
        return Err("the token has no access_key_id".into());
    };
    let read = tokio::task::spawn_blocking(move || std::fs::read_to_string(&path))
        .await
        .map_err(|_| "the access_key_id_file cannot be read".to_string())?;
    let text = read.map_err(|e| format!("the access_key_id_file cannot be read: {}", e.kind()))?;
    let id = text.trim();
    if !is_access_key_id(id) {
        return Err(
            "the access_key_id_file does not hold an access key ID (16 to 128 letters and digits, AKIA...)"
                .into(),
        );
    }
    Ok(id.to_string())
}

/// Turns a `GetCallerIdentity` answer for a long-term access key into an outcome. Pure.
pub fn parse(status: u16, headers: &HeaderMap, body: &[u8], now: Timestamp) -> ProbeOutcome {
    parse_as(status, headers, body, now, Held::AccessKey)
}

/// [`parse`] for either kind of credential.
pub fn parse_as(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
    held: Held,
) -> ProbeOutcome {
    match status {
        200 => match identity(body, held) {
            Ok(facts) => ProbeOutcome::valid(facts),
            Err(what) => ProbeOutcome::bad_response(what),
        },
        400..=428 | 430..=499 => match error_of(body) {
            Some(error) => refused(status, &error, headers, now),
            None => ProbeOutcome::unreachable(
                Reason::UnexpectedStatus,
                format!("STS answered HTTP {status} without AWS's error XML"),
            ),
        },
        _ => common_status(status, headers, now).with_retry_after(http::retry_after(headers, now)),
    }
}

/// The facts of a `GetCallerIdentityResponse`.
fn identity(body: &[u8], held: Held) -> Result<TokenFacts, &'static str> {
    let doc = xml::parse(body)?;
    if doc.name != "GetCallerIdentityResponse" {
        return Err("the answer is not a GetCallerIdentityResponse");
    }
    let result = doc
        .child("GetCallerIdentityResult")
        .ok_or("no GetCallerIdentityResult")?;
    let arn = result.text_at(&["Arn"]).ok_or("no Arn")?;
    let account = result.text_at(&["Account"]).ok_or("no Account")?;
    let mut facts = TokenFacts {
        subject: Some(arn.to_string()),
        token_type: Some(
            match held {
                Held::AccessKey => "access_key",
                Held::Session => "session",
            }
            .into(),
        ),
        ..TokenFacts::default()
    };
    facts.extra.insert("account".into(), account.to_string());
    if let Some(user_id) = result.text_at(&["UserId"]) {
        facts.extra.insert("user_id".into(), user_id.to_string());
    }
    if let Some(kind) = principal_type(arn) {
        facts.extra.insert("principal_type".into(), kind.into());
        if kind == "root" {
            facts.flags.push(
                "the key is the account root user's: AWS advises against root access keys".into(),
            );
        }
    }
    match held {
        // Long-term keys have no expiry; their age is what a policy can judge.
        Held::AccessKey => {
            facts.expiry = Expiry::Never;
            facts.expiry_model = ExpiryModel::AgeOnly;
        }
        // Temporary credentials expire, but GetCallerIdentity does not say when.
        Held::Session => facts.expiry = Expiry::Undisclosed,
    }
    Ok(facts)
}

/// The kind of principal an ARN names: `user`, `assumed-role`, `federated-user`, `root`.
fn principal_type(arn: &str) -> Option<&'static str> {
    let resource = arn.splitn(6, ':').nth(5)?;
    Some(if resource == "root" {
        "root"
    } else if resource.starts_with("user/") {
        "user"
    } else if resource.starts_with("assumed-role/") {
        "assumed-role"
    } else if resource.starts_with("federated-user/") {
        "federated-user"
    } else {
        return None;
    })
}

/// An AWS error answer: its code, and whether its message is the clock-skew one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsError {
    pub code: String,
    pub signature_expired: bool,
}

/// Reads the Query protocol's error XML: `<ErrorResponse><Error><Code>`, as STS and IAM
/// document it, or with the `<Errors>` list between (as AWS's SDKs also read it, and moto
/// answers). `None` when the body is not that XML.
pub fn error_of(body: &[u8]) -> Option<AwsError> {
    let doc = xml::parse(body).ok()?;
    let error = match doc.name.as_str() {
        "ErrorResponse" | "Response" => doc
            .child("Error")
            .or_else(|| doc.at(&["Errors", "Error"]))?,
        "Error" => &doc,
        _ => return None,
    };
    let code = error.text_at(&["Code"])?;
    let message = error.text_at(&["Message"]).unwrap_or_default();
    Some(AwsError {
        code: code.to_string(),
        // AWS's own sentence when the request's time is too far from AWS's clock.
        signature_expired: message.starts_with("Signature expired"),
    })
}

/// The outcome of a 4xx STS answer with AWS's error XML.
fn refused(status: u16, error: &AwsError, headers: &HeaderMap, now: Timestamp) -> ProbeOutcome {
    match error.code.as_str() {
        "InvalidClientTokenId" => ProbeOutcome::invalid(
            Reason::UnknownToken,
            "AWS does not accept the access key ID (InvalidClientTokenId): the key was deleted, made inactive or never existed, or the session token is not valid",
        ),
        "SignatureDoesNotMatch" if error.signature_expired => clock_skew("SignatureDoesNotMatch"),
        "SignatureDoesNotMatch" => ProbeOutcome::invalid(
            Reason::BadSignature,
            "AWS knows the access key ID, but the secret access key does not match it (SignatureDoesNotMatch): the secret is wrong or belongs to another key",
        ),
        "ExpiredToken" | "ExpiredTokenException" => ProbeOutcome::invalid(
            Reason::Expired,
            format!("AWS says the session token has expired ({})", error.code),
        ),
        "RequestExpired" => clock_skew("RequestExpired"),
        "Throttling" | "ThrottlingException" | "RequestLimitExceeded" => {
            ProbeOutcome::rate_limited(
                http::retry_after(headers, now),
                format!("STS asked to slow down ({})", error.code),
            )
        }
        "AccessDenied" | "AccessDeniedException" | "NotAuthorized" => ProbeOutcome::new(
            Verdict::Forbidden,
            Reason::InsufficientScope,
            format!(
                "the key authenticated, but STS refused GetCallerIdentity ({})",
                error.code
            ),
        ),
        "RegionDisabledException" => ProbeOutcome::misconfigured(
            Reason::UnexpectedStatus,
            "STS is not activated in this region for the key's account (RegionDisabledException): set region to one it is activated in",
        ),
        "InternalFailure" | "InternalError" | "ServiceUnavailable" => ProbeOutcome::unreachable(
            Reason::Http5xx,
            format!("STS reported a failure on its side ({})", error.code),
        ),
        code => ProbeOutcome::unreachable(
            Reason::UnexpectedStatus,
            format!(
                "STS answered HTTP {status} ({}), which the exporter does not map to a verdict",
                safe_code(code)
            ),
        ),
    }
}

/// The outcome when AWS says the request's time is off: the exporter's clock, not the key.
fn clock_skew(code: &str) -> ProbeOutcome {
    ProbeOutcome::misconfigured(
        Reason::UnexpectedStatus,
        format!(
            "AWS refused the request's time ({code}): the exporter's clock is too far from AWS's"
        ),
    )
}

/// Names an error code only when AWS documents it for STS or IAM (see [`DOCUMENTED_CODES`]).
pub fn safe_code(code: &str) -> String {
    if DOCUMENTED_CODES.contains(&code) {
        code.to_string()
    } else {
        "an unrecognised error code".to_string()
    }
}

/// The error codes AWS documents as common to its Query APIs, and those STS and IAM document
/// for the calls the probe makes. Only these are named in a detail or a flag.
pub const DOCUMENTED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "ExpiredToken",
    "ExpiredTokenException",
    "IncompleteSignature",
    "InternalFailure",
    "InternalError",
    "InvalidAction",
    "InvalidClientTokenId",
    "InvalidParameterCombination",
    "InvalidParameterValue",
    "InvalidQueryParameter",
    "MalformedQueryString",
    "MissingAction",
    "MissingAuthenticationToken",
    "MissingParameter",
    "NoSuchEntity",
    "NotAuthorized",
    "OptInRequired",
    "RegionDisabledException",
    "RequestExpired",
    "RequestLimitExceeded",
    "ServiceFailure",
    "ServiceUnavailable",
    "SignatureDoesNotMatch",
    "Throttling",
    "ThrottlingException",
    "ValidationError",
];

#[cfg(test)]
mod tests;
