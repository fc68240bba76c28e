//! The `/metrics` contract: a prometheus-client `Collector` over the store. No I/O.
//!
//! This is the one place that names metrics and labels. Everything is derived at scrape time
//! from stored facts; nothing here calls a provider. Per-token series carry `token` and
//! `provider` only; the inventory's own labels go on `api_token_info` alone, so cardinality
//! stays one series per token per metric.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::config::TokenSpec;
use crate::model::{Verdict, epoch_seconds};
use crate::store::{Store, TokenState};
use crate::view::UNKNOWN_STATE;

/// Exporter-level status the collector reports alongside the store.
#[derive(Debug)]
pub struct ExporterStatus {
    pub last_reload_successful: AtomicBool,
    /// Unix seconds of the last successful (re)load.
    pub last_reload_success: AtomicI64,
    /// Per-notifier counters of direct notifications.
    pub notifications: Arc<crate::notify::Stats>,
}

impl ExporterStatus {
    pub fn new() -> Self {
        ExporterStatus {
            last_reload_successful: AtomicBool::new(true),
            last_reload_success: AtomicI64::new(jiff::Timestamp::now().as_second()),
            notifications: Arc::default(),
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

#[derive(Debug)]
struct Collector {
    store: Arc<Store>,
    status: Arc<ExporterStatus>,
}

/// A registry holding the exporter's collector.
pub fn registry(store: Arc<Store>, status: Arc<ExporterStatus>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Collector { store, status }));
    registry
}

/// Renders the registry as OpenMetrics text.
pub fn render(registry: &Registry) -> String {
    // Sized from the previous render: at 10,000 tokens the text is about 15 MB, and growing
    // a small buffer to that by doubling copied it over and over (half the page faults of a
    // scrape, see BENCHMARKS.md) and briefly held twice its size.
    static LAST_LEN: AtomicUsize = AtomicUsize::new(64 * 1024);
    let hint = LAST_LEN.load(Ordering::Relaxed);
    let mut out = String::with_capacity(hint + hint / 16);
    prometheus_client::encoding::text::encode(&mut out, registry)
        .expect("writing to a String does not fail");
    LAST_LEN.store(out.len(), Ordering::Relaxed);
    out
}

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What one token contributes to `/metrics`, copied out of the store.
struct Row {
    spec: Arc<TokenSpec>,
    kind: &'static str,
    fingerprint: Option<String>,
    verdict: Option<Verdict>,
    subject: Option<String>,
    expiry: Option<Timestamp>,
    issued: Option<Timestamp>,
    last_used: Option<Timestamp>,
    scopes: Vec<String>,
    last_at: Option<Timestamp>,
    last_duration: Option<Duration>,
    last_verdict_at: Option<Timestamp>,
    first_seen: Option<Timestamp>,
    rotated_at: Option<Timestamp>,
    /// (policy, violated) for every policy configured for the token.
    policies: Vec<(&'static str, bool)>,
}

impl Row {
    fn of(s: &TokenState, now: Timestamp) -> Row {
        Row {
            spec: s.spec.clone(),
            kind: s.kind,
            fingerprint: s.fingerprint.clone(),
            verdict: s.verdict(),
            subject: s.facts.subject.clone(),
            expiry: s.facts.expiry.timestamp(),
            issued: s.facts.issued_at,
            last_used: s.facts.last_used_at,
            scopes: s.facts.scopes.clone(),
            last_at: s.last.as_ref().map(|r| r.at),
            last_duration: s.last.as_ref().map(|r| r.duration),
            last_verdict_at: s.last_verdict_at,
            first_seen: s.first_seen,
            rotated_at: s.rotated_at,
            policies: crate::policy::evaluate(s, now)
                .into_iter()
                .map(|f| (f.policy, f.violated))
                .collect(),
        }
    }
}

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // The store's lock is held only to copy what the families need: encoding takes tens
        // of milliseconds at 10,000 tokens, and while it held the lock every probe result
        // waited for the scrape in progress (BENCHMARKS.md, wrk during a round).
        let (rows, providers) = {
            let inner = self.store.read();
            let now = jiff::Timestamp::now();
            let rows: Vec<Row> = inner.tokens.values().map(|s| Row::of(s, now)).collect();
            (rows, inner.providers.clone())
        };

        // One family at a time, each a pass over the tokens.
        macro_rules! per_token {
            ($name:expr, $help:expr, |$s:ident| $value:expr) => {{
                let mut fam = e.encode_descriptor($name, $help, None, MetricType::Gauge)?;
                for $s in rows.iter() {
                    if let Some(v) = $value {
                        let labels = [
                            ("token", $s.spec.name.as_str()),
                            ("provider", $s.spec.provider.as_str()),
                        ];
                        ConstGauge::new(v as f64).encode(fam.encode_family(&labels)?)?;
                    }
                }
            }};
        }

