//! Command-line flags, named as the Prometheus exporters name theirs. No I/O.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::app::shard::Shard;
use crate::expose::metrics::{Collector, Collectors};

#[derive(Debug, Parser)]
#[command(
    name = "api-token-exporter",
    version,
    about = "Asks each API token's provider whether it is valid and when it expires, and exports that to Prometheus."
)]
pub struct Cli {
    /// The inventory: providers and tokens.
    #[arg(
        long = "config.file",
        default_value = "api-token-exporter.yml",
        global = true
    )]
    pub config_file: PathBuf,

    /// Validate the config file and exit (0 when valid, 1 with the errors otherwise).
    #[arg(long = "config.check")]
    pub config_check: bool,

    /// A reload (SIGHUP or `POST /-/reload`) that would remove more than this share of the
    /// running tokens is refused and the running config kept; `POST /-/reload?force=true`
    /// applies it anyway. 1 turns the guard off, 0 refuses any removal.
    #[arg(long = "config.reload-max-drop", default_value_t = 0.5, value_parser = parse_share)]
    pub reload_max_drop: f64,

    /// Address to listen on, `host:port` or `:port` for all interfaces.
    #[arg(long = "web.listen-address", default_value = ":10042", global = true)]
    pub listen_address: String,

    /// Path under which metrics are served.
    #[arg(long = "web.telemetry-path", default_value = "/metrics", global = true)]
    pub telemetry_path: String,

    /// Directory for state that survives restarts (first-seen times, rotations, notifications).
    #[arg(long = "storage.path", default_value = "data", global = true)]
    pub storage_path: PathBuf,
    /// TLS, basic auth and response headers for every endpoint, in the exporter-toolkit
    /// format (`tls_server_config`, `basic_auth_users`, `http_server_config`).
    #[arg(long = "web.config.file", global = true)]
    pub web_config_file: Option<PathBuf>,

    /// The most HTTP connections open at once, TLS handshakes included. At the bound a new
    /// connection replaces the oldest idle or slow one; it is refused only when all are
    /// serving requests. Lowered to stay below the open-file limit.
    #[arg(long = "web.max-connections", default_value_t = crate::expose::listen::Limits::DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub max_connections: u64,

    /// How long a client may take to send a request's head (line and headers), counted from
    /// the connection (or the first byte of a request on a kept-alive one).
    #[arg(long = "web.read-header-timeout", default_value = "10s", value_parser = positive_duration, global = true)]
    pub read_header_timeout: Duration,

    /// How long a kept-alive connection may wait for its next request before it is closed.
    #[arg(long = "web.idle-timeout", default_value = "2m", value_parser = positive_duration, global = true)]
    pub idle_timeout: Duration,

    /// Replicas sharing the inventory: each probes and exports only its shard's tokens.
    #[arg(long = "shard.count", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub shard_count: u64,

    /// This replica's shard, 0-based and below --shard.count: it owns the tokens whose
    /// name's SHA-256 (first 8 bytes) modulo --shard.count equals this.
    #[arg(long = "shard.index", default_value_t = 0)]
    pub shard_index: u64,

    /// Only log messages with the given severity or above.
    #[arg(long = "log.level", value_enum, default_value_t = LogLevel::Info, global = true)]
    pub log_level: LogLevel,

    /// Output format of log messages.
    #[arg(long = "log.format", value_enum, default_value_t = LogFormat::Logfmt, global = true)]
    pub log_format: LogFormat,

    /// Scopes kept per token, the first ones in sorted order; a provider listing more marks
    /// the token `scopes_capped`. Bounds the `api_token_scope_info` series one answer makes.
    #[arg(long = "provider.max-scopes", default_value_t = 64, global = true)]
    pub max_scopes: u64,

    /// Bytes kept of a text from a provider's answer that can become a label value (subject,
    /// client id, issuer, token type, audience, scope); longer ones are cut, ending in an
    /// ellipsis, and the token is marked `label_truncated`.
    #[arg(long = "provider.max-label-length", default_value_t = 128, global = true,
          value_parser = clap::value_parser!(u64).range(16..))]
    pub max_label_length: u64,

    /// `--collector.<name>`, `--no-collector.<name>`, `--collector.disable-defaults`.
    #[command(flatten)]
    pub collectors: CollectorFlags,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The per-token families `/metrics` writes, switched as node_exporter switches its
/// collectors: `--collector.disable-defaults` starts from none, then each
/// `--collector.<name>` turns one on and `--no-collector.<name>` off (of the two, the one
/// given last counts). The flags are made from [`Collector::ALL`], so a new collector gets
/// its pair without a line here.
#[derive(Clone, Copy, Debug, Default)]
pub struct CollectorFlags(pub Collectors);

const DISABLE_DEFAULTS: &str = "collector.disable-defaults";

