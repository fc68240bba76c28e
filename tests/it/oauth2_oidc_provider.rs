//! The `oauth2_introspection` provider against a real RFC 7662 server: panva/node-oidc-provider
//! (npm `oidc-provider@9`, `tests/peers/oidc/server.mjs`), started on a free loopback port.
//!
//! The tests mint real opaque access tokens with the client credentials grant, revoke them,
//! let them expire and stop the server, and check the verdict, the reason and the facts the
//! exporter reads, comparing them with what the server itself says. Where the expiry must
//! survive an `active:false` answer or an outage, the probes go through the [`Store`].
//!
//! Install the peer with `npm ci --prefix tests/peers/oidc` (`.ci/run` does).

use api_token_exporter::config::Config;
use api_token_exporter::model::{Expiry, ProbeOutcome, Reason, Verdict};
use api_token_exporter::provider::{BuildContext, ProbeRun, run_probe};
use api_token_exporter::store::Store;
use base64::Engine;
use jiff::Timestamp;
use serde_json::json;

use crate::support;
use support::oidc::{EXPORTER, OTHER, OidcServer, SHORT_LIVED, SHORT_TTL, SPECIAL, TTL};
use support::{Answer, MockServer, SecretFiles};

/// Where the exporter finds the introspection endpoint.
enum Endpoint {
    Url(String),
    Issuer(String),
}

/// A config with one `oauth2_introspection` provider `idp` and one token `t`.
fn config_yaml(
    files: &SecretFiles,
    endpoint: &Endpoint,
    auth_method: &str,
    (client_id, client_secret): (&str, &str),
    token: &str,
) -> String {
    let endpoint = match endpoint {
        Endpoint::Url(u) => format!("introspection_endpoint: {u}"),
        Endpoint::Issuer(i) => format!("issuer: {i}"),
    };
    let client_secret = files.put("client-secret", client_secret);
    let token = files.put("t", token);
    format!(
        r#"providers:
  idp:
    kind: oauth2_introspection
    {endpoint}
    client_id: "{client_id}"
    client_secret: {client_secret}
    auth_method: {auth_method}
tokens:
  - name: t
    provider: idp
    secret: {token}
"#
    )
}

fn load(yaml: &str) -> Config {
    Config::parse(yaml).unwrap_or_else(|e| panic!("config does not load:\n{e}"))
}

/// One probe of `t` through the generic handler, as the scheduler runs it.
async fn run(config: &Config, now: Timestamp) -> ProbeRun {
    let spec = config.token("t").expect("token t");
    let provider = config.providers[&spec.provider]
        .build(&BuildContext::new())
        .unwrap();
    run_probe(provider.as_ref(), spec, now).await
}

/// Probes `t` once at the current time (the real server judges with the real clock).
async fn probe(yaml: &str) -> ProbeOutcome {
    support::probe_once(yaml, "t", Timestamp::now()).await
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap()
}

/// Probes `token` at the shared server's introspection endpoint, the exporter's client
/// authenticating with `method`.
async fn probe_at(server: &OidcServer, method: &str, token: &str) -> ProbeOutcome {
    let files = SecretFiles::new();
    let endpoint = Endpoint::Url(server.introspection_url());
    probe(&config_yaml(&files, &endpoint, method, EXPORTER, token)).await
}

/// `exp` and `iat` of a token as the server itself reports them.
async fn server_times(server: &OidcServer, token: &str) -> (i64, i64) {
    let doc = server.introspect(token).await;
    assert_eq!(doc["active"], true, "the server says the token is active");
    (doc["exp"].as_i64().unwrap(), doc["iat"].as_i64().unwrap())
}

#[tokio::test]
async fn active_token_reports_the_servers_exp_scope_and_client() {
    if !support::oidc::available() {
        return;
    }
    let server = OidcServer::shared();
    let minted_at = Timestamp::now().as_second();
    let (token, expires_in) = server.mint(EXPORTER).await;
    assert_eq!(expires_in, TTL);
    let (exp, iat) = server_times(server, &token).await;

    let o = probe_at(server, "client_secret_basic", &token).await;

    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(o.facts.expiry, Expiry::At(at(exp)));
    let implied = minted_at + expires_in;
    assert!(
        (exp - implied).abs() <= 5,
        "exp {exp} is not what expires_in implies ({implied})"
    );
    assert_eq!(o.facts.issued_at, Some(at(iat)));
    assert_eq!(o.facts.scopes, ["api:read"]);
    assert_eq!(o.facts.client_id.as_deref(), Some("exporter"));
    assert_eq!(o.facts.issuer.as_deref(), Some(server.issuer().as_str()));
    assert_eq!(o.facts.token_type.as_deref(), Some("Bearer"));
    // Client credentials tokens act as the client itself: the server discloses no subject,
    // and the exporter must not invent one.
    assert_eq!(o.facts.subject, None);
    assert!(o.facts.audience.is_empty(), "{:?}", o.facts.audience);
    assert!(o.facts.flags.is_empty(), "{:?}", o.facts.flags);
    support::assert_outcome_hides(&o, &token);
}

