//! The `http` kind's facts: where the expiry, scopes, subject and a rate limit's reset are
//! in an answer, and how each is read (the expiry through the shared NumericDate reader, so
//! an unusable value is flagged as every kind flags it). Pure.

use std::time::Duration;

use jiff::Timestamp;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

use super::super::http;
use super::Config;
use crate::model::{Anomaly, Expiry, ExpiryRead, TokenFacts, read_numeric_date};

/// Where a fact is: a JSON pointer into the body, or a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    JsonPointer,
    Header,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub from: Origin,
    /// The pointer (`/sub`) or the header's name.
    pub at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListSource {
    pub from: Origin,
    pub at: String,
    /// Splits a text into items: `" "` by default for a body string, `","` for a header.
    pub separator: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpirySource {
    pub from: Origin,
    pub at: String,
    pub format: TimeFormat,
    /// What an answer without the field means: `undisclosed` (the default) or `never`,
    /// only where the provider documents that absence means no expiry.
    #[serde(default)]
    pub absent: Absent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    Rfc3339,
    UnixSeconds,
    UnixMillis,
    /// A bare date, `2024-06-30`: the token stops at 00:00 UTC that day.
    Date,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Absent {
    #[default]
    Undisclosed,
    Never,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetSource {
    pub header: String,
    pub format: ResetFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetFormat {
    /// Seconds to wait.
    DelaySeconds,
    UnixSeconds,
    UnixMillis,
    Rfc3339,
}

/// The wait a `rate_limit_reset` header gives, if configured and readable.
pub(super) fn reset_wait(config: &Config, headers: &HeaderMap, now: Timestamp) -> Option<Duration> {
    let source = config.rate_limit_reset.as_ref()?;
    let text = http::header(headers, source.header.as_str())?;
    let at = match source.format {
        ResetFormat::DelaySeconds => {
            let secs = text
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)?;
            return Some(Duration::from_secs(secs.ceil().min(u32::MAX as f64) as u64));
        }
        ResetFormat::UnixSeconds => epoch(text, 1.0)?,
        ResetFormat::UnixMillis => epoch(text, 1000.0)?,
        ResetFormat::Rfc3339 => text.parse::<Timestamp>().ok()?,
    };
    let secs = at.as_second() - now.as_second();
    (secs > 0).then(|| Duration::from_secs(secs as u64))
}

fn epoch(text: &str, per_second: f64) -> Option<Timestamp> {
    match read_numeric_date(Some(&number(text.parse::<f64>().ok()? / per_second)?)) {
        ExpiryRead::At(at, _) => Some(at),
        _ => None,
    }
}

/// A JSON number, for the shared NumericDate reader.
fn number(v: f64) -> Option<Value> {
    serde_json::Number::from_f64(v).map(Value::Number)
}

/// Smallest milliseconds value taken as one: 2000-01-01. Below it a value is seconds (or
/// nonsense) written where milliseconds were promised.
const MIN_MILLIS: f64 = 946_684_800_000.0;

/// The facts `config` says where to find. The error names what is not as configured.
pub(super) fn read_facts(
    config: &Config,
    headers: &HeaderMap,
    doc: Option<&Value>,
) -> Result<TokenFacts, String> {
    let needs_body = config.facts_read_body();
    if needs_body && doc.is_none() {
        return Err("the facts are read from the body, which is not JSON".into());
    }
    let mut facts = TokenFacts::default();
    let found = |from: Origin, at: &str| -> Option<Value> {
        match from {
            Origin::JsonPointer => doc.and_then(|d| d.pointer(at)).cloned(),
            Origin::Header => http::header(headers, at).map(|v| Value::String(v.into())),
        }
    };
    if let Some(s) = &config.expiry {
        let value = found(s.from, &s.at);
        let field = match s.from {
            Origin::JsonPointer => format!("expiry at {}", s.at),
            Origin::Header => format!("{} header", s.at),
        };
        match (&value, s.absent) {
            (None, Absent::Never) => facts.expiry = Expiry::Never,
            _ => facts.set_expiry(read_time(value.as_ref(), s.format, s.from), &field),
        }
    }
    if let Some(s) = &config.scopes {
        let default = match s.from {
            Origin::JsonPointer => " ",
            Origin::Header => ",",
        };
        let sep = s.separator.as_deref().unwrap_or(default);
        facts.scopes = match found(s.from, &s.at) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(text)) => text
                .split(sep)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(String::from))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| format!("the scopes at {} are not all strings", s.at))?,
            Some(_) => return Err(format!("the scopes at {} are not a string or a list", s.at)),
        };
    }
    if let Some(s) = &config.subject {
        facts.subject = match found(s.from, &s.at) {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) if !text.trim().is_empty() => Some(text),
            Some(Value::String(_)) => None,
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => return Err(format!("the subject at {} is not a string", s.at)),
        };
    }
    Ok(facts)
}

/// Reads an expiry value in `format` with the shared reader's rules: an unusable value is
/// undisclosed with an anomaly, never "no expiry".
pub fn read_time(value: Option<&Value>, format: TimeFormat, from: Origin) -> ExpiryRead {
    let Some(value) = value else {
        return ExpiryRead::Absent;
    };
    match format {
        TimeFormat::UnixSeconds | TimeFormat::UnixMillis => {
            // A header is always text: its digits are the documented form, not an anomaly.
            let (n, anomaly) = match (value, from) {
                (Value::Number(n), _) => (n.as_f64(), None),
                (Value::String(s), Origin::Header) => (s.trim().parse::<f64>().ok(), None),
                (Value::String(s), Origin::JsonPointer) => {
                    let numeric = s.trim().bytes().all(|b| b.is_ascii_digit() || b == b'.');
                    (
                        s.trim().parse::<f64>().ok().filter(|_| numeric),
                        Some(Anomaly::ExpiryString),
                    )
                }
                _ => (None, None),
            };
            let Some(mut n) = n else {
                return ExpiryRead::Unusable(Anomaly::ExpiryUnreadable);
            };
            if format == TimeFormat::UnixMillis {
                if n.is_nan() || n < MIN_MILLIS {
                    return ExpiryRead::Unusable(Anomaly::ExpiryOutOfRange);
                }
                n /= 1000.0;
            }
            match number(n).map(|v| read_numeric_date(Some(&v))) {
                // Milliseconds where seconds were configured are read as milliseconds and
                // noted, as every kind's NumericDate is.
                Some(ExpiryRead::At(at, read)) => ExpiryRead::At(at, read.or(anomaly)),
                Some(other) => other,
                None => ExpiryRead::Unusable(Anomaly::ExpiryOutOfRange),
            }
        }
        TimeFormat::Rfc3339 => match value.as_str().map(|s| s.trim().parse::<Timestamp>()) {
            Some(Ok(at)) => ExpiryRead::At(at, None),
            _ => ExpiryRead::Unusable(Anomaly::ExpiryUnreadable),
        },
        TimeFormat::Date => match value.as_str().and_then(bare_date) {
            Some(at) => ExpiryRead::At(at, None),
            None => ExpiryRead::Unusable(Anomaly::ExpiryUnreadable),
        },
    }
}

/// `2024-06-30` as 00:00 UTC that day; anything longer is not a bare date.
fn bare_date(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if text.len() != 10 {
        return None;
    }
    let date = text.parse::<jiff::civil::Date>().ok()?;
    date.to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}
