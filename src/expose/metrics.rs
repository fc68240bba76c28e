//! The `/metrics` contract, written as OpenMetrics text. No I/O.
//!
//! This is the one place that names metrics and labels. Everything is derived at scrape time
//! from stored facts; nothing here calls a provider. Per-token series carry `token` and
//! `provider` only; the inventory's own labels go on `api_token_info` alone, so cardinality
//! stays one series per token per metric.
//!
//! A scrape copies what it needs out of the store under its lock ([`Metrics::snapshot`]):
//! one row of numbers per token and one string of every token's label text, both given
//! back to the system when the scrape ends (src/memory.rs). It then writes the text
//! outside the lock, a chunk at a time
//! ([`Exposition`] is an HTTP body), so a 10,000-token scrape never holds its 16 MB of text
//! in memory at once. The encoder is
//! written here rather than taken from prometheus-client: that one escaped and dispatched
//! every label of every series through `dyn fmt::Write`, and took 74 ms for a scrape the
//! hand-written one does in a fraction of that (BENCHMARKS.md). The format is byte for byte
//! what prometheus-client wrote (`tests/testdata/metrics.golden`): floats as `dtoa` writes
//! them (`1803154033.0`), integers as `itoa` does, counters with `_total`, and `# EOF`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use jiff::Timestamp;

use crate::derive::view::UNKNOWN_STATE;
use crate::expose::memory;
use crate::model::{Verdict, epoch_seconds};
use crate::notify::NotifierStats;
use crate::schema::{TokenLabels, TokenSpec};
use crate::state::store::{ProviderState, Store, TokenState};

/// Exporter-level status `/metrics` reports alongside the store.
#[derive(Debug)]
pub struct ExporterStatus {
    pub last_reload_successful: AtomicBool,
    /// Unix seconds of the last successful (re)load.
    pub last_reload_success: AtomicI64,
    /// Per-notifier counters of direct notifications.
    pub notifications: Arc<crate::notify::Stats>,
    /// The HTTP listener's open connections and the ones it closed or refused.
    pub connections: Arc<crate::expose::listen::ConnectionStats>,
    /// The web config's reloads and basic auth's refusals (`Web::stats`).
    pub web: Arc<crate::expose::web::WebStats>,
    /// Heavy requests (`/metrics`, `/`, `/api/v1/tokens`) answered 503 because too many
    /// were in progress (src/server.rs).
    pub requests_refused: RequestsRefused,
}

/// Counts of heavy requests refused, per handler (`metrics`, `page`, `api`).
#[derive(Debug, Default)]
pub struct RequestsRefused {
    pub metrics: std::sync::atomic::AtomicU64,
    pub page: std::sync::atomic::AtomicU64,
    pub api: std::sync::atomic::AtomicU64,
}

impl RequestsRefused {
    /// Every handler's count, each listed even at zero so the series exist before the first
    /// refusal (a `rate()` over a series that appears at its first increment misses it).
    pub fn snapshot(&self) -> [(&'static str, u64); 3] {
        [
            ("metrics", self.metrics.load(Ordering::Relaxed)),
            ("page", self.page.load(Ordering::Relaxed)),
            ("api", self.api.load(Ordering::Relaxed)),
        ]
    }
}

impl ExporterStatus {
    pub fn new() -> Self {
        ExporterStatus {
            last_reload_successful: AtomicBool::new(true),
            last_reload_success: AtomicI64::new(jiff::Timestamp::now().as_second()),
            notifications: Arc::default(),
            web: Arc::default(),
            requests_refused: RequestsRefused::default(),
            connections: Arc::default(),
        }
    }

    pub fn reload_succeeded(&self) {
        self.last_reload_successful.store(true, Ordering::Relaxed);
        self.last_reload_success
            .store(jiff::Timestamp::now().as_second(), Ordering::Relaxed);
    }

