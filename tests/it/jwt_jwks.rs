//! The `jwt` provider with real signatures: tokens are minted here with `jsonwebtoken` and
//! two fixed EC P-256 keys (RSA, RSA-PSS and EdDSA tokens come minted, from
//! `tests/testdata/jwt/`), and the JWKS (and the discovery document) is served on loopback
//! by the recording [`MockServer`]. Probes run at a fixed clock: the provider judges `exp`
//! and `nbf` against the `now` it is given, not the machine's clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use api_token_exporter::config::Config;
use api_token_exporter::model::{Expiry, ProbeOutcome, Reason, Verdict};
use api_token_exporter::provider::{BuildContext, Provider, run_probe};
use api_token_exporter::store::Store;
use base64::Engine;
use jiff::Timestamp;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::support;
use crate::support::clock::{NOW, now};
use support::{Answer, MockServer, SecretFiles};

/// Test key A (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`), published
/// in the JWKS as `k1`.
pub(crate) const KEY_A_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgnC0M9X21vmUPJMzw
2gWu5hpll7nxtkuHEYbR/suaAn+hRANCAAR9L1TxevugFhi8Dd99Hv1v3zTPo+IN
XaNfIIjhKD/AvFe15JGwGdpeSZ0YDovdtiM09/nHRn2zS6SGy2SJ2oly
-----END PRIVATE KEY-----
";
/// Key A's public half, as an attacker would find it: the HMAC secret of a key-confusion
/// forgery.
const KEY_A_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEfS9U8Xr7oBYYvA3ffR79b980z6Pi
DV2jXyCI4Sg/wLxXteSRsBnaXkmdGA6L3bYjNPf5x0Z9s0ukhstkidqJcg==
-----END PUBLIC KEY-----
";
/// Key A's point, base64url of the uncompressed coordinates.
pub(crate) const KEY_A_X: &str = "fS9U8Xr7oBYYvA3ffR79b980z6PiDV2jXyCI4Sg_wLw";
pub(crate) const KEY_A_Y: &str = "V7XkkbAZ2l5JnRgOi922IzT3-cdGfbNLpIbLZInaiXI";

/// Test key B: a different P-256 key, published as `k2` only where a test says so.
const KEY_B_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgGNWDEpbPOC57CyhR
ekrKzY6ygZJ7+d3+Sx/zmqKVtwyhRANCAAQgnOlOP1TOig+uHb9SIILBagsiaDEP
fr3CXsRvsfrFVkZLCfnl9JZdcMoFsI5HN191QE8SUj7oaNWRmIpImtl6
-----END PRIVATE KEY-----
";
const KEY_B_X: &str = "IJzpTj9UzooPrh2_UiCCwWoLImgxD369wl7Eb7H6xVY";
const KEY_B_Y: &str = "RksJ-eX0ll1wygWwjkc3X3VATxJSPuho1ZGYikia2Xo";

const EXP: i64 = NOW + 3600;
const ISSUER: &str = "https://issuer.example.test";

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap()
}

fn jwk(kid: &str, x: &str, y: &str) -> Value {
    json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid, "x": x, "y": y})
}

/// The JWKS with key A as `k1`.
fn jwks_a() -> Value {
    json!({"keys": [jwk("k1", KEY_A_X, KEY_A_Y)]})
}

/// The JWKS with key A as `k1` and key B as `k2`.
fn jwks_ab() -> Value {
    json!({"keys": [jwk("k1", KEY_A_X, KEY_A_Y), jwk("k2", KEY_B_X, KEY_B_Y)]})
}

/// The claims of an ordinary access token valid for an hour after [`NOW`].
fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "sub": "svc-deploy",
        "aud": "billing",
        "scope": "api:write api:read",
        "client_id": "deployer",
        "iat": NOW - 600,
        "exp": EXP,
        "jti": "3f1c1d1e-0000-4000-8000-000000000001",
    })
}

