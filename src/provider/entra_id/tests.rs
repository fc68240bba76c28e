use super::*;
use crate::provider::http::test_headers as headers;
use graph::{Page, aadsts_prefix, parse_page, read_issued, read_token_error, same_origin};
use std::time::Duration;

const NOW: i64 = 1_700_000_000;
const ACCESS_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.canaryAccessTokenBody.sig";

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

fn p(status: u16, body: &str) -> ProbeOutcome {
    parse(status, &HeaderMap::new(), body.as_bytes(), now())
}

/// An error answer as the identity platform writes it, with a description that carries
/// trace ids and a value that must never be shown.
fn error_body(error: &str, code: u64) -> String {
    serde_json::json!({
        "error": error,
        "error_description": format!("AADSTS{code}: something about app 'secret-app-name'.\r\nTrace ID: 0a1b2c3d-trace\r\nCorrelation ID: 9f8e7d6c-corr\r\nTimestamp: 2023-11-14 22:13:20Z"),
        "error_codes": [code],
        "timestamp": "2023-11-14 22:13:20Z",
        "trace_id": "0a1b2c3d-trace",
        "correlation_id": "9f8e7d6c-corr",
        "error_uri": "https://login.microsoftonline.com/error?code=7000222"
    })
    .to_string()
}

#[test]
fn issued_token_is_valid_and_never_kept_in_the_outcome() {
    let body = format!(
        r#"{{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"{ACCESS_TOKEN}"}}"#
    );
    let (o, issued) = answer(
        200,
        &HeaderMap::new(),
        body.into_bytes(),
        now(),
        Kind::ClientSecret,
    );
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok));
    assert_eq!(o.facts.token_type.as_deref(), Some("client_secret"));
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    let issued = issued.expect("the access token is handed back for Graph");
    assert_eq!(issued.access_token.expose(), ACCESS_TOKEN);
    assert_eq!(issued.expires_in, Some(3599));
    assert_eq!(issued.token_type.as_deref(), Some("Bearer"));
    assert!(!format!("{o:?}").contains("canaryAccessToken"));
}