#[tokio::test]
async fn token_of_another_client_is_valid_with_that_clients_id() {
    if !support::oidc::available() {
        return;
    }
    let server = OidcServer::shared();
    let (token, _) = server.mint(OTHER).await;
    let (exp, _) = server_times(server, &token).await;
    let o = probe_at(server, "client_secret_basic", &token).await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(o.facts.client_id.as_deref(), Some("other"));
    assert_eq!(o.facts.expiry, Expiry::At(at(exp)));
    assert_eq!(o.facts.scopes, ["api:read"]);
}

#[tokio::test]
async fn expired_token_is_invalid_and_the_store_keeps_its_last_expiry() {
    if !support::oidc::available() {
        return;
    }
    let server = OidcServer::shared();
    let (token, expires_in) = server.mint(SHORT_LIVED).await;
    assert_eq!(expires_in, SHORT_TTL);
    let files = SecretFiles::new();
    let config = load(&config_yaml(
        &files,
        &Endpoint::Url(server.introspection_url()),
        "client_secret_basic",
        EXPORTER,
        &token,
    ));
    let store = Store::new();
    store.reconcile(&config);

    let first_at = Timestamp::now();
    let first = run(&config, first_at).await;
    assert_eq!(
        (first.outcome.verdict, first.outcome.reason),
        (Verdict::Valid, Reason::Ok),
        "probed right after minting: {:?}",
        first.outcome
    );
    assert_eq!(
        first.outcome.facts.client_id.as_deref(),
        Some("short-lived")
    );
    let Expiry::At(exp) = first.outcome.facts.expiry else {
        panic!("the server disclosed no exp: {:?}", first.outcome);
    };
    assert!(
        (exp.as_second() - (first_at.as_second() + SHORT_TTL)).abs() <= 5,
        "exp {exp} is not about {SHORT_TTL} s after minting"
    );
    store.record("t", first, first_at);

    // Wait until the server's clock has passed exp by a whole second.
    while Timestamp::now().as_second() <= exp.as_second() + 1 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let second_at = Timestamp::now();
    let second = run(&config, second_at).await;
    assert_eq!(
        (second.outcome.verdict, second.outcome.reason),
        (Verdict::Invalid, Reason::Inactive),
        "{:?}",
        second.outcome
    );
    // RFC 7662: an inactive token gets `{"active":false}` and nothing else.
    assert_eq!(second.outcome.facts.expiry, Expiry::Undisclosed);
    support::assert_outcome_hides(&second.outcome, &token);
    store.record("t", second, second_at);

    let inner = store.read();
    let state = &inner.tokens["t"];
    assert_eq!(state.verdict(), Some(Verdict::Invalid));
    assert_eq!(
        state.facts.expiry,
        Expiry::At(exp),
        "the expiry seen while the token was active must be kept"
    );
    assert_eq!(state.last_verdict_at, Some(second_at));
}

#[tokio::test]
async fn revoked_token_is_invalid() {
    if !support::oidc::available() {
        return;
    }
    let server = OidcServer::shared();
    let (token, _) = server.mint(EXPORTER).await;
    let files = SecretFiles::new();
    let yaml = config_yaml(
        &files,
        &Endpoint::Url(server.introspection_url()),
        "client_secret_basic",
        EXPORTER,
        &token,
    );
    let before = probe(&yaml).await;
    assert_eq!(
        before.verdict,
        Verdict::Valid,
        "before revocation: {before:?}"
    );

    server.revoke(EXPORTER, &token).await;
    assert_eq!(server.introspect(&token).await, json!({"active": false}));

    let o = probe(&yaml).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::Inactive),
        "{o:?}"
    );
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    support::assert_outcome_hides(&o, &token);
}

