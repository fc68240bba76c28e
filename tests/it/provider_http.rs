//! The generic `http` provider: the three recipes of `docs/providers/http.md` (as written in
//! `examples/http-recipes.yml`), each against a local server that answers as its recipe
//! describes and fails the test on any call outside the recipe's one method and path; and a
//! canary run of the daemon against a provider that echoes the token everywhere it can.

use std::time::Duration;

use crate::support;
use crate::support::clock::{NOW, now};
use api_token_exporter::config::Config;
use api_token_exporter::model::{Expiry, ProbeOutcome, Reason, Verdict};
use jiff::Timestamp;
use serde_json::json;
use support::daemon::{Daemon, write};
use support::{Answer, MockServer, Recorded, SecretFiles, probe_with};

const RECIPES: &str = include_str!("../../examples/http-recipes.yml");
const DOC: &str = include_str!("../../docs/providers/http.md");

/// Each recipe: its provider and token names, the URL the example uses, and its one call.
struct Recipe {
    provider: &'static str,
    token: &'static str,
    url: &'static str,
    method: &'static str,
    path: &'static str,
}

const ACME: Recipe = Recipe {
    provider: "acme-api",
    token: "acme-deploy",
    url: "https://api.acme.example",
    method: "GET",
    path: "/api/v2/token/self",
};
const INTROSPECT: Recipe = Recipe {
    provider: "auth-admin",
    token: "checkout-service",
    url: "http://auth-admin.internal:4445",
    method: "POST",
    path: "/admin/oauth2/introspect",
};
const PING: Recipe = Recipe {
    provider: "ping-api",
    token: "vendor-key",
    url: "https://status.vendor.example",
    method: "GET",
    path: "/api/v1/ping",
};

/// The recipes file with `recipe`'s URL pointing at `base` and every token's secret in a
/// file holding `secret`; probe timeouts short.
fn recipes_against(recipe: &Recipe, base: &str, secrets: &SecretFiles, secret: &str) -> String {
    let source = secrets.put("token", secret);
    let mut text = RECIPES.replace(recipe.url, base);
    for line in RECIPES
        .lines()
        .filter(|l| l.trim_start().starts_with("secret:"))
    {
        text = text.replace(line, &format!("    secret: {source}"));
    }
    format!("global:\n  probe_timeout: 1s\n{text}")
}

/// The server answers `answer` on the recipe's call, and 404 on anything else (which the
/// test then fails on).
async fn serve(recipe: &'static Recipe, answer: Answer) -> MockServer {
    MockServer::start(move |r| {
        if r.method.as_str() == recipe.method && r.path() == recipe.path {
            answer.clone()
        } else {
            Answer::text(404, "text/plain", "")
        }
    })
    .await
}

/// Every call the probe made: the recipe's one, with the token where the recipe puts it
/// and nowhere in the URL.
fn calls(server: &MockServer, recipe: &Recipe, token: &str) -> Vec<Recorded> {
    let requests = server.requests();
    for r in &requests {
        assert_eq!(
            (r.method.as_str(), r.path()),
            (recipe.method, recipe.path),
            "a call outside the recipe"
        );
        assert!(!r.uri.to_string().contains(token), "the token in a URL");
    }
    requests
}

async fn probe(recipe: &'static Recipe, answer: Answer, token: &str) -> (ProbeOutcome, Recorded) {
    let server = serve(recipe, answer).await;
    let secrets = SecretFiles::new();
    let yaml = recipes_against(recipe, &server.url(), &secrets, token);
    let config = Config::parse(&yaml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.providers[recipe.provider].kind(), "http");
    assert_eq!(
        config.token(recipe.token).unwrap().provider,
        recipe.provider
    );
    let o = probe_with(&config, recipe.token, now()).await;
    let calls = calls(&server, recipe, token);
    assert_eq!(calls.len(), 1, "{o:?}");
    (o, calls[0].clone())
}

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

