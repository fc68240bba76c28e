//! The `github` source against a mock answering as GitHub documents the calls it makes
//! (docs.github.com/rest/apps/apps, rest/orgs/personal-access-tokens, rest/orgs/orgs
//! "List SAML SSO authorizations", rest/using-the-rest-api/using-pagination-in-the-rest-api,
//! rest/using-the-rest-api/rate-limits-for-the-rest-api): the app JWT is verified (RS256,
//! `iss`, `iat` in the past, `exp` at most 10 minutes ahead) before an installation or a
//! token is given; the lists page with `Link: <...>; rel="next"` (to `/organizations/{id}/...`
//! as GitHub's own links do); errors are GitHub's JSON `message` bodies; rate limits are 403
//! with `x-ratelimit-remaining: 0` or 429 with `retry-after`. Every request is checked: the
//! documented GETs and the one POST that mints the installation token, the credential in
//! `Authorization` and never in a URL.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use jiff::{Timestamp, ToSpan};
use serde_json::{Value, json};

use crate::support;
use api_token_exporter::config::Config;
use api_token_exporter::model::Verdict;
use api_token_exporter::sources::FailReason;
use support::daemon::{Daemon, wait_until, write};
use support::listing::{Listed, assert_lists_nothing, each_failure, list};
use support::{Answer, MockServer, SecretFiles};

const ORG_ID: u64 = 652551;
const INSTALLATION: u64 = 4242;

fn installation_token() -> String {
    "ghs_INSTALLCANARY0123456789abcdefghijklmn".into()
}

fn grant(id: u64, login: &str, name: &str, expired: bool, expires: Option<&str>) -> Value {
    json!({"id": id, "owner": {"login": login, "id": id + 7, "type": "User", "site_admin": false},
           "repository_selection": "subset",
           "repositories_url": format!("https://api.github.com/organizations/{ORG_ID}/personal-access-token-requests/{id}/repositories"),
           "permissions": {"organization": {"members": "read"}, "repository": {"metadata": "read"}},
           "access_granted_at": "2025-05-16T08:47:09Z", "token_id": id * 10, "token_name": name,
           "token_expired": expired, "token_expires_at": expires,
           // Grant 1 was used; the others never were (null).
           "token_last_used_at": (id == 1).then_some("2025-09-01T10:00:00Z")})
}

fn github_error(status: u16, message: &str) -> Answer {
    Answer::json(
        status,
        json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": status.to_string()}),
    )
}

/// A page of `items` (`per` of them), with GitHub's `Link` header.
fn page_of(base: &str, path: &str, items: &[Value], page: usize, per: usize) -> Answer {
    let last = items.len().div_ceil(per).max(1);
    let slice: Vec<Value> = items
        .iter()
        .skip((page - 1) * per)
        .take(per)
        .cloned()
        .collect();
    let link = |p: usize, rel: &str| format!("<{base}{path}?per_page=100&page={p}>; rel=\"{rel}\"");
    let mut rels = vec![];
    if page < last {
        rels.push(link(page + 1, "next"));
        rels.push(link(last, "last"));
    }
    if page > 1 {
        rels.push(link(page - 1, "prev"));
        rels.push(link(1, "first"));
    }
    let mut a = Answer::json(200, Value::Array(slice))
        .header("x-ratelimit-limit", "5000")
        .header("x-ratelimit-remaining", "4990")
        .header("x-ratelimit-reset", "1767225600")
        .header("x-ratelimit-resource", "core");
    if !rels.is_empty() {
        a = a.header("link", &rels.join(", "));
    }
    a
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
    mints: Arc<AtomicUsize>,
    pub(crate) key_pem: String,
}

