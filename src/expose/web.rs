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
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig};
use serde::Deserialize;
use serde_saphyr::{MessageFormatter, Spanned};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::config::{ConfigError, ConfigIssue};

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
/// waits behind for seconds: an admitted check waits for at most this many others.
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
    /// Checks admitted (running or waiting for the gate), bounded by
    /// [`AUTH_CHECKS_ADMITTED`]; released when the check ends, not when the client leaves.
    admitted: Arc<AtomicUsize>,
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
            admitted: Arc::default(),
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
            admitted: Arc::default(),
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
                return Err(file_error(path, field, message, None));
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
        let known = settings.users.get(&user);
        let hash = known.unwrap_or(&settings.dummy_hash).clone();
        let key = cache_key(&user, &hash, &password);
        if known.is_some()
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
        let Some(admitted) = Admitted::take(&self.admitted) else {
            return Auth::Refused(Refusal::Busy);
        };
        let Ok(permit) = self.bcrypt_gate.clone().acquire_owned().await else {
            return Auth::Refused(Refusal::Invalid);
        };
        let padding = match known {
            Some(_) => settings.padding_for(&hash),
            None => Vec::new(),
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
        if !(matches && known.is_some()) {
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

/// A place among the [`AUTH_CHECKS_ADMITTED`] checks admitted, given back when dropped.
struct Admitted(Arc<AtomicUsize>);

impl Admitted {
    fn take(count: &Arc<AtomicUsize>) -> Option<Admitted> {
        let before = count.fetch_add(1, Ordering::AcqRel);
        let admitted = Admitted(count.clone());
        (before < AUTH_CHECKS_ADMITTED).then_some(admitted)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
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

/// Wraps every route of `router`, the fallback included, in basic auth (when users are
/// configured) and the configured response headers (on every answer, refusals included).
pub fn protect(router: Router, web: Arc<Web>) -> Router {
    router.layer(middleware::from_fn_with_state(web, guard))
}

async fn guard(State(web): State<Arc<Web>>, request: Request, next: Next) -> Response {
    let settings = web.current();
    let auth = if settings.users.is_empty() {
        Auth::Granted
    } else {
        web.authorized(&settings, request.headers()).await
    };
    let mut response = match auth {
        Auth::Granted => next.run(request).await,
        Auth::Refused(reason) => {
            web.stats.refuse(reason);
            match reason {
                Refusal::Busy => busy(),
                Refusal::Missing | Refusal::Invalid => unauthorized(),
            }
        }
    };
    let headers = response.headers_mut();
    for (name, value) in &settings.headers {
        headers.insert(name.clone(), value.clone());
    }
    response
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"api-token-exporter\", charset=\"UTF-8\""),
            ),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
        ],
        Body::from("Unauthorized\n"),
    )
        .into_response()
}

/// 503 for a request that found every password-check place taken. Retry-After: the
/// admitted checks take a fraction of a second each.
fn busy() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::RETRY_AFTER, HeaderValue::from_static("1")),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
        ],
        Body::from("Too many password checks in progress; retry shortly\n"),
    )
        .into_response()
}

/// The user and password of an `Authorization: Basic` header. The password is zeroed when
/// dropped.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, Zeroizing<Vec<u8>>)> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, encoded) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let decoded = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(encoded.trim_ascii())
            .ok()?,
    );
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, Zeroizing::new(decoded[colon + 1..].to_vec())))
}

/// The cache key of a successful check: a digest of the user, the hash it was checked
/// against (so a changed hash forgets old passwords) and the password, each
/// length-prefixed so no two triples collide by concatenation.
fn cache_key(user: &str, hash: &str, password: &[u8]) -> [u8; 32] {
    let mut sha = Sha256::new();
    for part in [user.as_bytes(), hash.as_bytes(), password] {
        sha.update((part.len() as u64).to_be_bytes());
        sha.update(part);
    }
    sha.finalize().into()
}

impl Web {
    /// The TLS settings current now, for a connection that arrives now (the listener,
    /// `crate::expose::listen`); `None` without TLS.
    pub(crate) fn tls_config(&self) -> Option<Arc<ServerConfig>> {
        self.current().tls.clone()
    }
}

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

// ---------------------------------------------------------------------------------------
// The file format.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<Spanned<String>>,
    key_file: Option<Spanned<String>>,
    client_ca_file: Option<Spanned<String>>,
    client_auth_type: Option<Spanned<ClientAuthType>>,
    min_version: Option<Spanned<TlsVersion>>,
    max_version: Option<Spanned<TlsVersion>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
}