/// Signs `claims` with ES256 and an EC key in PKCS#8 PEM.
fn es256(key_pem: &str, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("at+jwt".into());
    header.kid = kid.map(str::to_owned);
    let key = EncodingKey::from_ec_pem(key_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// Signs `claims` with HS256 and `secret`.
fn hs256(secret: &[u8], kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An unsecured JWT (RFC 7519 section 6): `base64url(header).base64url(claims).`
fn unsecured(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    )
}

/// A config with one `jwt` provider `keys` (its settings in `provider`, one per line) and
/// one token `t` (extra settings in `token_extra`, one per line).
fn yaml(files: &SecretFiles, provider: &[String], token: &str, token_extra: &[&str]) -> String {
    let mut out = String::from("providers:\n  keys:\n    kind: jwt\n");
    for line in provider {
        out.push_str(&format!("    {line}\n"));
    }
    out.push_str(&format!(
        "tokens:\n  - name: t\n    provider: keys\n    secret: {}\n",
        files.put("t", token)
    ));
    for line in token_extra {
        out.push_str(&format!("    {line}\n"));
    }
    out
}

fn jwks_uri(server: &MockServer) -> String {
    format!("jwks_uri: {}/jwks", server.url())
}

/// A server that answers `GET /jwks` with `jwks` and 404 otherwise.
async fn jwks_server(jwks: Value) -> MockServer {
    MockServer::start(move |r| {
        if r.path() == "/jwks" {
            Answer::json(200, jwks.clone())
        } else {
            Answer::text(404, "text/plain", "not found")
        }
    })
    .await
}

/// Probes `t` once, with a provider of its own, at the fixed clock.
async fn probe(yaml: &str) -> ProbeOutcome {
    support::probe_once(yaml, "t", now()).await
}

/// Probes `token` once with a `jwt` provider of these settings, the token having none of
/// its own.
async fn probe_token(provider: &[String], token: &str) -> ProbeOutcome {
    let files = SecretFiles::new();
    probe(&yaml(&files, provider, token, &[])).await
}

fn load(yaml: &str) -> Config {
    Config::parse(yaml).unwrap_or_else(|e| panic!("config does not load:\n{e}"))
}

/// One provider instance, kept across probes as the scheduler keeps it (and its key cache).
fn build(config: &Config) -> Arc<dyn Provider> {
    config.providers["keys"]
        .build(&BuildContext::new())
        .unwrap()
}

/// Neither the outcome nor any request the exporter made holds the token.
fn assert_no_leak(outcome: &ProbeOutcome, token: &str, server: Option<&MockServer>) {
    support::assert_outcome_hides(outcome, token);
    if let Some(server) = server {
        server.assert_safe(&[], token);
        for r in server.requests() {
            assert!(
                !r.body_text().contains(token),
                "a request body holds the token"
            );
            for (name, value) in &r.headers {
                assert!(
                    !String::from_utf8_lossy(value.as_bytes()).contains(token),
                    "the {name} header holds the token"
                );
            }
        }
    }
}

fn verdict(o: &ProbeOutcome) -> (Verdict, Reason) {
    (o.verdict, o.reason)
}

#[tokio::test]
async fn verified_token_is_valid_with_its_claims_as_facts() {
    let server = jwks_server(jwks_a()).await;
    let token = es256(KEY_A_PEM, Some("k1"), &claims());
    let o = probe_token(&[jwks_uri(&server), "algorithms: [ES256]".into()], &token).await;
    assert_eq!(verdict(&o), (Verdict::Valid, Reason::Ok), "{o:?}");
    assert_eq!(o.facts.expiry, Expiry::At(at(EXP)));
    assert_eq!(o.facts.issued_at, Some(at(NOW - 600)));
    assert_eq!(o.facts.subject.as_deref(), Some("svc-deploy"));
    assert_eq!(o.facts.scopes, ["api:read", "api:write"]);
    assert_eq!(o.facts.audience, ["billing"]);
    assert_eq!(o.facts.issuer.as_deref(), Some(ISSUER));
    assert_eq!(o.facts.client_id.as_deref(), Some("deployer"));
    assert_eq!(
        o.facts.extra.get("verified").map(String::as_str),
        Some("true")
    );
    assert_no_leak(&o, &token, Some(&server));
    let paths: Vec<String> = server
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path()))
        .collect();
    assert_eq!(paths, ["GET /jwks"]);
}

#[tokio::test]
async fn the_key_is_chosen_by_kid_or_tried_in_turn_without_one() {
    let server = jwks_server(jwks_ab()).await;
    for (name, token) in [
        ("key B as k2", es256(KEY_B_PEM, Some("k2"), &claims())),
        ("key B without kid", es256(KEY_B_PEM, None, &claims())),
        ("key A without kid", es256(KEY_A_PEM, None, &claims())),
    ] {
        let o = probe_token(&[jwks_uri(&server)], &token).await;
        assert_eq!(verdict(&o), (Verdict::Valid, Reason::Ok), "{name}: {o:?}");
        assert_eq!(o.facts.expiry, Expiry::At(at(EXP)), "{name}");
    }
    // Key B presented under key A's kid must not verify, though B is in the set.
    let token = es256(KEY_B_PEM, Some("k1"), &claims());
    let o = probe_token(&[jwks_uri(&server)], &token).await;
    assert_eq!(
        verdict(&o),
        (Verdict::Invalid, Reason::BadSignature),
        "{o:?}"
    );
}

