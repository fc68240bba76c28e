//! The web config file format (the exporter-toolkit one): raw serde structs, the shared
//! YAML decode with located errors, and validation into [`Settings`]. Pure but for reading
//! the file.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::{ConfigError, ConfigIssue};

use super::*;

// ---------------------------------------------------------------------------------------
// The file format.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebConfig {
    pub(super) tls_server_config: Option<RawTls>,
    pub(super) http_server_config: Option<RawHttp>,
    #[serde(default)]
    pub(super) basic_auth_users: BTreeMap<String, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) cert_file: Option<Spanned<String>>,
    pub(super) key_file: Option<Spanned<String>>,
    pub(super) client_ca_file: Option<Spanned<String>>,
    pub(super) client_auth_type: Option<Spanned<ClientAuthType>>,
    pub(super) min_version: Option<Spanned<TlsVersion>>,
    pub(super) max_version: Option<Spanned<TlsVersion>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    #[serde(default)]
    pub(super) headers: BTreeMap<String, Spanned<String>>,
}

/// The exporter-toolkit's client certificate policies, named as Go's `tls.ClientAuthType`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub(super) enum ClientAuthType {
    #[default]
    NoClientCert,
    /// Ask for a certificate, accept any or none: not authentication.
    RequestClientCert,
    /// Require a certificate, any: not authentication either. `RequireClientCert` is the
    /// toolkit's older name.
    #[serde(alias = "RequireClientCert")]
    RequireAnyClientCert,
    /// Verify a certificate against `client_ca_file` when one is sent.
    VerifyClientCertIfGiven,
    /// Require a certificate that verifies against `client_ca_file`.
    RequireAndVerifyClientCert,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub(super) enum TlsVersion {
    TLS10,
    TLS11,
    TLS12,
    TLS13,
}

impl Settings {
    pub(super) fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = read_limited(path).map_err(|e| {
            ConfigError::single("", format!("cannot read: {e}"), None).in_file(path)
        })?;
        let text = String::from_utf8(text)
            .map_err(|_| ConfigError::single("", "not UTF-8 text", None).in_file(path))?;
        let raw = decode(&text).map_err(|e| e.in_file(path))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        raw.validate(dir).map_err(|issues| ConfigError {
            file: Some(path.display().to_string()),
            issues,
        })
    }
}

/// Decodes YAML into the raw structs, with the field path and line of a failure, as the
/// inventory file does.
pub(super) fn decode(text: &str) -> Result<RawWebConfig, ConfigError> {
    // An empty file (or one with only comments) means "no TLS, no auth", as in the toolkit.
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(RawWebConfig::default());
    }
    // The inventory's decode: no snippets (the source holds password hashes) and the same
    // bounds on alias and merge-key expansion, so a small web config cannot blow up either.
    crate::schema::decode(text).map_err(ConfigError::from)
}

/// Collects every problem of a file so one pass reports them all.
#[derive(Default)]
pub(super) struct Issues(pub(super) Vec<ConfigIssue>);

impl Issues {
    pub(super) fn push(
        &mut self,
        path: impl Into<String>,
        message: impl Into<String>,
        line: Option<u64>,
    ) {
        self.0.push(ConfigIssue {
            path: path.into(),
            message: message.into(),
            line,
        });
    }
}

pub(super) fn line<T>(s: &Spanned<T>) -> Option<u64> {
    Some(s.referenced.line())
}

impl RawWebConfig {
    pub(super) fn validate(self, dir: &Path) -> Result<Settings, Vec<ConfigIssue>> {
        let mut issues = Issues::default();
        let mut files = Vec::new();

        let tls = self
            .tls_server_config
            .as_ref()
            .and_then(|t| t.build(dir, &mut files, &mut issues));

        let empty = self.tls_server_config.is_none()
            && self.http_server_config.is_none()
            && self.basic_auth_users.is_empty();
        let client_auth = self
            .tls_server_config
            .as_ref()
            .and_then(|t| t.client_auth_type.as_ref())
            .map(|a| a.value)
            .unwrap_or_default();
        let min_version = self
            .tls_server_config
            .as_ref()
            .and_then(|t| t.min_version.as_ref())
            .map(|v| v.value);

        let mut users = HashMap::new();
        let mut costs = Vec::new();
        for (user, hash) in &self.basic_auth_users {
            let field = format!("basic_auth_users.{user}");
            if user.contains(':') {
                // Basic auth splits "user:password" at the first colon.
                issues.push(&field, "a user name cannot contain ':'", line(hash));
                continue;
            }
            // The value is never quoted: a plain password put here by mistake stays out of
            // the logs.
            match hash.value.parse::<bcrypt::HashParts>() {
                Ok(parts) => {
                    costs.push(parts.get_cost());
                    users.insert(user.clone(), hash.value.clone());
                }
                Err(_) => issues.push(
                    &field,
                    "not a bcrypt hash (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)",
                    line(hash),
                ),
            }
        }

        let mut headers = Vec::new();
        let raw_headers = self
            .http_server_config
            .map(|h| h.headers)
            .unwrap_or_default();
        for (name, value) in &raw_headers {
            let field = format!("http_server_config.headers.{name}");
            let Some((canonical, allowed)) = ALLOWED_HEADERS
                .iter()
                .find(|(h, _)| h.eq_ignore_ascii_case(name))
            else {
                let names: Vec<&str> = ALLOWED_HEADERS.iter().map(|(h, _)| *h).collect();
                issues.push(
                    &field,
                    format!("this header cannot be set (allowed: {})", names.join(", ")),
                    line(value),
                );
                continue;
            };
            if let Some(values) = allowed
                && !values.iter().any(|v| v.eq_ignore_ascii_case(&value.value))
            {
                issues.push(
                    &field,
                    format!("must be one of: {}", values.join(", ")),
                    line(value),
                );
                continue;
            }
            match HeaderValue::from_str(&value.value) {
                Ok(v) => headers.push((HeaderName::from_static_lower(canonical), v)),
                Err(_) => issues.push(&field, "not a valid header value", line(value)),
            }
        }

        if !issues.0.is_empty() {
            return Err(issues.0);
        }
        // Unknown users are checked against a hash of the highest configured cost, and a
        // wrong password for a cheaper user is padded up to that cost, so the answer takes
        // as long whether or not the name exists, whatever each user's cost.
        let dummy = |cost: u32| {
            let random: [u8; 32] = rand::random();
            bcrypt::hash(random, cost).unwrap_or_default()
        };
        let (min_cost, max_cost) = (costs.iter().min(), costs.iter().max());
        let dummy_hash = max_cost.map(|&c| dummy(c)).unwrap_or_default();
        let padding = match (min_cost, max_cost) {
            (Some(&low), Some(&high)) => (low..high).map(|c| (c, dummy(c))).collect(),
            _ => BTreeMap::new(),
        };
        Ok(Settings {
            tls,
            users,
            dummy_hash,
            padding,
            empty,
            client_auth,
            min_version,
            headers,
            auth_cache: Mutex::new(HashSet::new()),
            files,
        })
    }
}

/// `HeaderName::from_static` wants lower case; the allowed names are ours and valid.
pub(super) trait FromStaticLower {
    fn from_static_lower(name: &str) -> HeaderName;
}

impl FromStaticLower for HeaderName {
    fn from_static_lower(name: &str) -> HeaderName {
        HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
            .expect("the allowed header names are valid")
    }
}
