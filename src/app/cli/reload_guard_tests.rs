use super::*;

#[test]
fn reload_max_drop_is_a_share_defaulting_to_half() {
    let parse = |args: &[&str]| Cli::try_parse_from([&["x"], args].concat());
    assert_eq!(parse(&[]).unwrap().reload_max_drop, 0.5);
    assert_eq!(
        parse(&["--config.reload-max-drop=1"])
            .unwrap()
            .reload_max_drop,
        1.0
    );
    assert_eq!(
        parse(&["--config.reload-max-drop", "0"])
            .unwrap()
            .reload_max_drop,
        0.0
    );
    for bad in ["1.5", "-0.1", "half", "NaN"] {
        let err = parse(&[&format!("--config.reload-max-drop={bad}")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("is not a share between 0 and 1"),
            "{bad}: {err}"
        );
    }
}
