//! The probe stage: the scheduler that runs each token's probe through the provider
//! registry on its interval and writes the answer into the store.

pub mod scheduler;
