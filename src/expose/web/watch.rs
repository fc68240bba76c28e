//! Keeps the web config current: re-reads it and the files it names when one changes on
//! disk (a rotated certificate), and on reload.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use super::*;

/// Checks every [`WATCH_INTERVAL`] whether the web config or a file it names changed,
/// and reads them again when one did.
pub fn spawn_watcher(web: Arc<Web>) {
    if web.path.is_none() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            reload(web.clone(), false).await;
        }
    });
}

/// Reads the web config again off the runtime's threads and logs the outcome: the
/// reloader calls it on SIGHUP and `POST /-/reload` (`force`), the watcher on changes.
pub async fn reload(web: Arc<Web>, force: bool) {
    if web.path.is_none() {
        return;
    }
    let path = web.path.clone().unwrap_or_default();
    match tokio::task::spawn_blocking(move || web.refresh(force)).await {
        Ok(Ok(true)) => tracing::info!(file = %path.display(), "web config reloaded"),
        Ok(Ok(false)) => {}
        Ok(Err(e)) => tracing::error!(
            error = %e,
            "web config not reloaded; the previous one keeps serving"
        ),
        Err(e) => tracing::error!(error = %e, "web config reload panicked"),
    }
}

/// What identifies a version of a file: a rotation changes at least one of these. The
/// path is followed through symlinks, as Kubernetes secret volumes swap a symlink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Stamp {
    pub(super) path: PathBuf,
    pub(super) seen: Option<(SystemTime, u64, u64)>,
}

pub(super) fn stamp(path: &Path) -> Stamp {
    let seen = std::fs::metadata(path).ok().map(|m| {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&m);
        #[cfg(not(unix))]
        let inode = 0;
        (
            m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            m.len(),
            inode,
        )
    });
    Stamp {
        path: path.to_path_buf(),
        seen,
    }
}

pub(super) fn stamps_of(files: &[PathBuf]) -> Vec<Stamp> {
    files.iter().map(|f| stamp(f)).collect()
}

pub(super) fn stamps(config: &Path, files: &[PathBuf]) -> Vec<Stamp> {
    let mut all = vec![stamp(config)];
    all.extend(stamps_of(files));
    all
}
