//! What a message says: Slack Block Kit, email (plain text and HTML), the webhook JSON and
//! Alertmanager alerts, from the items of a [`Message`]. Pure: `now` is an argument.
//!
//! Everything shown comes from [`crate::notify::event::TokenSnapshot`] and the alert: the
//! token's name, provider, owner and team, state, expiry (absolute UTC and relative), scopes,
//! fingerprint, runbook and dashboard links. No secret is ever in reach of this module.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::model::human_relative;
use crate::notify::engine::{Change, Item, Message};
use crate::notify::event::EventKind;

/// How many items a Slack message shows as blocks; the rest are listed by name. Slack allows
/// 50 blocks per message and each item takes two.
pub const SLACK_MAX_ITEMS: usize = 15;

/// What rendering needs besides the message.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    pub now: Timestamp,
    pub receiver: &'a str,
    /// `notifications.dashboard_url`, with `{token}` and `{provider}` placeholders.
    pub dashboard_url: Option<&'a str>,
}

impl Context<'_> {
    pub fn dashboard(&self, item: &Item) -> Option<String> {
        self.dashboard_url.map(|t| {
            t.replace("{token}", &encode(&item.token.token))
                .replace("{provider}", &encode(&item.token.provider))
        })
    }
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `2025-01-02 03:04 UTC`.
pub fn utc(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

/// The expiry as people read it: absolute and relative, or why there is none.
pub fn expiry(item: &Item, now: Timestamp) -> String {
    match item.token.expires_at {
        Some(t) => format!("{} ({})", utc(t), human_relative(t, now)),
        None if item.token.never_expires => "never".into(),
        None => "not disclosed by the provider".into(),
    }
}

fn runbook(item: &Item) -> Option<&str> {
    item.token
        .label("runbook")
        .or_else(|| item.token.label("runbook_url"))
        .filter(|r| r.starts_with("http://") || r.starts_with("https://"))
}

/// One line about one item, e.g. `deploy-bot expires in 6 days (warning)`.
pub fn title(item: &Item, now: Timestamp) -> String {
    let t = &item.token.token;
    if item.change == Change::Resolved {
        let what = match item.kind {
            EventKind::PolicyViolation => {
                format!("policy {} violation", item.policy.as_deref().unwrap_or("?"))
            }
            EventKind::RotationFailing => "rotation failure (rotated since)".to_string(),
            k => k.as_str().replace('_', " "),
        };
        let why = item.resolution.map(|r| r.describe()).unwrap_or("resolved");
        return format!("{t}: {what} resolved ({why})");
    }
    let level = item.level.as_str();
    let base = match item.kind {
        EventKind::Expiring => match item.token.expires_at {
            Some(at) => format!("{t} expires {} ({level})", human_relative(at, now)),
            None => format!("{t} is expiring ({level})"),
        },
        EventKind::Expired => match item.token.expires_at {
            Some(at) if at <= now => format!("{t} expired {}", human_relative(at, now)),
            _ => format!("{t} has expired"),
        },
        EventKind::Invalid => format!(
            "{t} is invalid ({})",
            item.token
                .reason
                .as_deref()
                .unwrap_or("refused by its provider")
        ),
        EventKind::ProviderFailing => {
            format!("{t}: provider {} is not answering", item.token.provider)
        }
        EventKind::Misconfigured => format!(
            "{t}: the exporter cannot check it ({})",
            item.token.reason.as_deref().unwrap_or("misconfigured")
        ),
        EventKind::PolicyViolation => format!(
            "{t} violates policy {}",
            item.policy.as_deref().unwrap_or("?")
        ),
        EventKind::RotationFailing => format!("{t}: its rotation is failing"),
    };
    match (item.change, item.previous_level) {
        (Change::Changed, Some(prev)) => format!("{base}: now {level}, was {}", prev.as_str()),
        (Change::Reminder, _) => format!("{base} (still firing since {})", utc(item.started_at)),
        _ => match item.supersedes {
            Some(prev) => format!("{base} (was {})", prev.as_str().replace('_', " ")),
            None => base,
        },
    }
}

/// The subject of an email, the header of a Slack message, the webhook's `summary`.
pub fn subject(message: &Message, now: Timestamp) -> String {
    let firing = message
        .items
        .iter()
        .filter(|i| i.change.is_firing())
        .count();
    let resolved = message.items.len() - firing;
    let tag = match (firing, resolved) {
        (_, 0) if firing == 1 => "[FIRING]".to_string(),
        (_, 0) => format!("[FIRING:{firing}]"),
        (0, 1) => "[RESOLVED]".to_string(),
        (0, _) => format!("[RESOLVED:{resolved}]"),
        _ => format!("[FIRING:{firing}, RESOLVED:{resolved}]"),
    };
    if let [one] = message.items.as_slice() {
        return format!("{tag} {}", title(one, now));
    }
    let mut names: Vec<&str> = Vec::new();
    for i in &message.items {
        if !names.contains(&i.token.token.as_str()) {
            names.push(&i.token.token);
        }
    }
    let shown = names.iter().take(5).copied().collect::<Vec<_>>().join(", ");
    let more = names.len().saturating_sub(5);
    if more > 0 {
        format!("{tag} API tokens: {shown} and {more} more")
    } else {
        format!("{tag} API tokens: {shown}")
    }
}

/// Labelled facts about an item, in display order (label, value).
pub fn facts(item: &Item, ctx: &Context) -> Vec<(&'static str, String)> {
    let t = &item.token;
    let mut out = vec![
        ("Provider", format!("{} ({})", t.provider, t.kind)),
        (
            "State",
            match &t.reason {
                Some(r) => format!("{} ({r})", t.state),
                None => t.state.clone(),
            },
        ),
        ("Expires", expiry(item, ctx.now)),
    ];
    if let Some(o) = t.label("owner") {
        out.push(("Owner", o.to_string()));
    }
    if let Some(team) = t.label("team") {
        out.push(("Team", team.to_string()));
    }
    out.push((
        "Scopes",
        if t.scopes.is_empty() {
            "none disclosed".into()
        } else {
            t.scopes.join(", ")
        },
    ));
    out.push(("Severity", item.level.as_str().to_string()));
    out.push(("Since", utc(item.started_at)));
    if let Some(r) = item.resolved_at {
        out.push(("Resolved", utc(r)));
    }
    if let Some(fp) = &t.fingerprint {
        out.push(("Fingerprint", fp.clone()));
    }
    out
}

fn links(item: &Item, ctx: &Context) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(r) = runbook(item) {
        out.push(("Runbook", r.to_string()));
    }
    if let Some(d) = ctx.dashboard(item) {
        out.push(("Dashboard", d));
    }
    out
}

