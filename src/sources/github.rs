//! `kind: github`: an organization's fine-grained personal access tokens, listed through a
//! GitHub App (docs.github.com/rest/orgs/personal-access-tokens: only an app's installation
//! token may call it, with the organization permission "Personal access tokens: read").
//!
//! 1. The app JWT: RS256, signed with the app's private key (the source's `credential`),
//!    `iss` the app's client ID or app ID, `iat` 60 s in the past (GitHub's advice against
//!    clock drift), `exp` 9 minutes ahead (GitHub refuses more than 10).
//! 2. `GET /orgs/{org}/installation` with the JWT, when `installation_id` is not set.
//! 3. `POST /app/installations/{id}/access_tokens` with the JWT: the installation token,
//!    narrowed to the read permissions the listing needs. The one write-shaped call a
//!    source makes; it creates a one-hour token and changes nothing in the organization.
//!    The token is kept (in memory, wiped when dropped) and reused until 5 minutes before
//!    its `expires_at`.
//! 4. `GET /orgs/{org}/personal-access-tokens?per_page=100`, following the `Link` header's
//!    `rel="next"` (same origin only, at most [`MAX_PAGES`] pages).
//! 5. With `credential_authorizations`, `GET /orgs/{org}/credential-authorizations`
//!    (GitHub Enterprise Cloud with SAML SSO): the classic PATs authorized for the org.
//!
//! No token secret is read: each token enters with the expiry GitHub states under the
//! source's `static` provider entry. Expired tokens, and credential authorizations that are
//! not personal access tokens (SSH keys, OAuth app tokens), are skipped.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use rustls::SignatureScheme;
use rustls::crypto::aws_lc_rs::sign::RsaSigningKey;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::sign::SigningKey;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{Discovered, FailReason, Identity, ListError, Listing};
use crate::config::sources::GithubSource;
use crate::provider::BuildContext;
use crate::provider::github::API_VERSION;
use crate::provider::http;

/// The most pages read of one list (100 items each): past it the listing fails rather than
/// enter part of a list.
pub const MAX_PAGES: u32 = 500;

/// How long before its `expires_at` a kept installation token is replaced.
const TOKEN_MARGIN_SECONDS: i64 = 300;

/// The app JWT's life: GitHub refuses an `exp` more than 10 minutes ahead.
const JWT_LIFETIME_SECONDS: i64 = 540;

/// One fine-grained token as `GET /orgs/{org}/personal-access-tokens` lists it.
#[derive(Deserialize)]
struct Grant {
    id: u64,
    owner: Owner,
    #[serde(default)]
    token_name: Option<String>,
    #[serde(default)]
    token_expired: bool,
    #[serde(default)]
    token_expires_at: Option<String>,
    #[serde(default)]
    token_last_used_at: Option<String>,
}

#[derive(Deserialize)]
struct Owner {
    login: String,
}

/// One SAML SSO credential authorization (GitHub Enterprise Cloud).
#[derive(Deserialize)]
struct Authorization {
    login: String,
    credential_id: u64,
    credential_type: String,
    #[serde(default)]
    authorized_credential_note: Option<String>,
    #[serde(default)]
    authorized_credential_expires_at: Option<String>,
    #[serde(default)]
    credential_accessed_at: Option<String>,
}

#[derive(Deserialize)]
struct InstallationToken {
    token: String,
    expires_at: String,
}

#[derive(Deserialize)]
struct Installation {
    id: u64,
}

/// Installation tokens kept between listings, by a hash of what minted them (server, app,
/// org, installation, key): a listing every few minutes does not mint a token each time.
static TOKENS: LazyLock<Mutex<HashMap<[u8; 32], Kept>>> = LazyLock::new(Default::default);

struct Kept {
    token: Zeroizing<String>,
    expires_at: Timestamp,
}

struct Ctx<'a> {
    base: String,
    timeout: Duration,
    http: &'a http::Client,
}

