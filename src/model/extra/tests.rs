use super::Extra;

#[test]
fn behaves_as_the_map_it_replaces() {
    let mut e = Extra::default();
    assert_eq!(e.insert("ttl".into(), "60".into()), None);
    assert_eq!(e.insert("declared".into(), "true".into()), None);
    assert_eq!(e.insert("ttl".into(), "30".into()), Some("60".into()));
    assert_eq!(e.keys().collect::<Vec<_>>(), ["declared", "ttl"]);
    assert_eq!(e["ttl"], "30");
    assert!(e.contains_key("declared") && !e.contains_key("nope"));
    assert_eq!(
        serde_json::to_string(&e).unwrap(),
        r#"{"declared":"true","ttl":"30"}"#
    );
    assert_eq!(e.remove("declared"), Some("true".into()));
    assert_eq!(e.len(), 1);
    let from: Extra = [("b".to_string(), "2".to_string()), ("a".into(), "1".into())].into();
    assert_eq!(from.len(), 2);
    assert_eq!(from.iter().next().unwrap().0, "a");
}
