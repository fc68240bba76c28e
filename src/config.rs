//! The inventory file: raw serde structs, then `validate()` into a typed [`Config`].
//! Reads one file from disk; everything else here is pure.
//!
//! Every error names the field path and the line, e.g.
//! `tokens[2].provider: unknown provider "gihtub" (line 14)`, and all semantic errors of a
//! file are reported at once so a user fixes them in one pass.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::model::Thresholds;
pub use crate::model::duration::duration_opt;
pub use crate::model::parse_duration;
use crate::provider::ProviderConfig;
use crate::schema::tagged;
pub use crate::schema::{
    ConfigError, ConfigIssue, Expect, Labels, MAX_ALIASES, MAX_CONFIG_BYTES, MAX_MERGE_KEYS,
    MAX_RECORDED_ANCHOR_BYTES, MAX_RECORDED_ANCHOR_EVENTS, MAX_REPLAYED_EVENTS, Memo, Params,
    Policies, TokenParams, TokenSpec, decode_options,
};
use crate::secret::SecretSource;

pub mod notify;
pub mod rotate;
pub mod rotate_targets;
pub mod sources;

/// Labels the exporter sets itself on `api_token_info`; the inventory may not reuse them.
pub const RESERVED_LABELS: [&str; 10] = [
    "token",
    "source",
    "provider",
    "kind",
    "fingerprint",
    "subject",
    "verified",
    "expiry_model",
    "job",
    "instance",
];

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub global: Global,
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Shared, not copied: the store, the scheduler and the views all hold these `Arc`s, so
    /// an inventory of 10,000 tokens is in memory once (ARCHITECTURE.md, memory).
    pub tokens: Vec<Arc<TokenSpec>>,
    /// `notifications`, `notifiers` and `routes`: direct notifications (see [`notify`]).
    pub notify: notify::NotifyConfig,
    /// `sources`: where more tokens are listed (see [`sources`]); their tokens join `tokens`
    /// at run time (`src/sources/`).
    pub sources: Vec<Arc<sources::SourceSpec>>,
    /// The tokens that have a `rotate:` block, by name (see [`rotate`]); none by default.
    pub rotations: BTreeMap<String, Arc<crate::schema::rotate::RotateSpec>>,
    /// For a discovered token that rotates (`sources::compose`), the key of its record in
    /// `rotation.json`: its identity (a file's path, a Secret's key), not its name, so a
    /// rotation interrupted while the token was out of the listing resumes when it returns.
    /// Configured tokens are keyed by name and are not here.
    pub rotation_keys: Arc<BTreeMap<String, String>>,
}

