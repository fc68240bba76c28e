use jiff::Timestamp;
use reqwest::header::HeaderMap;

use super::*;

fn answer(status: u16, body: &str) -> Response {
    Response {
        status,
        headers: HeaderMap::new(),
        body: body.as_bytes().to_vec(),
    }
}

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

#[test]
fn the_documented_answer_gives_both_tokens_and_the_expiry() {
    let p = parse_refresh(
        &answer(
            200,
            r#"{"ok":true,"access_token":"xoxe.xoxb-1-abc","token_type":"bot","scope":"chat:write",
               "bot_user_id":"U0KRQLJ9H","app_id":"A0KRD7HC3","expires_in":43200,
               "refresh_token":"xoxe-1-def","team":{"name":"T","id":"T9TK3CUKW"},"enterprise":null}"#,
        ),
        now(),
    )
    .unwrap();
    assert_eq!(p.value.as_deref(), Some("xoxe.xoxb-1-abc"));
    assert_eq!(p.refresh_token.as_deref(), Some("xoxe-1-def"));
    assert_eq!(
        p.expires_at,
        Some(Timestamp::from_second(1_800_000_000 + 43_200).unwrap())
    );
}

#[test]
fn a_user_token_pair_under_authed_user_is_read() {
    let p = parse_refresh(
        &answer(
            200,
            r#"{"ok":true,"app_id":"A1","authed_user":{"id":"U1","access_token":"xoxe.xoxp-1-abc",
               "expires_in":43200,"refresh_token":"xoxe-1-ghi","token_type":"user"}}"#,
        ),
        now(),
    )
    .unwrap();
    assert_eq!(p.value.as_deref(), Some("xoxe.xoxp-1-abc"));
    assert_eq!(p.refresh_token.as_deref(), Some("xoxe-1-ghi"));
}

#[test]
fn documented_errors_are_named_and_others_are_not_echoed() {
    for (code, want) in [
        ("invalid_refresh_token", "spent"),
        ("bad_client_secret", "Client Secret"),
        ("invalid_client_id", "Client ID"),
        ("invalid_grant_type", "refresh_token grant"),
        ("ratelimited", "rate limiting"),
        ("internal_error", "try again"),
    ] {
        let e = parse_refresh(
            &answer(200, &format!(r#"{{"ok":false,"error":"{code}"}}"#)),
            now(),
        )
        .unwrap_err();
        assert!(e.contains(code) && e.contains(want), "{code}: {e}");
    }
    let e = parse_refresh(&answer(200, r#"{"ok":false,"error":"canary-x"}"#), now()).unwrap_err();
    assert!(e.contains("unrecognised") && !e.contains("canary"), "{e}");
}

#[test]
fn statuses_and_garbage_are_errors_never_panics_and_never_echoed() {
    for (status, want) in [
        (429, "rate limiting"),
        (500, "cannot be reached"),
        (503, "cannot be reached"),
        (404, "status 404"),
    ] {
        let e = parse_refresh(
            &answer(status, r#"{"ok":true,"access_token":"canary-x"}"#),
            now(),
        )
        .unwrap_err();
        assert!(e.contains(want) && !e.contains("canary"), "{status}: {e}");
    }
    for body in [
        "",
        "canary-x",
        "{}",
        "[]",
        "null",
        r#"{"ok":true}"#,
        r#"{"ok":true,"access_token":""}"#,
        r#"{"ok":true,"access_token":"canary x"}"#,
        r#"{"ok":true,"access_token":7}"#,
        r#"{"ok":"true","access_token":"canary-x"}"#,
        r#"{"ok":false}"#,
    ] {
        let e = parse_refresh(&answer(200, body), now()).unwrap_err();
        assert!(!e.contains("canary"), "{body}: {e}");
    }
}

#[test]
fn an_answer_without_a_new_refresh_token_keeps_the_file() {
    let p = parse_refresh(
        &answer(
            200,
            r#"{"ok":true,"access_token":"xoxe.xoxb-1-abc","expires_in":"soon"}"#,
        ),
        now(),
    )
    .unwrap();
    assert_eq!(p.refresh_token, None);
    assert_eq!(p.expires_at, None);
}