/// Slack escapes only these three in text.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn slack_link(url: &str, text: &str) -> String {
    let url = url.replace('|', "%7C").replace('>', "%3E");
    format!("<{url}|{}>", slack_escape(text))
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn icon(item: &Item) -> &'static str {
    match (item.change, item.level) {
        (Change::Resolved, _) => ":white_check_mark:",
        (_, crate::notify::event::Level::Critical) => ":red_circle:",
        _ => ":large_orange_circle:",
    }
}

/// The Slack payload: Block Kit blocks and a plain `text` fallback (shown in notifications
/// and by clients without blocks). Used by the webhook and, with `channel`, by the bot.
pub fn slack(message: &Message, ctx: &Context) -> Value {
    let head = subject(message, ctx.now);
    let mut text = head.clone();
    for item in &message.items {
        text.push_str("\n• ");
        text.push_str(&title(item, ctx.now));
    }
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(&head, 150), "emoji": true}
    })];
    for item in message.items.iter().take(SLACK_MAX_ITEMS) {
        let mut body = format!("{} *{}*", icon(item), slack_escape(&title(item, ctx.now)));
        if !item.detail.is_empty() {
            body.push('\n');
            body.push_str(&slack_escape(&item.detail));
        }
        let fields: Vec<Value> = facts(item, ctx)
            .into_iter()
            .filter(|(k, _)| *k != "Fingerprint")
            .take(10)
            .map(|(k, v)| {
                json!({"type": "mrkdwn", "text": truncate(&format!("*{k}*\n{}", slack_escape(&v)), 2000)})
            })
            .collect();
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": truncate(&body, 3000)},
            "fields": fields,
        }));
        let mut context = Vec::new();
        if let Some(fp) = &item.token.fingerprint {
            context.push(format!("fingerprint `{fp}`"));
        }
        for (name, url) in links(item, ctx) {
            context.push(slack_link(&url, name));
        }
        context.push(format!("event `{}`", item.kind.as_str()));
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": truncate(&context.join("  ·  "), 3000)}]
        }));
    }
    if message.items.len() > SLACK_MAX_ITEMS {
        let rest: Vec<String> = message.items[SLACK_MAX_ITEMS..]
            .iter()
            .map(|i| slack_escape(&title(i, ctx.now)))
            .collect();
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": truncate(&format!("…and {} more:\n• {}", rest.len(), rest.join("\n• ")), 3000)}
        }));
    }
    json!({"text": truncate(&text, 3900), "blocks": blocks})
}

