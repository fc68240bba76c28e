//! Providers: how to ask one kind of token issuer about a token.
//!
//! The registry is closed: [`ProviderConfig`] lists every kind, and serde rejects an unknown
//! `kind` when the config is decoded. Each kind lives in one file with a thin request and a
//! pure `parse(status, headers, body, now)`. Adding a kind is a new file, a variant of
//! [`ProviderConfig`], one arm in [`ProviderConfig::kind_impl`] and an entry in [`KINDS`];
//! the fault suite and the fuzz targets then fail until the kind has a row and a target.
//!
//! [`run_probe`] is the generic handler every probe goes through: it reads the secret,
//! answers for a token without one under a kind that needs one, applies the timeout and
//! measures the duration, so no provider repeats that logic.

pub mod atlassian;
pub mod aws;
pub mod cloudflare;
pub mod detect;
pub mod docker_hub;
pub mod entra_id;
pub mod generic;
pub mod github;
pub mod gitlab;
pub mod google;
pub mod grafana;
pub mod http;
pub mod jwt;
pub mod kubernetes;
pub mod npm;
pub mod oauth2;
pub mod okta;
pub mod slack;
pub mod r#static;
pub mod terraform;
pub mod vault;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use jiff::Timestamp;
use serde::Deserialize;

pub use crate::model::ProbeRun;
use crate::model::{Anomaly, ProbeOutcome, Reason, TokenFacts};
use crate::schema::TokenSpec;
use crate::secret::Secret;

/// A boxed probe future: providers are trait objects so the registry stays one enum.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A configured provider instance, ready to probe.
pub trait Provider: Send + Sync {
    /// Asks the provider about one token, with the secret the generic handler read. Must not
    /// panic, must not log the secret, and returns an outcome for every failure.
    fn probe<'a>(
        &'a self,
        token: &'a TokenSpec,
        secret: &'a Secret,
        now: Timestamp,
    ) -> BoxFuture<'a, ProbeOutcome>;

    /// Asks about a token configured without a secret. The default, `None`, declares that
    /// the kind needs a secret: the generic handler then answers [`NO_SECRET`] itself, so no
    /// kind repeats that guard and none can forget it. Kinds that can answer without one (a
    /// Vault accessor, a static declaration) return their probe.
    fn probe_without_secret<'a>(
        &'a self,
        token: &'a TokenSpec,
        now: Timestamp,
    ) -> Option<BoxFuture<'a, ProbeOutcome>> {
        let _ = (token, now);
        None
    }

    /// What the provider counts its rate limit against, for a token whose last conclusive
    /// answer gave `known` (empty before the first): the scheduler pauses together the tokens
    /// that share the limit one of them hit, and only those. The default, [`LimitKey::Entry`],
    /// is for kinds whose limit is the server's or the entry's own credential's (Vault,
    /// Kubernetes, an identity provider): every token of the entry shares it. An answer can
    /// still say its refusal was for the whole entry (`ProbeOutcome::limit_shared_by_entry`).
    fn rate_limit_key(&self, known: &TokenFacts) -> LimitKey {
        let _ = known;
        LimitKey::Entry
    }
}

/// Whose rate limit a token's probes spend (see [`Provider::rate_limit_key`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum LimitKey {
    /// Every token of the provider entry: one refusal pauses them all.
    #[default]
    Entry,
    /// An identity the provider counts against (a user ID): tokens that answered as the same
    /// identity pause together, others keep being probed.
    Identity(String),
    /// This token alone: the kind counts per identity but this token's is not known (no
    /// answer yet, or the answers do not name it).
    Token,
}

/// The detail of the outcome for a token without a secret, under a kind that needs one.
pub const NO_SECRET: &str = "the token has no secret";

/// Every kind the registry accepts, as written in `kind:`, in [`ProviderConfig`]'s order.
/// The fault suite, the fuzz targets and the docs test iterate this list, so it must be
/// exactly the enum's kinds: a variant missing here does not compile in the unit tests'
/// exhaustive match, and a name here that no variant decodes from fails them.
pub const KINDS: &[&str] = &[
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
    "entra_id",
    "http",
    "aws",
    "atlassian",
    "grafana",
    "okta",
    "npm",
    "docker_hub",
    "terraform",
];

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
    /// The old names of renamed settings this config uses. Each is still accepted with its
    /// old meaning, so a running config does not change behaviour; the exporter warns.
    fn renamed_in_use(&self) -> Vec<Renamed> {
        Vec::new()
    }
}

/// A setting's old name, still accepted with its old meaning, and the name that replaced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Renamed {
    pub old: &'static str,
    pub new: &'static str,
    /// How an old value is written under the new name, when it is not the same text.
    pub rewrite: Option<&'static str>,
}

impl Renamed {
    /// The warning for one provider that uses old names.
    pub fn warning(provider: &str, renamed: &[Renamed]) -> String {
        let each: Vec<String> = renamed
            .iter()
            .map(|r| match r.rewrite {
                Some(how) => format!("`{}` is now `{}` ({how})", r.old, r.new),
                None => format!("`{}` is now `{}`", r.old, r.new),
            })
            .collect();
        format!(
            "providers.{provider}: deprecated setting name: {}; the old name still works with \
             its old meaning; rename it",
            each.join(", ")
        )
    }
}

