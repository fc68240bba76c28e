//! `demo`: the real daemon on an embedded inventory, against in-process providers.
//!
//! It starts one loopback HTTP server that is an RFC 7662 introspection endpoint and a JWKS
//! endpoint, mints opaque tokens and ES256 JWTs for it, writes them to files in a temp
//! directory, writes a config that points at them, and runs the daemon on that config, so
//! every path is the production one. No account and no network beyond loopback are needed.
//! The signing key below is a demo key, published here on purpose; it signs nothing else.
//!
//! One token, `session-api`, rotates itself: the IdP also serves an RFC 6749 refresh-token
//! grant with refresh-token rotation, its access tokens live two minutes, and the token's
//! `rotate:` block refreshes it 100 s before expiry, so a rotation is counted in `/metrics`
//! about 20 s after start.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use crate::app::run::{RunError, RunOptions};

mod vault;

const DEMO_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgmvtusfnTwOieXibu
DBC788AkJtINmlzVcyEpgb8HWBKhRANCAAS0aEfavZPPj2trKO5d3fvoUEyYCFUk
WlZgwoEq6oVVgxPmLZ26AM8tMGAXr3Ez5c1gG0IHX8d7fdev5/Gi0k+t
-----END PRIVATE KEY-----
";
const DEMO_KEY_X: &str = "tGhH2r2Tz49rayjuXd376FBMmAhVJFpWYMKBKuqFVYM";
const DEMO_KEY_Y: &str = "E-YtnboAzy0wYBevcTPlzWAbQgdfx3t916_n8aLST60";
const DEMO_KID: &str = "demo-es256";
const CLIENT_ID: &str = "demo-exporter";

const DAY: i64 = 86_400;

/// The client that holds the rotating token's refresh token.
const APP_CLIENT_ID: &str = "demo-app";
/// Lifetime of the rotating token's access tokens, and how long before expiry it rotates.
const SESSION_TTL: i64 = 120;
const SESSION_BEFORE: &str = "100s";

