//! Providers: how to ask one kind of token issuer about a token.
//!
//! The registry is closed: [`ProviderConfig`] lists every kind, and serde rejects an unknown
//! `kind` when the config is decoded. Each kind lives in one file with a thin request and a
//! pure `parse(status, headers, body, now)`. Adding a kind is a new file, a variant of
//! [`ProviderConfig`] and one arm in [`ProviderConfig::kind_impl`].
//!
//! [`run_probe`] is the generic handler every probe goes through: it reads the secret,
//! applies the timeout and measures the duration, so no provider repeats that logic.

pub mod cloudflare;
pub mod github;
pub mod gitlab;
pub mod google;
pub mod http;
pub mod jwt;
pub mod kubernetes;
pub mod oauth2;
pub mod slack;
pub mod r#static;
pub mod vault;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::Deserialize;

use crate::config::TokenSpec;
use crate::model::{ProbeOutcome, Reason};
use crate::secret::Secret;

/// A boxed probe future: providers are trait objects so the registry stays one enum.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A configured provider instance, ready to probe.
pub trait Provider: Send + Sync {
    /// Asks the provider about one token. `secret` is `None` only for tokens configured
    /// without one (a Vault accessor, a static declaration). Must not panic, must not log
    /// the secret, and returns an outcome for every failure.
    fn probe<'a>(
        &'a self,
        token: &'a TokenSpec,
        secret: Option<&'a Secret>,
        now: Timestamp,
    ) -> BoxFuture<'a, ProbeOutcome>;
}

/// What a provider kind's config offers the registry.
pub trait ProviderKind {
    /// The `kind:` value, also exported as the `kind` label.
    fn kind(&self) -> &'static str;
    /// Checks the provider's own settings; the message is prefixed with the field path.
    fn validate(&self) -> Result<(), String>;
    /// Checks a token that names this provider (required secret, per-token params).
    fn check_token(&self, token: &TokenSpec) -> Result<(), String>;
    /// Probes in flight at once for this provider instance, if limited.
    fn max_concurrency(&self) -> Option<usize>;
    /// Builds the runtime provider.
    fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Provider>, String>;
}

/// Shared resources for building providers.
#[derive(Clone)]
pub struct BuildContext {
    /// One client, one connection pool, for every provider.
    pub http: http::Client,
}

impl BuildContext {
    pub fn new() -> Self {
        BuildContext {
            http: http::client(),
        }
    }
}

impl Default for BuildContext {
    fn default() -> Self {
        Self::new()
    }
}

/// Every provider kind. Decoded from `kind:`; unknown kinds are refused when the config is
/// decoded (see the `Deserialize` impl below).
#[derive(Clone, Debug, PartialEq)]
pub enum ProviderConfig {
    Oauth2Introspection(oauth2::Config),
    Jwt(jwt::Config),
    Github(github::Config),
    Gitlab(gitlab::Config),
    Vault(vault::Config),
    Slack(slack::Config),
    Cloudflare(cloudflare::Config),
    Google(google::Config),
    Kubernetes(kubernetes::Config),
    Static(r#static::Config),
}

impl ProviderConfig {
    /// The one place that maps a variant to its implementation.
    fn kind_impl(&self) -> &dyn ProviderKind {
        match self {
            ProviderConfig::Oauth2Introspection(c) => c,
            ProviderConfig::Jwt(c) => c,
            ProviderConfig::Github(c) => c,
            ProviderConfig::Gitlab(c) => c,
            ProviderConfig::Vault(c) => c,
            ProviderConfig::Slack(c) => c,
            ProviderConfig::Cloudflare(c) => c,
            ProviderConfig::Google(c) => c,
            ProviderConfig::Kubernetes(c) => c,
            ProviderConfig::Static(c) => c,
        }
    }

    pub fn kind(&self) -> &'static str {
        self.kind_impl().kind()
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.max_concurrency() == Some(0) {
            return Err("max_concurrency must be at least 1".into());
        }
        self.kind_impl().validate()
    }

    pub fn check_token(&self, token: &TokenSpec) -> Result<(), String> {
        self.kind_impl().check_token(token)
    }

    pub fn max_concurrency(&self) -> Option<usize> {
        self.kind_impl().max_concurrency()
    }

    pub fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Provider>, String> {
        self.kind_impl().build(ctx)
    }
}

/// The `kind:` values, in the order error messages list them.
pub const KINDS: [&str; 10] = [
    "oauth2_introspection",
    "jwt",
    "github",
    "gitlab",
    "vault",
    "slack",
    "cloudflare",
    "google",
    "kubernetes",
    "static",
];

