//! Validation of a token's `rotate:` block (shape in [`crate::schema::rotate`]). Pure;
//! `crate::config` calls [`validate`] so a rotation mistake is reported with every other
//! config issue, with its path and line, and names the token.

use std::path::PathBuf;
use std::time::Duration;

use serde_saphyr::Spanned;

use crate::config::{ConfigIssue, TokenSpec, parse_duration};
use crate::provider::ProviderConfig;
use crate::schema::rotate::{
    DEFAULT_FRACTION, Deliver, Endpoint, Oauth2Refresh, RawDeliver, RawRotate, RawRotator,
    RotateSpec, Rotator, When,
};
use crate::secret::SecretSource;

/// The rotator kinds, as `kind:` names them.
pub const ROTATORS: [&str; 8] = [
    "vault_renew",
    "oauth2_refresh",
    "gitlab_rotate",
    "aws_rotate",
    "cloudflare_roll",
    "slack_refresh",
    "github_app",
    "entra_id_password",
];

/// How long `aws_rotate` keeps the old key (inactive) before deleting it, by default.
pub const DEFAULT_RETIRE_AFTER: Duration = Duration::from_secs(86_400);

/// How long an `exec` delivery hook may run when its entry gives no `timeout`.
pub const DEFAULT_DELIVER_TIMEOUT: Duration = Duration::from_secs(10);

/// The provider kinds whose tokens each rotator can renew or replace.
fn provider_kinds(rotator: &str) -> &'static [&'static str] {
    match rotator {
        "vault_renew" => &["vault"],
        "oauth2_refresh" => &["oauth2_introspection", "jwt"],
        "gitlab_rotate" => &["gitlab"],
        "aws_rotate" => &["aws"],
        "cloudflare_roll" => &["cloudflare"],
        "slack_refresh" => &["slack"],
        "github_app" => &["github"],
        "entra_id_password" => &["entra_id"],
        _ => &[],
    }
}

struct Check<'a> {
    at: &'a str,
    token: &'a str,
    issues: Vec<ConfigIssue>,
}

impl Check<'_> {
    fn push(&mut self, field: &str, message: impl Into<String>, line: Option<u64>) {
        let path = if field.is_empty() {
            format!("{}.rotate", self.at)
        } else {
            format!("{}.rotate.{field}", self.at)
        };
        self.issues.push(ConfigIssue {
            path,
            message: format!("token \"{}\": {}", self.token, message.into()),
            line,
        });
    }
}

fn line<T>(s: &Spanned<T>) -> Option<u64> {
    Some(s.referenced.line())
}

