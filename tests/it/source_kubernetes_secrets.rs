//! The `kubernetes_secrets` source against a mock answering as the API server documents a
//! Secret list (kubernetes.io/docs/reference/using-api/api-concepts: `limit`, the
//! `metadata.continue` token, `410 Gone` with a `Status` of reason `Expired` when a continue
//! token is too old; errors as `Status` objects): several pages, namespaces and all
//! namespaces, a restarted list, a 5xx on page 2, 401, 403, 429, garbage, an empty list.
//! Every request is checked: GET only, on the documented paths, the credential in
//! `Authorization` and never in a URL; a Secret's value (a canary) appears nowhere but in
//! the probed secret.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use base64::Engine;
use serde_json::{Value, json};

use crate::support;
use api_token_exporter::config::Config;
use api_token_exporter::sources::{self, FailReason, ListError};
use support::listing::list;
use support::{Answer, MockServer, SecretFiles};

pub(crate) const CREDENTIAL: &str = "eyJK8SLISTCANARYCANARY";
const VALUE_CANARY: &str = "ghp_K8SVALUECANARYCANARY";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn secret(ns: &str, name: &str, value: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": ns, "uid": format!("{ns}-{name}"),
            "resourceVersion": "7", "creationTimestamp": "2025-01-02T03:04:05Z",
            "labels": {"api-token-exporter.io/watch": "true"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                format!("{{\"data\":{{\"token\":\"{}\"}}}}", b64(value))}},
           "type": "Opaque", "data": {"token": b64(value)}})
}

fn status(code: u16, reason: &str, message: &str) -> Answer {
    Answer::json(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

fn query(r: &support::Recorded, key: &str) -> Option<String> {
    r.uri.query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    })
}

pub(crate) struct Mock {
    pub(crate) server: MockServer,
    mode: Arc<AtomicU8>,
    gone: Arc<AtomicUsize>,
}

/// Namespace `a`: 5 Secrets, `b`: 1, paged by 2 with continue tokens `a-2`, `a-3`. Modes:
/// 0 healthy, 1 a 500 on page 2, 2 a 401, 3 a 403, 4 a 429, 5 garbage, 6 a 410 on the first
/// continue token only, 7 a 410 on every continue token, 8 empty.
pub(crate) async fn mock() -> Mock {
    let mode = Arc::new(AtomicU8::new(0));
    let gone = Arc::new(AtomicUsize::new(0));
    let (m, g) = (mode.clone(), gone.clone());
    let server = MockServer::start(move |r| {
        let mode = m.load(Ordering::SeqCst);
        if r.header("authorization") != Some(&format!("Bearer {CREDENTIAL}")) {
            return status(401, "Unauthorized", "Unauthorized");
        }
        match mode {
            2 => return status(401, "Unauthorized", "Unauthorized"),
            3 => {
                return status(
                    403,
                    "Forbidden",
                    "secrets is forbidden: User \"system:serviceaccount:m:x\" cannot list resource \"secrets\" in API group \"\" in the namespace \"a\"",
                );
            }
            4 => {
                return status(429, "TooManyRequests", "Too many requests, please try again later.")
                    .header("retry-after", "30");
            }
            5 => return Answer::text(200, "text/html", "<html>sign in</html>"),
            _ => {}
        }
        let cont = query(r, "continue");
        if cont.is_some() && (mode == 7 || (mode == 6 && g.fetch_add(1, Ordering::SeqCst) == 0)) {
            return status(
                410,
                "Expired",
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
            );
        }
        let items: Vec<Value> = match (mode, r.path()) {
            (8, _) => vec![],
            (_, "/api/v1/namespaces/a/secrets") => (1..=5)
                .map(|i| secret("a", &format!("s{i}"), &format!("ghp_a{i}")))
                .collect(),
            (_, "/api/v1/namespaces/b/secrets") => vec![secret("b", "only", VALUE_CANARY)],
            (_, "/api/v1/secrets") => vec![secret("a", "s1", "ghp_a1"), secret("b", "only", VALUE_CANARY)],
            _ => return status(404, "NotFound", "the server could not find the requested resource"),
        };
        let page: usize = cont
            .as_deref()
            .and_then(|c| c.strip_prefix("a-"))
            .and_then(|p| p.parse().ok())
            .unwrap_or(1);
        if mode == 1 && page == 2 {
            return status(500, "InternalError", "an error on the server");
        }
        let slice: Vec<Value> = items.iter().skip((page - 1) * 2).take(2).cloned().collect();
        let next = if page * 2 < items.len() { format!("a-{}", page + 1) } else { String::new() };
        let mut meta = json!({"resourceVersion": "12345"});
        if !next.is_empty() {
            meta["continue"] = json!(next);
            meta["remainingItemCount"] = json!(items.len() - page * 2);
        }
        Answer::json(200, json!({"kind": "SecretList", "apiVersion": "v1", "metadata": meta, "items": slice}))
    })
    .await;
    Mock { server, mode, gone }
}

fn yaml(url: &str, files: &SecretFiles, namespaces: &str) -> String {
    format!(
        "global:\n  probe_timeout: 5s\nproviders:\n  gh: {{kind: github}}\n\
         sources:\n  - name: k\n    kind: kubernetes_secrets\n    url: {url}\n    credential: {}\n    label_selector: api-token-exporter.io/watch=true\n{namespaces}",
        files.put("cred", CREDENTIAL)
    )
}

