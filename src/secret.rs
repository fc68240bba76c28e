//! Token values and where they come from. Touches the environment, files and child processes.
//!
//! A [`Secret`] can only be read through [`Secret::expose`]; its `Debug` and `Display` print
//! `<secret>`, and its memory is zeroed on drop. Errors built here name the source (the
//! variable, the path, the command) and never its content.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

/// The most a secret file or an `exec` command may yield. Tokens are short; anything larger
/// is a mistake (a wrong path, a binary), and reading it whole would cost memory.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// How long an `exec` source may run when its config gives no `timeout`.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(10);

/// A token value. Redacted in `Debug`/`Display`, zeroed on drop.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(SecretString::from(value.into()))
    }

    /// The only way to the value: call it where the value is put on the wire.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// `sha256:` and the first 12 hex digits of the SHA-256 of the value: enough to tell a
    /// rotation, far too little to recover anything.
    pub fn fingerprint(&self) -> String {
        fingerprint(self.expose())
    }
}

/// See [`Secret::fingerprint`].
pub fn fingerprint(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(value.as_bytes());
    let mut out = String::with_capacity(19);
    out.push_str("sha256:");
    for b in &digest[..6] {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xf)] as char);
    }
    out
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// Where a secret is read from. Written in the config as `{env: NAME}`, `{file: PATH}` or
/// `{exec: [COMMAND, ARG...]}`; a plain string is refused so that no token lives in the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    /// An environment variable of the exporter's process.
    Env(String),
    /// A file, re-read at every use so rotations by an agent or a mounted secret are seen.
    File(FileSource),
    /// A command run without a shell; its standard output is the secret.
    Exec(ExecSource),
}

/// How long a [`Credential`] read is reused.
pub const CREDENTIAL_REUSE: Duration = Duration::from_secs(1);

/// The exporter's own credential for a provider (a client secret, a bearer token, its own
/// Vault or Kubernetes token). Every probe of the provider's tokens sends it, so reading its
/// source each time would read the same file (or run the same command) 10,000 times a round.
/// A read is reused for [`CREDENTIAL_REUSE`]: a rotated credential is in use within a second,
/// and a failed read is not reused (the next probe tries again).
pub struct Credential {
    source: SecretSource,
    last: std::sync::Mutex<Option<(std::time::Instant, Secret)>>,
}

impl Credential {
    pub fn new(source: SecretSource) -> Self {
        Credential {
            source,
            last: std::sync::Mutex::new(None),
        }
    }