/// Validates `raw` for `token` (whose provider is `provider`, when it exists). `at` is the
/// token's path (`tokens[3]`), `block_line` the line of its `rotate:` key.
pub fn validate(
    at: &str,
    token: &TokenSpec,
    provider: Option<&ProviderConfig>,
    raw: Spanned<RawRotate>,
) -> (Option<RotateSpec>, Vec<ConfigIssue>) {
    let block_line = line(&raw);
    let raw = raw.value;
    let mut c = Check {
        at,
        token: &token.name,
        issues: Vec::new(),
    };
    let when = match (&raw.before, &raw.before_fraction) {
        _ if raw.max_age.is_some() => {
            let m = raw.max_age.as_ref().expect("checked");
            if raw.before.is_some() || raw.before_fraction.is_some() {
                c.push(
                    "max_age",
                    "give one of before, before_fraction and max_age",
                    line(m),
                );
                None
            } else {
                match parse_duration(&m.value) {
                    Ok(d) if d.is_zero() => {
                        c.push("max_age", "must be greater than zero", line(m));
                        None
                    }
                    Ok(d) => Some(When::MaxAge(d)),
                    Err(e) => {
                        c.push("max_age", e, line(m));
                        None
                    }
                }
            }
        }
        (Some(_), Some(f)) => {
            c.push(
                "before_fraction",
                "give before or before_fraction, not both",
                line(f),
            );
            None
        }
        (Some(b), None) => match parse_duration(&b.value) {
            Ok(d) if d.is_zero() => {
                c.push("before", "must be greater than zero", line(b));
                None
            }
            Ok(d) => Some(When::Before(d)),
            Err(e) => {
                c.push("before", e, line(b));
                None
            }
        },
        (None, Some(f)) if !(f.value > 0.0 && f.value < 1.0) => {
            c.push(
                "before_fraction",
                "must be between 0 and 1 (the share of the lifetime left), e.g. 0.33",
                line(f),
            );
            None
        }
        (None, Some(f)) => Some(When::Fraction(f.value)),
        (None, None) => Some(When::Fraction(DEFAULT_FRACTION)),
    };
    let provider_kind = provider.map(ProviderConfig::kind);
    let rotator = match raw.rotator {
        Some(r) => rotator(&mut c, token, provider_kind, r),
        None if provider_kind == Some("vault") => Some(Rotator::VaultRenew { increment: None }),
        None if provider_kind.is_none() => None,
        None => {
            c.push(
                "rotator",
                format!(
                    "rotator is required for a {} token (one of: {}; vault tokens default to vault_renew)",
                    provider_kind.unwrap_or("?"),
                    ROTATORS.join(", ")
                ),
                block_line,
            );
            None
        }
    };
    if let (Some(Rotator::GitlabRotate { .. }), Some(ProviderConfig::Gitlab(g))) =
        (&rotator, provider)
        && g.token_type == crate::provider::gitlab::TokenType::Oauth
    {
        c.push(
            "rotator.kind",
            "gitlab_rotate rotates access tokens (glpat-...), not OAuth tokens (token_type: oauth)",
            block_line,
        );
    }
    if let (Some(Rotator::AwsRotate { .. }), Some(w)) = (&rotator, &when)
        && !matches!(w, When::MaxAge(_))
    {
        c.push(
            "max_age",
            "an AWS access key never expires: say when to rotate it by its age (max_age: 90d)",
            block_line,
        );
    }
    if let (Some(r), Some(w)) = (&rotator, &when) {
        saas::check_when(&mut c, r, w, block_line);
    }
    let mut deliver = Vec::new();
    for (i, d) in raw.deliver.into_iter().enumerate() {
        if let Some(d) = deliver_entry(&mut c, i, d) {
            deliver.push(d);
        }
    }
    if let Some(r) = &rotator {
        check_delivery(&mut c, token, r, &deliver, block_line);
    }
    let spec = match (when, rotator) {
        (Some(when), Some(rotator)) if c.issues.is_empty() => Some(RotateSpec {
            when,
            rotator,
            deliver,
            dry_run: raw.dry_run,
        }),
        _ => None,
    };
    (spec, c.issues)
}