/// What the demo IdP answers for each opaque token, and the refresh tokens it accepts.
#[derive(Clone, Default)]
struct Idp {
    client_secret: String,
    answers: Arc<std::sync::Mutex<HashMap<String, Value>>>,
    calls: Arc<std::sync::atomic::AtomicU64>,
    /// Refresh tokens not used yet; each is spent by its first use (rotation).
    refresh_tokens: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

/// One demo token: name, provider, the secret and the labels it gets.
struct DemoToken {
    name: &'static str,
    provider: &'static str,
    team: &'static str,
    owner: &'static str,
    secret: String,
    extra_yaml: &'static str,
}

/// Where the demo sends its notifications: `--demo.smtp` and `--demo.webhook`.
#[derive(Clone, Debug, Default)]
pub struct DemoNotify {
    /// `host:port` of a plain SMTP server (a local test server).
    pub smtp: Option<String>,
    /// A JSON webhook URL.
    pub webhook: Option<String>,
}

impl DemoNotify {
    /// The `notifications`, `notifiers` and `routes` sections for the demo config; empty
    /// when no destination was given. Each demo token's owner gets mail about it; the
    /// webhook hears everything.
    pub fn yaml(&self, listen_address: &str) -> Result<String, RunError> {
        if self.smtp.is_none() && self.webhook.is_none() {
            return Ok(String::new());
        }
        let api = crate::app::cli::listen_addr(listen_address).replace("0.0.0.0", "localhost");
        let mut out = format!(
            "notifications:\n  group_wait: 5s\n  repeat_interval: 1h\n  provider_failing_for: 1m\n  misconfigured_for: 0s\n  dashboard_url: \"http://{api}/api/v1/tokens/{{token}}\"\nnotifiers:\n"
        );
        let mut routes = String::from("routes:\n");
        if let Some(smtp) = &self.smtp {
            let (host, port) = smtp
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
                .ok_or_else(|| RunError::Flag(format!("--demo.smtp {smtp}: give host:port")))?;
            out.push_str(&format!(
                "  demo-email:\n    kind: email\n    host: \"{host}\"\n    port: {port}\n    tls: none\n    from: \"api-token-exporter demo <demo@example.com>\"\n    to: [oncall@example.com]\n"
            ));
            routes.push_str("  - {receiver: demo-email, to_owner: true, continue: true}\n");
        }
        if let Some(url) = &self.webhook {
            out.push_str(&format!(
                "  demo-webhook:\n    kind: webhook\n    url: \"{url}\"\n"
            ));
            routes.push_str("  - {receiver: demo-webhook}\n");
        }
        out.push_str(&routes);
        Ok(out)
    }
}

/// Runs the demo until `shutdown` completes.
pub async fn run(
    opts: RunOptions,
    notify: DemoNotify,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let dir = tempfile::Builder::new()
        .prefix("api-token-exporter-demo-")
        .tempdir()
        .map_err(|e| RunError::Write("a temp directory".into(), e))?;
    let now = jiff::Timestamp::now().as_second();

    let random = |prefix: &str| {
        let bytes: [u8; 16] = rand::random();
        format!(
            "{prefix}_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        )
    };
    let mut answers = HashMap::new();
    let mut opaque = |name: &'static str, active: bool, days: i64, scope: &str| {
        let token = random("demo");
        let answer = if active {
            json!({"active": true, "client_id": CLIENT_ID, "sub": format!("svc-{name}"),
                   "scope": scope, "token_type": "Bearer", "iss": "demo-idp",
                   "iat": now - 30 * DAY, "exp": now + days * DAY})
        } else {
            json!({"active": false})
        };
        answers.insert(token.clone(), answer);
        token
    };
    let tokens = vec![
        DemoToken {
            name: "billing-api",
            provider: "demo-idp",
            team: "payments",
            owner: "alice@example.com",
            secret: opaque("billing-api", true, 90, "billing:read billing:write"),
            // Holds a write scope its job does not need: the least-privilege policy flags it.
            extra_yaml: "    policies: {allowed_scopes: [\"billing:read\"]}\n",
        },
        DemoToken {
            name: "deploy-bot",
            provider: "demo-idp",
            team: "platform",
            owner: "bob@example.com",
            secret: opaque("deploy-bot", true, 10, "deploy"),
            extra_yaml: "",
        },
        DemoToken {
            name: "search-indexer",
            provider: "demo-idp",
            team: "search",
            owner: "carol@example.com",
            secret: opaque("search-indexer", true, 25, "search:write"),
            // Windows of its own, so the per-token window families have a series in the demo.
            extra_yaml: "    warning_before: 30d\n    critical_before: 7d\n",
        },
        DemoToken {
            name: "ci-runner",
            provider: "demo-idp",
            team: "platform",
            owner: "bob@example.com",
            secret: opaque("ci-runner", true, 2, "ci:run repo:read"),
            extra_yaml: "",
        },
        DemoToken {
            name: "old-integration",
            provider: "demo-idp",
            team: "partners",
            owner: "dave@example.com",
            secret: opaque("old-integration", false, 0, ""),
            extra_yaml: "",
        },
        DemoToken {
            name: "legacy-sync",
            provider: "demo-jwt",
            team: "data",
            owner: "erin@example.com",
            secret: mint(
                now - 1 - DAY,
                now - 91 * DAY,
                "svc-legacy-sync",
                "sync:read",
            ),
            extra_yaml: "",
        },
        DemoToken {
            name: "metrics-reader",
            provider: "demo-jwt",
            team: "observability",
            owner: "frank@example.com",
            secret: mint(
                now + 200 * DAY,
                now - 10 * DAY,
                "svc-metrics-reader",
                "metrics:read",
            ),
            extra_yaml: "",
        },
        DemoToken {
            name: "partner-webhook",
            provider: "demo-jwt-unverified",
            team: "partners",
            owner: "dave@example.com",
            secret: mint(
                now + 60 * DAY,
                now - 5 * DAY,
                "partner-acme",
                "webhook:send",
            ),
            extra_yaml: "",
        },
        DemoToken {
            name: "reporting-job",
            provider: "demo-down",
            team: "data",
            owner: "erin@example.com",
            secret: random("demo"),
            extra_yaml: "",
        },
    ];
    // One provider answers `exp` in milliseconds, as some do by mistake: the token shows the
    // answer anomaly that raises (`expiry_milliseconds`), its expiry read as the instant meant.
    if let Some(t) = tokens.iter().find(|t| t.name == "search-indexer")
        && let Some(exp) = answers.get_mut(&t.secret).and_then(|a| a.get_mut("exp"))
    {
        *exp = json!(exp.as_i64().unwrap_or_default() * 1000);
    }

    // The rotating token: a first access token and the refresh token that renews it.
    let session = random("demo");
    answers.insert(session.clone(), session_answer(now));
    let session_refresh = random("refresh");
    let idp = Idp {
        client_secret: random("client"),
        answers: Arc::new(std::sync::Mutex::new(answers)),
        calls: Arc::default(),
        refresh_tokens: Arc::new(std::sync::Mutex::new(
            [session_refresh.clone()].into_iter().collect(),
        )),
    };
    let (list_token, lookup_token) = (random("hvs.demo-list"), random("hvs.demo-lookup"));
    let app = Router::new()
        .route("/introspect", post(introspect))
        .route("/token", post(token_endpoint))
        .route("/jwks", get(jwks))
        .with_state(idp.clone())
        .merge(vault::router(&list_token, &lookup_token, now));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| RunError::Bind("127.0.0.1:0".into(), e))?;
    let idp_addr = listener
        .local_addr()
        .map_err(|e| RunError::Bind("127.0.0.1:0".into(), e))?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    // A port that refuses connections: bind one, note it, let it go.
    let down_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| RunError::Bind("127.0.0.1:0".into(), e))?;

    let write = |name: &str, value: &str| -> Result<String, RunError> {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{value}\n"))
            .map_err(|e| RunError::Write(path.display().to_string(), e))?;
        Ok(path.display().to_string())
    };
    let client_secret_file = write("client-secret", &idp.client_secret)?;
    let (list_file, lookup_file) = (
        write("vault-list-token", &list_token)?,
        write("vault-lookup-token", &lookup_token)?,
    );
    let mut yaml = format!(
        "# Demo inventory written by `api-token-exporter demo`. Every provider runs in-process.\n\
         global:\n  probe_interval: 1m\n  min_probe_interval: 10s\n  probe_timeout: 5s\n  policies: {{max_age: 180d, forbidden_scopes: [admin]}}\n\
         providers:\n\
         \x20 demo-idp:\n    kind: oauth2_introspection\n    introspection_endpoint: http://{idp_addr}/introspect\n    client_id: {CLIENT_ID}\n    client_secret: {{file: {client_secret_file}}}\n\
         \x20 demo-jwt:\n    kind: jwt\n    jwks_uri: http://{idp_addr}/jwks\n    algorithms: [ES256]\n\
         \x20 demo-jwt-unverified:\n    kind: jwt\n\
         \x20 demo-down:\n    kind: oauth2_introspection\n    introspection_endpoint: http://127.0.0.1:{down_port}/introspect\n    client_id: {CLIENT_ID}\n    client_secret: {{file: {client_secret_file}}}\n\
         \x20 demo-vault:\n    kind: vault\n    url: http://{idp_addr}\n    token: {{file: {lookup_file}}}\n\
         sources:\n\
         \x20 - name: demo-vault-tokens\n    kind: vault\n    provider: demo-vault\n    credential: {{file: {list_file}}}\n    refresh: 30s\n    labels: {{team: platform}}\n\
         tokens:\n"
    );
    for t in &tokens {
        let file = write(t.name, &t.secret)?;
        yaml.push_str(&format!(
            "  - name: {}\n    provider: {}\n    secret: {{file: {file}}}\n    labels: {{team: {}, owner: \"{}\", runbook: \"https://runbooks.example.com/tokens/{}\"}}\n{}",
            t.name, t.provider, t.team, t.owner, t.name, t.extra_yaml
        ));
    }
    let session_file = write("session-api", &session)?;
    let refresh_file = write("session-api.refresh", &session_refresh)?;
    yaml.push_str(&format!(
        "  - name: session-api\n    provider: demo-idp\n    secret: {{file: {session_file}}}\n    labels: {{team: web, owner: \"grace@example.com\", runbook: \"https://runbooks.example.com/tokens/session-api\"}}\n    warning_before: 30s\n    critical_before: 10s\n    rotate:\n      before: {SESSION_BEFORE}\n      rotator:\n        kind: oauth2_refresh\n        token_endpoint: http://{idp_addr}/token\n        client_id: {APP_CLIENT_ID}\n        client_secret: {{file: {client_secret_file}}}\n        refresh_token_file: {refresh_file}\n      deliver:\n        - file: {session_file}\n"
    ));
    yaml.push_str(&notify.yaml(&opts.listen_address)?);
    let config_file = dir.path().join("demo.yml");
    std::fs::write(&config_file, yaml)
        .map_err(|e| RunError::Write(config_file.display().to_string(), e))?;
    tracing::info!(config = %config_file.display(), idp = %idp_addr, "demo inventory written");
    eprintln!(
        "api-token-exporter demo: {} tokens on in-process providers (session-api rotates itself); config at {}",
        tokens.len() + 1,
        config_file.display()
    );
    let result = crate::app::run::run(
        RunOptions {
            config_file,
            // The demo's state is as throwaway as its tokens.
            storage_path: dir.path().join("data"),
            ..opts
        },
        shutdown,
    )
    .await;
    drop(dir);
    result
}

