//! A scrape's snapshot: one row of numbers per token and one string of label text,
//! copied out of the store under its lock so the writing happens outside it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use jiff::Timestamp;

use crate::expose::memory;
use crate::model::{Thresholds, Verdict};
use crate::schema::{TokenLabels, TokenSpec};
use crate::state::store::{Store, TokenState};

use super::*;

/// The `/metrics` source: the store and the exporter's own status.
#[derive(Clone, Debug)]
pub struct Metrics {
    store: Arc<Store>,
    status: Arc<ExporterStatus>,
    /// The length of the last snapshot's text: how much of the next one to fault in first.
    text_len: Arc<AtomicUsize>,
    /// The per-token families written (`--collector.<name>`).
    collectors: Collectors,
}

impl Metrics {
    pub fn new(store: Arc<Store>, status: Arc<ExporterStatus>) -> Self {
        Metrics {
            store,
            status,
            text_len: Arc::default(),
            collectors: Collectors::defaults(),
        }
    }

    /// The same source writing only the per-token families of `collectors`.
    pub fn with_collectors(mut self, collectors: Collectors) -> Self {
        self.collectors = collectors;
        self
    }

    /// The exporter's own status, for handlers that count what they refuse.
    pub fn status(&self) -> &ExporterStatus {
        &self.status
    }

    /// Copies what the exposition needs. The store's lock is held for the copy only, so a
    /// probe result never waits for a scrape's encoding.
    pub fn snapshot(&self) -> Exposition {
        // Both buffers are over `memory::BIG` from a few thousand tokens on, so each is a
        // mapping of its own, given back when the scrape ends (src/expose/memory.rs), and faulted in
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
        let (providers, defaults, probe_stats, rotations) = {
            let inner = self.store.read();
            let now = jiff::Timestamp::now();
            let defaults = inner.default_thresholds;
            let states: Vec<&TokenState> = inner.tokens.values().map(|s| &**s).collect();
            let mut stats = ProbeStatsBuilder::default();
            for (i, s) in states.iter().enumerate() {
                prefetch_ahead(&states, i);
                rows.push(Row::of(s, now, defaults, &mut text));
                stats.add(s);
            }
            let rotations = inner
                .tokens
                .values()
                .filter_map(|s| {
                    let r = s.rotation.clone()?;
                    Some((s.spec.name.clone(), s.spec.provider.clone(), r))
                })
                .collect();
            (inner.providers.clone(), defaults, stats.finish(), rotations)
        };
        self.text_len.store(text.len(), Ordering::Relaxed);
        Exposition {
            text: Text(text),
            rows,
            providers,
            notifiers: self.status.notifications.snapshot(),
            rotations,
            reload_ok: self.status.last_reload_successful.load(Ordering::Relaxed),
            reload_at: self.status.last_reload_success.load(Ordering::Relaxed),
            web: self.status.web.clone(),
            sources: self.status.sources.snapshot(),
            refused: self.status.requests_refused.snapshot(),
            connections: (
                self.status.connections.open(),
                self.status.connections.max(),
                self.status.connections.dropped(),
            ),
            collectors: self.collectors,
            default_thresholds: defaults,
            probe_stats,
            family: 0,
            row: 0,
        }
    }
}

/// What a provider's tokens' last probes add up to: the per-provider families that stand
/// in for the per-token probe timestamps and durations, which are off by default.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ProbeStats {
    /// The earliest last probe among the provider's probed tokens.
    pub(super) oldest: Option<Timestamp>,
    /// The longest and the summed durations of those probes, in seconds, and how many.
    pub(super) max: f64,
    pub(super) sum: f64,
    pub(super) count: u64,
}

/// Gathers [`ProbeStats`] per provider while the snapshot is copied, keyed by the names the
/// store holds: no text is copied per token.
#[derive(Default)]
struct ProbeStatsBuilder<'a> {
    by_provider: BTreeMap<&'a str, ProbeStats>,
}

impl<'a> ProbeStatsBuilder<'a> {
    fn add(&mut self, s: &'a TokenState) {
        let Some(last) = &s.last else { return };
        let d = last.duration.as_secs_f64();
        let st = self.by_provider.entry(&s.spec.provider).or_default();
        st.oldest = Some(st.oldest.map_or(last.at, |o| o.min(last.at)));
        st.max = st.max.max(d);
        st.sum += d;
        st.count += 1;
    }

    fn finish(self) -> BTreeMap<String, ProbeStats> {
        self.by_provider
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }
}

/// The whole exposition as one string (tests, and anything that wants it at once).
pub fn render(metrics: &Metrics) -> String {
    let mut e = metrics.snapshot();
    let mut out = String::new();
    while e.write_chunk(&mut out, usize::MAX) {}
    out
}

/// A byte range of a snapshot's text.
#[derive(Clone, Copy, Debug)]
pub(super) struct Span {
    pub(super) start: u32,
    pub(super) end: u32,
}