fn assert_only_documented_reads(server: &MockServer) {
    for r in server.requests() {
        let p = r.path();
        let allowed = p == "/api/v1/secrets"
            || (p.starts_with("/api/v1/namespaces/") && p.ends_with("/secrets"));
        assert!(
            r.method == "GET" && allowed,
            "a call outside the documented reads: {} {p}",
            r.method
        );
        assert!(
            !r.uri.to_string().contains("CANARY"),
            "a credential in a URL"
        );
        assert_eq!(query(&r, "limit").as_deref(), Some("100"));
        assert_eq!(
            query(&r, "labelSelector").as_deref(),
            Some("api-token-exporter.io/watch=true")
        );
    }
}

fn assert_hides(e: &ListError) {
    let shown = format!("{e:?}");
    assert!(!shown.contains("CANARY"), "{shown}");
}

#[tokio::test]
async fn pages_of_each_namespace_enter_every_token_with_its_value() {
    let m = mock().await;
    let files = SecretFiles::new();
    let listing = list(&yaml(&m.server.url(), &files, "    namespaces: [a, b]\n"))
        .await
        .unwrap();
    let names: Vec<&str> = listing.tokens.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "a/s1/token",
            "a/s2/token",
            "a/s3/token",
            "a/s4/token",
            "a/s5/token",
            "b/only/token"
        ]
    );
    assert!(listing.tokens.iter().all(|d| d.provider == "gh"));
    let conts: Vec<Option<String>> = m
        .server
        .requests()
        .iter()
        .filter(|r| r.path() == "/api/v1/namespaces/a/secrets")
        .map(|r| query(r, "continue"))
        .collect();
    assert_eq!(conts, [None, Some("a-2".into()), Some("a-3".into())]);
    assert_only_documented_reads(&m.server);
    // The value is held, redacted, and read back only where it is probed.
    assert!(!format!("{listing:?}").contains("CANARY"));
    let only = &listing.tokens[5];
    let value = only.secret.as_ref().unwrap().read().await.unwrap();
    assert_eq!(value.expose(), VALUE_CANARY);
    let config = Config::parse(&yaml(&m.server.url(), &files, "")).unwrap();
    let (composed, _) = sources::compose(
        &config,
        &std::collections::BTreeMap::from([("k".to_string(), listing)]),
    );
    let json = serde_json::to_string(&composed.token("k/b/only/token").unwrap().secret).unwrap();
    assert!(!json.contains("CANARY"), "{json}");
}

#[tokio::test]
async fn without_namespaces_every_namespace_is_listed_at_once() {
    let m = mock().await;
    let files = SecretFiles::new();
    let listing = list(&yaml(&m.server.url(), &files, "")).await.unwrap();
    assert_eq!(listing.tokens.len(), 2);
    let paths: Vec<String> = m
        .server
        .requests()
        .iter()
        .map(|r| r.path().to_string())
        .collect();
    assert_eq!(paths, ["/api/v1/secrets"]);
    assert_only_documented_reads(&m.server);
}

#[tokio::test]
async fn an_expired_continue_token_restarts_the_list_once_then_fails() {
    let m = mock().await;
    let files = SecretFiles::new();
    let y = yaml(&m.server.url(), &files, "    namespaces: [a]\n");
    m.mode.store(6, Ordering::SeqCst);
    let listing = list(&y).await.unwrap();
    assert_eq!(
        listing.tokens.len(),
        5,
        "the restarted list holds each Secret once"
    );
    assert_eq!(m.gone.load(Ordering::SeqCst), 3);
    m.mode.store(7, Ordering::SeqCst);
    let e = list(&y).await.unwrap_err();
    assert_eq!(e.reason, FailReason::Unreachable);
    assert!(e.detail.contains("410"), "{}", e.detail);
    let firsts = m
        .server
        .requests()
        .iter()
        .filter(|r| query(r, "continue").is_none())
        .count();
    assert_eq!(firsts, 2 + 2, "each listing restarted once, no more");
    assert_only_documented_reads(&m.server);
}

#[tokio::test]
async fn failures_fail_the_whole_listing_and_quote_nothing() {
    let m = mock().await;
    let files = SecretFiles::new();
    let y = yaml(&m.server.url(), &files, "    namespaces: [a, b]\n");
    for (mode, reason) in [
        (1, FailReason::Unreachable),
        (2, FailReason::Unauthorized),
        (3, FailReason::Forbidden),
        (4, FailReason::RateLimited),
        (5, FailReason::BadResponse),
    ] {
        m.mode.store(mode, Ordering::SeqCst);
        let e = list(&y).await.unwrap_err();
        assert_eq!(e.reason, reason, "mode {mode}: {e:?}");
        assert_hides(&e);
        if mode == 4 {
            assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(30)));
        }
        if mode == 3 {
            assert!(e.detail.contains("list on secrets"), "{}", e.detail);
        }
    }
    m.mode.store(8, Ordering::SeqCst);
    let listing = list(&y).await.unwrap();
    assert!(listing.tokens.is_empty());
    assert_only_documented_reads(&m.server);
}
