//! The `notifications`, `notifiers` and `routes` sections of the inventory: raw serde structs
//! and their validation into [`NotifyConfig`]. Pure; `crate::config` calls [`validate`] so a
//! notification mistake is reported with every other config issue, with its path and line.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::{ConfigIssue, TokenSpec, parse_duration};
use crate::model::event::{EventKind, Level};
use crate::secret::SecretSource;

/// Everything about direct notifications. Empty (no notifiers) by default: nothing is sent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NotifyConfig {
    pub settings: Settings,
    pub notifiers: BTreeMap<String, NotifierConfig>,
    pub routes: Vec<Route>,
}

impl NotifyConfig {
    /// True when there is something to notify: at least one notifier.
    pub fn enabled(&self) -> bool {
        !self.notifiers.is_empty()
    }
}

/// The `notifications` section: timing and defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Where an event goes when no route matches; `None` drops it.
    pub default_receiver: Option<String>,
    /// How long a new event waits for others, so that they go out as one message.
    pub group_wait: Duration,
    /// How often a firing event is repeated (per route, this is the default).
    pub repeat_interval: Duration,
    /// How long a provider must fail (unreachable, rate limited) before it is an event.
    pub provider_failing_for: Duration,
    /// How long a token must stay misconfigured before it is an event.
    pub misconfigured_for: Duration,
    /// A link template with `{token}` and `{provider}` placeholders (URL-encoded on use).
    pub dashboard_url: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_receiver: None,
            group_wait: Duration::from_secs(30),
            repeat_interval: Duration::from_secs(24 * 3600),
            provider_failing_for: Duration::from_secs(30 * 60),
            misconfigured_for: Duration::from_secs(5 * 60),
            dashboard_url: None,
        }
    }
}

/// One receiver. Decoded from `kind:`; an unknown kind is refused with the list.
#[derive(Clone, Debug, PartialEq)]
pub enum NotifierConfig {
    SlackWebhook(SlackWebhookConfig),
    SlackBot(SlackBotConfig),
    Email(EmailConfig),
    Webhook(WebhookConfig),
    Alertmanager(AlertmanagerConfig),
}

/// Decoded field by field, as providers are (see [`crate::schema::tagged`]), so that a
/// plain `username: 12345` is a string and errors name the field.
impl<'de> Deserialize<'de> for NotifierConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::schema::tagged::deserialize(d)
    }
}

const NOTIFIER_KINDS: [&str; 5] = [
    "slack_webhook",
    "slack_bot",
    "email",
    "webhook",
    "alertmanager",
];

impl crate::schema::tagged::Tagged for NotifierConfig {
    const KINDS: &'static [&'static str] = &NOTIFIER_KINDS;
    const SECTION: crate::schema::tagged::Section = crate::schema::tagged::Section::Notifiers;

    fn decode<'de, A: serde::de::MapAccess<'de>>(kind: &str, fields: A) -> Result<Self, A::Error> {
        let de = serde::de::value::MapAccessDeserializer::new(fields);
        Ok(match kind {
            "slack_webhook" => NotifierConfig::SlackWebhook(SlackWebhookConfig::deserialize(de)?),
            "slack_bot" => NotifierConfig::SlackBot(SlackBotConfig::deserialize(de)?),
            "email" => NotifierConfig::Email(EmailConfig::deserialize(de)?),
            "webhook" => NotifierConfig::Webhook(WebhookConfig::deserialize(de)?),
            "alertmanager" => NotifierConfig::Alertmanager(AlertmanagerConfig::deserialize(de)?),
            _ => return Err(serde::de::Error::unknown_variant(kind, &NOTIFIER_KINDS)),
        })
    }
}

