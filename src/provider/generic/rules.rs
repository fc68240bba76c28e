//! The `http` kind's rules: how an answer's status, headers and JSON body are matched, and
//! the checks that keep a rule set from calling a provider's failure an invalid token. Pure.

use std::fmt;

use reqwest::header::{HeaderMap, HeaderName};
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_json::Value;

use super::super::http;

/// One rule: when the answer's status is in `status` and every condition of `when` holds,
/// the verdict is `verdict`. Rules are tried in order; the first that matches decides.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub status: StatusSet,
    #[serde(default)]
    pub when: Vec<Condition>,
    pub verdict: RuleVerdict,
    /// Why the token is invalid, for `verdict: invalid` only (default `unknown_token`).
    pub reason: Option<InvalidReason>,
}

/// What a matching rule concludes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleVerdict {
    Valid,
    Invalid,
    Forbidden,
    RateLimited,
}

impl RuleVerdict {
    /// A verdict about the token itself (as opposed to the provider asking us to wait).
    pub fn is_conclusive(self) -> bool {
        self != RuleVerdict::RateLimited
    }
}

/// The reasons an `invalid` rule may give; `crate::model::Reason` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidReason {
    UnknownToken,
    Expired,
    Revoked,
    Inactive,
    Disabled,
    Malformed,
    NotYetValid,
}

impl InvalidReason {
    pub fn reason(self) -> crate::model::Reason {
        use crate::model::Reason;
        match self {
            InvalidReason::UnknownToken => Reason::UnknownToken,
            InvalidReason::Expired => Reason::Expired,
            InvalidReason::Revoked => Reason::Revoked,
            InvalidReason::Inactive => Reason::Inactive,
            InvalidReason::Disabled => Reason::Disabled,
            InvalidReason::Malformed => Reason::Malformed,
            InvalidReason::NotYetValid => Reason::NotYetValid,
        }
    }
}

/// One status or a class of statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusMatch {
    /// An exact status, `401`.
    Exact(u16),
    /// A class, `4xx` (the digit is the first one of the status).
    Class(u16),
}

impl StatusMatch {
    fn contains(self, status: u16) -> bool {
        match self {
            StatusMatch::Exact(s) => s == status,
            StatusMatch::Class(c) => status / 100 == c,
        }
    }
}

impl fmt::Display for StatusMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusMatch::Exact(s) => write!(f, "{s}"),
            StatusMatch::Class(c) => write!(f, "{c}xx"),
        }
    }
}

/// `status: 200`, `status: 4xx` or `status: [401, 403]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusSet(pub Vec<StatusMatch>);

fn status_item<E: de::Error>(text: &str) -> Result<StatusMatch, E> {
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    if let Some(digit) = lower.strip_suffix("xx")
        && digit.len() == 1
        && let Ok(c) = digit.parse::<u16>()
        && (1..=5).contains(&c)
    {
        return Ok(StatusMatch::Class(c));
    }
    match text.parse::<u16>() {
        Ok(s) => status_code(u64::from(s)),
        Err(_) => Err(E::custom(
            "a status is a number (401) or a class (4xx), alone or in a list",
        )),
    }
}

fn status_code<E: de::Error>(v: u64) -> Result<StatusMatch, E> {
    if (100..=599).contains(&v) {
        Ok(StatusMatch::Exact(v as u16))
    } else {
        Err(E::custom("an HTTP status is between 100 and 599"))
    }
}