fn rotator(
    c: &mut Check,
    token: &TokenSpec,
    provider_kind: Option<&str>,
    raw: Spanned<RawRotator>,
) -> Option<Rotator> {
    let at_line = line(&raw);
    let r = raw.value;
    let kind = r.kind.value.as_str();
    if !ROTATORS.contains(&kind) {
        c.push(
            "rotator.kind",
            format!(
                "unknown rotator kind \"{kind}\" (known: {})",
                ROTATORS.join(", ")
            ),
            line(&r.kind),
        );
        return None;
    }
    if let Some(pk) = provider_kind
        && !provider_kinds(kind).contains(&pk)
    {
        c.push(
            "rotator.kind",
            format!(
                "rotator {kind} cannot rotate a token of provider kind {pk} (it renews {} tokens)",
                provider_kinds(kind).join(" and ")
            ),
            line(&r.kind),
        );
        return None;
    }
    let fields: [(&str, bool); 16] = [
        ("credential", r.credential.is_some()),
        ("app_id", r.app_id.is_some()),
        ("installation_id", r.installation_id.is_some()),
        ("private_key", r.private_key.is_some()),
        ("repositories", r.repositories.is_some()),
        ("permissions", r.permissions.is_some()),
        ("display_name", r.display_name.is_some()),
        ("retire_after", r.retire_after.is_some()),
        ("expires_in", r.expires_in.is_some()),
        ("increment", r.increment.is_some()),
        ("token_endpoint", r.token_endpoint.is_some()),
        ("issuer", r.issuer.is_some()),
        ("client_id", r.client_id.is_some()),
        ("client_secret", r.client_secret.is_some()),
        ("refresh_token_file", r.refresh_token_file.is_some()),
        ("scope", r.scope.is_some()),
    ];
    let allowed: &[&str] = match kind {
        "vault_renew" => &["increment"],
        "gitlab_rotate" => &["expires_in"],
        "aws_rotate" => &["retire_after"],
        "cloudflare_roll" => &["credential"],
        "slack_refresh" => &["client_id", "client_secret", "refresh_token_file"],
        "github_app" => &[
            "app_id",
            "installation_id",
            "private_key",
            "repositories",
            "permissions",
        ],
        "entra_id_password" => &["expires_in", "display_name", "client_id", "client_secret"],
        _ => &[
            "token_endpoint",
            "issuer",
            "client_id",
            "client_secret",
            "refresh_token_file",
            "scope",
        ],
    };
    let mut ok = true;
    for (field, set) in fields {
        if set && !allowed.contains(&field) {
            c.push(
                &format!("rotator.{field}"),
                format!("rotator {kind} does not take {field}"),
                at_line,
            );
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    match kind {
        "vault_renew" => {
            if token.secret.is_none() {
                c.push(
                    "rotator",
                    "vault_renew renews with the token itself (auth/token/renew-self), so the token needs a secret, not only an accessor",
                    at_line,
                );
                return None;
            }
            let increment = match &r.increment {
                Some(s) => match parse_duration(&s.value) {
                    Ok(d) if d.as_secs() == 0 => {
                        c.push("rotator.increment", "must be at least one second", line(s));
                        return None;
                    }
                    Ok(d) => Some(d),
                    Err(e) => {
                        c.push("rotator.increment", e, line(s));
                        return None;
                    }
                },
                None => None,
            };
            Some(Rotator::VaultRenew { increment })
        }
        "gitlab_rotate" => {
            if token.secret.is_none() {
                c.push(
                    "rotator",
                    "gitlab_rotate rotates with the token itself (personal_access_tokens/self/rotate), so the token needs a secret",
                    at_line,
                );
                return None;
            }
            let expires_in = match &r.expires_in {
                Some(s) => match parse_duration(&s.value) {
                    Ok(d) if d.as_secs() < 86_400 => {
                        c.push(
                            "rotator.expires_in",
                            "must be at least 1d (GitLab sets expiry dates)",
                            line(s),
                        );
                        return None;
                    }
                    Ok(d) => Some(d),
                    Err(e) => {
                        c.push("rotator.expires_in", e, line(s));
                        return None;
                    }
                },
                None => None,
            };
            Some(Rotator::GitlabRotate { expires_in })
        }
        "aws_rotate" => {
            if token.params.access_key_id_file.is_none() {
                c.push(
                    "rotator",
                    "aws_rotate writes the new key's ID where the token reads it: give the token access_key_id_file (a file holding the ID) instead of access_key_id",
                    at_line,
                );
                return None;
            }
            if token.params.session_token.is_some() {
                c.push(
                    "rotator",
                    "aws_rotate rotates long-term access keys; temporary credentials (session_token) are not rotated",
                    at_line,
                );
                return None;
            }
            let retire_after = match &r.retire_after {
                Some(s) => match parse_duration(&s.value) {
                    Ok(d) => d,
                    Err(e) => {
                        c.push("rotator.retire_after", e, line(s));
                        return None;
                    }
                },
                None => DEFAULT_RETIRE_AFTER,
            };
            Some(Rotator::AwsRotate { retire_after })
        }
        "cloudflare_roll" => saas::cloudflare_roll(c, token, at_line, r),
        "slack_refresh" => saas::slack_refresh(c, token, at_line, r),
        "github_app" => identity::github_app(r, at_line)
            .map_err(|(field, e, l)| c.push(field, e, l))
            .ok(),
        "entra_id_password" => identity::entra_id_password(token, r, at_line)
            .map_err(|(field, e, l)| c.push(field, e, l))
            .ok(),
        _ => {
            let endpoint = match (&r.token_endpoint, &r.issuer) {
                (Some(_), Some(i)) => {
                    c.push(
                        "rotator.issuer",
                        "give token_endpoint or issuer, not both",
                        line(i),
                    );
                    return None;
                }
                (None, None) => {
                    c.push(
                        "rotator",
                        "oauth2_refresh needs token_endpoint or issuer",
                        at_line,
                    );
                    return None;
                }
                (Some(t), None) => checked_url(c, "rotator.token_endpoint", t)
                    .map(|u| Endpoint::Token(u.to_string()))?,
                (None, Some(i)) => checked_url(c, "rotator.issuer", i)
                    .map(|_| Endpoint::Issuer(i.value.clone()))?,
            };
            let Some(client_id) = r.client_id.filter(|s| !s.value.trim().is_empty()) else {
                c.push(
                    "rotator.client_id",
                    "oauth2_refresh needs client_id",
                    at_line,
                );
                return None;
            };
            let Some(file) = r.refresh_token_file.filter(|s| !s.value.trim().is_empty()) else {
                c.push(
                    "rotator.refresh_token_file",
                    "oauth2_refresh needs refresh_token_file: the file that holds the refresh token (replaced by each new one)",
                    at_line,
                );
                return None;
            };
            Some(Rotator::Oauth2Refresh(Box::new(Oauth2Refresh {
                endpoint,
                client_id: client_id.value,
                client_secret: r.client_secret,
                refresh_token_file: PathBuf::from(file.value),
                scope: r.scope,
            })))
        }
    }
}

fn checked_url(c: &mut Check, field: &str, s: &Spanned<String>) -> Option<url::Url> {
    match crate::provider::http::check_base_url(field, &s.value) {
        Ok(u) => Some(u),
        Err(e) => {
            c.push(field, e, line(s));
            None
        }
    }
}

fn deliver_entry(c: &mut Check, i: usize, raw: Spanned<RawDeliver>) -> Option<Deliver> {
    let at_line = line(&raw);
    let field = format!("deliver[{i}]");
    let d = raw.value;
    let given = [
        d.file.is_some(),
        d.exec.is_some(),
        d.vault_kv.is_some(),
        d.kubernetes_secret.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        c.push(
            &field,
            "each delivery is one of {file: PATH}, {exec: [COMMAND, ARG...]}, {vault_kv: {...}} or {kubernetes_secret: {...}}",
            at_line,
        );
        return None;
    }
    if d.timeout.is_some() && d.exec.is_none() {
        c.push(
            &format!("{field}.timeout"),
            "timeout applies only to exec",
            at_line,
        );
        return None;
    }
    if let Some(kv) = d.vault_kv {
        let kv_line = line(&kv);
        return super::rotate_targets::vault_kv(kv.value)
            .map_err(|e| c.push(&format!("{field}.vault_kv"), e, kv_line))
            .ok();
    }
    if let Some(k) = d.kubernetes_secret {
        let k_line = line(&k);
        return super::rotate_targets::kubernetes_secret(k.value)
            .map_err(|e| c.push(&format!("{field}.kubernetes_secret"), e, k_line))
            .ok();
    }
    match (d.file, d.exec) {
        (Some(_), Some(_)) | (None, None) => None,
        (Some(path), None) => {
            if path.trim().is_empty() {
                c.push(&format!("{field}.file"), "the path is empty", at_line);
                return None;
            }
            Some(Deliver::File(PathBuf::from(path)))
        }
        (None, Some(argv)) => {
            if argv.first().is_none_or(|p| p.trim().is_empty()) {
                c.push(
                    &format!("{field}.exec"),
                    "needs a command: [COMMAND, ARG...]",
                    at_line,
                );
                return None;
            }
            let timeout = match &d.timeout {
                Some(t) => match parse_duration(&t.value) {
                    Ok(d) if !d.is_zero() => d,
                    Ok(_) => {
                        c.push(
                            &format!("{field}.timeout"),
                            "must be greater than zero",
                            line(t),
                        );
                        return None;
                    }
                    Err(e) => {
                        c.push(&format!("{field}.timeout"), e, line(t));
                        return None;
                    }
                },
                None => DEFAULT_DELIVER_TIMEOUT,
            };
            Some(Deliver::Exec { argv, timeout })
        }
    }
}

/// A new value must reach where the token's own secret is read, or monitoring would keep
/// reading the old one; a renewal (same value) delivers nothing.
fn check_delivery(
    c: &mut Check,
    token: &TokenSpec,
    rotator: &Rotator,
    deliver: &[Deliver],
    block_line: Option<u64>,
) {
    if !rotator.issues_new_value() {
        if !deliver.is_empty() {
            c.push(
                "deliver",
                format!(
                    "{} keeps the token's value, so there is nothing to deliver",
                    rotator.kind()
                ),
                block_line,
            );
        }
        return;
    }
    if deliver.is_empty() {
        c.push(
            "deliver",
            format!(
                "{} issues a new value: say where it goes (deliver: [{{file: PATH}}] or [{{exec: [COMMAND]}}])",
                rotator.kind()
            ),
            block_line,
        );
        return;
    }
    if let Some(own) = rotator.refresh_token_file()
        && deliver
            .iter()
            .any(|d| matches!(d, Deliver::File(p) if p.as_path() == own))
    {
        c.push(
            "deliver",
            "the refresh token file is written by the rotator itself; deliver the access token elsewhere",
            block_line,
        );
    }
    if let (Rotator::AwsRotate { .. }, Some(id_file)) =
        (rotator, token.params.access_key_id_file.as_deref())
        && deliver
            .iter()
            .any(|d| matches!(d, Deliver::File(p) if p.as_path() == std::path::Path::new(id_file)))
    {
        c.push(
            "deliver",
            "access_key_id_file gets the new key's ID from the rotator itself; deliver the secret elsewhere",
            block_line,
        );
    }
    match &token.secret {
        Some(SecretSource::File(f)) => {
            if !deliver
                .iter()
                .any(|d| matches!(d, Deliver::File(p) if p == f.path()))
            {
                c.push(
                    "deliver",
                    format!(
                        "the token's secret is read from {}, which no deliver entry writes: monitoring would keep reading the old value (deliver to that file too, or read the secret where it is delivered, e.g. exec: [bao, kv, get, -field=KEY, MOUNT/PATH])",
                        f.path().display()
                    ),
                    block_line,
                );
            }
        }
        Some(SecretSource::Env(_)) => c.push(
            "deliver",
            "a secret read from an environment variable cannot follow a rotation; read it from the delivered file (or with exec from the delivered Vault KV secret)",
            block_line,
        ),
        // A command reads wherever the value was delivered (a hook's file, a Vault KV
        // secret, a Kubernetes Secret): its author's contract, proved by the test step,
        // which fails unless the source reads the delivered value.
        Some(SecretSource::Exec(_)) | None => {}
        // A source's token: rotation is configured on written tokens only.
        Some(SecretSource::Memory(_)) => {}
    }
}

mod identity;
mod saas;

#[cfg(test)]
mod tests;