    pub fn reload_failed(&self) {
        self.last_reload_successful.store(false, Ordering::Relaxed);
    }
}

impl Default for ExporterStatus {
    fn default() -> Self {
        Self::new()
    }
}

/// The `/metrics` source: the store and the exporter's own status.
#[derive(Clone, Debug)]
pub struct Metrics {
    store: Arc<Store>,
    status: Arc<ExporterStatus>,
    /// The length of the last snapshot's text: how much of the next one to fault in first.
    text_len: Arc<AtomicUsize>,
}

impl Metrics {
    pub fn new(store: Arc<Store>, status: Arc<ExporterStatus>) -> Self {
        Metrics {
            store,
            status,
            text_len: Arc::default(),
        }
    }

    /// The exporter's own status, for handlers that count what they refuse.
    pub fn status(&self) -> &ExporterStatus {
        &self.status
    }

    /// Copies what the exposition needs. The store's lock is held for the copy only: while a
    /// scrape held it for the whole encoding, every probe result waited for the scrape in
    /// progress (BENCHMARKS.md, wrk during a round).
    pub fn snapshot(&self) -> Exposition {
        // Both buffers are over `memory::BIG` from a few thousand tokens on, so each is a
        // mapping of its own, given back when the scrape ends (src/memory.rs), and faulted in
        // before the lock is taken: probe results wait for the copy, not for page faults. A
        // reload between the two locks only makes a buffer grow.
        let n = self.store.read().tokens.len();
        let mut rows = memory::faulted_vec::<Row>(n);
        let text_len = match self.text_len.load(Ordering::Relaxed) {
            // About what a token's labels take, before the first scrape has said.
            0 => n * 256,
            last => last + last / 16,
        };
        let mut text =
            String::from_utf8(memory::faulted_vec(text_len)).expect("an empty buffer is UTF-8");
        let providers = {
            let inner = self.store.read();
            let now = jiff::Timestamp::now();
            let states: Vec<&TokenState> = inner.tokens.values().map(|s| &**s).collect();
            for (i, s) in states.iter().enumerate() {
                prefetch_ahead(&states, i);
                rows.push(Row::of(s, now, &mut text));
            }
            inner.providers.clone()
        };
        self.text_len.store(text.len(), Ordering::Relaxed);
        Exposition {
            text: Text(text),
            rows,
            providers,
            notifiers: self.status.notifications.snapshot(),
            reload_ok: self.status.last_reload_successful.load(Ordering::Relaxed),
            reload_at: self.status.last_reload_success.load(Ordering::Relaxed),
            web: self.status.web.clone(),
            refused: self.status.requests_refused.snapshot(),
            connections: (
                self.status.connections.open(),
                self.status.connections.max(),
                self.status.connections.dropped(),
            ),
            family: 0,
            row: 0,
        }
    }
}

/// The whole exposition as one string (tests, and anything that wants it at once).
pub fn render(metrics: &Metrics) -> String {
    let mut e = metrics.snapshot();
    let mut out = String::new();
    while e.write_chunk(&mut out, usize::MAX) {}
    out
}

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How much text a chunk of the streamed body holds, about. At 10,000 tokens, 64 KiB chunks
/// cost a scrape 250 writes and wake-ups of the reader, and 2 ms more CPU than 256 KiB;
/// 1 MiB chunks measured slower again, with twice the system time (BENCHMARKS.md).
const CHUNK: usize = 256 * 1024;

/// A byte range of a snapshot's text.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: u32,
    end: u32,
}

/// What one token contributes to `/metrics`, copied out of the store: numbers, and spans of
/// the snapshot's text for everything that is text. A row points at nothing else, so the 19
/// passes a scrape makes over the rows (one per family) read two contiguous buffers instead
/// of 10,000 tokens' scattered specs, facts and strings 19 times (BENCHMARKS.md).
#[derive(Debug)]
struct Row {
    /// `token="...",provider="..."`.
    series: Span,
    /// What `api_token_info` writes after `series`, up to and including its newline.
    info: Span,
    /// `,scope="..."} 1\n` for each scope, one after another. Escaped label values hold no
    /// newline, so each line ends where a newline is.
    scopes: Span,
    /// `,policy="..."} 0\n` (or `1`) for every policy configured for the token, likewise.
    policies: Span,
    /// `,anomaly="..."} 1\n` for each of the answer's anomalies, likewise; empty for most.
    anomalies: Span,
    /// The current state, an index into [`STATE_CLOSES`].
    state: u8,
    /// Which of `times` are set, a bit per [`Time`].
    has: u8,
    /// `Option<Timestamp>` is 24 bytes and a row has seven: a bit each instead took a
    /// quarter off a row (240 bytes to 176).
    times: [Timestamp; Time::COUNT],
    /// Seconds; NaN when the token was never probed.
    duration: f64,
    warning: f64,
    critical: f64,
}

