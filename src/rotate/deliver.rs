//! Delivery of a new value: a file replaced atomically, a hook given the value on its
//! standard input, one key of a Vault KV v2 secret ([`vault_kv`]) or of a Kubernetes Secret
//! ([`kubernetes_secret`]). Errors name the target
//! (a path, a program, a secret's path), never the value.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::schema::rotate::Deliver;

pub mod kubernetes_secret;
pub mod vault_kv;

/// Puts `value` where `target` says. `token` is passed to hooks as
/// `API_TOKEN_EXPORTER_TOKEN`, so one hook can serve several tokens.
pub async fn deliver(target: &Deliver, token: &str, value: &str) -> Result<(), String> {
    match target {
        Deliver::File(path) => {
            let path = path.clone();
            let mut bytes = value.as_bytes().to_vec();
            bytes.push(b'\n');
            let done = tokio::task::spawn_blocking(move || {
                let r = write_file(&path, &bytes);
                zeroize::Zeroize::zeroize(&mut bytes);
                r
            })
            .await;
            done.map_err(|_| "the file delivery task failed".to_string())?
        }
        Deliver::Exec { argv, timeout } => run_hook(argv, *timeout, token, value).await,
        Deliver::VaultKv(kv) => vault_kv::deliver(kv, value).await,
        Deliver::KubernetesSecret(k) => kubernetes_secret::deliver(k, value).await,
    }
}

/// Writes `bytes` to a temporary file beside `path`, fsyncs it, gives it the old file's mode
/// and owner (0600 and ours when there is no old file), renames it over `path` and fsyncs
/// the directory: a reader sees the old value or the new one, never half of one.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let shown = path.display();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("cannot deliver to {shown}: no file name"))?;
    let tmp = dir.join(format!(".{name}.rotate-{}", std::process::id()));
    let old = std::fs::metadata(path).ok();
    let _ = std::fs::remove_file(&tmp);
    let fail = |what: &str, e: std::io::Error| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot deliver to {shown}: {what}: {}", e.kind())
    };
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.mode(0o600);
    }
    let mut f = open.open(&tmp).map_err(|e| fail("create", e))?;
    f.write_all(bytes).map_err(|e| fail("write", e))?;
    #[cfg(unix)]
    if let Some(old) = &old {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        f.set_permissions(std::fs::Permissions::from_mode(old.mode() & 0o7777))
            .map_err(|e| fail("keep the mode", e))?;
        let (uid, gid) = (old.uid(), old.gid());
        let mine = f.metadata().map_err(|e| fail("stat", e))?;
        if mine.uid() != uid || mine.gid() != gid {
            rustix::fs::fchown(
                &f,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
            )
            .map_err(|e| fail("keep the owner", e.into()))?;
        }
    }
    f.sync_all().map_err(|e| fail("fsync", e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| fail("rename", e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Runs a hook without a shell, in a process group of its own (killed whole on timeout),
/// the value on its standard input; its output is discarded (it may echo the value).
async fn run_hook(
    argv: &[String],
    timeout: Duration,
    token: &str,
    value: &str,
) -> Result<(), String> {
    let program = &argv[0];
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(&argv[1..])
        .env_clear()
        .env("API_TOKEN_EXPORTER_TOKEN", token)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("delivery hook {program:?} failed to start: {}", e.kind()))?;
    let group = child.id();
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let work = async {
        // A hook that does not read its input gets a broken pipe: its exit status decides.
        let _ = stdin.write_all(value.as_bytes()).await;
        let _ = stdin.write_all(b"\n").await;
        drop(stdin);
        child.wait().await
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("delivery hook {program:?} exited with {status}")),
        Ok(Err(e)) => Err(format!("delivery hook {program:?} failed: {}", e.kind())),
        Err(_) => {
            #[cfg(unix)]
            if let Some(pid) = group.and_then(|g| rustix::process::Pid::from_raw(g as i32)) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            Err(format!(
                "delivery hook {program:?} did not finish within {timeout:?}"
            ))
        }
    }
}

#[cfg(test)]
mod tests;
