use super::*;

#[test]
fn flags_are_validated() {
    assert!(Shard::new(0, 0).is_err());
    let err = Shard::new(2, 2).unwrap_err();
    assert!(err.contains("0 to 1, got 2"), "{err}");
    assert_eq!(Shard::new(1, 2).unwrap().index(), 1);
    assert!(Shard::ALL.is_all());
}

#[test]
fn the_hash_is_pinned() {
    // Fixed values (computed independently from SHA-256): a different hash in a new
    // release would silently move tokens between running replicas.
    assert_eq!(Shard::of("deploy-bot", 1000), 184); // 0x6a40c950b2151210
    assert_eq!(Shard::of("ci-runner", 1000), 894);
    assert_eq!(Shard::of("alpha", 3), 2);
    assert_eq!(Shard::of("alpha", 1), 0);
    assert!(Shard::new(2, 3).unwrap().owns("alpha"));
    assert!(!Shard::new(0, 3).unwrap().owns("alpha"));
}
