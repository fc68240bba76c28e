//! Neutral types shared by providers, the store, policies and the views. No I/O here.
//!
//! A probe never fails with an error: it returns a [`ProbeOutcome`] whose [`Verdict`] and
//! [`Reason`] are stable strings, because they become Prometheus label values that alert
//! rules and dashboards depend on.

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

pub mod duration;
mod extra;
pub use extra::Extra;
pub mod event;
pub mod rotation;

pub use duration::parse_duration;

/// The verdict of one probe. The string forms are a public contract (metric label values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The provider says the token works.
    Valid,
    /// Expired, revoked or unknown to the provider.
    Invalid,
    /// The token authenticates but lacks the rights the probe call needs.
    Forbidden,
    /// The provider refused to answer now.
    RateLimited,
    /// No trustworthy answer: network failure, timeout, 5xx, or a body that is not what the
    /// provider documents.
    Unreachable,
    /// The exporter's own credentials for the provider (or the token's secret source) failed.
    Misconfigured,
    /// Decoded locally without a key: the claims are readable but nothing proves them.
    Unverified,
}

impl Verdict {
    /// Every verdict, in the order metrics list them.
    pub const ALL: [Verdict; 7] = [
        Verdict::Valid,
        Verdict::Invalid,
        Verdict::Forbidden,
        Verdict::RateLimited,
        Verdict::Unreachable,
        Verdict::Misconfigured,
        Verdict::Unverified,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Forbidden => "forbidden",
            Verdict::RateLimited => "rate_limited",
            Verdict::Unreachable => "unreachable",
            Verdict::Misconfigured => "misconfigured",
            Verdict::Unverified => "unverified",
        }
    }

    /// True when the provider gave a conclusive answer about the token itself. The other
    /// verdicts say something about the provider or about us, never about the token.
    pub fn is_conclusive(self) -> bool {
        matches!(
            self,
            Verdict::Valid | Verdict::Invalid | Verdict::Forbidden | Verdict::Unverified
        )
    }

    /// True when the probe counts in `api_token_probe_failures_total`.
    pub fn is_failure(self) -> bool {
        !self.is_conclusive()
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a probe ended the way it did. Stable label values; add, never rename.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The provider confirmed the token.
    Ok,
    /// A JWT decoded without a signature check.
    NoKey,
    /// The token's expiry has passed.
    Expired,
    /// The provider says the token was revoked.
    Revoked,
    /// The provider says the token is not active and does not say why (RFC 7662).
    Inactive,
    /// The provider does not know the token.
    UnknownToken,
    /// The token's `nbf` / not-before lies in the future.
    NotYetValid,
    /// A JWT whose signature does not verify, or whose algorithm is refused.
    BadSignature,
    /// The secret is not a well-formed token of the kind the provider expects.
    Malformed,
    /// The token is not meant for the configured audience.
    WrongAudience,
    /// The provider disabled the token.
    Disabled,
    /// The token lacks the rights the probe call needs.
    InsufficientScope,
    /// The provider answered 429 or an equivalent.
    RateLimited,
    /// The probe did not finish within its timeout.
    Timeout,
    /// DNS or TCP failure.
    Connect,
    /// TLS handshake or certificate failure.
    Tls,
    /// The provider answered with a 5xx status.
    Http5xx,
    /// The body was not the documented JSON (a proxy page, a truncated body, too large...).
    BadResponse,
    /// A status the provider does not document for this call.
    UnexpectedStatus,
    /// The exporter's own client credentials were refused.
    ClientAuth,
    /// The token's secret could not be read from its source.
    SecretUnavailable,
    /// Discovery of the provider's endpoints failed.
    Discovery,
    /// The provider is sealed or in maintenance (Vault 503).
    Sealed,
    /// The token is valid but an organization enforcing SAML single sign-on has not
    /// authorized it (GitHub `X-GitHub-SSO: required`).
    SsoRequired,
}

