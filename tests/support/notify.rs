//! Support for the notification tests: the notifier running on a store the test feeds (so a
//! test decides when a token expires or is renewed), a real SMTP server (aiosmtpd) with its
//! Maildir read back through Python's `email` package, and a throwaway CA for SMTP over TLS.
//! `support::notify` in the support tree.

use std::net::TcpStream;

use super::daemon::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::Value;

use api_token_exporter::config::Config;
use api_token_exporter::model::{Expiry, ProbeOutcome, Reason, TokenFacts};
use api_token_exporter::notify::{self, NotifyHandle, RetryPolicy, Stats};
use api_token_exporter::provider::ProbeRun;
use api_token_exporter::store::Store;

/// Fast retries, so retry tests take a second, not minutes.
pub const FAST_RETRY: RetryPolicy = RetryPolicy {
    initial: Duration::from_millis(100),
    max: Duration::from_secs(1),
};

/// A token inventory that needs no provider: the test records outcomes itself.
pub fn inventory(tokens: &[(&str, &str)]) -> String {
    let mut out = String::from("providers:\n  local:\n    kind: jwt\ntokens:\n");
    for (name, labels) in tokens {
        out.push_str(&format!(
            "  - name: {name}\n    provider: local\n    secret: {{env: NOTIFY_TEST_UNUSED}}\n    labels: {labels}\n"
        ));
    }
    out
}

/// The notifier on a store of its own.
pub struct Harness {
    pub config: Config,
    pub store: Arc<Store>,
    pub stats: Arc<Stats>,
    pub handle: NotifyHandle,
    pub storage: tempfile::TempDir,
}

impl Harness {
    /// Parses `yaml` (panicking with its errors) and starts the notifier on it, without
    /// policies.
    pub fn start(yaml: &str) -> Harness {
        Harness::start_with(yaml, notify::event::no_policies)
    }

    /// Like [`Harness::start`], with a policy source (the daemon's is
    /// `notify::event::policies`).
    pub fn start_with(yaml: &str, policies: notify::event::PolicySource) -> Harness {
        let config = Config::parse(yaml).unwrap_or_else(|e| panic!("config does not load:\n{e}"));
        let store = Arc::new(Store::new());
        store.reconcile(&config);
        let stats = Arc::new(Stats::default());
        let storage = tempfile::tempdir().unwrap();
        let handle = notify::spawn(
            store.clone(),
            &config.notify,
            storage.path(),
            stats.clone(),
            policies,
            FAST_RETRY,
            Default::default(),
        );
        Harness {
            config,
            store,
            stats,
            handle,
            storage,
        }
    }

    /// Records a probe of `token` now, as the scheduler would.
    pub fn record(&self, token: &str, outcome: ProbeOutcome, fingerprint: &str) {
        self.store.record(
            token,
            ProbeRun {
                outcome,
                fingerprint: Some(fingerprint.to_string()),
                duration: Duration::from_millis(5),
            },
            Timestamp::now(),
        );
    }

    pub fn state_file(&self) -> String {
        std::fs::read_to_string(self.storage.path().join("notifications.json")).unwrap_or_default()
    }
}

/// A valid answer with an expiry `secs` from now.
pub fn valid_for(secs: i64) -> ProbeOutcome {
    valid_with_scopes(secs, &["deploy"])
}

/// A valid answer with an expiry `secs` from now and these scopes.
pub fn valid_with_scopes(secs: i64, scopes: &[&str]) -> ProbeOutcome {
    let exp = Timestamp::from_second(Timestamp::now().as_second() + secs).unwrap();
    ProbeOutcome::valid(TokenFacts {
        expiry: Expiry::At(exp),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        ..TokenFacts::default()
    })
}

/// An invalid (revoked) answer.
pub fn revoked() -> ProbeOutcome {
    ProbeOutcome::invalid(Reason::Revoked, "the provider says the token was revoked")
}

pub const DAY: i64 = 86_400;

/// Polls `f` every 50 ms until it is true; fails the test after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// True when a program runs; otherwise reports the missing peer (a panic unless
/// `PEERS_OPTIONAL=1` outside CI) and returns false.
pub fn have(program: &str, arg: &str, what: &str) -> bool {
    let ok = Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok || !crate::support::peer_missing(what)
}