/// RS256 and PS256 with a 2048-bit RSA key, RS256 with a legacy 1024-bit one, and EdDSA
/// (Ed25519), each verified against its JWK: tokens minted once with `openssl dgst -sign`
/// (`-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32` for PS256) and `openssl pkeyutl
/// -sign -rawin`, with [`claims`], kept in `tests/testdata/jwt/other_algorithms.json` with
/// the public keys only. Outside the crypto backend: a backend that refused a key size the
/// IdP uses would call its genuine tokens forged (aws-lc refuses RSA under 2048 bits), so
/// this test is what a change of `jsonwebtoken`'s backend must pass.
#[tokio::test]
async fn rsa_pss_and_eddsa_signatures_verify_and_a_changed_byte_does_not() {
    let fixtures: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/testdata/jwt/other_algorithms.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let server = jwks_server(json!({"keys": [
        fixtures["jwk_r1"], fixtures["jwk_r0"], fixtures["jwk_e1"]
    ]}))
    .await;
    for (name, alg) in [
        ("rs256", "RS256"),
        ("ps256", "PS256"),
        ("rs256_1024", "RS256"),
        ("eddsa", "EdDSA"),
    ] {
        let token = fixtures[name].as_str().unwrap();
        let provider = [jwks_uri(&server), format!("algorithms: [{alg}]")];
        let o = probe_token(&provider, token).await;
        assert_eq!(verdict(&o), (Verdict::Valid, Reason::Ok), "{name}: {o:?}");
        assert_eq!(o.facts.subject.as_deref(), Some("svc-deploy"), "{name}");
        assert_eq!(o.facts.expiry, Expiry::At(at(EXP)), "{name}");
        assert_no_leak(&o, token, Some(&server));

        // One byte of the signature changed (mid-string, so not only padding bits).
        let dot = token.rfind('.').unwrap();
        let mut bytes = token.as_bytes().to_vec();
        let i = dot + (token.len() - dot) / 2;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        let o = probe_token(&provider, &tampered).await;
        assert_eq!(
            verdict(&o),
            (Verdict::Invalid, Reason::BadSignature),
            "{name}, tampered: {o:?}"
        );
    }
}

#[tokio::test]
async fn signature_by_another_key_is_bad_signature() {
    let server = jwks_server(jwks_a()).await;
    let token = es256(KEY_B_PEM, Some("k1"), &claims());
    let o = probe_token(&[jwks_uri(&server)], &token).await;
    assert_eq!(
        verdict(&o),
        (Verdict::Invalid, Reason::BadSignature),
        "{o:?}"
    );
    assert_eq!(
        o.facts.extra.get("verified").map(String::as_str),
        Some("false")
    );
    assert_no_leak(&o, &token, Some(&server));

    // A genuine signature over claims that were changed afterwards (a later exp).
    let genuine = es256(KEY_A_PEM, Some("k1"), &claims());
    let mut forged_claims = claims();
    forged_claims["exp"] = json!(EXP + 365 * 86_400);
    let parts: Vec<&str> = genuine.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64url(forged_claims.to_string().as_bytes()),
        parts[2]
    );
    let o = probe_token(&[jwks_uri(&server)], &tampered).await;
    assert_eq!(
        verdict(&o),
        (Verdict::Invalid, Reason::BadSignature),
        "{o:?}"
    );

    // A forged token that is also expired is reported as forged: the signature comes first.
    let mut expired = claims();
    expired["exp"] = json!(NOW - 60);
    let token = es256(KEY_B_PEM, Some("k1"), &expired);
    let o = probe_token(&[jwks_uri(&server)], &token).await;
    assert_eq!(
        verdict(&o),
        (Verdict::Invalid, Reason::BadSignature),
        "{o:?}"
    );
}

