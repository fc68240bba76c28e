//! `--web.config.file`: TLS, basic authentication and response headers, in the
//! exporter-toolkit format the Prometheus exporters share, for every endpoint.
//!
//! Reads the web config file and the files it names (certificate, key, client CA); re-reads
//! them when they change on disk, and on SIGHUP or `POST /-/reload`, so a rotated
//! certificate is served without a restart. Never logs a password, a key or a hash.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # relative paths are relative to this file
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: clients-ca.crt
//!   min_version: TLS12
//! basic_auth_users:
//!   prometheus: $2y$10$...         # bcrypt
//! http_server_config:
//!   headers:
//!     Strict-Transport-Security: max-age=31536000
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use rustls::ServerConfig;
use tokio::sync::Semaphore;

use crate::config::ConfigError;

mod file;
use file::*;
mod tls;
use tls::*;

mod guard;
pub use guard::*;
mod watch;
pub use watch::*;

/// How often the web config file and the files it names are checked for changes. A
/// certificate rotated by cert-manager or a Vault agent is served at most this long after
/// it lands on disk, without anyone sending a signal.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(5);

/// The largest web config, certificate, key or CA file read. Real ones are a few KiB.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Successful basic-auth checks remembered; past this the memory starts over, so a client
/// cycling through valid credentials cannot grow it without bound.
const AUTH_CACHE_ENTRIES: usize = 1024;

/// bcrypt checks admitted at once, the one running included. Past this a request is refused
/// at once with 503, so a flood of wrong passwords cannot build a queue that a real login
/// waits behind for seconds: an admitted check waits for at most this many minus one.
pub const AUTH_CHECKS_ADMITTED: usize = 8;

/// A refusal for a full queue is logged at most this often, with the count since the last
/// line, so a flood cannot flood the log too.
const BUSY_LOG_INTERVAL_SECONDS: i64 = 10;

/// The response headers a web config may set, as the exporter-toolkit allows them, with
/// the values each accepts (`None`: any value).
const ALLOWED_HEADERS: [(&str, Option<&[&str]>); 5] = [
    ("Strict-Transport-Security", None),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-XSS-Protection", None),
    ("Content-Security-Policy", None),
];

/// The web layer's settings, shared by the listener, the auth middleware and the watcher.
pub struct Web {
    /// `None` without `--web.config.file`: plain HTTP, no authentication.
    path: Option<PathBuf>,
    /// Whether the listener speaks TLS. Fixed at start: the socket cannot switch protocol
    /// under connected clients, so a reload that turns TLS on or off is refused.
    tls: bool,
    current: RwLock<Arc<Settings>>,
    /// The files' stamps when they were last read (or a read was attempted), so a bad file
    /// is reported once and read again only when it changes.
    seen: Mutex<Vec<Stamp>>,
    /// bcrypt is deliberately slow; one check at a time keeps a burst of wrong passwords
    /// from taking every core away from the probes. The permit is held by the blocking
    /// task itself, so a client that hangs up mid-check does not free it early.
    bcrypt_gate: Arc<Semaphore>,
    /// Places for checks admitted (running or waiting for the gate), [`AUTH_CHECKS_ADMITTED`]
    /// of them; a place is given back when the check ends, not when the client leaves.
    admitted: Arc<Semaphore>,
    stats: Arc<WebStats>,
}

/// What `/metrics` reports about the web layer: the last reload of the web config and the
/// requests basic auth refused.
#[derive(Debug)]
pub struct WebStats {
    /// Whether the last read of the web config was taken into use (true without one).
    pub last_reload_successful: AtomicBool,
    /// Unix seconds when the web config in use was read.
    pub last_reload_success: AtomicI64,
    refused: [AtomicU64; Refusal::ALL.len()],
    /// Busy refusals not yet logged, and when the last log line about them was written.
    busy_unlogged: AtomicU64,
    busy_logged_at: AtomicI64,
}

