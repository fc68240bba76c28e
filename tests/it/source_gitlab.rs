//! The `gitlab` source against a mock answering as GitLab documents its token lists
//! (docs.gitlab.com/api/personal_access_tokens, group_access_tokens, project_access_tokens,
//! deploy_tokens, groups, projects) and its offset paging (`page`, `per_page`, `x-next-page` empty on the
//! last page, `x-page`, `x-total`): several pages, the group and project walks under the
//! concurrency limit, inactive tokens, a 5xx on page 2, 401, 403, 429, an empty instance.
//! Every request is checked: GET only, on the documented paths, the credential in
//! `PRIVATE-TOKEN` and never in a URL.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support;
use api_token_exporter::config::Config;
use api_token_exporter::model::Verdict;
use api_token_exporter::sources::FailReason;
use support::listing::{Listed, assert_lists_nothing, each_failure, list};
use support::{Answer, MockServer, SecretFiles};

pub(crate) const CREDENTIAL: &str = "glpat-LISTCANARYCANARY";

fn token(id: u64, name: &str, active: bool, expires: &str, user: u64) -> Value {
    // Token 1 was used; the others never were (null).
    let used = (id == 1).then_some("2025-10-01T12:00:00.000Z");
    json!({"id": id, "name": name, "revoked": !active, "created_at": "2025-01-02T03:04:05.000Z",
           "description": "", "scopes": ["read_api"], "user_id": user, "last_used_at": used,
           "active": active, "expires_at": expires})
}

fn deploy(id: u64, name: &str, revoked: bool, expired: bool, expires: Option<&str>) -> Value {
    json!({"id": id, "name": name, "username": format!("gitlab+deploy-token-{id}"),
           "expires_at": expires, "revoked": revoked, "expired": expired,
           "scopes": ["read_repository", "read_registry"]})
}

/// The deploy tokens GitLab lists for a group or project id, or for the instance (`None`):
/// group 101 has an active and a revoked one, project 201 one without expiry and an expired
/// one; the instance's list has those and one of a project the walk does not see.
fn deploy_tokens(of: Option<u64>) -> Vec<Value> {
    let g101 = [
        deploy(
            7001,
            "registry",
            false,
            false,
            Some("2099-07-01T00:00:00.000Z"),
        ),
        deploy(7002, "gone", true, false, Some("2099-07-01T00:00:00.000Z")),
    ];
    let p201 = [
        deploy(7101, "pull", false, false, None),
        deploy(7102, "old", false, true, Some("2020-01-01T00:00:00.000Z")),
    ];
    match of {
        Some(101) => g101.to_vec(),
        Some(201) => p201.to_vec(),
        Some(_) => vec![],
        None => {
            let mut all = g101.to_vec();
            all.extend(p201);
            all.push(deploy(
                7201,
                "mirror",
                false,
                false,
                Some("2099-08-01T00:00:00.000Z"),
            ));
            all
        }
    }
}

/// A page of `items`, `per_page` of them, with GitLab's paging headers.
fn page_of(items: &[Value], page: usize, per_page: usize) -> Answer {
    let total_pages = items.len().div_ceil(per_page).max(1);
    let slice: Vec<Value> = items
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect();
    let next = if page < total_pages {
        (page + 1).to_string()
    } else {
        String::new()
    };
    Answer::json(200, Value::Array(slice))
        .header("x-page", &page.to_string())
        .header("x-per-page", &per_page.to_string())
        .header("x-next-page", &next)
        .header("x-total", &items.len().to_string())
        .header("x-total-pages", &total_pages.to_string())
}

fn query(r: &support::Recorded, key: &str) -> Option<String> {
    r.uri.query().and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
    })
}

pub(crate) struct Mock {
    pub(crate) server: MockServer,
    mode: Arc<AtomicU8>,
    max_in_flight: Arc<AtomicUsize>,
}

