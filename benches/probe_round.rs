//! The exporter's cost, measured on loopback: `cargo bench --bench probe_round`.
//!
//! Not part of `.ci/run` (under `cargo test` it only says how to run it). It prints a table:
//!
//! 1. One probe round of 10,000 `oauth2_introspection` tokens by the real binary against a
//!    fast local RFC 7662 server: wall time, CPU per probe, peak RSS.
//! 2. The same 10,000 requests from a bare reqwest loop (redirects off, same concurrency):
//!    the floor the exporter is compared with. It runs right after each round,
//!    so each ratio compares runs made seconds apart; a second loop that also reads each
//!    token from its file shows how much of the gap is that read.
//! 3. The same checks by blackbox_exporter (`http` prober, POST with a bearer header),
//!    driven through `/probe` as Prometheus would: its CPU per probe.
//! 4. `/metrics` at 10,000 and 100,000 tokens: render latency (median, p99) and RSS.
//! 5. `/metrics` under `wrk` while a 10,000-token round runs against a slower provider.
//! 6. `/api/v1/tokens?limit=100`, the status page, a search and a second page at 50,000
//!    tokens, against the whole `/api/v1/tokens`: latency (median, p99), CPU, body size.
//!
//! Every process is separate, so each one's CPU is read from its own `/proc/PID/stat`: the
//! introspection server and the bare loop are this program re-run with `BENCH_ROLE` set.
//! Sizes: `BENCH_TOKENS` (10000), `BENCH_BIG_TOKENS` (100000) and `BENCH_VIEW_TOKENS`
//! (50000). `BENCH_PHASES` picks phases
//! (`round,bare,render,blackbox,wrk,big,views,minimal,sizes,callgrind,memory,discovery`; all by default) when
//! iterating on one figure (the first round always runs).
//!
//! 7. Series per token with the smallest collector selection; 8. peak and settled RSS and
//!    render at 1,000 / 10,000 / 100,000 tokens (`BENCH_SIZES`); 9. instructions per probe
//!    under valgrind's callgrind, which a shared machine's noise does not move; 10. bytes
//!    per token by part (`memory`), counted by this program's allocator; 11. a `gitlab`
//!    source listing 50,000 and 100,000 tokens from an in-process instance (`discovery`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

#[path = "probe_round/discovery.rs"]
mod discovery;
#[path = "probe_round/memory.rs"]
mod memory;

/// Counts live bytes in the `memory` phase only (`memory.rs`).
#[global_allocator]
static ALLOC: memory::Counting = memory::Counting;

const EXPORTER: &str = env!("CARGO_BIN_EXE_api-token-exporter");
/// Probes in flight: the exporter's default `max_concurrency`, used by every contender.
const CONCURRENCY: usize = 32;
/// The exporter's own credential at the introspection endpoint (`auth_method: bearer`).
const BEARER: &str = "bench-exporter-bearer-credential";

fn main() {
    match std::env::var("BENCH_ROLE").as_deref() {
        Ok("server") => return server_main(),
        Ok("bare") => return bare_main(),
        Ok("gitlab") => return discovery::gitlab_main(),
        _ => {}
    }
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it.
    if !std::env::args().any(|a| a == "--bench") {
        println!("probe_round: a benchmark; run it with `cargo bench --bench probe_round`");
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(orchestrate());
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn token_value(i: usize) -> String {
    format!("bench-opaque-token-{i:06}")
}

// ---------------------------------------------------------------------------------------
// The introspection server (child process)
// ---------------------------------------------------------------------------------------

/// Answers every introspection `{"active":true,...}` with an expiry 30 days ahead, after
/// `BENCH_DELAY_MS` (0 by default). Prints its port, then serves until killed.
fn server_main() {
    let delay = Duration::from_millis(env_usize("BENCH_DELAY_MS", 0) as u64);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let exp = jiff::Timestamp::now().as_second() + 30 * 86_400;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap().port());
        std::io::stdout().flush().unwrap();
        let app = axum::Router::new().route(
            "/introspect",
            axum::routing::post(
                move |axum::Form(form): axum::Form<HashMap<String, String>>| async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let token = form.get("token").map(String::as_str).unwrap_or("");
                    let n = token.rsplit('-').next().unwrap_or("0");
                    axum::Json(json!({
                        "active": true, "exp": exp, "iat": exp - 60 * 86_400,
                        "sub": format!("svc-{n}"), "client_id": "bench",
                        "scope": "read write", "token_type": "Bearer"
                    }))
                },
            ),
        );
        axum::serve(listener, app).await.unwrap();
    });
}

struct ServerChild {
    child: Child,
    port: u16,
}

