//! The one fixed instant of the integration tests. Pure logic (parsers, policies, derived
//! values) takes `now` as an argument, so a test that only needs "some fixed now" takes this
//! one and its assertions do not drift with the wall clock. A test whose fixture encodes its
//! own instant (a captured provider answer, a golden file) keeps that instant beside it.

use jiff::Timestamp;

/// 2023-11-14T22:13:20Z, in Unix seconds.
pub const NOW: i64 = 1_700_000_000;

/// [`NOW`] as a timestamp.
pub fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}