#[tokio::test]
async fn wrong_client_secret_is_misconfigured_never_invalid() {
    if !support::oidc::available() {
        return;
    }
    let server = OidcServer::shared();
    let (token, _) = server.mint(EXPORTER).await;
    for auth_method in ["client_secret_basic", "client_secret_post"] {
        let files = SecretFiles::new();
        let yaml = config_yaml(
            &files,
            &Endpoint::Url(server.introspection_url()),
            auth_method,
            ("exporter", "not-the-secret"),
            &token,
        );
        let o = probe(&yaml).await;
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Misconfigured, Reason::ClientAuth),
            "{auth_method}: {o:?}"
        );
        assert!(
            o.detail.contains("HTTP 401") && o.detail.contains("invalid_client"),
            "{auth_method}: {}",
            o.detail
        );
        assert!(!o.detail.contains("not-the-secret"), "{}", o.detail);
        assert_eq!(o.facts.expiry, Expiry::Undisclosed);
        support::assert_outcome_hides(&o, &token);
    }
    // The token itself is fine: the failure was ours.
    assert_eq!(server.introspect(&token).await["active"], true);
}

#[tokio::test]
async fn client_secret_post_authenticates() {
    if !support::oidc::available() {
        return;
    }
    let server = OidcServer::shared();
    let (token, _) = server.mint(EXPORTER).await;
    let (exp, _) = server_times(server, &token).await;
    let o = probe_at(server, "client_secret_post", &token).await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(o.facts.expiry, Expiry::At(at(exp)));

    // node-oidc-provider accepts either method from a secret client, so the real server
    // cannot tell which one was used: the same config against a recording server shows
    // that the credentials went in the form and not in an Authorization header.
    let mock = MockServer::start(|_| Answer::json(200, json!({"active": true}))).await;
    let files = SecretFiles::new();
    let yaml = config_yaml(
        &files,
        &Endpoint::Url(format!("{}/token/introspection", mock.url())),
        "client_secret_post",
        EXPORTER,
        &token,
    );
    assert_eq!(probe(&yaml).await.verdict, Verdict::Valid);
    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.header("authorization"), None);
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&r.body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(field("client_id"), Some("exporter"));
    assert_eq!(field("client_secret"), Some("exporter-secret"));
    assert_eq!(field("token"), Some(token.as_str()));
    mock.assert_safe(&[], &token);
}

#[tokio::test]
async fn client_secrets_with_reserved_characters_authenticate_both_ways() {
    if !support::oidc::available() {
        return;
    }
    let server = OidcServer::shared();
    let (token, _) = server.mint(EXPORTER).await;
    // The secret holds `:`, `+`, a space, `%`, `/` and `&`: it only reaches the server intact if Basic credentials are form-urlencoded before base64
    // (RFC 6749 section 2.3.1) and the form body is encoded correctly.
    for auth_method in ["client_secret_basic", "client_secret_post"] {
        let files = SecretFiles::new();
        let yaml = config_yaml(
            &files,
            &Endpoint::Url(server.introspection_url()),
            auth_method,
            SPECIAL,
            &token,
        );
        let o = probe(&yaml).await;
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Valid, Reason::Ok),
            "{auth_method}: {o:?}"
        );
        assert_eq!(o.facts.client_id.as_deref(), Some("exporter"));
    }
}

#[tokio::test]
async fn issuer_discovery_finds_the_introspection_endpoint() {
    if !support::oidc::available() {
        return;
    }
    let server = OidcServer::shared();
    let (token, _) = server.mint(EXPORTER).await;
    let (exp, _) = server_times(server, &token).await;
    for issuer in [server.issuer(), format!("{}/", server.issuer())] {
        let files = SecretFiles::new();
        let yaml = config_yaml(
            &files,
            &Endpoint::Issuer(issuer.clone()),
            "client_secret_basic",
            EXPORTER,
            &token,
        );
        let o = probe(&yaml).await;
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Valid, Reason::Ok),
            "issuer {issuer}: {o:?}"
        );
        assert_eq!(o.facts.expiry, Expiry::At(at(exp)));
        assert_eq!(o.facts.client_id.as_deref(), Some("exporter"));
    }
}

fn changed_last(token: &str) -> String {
    let (head, last) = token.split_at(token.len() - 1);
    format!("{head}{}", if last == "A" { "B" } else { "A" })
}