#[test]
fn every_recipe_is_in_the_docs_verbatim() {
    // The provider blocks of the example file, each from its name to the next blank line.
    let providers = RECIPES
        .split("\ntokens:")
        .next()
        .unwrap()
        .split("\n\n")
        .filter(|b| b.contains("kind: http"))
        .map(|b| {
            b.lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect::<Vec<_>>();
    assert_eq!(providers.len(), 3);
    for block in providers {
        assert!(
            DOC.contains(&block),
            "docs/providers/http.md lacks:\n{block}"
        );
    }
}

#[test]
fn every_config_in_the_docs_loads() {
    let blocks: Vec<&str> = DOC
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .filter(|b| b.starts_with("providers:"))
        .collect();
    assert_eq!(blocks.len(), 4, "the reference example and three recipes");
    for block in blocks {
        Config::parse(block).unwrap_or_else(|e| panic!("{e}\n{block}"));
    }
}

#[tokio::test]
async fn acme_recipe_expiry_and_scopes_from_headers() {
    const TOKEN: &str = "acme_pat_0123456789abcdefghij";
    let ok = Answer::json(200, json!({"login": "deploy-bot", "id": 42}))
        .header("x-token-expires-at", "2024-01-31T00:00:00Z")
        .header("x-token-scopes", "deploy, read:packages")
        .header("x-ratelimit-remaining", "4999")
        .header("x-ratelimit-limit", "5000");
    let (o, call) = probe(&ACME, ok, TOKEN).await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(
        o.facts.expiry,
        Expiry::At("2024-01-31T00:00:00Z".parse().unwrap())
    );
    assert_eq!(o.facts.scopes, ["deploy", "read:packages"]);
    assert_eq!(o.facts.subject.as_deref(), Some("deploy-bot"));
    assert_eq!(o.rate_limit.unwrap().remaining, Some(4999.0));
    assert_eq!(
        call.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(call.header("accept"), Some("application/json"));
    assert!(call.body.is_empty());

    let bearer_error = |e: &str| {
        Answer::json(401, json!({"message": "Bad credentials"})).header(
            "www-authenticate",
            &format!("Bearer error=\"invalid_token\", error_description=\"{e}\""),
        )
    };
    let (o, _) = probe(&ACME, bearer_error("the token is unknown"), TOKEN).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::UnknownToken)
    );
    // A 401 without the bearer error is not one the recipe knows: no answer.
    let (o, _) = probe(&ACME, Answer::json(401, json!({})), TOKEN).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::BadResponse)
    );
    let (o, _) = probe(
        &ACME,
        Answer::json(403, json!({"message": "missing scope"})),
        TOKEN,
    )
    .await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Forbidden, Reason::InsufficientScope)
    );
    let limited =
        Answer::json(429, json!({})).header("x-ratelimit-reset", &(NOW + 120).to_string());
    let (o, _) = probe(&ACME, limited, TOKEN).await;
    assert_eq!(o.verdict, Verdict::RateLimited);
    assert_eq!(o.retry_after, Some(Duration::from_secs(120)));
    // A proxy's login page where the recipe reads the login: no answer, not valid.
    let page = Answer::text(200, "text/html", "<html>sign in</html>");
    let (o, _) = probe(&ACME, page, TOKEN).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::BadResponse)
    );
}