/// Defaults and limits that apply to every token.
#[derive(Clone, Debug, PartialEq)]
pub struct Global {
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    /// Near expiry probes come more often, but never more often than this.
    pub min_probe_interval: Duration,
    /// The longest wait between probes of a failing provider.
    pub max_backoff: Duration,
    pub thresholds: Thresholds,
    /// Probes in flight at once, over all providers.
    pub max_concurrency: usize,
    /// Policies every token inherits.
    pub policies: Policies,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let with_file = |e: ConfigError| e.in_file(path);
        let meta = std::fs::metadata(path)
            .map_err(|e| with_file(ConfigError::single("", format!("cannot read: {e}"), None)))?;
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(with_file(ConfigError::single(
                "",
                format!("file is larger than {MAX_CONFIG_BYTES} bytes"),
                None,
            )));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| with_file(ConfigError::single("", format!("cannot read: {e}"), None)))?;
        Config::parse(&text).map_err(with_file)
    }

    /// Parses and validates config text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw = decode(text)?;
        raw.validate()
    }

    /// One warning per provider that still writes a setting under its old name (the old
    /// name keeps its old meaning): logged at every load, printed by `--config.check`.
    pub fn deprecations(&self) -> Vec<String> {
        self.providers
            .iter()
            .filter_map(|(name, provider)| {
                let renamed = provider.renamed_in_use();
                (!renamed.is_empty()).then(|| crate::provider::Renamed::warning(name, &renamed))
            })
            .collect()
    }

    pub fn token(&self, name: &str) -> Option<&TokenSpec> {
        self.tokens.iter().find(|t| t.name == name).map(|t| &**t)
    }
}
/// Decodes YAML into the raw structs; a failure carries the field path and the line.
fn decode(text: &str) -> Result<RawConfig, ConfigError> {
    let run = |kinds: Option<tagged::Kinds>| {
        tagged::with_kinds(kinds, || crate::schema::decode::<Option<RawConfig>>(text))
    };
    // Most files write `kind` first in every entry and decode in one pass; the first entry
    // that does not asks for the pass that reads every kind first (see `tagged`).
    let result = match run(None) {
        Err(e) if e.message.contains(tagged::NEED_KINDS) => run(Some(tagged::kinds(text))),
        other => other,
    };
    let raw = result.map_err(|mut f| {
        // A refused key under a secret source may be a token: it is cut off the path.
        if f.message
            .contains(crate::secret::UNKNOWN_SECRET_KEY_MESSAGE)
            && let Some(key) = &f.last_key
        {
            f.path = f
                .path
                .strip_suffix(&format!(".{key}"))
                .map(str::to_string)
                .unwrap_or_default();
        }
        if f.message.contains("budget breached")
            || f.message.contains("replay limit")
            || f.message.contains("too large or too complex")
        {
            f.message = format!(
                "{}: anchors, aliases and merge keys may not expand the file by more than \
                 {MAX_REPLAYED_EVENTS} events ({MAX_RECORDED_ANCHOR_EVENTS} inside anchors, \
                 {MAX_ALIASES} aliases, {MAX_MERGE_KEYS} merge keys)",
                f.message
            );
        }
        if f.path.starts_with("notifiers.") && f.path.ends_with(".kind") {
            f.message = f
                .message
                .replace("unknown variant", "unknown notifier kind");
        } else if f.path.ends_with(".kind") {
            f.message = f
                .message
                .replace("unknown variant", "unknown provider kind");
        }
        ConfigError::from(f)
    })?;
    // An empty document is what a truncated or half-written file looks like; taking it as
    // "no tokens" would silently drop the whole inventory at the next reload.
    raw.ok_or_else(|| ConfigError::single("", EMPTY_DOCUMENT_MESSAGE, None))
}

/// The error for an empty file, only comments, `---` alone or `null`.
pub const EMPTY_DOCUMENT_MESSAGE: &str = "the config file is empty: it holds no providers and no \
     tokens (a truncated write?); write `tokens: []` to run without tokens on purpose";