fn wait_for_port(port: u16, child: &mut Child, log: &Path) {
    let start = Instant::now();
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the peer exited with {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the peer did not listen on {port}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A real SMTP server (aiosmtpd) writing what it receives into a Maildir.
pub struct Smtp {
    pub port: u16,
    pub maildir: PathBuf,
    child: Child,
    dir: tempfile::TempDir,
}

impl Smtp {
    /// True when aiosmtpd is found (see [`aiosmtpd`]); otherwise reports the missing peer.
    pub fn available() -> bool {
        aiosmtpd().is_some()
            || !crate::support::peer_missing(
                "aiosmtpd (PyPI; .ci/run installs it into target/peers/venv)",
            )
    }

    /// `aiosmtpd -n -l 127.0.0.1:PORT -c aiosmtpd.handlers.Mailbox DIR [extra...]`.
    pub fn start(extra: &[&str]) -> Smtp {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("Maildir");
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        let log = dir.path().join("smtp.log");
        let port = free_port();
        let mut child = Command::new(aiosmtpd().expect("aiosmtpd is installed"))
            .args(["-n", "-l", &format!("127.0.0.1:{port}")])
            .args(extra)
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("smtp.err")).unwrap())
            .spawn()
            .unwrap();
        wait_for_port(port, &mut child, &dir.path().join("smtp.err"));
        Smtp {
            port,
            maildir,
            child,
            dir,
        }
    }

    /// Starts aiosmtpd from a Python script of ours (for what its command line cannot do,
    /// like SMTP AUTH). The script gets the port and the Maildir as arguments.
    pub fn start_script(script: &str, args: &[&str]) -> Smtp {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("Maildir");
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        let path = dir.path().join("server.py");
        std::fs::write(&path, script).unwrap();
        let port = free_port();
        let err = dir.path().join("smtp.err");
        let mut child = Command::new(venv_python())
            .arg(&path)
            .arg(port.to_string())
            .arg(&maildir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        wait_for_port(port, &mut child, &err);
        Smtp {
            port,
            maildir,
            child,
            dir,
        }
    }

    /// Every mail received so far, parsed by Python's `email` package.
    pub fn mails(&self) -> Vec<Mail> {
        let out = Command::new("python3")
            .arg("-c")
            .arg(PARSE_MAILDIR)
            .arg(&self.maildir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        list.into_iter().map(Mail).collect()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("smtp.err")).unwrap_or_default()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `aiosmtpd` script: on PATH, else in the venv `.ci/run` makes (`target/peers/venv`),
/// else in `/tmp/peers/venv`, so a plain `cargo test` finds it once `.ci/run` has run.
pub fn aiosmtpd() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("aiosmtpd"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        [
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/peers/venv/bin/aiosmtpd"),
            PathBuf::from("/tmp/peers/venv/bin/aiosmtpd"),
        ]
        .into_iter()
        .find(|p| p.is_file())
    })
}

/// The Python next to the `aiosmtpd` script, which can import aiosmtpd.
fn venv_python() -> PathBuf {
    aiosmtpd()
        .expect("aiosmtpd is installed")
        .parent()
        .unwrap()
        .join("python")
}

const PARSE_MAILDIR: &str = r#"
import email, email.policy, json, os, sys
out = []
for sub in ("new", "cur"):
    d = os.path.join(sys.argv[1], sub)
    for name in sorted(os.listdir(d)):
        raw = open(os.path.join(d, name), "rb").read()
        m = email.message_from_bytes(raw, policy=email.policy.default)
        parts = [{"type": p.get_content_type(), "body": p.get_content()}
                 for p in m.walk() if not p.is_multipart()]
        out.append({"headers": [[k, str(v)] for k, v in m.items()],
                    "type": m.get_content_type(), "parts": parts,
                    "raw": raw.decode("utf-8", "replace")})
print(json.dumps(out))
"#;

/// One received mail.
#[derive(Clone, Debug)]
pub struct Mail(pub Value);

impl Mail {
    pub fn header(&self, name: &str) -> Option<String> {
        self.0["headers"]
            .as_array()?
            .iter()
            .find(|h| h[0].as_str().is_some_and(|k| k.eq_ignore_ascii_case(name)))
            .and_then(|h| h[1].as_str())
            .map(str::to_string)
    }

    pub fn content_type(&self) -> &str {
        self.0["type"].as_str().unwrap_or("")
    }

    /// (content type, decoded body) of every leaf part.
    pub fn parts(&self) -> Vec<(String, String)> {
        self.0["parts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| {
                        (
                            p["type"].as_str().unwrap_or("").to_string(),
                            p["body"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn part(&self, content_type: &str) -> Option<String> {
        self.parts()
            .into_iter()
            .find(|(t, _)| t == content_type)
            .map(|(_, b)| b)
    }

    pub fn raw(&self) -> &str {
        self.0["raw"].as_str().unwrap_or("")
    }

    pub fn subject(&self) -> String {
        self.header("subject").unwrap_or_default()
    }
}

/// A throwaway CA and a server certificate for 127.0.0.1 and localhost, made with openssl.
pub struct TestCa {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCa {
    pub fn available() -> bool {
        have("openssl", "version", "openssl (Debian package openssl)")
    }

    pub fn new() -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        std::fs::write(
            p("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=notify test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        run(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        TestCa {
            ca: p("ca.pem"),
            cert: p("server.pem"),
            key: p("server.key"),
            _dir: dir,
        }
    }
}
