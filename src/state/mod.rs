//! The state stage: the latest facts per token, the rotation ledger, their persistence.

pub mod persist;
pub mod store;
