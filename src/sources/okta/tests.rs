use super::*;

#[test]
fn a_page_is_the_documented_array() {
    let body = br#"[{"name":"My API Token","userId":"00uabcdefg1234567890","tokenWindow":"P30D",
        "network":{"connection":"ANYWHERE"},"id":"00Tabcdefg1234567890","clientName":"Okta API",
        "expiresAt":"2021-12-11T20:38:10.000Z","created":"2021-11-09T20:38:10.000Z",
        "lastUpdated":"2021-11-11T20:38:10.000Z",
        "_links":{"self":{"hints":{"allow":["GET","DELETE"]}},"user":{"hints":{"allow":["GET"]}}}}]"#;
    assert_eq!(
        parse_page(body, 1).unwrap(),
        [Token {
            id: "00Tabcdefg1234567890".into(),
            name: "My API Token".into(),
            user_id: Some("00uabcdefg1234567890".into()),
            client_name: Some("Okta API".into()),
            created: Some("2021-11-09T20:38:10.000Z".into()),
            expires_at: Some("2021-12-11T20:38:10.000Z".into()),
            token_window: Some("P30D".into()),
        }]
    );
    assert!(parse_page(b"[]", 1).unwrap().is_empty());
    for garbage in [
        &b"<html>Okta</html>"[..],
        br#"{"errorCode":"E0000006"}"#,
        br#"[{"name":"no id"}]"#,
    ] {
        assert!(parse_page(garbage, 2).is_err());
    }
}
