use reqwest::header::HeaderMap;

use super::*;

fn answer(status: u16, body: &str) -> Response {
    Response {
        status,
        headers: HeaderMap::new(),
        body: body.as_bytes().to_vec(),
    }
}

fn facts(id: Option<&str>, owner: &str) -> TokenFacts {
    let mut f = TokenFacts::default();
    if let Some(id) = id {
        f.extra.insert("token_id".into(), id.into());
    }
    f.extra.insert("owner".into(), owner.into());
    f
}

const ID: &str = "ed17574386854bf78a67040be0a770b0";

#[test]
fn the_documented_answer_gives_the_new_value() {
    let p = parse_roll(&answer(
        200,
        r#"{"errors":[],"messages":[],"success":true,"result":"8M7wS6hCpXVc-DoRnPPY_UCWPgy8aea4Wy6kCe5T"}"#,
    ))
    .unwrap();
    assert_eq!(
        p.value.as_deref(),
        Some("8M7wS6hCpXVc-DoRnPPY_UCWPgy8aea4Wy6kCe5T")
    );
    assert_eq!(p.refresh_token, None);
    assert_eq!(p.expires_at, None, "a roll keeps expires_on");
}

#[test]
fn each_failure_is_named_by_status_and_codes_only() {
    let cases = [
        (400, "errors 6007"),
        (401, "API Tokens Write"),
        (403, "API Tokens Write"),
        (404, "token id"),
        (429, "rate limiting"),
        (500, "cannot be reached"),
        (503, "cannot be reached"),
        (418, "status 418"),
    ];
    for (status, want) in cases {
        let body = r#"{"success":false,"errors":[{"code":6007,"message":"canary-msg"}],"messages":[],"result":null}"#;
        let e = parse_roll(&answer(status, body)).unwrap_err();
        assert!(e.contains(want), "{status}: {e}");
        assert!(!e.contains("canary"), "{e}");
    }
}

#[test]
fn garbage_is_an_error_never_a_panic_and_never_echoed() {
    for body in [
        "",
        "canary-x",
        "{}",
        "[]",
        "null",
        r#"{"success":true}"#,
        r#"{"success":true,"result":""}"#,
        r#"{"success":true,"result":"canary x"}"#,
        r#"{"success":true,"result":{"value":"canary-x"}}"#,
        r#"{"success":false,"result":"canary-x"}"#,
        r#"{"success":"yes","result":"canary-x"}"#,
    ] {
        let e = parse_roll(&answer(200, body)).unwrap_err();
        assert!(!e.contains("canary"), "{body}: {e}");
    }
}

#[test]
fn the_path_follows_the_verify_answer() {
    assert_eq!(
        roll_path(&facts(Some(ID), "user"), Some("acc1")).unwrap(),
        format!("/user/tokens/{ID}/value")
    );
    assert_eq!(
        roll_path(&facts(Some(ID), "account"), Some("acc1")).unwrap(),
        format!("/accounts/acc1/tokens/{ID}/value")
    );
    assert!(
        roll_path(&facts(Some(ID), "account"), None)
            .unwrap_err()
            .contains("account_id")
    );
    assert!(
        roll_path(&facts(None, "user"), None)
            .unwrap_err()
            .contains("not known yet")
    );
    for bad in [
        "../x",
        "a/b",
        "",
        "ed17574386854bf78a67040be0a770b0ff",
        "id%2F",
    ] {
        let e = roll_path(&facts(Some(bad), "user"), None).unwrap_err();
        assert!(e.contains("not a Cloudflare id"), "{bad}: {e}");
    }
}