/// The timestamps a row carries, each an index into `Row::times`.
#[derive(Clone, Copy)]
enum Time {
    Expiry,
    Issued,
    LastUsed,
    FirstSeen,
    Rotated,
    LastProbe,
    LastVerdict,
}

impl Time {
    const COUNT: usize = 7;
}

impl Row {
    /// The token's row, its text appended to `text`.
    fn of(s: &TokenState, now: Timestamp, text: &mut String) -> Row {
        let spec = &s.spec;
        let facts = &s.facts;
        let verdict = s.verdict();
        let labels = TokenLabels::of(spec);
        let series = append(text, |t| t.push_str(&labels.series));
        let info = append(text, |t| {
            let verified = match verdict {
                Some(Verdict::Unverified) => "false",
                Some(v) if v.is_conclusive() => "true",
                _ => "",
            };
            for (k, v) in [
                ("kind", s.kind),
                ("fingerprint", s.fingerprint.as_deref().unwrap_or("")),
                ("subject", facts.subject.as_deref().unwrap_or("")),
                ("verified", verified),
            ] {
                t.push(',');
                label(t, k, v);
            }
            t.push_str(&labels.inventory);
            t.push_str("} 1\n");
        });
        let scopes = append(text, |t| {
            for scope in &facts.scopes {
                t.push(',');
                label(t, "scope", scope);
                t.push_str("} 1\n");
            }
        });
        let anomalies = append(text, |t| {
            for anomaly in &facts.anomalies {
                t.push(',');
                label(t, "anomaly", anomaly.as_str());
                t.push_str("} 1\n");
            }
        });
        let policies = append(text, |t| {
            crate::derive::policy::each_finding(s, now, |policy, violated, _| {
                t.push(',');
                label(t, "policy", policy);
                t.push_str(if violated { "} 1\n" } else { "} 0\n" });
            });
        });
        // STATE_CLOSES lists Verdict::ALL, then unknown.
        let state = match verdict {
            Some(v) => Verdict::ALL.iter().position(|&w| w == v).unwrap_or(0),
            None => Verdict::ALL.len(),
        } as u8;
        let mut row = Row {
            series,
            info,
            scopes,
            policies,
            anomalies,
            state,
            has: 0,
            times: [Timestamp::UNIX_EPOCH; Time::COUNT],
            duration: s
                .last
                .as_ref()
                .map_or(f64::NAN, |r| r.duration.as_secs_f64()),
            warning: spec.thresholds.warning_before.as_secs_f64(),
            critical: spec.thresholds.critical_before.as_secs_f64(),
        };
        for (which, t) in [
            (Time::Expiry, facts.expiry.timestamp()),
            (Time::Issued, facts.issued_at),
            (Time::LastUsed, facts.last_used_at),
            (Time::FirstSeen, s.first_seen),
            (Time::Rotated, s.rotated_at),
            (Time::LastProbe, s.last.as_ref().map(|r| r.at)),
            (Time::LastVerdict, s.last_verdict_at),
        ] {
            if let Some(t) = t {
                row.times[which as usize] = t;
                row.has |= 1 << which as u8;
            }
        }
        row
    }

    fn time(&self, which: Time) -> Option<Value> {
        let i = which as usize;
        (self.has & (1 << i) != 0).then(|| Value::Time(self.times[i]))
    }
}