impl Reason {
    /// The reasons that count as probe failures; `api_token_probe_failures_total` creates all
    /// of them at zero for every provider, so `rate()` and `increase()` work from the start.
    pub const FAILURES: [Reason; 11] = [
        Reason::Timeout,
        Reason::Connect,
        Reason::Tls,
        Reason::Http5xx,
        Reason::BadResponse,
        Reason::UnexpectedStatus,
        Reason::RateLimited,
        Reason::ClientAuth,
        Reason::SecretUnavailable,
        Reason::Discovery,
        Reason::Sealed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::NoKey => "no_key",
            Reason::Expired => "expired",
            Reason::Revoked => "revoked",
            Reason::Inactive => "inactive",
            Reason::UnknownToken => "unknown_token",
            Reason::NotYetValid => "not_yet_valid",
            Reason::BadSignature => "bad_signature",
            Reason::Malformed => "malformed",
            Reason::WrongAudience => "wrong_audience",
            Reason::Disabled => "disabled",
            Reason::InsufficientScope => "insufficient_scope",
            Reason::RateLimited => "rate_limited",
            Reason::Timeout => "timeout",
            Reason::Connect => "connect",
            Reason::Tls => "tls",
            Reason::Http5xx => "http_5xx",
            Reason::BadResponse => "bad_response",
            Reason::UnexpectedStatus => "unexpected_status",
            Reason::ClientAuth => "client_auth",
            Reason::SecretUnavailable => "secret_unavailable",
            Reason::Discovery => "discovery",
            Reason::Sealed => "sealed",
            Reason::SsoRequired => "sso_required",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a provider says about when a token stops working.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
#[serde(tag = "kind", content = "at", rename_all = "snake_case")]
pub enum Expiry {
    /// The provider did not say (RFC 7662 without `exp`, an inactive token, a failed probe).
    #[default]
    Undisclosed,
    /// The provider says the token has no expiry.
    Never,
    /// The token stops working at this instant.
    At(Timestamp),
}

impl Expiry {
    pub fn timestamp(self) -> Option<Timestamp> {
        match self {
            Expiry::At(t) => Some(t),
            _ => None,
        }
    }
}

/// How a token's lifetime is counted, beside [`Expiry`]: alert rules and age policies read
/// it, because "no expiry" means something else for a key that never expires than for a
/// token whose expiry moves with each use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "model")]
pub enum ExpiryModel {
    /// A fixed expiry (or, as the provider says, none): `expiry` is the whole story.
    #[default]
    Fixed,
    /// The token stops working `window_seconds` after its last use, and each use renews it
    /// (Okta API tokens, idle timeouts). `expiry` is the current deadline: last use plus the
    /// window, or the provider's own figure when it gives one.
    Sliding { window_seconds: u64 },
    /// The token never expires and only its age matters (AWS access keys, legacy Kubernetes
    /// token Secrets, far-future Entra secrets): `expiry` is `Never`, `issued_at` the creation
    /// time when known, and the `age_only_max_age` policy applies.
    AgeOnly,
}

impl ExpiryModel {
    /// The label value (`api_token_info{expiry_model}`) and the JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExpiryModel::Fixed => "fixed",
            ExpiryModel::Sliding { .. } => "sliding",
            ExpiryModel::AgeOnly => "age_only",
        }
    }
}

/// Facts a provider disclosed about a token. Every field is optional: providers disclose
/// different things, and a missing fact is never invented.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TokenFacts {
    pub expiry: Expiry,
    pub expiry_model: ExpiryModel,
    pub issued_at: Option<Timestamp>,
    pub not_before: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    /// The identity the token acts as (`sub`, login, username...).
    pub subject: Option<String>,
    pub client_id: Option<String>,
    pub issuer: Option<String>,
    pub audience: Vec<String>,
    pub scopes: Vec<String>,
    pub token_type: Option<String>,
    /// Provider-specific facts worth showing (renewable, ttl...). Never the token itself.
    pub extra: Extra,
    /// Warnings about the answer itself, e.g. an expiry in the past on a successful call.
    pub flags: Vec<String>,
    /// Stable codes for what was wrong with the answer (sorted, no repeats), beside the
    /// human text in `flags`: alerts need a label value that never changes wording.
    pub anomalies: Vec<Anomaly>,
}

impl TokenFacts {
    /// Flags an expiry already past on an answer that accepted the token: the provider
    /// contradicts itself, and `text` says which provider.
    pub fn flag_past_expiry(&mut self, now: Timestamp, text: &str) {
        if let Expiry::At(at) = self.expiry
            && at <= now
        {
            self.flags.push(text.into());
        }
    }

    /// Records an anomaly of the answer, with its sentence for people.
    pub fn note(&mut self, anomaly: Anomaly, text: impl Into<String>) {
        let text = text.into();
        if !self.flags.contains(&text) {
            self.flags.push(text);
        }
        if let Err(i) = self.anomalies.binary_search(&anomaly) {
            self.anomalies.insert(i, anomaly);
        }
    }

