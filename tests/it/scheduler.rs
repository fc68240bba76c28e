//! The scheduler against a local provider: concurrency limits hold on the wire, a provider
//! that rate limits is paused for its Retry-After, probes of a failing provider back off, and
//! readiness follows the first round.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support;
use api_token_exporter::config::Config;
use api_token_exporter::provider::BuildContext;
use api_token_exporter::scheduler::{self, Inventory};
use api_token_exporter::store::Store;
use serde_json::json;
use support::{Answer, MockServer, SecretFiles};

fn inventory(
    url: &str,
    secrets: &SecretFiles,
    tokens: usize,
    extra_provider: &str,
    global: &str,
) -> Inventory {
    let mut yaml = format!(
        "global:\n{global}providers:\n  idp:\n    kind: oauth2_introspection\n    introspection_endpoint: {url}/introspect\n    client_id: c\n    client_secret: {}\n{extra_provider}tokens:\n",
        secrets.put("client", "client-secret")
    );
    for i in 0..tokens {
        yaml.push_str(&format!(
            "  - name: t{i}\n    provider: idp\n    secret: {}\n",
            secrets.put(&format!("t{i}"), &format!("token-{i}"))
        ));
    }
    Inventory::build(Config::parse(&yaml).unwrap(), &BuildContext::new()).unwrap()
}

async fn wait(what: &str, limit: Duration, f: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A provider that answers every introspection `active` after `delay`, and the most requests
/// it saw in flight at once. A request counts in when it arrives and out just before its
/// answer is written, so the client's freed permit can only let the next request in after
/// the count went down: the peak is exact, whatever the load on the machine.
async fn counting_server(delay: Duration) -> (MockServer, Arc<AtomicUsize>) {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (f, p) = (in_flight.clone(), peak.clone());
    let server = MockServer::start(move |_| {
        let now = f.fetch_add(1, Ordering::SeqCst) + 1;
        p.fetch_max(now, Ordering::SeqCst);
        let f2 = f.clone();
        Answer::json(200, json!({"active": true, "exp": 4_000_000_000i64}))
            .delayed(delay)
            .on_send(move || {
                f2.fetch_sub(1, Ordering::SeqCst);
            })
    })
    .await;
    (server, peak)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_limits_hold_on_the_wire() {
    let (server, peak) = counting_server(Duration::from_millis(150)).await;
    let secrets = SecretFiles::new();
    let mut inv = inventory(&server.url(), &secrets, 12, "", "  max_concurrency: 8\n");
    // Per-provider limit 3 under a global limit of 8.
    let mut config = (*inv.config).clone();
    if let Some(api_token_exporter::provider::ProviderConfig::Oauth2Introspection(c)) =
        config.providers.get_mut("idp")
    {
        c.max_concurrency = Some(3);
    }
    inv = Inventory::build(config, &BuildContext::new()).unwrap();
    let store = Arc::new(Store::new());
    let handle = scheduler::spawn(store.clone(), inv);
    assert!(!handle.ready.load(Ordering::Acquire));
    wait("first round", Duration::from_secs(20), || {
        handle.ready.load(Ordering::Acquire)
    })
    .await;
    assert_eq!(server.requests().len(), 12);
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 3, "{peak} requests in flight at once, limit 3");
    assert!(
        peak >= 2,
        "probes did not overlap at all ({peak}); the test proves nothing"
    );
    let inner = store.read();
    assert!(
        inner
            .tokens
            .values()
            .all(|t| t.verdict() == Some(api_token_exporter::model::Verdict::Valid))
    );
}

/// The global limit holds too, and holds by not spawning: tokens past the limit wait in the
/// scheduler's queue, not as tasks parked on a semaphore (a round of 10,000 once made 10,000
/// tasks at once). A saturated scheduler still gets every token probed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_limit_holds_without_a_task_per_waiting_token() {
    let (server, peak) = counting_server(Duration::from_millis(40)).await;
    let secrets = SecretFiles::new();
    let tokens = 120;
    let inv = inventory(
        &server.url(),
        &secrets,
        tokens,
        "",
        "  max_concurrency: 2
",
    );
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let store = Arc::new(Store::new());
    let handle = scheduler::spawn(store.clone(), inv);
    let mut most = 0;
    let start = std::time::Instant::now();
    while !handle.ready.load(Ordering::Acquire) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the round stalled"
        );
        most = most.max(metrics.num_alive_tasks().saturating_sub(before));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(server.requests().len(), tokens);
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 2, "{peak} requests in flight at once, limit 2");
    // The scheduler, two probes, and the HTTP client's connection tasks; one task per
    // waiting token would be over a hundred.
    assert!(
        most >= 2,
        "no probe task seen ({most}); the test proves nothing"
    );
    assert!(
        most <= 12,
        "{most} tasks alive during a round limited to 2 probes"
    );
}