/// Asks the CPU for what [`Row::of`] will read of the tokens after the `i`th, each level of
/// pointers a few tokens further ahead than the next: the states eight ahead, their specs,
/// facts and fingerprints four ahead (the states have arrived by then), the strings those
/// point to two and one ahead. Without it, the copy waited on memory for each token's ten
/// or so scattered loads in turn, and took most of a scrape (BENCHMARKS.md).
#[inline(always)]
fn prefetch_ahead(states: &[&TokenState], i: usize) {
    if let Some(s) = states.get(i + 8) {
        prefetch(*s);
    }
    if let Some(s) = states.get(i + 4) {
        prefetch(&*s.spec);
        prefetch(&*s.facts);
        if let Some(f) = &s.fingerprint {
            prefetch_bytes(f.as_bytes());
        }
    }
    if let Some(s) = states.get(i + 2) {
        if let Some(l) = s.spec.metric_labels.get() {
            prefetch_bytes(l.series.as_bytes());
            prefetch_bytes(l.inventory.as_bytes());
        }
        if let Some(subject) = &s.facts.subject {
            prefetch_bytes(subject.as_bytes());
        }
        prefetch_bytes(&s.facts.scopes[..]);
    }
    if let Some(s) = states.get(i + 1) {
        for scope in &s.facts.scopes {
            prefetch_bytes(scope.as_bytes());
        }
    }
}

/// Asks the CPU to bring `value`'s memory into cache, every line of it.
#[inline(always)]
fn prefetch<T>(value: &T) {
    prefetch_bytes(std::slice::from_ref(value));
}

/// [`prefetch`] for a slice.
#[inline(always)]
fn prefetch_bytes<T>(slice: &[T]) {
    let start = slice.as_ptr() as *const i8;
    let len = std::mem::size_of_val(slice);
    let mut offset = 0;
    while offset < len {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint: it never faults and changes no memory, and the
        // address is inside `slice`. SSE, which it needs, is in the x86_64 baseline.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                start.wrapping_add(offset),
            )
        };
        offset += 64;
    }
}

/// Runs `write` on `text` and returns the span of what it appended.
fn append(text: &mut String, write: impl FnOnce(&mut String)) -> Span {
    let start = text.len();
    write(text);
    let span = |n: usize| u32::try_from(n).expect("a snapshot's text is under 4 GiB");
    Span {
        start: span(start),
        end: span(text.len()),
    }
}

impl TokenLabels {
    fn of(spec: &TokenSpec) -> &TokenLabels {
        spec.metric_labels.get_or_init(|| {
            let series = labels(&[("token", &spec.name), ("provider", &spec.provider)]);
            let mut inventory = String::new();
            for (k, v) in spec.labels.iter() {
                inventory.push(',');
                label(&mut inventory, k, v);
            }
            TokenLabels {
                series: series.into(),
                inventory: inventory.into(),
            }
        })
    }
}

/// A per-token family: its name, help, and what one token writes into it.
struct TokenFamily {
    name: &'static str,
    help: &'static str,
    /// Writes the token's series; the `&str` is its `token="...",provider="..."`, the
    /// `Text` the snapshot's text its row's other spans are in.
    write: fn(&Row, &str, &Text, &mut String),
}

/// A family with at most one sample per token, absent where the token has no value.
macro_rules! one_per_token {
    ($name:literal, $help:literal, |$r:ident| $value:expr) => {
        TokenFamily {
            name: $name,
            help: $help,
            write: |$r, l, _, out| {
                if let Some(v) = $value {
                    token_series(out, concat!($name, "{"), l, "} ");
                    push_value(out, v);
                }
            },
        }
    };
}

/// A family with a series per line of a row's span (scopes, policies): each line is the
/// rest of a series after the token's labels.
macro_rules! one_per_line {
    ($name:literal, $help:literal, $span:ident) => {
        TokenFamily {
            name: $name,
            help: $help,
            write: |r, l, text, out| {
                for rest in text.get(r.$span).split_inclusive('\n') {
                    token_series(out, concat!($name, "{"), l, rest);
                }
            },
        }
    };
}