/// Mints an ES256 JWT with the demo key.
fn mint(exp: i64, iat: i64, sub: &str, scope: &str) -> String {
    let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(DEMO_KID.into());
    let claims = json!({"iss": "demo-idp", "sub": sub, "aud": "demo-api", "scope": scope, "iat": iat, "exp": exp});
    let key = EncodingKey::from_ec_pem(DEMO_KEY_PEM.as_bytes()).expect("the demo key is valid PEM");
    jsonwebtoken::encode(&header, &claims, &key).expect("signing with a valid key succeeds")
}

async fn jwks() -> Json<Value> {
    Json(
        json!({"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig",
                          "kid": DEMO_KID, "x": DEMO_KEY_X, "y": DEMO_KEY_Y}]}),
    )
}

async fn introspect(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, [(&'static str, String); 3], Json<Value>) {
    // Okta-style rate-limit headers, so the demo shows provider headroom.
    let used = idp.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as i64;
    let window_end = (jiff::Timestamp::now().as_second() / 60 + 1) * 60;
    let rate = [
        ("x-rate-limit-limit", "600".to_string()),
        (
            "x-rate-limit-remaining",
            (600 - used % 600).max(0).to_string(),
        ),
        ("x-rate-limit-reset", window_end.to_string()),
    ];
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{CLIENT_ID}:{}", idp.client_secret))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            rate,
            Json(json!({"error": "invalid_client"})),
        );
    }
    let answer = form
        .get("token")
        .and_then(|t| lock(&idp.answers).get(t).cloned())
        .unwrap_or_else(|| json!({"active": false}));
    (StatusCode::OK, rate, Json(answer))
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The introspection answer for one of the rotating token's access tokens.
fn session_answer(now: i64) -> Value {
    json!({"active": true, "client_id": APP_CLIENT_ID, "sub": "svc-session-api",
           "scope": "session:read", "token_type": "Bearer", "iss": "demo-idp",
           "iat": now, "exp": now + SESSION_TTL})
}

/// RFC 6749 section 6 with refresh-token rotation: a valid refresh token from `demo-app`
/// (client_secret_basic) gets a new access token and a new refresh token, and is spent.
async fn token_endpoint(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{APP_CLIENT_ID}:{}", idp.client_secret))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        );
    }
    if form.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        );
    }
    let spent = form
        .get("refresh_token")
        .is_some_and(|r| lock(&idp.refresh_tokens).remove(r));
    if !spent {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        );
    }
    let random = |prefix: &str| {
        let bytes: [u8; 16] = rand::random();
        format!(
            "{prefix}_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        )
    };
    let (access, refresh) = (random("demo"), random("refresh"));
    let now = jiff::Timestamp::now().as_second();
    lock(&idp.answers).insert(access.clone(), session_answer(now));
    lock(&idp.refresh_tokens).insert(refresh.clone());
    (
        StatusCode::OK,
        Json(json!({"access_token": access, "token_type": "Bearer",
                    "expires_in": SESSION_TTL, "refresh_token": refresh})),
    )
}
