//! The metric families: the one file that names metrics, their help and their type.
//! Names are a contract once shipped; alerts and dashboards depend on them.

use std::sync::atomic::Ordering;

use super::*;

/// A per-token family: its name, help, and what one token writes into it.
pub(super) struct TokenFamily {
    /// The collector that switches it (`--collector.<name>`).
    pub(super) collector: Collector,
    pub(super) name: &'static str,
    pub(super) help: &'static str,
    /// Writes the token's series; the `&str` is its `token="...",provider="..."`, the
    /// `Text` the snapshot's text its row's other spans are in.
    pub(super) write: fn(&Row, &str, &Text, &mut String),
}

/// A family with at most one sample per token, absent where the token has no value.
macro_rules! one_per_token {
    ($collector:ident, $name:literal, $help:literal, |$r:ident| $value:expr) => {
        TokenFamily {
            collector: Collector::$collector,
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
    ($collector:ident, $name:literal, $help:literal, $span:ident) => {
        TokenFamily {
            collector: Collector::$collector,
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
pub(super) const TOKEN_FAMILIES: &[TokenFamily] = &[
    TokenFamily {
        collector: Collector::Info,
        name: "api_token_info",
        help: "Token metadata, valued 1: kind, fingerprint, subject, verification, expiry model, and the inventory's labels.",
        write: |r, l, text, out| token_series(out, "api_token_info{", l, text.get(r.info)),
    },
    TokenFamily {
        collector: Collector::State,
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
    TokenFamily {
        collector: Collector::StateCode,
        name: "api_token_state_code",
        help: "Current verdict of the token as one number: 0 valid, 1 unverified, 2 forbidden, 3 invalid, 4 rate_limited, 5 unreachable, 6 misconfigured, 7 unknown (not probed yet).",
        write: |r, l, _, out| {
            token_series(out, "api_token_state_code{", l, "} ");
            out.push_str(STATE_CODES[usize::from(r.state)]);
        },
    },
    one_per_token!(
        Expiry,
        "api_token_expiry_timestamp_seconds",
        "When the token expires (Unix seconds). Absent when it never expires or the provider does not say; the last known value is kept while the provider cannot answer.",
        |r| r.time(Time::Expiry)
    ),
    one_per_token!(
        Issued,
        "api_token_issued_timestamp_seconds",
        "When the token was issued (Unix seconds), where the provider says.",
        |r| r.time(Time::Issued)
    ),
    one_per_token!(
        LastUsed,
        "api_token_last_used_timestamp_seconds",
        "When the token was last used (Unix seconds), where the provider says.",
        |r| r.time(Time::LastUsed)
    ),
    one_per_line!(
        Scope,
        "api_token_scope_info",
        "One series per scope (or policy) the token holds, valued 1.",
        scopes
    ),
    one_per_line!(
        Anomaly,
        "api_token_answer_anomaly",
        "1 for each anomaly of the token's last conclusive answer (an unreadable expiry, scopes capped...); no series for a token whose answer had none.",
        anomalies
    ),
    one_per_token!(
        FirstSeen,
        "api_token_first_seen_timestamp_seconds",
        "When the token's current fingerprint was first seen (Unix seconds); kept across restarts under --storage.path.",
        |r| r.time(Time::FirstSeen)
    ),
    one_per_token!(
        Rotated,
        "api_token_rotated_timestamp_seconds",
        "When a new secret (a new fingerprint) last replaced the old one (Unix seconds).",
        |r| r.time(Time::Rotated)
    ),
    one_per_line!(
        Policy,
        "api_token_policy_violation",
        "1 when the token violates the policy, 0 when it complies; present for every policy configured for the token.",
        policies
    ),
    one_per_token!(
        LastProbe,
        "api_token_last_probe_timestamp_seconds",
        "When the token was last probed (Unix seconds), whatever the outcome.",
        |r| r.time(Time::LastProbe)
    ),
    one_per_token!(
        LastVerdict,
        "api_token_last_verdict_timestamp_seconds",
        "When the provider last gave a conclusive answer about the token (Unix seconds).",
        |r| r.time(Time::LastVerdict)
    ),
    one_per_token!(
        ProbeDuration,
        "api_token_probe_duration_seconds",
        "How long the last probe of the token took.",
        |r| (!r.duration.is_nan()).then_some(Value::Float(r.duration))
    ),
    one_per_token!(
        Threshold,
        "api_token_warning_threshold_seconds",
        "The token's warning window, where it differs from the global one (api_token_default_warning_threshold_seconds): alerts warn when less time than this is left.",
        |r| (!r.warning.is_nan()).then_some(Value::Float(r.warning))
    ),
    one_per_token!(
        Threshold,
        "api_token_critical_threshold_seconds",
        "The token's critical window, where it differs from the global one (api_token_default_critical_threshold_seconds): alerts page when less time than this is left.",
        |r| (!r.critical.is_nan()).then_some(Value::Float(r.critical))
    ),
];

impl Exposition {
    /// The per-provider, per-notifier and exporter families: a few series each.
    pub(super) fn write_exporter_families(&self, out: &mut String) {
        let (providers, notifiers) = (&self.providers, &self.notifiers);
        let defaults = self.default_thresholds;
        small_family(
            out,
            "api_token_default_warning_threshold_seconds",
            "The global warning window, for every token without one of its own in api_token_warning_threshold_seconds.",
            Kind::Gauge,
            defaults.map(|d| (String::new(), Value::Float(d.warning_before.as_secs_f64()))),
        );
        small_family(
            out,
            "api_token_default_critical_threshold_seconds",
            "The global critical window, for every token without one of its own in api_token_critical_threshold_seconds.",
            Kind::Gauge,
            defaults.map(|d| (String::new(), Value::Float(d.critical_before.as_secs_f64()))),
        );
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
        let stats = &self.probe_stats;
        keyed_family(
            out,
            "api_token_provider_oldest_probe_timestamp_seconds",
            "The earliest last probe among the provider's tokens (Unix seconds): how far behind its probes are.",
            Kind::Gauge,
            ("provider", stats),
            |p| p.oldest.map(Value::Time),
        );
        keyed_family(
            out,
            "api_token_provider_probe_duration_max_seconds",
            "The longest of the last probes of the provider's tokens.",
            Kind::Gauge,
            ("provider", stats),
            |p| Some(Value::Float(p.max)),
        );
        keyed_family(
            out,
            "api_token_provider_probe_duration_mean_seconds",
            "The mean duration of the last probes of the provider's tokens.",
            Kind::Gauge,
            ("provider", stats),
            |p| Some(Value::Float(p.sum / p.count.max(1) as f64)),
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
        self.write_source_families(out);
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
        self.write_rotation_families(out);
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

impl Exposition {
    /// The inventory sources' health: a few series per source (src/sources/health.rs).
    fn write_source_families(&self, out: &mut String) {
        let sources = &self.sources;
        // No sources configured, no families: an inventory without discovery scrapes as before.
        if sources.is_empty() {
            return;
        }
        let key = |name: &str, h: &crate::sources::health::SourceHealth| {
            labels(&[("source", name), ("kind", h.kind)])
        };
        small_family(
            out,
            "api_token_source_up",
            "Whether the source's last listing was complete (1) or failed (0; its last good listing stays in the inventory). Absent before its first listing.",
            Kind::Gauge,
            sources
                .iter()
                .filter(|(_, h)| h.listed)
                .map(|(n, h)| (key(n, h), Value::Int(i64::from(h.up)))),
        );
        small_family(
            out,
            "api_token_source_tokens",
            "Tokens of the source's last good listing that are inventory entries.",
            Kind::Gauge,
            sources
                .iter()
                .map(|(n, h)| (key(n, h), Value::Count(h.tokens()))),
        );
        small_family(
            out,
            "api_token_source_tokens_skipped",
            "Tokens the source's last good listing named that are not inventory entries, per reason (filtered, configured, vanished, undetected, no_provider, ...).",
            Kind::Gauge,
            sources.iter().flat_map(|(n, h)| {
                h.not_entered().into_iter().map(move |(why, c)| {
                    (
                        labels(&[("source", n), ("kind", h.kind), ("reason", why)]),
                        Value::Count(c),
                    )
                })
            }),
        );
        small_family(
            out,
            "api_token_source_tokens_not_rotated",
            "Entries of a source with rotate: that the block does not apply to, per reason (no_value, rotator_unfit): watched, never rotated.",
            Kind::Gauge,
            sources.iter().flat_map(|(n, h)| {
                h.not_rotated.iter().map(move |(why, c)| {
                    (
                        labels(&[("source", n), ("kind", h.kind), ("reason", why)]),
                        Value::Count(*c),
                    )
                })
            }),
        );
        small_family(
            out,
            "api_token_source_last_success_timestamp_seconds",
            "When the source's last complete listing ended (Unix seconds); absent before the first.",
            Kind::Gauge,
            sources
                .iter()
                .filter_map(|(n, h)| Some((key(n, h), Value::Int(h.last_success?)))),
        );
        small_family(
            out,
            "api_token_source_listing_duration_seconds",
            "How long the source's last listing took, complete or not.",
            Kind::Gauge,
            sources
                .iter()
                .filter(|(_, h)| h.listed)
                .map(|(n, h)| (key(n, h), Value::Float(h.last_duration.as_secs_f64()))),
        );
        small_family(
            out,
            "api_token_source_failures",
            "Listings that failed, per source and reason (unauthorized, forbidden, rate_limited, unreachable, bad_response, misconfigured).",
            Kind::Counter,
            sources.iter().flat_map(|(n, h)| {
                crate::sources::FailReason::ALL.into_iter().map(move |r| {
                    (
                        labels(&[("source", n), ("kind", h.kind), ("reason", r.as_str())]),
                        Value::Count(h.failures.get(&r).copied().unwrap_or(0)),
                    )
                })
            }),
        );
    }
}

impl Exposition {
    /// The rotation families: series only for tokens with a `rotate:` block.
    /// An inventory without one writes nothing, not even the headers.
    fn write_rotation_families(&self, out: &mut String) {
        use crate::model::rotation::RotationResult;
        if self.rotations.is_empty() {
            return;
        }
        let each = |f: fn(&crate::model::rotation::RotationStatus) -> Option<Value>| {
            self.rotations
                .iter()
                .filter_map(move |(token, provider, r)| {
                    Some((labels(&[("token", token), ("provider", provider)]), f(r)?))
                })
        };
        small_family(
            out,
            "api_token_rotations",
            "Rotation attempts since start, per token and result (success, failure, dry_run); only tokens with a rotate: block.",
            Kind::Counter,
            self.rotations.iter().flat_map(|(token, provider, r)| {
                RotationResult::ALL.into_iter().map(move |result| {
                    let l = labels(&[
                        ("token", token),
                        ("provider", provider),
                        ("result", result.as_str()),
                    ]);
                    (l, Value::Count(r.count(result)))
                })
            }),
        );
        small_family(
            out,
            "api_token_rotation_failing",
            "1 while the token's last rotation attempt failed or was interrupted (it is retried with backoff, or waits for an operator), else 0.",
            Kind::Gauge,
            each(|r| Some(Value::Int(i64::from(r.failing())))),
        );
        small_family(
            out,
            "api_token_rotation_last_success_timestamp_seconds",
            "When the token was last rotated or renewed successfully (Unix seconds); kept across restarts under --storage.path.",
            Kind::Gauge,
            each(|r| r.last_success_at.map(Value::Time)),
        );
        small_family(
            out,
            "api_token_rotation_next_timestamp_seconds",
            "When the token's next rotation is planned (Unix seconds); absent while its expiry is unknown or a rotation is in progress.",
            Kind::Gauge,
            each(|r| r.next_at.map(Value::Time)),
        );
    }
}