/// The per-token families, in the order they are written.
const TOKEN_FAMILIES: &[TokenFamily] = &[
    TokenFamily {
        name: "api_token_info",
        help: "Token metadata, valued 1: kind, fingerprint, subject, verification, and the inventory's labels.",
        write: |r, l, text, out| token_series(out, "api_token_info{", l, text.get(r.info)),
    },
    TokenFamily {
        name: "api_token_state",
        help: "Current verdict of the token: 1 for the current state, 0 for the others (unknown = not probed yet).",
        write: |r, l, _, out| {
            for (i, (_, close)) in STATE_CLOSES.iter().enumerate() {
                token_series(out, "api_token_state{", l, close);
                out.push_str(if i == usize::from(r.state) {
                    "1\n"
                } else {
                    "0\n"
                });
            }
        },
    },
    one_per_token!(
        "api_token_expiry_timestamp_seconds",
        "When the token expires (Unix seconds). Absent when it never expires or the provider does not say; the last known value is kept while the provider cannot answer.",
        |r| r.time(Time::Expiry)
    ),
    one_per_token!(
        "api_token_issued_timestamp_seconds",
        "When the token was issued (Unix seconds), where the provider says.",
        |r| r.time(Time::Issued)
    ),
    one_per_token!(
        "api_token_last_used_timestamp_seconds",
        "When the token was last used (Unix seconds), where the provider says.",
        |r| r.time(Time::LastUsed)
    ),
    one_per_line!(
        "api_token_scope_info",
        "One series per scope (or policy) the token holds, valued 1.",
        scopes
    ),
    one_per_line!(
        "api_token_answer_anomaly",
        "1 for each anomaly of the token's last conclusive answer (an unreadable expiry, scopes capped...); no series for a token whose answer had none.",
        anomalies
    ),
    one_per_token!(
        "api_token_first_seen_timestamp_seconds",
        "When the token's current fingerprint was first seen (Unix seconds); kept across restarts under --storage.path.",
        |r| r.time(Time::FirstSeen)
    ),
    one_per_token!(
        "api_token_rotated_timestamp_seconds",
        "When a new secret (a new fingerprint) last replaced the old one (Unix seconds).",
        |r| r.time(Time::Rotated)
    ),
    one_per_line!(
        "api_token_policy_violation",
        "1 when the token violates the policy, 0 when it complies; present for every policy configured for the token.",
        policies
    ),
    one_per_token!(
        "api_token_last_probe_timestamp_seconds",
        "When the token was last probed (Unix seconds), whatever the outcome.",
        |r| r.time(Time::LastProbe)
    ),
    one_per_token!(
        "api_token_last_verdict_timestamp_seconds",
        "When the provider last gave a conclusive answer about the token (Unix seconds).",
        |r| r.time(Time::LastVerdict)
    ),
    one_per_token!(
        "api_token_probe_duration_seconds",
        "How long the last probe of the token took.",
        |r| (!r.duration.is_nan()).then_some(Value::Float(r.duration))
    ),
    one_per_token!(
        "api_token_warning_threshold_seconds",
        "The token's warning window: alerts warn when less time than this is left.",
        |r| Some(Value::Float(r.warning))
    ),
    one_per_token!(
        "api_token_critical_threshold_seconds",
        "The token's critical window: alerts page when less time than this is left.",
        |r| Some(Value::Float(r.critical))
    ),
];

/// A snapshot's text: every row's labels, spans of one string.
struct Text(String);

impl Text {
    fn get(&self, span: Span) -> &str {
        &self.0[span.start as usize..span.end as usize]
    }
}

