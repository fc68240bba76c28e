//! The inventory file: raw serde structs, then `validate()` into a typed [`Config`].
//! Reads one file from disk; everything else here is pure.
//!
//! Every error names the field path and the line, e.g.
//! `tokens[2].provider: unknown provider "gihtub" (line 14)`, and all semantic errors of a
//! file are reported at once so a user fixes them in one pass.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::{MessageFormatter, Spanned};

use crate::model::Thresholds;
use crate::provider::ProviderConfig;
use crate::secret::SecretSource;

/// The largest config file accepted. An inventory of 100,000 tokens fits well below it.
pub const MAX_CONFIG_BYTES: u64 = 64 * 1024 * 1024;

/// Labels the exporter sets itself on `api_token_info`; the inventory may not reuse them.
pub const RESERVED_LABELS: [&str; 8] = [
    "token",
    "provider",
    "kind",
    "fingerprint",
    "subject",
    "verified",
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
    /// `notifications`, `notifiers` and `routes`: direct notifications (see `crate::notify`).
    pub notify: crate::notify::config::NotifyConfig,
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

/// One token of the inventory.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenSpec {
    pub name: String,
    pub provider: String,
    pub secret: Option<SecretSource>,
    pub labels: Labels,
    pub thresholds: Thresholds,
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    pub params: Params,
    /// Hygiene policies for this token: `global.policies` with this token's overrides. Tokens
    /// without overrides share one copy.
    pub policies: Arc<Policies>,
    /// The token's label text in `/metrics`, escaped on the first scrape and kept for the
    /// spec's life (a reload makes new specs). Ignored when specs are compared.
    pub metric_labels: Memo<crate::metrics::TokenLabels>,
}

/// A token's inventory labels, sorted by name. A slice, not a `BTreeMap`: a map allocates a
/// 544-byte node for the usual two labels, and there is one per token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels(Box<[(String, String)]>);

impl Labels {
    pub fn get(&self, name: &str) -> Option<&String> {
        let i = self
            .0
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .ok()?;
        Some(&self.0[i].1)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.0.iter().cloned().collect()
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(map: BTreeMap<String, String>) -> Self {
        Labels(map.into_iter().collect())
    }
}

impl std::ops::Index<&str> for Labels {
    type Output = String;
    fn index(&self, name: &str) -> &String {
        self.get(name).expect("no such label")
    }
}

/// A value computed once from the rest of a struct. It compares equal whatever it holds, so
/// it never makes two otherwise equal specs differ.
#[derive(Clone, Debug)]
pub struct Memo<T>(std::sync::OnceLock<T>);

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Memo(std::sync::OnceLock::new())
    }
}

impl<T> Memo<T> {
    pub fn get_or_init(&self, f: impl FnOnce() -> T) -> &T {
        self.0.get_or_init(f)
    }

    /// The value, if computed already.
    pub fn get(&self) -> Option<&T> {
        self.0.get()
    }
}

impl<T> PartialEq for Memo<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Token hygiene policies. Each configured policy yields a finding for every token it applies
/// to (see `policy.rs`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policies {
    /// Rotation discipline: the token must be younger than this.
    pub max_age: Option<Duration>,
    /// Least privilege: every scope the token holds must be in this list.
    pub allowed_scopes: Option<Vec<String>>,
    /// Scopes (or Vault policies) the token must not hold.
    pub forbidden_scopes: Vec<String>,
    /// Identity assertions: what the provider must report about the token.
    pub expect: Expect,
    /// A token that never expires violates.
    pub require_expiry: bool,
    /// A token unused for longer than this violates (where the provider reports last use).
    pub max_unused: Option<Duration>,
}

/// Identity the provider must report, compared as exact strings.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub subject: Option<String>,
    pub client_id: Option<String>,
    /// The account, team or organisation the provider reports (`extra.account`, or Slack's
    /// `team_id`, or Cloudflare's account).
    pub account: Option<String>,
    pub issuer: Option<String>,
    /// One audience the token must carry.
    pub audience: Option<String>,
}