/// What one token contributes to `/metrics`, copied out of the store: numbers, and spans of
/// the snapshot's text for everything that is text. A row points at nothing else, so the
/// passes a scrape makes over the rows (one per family) read two contiguous buffers instead
/// of every token's scattered specs, facts and strings once per family.
#[derive(Debug)]
pub(super) struct Row {
    /// `token="...",provider="..."`.
    pub(super) series: Span,
    /// What `api_token_info` writes after `series`, up to and including its newline.
    pub(super) info: Span,
    /// `,scope="..."} 1\n` for each scope, one after another. Escaped label values hold no
    /// newline, so each line ends where a newline is.
    pub(super) scopes: Span,
    /// `,policy="..."} 0\n` (or `1`) for every policy configured for the token, likewise.
    pub(super) policies: Span,
    /// `,anomaly="..."} 1\n` for each of the answer's anomalies, likewise; empty for most.
    pub(super) anomalies: Span,
    /// The current state, an index into [`STATE_CLOSES`].
    pub(super) state: u8,
    /// Which of `times` are set, a bit per [`Time`].
    pub(super) has: u8,
    /// The times themselves in Unix milliseconds, valid where `has` says: a bit each
    /// instead of an `Option`, and milliseconds instead of a `Timestamp` (half its size),
    /// keep a row small, since a scrape copies one row per token. The text carries
    /// milliseconds only (`push_timestamp`), so nothing written is lost.
    pub(super) millis: [i64; Time::COUNT],
    /// Seconds; NaN when the token was never probed.
    pub(super) duration: f64,
    /// Seconds; NaN where equal to the config's global threshold, which
    /// `api_token_default_*_threshold_seconds` carries once for every token.
    pub(super) warning: f64,
    pub(super) critical: f64,
}

/// A token's threshold in seconds, or NaN where it is the global default.
fn own(threshold: std::time::Duration, default: Option<std::time::Duration>) -> f64 {
    if Some(threshold) == default {
        f64::NAN
    } else {
        threshold.as_secs_f64()
    }
}

/// The timestamps a row carries, each an index into `Row::times`.
#[derive(Clone, Copy)]
pub(super) enum Time {
    Expiry,
    Issued,
    LastUsed,
    FirstSeen,
    Rotated,
    LastProbe,
    LastVerdict,
}

impl Time {
    pub(super) const COUNT: usize = 7;
}

impl Row {
    /// The token's row, its text appended to `text`.
    pub(super) fn of(
        s: &TokenState,
        now: Timestamp,
        defaults: Option<Thresholds>,
        text: &mut String,
    ) -> Row {
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
                ("expiry_model", facts.expiry_model.as_str()),
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
            millis: [0; Time::COUNT],
            duration: s
                .last
                .as_ref()
                .map_or(f64::NAN, |r| r.duration.as_secs_f64()),
            warning: own(
                spec.thresholds.warning_before,
                defaults.map(|d| d.warning_before),
            ),
            critical: own(
                spec.thresholds.critical_before,
                defaults.map(|d| d.critical_before),
            ),
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
                row.millis[which as usize] = t.as_millisecond();
                row.has |= 1 << which as u8;
            }
        }
        row
    }

    pub(super) fn time(&self, which: Time) -> Option<Value> {
        let i = which as usize;
        (self.has & (1 << i) != 0).then(|| {
            let t = Timestamp::from_millisecond(self.millis[i]);
            Value::Time(t.expect("the milliseconds of a timestamp are one"))
        })
    }
}

/// Asks the CPU for what [`Row::of`] will read of the tokens after the `i`th, each level of
/// pointers a few tokens further ahead than the next: the states eight ahead, their specs,
/// facts and fingerprints four ahead (the states have arrived by then), the strings those
/// point to two and one ahead, so the copy, made under the store's lock, does not wait on
/// memory for each token's ten or so scattered loads in turn.
#[inline(always)]
pub(super) fn prefetch_ahead(states: &[&TokenState], i: usize) {
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
pub(super) fn prefetch<T>(value: &T) {
    prefetch_bytes(std::slice::from_ref(value));
}

/// [`prefetch`] for a slice.
#[inline(always)]
pub(super) fn prefetch_bytes<T>(slice: &[T]) {
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
pub(super) fn append(text: &mut String, write: impl FnOnce(&mut String)) -> Span {
    let start = text.len();
    write(text);
    let span = |n: usize| u32::try_from(n).expect("a snapshot's text is under 4 GiB");
    Span {
        start: span(start),
        end: span(text.len()),
    }
}

impl TokenLabels {
    pub(super) fn of(spec: &TokenSpec) -> &TokenLabels {
        spec.metric_labels.get_or_init(|| {
            let series = labels(&[("token", &spec.name), ("provider", &spec.provider)]);
            let mut inventory = String::new();
            if let Some(source) = &spec.source {
                inventory.push(',');
                label(&mut inventory, "source", source);
            }
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