#[tokio::test]
async fn garbage_tokens_are_inactive_never_a_panic() {
    if !support::oidc::available() {
        return;
    }
    let server = OidcServer::shared();
    let (real, _) = server.mint(EXPORTER).await;
    let garbage = [
        "garbage".to_string(),
        "not a token & token=x + %zz ü".to_string(),
        // A real token with its last character changed.
        changed_last(&real),
        "A".repeat(4096),
    ];
    for token in &garbage {
        let o = probe_at(server, "client_secret_basic", token).await;
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Invalid, Reason::Inactive),
            "a garbage token of {} bytes: {o:?}",
            token.len()
        );
        assert_eq!(o.facts, Default::default());
        support::assert_outcome_hides(&o, token);
    }

    // A JWT-shaped string is not garbage to this server: it answers 400
    // `unsupported_token_type` because it does not introspect JWT access tokens. That says
    // nothing about the token, so it must not read as invalid.
    let jwt_shaped = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.";
    let o = probe_at(server, "client_secret_basic", jwt_shaped).await;
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::UnexpectedStatus),
        "{o:?}"
    );
    assert!(o.detail.contains("unsupported_token_type"), "{}", o.detail);
    support::assert_outcome_hides(&o, jwt_shaped);
}

#[tokio::test]
async fn stopped_server_is_unreachable_and_the_store_keeps_the_expiry() {
    if !support::oidc::available() {
        return;
    }
    // A server of its own: this test stops it.
    let mut server = OidcServer::start();
    let (token, _) = server.mint(EXPORTER).await;
    let (exp, _) = server_times(&server, &token).await;
    let endpoints = [
        Endpoint::Url(server.introspection_url()),
        Endpoint::Issuer(server.issuer()),
    ];
    let files: Vec<SecretFiles> = endpoints.iter().map(|_| SecretFiles::new()).collect();
    let configs: Vec<Config> = endpoints
        .iter()
        .zip(&files)
        .map(|(e, f)| load(&config_yaml(f, e, "client_secret_basic", EXPORTER, &token)))
        .collect();
    let stores: Vec<Store> = configs.iter().map(|_| Store::new()).collect();

    let first_at = Timestamp::now();
    for (config, store) in configs.iter().zip(&stores) {
        store.reconcile(config);
        let r = run(config, first_at).await;
        assert_eq!(r.outcome.verdict, Verdict::Valid, "{:?}", r.outcome);
        assert_eq!(r.outcome.facts.expiry, Expiry::At(at(exp)));
        store.record("t", r, first_at);
    }

    server.stop();

    let second_at = Timestamp::now();
    for (config, store) in configs.iter().zip(&stores) {
        let r = run(config, second_at).await;
        // With an issuer, discovery is what fails first; a refused connection is still the
        // server being down, not a discovery problem.
        assert_eq!(
            (r.outcome.verdict, r.outcome.reason),
            (Verdict::Unreachable, Reason::Connect),
            "{:?}",
            r.outcome
        );
        support::assert_outcome_hides(&r.outcome, &token);
        store.record("t", r, second_at);
        let inner = store.read();
        let state = &inner.tokens["t"];
        assert_eq!(state.verdict(), Some(Verdict::Unreachable));
        assert_eq!(state.facts.expiry, Expiry::At(at(exp)));
        assert_eq!(state.facts.client_id.as_deref(), Some("exporter"));
        assert_eq!(state.last_verdict_at, Some(first_at));
    }
}

