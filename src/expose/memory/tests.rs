use super::*;

#[test]
fn a_faulted_vec_is_empty_with_the_room_asked_for() {
    for n in [0, 1, 4095, BIG + 1] {
        let bytes = faulted_vec::<u8>(n);
        assert!(bytes.is_empty() && bytes.capacity() >= n, "{n} bytes");
        let pairs = faulted_vec::<(u64, String)>(n / 64);
        assert!(
            pairs.is_empty() && pairs.capacity() >= n / 64,
            "{n} / 64 pairs"
        );
    }
}