/// Lists the organization's tokens.
pub async fn list(
    gh: &GithubSource,
    timeout: Duration,
    ctx: &BuildContext,
) -> Result<Listing, ListError> {
    let c = Ctx {
        base: gh.url.clone(),
        timeout,
        http: &ctx.http,
    };
    let pem = gh.credential.read().await.map_err(|e| {
        ListError::new(
            FailReason::Misconfigured,
            format!("the GitHub App's private key cannot be read: {e}"),
        )
    })?;
    let pem = Zeroizing::new(pem.expose().to_string());
    let key = signing_key(&pem).map_err(|e| ListError::new(FailReason::Misconfigured, e))?;
    let cache_key: [u8; 32] = Sha256::new()
        .chain_update(format!(
            "{}\n{}\n{}\n{:?}\n",
            gh.url, gh.app_id, gh.org, gh.installation_id
        ))
        .chain_update(pem.as_bytes())
        .finalize()
        .into();
    let token = installation_token(&c, gh, &key, cache_key).await?;
    let result = read_lists(&c, gh, &token).await;
    if matches!(&result, Err(e) if e.reason == FailReason::Unauthorized) {
        // A kept token GitHub no longer accepts (revoked): mint a new one next time.
        forget(&cache_key);
    }
    result
}

async fn read_lists(
    c: &Ctx<'_>,
    gh: &GithubSource,
    token: &Zeroizing<String>,
) -> Result<Listing, ListError> {
    let mut listing = Listing::default();
    let path = format!("/orgs/{}/personal-access-tokens?per_page=100", gh.org);
    for g in pages::<Grant>(c, &path, token).await? {
        if g.token_expired {
            listing.skip("inactive");
            continue;
        }
        let name = g.token_name.unwrap_or_default();
        listing.tokens.push(Discovered {
            name: format!("{}/{}-{}", g.owner.login, name, g.id),
            provider: gh.provider.clone(),
            secret: None,
            accessor: None,
            owner: Some(g.owner.login),
            state: Some("active".into()),
            identity: Identity::Listed(format!("github:{}:{}:pat:{}", gh.url, gh.org, g.id)),
            expires_at: g.token_expires_at,
            issued_at: None,
            last_used_at: super::page::date(g.token_last_used_at, "a token's token_last_used_at")?,
            sliding_window_seconds: None,
        });
    }
    if gh.credential_authorizations {
        let path = format!("/orgs/{}/credential-authorizations?per_page=100", gh.org);
        let now = Timestamp::now();
        for a in pages::<Authorization>(c, &path, token).await? {
            if !a
                .credential_type
                .eq_ignore_ascii_case("personal access token")
            {
                listing.skip("not_a_token");
                continue;
            }
            let expires = a.authorized_credential_expires_at;
            if expires
                .as_deref()
                .and_then(|e| e.parse::<Timestamp>().ok())
                .is_some_and(|e| e <= now)
            {
                listing.skip("inactive");
                continue;
            }
            let note = a
                .authorized_credential_note
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| "classic".into());
            listing.tokens.push(Discovered {
                name: format!("{}/{}-{}", a.login, note, a.credential_id),
                provider: gh.provider.clone(),
                secret: None,
                accessor: None,
                owner: Some(a.login),
                state: Some("active".into()),
                identity: Identity::Listed(format!(
                    "github:{}:{}:credential:{}",
                    gh.url, gh.org, a.credential_id
                )),
                expires_at: expires,
                issued_at: None,
                last_used_at: super::page::date(
                    a.credential_accessed_at,
                    "an authorization's credential_accessed_at",
                )?,
                sliding_window_seconds: None,
            });
        }
    }
    listing.tokens.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(listing)
}

fn forget(key: &[u8; 32]) {
    if let Ok(mut kept) = TOKENS.lock() {
        kept.remove(key);
    }
}