/// A token's [`TokenParams`], allocated only when one is set (most tokens have none, and the
/// struct is 120 bytes). Reads as a `TokenParams` either way.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params(Option<Box<TokenParams>>);

static NO_PARAMS: TokenParams = TokenParams {
    token_type_hint: None,
    audiences: None,
    accessor: None,
    expires_at: None,
    issued_at: None,
};

impl std::ops::Deref for Params {
    type Target = TokenParams;
    fn deref(&self) -> &TokenParams {
        self.0.as_deref().unwrap_or(&NO_PARAMS)
    }
}

impl From<TokenParams> for Params {
    fn from(p: TokenParams) -> Self {
        Params((p != NO_PARAMS).then(|| Box::new(p)))
    }
}

/// Per-token settings that only some provider kinds use. Each provider's `check_token`
/// refuses the ones it does not understand, so a misplaced setting fails loudly.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct TokenParams {
    /// RFC 7662 `token_type_hint` (`access_token` or `refresh_token`).
    pub token_type_hint: Option<String>,
    /// Audiences a JWT or a Kubernetes token must carry.
    pub audiences: Option<Vec<String>>,
    /// Vault token accessor: look the token up without its secret.
    pub accessor: Option<String>,
    /// Declared expiry for the `static` provider (RFC 3339 or `YYYY-MM-DD`).
    pub expires_at: Option<String>,
    /// Declared issue time for the `static` provider.
    pub issued_at: Option<String>,
}

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Field path, e.g. `tokens[2].provider`; empty for the document itself.
    pub path: String,
    pub message: String,
    pub line: Option<u64>,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

