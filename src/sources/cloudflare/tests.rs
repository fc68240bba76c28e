use super::*;

fn envelope(result: &str, info: &str) -> Vec<u8> {
    format!(r#"{{"success":true,"errors":[],"messages":[],"result":{result}{info}}}"#).into_bytes()
}

#[test]
fn a_page_gives_its_tokens_and_whether_another_follows() {
    let token = r#"{"id":"ed17574386854bf78a67040be0a770b0","name":"ci","status":"active",
        "issued_on":"2018-07-01T05:20:00Z","modified_on":"2018-07-02T05:20:00Z",
        "not_before":"2018-07-01T05:20:00Z","expires_on":"2020-01-01T00:00:00Z",
        "last_used_on":"2020-01-01T00:00:00Z","policies":[]}"#;
    let info = |page: u32, total: u32| {
        format!(
            r#","result_info":{{"page":{page},"per_page":50,"count":1,"total_count":51,"total_pages":{total}}}"#
        )
    };
    let (tokens, more) = parse_page(&envelope(&format!("[{token}]"), &info(1, 2)), 1).unwrap();
    assert!(more);
    assert_eq!(
        tokens,
        [Token {
            id: "ed17574386854bf78a67040be0a770b0".into(),
            name: "ci".into(),
            status: "active".into(),
            issued_on: Some("2018-07-01T05:20:00Z".into()),
            expires_on: Some("2020-01-01T00:00:00Z".into()),
            last_used_on: Some("2020-01-01T00:00:00Z".into()),
        }]
    );
    let (_, more) = parse_page(&envelope(&format!("[{token}]"), &info(2, 2)), 2).unwrap();
    assert!(!more);
    // An empty account: no pages at all.
    let (tokens, more) = parse_page(&envelope("[]", &info(1, 0)), 1).unwrap();
    assert!(tokens.is_empty() && !more);
    // Without result_info, a short page is the last.
    let (_, more) = parse_page(&envelope(&format!("[{token}]"), ""), 1).unwrap();
    assert!(!more);
}

#[test]
fn anything_but_the_documented_envelope_is_refused() {
    for body in [
        &b"<html>error</html>"[..],
        br#"{"success":false,"errors":[{"code":10000,"message":"Authentication error"}],"messages":[],"result":null}"#,
        br#"{"success":true,"errors":[],"messages":[],"result":null}"#,
        br#"{"success":true,"result":[{"id":"x","status":"active"}]}"#,
        br#"{"success":true,"result":{"id":"x"}}"#,
    ] {
        assert!(parse_page(body, 1).is_err(), "{}", String::from_utf8_lossy(body));
    }
    // A full page that states no page count cannot be told from a cut list.
    let full: Vec<String> = (0..PER_PAGE)
        .map(|i| format!(r#"{{"id":"{i}","name":"t","status":"active"}}"#))
        .collect();
    let body = envelope(&format!("[{}]", full.join(",")), "");
    assert!(parse_page(&body, 1).is_err());
}
