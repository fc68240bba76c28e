use super::*;

#[test]
fn a_personal_page_is_the_documented_object() {
    // The example of Docker's getAccessTokensResponse, with a next page.
    let body = br#"{"active_count":1,"count":2,"next":"https://hub.docker.com/v2/access-tokens?page=2&page_size=1","previous":null,
        "results":[{"client_id":"HUB","created_at":"2021-07-20T12:00:00.000000Z","creator_ip":"127.0.0.1",
        "creator_ua":"some user agent","expires_at":"2021-10-28T18:30:19.520861Z","generated_by":"manual",
        "is_active":true,"last_used":null,"scopes":["repo:read"],"token":"***",
        "token_label":"My read only token","uuid":"b30bbf97-506c-4ecd-aabc-842f3cb484fb"}]}"#;
    let (tokens, next) = parse_page::<Personal>(body).unwrap();
    assert_eq!(
        tokens,
        [Personal {
            uuid: "b30bbf97-506c-4ecd-aabc-842f3cb484fb".into(),
            token_label: Some("My read only token".into()),
            is_active: true,
            created_at: Some("2021-07-20T12:00:00.000000Z".into()),
            last_used: None,
            expires_at: Some("2021-10-28T18:30:19.520861Z".into()),
        }]
    );
    assert_eq!(
        next.as_deref(),
        Some("https://hub.docker.com/v2/access-tokens?page=2&page_size=1")
    );
}

#[test]
fn an_organization_page_is_the_documented_object() {
    // The example of Docker's getOrgAccessTokensResponse.
    let body = br#"{"next":null,"previous":null,"total":1,"results":[{"created_at":"2022-05-20T00:54:18Z",
        "created_by":"johndoe","expires_at":"2023-05-20T00:54:18Z","id":"a7a5ef25-8889-43a0-8cc7-f2a94268e861",
        "is_active":true,"label":"My organization token","last_used_at":"2022-06-15T12:30:45Z"}]}"#;
    let (tokens, next) = parse_page::<Organization>(body).unwrap();
    assert_eq!(next, None);
    assert_eq!(tokens[0].id, "a7a5ef25-8889-43a0-8cc7-f2a94268e861");
    assert_eq!(tokens[0].created_by.as_deref(), Some("johndoe"));
    assert_eq!(
        tokens[0].last_used_at.as_deref(),
        Some("2022-06-15T12:30:45Z")
    );
}

#[test]
fn garbage_is_not_a_page() {
    for garbage in [
        &b"<html>Docker Hub</html>"[..],
        br#"{"detail":"Not Found"}"#,
        br#"{"results":[{"token_label":"no uuid","is_active":true}],"next":null}"#,
        br#"{"results":[],"next":7}"#,
    ] {
        assert!(
            parse_page::<Personal>(garbage).is_err(),
            "{}",
            String::from_utf8_lossy(garbage)
        );
    }
    assert!(
        parse_page::<Personal>(br#"{"results":[],"next":""}"#)
            .unwrap()
            .1
            .is_none()
    );
}