/// The kept installation token, or a new one.
async fn installation_token(
    c: &Ctx<'_>,
    gh: &GithubSource,
    key: &RsaSigningKey,
    cache_key: [u8; 32],
) -> Result<Zeroizing<String>, ListError> {
    let now = Timestamp::now();
    if let Ok(kept) = TOKENS.lock()
        && let Some(k) = kept.get(&cache_key)
        && k.expires_at.as_second() - now.as_second() > TOKEN_MARGIN_SECONDS
    {
        return Ok(k.token.clone());
    }
    let jwt = Zeroizing::new(
        app_jwt(key, &gh.app_id, now).map_err(|e| ListError::new(FailReason::Misconfigured, e))?,
    );
    let id = match gh.installation_id {
        Some(id) => id,
        None => {
            let url = format!("{}/orgs/{}/installation", c.base, gh.org);
            let resp = send(c, c.http.get(url), &jwt, "the installation lookup").await?;
            let i: Installation = parse(&resp, 200, "the installation lookup")?;
            i.id
        }
    };
    let mut permissions = serde_json::json!({"organization_personal_access_tokens": "read"});
    if gh.credential_authorizations {
        permissions["organization_administration"] = "read".into();
    }
    let url = format!("{}/app/installations/{id}/access_tokens", c.base);
    let request = c
        .http
        .post(url)
        .json(&serde_json::json!({ "permissions": permissions }));
    let resp = send(c, request, &jwt, "the installation token request").await?;
    let minted: InstallationToken = parse(&resp, 201, "the installation token request")?;
    let token = Zeroizing::new(minted.token);
    let expires_at = minted.expires_at.parse::<Timestamp>().map_err(|_| {
        ListError::new(
            FailReason::BadResponse,
            "the installation token's expires_at is not a timestamp",
        )
    })?;
    if let Ok(mut kept) = TOKENS.lock() {
        kept.retain(|_, k| k.expires_at > now);
        kept.insert(
            cache_key,
            Kept {
                token: token.clone(),
                expires_at,
            },
        );
    }
    Ok(token)
}

/// Reads the app's private key (PKCS#1 `BEGIN RSA PRIVATE KEY`, as GitHub hands it out, or
/// PKCS#8). Signed by rustls' aws-lc-rs provider, the constant-time RSA the TLS stack
/// already carries. The error never quotes the text.
pub fn signing_key(pem: &str) -> Result<RsaSigningKey, &'static str> {
    let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(
        |_| "the GitHub App's private key is not a PEM private key (BEGIN RSA PRIVATE KEY)",
    )?;
    RsaSigningKey::new(&der).map_err(|_| "the GitHub App's private key is not an RSA key")
}

/// The app JWT (RS256) for `app_id` at `now`. Pure but for the signature.
pub fn app_jwt(key: &RsaSigningKey, app_id: &str, now: Timestamp) -> Result<String, &'static str> {
    let at = now.as_second();
    // A numeric app ID goes as a number, a client ID as a string, as GitHub's examples do.
    let iss = match app_id.parse::<u64>() {
        Ok(n) => serde_json::json!(n),
        Err(_) => serde_json::json!(app_id),
    };
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    let claims = serde_json::json!({"iat": at - 60, "exp": at + JWT_LIFETIME_SECONDS, "iss": iss});
    let mut jwt = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signer = key
        .choose_scheme(&[SignatureScheme::RSA_PKCS1_SHA256])
        .ok_or("the GitHub App's key cannot sign RS256")?;
    let signature = signer
        .sign(jwt.as_bytes())
        .map_err(|_| "signing the GitHub App JWT failed")?;
    jwt.push('.');
    jwt.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok(jwt)
}

/// Sends one call with `bearer` and GitHub's media type and API version, under the
/// timeout; any answer but a success becomes the listing's failure.
async fn send(
    c: &Ctx<'_>,
    request: http::RequestBuilder,
    bearer: &str,
    what: &str,
) -> Result<http::Response, ListError> {
    let request = request
        .bearer_auth(bearer)
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", API_VERSION);
    let resp = match tokio::time::timeout(c.timeout, http::send(request)).await {
        Ok(Ok(r)) => r,
        Ok(Err(outcome)) => return Err(ListError::new(FailReason::Unreachable, outcome.detail)),
        Err(_) => {
            return Err(ListError::new(
                FailReason::Unreachable,
                format!(
                    "{what}: no answer within {}",
                    humantime::format_duration(c.timeout)
                ),
            ));
        }
    };
    match failure(resp.status, &resp.headers, &resp.body) {
        None => Ok(resp),
        Some(reason) => {
            let hint = match (reason, resp.status) {
                (FailReason::Unauthorized, _) => {
                    ": GitHub refused the app's credentials (app_id, private key, clock)"
                }
                (FailReason::Forbidden | FailReason::Misconfigured, _) => {
                    ": the app needs the organization permission Personal access tokens: read \
                     (and Administration: read for credential_authorizations), installed on the org"
                }
                _ => "",
            };
            Err(ListError::new(
                reason,
                format!("{what}: HTTP {}{hint}", resp.status),
            ))
        }
    }
}