impl ServerChild {
    fn start(delay_ms: u64) -> ServerChild {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env("BENCH_ROLE", "server")
            .env("BENCH_DELAY_MS", delay_ms.to_string())
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the server prints its port");
        ServerChild { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/introspect", self.port)
    }

    fn cpu(&self) -> Duration {
        proc_cpu(self.child.id())
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// The bare reqwest loop (child process)
// ---------------------------------------------------------------------------------------

/// `BENCH_N` introspection requests, `CONCURRENCY` at a time, from a reqwest client with
/// redirects off (the exporter's own requests go through hyper's client directly; see
/// `src/provider/http.rs`); reads and parses each answer. Prints `ok wall_ns cpu_ns` of the loop.
/// With `BENCH_SECRETS` (the inventory's secrets directory), each request first reads its
/// token from its file, as the exporter must: the floor for any exporter of file secrets.
fn bare_main() {
    let url = std::env::var("BENCH_URL").unwrap();
    let n = env_usize("BENCH_N", 10_000);
    let secrets: Option<Arc<PathBuf>> =
        std::env::var_os("BENCH_SECRETS").map(|d| Arc::new(d.into()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let tokens: Arc<Vec<String>> = Arc::new((0..n).map(token_value).collect());
        let next = Arc::new(AtomicUsize::new(0));
        let ok = Arc::new(AtomicUsize::new(0));
        let cpu0 = proc_cpu(std::process::id());
        let t0 = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..CONCURRENCY {
            let (client, tokens, next, ok, url, secrets) = (
                client.clone(),
                tokens.clone(),
                next.clone(),
                ok.clone(),
                url.clone(),
                secrets.clone(),
            );
            workers.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= tokens.len() {
                        break;
                    }
                    // As cheaply as the file can be read: open, one read, close.
                    let from_file = secrets.as_ref().map(|dir| {
                        use std::io::Read;
                        let mut buf = [0u8; 1024];
                        let path = dir.join(format!("t{i:06}"));
                        let len = std::fs::File::open(path)
                            .and_then(|mut f| f.read(&mut buf))
                            .unwrap_or(0);
                        String::from_utf8_lossy(&buf[..len]).trim_end().to_string()
                    });
                    let token = from_file.as_deref().unwrap_or(&tokens[i]);
                    let resp = client
                        .post(&url)
                        .header("accept", "application/json")
                        .bearer_auth(BEARER)
                        .form(&[("token", token), ("token_type_hint", "access_token")])
                        .send()
                        .await;
                    let Ok(resp) = resp else { continue };
                    let Ok(body) = resp.bytes().await else {
                        continue;
                    };
                    let doc: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    if doc.get("active") == Some(&Value::Bool(true)) {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        for w in workers {
            w.await.unwrap();
        }
        let wall = t0.elapsed();
        let cpu = proc_cpu(std::process::id()) - cpu0;
        println!(
            "{} {} {}",
            ok.load(Ordering::Relaxed),
            wall.as_nanos(),
            cpu.as_nanos()
        );
    });
}

/// One round's CPU per probe and the bare loops run right after it.
struct BarePair {
    exporter: Duration,
    bare: BareRun,
    with_files: BareRun,
}

struct BareRun {
    wall: Duration,
    /// CPU per request.
    cpu: Duration,
}

/// Runs the bare loop in a child process (`BENCH_ROLE=bare`); with `secrets`, each request
/// reads its token from the inventory's file first.
fn bare_loop(url: &str, n: usize, secrets: Option<&Path>) -> BareRun {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env("BENCH_ROLE", "bare")
        .env("BENCH_URL", url)
        .env("BENCH_N", n.to_string());
    if let Some(dir) = secrets {
        cmd.env("BENCH_SECRETS", dir);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<u128> = text
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    assert_eq!(nums.len(), 3, "the bare loop printed {text:?}");
    assert_eq!(
        nums[0] as usize, n,
        "the bare loop got {} good answers of {n}",
        nums[0]
    );
    BareRun {
        wall: Duration::from_nanos(nums[1] as u64),
        cpu: Duration::from_nanos(nums[2] as u64) / n as u32,
    }
}

// ---------------------------------------------------------------------------------------
// /proc readings
// ---------------------------------------------------------------------------------------

fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// User + system CPU of a process, all threads, from `/proc/PID/stat`.
fn proc_cpu(pid: u32) -> Duration {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(clock_ticks);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name is in parentheses and may hold spaces: count fields after it.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let (utime, stime) = (
        fields.get(11).copied().unwrap_or(0),
        fields.get(12).copied().unwrap_or(0),
    );
    Duration::from_nanos((utime + stime) * 1_000_000_000 / ticks)
}

/// A `/proc/PID/status` field in kB (`VmRSS`, `VmHWM`).
fn proc_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .strip_prefix(':')?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

// ---------------------------------------------------------------------------------------
// The exporter (the real binary, child process)
// ---------------------------------------------------------------------------------------

/// Writes `n` secret files and a config for them against `url`; returns the config path.
fn inventory(dir: &Path, n: usize, url: &str, secrets_exist: bool) -> PathBuf {
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let bearer = dir.join("bearer");
    std::fs::write(&bearer, BEARER).unwrap();
    let mut yaml = format!(
        "global:\n  probe_interval: 1h\n  probe_timeout: 30s\nproviders:\n  idp:\n    kind: oauth2_introspection\n    introspection_endpoint: {url}\n    auth_method: bearer\n    bearer_token: {{file: {}}}\ntokens:\n",
        bearer.display()
    );
    for i in 0..n {
        let path = secrets.join(format!("t{i:06}"));
        if !secrets_exist {
            std::fs::write(&path, token_value(i)).unwrap();
        }
        yaml.push_str(&format!(
            "  - name: token-{i:06}\n    provider: idp\n    secret: {{file: {}}}\n    labels: {{team: team-{}, owner: owner-{}@example.com}}\n",
            path.display(),
            i % 50,
            i % 500
        ));
    }
    let config = dir.join(format!("config-{n}.yml"));
    std::fs::write(&config, yaml).unwrap();
    config
}

struct Exporter {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Exporter {
    fn start(config: &Path, log: PathBuf) -> Exporter {
        Exporter::start_with(config, log, &[])
    }

    /// [`Exporter::start`] with more flags (a collector selection).
    fn start_with(config: &Path, log: PathBuf, flags: &[&str]) -> Exporter {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(EXPORTER)
            .arg("--config.file")
            .arg(config)
            .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Exporter { child, port, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// When the log line with `msg` was written, from its `ts=`.
    fn logged_at(&self, msg: &str) -> Option<jiff::Timestamp> {
        let text = std::fs::read_to_string(&self.log).ok()?;
        let line = text.lines().find(|l| l.contains(msg))?;
        line.split_whitespace()
            .find_map(|f| f.strip_prefix("ts="))?
            .parse()
            .ok()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a round went: from the exporter's own log lines and CPU samples taken meanwhile.
struct Round {
    /// From "config loaded" to "first probe round complete".
    wall: Duration,
    /// CPU between those two lines.
    cpu: Duration,
    /// CPU from process start to "config loaded".
    startup_cpu: Duration,
    peak_rss_kb: u64,
}

/// Waits for `/-/ready`, sampling the exporter's CPU every 5 ms, and reads the round's
/// boundaries from its log.
async fn wait_round(client: &reqwest::Client, e: &mut Exporter) -> Round {
    let mut samples: Vec<(jiff::Timestamp, Duration)> = Vec::new();
    let mut last_poll = Instant::now() - Duration::from_secs(1);
    let start = Instant::now();
    loop {
        let now = jiff::Timestamp::try_from(SystemTime::now()).unwrap();
        samples.push((now, proc_cpu(e.pid())));
        if last_poll.elapsed() >= Duration::from_millis(50) {
            last_poll = Instant::now();
            if let Ok(r) = client.get(e.url("/-/ready")).send().await
                && r.status() == 200
            {
                break;
            }
        }
        if let Ok(Some(status)) = e.child.try_wait() {
            let log = std::fs::read_to_string(&e.log).unwrap_or_default();
            panic!("the exporter exited ({status}) before its first round:\n{log}");
        }
        if start.elapsed() > Duration::from_secs(600) {
            let log = std::fs::read_to_string(&e.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            panic!("no ready after 10 minutes; log tail:\n{}", tail.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let loaded = e.logged_at("config loaded").expect("config loaded line");
    let done = e
        .logged_at("first probe round complete")
        .expect("round complete line");
    let cpu_at = |t: jiff::Timestamp| {
        samples
            .iter()
            .filter(|(at, _)| *at <= t)
            .map(|(_, c)| *c)
            .next_back()
            .unwrap_or_default()
    };
    // The sample just after the round is the closest upper reading of its CPU.
    let cpu_after = samples
        .iter()
        .find(|(at, _)| *at >= done)
        .map(|(_, c)| *c)
        .unwrap_or_else(|| samples.last().unwrap().1);
    Round {
        wall: Duration::from_nanos((done.as_nanosecond() - loaded.as_nanosecond()).max(0) as u64),
        cpu: cpu_after.saturating_sub(cpu_at(loaded)),
        startup_cpu: cpu_at(loaded),
        peak_rss_kb: proc_kb(e.pid(), "VmHWM"),
    }
}

/// 30 scrapes of an exporter that has finished its first round, and two rows: memory (`first`,
/// the resident size after that round, after the scrapes, the peak), then the scrapes'
/// median and p99, CPU and body size. `what` names the two rows.
async fn scrape_rows(
    table: &mut Table,
    client: &reqwest::Client,
    e: &Exporter,
    first: u64,
    what: [&str; 2],
) {
    let (lat, body, cpu) = scrape(client, e, 30).await;
    table.row(
        what[0],
        format!(
            "{}; {}; {}",
            mb(first),
            mb(proc_kb(e.pid(), "VmRSS")),
            mb(proc_kb(e.pid(), "VmHWM"))
        ),
        "",
        None,
    );
    table.row(
        what[1],
        format!(
            "{}, {}; {}; {:.1} MB",
            ms(pct(&lat, 0.5)),
            ms(pct(&lat, 0.99)),
            ms(cpu),
            body as f64 / 1e6
        ),
        "",
        None,
    );
}

/// `n` sequential scrapes over one keep-alive connection: latencies, body size, CPU spent.
async fn scrape(
    client: &reqwest::Client,
    e: &Exporter,
    n: usize,
) -> (Vec<Duration>, usize, Duration) {
    scrape_as(client, e, n, None).await
}

/// [`scrape`] with an `Accept-Encoding` header: the size is of the body as sent (the
/// benchmark's client does not decompress).
async fn scrape_as(
    client: &reqwest::Client,
    e: &Exporter,
    n: usize,
    accept_encoding: Option<&str>,
) -> (Vec<Duration>, usize, Duration) {
    timed_gets_as(client, e, "/metrics", n, accept_encoding).await
}

/// `n` sequential GETs of `path` over one keep-alive connection, each read to its last byte
/// (and not kept):
/// sorted latencies, the body size, the exporter's CPU per request.
async fn timed_gets(
    client: &reqwest::Client,
    e: &Exporter,
    path: &str,
    n: usize,
) -> (Vec<Duration>, usize, Duration) {
    timed_gets_as(client, e, path, n, None).await
}

/// [`timed_gets`] with an `Accept-Encoding` header.
async fn timed_gets_as(
    client: &reqwest::Client,
    e: &Exporter,
    path: &str,
    n: usize,
    accept_encoding: Option<&str>,
) -> (Vec<Duration>, usize, Duration) {
    let mut latencies = Vec::with_capacity(n);
    let mut size = 0;
    let cpu0 = proc_cpu(e.pid());
    for _ in 0..n {
        let t0 = Instant::now();
        let mut req = client.get(e.url(path));
        if let Some(a) = accept_encoding {
            req = req.header("accept-encoding", a);
        }
        let mut resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers().get("content-encoding").is_some(),
            accept_encoding.is_some()
        );
        // Read to the last byte a chunk at a time, each dropped once counted: gathering a
        // 113 MB body into one buffer costs the client more than the exporter's writing,
        // and the two share the machine's two cores.
        size = 0;
        while let Some(chunk) = resp.chunk().await.unwrap() {
            size += chunk.len();
        }
        latencies.push(t0.elapsed());
    }
    let cpu = proc_cpu(e.pid()) - cpu0;
    latencies.sort();
    (latencies, size, cpu / n as u32)
}

/// Per-token series in one plain scrape, per token: the samples that carry a `token` label;
/// and of those, the `api_token_scope_info` ones (one per scope the provider grants: the
/// benchmark's server grants two).
async fn series_per_token(client: &reqwest::Client, e: &Exporter, n: usize) -> (f64, f64) {
    let text = client
        .get(e.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("{token=\""))
        .count();
    let scopes = text
        .lines()
        .filter(|l| l.starts_with("api_token_scope_info{"))
        .count();
    (series as f64 / n as f64, scopes as f64 / n as f64)
}

/// The smallest collector selection that drives the expiry and validity alerts
/// (docs/metrics.md).
const MINIMAL: &[&str] = &[
    "--collector.disable-defaults",
    "--collector.info",
    "--collector.state_code",
    "--collector.expiry",
    "--collector.threshold",
];

/// Instructions the exporter runs for a round of `n` tokens under callgrind, from start to
/// its exit on SIGTERM once ready; `None` without valgrind.
fn callgrind_instructions(dir: &Path, config: &Path, n: usize) -> Option<u64> {
    which("valgrind")?;
    let out = dir.join(format!("callgrind-{n}.out"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let mut child = Command::new("valgrind")
        .args(["--tool=callgrind", "--trace-children=no"])
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(EXPORTER)
        .arg("--config.file")
        .arg(config)
        .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
        .arg("--storage.path")
        .arg(dir.join(format!("callgrind-data-{n}")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let ready = || -> Option<bool> {
        use std::io::Read;
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        c.write_all(b"GET /-/ready HTTP/1.0\r\n\r\n").ok()?;
        let mut head = [0u8; 12];
        c.read_exact(&mut head).ok()?;
        Some(head.ends_with(b" 200"))
    };
    loop {
        if ready() == Some(true) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let text = std::fs::read_to_string(&out).ok()?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary: ")
                .or_else(|| l.strip_prefix("totals: "))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

// ---------------------------------------------------------------------------------------
// blackbox_exporter
// ---------------------------------------------------------------------------------------

fn blackbox_binary() -> Option<PathBuf> {
    ["prometheus-blackbox-exporter", "blackbox_exporter"]
        .iter()
        .find_map(|b| {
            std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|p| p.join(b))
                .find(|p| p.is_file())
        })
}

struct Blackbox {
    wall: Duration,
    cpu_per_probe: Duration,
    ok: usize,
    server_cpu_per_probe: Duration,
}

/// Drives `n` `/probe` requests, `CONCURRENCY` at a time, as Prometheus scraping `n`
/// targets would; reads blackbox_exporter's CPU around them.
async fn blackbox(dir: &Path, server: &ServerChild, n: usize) -> Option<Blackbox> {
    let bin = blackbox_binary()?;
    let config = dir.join("blackbox.yml");
    std::fs::write(
        &config,
        format!(
            "modules:\n  introspect:\n    prober: http\n    timeout: 10s\n    http:\n      method: POST\n      preferred_ip_protocol: ip4\n      headers:\n        Content-Type: application/x-www-form-urlencoded\n        Accept: application/json\n      body: token={}&token_type_hint=access_token\n      valid_status_codes: [200]\n      fail_if_body_not_matches_regexp: ['\"active\":\\s*true']\n      authorization:\n        type: Bearer\n        credentials: {BEARER}\n",
            token_value(0)
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let target = server.url();
    // Each target differs, as each of Prometheus's targets would.
    let probe: Arc<dyn Fn(usize) -> String + Send + Sync> = Arc::new(move |i: usize| {
        format!("http://127.0.0.1:{port}/probe?module=introspect&target={target}%3Fi%3D{i}")
    });
    let start = Instant::now();
    loop {
        if let Ok(r) = client.get(probe(0)).send().await
            && r.status() == 200
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "blackbox_exporter does not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let cpu0 = proc_cpu(child.id());
    let server0 = server.cpu();
    let t0 = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, next, ok, urls) = (client.clone(), next.clone(), ok.clone(), probe.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let Ok(resp) = client.get(urls(i)).send().await else {
                    continue;
                };
                if let Ok(text) = resp.text().await
                    && text.lines().any(|l| l == "probe_success 1")
                {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let wall = t0.elapsed();
    let cpu = proc_cpu(child.id()) - cpu0;
    let server_cpu = server.cpu() - server0;
    let _ = child.kill();
    let _ = child.wait();
    Some(Blackbox {
        wall,
        cpu_per_probe: cpu / n as u32,
        ok: ok.load(Ordering::Relaxed),
        server_cpu_per_probe: server_cpu / n as u32,
    })
}

// ---------------------------------------------------------------------------------------
// wrk
// ---------------------------------------------------------------------------------------

struct Wrk {
    requests_per_sec: f64,
    p50: String,
    p99: String,
    requests: u64,
    errors: u64,
}

fn wrk(url: &str, seconds: u64) -> Option<Wrk> {
    let out = Command::new("wrk")
        .args(["-t2", "-c4", &format!("-d{seconds}s"), "--latency", url])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_string()))
    };
    let socket_errors: u64 = field("Socket errors:")
        .map(|s| {
            s.split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    let non_2xx: u64 = field("Non-2xx or 3xx responses:")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    Some(Wrk {
        requests_per_sec: field("Requests/sec:")?.parse().ok()?,
        p50: field("50%")?,
        p99: field("99%")?,
        requests,
        errors: socket_errors + non_2xx,
    })
}

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

struct Table(Vec<[String; 4]>);

impl Table {
    fn row(&mut self, what: &str, value: String, target: &str, met: Option<bool>) {
        let met = match met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "",
        };
        self.0
            .push([what.to_string(), value, target.to_string(), met.to_string()]);
    }

    fn print(&self) {
        let width = |i: usize| {
            self.0
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        };
        let w = [width(0), width(1), width(2), width(3)];
        let line = |r: &[String; 4]| {
            println!(
                "| {:<w0$} | {:>w1$} | {:<w2$} | {:<w3$} |",
                r[0],
                r[1],
                r[2],
                r[3],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3]
            )
        };
        line(&["measure".into(), "value".into(), "target".into(), "".into()]);
        println!(
            "|{}|{}|{}|{}|",
            "-".repeat(w[0] + 2),
            "-".repeat(w[1] + 2),
            "-".repeat(w[2] + 2),
            "-".repeat(w[3] + 2)
        );
        for r in &self.0 {
            line(r);
        }
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let mem = proc_meminfo("MemTotal");
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!(
        "{cores} cores, {cpu}, {:.1} GiB memory",
        mem as f64 / 1024.0 / 1024.0
    )
}

fn proc_meminfo(field: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .strip_prefix(':')?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// The phases that start what they measure themselves: 10. a GitLab source listing 50,000
/// and 100,000 tokens (`discovery.rs`); 11. bytes per token by part, counted in-process
/// (`memory.rs`), at each `BENCH_SIZES`.
async fn standalone(
    dir: &Path,
    client: &reqwest::Client,
    phase: &dyn Fn(&str) -> bool,
    table: &mut Table,
) {
    if phase("discovery") {
        discovery::run(dir, client, table).await;
    }
    if phase("memory") {
        for size in sizes() {
            step(&format!("memory: {size}"));
            // No probe is sent: the answers are parsed from memory.
            let config = inventory(dir, size, "http://127.0.0.1:9/introspect", false);
            for (what, value) in memory::measure(&config, size).rows() {
                table.row(&what, value, "", None);
            }
        }
    }
}

/// `BENCH_SIZES` (1000,10000,100000).
fn sizes() -> Vec<usize> {
    std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "1000,10000,100000".into())
        .split(',')
        .filter_map(|v| v.trim().parse::<usize>().ok())
        .collect()
}

/// Progress on stderr, so a long run shows where it is.
fn step(what: &str) {
    eprintln!("[probe_round] {what}");
}

async fn orchestrate() {
    let n = env_usize("BENCH_TOKENS", 10_000);
    let big = env_usize("BENCH_BIG_TOKENS", 100_000);
    println!("machine: {}", machine());
    println!("tokens: {n} (render also at {big}); concurrency {CONCURRENCY}; loopback only\n");
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut table = Table(Vec::new());
    let phases = std::env::var("BENCH_PHASES").unwrap_or_default();
    let phase = |name: &str| phases.is_empty() || phases.split(',').any(|p| p == name);

    // The phases that need no exporter of their own run alone when they are all that is
    // asked for, without the first round.
    let alone = ["memory", "discovery"];
    if !phases.is_empty() && phases.split(',').all(|p| alone.contains(&p)) {
        standalone(dir.path(), &client, &phase, &mut table).await;
        println!();
        table.print();
        return;
    }

    // 1. One round of n tokens against a fast server.
    step(&format!("round of {n}"));
    let server = ServerChild::start(0);
    let config = inventory(dir.path(), n, &server.url(), false);
    // The round is repeated (`BENCH_ROUNDS`, 5) in fresh processes and the median run is
    // reported: on two shared cores one run's CPU per probe varies by a third.
    // Each round is followed by the bare loops (phase `bare`), so that each ratio compares
    // runs seconds apart, not a round with one loop run after the render phase: a shared
    // machine's speed drifts within minutes.
    let repeats = env_usize("BENCH_ROUNDS", 5).max(1);
    let mut runs = Vec::new();
    let mut pairs: Vec<BarePair> = Vec::new();
    let mut server_cpu_round = Duration::ZERO;
    for r in 0..repeats {
        let server_cpu0 = server.cpu();
        let mut exporter = Exporter::start(&config, dir.path().join(format!("round{r}.log")));
        let round = wait_round(&client, &mut exporter).await;
        server_cpu_round += server.cpu() - server_cpu0;
        if phase("bare") {
            step("bare loops");
            pairs.push(BarePair {
                exporter: round.cpu / n as u32,
                bare: bare_loop(&server.url(), n, None),
                with_files: bare_loop(&server.url(), n, Some(&dir.path().join("secrets"))),
            });
        }
        runs.push((round, exporter));
    }
    let server_cpu_round = server_cpu_round / repeats as u32;
    runs.sort_by_key(|(round, _)| round.cpu);
    let cpus: Vec<String> = runs.iter().map(|(r, _)| us(r.cpu / n as u32)).collect();
    // Every run's peak, not only the median run's: a run whose peak stands out from the
    // others is the first thing to know about, and which run it was.
    let peaks: Vec<String> = runs.iter().map(|(r, _)| mb(r.peak_rss_kb)).collect();
    let (round, exporter) = runs.swap_remove(repeats / 2);
    drop(runs);
    let ours = round.cpu / n as u32;
    table.row(
        &format!("round of {n}: CPU per probe, each run"),
        cpus.join(", "),
        "",
        None,
    );
    table.row(
        &format!("round of {n}: peak RSS, each run (same order)"),
        peaks.join(", "),
        "",
        None,
    );
    table.row(
        &format!("round of {n}: wall time"),
        ms(round.wall),
        "",
        None,
    );
    table.row(
        &format!("round of {n}: exporter CPU per probe (median run)"),
        us(ours),
        "",
        None,
    );
    table.row(
        "exporter CPU before the round (start, config load)",
        ms(round.startup_cpu),
        "",
        None,
    );
    table.row(
        &format!("round of {n}: peak RSS (VmHWM)"),
        mb(round.peak_rss_kb),
        "",
        None,
    );
    table.row(
        "introspection server CPU per request (exporter round)",
        us(server_cpu_round / n as u32),
        "",
        None,
    );

    // 4a. /metrics at n tokens, on the exporter that just finished its round.
    if phase("render") {
        step(&format!("/metrics at {n}"));
        let (lat, size, cpu_per_scrape) = scrape(&client, &exporter, 200).await;
        let median = pct(&lat, 0.5);
        table.row(
            &format!("/metrics at {n}: median render"),
            ms(median),
            "<= 20 ms",
            Some(median <= Duration::from_millis(20)),
        );
        table.row(
            &format!("/metrics at {n}: p99 render"),
            ms(pct(&lat, 0.99)),
            "",
            None,
        );
        table.row(
            &format!("/metrics at {n}: CPU per scrape, body size"),
            format!("{}, {:.1} MB", ms(cpu_per_scrape), size as f64 / 1e6),
            "",
            None,
        );
        let (per_token, scopes) = series_per_token(&client, &exporter, n).await;
        // The measure is with one scope per token.
        let one_scope = per_token - scopes + 1.0;
        table.row(
            &format!("/metrics at {n}: series per token, default collectors"),
            format!("{per_token:.2} ({scopes:.0} scopes); {one_scope:.2} with one scope"),
            "<= 12 with one scope",
            Some(one_scope <= 12.0),
        );
        // As Prometheus scrapes: `Accept-Encoding: gzip`. Plain and gzip alternate in five
        // rounds and each ratio is of the same round, so machine drift cancels.
        let mut ratios = Vec::new();
        let mut gz_size = 0;
        for _ in 0..5 {
            let (_, _, plain_cpu) = scrape(&client, &exporter, 40).await;
            let (_, gz, gz_cpu) = scrape_as(&client, &exporter, 40, Some("gzip")).await;
            gz_size = gz;
            ratios.push(gz_cpu.as_secs_f64() / plain_cpu.as_secs_f64().max(1e-9));
        }
        ratios.sort_by(f64::total_cmp);
        let ratio = ratios[ratios.len() / 2];
        table.row(
            &format!("/metrics at {n}, gzip: body size"),
            format!("{:.2} MB", gz_size as f64 / 1e6),
            "<= 1.2 MB",
            Some(gz_size <= 1_200_000),
        );
        table.row(
            &format!("/metrics at {n}, gzip: CPU against a plain scrape (median of 5)"),
            format!("{ratio:.2}x"),
            "<= 2x",
            Some(ratio <= 2.0),
        );
        let rss = proc_kb(exporter.pid(), "VmRSS");
        table.row(
            &format!("/metrics at {n}: RSS after 200 scrapes"),
            mb(rss),
            "<= 40 MB",
            Some(rss <= 40 * 1024),
        );
        table.row(
            &format!("/metrics at {n}: peak RSS (VmHWM)"),
            mb(proc_kb(exporter.pid(), "VmHWM")),
            "",
            None,
        );
    }
    drop(exporter);

    // 2. The bare loops: the same n requests, run after each round (above).
    if !pairs.is_empty() {
        let each = |f: &dyn Fn(&BarePair) -> String| -> String {
            pairs.iter().map(f).collect::<Vec<_>>().join(", ")
        };
        table.row(
            "CPU per probe, each run in order: exporter / bare loop / bare loop reading the files",
            each(&|p| {
                format!(
                    "{} / {} / {}",
                    us(p.exporter),
                    us(p.bare.cpu),
                    us(p.with_files.cpu)
                )
            }),
            "",
            None,
        );
        let ratio = |ours: Duration, floor: Duration| ours.as_secs_f64() / floor.as_secs_f64();
        table.row(
            "exporter / bare loop, each run",
            each(&|p| format!("{:.2}x", ratio(p.exporter, p.bare.cpu))),
            "",
            None,
        );
        let median = |f: &dyn Fn(&BarePair) -> f64| -> f64 {
            let mut v: Vec<f64> = pairs.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let to_bare = median(&|p| ratio(p.exporter, p.bare.cpu));
        table.row(
            "exporter / bare loop, CPU per probe (median run)",
            format!("{to_bare:.2}x"),
            "<= 1.5x",
            Some(to_bare <= 1.5),
        );
        table.row(
            "exporter / bare loop reading the files (median run)",
            format!("{:.2}x", median(&|p| ratio(p.exporter, p.with_files.cpu))),
            "",
            None,
        );
        let mut walls: Vec<Duration> = pairs.iter().map(|p| p.bare.wall).collect();
        walls.sort();
        table.row(
            &format!("bare reqwest loop, {n} requests: wall time (median run)"),
            ms(walls[walls.len() / 2]),
            "",
            None,
        );
    }

    // 3. blackbox_exporter, the same checks through /probe.
    if phase("blackbox") {
        step("blackbox_exporter");
        match blackbox(dir.path(), &server, n).await {
            Some(bb) => {
                table.row(
                    &format!("blackbox_exporter, {n} probes: wall time"),
                    ms(bb.wall),
                    "",
                    None,
                );
                table.row(
                    "blackbox_exporter: CPU per probe",
                    us(bb.cpu_per_probe),
                    "",
                    None,
                );
                table.row(
                    "blackbox_exporter: successful probes",
                    format!("{} of {n}", bb.ok),
                    "",
                    Some(bb.ok == n),
                );
                table.row(
                    "introspection server CPU per request (blackbox)",
                    us(bb.server_cpu_per_probe),
                    "",
                    None,
                );
                let factor = bb.cpu_per_probe.as_secs_f64() / ours.as_secs_f64();
                table.row(
                    "blackbox_exporter / exporter, CPU per probe",
                    format!("{factor:.1}x"),
                    ">= 5x",
                    Some(factor >= 5.0),
                );
            }
            None => table.row(
                "blackbox_exporter",
                "not installed".into(),
                "apt-get install prometheus-blackbox-exporter",
                Some(false),
            ),
        }
    }

    // 5. /metrics under wrk while a round runs against a provider answering in 50 ms.
    if phase("wrk") {
        step("wrk during a round");
        let slow = ServerChild::start(50);
        let config = inventory(dir.path(), n, &slow.url(), true);
        let mut exporter = Exporter::start(&config, dir.path().join("wrk.log"));
        let start = Instant::now();
        while client.get(exporter.url("/-/healthy")).send().await.is_err() {
            assert!(start.elapsed() < Duration::from_secs(30));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let url = exporter.url("/metrics");
        let result = tokio::task::spawn_blocking(move || wrk(&url, 10))
            .await
            .unwrap();
        let probed_during = {
            let body = client
                .get(exporter.url("/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            body.lines()
                .find_map(|l| {
                    l.strip_prefix("api_token_probes_total{provider=\"idp\"} ")?
                        .parse::<f64>()
                        .ok()
                })
                .unwrap_or(0.0)
        };
        let round = wait_round(&client, &mut exporter).await;
        match result {
            Some(w) => {
                table.row(
                    &format!("wrk on /metrics during a round of {n}: requests/s"),
                    format!("{:.1}", w.requests_per_sec),
                    "",
                    None,
                );
                table.row(
                    "wrk: median, p99 latency",
                    format!("{}, {}", w.p50, w.p99),
                    "",
                    None,
                );
                table.row(
                    "wrk: errors (socket + non-2xx)",
                    format!("{} of {}", w.errors, w.requests),
                    "0",
                    Some(w.errors == 0),
                );
                table.row(
                    "probes done during the 10 s of wrk; the round's wall time",
                    format!("{probed_during:.0}; {}", ms(round.wall)),
                    "",
                    None,
                );
            }
            None => table.row(
                "wrk",
                "not installed".into(),
                "apt-get install wrk",
                Some(false),
            ),
        }
        drop(exporter);
        drop(slow);
    }

    // 4b. /metrics at big tokens.
    if phase("big") {
        step(&format!("round of {big} and /metrics"));
        let config = inventory(dir.path(), big, &server.url(), false);
        let mut exporter = Exporter::start(&config, dir.path().join("big.log"));
        let round = wait_round(&client, &mut exporter).await;
        table.row(
            &format!("round of {big}: wall time"),
            ms(round.wall),
            "",
            None,
        );
        table.row(
            &format!("round of {big}: exporter CPU per probe"),
            us(round.cpu / big as u32),
            "",
            None,
        );
        let (lat, size, cpu_per_scrape) = scrape(&client, &exporter, 30).await;
        table.row(
            &format!("/metrics at {big}: median, p99 render"),
            format!("{}, {}", ms(pct(&lat, 0.5)), ms(pct(&lat, 0.99))),
            "",
            None,
        );
        table.row(
            &format!("/metrics at {big}: CPU per scrape, body size"),
            format!("{}, {:.1} MB", ms(cpu_per_scrape), size as f64 / 1e6),
            "",
            None,
        );
        table.row(
            &format!("/metrics at {big}: RSS, peak RSS"),
            format!(
                "{}, {}",
                mb(proc_kb(exporter.pid(), "VmRSS")),
                mb(proc_kb(exporter.pid(), "VmHWM"))
            ),
            "",
            None,
        );
        drop(exporter);
    }

    // 6. The views at 50,000 tokens: a page of them, against the whole answer.
    if phase("views") {
        let v = env_usize("BENCH_VIEW_TOKENS", 50_000);
        step(&format!("round of {v} and the views"));
        let config = inventory(dir.path(), v, &server.url(), false);
        let mut exporter = Exporter::start(&config, dir.path().join("views.log"));
        wait_round(&client, &mut exporter).await;
        let first: Value = client
            .get(exporter.url("/api/v1/tokens?limit=100"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let next = first["next"].as_str().expect("a second page").to_string();
        let second = format!(
            "/api/v1/tokens?limit=100&after={}",
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        );
        for (path, what, n) in [
            ("/api/v1/tokens?limit=100", "`/api/v1/tokens?limit=100`", 50),
            (second.as_str(), "the same, second page (`after`)", 50),
            ("/", "`/` (status page, 100 rows)", 50),
            (
                "/?q=token-0499&state=valid",
                "`/?q=token-0499&state=valid`",
                50,
            ),
            ("/api/v1/tokens", "`/api/v1/tokens` (every token)", 5),
        ] {
            let (lat, size, cpu) = timed_gets(&client, &exporter, path, n).await;
            table.row(
                &format!("{what} at {v}: median, p99; CPU; body"),
                format!(
                    "{}, {}; {}; {:.1} kB",
                    ms(pct(&lat, 0.5)),
                    ms(pct(&lat, 0.99)),
                    ms(cpu),
                    size as f64 / 1e3
                ),
                "",
                None,
            );
        }
        drop(exporter);
    }

    // 7. The smallest collector selection, at n.
    if phase("minimal") {
        step("minimal collector selection");
        let config = inventory(dir.path(), n, &server.url(), false);
        let mut e = Exporter::start_with(&config, dir.path().join("minimal.log"), MINIMAL);
        let _ = wait_round(&client, &mut e).await;
        let (per_token, _) = series_per_token(&client, &e, n).await;
        table.row(
            &format!("/metrics at {n}: series per token, {}", MINIMAL.join(" ")),
            format!("{per_token:.2}"),
            "<= 5",
            Some(per_token <= 5.0),
        );
    }

    // 8. Memory and render by inventory size (`BENCH_SIZES`, 1000,10000,100000): peak RSS
    //    of the first round, RSS after 30 scrapes, median render, body size.
    if phase("sizes") {
        let sizes = std::env::var("BENCH_SIZES").unwrap_or_else(|_| "1000,10000,100000".into());
        for size in sizes
            .split(',')
            .filter_map(|v| v.trim().parse::<usize>().ok())
        {
            step(&format!("sizes: {size}"));
            let config = inventory(dir.path(), size, &server.url(), false);
            let mut e = Exporter::start(&config, dir.path().join(format!("size{size}.log")));
            let _ = wait_round(&client, &mut e).await;
            let round_peak = proc_kb(e.pid(), "VmHWM");
            scrape_rows(
                &mut table,
                &client,
                &e,
                round_peak,
                [
                    &format!("{size} tokens: peak RSS of the first round; RSS after 30 scrapes; peak"),
                    &format!("{size} tokens: /metrics median render, p99; exporter CPU a scrape; body (plain)"),
                ],
            )
            .await;
        }
    }

    // 9. Instructions per probe under callgrind: the difference of two rounds (200 and
    //    1,200 tokens) over the 1,000 extra tokens, so start-up cancels out; repeatable where
    //    CPU time is not.
    if phase("callgrind") {
        step("callgrind");
        let small = inventory(dir.path(), 200, &server.url(), false);
        let large = inventory(dir.path(), 1200, &server.url(), false);
        match (
            callgrind_instructions(dir.path(), &small, 200),
            callgrind_instructions(dir.path(), &large, 1200),
        ) {
            (Some(a), Some(b)) => table.row(
                "instructions per probe (callgrind, (I(1200) - I(200)) / 1000)",
                format!("{}", b.saturating_sub(a) / 1000),
                "",
                None,
            ),
            _ => table.row(
                "instructions per probe (callgrind)",
                "valgrind not installed or the run failed".into(),
                "apt-get install valgrind",
                Some(false),
            ),
        }
    }

    drop(server);
    standalone(dir.path(), &client, &phase, &mut table).await;

    println!();
    table.print();
}
