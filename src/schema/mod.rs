//! The config schema every stage shares: the typed token spec (with its labels, params and
//! policies) and the one YAML decode, with its limits and located errors, that every file the
//! exporter reads goes through (the inventory and the web config). Pure: no I/O.

use std::fmt;

pub mod rotate;
pub mod spec;
pub mod tagged;

pub use spec::*;

/// The largest config file accepted. An inventory of 100,000 tokens fits well below it.
pub const MAX_CONFIG_BYTES: u64 = 64 * 1024 * 1024;

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
    /// The error as found in the file at `path`.
    pub(crate) fn in_file(mut self, path: &std::path::Path) -> Self {
        self.file = Some(path.display().to_string());
        self
    }

    pub(crate) fn single(path: &str, message: impl Into<String>, line: Option<u64>) -> Self {
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

/// The decode limits. The node and event budgets follow MAX_CONFIG_BYTES: a file of that
/// size, all tokens, must decode.
///
/// Aliases and merge keys are where a small file becomes a large document ("billion laughs"),
/// so they get budgets an inventory never needs but that stop an expansion bomb after a few
/// milliseconds: anchors are for sharing a provider block or a label set, not for building
/// thousands of nodes. The web config decodes with the same limits.
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

/// A decode that failed: where (the field path as the user wrote it, and the line), the last
/// map key read there, and serde's message with every quoted value dropped.
pub struct DecodeFailure {
    pub path: String,
    pub last_key: Option<String>,
    pub message: String,
    pub line: Option<u64>,
}

impl From<DecodeFailure> for ConfigError {
    fn from(f: DecodeFailure) -> ConfigError {
        ConfigError::single(&f.path, f.message, f.line)
    }
}

/// Decodes YAML into `T` under [`decode_options`], tracking the field path: the one decode
/// every file the exporter reads goes through (the inventory and the web config).
pub fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, DecodeFailure> {
    use serde_saphyr::MessageFormatter;
    let mut path = String::new();
    let mut last_key = None;
    serde_saphyr::with_deserializer_from_str_with_options(text, decode_options(), |de| {
        let mut track = serde_path_to_error::Track::new();
        let tracked = serde_path_to_error::Deserializer::new(de, &mut track);
        let out = T::deserialize(tracked);
        if out.is_err() {
            let p = track.path();
            path = p.to_string();
            last_key = match p.iter().next_back() {
                Some(serde_path_to_error::Segment::Map { key }) => Some(key.clone()),
                _ => None,
            };
        }
        out
    })
    .map_err(|err| DecodeFailure {
        path: user_path(&path),
        last_key,
        message: scrub(&serde_saphyr::UserMessageFormatter.format_message(&err)),
        line: err.location().map(|l| l.line()),
    })
}

/// The tracked path as the user's file has it: `Spanned` wraps values in a `value` field,
/// which is dropped as a whole segment only (a key such as `valuer` stays), and a syntax
/// error, which has no field, gives no path.
fn user_path(tracked: &str) -> String {
    if tracked == "." || tracked.contains('?') {
        return String::new();
    }
    let mut out = String::with_capacity(tracked.len());
    let mut rest = tracked;
    while let Some(i) = rest.find(".value") {
        let after = &rest[i + ".value".len()..];
        let whole = after.is_empty() || after.starts_with('.') || after.starts_with('[');
        out.push_str(&rest[..if whole { i } else { i + ".value".len() }]);
        rest = after;
    }
    out.push_str(rest);
    out
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

#[cfg(test)]
mod tests;
