//! Validation of the identity rotators' settings: `github_app` (installation tokens minted
//! with the app's private key) and `entra_id_password` (an app registration's client secret).
//! Pure; `config::rotate` calls these once the kind and its fields are known to match. Each
//! error is (field under `rotate.`, message, line).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_saphyr::Spanned;

use crate::config::{TokenSpec, parse_duration};
use crate::provider::entra_id::is_guid;
use crate::schema::rotate::{EntraIdPassword, GithubApp, RawRotator, Rotator};

pub type Issue = (&'static str, String, Option<u64>);

fn line<T>(s: &Spanned<T>) -> Option<u64> {
    Some(s.referenced.line())
}

/// The levels GitHub's `permissions` body accepts.
const LEVELS: [&str; 3] = ["read", "write", "admin"];

/// GitHub refuses more repositories than this in one token request.
pub const MAX_REPOSITORIES: usize = 500;

/// The new secret's lifetime when `expires_in` is not given.
pub const DEFAULT_SECRET_LIFETIME: Duration = Duration::from_secs(180 * 86_400);

/// The display name of a new secret when `display_name` is not given.
pub const DEFAULT_DISPLAY_NAME: &str = "api-token-exporter";

pub fn github_app(r: RawRotator, at_line: Option<u64>) -> Result<Rotator, Issue> {
    let Some(app_id) = r.app_id else {
        return Err((
            "rotator.app_id",
            "github_app needs app_id: the app's client ID (Iv23...) or its numeric app ID".into(),
            at_line,
        ));
    };
    // The JWT's `iss`: a client ID or a number, nothing a header or JSON could be bent by.
    if app_id.value.is_empty()
        || app_id.value.len() > 64
        || !app_id.value.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err((
            "rotator.app_id",
            "app_id must be the app's client ID (Iv23...) or its numeric app ID".into(),
            line(&app_id),
        ));
    }
    let installation_id = match r.installation_id {
        Some(i) if i.value > 0 => i.value,
        Some(i) => {
            return Err((
                "rotator.installation_id",
                "installation_id must be the installation's number (greater than zero)".into(),
                line(&i),
            ));
        }
        None => {
            return Err((
                "rotator.installation_id",
                "github_app needs installation_id: the number of the app's installation (GET /app/installations lists them)".into(),
                at_line,
            ));
        }
    };
    let Some(private_key) = r.private_key else {
        return Err((
            "rotator.private_key",
            "github_app needs private_key: the app's private key (PEM), e.g. {file: /run/secrets/app.pem}".into(),
            at_line,
        ));
    };
    let repositories = r.repositories.unwrap_or_default();
    if repositories.len() > MAX_REPOSITORIES {
        return Err((
            "rotator.repositories",
            format!("GitHub accepts at most {MAX_REPOSITORIES} repositories per token"),
            at_line,
        ));
    }
    if let Some(bad) = repositories.iter().position(|name| {
        name.is_empty()
            || name.len() > 100
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    }) {
        return Err((
            "rotator.repositories",
            format!(
                "repositories[{bad}] must be a repository name without its owner (letters, digits, - _ .)"
            ),
            at_line,
        ));
    }
    let permissions: BTreeMap<String, String> = r.permissions.unwrap_or_default();
    for (name, level) in &permissions {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return Err((
                "rotator.permissions",
                format!(
                    "{name:?} is not a GitHub App permission name (e.g. contents, pull_requests)"
                ),
                at_line,
            ));
        }
        if !LEVELS.contains(&level.as_str()) {
            return Err((
                "rotator.permissions",
                format!("permission {name}: the level must be read, write or admin"),
                at_line,
            ));
        }
    }
    Ok(Rotator::GithubApp(Box::new(GithubApp {
        app_id: app_id.value,
        installation_id,
        private_key,
        repositories,
        permissions,
    })))
}

pub fn entra_id_password(
    token: &TokenSpec,
    r: RawRotator,
    at_line: Option<u64>,
) -> Result<Rotator, Issue> {
    if token.secret.is_none() {
        return Err((
            "rotator",
            "entra_id_password replaces the token's client secret, so the token needs a secret"
                .into(),
            at_line,
        ));
    }
    if token.params.key_id.is_some() {
        return Err((
            "rotator",
            "entra_id_password finds the secret to remove by its hint; remove key_id from the token (after a rotation it would name the removed secret)".into(),
            at_line,
        ));
    }
    let expires_in = match &r.expires_in {
        Some(s) => match parse_duration(&s.value) {
            Ok(d) if d.as_secs() < 3600 => {
                return Err((
                    "rotator.expires_in",
                    "must be at least 1h (the new secret's lifetime)".into(),
                    line(s),
                ));
            }
            Ok(d) => d,
            Err(e) => return Err(("rotator.expires_in", e, line(s))),
        },
        None => DEFAULT_SECRET_LIFETIME,
    };
    let display_name = match r.display_name {
        Some(n) if n.value.trim().is_empty() || n.value.len() > 256 => {
            return Err((
                "rotator.display_name",
                "display_name must be a name of 1 to 256 characters".into(),
                line(&n),
            ));
        }
        Some(n) => n.value,
        None => DEFAULT_DISPLAY_NAME.to_string(),
    };
    let manager = match (r.client_id, r.client_secret) {
        (None, None) => None,
        (Some(id), Some(secret)) if is_guid(&id.value) => Some((id.value, secret)),
        (Some(id), Some(_)) => {
            return Err((
                "rotator.client_id",
                "client_id must be the managing app's application (client) id, a GUID".into(),
                line(&id),
            ));
        }
        _ => {
            return Err((
                "rotator.client_id",
                "give both client_id and client_secret (another app that owns this one), or neither (the app rotates its own secret)".into(),
                at_line,
            ));
        }
    };
    Ok(Rotator::EntraIdPassword(Box::new(EntraIdPassword {
        display_name,
        expires_in,
        manager,
    })))
}

#[cfg(test)]
mod tests;