/// Why basic auth refused a request: the `reason` label of
/// `api_token_exporter_web_auth_refused_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Basic` header (401).
    Missing,
    /// An unknown user or a wrong password, which are told apart nowhere (401).
    Invalid,
    /// Too many password checks already admitted (503).
    Busy,
}

impl Refusal {
    pub const ALL: [Refusal; 3] = [Refusal::Missing, Refusal::Invalid, Refusal::Busy];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Invalid => "invalid",
            Refusal::Busy => "busy",
        }
    }
}

impl WebStats {
    pub fn new() -> WebStats {
        WebStats {
            last_reload_successful: AtomicBool::new(true),
            last_reload_success: AtomicI64::new(jiff::Timestamp::now().as_second()),
            refused: Default::default(),
            busy_unlogged: AtomicU64::new(0),
            busy_logged_at: AtomicI64::new(i64::MIN),
        }
    }

    /// Refusals so far, per reason, every reason present (zero included).
    pub fn refused(&self) -> [(Refusal, u64); Refusal::ALL.len()] {
        Refusal::ALL.map(|r| (r, self.refused[r as usize].load(Ordering::Relaxed)))
    }

    fn refuse(&self, reason: Refusal) {
        self.refused[reason as usize].fetch_add(1, Ordering::Relaxed);
        if reason != Refusal::Busy {
            return;
        }
        self.busy_unlogged.fetch_add(1, Ordering::Relaxed);
        let now = jiff::Timestamp::now().as_second();
        let last = self.busy_logged_at.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= BUSY_LOG_INTERVAL_SECONDS
            && self
                .busy_logged_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                refused = self.busy_unlogged.swap(0, Ordering::Relaxed),
                admitted = AUTH_CHECKS_ADMITTED,
                "basic auth busy: too many password checks waiting, requests refused with 503 \
                 (a flood of wrong credentials?); cached logins are still served"
            );
        }
    }

    fn reloaded(&self, ok: bool) {
        self.last_reload_successful.store(ok, Ordering::Relaxed);
        if ok {
            self.last_reload_success
                .store(jiff::Timestamp::now().as_second(), Ordering::Relaxed);
        }
    }
}

impl Default for WebStats {
    fn default() -> Self {
        Self::new()
    }
}

/// The outcome of basic auth for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Auth {
    Granted,
    Refused(Refusal),
}

/// One validated web config.
struct Settings {
    tls: Option<Arc<ServerConfig>>,
    /// User name -> bcrypt hash.
    users: HashMap<String, String>,
    /// Checked for unknown users, with the highest configured cost, so an unknown name
    /// takes as long as a wrong password (see `padding`).
    dummy_hash: String,
    /// Hashes of random passwords, one per cost from the lowest configured cost up to (not
    /// including) the highest. A wrong password for a user of cost `c` is also checked
    /// against those of cost `c..max`: 2^c + 2^c + ... + 2^(max-1) = 2^max rounds, what
    /// the dummy hash costs, so a user's cost does not tell a known name from an unknown one.
    padding: BTreeMap<u32, String>,
    /// Whether the file configures nothing (empty, comments only, or `{}`).
    empty: bool,
    /// The client certificate policy, and the lowest TLS version accepted.
    client_auth: ClientAuthType,
    min_version: Option<TlsVersion>,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// SHA-256 of (user, hash, password) for checks that succeeded; never the password.
    auth_cache: Mutex<HashSet<[u8; 32]>>,
    /// The certificate, key and CA files this config read, watched for changes.
    files: Vec<PathBuf>,
}

impl Settings {
    /// The dummy hashes a wrong password for `hash` is checked against too, so that it
    /// costs what the dummy hash costs (see `padding`).
    fn padding_for(&self, hash: &str) -> Vec<String> {
        let Ok(cost) = hash.parse::<bcrypt::HashParts>().map(|p| p.get_cost()) else {
            return Vec::new();
        };
        self.padding.range(cost..).map(|(_, h)| h.clone()).collect()
    }