/// The instance: 5 personal tokens (one revoked), 6 groups each with one token, 2 projects
/// with one token each. The mock pages by 2 whatever `per_page` asks, as a server with a
/// lower limit may. Modes: 0 healthy, 1 a 500 on page 2 of the personal list, 2 a 401,
/// 3 a 403, 4 a 429, 5 an empty instance, 6 garbage on a group's list, 7 a 403 on the
/// instance's deploy tokens (not an administrator), 8 a 500 on a project's deploy tokens.
pub(crate) async fn mock() -> Mock {
    let mode = Arc::new(AtomicU8::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let (m, inf, max) = (mode.clone(), in_flight.clone(), max_in_flight.clone());
    let server = MockServer::start(move |r| {
        let mode = m.load(Ordering::SeqCst);
        if r.header("private-token") != Some(CREDENTIAL) {
            return Answer::json(401, json!({"message": "401 Unauthorized"}));
        }
        match mode {
            2 => return Answer::json(401, json!({"message": "401 Unauthorized"})),
            3 => return Answer::json(403, json!({"message": "403 Forbidden"})),
            4 => {
                return Answer::text(429, "text/plain", "Retry later")
                    .header("retry-after", "60")
                    .header("ratelimit-remaining", "0");
            }
            _ => {}
        }
        let page: usize = query(r, "page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let path = r.path().to_string();
        let empty = mode == 5;
        let answer = if path == "/api/v4/deploy_tokens" {
            if mode == 7 {
                return Answer::json(403, json!({"message": "403 Forbidden"}));
            }
            page_of(&if empty { vec![] } else { deploy_tokens(None) }, page, 2)
        } else if let Some(rest) = path.strip_suffix("/deploy_tokens") {
            let id = rest.rsplit('/').next().and_then(|i| i.parse().ok());
            if mode == 8 && rest.starts_with("/api/v4/projects/") {
                return Answer::json(500, json!({"message": "500 Internal Server Error"}));
            }
            page_of(&deploy_tokens(id), page, 2)
        } else if path == "/api/v4/personal_access_tokens" {
            if mode == 1 && page == 2 {
                return Answer::json(500, json!({"message": "500 Internal Server Error"}));
            }
            let items: Vec<Value> = if empty {
                vec![]
            } else {
                vec![
                    token(1, "ci", true, "2099-01-01", 10),
                    token(2, "laptop", true, "2099-02-01", 11),
                    token(3, "old", false, "2020-01-01", 11),
                    token(4, "deploy", true, "2099-03-01", 12),
                    token(5, "backup", true, "2099-04-01", 12),
                ]
            };
            page_of(&items, page, 2)
        } else if path == "/api/v4/groups" {
            let items: Vec<Value> = if empty {
                vec![]
            } else {
                (1..=6)
                    .map(|g| json!({"id": 100 + g, "full_path": format!("org/g{g}")}))
                    .collect()
            };
            page_of(&items, page, 2)
        } else if path == "/api/v4/projects" {
            let items: Vec<Value> = if empty {
                vec![]
            } else {
                vec![
                    json!({"id": 201, "path_with_namespace": "org/g1/app"}),
                    json!({"id": 202, "path_with_namespace": "org/g2/api"}),
                ]
            };
            page_of(&items, page, 2)
        } else if let Some(rest) = path.strip_prefix("/api/v4/groups/") {
            let id: u64 = rest.trim_end_matches("/access_tokens").parse().unwrap_or(0);
            if mode == 6 && id == 103 {
                Answer::text(200, "text/html", "<html>sign in</html>")
            } else {
                page_of(
                    &[token(1000 + id, "bot", true, "2099-05-01", 5000 + id)],
                    1,
                    2,
                )
            }
        } else if let Some(rest) = path.strip_prefix("/api/v4/projects/") {
            let id: u64 = rest.trim_end_matches("/access_tokens").parse().unwrap_or(0);
            page_of(
                &[token(1000 + id, "bot", true, "2099-06-01", 5000 + id)],
                1,
                2,
            )
        } else {
            Answer::json(404, json!({"message": "404 Not Found"}))
        };
        // Count the lists answered at once: the walks must stay under the limit.
        let now = inf.fetch_add(1, Ordering::SeqCst) + 1;
        max.fetch_max(now, Ordering::SeqCst);
        let inf = inf.clone();
        answer.delayed(Duration::from_millis(30)).on_send(move || {
            inf.fetch_sub(1, Ordering::SeqCst);
        })
    })
    .await;
    Mock {
        server,
        mode,
        max_in_flight,
    }
}

fn yaml(url: &str, files: &SecretFiles, walk: &str) -> String {
    format!(
        "global:\n  probe_timeout: 5s\nproviders:\n  listed: {{kind: static}}\n\
         sources:\n  - name: gl\n    kind: gitlab\n    url: {url}\n    provider: listed\n    credential: {}\n    max_concurrency: 2\n{walk}",
        files.put("cred", CREDENTIAL)
    )
}

pub(crate) fn assert_only_documented_reads(server: &MockServer) {
    for r in server.requests() {
        let p = r.path();
        let allowed = p == "/api/v4/personal_access_tokens"
            || p == "/api/v4/groups"
            || p == "/api/v4/projects"
            || (p.starts_with("/api/v4/groups/") && p.ends_with("/access_tokens"))
            || (p.starts_with("/api/v4/projects/") && p.ends_with("/access_tokens"))
            || p == "/api/v4/deploy_tokens"
            || (p.starts_with("/api/v4/groups/") && p.ends_with("/deploy_tokens"))
            || (p.starts_with("/api/v4/projects/") && p.ends_with("/deploy_tokens"));
        assert!(
            r.method == "GET" && allowed,
            "a call outside the documented reads: {} {p}",
            r.method
        );
        assert!(
            !r.uri.to_string().contains("CANARY"),
            "a credential in a URL"
        );
        assert_eq!(query(&r, "per_page").as_deref(), Some("100"));
    }
}

#[tokio::test]
async fn several_pages_and_the_walks_enter_every_active_token_under_the_concurrency_limit() {
    let m = mock().await;
    let files = SecretFiles::new();
    let y = yaml(
        &m.server.url(),
        &files,
        "    personal: true\n    groups: true\n    projects: true\n",
    );
    let listing = list(&y).await.unwrap();
    let names: Vec<&str> = listing.tokens.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "org/g1/app/bot-1201",
            "org/g1/bot-1101",
            "org/g2/api/bot-1202",
            "org/g2/bot-1102",
            "org/g3/bot-1103",
            "org/g4/bot-1104",
            "org/g5/bot-1105",
            "org/g6/bot-1106",
            "user-10/ci-1",
            "user-11/laptop-2",
            "user-12/backup-5",
            "user-12/deploy-4",
        ]
    );
    assert_eq!(listing.skipped.get("inactive"), Some(&1));
    assert!(
        !m.server
            .requests()
            .iter()
            .any(|r| r.path().ends_with("/deploy_tokens")),
        "deploy tokens are read only when asked for"
    );
    // Pages 1 to 3 of the personal list, 1 to 3 of the groups: the paging was followed.
    let pages: Vec<String> = m
        .server
        .requests()
        .iter()
        .filter(|r| r.path() == "/api/v4/personal_access_tokens")
        .filter_map(|r| query(r, "page"))
        .collect();
    assert_eq!(pages, ["1", "2", "3"]);
    let max = m.max_in_flight.load(Ordering::SeqCst);
    assert!(max <= 2, "{max} lists at once, over max_concurrency 2");
    assert_eq!(max, 2, "the walk does use its concurrency");
    assert_only_documented_reads(&m.server);

    // The listed dates are the token's facts, through the static entry.
    let listed = Listed::new(&y, "gl", listing, "listed");
    let ci = listed.composed.token("gl/user-10/ci-1").unwrap();
    assert_eq!(ci.labels.get("owner").map(String::as_str), Some("user-10"));
    let run = listed.probe(ci).await;
    assert_eq!(run.outcome.verdict, Verdict::Valid, "{:?}", run.outcome);
    assert_eq!(
        run.outcome.facts.expiry.timestamp().unwrap().to_string(),
        "2099-01-01T00:00:00Z"
    );
    // GitLab's last_used_at is the listed token's last use; null is none.
    assert_eq!(
        run.outcome
            .facts
            .last_used_at
            .map(|t| t.to_string())
            .as_deref(),
        Some("2025-10-01T12:00:00Z")
    );
    let laptop = listed.composed.token("gl/user-11/laptop-2").unwrap();
    let run = listed.probe(laptop).await;
    assert_eq!(run.outcome.facts.last_used_at, None);
}

