use super::*;

#[test]
fn label_names_follow_prometheus_rules() {
    assert!(is_valid_label_name("team"));
    assert!(is_valid_label_name("_x1"));
    assert!(!is_valid_label_name("1x"));
    assert!(!is_valid_label_name("te-am"));
    assert!(!is_valid_label_name("__meta"));
    assert!(!is_valid_label_name(""));
}

#[test]
fn scrub_drops_quoted_values() {
    assert_eq!(
        scrub("invalid type: string \"ghp_abc\", expected u64"),
        "invalid type: string, expected u64"
    );
    assert_eq!(scrub("no quotes here"), "no quotes here");
}

#[test]
fn durations_accept_days() {
    assert_eq!(
        parse_duration("14d").unwrap(),
        Duration::from_secs(14 * 86_400)
    );
    assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
    assert!(parse_duration("soon").is_err());
}
