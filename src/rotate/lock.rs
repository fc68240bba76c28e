//! The lock that keeps two processes (the daemon and a `rotate` run, or two daemons sharing
//! a storage directory) from rotating at the same time: `flock` on `rotation.lock` beside
//! `rotation.json`. The kernel releases it when the holder exits, kill -9 included, so a
//! crash never leaves it held.

use std::path::Path;

/// Held while a rotation's steps run and `rotation.json` is read and written.
pub struct RotationLock {
    _file: std::fs::File,
}

/// The lock file's name under `--storage.path`.
pub const LOCK_FILE: &str = "rotation.lock";

impl RotationLock {
    /// Takes the lock if free; `Ok(None)` when another process holds it.
    pub fn try_take(dir: &Path) -> Result<Option<RotationLock>, String> {
        let path = dir.join(LOCK_FILE);
        let mut open = std::fs::OpenOptions::new();
        open.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            open.mode(0o600);
        }
        let file = open
            .open(&path)
            .map_err(|e| format!("cannot open {}: {}", path.display(), e.kind()))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(RotationLock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(format!("cannot lock {}: {e}", path.display())),
        }
    }

    /// Waits up to `wait` for the lock (for the `rotate` subcommand, beside a daemon).
    pub async fn take(dir: &Path, wait: std::time::Duration) -> Result<RotationLock, String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(lock) = RotationLock::try_take(dir)? {
                return Ok(lock);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "another process holds {} (a rotation is running)",
                    dir.join(LOCK_FILE).display()
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}