/// The exporter-toolkit's client certificate policies, named as Go's `tls.ClientAuthType`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
enum ClientAuthType {
    #[default]
    NoClientCert,
    /// Ask for a certificate, accept any or none: not authentication.
    RequestClientCert,
    /// Require a certificate, any: not authentication either. `RequireClientCert` is the
    /// toolkit's older name.
    #[serde(alias = "RequireClientCert")]
    RequireAnyClientCert,
    /// Verify a certificate against `client_ca_file` when one is sent.
    VerifyClientCertIfGiven,
    /// Require a certificate that verifies against `client_ca_file`.
    RequireAndVerifyClientCert,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
enum TlsVersion {
    TLS10,
    TLS11,
    TLS12,
    TLS13,
}

impl Settings {
    fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = read_limited(path)
            .map_err(|e| file_error(path, "", format!("cannot read: {e}"), None))?;
        let text =
            String::from_utf8(text).map_err(|_| file_error(path, "", "not UTF-8 text", None))?;
        let raw = decode(&text).map_err(|mut e| {
            e.file = Some(path.display().to_string());
            e
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        raw.validate(dir).map_err(|issues| ConfigError {
            file: Some(path.display().to_string()),
            issues,
        })
    }
}

/// Decodes YAML into the raw structs, with the field path and line of a failure, as the
/// inventory file does.
fn decode(text: &str) -> Result<RawWebConfig, ConfigError> {
    // An empty file (or one with only comments) means "no TLS, no auth", as in the toolkit.
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(RawWebConfig::default());
    }
    let mut path = String::new();
    // The inventory's options: no snippets (the source holds password hashes) and the same
    // bounds on alias and merge-key expansion, so a small web config cannot blow up either.
    let options = crate::config::decode_options();
    let result = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        let mut track = serde_path_to_error::Track::new();
        let tracked = serde_path_to_error::Deserializer::new(de, &mut track);
        let out = RawWebConfig::deserialize(tracked);
        if out.is_err() {
            path = track.path().to_string();
        }
        out
    });
    result.map_err(|err| {
        let message =
            crate::config::scrub(&serde_saphyr::UserMessageFormatter.format_message(&err));
        let path = path.replace(".value", "");
        let path = if path == "." || path.contains('?') {
            String::new()
        } else {
            path
        };
        ConfigError {
            file: None,
            issues: vec![ConfigIssue {
                path,
                message,
                line: err.location().map(|l| l.line()),
            }],
        }
    })
}

fn file_error(
    path: &Path,
    field: &str,
    message: impl Into<String>,
    line: Option<u64>,
) -> ConfigError {
    ConfigError {
        file: Some(path.display().to_string()),
        issues: vec![ConfigIssue {
            path: field.to_string(),
            message: message.into(),
            line,
        }],
    }
}

/// Collects every problem of a file so one pass reports them all.
#[derive(Default)]
struct Issues(Vec<ConfigIssue>);

impl Issues {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>, line: Option<u64>) {
        self.0.push(ConfigIssue {
            path: path.into(),
            message: message.into(),
            line,
        });
    }
}

fn line<T>(s: &Spanned<T>) -> Option<u64> {
    Some(s.referenced.line())
}

