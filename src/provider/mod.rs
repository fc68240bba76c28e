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

/// Decodes an entry straight into its kind's struct. serde's internally tagged enums buffer
/// the entry first, and the buffer types every plain scalar the YAML 1.1 way (`12345` a
/// number, `no` a boolean) and forgets the field path, so `client_id: 12345` was refused
/// without saying where. The config decoder reads each entry's kind in a first pass
/// ([`crate::config::next_provider_kind`]); outside it, `kind` must be the entry's first key.
impl<'de> Deserialize<'de> for ProviderConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let kind = crate::config::next_provider_kind().flatten();
        d.deserialize_map(decode::EntryVisitor { kind })
    }
}

mod decode {
    use serde::Deserialize;
    use serde::de::{self, DeserializeSeed, IgnoredAny, IntoDeserializer, MapAccess, Visitor};

    use super::*;

    pub(super) struct EntryVisitor {
        pub kind: Option<String>,
    }

    impl<'de> Visitor<'de> for EntryVisitor {
        type Value = ProviderConfig;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a provider: a mapping with a `kind`")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ProviderConfig, A::Error> {
            let kind = match self.kind {
                Some(kind) if KINDS.contains(&kind.as_str()) => kind,
                Some(_) => {
                    // An unknown kind: read up to `kind` so that the error names its path.
                    while let Some(key) = map.next_key::<String>()? {
                        if key == "kind" {
                            map.next_value_seed(KindSeed)?;
                        } else {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                    return Err(de::Error::missing_field("kind"));
                }
                None => {
                    // No kind from the first pass: `kind` is missing, not a string, or this
                    // entry is decoded on its own. Read until `kind` so that its own error
                    // carries its path.
                    let mut first = true;
                    loop {
                        match map.next_key::<String>()? {
                            None => return Err(de::Error::missing_field("kind")),
                            Some(key) if key == "kind" => {
                                let kind = map.next_value_seed(KindSeed)?;
                                if first {
                                    break kind;
                                }
                                return Err(de::Error::custom("`kind` must be the first key"));
                            }
                            Some(_) => {
                                map.next_value::<IgnoredAny>()?;
                            }
                        }
                        first = false;
                    }
                }
            };
            let de = de::value::MapAccessDeserializer::new(SkipKind(map));
            Ok(match kind.as_str() {
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
                _ => return Err(de::Error::unknown_variant(&kind, &KINDS)),
            })
        }
    }

    /// The entry's keys without `kind`, which the kind's struct does not know. Keys go
    /// through the caller's `MapAccess`, so a field path tracker sees every key and value.
    struct SkipKind<A>(A);

    impl<'de, A: MapAccess<'de>> MapAccess<'de> for SkipKind<A> {
        type Error = A::Error;

        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, A::Error> {
            let mut seed = Some(seed);
            loop {
                match self.0.next_key_seed(KeySeed(&mut seed))? {
                    None => return Ok(None),
                    Some(Some(key)) => return Ok(Some(key)),
                    Some(None) => {
                        self.0.next_value::<IgnoredAny>()?;
                    }
                }
            }
        }

        fn next_value_seed<V: DeserializeSeed<'de>>(
            &mut self,
            seed: V,
        ) -> Result<V::Value, A::Error> {
            self.0.next_value_seed(seed)
        }
    }

    /// A key: `None` for `kind`, else the wrapped seed's value (deserialized only then).
    struct KeySeed<'a, K>(&'a mut Option<K>);

    impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<'_, K> {
        type Value = Option<K::Value>;

        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            let key = String::deserialize(d)?;
            if key == "kind" {
                return Ok(None);
            }
            let seed = self
                .0
                .take()
                .ok_or_else(|| de::Error::custom("key read twice"))?;
            seed.deserialize(key.into_deserializer()).map(Some)
        }
    }

    /// The value of `kind`, refused with the list of kinds when unknown.
    struct KindSeed;

    impl<'de> DeserializeSeed<'de> for KindSeed {
        type Value = String;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
            let kind = String::deserialize(d)?;
            if !KINDS.contains(&kind.as_str()) {
                return Err(de::Error::unknown_variant(&kind, &KINDS));
            }
            Ok(kind)
        }
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
