//! The typed token spec: what the inventory says about one token, after validation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::model::Thresholds;
use crate::secret::SecretSource;

/// One token of the inventory.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenSpec {
    pub name: String,
    pub provider: String,
    /// The source that listed the token (`sources:`), `None` for a configured one.
    pub source: Option<Arc<str>>,
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
    pub metric_labels: Memo<TokenLabels>,
}

/// A token's inventory labels, sorted by name. A slice, not a `BTreeMap`: a map allocates a
/// 544-byte node for the usual two labels, and there is one per token. Shared: tokens with
/// the same labels (a team, an owner, a source's) hold one copy ([`LabelSets`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Labels(Arc<[(String, String)]>);

impl Labels {
    /// Labels from a list already sorted by name, without duplicates.
    pub fn sorted(list: Vec<(String, String)>) -> Self {
        debug_assert!(list.windows(2).all(|w| w[0].0 < w[1].0));
        Labels(list.into())
    }

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

/// A token's `labels:` map as a list sorted by name, a later duplicate replacing an earlier
/// one as a map's would: a `BTreeMap` allocates a node of eleven entries for the usual two.
pub fn label_list<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<(String, serde_saphyr::Spanned<String>)>, D::Error> {
    struct List;
    impl<'de> serde::de::Visitor<'de> for List {
        type Value = Vec<(String, serde_saphyr::Spanned<String>)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut list: Self::Value = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
            while let Some(entry) = map.next_entry::<String, serde_saphyr::Spanned<String>>()? {
                list.push(entry);
            }
            // Stable: equal names keep the file's order, and the last of them stays.
            list.sort_by(|a, b| a.0.cmp(&b.0));
            let mut kept: Self::Value = Vec::with_capacity(list.len());
            for entry in list {
                match kept.last_mut() {
                    Some(last) if last.0 == entry.0 => *last = entry,
                    _ => kept.push(entry),
                }
            }
            Ok(kept)
        }
    }
    d.deserialize_map(List)
}

impl std::borrow::Borrow<[(String, String)]> for Labels {
    fn borrow(&self) -> &[(String, String)] {
        &self.0
    }
}

/// The distinct label sets of an inventory: each token's [`Labels`] is the one copy of its
/// set, so an inventory of many tokens and few teams and owners holds few sets.
#[derive(Default)]
pub struct LabelSets(std::collections::HashSet<Labels>);

impl LabelSets {
    /// The shared copy of `list` (sorted by name, without duplicates).
    pub fn get(&mut self, list: Vec<(String, String)>) -> Labels {
        if let Some(l) = self.0.get(list.as_slice()) {
            return l.clone();
        }
        let l = Labels::sorted(list);
        self.0.insert(l.clone());
        l
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
#[derive(Clone, Debug, PartialEq)]
pub struct Policies {
    /// Rotation discipline: the token must be younger than this.
    pub max_age: Option<Duration>,
    /// `max_age` for tokens whose provider says they never expire (`ExpiryModel::AgeOnly`),
    /// where `max_age` is not set: such a key is otherwise watched by nothing.
    pub age_only_max_age: Option<Duration>,
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

/// The default `age_only_max_age`: the age after which the common rotation guidance (AWS's,
/// CIS's) calls a key that never expires overdue.
pub const AGE_ONLY_MAX_AGE: Duration = Duration::from_secs(90 * 86_400);

impl Default for Policies {
    /// Nothing configured, but the age policy for tokens that never expire.
    fn default() -> Self {
        Policies {
            max_age: None,
            age_only_max_age: Some(AGE_ONLY_MAX_AGE),
            allowed_scopes: None,
            forbidden_scopes: Vec::new(),
            expect: Expect::default(),
            require_expiry: false,
            max_unused: None,
        }
    }
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
/// struct is several times a pointer's size). Reads as a `TokenParams` either way.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params(Option<Box<TokenParams>>);

static NO_PARAMS: TokenParams = TokenParams {
    token_type_hint: None,
    audiences: None,
    accessor: None,
    expires_at: None,
    issued_at: None,
    key_id: None,
    access_key_id: None,
    access_key_id_file: None,
    session_token: None,
    email: None,
    username: None,
    last_used_at: None,
    sliding_window_seconds: None,
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
    /// Entra ID: the `keyId` of the app credential the secret is, when its first characters
    /// do not tell it from the app's other secrets.
    pub key_id: Option<String>,
    /// AWS: the access key ID of the key pair whose secret access key is the secret.
    pub access_key_id: Option<String>,
    /// AWS: a file holding the access key ID instead, read at each probe, so a rotation
    /// (`aws_rotate`, which rewrites it) is followed without a reload.
    pub access_key_id_file: Option<String>,
    /// AWS: where the session token of temporary credentials is read from (a secret too).
    pub session_token: Option<SecretSource>,
    /// Atlassian: the email address of the account the API token belongs to (basic auth
    /// sends the two together).
    pub email: Option<String>,
    /// Docker Hub: the account a token authenticates as (the user of a personal access
    /// token, the organization of an organization access token).
    pub username: Option<String>,
    /// The last use a source's listing states, for the `static` provider (RFC 3339). Set by
    /// sources only: a config file cannot write it.
    pub last_used_at: Option<String>,
    /// A listed token whose expiry moves with each use (Okta's `tokenWindow`): the `static`
    /// provider reports the `sliding` expiry model with this window. Set by sources only.
    pub sliding_window_seconds: Option<u64>,
}

/// A token's label text, escaped once per spec ([`TokenSpec::metric_labels`]): the
/// 17 series of a token carry `series`, and `api_token_info` adds `inventory`. Kept with the
/// spec so a scrape neither escapes the same text again nor chases each token's scattered
/// strings: the labels only change when the inventory does.
#[derive(Clone, Debug)]
pub struct TokenLabels {
    /// `token="...",provider="..."`.
    pub(crate) series: Box<str>,
    /// `,key="value"` for each of the inventory's labels.
    pub(crate) inventory: Box<str>,
}
