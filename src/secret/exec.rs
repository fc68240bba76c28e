//! Exec sources: run a helper that prints the secret, bounded in time and output, and
//! take down its whole process group when it overruns.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;
use tokio::io::AsyncReadExt;

use super::*;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExecSource {
    pub argv: Vec<String>,
    pub timeout: Duration,
    /// The command's whole environment besides `PATH`: nothing else is inherited.
    pub env: BTreeMap<String, String>,
}

/// How long the output of an `exec` helper that has exited may take to reach its end. Past
/// it, what still holds the pipe open is a process the helper left behind.
pub(super) const EXEC_DRAIN_GRACE: Duration = Duration::from_millis(200);

/// Runs an `exec` helper in a process group of its own, so that everything it started can
/// be killed with it: on timeout, and when processes it left behind keep its output open
/// after it exited (a read until end of file would otherwise wait for them, up to the
/// timeout, and they would outlive it).
pub(super) async fn run_exec(exec: &ExecSource) -> Result<Vec<u8>, SecretError> {
    let program = exec.argv[0].clone();
    let mut cmd = tokio::process::Command::new(&exec.argv[0]);
    cmd.args(&exec.argv[1..])
        .env_clear()
        .envs(&exec.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // stderr is discarded: a helper script may echo the token there, and we could not
        // tell, so nothing from the child reaches our logs.
        .stderr(Stdio::null())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    if let Some(path) = std::env::var_os("PATH")
        && !exec.env.contains_key("PATH")
    {
        cmd.env("PATH", path);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| SecretError::ExecSpawn(program.clone(), e.kind().to_string()))?;
    // The group's id is the child's pid (process_group(0)). Taken now: once the child is
    // reaped, `id()` is None.
    let group = child.id();
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let work = async {
        let mut buf = Vec::new();
        let (read, status) = {
            let mut limited = (&mut stdout).take(MAX_SECRET_BYTES as u64 + 1);
            let reading = limited.read_to_end(&mut buf);
            tokio::pin!(reading);
            enum First<R, S> {
                Read(R),
                Exit(S),
            }
            let first = tokio::select! {
                r = &mut reading => First::Read(r),
                s = child.wait() => First::Exit(s),
            };
            match first {
                First::Read(read) => {
                    // Past the size limit the helper may block writing: stop it now rather
                    // than wait for the timeout.
                    if matches!(read, Ok(n) if n > MAX_SECRET_BYTES) {
                        kill_group(group);
                    }
                    (read, child.wait().await)
                }
                First::Exit(status) => {
                    // Everything the helper wrote is in the pipe by now; a read that does not
                    // end soon waits for a process it left behind holding the pipe.
                    let read = match tokio::time::timeout(EXEC_DRAIN_GRACE, &mut reading).await {
                        Ok(read) => read,
                        Err(_) => {
                            kill_group(group);
                            reading.await
                        }
                    };
                    (read, status)
                }
            }
        };
        (buf, read, status)
    };
    let (mut buf, read, status) = match tokio::time::timeout(exec.timeout, work).await {
        Ok(done) => done,
        Err(_) => {
            // kill_on_drop would stop the helper alone; its children would run on.
            kill_group(group);
            let _ = tokio::time::timeout(Duration::from_secs(1), child.wait()).await;
            return Err(SecretError::ExecTimeout(program, exec.timeout));
        }
    };
    let fail = |buf: &mut Vec<u8>, e: SecretError| {
        zeroize::Zeroize::zeroize(buf);
        Err(e)
    };
    if let Err(e) = read {
        return fail(
            &mut buf,
            SecretError::ExecSpawn(program, e.kind().to_string()),
        );
    }
    if buf.len() > MAX_SECRET_BYTES {
        return fail(&mut buf, SecretError::ExecTooLarge(program));
    }
    match status {
        Ok(s) if s.success() => Ok(buf),
        Ok(s) => fail(&mut buf, SecretError::ExecStatus(program, s.to_string())),
        Err(e) => fail(
            &mut buf,
            SecretError::ExecSpawn(program, e.kind().to_string()),
        ),
    }
}

/// SIGKILL to an `exec` helper's process group. An error (the group is already gone) is
/// what we want anyway.
pub(super) fn kill_group(group: Option<u32>) {
    #[cfg(unix)]
    if let Some(pid) = group.and_then(|g| rustix::process::Pid::from_raw(g as i32)) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    #[cfg(not(unix))]
    let _ = group;
}