/// Whether the app JWT is one GitHub accepts: RS256 under the app's key, `iss` the client
/// ID, `iat` not in the future, `exp` after now and at most 10 minutes after `iat` + 60.
fn app_jwt_ok(r: &support::Recorded, public_pem: &str) -> bool {
    let Some(jwt) = r
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
    else {
        return false;
    };
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(public_pem.as_bytes()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_issuer(&["Iv23liAPPCLIENT"]);
    let Ok(data) = jsonwebtoken::decode::<Value>(jwt, &key, &v) else {
        return false;
    };
    let now = Timestamp::now().as_second();
    let (iat, exp) = (
        data.claims["iat"].as_i64().unwrap_or(i64::MAX),
        data.claims["exp"].as_i64().unwrap_or(0),
    );
    iat <= now && exp > now && exp - now <= 600
}

/// The org `acme`: 5 fine-grained tokens (one expired), paged by 2 whatever `per_page` asks;
/// 3 credential authorizations (a PAT, an SSH key, an expired PAT). Modes: 0 healthy, 1 a
/// 500 on page 2, 2 a 401 on the list, 3 a 403 (no permission), 4 a 403 rate limit, 5 an
/// empty org, 6 garbage on page 2, 7 a 429 with retry-after, 8 a next link to another host,
/// 9 the app not installed on the org.
pub(crate) async fn mock() -> Mock {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let public = key.public_key_pem();
    let mode = Arc::new(AtomicU8::new(0));
    let mints = Arc::new(AtomicUsize::new(0));
    let (m, n) = (mode.clone(), mints.clone());
    let base = Arc::new(std::sync::OnceLock::<String>::new());
    let b = base.clone();
    let server = MockServer::start(move |r| {
        let mode = m.load(Ordering::SeqCst);
        let base = b.get().cloned().unwrap_or_default();
        let path = r.path().to_string();
        if path == "/orgs/acme/installation" {
            if !app_jwt_ok(r, &public) {
                return github_error(401, "A JSON web token could not be decoded");
            }
            if mode == 9 {
                return github_error(404, "Not Found");
            }
            return Answer::json(
                200,
                json!({"id": INSTALLATION, "account": {"login": "acme", "id": ORG_ID},
                       "app_id": 1, "client_id": "Iv23liAPPCLIENT", "target_type": "Organization",
                       "permissions": {"organization_personal_access_tokens": "read", "organization_administration": "read"}}),
            );
        }
        if path == format!("/app/installations/{INSTALLATION}/access_tokens") {
            if !app_jwt_ok(r, &public) {
                return github_error(401, "A JSON web token could not be decoded");
            }
            n.fetch_add(1, Ordering::SeqCst);
            let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            let expires = Timestamp::now() + 1.hour();
            return Answer::json(
                201,
                json!({"token": installation_token(), "expires_at": expires.to_string(),
                       "permissions": body["permissions"], "repository_selection": "all"}),
            );
        }
        if r.header("authorization") != Some(&format!("Bearer {}", installation_token())) {
            return github_error(401, "Bad credentials");
        }
        match mode {
            2 => return github_error(401, "Bad credentials"),
            3 => return github_error(403, "Resource not accessible by integration")
                .header("x-ratelimit-remaining", "4990"),
            4 => {
                return github_error(403, "API rate limit exceeded for installation ID 4242.")
                    .header("x-ratelimit-limit", "5000")
                    .header("x-ratelimit-remaining", "0")
                    .header("x-ratelimit-reset", "1767225600");
            }
            7 => {
                return github_error(429, "You have exceeded a secondary rate limit.")
                    .header("retry-after", "60");
            }
            _ => {}
        }
        let page: usize = query(r, "page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let empty = mode == 5;
        let pats = "/orgs/acme/personal-access-tokens";
        let pats_by_id = format!("/organizations/{ORG_ID}/personal-access-tokens");
        if path == pats || path == pats_by_id {
            if mode == 1 && page == 2 {
                return github_error(500, "Server Error");
            }
            if mode == 6 && page == 2 {
                return Answer::text(200, "text/html", "<html>unicorn</html>");
            }
            let items: Vec<Value> = if empty {
                vec![]
            } else {
                vec![
                    grant(1, "octocat", "ci", false, Some("2099-01-01T00:00:00Z")),
                    grant(2, "hubot", "laptop", false, None),
                    grant(3, "hubot", "old", true, Some("2020-01-01T00:00:00Z")),
                    grant(4, "monalisa", "deploy", false, Some("2099-03-01T00:00:00Z")),
                    grant(5, "monalisa", "backup", false, Some("2099-04-01T00:00:00Z")),
                ]
            };
            let mut a = page_of(&base, &pats_by_id, &items, page, 2);
            if mode == 8 && page == 1 {
                a.headers.retain(|(k, _)| k != "link");
                a = a.header(
                    "link",
                    "<https://elsewhere.example/organizations/1/personal-access-tokens?page=2>; rel=\"next\"",
                );
            }
            return a;
        }
        if path == "/orgs/acme/credential-authorizations" {
            let items = if empty {
                vec![]
            } else {
                vec![
                    json!({"login": "octocat", "credential_id": 161195, "credential_type": "personal access token",
                           "token_last_eight": "71c3fc11", "credential_authorized_at": "2024-01-26T19:06:43Z",
                           "credential_accessed_at": "2025-08-01T09:00:00Z", "scopes": ["repo"], "authorized_credential_id": 1,
                           "authorized_credential_note": "release", "authorized_credential_expires_at": "2099-06-01T00:00:00Z"}),
                    json!({"login": "hubot", "credential_id": 161196, "credential_type": "SSH key",
                           "credential_authorized_at": "2024-03-29T19:06:43Z", "credential_accessed_at": null,
                           "fingerprint": "SHA256:abc", "authorized_credential_id": 2, "authorized_credential_title": "laptop"}),
                    json!({"login": "hubot", "credential_id": 161197, "credential_type": "personal access token",
                           "token_last_eight": "12345678", "credential_authorized_at": "2019-03-29T19:06:43Z",
                           "credential_accessed_at": null, "scopes": ["repo"], "authorized_credential_id": 3,
                           "authorized_credential_note": null, "authorized_credential_expires_at": "2020-01-01T00:00:00Z"}),
                ]
            };
            return page_of(&base, "/orgs/acme/credential-authorizations", &items, page, 100);
        }
        github_error(404, "Not Found")
    })
    .await;
    base.set(server.url()).unwrap();
    Mock {
        server,
        mode,
        mints,
        key_pem: key.serialize_pem(),
    }
}

fn yaml(m: &Mock, files: &SecretFiles, extra: &str) -> String {
    format!(
        "global:\n  probe_timeout: 5s\nproviders:\n  listed: {{kind: static}}\n\
         sources:\n  - name: gh\n    kind: github\n    url: {}\n    provider: listed\n    org: acme\n    app_id: Iv23liAPPCLIENT\n    credential: {}\n{extra}",
        m.server.url(),
        files.put("app.pem", &m.key_pem)
    )
}

/// Only the documented calls: the installation lookup and the token request, each with the
/// app JWT, and the lists' GETs with the installation token. Never a credential in a URL.
fn assert_only_documented_calls(server: &MockServer) {
    for r in server.requests() {
        let p = r.path();
        let allowed = match r.method.as_str() {
            "GET" => {
                p == "/orgs/acme/installation"
                    || p == "/orgs/acme/personal-access-tokens"
                    || p == format!("/organizations/{ORG_ID}/personal-access-tokens")
                    || p == "/orgs/acme/credential-authorizations"
            }
            "POST" => p == format!("/app/installations/{INSTALLATION}/access_tokens"),
            _ => false,
        };
        assert!(
            allowed,
            "a call outside the documented ones: {} {p}",
            r.method
        );
        let uri = r.uri.to_string();
        assert!(
            !uri.contains("CANARY") && !uri.contains("ghs_"),
            "a credential in a URL: {uri}"
        );
        assert_eq!(r.header("x-github-api-version"), Some("2022-11-28"));
        if p.contains("personal-access-tokens") || p.contains("credential-authorizations") {
            assert_eq!(query(&r, "per_page").as_deref(), Some("100"), "{uri}");
        }
    }
}

#[tokio::test]
async fn several_pages_enter_every_active_token_with_githubs_dates() {
    let m = mock().await;
    let files = SecretFiles::new();
    let y = yaml(&m, &files, "    credential_authorizations: true\n");
    let listing = list(&y).await.unwrap();
    let names: Vec<&str> = listing.tokens.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "hubot/laptop-2",
            "monalisa/backup-5",
            "monalisa/deploy-4",
            "octocat/ci-1",
            "octocat/release-161195",
        ]
    );
    assert_eq!(listing.skipped.get("inactive"), Some(&2));
    assert_eq!(listing.skipped.get("not_a_token"), Some(&1));
    // The last use GitHub states: token_last_used_at, an authorization's
    // credential_accessed_at; null is none.
    let used: Vec<Option<&str>> = listing
        .tokens
        .iter()
        .map(|d| d.last_used_at.as_deref())
        .collect();
    assert_eq!(
        used,
        [
            None,
            None,
            None,
            Some("2025-09-01T10:00:00Z"),
            Some("2025-08-01T09:00:00Z")
        ]
    );
    // Pages 1 to 3, the later ones by GitHub's own next links.
    let pages: Vec<String> = m
        .server
        .requests()
        .iter()
        .filter(|r| r.path().contains("personal-access-tokens"))
        .map(|r| query(r, "page").unwrap_or_else(|| "1".into()))
        .collect();
    assert_eq!(pages, ["1", "2", "3"]);
    // The installation token asked for the read permissions the listing needs, no more.
    let mint = m
        .server
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    let body: Value = serde_json::from_slice(&mint.body).unwrap();
    assert_eq!(
        body["permissions"],
        json!({"organization_personal_access_tokens": "read", "organization_administration": "read"})
    );
    assert_only_documented_calls(&m.server);

    // The stated expiry is the token's fact, through the static entry; none is "never".
    let listed = Listed::new(&y, "gh", listing, "listed");
    let ci = listed.composed.token("gh/octocat/ci-1").unwrap();
    assert_eq!(ci.labels.get("owner").map(String::as_str), Some("octocat"));
    let run = listed.probe(ci).await;
    assert_eq!(run.outcome.verdict, Verdict::Valid, "{:?}", run.outcome);
    assert_eq!(
        run.outcome.facts.expiry.timestamp().unwrap().to_string(),
        "2099-01-01T00:00:00Z"
    );
}