    pub async fn read(&self) -> Result<Secret, SecretError> {
        if let Some((at, secret)) = &*self.lock()
            && at.elapsed() < CREDENTIAL_REUSE
        {
            return Ok(secret.clone());
        }
        let secret = self.source.read().await?;
        *self.lock() = Some((std::time::Instant::now(), secret.clone()));
        Ok(secret)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(std::time::Instant, Secret)>> {
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A secret file, and what the last read learnt about the filesystem it lives on.
///
/// A read that may block for long (a network or FUSE filesystem that stopped answering) must
/// not run on an async worker, or one hung mount would stall probing and `/metrics`. But a
/// trip to tokio's blocking pool costs two thread wake-ups, which for a 40-byte file was a
/// third of a probe's CPU. So the first read (and the first after a failed one) goes to the
/// blocking pool and asks the kernel which filesystem answered (`fstatfs`); when it is one
/// that lives in memory or on a local disk ([`is_local_filesystem`]), later reads run inline.
pub struct FileSource {
    path: PathBuf,
    /// [`UNKNOWN`], [`LOCAL`] or [`REMOTE`]. Not part of equality: it is a cache.
    filesystem: AtomicU8,
}

const UNKNOWN: u8 = 0;
const LOCAL: u8 = 1;
const REMOTE: u8 = 2;

impl FileSource {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileSource {
            path: path.into(),
            filesystem: AtomicU8::new(UNKNOWN),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Asks which filesystem holds the file (`statfs`, following symlinks), so that even the
    /// first read can run inline. Blocking: see [`classify_files`].
    fn classify(&self) {
        if self.filesystem.load(Ordering::Relaxed) == UNKNOWN {
            let class = filesystem_class(|| rustix::fs::statfs(&self.path));
            self.filesystem.store(class, Ordering::Relaxed);
        }
    }

    /// Whether the next read runs inline on the caller's thread.
    fn reads_inline(&self) -> bool {
        self.filesystem.load(Ordering::Relaxed) == LOCAL
    }

    async fn read(&self) -> Result<Vec<u8>, SecretError> {
        let shown = || self.path.display().to_string();
        let read = if self.reads_inline() {
            read_capped(&self.path, false).map(|(buf, _)| buf)
        } else {
            // Open, classify, read and close in one trip to the blocking pool.
            let owned = self.path.clone();
            match tokio::task::spawn_blocking(move || read_capped(&owned, true)).await {
                Ok(Ok((buf, class))) => {
                    self.filesystem.store(class, Ordering::Relaxed);
                    Ok(buf)
                }
                Ok(Err(e)) => Err(e),
                Err(_) => Err(std::io::ErrorKind::Interrupted.into()),
            }
        };
        let mut buf = read.map_err(|e| {
            // The file may have moved to another mount: ask again next time.
            self.filesystem.store(UNKNOWN, Ordering::Relaxed);
            SecretError::File {
                path: shown(),
                kind: e.kind().to_string(),
            }
        })?;
        if buf.len() > MAX_SECRET_BYTES {
            zeroize::Zeroize::zeroize(&mut buf);
            return Err(SecretError::FileTooLarge(shown()));
        }
        Ok(buf)
    }
}

/// Classifies every file source among `sources`. A file can only live on a mounted
/// filesystem: when every mount of the process's namespace is local or the kernel's own
/// (`/proc/self/mountinfo`, [`mounts_all_local`]), every file is local, whatever its path,
/// symlinks or bind mounts, and none is asked about. Otherwise each is (`statfs`, see
/// [`FileSource::classify`]). That blocks, and on a mount that hangs it hangs: run it on the
/// blocking pool, where it delays nothing (a probe that comes first reads its file on the
/// blocking pool as before).
pub fn classify_files<'a>(sources: impl IntoIterator<Item = &'a SecretSource>) {
    let mountinfo = if cfg!(target_os = "linux") {
        std::fs::read_to_string("/proc/self/mountinfo").ok()
    } else {
        None
    };
    classify_files_with(sources, mountinfo.as_deref());
}

fn classify_files_with<'a>(
    sources: impl IntoIterator<Item = &'a SecretSource>,
    mountinfo: Option<&str>,
) {
    let all_local = mountinfo.is_some_and(mounts_all_local);
    for source in sources {
        if let SecretSource::File(file) = source {
            if all_local {
                let _ = file.filesystem.compare_exchange(
                    UNKNOWN,
                    LOCAL,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            } else {
                file.classify();
            }
        }
    }
}

/// Whether every filesystem in a `/proc/PID/mountinfo` is one whose reads wait on nothing but
/// memory and a local disk: the local ones of [`is_local_filesystem`] and the kernel's own
/// (proc, sysfs, cgroups and the like). One NFS, SMB, FUSE, 9p, autofs or unknown mount, or
/// a text with no mount at all, and the answer is no.
fn mounts_all_local(mountinfo: &str) -> bool {
    const LOCAL: &[&str] = &[
        "tmpfs", "ramfs", "ext2", "ext3", "ext4", "xfs", "btrfs", "overlay", "f2fs", "zfs",
        "squashfs",
    ];
    const KERNEL: &[&str] = &[
        "proc",
        "sysfs",
        "cgroup",
        "cgroup2",
        "devtmpfs",
        "devpts",
        "mqueue",
        "securityfs",
        "debugfs",
        "tracefs",
        "bpf",
        "hugetlbfs",
        "pstore",
        "configfs",
        "fusectl",
        "binfmt_misc",
        "nsfs",
        "efivarfs",
        "selinuxfs",
    ];
    let mut mounts = 0;
    for line in mountinfo.lines().filter(|l| !l.trim().is_empty()) {
        // Optional fields end at a lone "-"; the filesystem type follows it.
        let fstype = line.split(' ').skip_while(|f| *f != "-").nth(1);
        match fstype {
            Some(t) if LOCAL.contains(&t) || KERNEL.contains(&t) => mounts += 1,
            _ => return false,
        }
    }
    mounts > 0
}

/// Reads at most one byte past [`MAX_SECRET_BYTES`]. With `classify` (the blocking pool's
/// read, of a file whose filesystem is not known to be local), also says which class of
/// filesystem the open file lives on, and reads until `read` says end of file. Without it
/// (the inline read of a file on a local filesystem), a read that does not fill the buffer is
/// taken as the end: on tmpfs, ext4, xfs, overlayfs and the rest of the local list a regular
/// file's read comes back short only there, and a 40-byte token then costs one `read`
/// instead of three (std's `read_to_end` probes, reads, and reads again for the end).
///
/// The first read goes to a buffer on the stack and the result is copied out at its length:
/// the 1 KiB zeroed heap buffer it replaces was a probe's costliest single allocation
/// (glibc serves that size from its large bins; 1,400 instructions against about 240 for
/// a probe's average allocation). Every buffer that held the secret is zeroed before it is
/// dropped.
fn read_capped(path: &Path, classify: bool) -> std::io::Result<(Vec<u8>, u8)> {
    use zeroize::Zeroize;
    const FIRST_READ: usize = 1024;
    let mut file = std::fs::File::open(path)?;
    let class = if classify {
        filesystem_class(|| rustix::fs::fstatfs(&file))
    } else {
        UNKNOWN
    };
    let mut first = [0u8; FIRST_READ];
    let n = match read_retrying(&mut file, &mut first) {
        Ok(n) => n,
        Err(e) => {
            first.zeroize();
            return Err(e);
        }
    };
    if n == 0 || (!classify && n < FIRST_READ) {
        let out = first[..n].to_vec();
        first.zeroize();
        return Ok((out, class));
    }
    // More may follow: go on in a heap buffer, grown by hand (`grown`) so that a smaller one
    // is zeroed rather than left in the heap.
    let mut buf = grown(&mut first, n);
    let mut len = n;
    loop {
        let n = match read_retrying(&mut file, &mut buf[len..]) {
            Ok(n) => n,
            Err(e) => {
                buf.zeroize();
                return Err(e);
            }
        };
        len += n;
        if n == 0 || len > MAX_SECRET_BYTES || (!classify && len < buf.len()) {
            break;
        }
        if len == buf.len() {
            buf = grown(&mut buf, len);
        }
    }
    buf.truncate(len);
    Ok((buf, class))
}

/// A buffer eight times `old`'s size (at most one byte past [`MAX_SECRET_BYTES`]) holding its
/// first `len` bytes; `old` is zeroed.
fn grown(old: &mut [u8], len: usize) -> Vec<u8> {
    let mut bigger = vec![0u8; (old.len() * 8).min(MAX_SECRET_BYTES + 1)];
    bigger[..len].copy_from_slice(&old[..len]);
    zeroize::Zeroize::zeroize(old);
    bigger
}

/// One `read`, retried when a signal interrupted it.
fn read_retrying(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// [`LOCAL`] or [`REMOTE`] from a `statfs`, [`UNKNOWN`] when it failed (or off Linux, where
/// every file stays on the blocking pool).
#[cfg(target_os = "linux")]
fn filesystem_class(statfs: impl FnOnce() -> rustix::io::Result<rustix::fs::StatFs>) -> u8 {
    match statfs() {
        Ok(fs) if statfs_is_local(&fs) => LOCAL,
        Ok(_) => REMOTE,
        Err(_) => UNKNOWN,
    }
}

#[cfg(not(target_os = "linux"))]
fn filesystem_class<T>(_: impl FnOnce() -> T) -> u8 {
    UNKNOWN
}

#[cfg(target_os = "linux")]
#[allow(clippy::unnecessary_cast)] // `f_type` is i64 here but u32 or i32 on other targets
fn statfs_is_local(fs: &rustix::fs::StatFs) -> bool {
    is_local_filesystem(fs.f_type as i64)
}

/// Filesystems whose reads do not wait on anything but memory and a local disk (the magic
/// numbers of `statfs(2)`). Everything else (NFS, SMB, FUSE, 9p, Ceph, and any filesystem
/// not listed) is read on the blocking pool.
fn is_local_filesystem(magic: i64) -> bool {
    const LOCAL_MAGIC: &[i64] = &[
        0x0102_1994, // tmpfs (Kubernetes and Docker secret mounts, /dev/shm, /run)
        0x8584_58f6, // ramfs
        0xef53,      // ext2, ext3, ext4
        0x5846_5342, // xfs
        0x9123_683e, // btrfs
        0x794c_7630, // overlayfs (container root filesystems)
        0xf2f5_2010, // f2fs
        0x2fc1_2fc1, // zfs
        0x7371_7368, // squashfs
    ];
    LOCAL_MAGIC.contains(&magic)
}

impl Clone for FileSource {
    fn clone(&self) -> Self {
        FileSource {
            path: self.path.clone(),
            filesystem: AtomicU8::new(self.filesystem.load(Ordering::Relaxed)),
        }
    }
}

impl PartialEq for FileSource {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl Eq for FileSource {}

impl fmt::Debug for FileSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.path.fmt(f)
    }
}

impl Serialize for FileSource {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.path.serialize(serializer)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExecSource {
    pub argv: Vec<String>,
    pub timeout: Duration,
    /// The command's whole environment besides `PATH`: nothing else is inherited.
    pub env: BTreeMap<String, String>,
}

/// What went wrong reading a secret. Never carries the secret's content.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    EnvMissing(String),
    #[error("cannot read secret file {path}: {kind}")]
    File { path: String, kind: String },
    #[error("secret file {0} is larger than {MAX_SECRET_BYTES} bytes")]
    FileTooLarge(String),
    #[error("secret command {0:?} failed to start: {1}")]
    ExecSpawn(String, String),
    #[error("secret command {0:?} exited with {1}")]
    ExecStatus(String, String),
    #[error("secret command {0:?} did not finish within {1:?}")]
    ExecTimeout(String, Duration),
    #[error("secret command {0:?} printed more than {MAX_SECRET_BYTES} bytes")]
    ExecTooLarge(String),
    #[error("{0} yielded an empty secret")]
    Empty(String),
    #[error("{0} yielded a secret that is not UTF-8 text")]
    NotText(String),
}

impl SecretSource {
    /// Reads the secret now. `file` and `exec` sources are read afresh every time.
    pub async fn read(&self) -> Result<Secret, SecretError> {
        let raw = match self {
            SecretSource::Env(name) => std::env::var_os(name)
                .ok_or_else(|| SecretError::EnvMissing(name.clone()))?
                .into_encoded_bytes(),
            SecretSource::File(file) => file.read().await?,
            SecretSource::Exec(exec) => run_exec(exec).await?,
        };
        let text = String::from_utf8(raw).map_err(|e| {
            // The bytes are the secret: wipe them before they are dropped.
            let mut bytes = e.into_bytes();
            zeroize::Zeroize::zeroize(&mut bytes);
            SecretError::NotText(self.what())
        })?;
        let trimmed = text.trim_end_matches(['\n', '\r']);
        if trimmed.trim().is_empty() {
            return Err(SecretError::Empty(self.what()));
        }
        let secret = Secret::new(trimmed);
        let mut text = text;
        zeroize::Zeroize::zeroize(&mut text);
        Ok(secret)
    }

    /// The source as errors name it (written only when there is an error: reads are per probe).
    fn what(&self) -> String {
        match self {
            SecretSource::Env(name) => format!("environment variable {name}"),
            SecretSource::File(file) => format!("secret file {}", file.path.display()),
            SecretSource::Exec(exec) => format!("secret command {:?}", exec.argv[0]),
        }
    }

    /// A description for logs and errors: the source, never the value.
    pub fn describe(&self) -> String {
        match self {
            SecretSource::Env(name) => format!("env {name}"),
            SecretSource::File(file) => format!("file {}", file.path.display()),
            SecretSource::Exec(exec) => format!("exec {:?}", exec.argv[0]),
        }
    }
}

/// How long the output of an `exec` helper that has exited may take to reach its end. Past
/// it, what still holds the pipe open is a process the helper left behind.
const EXEC_DRAIN_GRACE: Duration = Duration::from_millis(200);

/// Runs an `exec` helper in a process group of its own, so that everything it started can
/// be killed with it: on timeout, and when processes it left behind keep its output open
/// after it exited (a read until end of file would otherwise wait for them, up to the
/// timeout, and they would outlive it).
async fn run_exec(exec: &ExecSource) -> Result<Vec<u8>, SecretError> {
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
fn kill_group(group: Option<u32>) {
    #[cfg(unix)]
    if let Some(pid) = group.and_then(|g| rustix::process::Pid::from_raw(g as i32)) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    #[cfg(not(unix))]
    let _ = group;
}

/// The message for a token written inline. It must not quote the value.
pub const INLINE_SECRET_MESSAGE: &str = "a secret must not be written inline in the config file; \
     use {env: NAME}, {file: PATH} or {exec: [COMMAND, ARG...]}";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    env: Option<String>,
    file: Option<PathBuf>,
    exec: Option<Vec<String>>,
    #[serde(default, with = "crate::config::duration_opt")]
    timeout: Option<Duration>,
    #[serde(default)]
    exec_env: BTreeMap<String, String>,
}

impl<'de> Deserialize<'de> for SecretSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SourceVisitor;

        impl<'de> Visitor<'de> for SourceVisitor {
            type Value = SecretSource;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a secret source: {env: NAME}, {file: PATH} or {exec: [COMMAND, ARG...]}",
                )
            }

            // Every scalar is refused with the same message, which quotes nothing.
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Err(E::custom(INLINE_SECRET_MESSAGE))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Err(E::custom(INLINE_SECRET_MESSAGE))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Err(E::custom(INLINE_SECRET_MESSAGE))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Err(E::custom(INLINE_SECRET_MESSAGE))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Err(E::custom(INLINE_SECRET_MESSAGE))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let raw = RawSource::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let exec_only = raw.timeout.is_some() || !raw.exec_env.is_empty();
                match (raw.env, raw.file, raw.exec) {
                    (Some(name), None, None) if !exec_only => {
                        if name.is_empty() {
                            return Err(de::Error::custom("env: the variable name is empty"));
                        }
                        Ok(SecretSource::Env(name))
                    }
                    (None, Some(path), None) if !exec_only => {
                        Ok(SecretSource::File(FileSource::new(path)))
                    }
                    (None, None, Some(argv)) => {
                        if argv.is_empty() || argv[0].is_empty() {
                            return Err(de::Error::custom("exec: the command is empty"));
                        }
                        Ok(SecretSource::Exec(ExecSource {
                            argv,
                            timeout: raw.timeout.unwrap_or(DEFAULT_EXEC_TIMEOUT),
                            env: raw.exec_env,
                        }))
                    }
                    (None, None, None) => Err(de::Error::custom(
                        "a secret source needs one of env, file or exec",
                    )),
                    (_, _, None) if exec_only => Err(de::Error::custom(
                        "timeout and exec_env apply only to an exec source",
                    )),
                    _ => Err(de::Error::custom(
                        "a secret source takes exactly one of env, file or exec",
                    )),
                }
            }
        }

        deserializer.deserialize_any(SourceVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let s = Secret::new("canary-value-123");
        assert_eq!(format!("{s:?} {s}"), "<secret> <secret>");
        assert_eq!(s.expose(), "canary-value-123");
    }

    #[test]
    fn fingerprint_is_short_and_stable() {
        let f = fingerprint("abc");
        assert_eq!(f, "sha256:ba7816bf8f01");
        assert_ne!(fingerprint("abd"), f);
    }

    #[tokio::test]
    async fn file_source_trims_newline_and_rereads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, "first\n").unwrap();
        let src = SecretSource::File(FileSource::new(&path));
        assert_eq!(src.read().await.unwrap().expose(), "first");
        std::fs::write(&path, "second\r\n").unwrap();
        assert_eq!(src.read().await.unwrap().expose(), "second");
    }

    /// Both reads, the inline one that stops at a short read and the pool's that reads to the
    /// end, return every byte of files around the first buffer's size and its growth, and
    /// stop one byte past the cap.
    #[test]
    fn reads_return_whole_files_of_every_size_up_to_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        for size in [0, 1, 40, 1023, 1024, 1025, 8191, 8192, 8193, 65_536] {
            let content: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
            std::fs::write(&path, &content).unwrap();
            for classify in [false, true] {
                let (read, _) = read_capped(&path, classify).unwrap();
                assert!(read == content, "{size} bytes, classify {classify}");
            }
        }
        std::fs::write(&path, vec![b'x'; MAX_SECRET_BYTES * 2]).unwrap();
        for classify in [false, true] {
            let (read, _) = read_capped(&path, classify).unwrap();
            assert_eq!(read.len(), MAX_SECRET_BYTES + 1, "classify {classify}");
        }
        assert!(read_capped(&dir.path().join("absent"), false).is_err());
    }

    #[tokio::test]
    async fn file_source_errors_name_the_path_not_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, "x".repeat(MAX_SECRET_BYTES + 1)).unwrap();
        let err = SecretSource::File(FileSource::new(big))
            .read()
            .await
            .unwrap_err();
        assert!(matches!(err, SecretError::FileTooLarge(_)), "{err}");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let err = SecretSource::File(FileSource::new(empty))
            .read()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("empty secret"), "{err}");
        let missing = SecretSource::File(FileSource::new(dir.path().join("nope")))
            .read()
            .await
            .unwrap_err();
        assert!(missing.to_string().contains("nope"), "{missing}");
    }

    #[tokio::test]
    async fn exec_source_runs_without_shell_and_with_cleared_env() {
        // SAFETY-free: set_var is fine in a single test; the variable name is unique.
        let src = SecretSource::Exec(ExecSource {
            argv: vec![
                "sh".into(),
                "-c".into(),
                "printf '%s' \"${LEAK:-none}:$ONLY\"".into(),
            ],
            timeout: Duration::from_secs(5),
            env: BTreeMap::from([("ONLY".into(), "given".into())]),
        });
        // LEAK is not passed through: the child sees only PATH and the configured env.
        assert_eq!(src.read().await.unwrap().expose(), "none:given");
    }

    #[tokio::test]
    async fn exec_source_times_out_and_reports_status() {
        let slow = SecretSource::Exec(ExecSource {
            argv: vec!["sleep".into(), "5".into()],
            timeout: Duration::from_millis(100),
            env: BTreeMap::new(),
        });
        assert!(matches!(
            slow.read().await,
            Err(SecretError::ExecTimeout(..))
        ));
        let failing = SecretSource::Exec(ExecSource {
            argv: vec!["false".into()],
            timeout: Duration::from_secs(5),
            env: BTreeMap::new(),
        });
        assert!(matches!(
            failing.read().await,
            Err(SecretError::ExecStatus(..))
        ));
    }

    /// Whether `pid` is gone: no such process, or a zombie (a container's init may not reap
    /// it, but it runs nothing).
    #[cfg(target_os = "linux")]
    fn gone(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        }
    }

    #[cfg(target_os = "linux")]
    async fn pid_from(file: &std::path::Path) -> String {
        for _ in 0..100 {
            if let Ok(pid) = std::fs::read_to_string(file)
                && !pid.trim().is_empty()
            {
                return pid.trim().to_string();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the helper did not write its child's pid");
    }

    #[cfg(target_os = "linux")]
    async fn assert_gone_soon(pid: &str) {
        for _ in 0..100 {
            if gone(pid) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Do not leave it behind for the other tests either.
        let _ = std::process::Command::new("kill")
            .args(["-9", pid])
            .status();
        panic!("the helper's child {pid} outlived it");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn exec_timeout_kills_what_the_helper_started() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let hanging = SecretSource::Exec(ExecSource {
            argv: vec![
                "sh".into(),
                "-c".into(),
                // The grandchild's own output goes elsewhere: only the timeout can end this.
                "sleep 300 >/dev/null & echo $! > \"$0\"; sleep 300".into(),
                pidfile.display().to_string(),
            ],
            timeout: Duration::from_millis(500),
            env: BTreeMap::new(),
        });
        assert!(matches!(
            hanging.read().await,
            Err(SecretError::ExecTimeout(..))
        ));
        let pid = pid_from(&pidfile).await;
        assert_gone_soon(&pid).await;
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn exec_helper_that_exits_leaving_its_output_open_is_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let leaky = SecretSource::Exec(ExecSource {
            argv: vec![
                "sh".into(),
                "-c".into(),
                // The background sleep inherits stdout and keeps the pipe open.
                "printf canary-token; sleep 300 & echo $! > \"$0\"".into(),
                pidfile.display().to_string(),
            ],
            timeout: Duration::from_secs(60),
            env: BTreeMap::new(),
        });
        // Generous next to the grace, far below the 60 s the read waited before.
        let read = tokio::time::timeout(Duration::from_secs(15), leaky.read())
            .await
            .expect("the read waited for the helper's leftover child");
        assert_eq!(read.unwrap().expose(), "canary-token");
        let pid = pid_from(&pidfile).await;
        assert_gone_soon(&pid).await;
    }

    #[test]
    fn inline_values_are_refused_without_echo() {
        let err = serde_saphyr::from_str::<SecretSource>("ghp_canary").unwrap_err();
        let shown = format!("{err}");
        assert!(shown.contains("must not be written inline"), "{shown}");
        let msg = serde_saphyr::UserMessageFormatter;
        let plain = serde_saphyr::MessageFormatter::format_message(&msg, &err);
        assert!(!plain.contains("ghp_canary"), "{plain}");
    }

    #[test]
    fn map_forms_decode() {
        let env: SecretSource = serde_saphyr::from_str("{env: X}").unwrap();
        assert_eq!(env, SecretSource::Env("X".into()));
        let exec: SecretSource = serde_saphyr::from_str("{exec: [a, b], timeout: 2s}").unwrap();
        match exec {
            SecretSource::Exec(e) => {
                assert_eq!(e.argv, ["a", "b"]);
                assert_eq!(e.timeout, Duration::from_secs(2));
            }
            other => panic!("{other:?}"),
        }
        assert!(serde_saphyr::from_str::<SecretSource>("{env: X, file: y}").is_err());
        assert!(serde_saphyr::from_str::<SecretSource>("{file: y, timeout: 1s}").is_err());
    }

    /// A directory on a filesystem [`is_local_filesystem`] accepts: `/dev/shm` (tmpfs) where
    /// there is one, else the temporary directory.
    fn local_dir() -> tempfile::TempDir {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        let fs = rustix::fs::statfs(dir.path()).unwrap();
        assert!(
            statfs_is_local(&fs),
            "{} is on filesystem {:#x}, which the exporter would not read inline",
            dir.path().display(),
            fs.f_type
        );
        dir
    }

    #[test]
    fn mount_tables_with_only_local_filesystems() {
        let container = "\
22 1 0:21 / / rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
23 22 0:22 / /proc rw,nosuid - proc proc rw
24 22 0:23 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k
25 24 0:24 / /dev/pts rw - devpts devpts rw,gid=5
26 22 0:25 / /sys ro - sysfs sysfs ro
27 26 0:26 / /sys/fs/cgroup ro - cgroup2 cgroup rw
28 22 253:1 /var/lib/kubelet/pods/p/etc-hosts /etc/hosts rw shared:1 master:2 - ext4 /dev/vda1 rw
29 22 0:27 / /var/run/secrets/kubernetes.io/serviceaccount ro - tmpfs tmpfs rw,size=1G
";
        assert!(mounts_all_local(container));
        for remote in [
            "30 22 0:40 / /mnt/secrets rw - nfs4 server:/export rw,vers=4.2",
            "30 22 0:40 / /mnt/secrets rw - fuse.sshfs host:/s rw",
            "30 22 0:40 / /mnt/secrets rw - autofs systemd-1 rw",
            "30 22 0:40 / /mnt/secrets rw - cifs //server/share rw",
            "30 22 0:40 / /mnt/secrets rw - 9p drvfs rw",
            "a line that is not a mount",
        ] {
            assert!(
                !mounts_all_local(&format!("{container}{remote}\n")),
                "{remote}"
            );
        }
        assert!(!mounts_all_local(""));
    }

    /// With a mount table of local filesystems only, files are taken as local without a
    /// system call each (a path that does not exist is marked local all the same); with one
    /// network mount, each file is asked about (an existing one is local here, a missing one
    /// stays unknown and goes to the blocking pool).
    #[test]
    fn classification_asks_each_file_only_when_a_remote_mount_exists() {
        let dir = tempfile::tempdir().unwrap();
        let present = dir.path().join("present");
        std::fs::write(&present, "x").unwrap();
        let sources = || {
            [
                SecretSource::File(FileSource::new(dir.path().join("absent"))),
                SecretSource::File(FileSource::new(&present)),
            ]
        };
        let inline = |s: &[SecretSource; 2]| {
            s.iter()
                .map(|s| match s {
                    SecretSource::File(f) => f.reads_inline(),
                    _ => unreachable!(),
                })
                .collect::<Vec<_>>()
        };
        let local = "1 0 0:1 / / rw - ext4 /dev/vda1 rw\n";
        let all_local = sources();
        classify_files_with(&all_local, Some(local));
        assert_eq!(inline(&all_local), [true, true]);

        let with_nfs = sources();
        let nfs = format!("{local}2 1 0:2 / /mnt rw - nfs4 server:/e rw\n");
        classify_files_with(&with_nfs, Some(&nfs));
        let tmp_is_local = std::fs::read_to_string("/proc/self/mountinfo")
            .is_ok_and(|_| rustix::fs::statfs(dir.path()).is_ok_and(|fs| statfs_is_local(&fs)));
        assert_eq!(inline(&with_nfs), [false, tmp_is_local]);
    }

    #[test]
    fn local_filesystems_by_magic() {
        for local in [0x0102_1994, 0xef53, 0x5846_5342, 0x794c_7630] {
            assert!(is_local_filesystem(local), "{local:#x}");
        }
        // NFS, FUSE, SMB2, 9p, procfs: read on the blocking pool.
        for other in [0x6969, 0x6573_5546, 0xfe53_4d42, 0x0102_1997, 0x9fa0] {
            assert!(!is_local_filesystem(other), "{other:#x}");
        }
    }

    /// With the runtime's only blocking thread held, a file on a local filesystem is still
    /// read (inline, once its first read classified it), and a file on any other filesystem
    /// (procfs here) waits for the pool: it never runs on the async worker.
    #[test]
    fn local_files_are_read_inline_and_others_on_the_blocking_pool() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(1)
            .build()
            .unwrap();
        rt.block_on(async {
            let dir = local_dir();
            let path = dir.path().join("t");
            std::fs::write(&path, "local-value\n").unwrap();
            let local = FileSource::new(&path);
            let proc = FileSource::new("/proc/self/comm");
            assert!(!local.reads_inline());
            assert_eq!(local.read().await.unwrap(), b"local-value\n");
            assert!(
                local.reads_inline(),
                "a tmpfs file is read inline after its first read"
            );
            assert!(!proc.read().await.unwrap().is_empty());
            assert!(!proc.reads_inline(), "procfs is not on the local list");

            let (release, held) = std::sync::mpsc::channel::<()>();
            let blocker = tokio::task::spawn_blocking(move || held.recv());
            let wait = Duration::from_millis(300);
            let read = tokio::time::timeout(wait, local.read()).await;
            assert_eq!(read.unwrap().unwrap(), b"local-value\n");
            let mut pending = Box::pin(proc.read());
            assert!(
                tokio::time::timeout(wait, &mut pending).await.is_err(),
                "a procfs read finished while the blocking pool was held"
            );
            release.send(()).unwrap();
            blocker.await.unwrap().unwrap();
            assert!(!pending.await.unwrap().is_empty());
        });
    }

    #[tokio::test]
    async fn classify_files_lets_the_first_read_run_inline_and_a_failure_forgets() {
        let dir = local_dir();
        let path = dir.path().join("t");
        std::fs::write(&path, "v").unwrap();
        let source = SecretSource::File(FileSource::new(&path));
        let missing = SecretSource::File(FileSource::new(dir.path().join("nope")));
        // A mount table with a network mount: each file is asked about.
        let with_nfs = "1 0 0:1 / / rw - ext4 /dev/vda1 rw\n2 1 0:2 / /mnt rw - nfs4 s:/e rw\n";
        classify_files_with(
            [&source, &missing, &SecretSource::Env("X".into())],
            Some(with_nfs),
        );
        let SecretSource::File(file) = &source else {
            unreachable!()
        };
        assert!(file.reads_inline());
        let SecretSource::File(absent) = &missing else {
            unreachable!()
        };
        assert!(
            !absent.reads_inline(),
            "a file that cannot be found is not classified"
        );

        // The file goes away: the failed read names it, and the next read asks again.
        std::fs::remove_file(&path).unwrap();
        let err = source.read().await.unwrap_err();
        assert!(err.to_string().contains("cannot read secret file"), "{err}");
        assert!(!file.reads_inline());
        std::fs::write(&path, "w").unwrap();
        assert_eq!(source.read().await.unwrap().expose(), "w");
        assert!(file.reads_inline());
        // The cache is not part of what a source is.
        assert_eq!(
            source,
            SecretSource::File(FileSource::new(&path)),
            "equality ignores the filesystem cache"
        );
    }

    #[tokio::test]
    async fn a_credential_is_reused_for_a_second_and_a_failure_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cred");
        std::fs::write(&path, "first").unwrap();
        let cred = Credential::new(SecretSource::File(FileSource::new(&path)));
        assert_eq!(cred.read().await.unwrap().expose(), "first");
        std::fs::write(&path, "second").unwrap();
        assert_eq!(
            cred.read().await.unwrap().expose(),
            "first",
            "re-read within CREDENTIAL_REUSE"
        );
        tokio::time::sleep(CREDENTIAL_REUSE + Duration::from_millis(100)).await;
        assert_eq!(cred.read().await.unwrap().expose(), "second");

        let missing = Credential::new(SecretSource::File(FileSource::new(dir.path().join("n"))));
        assert!(missing.read().await.is_err());
        std::fs::write(dir.path().join("n"), "now-there").unwrap();
        assert_eq!(
            missing.read().await.unwrap().expose(),
            "now-there",
            "a failed read is tried again at once"
        );
    }
}
