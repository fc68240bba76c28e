//! `jwt`: reads a JWT's claims locally; with a JWKS (configured, or found by issuer discovery)
//! it verifies the signature with pinned algorithms and cached keys. Network I/O only to fetch
//! keys; `evaluate` and `split` are pure.
//!
//! Without a key nothing proves the claims, so such a token is `unverified`, never `valid`.
//! `alg: none` and symmetric algorithms are refused whenever keys are configured.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use jiff::Timestamp;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::http::{self, common_status};
use super::oauth2::facts_from_claims;
use super::{
    BoxFuture, BuildContext, Provider, ProviderKind, Renamed, refuse_params, renamed_setting,
    require_secret,
};
use crate::model::parse_duration;
use crate::model::{Expiry, ProbeOutcome, Reason, Verdict, read_numeric_date};
use crate::schema::TokenSpec;
use crate::secret::Secret;

/// Algorithms accepted by default with a JWKS: asymmetric only. HMAC keys are shared
/// secrets and never appear in a public JWKS; `none` is never accepted.
pub const DEFAULT_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// A refetch triggered by an unknown `kid` happens at most this often, so a flood of
/// forged tokens cannot turn the exporter into a load generator against the JWKS host.
const UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(300);

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the signing keys are, named as RFC 8414 metadata names it. Without it (and
    /// without `issuer`) claims are unverified.
    pub jwks_uri: Option<String>,
    /// The old name of `jwks_uri`, kept with the same meaning.
    pub jwks_url: Option<String>,
    /// Issuer whose discovery document names `jwks_uri`.
    pub issuer: Option<String>,
    /// Accepted signature algorithms (pinned). Defaults to the asymmetric ones.
    pub algorithms: Option<Vec<String>>,
    /// How long fetched keys are kept before a refresh.
    pub jwks_cache: Option<String>,
    /// Clock skew allowed on `nbf`.
    pub leeway: Option<String>,
    pub max_concurrency: Option<usize>,
}

impl Config {
    /// The JWKS address under either name (`validate` refuses both at once).
    fn jwks(&self) -> Option<&String> {
        self.jwks_uri.as_ref().or(self.jwks_url.as_ref())
    }
}