#[tokio::test]
async fn the_installation_token_is_kept_between_listings_and_dropped_when_refused() {
    let m = mock().await;
    let files = SecretFiles::new();
    let y = yaml(
        &m,
        &files,
        &format!("    installation_id: {INSTALLATION}\n"),
    );
    list(&y).await.unwrap();
    list(&y).await.unwrap();
    assert_eq!(
        m.mints.load(Ordering::SeqCst),
        1,
        "one token for both listings"
    );
    // With installation_id set, the installation is not looked up.
    assert!(
        m.server
            .requests()
            .iter()
            .all(|r| r.path() != "/orgs/acme/installation")
    );
    m.mode.store(2, Ordering::SeqCst);
    assert_eq!(list(&y).await.unwrap_err().reason, FailReason::Unauthorized);
    m.mode.store(0, Ordering::SeqCst);
    list(&y).await.unwrap();
    assert_eq!(
        m.mints.load(Ordering::SeqCst),
        2,
        "a refused token is replaced"
    );
    assert_only_documented_calls(&m.server);
}

#[tokio::test]
async fn a_failure_on_any_page_fails_the_listing_and_an_empty_org_lists_nothing() {
    let m = mock().await;
    let files = SecretFiles::new();
    let y = yaml(&m, &files, "");
    // The app not installed on the org: first, before a token is kept.
    let cases = [
        (9, FailReason::Misconfigured),
        (1, FailReason::Unreachable),
        (2, FailReason::Unauthorized),
        (3, FailReason::Forbidden),
        (4, FailReason::RateLimited),
        (6, FailReason::BadResponse),
        (7, FailReason::RateLimited),
        (8, FailReason::BadResponse),
    ];
    for (_, e) in each_failure(&m.mode, &y, &cases).await {
        assert!(!e.detail.contains("ghs_"), "{e:?}");
    }
    // The link to another host was not followed.
    assert!(
        m.server
            .requests()
            .iter()
            .all(|r| r.uri.host().is_none_or(|h| h != "elsewhere.example"))
    );
    assert_lists_nothing(&m.mode, 5, &y).await;
    assert_only_documented_calls(&m.server);

    // A key that is not the app's: GitHub refuses the JWT, a source failure.
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let other = Mock {
        key_pem: other.serialize_pem(),
        ..m
    };
    let other_files = SecretFiles::new();
    let y = yaml(&other, &other_files, "");
    assert_eq!(list(&y).await.unwrap_err().reason, FailReason::Unauthorized);
}

