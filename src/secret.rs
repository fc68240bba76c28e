//! Token values and where they come from. Touches the environment, files and child processes.
//!
//! A [`Secret`] can only be read through [`Secret::expose`]; its `Debug` and `Display` print
//! `<secret>`, and its memory is zeroed on drop. Errors built here name the source (the
//! variable, the path, the command) and never its content.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
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
    let digest = Sha256::digest(value.as_bytes());
    let mut out = String::from("sha256:");
    for b in &digest[..6] {
        out.push_str(&format!("{b:02x}"));
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
    File(PathBuf),
    /// A command run without a shell; its standard output is the secret.
    Exec(ExecSource),
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
        let (raw, what) = match self {
            SecretSource::Env(name) => {
                let value =
                    std::env::var_os(name).ok_or_else(|| SecretError::EnvMissing(name.clone()))?;
                (
                    value.into_encoded_bytes(),
                    format!("environment variable {name}"),
                )
            }
            SecretSource::File(path) => (
                read_capped_file(path).await?,
                format!("secret file {}", path.display()),
            ),
            SecretSource::Exec(exec) => (
                run_exec(exec).await?,
                format!("secret command {:?}", exec.argv[0]),
            ),
        };
        let text = String::from_utf8(raw).map_err(|e| {
            // The bytes are the secret: wipe them before they are dropped.
            let mut bytes = e.into_bytes();
            zeroize::Zeroize::zeroize(&mut bytes);
            SecretError::NotText(what.clone())
        })?;
        let trimmed = text.trim_end_matches(['\n', '\r']);
        if trimmed.trim().is_empty() {
            return Err(SecretError::Empty(what));
        }
        let secret = Secret::new(trimmed);
        let mut text = text;
        zeroize::Zeroize::zeroize(&mut text);
        Ok(secret)
    }

    /// A description for logs and errors: the source, never the value.
    pub fn describe(&self) -> String {
        match self {
            SecretSource::Env(name) => format!("env {name}"),
            SecretSource::File(path) => format!("file {}", path.display()),
            SecretSource::Exec(exec) => format!("exec {:?}", exec.argv[0]),
        }
    }
}

async fn read_capped_file(path: &std::path::Path) -> Result<Vec<u8>, SecretError> {
    let shown = path.display().to_string();
    let io_err = |kind: std::io::ErrorKind| SecretError::File {
        path: shown.clone(),
        kind: kind.to_string(),
    };
    // Open, read and close in one trip to the blocking pool. `tokio::fs` makes a trip per
    // call (open, each read, the final empty read), and for files this small the thread
    // handoffs, not the reads, were most of a probe's CPU (see BENCHMARKS.md).
    let owned = path.to_path_buf();
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let mut buf = Vec::new();
        std::fs::File::open(&owned)?
            .take(MAX_SECRET_BYTES as u64 + 1)
            .read_to_end(&mut buf)?;
        Ok(buf)
    })
    .await;
    let mut buf = match read {
        Ok(Ok(buf)) => buf,
        Ok(Err(e)) => return Err(io_err(e.kind())),
        Err(_) => return Err(io_err(std::io::ErrorKind::Interrupted)),
    };
    if buf.len() > MAX_SECRET_BYTES {
        zeroize::Zeroize::zeroize(&mut buf);
        return Err(SecretError::FileTooLarge(shown));
    }
    Ok(buf)
}

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
    if let Some(path) = std::env::var_os("PATH")
        && !exec.env.contains_key("PATH")
    {
        cmd.env("PATH", path);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| SecretError::ExecSpawn(program.clone(), e.kind().to_string()))?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let work = async {
        let mut buf = Vec::new();
        let read = (&mut stdout)
            .take(MAX_SECRET_BYTES as u64 + 1)
            .read_to_end(&mut buf)
            .await;
        let status = child.wait().await;
        (buf, read, status)
    };
    let (mut buf, read, status) = tokio::time::timeout(exec.timeout, work)
        .await
        .map_err(|_| SecretError::ExecTimeout(program.clone(), exec.timeout))?;
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
                    (None, Some(path), None) if !exec_only => Ok(SecretSource::File(path)),
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
        let src = SecretSource::File(path.clone());
        assert_eq!(src.read().await.unwrap().expose(), "first");
        std::fs::write(&path, "second\r\n").unwrap();
        assert_eq!(src.read().await.unwrap().expose(), "second");
    }

    #[tokio::test]
    async fn file_source_errors_name_the_path_not_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, "x".repeat(MAX_SECRET_BYTES + 1)).unwrap();
        let err = SecretSource::File(big).read().await.unwrap_err();
        assert!(matches!(err, SecretError::FileTooLarge(_)), "{err}");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let err = SecretSource::File(empty).read().await.unwrap_err();
        assert!(err.to_string().contains("empty secret"), "{err}");
        let missing = SecretSource::File(dir.path().join("nope"))
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
}