#[tokio::test]
async fn a_failure_on_any_page_or_list_fails_the_listing_and_an_empty_instance_lists_nothing() {
    let m = mock().await;
    let files = SecretFiles::new();
    let y = yaml(
        &m.server.url(),
        &files,
        "    personal: true\n    groups: true\n",
    );
    let cases = [
        (1, FailReason::Unreachable),
        (2, FailReason::Unauthorized),
        (3, FailReason::Forbidden),
        (4, FailReason::RateLimited),
        (6, FailReason::BadResponse),
    ];
    for (mode, e) in each_failure(&m.mode, &y, &cases).await {
        // The 429's Retry-After: the next listing waits for it.
        let wanted = (mode == 4).then(|| Duration::from_secs(60));
        assert_eq!(e.retry_after, wanted, "mode {mode}");
    }
    assert_lists_nothing(&m.mode, 5, &y).await;
    assert_only_documented_reads(&m.server);
}

#[tokio::test]
async fn deploy_tokens_of_the_walk_and_of_the_instance_enter_once_each() {
    let m = mock().await;
    let files = SecretFiles::new();
    let y = yaml(
        &m.server.url(),
        &files,
        "    groups: true
    projects: true
    deploy_tokens: true
    instance_deploy_tokens: true
",
    );
    let listing = list(&y).await.unwrap();
    let deploys: Vec<(&str, Option<&str>, Option<&str>)> = listing
        .tokens
        .iter()
        .filter(|d| d.name.contains("/deploy/"))
        .map(|d| (d.name.as_str(), d.owner.as_deref(), d.expires_at.as_deref()))
        .collect();
    // Revoked and expired ones skipped; the walked ones keep their group or project as
    // owner, the one only the instance lists has none.
    assert_eq!(
        deploys,
        [
            (
                "instance/deploy/mirror-7201",
                None,
                Some("2099-08-01T00:00:00.000Z")
            ),
            ("org/g1/app/deploy/pull-7101", Some("org/g1/app"), None),
            (
                "org/g1/deploy/registry-7001",
                Some("org/g1"),
                Some("2099-07-01T00:00:00.000Z")
            ),
        ]
    );
    assert!(
        listing
            .tokens
            .iter()
            .all(|d| d.last_used_at.is_none() || !d.name.contains("/deploy/"))
    );
    assert_eq!(
        listing.skipped.get("inactive"),
        Some(&2),
        "the revoked and the expired one, once each though both lists name them"
    );
    assert_eq!(listing.tokens.len(), 8 + 3);
    let instance_pages: Vec<String> = m
        .server
        .requests()
        .iter()
        .filter(|r| r.path() == "/api/v4/deploy_tokens")
        .filter_map(|r| query(r, "page"))
        .collect();
    assert_eq!(instance_pages, ["1", "2", "3"]);
    assert_only_documented_reads(&m.server);

    // A listed deploy token's expiry is its fact; one without expiry never expires.
    let listed = Listed::new(&y, "gl", listing, "listed");
    let registry = listed
        .composed
        .token("gl/org/g1/deploy/registry-7001")
        .unwrap();
    assert_eq!(
        registry.labels.get("owner").map(String::as_str),
        Some("org/g1")
    );
    let run = listed.probe(registry).await;
    assert_eq!(run.outcome.verdict, Verdict::Valid);
    assert_eq!(
        run.outcome.facts.expiry.timestamp().unwrap().to_string(),
        "2099-07-01T00:00:00Z"
    );
    let pull = listed
        .composed
        .token("gl/org/g1/app/deploy/pull-7101")
        .unwrap();
    let run = listed.probe(pull).await;
    assert!(run.outcome.facts.expiry.timestamp().is_none());

    // The instance's list refused (not an administrator), a project's failing: the listing
    // fails whole.
    for (mode, want) in [(7, FailReason::Forbidden), (8, FailReason::Unreachable)] {
        m.mode.store(mode, Ordering::SeqCst);
        let e = list(&y).await.unwrap_err();
        assert_eq!(e.reason, want, "mode {mode}: {e:?}");
    }
    // The instance's list alone.
    m.mode.store(0, Ordering::SeqCst);
    let only = yaml(
        &m.server.url(),
        &files,
        "    instance_deploy_tokens: true
",
    );
    let listing = list(&only).await.unwrap();
    let names: Vec<&str> = listing.tokens.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "instance/deploy/mirror-7201",
            "instance/deploy/pull-7101",
            "instance/deploy/registry-7001"
        ]
    );
    assert_only_documented_reads(&m.server);
}