impl NotifierConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            NotifierConfig::SlackWebhook(_) => "slack_webhook",
            NotifierConfig::SlackBot(_) => "slack_bot",
            NotifierConfig::Email(_) => "email",
            NotifierConfig::Webhook(_) => "webhook",
            NotifierConfig::Alertmanager(_) => "alertmanager",
        }
    }

    /// How long one delivery attempt may take.
    pub fn timeout(&self) -> Duration {
        match self {
            NotifierConfig::SlackWebhook(c) => c.timeout,
            NotifierConfig::SlackBot(c) => c.timeout,
            NotifierConfig::Email(c) => c.timeout,
            NotifierConfig::Webhook(c) => c.timeout,
            NotifierConfig::Alertmanager(c) => c.timeout,
        }
    }

    /// Problems a field type cannot express.
    fn validate(&self) -> Vec<String> {
        let mut out = Vec::new();
        let http_url =
            |field: &str, value: &str, out: &mut Vec<String>| match url::Url::parse(value) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                Ok(_) => out.push(format!("{field} must be an http or https URL")),
                Err(e) => out.push(format!("{field} is not a URL: {e}")),
            };
        match self {
            NotifierConfig::SlackWebhook(_) => {}
            NotifierConfig::SlackBot(c) => {
                if c.channel.trim().is_empty() {
                    out.push("channel is empty".into());
                }
                http_url("api_url", &c.api_url, &mut out);
            }
            NotifierConfig::Email(c) => {
                if c.host.trim().is_empty() {
                    out.push("host is empty".into());
                }
                if c.from.parse::<lettre::message::Mailbox>().is_err() {
                    out.push(format!("from: \"{}\" is not an email address", c.from));
                }
                for to in &c.to {
                    if to.parse::<lettre::message::Mailbox>().is_err() {
                        out.push(format!("to: \"{to}\" is not an email address"));
                    }
                }
                if c.password.is_some() != c.username.is_some() {
                    out.push("username and password go together".into());
                }
                if c.ca_file.is_some() && c.tls == TlsMode::None {
                    out.push("ca_file needs tls: starttls or tls".into());
                }
            }
            NotifierConfig::Webhook(c) => http_url("url", &c.url, &mut out),
            NotifierConfig::Alertmanager(c) => {
                http_url("url", &c.url, &mut out);
                if c.resend_interval.is_zero() {
                    out.push("resend_interval must be greater than zero".into());
                }
            }
        }
        if self.timeout().is_zero() {
            out.push("timeout must be greater than zero".into());
        }
        out
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// A Slack incoming webhook. Its URL is a credential, so it is a secret source.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackWebhookConfig {
    pub url: SecretSource,
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
}

/// A Slack app's bot token posting with `chat.postMessage`; resolutions go in the thread.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackBotConfig {
    pub token: SecretSource,
    /// A channel ID (`C0123...`) or name (`#ops`); the bot must be a member.
    pub channel: String,
    #[serde(default = "default_slack_api")]
    pub api_url: String,
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
}

fn default_slack_api() -> String {
    "https://slack.com/api".into()
}

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Plain SMTP, for a relay on the same host or network.
    None,
    /// STARTTLS, required (port 587 by default).
    #[default]
    Starttls,
    /// Implicit TLS (SMTPS, port 465 by default).
    Tls,
}

/// Email over SMTP.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub host: String,
    /// Default: 587 for `starttls`, 465 for `tls`, 25 for `none`.
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: TlsMode,
    /// A PEM file with extra root certificates (a company CA), besides the system's.
    pub ca_file: Option<std::path::PathBuf>,
    pub username: Option<String>,
    pub password: Option<SecretSource>,
    pub from: String,
    /// Recipients; routes with `to_owner: true` write to the token's owner instead.
    #[serde(default)]
    pub to: Vec<String>,
    /// The name given in EHLO; default: this host's name.
    pub hello: Option<String>,
    #[serde(default = "default_email_timeout", with = "duration")]
    pub timeout: Duration,
}

impl EmailConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            TlsMode::None => 25,
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
        })
    }
}

fn default_email_timeout() -> Duration {
    Duration::from_secs(30)
}

/// A JSON POST of the documented payload, for anything else.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Sent as `Authorization: Bearer ...` when set.
    pub bearer_token: Option<SecretSource>,
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
}

/// An Alertmanager (`POST /api/v2/alerts`), for teams that route everything through theirs.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// The base URL, e.g. `http://alertmanager:9093`.
    pub url: String,
    pub bearer_token: Option<SecretSource>,
    /// How often active alerts are sent again. Alertmanager resolves an alert that is not
    /// resent before its `endsAt`, which is set to four of these intervals ahead, as
    /// Prometheus does.
    #[serde(default = "default_resend", with = "duration")]
    pub resend_interval: Duration,
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
}

