//! The listener's bounds through the real binary, on loopback: a scrape still answers within
//! a second while idle and slowloris connections hold more than `--web.max-connections`
//! (under a low open-file limit, as systemd's default is), over plain HTTP and TLS; a
//! connection slow to send its request head is closed after `--web.read-header-timeout`;
//! a kept-alive connection survives between requests and is closed after
//! `--web.idle-timeout`; each is counted in `/metrics`; SIGTERM does not wait on them.
//! Every test opens a bounded number of connections and stops by itself.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use support::daemon::{BIN, free_port, write};

/// An inventory that needs no secret and no network: one declared token.
const INVENTORY: &str = "providers:\n  declared:\n    kind: static\ntokens:\n  - name: partner-key\n    provider: declared\n    expires_at: 2099-01-01\n";

/// The exporter as a child, started through `sh` so its open-file limit can be lowered
/// first; killed on drop.
struct Exporter {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Exporter {
    /// Starts the exporter with `args`, soft and hard open-file limits of `nofile` when
    /// given, and waits until `/-/healthy` answers (over TLS when the test made a `tls`
    /// directory).
    fn start(args: &[&str], nofile: Option<u32>, dir: tempfile::TempDir) -> Exporter {
        let ulimit = nofile.map_or(String::new(), |n| format!("ulimit -n {n} && "));
        Exporter::start_with_shell(&ulimit, args, dir)
    }

