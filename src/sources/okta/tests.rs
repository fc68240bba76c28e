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

#[test]
fn the_last_use_is_the_expiry_less_the_window() {
    let (used, window) = last_use(Some("2021-12-11T20:38:10.000Z"), Some("P30D"));
    assert_eq!(used.as_deref(), Some("2021-11-11T20:38:10Z"));
    assert_eq!(window.as_secs(), 30 * 24 * 3600);
    let (used, window) = last_use(Some("2021-12-11T20:38:10Z"), Some("PT12H"));
    assert_eq!(used.as_deref(), Some("2021-12-11T08:38:10Z"));
    assert_eq!(window.as_secs(), 12 * 3600);
    // No window, or one of no fixed length: Okta's default of 30 days.
    for w in [None, Some("P1M")] {
        let (used, window) = last_use(Some("2021-12-31T00:00:00Z"), w);
        assert_eq!(used.as_deref(), Some("2021-12-01T00:00:00Z"), "{w:?}");
        assert_eq!(window.as_secs(), 30 * 24 * 3600);
    }
    assert_eq!(last_use(None, Some("P30D")).0, None);
}