    /// Sets the expiry from what [`read_numeric_date`] (or a provider's own date reading)
    /// made of the field `field`: an unusable value leaves the expiry undisclosed and is
    /// noted, never read as "no expiry".
    pub fn set_expiry(&mut self, read: ExpiryRead, field: &str) {
        match read {
            ExpiryRead::Absent => {}
            ExpiryRead::At(at, None) => self.expiry = Expiry::At(at),
            ExpiryRead::At(at, Some(anomaly)) => {
                self.expiry = Expiry::At(at);
                self.note(anomaly, anomaly.sentence(field));
            }
            ExpiryRead::Unusable(anomaly) => {
                self.expiry = Expiry::Undisclosed;
                self.note(anomaly, anomaly.sentence(field));
            }
        }
    }
}

/// Something wrong with a provider's answer that did not change the verdict. The string
/// forms are a public contract (the `anomaly` label of `api_token_answer_anomaly`, the API):
/// add, never rename.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Anomaly {
    /// An expiry field was there but not a usable value (wrong type, null, not a date).
    ExpiryUnreadable,
    /// An expiry number outside any plausible instant (negative, past year 9999, 1e18).
    ExpiryOutOfRange,
    /// An expiry in milliseconds where seconds are documented; read as milliseconds.
    ExpiryMilliseconds,
    /// A NumericDate given as a string of digits where a JSON number is documented; read.
    ExpiryString,
    /// More scopes than `--provider.max-scopes`: the first ones (sorted) are kept.
    ScopesCapped,
    /// A label-bound text longer than `--provider.max-label-length`, cut.
    LabelTruncated,
    /// The subject differs from the previous answer's for the same secret: a token does not
    /// change identity, and each new subject is a new `api_token_info` series.
    SubjectChanged,
}