#[tokio::test]
async fn alg_none_is_refused_when_keys_are_configured() {
    let server = jwks_server(jwks_a()).await;
    for header in [
        json!({"alg": "none"}),
        json!({"alg": "none", "kid": "k1", "typ": "JWT"}),
        json!({"alg": "None"}),
    ] {
        let token = unsecured(&header, &claims());
        for provider in [
            vec![jwks_uri(&server)],
            vec![jwks_uri(&server), "algorithms: [ES256]".into()],
        ] {
            let o = probe_token(&provider, &token).await;
            assert_eq!(
                verdict(&o),
                (Verdict::Invalid, Reason::BadSignature),
                "{header} with {provider:?}: {o:?}"
            );
            assert_no_leak(&o, &token, Some(&server));
        }
    }
}

#[tokio::test]
async fn hs256_is_refused_even_keyed_with_the_public_key() {
    let server = jwks_server(jwks_a()).await;
    for (name, token) in [
        // The classic key-confusion forgery: HMAC keyed with the published public key.
        (
            "HS256 keyed with key A's public PEM",
            hs256(KEY_A_PUBLIC_PEM.as_bytes(), Some("k1"), &claims()),
        ),
        (
            "HS256 with a made-up secret",
            hs256(b"shared-secret", None, &claims()),
        ),
    ] {
        for provider in [
            vec![jwks_uri(&server)],
            vec![jwks_uri(&server), "algorithms: [ES256]".into()],
        ] {
            let o = probe_token(&provider, &token).await;
            assert_eq!(
                verdict(&o),
                (Verdict::Invalid, Reason::BadSignature),
                "{name} with {provider:?}: {o:?}"
            );
            assert!(o.detail.contains("HS256"), "{}", o.detail);
        }
    }
}

#[tokio::test]
async fn algorithm_outside_the_pin_is_refused() {
    // Key A's token is genuine, but the provider only accepts ES384.
    let server = jwks_server(jwks_a()).await;
    let token = es256(KEY_A_PEM, Some("k1"), &claims());
    let o = probe_token(&[jwks_uri(&server), "algorithms: [ES384]".into()], &token).await;
    assert_eq!(
        verdict(&o),
        (Verdict::Invalid, Reason::BadSignature),
        "{o:?}"
    );
    assert!(o.detail.contains("ES256"), "{}", o.detail);
}

#[tokio::test]
async fn unknown_kid_is_invalid() {
    let server = jwks_server(jwks_a()).await;
    let token = es256(KEY_A_PEM, Some("k9"), &claims());
    let o = probe_token(&[jwks_uri(&server)], &token).await;
    assert_eq!(
        verdict(&o),
        (Verdict::Invalid, Reason::BadSignature),
        "{o:?}"
    );
    assert!(o.detail.contains("kid"), "{}", o.detail);
    assert_no_leak(&o, &token, Some(&server));
}

#[tokio::test]
async fn expired_verified_token_is_invalid_with_its_expiry() {
    let server = jwks_server(jwks_a()).await;
    let mut expired = claims();
    expired["exp"] = json!(NOW - 60);
    let token = es256(KEY_A_PEM, Some("k1"), &expired);
    let o = probe_token(&[jwks_uri(&server)], &token).await;
    assert_eq!(verdict(&o), (Verdict::Invalid, Reason::Expired), "{o:?}");
    assert_eq!(o.facts.expiry, Expiry::At(at(NOW - 60)));
    assert_eq!(o.facts.subject.as_deref(), Some("svc-deploy"));
    assert_eq!(
        o.facts.extra.get("verified").map(String::as_str),
        Some("true")
    );
}

#[tokio::test]
async fn without_keys_the_claims_are_unverified_never_valid() {
    let files = SecretFiles::new();
    for (name, token) in [
        ("ES256 by key A", es256(KEY_A_PEM, Some("k1"), &claims())),
        ("ES256 by key B", es256(KEY_B_PEM, Some("k1"), &claims())),
        ("alg none", unsecured(&json!({"alg": "none"}), &claims())),
    ] {
        let o = probe(&yaml(&files, &[], &token, &[])).await;
        // The api_token_info series carries verified="false" for this verdict.
        assert_eq!(
            verdict(&o),
            (Verdict::Unverified, Reason::NoKey),
            "{name}: {o:?}"
        );
        assert_eq!(o.facts.expiry, Expiry::At(at(EXP)), "{name}");
        assert_no_leak(&o, &token, None);
    }
}

