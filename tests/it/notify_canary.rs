//! No token value reaches a notification. Canary tokens go through every event (expiring
//! with the value echoed back as the subject and a scope, expired, invalid, a provider
//! failing with the value in its error page, a misconfigured client echoing it in an error
//! code) and every receiver (Slack webhook and bot, email, webhook, Alertmanager); receivers
//! that refuse at first echo the notifiers' own credentials back. Every payload, every mail,
//! the state file, the trace-level log and `/metrics` are then searched for the canaries.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::support;
use support::daemon::{Daemon, write};
use support::notify::{Smtp, wait_until};
use support::{Answer, MockServer};

fn canary(tag: &str) -> String {
    let bytes: [u8; 12] = rand::random();
    format!(
        "CANARY{tag}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(bytes)
            .replace(['-', '_'], "x")
    )
}

/// A receiver that refuses its first request with `refusal(request)` and accepts the rest.
async fn refusing_once(
    refusal: impl Fn(&support::Recorded) -> Answer + Send + Sync + 'static,
    ok: Answer,
) -> MockServer {
    let n = Arc::new(AtomicUsize::new(0));
    MockServer::start(move |r| {
        if n.fetch_add(1, Ordering::SeqCst) == 0 {
            refusal(r)
        } else {
            ok.clone()
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_value_reaches_any_notification() {
    if !Smtp::available() {
        return;
    }
    let expiring = canary("EXPIRING");
    let echo = canary("ECHO");
    let code = canary("CODE");
    let inactive = canary("INACTIVE");
    let sig = canary("SIG");
    let slack_path = canary("SLACKURL");
    let bot_token = format!("xoxb-{}", canary("BOT"));
    let hook_token = canary("HOOKBEARER");
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let now = jiff::Timestamp::now().as_second();
    let expired_jwt = format!(
        "{}.{}.{sig}",
        b64(json!({"alg": "ES256"})),
        b64(json!({"sub": "svc", "exp": now - 3600}))
    );

    let (e, ec, c) = (expiring.clone(), echo.clone(), code.clone());
    let idp = MockServer::start(move |r| {
        let body = r.body_text();
        if body.contains(&e) {
            // The provider reports the token itself as the identity and a scope.
            Answer::json(
                200,
                json!({"active": true, "sub": e.clone(), "scope": format!("read {e}"), "exp": now + 86_400 + 3600}),
            )
        } else if body.contains(&ec) {
            Answer::text(500, "text/html", &format!("<h1>error for token {ec}</h1>"))
        } else if body.contains(&c) {
            Answer::json(401, json!({"error": c.clone(), "error_description": format!("bad {c}")}))
        } else {
            // The inactive canary, and anything else.
            Answer::json(200, json!({"active": false}))
        }
    })
    .await;

    let slack = refusing_once(
        |r| Answer::text(404, "text/plain", &format!("no_service {}", r.path())),
        Answer::text(200, "text/plain", "ok"),
    )
    .await;
    let bot = refusing_once(
        |r| {
            Answer::json(
                200,
                json!({"ok": false, "error": format!("invalid_auth {}", r.header("authorization").unwrap_or(""))}),
            )
        },
        Answer::json(200, json!({"ok": true, "ts": "1700000000.000100"})),
    )
    .await;
    let hook = refusing_once(
        |r| {
            Answer::text(
                400,
                "text/plain",
                &format!("you sent {}", r.header("authorization").unwrap_or("")),
            )
        },
        Answer::text(200, "text/plain", ""),
    )
    .await;
    let am = MockServer::start(|_| Answer::text(200, "application/json", "")).await;
    let smtp = Smtp::start(&[]);

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let secret =
        |name: &str, value: &str| write(d, name, &format!("{value}\n")).display().to_string();
    let yaml = format!(
        "global:\n  probe_interval: 1h\n\
         notifications:\n  group_wait: 0s\n  provider_failing_for: 0s\n  misconfigured_for: 0s\n\
         providers:\n  idp:\n    kind: oauth2_introspection\n    introspection_endpoint: {idp}/introspect\n    client_id: c\n    client_secret: {{file: {client}}}\n  local:\n    kind: jwt\n\
         tokens:\n\
         \x20 - {{name: expiring, provider: idp, secret: {{file: {s_expiring}}}, labels: {{owner: alice@example.com}}}}\n\
         \x20 - {{name: echo, provider: idp, secret: {{file: {s_echo}}}, labels: {{owner: bob@example.com}}}}\n\
         \x20 - {{name: code, provider: idp, secret: {{file: {s_code}}}, labels: {{owner: carol@example.com}}}}\n\
         \x20 - {{name: inactive, provider: idp, secret: {{file: {s_inactive}}}, labels: {{owner: dave@example.com}}}}\n\
         \x20 - {{name: expired-jwt, provider: local, secret: {{file: {s_jwt}}}, labels: {{owner: erin@example.com}}}}\n\
         notifiers:\n\
         \x20 slack: {{kind: slack_webhook, url: {{file: {s_slack}}}}}\n\
         \x20 bot: {{kind: slack_bot, token: {{file: {s_bot}}}, channel: C1, api_url: \"{bot}/api\"}}\n\
         \x20 mail: {{kind: email, host: 127.0.0.1, port: {smtp_port}, tls: none, from: exporter@example.com, to: [ops@example.com]}}\n\
         \x20 hook: {{kind: webhook, url: \"{hook}/hook\", bearer_token: {{file: {s_hook}}}}}\n\
         \x20 am: {{kind: alertmanager, url: \"{am}\"}}\n\
         routes:\n\
         \x20 - {{receiver: slack, continue: true}}\n\
         \x20 - {{receiver: bot, continue: true}}\n\
         \x20 - {{receiver: mail, to_owner: true, continue: true}}\n\
         \x20 - {{receiver: hook, continue: true}}\n\
         \x20 - {{receiver: am}}\n",
        idp = idp.url(),
        client = secret("client", "client-secret"),
        s_expiring = secret("expiring", &expiring),
        s_echo = secret("echo", &echo),
        s_code = secret("code", &code),
        s_inactive = secret("inactive", &inactive),
        s_jwt = secret("jwt", &expired_jwt),
        s_slack = secret(
            "slack-url",
            &format!("{}/services/T0/B0/{slack_path}", slack.url())
        ),
        s_bot = secret("bot-token", &bot_token),
        s_hook = secret("hook-token", &hook_token),
        bot = bot.url(),
        hook = hook.url(),
        am = am.url(),
        smtp_port = smtp.port,
    );
    let config = write(d, "config.yml", &yaml);
    let storage = d.join("data");
    let daemon = Daemon::start(&[
        "--config.file",
        config.to_str().unwrap(),
        "--storage.path",
        storage.to_str().unwrap(),
        "--log.level",
        "trace",
    ]);

    // Every receiver got through (the refusing ones on their second attempt), and every
    // event reached the webhook.
    let events = |hook: &MockServer| -> Vec<String> {
        hook.requests()
            .iter()
            .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
            .flat_map(|v| v["notifications"].as_array().cloned().unwrap_or_default())
            .map(|n| n["event"].as_str().unwrap_or("").to_string())
            .collect()
    };
    wait_until(
        "every event at the webhook",
        Duration::from_secs(30),
        || {
            let e = events(&hook);
            [
                "expiring",
                "expired",
                "invalid",
                "provider_failing",
                "misconfigured",
            ]
            .iter()
            .all(|k| e.iter().any(|x| x == k))
        },
    )
    .await;
    wait_until("every receiver", Duration::from_secs(30), || {
        slack.requests().len() >= 2
            && bot.requests().len() >= 2
            && !am.requests().is_empty()
            && smtp.mails().len() >= 5
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut outputs: Vec<(String, String)> = Vec::new();
    for (name, server) in [
        ("slack", &slack),
        ("bot", &bot),
        ("hook", &hook),
        ("am", &am),
    ] {
        for (i, r) in server.requests().iter().enumerate() {
            outputs.push((format!("{name} request {i}"), r.body_text()));
        }
    }
    for (i, m) in smtp.mails().iter().enumerate() {
        outputs.push((format!("mail {i}"), m.raw().to_string()));
        for (t, body) in m.parts() {
            outputs.push((format!("mail {i} {t}"), body));
        }
    }
    outputs.push((
        "state file".into(),
        std::fs::read_to_string(storage.join("notifications.json")).unwrap(),
    ));
    outputs.push(("/metrics".into(), daemon.get("/metrics").1));
    let logs = daemon.logs();
    drop(daemon);
    assert!(
        logs.contains("notification failed") && logs.contains("notification sent"),
        "the refusals were not exercised:\n{logs}"
    );
    outputs.push(("logs".into(), logs));

    // The echoed value did travel, redacted, into the notifications.
    let hook_text: String = hook.requests().iter().map(|r| r.body_text()).collect();
    assert!(
        hook_text.contains("\"subject\":\"<secret>\""),
        "{hook_text}"
    );

    let needles = [
        &expiring,
        &echo,
        &code,
        &inactive,
        &sig,
        &expired_jwt,
        &slack_path,
        &bot_token,
        &hook_token,
    ];
    for (what, text) in &outputs {
        for needle in needles {
            assert!(
                !text.contains(needle.as_str()),
                "a secret leaked into {what}:\n{text}"
            );
        }
    }
}
