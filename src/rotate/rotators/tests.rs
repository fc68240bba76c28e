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
fn garbage_answers_are_errors_never_panics_and_never_echo() {
    let bodies = [
        "",
        "not json canary-x",
        "{}",
        "[]",
        "null",
        "{\"auth\":{\"lease_duration\":\"canary-x\"}}",
        "{\"access_token\":\"\"}",
        "{\"token\":null}",
        "{\"error\":\"canary-x\"}",
    ];
    for status in [200, 400, 401, 403, 404, 429, 500, 503] {
        for body in bodies {
            let a = answer(status, body);
            for e in [
                parse_vault_renew(&a, &TokenFacts::default(), now()).err(),
                parse_refresh(&a, now()).err(),
                parse_gitlab_rotate(&a).err(),
            ]
            .into_iter()
            .flatten()
            {
                assert!(!e.contains("canary"), "{status} {body}: {e}");
            }
        }
    }
}

#[test]
fn the_documented_answers_are_read() {
    let v = parse_vault_renew(
        &answer(
            200,
            r#"{"auth":{"client_token":"","lease_duration":3600,"renewable":true}}"#,
        ),
        &TokenFacts::default(),
        now(),
    )
    .unwrap();
    assert_eq!(v.value, None);
    assert_eq!(
        v.expires_at,
        Some(Timestamp::from_second(1_800_003_600).unwrap())
    );
    let r = parse_refresh(
        &answer(
            200,
            r#"{"access_token":"a","token_type":"Bearer","expires_in":60,"refresh_token":"r"}"#,
        ),
        now(),
    )
    .unwrap();
    assert_eq!(r.value.as_deref(), Some("a"));
    assert_eq!(r.refresh_token.as_deref(), Some("r"));
    assert_eq!(
        r.expires_at,
        Some(Timestamp::from_second(1_800_000_060).unwrap())
    );
    let e = parse_refresh(&answer(400, r#"{"error":"invalid_grant"}"#), now()).unwrap_err();
    assert!(e.contains("invalid_grant"), "{e}");
    let g = parse_gitlab_rotate(&answer(
        200,
        r#"{"id":43,"active":true,"expires_at":"2027-01-15","token":"glpat-x"}"#,
    ))
    .unwrap();
    assert_eq!(g.value.as_deref(), Some("glpat-x"));
    assert_eq!(g.expires_at, Some("2027-01-15T00:00:00Z".parse().unwrap()));
}

#[test]
fn a_renewal_at_max_ttl_is_a_failure() {
    let facts = TokenFacts {
        expiry: Expiry::At(Timestamp::from_second(1_800_000_600).unwrap()),
        ..TokenFacts::default()
    };
    let e = parse_vault_renew(
        &answer(200, r#"{"auth":{"lease_duration":600}}"#),
        &facts,
        now(),
    )
    .unwrap_err();
    assert!(e.contains("did not extend"), "{e}");
}