/// On tokio's paused clock: the pause is the scheduler's own timer, so the test's seconds pass
/// as soon as every task waits, and no wall-clock second is spent or can be missed on a busy
/// machine. The mock provider is in this runtime, on loopback.
#[tokio::test(start_paused = true)]
async fn a_rate_limiting_provider_is_paused_for_its_retry_after() {
    let server = MockServer::start(|_| {
        Answer::json(429, json!({"error": "slow down"})).header("retry-after", "3600")
    })
    .await;
    let secrets = SecretFiles::new();
    // Ten tokens, a one-second interval and floor, concurrency 1: without the pause the
    // provider would see about ten requests a second.
    let inv = inventory(
        &server.url(),
        &secrets,
        10,
        "",
        "  probe_interval: 1s\n  min_probe_interval: 1s\n  max_concurrency: 1\n",
    );
    let store = Arc::new(Store::new());
    let handle = scheduler::spawn(store.clone(), inv);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let n = server.requests().len();
    // The first probe is answered 429; the tokens already queued behind it may each get one
    // request before the pause is recorded, then nothing more for an hour.
    assert!(
        n <= 10,
        "{n} requests reached a provider that asked for an hour's pause"
    );
    let after = server.requests().len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        server.requests().len(),
        after,
        "probes continued during the pause"
    );
    let inner = store.read();
    let t = &inner.tokens["t0"];
    assert_eq!(
        t.verdict(),
        Some(api_token_exporter::model::Verdict::RateLimited)
    );
    assert!(inner.providers["idp"].failures[&api_token_exporter::model::Reason::RateLimited] >= 1);
    drop(handle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_is_probed_with_backoff() {
    let server = MockServer::start(|_| Answer::text(503, "text/plain", "down")).await;
    let secrets = SecretFiles::new();
    // One token, interval 1s, floor 1s: backoff doubles 1s, 2s, 4s... so in ~4.5 s at most
    // four probes happen (0, 1, 3, and maybe 7 s is outside), never one a second.
    let inv = inventory(
        &server.url(),
        &secrets,
        1,
        "",
        "  probe_interval: 1s\n  min_probe_interval: 1s\n",
    );
    let store = Arc::new(Store::new());
    let _handle = scheduler::spawn(store.clone(), inv);
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let n = server.requests().len();
    assert!(
        (2..=3).contains(&n),
        "{n} probes in 4.5 s: expected backoff 1 s, 2 s, 4 s (with 10% jitter)"
    );
    assert_eq!(
        store.read().tokens["t0"].verdict(),
        Some(api_token_exporter::model::Verdict::Unreachable)
    );
}

/// The first round waits for the tokens it started with, less those a reload removes, and
/// not for tokens a reload adds: the exporter is ready once every token it started with and
/// still has has been answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_in_the_first_round_changes_what_readiness_waits_for() {
    let server = MockServer::start(|_| {
        Answer::json(200, json!({"active": true, "exp": 4_000_000_000i64}))
            .delayed(Duration::from_secs(1))
    })
    .await;
    let secrets = SecretFiles::new();
    // One at a time: t0 is in flight, t1 to t5 wait.
    let inv = inventory(&server.url(), &secrets, 6, "", "  max_concurrency: 1\n");
    let store = Arc::new(Store::new());
    let handle = scheduler::spawn(store.clone(), inv);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // t0 and t1 stay; t2 to t5 go; t6 to t9 come.
    let mut reloaded = inventory(&server.url(), &secrets, 10, "", "  max_concurrency: 1\n");
    let mut config = (*reloaded.config).clone();
    config
        .tokens
        .retain(|t| ["t0", "t1", "t6", "t7", "t8", "t9"].contains(&t.name.as_str()));
    reloaded = Inventory::build(config, &BuildContext::new()).unwrap();
    handle.reload(reloaded).await;
    assert!(
        !handle.ready.load(Ordering::Acquire),
        "ready with t0 and t1 unanswered"
    );
    wait("readiness", Duration::from_secs(10), || {
        handle.ready.load(Ordering::Acquire)
    })
    .await;
    // Ready once t0 and t1 are answered, a second or two in; the added tokens, one at a
    // time behind them at a second each, cannot all be.
    let answered = |name: &str| store.read().tokens[name].verdict().is_some();
    assert!(answered("t0") && answered("t1"));
    let added = ["t6", "t7", "t8", "t9"]
        .iter()
        .filter(|n| answered(n))
        .count();
    assert!(
        added < 4,
        "readiness waited for the tokens the reload added"
    );
}