#[test]
fn reading_the_token_answer_zeroes_its_bytes() {
    let mut body =
        format!(r#"{{"token_type":"Bearer","access_token":"{ACCESS_TOKEN}"}}"#).into_bytes();
    let issued = read_issued(&mut body).unwrap();
    assert_eq!(issued.access_token.expose(), ACCESS_TOKEN);
    assert!(body.is_empty());
    // An access token written with JSON escapes is read whole too.
    let mut body = br#"{"access_token":"a\/b\u0041"}"#.to_vec();
    assert_eq!(
        read_issued(&mut body).unwrap().access_token.expose(),
        "a/bA"
    );
    for bad in [
        r#"{"token_type":"Bearer"}"#,
        r#"{"access_token":""}"#,
        r#"{"access_token":5}"#,
        r#"{"access_token":"x"} trailing"#,
        "<html>",
        "",
    ] {
        let mut body = bad.as_bytes().to_vec();
        assert!(read_issued(&mut body).is_err(), "{bad}");
        assert!(body.is_empty(), "{bad}");
    }
}

#[test]
fn each_documented_code_has_its_verdict() {
    let cases = [
        (
            401,
            "invalid_client",
            7000222,
            Verdict::Invalid,
            Reason::Expired,
        ),
        (
            401,
            "invalid_client",
            7000215,
            Verdict::Invalid,
            Reason::UnknownToken,
        ),
        (
            400,
            "unauthorized_client",
            700016,
            Verdict::Invalid,
            Reason::UnknownToken,
        ),
        (
            400,
            "unauthorized_client",
            7000112,
            Verdict::Invalid,
            Reason::Disabled,
        ),
        (
            401,
            "invalid_client",
            700027,
            Verdict::Invalid,
            Reason::UnknownToken,
        ),
        (
            400,
            "invalid_request",
            90002,
            Verdict::Misconfigured,
            Reason::Discovery,
        ),
        (
            400,
            "invalid_scope",
            70011,
            Verdict::Misconfigured,
            Reason::UnexpectedStatus,
        ),
        (
            400,
            "invalid_request",
            700024,
            Verdict::Misconfigured,
            Reason::UnexpectedStatus,
        ),
    ];
    for (status, error, code, verdict, reason) in cases {
        let o = p(status, &error_body(error, code));
        assert_eq!((o.verdict, o.reason), (verdict, reason), "{code}: {o:?}");
        assert!(o.detail.contains(&format!("AADSTS{code}")), "{}", o.detail);
        for never in ["Trace ID", "0a1b2c3d", "9f8e7d6c", "secret-app-name"] {
            assert!(!o.detail.contains(never), "{code}: {}", o.detail);
        }
    }
}

#[test]
fn the_description_prefix_is_read_when_error_codes_is_missing() {
    let body = r#"{"error":"invalid_client","error_description":"AADSTS7000222: The provided client secret keys for app 'x' are expired.\r\nTrace ID: t"}"#;
    let o = p(401, body);
    assert_eq!((o.verdict, o.reason), (Verdict::Invalid, Reason::Expired));
    // error_codes wins over the description.
    let body = r#"{"error":"invalid_client","error_description":"AADSTS7000222: expired","error_codes":[7000215]}"#;
    assert_eq!(p(401, body).reason, Reason::UnknownToken);
    assert_eq!(aadsts_prefix("AADSTS700016: x"), Some(700016));
    assert_eq!(aadsts_prefix("  AADSTS5"), Some(5));
    for none in [
        "AADSTS",
        "AADSTSx",
        "aadsts7000222",
        "x AADSTS1",
        "AADSTS1234567890",
    ] {
        assert_eq!(aadsts_prefix(none), None, "{none}");
    }
    assert_eq!(
        read_token_error(br#"{"error":"invalid_client","error_codes":["7000222", 1.5, 7000215]}"#),
        Some(graph::TokenError {
            error: Some("invalid_client".into()),
            codes: vec![7000215]
        })
    );
}

#[test]
fn unmapped_codes_and_foreign_errors_are_not_a_verdict() {
    let o = p(400, &error_body("invalid_request", 50059));
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::UnexpectedStatus)
    );
    assert!(o.detail.contains("AADSTS50059") && o.detail.contains("invalid_request"));
    // An unregistered error string is not echoed.
    let o = p(400, r#"{"error":"my-token-value-here","error_codes":[1]}"#);
    assert!(!o.detail.contains("my-token-value-here"), "{}", o.detail);
    for (status, body) in [
        (400, "<html>Bad Request</html>"),
        (401, ""),
        (401, r#"{"message":"unauthorized"}"#),
        (200, "<html>proxy login</html>"),
        (200, r#"{"token_type":"Bearer"}"#),
        (403, r#"{"error":"invalid_client","error_codes":[7000215]}"#),
        (302, ""),
    ] {
        let o = p(status, body);
        assert_eq!(o.verdict, Verdict::Unreachable, "{status} {body}: {o:?}");
    }
}

#[test]
fn throttling_and_server_errors() {
    let h = headers(&[("retry-after", "30")]);
    let o = parse(429, &h, b"{}", now());
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::RateLimited, Reason::RateLimited)
    );
    assert_eq!(o.retry_after, Some(Duration::from_secs(30)));
    let o = parse(503, &h, b"<html>busy</html>", now());
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Unreachable, Reason::Http5xx)
    );
    assert_eq!(o.retry_after, Some(Duration::from_secs(30)));
    // A 500 that carries an AADSTS code is still the platform's failure, not the token's.
    let o = p(500, &error_body("server_error", 7000222));
    assert_eq!(o.verdict, Verdict::Unreachable);
}

#[test]
fn a_certificate_is_never_called_a_wrong_secret() {
    let (o, _) = answer(
        401,
        &HeaderMap::new(),
        error_body("invalid_client", 7000215).into_bytes(),
        now(),
        Kind::Certificate,
    );
    assert_eq!(o.verdict, Verdict::Invalid);
    assert!(
        o.detail.contains("certificate") && !o.detail.contains("secret"),
        "{}",
        o.detail
    );
}

fn cred(key_id: &str, hint: Option<&str>, end: &str) -> Credential {
    Credential {
        key_id: Some(key_id.into()),
        display_name: Some(format!("name {key_id}")),
        start_date_time: Some("2023-06-01T10:00:00Z".into()),
        end_date_time: Some(end.into()),
        hint: hint.map(str::to_string),
        ..Credential::default()
    }
}

const K1: &str = "11111111-1111-1111-1111-111111111111";
const K2: &str = "22222222-2222-2222-2222-222222222222";

fn app(passwords: Vec<Credential>) -> Application {
    Application {
        id: Some("obj-1".into()),
        app_id: Some("00000000-0000-0000-0000-0000000000aa".into()),
        display_name: Some("deployer".into()),
        password_credentials: passwords,
        key_credentials: vec![],
    }
}