impl ProviderKind for Config {
    fn kind(&self) -> &'static str {
        "jwt"
    }

    fn validate(&self) -> Result<(), String> {
        let jwks = renamed_setting(
            ("jwks_uri", self.jwks_uri.as_ref()),
            ("jwks_url", self.jwks_url.as_ref()),
        )?;
        if let Some((name, url)) = jwks {
            if self.issuer.is_some() {
                return Err(format!("give {name} or issuer, not both"));
            }
            http::check_base_url(name, url)?;
        }
        if let Some(issuer) = &self.issuer {
            http::check_base_url("issuer", issuer)?;
        }
        if let Some(algs) = &self.algorithms {
            if jwks.is_none() && self.issuer.is_none() {
                return Err(
                    "algorithms needs jwks_uri or issuer: without keys nothing is verified".into(),
                );
            }
            if algs.is_empty() {
                return Err("algorithms must not be empty".into());
            }
            for a in algs {
                if !DEFAULT_ALGORITHMS.contains(&a.as_str()) {
                    return Err(format!(
                        "algorithm \"{a}\" is not accepted (one of {})",
                        DEFAULT_ALGORITHMS.join(", ")
                    ));
                }
            }
        }
        for (field, value) in [("jwks_cache", &self.jwks_cache), ("leeway", &self.leeway)] {
            if let Some(v) = value {
                parse_duration(v).map_err(|e| format!("{field}: {e}"))?;
            }
        }
        Ok(())
    }

    fn check_token(&self, token: &TokenSpec) -> Result<(), String> {
        require_secret(token, self.kind())?;
        refuse_params(token, self.kind(), &["audiences"])
    }

    fn max_concurrency(&self) -> Option<usize> {
        self.max_concurrency
    }

    fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Provider>, String> {
        let algorithms = self
            .algorithms
            .clone()
            .unwrap_or_else(|| DEFAULT_ALGORITHMS.iter().map(|s| s.to_string()).collect());
        let algorithms = algorithms
            .iter()
            .map(|a| {
                a.parse::<Algorithm>()
                    .map_err(|e| format!("algorithm {a}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let duration = |v: &Option<String>, default| {
            v.as_deref()
                .map(parse_duration)
                .transpose()
                .map(|d| d.unwrap_or(default))
        };
        Ok(Arc::new(Jwt {
            keys: match (self.jwks(), &self.issuer) {
                (Some(url), _) => KeySource::Jwks(url.clone()),
                (None, Some(issuer)) => KeySource::Issuer(issuer.clone()),
                (None, None) => KeySource::None,
            },
            algorithms,
            cache_ttl: duration(&self.jwks_cache, Duration::from_secs(3600))?,
            leeway: duration(&self.leeway, Duration::from_secs(60))?,
            http: ctx.http.clone(),
            cache: Mutex::new(KeyCache::default()),
        }))
    }

    fn renamed_in_use(&self) -> Vec<Renamed> {
        self.jwks_url
            .iter()
            .map(|_| Renamed {
                old: "jwks_url",
                new: "jwks_uri",
                rewrite: None,
            })
            .collect()
    }
}

enum KeySource {
    None,
    Jwks(String),
    Issuer(String),
}

#[derive(Default)]
struct KeyCache {
    jwks_url: Option<String>,
    keys: Option<JwkSet>,
    fetched: Option<Instant>,
}

struct Jwt {
    keys: KeySource,
    algorithms: Vec<Algorithm>,
    cache_ttl: Duration,
    leeway: Duration,
    http: http::Client,
    cache: Mutex<KeyCache>,
}

impl Provider for Jwt {
    fn probe<'a>(
        &'a self,
        token: &'a TokenSpec,
        secret: &'a Secret,
        now: Timestamp,
    ) -> BoxFuture<'a, ProbeOutcome> {
        Box::pin(async move {
            let (header, claims) = match split(secret.expose()) {
                Ok(parts) => parts,
                Err(outcome) => return outcome,
            };
            if matches!(self.keys, KeySource::None) {
                return evaluate(&claims, false, now, self.leeway);
            }
            let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or("");
            let alg = match alg_name.parse::<Algorithm>() {
                Ok(alg) if self.algorithms.contains(&alg) => alg,
                _ => {
                    let shown = if alg_name.len() <= 16
                        && alg_name.chars().all(|c| c.is_ascii_alphanumeric())
                    {
                        alg_name
                    } else {
                        "?"
                    };
                    return ProbeOutcome::invalid(
                        Reason::BadSignature,
                        format!("algorithm \"{shown}\" is not among the pinned algorithms"),
                    )
                    .with_facts(evaluate(&claims, false, now, self.leeway).facts);
                }
            };
            let kid = header.get("kid").and_then(Value::as_str).map(str::to_owned);
            let keys = match self.keys_for(kid.as_deref(), now).await {
                Ok(keys) => keys,
                // Keys unavailable: say so, but keep what the claims tell about expiry.
                Err(outcome) => {
                    return outcome.with_facts(evaluate(&claims, false, now, self.leeway).facts);
                }
            };
            let mut validation = Validation::new(alg);
            validation.required_spec_claims.clear();
            validation.validate_exp = false;
            validation.validate_nbf = false;
            validation.leeway = self.leeway.as_secs();
            match &token.params.audiences {
                Some(auds) => {
                    validation.set_audience(auds);
                    // A token without `aud` carries none of the audiences it must carry.
                    validation.required_spec_claims.insert("aud".into());
                }
                None => validation.validate_aud = false,
            }
            let candidates: Vec<_> = keys
                .keys
                .iter()
                .filter(|k| kid.is_none() || k.common.key_id.as_deref() == kid.as_deref())
                .collect();
            if candidates.is_empty() {
                return ProbeOutcome::invalid(
                    Reason::BadSignature,
                    "no key in the JWKS matches the token's kid",
                )
                .with_facts(evaluate(&claims, false, now, self.leeway).facts);
            }
            let mut last = Reason::BadSignature;
            for jwk in candidates {
                let Ok(key) = DecodingKey::from_jwk(jwk) else {
                    continue;
                };
                match jsonwebtoken::decode::<Value>(secret.expose(), &key, &validation) {
                    Ok(_) => return evaluate(&claims, true, now, self.leeway),
                    Err(e) => {
                        if matches!(
                            e.kind(),
                            jsonwebtoken::errors::ErrorKind::InvalidAudience
                                | jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(_)
                        ) {
                            last = Reason::WrongAudience;
                        }
                    }
                }
            }
            let detail = if last == Reason::WrongAudience {
                "the token's aud does not include a configured audience"
            } else {
                "the signature does not verify with the provider's keys"
            };
            ProbeOutcome::invalid(last, detail)
                .with_facts(evaluate(&claims, false, now, self.leeway).facts)
        })
    }
}

impl Jwt {
    /// The key set, from cache when fresh; refetched when stale, or when `kid` is unknown
    /// and the last refetch is old enough.
    async fn keys_for(&self, kid: Option<&str>, now: Timestamp) -> Result<JwkSet, ProbeOutcome> {
        let mut cache = self.cache.lock().await;
        let fresh = cache.fetched.is_some_and(|t| t.elapsed() < self.cache_ttl);
        let knows_kid = match (&cache.keys, kid) {
            (Some(set), Some(kid)) => set
                .keys
                .iter()
                .any(|k| k.common.key_id.as_deref() == Some(kid)),
            (Some(_), None) => true,
            (None, _) => false,
        };
        let may_refetch = cache
            .fetched
            .is_none_or(|t| t.elapsed() >= UNKNOWN_KID_REFETCH);
        if let Some(keys) = &cache.keys
            && fresh
            && (knows_kid || !may_refetch)
        {
            return Ok(keys.clone());
        }
        let url = match (&cache.jwks_url, &self.keys) {
            (Some(u), _) => u.clone(),
            (None, KeySource::Jwks(u)) => u.clone(),
            (None, KeySource::Issuer(issuer)) => discover_jwks(&self.http, issuer, now).await?,
            (None, KeySource::None) => unreachable!("keys_for is only called with a key source"),
        };
        cache.jwks_url = Some(url.clone());
        match fetch_jwks(&self.http, &url, now).await {
            Ok(set) => {
                cache.keys = Some(set.clone());
                cache.fetched = Some(Instant::now());
                Ok(set)
            }
            // A failed refresh keeps serving the keys we have.
            Err(outcome) => match &cache.keys {
                Some(keys) => Ok(keys.clone()),
                None => Err(outcome),
            },
        }
    }
}

