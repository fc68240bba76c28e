//! The receivers at runtime: one closed enum over the kinds, each sending one rendered
//! [`Message`] per call. Touches the network (HTTP, SMTP) and reads notifier secrets.
//!
//! Errors name the receiver's kind and what went wrong, never a URL (a Slack webhook URL is a
//! credential) nor a secret: reqwest errors are stripped of their URL before they are shown.

use std::time::Duration;

use crate::notify::config::NotifierConfig;
use crate::notify::engine::Message;
use crate::notify::render::Context;
use crate::notify::route::Target;
use crate::notify::{email, slack, webhook};

/// The most of a receiver's answer that is read.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A message a receiver accepted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// What later messages thread under (Slack `ts`, email Message-ID), when the receiver
    /// threads.
    pub anchor: Option<String>,
}

/// A delivery attempt that failed. Never carries a secret or a webhook URL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    pub message: String,
    /// How long the receiver asked us to wait (Slack's 429 `Retry-After`).
    pub retry_after: Option<Duration>,
}

impl SendError {
    pub fn new(message: impl Into<String>) -> Self {
        SendError {
            message: message.into(),
            retry_after: None,
        }
    }
}

/// A built receiver.
#[derive(Clone, Debug)]
pub enum Receiver {
    SlackWebhook(slack::Webhook),
    SlackBot(slack::Bot),
    Email(email::Email),
    Webhook(webhook::Webhook),
    Alertmanager(webhook::Alertmanager),
}

impl Receiver {
    /// Builds a receiver from its config. Cheap: connections are made when sending.
    pub fn build(config: &NotifierConfig) -> Result<Receiver, String> {
        let http = client(config.timeout());
        Ok(match config {
            NotifierConfig::SlackWebhook(c) => Receiver::SlackWebhook(slack::Webhook {
                config: c.clone(),
                http,
            }),
            NotifierConfig::SlackBot(c) => Receiver::SlackBot(slack::Bot {
                config: c.clone(),
                http,
            }),
            NotifierConfig::Email(c) => Receiver::Email(email::Email::new(c.clone())?),
            NotifierConfig::Webhook(c) => Receiver::Webhook(webhook::Webhook {
                config: c.clone(),
                http,
            }),
            NotifierConfig::Alertmanager(c) => Receiver::Alertmanager(webhook::Alertmanager {
                config: c.clone(),
                http,
            }),
        })
    }

    /// Sends one message to `target` (one attempt; retries are the caller's).
    pub async fn send(
        &self,
        target: &Target,
        message: &Message,
        ctx: &Context<'_>,
    ) -> Result<Delivered, SendError> {
        match self {
            Receiver::SlackWebhook(r) => r.send(message, ctx).await,
            Receiver::SlackBot(r) => r.send(message, ctx).await,
            Receiver::Email(r) => r.send(target, message, ctx).await,
            Receiver::Webhook(r) => r.send(message, ctx).await,
            Receiver::Alertmanager(r) => r.send(message, ctx).await,
        }
    }
}

/// An HTTP client for one receiver: no redirects (a redirected webhook would carry our
/// payload and credentials elsewhere), the receiver's timeout per attempt.
fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("api-token-exporter/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .build()
        .expect("a client with static settings builds")
}

/// An HTTP answer, read up to [`MAX_ANSWER_BYTES`].
pub(crate) struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: String,
}

/// Sends a request and reads the answer. Transport errors lose their URL.
pub(crate) async fn http(
    request: reqwest::RequestBuilder,
    what: &str,
) -> Result<Answer, SendError> {
    let mut resp = request
        .send()
        .await
        .map_err(|e| SendError::new(format!("{what}: {}", transport(e))))?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| SendError::new(format!("{what}: {}", transport(e))))?
    {
        let room = MAX_ANSWER_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room <= chunk.len() {
            break;
        }
    }
    Ok(Answer {
        status,
        retry_after,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A transport error without its URL, with its causes.
fn transport(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A short, printable excerpt of an answer body for an error message.
pub(crate) fn excerpt(body: &str) -> String {
    let clean: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    clean.trim().to_string()
}

/// The error for an HTTP status a receiver did not accept.
pub(crate) fn status_error(what: &str, answer: &Answer) -> SendError {
    SendError {
        message: format!(
            "{what}: HTTP {}{}",
            answer.status,
            match excerpt(&answer.body) {
                e if e.is_empty() => String::new(),
                e => format!(": {e}"),
            }
        ),
        retry_after: answer.retry_after,
    }
}