impl<'de> Deserialize<'de> for StatusSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Set;
        impl<'de> Visitor<'de> for Set {
            type Value = StatusSet;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a status (401), a class (4xx), or a list of them")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StatusSet, E> {
                Ok(StatusSet(vec![status_code(v)?]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StatusSet, E> {
                self.visit_u64(u64::try_from(v).map_err(|_| E::custom("a status is positive"))?)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StatusSet, E> {
                Ok(StatusSet(vec![status_item(v)?]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StatusSet, A::Error> {
                let mut out = Vec::new();
                while let Some(one) = seq.next_element::<StatusSet>()? {
                    out.extend(one.0);
                }
                Ok(StatusSet(out))
            }
        }
        d.deserialize_any(Set)
    }
}

impl fmt::Display for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

/// A condition on the answer: a JSON pointer into the body or a header, and one test.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// An RFC 6901 JSON pointer into the body (`/active`, `/data/state`).
    pub pointer: Option<String>,
    /// A response header's name.
    pub header: Option<String>,
    /// The value is this scalar (a header: this text, compared without case).
    pub equals: Option<Value>,
    /// The member or header is there (`true`) or not (`false`).
    pub exists: Option<bool>,
    /// The text (a string member, a header) contains this.
    pub contains: Option<String>,
}

impl Condition {
    pub fn reads_body(&self) -> bool {
        self.pointer.is_some()
    }

    /// Whether the condition holds. `doc` is the body read as JSON; a pointer condition
    /// never holds without one (the caller refuses such an answer before asking).
    pub fn holds(&self, headers: &HeaderMap, doc: Option<&Value>) -> bool {
        if let Some(pointer) = &self.pointer {
            let Some(doc) = doc else { return false };
            let found = doc.pointer(pointer);
            if let Some(want) = self.exists {
                return found.is_some() == want;
            }
            if let Some(want) = &self.equals {
                return found.is_some_and(|v| scalar_eq(v, want));
            }
            if let Some(part) = &self.contains {
                return found
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.contains(part.as_str()));
            }
            return false;
        }
        let Some(name) = &self.header else {
            return false;
        };
        let Ok(name) = HeaderName::try_from(name.as_str()) else {
            return false;
        };
        let present = headers.contains_key(&name);
        if let Some(want) = self.exists {
            return present == want;
        }
        let Some(value) = http::header(headers, &name) else {
            return false;
        };
        if let Some(want) = &self.equals {
            // A header is text: `equals: 1` in YAML is the text "1".
            let want = match want {
                Value::String(s) => s.trim().to_string(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return false,
            };
            return value.eq_ignore_ascii_case(&want);
        }
        if let Some(part) = &self.contains {
            return value.contains(part.as_str());
        }
        false
    }

    fn validate(&self, at: &str) -> Result<(), String> {
        match (&self.pointer, &self.header) {
            (Some(p), None) => check_pointer(&format!("{at}.pointer"), p)?,
            (None, Some(h)) => {
                check_header_name(&format!("{at}.header"), h)?;
            }
            _ => return Err(format!("{at}: give exactly one of pointer or header")),
        }
        let tests = [
            self.equals.is_some(),
            self.exists.is_some(),
            self.contains.is_some(),
        ];
        if tests.iter().filter(|t| **t).count() != 1 {
            return Err(format!(
                "{at}: give exactly one of equals, exists or contains"
            ));
        }
        if let Some(v) = &self.equals
            && !matches!(v, Value::Bool(_) | Value::Number(_) | Value::String(_))
        {
            return Err(format!(
                "{at}.equals: compare with a string, number or boolean"
            ));
        }
        if self.contains.as_deref().is_some_and(str::is_empty) {
            return Err(format!("{at}.contains: must not be empty"));
        }
        Ok(())
    }
}

/// JSON scalars equal as JSON: numbers by value (`1` and `1.0` alike), the rest exactly.
fn scalar_eq(found: &Value, want: &Value) -> bool {
    match (found, want) {
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => a == b,
        },
        _ => found == want,
    }
}

/// A JSON pointer as RFC 6901 writes it: empty, or `/` then segments where `~` is only
/// `~0` or `~1`.
pub fn check_pointer(at: &str, p: &str) -> Result<(), String> {
    let bad_escape = p
        .split('~')
        .skip(1)
        .any(|rest| !(rest.starts_with('0') || rest.starts_with('1')));
    if !p.starts_with('/') || bad_escape || p.len() > 256 {
        return Err(format!(
            "{at}: must be a JSON pointer (RFC 6901), e.g. /active or /data/expires_at"
        ));
    }
    Ok(())
}

/// A header name as HTTP accepts it.
pub fn check_header_name(at: &str, name: &str) -> Result<HeaderName, String> {
    HeaderName::try_from(name).map_err(|_| format!("{at}: not a valid HTTP header name"))
}

impl Rule {
    /// Whether the rule's status set holds `status`. A class in a conclusive rule never
    /// holds 429: "4xx means invalid" must not call a rate limit an invalid token.
    pub fn covers(&self, status: u16) -> bool {
        self.status.0.iter().any(|s| match s {
            StatusMatch::Class(_) if status == 429 && self.verdict.is_conclusive() => false,
            s => s.contains(status),
        })
    }

    pub fn reads_body(&self) -> bool {
        self.when.iter().any(Condition::reads_body)
    }

    pub fn matches(&self, headers: &HeaderMap, doc: Option<&Value>) -> bool {
        self.when.iter().all(|c| c.holds(headers, doc))
    }

    fn validate(&self, at: &str) -> Result<(), String> {
        if self.status.0.is_empty() {
            return Err(format!("{at}.status: list at least one status"));
        }
        for s in &self.status.0 {
            let class = match s {
                StatusMatch::Exact(code) => code / 100,
                StatusMatch::Class(c) => *c,
            };
            if class == 5 {
                return Err(format!(
                    "{at}.status: {s} is the provider's own failure, never an answer about the token; 5xx answers are always unreachable"
                ));
            }
            if class != 2 && class != 4 {
                return Err(format!(
                    "{at}.status: {s} is not an answer about the token (only 2xx and 4xx statuses can be; redirects are never followed)"
                ));
            }
            if *s == StatusMatch::Exact(429) && self.verdict.is_conclusive() {
                return Err(format!(
                    "{at}.status: 429 is a rate limit; only verdict: rate_limited may match it"
                ));
            }
        }
        let refuses = matches!(self.verdict, RuleVerdict::Invalid | RuleVerdict::Forbidden);
        let success = self.status.0.iter().any(|s| match s {
            StatusMatch::Exact(code) => code / 100 == 2,
            StatusMatch::Class(c) => *c == 2,
        });
        if refuses && success && self.when.is_empty() {
            // Captive portals and proxies answer 200 with a page of their own: a success
            // status alone must not call a token invalid.
            return Err(format!(
                "{at}: a 2xx alone never says a token is {}; add a condition on the body or a header (when:)",
                if self.verdict == RuleVerdict::Invalid {
                    "invalid"
                } else {
                    "forbidden"
                }
            ));
        }
        for (i, c) in self.when.iter().enumerate() {
            c.validate(&format!("{at}.when[{i}]"))?;
        }
        if self.reason.is_some() && self.verdict != RuleVerdict::Invalid {
            return Err(format!("{at}.reason: only an invalid rule takes a reason"));
        }
        Ok(())
    }
}

/// Checks a rule set: at least one rule, one of them `valid`, each rule's statuses answers
/// about the token (2xx or 4xx) and its conditions well formed.
pub fn validate_rules(rules: &[Rule]) -> Result<(), String> {
    if rules.is_empty() {
        return Err("rules: list at least one rule".into());
    }
    for (i, rule) in rules.iter().enumerate() {
        rule.validate(&format!("rules[{i}]"))?;
    }
    if !rules.iter().any(|r| r.verdict == RuleVerdict::Valid) {
        return Err("rules: no rule gives verdict: valid, so no token could ever be valid".into());
    }
    Ok(())
}