    /// Starts the exporter after the shell commands `prefix` (each followed by `&& `).
    fn start_with_shell(prefix: &str, args: &[&str], dir: tempfile::TempDir) -> Exporter {
        let config = write(dir.path(), "config.yml", INVENTORY);
        let log = dir.path().join("stderr.log");
        let port = free_port();
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("{prefix}exec \"$0\" \"$@\""))
            .arg(BIN)
            .arg("--config.file")
            .arg(&config)
            .arg("--storage.path")
            .arg(dir.path().join("data"))
            .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut exporter = Exporter {
            child,
            port,
            log,
            _dir: dir,
        };
        let start = Instant::now();
        loop {
            if exporter.healthy() {
                return exporter;
            }
            if let Some(status) = exporter.child.try_wait().unwrap() {
                panic!("exporter exited ({status}):\n{}", exporter.logs());
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "exporter not healthy within 20 s:\n{}",
                exporter.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn healthy(&self) -> bool {
        if self.tls_dir().exists() {
            curl_tls(self, "/-/healthy").is_ok_and(|(code, _)| code == 200)
        } else {
            get(self.port, "/-/healthy").is_ok_and(|(code, _)| code == 200)
        }
    }

    fn tls_dir(&self) -> PathBuf {
        self._dir.path().join("tls")
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The value of one sample of `/metrics`, e.g. `..._dropped_total{reason="limit"}`.
    fn sample(&self, series: &str) -> f64 {
        let (code, body) = if self.tls_dir().exists() {
            curl_tls(self, "/metrics").unwrap()
        } else {
            get(self.port, "/metrics").unwrap()
        };
        assert_eq!(code, 200);
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{series} not in /metrics:\n{body}"))
            .trim()
            .parse()
            .unwrap()
    }

    fn dropped(&self, reason: &str) -> f64 {
        self.sample(&format!(
            "api_token_exporter_http_connections_dropped_total{{reason=\"{reason}\"}}"
        ))
    }

    /// SIGTERM, then the exit status within `limit`.
    fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "no exit within {limit:?} of SIGTERM:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One GET over a fresh connection, `Connection: close`, read to the end with a 5 s bound.
fn get(port: u16, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
    Ok((code, text))
}

/// A GET /metrics timed from connect to the last byte.
fn timed_scrape(exporter: &Exporter) -> (Duration, Result<(u16, String), String>) {
    let start = Instant::now();
    let reply = if exporter.tls_dir().exists() {
        curl_tls(exporter, "/metrics")
    } else {
        get(exporter.port, "/metrics")
    };
    (start.elapsed(), reply)
}

/// One GET over HTTPS with curl, trusting the test CA.
fn curl_tls(exporter: &Exporter, path: &str) -> Result<(u16, String), String> {
    let ca = exporter.tls_dir().join("ca.crt");
    let out = Command::new("curl")
        .args([
            "-s",
            "-m",
            "5",
            "--noproxy",
            "*",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
        ])
        .arg("--cacert")
        .arg(&ca)
        .arg(format!("https://localhost:{}{path}", exporter.port))
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').ok_or("no status")?;
    match code.trim().parse::<u16>() {
        Ok(0) | Err(_) => Err(format!(
            "no HTTP answer (curl exit {:?}): {text:?} {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )),
        Ok(code) => Ok((code, body.to_string())),
    }
}

/// A CA and a server certificate for localhost in `dir/tls`, and the web config naming them.
fn tls_files(dir: &Path) -> PathBuf {
    let tls = dir.join("tls");
    std::fs::create_dir(&tls).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "test CA");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    write(&tls, "ca.crt", &ca.pem());
    write(&tls, "tls.crt", &cert.pem());
    write(&tls, "tls.key", &key.serialize_pem());
    write(
        &tls,
        "web.yml",
        "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n",
    )
}

/// A hostile client on another thread: keeps `idle` connections that never send a byte and
/// `slow` ones that send a request head one byte every 300 ms, opening a new one whenever
/// the exporter closes one when `reconnect`, until dropped.
struct Attack {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl Attack {
    fn start(port: u16, idle: usize, slow: usize, reconnect: bool) -> Attack {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let open = move || {
            let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
            s.set_nonblocking(true).ok()?;
            Some(s)
        };
        let mut idle: Vec<Option<TcpStream>> = (0..idle).map(|_| open()).collect();
        let mut slow: Vec<(Option<TcpStream>, usize)> = (0..slow).map(|_| (open(), 0)).collect();
        let thread = std::thread::spawn(move || {
            const HEAD: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            let mut reopened = 0;
            let mut last_byte = Instant::now();
            // A safety bound: the attack ends by itself even if the test forgot to stop it.
            let deadline = Instant::now() + Duration::from_secs(30);
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                let mut reopen = || {
                    if reconnect {
                        reopened += 1;
                        open()
                    } else {
                        None
                    }
                };
                for conn in idle.iter_mut() {
                    if closed(conn) {
                        *conn = reopen();
                    }
                }
                let send = last_byte.elapsed() >= Duration::from_millis(300);
                for (conn, sent) in slow.iter_mut() {
                    if closed(conn) || *sent >= HEAD.len() {
                        *conn = reopen();
                        *sent = 0;
                    } else if send
                        && let Some(s) = conn
                        && s.write_all(&HEAD[*sent..*sent + 1]).is_ok()
                    {
                        *sent += 1;
                    }
                }
                if send {
                    last_byte = Instant::now();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            reopened
        });
        Attack {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the attack; returns how many connections it had to open again.
    fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Attack {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One response with a `content-length` body, read to its last byte and no further, so the
/// connection can carry the next request.
fn read_response(s: &mut TcpStream) -> String {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "closed mid-head: {raw:?}");
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .expect("a content-length")
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).unwrap();
    raw.extend(body);
    String::from_utf8_lossy(&raw).into_owned()
}

/// Whether the peer closed a non-blocking connection (or it never opened).
fn closed(conn: &Option<TcpStream>) -> bool {
    let Some(s) = conn else { return true };
    let mut byte = [0u8; 1];
    match s.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// Scrapes five times while the attack goes on; each must answer 200 within a second.
fn scrapes_answer_within_a_second(exporter: &Exporter) {
    for i in 0..5 {
        std::thread::sleep(Duration::from_millis(300));
        let (took, reply) = timed_scrape(exporter);
        let (code, body) = reply.unwrap_or_else(|e| {
            panic!(
                "scrape {i} got no answer after {took:?}: {e}\n{}",
                exporter.logs()
            )
        });
        assert_eq!(code, 200, "scrape {i}: {body}");
        assert!(
            body.contains("api_token_exporter_build_info"),
            "scrape {i}: {body}"
        );
        assert!(
            took < Duration::from_secs(1),
            "scrape {i} took {took:?} under the attack\n{}",
            exporter.logs()
        );
    }
}

#[test]
fn a_scrape_answers_within_a_second_while_idle_and_slow_connections_hold_more_than_the_limit() {
    // 120 idle and 20 slow connections against a bound of 20, in a process that may open
    // only 128 files: without a bound, the descriptors run out and nothing is accepted.
    let mut exporter = Exporter::start(
        &[
            "--web.max-connections=20",
            "--web.read-header-timeout=1s",
            "--web.idle-timeout=2s",
        ],
        Some(128),
        tempfile::tempdir().unwrap(),
    );
    let attack = Attack::start(exporter.port, 120, 20, true);
    scrapes_answer_within_a_second(&exporter);
    // The scrape's own connection, and evicted ones still closing, may be counted too.
    let open = exporter.sample("api_token_exporter_http_connections");
    assert!(open < 40.0, "{open} connections open against a bound of 20");
    assert_eq!(
        exporter.sample("api_token_exporter_http_connections_max"),
        20.0
    );
    assert!(exporter.dropped("evicted") >= 100.0);
    assert!(
        exporter.logs().contains("HTTP connection limit reached"),
        "{}",
        exporter.logs()
    );
    // Shutdown does not wait on idle or slow clients: the attack still holds its
    // connections when SIGTERM arrives.
    let status = exporter.terminate(Duration::from_secs(5));
    assert!(status.success(), "{status}\n{}", exporter.logs());
    assert!(attack.stop() > 0);
}

#[test]
fn over_tls_handshaking_connections_count_and_a_scrape_still_answers_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let web = tls_files(dir.path());
    let web = web.to_str().unwrap().to_owned();
    let exporter = Exporter::start(
        &[
            "--web.config.file",
            &web,
            "--web.max-connections=20",
            "--web.read-header-timeout=1s",
        ],
        None,
        dir,
    );
    // Raw TCP connections that never start a handshake hold places while "handshaking".
    // curl prepares its TLS context after connecting, so it says nothing for a while
    // too: this attack holds its connections rather than reopening them at once, which
    // (with a bound of only 20) would evict curl before it speaks.
    let attack = Attack::start(exporter.port, 60, 0, false);
    scrapes_answer_within_a_second(&exporter);
    assert!(exporter.sample("api_token_exporter_http_connections") < 40.0);
    assert!(exporter.dropped("evicted") >= 40.0);
    attack.stop();
}

#[test]
fn a_slowloris_connection_is_closed_after_the_read_header_timeout() {
    let exporter = Exporter::start(
        &["--web.read-header-timeout=1s", "--web.idle-timeout=30s"],
        None,
        tempfile::tempdir().unwrap(),
    );
    let mut s = TcpStream::connect(("127.0.0.1", exporter.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let start = Instant::now();
    let head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed_after = None;
    for byte in head.iter() {
        // A byte every 300 ms (the read's timeout paces it), as a slowloris client sends.
        if s.write_all(&[*byte]).is_err() {
            closed_after = Some(start.elapsed());
            break;
        }
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => {
                closed_after = Some(start.elapsed());
                break;
            }
            Ok(n) => panic!("an answer to half a request head: {:?}", &buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                closed_after = Some(start.elapsed());
                break;
            }
        }
    }
    let took = closed_after.expect("the slow connection was never closed while it sent its head");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "closed after {took:?}, want about 1 s"
    );
    assert_eq!(exporter.dropped("header_timeout"), 1.0);
    assert_eq!(exporter.dropped("idle_timeout"), 0.0);
    let _ = s.shutdown(Shutdown::Both);
}

#[test]
fn a_kept_alive_connection_outlives_the_header_timeout_and_closes_after_the_idle_timeout() {
    let exporter = Exporter::start(
        &["--web.read-header-timeout=1s", "--web.idle-timeout=3s"],
        None,
        tempfile::tempdir().unwrap(),
    );
    let mut s = TcpStream::connect(("127.0.0.1", exporter.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let ask = |s: &mut TcpStream| {
        s.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let text = read_response(s);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(!text.to_ascii_lowercase().contains("connection: close"));
    };
    ask(&mut s);
    // Longer than the header timeout, shorter than the idle one: as Prometheus does
    // between scrapes, the connection is reused.
    std::thread::sleep(Duration::from_millis(1800));
    ask(&mut s);
    let idle_from = Instant::now();
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf);
    let took = idle_from.elapsed();
    assert!(
        matches!(n, Ok(0)) || matches!(n, Err(ref e) if e.kind() == ErrorKind::ConnectionReset),
        "the idle connection was not closed within 5 s: {n:?}"
    );
    assert!(
        took >= Duration::from_millis(2500),
        "closed after {took:?} idle, before the 3 s idle timeout"
    );
    assert_eq!(exporter.dropped("idle_timeout"), 1.0);
    assert_eq!(exporter.dropped("header_timeout"), 0.0);
}

/// The hard open-file limit this test runs under (`None`: unlimited).
fn hard_nofile() -> Option<u64> {
    let out = Command::new("sh")
        .args(["-c", "ulimit -H -n"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

#[test]
fn the_open_file_limit_is_raised_to_the_hard_limit_and_the_bound_kept_below_it() {
    // A low soft limit under a higher hard one, as systemd sets them: raised at start, so
    // the default bound (512) is kept when the hard limit leaves room for it.
    let hard = hard_nofile();
    if hard.is_some_and(|h| h <= 256) {
        panic!("this test needs a hard open-file limit above 256, not {hard:?}");
    }
    let soft =
        Exporter::start_with_shell("ulimit -S -n 256 && ", &[], tempfile::tempdir().unwrap());
    let expected = match hard {
        None => 512,
        Some(h) => 512.min(h - 64.max(h / 4)),
    };
    assert_eq!(
        soft.sample("api_token_exporter_http_connections_max"),
        expected as f64,
        "{}",
        soft.logs()
    );
    assert!(
        soft.logs().contains("raised the open-file limit"),
        "{}",
        soft.logs()
    );

    // Soft and hard at 200: nothing to raise, so the bound is lowered to 200 - 64 and the
    // exporter says so.
    let low = Exporter::start(&[], Some(200), tempfile::tempdir().unwrap());
    assert_eq!(low.sample("api_token_exporter_http_connections_max"), 136.0);
    assert!(
        low.logs().contains("--web.max-connections lowered"),
        "{}",
        low.logs()
    );
}