/// GitHub as it rate limits: each token answers `GET /user` as its user the first time; after
/// that `limited` is answered 403 with the primary limit used up for an hour, as GitHub
/// answers once its user's 5,000 requests are spent, and every other token keeps answering
/// 200 (so a token that is not probed was paused by the scheduler, not refused).
async fn github_per_user(limited: &'static str) -> MockServer {
    let seen = Arc::new(std::sync::Mutex::new(
        std::collections::HashSet::<String>::new(),
    ));
    MockServer::start(move |r| {
        assert_eq!(
            (r.method.as_str(), r.path()),
            ("GET", "/user"),
            "unexpected call"
        );
        let token = r
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_string();
        let (login, id) = match token.as_str() {
            "ghp_alice_one" | "ghp_alice_two" => ("alice", 1),
            "ghp_bob" => ("bob", 2),
            other => panic!("unexpected token {other}"),
        };
        let first = seen.lock().unwrap().insert(token.clone());
        if token == limited && !first {
            let reset = jiff::Timestamp::now().as_second() + 3600;
            return Answer::json(
                403,
                json!({"message": format!("API rate limit exceeded for user ID {id}.")}),
            )
            .header("x-ratelimit-limit", "5000")
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset", &reset.to_string());
        }
        Answer::json(200, json!({"login": login, "id": id, "type": "User"}))
            .header("x-ratelimit-limit", "5000")
            .header("x-ratelimit-remaining", "4000")
    })
    .await
}

fn github_inventory(url: &str, secrets: &SecretFiles, tokens: &[&str]) -> Inventory {
    let mut yaml = format!(
        "global:\n  probe_interval: 1s\n  min_probe_interval: 1s\nproviders:\n  gh:\n    kind: github\n    url: {url}\ntokens:\n"
    );
    for token in tokens {
        yaml.push_str(&format!(
            "  - name: {token}\n    provider: gh\n    secret: {}\n",
            secrets.put(token, token)
        ));
    }
    Inventory::build(Config::parse(&yaml).unwrap(), &BuildContext::new()).unwrap()
}

fn requests_of(server: &MockServer, token: &str) -> usize {
    let bearer = format!("Bearer {token}");
    server
        .requests()
        .iter()
        .filter(|r| r.header("authorization") == Some(bearer.as_str()))
        .count()
}

/// GitHub counts its limit per user: one user's tokens running out must not stop the probes
/// of another user's tokens on the same provider entry (issue 18). On tokio's paused clock.
#[tokio::test(start_paused = true)]
async fn a_rate_limited_github_user_does_not_pause_another_users_tokens() {
    let server = github_per_user("ghp_alice_one").await;
    let secrets = SecretFiles::new();
    let inv = github_inventory(&server.url(), &secrets, &["ghp_alice_one", "ghp_bob"]);
    let store = Arc::new(Store::new());
    let _handle = scheduler::spawn(store.clone(), inv);
    tokio::time::sleep(Duration::from_secs(10)).await;
    // alice: answered once, refused once, then paused for the hour.
    assert_eq!(requests_of(&server, "ghp_alice_one"), 2);
    assert_eq!(
        store.read().tokens["ghp_alice_one"].verdict(),
        Some(api_token_exporter::model::Verdict::RateLimited)
    );
    // bob: probed every second all along (1 s interval, 10 % jitter).
    let bob = requests_of(&server, "ghp_bob");
    assert!(
        bob >= 8,
        "bob was probed {bob} times in 10 s while alice was limited"
    );
    assert_eq!(
        store.read().tokens["ghp_bob"].verdict(),
        Some(api_token_exporter::model::Verdict::Valid)
    );
}

/// Two tokens of the same GitHub user share the user's limit: when one is refused for it,
/// the other pauses too, although nothing refused it yet.
#[tokio::test(start_paused = true)]
async fn a_rate_limited_github_user_pauses_all_of_its_tokens() {
    let server = github_per_user("ghp_alice_one").await;
    let secrets = SecretFiles::new();
    let inv = github_inventory(&server.url(), &secrets, &["ghp_alice_one", "ghp_alice_two"]);
    let store = Arc::new(Store::new());
    let _handle = scheduler::spawn(store.clone(), inv);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(requests_of(&server, "ghp_alice_one"), 2);
    // The second token's second probe may go out before the first one's refusal is back.
    let two = requests_of(&server, "ghp_alice_two");
    assert!(
        two <= 2,
        "{two} probes of a token whose user is rate limited"
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        requests_of(&server, "ghp_alice_two"),
        two,
        "the second token of a rate-limited user was probed during the pause"
    );
}
