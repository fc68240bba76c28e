//! The pure parse of Secret list pages and their conversion to entries.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::json;

use super::*;
use crate::config::Config;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn providers() -> BTreeMap<String, ProviderConfig> {
    Config::parse(
        "providers:\n  gh: {kind: github}\n  npm: {kind: npm}\n  legacy: {kind: static}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .providers
}

fn page(items: serde_json::Value, cont: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"kind": "SecretList", "apiVersion": "v1",
        "metadata": {"resourceVersion": "1", "continue": cont}, "items": items}))
    .unwrap()
}

#[test]
fn parses_a_page_and_its_continue_token() {
    let body = page(
        json!([{"metadata": {"name": "a", "namespace": "ns"}, "type": "Opaque",
                "data": {"token": b64("ghp_x")}}]),
        "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ",
    );
    let p = parse_page(&body).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(p.items.len(), 1);
    assert_eq!(
        p.metadata.continue_.as_deref(),
        Some("eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ")
    );
}

#[test]
fn garbage_is_a_bad_response_that_quotes_nothing() {
    for body in [
        &b"<html>SECRETCANARY</html>"[..],
        br#"{"items": "SECRETCANARY"}"#,
    ] {
        let e = parse_page(body).err().unwrap();
        assert_eq!(e.reason, FailReason::BadResponse);
        assert!(!e.detail.contains("CANARY"), "{}", e.detail);
    }
}

#[test]
fn entries_follow_annotations_keys_and_prefixes() {
    let body = page(
        json!([
            // `token` key, provider by prefix.
            {"metadata": {"name": "ci", "namespace": "a"}, "data": {"token": b64("ghp_CANARY\n"), "other": b64("x")}},
            // Annotated key and provider.
            {"metadata": {"name": "pub", "namespace": "a", "annotations": {
                "api-token-exporter.io/key": "npmrc", "api-token-exporter.io/provider": "npm",
                "api-token-exporter.io/owner": "team-web"}},
             "data": {"npmrc": b64("npm_abc"), "x": b64("y")}},
            // The only key.
            {"metadata": {"name": "one", "namespace": "b"}, "data": {"pat": b64("github_pat_1")}},
            // Several keys, none named: skipped.
            {"metadata": {"name": "many", "namespace": "b"}, "data": {"a": b64("ghp_1"), "b": b64("ghp_2")}},
            // Not base64, unknown prefix, unknown provider named.
            {"metadata": {"name": "bad", "namespace": "b"}, "data": {"token": "%%%"}},
            {"metadata": {"name": "unk", "namespace": "b"}, "data": {"token": b64("hello")}},
            {"metadata": {"name": "nop", "namespace": "b", "annotations": {"api-token-exporter.io/provider": "nope"}},
             "data": {"token": b64("ghp_1")}},
        ]),
        "",
    );
    let p = parse_page(&body).unwrap_or_else(|e| panic!("{e:?}"));
    let l = entries(p.items, "https://k8s", Some("legacy"), &providers());
    let names: Vec<&str> = l.tokens.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["a/ci/token", "a/pub/npmrc", "b/one/pat"]);
    assert_eq!(l.tokens[0].provider, "gh");
    assert_eq!(l.tokens[1].provider, "npm");
    assert_eq!(l.tokens[1].owner.as_deref(), Some("team-web"));
    assert_eq!(
        l.tokens[0].identity,
        Identity::Listed("kubernetes:https://k8s:a/ci/token".into())
    );
    assert!(!format!("{:?}", l.tokens).contains("CANARY"));
    let skipped: Vec<(&str, u64)> = l.skipped.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(
        skipped,
        [
            ("bad_value", 1),
            ("no_key", 1),
            ("no_provider", 1),
            ("undetected", 1)
        ]
    );
}

#[tokio::test]
async fn a_memory_secret_reads_trimmed_and_serializes_redacted() {
    let body = page(
        json!([{"metadata": {"name": "ci", "namespace": "a"}, "data": {"token": b64("ghp_CANARY\n")}}]),
        "",
    );
    let l = entries(parse_page(&body).unwrap().items, "s", None, &providers());
    let secret = l.tokens[0].secret.clone().unwrap();
    assert_eq!(secret.read().await.unwrap().expose(), "ghp_CANARY");
    let json = serde_json::to_string(&secret).unwrap();
    assert!(!json.contains("CANARY"), "{json}");
}

#[test]
fn legacy_service_account_tokens_carry_their_dates() {
    let sa = |name: &str, labels: serde_json::Value| {
        json!({"metadata": {"name": name, "namespace": "kube-system",
                "creationTimestamp": "2022-03-04T05:06:07Z", "labels": labels},
               "type": "kubernetes.io/service-account-token",
               "data": {"token": b64("eyJhbGciOiJSUzI1NiJ9.e30.sig"), "ca.crt": b64("x"), "namespace": b64("kube-system")}})
    };
    let body = page(
        json!([
            sa(
                "used",
                json!({"kubernetes.io/legacy-token-last-used": "2026-11-30"})
            ),
            sa(
                "dead",
                json!({"kubernetes.io/legacy-token-last-used": "2024-01-02",
                              "kubernetes.io/legacy-token-invalid-since": "2025-01-03"})
            ),
            sa(
                "odd",
                json!({"kubernetes.io/legacy-token-invalid-since": "soon"})
            ),
        ]),
        "",
    );
    let items = || parse_page(&body).unwrap().items;
    let l = entries(items(), "s", Some("legacy"), &providers());
    assert_eq!(l.tokens.len(), 2);
    let dead = &l.tokens[0];
    assert_eq!(dead.name, "kube-system/dead/token");
    assert_eq!(dead.provider, "legacy");
    assert!(dead.secret.is_none());
    assert_eq!(dead.state.as_deref(), Some("invalid"));
    assert_eq!(dead.expires_at.as_deref(), Some("2025-01-03"));
    assert_eq!(dead.issued_at.as_deref(), Some("2022-03-04T05:06:07Z"));
    assert_eq!(dead.last_used_at.as_deref(), Some("2024-01-02"));
    let used = &l.tokens[1];
    assert_eq!(used.state.as_deref(), Some("active"));
    assert_eq!(used.expires_at, None);
    // The API server's last-used date is the token's last use.
    assert_eq!(used.last_used_at.as_deref(), Some("2026-11-30"));
    assert_eq!(l.skipped.get("bad_label"), Some(&1));
    // Without a static entry they are not entered.
    let l = entries(items(), "s", None, &providers());
    assert!(l.tokens.is_empty());
    assert_eq!(l.skipped.get("no_provider"), Some(&3));
}