/// Why an answer is not a success (`None` for 200 and 201). GitHub signals its rate limits
/// with 403 or 429: `x-ratelimit-remaining: 0`, a `retry-after`, or a secondary-limit message.
pub fn failure(status: u16, headers: &::http::HeaderMap, body: &[u8]) -> Option<FailReason> {
    match status {
        200 | 201 => None,
        403 | 429 => {
            let secondary = String::from_utf8_lossy(body)
                .to_ascii_lowercase()
                .contains("secondary rate limit");
            let limited = status == 429
                || http::header(headers, "x-ratelimit-remaining") == Some("0")
                || http::header(headers, "retry-after").is_some()
                || secondary;
            Some(if limited {
                FailReason::RateLimited
            } else {
                FailReason::Forbidden
            })
        }
        // The organization, or the app's installation on it, is not there (a setting).
        404 | 422 => Some(FailReason::Misconfigured),
        other => Some(FailReason::of_status(other)),
    }
}

/// The documented JSON of a success.
fn parse<T: for<'de> Deserialize<'de>>(
    resp: &http::Response,
    status: u16,
    what: &str,
) -> Result<T, ListError> {
    if resp.status != status {
        return Err(ListError::new(
            FailReason::BadResponse,
            format!(
                "{what}: HTTP {} where GitHub documents {status}",
                resp.status
            ),
        ));
    }
    serde_json::from_slice(&resp.body).map_err(|_| {
        ListError::new(
            FailReason::BadResponse,
            format!("{what}: the answer is not the JSON GitHub documents"),
        )
    })
}

/// Every page of one list, following `Link: <...>; rel="next"` on the same origin.
async fn pages<T: for<'de> Deserialize<'de>>(
    c: &Ctx<'_>,
    path: &str,
    token: &str,
) -> Result<Vec<T>, ListError> {
    let origin = origin_of(&c.base);
    let mut out = Vec::new();
    let mut url = format!("{}{path}", c.base);
    for page in 1..=MAX_PAGES {
        let what = format!("page {page} of {}", path.split('?').next().unwrap_or(path));
        let resp = send(c, c.http.get(url.as_str()), token, &what).await?;
        let items: Vec<T> = parse(&resp, 200, &what)?;
        out.extend(items);
        match next_link(http::header(&resp.headers, "link")) {
            None => return Ok(out),
            Some(next) if origin.is_some() && origin_of(&next) == origin => url = next,
            Some(_) => {
                return Err(ListError::new(
                    FailReason::BadResponse,
                    format!("{what}: the next page's link leaves the server"),
                ));
            }
        }
    }
    Err(ListError::new(
        FailReason::BadResponse,
        format!("a list is longer than {MAX_PAGES} pages"),
    ))
}

/// Scheme, host and port of a URL.
fn origin_of(url: &str) -> Option<(String, String, Option<u16>)> {
    let u = url::Url::parse(url).ok()?;
    Some((
        u.scheme().to_string(),
        u.host_str()?.to_string(),
        u.port_or_known_default(),
    ))
}

/// The `rel="next"` target of a `Link` header (RFC 8288), if there is one.
pub fn next_link(link: Option<&str>) -> Option<String> {
    link?.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .any(|(k, v)| {
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_matches('"')
                        .split_ascii_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("next"))
            })
            .then(|| target.to_string())
    })
}

#[cfg(test)]
mod tests;