/// The exposition of one scrape: a snapshot, written out a chunk at a time. It is also the
/// HTTP body of `/metrics`, so a scrape holds the snapshot and one chunk, not the whole text.
pub struct Exposition {
    text: Text,
    rows: Vec<Row>,
    providers: BTreeMap<String, ProviderState>,
    notifiers: BTreeMap<String, NotifierStats>,
    reload_ok: bool,
    reload_at: i64,
    web: Arc<crate::expose::web::WebStats>,
    refused: [(&'static str, u64); 3],
    /// Open connections, the bound, and closed or refused ones per reason.
    connections: (
        u64,
        u64,
        [(&'static str, u64); crate::expose::listen::DropReason::ALL.len()],
    ),
    /// Where the writing stands: an index into `TOKEN_FAMILIES` (then the exporter-level
    /// families, then done), and the next row of that family.
    family: usize,
    row: usize,
}

impl Exposition {
    /// Appends the next part of the text to `out`, stopping once `out` holds `limit` bytes
    /// or more. Returns whether anything is left to write.
    pub fn write_chunk(&mut self, out: &mut String, limit: usize) -> bool {
        while let Some(f) = TOKEN_FAMILIES.get(self.family) {
            if self.row == 0 {
                header(out, f.name, f.help, Kind::Gauge);
            }
            while let Some(r) = self.rows.get(self.row) {
                (f.write)(r, self.text.get(r.series), &self.text, out);
                self.row += 1;
                if out.len() >= limit {
                    return true;
                }
            }
            self.family += 1;
            self.row = 0;
        }
        if self.family == TOKEN_FAMILIES.len() {
            self.write_exporter_families(out);
            self.family += 1;
        }
        false
    }

    /// The per-provider, per-notifier and exporter families: a few series each.
    fn write_exporter_families(&self, out: &mut String) {
        let (providers, notifiers) = (&self.providers, &self.notifiers);
        keyed_family(
            out,
            "api_token_probes",
            "Probes run, per provider.",
            Kind::Counter,
            ("provider", providers),
            |p| Some(Value::Count(p.probes)),
        );
        small_family(
            out,
            "api_token_probe_failures",
            "Probes that got no conclusive answer (unreachable, rate limited, misconfigured), per provider and reason.",
            Kind::Counter,
            providers.iter().flat_map(|(name, p)| {
                p.failures.iter().map(move |(reason, n)| {
                    let l = labels(&[("provider", name), ("reason", reason.as_str())]);
                    (l, Value::Count(*n))
                })
            }),
        );
        keyed_family(
            out,
            "api_token_provider_rate_limit_remaining",
            "Requests left in the provider's rate-limit window, from its last answer that said.",
            Kind::Gauge,
            ("provider", providers),
            |p| p.rate_limit?.remaining.map(Value::Float),
        );
        keyed_family(
            out,
            "api_token_provider_rate_limit_reset_timestamp_seconds",
            "When the provider's rate-limit window resets (Unix seconds).",
            Kind::Gauge,
            ("provider", providers),
            |p| p.rate_limit?.reset_at.map(Value::Time),
        );
        keyed_family(
            out,
            "api_token_notifications",
            "Messages handed to each notifier (Slack, email, webhook, Alertmanager), each counted once however many attempts it took.",
            Kind::Counter,
            ("notifier", notifiers),
            |n| Some(Value::Count(n.notifications)),
        );
        keyed_family(
            out,
            "api_token_notification_failures",
            "Delivery attempts that failed, per notifier; every failed retry counts.",
            Kind::Counter,
            ("notifier", notifiers),
            |n| Some(Value::Count(n.failures)),
        );
        keyed_family(
            out,
            "api_token_notification_last_success_timestamp_seconds",
            "When the notifier last delivered a message (Unix seconds); absent before its first delivery.",
            Kind::Gauge,
            ("notifier", notifiers),
            |n| n.last_success.map(Value::Time),
        );
        small_family(
            out,
            "api_token_exporter_config_last_reload_successful",
            "Whether the last configuration (re)load succeeded.",
            Kind::Gauge,
            [(String::new(), Value::Int(i64::from(self.reload_ok)))],
        );
        small_family(
            out,
            "api_token_exporter_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully (Unix seconds).",
            Kind::Gauge,
            [(String::new(), Value::Int(self.reload_at))],
        );
        let web = &self.web;
        small_family(
            out,
            "api_token_exporter_web_config_last_reload_successful",
            "Whether the last read of --web.config.file was taken into use; 0 when it was invalid or would have lowered the protection in use (the previous one keeps serving).",
            Kind::Gauge,
            [(
                String::new(),
                Value::Int(i64::from(
                    web.last_reload_successful.load(Ordering::Relaxed),
                )),
            )],
        );
        small_family(
            out,
            "api_token_exporter_web_config_last_reload_success_timestamp_seconds",
            "When the web config in use was read (Unix seconds).",
            Kind::Gauge,
            [(
                String::new(),
                Value::Int(web.last_reload_success.load(Ordering::Relaxed)),
            )],
        );
        small_family(
            out,
            "api_token_exporter_web_auth_refused",
            "Requests basic auth refused, per reason: missing (no credentials), invalid (unknown user or wrong password), busy (too many password checks waiting: 503).",
            Kind::Counter,
            web.refused()
                .map(|(reason, n)| (labels(&[("reason", reason.as_str())]), Value::Count(n))),
        );
        small_family(
            out,
            "api_token_exporter_answer_caps_applied",
            "Probes whose answer was cut by a cap (--provider.max-scopes, --provider.max-label-length), per cap.",
            Kind::Counter,
            crate::provider::CAP_NAMES
                .iter()
                .zip(&crate::provider::CAPS_APPLIED)
                .map(|(cap, n)| {
                    (
                        labels(&[("cap", cap)]),
                        Value::Count(n.load(Ordering::Relaxed)),
                    )
                }),
        );
        small_family(
            out,
            "api_token_exporter_http_requests_refused",
            "Requests to /metrics, the status page or /api/v1/tokens answered 503 because too many were in progress, per handler.",
            Kind::Counter,
            self.refused
                .iter()
                .map(|(handler, n)| (labels(&[("handler", handler)]), Value::Count(*n))),
        );
        let (open, max, dropped) = &self.connections;
        small_family(
            out,
            "api_token_exporter_http_connections",
            "HTTP connections open now, TLS handshakes included.",
            Kind::Gauge,
            [(String::new(), Value::Count(*open))],
        );
        small_family(
            out,
            "api_token_exporter_http_connections_max",
            "The bound on open HTTP connections (--web.max-connections, lowered below the open-file limit).",
            Kind::Gauge,
            [(String::new(), Value::Count(*max))],
        );
        small_family(
            out,
            "api_token_exporter_http_connections_dropped",
            "HTTP connections the exporter closed or refused, per reason: limit (refused, none could give its place), evicted (idle or slow, closed for a new one), header_timeout, idle_timeout, handshake_timeout, write_timeout (the client stopped reading).",
            Kind::Counter,
            dropped
                .iter()
                .map(|(reason, n)| (labels(&[("reason", reason)]), Value::Count(*n))),
        );
        small_family(
            out,
            "api_token_exporter_build_info",
            "The exporter's version, valued 1.",
            Kind::Gauge,
            [(
                labels(&[("version", env!("CARGO_PKG_VERSION"))]),
                Value::Int(1),
            )],
        );
        out.push_str("# EOF\n");
    }
}

impl http_body::Body for Exposition {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.family > TOKEN_FAMILIES.len() {
            return Poll::Ready(None);
        }
        let mut out = String::with_capacity(CHUNK + CHUNK / 8);
        this.write_chunk(&mut out, CHUNK);
        Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(out)))))
    }

    fn is_end_stream(&self) -> bool {
        self.family > TOKEN_FAMILIES.len()
    }
}