        {
            let mut fam = e.encode_descriptor(
                "api_token_info",
                "Token metadata, valued 1: kind, fingerprint, subject, verification, and the inventory's labels.",
                None,
                MetricType::Gauge,
            )?;
            for s in rows.iter() {
                let mut labels: Vec<(&str, &str)> = vec![
                    ("token", s.spec.name.as_str()),
                    ("provider", s.spec.provider.as_str()),
                    ("kind", s.kind),
                    ("fingerprint", s.fingerprint.as_deref().unwrap_or("")),
                    ("subject", s.subject.as_deref().unwrap_or("")),
                    (
                        "verified",
                        match s.verdict {
                            Some(Verdict::Unverified) => "false",
                            Some(v) if v.is_conclusive() => "true",
                            _ => "",
                        },
                    ),
                ];
                for (k, v) in &s.spec.labels {
                    labels.push((k.as_str(), v.as_str()));
                }
                ConstGauge::new(1i64).encode(fam.encode_family(&labels)?)?;
            }
        }
        {
            let mut fam = e.encode_descriptor(
                "api_token_state",
                "Current verdict of the token: 1 for the current state, 0 for the others (unknown = not probed yet).",
                None,
                MetricType::Gauge,
            )?;
            for s in rows.iter() {
                let current = s.verdict.map(Verdict::as_str).unwrap_or(UNKNOWN_STATE);
                let states = Verdict::ALL
                    .iter()
                    .map(|v| v.as_str())
                    .chain([UNKNOWN_STATE]);
                for state in states {
                    let labels = [
                        ("token", s.spec.name.as_str()),
                        ("provider", s.spec.provider.as_str()),
                        ("state", state),
                    ];
                    ConstGauge::new(i64::from(state == current))
                        .encode(fam.encode_family(&labels)?)?;
                }
            }
        }
        per_token!(
            "api_token_expiry_timestamp_seconds",
            "When the token expires (Unix seconds). Absent when it never expires or the provider does not say; the last known value is kept while the provider cannot answer.",
            |s| s.expiry.map(epoch_seconds)
        );
        per_token!(
            "api_token_issued_timestamp_seconds",
            "When the token was issued (Unix seconds), where the provider says.",
            |s| s.issued.map(epoch_seconds)
        );
        per_token!(
            "api_token_last_used_timestamp_seconds",
            "When the token was last used (Unix seconds), where the provider says.",
            |s| s.last_used.map(epoch_seconds)
        );
        {
            let mut fam = e.encode_descriptor(
                "api_token_scope_info",
                "One series per scope (or policy) the token holds, valued 1.",
                None,
                MetricType::Gauge,
            )?;
            for s in rows.iter() {
                for scope in &s.scopes {
                    let labels = [
                        ("token", s.spec.name.as_str()),
                        ("provider", s.spec.provider.as_str()),
                        ("scope", scope.as_str()),
                    ];
                    ConstGauge::new(1i64).encode(fam.encode_family(&labels)?)?;
                }
            }
        }
        per_token!(
            "api_token_first_seen_timestamp_seconds",
            "When the token's current fingerprint was first seen (Unix seconds); kept across restarts under --storage.path.",
            |s| s.first_seen.map(epoch_seconds)
        );
        per_token!(
            "api_token_rotated_timestamp_seconds",
            "When a new secret (a new fingerprint) last replaced the old one (Unix seconds).",
            |s| s.rotated_at.map(epoch_seconds)
        );
        {
            let mut fam = e.encode_descriptor(
                "api_token_policy_violation",
                "1 when the token violates the policy, 0 when it complies; present for every policy configured for the token.",
                None,
                MetricType::Gauge,
            )?;
            for s in rows.iter() {
                for (policy, violated) in &s.policies {
                    let labels = [
                        ("token", s.spec.name.as_str()),
                        ("provider", s.spec.provider.as_str()),
                        ("policy", *policy),
                    ];
                    ConstGauge::new(i64::from(*violated)).encode(fam.encode_family(&labels)?)?;
                }
            }
        }
        per_token!(
            "api_token_last_probe_timestamp_seconds",
            "When the token was last probed (Unix seconds), whatever the outcome.",
            |s| s.last_at.map(epoch_seconds)
        );
        per_token!(
            "api_token_last_verdict_timestamp_seconds",
            "When the provider last gave a conclusive answer about the token (Unix seconds).",
            |s| s.last_verdict_at.map(epoch_seconds)
        );
        per_token!(
            "api_token_probe_duration_seconds",
            "How long the last probe of the token took.",
            |s| s.last_duration.map(|d| d.as_secs_f64())
        );
        per_token!(
            "api_token_warning_threshold_seconds",
            "The token's warning window: alerts warn when less time than this is left.",
            |s| Some(s.spec.thresholds.warning_before.as_secs_f64())
        );
        per_token!(
            "api_token_critical_threshold_seconds",
            "The token's critical window: alerts page when less time than this is left.",
            |s| Some(s.spec.thresholds.critical_before.as_secs_f64())
        );