#[test]
fn a_secret_is_found_by_its_hint_or_its_key_id() {
    let a = app(vec![
        cred(K1, Some("abc"), "2024-06-01T10:00:00Z"),
        cred(K2, Some("xyz"), "2025-06-01T10:00:00Z"),
    ]);
    let held = Held::Secret { prefix: "xyz" };
    assert_eq!(select(&a, &held, None).unwrap().key_id.as_deref(), Some(K2));
    assert_eq!(
        select(&a, &held, Some(K2)).unwrap().key_id.as_deref(),
        Some(K2)
    );
    // Upper-case GUIDs name the same key.
    assert!(select(&a, &held, Some(&K2.to_uppercase())).is_ok());
    let err = select(&a, &held, Some(K1)).unwrap_err();
    assert!(err.contains("another secret"), "{err}");
    let err = select(&a, &Held::Secret { prefix: "qqq" }, None).unwrap_err();
    assert!(err.contains("none of the app's 2"), "{err}");
    assert!(!err.contains("qqq") && !err.contains("abc"), "{err}");
    let twins = app(vec![
        cred(K1, Some("abc"), "2024-06-01T10:00:00Z"),
        cred(K2, Some("abc"), "2025-06-01T10:00:00Z"),
    ]);
    let err = select(&twins, &Held::Secret { prefix: "abc" }, None).unwrap_err();
    assert!(err.contains("set key_id"), "{err}");
    assert_eq!(
        select(&twins, &Held::Secret { prefix: "abc" }, Some(K1))
            .unwrap()
            .key_id
            .as_deref(),
        Some(K1)
    );
}

#[test]
fn a_certificate_is_found_by_its_der() {
    let der = b"certificate der bytes".to_vec();
    let mut a = app(vec![]);
    a.key_credentials = vec![
        Credential {
            key: Some(base64::engine::general_purpose::STANDARD.encode(b"another")),
            ..cred(K1, None, "2024-01-01T00:00:00Z")
        },
        Credential {
            key: Some(base64::engine::general_purpose::STANDARD.encode(&der)),
            ..cred(K2, None, "2025-01-01T00:00:00Z")
        },
    ];
    let held = Held::Certificate { der: &der };
    assert_eq!(select(&a, &held, None).unwrap().key_id.as_deref(), Some(K2));
    assert_eq!(
        select(&a, &held, Some(K2)).unwrap().key_id.as_deref(),
        Some(K2)
    );
    let err = select(&a, &held, Some(K1)).unwrap_err();
    assert!(err.contains("names another"), "{err}");
    let other = b"not registered".to_vec();
    let err = select(&a, &Held::Certificate { der: &other }, None).unwrap_err();
    assert!(err.contains("none of the app's 2 certificates"), "{err}");
}

#[test]
fn credential_times_become_facts() {
    let mut facts = TokenFacts::default();
    credential_facts(
        &cred(K1, Some("abc"), "2024-06-01T10:00:00Z"),
        now(),
        &mut facts,
    );
    assert_eq!(
        facts.expiry,
        Expiry::At("2024-06-01T10:00:00Z".parse().unwrap())
    );
    assert_eq!(
        facts.issued_at,
        Some("2023-06-01T10:00:00Z".parse().unwrap())
    );
    assert_eq!(facts.extra["key_id"], K1);
    assert_eq!(facts.extra["credential_name"], format!("name {K1}"));
    assert!(facts.flags.is_empty(), "{:?}", facts.flags);

    // Entra's "never": year 2299, or anything past a hundred years.
    for end in ["2299-12-31T00:00:00Z", "9999-12-31T23:59:59Z"] {
        let mut facts = TokenFacts::default();
        credential_facts(&cred(K1, None, end), now(), &mut facts);
        assert_eq!(facts.expiry, Expiry::Never, "{end}");
        assert_eq!(facts.expiry_model, ExpiryModel::AgeOnly, "{end}");
        assert_eq!(
            facts.issued_at,
            Some("2023-06-01T10:00:00Z".parse().unwrap())
        );
    }
    // 99 years ahead is still a date.
    let mut facts = TokenFacts::default();
    credential_facts(&cred(K1, None, "2122-11-14T00:00:00Z"), now(), &mut facts);
    assert!(matches!(facts.expiry, Expiry::At(_)));
    assert_eq!(facts.expiry_model, ExpiryModel::Fixed);

    let mut facts = TokenFacts::default();
    credential_facts(&cred(K1, None, "2023-01-01T00:00:00Z"), now(), &mut facts);
    assert_eq!(
        facts.flags.len(),
        1,
        "a past end on an accepted secret is flagged"
    );

    let mut facts = TokenFacts::default();
    credential_facts(&cred(K1, None, "next tuesday"), now(), &mut facts);
    assert_eq!(facts.expiry, Expiry::Undisclosed);
    assert_eq!(facts.anomalies, vec![Anomaly::ExpiryUnreadable]);
}

