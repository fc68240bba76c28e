use super::*;
use crate::model::Verdict;
use base64::Engine;
use reqwest::header::HeaderValue;

const NOW: i64 = 1_700_000_000;

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

fn bound_claims() -> Value {
    json!({
        "aud": ["https://kubernetes.default.svc"],
        "exp": NOW + 365 * 86_400,
        "iat": NOW - 600,
        "nbf": NOW - 600,
        "iss": "https://kubernetes.default.svc",
        "sub": "system:serviceaccount:ci:deployer",
        "kubernetes.io": {
            "namespace": "ci",
            "pod": {"name": "runner-1", "uid": "p-uid"},
            "serviceaccount": {"name": "deployer", "uid": "sa-uid"},
            "warnafter": NOW + 3000
        }
    })
}

fn legacy_claims() -> Value {
    json!({
        "iss": "kubernetes/serviceaccount",
        "kubernetes.io/serviceaccount/namespace": "ci",
        "kubernetes.io/serviceaccount/secret.name": "deployer-token-abcde",
        "kubernetes.io/serviceaccount/service-account.name": "deployer",
        "sub": "system:serviceaccount:ci:deployer"
    })
}

fn authenticated(audiences: &[&str]) -> String {
    json!({
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": {"token": "the.reviewed.token"},
            "status": {
                "authenticated": true,
                "user": {
                    "username": "system:serviceaccount:ci:deployer",
                    "uid": "sa-uid",
                    "groups": ["system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"],
                    "extra": {
                        "authentication.kubernetes.io/pod-name": ["runner-1"],
                        "authentication.kubernetes.io/node-name": ["node-a"]
                    }
                },
                "audiences": audiences
            }
        })
        .to_string()
}

fn rejected_body(error: &str) -> String {
    json!({
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "spec": {"token": "the.reviewed.token"},
        "status": {"user": {}, "error": error}
    })
    .to_string()
}

fn p(status: u16, body: &str, claims: Option<&Value>) -> ProbeOutcome {
    parse(
        status,
        &HeaderMap::new(),
        body.as_bytes(),
        now(),
        claims,
        None,
    )
}

#[test]
fn bound_token_uses_warnafter_and_server_identity() {
    let claims = bound_claims();
    let o = p(
        201,
        &authenticated(&["https://kubernetes.default.svc"]),
        Some(&claims),
    );
    assert_eq!((o.verdict, o.reason), (Verdict::Valid, Reason::Ok));
    assert_eq!(o.facts.expiry.timestamp().unwrap().as_second(), NOW + 3000);
    assert_eq!(
        o.facts.extra["exp"],
        Timestamp::from_second(NOW + 365 * 86_400)
            .unwrap()
            .to_string()
    );
    assert_eq!(
        o.facts.subject.as_deref(),
        Some("system:serviceaccount:ci:deployer")
    );
    assert_eq!(o.facts.issued_at.unwrap().as_second(), NOW - 600);
    assert_eq!(o.facts.audience, ["https://kubernetes.default.svc"]);
    assert_eq!(o.facts.token_type.as_deref(), Some("bound_service_account"));
    assert_eq!(o.facts.extra["pod_name"], "runner-1");
    assert_eq!(o.facts.extra["node_name"], "node-a");
    assert_eq!(o.facts.extra["uid"], "sa-uid");
    assert!(o.facts.extra["groups"].contains("system:serviceaccounts:ci"));
    assert!(!o.facts.extra.contains_key("verified"));
    assert!(o.facts.flags.is_empty());
}

#[test]
fn legacy_token_never_expires() {
    let claims = legacy_claims();
    let o = p(200, &authenticated(&[]), Some(&claims));
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::Never);
    assert_eq!(o.facts.expiry_model, ExpiryModel::AgeOnly);
    assert_eq!(
        o.facts.token_type.as_deref(),
        Some("legacy_service_account")
    );
}

#[test]
fn opaque_token_has_undisclosed_expiry() {
    let o = p(201, &authenticated(&[]), None);
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.expiry, Expiry::Undisclosed);
    assert_eq!(
        o.facts.subject.as_deref(),
        Some("system:serviceaccount:ci:deployer")
    );
}

#[test]
fn past_warnafter_on_an_accepted_token_is_flagged() {
    let mut claims = bound_claims();
    claims["kubernetes.io"]["warnafter"] = json!(NOW - 60);
    let o = p(201, &authenticated(&[]), Some(&claims));
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.flags.len(), 1);
    assert!(o.facts.flags[0].contains("warnafter"));
}

#[test]
fn rejections_have_reasons_and_never_echo_the_error() {
    for (error, reason) in [
        (
            "[invalid bearer token, service account token has expired]",
            Reason::Expired,
        ),
        (
            "[invalid bearer token, service account token has been invalidated]",
            Reason::Revoked,
        ),
        ("serviceaccounts \"deployer\" not found", Reason::Revoked),
        (
            "[invalid bearer token, token audiences [\"api\"] is invalid for the target audiences [\"vault\"]]",
            Reason::WrongAudience,
        ),
        (
            "[invalid bearer token, square/go-jose: error in cryptographic primitive]",
            Reason::UnknownToken,
        ),
        ("", Reason::UnknownToken),
    ] {
        let o = p(201, &rejected_body(error), None);
        assert_eq!((o.verdict, o.reason), (Verdict::Invalid, reason), "{error}");
        if !error.is_empty() {
            assert!(!o.detail.contains(error), "{}", o.detail);
        }
        assert!(!o.detail.contains("go-jose"), "{}", o.detail);
    }
}

