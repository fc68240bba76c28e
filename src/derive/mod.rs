//! The derive stage: pure functions from stored facts to what a person or a rule sees
//! (policy findings, views). No I/O.

pub mod policy;
pub mod view;
