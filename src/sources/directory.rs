//! `kind: directory`: one token per file of a directory (a Vault Agent sink, a CSI or
//! Kubernetes Secret mount), listed again at every refresh so files that come and go are
//! followed. The token's name is the file's name; its provider is the one named by the
//! file's annotation file (`NAME.annotations`, lines of `key: value`: `provider`, `owner`),
//! else the source's `provider`, else the one its prefix names (`provider::detect`).
//!
//! Names starting with `.` are not tokens: a Kubernetes mount keeps its versions in `..data`
//! and `..<timestamp>` and links each key to them, and editors leave `.swp` files. Each
//! token's secret stays a file source, read again at every probe, so a rotated file is
//! probed as the new token.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{Discovered, FailReason, Identity, ListError, Listing, canonical};
use crate::config::sources::entry_of_kind;
use crate::provider::ProviderConfig;
use crate::secret::{FileSource, SecretError, SecretSource};

/// The suffix of a file that annotates the token file of the same name.
pub const ANNOTATIONS: &str = ".annotations";

/// The most files a directory source lists: past it the listing fails, rather than
/// silently enter part of a directory that is not what the source was meant to read.
pub const MAX_FILES: usize = 100_000;

/// The most of an annotation file read.
const MAX_ANNOTATION_BYTES: u64 = 4096;

/// One candidate file, found by the blocking scan.
struct Candidate {
    name: String,
    path: PathBuf,
    annotations: BTreeMap<String, String>,
}

/// Lists the directory now.
pub async fn list(
    dir: &Path,
    provider: Option<&str>,
    providers: &BTreeMap<String, ProviderConfig>,
) -> Result<Listing, ListError> {
    let owned = dir.to_path_buf();
    let (candidates, mut listing) = tokio::task::spawn_blocking(move || scan(&owned))
        .await
        .map_err(|_| ListError::new(FailReason::Misconfigured, "the directory scan stopped"))??;
    for c in candidates {
        let source = SecretSource::File(FileSource::new(&c.path));
        let secret = match source.read().await {
            Ok(s) => s,
            Err(SecretError::File { kind, .. })
                if kind == std::io::ErrorKind::NotFound.to_string() =>
            {
                listing.skip("vanished");
                continue;
            }
            Err(_) => {
                listing.skip("unreadable");
                continue;
            }
        };
        let entry = match (c.annotations.get("provider"), provider) {
            (Some(named), _) => providers.contains_key(named).then(|| named.clone()),
            (None, Some(named)) => Some(named.to_string()),
            (None, None) => {
                match crate::provider::detect::detect(secret.expose()).map(|row| row.kind) {
                    None => {
                        listing.skip("undetected");
                        continue;
                    }
                    Some(kind) => {
                        kind.and_then(|k| entry_of_kind(providers, k).ok().map(str::to_string))
                    }
                }
            }
        };
        drop(secret);
        let Some(entry) = entry else {
            listing.skip("no_provider");
            continue;
        };
        listing.tokens.push(Discovered {
            name: c.name,
            provider: entry,
            identity: Identity::File(canonical(&c.path)),
            expires_at: None,
            issued_at: None,
            last_used_at: None,
            sliding_window_seconds: None,
            secret: Some(source),
            accessor: None,
            owner: c.annotations.get("owner").cloned(),
            state: None,
        });
    }
    Ok(listing)
}

/// The blocking part: the directory's entries, their kinds and annotation files.
fn scan(dir: &Path) -> Result<(Vec<Candidate>, Listing), ListError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        ListError::new(
            FailReason::Misconfigured,
            format!("cannot read directory {}: {}", dir.display(), e.kind()),
        )
    })?;
    let mut listing = Listing::default();
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            ListError::new(
                FailReason::Misconfigured,
                format!("cannot read directory {}: {}", dir.display(), e.kind()),
            )
        })?;
        let Ok(name) = entry.file_name().into_string() else {
            listing.skip("bad_name");
            continue;
        };
        if name.starts_with('.') || name.ends_with(ANNOTATIONS) {
            continue;
        }
        let path = entry.path();
        // `metadata` follows the link a Kubernetes mount makes for each key.
        if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            continue;
        }
        if out.len() == MAX_FILES {
            return Err(ListError::new(
                FailReason::Misconfigured,
                format!("the directory holds more than {MAX_FILES} files"),
            ));
        }
        let annotations = annotations(&dir.join(format!("{name}{ANNOTATIONS}")));
        out.push(Candidate {
            name,
            path,
            annotations,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((out, listing))
}

/// `key: value` lines; blank lines and `#` comments are skipped. A missing file is none.
pub fn annotations(path: &Path) -> BTreeMap<String, String> {
    let mut text = String::new();
    let read = std::fs::File::open(path)
        .and_then(|f| f.take(MAX_ANNOTATION_BYTES).read_to_string(&mut text));
    if read.is_err() {
        return BTreeMap::new();
    }
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}
