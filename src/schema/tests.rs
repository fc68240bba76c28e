use super::*;

#[test]
fn scrub_drops_quoted_values() {
    assert_eq!(
        scrub("invalid type: string \"ghp_abc\", expected u64"),
        "invalid type: string, expected u64"
    );
    assert_eq!(scrub("no quotes here"), "no quotes here");
}

#[test]
fn paths_drop_spanned_value_segments_only() {
    assert_eq!(
        user_path("providers.k.jwks_uri.value"),
        "providers.k.jwks_uri"
    );
    assert_eq!(user_path("tokens[3].labels.value.x"), "tokens[3].labels.x");
    // A key that merely starts with `value` is the user's own.
    assert_eq!(user_path("providers.valuer.kind"), "providers.valuer.kind");
    assert_eq!(user_path("."), "");
    assert_eq!(user_path("tokens.?"), "");
}

#[test]
fn a_failed_decode_names_the_field_and_line_without_the_value() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Doc {
        port: u16,
    }
    let Err(f) = decode::<Doc>("port: \"ghp_canary\"\n") else {
        panic!("a string is not a port")
    };
    assert_eq!((f.path.as_str(), f.line), ("port", Some(1)));
    assert!(!f.message.contains("ghp_canary"), "{}", f.message);
}