#[tokio::test]
async fn introspection_recipe_posts_the_token_in_a_form() {
    const TOKEN: &str = "ory_at_0123456789abcdefghijklmnop";
    let active = Answer::json(
        200,
        json!({"active": true, "exp": NOW + 7200, "iat": NOW - 60, "sub": "checkout",
               "scope": "orders:read orders:write", "client_id": "checkout", "token_use": "access_token"}),
    );
    let (o, call) = probe(&INTROSPECT, active, TOKEN).await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(o.facts.expiry, Expiry::At(at(NOW + 7200)));
    assert_eq!(o.facts.scopes, ["orders:read", "orders:write"]);
    assert_eq!(o.facts.subject.as_deref(), Some("checkout"));
    assert_eq!(
        call.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(call.body_text(), format!("token={TOKEN}"));
    assert_eq!(call.header("authorization"), None);

    let (o, _) = probe(
        &INTROSPECT,
        Answer::json(200, json!({"active": false})),
        TOKEN,
    )
    .await;
    assert_eq!((o.verdict, o.reason), (Verdict::Invalid, Reason::Inactive));
    // An unreadable `exp` on an active token: valid, the expiry undisclosed and flagged.
    let odd = Answer::json(200, json!({"active": true, "exp": "tomorrow"}));
    let (o, _) = probe(&INTROSPECT, odd, TOKEN).await;
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert!(!o.facts.anomalies.is_empty());
    for (what, answer) in [
        ("html", Answer::text(200, "text/html", "<html>login</html>")),
        ("empty", Answer::text(200, "application/json", "")),
        ("500", Answer::json(500, json!({"active": false}))),
        ("502", Answer::text(502, "text/html", "bad gateway")),
        (
            "401",
            Answer::json(401, json!({"error": "request_unauthorized"})),
        ),
    ] {
        let (o, _) = probe(&INTROSPECT, answer, TOKEN).await;
        assert_eq!(o.verdict, Verdict::Unreachable, "{what}: {o:?}");
    }
}

#[tokio::test]
async fn status_only_recipe() {
    const TOKEN: &str = "vk_live_0123456789abcdefghij";
    for (status, verdict, reason) in [
        (200, Verdict::Valid, Reason::Ok),
        (204, Verdict::Valid, Reason::Ok),
        (401, Verdict::Invalid, Reason::UnknownToken),
        (403, Verdict::Forbidden, Reason::InsufficientScope),
        (404, Verdict::Unreachable, Reason::UnexpectedStatus),
        (429, Verdict::RateLimited, Reason::RateLimited),
        (500, Verdict::Unreachable, Reason::Http5xx),
        (503, Verdict::Unreachable, Reason::Http5xx),
    ] {
        let answer = Answer::text(status, "text/plain", "").header("retry-after", "30");
        let (o, call) = probe(&PING, answer, TOKEN).await;
        assert_eq!((o.verdict, o.reason), (verdict, reason), "{status}: {o:?}");
        assert_eq!(call.header("x-api-key"), Some(TOKEN));
        assert_eq!(call.header("authorization"), None);
        // Nothing in the recipe tells the expiry: never invented.
        assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    }
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    const TOKEN: &str = "vk_live_redirected_0123456789";
    let answer = Answer::text(302, "text/plain", "").header("location", "http://127.0.0.1:9/steal");
    let (o, _) = probe(&PING, answer, TOKEN).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::UnexpectedStatus)
    );
}

