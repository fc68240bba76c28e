//! Email over SMTP with lettre (rustls): STARTTLS (587), implicit TLS (465) or plain for a
//! local relay. Touches the network, reads the SMTP password and `ca_file` at every send.
//!
//! Each mail is `multipart/alternative` (plain text and HTML) with
//! `Auto-Submitted: auto-generated` (RFC 3834: auto-responders must not answer it). Its
//! Message-ID is stable: a mail announcing one alert is `<alert id@domain>`, any other mail
//! is `<message id@domain>`; both are the same when the mail is sent again after a restart,
//! so a duplicate is recognisable. A resolution carries `In-Reply-To` and `References` with
//! the Message-ID of the mail that announced the alert, so mail clients thread it.

use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::notify::config::{EmailConfig, TlsMode};
use crate::notify::engine::{Change, Message};
use crate::notify::render::{self, Context};
use crate::notify::route::Target;
use crate::notify::send::{Delivered, SendError};
use crate::notify::slack::redact;

#[derive(Clone, Debug)]
pub struct Email {
    pub config: EmailConfig,
    from: Mailbox,
    /// The right-hand side of Message-IDs: the sender's domain.
    domain: String,
}

/// `Auto-Submitted: auto-generated` (RFC 3834).
#[derive(Clone, Debug)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_string())
    }
}

impl Email {
    pub fn new(config: EmailConfig) -> Result<Email, String> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|_| format!("from: \"{}\" is not an email address", config.from))?;
        let domain = from.email.domain().to_string();
        Ok(Email {
            config,
            from,
            domain,
        })
    }

    /// The Message-ID of a message (with its angle brackets).
    pub fn message_id(&self, message: &Message) -> String {
        match message.items.as_slice() {
            [one] if one.change == Change::New && message.reply_to.is_empty() => {
                format!("<{}@{}>", one.alert_id, self.domain)
            }
            _ => format!("<{}@{}>", message.id, self.domain),
        }
    }

    /// Builds the mail (public for tests of its headers).
    pub fn build_mail(
        &self,
        target: &Target,
        message: &Message,
        ctx: &Context<'_>,
    ) -> Result<lettre::Message, SendError> {
        let recipients: Vec<&str> = match &target.to {
            Some(to) => vec![to.as_str()],
            None => self.config.to.iter().map(String::as_str).collect(),
        };
        if recipients.is_empty() {
            return Err(SendError::new(
                "email: no recipients (the notifier has no `to`, and the target no owner address)",
            ));
        }
        let mut b = lettre::Message::builder()
            .from(self.from.clone())
            .subject(render::subject(message, ctx.now))
            .message_id(Some(self.message_id(message)))
            .user_agent(concat!("api-token-exporter/", env!("CARGO_PKG_VERSION")).to_string())
            .header(AutoSubmitted);
        for r in recipients {
            let mailbox: Mailbox = r
                .parse()
                .map_err(|_| SendError::new(format!("email: \"{r}\" is not an address")))?;
            b = b.to(mailbox);
        }
        if let Some(first) = message.reply_to.first() {
            b = b
                .in_reply_to(first.clone())
                .references(message.reply_to.join(" "));
        }
        b.multipart(MultiPart::alternative_plain_html(
            render::email_text(message, ctx),
            render::email_html(message, ctx),
        ))
        .map_err(|e| SendError::new(format!("email: cannot build the message: {e}")))
    }

    pub async fn send(
        &self,
        target: &Target,
        message: &Message,
        ctx: &Context<'_>,
    ) -> Result<Delivered, SendError> {
        let mail = self.build_mail(target, message, ctx)?;
        let c = &self.config;
        let tls = match c.tls {
            TlsMode::None => Tls::None,
            mode => {
                let mut params = TlsParameters::builder(c.host.clone());
                if let Some(path) = &c.ca_file {
                    let pem = tokio::fs::read(path).await.map_err(|e| {
                        SendError::new(format!(
                            "email: cannot read ca_file {}: {e}",
                            path.display()
                        ))
                    })?;
                    let cert = Certificate::from_pem(&pem).map_err(|e| {
                        SendError::new(format!("email: ca_file {}: {e}", path.display()))
                    })?;
                    params = params.add_root_certificate(cert);
                }
                let params = params
                    .build_rustls()
                    .map_err(|e| SendError::new(format!("email: TLS setup: {e}")))?;
                if mode == TlsMode::Tls {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let mut transport =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(c.host.as_str())
                .port(c.port())
                .tls(tls)
                .timeout(Some(c.timeout));
        if let Some(hello) = &c.hello {
            transport = transport.hello_name(ClientId::Domain(hello.clone()));
        }
        let password = match &c.password {
            Some(source) => Some(source.read().await.map_err(|e| {
                SendError::new(format!("email: cannot read the SMTP password: {e}"))
            })?),
            None => None,
        };
        if let (Some(user), Some(pass)) = (&c.username, &password) {
            transport =
                transport.credentials(Credentials::new(user.clone(), pass.expose().to_string()));
        }
        let id = self.message_id(message);
        let result = transport
            .build()
            .send(mail)
            .await
            .map_err(|e| SendError::new(format!("email via {}:{}: {e}", c.host, c.port())));
        match (result, &password) {
            (Ok(_), _) => Ok(Delivered { anchor: Some(id) }),
            (Err(e), Some(p)) => Err(redact(e, p)),
            (Err(e), None) => Err(e),
        }
    }
}
