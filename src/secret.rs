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
    #[serde(default, with = "crate::model::duration::duration_opt")]
    timeout: Option<Duration>,
    #[serde(default)]
    exec_env: BTreeMap<String, String>,
}

/// The message for a key a secret source does not know. serde's own message quotes the key,
/// and a token pasted as a key (`secret: {ghp_...: x}`) would be echoed in `--config.check`,
/// the log and the `/-/reload` answer; this one quotes nothing.
pub const UNKNOWN_SECRET_KEY_MESSAGE: &str = "a secret source takes the keys env, file, exec, \
     timeout and exec_env; another key is not shown, as it may be a token";

const SOURCE_KEYS: [&str; 5] = ["env", "file", "exec", "timeout", "exec_env"];

/// A secret source's keys, each checked against [`SOURCE_KEYS`] before serde sees it.
struct KnownKeys<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for KnownKeys<A> {
    type Error = A::Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(KnownKey(seed))
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(seed)
    }
}

struct KnownKey<K>(K);

impl<'de, K: de::DeserializeSeed<'de>> de::DeserializeSeed<'de> for KnownKey<K> {
    type Value = K::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<K::Value, D::Error> {
        let key =
            String::deserialize(d).map_err(|_| de::Error::custom(UNKNOWN_SECRET_KEY_MESSAGE))?;
        if !SOURCE_KEYS.contains(&key.as_str()) {
            return Err(de::Error::custom(UNKNOWN_SECRET_KEY_MESSAGE));
        }
        self.0
            .deserialize(de::IntoDeserializer::<D::Error>::into_deserializer(key))
    }
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
                let raw =
                    RawSource::deserialize(de::value::MapAccessDeserializer::new(KnownKeys(map)))?;
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
mod tests;