    /// What a wrong password for `user` is checked against, in order: the user's hash (the
    /// dummy hash for an unknown name), then the padding of a known user's hash. The one
    /// place that decides the work, so that an unknown name costs what a known one does.
    fn checks_for(&self, user: &str) -> (bool, String, Vec<String>) {
        match self.users.get(user) {
            Some(hash) => (true, hash.clone(), self.padding_for(hash)),
            None => (false, self.dummy_hash.clone(), Vec::new()),
        }
    }

    fn open() -> Settings {
        Settings {
            tls: None,
            users: HashMap::new(),
            dummy_hash: String::new(),
            padding: BTreeMap::new(),
            empty: true,
            client_auth: ClientAuthType::NoClientCert,
            min_version: None,
            headers: Vec::new(),
            auth_cache: Mutex::new(HashSet::new()),
            files: Vec::new(),
        }
    }
}

impl Web {
    /// No web config: plain HTTP, every endpoint open.
    pub fn open() -> Arc<Web> {
        Arc::new(Web {
            path: None,
            tls: false,
            current: RwLock::new(Arc::new(Settings::open())),
            seen: Mutex::new(Vec::new()),
            bcrypt_gate: Arc::new(Semaphore::new(1)),
            admitted: Arc::new(Semaphore::new(AUTH_CHECKS_ADMITTED)),
            stats: Arc::default(),
        })
    }

    /// Reads and validates the web config file, and everything it names.
    pub fn load(path: &Path) -> Result<Arc<Web>, ConfigError> {
        let stamps = stamps(path, &[]);
        let settings = Settings::load(path)?;
        let mut seen = stamps;
        seen.extend(stamps_of(&settings.files));
        Ok(Arc::new(Web {
            path: Some(path.to_path_buf()),
            tls: settings.tls.is_some(),
            current: RwLock::new(Arc::new(settings)),
            seen: Mutex::new(seen),
            bcrypt_gate: Arc::new(Semaphore::new(1)),
            admitted: Arc::new(Semaphore::new(AUTH_CHECKS_ADMITTED)),
            stats: Arc::default(),
        }))
    }

    /// Loads `path` when given, else serves openly.
    pub fn from_flag(path: Option<&Path>) -> Result<Arc<Web>, ConfigError> {
        match path {
            Some(p) => Web::load(p),
            None => Ok(Web::open()),
        }
    }

    pub fn tls_enabled(&self) -> bool {
        self.tls
    }

    pub fn basic_auth_enabled(&self) -> bool {
        !self.current().users.is_empty()
    }

    /// The counters `/metrics` reports (`ExporterStatus::web`).
    pub fn stats(&self) -> Arc<WebStats> {
        self.stats.clone()
    }