#[tokio::test]
async fn the_token_travels_only_in_the_form_body() {
    // The real server's requests cannot be seen, so the same probe runs against a recording
    // server that plays the issuer: discovery document, then introspection.
    let token = "opaque-Zm9vYmFy.token/with+chars=";
    let mock = MockServer::start(|r| match r.path() {
        "/.well-known/openid-configuration" => Answer::json(
            200,
            json!({"issuer": "http://idp", "introspection_endpoint": format!("http://{}/token/introspection", r.header("host").unwrap())}),
        ),
        "/token/introspection" => Answer::json(
            200,
            json!({"active": true, "client_id": "exporter", "exp": 1_900_000_000, "scope": "api:read"}),
        ),
        _ => Answer::text(404, "text/plain", "not found"),
    })
    .await;
    let files = SecretFiles::new();
    let yaml = config_yaml(
        &files,
        &Endpoint::Issuer(mock.url()),
        "client_secret_basic",
        EXPORTER,
        token,
    );
    let o = probe(&yaml).await;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(o.facts.expiry, Expiry::At(at(1_900_000_000)));
    support::assert_outcome_hides(&o, token);

    mock.assert_safe(&[], token);
    let requests = mock.requests();
    let paths: Vec<(&str, &str)> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.path()))
        .collect();
    assert_eq!(
        paths,
        [
            ("GET", "/.well-known/openid-configuration"),
            ("POST", "/token/introspection")
        ]
    );
    let discovery = &requests[0];
    assert!(discovery.body.is_empty());
    assert_eq!(discovery.header("authorization"), None);
    let introspection = &requests[1];
    assert_eq!(
        introspection.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(introspection.header("accept"), Some("application/json"));
    let basic = base64::engine::general_purpose::STANDARD.encode("exporter:exporter-secret");
    assert_eq!(
        introspection.header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    for r in &requests {
        for (name, value) in &r.headers {
            assert!(
                !String::from_utf8_lossy(value.as_bytes()).contains(token),
                "the token is in the {name} header"
            );
        }
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&introspection.body)
        .into_owned()
        .collect();
    assert_eq!(
        form,
        [
            ("token".to_string(), token.to_string()),
            ("token_type_hint".to_string(), "access_token".to_string()),
        ]
    );
}

/// Issue 16 findings 5 and 6, end to end through the generic handler, the store and
/// `/metrics`: an answer with 110,000 scopes and a 100 KB subject makes at most
/// `--provider.max-scopes` scope series and a subject of at most `--provider.max-label-length`
/// bytes, and an unusable `exp` is a visible anomaly series; each cap applied is counted.
#[tokio::test]
async fn a_hostile_answer_cannot_blow_up_the_series() {
    use api_token_exporter::metrics::{ExporterStatus, Metrics, render};
    use api_token_exporter::model::Anomaly;
    use api_token_exporter::provider::AnswerCaps;
    use std::sync::Arc;

    let scopes: Vec<String> = (0..110_000).map(|i| format!("s{i:05}")).collect();
    let scope = scopes.join(" ");
    let subject = "u".repeat(100_000);
    let mock = MockServer::start(move |_| {
        Answer::json(
            200,
            json!({"active": true, "exp": {}, "sub": subject, "scope": scope}),
        )
    })
    .await;
    let files = SecretFiles::new();
    let config = load(&config_yaml(
        &files,
        &Endpoint::Url(format!("{}/introspect", mock.url())),
        "client_secret_basic",
        EXPORTER,
        "opaque-token-value",
    ));
    let now = at(1_800_000_000);
    let run = run(&config, now).await;
    let o = &run.outcome;
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok), "{o:?}");
    let caps = AnswerCaps::DEFAULT;
    assert_eq!(o.facts.scopes.len(), caps.max_scopes);
    assert!(o.facts.subject.as_ref().unwrap().len() <= caps.max_label_length);
    assert_eq!(
        o.facts.anomalies,
        [
            Anomaly::ExpiryUnreadable,
            Anomaly::ScopesCapped,
            Anomaly::LabelTruncated
        ]
    );
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);

    let store = Arc::new(Store::new());
    store.reconcile(&config);
    store.record("t", run, now);
    let text = render(&Metrics::new(store, Arc::new(ExporterStatus::new())));
    let series = |family: &str| {
        text.lines()
            .filter(|l| l.starts_with(&format!("{family}{{")))
            .collect::<Vec<_>>()
    };
    assert_eq!(series("api_token_scope_info").len(), caps.max_scopes);
    let info = series("api_token_info");
    assert_eq!(info.len(), 1);
    assert!(
        info[0].len() < 600,
        "api_token_info is {} bytes",
        info[0].len()
    );
    assert_eq!(
        series("api_token_answer_anomaly"),
        [
            r#"api_token_answer_anomaly{token="t",provider="idp",anomaly="expiry_unreadable"} 1"#,
            r#"api_token_answer_anomaly{token="t",provider="idp",anomaly="scopes_capped"} 1"#,
            r#"api_token_answer_anomaly{token="t",provider="idp",anomaly="label_truncated"} 1"#,
        ]
    );
    for cap in ["scopes", "label_length"] {
        let line = text
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "api_token_exporter_answer_caps_applied_total{{cap=\"{cap}\"}} "
                ))
            })
            .unwrap_or_else(|| panic!("no counter for {cap}"));
        let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(n >= 1, "{line}");
    }
    assert!(
        text.len() < 64 * 1024,
        "the exposition is {} bytes",
        text.len()
    );
}