/// Everything wrong with a config file; `Display` prints one issue per line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: Option<String>,
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            if let Some(file) = &self.file {
                write!(f, "{file}: ")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl ConfigError {
    fn single(path: &str, message: impl Into<String>, line: Option<u64>) -> Self {
        ConfigError {
            file: None,
            issues: vec![ConfigIssue {
                path: path.to_string(),
                message: message.into(),
                line,
            }],
        }
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let with_file = |mut e: ConfigError| {
            e.file = Some(shown.clone());
            e
        };
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

    pub fn token(&self, name: &str) -> Option<&TokenSpec> {
        self.tokens.iter().find(|t| t.name == name).map(|t| &**t)
    }
}

/// The decode limits. serde-saphyr's default node budget (250,000) refused any inventory
/// over about 16,600 tokens. A token takes about 170 bytes and 15 nodes, so a file at
/// MAX_CONFIG_BYTES holds some 400,000 tokens and 6 million nodes: the node and event budgets
/// follow that cap with room to spare.
///
/// Aliases and merge keys are where a small file becomes a large document ("billion laughs"),
/// so they get budgets an inventory never needs but that stop an expansion bomb after a few
/// milliseconds: anchors are for sharing a provider block or a label set, not for building
/// thousands of nodes. Web config files are small and should use the same limits.
pub fn decode_options() -> serde_saphyr::options::Options {
    let mut options = serde_saphyr::options::Options::default();
    // Snippets quote the source, and the source may hold a token written by mistake.
    options.with_snippet = false;
    let mut budget = serde_saphyr::budget::Budget::default();
    budget.max_nodes = MAX_CONFIG_BYTES as usize / 8;
    budget.max_events = MAX_CONFIG_BYTES as usize / 4;
    budget.max_aliases = MAX_ALIASES;
    budget.max_merge_keys = MAX_MERGE_KEYS;
    budget.max_recorded_anchor_events = MAX_RECORDED_ANCHOR_EVENTS;
    budget.max_recorded_anchor_bytes = MAX_RECORDED_ANCHOR_BYTES;
    // The alias-to-anchor ratio heuristic refuses one label block shared by more than ten
    // tokens, which is what anchors are for; the expansion budgets above bound the cost.
    budget.enforce_alias_anchor_ratio = false;
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = MAX_REPLAYED_EVENTS;
    options
}

/// The most `*alias` references a config may hold.
pub const MAX_ALIASES: usize = 10_000;
/// The most `<<:` merge keys a config may hold.
pub const MAX_MERGE_KEYS: usize = 10_000;
/// The most YAML events that aliases and merges may add to a config, all together. Sharing a
/// 12-event label block with 20,000 tokens stays below it.
pub const MAX_REPLAYED_EVENTS: usize = 250_000;
/// The most YAML events anchors may hold, all together.
pub const MAX_RECORDED_ANCHOR_EVENTS: usize = 10_000;

/// The most bytes of text that anchors may hold copies of, all together.
pub const MAX_RECORDED_ANCHOR_BYTES: usize = 4 * 1024 * 1024;

/// Decodes YAML into the raw structs; a failure carries the field path and the line.
fn decode(text: &str) -> Result<RawConfig, ConfigError> {
    let mut path = String::new();
    let mut last_key: Option<String> = None;
    let mut run = |kinds: Option<tagged::Kinds>| {
        tagged::with_kinds(kinds, || {
            serde_saphyr::with_deserializer_from_str_with_options(text, decode_options(), |de| {
                let mut track = serde_path_to_error::Track::new();
                let tracked = serde_path_to_error::Deserializer::new(de, &mut track);
                let out = Option::<RawConfig>::deserialize(tracked);
                if out.is_err() {
                    let p = track.path();
                    path = p.to_string();
                    // The path ends with the key being read when a key is refused. A key
                    // under a secret source may be a token: it is cut off the path.
                    last_key = match p.iter().next_back() {
                        Some(serde_path_to_error::Segment::Map { key }) => Some(key.clone()),
                        _ => None,
                    };
                }
                out
            })
        })
    };
    // Most files write `kind` first in every entry and decode in one pass; the first entry
    // that does not asks for the pass that reads every kind first (see `tagged`).
    let result = match run(None) {
        Err(e) if e.to_string().contains(tagged::NEED_KINDS) => run(Some(tagged::kinds(text))),
        other => other,
    };
    let raw = result.map_err(|err| {
        let message = scrub(&serde_saphyr::UserMessageFormatter.format_message(&err));
        if message.contains(crate::secret::UNKNOWN_SECRET_KEY_MESSAGE)
            && let Some(key) = &last_key
        {
            path = path
                .strip_suffix(&format!(".{key}"))
                .map(str::to_string)
                .unwrap_or_default();
        }
        let message = if message.contains("budget breached")
            || message.contains("replay limit")
            || message.contains("too large or too complex")
        {
            format!(
                "{message}: anchors, aliases and merge keys may not expand the file by more than \
                 {MAX_REPLAYED_EVENTS} events ({MAX_RECORDED_ANCHOR_EVENTS} inside anchors, \
                 {MAX_ALIASES} aliases, {MAX_MERGE_KEYS} merge keys)"
            )
        } else {
            message
        };
        // `Spanned` wraps values in a `value` field; it is not part of the user's file.
        let path = path.replace(".value", "");
        // A syntax error has no meaningful field path.
        let path = if path == "." || path.contains('?') {
            String::new()
        } else {
            path
        };
        let message = if path.starts_with("notifiers.") && path.ends_with(".kind") {
            message.replace("unknown variant", "unknown notifier kind")
        } else if path.ends_with(".kind") {
            message.replace("unknown variant", "unknown provider kind")
        } else {
            message
        };
        ConfigError::single(&path, message, err.location().map(|l| l.line()))
    })?;
    // An empty document is what a truncated or half-written file looks like; taking it as
    // "no tokens" would silently drop the whole inventory at the next reload.
    raw.ok_or_else(|| ConfigError::single("", EMPTY_DOCUMENT_MESSAGE, None))
}

/// The error for an empty file, only comments, `---` alone or `null`.
pub const EMPTY_DOCUMENT_MESSAGE: &str = "the config file is empty: it holds no providers and no \
     tokens (a truncated write?); write `tokens: []` to run without tokens on purpose";

/// Kind-tagged entries (`providers`, `notifiers`) decoded in two steps.
///
/// serde's internally tagged enums buffer an entry into serde's `Content` before they know
/// its kind, and the buffer types every plain scalar the YAML 1.1 way (`12345` a number,
/// `no` a boolean) and loses the field path: a string field then refuses `client_id: 12345`
/// without saying where. Instead, [`kinds`] reads each entry's `kind` in a first pass, and
/// the second pass decodes each entry straight into its kind's struct ([`Tagged::decode`]),
/// through the tracked map access, so string fields take plain scalars and every error
/// names `providers.<name>.<field>` and its line.
pub(crate) mod tagged {
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::fmt;

    use serde::Deserialize;
    use serde::de::{
        self, DeserializeSeed, Deserializer, IgnoredAny, IntoDeserializer, MapAccess, Visitor,
    };

    /// Where entries of a kind live in the file.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub enum Section {
        Providers,
        Notifiers,
    }

    impl Section {
        fn key(self) -> &'static str {
            match self {
                Section::Providers => "providers",
                Section::Notifiers => "notifiers",
            }
        }
    }

    /// A kind-tagged config entry.
    pub trait Tagged: Sized {
        /// The `kind:` values, in the order errors list them.
        const KINDS: &'static [&'static str];
        const SECTION: Section;
        /// Decodes the entry's other fields (`kind` removed) as `kind`'s struct.
        fn decode<'de, A: MapAccess<'de>>(kind: &str, fields: A) -> Result<Self, A::Error>;
    }

    /// Each section's kinds in document order (`None`: no readable `kind`).
    #[derive(Default)]
    pub struct Kinds {
        providers: VecDeque<Option<String>>,
        notifiers: VecDeque<Option<String>>,
    }

    impl Kinds {
        fn of(&mut self, section: Section) -> &mut VecDeque<Option<String>> {
            match section {
                Section::Providers => &mut self.providers,
                Section::Notifiers => &mut self.notifiers,
            }
        }
    }

    /// The error an entry gives, in a decode without [`kinds`], when `kind` is not its first
    /// key: the caller runs [`kinds`] and decodes again.
    pub const NEED_KINDS: &str = "internal: entry kinds needed first";

    /// What a decode knows of the entries' kinds.
    enum State {
        /// Not inside [`with_kinds`]: `kind` must be an entry's first key.
        Outside,
        /// A decode without the first pass: an entry whose first key is not `kind` fails
        /// with [`NEED_KINDS`].
        FirstKeyOnly,
        /// A decode after the first pass.
        Known(Kinds),
    }

    thread_local! {
        static STATE: RefCell<State> = const { RefCell::new(State::Outside) };
    }

    /// Runs `f`, a decode, with the kinds of the first pass, or without (see [`NEED_KINDS`]).
    pub fn with_kinds<R>(kinds: Option<Kinds>, f: impl FnOnce() -> R) -> R {
        let state = match kinds {
            Some(k) => State::Known(k),
            None => State::FirstKeyOnly,
        };
        STATE.with(|slot| *slot.borrow_mut() = state);
        let out = f();
        STATE.with(|slot| *slot.borrow_mut() = State::Outside);
        out
    }

    /// The next entry's kind from the first pass (`Some(None)`: none readable), or `None`
    /// without a first pass; and whether a misplaced `kind` asks for one.
    fn next_kind(section: Section) -> (Option<Option<String>>, bool) {
        STATE.with(|slot| match &mut *slot.borrow_mut() {
            State::Outside => (None, false),
            State::FirstKeyOnly => (None, true),
            State::Known(k) => (Some(k.of(section).pop_front().flatten()), false),
        })
    }

    /// The second pass for one entry.
    pub fn deserialize<'de, T: Tagged, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        let (known, ask) = next_kind(T::SECTION);
        d.deserialize_map(EntryVisitor::<T> {
            kind: known.flatten(),
            ask_for_kinds: ask,
            tagged: std::marker::PhantomData,
        })
    }

    struct EntryVisitor<T> {
        kind: Option<String>,
        ask_for_kinds: bool,
        tagged: std::marker::PhantomData<T>,
    }

    impl<'de, T: Tagged> Visitor<'de> for EntryVisitor<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a mapping with a `kind`")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
            let kind = match self.kind {
                Some(kind) if T::KINDS.contains(&kind.as_str()) => kind,
                Some(_) => {
                    // An unknown kind: read up to `kind` so that the error names its path.
                    while let Some(key) = map.next_key::<String>()? {
                        if key == "kind" {
                            map.next_value_seed(KindSeed(T::KINDS))?;
                        } else {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                    return Err(de::Error::missing_field("kind"));
                }
                None => {
                    // No kind from the first pass: `kind` is missing or not a string, or the
                    // first pass has not run, or the entry is decoded on its own, where
                    // `kind` must come first.
                    let mut first = true;
                    loop {
                        let key = map.next_key::<String>()?;
                        if first && self.ask_for_kinds && key.as_deref() != Some("kind") {
                            return Err(de::Error::custom(NEED_KINDS));
                        }
                        match key {
                            None => return Err(de::Error::missing_field("kind")),
                            Some(key) if key == "kind" => {
                                let kind = map.next_value_seed(KindSeed(T::KINDS))?;
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
            T::decode(&kind, SkipKind(map))
        }
    }

    /// The value of `kind`, refused with the list of kinds when unknown.
    struct KindSeed(&'static [&'static str]);

    impl<'de> DeserializeSeed<'de> for KindSeed {
        type Value = String;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
            let kind = String::deserialize(d)?;
            if !self.0.contains(&kind.as_str()) {
                return Err(de::Error::unknown_variant(&kind, self.0));
            }
            Ok(kind)
        }
    }

    /// The entry's keys without `kind`, which the kind's struct does not know. Keys go
    /// through the caller's `MapAccess`, so the path tracker sees every key and value.
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

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
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

    /// The first pass: the `kind` of every entry of each section, in document order. It stops
    /// (by returning an error on purpose) once both sections are read, so an inventory written
    /// after them is not parsed twice. Any problem yields what was read so far: the second
    /// pass reports errors with their path and line.
    pub fn kinds(text: &str) -> Kinds {
        const STOP: &str = "sections read";

        struct Top<'a>(&'a mut Kinds);
        impl<'de> Visitor<'de> for Top<'_> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
                let mut seen = 0;
                while let Some(key) = map.next_key::<String>()? {
                    let section = [Section::Providers, Section::Notifiers]
                        .into_iter()
                        .find(|s| s.key() == key);
                    match section {
                        Some(section) => {
                            map.next_value_seed(Entries(self.0.of(section)))?;
                            seen += 1;
                            if seen == 2 {
                                return Err(de::Error::custom(STOP));
                            }
                        }
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(())
            }
        }
        impl<'de> DeserializeSeed<'de> for Top<'_> {
            type Value = ();
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_map(self)
            }
        }

        struct Entries<'a>(&'a mut VecDeque<Option<String>>);
        impl<'de> DeserializeSeed<'de> for Entries<'_> {
            type Value = ();
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_map(self)
            }
        }
        impl<'de> Visitor<'de> for Entries<'_> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
                while map.next_key::<IgnoredAny>()?.is_some() {
                    let kind = map.next_value::<KindOf>()?;
                    self.0.push_back(kind.0);
                }
                Ok(())
            }
        }

        /// An entry's `kind` when it is a mapping with a string `kind`; `None` otherwise.
        struct KindOf(Option<String>);
        impl<'de> Deserialize<'de> for KindOf {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(KindVisitor)
            }
        }
        struct KindVisitor;
        impl<'de> Visitor<'de> for KindVisitor {
            type Value = KindOf;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("anything")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KindOf, A::Error> {
                let mut kind = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "kind" && kind.is_none() {
                        kind = Some(map.next_value::<String>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(KindOf(kind))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<KindOf, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(KindOf(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<KindOf, E> {
                Ok(KindOf(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<KindOf, E> {
                Ok(KindOf(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<KindOf, E> {
                Ok(KindOf(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<KindOf, E> {
                Ok(KindOf(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<KindOf, E> {
                Ok(KindOf(None))
            }
            fn visit_unit<E>(self) -> Result<KindOf, E> {
                Ok(KindOf(None))
            }
            fn visit_none<E>(self) -> Result<KindOf, E> {
                Ok(KindOf(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<KindOf, D::Error> {
                KindOf::deserialize(d)
            }
        }

        let mut kinds = Kinds::default();
        let _ = serde_saphyr::with_deserializer_from_str_with_options(
            text,
            super::decode_options(),
            |de| DeserializeSeed::deserialize(Top(&mut kinds), de),
        );
        kinds
    }
}

/// Serde quotes the offending value in "invalid type/value" messages. A config value in the
/// wrong place may be a token, so the quoted part is dropped.
pub(crate) fn scrub(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find("string \"") {
        out.push_str(&rest[..i + "string".len()]);
        let after = &rest[i + "string \"".len()..];
        match after.find('"') {
            Some(end) => rest = &after[end + 1..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

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

/// Durations as people write them: `30s`, `5m`, `14d`, `1h 30m`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration \"{text}\": {e} (use e.g. 30s, 5m, 14d)"))?;
    Ok(d)
}

/// Serde helper for optional durations inside raw structs.
pub(crate) mod duration_opt {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        // Only secret sources use this, and nothing under `secret:` is quoted back.
        text.map(|t| {
            super::parse_duration(&t)
                .map_err(|_| serde::de::Error::custom("invalid duration (use e.g. 30s, 5m, 14d)"))
        })
        .transpose()
    }
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
    notifications: Option<crate::notify::config::RawSettings>,
    #[serde(default)]
    notifiers: BTreeMap<String, Spanned<crate::notify::config::NotifierConfig>>,
    #[serde(default)]
    routes: Vec<crate::notify::config::RawRoute>,
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
/// `max_age` and `max_unused` also take `off` to switch an inherited policy off.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicies {
    max_age: Option<Spanned<String>>,
    allowed_scopes: Option<Vec<String>>,
    forbidden_scopes: Option<Vec<String>>,
    expect: Option<Expect>,
    require_expiry: Option<bool>,
    max_unused: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: Spanned<String>,
    provider: Spanned<String>,
    #[serde(default)]
    secret: Option<SecretSource>,
    #[serde(default)]
    labels: BTreeMap<String, Spanned<String>>,
    warning_before: Option<Spanned<String>>,
    critical_before: Option<Spanned<String>>,
    probe_interval: Option<Spanned<String>>,
    probe_timeout: Option<Spanned<String>>,
    token_type_hint: Option<String>,
    audiences: Option<Vec<String>>,
    accessor: Option<String>,
    expires_at: Option<String>,
    issued_at: Option<String>,
    #[serde(default)]
    policies: RawPolicies,
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
        let raw = raw.as_ref()?;
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
        let mut tokens = Vec::with_capacity(self.tokens.len());
        let shared_policies = Arc::new(global.policies.clone());
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
            let provider = providers.get(&raw.provider.value);
            if provider.is_none() {
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
            let mut labels = BTreeMap::new();
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
                labels.insert(key, value.value);
            }
            let warning_before = issues
                .duration(&at("warning_before"), &raw.warning_before)
                .unwrap_or(global.thresholds.warning_before);
            let critical_before = issues
                .duration(&at("critical_before"), &raw.critical_before)
                .unwrap_or(global.thresholds.critical_before);
            if critical_before >= warning_before
                && (raw.warning_before.is_some() || raw.critical_before.is_some())
            {
                let line = raw
                    .critical_before
                    .as_ref()
                    .or(raw.warning_before.as_ref())
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
                .duration(&at("probe_interval"), &raw.probe_interval)
                .unwrap_or(global.probe_interval);
            let probe_timeout = issues
                .duration(&at("probe_timeout"), &raw.probe_timeout)
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
                provider: raw.provider.value.clone(),
                secret: raw.secret,
                labels: labels.into(),
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
                }
                .into(),
                policies: {
                    let p = issues.policies(&at("policies"), &global.policies, &raw.policies);
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
            tokens.push(Arc::new(spec));
        }

        let (notify, notify_issues) = crate::notify::config::validate(
            self.notifications,
            self.notifiers,
            self.routes,
            &tokens,
        );
        issues.0.extend(notify_issues);

        if issues.0.is_empty() {
            Ok(Config {
                global,
                providers,
                tokens,
                notify,
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