#[tokio::test]
async fn configured_audience_must_match() {
    let server = jwks_server(jwks_a()).await;
    let single = es256(KEY_A_PEM, Some("k1"), &claims());
    let mut several = claims();
    several["aud"] = json!(["reporting", "billing"]);
    let several = es256(KEY_A_PEM, Some("k1"), &several);
    for (token, audiences, expected) in [
        (&single, "[billing]", (Verdict::Valid, Reason::Ok)),
        (
            &single,
            "[reporting, billing]",
            (Verdict::Valid, Reason::Ok),
        ),
        (&several, "[billing]", (Verdict::Valid, Reason::Ok)),
        (
            &single,
            "[payments]",
            (Verdict::Invalid, Reason::WrongAudience),
        ),
        (
            &several,
            "[payments, ledger]",
            (Verdict::Invalid, Reason::WrongAudience),
        ),
    ] {
        let files = SecretFiles::new();
        let o = probe(&yaml(
            &files,
            &[jwks_uri(&server)],
            token,
            &[&format!("audiences: {audiences}")],
        ))
        .await;
        assert_eq!(verdict(&o), expected, "audiences {audiences}: {o:?}");
        assert_eq!(o.facts.expiry, Expiry::At(at(EXP)));
    }
}

#[tokio::test]
async fn configured_audience_rejects_a_token_without_aud() {
    // `audiences` lists what a token must carry (config.rs, TokenParams::audiences). A token
    // with no `aud` at all carries none of them.
    let server = jwks_server(jwks_a()).await;
    let mut no_aud = claims();
    no_aud.as_object_mut().unwrap().remove("aud");
    let token = es256(KEY_A_PEM, Some("k1"), &no_aud);
    let files = SecretFiles::new();
    let o = probe(&yaml(
        &files,
        &[jwks_uri(&server)],
        &token,
        &["audiences: [billing]"],
    ))
    .await;
    assert_eq!(
        verdict(&o),
        (Verdict::Invalid, Reason::WrongAudience),
        "{o:?}"
    );

    // Signed by another key, the same token is a forgery first: the audience is judged only
    // on claims whose signature verifies.
    let forged = es256(KEY_B_PEM, Some("k1"), &no_aud);
    let files = SecretFiles::new();
    let o = probe(&yaml(
        &files,
        &[jwks_uri(&server)],
        &forged,
        &["audiences: [billing]"],
    ))
    .await;
    assert_eq!(
        verdict(&o),
        (Verdict::Invalid, Reason::BadSignature),
        "{o:?}"
    );
}

#[tokio::test]
async fn jwks_outage_is_unreachable_and_keeps_the_claims_expiry() {
    let token = es256(KEY_A_PEM, Some("k1"), &claims());
    let cases: [(&str, Answer, Reason); 4] = [
        (
            "503",
            Answer::text(503, "text/plain", "unavailable"),
            Reason::Http5xx,
        ),
        (
            "502 with HTML",
            Answer::text(502, "text/html", "<html>bad gateway</html>"),
            Reason::Http5xx,
        ),
        // A proxy's sign-in page in place of the key set: not the documented JSON.
        (
            "200 with HTML",
            Answer::text(200, "text/html", "<html><body>Sign in</body></html>"),
            Reason::BadResponse,
        ),
        (
            "429",
            Answer::text(429, "text/plain", "slow down").header("retry-after", "30"),
            Reason::RateLimited,
        ),
    ];
    for (name, answer, reason) in cases {
        let server = MockServer::start(move |_| answer.clone()).await;
        let o = probe_token(&[jwks_uri(&server)], &token).await;
        assert!(
            matches!(o.verdict, Verdict::Unreachable | Verdict::RateLimited),
            "{name}: {o:?}"
        );
        assert_eq!(o.reason, reason, "{name}: {o:?}");
        assert_eq!(o.facts.expiry, Expiry::At(at(EXP)), "{name}");
        assert_no_leak(&o, &token, Some(&server));
    }

    // Nothing listening at all, and the store: the claims' expiry is what it knows.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let files = SecretFiles::new();
    let config = load(&yaml(
        &files,
        &[format!("jwks_uri: http://127.0.0.1:{port}/jwks")],
        &token,
        &[],
    ));
    let store = Store::new();
    store.reconcile(&config);
    let spec = config.token("t").unwrap();
    let run = run_probe(build(&config).as_ref(), spec, now()).await;
    assert_eq!(
        verdict(&run.outcome),
        (Verdict::Unreachable, Reason::Connect),
        "{:?}",
        run.outcome
    );
    assert_eq!(run.outcome.facts.expiry, Expiry::At(at(EXP)));
    store.record("t", run, now());
    let inner = store.read();
    assert_eq!(inner.tokens["t"].verdict(), Some(Verdict::Unreachable));
    assert_eq!(inner.tokens["t"].facts.expiry, Expiry::At(at(EXP)));
}