/// The plain-text part of an email.
pub fn email_text(message: &Message, ctx: &Context) -> String {
    let mut out = String::new();
    out.push_str(&subject(message, ctx.now));
    out.push_str("\n\n");
    for item in &message.items {
        out.push_str(&title(item, ctx.now));
        out.push('\n');
        out.push_str(&"-".repeat(title(item, ctx.now).chars().count().min(72)));
        out.push('\n');
        if !item.detail.is_empty() {
            out.push_str(&item.detail);
            out.push_str("\n\n");
        }
        for (k, v) in facts(item, ctx).into_iter().chain(links(item, ctx)) {
            out.push_str(&format!("{k:<12} {v}\n"));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "-- \nSent by api-token-exporter (notifier {}) at {}.\n",
        ctx.receiver,
        utc(ctx.now)
    ));
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The HTML part of an email: the same content as [`email_text`], as tables.
pub fn email_html(message: &Message, ctx: &Context) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body style=\"font-family: sans-serif\">\n",
    );
    out.push_str(&format!(
        "<h2>{}</h2>\n",
        html_escape(&subject(message, ctx.now))
    ));
    for item in &message.items {
        let color = match (item.change, item.level) {
            (Change::Resolved, _) => "#2e7d32",
            (_, crate::notify::event::Level::Critical) => "#c62828",
            _ => "#ef6c00",
        };
        out.push_str(&format!(
            "<h3 style=\"color: {color}\">{}</h3>\n",
            html_escape(&title(item, ctx.now))
        ));
        if !item.detail.is_empty() {
            out.push_str(&format!("<p>{}</p>\n", html_escape(&item.detail)));
        }
        out.push_str("<table cellpadding=\"4\">\n");
        for (k, v) in facts(item, ctx) {
            out.push_str(&format!(
                "<tr><th align=\"left\">{k}</th><td>{}</td></tr>\n",
                html_escape(&v)
            ));
        }
        for (k, url) in links(item, ctx) {
            out.push_str(&format!(
                "<tr><th align=\"left\">{k}</th><td><a href=\"{0}\">{0}</a></td></tr>\n",
                html_escape(&url)
            ));
        }
        out.push_str("</table>\n");
    }
    out.push_str(&format!(
        "<p style=\"color: #777\">Sent by api-token-exporter (notifier {}) at {}.</p>\n</body></html>\n",
        html_escape(ctx.receiver),
        utc(ctx.now)
    ));
    out
}