impl RawWebConfig {
    fn validate(self, dir: &Path) -> Result<Settings, Vec<ConfigIssue>> {
        let mut issues = Issues::default();
        let mut files = Vec::new();

        let tls = self
            .tls_server_config
            .as_ref()
            .and_then(|t| t.build(dir, &mut files, &mut issues));

        let empty = self.tls_server_config.is_none()
            && self.http_server_config.is_none()
            && self.basic_auth_users.is_empty();
        let client_auth = self
            .tls_server_config
            .as_ref()
            .and_then(|t| t.client_auth_type.as_ref())
            .map(|a| a.value)
            .unwrap_or_default();
        let min_version = self
            .tls_server_config
            .as_ref()
            .and_then(|t| t.min_version.as_ref())
            .map(|v| v.value);

        let mut users = HashMap::new();
        let mut costs = Vec::new();
        for (user, hash) in &self.basic_auth_users {
            let field = format!("basic_auth_users.{user}");
            if user.contains(':') {
                // Basic auth splits "user:password" at the first colon.
                issues.push(&field, "a user name cannot contain ':'", line(hash));
                continue;
            }
            // The value is never quoted: a plain password put here by mistake stays out of
            // the logs.
            match hash.value.parse::<bcrypt::HashParts>() {
                Ok(parts) => {
                    costs.push(parts.get_cost());
                    users.insert(user.clone(), hash.value.clone());
                }
                Err(_) => issues.push(
                    &field,
                    "not a bcrypt hash (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)",
                    line(hash),
                ),
            }
        }

        let mut headers = Vec::new();
        let raw_headers = self
            .http_server_config
            .map(|h| h.headers)
            .unwrap_or_default();
        for (name, value) in &raw_headers {
            let field = format!("http_server_config.headers.{name}");
            let Some((canonical, allowed)) = ALLOWED_HEADERS
                .iter()
                .find(|(h, _)| h.eq_ignore_ascii_case(name))
            else {
                let names: Vec<&str> = ALLOWED_HEADERS.iter().map(|(h, _)| *h).collect();
                issues.push(
                    &field,
                    format!("this header cannot be set (allowed: {})", names.join(", ")),
                    line(value),
                );
                continue;
            };
            if let Some(values) = allowed
                && !values.iter().any(|v| v.eq_ignore_ascii_case(&value.value))
            {
                issues.push(
                    &field,
                    format!("must be one of: {}", values.join(", ")),
                    line(value),
                );
                continue;
            }
            match HeaderValue::from_str(&value.value) {
                Ok(v) => headers.push((HeaderName::from_static_lower(canonical), v)),
                Err(_) => issues.push(&field, "not a valid header value", line(value)),
            }
        }

        if !issues.0.is_empty() {
            return Err(issues.0);
        }
        // Unknown users are checked against a hash of the highest configured cost, and a
        // wrong password for a cheaper user is padded up to that cost, so the answer takes
        // as long whether or not the name exists, whatever each user's cost.
        let dummy = |cost: u32| {
            let random: [u8; 32] = rand::random();
            bcrypt::hash(random, cost).unwrap_or_default()
        };
        let (min_cost, max_cost) = (costs.iter().min(), costs.iter().max());
        let dummy_hash = max_cost.map(|&c| dummy(c)).unwrap_or_default();
        let padding = match (min_cost, max_cost) {
            (Some(&low), Some(&high)) => (low..high).map(|c| (c, dummy(c))).collect(),
            _ => BTreeMap::new(),
        };
        Ok(Settings {
            tls,
            users,
            dummy_hash,
            padding,
            empty,
            client_auth,
            min_version,
            headers,
            auth_cache: Mutex::new(HashSet::new()),
            files,
        })
    }
}

/// `HeaderName::from_static` wants lower case; the allowed names are ours and valid.
trait FromStaticLower {
    fn from_static_lower(name: &str) -> HeaderName;
}

impl FromStaticLower for HeaderName {
    fn from_static_lower(name: &str) -> HeaderName {
        HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
            .expect("the allowed header names are valid")
    }
}