        {
            let mut fam = e.encode_descriptor(
                "api_token_probes",
                "Probes run, per provider.",
                None,
                MetricType::Counter,
            )?;
            for (name, p) in &providers {
                ConstCounter::new(p.probes)
                    .encode(fam.encode_family(&[("provider", name.as_str())])?)?;
            }
        }
        {
            let mut fam = e.encode_descriptor(
                "api_token_probe_failures",
                "Probes that got no conclusive answer (unreachable, rate limited, misconfigured), per provider and reason.",
                None,
                MetricType::Counter,
            )?;
            for (name, p) in &providers {
                for (reason, n) in &p.failures {
                    let labels = [("provider", name.as_str()), ("reason", reason.as_str())];
                    ConstCounter::new(*n).encode(fam.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut fam = e.encode_descriptor(
                "api_token_provider_rate_limit_remaining",
                "Requests left in the provider's rate-limit window, from its last answer that said.",
                None,
                MetricType::Gauge,
            )?;
            for (name, p) in &providers {
                if let Some(v) = p.rate_limit.and_then(|r| r.remaining) {
                    ConstGauge::new(v)
                        .encode(fam.encode_family(&[("provider", name.as_str())])?)?;
                }
            }
        }
        {
            let mut fam = e.encode_descriptor(
                "api_token_provider_rate_limit_reset_timestamp_seconds",
                "When the provider's rate-limit window resets (Unix seconds).",
                None,
                MetricType::Gauge,
            )?;
            for (name, p) in &providers {
                if let Some(t) = p.rate_limit.and_then(|r| r.reset_at) {
                    ConstGauge::new(epoch_seconds(t))
                        .encode(fam.encode_family(&[("provider", name.as_str())])?)?;
                }
            }
        }

        let notifiers = self.status.notifications.snapshot();
        {
            let mut fam = e.encode_descriptor(
                "api_token_notifications",
                "Messages handed to each notifier (Slack, email, webhook, Alertmanager), each counted once however many attempts it took.",
                None,
                MetricType::Counter,
            )?;
            for (name, n) in &notifiers {
                ConstCounter::new(n.notifications)
                    .encode(fam.encode_family(&[("notifier", name.as_str())])?)?;
            }
        }
        {
            let mut fam = e.encode_descriptor(
                "api_token_notification_failures",
                "Delivery attempts that failed, per notifier; every failed retry counts.",
                None,
                MetricType::Counter,
            )?;
            for (name, n) in &notifiers {
                ConstCounter::new(n.failures)
                    .encode(fam.encode_family(&[("notifier", name.as_str())])?)?;
            }
        }
        {
            let mut fam = e.encode_descriptor(
                "api_token_notification_last_success_timestamp_seconds",
                "When the notifier last delivered a message (Unix seconds); absent before its first delivery.",
                None,
                MetricType::Gauge,
            )?;
            for (name, n) in &notifiers {
                if let Some(t) = n.last_success {
                    ConstGauge::new(epoch_seconds(t))
                        .encode(fam.encode_family(&[("notifier", name.as_str())])?)?;
                }
            }
        }

        let ok = self.status.last_reload_successful.load(Ordering::Relaxed);
        ConstGauge::new(i64::from(ok)).encode(e.encode_descriptor(
            "api_token_exporter_config_last_reload_successful",
            "Whether the last configuration (re)load succeeded.",
            None,
            MetricType::Gauge,
        )?)?;
        ConstGauge::new(self.status.last_reload_success.load(Ordering::Relaxed)).encode(
            e.encode_descriptor(
                "api_token_exporter_config_last_reload_success_timestamp_seconds",
                "When the configuration was last loaded successfully (Unix seconds).",
                None,
                MetricType::Gauge,
            )?,
        )?;
        let mut fam = e.encode_descriptor(
            "api_token_exporter_build_info",
            "The exporter's version, valued 1.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(1i64)
            .encode(fam.encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::model::{Expiry, ProbeOutcome, RateLimit, Reason, TokenFacts, Verdict};
    use crate::provider::ProbeRun;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    /// A store with a token in each shape `/metrics` distinguishes: never probed, valid with
    /// every fact, invalid, failing with a kept expiry, with policies, and with label values
    /// that need escaping; providers with failures and rate limits; two notifiers.
    fn sample() -> (Arc<Store>, Arc<ExporterStatus>) {
        let config = Config::parse(
            r#"
global:
  policies: {max_age: 30d, forbidden_scopes: [admin]}
providers:
  idp: {kind: oauth2_introspection, introspection_url: "http://127.0.0.1:9/introspect", client_id: x, client_secret: {env: CS}}
  declared: {kind: static}
tokens:
  - name: ci-deploy
    provider: idp
    secret: {env: A}
    labels: {team: "pay\"ments", note: "back\\slash\nnewline"}
  - name: fresh
    provider: idp
    secret: {env: B}
    policies: {max_age: off, forbidden_scopes: []}
  - name: revoked
    provider: idp
    secret: {env: C}
    warning_before: 3d
    critical_before: 12h
  - name: flaky
    provider: idp
    secret: {env: D}
  - name: partner
    provider: declared
    expires_at: 2031-06-30
"#,
        )
        .expect("the sample config loads");
        let store = Arc::new(Store::new());
        store.reconcile(&config);
        let facts = TokenFacts {
            expiry: Expiry::At(at(1_900_000_000)),
            issued_at: Some(at(1_700_000_000)),
            last_used_at: Some(Timestamp::from_millisecond(1_800_000_000_250).unwrap()),
            subject: Some("svc-\"deploy\"".into()),
            scopes: vec!["read".into(), "admin".into()],
            ..TokenFacts::default()
        };
        let run = |outcome: ProbeOutcome, fp: &str, ms: u64| ProbeRun {
            outcome,
            fingerprint: Some(format!("sha256:{fp}")),
            duration: Duration::from_millis(ms),
        };
        store.record(
            "ci-deploy",
            run(ProbeOutcome::valid(facts.clone()), "aaaaaaaaaaaa", 12),
            at(1_799_999_000),
        );
        let mut limited = ProbeOutcome::new(Verdict::RateLimited, Reason::RateLimited, "429");
        limited.rate_limit = Some(RateLimit {
            remaining: Some(0.0),
            limit: Some(5000.0),
            reset_at: Some(at(1_800_000_060)),
        });
        store.record("flaky", run(ProbeOutcome::valid(facts), "dddddddddddd", 7), at(1_799_999_100));
        store.record("flaky", run(limited, "dddddddddddd", 1500), at(1_799_999_200));
        store.record(
            "revoked",
            run(ProbeOutcome::valid(TokenFacts::default()), "bbbbbbbbbbbb", 3),
            at(1_799_999_250),
        );
        store.record(
            "revoked",
            run(
                ProbeOutcome::new(Verdict::Invalid, Reason::Revoked, "revoked"),
                "cccccccccccc",
                3,
            ),
            at(1_799_999_300),
        );
        store.record(
            "partner",
            ProbeRun {
                outcome: ProbeOutcome::valid(TokenFacts {
                    expiry: Expiry::At(at(1_940_976_000)),
                    ..TokenFacts::default()
                }),
                fingerprint: None,
                duration: Duration::ZERO,
            },
            at(1_799_999_400),
        );
        let status = Arc::new(ExporterStatus::new());
        status.last_reload_success.store(1_799_990_000, Ordering::Relaxed);
        status.notifications.reconcile(["email", "team-slack"].into_iter());
        status.notifications.attempted("team-slack");
        status.notifications.failed("team-slack");
        status.notifications.succeeded("team-slack", at(1_799_999_500));
        (store, status)
    }

    /// The exposition, byte for byte. `tests/testdata/metrics.golden` was first written by
    /// prometheus-client's encoder; the hand-written one must keep every byte of it (an
    /// OpenMetrics parser in Prometheus reads it in tests/prometheus.rs). Policy findings
    /// depend on the clock, so the sample keeps them far from any boundary.
    #[test]
    fn exposition_matches_the_golden_file() {
        let (store, status) = sample();
        let text = render(&registry(store, status));
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testdata/metrics.golden");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(path, &text).unwrap();
        }
        let golden = std::fs::read_to_string(path).expect("run with UPDATE_GOLDEN=1 once");
        assert_eq!(text, golden);
    }
}
