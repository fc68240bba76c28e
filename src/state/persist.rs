//! State that must survive a restart, kept as JSON files under `--storage.path`.
//! Touches only that directory.
//!
//! Writes are atomic: the new content goes to a temporary file in the same directory, is
//! fsynced, renamed over the old file, and the directory is fsynced, so a crash (even
//! `kill -9` mid-write) leaves either the old file or the new one, never a torn one.
//! A file that cannot be read back (corrupt, from a future version) is moved aside as
//! `<name>.corrupt-<unix seconds>`, reported at error, and treated as empty rather than
//! stopping the exporter: this state improves answers, it is not needed to give them.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The most a state file may hold; far above what 100,000 tokens need.
pub const MAX_STATE_BYTES: u64 = 256 * 1024 * 1024;

/// How many `<name>.corrupt-<unix seconds>` backups of one state file are kept.
pub const MAX_CORRUPT_BACKUPS: usize = 3;

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

/// Makes sure `dir` is a directory the exporter can write, creating it when missing.
/// The daemon calls it at start: a storage path that is a file or is read-only otherwise
/// shows up only as a failed save every few seconds, long after the operator looked.
/// The error names the path and what is wrong with it.
pub fn check_storage_dir(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => return Err(format!("{shown} exists and is not a directory")),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {shown}: {e}"))?;
        }
        Err(e) => return Err(format!("cannot read {shown}: {e}")),
    }
    let probe = dir.join(format!(".write-check-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| format!("cannot write in {shown}: {e}"))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// One JSON file under the storage directory.
#[derive(Clone, Debug)]
pub struct StateFile {
    path: PathBuf,
    /// Written with mode 0600 from the first byte: the file may hold a token value.
    private: bool,
}

impl StateFile {
    pub fn new(dir: &Path, name: &str) -> Self {
        StateFile {
            path: dir.join(name),
            private: false,
        }
    }

    /// A state file only the exporter's user may read (mode 0600), for state that holds a
    /// value (a rotation's newly issued token, kept until it is delivered and tested).
    pub fn private(dir: &Path, name: &str) -> Self {
        StateFile {
            path: dir.join(name),
            private: true,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file; `T::default()` when it does not exist or cannot be decoded. A file
    /// that exists but cannot be decoded is renamed to `<name>.corrupt-<unix seconds>` beside
    /// it and reported at error: the next save would otherwise overwrite it, and what it held
    /// (a ledger, notification state) is gone for good unless someone can look at it.
    pub fn load<T: DeserializeOwned + Default>(&self) -> T {
        self.load_inner(true)
    }

    /// As [`StateFile::load`], but never renames or writes anything: for a reader (`check`)
    /// that may run beside the daemon that owns the file.
    pub fn load_read_only<T: DeserializeOwned + Default>(&self) -> T {
        self.load_inner(false)
    }

    fn load_inner<T: DeserializeOwned + Default>(&self, keep_bad: bool) -> T {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return T::default(),
            Err(e) => {
                tracing::warn!(file = %self.path.display(), error = %e, "cannot read state file; starting empty");
                return T::default();
            }
        };
        if meta.len() > MAX_STATE_BYTES {
            self.set_aside(keep_bad, "state file is too large".to_string());
            return T::default();
        }
        match std::fs::read(&self.path).map(|b| serde_json::from_slice::<T>(&b)) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                // serde_json quotes a string it did not expect; the state holds no token, but
                // what it read stays out of the log all the same, as in every config error.
                let problem = crate::schema::scrub(&e.to_string());
                self.set_aside(keep_bad, format!("state file is not valid: {problem}"));
                T::default()
            }
            Err(e) => {
                tracing::warn!(file = %self.path.display(), error = %e, "cannot read state file; starting empty");
                T::default()
            }
        }
    }

    /// Moves an unreadable file aside (when `keep_bad`) and logs at error where it went.
    fn set_aside(&self, keep_bad: bool, problem: String) {
        if !keep_bad {
            tracing::error!(file = %self.path.display(), problem, "state file cannot be used; ignoring it (read-only, left in place)");
            return;
        }
        let backup = self.corrupt_path(jiff::Timestamp::now().as_second());
        match std::fs::rename(&self.path, &backup) {
            Ok(()) => {
                tracing::error!(
                    file = %self.path.display(),
                    backup = %backup.display(),
                    problem,
                    "state file cannot be used; kept it as the backup and starting empty"
                );
                self.prune_backups();
            }
            Err(e) => tracing::error!(
                file = %self.path.display(),
                backup = %backup.display(),
                problem,
                error = %e,
                "state file cannot be used and cannot be moved aside; starting empty, the next save replaces it"
            ),
        }
    }

    /// `<name>.corrupt-<unix seconds>`, with `.1`, `.2`... if that name is taken (two bad
    /// loads within a second must not overwrite the first backup).
    fn corrupt_path(&self, unix: i64) -> PathBuf {
        let base = format!("{}.corrupt-{unix}", self.file_name());
        let dir = self.dir();
        let mut candidate = dir.join(&base);
        let mut n = 1;
        while candidate.exists() {
            candidate = dir.join(format!("{base}.{n}"));
            n += 1;
        }
        candidate
    }

    /// Keeps the newest [`MAX_CORRUPT_BACKUPS`] backups of this file: a file corrupted again
    /// at every start must not fill the disk.
    fn prune_backups(&self) {
        let prefix = format!("{}.corrupt-", self.file_name());
        let Ok(entries) = std::fs::read_dir(self.dir()) else {
            return;
        };
        let mut backups: Vec<(std::time::SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(&prefix))
            })
            .map(|e| {
                let at = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                (at, e.path())
            })
            .collect();
        if backups.len() <= MAX_CORRUPT_BACKUPS {
            return;
        }
        backups.sort();
        for (_, old) in &backups[..backups.len() - MAX_CORRUPT_BACKUPS] {
            if std::fs::remove_file(old).is_ok() {
                tracing::warn!(backup = %old.display(), "removed an old state file backup");
            }
        }
    }

    fn file_name(&self) -> String {
        self.path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("state")
            .to_string()
    }

    fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
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
            let mut open = std::fs::OpenOptions::new();
            open.write(true).create(true).truncate(true);
            #[cfg(unix)]
            if self.private {
                use std::os::unix::fs::OpenOptionsExt;
                open.mode(0o600);
                // The mode applies only to a new file: one left by a crash goes first.
                let _ = std::fs::remove_file(&tmp);
            }
            let mut f = open.open(&tmp).map_err(err)?;
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
mod tests;