impl RawTls {
    fn build(
        &self,
        dir: &Path,
        files: &mut Vec<PathBuf>,
        issues: &mut Issues,
    ) -> Option<Arc<ServerConfig>> {
        const T: &str = "tls_server_config";
        let before = issues.0.len();
        let resolve = |s: &Spanned<String>| dir.join(&s.value);

        let min = self.min_version.as_ref().map(|v| (v.value, line(v)));
        let max = self.max_version.as_ref().map(|v| (v.value, line(v)));
        for (field, version) in [("min_version", min), ("max_version", max)] {
            if let Some((v, at)) = version
                && v < TlsVersion::TLS12
            {
                issues.push(
                    format!("{T}.{field}"),
                    format!("{v:?} is not supported: TLS 1.0 and 1.1 are obsolete (RFC 8996); use TLS12 or TLS13"),
                    at,
                );
            }
        }
        let min_v = min.map_or(TlsVersion::TLS12, |(v, _)| v);
        let max_v = max.map_or(TlsVersion::TLS13, |(v, _)| v);
        if min_v > max_v {
            issues.push(
                format!("{T}.min_version"),
                "is above max_version",
                min.and_then(|(_, l)| l),
            );
        }

        let auth = self
            .client_auth_type
            .as_ref()
            .map(|a| a.value)
            .unwrap_or_default();
        let verifies = matches!(
            auth,
            ClientAuthType::VerifyClientCertIfGiven | ClientAuthType::RequireAndVerifyClientCert
        );
        match (&self.client_ca_file, auth) {
            (Some(ca), ClientAuthType::NoClientCert) => issues.push(
                format!("{T}.client_ca_file"),
                "is set but client_auth_type is NoClientCert: set client_auth_type (e.g. RequireAndVerifyClientCert) or remove client_ca_file",
                line(ca),
            ),
            (None, _) if verifies => issues.push(
                format!("{T}.client_ca_file"),
                format!("is required by client_auth_type {auth:?}"),
                self.client_auth_type.as_ref().and_then(line),
            ),
            _ => {}
        }

        let chain = match &self.cert_file {
            None => {
                issues.push(format!("{T}.cert_file"), "is required", None);
                None
            }
            Some(f) => {
                let p = resolve(f);
                files.push(p.clone());
                match read_certs(&p) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        issues.push(format!("{T}.cert_file"), e, line(f));
                        None
                    }
                }
            }
        };
        let key = match &self.key_file {
            None => {
                issues.push(format!("{T}.key_file"), "is required", None);
                None
            }
            Some(f) => {
                let p = resolve(f);
                files.push(p.clone());
                match read_key(&p) {
                    Ok(k) => Some(k),
                    Err(e) => {
                        issues.push(format!("{T}.key_file"), e, line(f));
                        None
                    }
                }
            }
        };
        let roots = match &self.client_ca_file {
            None => None,
            Some(f) => {
                let p = resolve(f);
                files.push(p.clone());
                match read_roots(&p) {
                    Ok(r) => Some(Arc::new(r)),
                    Err(e) => {
                        issues.push(format!("{T}.client_ca_file"), e, line(f));
                        None
                    }
                }
            }
        };
        if issues.0.len() > before {
            return None;
        }
        let (chain, key) = (chain?, key?);

        // One explicit provider, so no process-wide default has to be installed.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
            (TlsVersion::TLS12, &rustls::version::TLS12),
            (TlsVersion::TLS13, &rustls::version::TLS13),
        ]
        .into_iter()
        .filter(|(v, _)| (min_v..=max_v).contains(v))
        .map(|(_, p)| p)
        .collect();
        let builder = match ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
        {
            Ok(b) => b,
            Err(e) => {
                issues.push(T, e.to_string(), None);
                return None;
            }
        };
        let verifier: Arc<dyn ClientCertVerifier> = match auth {
            ClientAuthType::NoClientCert => WebPkiClientVerifier::no_client_auth(),
            ClientAuthType::RequestClientCert | ClientAuthType::RequireAnyClientCert => {
                Arc::new(AnyClientCert {
                    mandatory: auth == ClientAuthType::RequireAnyClientCert,
                    algorithms: provider.signature_verification_algorithms,
                })
            }
            ClientAuthType::VerifyClientCertIfGiven
            | ClientAuthType::RequireAndVerifyClientCert => {
                let roots = roots?;
                let builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
                let builder = if auth == ClientAuthType::VerifyClientCertIfGiven {
                    builder.allow_unauthenticated()
                } else {
                    builder
                };
                match builder.build() {
                    Ok(v) => v,
                    Err(e) => {
                        issues.push(format!("{T}.client_ca_file"), e.to_string(), None);
                        return None;
                    }
                }
            }
        };
        match builder
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
        {
            Ok(mut config) => {
                // axum here speaks HTTP/1.1 only; saying so lets clients skip trying h2.
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                Some(Arc::new(config))
            }
            Err(e) => {
                issues.push(
                    format!("{T}.key_file"),
                    format!("does not fit cert_file: {e}"),
                    self.key_file.as_ref().and_then(line),
                );
                None
            }
        }
    }
}

/// `RequestClientCert` and `RequireAnyClientCert`: a client certificate is asked for and
/// any is accepted, as Go does for these policies. The client still proves it holds the
/// certificate's key; the certificate itself proves nothing.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_FILE_BYTES} bytes"
        )));
    }
    std::fs::read(path)
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read_limited(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate found in {}", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = Zeroizing::new(
        read_limited(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
    );
    // The parser's message is not passed on: it could quote part of the key file.
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| {
        format!(
            "no PEM private key (PKCS#8, PKCS#1 or SEC1) found in {}",
            path.display()
        )
    })
}

fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| format!("a certificate in {} is not usable: {e}", path.display()))?;
    }
    Ok(roots)
}

/// What identifies a version of a file: a rotation changes at least one of these. The
/// path is followed through symlinks, as Kubernetes secret volumes swap a symlink.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    path: PathBuf,
    seen: Option<(SystemTime, u64, u64)>,
}

fn stamp(path: &Path) -> Stamp {
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

fn stamps_of(files: &[PathBuf]) -> Vec<Stamp> {
    files.iter().map(|f| stamp(f)).collect()
}

fn stamps(config: &Path, files: &[PathBuf]) -> Vec<Stamp> {
    let mut all = vec![stamp(config)];
    all.extend(stamps_of(files));
    all
}

#[cfg(test)]
mod tests;