/// A setting given under its name or its old one: refuses both at once (which one would win
/// is not obvious to whoever reads the file), and returns the name and value in use.
pub fn renamed_setting<'a, T>(
    new: (&'static str, Option<&'a T>),
    old: (&'static str, Option<&'a T>),
) -> Result<Option<(&'static str, &'a T)>, String> {
    match (new.1, old.1) {
        (Some(_), Some(_)) => Err(format!(
            "{} and {} are the same setting ({} is its old name): give only {}",
            new.0, old.0, old.0, new.0
        )),
        (Some(v), None) => Ok(Some((new.0, v))),
        (None, Some(v)) => Ok(Some((old.0, v))),
        (None, None) => Ok(None),
    }
}

/// The endpoint of a kind whose old setting named the whole endpoint and whose `url` names
/// the server: `url` gets `path` appended, the old name is taken as it is, neither gives
/// `default` + `path`. Returns the setting's name too, for the error that names it.
pub fn url_or_old_endpoint(
    url: Option<&String>,
    old: (&'static str, Option<&String>),
    default: &str,
    path: &str,
) -> Result<(&'static str, String), String> {
    Ok(match renamed_setting(("url", url), old)? {
        Some((name, value)) if name == old.0 => (name, value.clone()),
        Some((name, value)) => (name, http::join(value, path)),
        None => ("url", http::join(default, path)),
    })
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
    EntraId(entra_id::Config),
    Http(generic::Config),
    Aws(aws::Config),
    Atlassian(atlassian::Config),
    Grafana(grafana::Config),
    Okta(okta::Config),
    Npm(npm::Config),
    DockerHub(docker_hub::Config),
    Terraform(terraform::Config),
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
            ProviderConfig::EntraId(c) => c,
            ProviderConfig::Http(c) => c,
            ProviderConfig::Aws(c) => c,
            ProviderConfig::Atlassian(c) => c,
            ProviderConfig::Grafana(c) => c,
            ProviderConfig::Okta(c) => c,
            ProviderConfig::Npm(c) => c,
            ProviderConfig::DockerHub(c) => c,
            ProviderConfig::Terraform(c) => c,
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

    /// The old setting names this provider uses (see [`ProviderKind::renamed_in_use`]).
    pub fn renamed_in_use(&self) -> Vec<Renamed> {
        self.kind_impl().renamed_in_use()
    }
}

/// Decodes an entry straight into its kind's struct (see [`crate::schema::tagged`]): serde's
/// internally tagged enums buffer the entry and type every plain scalar the YAML 1.1 way
/// (`client_id: 12345` a number, `namespace: no` a boolean) without a field path.
impl<'de> Deserialize<'de> for ProviderConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::schema::tagged::deserialize(d)
    }
}

impl crate::schema::tagged::Tagged for ProviderConfig {
    const KINDS: &'static [&'static str] = KINDS;
    const SECTION: crate::schema::tagged::Section = crate::schema::tagged::Section::Providers;

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
            "entra_id" => ProviderConfig::EntraId(entra_id::Config::deserialize(de)?),
            "http" => ProviderConfig::Http(generic::Config::deserialize(de)?),
            "aws" => ProviderConfig::Aws(aws::Config::deserialize(de)?),
            "atlassian" => ProviderConfig::Atlassian(atlassian::Config::deserialize(de)?),
            "grafana" => ProviderConfig::Grafana(grafana::Config::deserialize(de)?),
            "okta" => ProviderConfig::Okta(okta::Config::deserialize(de)?),
            "npm" => ProviderConfig::Npm(npm::Config::deserialize(de)?),
            "docker_hub" => ProviderConfig::DockerHub(docker_hub::Config::deserialize(de)?),
            "terraform" => ProviderConfig::Terraform(terraform::Config::deserialize(de)?),
            _ => return Err(serde::de::Error::unknown_variant(kind, KINDS)),
        })
    }
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
        dispatch(provider, token, secret.as_ref(), now),
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
    // After the redaction: a secret cut in half by a cap would no longer be recognised.
    let applied = apply_caps(&mut outcome.facts, answer_caps());
    if applied.scopes {
        CAPS_APPLIED[0].fetch_add(1, Ordering::Relaxed);
    }
    if applied.label_length {
        CAPS_APPLIED[1].fetch_add(1, Ordering::Relaxed);
    }
    ProbeRun {
        outcome,
        fingerprint,
        duration: started.elapsed(),
    }
}