#[test]
fn github_source_settings_are_checked_where_they_are_written() {
    let err = |y: &str| Config::parse(y).unwrap_err().to_string();
    let base = "providers:\n  listed: {kind: static}\n  gh: {kind: github}\nsources:\n";
    let e = err(&format!(
        "{base}  - {{name: a, kind: github, provider: gh, org: acme, app_id: Iv1, credential: {{env: X}}}}\n"
    ));
    assert!(
        e.contains("sources[0].provider: provider \"gh\" is of kind github, not static"),
        "{e}"
    );
    let e = err(&format!(
        "{base}  - {{name: a, kind: github, provider: listed}}\n"
    ));
    assert!(
        e.contains("sources[0].org: a github source needs org"),
        "{e}"
    );
    assert!(
        e.contains("sources[0].app_id: a github source needs app_id"),
        "{e}"
    );
    assert!(
        e.contains("sources[0].credential: a github source needs credential"),
        "{e}"
    );
    let e = err(&format!(
        "{base}  - {{name: a, kind: github, provider: listed, org: 'ac/me', app_id: 'x y', credential: {{env: X}}, url: 'https://u:p@github.example.com', installation_id: 0}}\n"
    ));
    assert!(e.contains("sources[0].org"), "{e}");
    assert!(e.contains("sources[0].app_id"), "{e}");
    assert!(e.contains("sources[0].url"), "{e}");
    assert!(e.contains("sources[0].installation_id"), "{e}");
    let e = err(&format!(
        "{base}  - {{name: a, kind: directory, path: /x, org: acme}}\n"
    ));
    assert!(
        e.contains("sources[0].org: org does not apply to a directory source"),
        "{e}"
    );
    // A numeric app ID is taken as written.
    let c = Config::parse(&format!(
        "{base}  - {{name: a, kind: github, provider: listed, org: acme, app_id: 123456, credential: {{env: X}}}}\n"
    ))
    .unwrap();
    match &c.sources[0].kind {
        api_token_exporter::config::sources::SourceKind::Github(g) => {
            assert_eq!(g.app_id, "123456");
            assert_eq!(g.url, "https://api.github.com");
        }
        other => panic!("{other:?}"),
    }
}

