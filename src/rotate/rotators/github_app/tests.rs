use std::collections::BTreeMap;

use reqwest::header::{HeaderMap, HeaderValue};

use super::*;
use crate::secret::{FileSource, SecretSource};

fn answer(status: u16, body: &str) -> Response {
    Response {
        status,
        headers: HeaderMap::new(),
        body: body.as_bytes().to_vec(),
    }
}

#[test]
fn a_minted_token_is_read_with_its_expiry() {
    let p = parse_minted(&answer(
        201,
        r#"{"token":"ghs_16C7e42F292c6912E7710c838347Ae178B4a","expires_at":"2026-07-11T22:14:10Z",
            "permissions":{"contents":"read"},"repository_selection":"selected"}"#,
    ))
    .unwrap();
    assert_eq!(
        p.value.as_deref(),
        Some("ghs_16C7e42F292c6912E7710c838347Ae178B4a")
    );
    assert_eq!(p.expires_at, Some("2026-07-11T22:14:10Z".parse().unwrap()));
    // The stateless form (ghs_APPID_JWT) has no fixed length.
    let long = format!("ghs_12345_{}", "a.b-c_".repeat(40));
    let body = format!(r#"{{"token":"{long}","expires_at":"2026-07-11T22:14:10Z"}}"#);
    assert_eq!(
        parse_minted(&answer(201, &body)).unwrap().value.as_deref(),
        Some(long.as_str())
    );
}

#[test]
fn refusals_and_garbage_are_errors_that_never_echo() {
    for (status, body, words) in [
        (
            401,
            r#"{"message":"A JSON web token could not be decoded canary-x"}"#,
            "401",
        ),
        (
            403,
            r#"{"message":"This installation has been suspended canary-x"}"#,
            "403",
        ),
        (404, r#"{"message":"Not Found canary-x"}"#, "404"),
        (422, r#"{"message":"Validation Failed canary-x"}"#, "422"),
        (500, "canary-x", "500"),
        (
            200,
            r#"{"token":"ghs_x","expires_at":"2026-07-11T22:14:10Z"}"#,
            "201",
        ),
        (201, "canary-x", "documented JSON"),
        (
            201,
            r#"{"token":"gho_canary-x","expires_at":"2026-07-11T22:14:10Z"}"#,
            "ghs_",
        ),
        (
            201,
            r#"{"token":"ghs_canary x","expires_at":"2026-07-11T22:14:10Z"}"#,
            "ghs_",
        ),
        (
            201,
            r#"{"token":"ghs_canaryx","expires_at":"canary-x"}"#,
            "expires_at",
        ),
        (201, r#"{"token":"ghs_canaryx"}"#, "expires_at"),
    ] {
        let e = parse_minted(&answer(status, body)).unwrap_err();
        assert!(e.contains(words), "{status}: {e}");
        assert!(!e.contains("canary"), "{e}");
    }
    let mut limited = HeaderMap::new();
    limited.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
    let e = parse_minted(&Response {
        status: 403,
        headers: limited,
        body: br#"{"message":"API rate limit exceeded"}"#.to_vec(),
    })
    .unwrap_err();
    assert!(e.contains("rate limiting"), "{e}");
}

#[test]
fn the_body_narrows_only_when_asked() {
    let mut app = GithubApp {
        app_id: "Iv23liAPP".into(),
        installation_id: 7,
        private_key: SecretSource::File(FileSource::new("/nonexistent")),
        repositories: vec![],
        permissions: BTreeMap::new(),
    };
    assert_eq!(mint_body(&app), serde_json::json!({}));
    assert_eq!(mint_path(7), "/app/installations/7/access_tokens");
    app.repositories = vec!["api".into()];
    app.permissions.insert("contents".into(), "read".into());
    assert_eq!(
        mint_body(&app),
        serde_json::json!({"repositories": ["api"], "permissions": {"contents": "read"}})
    );
}