impl clap::Args for CollectorFlags {
    fn augment_args(mut cmd: clap::Command) -> clap::Command {
        cmd = cmd.arg(
            clap::Arg::new(DISABLE_DEFAULTS)
                .long(DISABLE_DEFAULTS)
                .action(clap::ArgAction::SetTrue)
                .global(true)
                .help("Start from no collector: only those named by --collector.<name> are on."),
        );
        for c in Collector::ALL {
            let (name, on, off) = c.flags();
            let default = if c.default_enabled() { "on" } else { "off" };
            cmd = cmd
                .arg(
                    clap::Arg::new(on)
                        .long(on)
                        .action(clap::ArgAction::SetTrue)
                        .overrides_with(off)
                        .global(true)
                        .help(format!(
                            "Write the `{name}` per-token families (docs/metrics.md); {default} by default."
                        )),
                )
                .arg(
                    clap::Arg::new(off)
                        .long(off)
                        .action(clap::ArgAction::SetTrue)
                        .overrides_with(on)
                        .global(true)
                        .help(format!("Do not write the `{name}` per-token families.")),
                );
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for CollectorFlags {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut set = if m.get_flag(DISABLE_DEFAULTS) {
            Collectors::none()
        } else {
            Collectors::defaults()
        };
        for c in Collector::ALL {
            let (_, on, off) = c.flags();
            if m.get_flag(on) {
                set.set(c, true);
            } else if m.get_flag(off) {
                set.set(c, false);
            }
        }
        Ok(CollectorFlags(set))
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Probe every token once, print a table, and exit 0 when all are valid and none is
    /// inside its critical window; 1 otherwise; 2 when the config is invalid.
    Check {
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
        /// Check only this token; repeat for several.
        #[arg(long = "token", value_name = "NAME")]
        tokens: Vec<String>,
        /// Check only tokens whose labels match, e.g. `team=platform,env!=dev`
        /// (`provider` and `kind` match the token's provider name and kind).
        #[arg(long, value_name = "SELECTOR")]
        selector: Option<String>,
        /// What fails the check: `invalid` (any state but valid), `critical` (also inside the
        /// critical window), `warning` (also inside the warning window, or a policy violation).
        #[arg(long = "fail-on", value_enum, default_value_t = FailOn::Critical)]
        fail_on: FailOn,
    },
    /// Run on an embedded demo inventory with in-process providers: no account, no network.
    Demo {
        /// Send the demo's notifications by email to this SMTP server (`host:port`, plain
        /// SMTP, e.g. a local `python -m aiosmtpd -n -l 127.0.0.1:2525`).
        #[arg(long = "demo.smtp", value_name = "HOST:PORT")]
        smtp: Option<String>,
        /// Send the demo's notifications to this JSON webhook.
        #[arg(long = "demo.webhook", value_name = "URL")]
        webhook: Option<String>,
    },
    /// Rotate or renew one token now through its `rotate:` block (same state file and lock as
    /// the daemon); exit 0 when done, 1 when it failed, 2 for a config error.
    Rotate {
        /// The token's name.
        #[arg(long = "token", value_name = "NAME")]
        token: String,
        /// Log every step it would take; call and write nothing.
        #[arg(long = "dry-run")]
        dry_run: bool,
    },
    /// Send a sample notification about a made-up token named `notify-test` through one
    /// notifier of the config, and exit 0 when it was accepted, 1 with the error otherwise.
    NotifyTest {
        /// The notifier's name (a key of `notifiers`).
        #[arg(long)]
        receiver: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Logfmt,
    Json,
}

/// The strictness of `check`, from least to most strict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum FailOn {
    Invalid,
    Critical,
    Warning,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

impl Cli {
    /// The validated shard flags.
    pub fn shard(&self) -> Result<Shard, String> {
        Shard::new(self.shard_index, self.shard_count)
    }

    /// The caps on what one provider answer may hold.
    pub fn answer_caps(&self) -> crate::provider::AnswerCaps {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        crate::provider::AnswerCaps {
            max_scopes: size(self.max_scopes),
            max_label_length: size(self.max_label_length),
        }
    }
}

/// A duration flag such as `10s` or `2m`; zero would close every connection at once.
fn positive_duration(value: &str) -> Result<Duration, String> {
    match humantime::parse_duration(value.trim()) {
        Ok(d) if d.is_zero() => Err("must be more than zero".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("not a duration such as 10s or 2m: {e}")),
    }
}

/// A share between 0 and 1, as `0.5`.
fn parse_share(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "\"{text}\" is not a share between 0 and 1 (e.g. 0.5)"
        )),
    }
}

/// `:10042` means every interface, as in Go's net package.
pub fn listen_addr(value: &str) -> String {
    if value.starts_with(':') {
        format!("0.0.0.0{value}")
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod reload_guard_tests;