/// The probe for a token with or without its secret. The one place that answers for a token
/// without a secret under a kind that needs one.
fn dispatch<'a>(
    provider: &'a dyn Provider,
    token: &'a TokenSpec,
    secret: Option<&'a Secret>,
    now: Timestamp,
) -> BoxFuture<'a, ProbeOutcome> {
    match secret {
        Some(secret) => provider.probe(token, secret, now),
        None => provider
            .probe_without_secret(token, now)
            .unwrap_or_else(|| {
                Box::pin(async {
                    ProbeOutcome::misconfigured(Reason::SecretUnavailable, NO_SECRET)
                })
            }),
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
        ("key_id", p.key_id.is_some()),
        ("access_key_id", p.access_key_id.is_some()),
        ("access_key_id_file", p.access_key_id_file.is_some()),
        ("session_token", p.session_token.is_some()),
        ("email", p.email.is_some()),
        ("username", p.username.is_some()),
        ("last_used_at", p.last_used_at.is_some()),
        ("sliding_window_seconds", p.sliding_window_seconds.is_some()),
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

/// Bounds on what one answer may put into the exporter's series and memory. A provider
/// decides how many scopes a token has and how long its subject is: without a bound, one
/// answer could make any number of series, each label as long as the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnswerCaps {
    /// Scopes kept per token: the first ones in sorted order, so the kept set is the same
    /// at every probe of the same answer.
    pub max_scopes: usize,
    /// Bytes of a label-bound text (subject, client id, issuer, token type, an audience or
    /// a scope), the cut marker included.
    pub max_label_length: usize,
}

impl AnswerCaps {
    /// GitHub's classic scopes number under 30 and a Vault token's policies a few dozen:
    /// 64 keeps every real token whole. 128 bytes holds an email, a URL issuer or a UUID
    /// subject; longer is not a name a person reads on a dashboard.
    pub const DEFAULT: AnswerCaps = AnswerCaps {
        max_scopes: 64,
        max_label_length: 128,
    };
    /// The smallest `max_label_length` accepted: room for some text and the cut marker.
    pub const MIN_LABEL_LENGTH: usize = 16;
}

impl Default for AnswerCaps {
    fn default() -> Self {
        AnswerCaps::DEFAULT
    }
}

/// The caps every probe applies. Process-wide, set once from the flags at start: they bound
/// every provider alike, so they are not part of any provider's config.
static MAX_SCOPES: AtomicUsize = AtomicUsize::new(AnswerCaps::DEFAULT.max_scopes);
static MAX_LABEL_LENGTH: AtomicUsize = AtomicUsize::new(AnswerCaps::DEFAULT.max_label_length);

/// Probes whose answer a cap cut, by cap: `scopes`, then `label_length`
/// (`api_token_exporter_answer_caps_applied_total{cap}`).
pub static CAPS_APPLIED: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// The `cap` label values of [`CAPS_APPLIED`], in its order.
pub const CAP_NAMES: [&str; 2] = ["scopes", "label_length"];

/// Sets the caps [`run_probe`] applies from now on.
pub fn set_answer_caps(caps: AnswerCaps) {
    MAX_SCOPES.store(caps.max_scopes, Ordering::Relaxed);
    MAX_LABEL_LENGTH.store(caps.max_label_length, Ordering::Relaxed);
}

/// The caps in force.
pub fn answer_caps() -> AnswerCaps {
    AnswerCaps {
        max_scopes: MAX_SCOPES.load(Ordering::Relaxed),
        max_label_length: MAX_LABEL_LENGTH.load(Ordering::Relaxed),
    }
}

/// Which caps [`apply_caps`] applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapsApplied {
    pub scopes: bool,
    pub label_length: bool,
}

/// Cuts an answer's facts down to `caps`, noting each cap that applied on the token. Pure.
pub fn apply_caps(facts: &mut TokenFacts, caps: AnswerCaps) -> CapsApplied {
    let max = caps.max_label_length.max(AnswerCaps::MIN_LABEL_LENGTH);
    let mut cut = false;
    for s in [
        &mut facts.subject,
        &mut facts.client_id,
        &mut facts.issuer,
        &mut facts.token_type,
    ]
    .into_iter()
    .flatten()
    .chain(facts.audience.iter_mut())
    .chain(facts.scopes.iter_mut())
    {
        cut |= truncate_label(s, max);
    }
    if cut || facts.scopes.len() > caps.max_scopes {
        // Two cut scopes may now read the same; and providers hand scopes in any order, so
        // they are sorted before the cap, and the kept ones do not change between probes.
        facts.scopes.sort();
        facts.scopes.dedup();
    }
    let total = facts.scopes.len();
    let capped = total > caps.max_scopes;
    if capped {
        facts.scopes.truncate(caps.max_scopes);
        facts.note(
            Anomaly::ScopesCapped,
            format!(
                "the provider listed {total} scopes; the first {} (sorted) are kept (--provider.max-scopes)",
                caps.max_scopes
            ),
        );
    }
    if cut {
        facts.note(
            Anomaly::LabelTruncated,
            format!(
                "a text of the provider's answer was longer than {max} bytes and was cut (--provider.max-label-length)"
            ),
        );
    }
    CapsApplied {
        scopes: capped,
        label_length: cut,
    }
}

/// The marker a cut text ends with.
const CUT_MARKER: &str = "\u{2026}";

/// Cuts `s` to at most `max` bytes, the marker included, on a character boundary.
fn truncate_label(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut end = max.saturating_sub(CUT_MARKER.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str(CUT_MARKER);
    true
}

#[cfg(test)]
mod tests;