impl Anomaly {
    /// Every anomaly, in label order.
    pub const ALL: [Anomaly; 7] = [
        Anomaly::ExpiryUnreadable,
        Anomaly::ExpiryOutOfRange,
        Anomaly::ExpiryMilliseconds,
        Anomaly::ExpiryString,
        Anomaly::ScopesCapped,
        Anomaly::LabelTruncated,
        Anomaly::SubjectChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Anomaly::ExpiryUnreadable => "expiry_unreadable",
            Anomaly::ExpiryOutOfRange => "expiry_out_of_range",
            Anomaly::ExpiryMilliseconds => "expiry_milliseconds",
            Anomaly::ExpiryString => "expiry_string",
            Anomaly::ScopesCapped => "scopes_capped",
            Anomaly::LabelTruncated => "label_truncated",
            Anomaly::SubjectChanged => "subject_changed",
        }
    }

    /// The sentence for people about an expiry field. Fixed text and the field's name only:
    /// the value the provider sent is never echoed (it could be anything, the token too).
    fn sentence(self, field: &str) -> String {
        match self {
            Anomaly::ExpiryUnreadable => format!(
                "the provider's {field} is not a usable expiry; the expiry is shown as not disclosed"
            ),
            Anomaly::ExpiryOutOfRange => format!(
                "the provider's {field} is out of any plausible range; the expiry is shown as not disclosed"
            ),
            Anomaly::ExpiryMilliseconds => format!(
                "the provider's {field} is in milliseconds, not seconds; read as milliseconds"
            ),
            Anomaly::ExpiryString => {
                format!("the provider's {field} is a string, not a JSON number; read as seconds")
            }
            Anomaly::ScopesCapped | Anomaly::LabelTruncated | Anomaly::SubjectChanged => {
                format!("{field}: {}", self.as_str())
            }
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an expiry field of an answer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpiryRead {
    /// The field is not there.
    Absent,
    /// An instant, with the anomaly that had to be tolerated to read it.
    At(Timestamp, Option<Anomaly>),
    /// Present but unusable: the expiry is not disclosed, and the anomaly says why.
    Unusable(Anomaly),
}

impl ExpiryRead {
    /// The instant read, whatever had to be tolerated to read it.
    pub fn timestamp(&self) -> Option<Timestamp> {
        match self {
            ExpiryRead::At(at, _) => Some(*at),
            _ => None,
        }
    }
}

/// The largest NumericDate read as seconds: the end of year 9999, the last instant a
/// timestamp here can hold.
const MAX_SECONDS: f64 = 253_402_300_799.0;
/// Milliseconds are recognised only when they land between 2000 and 9999: seconds never
/// reach 946,684,800,000 (the smallest such value), so no number can be read both ways.
const MIN_MILLIS: f64 = 946_684_800_000.0;

/// Reads a NumericDate expiry (RFC 7519 section 2: seconds since the epoch, a JSON number,
/// possibly fractional). `null` is unusable, not absent: a provider that sends the member
/// said something, and it was not an instant. A string of digits is read, with
/// [`Anomaly::ExpiryString`]; a number too large for seconds but plausible as milliseconds
/// is read as milliseconds, with [`Anomaly::ExpiryMilliseconds`]. Never panics.
pub fn read_numeric_date(v: Option<&serde_json::Value>) -> ExpiryRead {
    use serde_json::Value;
    match v {
        None => ExpiryRead::Absent,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(secs) => read_epoch(secs, None),
            None => ExpiryRead::Unusable(Anomaly::ExpiryOutOfRange),
        },
        Some(Value::String(s)) => {
            let s = s.trim();
            let numeric = !s.is_empty()
                && s.len() <= 32
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-');
            match s.parse::<f64>() {
                Ok(secs) if numeric => read_epoch(secs, Some(Anomaly::ExpiryString)),
                _ => ExpiryRead::Unusable(Anomaly::ExpiryUnreadable),
            }
        }
        Some(_) => ExpiryRead::Unusable(Anomaly::ExpiryUnreadable),
    }
}

/// Seconds since the epoch to an instant, under the rules of [`read_numeric_date`];
/// `anomaly` is what reading the value already had to tolerate.
fn read_epoch(secs: f64, anomaly: Option<Anomaly>) -> ExpiryRead {
    if !secs.is_finite() || secs < 0.0 {
        return ExpiryRead::Unusable(Anomaly::ExpiryOutOfRange);
    }
    let (millis, anomaly) = if secs <= MAX_SECONDS {
        ((secs * 1000.0).round(), anomaly)
    } else if (MIN_MILLIS..=MAX_SECONDS * 1000.0).contains(&secs) {
        (secs.round(), Some(Anomaly::ExpiryMilliseconds))
    } else {
        return ExpiryRead::Unusable(Anomaly::ExpiryOutOfRange);
    };
    match Timestamp::from_millisecond(millis as i64) {
        Ok(at) => ExpiryRead::At(at, anomaly),
        Err(_) => ExpiryRead::Unusable(Anomaly::ExpiryOutOfRange),
    }
}

/// A provider's rate-limit headroom, read from its response headers.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RateLimit {
    pub remaining: Option<f64>,
    pub limit: Option<f64>,
    pub reset_at: Option<Timestamp>,
}

/// The result of one probe. Built by a provider's pure parse function.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProbeOutcome {
    pub verdict: Verdict,
    pub reason: Reason,
    /// One sentence for people. Never contains the token: parse functions build it from
    /// fixed text and provider error codes only.
    pub detail: String,
    pub facts: TokenFacts,
    /// How long the provider asked us to wait (Retry-After, reset headers).
    #[serde(skip)]
    pub retry_after: Option<Duration>,
    #[serde(skip)]
    pub rate_limit: Option<RateLimit>,
    /// The refusal was for a limit every token of the provider entry shares (the exporter's
    /// address, the entry's own credential), whatever the kind usually counts its limit
    /// against: the scheduler pauses the whole entry.
    #[serde(skip)]
    pub limit_shared_by_entry: bool,
}

impl ProbeOutcome {
    /// A copy without the facts (verdict, reason, detail and the provider's wait): what a
    /// caller that hands the outcome on still needs, without copying every fact's strings.
    pub fn without_facts(&self) -> ProbeOutcome {
        ProbeOutcome {
            detail: self.detail.clone(),
            facts: TokenFacts::default(),
            ..*self
        }
    }

    pub fn new(verdict: Verdict, reason: Reason, detail: impl Into<String>) -> Self {
        ProbeOutcome {
            verdict,
            reason,
            detail: detail.into(),
            facts: TokenFacts::default(),
            retry_after: None,
            rate_limit: None,
            limit_shared_by_entry: false,
        }
    }

    pub fn valid(facts: TokenFacts) -> Self {
        ProbeOutcome {
            facts,
            ..ProbeOutcome::new(
                Verdict::Valid,
                Reason::Ok,
                "the provider confirmed the token",
            )
        }
    }

