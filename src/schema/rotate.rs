//! A token's `rotate:` block: how it is written (the raw shape, decoded with spans so every
//! error names its line) and what it means once validated (`config::rotate` validates).
//! Off unless configured: a token without the block is never renewed, rotated or written.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::secret::SecretSource;

/// `rotate:` as written under a token. Cloned for each token a source discovers
/// (`sources::rotate`), which validates it again against that token.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRotate {
    /// Rotate once the token has this long left (`7d`).
    pub before: Option<Spanned<String>>,
    /// Or once this share of its lifetime is left (`0.33`), as cert-manager renews.
    pub before_fraction: Option<Spanned<f64>>,
    /// Or once the value is this old (`90d`): for values that never expire (AWS access
    /// keys), counted from the provider's creation time.
    pub max_age: Option<Spanned<String>>,
    /// How: the rotator and its settings. Vault tokens default to `vault_renew`.
    pub rotator: Option<Spanned<RawRotator>>,
    /// Where a new value goes.
    #[serde(default)]
    pub deliver: Vec<Spanned<RawDeliver>>,
    /// Plan and log every step, call nothing that writes.
    #[serde(default)]
    pub dry_run: bool,
}

/// `rotator:` as written. One struct for every kind: `config::rotate` refuses the fields a
/// kind does not take, naming them.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRotator {
    pub kind: Spanned<String>,
    /// `vault_renew`: the extension asked for (`increment`); the server may grant less.
    pub increment: Option<Spanned<String>>,
    /// `oauth2_refresh`: the token endpoint, or the issuer to discover it from.
    pub token_endpoint: Option<Spanned<String>>,
    pub issuer: Option<Spanned<String>>,
    pub client_id: Option<Spanned<String>>,
    pub client_secret: Option<SecretSource>,
    /// `oauth2_refresh`: the file holding the refresh token. Read before each refresh and
    /// replaced (same directory, fsync, rename) by the new one the server returns.
    pub refresh_token_file: Option<Spanned<String>>,
    /// `oauth2_refresh`: the `scope` parameter, when the grant should narrow it.
    pub scope: Option<String>,
    /// `gitlab_rotate`: the new token's lifetime (its `expires_at` is today plus this);
    /// GitLab's own default (a week) when absent.
    pub expires_in: Option<Spanned<String>>,
    /// `aws_rotate`: how long the old key stays (inactive) before it is deleted.
    pub retire_after: Option<Spanned<String>>,
    /// `cloudflare_roll`: the credential that makes the roll call (it needs "API Tokens
    /// Write"); the token itself when absent.
    pub credential: Option<SecretSource>,
    /// `github_app`: the app's client ID (`Iv23...`) or numeric app ID (the JWT's `iss`).
    pub app_id: Option<Spanned<String>>,
    /// `github_app`: the installation whose token is minted.
    pub installation_id: Option<Spanned<u64>>,
    /// `github_app`: the app's private key (PEM), which signs the app JWT.
    pub private_key: Option<SecretSource>,
    /// `github_app`: narrow the token to these repositories (names, without the owner).
    pub repositories: Option<Vec<String>>,
    /// `github_app`: narrow the token to these permissions (`contents: read`).
    pub permissions: Option<std::collections::BTreeMap<String, String>>,
    /// `entra_id_password`: the new secret's `displayName`.
    pub display_name: Option<Spanned<String>>,
}

/// One `deliver:` entry: `{file: PATH}`, `{exec: [COMMAND, ARG...], timeout: 10s}`,
/// `{vault_kv: {...}}` or `{kubernetes_secret: {...}}`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeliver {
    pub file: Option<String>,
    pub exec: Option<Vec<String>>,
    pub timeout: Option<Spanned<String>>,
    pub vault_kv: Option<Spanned<RawVaultKv>>,
    pub kubernetes_secret: Option<Spanned<RawKubernetesSecret>>,
}

/// `kubernetes_secret:` as written: one key of a Secret, and the workloads to restart.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKubernetesSecret {
    /// The API server and credentials, as the `kubernetes` kind names them (in-cluster
    /// defaults).
    pub url: Option<String>,
    pub token: Option<SecretSource>,
    pub ca_file: Option<PathBuf>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub key: Option<String>,
    /// Workloads whose pods read the Secret as env vars or subPath mounts, which never see
    /// an update: `[{kind: Deployment, name: web}]`.
    #[serde(default)]
    pub restart: Vec<RawWorkload>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkload {
    pub kind: String,
    pub name: String,
}

