//! The generic JSON webhook and the Alertmanager sink. Touches the network.
//!
//! The webhook carries `Idempotency-Key: <message id>`: the id is the same when a message is
//! sent again after a restart, so a receiver that keeps the keys it saw can drop the
//! duplicate that at-least-once delivery allows.

use crate::notify::config::{AlertmanagerConfig, WebhookConfig};
use crate::notify::engine::Message;
use crate::notify::render::{self, Context};
use crate::notify::send::{Delivered, SendError, http, status_error};
use crate::notify::slack::redact;
use crate::secret::{Secret, SecretSource};

#[derive(Clone, Debug)]
pub struct Webhook {
    pub config: WebhookConfig,
    pub http: reqwest::Client,
}

impl Webhook {
    pub async fn send(&self, message: &Message, ctx: &Context<'_>) -> Result<Delivered, SendError> {
        let token = bearer(&self.config.bearer_token).await?;
        let mut request = self
            .http
            .post(&self.config.url)
            .header("Idempotency-Key", &message.id)
            .json(&render::webhook(message, ctx));
        if let Some(t) = &token {
            request = request.bearer_auth(t.expose());
        }
        let answer = http(request, "webhook").await;
        let result = match answer {
            Ok(a) if (200..300).contains(&a.status) => Ok(Delivered::default()),
            Ok(a) => Err(status_error("webhook", &a)),
            Err(e) => Err(e),
        };
        result.map_err(|e| match &token {
            Some(t) => redact(e, t),
            None => e,
        })
    }
}

#[derive(Clone, Debug)]
pub struct Alertmanager {
    pub config: AlertmanagerConfig,
    pub http: reqwest::Client,
}

impl Alertmanager {
    pub async fn send(&self, message: &Message, ctx: &Context<'_>) -> Result<Delivered, SendError> {
        let token = bearer(&self.config.bearer_token).await?;
        let url = format!("{}/api/v2/alerts", self.config.url.trim_end_matches('/'));
        let mut request = self.http.post(url).json(&render::alertmanager(
            message,
            ctx,
            self.config.resend_interval,
        ));
        if let Some(t) = &token {
            request = request.bearer_auth(t.expose());
        }
        let result = match http(request, "alertmanager").await {
            Ok(a) if a.status == 200 => Ok(Delivered::default()),
            Ok(a) => Err(status_error("alertmanager", &a)),
            Err(e) => Err(e),
        };
        result.map_err(|e| match &token {
            Some(t) => redact(e, t),
            None => e,
        })
    }
}

async fn bearer(source: &Option<SecretSource>) -> Result<Option<Secret>, SendError> {
    match source {
        None => Ok(None),
        Some(s) => s
            .read()
            .await
            .map(Some)
            .map_err(|e| SendError::new(format!("cannot read the bearer token: {e}"))),
    }
}