/// Listed -> `/metrics` with the `source` label, a token close to its expiry in the warning
/// window, and a failed listing keeping the inventory.
#[test]
fn the_daemon_shows_listed_tokens_and_keeps_them_through_a_failure() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let m = rt.block_on(mock());
    let dir = tempfile::tempdir().unwrap();
    let key = write(dir.path(), "app.pem", &m.key_pem);
    let config = write(
        dir.path(),
        "config.yml",
        &format!(
            "providers:\n  listed: {{kind: static}}\n\
             sources:\n  - name: gh\n    kind: github\n    url: {}\n    provider: listed\n    org: acme\n    app_id: Iv23liAPPCLIENT\n    credential: {{file: {}}}\n    refresh: 1s\n    warning_before: 30000d\n    critical_before: 1d\n",
            m.server.url(),
            key.display()
        ),
    );
    let d = Daemon::start(&["--config.file", config.to_str().unwrap()]);
    wait_until("the listed tokens probed", &|| {
        d.metric_lines("api_token_state{token=\"gh/octocat/ci-1\"")
            .iter()
            .any(|l| l.contains("state=\"valid\"} 1"))
    });
    let info = d.metric_lines("api_token_info{token=\"gh/octocat/ci-1\"");
    assert!(
        info.len() == 1
            && info[0].contains("source=\"gh\"")
            && info[0].contains("owner=\"octocat\""),
        "{info:?}"
    );
    let severity = |name: &str| {
        let (_, api) = d.get("/api/v1/tokens");
        let api: Value = serde_json::from_str(&api).unwrap();
        api["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .map(|t| t["severity"].clone())
    };
    // 2099 is inside a 30000-day warning window: the token is expiring.
    wait_until("the warning", &|| {
        severity("gh/octocat/ci-1") == Some(json!("warning"))
    });
    m.mode.store(1, Ordering::SeqCst);
    wait_until("a failed listing", &|| {
        d.metric_lines("api_token_source_up{")
            == ["api_token_source_up{source=\"gh\",kind=\"github\"} 0"]
    });
    assert!(
        severity("gh/monalisa/deploy-4").is_some(),
        "the inventory is kept"
    );
    let (_, body) = d.get("/metrics");
    let logs = d.logs();
    d.stop();
    for shown in [&body, &logs] {
        assert!(
            !shown.contains("CANARY") && !shown.contains("ghs_"),
            "a credential shown"
        );
        assert!(!shown.contains("PRIVATE KEY"), "the key shown");
    }
    assert_only_documented_calls(&m.server);
}
