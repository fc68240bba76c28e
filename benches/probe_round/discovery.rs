//! Phase `discovery`: the real binary lists a GitLab instance's tokens through its `gitlab`
//! source, from this program re-run as the instance (`BENCH_ROLE=gitlab`), which answers
//! as GitLab documents its token lists: a JSON array of 100 tokens a page (`per_page=100`),
//! with the `x-page`, `x-per-page`, `x-next-page` (empty on the last page), `x-total` and
//! `x-total-pages` headers, the credential checked in `PRIVATE-TOKEN`.
//!
//! Two inventories: 50,000 personal access tokens (500 pages, the source's most pages a
//! list); and 100,000, the same plus one group's 50,000 access tokens (`groups: true`).
//! Figures: the listing's wall time and the exporter's CPU over it (from its log lines
//! "config loaded" and "source listed", CPU sampled every 5 ms), RSS once every listed token
//! has been probed (by the `static` provider entry the tokens enter under), then 30
//! `/metrics` scrapes (median, p99, CPU a scrape, body) and RSS after them.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::{Exporter, Table, ms, proc_cpu, proc_kb, scrape_rows, step};

const CREDENTIAL: &str = "glpat-bench-listing-credential";
const PER_PAGE: usize = 100;
/// The one group of the 100,000-token instance.
const GROUP: u64 = 7;

/// The GitLab instance (child process): `BENCH_GITLAB_PERSONAL` personal access tokens and,
/// when `BENCH_GITLAB_GROUP` is above 0, one group with that many access tokens. Prints its
/// port, then serves until killed.
pub fn gitlab_main() {
    let personal = crate::env_usize("BENCH_GITLAB_PERSONAL", 50_000);
    let group = crate::env_usize("BENCH_GITLAB_GROUP", 0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap().port());
        std::io::stdout().flush().unwrap();
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri,
                  method: axum::http::Method,
                  headers: axum::http::HeaderMap| async move {
                answer(&method, &uri, &headers, personal, group)
            },
        );
        axum::serve(listener, app).await.unwrap();
    });
}

