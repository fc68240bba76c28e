use reqwest::header::HeaderMap;

use super::*;

fn answer(status: u16, body: &str) -> Response {
    Response {
        status,
        headers: HeaderMap::new(),
        body: body.as_bytes().to_vec(),
    }
}

const KEY: &str = "90f3a4e2-4b7c-4a57-9a0f-3b5e2c1d0e9f";

#[test]
fn an_added_password_is_read_with_its_key_id_and_end() {
    let body = format!(
        r#"{{"customKeyIdentifier":null,"displayName":"api-token-exporter","endDateTime":"2027-01-01T00:00:00Z",
            "hint":"Q~8","keyId":"{KEY}","secretText":"Q~8canaryNEWsecret","startDateTime":"2026-07-01T00:00:00Z"}}"#
    );
    let p = parse_added(&answer(200, &body)).unwrap();
    assert_eq!(p.value.as_deref(), Some("Q~8canaryNEWsecret"));
    assert_eq!(p.key_id.as_deref(), Some(KEY));
    assert_eq!(p.expires_at, Some("2027-01-01T00:00:00Z".parse().unwrap()));
    assert!(!format!("{p:?}").contains("canary"));
}

#[test]
fn graph_refusals_name_the_documented_code_only() {
    let denied = r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges canary-x","innerError":{"request-id":"x"}}}"#;
    let e = parse_added(&answer(403, denied)).unwrap_err();
    assert!(e.contains("Authorization_RequestDenied"), "{e}");
    assert!(e.contains("Application.ReadWrite.OwnedBy"), "{e}");
    let odd = r#"{"error":{"code":"canary-x","message":"canary-x"}}"#;
    for status in [200, 400, 401, 403, 404, 429, 500, 503] {
        for body in [
            "",
            "canary-x",
            "{}",
            "[]",
            odd,
            r#"{"keyId":"canary-x","secretText":"s"}"#,
            r#"{"keyId":"90f3a4e2-4b7c-4a57-9a0f-3b5e2c1d0e9f","secretText":" "}"#,
        ] {
            if let Err(e) = parse_added(&answer(status, body)) {
                assert!(!e.contains("canary"), "{status} {body}: {e}");
            } else {
                panic!("{status} {body} read as a secret");
            }
            if let Err(e) = check_removed(&answer(status, body)) {
                assert!(!e.contains("canary"), "{e}");
            }
        }
    }
    assert!(check_removed(&answer(204, "")).is_ok());
    let e = check_removed(&answer(
        404,
        r#"{"error":{"code":"Request_ResourceNotFound","message":"x"}}"#,
    ))
    .unwrap_err();
    assert!(
        e.contains("404") && e.contains("Request_ResourceNotFound"),
        "{e}"
    );
}

#[test]
fn the_action_urls_use_the_app_id_alternate_key() {
    assert_eq!(
        action_url("https://graph.microsoft.com/", KEY, "addPassword"),
        format!("https://graph.microsoft.com/v1.0/applications(appId='{KEY}')/addPassword")
    );
}

#[test]
fn the_old_secret_is_found_by_its_hint_and_only_when_one_matches() {
    let app = |hints: &[(&str, &str)]| {
        let creds: Vec<serde_json::Value> = hints
            .iter()
            .map(|(h, k)| serde_json::json!({"hint": h, "keyId": k, "endDateTime": "2027-01-01T00:00:00Z"}))
            .collect();
        graph::application_from(serde_json::json!({"id": "x", "passwordCredentials": creds}))
            .unwrap()
    };
    let other = "a1b2c3d4-e5f6-4789-8abc-def012345678";
    assert_eq!(
        old_key_id(&app(&[("Ab1", KEY), ("Zz9", other)]), "Ab1Q~canary").unwrap(),
        KEY
    );
    let e = old_key_id(&app(&[("Zz9", other)]), "Ab1Q~canary").unwrap_err();
    assert!(e.contains("none of the app's 1"), "{e}");
    let e = old_key_id(&app(&[("Ab1", KEY), ("Ab1", other)]), "Ab1Q~canary").unwrap_err();
    assert!(
        e.contains("2 of the app's") && e.contains("nothing was added"),
        "{e}"
    );
    for e in [
        old_key_id(&app(&[("Ab1", "canary")]), "Ab1Q~canary").unwrap_err(),
        e,
    ] {
        assert!(!e.contains("canary") && !e.contains("Ab1"), "{e}");
    }
}