    pub fn with_facts(mut self, facts: TokenFacts) -> Self {
        self.facts = facts;
        self
    }

    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    pub fn with_rate_limit(mut self, rate_limit: Option<RateLimit>) -> Self {
        self.rate_limit = rate_limit;
        self
    }

    /// Marks a refusal as one for a limit the whole provider entry shares.
    pub fn shared_by_entry(mut self) -> Self {
        self.limit_shared_by_entry = true;
        self
    }

    pub fn unreachable(reason: Reason, detail: impl Into<String>) -> Self {
        ProbeOutcome::new(Verdict::Unreachable, reason, detail)
    }

    pub fn misconfigured(reason: Reason, detail: impl Into<String>) -> Self {
        ProbeOutcome::new(Verdict::Misconfigured, reason, detail)
    }

    pub fn invalid(reason: Reason, detail: impl Into<String>) -> Self {
        ProbeOutcome::new(Verdict::Invalid, reason, detail)
    }

    pub fn rate_limited(retry_after: Option<Duration>, detail: impl Into<String>) -> Self {
        ProbeOutcome::new(Verdict::RateLimited, Reason::RateLimited, detail)
            .with_retry_after(retry_after)
    }

    /// Replaces every occurrence of `secret` in the outcome's text with `<secret>`. The
    /// generic handler calls it on every outcome, so a provider that echoes the token back
    /// (in an error code, a message, an identity field) cannot leak it into any output.
    pub fn redact(&mut self, secret: &str) {
        if secret.len() < 4 {
            return;
        }
        let fix = |s: &mut String| {
            if s.contains(secret) {
                *s = s.replace(secret, "<secret>");
            }
        };
        fix(&mut self.detail);
        let f = &mut self.facts;
        for s in [
            &mut f.subject,
            &mut f.client_id,
            &mut f.issuer,
            &mut f.token_type,
        ]
        .into_iter()
        .flatten()
        {
            fix(s);
        }
        f.audience.iter_mut().for_each(fix);
        f.scopes.iter_mut().for_each(fix);
        f.flags.iter_mut().for_each(fix);
        f.extra.values_mut().for_each(fix);
    }

    /// A body that is not the JSON the provider documents.
    pub fn bad_response(what: &str) -> Self {
        ProbeOutcome::unreachable(
            Reason::BadResponse,
            format!("the provider's answer is not the documented JSON: {what}"),
        )
    }
}

/// How urgent a token is against its thresholds, derived from facts and `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Ok,
    Warning,
    Critical,
}

/// Thresholds that turn time-to-expiry into a severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    pub warning_before: Duration,
    pub critical_before: Duration,
}

impl Thresholds {
    /// The severity of an expiry at `now`. A token past its expiry is critical.
    pub fn severity(&self, expiry: Expiry, now: Timestamp) -> Severity {
        let Some(at) = expiry.timestamp() else {
            return Severity::Ok;
        };
        let left = at.as_second().saturating_sub(now.as_second());
        if left <= self.critical_before.as_secs() as i64 {
            Severity::Critical
        } else if left <= self.warning_before.as_secs() as i64 {
            Severity::Warning
        } else {
            Severity::Ok
        }
    }
}

/// Seconds since the Unix epoch as a float, the unit of every `_timestamp_seconds` metric.
pub fn epoch_seconds(t: Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

/// "in 6 days", "3 hours ago": time to an instant, in the largest whole unit, for people.
pub fn human_relative(at: Timestamp, now: Timestamp) -> String {
    let secs = at.as_second() - now.as_second();
    let abs = secs.unsigned_abs();
    let (n, unit) = if abs >= 86_400 {
        (abs / 86_400, "day")
    } else if abs >= 3_600 {
        (abs / 3_600, "hour")
    } else if abs >= 60 {
        (abs / 60, "minute")
    } else {
        (abs, "second")
    };
    let plural = if n == 1 { "" } else { "s" };
    if secs >= 0 {
        format!("in {n} {unit}{plural}")
    } else {
        format!("{n} {unit}{plural} ago")
    }
}

/// The result of one run of the generic handler.
#[derive(Clone, Debug)]
pub struct ProbeRun {
    pub outcome: ProbeOutcome,
    /// Fingerprint of the secret that was probed, when one was read.
    pub fingerprint: Option<String>,
    pub duration: Duration,
}

#[cfg(test)]
mod tests;
