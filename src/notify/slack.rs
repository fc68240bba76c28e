//! Slack: an incoming webhook, or a bot token with `chat.postMessage`. Touches the network
//! and reads the webhook URL or the bot token from their secret sources at every send, so a
//! rotation is followed.
//!
//! An incoming webhook answers `200 ok` on success and a plain-text error code otherwise;
//! `chat.postMessage` answers 200 with `{"ok": false, "error": ...}` for most failures, so
//! `ok` is what decides. Both answer 429 with `Retry-After` when rate limited.

use serde_json::{Value, json};

use crate::notify::config::{SlackBotConfig, SlackWebhookConfig};
use crate::notify::engine::Message;
use crate::notify::render::{self, Context};
use crate::notify::send::{Delivered, SendError, excerpt, http, status_error};
use crate::secret::Secret;

#[derive(Clone, Debug)]
pub struct Webhook {
    pub config: SlackWebhookConfig,
    pub http: reqwest::Client,
}

impl Webhook {
    pub async fn send(&self, message: &Message, ctx: &Context<'_>) -> Result<Delivered, SendError> {
        let url = read(&self.config.url, "webhook url").await?;
        let answer = http(
            self.http
                .post(url.expose())
                .json(&render::slack(message, ctx)),
            "slack webhook",
        )
        .await
        .map_err(|e| redact_url(e, &url))?;
        match answer.status {
            200 => Ok(Delivered::default()),
            _ => Err(redact_url(status_error("slack webhook", &answer), &url)),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Bot {
    pub config: SlackBotConfig,
    pub http: reqwest::Client,
}

impl Bot {
    /// Posts the message; a reply (a resolution) goes in the thread of the message it
    /// answers. The anchor returned is the new message's `ts`.
    pub async fn send(&self, message: &Message, ctx: &Context<'_>) -> Result<Delivered, SendError> {
        let token = read(&self.config.token, "bot token").await?;
        let mut body = render::slack(message, ctx);
        body["channel"] = json!(self.config.channel);
        body["unfurl_links"] = json!(false);
        body["unfurl_media"] = json!(false);
        if let Some(ts) = message.reply_to.first() {
            body["thread_ts"] = json!(ts);
        }
        let url = format!(
            "{}/chat.postMessage",
            self.config.api_url.trim_end_matches('/')
        );
        let answer = http(
            self.http.post(url).bearer_auth(token.expose()).json(&body),
            "slack chat.postMessage",
        )
        .await
        .map_err(|e| redact(e, &token))?;
        if answer.status != 200 {
            return Err(redact(
                status_error("slack chat.postMessage", &answer),
                &token,
            ));
        }
        let parsed: Value = serde_json::from_str(&answer.body).map_err(|_| {
            SendError::new(format!(
                "slack chat.postMessage: the answer is not JSON: {}",
                excerpt(&answer.body)
            ))
        })?;
        if parsed["ok"] != json!(true) {
            // Slack's error codes are short fixed words (channel_not_found, not_in_channel,
            // invalid_auth...): safe to show, and what a user needs to fix the setup.
            let code = parsed["error"].as_str().unwrap_or("no error code");
            return Err(redact(
                SendError::new(format!(
                    "slack chat.postMessage: ok=false: {}",
                    excerpt(code)
                )),
                &token,
            ));
        }
        Ok(Delivered {
            anchor: parsed["ts"].as_str().map(str::to_string),
        })
    }
}

async fn read(source: &crate::secret::SecretSource, what: &str) -> Result<Secret, SendError> {
    source
        .read()
        .await
        .map_err(|e| SendError::new(format!("cannot read the {what}: {e}")))
}

/// Removes a webhook URL from an error, and its path and each long path segment too: the
/// credential is in the path (`/services/T.../B.../<secret>`), and a server echoing the
/// path alone must not leak it.
pub(crate) fn redact_url(mut e: SendError, url: &Secret) -> SendError {
    e = redact(e, url);
    if let Ok(parsed) = url::Url::parse(url.expose()) {
        let mut parts: Vec<String> = vec![parsed.path().to_string()];
        parts.extend(
            parsed
                .path_segments()
                .into_iter()
                .flatten()
                .filter(|s| s.len() >= 8)
                .map(str::to_string),
        );
        if let Some(q) = parsed.query() {
            parts.push(q.to_string());
        }
        for p in parts.into_iter().filter(|p| p.len() >= 8) {
            e = redact(e, &Secret::new(p));
        }
    }
    e
}

/// Removes a secret from an error, should a server have echoed it.
pub(crate) fn redact(mut e: SendError, secret: &Secret) -> SendError {
    let s = secret.expose();
    if s.len() >= 4 && e.message.contains(s) {
        e.message = e.message.replace(s, "<secret>");
    }
    e
}