/// A family's type, as `# TYPE` names it.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Gauge,
    Counter,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

/// A sample's value, written as prometheus-client wrote each type.
#[derive(Clone, Copy)]
enum Value {
    Int(i64),
    Count(u64),
    Float(f64),
    /// Unix seconds, a float (`epoch_seconds`).
    Time(Timestamp),
}

/// The value and the newline that ends a sample.
#[inline]
fn push_value(out: &mut String, v: Value) {
    match v {
        Value::Int(i) => out.push_str(itoa::Buffer::new().format(i)),
        Value::Count(n) => out.push_str(itoa::Buffer::new().format(n)),
        Value::Float(f) => return push_f64(out, f),
        Value::Time(t) => return push_timestamp(out, t),
    }
    out.push('\n');
}

/// A family of a few series: its header, then each `(labels, value)`; a counter's samples
/// are named `<name>_total`, and a series without labels has no braces.
fn small_family(
    out: &mut String,
    name: &str,
    help: &str,
    kind: Kind,
    samples: impl IntoIterator<Item = (String, Value)>,
) {
    header(out, name, help, kind);
    for (labels, value) in samples {
        out.push_str(name);
        if kind == Kind::Counter {
            out.push_str("_total");
        }
        if !labels.is_empty() {
            out.push('{');
            out.push_str(&labels);
            out.push('}');
        }
        out.push(' ');
        push_value(out, value);
    }
}

