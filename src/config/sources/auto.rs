//! `provider: auto` on a configured token: its provider detected from its secret's prefix,
//! read once when the config is loaded.

use std::collections::BTreeMap;

use super::entry_of_kind;
use crate::provider::ProviderConfig;
use crate::secret::SecretSource;

/// `provider: auto`: the provider is detected from the secret's prefix.
pub const AUTO: &str = "auto";

/// The most of a secret read to detect its provider: every documented token is far shorter.
const DETECT_BYTES: u64 = 64 * 1024;

/// The provider entry of a configured `provider: auto` token: its secret is read once, when
/// the config is loaded, and its prefix looked up in `provider::detect`. An `exec` secret is
/// not run at load time. The messages name the product, never the secret.
pub fn detect_configured(
    secret: Option<&SecretSource>,
    providers: &BTreeMap<String, ProviderConfig>,
) -> Result<String, String> {
    use std::io::Read;
    let mut value = match secret {
        None => {
            return Err("provider: auto needs the token's secret to detect its provider".into());
        }
        // Only a source makes a memory secret, and a source detects its tokens itself.
        Some(SecretSource::Memory(_)) => {
            return Err("provider: auto cannot read a secret held in memory".into());
        }
        Some(SecretSource::Exec(_)) => {
            return Err("provider: auto reads the secret when the config is loaded, which an exec source is not run for; name the provider".into());
        }
        Some(SecretSource::Env(name)) => std::env::var(name).map_err(|_| {
            format!("provider: auto cannot read environment variable {name} to detect the provider")
        })?,
        Some(SecretSource::File(file)) => {
            let mut text = String::new();
            std::fs::File::open(file.path())
                .and_then(|f| f.take(DETECT_BYTES).read_to_string(&mut text))
                .map_err(|e| {
                    format!(
                        "provider: auto cannot read {} to detect the provider: {}",
                        file.path().display(),
                        e.kind()
                    )
                })?;
            text
        }
    };
    let found = crate::provider::detect::detect(value.trim());
    zeroize::Zeroize::zeroize(&mut value);
    let row = found
        .ok_or("provider: auto: the secret's prefix names no known provider; name the provider")?;
    let kind = row.kind.ok_or_else(|| {
        format!(
            "provider: auto: the secret is a {}, which no provider kind probes",
            row.product
        )
    })?;
    entry_of_kind(providers, kind)
        .map(str::to_string)
        .map_err(|e| format!("provider: auto: the secret is a {}, but {e}", row.product))
}