#[tokio::test]
async fn issuer_discovery_finds_the_jwks() {
    let server = MockServer::start(|r| match r.path() {
        "/.well-known/openid-configuration" => Answer::json(
            200,
            json!({
                "issuer": format!("http://{}", r.header("host").unwrap()),
                "jwks_uri": format!("http://{}/keys/jwks.json", r.header("host").unwrap()),
            }),
        ),
        "/keys/jwks.json" => Answer::json(200, jwks_a()),
        _ => Answer::text(404, "text/plain", "not found"),
    })
    .await;
    let token = es256(KEY_A_PEM, Some("k1"), &claims());
    let files = SecretFiles::new();
    let config = load(&yaml(
        &files,
        &[format!("issuer: {}", server.url())],
        &token,
        &[],
    ));
    let provider = build(&config);
    let spec = config.token("t").unwrap();
    for _ in 0..3 {
        let o = run_probe(provider.as_ref(), spec, now()).await.outcome;
        assert_eq!(verdict(&o), (Verdict::Valid, Reason::Ok), "{o:?}");
        assert_eq!(o.facts.expiry, Expiry::At(at(EXP)));
    }
    let paths: Vec<String> = server
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path()))
        .collect();
    assert_eq!(
        paths,
        [
            "GET /.well-known/openid-configuration",
            "GET /keys/jwks.json"
        ],
        "discovery and keys are fetched once, then cached"
    );
    assert_no_leak(
        &run_probe(provider.as_ref(), spec, now()).await.outcome,
        &token,
        Some(&server),
    );
}

#[tokio::test]
async fn keys_are_cached_and_unknown_kids_do_not_refetch_each_time() {
    let server = jwks_server(jwks_a()).await;
    let files = SecretFiles::new();
    let valid = es256(KEY_A_PEM, Some("k1"), &claims());
    let config = load(&yaml(&files, &[jwks_uri(&server)], &valid, &[]));
    let provider = build(&config);
    let spec = config.token("t").unwrap();
    for _ in 0..10 {
        let o = run_probe(provider.as_ref(), spec, now()).await.outcome;
        assert_eq!(verdict(&o), (Verdict::Valid, Reason::Ok), "{o:?}");
    }
    assert_eq!(server.requests().len(), 1, "ten probes, one JWKS fetch");

    // Forged tokens with made-up kids must not turn the exporter into a load generator
    // against the JWKS host: the refetch on an unknown kid is rate limited.
    std::fs::write(
        files_path(&config),
        es256(KEY_A_PEM, Some("k-unknown"), &claims()),
    )
    .unwrap();
    for _ in 0..5 {
        let o = run_probe(provider.as_ref(), spec, now()).await.outcome;
        assert_eq!(
            verdict(&o),
            (Verdict::Invalid, Reason::BadSignature),
            "{o:?}"
        );
    }
    assert_eq!(server.requests().len(), 1, "unknown kids refetched at once");
}

#[tokio::test]
async fn a_failed_refresh_keeps_serving_the_keys_already_fetched() {
    // The first fetch succeeds; every later one gets a 503.
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let server = MockServer::start(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            Answer::json(200, jwks_a())
        } else {
            Answer::text(503, "text/plain", "unavailable")
        }
    })
    .await;
    let token = es256(KEY_A_PEM, Some("k1"), &claims());
    let files = SecretFiles::new();
    // A cache this short makes every probe a refresh.
    let config = load(&yaml(
        &files,
        &[jwks_uri(&server), "jwks_cache: 1ms".into()],
        &token,
        &[],
    ));
    let provider = build(&config);
    let spec = config.token("t").unwrap();
    for i in 0..3 {
        let o = run_probe(provider.as_ref(), spec, now()).await.outcome;
        assert_eq!(
            verdict(&o),
            (Verdict::Valid, Reason::Ok),
            "probe {i}: {o:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        3,
        "each probe tried a refresh"
    );
}

/// The path of the token's secret file, so a test can rotate what the file holds.
fn files_path(config: &Config) -> std::path::PathBuf {
    match &config.token("t").unwrap().secret {
        Some(api_token_exporter::secret::SecretSource::File(file)) => file.path().to_path_buf(),
        other => panic!("the token's secret is not a file: {other:?}"),
    }
}