/// A family with a series per provider (or notifier) that has a value, labelled with its
/// name: `(label, items)` names the label and the map it comes from.
fn keyed_family<T>(
    out: &mut String,
    name: &str,
    help: &str,
    kind: Kind,
    (label, items): (&str, &BTreeMap<String, T>),
    value: impl Fn(&T) -> Option<Value>,
) {
    let samples = items
        .iter()
        .filter_map(|(key, item)| Some((labels(&[(label, key)]), value(item)?)));
    small_family(out, name, help, kind, samples);
}

/// `# HELP` and `# TYPE` of a family.
fn header(out: &mut String, name: &str, help: &str, kind: Kind) {
    for part in [
        "# HELP ",
        name,
        " ",
        help,
        "\n# TYPE ",
        name,
        " ",
        kind.as_str(),
        "\n",
    ] {
        out.push_str(part);
    }
}

/// `key="value"`, the value escaped as the text format requires (`\\`, `\"`, `\n`).
#[inline]
fn label(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    out.push_str("=\"");
    if value.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
    } else {
        out.push_str(value);
    }
    out.push('"');
}

/// `,state="..."} ` for each state of `api_token_state`, in the order they are written.
static STATE_CLOSES: std::sync::LazyLock<Vec<(&'static str, String)>> =
    std::sync::LazyLock::new(|| {
        let states = Verdict::ALL.iter().map(|v| v.as_str());
        states
            .chain([UNKNOWN_STATE])
            .map(|state| {
                let mut close = String::from(",");
                label(&mut close, "state", state);
                close.push_str("} ");
                (state, close)
            })
            .collect()
    });

/// The start of a per-token series up to its value's space: `open` is `name{`, `close`
/// whatever follows the token's labels (`} `, or `,` before another label).
#[inline]
fn token_series(out: &mut String, open: &str, labels: &str, close: &str) {
    out.push_str(open);
    out.push_str(labels);
    out.push_str(close);
}

/// A float as `dtoa` writes it, followed by a newline. Whole numbers (timestamps, seconds)
/// take a shortcut through `itoa` that writes the same text, `1803154033.0`, in a fraction
/// of the time; `whole_floats_are_written_as_dtoa_writes_them` holds it to that.
#[inline]
fn push_f64(out: &mut String, v: f64) {
    if v.fract() == 0.0 && v.abs() < 1e15 && !(v == 0.0 && v.is_sign_negative()) {
        out.push_str(itoa::Buffer::new().format(v as i64));
        out.push_str(".0\n");
    } else {
        out.push_str(dtoa::Buffer::new().format(v));
        out.push('\n');
    }
}

/// A timestamp in Unix seconds, as `push_f64(epoch_seconds(t))` writes it, from the integer
/// milliseconds: the shortest decimal that reads back as `ms / 1000.0` is the milliseconds'
/// own decimal, so `1800000000.25` comes out without `dtoa`'s search
/// (`timestamps_are_written_as_dtoa_writes_them`).
#[inline]
fn push_timestamp(out: &mut String, t: Timestamp) {
    let ms = t.as_millisecond();
    if !(0..100_000_000_000_000).contains(&ms) {
        return push_f64(out, epoch_seconds(t));
    }
    out.push_str(itoa::Buffer::new().format(ms / 1000));
    let frac = ms % 1000;
    if frac == 0 {
        out.push_str(".0\n");
        return;
    }
    let digits = [
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ];
    let mut len = 4;
    while digits[len - 1] == b'0' {
        len -= 1;
    }
    out.push_str(std::str::from_utf8(&digits[..len]).expect("ASCII digits"));
    out.push('\n');
}

/// `key="value",...`: the labels of a series, escaped.
fn labels(pairs: &[(&str, &str)]) -> String {
    let mut l = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            l.push(',');
        }
        label(&mut l, k, v);
    }
    l
}

#[cfg(test)]
mod tests;