/// The webhook payload (documented in README, "Webhook payload").
pub fn webhook(message: &Message, ctx: &Context) -> Value {
    let firing = message.items.iter().any(|i| i.change.is_firing());
    let notifications: Vec<Value> = message
        .items
        .iter()
        .map(|i| {
            let t = &i.token;
            json!({
                "alert_id": i.alert_id,
                "event": i.kind.as_str(),
                "policy": i.policy,
                "severity": i.level.as_str(),
                "status": if i.change.is_firing() { "firing" } else { "resolved" },
                "change": i.change.as_str(),
                "previous_severity": i.previous_level.map(|l| l.as_str()),
                "supersedes": i.supersedes.map(|k| k.as_str()),
                "summary": title(i, ctx.now),
                "detail": i.detail,
                "started_at": i.started_at.to_string(),
                "resolved_at": i.resolved_at.map(|t| t.to_string()),
                "resolution": i.resolution.map(|r| r.as_str()),
                "token": {
                    "name": t.token,
                    "provider": t.provider,
                    "kind": t.kind,
                    "state": t.state,
                    "reason": t.reason,
                    "fingerprint": t.fingerprint,
                    "expires_at": t.expires_at.map(|t| t.to_string()),
                    "expires_in": t.expires_at.map(|at| human_relative(at, ctx.now)),
                    "never_expires": t.never_expires,
                    "subject": t.subject,
                    "scopes": t.scopes,
                    "labels": t.labels,
                    "owner": t.label("owner"),
                    "team": t.label("team"),
                    "runbook_url": runbook(i),
                    "dashboard_url": ctx.dashboard(i),
                },
            })
        })
        .collect();
    json!({
        "version": "1",
        "id": message.id,
        "receiver": ctx.receiver,
        "status": if firing { "firing" } else { "resolved" },
        "sent_at": ctx.now.to_string(),
        "summary": subject(message, ctx.now),
        "notifications": notifications,
    })
}

/// Alertmanager's `POST /api/v2/alerts` body. A firing alert ends `4 * resend` from now,
/// as Prometheus does, so Alertmanager resolves it by itself if the exporter goes away; a
/// resolved one ends when it resolved. A level change ends the alert of the old level,
/// since the severity label is part of the alert's identity there.
pub fn alertmanager(message: &Message, ctx: &Context, resend: Duration) -> Value {
    let ends_firing = ctx
        .now
        .checked_add(jiff::SignedDuration::try_from(resend * 4).unwrap_or_default())
        .unwrap_or(ctx.now);
    let mut alerts = Vec::new();
    for i in &message.items {
        let labels = |level: &str| {
            let mut l = serde_json::Map::new();
            for (k, v) in &i.token.labels {
                l.insert(k.clone(), json!(v));
            }
            l.insert("alertname".into(), json!(i.kind.alertname()));
            l.insert("token".into(), json!(i.token.token));
            l.insert("provider".into(), json!(i.token.provider));
            l.insert("event".into(), json!(i.kind.as_str()));
            l.insert("severity".into(), json!(level));
            l.insert("source".into(), json!("api-token-exporter"));
            if let Some(p) = &i.policy {
                l.insert("policy".into(), json!(p));
            }
            Value::Object(l)
        };
        let mut annotations = serde_json::Map::new();
        annotations.insert("summary".into(), json!(title(i, ctx.now)));
        annotations.insert("description".into(), json!(i.detail));
        annotations.insert("expires".into(), json!(expiry(i, ctx.now)));
        if let Some(fp) = &i.token.fingerprint {
            annotations.insert("fingerprint".into(), json!(fp));
        }
        if let Some(r) = runbook(i) {
            annotations.insert("runbook_url".into(), json!(r));
        }
        let dashboard = ctx.dashboard(i);
        if let Some(d) = &dashboard {
            annotations.insert("dashboard_url".into(), json!(d));
        }
        let ends = match i.change {
            Change::Resolved => i.resolved_at.unwrap_or(ctx.now),
            _ => ends_firing,
        };
        let mut alert = json!({
            "labels": labels(i.level.as_str()),
            "annotations": annotations,
            "startsAt": i.started_at.to_string(),
            "endsAt": ends.to_string(),
        });
        if let Some(d) = dashboard {
            alert["generatorURL"] = json!(d);
        }
        if let (Change::Changed, Some(prev)) = (i.change, i.previous_level) {
            alerts.push(json!({
                "labels": labels(prev.as_str()),
                "annotations": alert["annotations"].clone(),
                "startsAt": i.started_at.to_string(),
                "endsAt": ctx.now.to_string(),
            }));
        }
        alerts.push(alert);
    }
    Value::Array(alerts)
}

#[cfg(test)]
mod tests;
