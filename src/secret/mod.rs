//! Token values and where they come from. Touches the environment, files and child processes.
//!
//! A [`Secret`] can only be read through [`Secret::expose`]; its `Debug` and `Display` print
//! `<secret>`, and its memory is zeroed on drop. Errors built here name the source (the
//! variable, the path, the command) and never its content.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};

mod file;
pub use file::*;
mod exec;
pub use exec::*;
mod decode;
pub use decode::*;
mod memory;
pub use memory::*;

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
    /// A value a source read and holds (never written in a config): see [`MemorySource`].
    Memory(MemorySource),
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
            SecretSource::Memory(memory) => memory.bytes(),
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
            SecretSource::Memory(_) => "a secret held in memory".to_string(),
        }
    }
}

#[cfg(test)]
mod tests;