/// Refuses a new inventory that removes more than `max_drop` (a share, 0 to 1) of the
/// running tokens, counted by name. Pure.
pub fn check_drop(
    running: &[Arc<TokenSpec>],
    next: &[Arc<TokenSpec>],
    max_drop: f64,
) -> Result<(), String> {
    if running.is_empty() || max_drop >= 1.0 {
        return Ok(());
    }
    let kept: std::collections::HashSet<&str> = next.iter().map(|t| t.name.as_str()).collect();
    let dropped = running
        .iter()
        .filter(|t| !kept.contains(t.name.as_str()))
        .count();
    let share = dropped as f64 / running.len() as f64;
    if share > max_drop {
        return Err(format!(
            "the new config removes {dropped} of the {} running tokens ({:.0}%), more than \
             --config.reload-max-drop={max_drop} allows; the previous config keeps running. \
             If the removal is intended, reload with POST /-/reload?force=true (or restart)",
            running.len(),
            share * 100.0
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    global: RawGlobal,
    #[serde(default)]
    providers: BTreeMap<String, Spanned<ProviderConfig>>,
    #[serde(default)]
    tokens: Vec<RawToken>,
    #[serde(default)]
    notifications: Option<notify::RawSettings>,
    #[serde(default)]
    notifiers: BTreeMap<String, Spanned<notify::NotifierConfig>>,
    #[serde(default)]
    routes: Vec<notify::RawRoute>,
    #[serde(default)]
    sources: Vec<sources::RawSource>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGlobal {
    probe_interval: Option<Spanned<String>>,
    probe_timeout: Option<Spanned<String>>,
    min_probe_interval: Option<Spanned<String>>,
    max_backoff: Option<Spanned<String>>,
    warning_before: Option<Spanned<String>>,
    critical_before: Option<Spanned<String>>,
    max_concurrency: Option<Spanned<usize>>,
    #[serde(default)]
    policies: RawPolicies,
}

/// Policies as written: every field optional so a token inherits what it does not set.
/// The durations also take `off` to switch an inherited policy off.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicies {
    max_age: Option<Spanned<String>>,
    age_only_max_age: Option<Spanned<String>>,
    allowed_scopes: Option<Vec<String>>,
    forbidden_scopes: Option<Vec<String>>,
    expect: Option<Expect>,
    require_expiry: Option<bool>,
    max_unused: Option<Spanned<String>>,
}

/// A token as written. Every one is held at once while the file is decoded (a `Vec` that
/// doubles as it grows), so what most tokens leave out is boxed: inline, the rotation block,
/// the policies and the spanned overrides made each entry over 2 KB, the largest part of a
/// large inventory's peak at start.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: Spanned<String>,
    provider: Spanned<String>,
    #[serde(default)]
    secret: Option<SecretSource>,
    #[serde(default, deserialize_with = "crate::schema::label_list")]
    labels: Vec<(String, Spanned<String>)>,
    warning_before: Option<Box<Spanned<String>>>,
    critical_before: Option<Box<Spanned<String>>>,
    probe_interval: Option<Box<Spanned<String>>>,
    probe_timeout: Option<Box<Spanned<String>>>,
    token_type_hint: Option<String>,
    audiences: Option<Vec<String>>,
    accessor: Option<String>,
    expires_at: Option<String>,
    issued_at: Option<String>,
    key_id: Option<String>,
    access_key_id: Option<String>,
    access_key_id_file: Option<String>,
    session_token: Option<Box<SecretSource>>,
    email: Option<String>,
    username: Option<String>,
    #[serde(default)]
    policies: Option<Box<RawPolicies>>,
    rotate: Option<Box<Spanned<crate::schema::rotate::RawRotate>>>,
}

/// Collects issues while validating so that one pass reports them all.
#[derive(Default)]
struct Issues(Vec<ConfigIssue>);

impl Issues {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>, line: Option<u64>) {
        self.0.push(ConfigIssue {
            path: path.into(),
            message: message.into(),
            line,
        });
    }

    fn duration(&mut self, path: &str, raw: &Option<Spanned<String>>) -> Option<Duration> {
        self.duration_of(path, raw.as_ref())
    }

    fn duration_of(&mut self, path: &str, raw: Option<&Spanned<String>>) -> Option<Duration> {
        let raw = raw?;
        match parse_duration(&raw.value) {
            Ok(d) => Some(d),
            Err(e) => {
                self.push(path, e, Some(raw.referenced.line()));
                None
            }
        }
    }
}

impl Issues {
    /// A policy duration: `off` switches an inherited policy off (`Some(None)`).
    fn policy_duration(
        &mut self,
        path: &str,
        raw: &Option<Spanned<String>>,
    ) -> Option<Option<Duration>> {
        let raw = raw.as_ref()?;
        if raw.value.trim() == "off" {
            return Some(None);
        }
        match parse_duration(&raw.value) {
            Ok(d) if d.is_zero() => {
                self.push(
                    path,
                    "must be greater than zero (or off)",
                    Some(raw.referenced.line()),
                );
                Some(None)
            }
            Ok(d) => Some(Some(d)),
            Err(e) => {
                self.push(path, e, Some(raw.referenced.line()));
                Some(None)
            }
        }
    }

    /// `over` on top of `base`: what `over` sets wins.
    fn policies(&mut self, path: &str, base: &Policies, over: &RawPolicies) -> Policies {
        let mut p = base.clone();
        if let Some(d) = self.policy_duration(&format!("{path}.max_age"), &over.max_age) {
            p.max_age = d;
        }
        if let Some(d) =
            self.policy_duration(&format!("{path}.age_only_max_age"), &over.age_only_max_age)
        {
            p.age_only_max_age = d;
        }
        if let Some(d) = self.policy_duration(&format!("{path}.max_unused"), &over.max_unused) {
            p.max_unused = d;
        }
        if let Some(list) = &over.allowed_scopes {
            p.allowed_scopes = Some(list.clone());
        }
        if let Some(list) = &over.forbidden_scopes {
            p.forbidden_scopes = list.clone();
        }
        if let Some(expect) = &over.expect {
            p.expect = expect.clone();
        }
        if let Some(b) = over.require_expiry {
            p.require_expiry = b;
        }
        p
    }
}

fn line_of<T>(s: &Spanned<T>) -> Option<u64> {
    Some(s.referenced.line())
}

/// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_');
    first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && !name.starts_with("__")
}

