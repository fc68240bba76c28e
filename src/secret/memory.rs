//! A secret held in the exporter's memory: a value a source read from somewhere that is not
//! a file, a variable or a command it could read again (a Kubernetes Secret's `data`). The
//! value is behind an `Arc` (the inventory clones token specs), zeroed when the last holder
//! drops it, redacted in `Debug`, and serialized as `<secret>`: it never reaches the JSON
//! API, a state file or a log.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use zeroize::Zeroizing;

/// See the module documentation.
#[derive(Clone)]
pub struct MemorySource(Arc<Zeroizing<Vec<u8>>>);

impl MemorySource {
    /// Takes the bytes as they were read; [`super::SecretSource::read`] checks and trims
    /// them like a file's.
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        MemorySource(Arc::new(bytes))
    }

    /// A copy of the bytes, for `read`, which zeroes it once turned into a `Secret`.
    pub(super) fn bytes(&self) -> Vec<u8> {
        self.0.as_slice().to_vec()
    }
}

impl PartialEq for MemorySource {
    /// Two sources are the same when they hold the same value (a relisted Secret that did
    /// not change is the same token, and the scheduler keeps its state).
    fn eq(&self, other: &Self) -> bool {
        self.0.as_slice() == other.0.as_slice()
    }
}

impl Eq for MemorySource {}

impl fmt::Debug for MemorySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl Serialize for MemorySource {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<secret>")
    }
}
