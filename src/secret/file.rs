//! File sources: the capped read, and the classification of the filesystem a secret file
//! lives on, which decides whether later reads may run on an async worker.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

use serde::Serialize;

use super::*;

/// A secret file, and what the last read learnt about the filesystem it lives on.
///
/// A read that may block for long (a network or FUSE filesystem that stopped answering) must
/// not run on an async worker, or one hung mount would stall probing and `/metrics`. But a
/// trip to tokio's blocking pool costs two thread wake-ups, more than reading a small file
/// from memory or a local disk. So the first read (and the first after a failed one) goes to the
/// blocking pool and asks the kernel which filesystem answered (`fstatfs`); when it is one
/// that lives in memory or on a local disk ([`is_local_filesystem`]), later reads run inline.
pub struct FileSource {
    pub(super) path: PathBuf,
    /// [`UNKNOWN`], [`LOCAL`] or [`REMOTE`]. Not part of equality: it is a cache.
    pub(super) filesystem: AtomicU8,
}

pub(super) const UNKNOWN: u8 = 0;
pub(super) const LOCAL: u8 = 1;
pub(super) const REMOTE: u8 = 2;

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
    pub(super) fn classify(&self) {
        if self.filesystem.load(Ordering::Relaxed) == UNKNOWN {
            let class = filesystem_class(|| rustix::fs::statfs(&self.path));
            self.filesystem.store(class, Ordering::Relaxed);
        }
    }

    /// Whether the next read runs inline on the caller's thread.
    pub(super) fn reads_inline(&self) -> bool {
        self.filesystem.load(Ordering::Relaxed) == LOCAL
    }

    pub(super) async fn read(&self) -> Result<Vec<u8>, SecretError> {
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

pub(super) fn classify_files_with<'a>(
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
pub(super) fn mounts_all_local(mountinfo: &str) -> bool {
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
/// The first read goes to a buffer on the stack and the result is copied out at its length,
/// so a probe makes no zeroed heap buffer of a size glibc serves from its large bins (a
/// costly allocation) for a secret of a few dozen bytes. Every buffer that held the secret is zeroed before it is
/// dropped.
pub(super) fn read_capped(path: &Path, classify: bool) -> std::io::Result<(Vec<u8>, u8)> {
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
pub(super) fn grown(old: &mut [u8], len: usize) -> Vec<u8> {
    let mut bigger = vec![0u8; (old.len() * 8).min(MAX_SECRET_BYTES + 1)];
    bigger[..len].copy_from_slice(&old[..len]);
    zeroize::Zeroize::zeroize(old);
    bigger
}

/// One `read`, retried when a signal interrupted it.
pub(super) fn read_retrying(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
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
pub(super) fn filesystem_class(
    statfs: impl FnOnce() -> rustix::io::Result<rustix::fs::StatFs>,
) -> u8 {
    match statfs() {
        Ok(fs) if statfs_is_local(&fs) => LOCAL,
        Ok(_) => REMOTE,
        Err(_) => UNKNOWN,
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) fn filesystem_class<T>(_: impl FnOnce() -> T) -> u8 {
    UNKNOWN
}

#[cfg(target_os = "linux")]
#[allow(clippy::unnecessary_cast)] // `f_type` is i64 here but u32 or i32 on other targets
pub(super) fn statfs_is_local(fs: &rustix::fs::StatFs) -> bool {
    is_local_filesystem(fs.f_type as i64)
}

/// Filesystems whose reads do not wait on anything but memory and a local disk (the magic
/// numbers of `statfs(2)`). Everything else (NFS, SMB, FUSE, 9p, Ceph, and any filesystem
/// not listed) is read on the blocking pool.
pub(super) fn is_local_filesystem(magic: i64) -> bool {
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
