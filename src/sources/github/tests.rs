use super::*;

#[test]
fn the_next_link_is_found_among_githubs_relations() {
    let link = r#"<https://api.github.com/organizations/9/personal-access-tokens?per_page=100&page=2>; rel="next", <https://api.github.com/organizations/9/personal-access-tokens?per_page=100&page=4>; rel="last""#;
    assert_eq!(
        next_link(Some(link)).as_deref(),
        Some("https://api.github.com/organizations/9/personal-access-tokens?per_page=100&page=2")
    );
    let last = r#"<https://api.github.com/x?page=1>; rel="prev", <https://api.github.com/x?page=1>; rel="first""#;
    assert_eq!(next_link(Some(last)), None);
    assert_eq!(next_link(None), None);
    assert_eq!(next_link(Some("garbage; rel=next")), None);
    assert_eq!(
        next_link(Some("<https://h/a>; rel=next")).as_deref(),
        Some("https://h/a")
    );
}

fn headers(pairs: &[(&'static str, &str)]) -> ::http::HeaderMap {
    let mut h = ::http::HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, v.parse().unwrap());
    }
    h
}

#[test]
fn githubs_rate_limit_answers_are_told_from_a_refusal() {
    let none = headers(&[]);
    assert_eq!(failure(200, &none, b""), None);
    assert_eq!(failure(201, &none, b""), None);
    assert_eq!(
        failure(
            403,
            &headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1")]),
            br#"{"message":"API rate limit exceeded"}"#
        ),
        Some(FailReason::RateLimited)
    );
    assert_eq!(
        failure(403, &headers(&[("retry-after", "60")]), b"{}"),
        Some(FailReason::RateLimited)
    );
    assert_eq!(
        failure(
            403,
            &none,
            br#"{"message":"You have exceeded a secondary rate limit."}"#
        ),
        Some(FailReason::RateLimited)
    );
    assert_eq!(failure(429, &none, b""), Some(FailReason::RateLimited));
    assert_eq!(
        failure(
            403,
            &headers(&[("x-ratelimit-remaining", "4999")]),
            br#"{"message":"Resource not accessible by integration"}"#
        ),
        Some(FailReason::Forbidden)
    );
    assert_eq!(failure(401, &none, b""), Some(FailReason::Unauthorized));
    assert_eq!(failure(404, &none, b""), Some(FailReason::Misconfigured));
    assert_eq!(failure(502, &none, b""), Some(FailReason::Unreachable));
    assert_eq!(failure(302, &none, b""), Some(FailReason::BadResponse));
}

#[test]
fn the_app_jwt_is_rs256_with_githubs_claims() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let signer = signing_key(&key.serialize_pem()).unwrap();
    let now: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
    let jwt = app_jwt(&signer, "Iv23liCLIENT", now).unwrap();
    let header = jsonwebtoken::decode_header(&jwt).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["exp"]);
    let decoding =
        jsonwebtoken::DecodingKey::from_rsa_pem(key.public_key_pem().as_bytes()).unwrap();
    let claims = jsonwebtoken::decode::<serde_json::Value>(&jwt, &decoding, &validation)
        .unwrap()
        .claims;
    let at = now.as_second();
    assert_eq!(claims["iss"], "Iv23liCLIENT");
    assert_eq!(claims["iat"], at - 60);
    assert_eq!(claims["exp"], at + 540);
    assert!(
        claims["exp"].as_i64().unwrap() - at <= 600,
        "GitHub refuses exp over 10 minutes"
    );
    // A numeric app ID is sent as a number.
    let jwt = app_jwt(&signer, "123456", now).unwrap();
    let claims = jsonwebtoken::decode::<serde_json::Value>(&jwt, &decoding, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["iss"], 123456);
}

#[test]
fn a_key_that_is_not_an_rsa_pem_is_refused_without_quoting_it() {
    let e = signing_key("CANARY not a key").err().unwrap();
    assert!(
        e.contains("not a PEM private key") && !e.contains("CANARY"),
        "{e}"
    );
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let e = signing_key(&ec.serialize_pem()).err().unwrap();
    assert!(e.contains("not an RSA key"), "{e}");
}

#[test]
fn list_pages_parse_as_github_documents_them() {
    let page = br#"[{"id":25381,"owner":{"login":"octocat","id":1,"type":"User","site_admin":false},
        "repository_selection":"all","repositories_url":"https://api.github.com/organizations/652551/personal-access-token-requests/25381/repositories",
        "permissions":{"organization":{"members":"read"}},"access_granted_at":"2023-05-16T08:47:09.000-07:00",
        "token_id":98716,"token_name":"Some Token","token_expired":false,"token_expires_at":"2023-11-16T08:47:09.000-07:00",
        "token_last_used_at":null}]"#;
    let grants: Vec<Grant> = serde_json::from_slice(page).unwrap();
    assert_eq!(grants[0].id, 25381);
    assert_eq!(grants[0].owner.login, "octocat");
    assert_eq!(grants[0].token_name.as_deref(), Some("Some Token"));
    assert_eq!(
        grants[0].token_expires_at.as_deref(),
        Some("2023-11-16T08:47:09.000-07:00")
    );
    let auths = br#"[{"login":"octocat","credential_id":161195,"credential_type":"personal access token",
        "token_last_eight":"71c3fc11","credential_authorized_at":"2011-01-26T19:06:43Z","scopes":["user","repo"],
        "credential_accessed_at":null,"authorized_credential_id":12345678,"authorized_credential_note":"deploy",
        "authorized_credential_expires_at":"2030-01-01T00:00:00Z"}]"#;
    let a: Vec<Authorization> = serde_json::from_slice(auths).unwrap();
    assert_eq!(a[0].credential_id, 161195);
    assert_eq!(a[0].authorized_credential_note.as_deref(), Some("deploy"));
    // An object where GitHub documents an array is not a page.
    assert!(serde_json::from_slice::<Vec<Grant>>(br#"{"message":"x"}"#).is_err());
}