/// `vault_kv:` as written: one key of a KV v2 secret.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVaultKv {
    /// The server, as the `vault` kind names it; Vault's default when absent.
    pub url: Option<String>,
    pub namespace: Option<String>,
    /// The KV v2 engine's mount (`secret` when absent).
    pub mount: Option<String>,
    pub path: Option<String>,
    pub key: Option<String>,
    /// The exporter's token for the write: `read`, `create`, `update` on `{mount}/data/{path}`.
    pub token: Option<SecretSource>,
}

/// A validated `rotate:` block.
#[derive(Clone, Debug, PartialEq)]
pub struct RotateSpec {
    pub when: When,
    pub rotator: Rotator,
    pub deliver: Vec<Deliver>,
    pub dry_run: bool,
}

/// When a rotation is due.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum When {
    /// This long before the expiry.
    Before(Duration),
    /// When this share of the lifetime (issue to expiry) is left.
    Fraction(f64),
    /// Once the value is this old (from its issue time, else the last rotation, else first
    /// sight): for values without an expiry.
    MaxAge(Duration),
}

/// The default: renew with a third of the lifetime left (cert-manager's two thirds).
pub const DEFAULT_FRACTION: f64 = 1.0 / 3.0;

/// How a token is renewed or rotated.
#[derive(Clone, Debug, PartialEq)]
pub enum Rotator {
    /// Vault / OpenBao `auth/token/renew-self`: the value stays, nothing is delivered.
    VaultRenew { increment: Option<Duration> },
    /// RFC 6749 §6 refresh-token grant: a new access token, and a new refresh token when the
    /// server rotates them.
    Oauth2Refresh(Box<Oauth2Refresh>),
    /// GitLab `POST /api/v4/personal_access_tokens/self/rotate`: a new token, the old one
    /// revoked at once (no overlap); rotating again with the old one revokes the new one.
    GitlabRotate { expires_in: Option<Duration> },
    /// AWS IAM `CreateAccessKey` for the key's own user, then `UpdateAccessKey
    /// Status=Inactive` on the old key at finish and `DeleteAccessKey` once `retire_after`
    /// has passed. The key ID goes to the token's `access_key_id_file`.
    AwsRotate { retire_after: Duration },
    /// Cloudflare `PUT .../tokens/{id}/value`: a new value with the same id, permissions and
    /// expiry; the old value stops working at once (no overlap). `credential` makes the
    /// call when set, else the token itself.
    CloudflareRoll { credential: Option<SecretSource> },
    /// Slack `oauth.v2.access` with `grant_type=refresh_token`: a new 12-hour access token
    /// and a new refresh token (the one used is spent).
    SlackRefresh(Box<SlackRefresh>),
    /// GitHub App installation token minted with the app JWT (`POST
    /// /app/installations/{id}/access_tokens`): a new one-hour `ghs_` token; the old one
    /// just expires (nothing to retire).
    GithubApp(Box<GithubApp>),
    /// Entra ID `addPassword` on the app registration, then `removePassword` of the old
    /// secret at finish (secrets overlap until then).
    EntraIdPassword(Box<EntraIdPassword>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct SlackRefresh {
    pub client_id: String,
    pub client_secret: SecretSource,
    pub refresh_token_file: PathBuf,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GithubApp {
    pub app_id: String,
    pub installation_id: u64,
    pub private_key: SecretSource,
    pub repositories: Vec<String>,
    pub permissions: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EntraIdPassword {
    pub display_name: String,
    /// The new secret's `endDateTime` is the rotation's time plus this.
    pub expires_in: Duration,
    /// Another app (its client id and secret) that makes the Graph calls; `None`: the app
    /// itself, with its current secret.
    pub manager: Option<(String, SecretSource)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Oauth2Refresh {
    pub endpoint: Endpoint,
    pub client_id: String,
    pub client_secret: Option<SecretSource>,
    pub refresh_token_file: PathBuf,
    pub scope: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Endpoint {
    Token(String),
    Issuer(String),
}

impl Rotator {
    /// The name written in `kind:` and used as a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Rotator::VaultRenew { .. } => "vault_renew",
            Rotator::Oauth2Refresh(_) => "oauth2_refresh",
            Rotator::GitlabRotate { .. } => "gitlab_rotate",
            Rotator::AwsRotate { .. } => "aws_rotate",
            Rotator::CloudflareRoll { .. } => "cloudflare_roll",
            Rotator::SlackRefresh(_) => "slack_refresh",
            Rotator::GithubApp(_) => "github_app",
            Rotator::EntraIdPassword(_) => "entra_id_password",
        }
    }

    /// The waits between attempts of the test step, for providers whose new credential
    /// takes a moment to be accepted everywhere (IAM is eventually consistent): the test
    /// is repeated after each while the provider calls the new value invalid (IAM; Entra ID,
    /// where a new secret may be refused for a while after `addPassword`).
    pub fn settle_waits(&self) -> &'static [Duration] {
        const SETTLE: [Duration; 5] = [
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(4),
            Duration::from_secs(8),
            Duration::from_secs(15),
        ];
        match self {
            Rotator::AwsRotate { .. } | Rotator::EntraIdPassword(_) => &SETTLE,
            _ => &[],
        }
    }

    /// Whether a value whose expiry is unknown is replaced at once: a GitHub installation
    /// token is minted for free, and GitHub's answers about it never state its expiry.
    pub fn replaces_unknown(&self) -> bool {
        matches!(self, Rotator::GithubApp(_))
    }

    /// The file of the refresh token a refresh grant spends and replaces (`oauth2_refresh`,
    /// `slack_refresh`): the rotator's own, written before the access token's targets.
    pub fn refresh_token_file(&self) -> Option<&std::path::Path> {
        match self {
            Rotator::Oauth2Refresh(o) => Some(&o.refresh_token_file),
            Rotator::SlackRefresh(s) => Some(&s.refresh_token_file),
            _ => None,
        }
    }

    /// Whether the value changes (and so must be delivered).
    pub fn issues_new_value(&self) -> bool {
        !matches!(self, Rotator::VaultRenew { .. })
    }

    /// Whether repeating the provider call after a crash is harmless. A refresh grant is
    /// not: a second use of a rotated refresh token revokes the whole grant (RFC 9700). A
    /// GitHub installation token minted again is harmless: a token whose answer was lost
    /// expires within the hour and grants nothing more than the next one.
    pub fn idempotent(&self) -> bool {
        matches!(self, Rotator::VaultRenew { .. } | Rotator::GithubApp(_))
    }
}

/// Where a new value goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Deliver {
    /// Written to a temporary file in the same directory, fsynced, renamed over this path;
    /// the old file's mode and owner are kept.
    File(PathBuf),
    /// Run without a shell, the new value on its standard input, within `timeout`.
    Exec {
        argv: Vec<String>,
        timeout: Duration,
    },
    /// One key of a Vault / OpenBao KV v2 secret, written with check-and-set on the version
    /// read just before; the secret's other keys are kept.
    VaultKv(Box<VaultKv>),
    /// One key of a Kubernetes Secret, patched with the `resourceVersion` read as its
    /// precondition; then a restart annotation on each named workload.
    KubernetesSecret(Box<KubernetesSecret>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct KubernetesSecret {
    /// Without a trailing `/`.
    pub url: String,
    pub token: SecretSource,
    pub ca_file: Option<PathBuf>,
    pub namespace: String,
    pub name: String,
    pub key: String,
    /// (resource, name): `deployments`, `statefulsets` or `daemonsets` of `apps/v1`.
    pub restart: Vec<(&'static str, String)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VaultKv {
    /// Without a trailing `/`; a path prefix is kept.
    pub url: String,
    pub namespace: Option<String>,
    /// Without leading or trailing `/`.
    pub mount: String,
    pub path: String,
    pub key: String,
    pub token: SecretSource,
}

impl Deliver {
    /// How logs and the API name the target (a path or a program, never a value).
    pub fn describe(&self) -> String {
        match self {
            Deliver::File(p) => format!("file {}", p.display()),
            Deliver::Exec { argv, .. } => format!("exec {:?}", argv[0]),
            Deliver::KubernetesSecret(k) => format!(
                "kubernetes_secret {}/{} key {:?}",
                k.namespace, k.name, k.key
            ),
            Deliver::VaultKv(kv) => format!(
                "vault_kv {}/v1/{}/data/{} key {:?}",
                kv.url, kv.mount, kv.path, kv.key
            ),
        }
    }
}
