//! Which receivers an event goes to. Pure.
//!
//! Routes are tried in order, as in Alertmanager: the first route that matches takes the
//! event, unless it says `continue: true`, in which case matching goes on. An event no route
//! took goes to `default_receiver`, if there is one.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::notify::config::{NotifierConfig, NotifyConfig, Route};
use crate::notify::event::{EventKind, Level, TokenSnapshot};

/// Where one notification goes: a receiver and, for owner-addressed email, the address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Target {
    pub receiver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

impl Target {
    pub fn new(receiver: &str) -> Self {
        Target {
            receiver: receiver.to_string(),
            to: None,
        }
    }

    /// The key of the target in the state file and the delivery queues.
    pub fn id(&self) -> String {
        match &self.to {
            None => self.receiver.clone(),
            Some(to) => format!("{} to {to}", self.receiver),
        }
    }
}

/// A target with the reminder interval of the route that chose it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routed {
    pub target: Target,
    pub repeat_interval: Duration,
}

/// What the planner needs to know about a receiver kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceiverTraits {
    /// Resolutions are replies to the message that announced the alert (Slack bot, email).
    pub threads: bool,
    /// The receiver keeps its own alert state (Alertmanager): it must be told when an alert
    /// ends even when another one of its token takes over, and never hears a reminder
    /// interval other than its resend interval.
    pub keeps_alerts: bool,
    /// Overrides every route's `repeat_interval` (Alertmanager's resend interval).
    pub fixed_repeat: Option<Duration>,
    /// The receiver has addresses of its own to fall back on when a token has no owner.
    pub has_default_recipients: bool,
}

impl ReceiverTraits {
    pub fn of(config: &NotifierConfig) -> Self {
        match config {
            NotifierConfig::SlackBot(_) => ReceiverTraits {
                threads: true,
                keeps_alerts: false,
                fixed_repeat: None,
                has_default_recipients: true,
            },
            NotifierConfig::Email(e) => ReceiverTraits {
                threads: true,
                keeps_alerts: false,
                fixed_repeat: None,
                has_default_recipients: !e.to.is_empty(),
            },
            NotifierConfig::Alertmanager(a) => ReceiverTraits {
                threads: false,
                keeps_alerts: true,
                fixed_repeat: Some(a.resend_interval),
                has_default_recipients: true,
            },
            NotifierConfig::SlackWebhook(_) | NotifierConfig::Webhook(_) => ReceiverTraits {
                threads: false,
                keeps_alerts: false,
                fixed_repeat: None,
                has_default_recipients: true,
            },
        }
    }
}

/// The routes of a config, ready to match.
#[derive(Clone, Debug, Default)]
pub struct Routing {
    routes: Vec<Route>,
    default_receiver: Option<String>,
    default_repeat: Duration,
    receivers: BTreeMap<String, ReceiverTraits>,
}

impl Routing {
    pub fn new(config: &NotifyConfig) -> Self {
        Routing {
            routes: config.routes.clone(),
            default_receiver: config.settings.default_receiver.clone(),
            default_repeat: config.settings.repeat_interval,
            receivers: config
                .notifiers
                .iter()
                .map(|(name, c)| (name.clone(), ReceiverTraits::of(c)))
                .collect(),
        }
    }

    pub fn traits(&self, receiver: &str) -> Option<ReceiverTraits> {
        self.receivers.get(receiver).copied()
    }

    /// The targets of an event about `token`, in route order, without duplicates.
    pub fn route(&self, token: &TokenSnapshot, event: EventKind, level: Level) -> Vec<Routed> {
        let mut out: Vec<Routed> = Vec::new();
        let add = |receiver: &str, to_owner: bool, repeat: Duration, out: &mut Vec<Routed>| {
            let Some(traits) = self.traits(receiver) else {
                return;
            };
            let to = if to_owner { owner_address(token) } else { None };
            if to_owner && to.is_none() && !traits.has_default_recipients {
                // No owner address and nobody else to write to: config validation refuses
                // this for tokens it can see; a token whose owner is not an address lands
                // here and is skipped rather than sent to no one.
                return;
            }
            let target = Target {
                receiver: receiver.to_string(),
                to,
            };
            if out.iter().any(|r| r.target == target) {
                return;
            }
            out.push(Routed {
                target,
                repeat_interval: traits.fixed_repeat.unwrap_or(repeat),
            });
        };
        let mut matched = false;
        for route in &self.routes {
            if !matches(route, token, event, level) {
                continue;
            }
            matched = true;
            add(
                &route.receiver,
                route.to_owner,
                route.repeat_interval,
                &mut out,
            );
            if !route.continue_matching {
                break;
            }
        }
        if !matched && let Some(d) = &self.default_receiver {
            add(d, false, self.default_repeat, &mut out);
        }
        out
    }
}

/// True when every matcher, the event list and the severity list of a route accept the event.
pub fn matches(route: &Route, token: &TokenSnapshot, event: EventKind, level: Level) -> bool {
    if route.events.as_ref().is_some_and(|e| !e.contains(&event)) {
        return false;
    }
    if route.levels.as_ref().is_some_and(|l| !l.contains(&level)) {
        return false;
    }
    route.matchers.iter().all(|(key, want)| {
        let have = match key.as_str() {
            "token" => Some(token.token.as_str()),
            "provider" => Some(token.provider.as_str()),
            "kind" => Some(token.kind.as_str()),
            _ => token.label(key),
        };
        have == Some(want.as_str())
    })
}

/// The token's `owner` label when it is an email address.
pub fn owner_address(token: &TokenSnapshot) -> Option<String> {
    let owner = token.label("owner")?;
    owner
        .parse::<lettre::message::Mailbox>()
        .ok()
        .map(|_| owner.to_string())
}

#[cfg(test)]
mod tests;