fn default_resend() -> Duration {
    Duration::from_secs(60)
}

/// Durations in notifier structs, written like every other duration (`30s`, `5m`).
mod duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        crate::config::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// One route: which events go to which receiver.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    pub receiver: String,
    /// Token labels (and `token`, `provider`, `kind`) that must all be equal.
    pub matchers: BTreeMap<String, String>,
    /// `None` matches every event.
    pub events: Option<BTreeSet<EventKind>>,
    /// `None` matches every level.
    pub levels: Option<BTreeSet<Level>>,
    /// Keep matching the following routes after this one matched.
    pub continue_matching: bool,
    /// Email to the token's `owner` label instead of the receiver's `to`.
    pub to_owner: bool,
    pub repeat_interval: Duration,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    default_receiver: Option<Spanned<String>>,
    group_wait: Option<Spanned<String>>,
    repeat_interval: Option<Spanned<String>>,
    provider_failing_for: Option<Spanned<String>>,
    misconfigured_for: Option<Spanned<String>>,
    dashboard_url: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    receiver: Spanned<String>,
    #[serde(rename = "match", default)]
    matchers: BTreeMap<String, String>,
    events: Option<Vec<EventKind>>,
    severity: Option<Vec<Level>>,
    #[serde(rename = "continue", default)]
    continue_matching: bool,
    #[serde(default)]
    to_owner: bool,
    repeat_interval: Option<Spanned<String>>,
}