type Answer = (axum::http::StatusCode, [(&'static str, String); 6], String);

fn answer(
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    headers: &axum::http::HeaderMap,
    personal: usize,
    group: usize,
) -> Answer {
    let plain = |status: u16, body: Value| {
        (
            axum::http::StatusCode::from_u16(status).unwrap(),
            [
                ("content-type", "application/json".to_string()),
                ("x-page", String::new()),
                ("x-per-page", String::new()),
                ("x-next-page", String::new()),
                ("x-total", String::new()),
                ("x-total-pages", String::new()),
            ],
            body.to_string(),
        )
    };
    if headers.get("private-token").and_then(|v| v.to_str().ok()) != Some(CREDENTIAL) {
        return plain(401, json!({"message": "401 Unauthorized"}));
    }
    if method != axum::http::Method::GET {
        return plain(405, json!({"message": "405 Method Not Allowed"}));
    }
    let query = uri.query().unwrap_or("");
    let param = |key: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    let page = param("page").unwrap_or(1).max(1);
    let per_page = param("per_page").unwrap_or(20).clamp(1, 100);
    let group_tokens = format!("/api/v4/groups/{GROUP}/access_tokens");
    let (total, first_id, user) = match uri.path() {
        "/api/v4/personal_access_tokens" => (personal, 1, None),
        "/api/v4/groups" => {
            let groups = if group > 0 {
                vec![json!({"id": GROUP, "full_path": "bench/tokens"})]
            } else {
                vec![]
            };
            return paged(page, per_page, groups.len(), Value::Array(groups));
        }
        p if p == group_tokens => (group, 10_000_000, Some(9_000_000)),
        _ => return plain(404, json!({"message": "404 Not Found"})),
    };
    let start = (page - 1) * per_page;
    let items: Vec<Value> = (start..total.min(start + per_page))
        .map(|i| {
            json!({
                "id": first_id + i, "name": format!("bench-{i:06}"), "revoked": false,
                "created_at": "2026-01-02T03:04:05.000Z", "description": "",
                "scopes": ["read_api"], "user_id": user.unwrap_or(1_000 + i % 500),
                "last_used_at": null, "active": true,
                "expires_at": format!("2027-{:02}-{:02}", 1 + i % 12, 1 + i % 28)
            })
        })
        .collect();
    paged(page, per_page, total, Value::Array(items))
}

/// A 200 with GitLab's offset-paging headers.
fn paged(page: usize, per_page: usize, total: usize, items: Value) -> Answer {
    let pages = total.div_ceil(per_page).max(1);
    let next = if page < pages {
        (page + 1).to_string()
    } else {
        String::new()
    };
    (
        axum::http::StatusCode::OK,
        [
            ("content-type", "application/json".to_string()),
            ("x-page", page.to_string()),
            ("x-per-page", per_page.to_string()),
            ("x-next-page", next),
            ("x-total", total.to_string()),
            ("x-total-pages", pages.to_string()),
        ],
        items.to_string(),
    )
}

struct Instance {
    child: Child,
    port: u16,
}

impl Instance {
    fn start(personal: usize, group: usize) -> Instance {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env("BENCH_ROLE", "gitlab")
            .env("BENCH_GITLAB_PERSONAL", personal.to_string())
            .env("BENCH_GITLAB_GROUP", group.to_string())
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the instance prints its port");
        Instance { child, port }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The config: no configured token, one `gitlab` source.
fn config(dir: &Path, port: u16, groups: bool, n: usize) -> std::path::PathBuf {
    let credential = dir.join("gitlab-credential");
    std::fs::write(&credential, CREDENTIAL).unwrap();
    let yaml = format!(
        "global:\n  probe_interval: 1h\nproviders:\n  gitlab-listed: {{kind: static}}\nsources:\n  - name: gitlab\n    kind: gitlab\n    url: http://127.0.0.1:{port}\n    provider: gitlab-listed\n    credential: {{file: {}}}\n    personal: true\n    groups: {groups}\n    refresh: 1h\n    labels: {{team: platform}}\ntokens: []\n",
        credential.display()
    );
    let path = dir.join(format!("discovery-{n}.yml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Runs both inventories and adds their rows.
pub async fn run(dir: &Path, client: &reqwest::Client, table: &mut Table) {
    for (personal, group) in [(50_000, 0), (50_000, 50_000)] {
        let n = personal + group;
        step(&format!("discovery: {n} listed tokens"));
        let instance = Instance::start(personal, group);
        let config = config(dir, instance.port, group > 0, n);
        let mut e = Exporter::start(&config, dir.join(format!("discovery-{n}.log")));
        // CPU samples until the listing is logged, then until every token is probed.
        let mut samples: Vec<(jiff::Timestamp, Duration)> = Vec::new();
        let start = Instant::now();
        let mut last_poll = Instant::now();
        let mut probed_at = None;
        while probed_at.is_none() {
            let now = jiff::Timestamp::try_from(SystemTime::now()).unwrap();
            samples.push((now, proc_cpu(e.pid())));
            if last_poll.elapsed() >= Duration::from_millis(100) {
                last_poll = Instant::now();
                if e.logged_at("source listed").is_some() && all_probed(client, &e, n).await {
                    probed_at = Some(Instant::now());
                }
            }
            if let Ok(Some(status)) = e.child.try_wait() {
                let log = std::fs::read_to_string(&e.log).unwrap_or_default();
                panic!("the exporter exited ({status}):\n{log}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(600),
                "no complete listing after 10 minutes"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let loaded = e.logged_at("config loaded").expect("config loaded line");
        let listed = e.logged_at("source listed").expect("source listed line");
        let cpu_at = |t: jiff::Timestamp| {
            samples
                .iter()
                .filter(|(at, _)| *at <= t)
                .map(|(_, c)| *c)
                .next_back()
                .unwrap_or_default()
        };
        let cpu_after = samples
            .iter()
            .find(|(at, _)| *at >= listed)
            .map(|(_, c)| *c)
            .unwrap_or_else(|| samples.last().unwrap().1);
        let wall =
            Duration::from_nanos((listed.as_nanosecond() - loaded.as_nanosecond()).max(0) as u64);
        let cpu = cpu_after.saturating_sub(cpu_at(loaded));
        table.row(
            &format!(
                "{n} listed tokens ({} pages of {PER_PAGE}): listing wall; exporter CPU",
                n / PER_PAGE
            ),
            format!(
                "{}; {} ({:.1} µs a token)",
                ms(wall),
                ms(cpu),
                cpu.as_secs_f64() * 1e6 / n as f64
            ),
            "",
            None,
        );
        let rss = proc_kb(e.pid(), "VmRSS");
        scrape_rows(
            table,
            client,
            &e,
            rss,
            [
                &format!("{n} listed tokens: RSS once probed; after 30 scrapes; peak"),
                &format!("{n} listed tokens: /metrics median, p99; CPU a scrape; body"),
            ],
        )
        .await;
        drop(e);
        drop(instance);
    }
}

/// Whether the exporter holds `n` tokens, none of them still unprobed.
async fn all_probed(client: &reqwest::Client, e: &Exporter, n: usize) -> bool {
    let Ok(resp) = client.get(e.url("/api/v1/tokens?limit=1")).send().await else {
        return false;
    };
    let Ok(page) = resp.json::<Value>().await else {
        return false;
    };
    page["total"].as_u64() == Some(n as u64) && page["counts"]["unknown"].as_u64().unwrap_or(0) == 0
}