#[test]
fn gitlab_source_settings_are_checked_where_they_are_written() {
    let err = |y: &str| Config::parse(y).unwrap_err().to_string();
    let base = "providers:\n  listed: {kind: static}\n  gl: {kind: gitlab}\nsources:\n";
    let e = err(&format!(
        "{base}  - {{name: a, kind: gitlab, provider: gl, credential: {{env: X}}, personal: true}}\n"
    ));
    assert!(
        e.contains("sources[0].provider: provider \"gl\" is of kind gitlab, not static"),
        "{e}"
    );
    let e = err(&format!(
        "{base}  - {{name: a, kind: gitlab, provider: listed, credential: {{env: X}}}}\n"
    ));
    assert!(
        e.contains("at least one of personal, groups, projects, instance_deploy_tokens"),
        "{e}"
    );
    let e = err(&format!(
        "{base}  - {{name: a, kind: gitlab, provider: listed, credential: {{env: X}}, personal: true, deploy_tokens: true}}\n"
    ));
    assert!(
        e.contains("sources[0].deploy_tokens: deploy_tokens reads the deploy tokens of the groups and projects walked"),
        "{e}"
    );
    let e = err(&format!(
        "{base}  - {{name: a, kind: cloudflare, provider: listed, credential: {{env: X}}, user: true, instance_deploy_tokens: true}}\n"
    ));
    assert!(
        e.contains("sources[0].instance_deploy_tokens: instance_deploy_tokens does not apply to a cloudflare source"),
        "{e}"
    );
    let e = err(&format!(
        "{base}  - {{name: a, kind: gitlab, provider: listed, credential: {{env: X}}, groups: true, url: 'https://u:p@gitlab.example.com', max_concurrency: 0}}\n"
    ));
    assert!(e.contains("sources[0].url"), "{e}");
    assert!(
        e.contains("sources[0].max_concurrency: must be at least 1"),
        "{e}"
    );
    let e = err(&format!(
        "{base}  - {{name: a, kind: directory, path: /x, groups: true}}\n"
    ));
    assert!(
        e.contains("sources[0].groups: groups does not apply to a directory source"),
        "{e}"
    );
}
