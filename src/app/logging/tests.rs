use super::quote;

#[test]
fn logfmt_quotes_only_when_needed() {
    assert_eq!(quote("valid"), "valid");
    assert_eq!(quote("two words"), "\"two words\"");
    assert_eq!(quote("a=b"), "\"a=b\"");
    assert_eq!(quote(""), "\"\"");
}