/// Decodes an entry straight into its kind's struct (see [`crate::config::tagged`]): serde's
/// internally tagged enums buffer the entry and type every plain scalar the YAML 1.1 way
/// (`client_id: 12345` a number, `namespace: no` a boolean) without a field path.
impl<'de> Deserialize<'de> for ProviderConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::config::tagged::deserialize(d)
    }
}

impl crate::config::tagged::Tagged for ProviderConfig {
    const KINDS: &'static [&'static str] = &KINDS;
    const SECTION: crate::config::tagged::Section = crate::config::tagged::Section::Providers;

    fn decode<'de, A: serde::de::MapAccess<'de>>(kind: &str, fields: A) -> Result<Self, A::Error> {
        let de = serde::de::value::MapAccessDeserializer::new(fields);
        Ok(match kind {
            "oauth2_introspection" => {
                ProviderConfig::Oauth2Introspection(oauth2::Config::deserialize(de)?)
            }
            "jwt" => ProviderConfig::Jwt(jwt::Config::deserialize(de)?),
            "github" => ProviderConfig::Github(github::Config::deserialize(de)?),
            "gitlab" => ProviderConfig::Gitlab(gitlab::Config::deserialize(de)?),
            "vault" => ProviderConfig::Vault(vault::Config::deserialize(de)?),
            "slack" => ProviderConfig::Slack(slack::Config::deserialize(de)?),
            "cloudflare" => ProviderConfig::Cloudflare(cloudflare::Config::deserialize(de)?),
            "google" => ProviderConfig::Google(google::Config::deserialize(de)?),
            "kubernetes" => ProviderConfig::Kubernetes(kubernetes::Config::deserialize(de)?),
            "static" => ProviderConfig::Static(r#static::Config::deserialize(de)?),
            _ => return Err(serde::de::Error::unknown_variant(kind, &KINDS)),
        })
    }
}

/// The result of one run of the generic handler.
#[derive(Clone, Debug)]
pub struct ProbeRun {
    pub outcome: ProbeOutcome,
    /// Fingerprint of the secret that was probed, when one was read.
    pub fingerprint: Option<String>,
    pub duration: Duration,
}

/// The generic handler: read the secret, probe under the token's timeout, measure.
pub async fn run_probe(provider: &dyn Provider, token: &TokenSpec, now: Timestamp) -> ProbeRun {
    let started = Instant::now();
    let secret = match &token.secret {
        Some(source) => match source.read().await {
            Ok(s) => Some(s),
            Err(e) => {
                return ProbeRun {
                    outcome: ProbeOutcome::misconfigured(Reason::SecretUnavailable, e.to_string()),
                    fingerprint: None,
                    duration: started.elapsed(),
                };
            }
        },
        None => None,
    };
    let fingerprint = secret.as_ref().map(Secret::fingerprint);
    let mut outcome = match tokio::time::timeout(
        token.probe_timeout,
        provider.probe(token, secret.as_ref(), now),
    )
    .await
    {
        Ok(outcome) => outcome,
        Err(_) => ProbeOutcome::unreachable(
            Reason::Timeout,
            format!(
                "no answer within {}",
                humantime::format_duration(token.probe_timeout)
            ),
        ),
    };
    if let Some(secret) = &secret {
        outcome.redact(secret.expose());
    }
    ProbeRun {
        outcome,
        fingerprint,
        duration: started.elapsed(),
    }
}

/// Refuses per-token params a provider kind does not use, naming them.
pub(crate) fn refuse_params(token: &TokenSpec, kind: &str, allowed: &[&str]) -> Result<(), String> {
    let p = &token.params;
    let set = [
        ("token_type_hint", p.token_type_hint.is_some()),
        ("audiences", p.audiences.is_some()),
        ("accessor", p.accessor.is_some()),
        ("expires_at", p.expires_at.is_some()),
        ("issued_at", p.issued_at.is_some()),
    ];
    for (name, present) in set {
        if present && !allowed.contains(&name) {
            return Err(format!("{name} does not apply to a {kind} provider"));
        }
    }
    Ok(())
}

/// Requires a secret source on a token.
pub(crate) fn require_secret(token: &TokenSpec, kind: &str) -> Result<(), String> {
    if token.secret.is_none() {
        return Err(format!(
            "secret is required for a {kind} provider ({{env: NAME}}, {{file: PATH}} or {{exec: [COMMAND, ARG...]}})"
        ));
    }
    Ok(())
}