    fn current(&self) -> Arc<Settings> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the files again when one of them changed since the last read (or always, with
    /// `force`). Returns whether new settings are now in use. On an error, or when the new
    /// file would lower the protection in use, the previous settings keep serving and
    /// `last_reload_successful` turns false. Blocking: file reads and bcrypt hashes.
    pub fn refresh(&self, force: bool) -> Result<bool, ConfigError> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        // Stamps are taken before reading, so a file that changes while it is read is read
        // again at the next check rather than missed.
        let now = stamps(path, &self.current().files);
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if !force && *seen == now {
                return Ok(false);
            }
            *seen = now;
        }
        let result = Settings::load(path).and_then(|settings| {
            let current = self.current();
            if let Some((field, message)) = weakens(&current, &settings, self.tls) {
                return Err(ConfigError::single(field, message, None).in_file(path));
            }
            // Successful logins stay remembered: the key holds the hash, so only users
            // whose hash is unchanged keep theirs, and a reload (every POST /-/reload is
            // one) does not send every scraper back to bcrypt, where a flood may be waiting.
            let remembered = current
                .auth_cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            *settings
                .auth_cache
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = remembered;
            Ok(settings)
        });
        self.stats.reloaded(result.is_ok());
        let settings = result?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(settings);
        Ok(true)
    }

    /// Checks `Authorization: Basic` against the configured users.
    async fn authorized(&self, settings: &Arc<Settings>, headers: &HeaderMap) -> Auth {
        // A request without credentials is refused without a bcrypt check: it reveals
        // nothing about the users, and costs an attacker nothing to send.
        let Some((user, password)) = basic_credentials(headers) else {
            return Auth::Refused(Refusal::Missing);
        };
        let (known, hash, padding) = settings.checks_for(&user);
        let key = cache_key(&user, &hash, &password);
        if known
            && settings
                .auth_cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&key)
        {
            return Auth::Granted;
        }
        // Admission is decided before waiting: past the bound the answer is an immediate
        // 503, never a place at the end of a queue that grows with the flood.
        let Ok(admitted) = self.admitted.clone().try_acquire_owned() else {
            return Auth::Refused(Refusal::Busy);
        };
        let Ok(permit) = self.bcrypt_gate.clone().acquire_owned().await else {
            return Auth::Refused(Refusal::Invalid);
        };
        let matches = tokio::task::spawn_blocking(move || {
            let _held = (permit, admitted);
            let ok = bcrypt::verify(password.as_slice(), &hash).unwrap_or(false);
            if !ok {
                for pad in &padding {
                    let _ = bcrypt::verify(password.as_slice(), pad);
                }
            }
            ok
        })
        .await
        .unwrap_or(false);
        if !(matches && known) {
            return Auth::Refused(Refusal::Invalid);
        }
        let mut cache = settings
            .auth_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if cache.len() >= AUTH_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key);
        Auth::Granted
    }
}

/// Why a reload from `old` to `new` would lower the protection in use, as (field, message):
/// a running exporter never does that, so a truncated or half-written file cannot open it.
/// Removing one user of several, rotating a certificate or a CA, or adding users is not
/// lowering. Deliberately lowering it takes a restart, which reads any valid file.
fn weakens(old: &Settings, new: &Settings, tls: bool) -> Option<(&'static str, &'static str)> {
    if new.empty && !old.empty {
        return Some((
            "",
            "configures nothing (empty or cut short?), which would turn off what the running web config sets up; the previous web config keeps serving (restart the exporter to serve without a web config)",
        ));
    }
    if new.tls.is_some() != tls {
        return Some((
            "tls_server_config",
            if tls {
                "TLS cannot be turned off while running: restart the exporter"
            } else {
                "TLS cannot be turned on while running: restart the exporter"
            },
        ));
    }
    if !old.users.is_empty() && new.users.is_empty() {
        return Some((
            "basic_auth_users",
            "basic auth cannot be turned off while running (the new file has no users); the previous web config keeps serving (restart the exporter to turn it off deliberately)",
        ));
    }
    if old.client_auth == ClientAuthType::RequireAndVerifyClientCert
        && new.client_auth != ClientAuthType::RequireAndVerifyClientCert
    {
        return Some((
            "tls_server_config.client_auth_type",
            "cannot be weakened from RequireAndVerifyClientCert while running; the previous web config keeps serving (restart the exporter to change it deliberately)",
        ));
    }
    if new.min_version.unwrap_or(TlsVersion::TLS12) < old.min_version.unwrap_or(TlsVersion::TLS12) {
        return Some((
            "tls_server_config.min_version",
            "cannot be lowered while running; the previous web config keeps serving (restart the exporter to lower it deliberately)",
        ));
    }
    None
}

impl Web {
    /// The TLS settings current now, for a connection that arrives now (the listener,
    /// `crate::expose::listen`); `None` without TLS.
    pub(crate) fn tls_config(&self) -> Option<Arc<ServerConfig>> {
        self.current().tls.clone()
    }
}

#[cfg(test)]
mod tests;