/// Validates the three sections together; every problem is returned, none stops the others.
pub fn validate(
    settings: Option<RawSettings>,
    notifiers: BTreeMap<String, Spanned<NotifierConfig>>,
    routes: Vec<RawRoute>,
    tokens: &[Arc<TokenSpec>],
) -> (NotifyConfig, Vec<ConfigIssue>) {
    let mut issues = Vec::new();
    let mut push = |path: String, message: String, line: Option<u64>| {
        issues.push(ConfigIssue {
            path,
            message,
            line,
        })
    };
    let raw = settings.unwrap_or_default();
    let defaults = Settings::default();
    let mut duration = |field: &str, value: &Option<Spanned<String>>, default: Duration| match value
    {
        None => default,
        Some(s) => match parse_duration(&s.value) {
            Ok(d) => d,
            Err(e) => {
                push(
                    format!("notifications.{field}"),
                    e,
                    Some(s.referenced.line()),
                );
                default
            }
        },
    };
    let group_wait = duration("group_wait", &raw.group_wait, defaults.group_wait);
    let repeat_interval = duration(
        "repeat_interval",
        &raw.repeat_interval,
        defaults.repeat_interval,
    );
    let provider_failing_for = duration(
        "provider_failing_for",
        &raw.provider_failing_for,
        defaults.provider_failing_for,
    );
    let misconfigured_for = duration(
        "misconfigured_for",
        &raw.misconfigured_for,
        defaults.misconfigured_for,
    );
    if repeat_interval.is_zero() {
        push(
            "notifications.repeat_interval".into(),
            "must be greater than zero".into(),
            raw.repeat_interval.as_ref().map(|s| s.referenced.line()),
        );
    }
    if let Some(t) = &raw.dashboard_url {
        let sample = t.value.replace("{token}", "t").replace("{provider}", "p");
        if url::Url::parse(&sample).is_err() {
            push(
                "notifications.dashboard_url".into(),
                "is not a URL (placeholders: {token}, {provider})".into(),
                Some(t.referenced.line()),
            );
        }
    }

    let mut valid_notifiers = BTreeMap::new();
    for (name, spanned) in notifiers {
        let line = Some(spanned.referenced.line());
        if name.trim().is_empty() {
            push(format!("notifiers.{name}"), "name is empty".into(), line);
        }
        for problem in spanned.value.validate() {
            push(format!("notifiers.{name}"), problem, line);
        }
        valid_notifiers.insert(name, spanned.value);
    }
    let known = |name: &str| {
        let list: Vec<&str> = valid_notifiers.keys().map(String::as_str).collect();
        format!(
            "unknown notifier \"{name}\" (defined: {})",
            if list.is_empty() {
                "none".to_string()
            } else {
                list.join(", ")
            }
        )
    };
    // An email notifier without `to` can only write to owners.
    let email_without_to = |name: &str| matches!(valid_notifiers.get(name), Some(NotifierConfig::Email(e)) if e.to.is_empty());

    let default_receiver = raw.default_receiver.as_ref().map(|s| s.value.clone());
    if let Some(d) = &raw.default_receiver {
        let line = Some(d.referenced.line());
        if !valid_notifiers.contains_key(&d.value) {
            push(
                "notifications.default_receiver".into(),
                known(&d.value),
                line,
            );
        } else if email_without_to(&d.value) {
            push(
                "notifications.default_receiver".into(),
                format!("notifier \"{}\" has no `to` addresses", d.value),
                line,
            );
        }
    }

    let mut out_routes = Vec::with_capacity(routes.len());
    for (i, r) in routes.into_iter().enumerate() {
        let at = |field: &str| format!("routes[{i}].{field}");
        let line = Some(r.receiver.referenced.line());
        match valid_notifiers.get(&r.receiver.value) {
            None => push(at("receiver"), known(&r.receiver.value), line),
            Some(n) => {
                if r.to_owner && !matches!(n, NotifierConfig::Email(_)) {
                    push(
                        at("to_owner"),
                        format!(
                            "applies only to an email notifier (\"{}\" is {})",
                            r.receiver.value,
                            n.kind()
                        ),
                        line,
                    );
                }
                if !r.to_owner && email_without_to(&r.receiver.value) {
                    push(
                        at("receiver"),
                        format!(
                            "notifier \"{}\" has no `to` addresses; set them, or to_owner: true",
                            r.receiver.value
                        ),
                        line,
                    );
                }
            }
        }
        for key in r.matchers.keys() {
            if !crate::config::is_valid_label_name(key) {
                push(
                    format!("routes[{i}].match.{key}"),
                    format!("\"{key}\" is not a label name"),
                    line,
                );
            }
        }
        if r.events.as_ref().is_some_and(Vec::is_empty) {
            push(
                at("events"),
                "is empty: leave it out to match every event".into(),
                line,
            );
        }
        if r.severity.as_ref().is_some_and(Vec::is_empty) {
            push(
                at("severity"),
                "is empty: leave it out to match every severity".into(),
                line,
            );
        }
        if r.to_owner && email_without_to(&r.receiver.value) && !r.matchers.contains_key("kind") {
            // Such a route can only write to owners: every token it may take must have one.
            for t in tokens.iter().filter(|t| {
                r.matchers.iter().all(|(k, v)| match k.as_str() {
                    "token" => &t.name == v,
                    "provider" => &t.provider == v,
                    _ => t.labels.get(k) == Some(v),
                })
            }) {
                let owner = t.labels.get("owner");
                if owner.is_none_or(|o| o.parse::<lettre::message::Mailbox>().is_err()) {
                    push(
                        at("to_owner"),
                        format!(
                            "token \"{}\" has no owner label with an email address, and notifier \"{}\" has no `to` to fall back on",
                            t.name, r.receiver.value
                        ),
                        line,
                    );
                }
            }
        }
        let repeat = match &r.repeat_interval {
            None => repeat_interval,
            Some(s) => match parse_duration(&s.value) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => {
                    push(
                        at("repeat_interval"),
                        "must be greater than zero".into(),
                        Some(s.referenced.line()),
                    );
                    repeat_interval
                }
                Err(e) => {
                    push(at("repeat_interval"), e, Some(s.referenced.line()));
                    repeat_interval
                }
            },
        };
        out_routes.push(Route {
            receiver: r.receiver.value,
            matchers: r.matchers,
            events: r.events.map(|v| v.into_iter().collect()),
            levels: r.severity.map(|v| v.into_iter().collect()),
            continue_matching: r.continue_matching,
            to_owner: r.to_owner,
            repeat_interval: repeat,
        });
    }

    (
        NotifyConfig {
            settings: Settings {
                default_receiver,
                group_wait,
                repeat_interval,
                provider_failing_for,
                misconfigured_for,
                dashboard_url: raw.dashboard_url.map(|s| s.value),
            },
            notifiers: valid_notifiers,
            routes: out_routes,
        },
        issues,
    )
}
