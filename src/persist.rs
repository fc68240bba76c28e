//! State that must survive a restart, kept as JSON files under `--storage.path`.
//! Touches only that directory.
//!
//! Writes are atomic: the new content goes to a temporary file in the same directory, is
//! fsynced, renamed over the old file, and the directory is fsynced, so a crash (even
//! `kill -9` mid-write) leaves either the old file or the new one, never a torn one.
//! A file that cannot be read back (corrupt, from a future version) is reported and treated
//! as empty rather than stopping the exporter: this state improves answers, it is not needed
//! to give them.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The most a state file may hold; far above what 100,000 tokens need.
pub const MAX_STATE_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot serialize {0}")]
    Serialize(String),
}

/// One JSON file under the storage directory.
#[derive(Clone, Debug)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(dir: &Path, name: &str) -> Self {
        StateFile {
            path: dir.join(name),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file; `T::default()` when it does not exist or cannot be decoded (logged).
    pub fn load<T: DeserializeOwned + Default>(&self) -> T {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return T::default(),
            Err(e) => {
                tracing::warn!(file = %self.path.display(), error = %e, "cannot read state file; starting empty");
                return T::default();
            }
        };
        if meta.len() > MAX_STATE_BYTES {
            tracing::warn!(file = %self.path.display(), "state file is too large; starting empty");
            return T::default();
        }
        match std::fs::read(&self.path).map(|b| serde_json::from_slice::<T>(&b)) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                tracing::warn!(file = %self.path.display(), error = %e, "state file is not valid; starting empty");
                T::default()
            }
            Err(e) => {
                tracing::warn!(file = %self.path.display(), error = %e, "cannot read state file; starting empty");
                T::default()
            }
        }
    }

    /// Writes the file atomically (temp file, fsync, rename, fsync of the directory).
    pub fn save<T: Serialize>(&self, value: &T) -> Result<(), PersistError> {
        self.save_bytes(&self.encode(value)?)
    }

    /// The JSON that [`StateFile::save`] would write, for a caller that must serialise
    /// under a lock and write after releasing it.
    pub fn encode<T: Serialize>(&self, value: &T) -> Result<Vec<u8>, PersistError> {
        serde_json::to_vec(value)
            .map_err(|_| PersistError::Serialize(self.path.display().to_string()))
    }

    /// Writes JSON from [`StateFile::encode`] atomically, as [`StateFile::save`] does.
    pub fn save_bytes(&self, bytes: &[u8]) -> Result<(), PersistError> {
        let shown = self.path.display().to_string();
        let err = |source| PersistError::Write {
            path: shown.clone(),
            source,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            self.path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("state"),
            std::process::id()
        ));
        {
            let mut f = std::fs::File::create(&tmp).map_err(err)?;
            f.write_all(bytes).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(e)
        })?;
        // The rename is durable only once the directory entry is.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::new(dir.path(), "s.json");
        let empty: BTreeMap<String, u64> = f.load();
        assert!(empty.is_empty());
        let v = BTreeMap::from([("a".to_string(), 1u64)]);
        f.save(&v).unwrap();
        assert_eq!(f.load::<BTreeMap<String, u64>>(), v);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_corrupt_file_loads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.json"), b"{not json").unwrap();
        let f = StateFile::new(dir.path(), "s.json");
        assert!(f.load::<BTreeMap<String, u64>>().is_empty());
    }
}
