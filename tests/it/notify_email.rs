//! Email notifications against a real SMTP server (aiosmtpd writing a Maildir), read back
//! with Python's `email` package: both parts, the headers, the subjects of firing and
//! resolved, the threading headers; STARTTLS with SMTP AUTH and implicit TLS, trusting a
//! company CA through `ca_file`.

use std::time::Duration;

use crate::support;
use api_token_exporter::notify;
use support::notify::{DAY, Harness, Smtp, TestCa, inventory, valid_for, wait_until};

fn mail_config(port: u16, extra: &str) -> String {
    format!(
        "{}notifications: {{group_wait: 0s, repeat_interval: 1h}}\nnotifiers:\n  mail:\n    kind: email\n    host: 127.0.0.1\n    port: {port}\n    from: \"API tokens <exporter@example.com>\"\n    to: [ops@example.com]\n{extra}routes:\n  - {{receiver: mail, to_owner: true}}\n",
        inventory(&[(
            "deploy-bot",
            "{team: platform, owner: alice@example.com, runbook: \"https://wiki.example.com/deploy-bot\"}"
        )]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_and_its_resolution_arrive_as_threaded_multipart_mails() {
    if !Smtp::available() {
        return;
    }
    let smtp = Smtp::start(&[]);
    let h = Harness::start(&mail_config(smtp.port, "    tls: none\n"));
    h.record(
        "deploy-bot",
        valid_for(6 * DAY + 3600),
        "sha256:aaaaaaaaaaaa",
    );
    wait_until("the alert mail", Duration::from_secs(20), || {
        smtp.mails().len() == 1
    })
    .await;
    let alert = &smtp.mails()[0];
    assert_eq!(
        alert.subject(),
        "[FIRING] deploy-bot expires in 6 days (warning)"
    );
    assert_eq!(alert.content_type(), "multipart/alternative");
    let types: Vec<String> = alert.parts().into_iter().map(|(t, _)| t).collect();
    assert_eq!(types, ["text/plain", "text/html"]);
    assert_eq!(
        alert.header("Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    // Written to the owner, not to the notifier's `to`.
    assert_eq!(alert.header("To").as_deref(), Some("alice@example.com"));
    assert_eq!(
        alert.header("X-RcptTo").as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(
        alert.header("From").as_deref(),
        Some("API tokens <exporter@example.com>")
    );
    let alert_id = alert.header("Message-ID").expect("a Message-ID");
    assert!(
        alert_id.starts_with('<') && alert_id.ends_with("@example.com>"),
        "{alert_id}"
    );
    assert_eq!(alert.header("In-Reply-To"), None);
    for part in ["text/plain", "text/html"] {
        let body = alert.part(part).unwrap();
        for needle in [
            "deploy-bot expires in 6 days (warning)",
            "UTC (in 6 days)",
            "alice@example.com",
            "platform",
            "sha256:aaaaaaaaaaaa",
            "https://wiki.example.com/deploy-bot",
            "deploy",
        ] {
            assert!(
                body.contains(needle),
                "{needle} not in the {part} part:\n{body}"
            );
        }
    }

    // Renewed: same secret, later expiry.
    h.record(
        "deploy-bot",
        valid_for(90 * DAY + 3600),
        "sha256:aaaaaaaaaaaa",
    );
    wait_until("the resolution mail", Duration::from_secs(20), || {
        smtp.mails().len() == 2
    })
    .await;
    let resolved = smtp
        .mails()
        .into_iter()
        .find(|m| m.subject().starts_with("[RESOLVED]"))
        .expect("a resolution");
    assert_eq!(
        resolved.subject(),
        "[RESOLVED] deploy-bot: expiring resolved (renewed: the token now expires later)"
    );
    assert_eq!(resolved.content_type(), "multipart/alternative");
    assert_eq!(
        resolved.header("Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    assert_eq!(resolved.header("In-Reply-To"), Some(alert_id.clone()));
    assert!(
        resolved
            .header("References")
            .is_some_and(|r| r.contains(&alert_id)),
        "{:?}",
        resolved.header("References")
    );
    assert_ne!(resolved.header("Message-ID"), Some(alert_id));
    assert!(
        resolved
            .part("text/plain")
            .unwrap()
            .contains("UTC (in 90 days)")
    );
    let stats = &h.stats.snapshot()["mail"];
    assert_eq!((stats.notifications, stats.failures), (2, 0));
    assert!(stats.last_success.is_some());
}

const AUTH_SERVER: &str = r#"
import ssl, sys
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

port, maildir, cert, key, user, password = sys.argv[1:7]

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login == user.encode() and auth_data.password == password.encode())
    return AuthResult(success=ok, handled=False)

tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
tls.load_cert_chain(cert, key)
# STARTTLS required before anything else, and AUTH required before MAIL: a mail that
# arrives went over TLS and was authenticated.
c = Controller(Mailbox(maildir), hostname="127.0.0.1", port=int(port),
               authenticator=authenticator, auth_required=True,
               require_starttls=True, tls_context=tls)
c.start()
sys.stdin.read()
c.stop()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_with_smtp_auth_and_a_company_ca() {
    if !Smtp::available() || !TestCa::available() {
        return;
    }
    let ca = TestCa::new();
    let password = format!("pw-{}", rand::random::<u64>());
    let smtp = Smtp::start_script(
        AUTH_SERVER,
        &[
            ca.cert.to_str().unwrap(),
            ca.key.to_str().unwrap(),
            "exporter",
            &password,
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let pw_file = dir.path().join("smtp-password");
    std::fs::write(&pw_file, format!("{password}\n")).unwrap();
    let wrong_file = dir.path().join("wrong-password");
    std::fs::write(&wrong_file, "not-the-password\n").unwrap();
    let write_config = |name: &str, pw: &std::path::Path, ca_file: bool| {
        let yaml = mail_config(
            smtp.port,
            &format!(
                "    tls: starttls\n    username: exporter\n    password: {{file: {}}}\n{}",
                pw.display(),
                if ca_file {
                    format!("    ca_file: {}\n", ca.ca.display())
                } else {
                    String::new()
                }
            ),
        );
        let path = dir.path().join(name);
        std::fs::write(&path, yaml).unwrap();
        path
    };

    let good = write_config("good.yml", &pw_file, true);
    let sent = notify::send_test(&good, "mail").await;
    assert!(sent.is_ok(), "{sent:?}\n{}", smtp.log());
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "{}", smtp.log());
    assert_eq!(
        mails[0].subject(),
        "[FIRING] notify-test expires in 6 days (warning)"
    );
    assert_eq!(mails[0].header("To").as_deref(), Some("ops@example.com"));

    let wrong = write_config("wrong.yml", &wrong_file, true);
    let err = notify::send_test(&wrong, "mail").await.unwrap_err();
    assert!(err.contains("535"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");

    // Without the company CA the server's certificate is not trusted: no mail, no fallback
    // to plain text.
    let untrusted = write_config("untrusted.yml", &pw_file, false);
    let err = notify::send_test(&untrusted, "mail").await.unwrap_err();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(!err.contains(&password), "{err}");
    assert_eq!(smtp.mails().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_delivers_through_the_service() {
    if !Smtp::available() || !TestCa::available() {
        return;
    }
    let ca = TestCa::new();
    let smtp = Smtp::start(&[
        "--smtpscert",
        ca.cert.to_str().unwrap(),
        "--smtpskey",
        ca.key.to_str().unwrap(),
    ]);
    let h = Harness::start(&mail_config(
        smtp.port,
        &format!("    tls: tls\n    ca_file: {}\n", ca.ca.display()),
    ));
    h.record("deploy-bot", valid_for(DAY + 3600), "sha256:aaaaaaaaaaaa");
    wait_until("the alert mail over SMTPS", Duration::from_secs(20), || {
        smtp.mails().len() == 1
    })
    .await;
    assert_eq!(
        smtp.mails()[0].subject(),
        "[FIRING] deploy-bot expires in 1 day (critical)"
    );
}