#[test]
fn rejected_token_keeps_its_local_expiry() {
    let claims = json!({"exp": NOW - 10, "sub": "system:serviceaccount:ci:x"});
    let o = p(201, &rejected_body(""), Some(&claims));
    assert_eq!((o.verdict, o.reason), (Verdict::Invalid, Reason::Expired));
    assert_eq!(o.facts.expiry.timestamp().unwrap().as_second(), NOW - 10);
}

#[test]
fn requested_audiences_must_be_confirmed() {
    let wanted = vec!["vault".to_string()];
    let body = authenticated(&["vault"]);
    let o = parse(
        201,
        &HeaderMap::new(),
        body.as_bytes(),
        now(),
        None,
        Some(&wanted),
    );
    assert_eq!(o.verdict, Verdict::Valid);
    assert_eq!(o.facts.audience, ["vault"]);
    let body = authenticated(&[]);
    let o = parse(
        201,
        &HeaderMap::new(),
        body.as_bytes(),
        now(),
        None,
        Some(&wanted),
    );
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Invalid, Reason::WrongAudience)
    );
}

#[test]
fn own_credentials_failures_are_misconfigured() {
    for status in [401, 403] {
        let o = p(
            status,
            r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403}"#,
            None,
        );
        assert_eq!(
            (o.verdict, o.reason),
            (Verdict::Misconfigured, Reason::ClientAuth),
            "{status}"
        );
    }
}

#[test]
fn garbage_and_outages_are_unreachable() {
    let claims = bound_claims();
    for (status, body) in [
        (201, "<html>proxy</html>"),
        (201, ""),
        (201, "{}"),
        (201, r#"{"kind":"Status","status":{"authenticated":true}}"#),
        (201, r#"{"kind":"TokenReview"}"#),
        (
            201,
            r#"{"kind":"TokenReview","status":{"authenticated":"true"}}"#,
        ),
        (500, ""),
        (503, "<html>unavailable</html>"),
        (404, r#"{"kind":"Status","code":404}"#),
        (400, r#"{"kind":"Status","code":400}"#),
    ] {
        let o = p(status, body, Some(&claims));
        assert_eq!(o.verdict, Verdict::Unreachable, "{status} {body}: {o:?}");
        // The expiry read from the token itself survives a failed review.
        assert_eq!(o.facts.expiry.timestamp().unwrap().as_second(), NOW + 3000);
    }
}

#[test]
fn rate_limited_by_priority_and_fairness() {
    let mut h = HeaderMap::new();
    h.insert("retry-after", HeaderValue::from_static("1"));
    let o = parse(429, &h, b"", now(), None, None);
    assert_eq!(o.verdict, Verdict::RateLimited);
    assert_eq!(o.retry_after, Some(Duration::from_secs(1)));
}

#[test]
fn review_request_shape() {
    let auds = vec!["vault".to_string()];
    let r = review_request("a.b.c", Some(&auds));
    assert_eq!(r["apiVersion"], "authentication.k8s.io/v1");
    assert_eq!(r["kind"], "TokenReview");
    assert_eq!(r["spec"]["token"], "a.b.c");
    assert_eq!(r["spec"]["audiences"], json!(["vault"]));
    assert!(
        review_request("a.b.c", None)["spec"]
            .get("audiences")
            .is_none()
    );
}

#[test]
fn config_guards_the_in_cluster_token() {
    let mut c = Config {
        url: None,
        api_server: None,
        token: None,
        ca_file: None,
        max_concurrency: None,
    };
    assert!(c.validate().is_ok());
    c.url = Some("https://kubernetes.default.svc/".into());
    assert!(c.validate().is_ok());
    c.url = Some("https://k8s.example.com:6443".into());
    assert!(c.validate().unwrap_err().contains("token is required"));
    c.token = Some(SecretSource::Env("K8S_TOKEN".into()));
    assert!(c.validate().is_ok());
    // The in-cluster CA is never applied to another API server.
    assert_eq!(c.ca_file(), None);
}

#[test]
fn ca_file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.crt");
    assert!(
        client_with_ca(&missing)
            .unwrap_err()
            .contains("missing.crt")
    );
    let garbage = dir.path().join("garbage.crt");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let err = client_with_ca(&garbage).unwrap_err();
    assert!(err.contains("no PEM certificate"), "{err}");
    let broken = dir.path().join("broken.crt");
    let junk = base64::engine::general_purpose::STANDARD.encode([7u8; 64]);
    std::fs::write(
        &broken,
        format!("-----BEGIN CERTIFICATE-----\n{junk}\n-----END CERTIFICATE-----\n"),
    )
    .unwrap();
    assert!(client_with_ca(&broken).unwrap_err().contains("broken.crt"));
}

/// The old `api_server` is `url` under its old name: same meaning (the in-cluster guard
/// included), reported as renamed, and refused beside the new name.
#[test]
fn the_old_api_server_still_works() {
    let mut c = Config {
        url: None,
        api_server: Some("https://k8s.example.com:6443".into()),
        token: None,
        ca_file: None,
        max_concurrency: None,
    };
    let err = c.validate().unwrap_err();
    assert!(err.contains("when api_server is not"), "{err}");
    c.token = Some(SecretSource::Env("K8S_TOKEN".into()));
    assert!(c.validate().is_ok());
    assert_eq!(c.server(), "https://k8s.example.com:6443");
    assert_eq!(c.renamed_in_use()[0].old, "api_server");
    c.url = Some("https://k8s.example.com:6443".into());
    assert!(c.validate().unwrap_err().contains("url and api_server"));
}