async fn fetch_jwks(
    http: &http::Client,
    url: &str,
    now: Timestamp,
) -> Result<JwkSet, ProbeOutcome> {
    let resp = http::send(http.get(url).header(reqwest::header::ACCEPT, http::JSON)).await?;
    if resp.status != 200 {
        return Err(common_status(resp.status, &resp.headers, now));
    }
    serde_json::from_slice::<JwkSet>(&resp.body).map_err(|e| {
        ProbeOutcome::unreachable(
            Reason::BadResponse,
            format!("the JWKS is not a valid key set: {e}"),
        )
    })
}

async fn discover_jwks(
    http: &http::Client,
    issuer: &str,
    now: Timestamp,
) -> Result<String, ProbeOutcome> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let resp = http::send(http.get(&url).header(reqwest::header::ACCEPT, http::JSON)).await?;
    if resp.status != 200 {
        return Err(common_status(resp.status, &resp.headers, now));
    }
    serde_json::from_slice::<Value>(&resp.body)
        .ok()
        .and_then(|v| v.get("jwks_uri").and_then(Value::as_str).map(str::to_owned))
        .ok_or_else(|| {
            ProbeOutcome::unreachable(
                Reason::Discovery,
                "the discovery document names no jwks_uri",
            )
        })
}

/// Splits a compact JWS into its decoded header and claims. Pure.
pub fn split(token: &str) -> Result<(Value, Value), ProbeOutcome> {
    let malformed =
        |why: &str| ProbeOutcome::invalid(Reason::Malformed, format!("not a JWT: {why}"));
    let parts: Vec<&str> = token.trim().split('.').collect();
    if parts.len() == 5 {
        return Err(malformed("an encrypted JWE cannot be read without the key"));
    }
    if parts.len() != 3 {
        return Err(malformed("expected three dot-separated parts"));
    }
    let decode = |part: &str, what: &str| -> Result<Value, ProbeOutcome> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .map_err(|_| malformed(&format!("the {what} is not base64url")))?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|_| malformed(&format!("the {what} is not JSON")))?;
        if !value.is_object() {
            return Err(malformed(&format!("the {what} is not a JSON object")));
        }
        Ok(value)
    };
    Ok((decode(parts[0], "header")?, decode(parts[1], "payload")?))
}

/// The verdict for decoded claims at `now`. Pure.
///
/// A missing `exp` means the JWT never expires. For Kubernetes bound service-account tokens
/// `kubernetes.io.warnafter` is the intended expiry and is exported instead of an extended
/// `exp`, which is kept under `extra`.
pub fn evaluate(
    claims: &Value,
    verified: bool,
    now: Timestamp,
    leeway: Duration,
) -> crate::model::ProbeOutcome {
    let mut facts = facts_from_claims(claims);
    let exp = facts.expiry.timestamp();
    // Only an absent exp means "never": one that is there but unusable stays undisclosed,
    // with its anomaly.
    if claims.get("exp").is_none() {
        facts.expiry = Expiry::Never;
    }
    if let Some(warn) =
        read_numeric_date(claims.get("kubernetes.io").and_then(|k| k.get("warnafter"))).timestamp()
    {
        if let Some(exp) = exp {
            facts.extra.insert("exp".into(), exp.to_string());
        }
        facts.expiry = Expiry::At(warn);
    }
    facts.extra.insert("verified".into(), verified.to_string());
    if let Some(exp) = exp
        && exp <= now
    {
        return ProbeOutcome::invalid(Reason::Expired, "the token's exp has passed")
            .with_facts(facts);
    }
    if let Some(nbf) = facts.not_before
        && nbf.as_second() > now.as_second() + leeway.as_secs() as i64
    {
        return ProbeOutcome::invalid(Reason::NotYetValid, "the token's nbf lies in the future")
            .with_facts(facts);
    }
    if verified {
        ProbeOutcome::new(
            Verdict::Valid,
            Reason::Ok,
            "the signature verifies and the claims are current",
        )
        .with_facts(facts)
    } else {
        ProbeOutcome::new(
            Verdict::Unverified,
            Reason::NoKey,
            "claims decoded without a key: readable, not proven",
        )
        .with_facts(facts)
    }
}

#[cfg(test)]
mod tests;
