use super::*;

#[test]
fn selectors_parse_and_match() {
    let terms = parse_selector("team=platform, env!=dev").unwrap();
    assert_eq!(terms.len(), 2);
    assert!(terms[1].negated);
    assert!(parse_selector("team").is_err());
    assert!(parse_selector("").is_err());
    assert!(parse_selector("=x").is_err());

    let config = Config::parse(
            "providers:\n  k:\n    kind: jwt\ntokens:\n  - name: a\n    provider: k\n    secret: {env: A}\n    labels: {team: platform, env: prod}\n  - name: b\n    provider: k\n    secret: {env: B}\n    labels: {team: platform, env: dev}\n  - name: c\n    provider: k\n    secret: {env: C}\n",
        )
        .unwrap();
    let names = |sel: &str| -> Vec<String> {
        let mut c = config.clone();
        select(&mut c, &[], Some(sel))
            .map(|_| c.tokens.iter().map(|t| t.name.clone()).collect())
            .unwrap_or_default()
    };
    assert_eq!(names("team=platform"), ["a", "b"]);
    assert_eq!(names("team=platform,env!=dev"), ["a"]);
    assert_eq!(names("provider=k,kind=jwt"), ["a", "b", "c"]);
    assert!(names("team=nobody").is_empty());
    let mut c = config.clone();
    assert_eq!(
        select(&mut c, &["zz".into()], None).unwrap_err(),
        "no token named \"zz\" in the config"
    );
    let mut c = config.clone();
    select(&mut c, &["a".into(), "c".into()], None).unwrap();
    assert_eq!(c.tokens.len(), 2);
}