impl RawConfig {
    fn validate(self) -> Result<Config, ConfigError> {
        let mut issues = Issues::default();
        let g = &self.global;
        let probe_interval = issues
            .duration("global.probe_interval", &g.probe_interval)
            .unwrap_or(Duration::from_secs(300));
        let probe_timeout = issues
            .duration("global.probe_timeout", &g.probe_timeout)
            .unwrap_or(Duration::from_secs(10));
        let min_probe_interval = issues
            .duration("global.min_probe_interval", &g.min_probe_interval)
            .unwrap_or(Duration::from_secs(60));
        let max_backoff = issues
            .duration("global.max_backoff", &g.max_backoff)
            .unwrap_or(Duration::from_secs(1800));
        let warning = issues
            .duration("global.warning_before", &g.warning_before)
            .unwrap_or(Duration::from_secs(14 * 86_400));
        let critical = issues
            .duration("global.critical_before", &g.critical_before)
            .unwrap_or(Duration::from_secs(3 * 86_400));
        let global_line = g
            .critical_before
            .as_ref()
            .or(g.warning_before.as_ref())
            .map(|s| s.referenced.line());
        if critical >= warning {
            issues.push(
                "global.critical_before",
                format!(
                    "must be shorter than warning_before ({} >= {})",
                    humantime::format_duration(critical),
                    humantime::format_duration(warning)
                ),
                global_line,
            );
        }
        for (path, d, raw) in [
            ("global.probe_interval", probe_interval, &g.probe_interval),
            ("global.probe_timeout", probe_timeout, &g.probe_timeout),
            (
                "global.min_probe_interval",
                min_probe_interval,
                &g.min_probe_interval,
            ),
        ] {
            if d.is_zero() {
                issues.push(
                    path,
                    "must be greater than zero",
                    raw.as_ref().map(|s| s.referenced.line()),
                );
            }
        }
        if min_probe_interval > probe_interval && !probe_interval.is_zero() {
            issues.push(
                "global.min_probe_interval",
                "must not be longer than probe_interval",
                g.min_probe_interval.as_ref().map(|s| s.referenced.line()),
            );
        }
        let max_concurrency = match &g.max_concurrency {
            Some(s) if s.value == 0 => {
                issues.push("global.max_concurrency", "must be at least 1", line_of(s));
                1
            }
            Some(s) => s.value,
            None => 32,
        };
        let global_policies = issues.policies("global.policies", &Policies::default(), &g.policies);
        let global = Global {
            policies: global_policies,
            probe_interval,
            probe_timeout,
            min_probe_interval,
            max_backoff,
            thresholds: Thresholds {
                warning_before: warning,
                critical_before: critical,
            },
            max_concurrency,
        };

        let mut providers = BTreeMap::new();
        for (name, spanned) in self.providers {
            let path = format!("providers.{name}");
            if name.trim().is_empty() {
                issues.push(&path, "provider name is empty", line_of(&spanned));
            }
            if let Err(e) = spanned.value.validate() {
                issues.push(&path, e, line_of(&spanned));
            }
            providers.insert(name, spanned.value);
        }

        let mut seen: BTreeMap<String, u64> = BTreeMap::new();
        let mut rotations = BTreeMap::new();
        let mut tokens = Vec::with_capacity(self.tokens.len());
        let shared_policies = Arc::new(global.policies.clone());
        let mut label_sets = crate::schema::LabelSets::default();
        for (i, raw) in self.tokens.into_iter().enumerate() {
            let at = |field: &str| format!("tokens[{i}].{field}");
            let name = raw.name.value.clone();
            if name.trim().is_empty() {
                issues.push(at("name"), "token name is empty", line_of(&raw.name));
            }
            if let Some(first) = seen.insert(name.clone(), raw.name.referenced.line()) {
                issues.push(
                    at("name"),
                    format!("duplicate token name \"{name}\" (first defined on line {first})"),
                    line_of(&raw.name),
                );
                seen.insert(name.clone(), first);
            }
            // `auto`: the entry of the kind the secret's prefix names (`provider::detect`).
            let provider_name = if raw.provider.value == sources::AUTO {
                sources::detect_configured(raw.secret.as_ref(), &providers).unwrap_or_else(|e| {
                    issues.push(at("provider"), e, line_of(&raw.provider));
                    String::new()
                })
            } else {
                raw.provider.value.clone()
            };
            let provider = providers.get(&provider_name);
            if provider.is_none() && !provider_name.is_empty() {
                let known: Vec<&str> = providers.keys().map(String::as_str).collect();
                issues.push(
                    at("provider"),
                    format!(
                        "unknown provider \"{}\" (defined: {})",
                        raw.provider.value,
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                    line_of(&raw.provider),
                );
            }
            let mut labels = Vec::with_capacity(raw.labels.len());
            for (key, value) in raw.labels {
                if !is_valid_label_name(&key) {
                    issues.push(
                        format!("tokens[{i}].labels.{key}"),
                        format!("\"{key}\" is not a valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"),
                        line_of(&value),
                    );
                } else if RESERVED_LABELS.contains(&key.as_str()) {
                    issues.push(
                        format!("tokens[{i}].labels.{key}"),
                        format!(
                            "\"{key}\" is set by the exporter itself; choose another label name"
                        ),
                        line_of(&value),
                    );
                }
                labels.push((key, value.value));
            }
            let warning_before = issues
                .duration_of(&at("warning_before"), raw.warning_before.as_deref())
                .unwrap_or(global.thresholds.warning_before);
            let critical_before = issues
                .duration_of(&at("critical_before"), raw.critical_before.as_deref())
                .unwrap_or(global.thresholds.critical_before);
            if critical_before >= warning_before
                && (raw.warning_before.is_some() || raw.critical_before.is_some())
            {
                let line = raw
                    .critical_before
                    .as_deref()
                    .or(raw.warning_before.as_deref())
                    .map(|s| s.referenced.line());
                issues.push(
                    at("critical_before"),
                    format!(
                        "must be shorter than warning_before ({} >= {})",
                        humantime::format_duration(critical_before),
                        humantime::format_duration(warning_before)
                    ),
                    line,
                );
            }
            let probe_interval = issues
                .duration_of(&at("probe_interval"), raw.probe_interval.as_deref())
                .unwrap_or(global.probe_interval);
            let probe_timeout = issues
                .duration_of(&at("probe_timeout"), raw.probe_timeout.as_deref())
                .unwrap_or(global.probe_timeout);
            for (field, d, raw_d) in [
                ("probe_interval", probe_interval, &raw.probe_interval),
                ("probe_timeout", probe_timeout, &raw.probe_timeout),
            ] {
                if d.is_zero() {
                    issues.push(
                        at(field),
                        "must be greater than zero",
                        raw_d.as_ref().map(|s| s.referenced.line()),
                    );
                }
            }
            let spec = TokenSpec {
                name,
                provider: provider_name,
                source: None,
                secret: raw.secret,
                labels: label_sets.get(labels),
                thresholds: Thresholds {
                    warning_before,
                    critical_before,
                },
                probe_interval,
                probe_timeout,
                params: TokenParams {
                    token_type_hint: raw.token_type_hint,
                    audiences: raw.audiences,
                    accessor: raw.accessor,
                    expires_at: raw.expires_at,
                    issued_at: raw.issued_at,
                    key_id: raw.key_id,
                    access_key_id: raw.access_key_id,
                    access_key_id_file: raw.access_key_id_file,
                    session_token: raw.session_token.map(|s| *s),
                    email: raw.email,
                    username: raw.username,
                    last_used_at: None,
                    sliding_window_seconds: None,
                }
                .into(),
                policies: {
                    let over = raw.policies.unwrap_or_default();
                    let p = issues.policies(&at("policies"), &global.policies, &over);
                    if p == *shared_policies {
                        shared_policies.clone()
                    } else {
                        Arc::new(p)
                    }
                },
                metric_labels: Memo::default(),
            };
            if let Some(provider) = provider
                && let Err(e) = provider.check_token(&spec)
            {
                issues.push(format!("tokens[{i}]"), e, line_of(&raw.name));
            }
            if let Some(block) = raw.rotate {
                let (rotation, found) =
                    rotate::validate(&format!("tokens[{i}]"), &spec, provider, *block);
                issues.0.extend(found);
                if let Some(r) = rotation {
                    rotations.insert(spec.name.clone(), Arc::new(r));
                }
            }
            tokens.push(Arc::new(spec));
        }

        let sources = sources::validate(self.sources, &global, &providers, &mut issues);

        let (notify, notify_issues) =
            notify::validate(self.notifications, self.notifiers, self.routes, &tokens);
        issues.0.extend(notify_issues);

        if issues.0.is_empty() {
            Ok(Config {
                global,
                providers,
                tokens,
                notify,
                sources,
                rotations,
                rotation_keys: Arc::default(),
            })
        } else {
            Err(ConfigError {
                file: None,
                issues: issues.0,
            })
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod hardening_tests;