/// The token echoed in the body, in a header and as the subject: it reaches no output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_value_reaches_any_output() {
    let valid = "CANARYhttpValid7Hq2xLm9Zr4Tb";
    let echoed = "CANARYhttpEcho3Wv8Nd1Kp6Ys0";
    let (v, e) = (valid.to_string(), echoed.to_string());
    let server = MockServer::start(move |r| {
        let key = r.header("x-api-key").map(str::to_string).unwrap_or_default();
        let form = r.body_text();
        if r.path() == INTROSPECT.path && form.contains(&v) {
            Answer::json(200, json!({"active": true, "sub": v.clone(), "scope": format!("read {v}"), "exp": 4_000_000_000i64}))
        } else if r.path() == INTROSPECT.path {
            Answer::json(200, json!({"active": false, "error": format!("token {form} unknown")}))
        } else if r.path() == PING.path && key == e {
            Answer::text(401, "text/plain", &format!("bad key {e}")).header("x-echo", &e)
        } else {
            Answer::text(404, "text/plain", "")
        }
    })
    .await;
    let secrets = SecretFiles::new();
    let yaml = format!(
        "providers:\n  auth-admin:\n    kind: http\n    url: {url}\n    path: {ip}\n    method: POST\n    token: {{in: form, name: token}}\n    rules:\n      - {{status: 200, when: [{{pointer: /active, equals: true}}], verdict: valid}}\n      - {{status: 200, when: [{{pointer: /active, equals: false}}], verdict: invalid}}\n    subject: {{from: json_pointer, at: /sub}}\n    scopes: {{from: json_pointer, at: /scope}}\n    expiry: {{from: json_pointer, at: /exp, format: unix_seconds}}\n  ping-api:\n    kind: http\n    url: {url}\n    path: {pp}\n    token: {{in: header, name: X-Api-Key}}\n    rules:\n      - {{status: 200, verdict: valid}}\n      - {{status: 401, verdict: invalid}}\n    subject: {{from: header, at: X-Echo}}\n\
         tokens:\n  - name: good\n    provider: auth-admin\n    secret: {good}\n  - name: gone\n    provider: auth-admin\n    secret: {gone}\n  - name: key\n    provider: ping-api\n    secret: {key}\n",
        url = server.url(),
        ip = INTROSPECT.path,
        pp = PING.path,
        good = secrets.put("good", valid),
        gone = secrets.put("gone", echoed),
        key = secrets.put("key", echoed),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "config.yml", &yaml);
    let d = Daemon::start(&[
        "--config.file",
        config.to_str().unwrap(),
        "--log.level",
        "trace",
    ]);
    d.wait_for("/-/ready", Duration::from_secs(15));
    // Until every token has its first answer.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut api = String::new();
    while std::time::Instant::now() < deadline {
        api = d.get("/api/v1/tokens").1;
        if api.matches("\"invalid\"").count() >= 2 && api.contains("\"valid\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        api.contains("<secret>"),
        "the echoed subject is redacted: {api}"
    );
    let outputs = [
        ("metrics", d.get("/metrics").1),
        ("page", d.get("/").1),
        ("api", api),
        ("api good", d.get("/api/v1/tokens/good").1),
        ("api key", d.get("/api/v1/tokens/key").1),
    ];
    let logs = d.logs();
    let _ = d.stop();
    assert!(
        logs.lines().count() > 5,
        "too few log lines to prove anything"
    );
    for (what, text) in outputs
        .iter()
        .map(|(w, t)| (*w, t.as_str()))
        .chain([("logs", logs.as_str())])
    {
        for canary in [valid, echoed] {
            assert!(!text.contains(canary), "{what} holds a token:\n{text}");
        }
    }
    let requests = server.requests();
    assert!(requests.len() >= 3);
    for r in &requests {
        let call = (r.method.as_str(), r.path());
        assert!(
            call == (INTROSPECT.method, INTROSPECT.path) || call == (PING.method, PING.path),
            "a call outside the two configured: {call:?}"
        );
    }
    server.assert_safe(&[], valid);
    server.assert_safe(&[], echoed);
}

/// Each way of sending the token, as the server receives it.
#[tokio::test]
async fn the_token_goes_where_the_config_says() {
    use base64::Engine;
    const TOKEN: &str = "sk_test_0123456789abcdefghij";
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let cases: [(&str, &str, Option<String>); 4] = [
        (
            "{in: basic, username: api}",
            "authorization",
            Some(format!("Basic {}", b64(&format!("api:{TOKEN}")))),
        ),
        (
            "{in: basic, password: \"\"}",
            "authorization",
            Some(format!("Basic {}", b64(&format!("{TOKEN}:")))),
        ),
        (
            "{in: header, name: Authorization, prefix: \"Token \"}",
            "authorization",
            Some(format!("Token {TOKEN}")),
        ),
        (
            "{in: header, name: X-Auth-Token}",
            "x-auth-token",
            Some(TOKEN.to_string()),
        ),
    ];
    for (placement, header, want) in cases {
        let server = MockServer::start(|r| {
            if r.method.as_str() == "GET" && r.path() == "/v1/me" {
                Answer::text(204, "text/plain", "")
            } else {
                Answer::text(404, "text/plain", "")
            }
        })
        .await;
        let secrets = SecretFiles::new();
        let yaml = format!(
            "global:\n  probe_timeout: 1s\nproviders:\n  p:\n    kind: http\n    url: {}\n    path: /v1/me\n    token: {placement}\n    rules: [{{status: 204, verdict: valid}}]\ntokens:\n  - name: t\n    provider: p\n    secret: {}\n",
            server.url(),
            secrets.put("t", TOKEN)
        );
        let o = support::probe_once(&yaml, "t", now()).await;
        assert_eq!(o.verdict, Verdict::Valid, "{placement}: {o:?}");
        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        let r = &requests[0];
        assert_eq!((r.method.as_str(), r.path()), ("GET", "/v1/me"));
        assert_eq!(r.header(header).map(str::to_string), want, "{placement}");
        assert!(r.body.is_empty() && r.uri.query().is_none(), "{placement}");
        server.assert_safe(&[], TOKEN);
    }
}