fn graph_body(end: &str) -> String {
    serde_json::json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#applications(id,appId,displayName,passwordCredentials,keyCredentials)/$entity",
        "id": "obj-1",
        "appId": "00000000-0000-0000-0000-0000000000aa",
        "displayName": "deployer",
        "keyCredentials": [],
        "passwordCredentials": [{
            "customKeyIdentifier": null, "displayName": "ci", "endDateTime": end,
            "hint": "abc", "keyId": K1, "secretText": null,
            "startDateTime": "2023-06-01T10:00:00Z"
        }]
    })
    .to_string()
}

#[test]
fn graph_answers_add_facts_or_a_flag_and_never_change_the_verdict() {
    let held = Held::Secret { prefix: "abc" };
    let mut facts = TokenFacts::default();
    graph_facts(
        200,
        graph_body("2024-06-01T10:00:00Z").as_bytes(),
        now(),
        &held,
        None,
        &mut facts,
    );
    assert_eq!(
        facts.expiry,
        Expiry::At("2024-06-01T10:00:00Z".parse().unwrap())
    );
    assert_eq!(facts.subject.as_deref(), Some("deployer"));
    assert_eq!(facts.extra["application_id"], "obj-1");

    for (status, body, says) in [
        (403, r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation."}}"#.to_string(), "Application.Read.All"),
        (404, r#"{"error":{"code":"Request_ResourceNotFound"}}"#.into(), "no application"),
        (429, "{}".into(), "slow down"),
        (500, "oops".into(), "HTTP 500"),
        (200, "<html>".into(), "not the documented"),
        (200, r#"{"passwordCredentials":"abcdef-secretish"}"#.into(), "passwordCredentials"),
    ] {
        let mut facts = TokenFacts::default();
        graph_facts(status, body.as_bytes(), now(), &held, None, &mut facts);
        assert_eq!(facts.expiry, Expiry::Undisclosed, "{status} {body}");
        assert_eq!(facts.flags.len(), 1, "{status} {body}");
        assert!(facts.flags[0].contains(says), "{status}: {:?}", facts.flags);
        assert!(!facts.flags[0].contains("abcdef"), "{:?}", facts.flags);
    }
}

#[test]
fn pages_and_their_links() {
    let page = parse_page(
        br#"{"@odata.context":"x","value":[{"id":"1"},{"id":"2"}],"@odata.nextLink":"https://graph.microsoft.com/v1.0/applications?$skiptoken=X"}"#,
    )
    .unwrap();
    assert_eq!(page.value.len(), 2);
    assert!(page.next_link.is_some());
    assert_eq!(
        parse_page(br#"{"value":[]}"#).unwrap(),
        Page {
            value: vec![],
            next_link: None
        }
    );
    for bad in [
        &br#"{"value":{}}"#[..],
        br#"{"value":[],"@odata.nextLink":5}"#,
        b"[]",
        b"",
    ] {
        assert!(parse_page(bad).is_err());
    }
    let first = "https://graph.microsoft.com/v1.0/applications?$top=999";
    assert!(same_origin(
        first,
        "https://graph.microsoft.com/v1.0/applications?$skiptoken=a"
    ));
    for other in [
        "https://graph.microsoft.com.evil.example/v1.0/x",
        "http://graph.microsoft.com/v1.0/x",
        "https://graph.microsoft.com:8443/v1.0/x",
        "/v1.0/applications",
        "not a url",
    ] {
        assert!(!same_origin(first, other), "{other}");
    }
}

#[test]
fn endpoints_are_built_from_the_configured_urls() {
    assert_eq!(
        graph::token_endpoint(
            "https://login.microsoftonline.com/",
            "contoso.onmicrosoft.com"
        ),
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
    assert_eq!(
        graph::application_url("http://127.0.0.1:1/prefix", K1),
        format!(
            "http://127.0.0.1:1/prefix/v1.0/applications(appId='{K1}')?$select=id,appId,displayName,passwordCredentials,keyCredentials"
        )
    );
    assert!(is_guid(K1) && is_guid(&K1.to_uppercase()));
    for bad in [
        "",
        "1111",
        "11111111-1111-1111-1111-11111111111g",
        "11111111-1111-1111-1111-1111111111111",
        "11111111111111111111111111111111",
    ] {
        assert!(!is_guid(bad), "{bad}");
    }
}

fn config(extra: &str) -> Result<(), String> {
    let text = format!(
        r#"{{"kind":"entra_id","tenant_id":"contoso.onmicrosoft.com","client_id":"{K1}"{extra}}}"#
    );
    let c: crate::provider::ProviderConfig =
        serde_json::from_str(&text).map_err(|e| e.to_string())?;
    c.validate()
}

#[test]
fn config_is_checked() {
    assert_eq!(config(""), Ok(()));
    assert_eq!(
        config(r#","url":"http://127.0.0.1:8080/login","graph":true"#),
        Ok(())
    );
    for (extra, says) in [
        (r#","tenant_id":"common""#, "duplicate"),
        (
            r#","url":"https://user:pw@login.example""#,
            "credentials in the URL",
        ),
        (r#","graph_url":"https://graph.example/?x=1""#, "graph_url"),
        (r#","scope":" ""#, "scope"),
    ] {
        let err = config(extra).unwrap_err();
        assert!(err.contains(says), "{extra}: {err}");
    }
    let c = |tenant: &str, client: &str| Config {
        tenant_id: tenant.into(),
        client_id: client.into(),
        url: None,
        graph_url: None,
        scope: None,
        graph: false,
        max_concurrency: None,
    };
    assert!(
        c("Organizations", K1)
            .validate()
            .unwrap_err()
            .contains("one tenant")
    );
    assert!(
        c("a/../b", K1)
            .validate()
            .unwrap_err()
            .contains("tenant_id")
    );
    assert!(
        c("contoso.com", "my-app")
            .validate()
            .unwrap_err()
            .contains("client_id")
    );
    assert_eq!(
        c("72f988bf-86f1-41af-91ab-2d7cd011db47", K1).validate(),
        Ok(())
    );
}

/// A self-signed RSA certificate and its key, as one PEM text.
fn certificate_pem() -> (String, Vec<u8>, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["exporter.example".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (
        format!("{}{}", key.serialize_pem(), cert.pem()),
        cert.der().to_vec(),
        key.public_key_pem(),
    )
}

#[test]
fn a_certificate_signs_a_ps256_assertion_the_platform_can_check() {
    let (pem, der, public) = certificate_pem();
    assert!(assertion::is_pem(&pem) && !assertion::is_pem("abc8Q~secret.value-_"));
    let cert = assertion::read_pem(&pem).unwrap();
    assert_eq!(cert.der, der);
    let aud = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token";
    let jti = assertion::new_jti();
    assert!(is_guid(&jti), "{jti}");
    let jwt = cert.assertion(K1, aud, now(), &jti).unwrap();

    let header = jsonwebtoken::decode_header(&jwt).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::PS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(
        header.x5t_s256.as_deref(),
        Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Digest::finalize(
                    <sha2::Sha256 as sha2::Digest>::new_with_prefix(&der)
                ))
                .as_str()
        )
    );
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::PS256);
    validation.set_audience(&[aud]);
    validation.set_issuer(&[K1]);
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["aud", "iss", "sub", "exp", "nbf"]);
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(public.as_bytes()).unwrap();
    let claims = jsonwebtoken::decode::<serde_json::Value>(&jwt, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], K1);
    assert_eq!(claims["jti"], jti.as_str());
    assert_eq!(claims["nbf"], NOW);
    assert_eq!(claims["exp"], NOW + assertion::LIFETIME_SECONDS);

    for (text, says) in [
        (public.clone(), "no private key"),
        (
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                .unwrap()
                .serialize_pem(),
            "not an RSA key",
        ),
        (
            pem.split("-----BEGIN CERTIFICATE")
                .next()
                .unwrap()
                .to_string(),
            "no certificate",
        ),
    ] {
        let err = assertion::read_pem(&text).unwrap_err();
        assert!(err.contains(says), "{err}");
    }
}

/// serde fills a struct from an array by position: a 200 whose body is `[" "]` (found by
/// `fuzz_parse::entra_id_token_parse`) or `["tok", "Bearer", 3599]` is not a token answer.
#[test]
fn an_array_is_not_a_token_answer() {
    for body in [r#"[" "]"#, r#"["tok", "Bearer", 3599]"#, r#"  ["x"]"#] {
        let o = p(200, body);
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Unreachable, Reason::BadResponse),
            "{body}"
        );
    }
    assert_eq!(
        p(200, r#" {"access_token": "x", "token_type": "Bearer"}"#).verdict,
        Verdict::Valid
    );
}
