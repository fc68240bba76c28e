//! The demo's in-process Vault: just the token accessor API a `vault` source lists
//! (`LIST auth/token/accessors`, `lookup-accessor`), answering as Vault documents, with two
//! tokens nobody configured. The source lists them with one credential; the `vault` provider
//! probes them by accessor with another, so the demo shows discovered tokens end to end.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::DAY;

/// A demo token: accessor, display name, owner, days left.
const TOKENS: &[(&str, &str, &str, i64)] = &[
    (
        "5f0c9a5e-3c1b-4f53-9d61-6e0d1c2f7a11",
        "token-nightly-backup",
        "bob@example.com",
        5,
    ),
    (
        "a7d2b0c4-8e9f-4a1d-b3c6-0f5e2d9c8b77",
        "token-terraform-ci",
        "grace@example.com",
        40,
    ),
];

#[derive(Clone)]
struct Vault {
    /// The source's credential (may list) and the provider's (may look up).
    list_token: Arc<str>,
    lookup_token: Arc<str>,
    created: i64,
}

/// The router, and what the demo config needs: the two credentials.
pub(super) fn router(list_token: &str, lookup_token: &str, now: i64) -> Router {
    Router::new()
        .route("/v1/auth/token/accessors", get(list))
        .route("/v1/auth/token/lookup-accessor", post(lookup))
        .with_state(Vault {
            list_token: list_token.into(),
            lookup_token: lookup_token.into(),
            created: now - 20 * DAY,
        })
}

fn token_of(headers: &HeaderMap) -> &str {
    headers
        .get("x-vault-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn denied() -> (StatusCode, Json<Value>) {
    (
        StatusCode::FORBIDDEN,
        Json(json!({"errors": ["permission denied"]})),
    )
}

async fn list(
    State(v): State<Vault>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    if token_of(&headers) != &*v.list_token || q.get("list").map(String::as_str) != Some("true") {
        return denied();
    }
    let keys: Vec<&str> = TOKENS.iter().map(|t| t.0).collect();
    (
        StatusCode::OK,
        Json(
            json!({"request_id": "demo", "lease_id": "", "renewable": false,
                    "lease_duration": 0, "data": {"keys": keys}, "wrap_info": null,
                    "warnings": null, "auth": null}),
        ),
    )
}

async fn lookup(
    State(v): State<Vault>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let caller = token_of(&headers);
    if caller != &*v.list_token && caller != &*v.lookup_token {
        return denied();
    }
    let accessor = body["accessor"].as_str().unwrap_or("");
    let Some((accessor, name, owner, days)) = TOKENS.iter().find(|t| t.0 == accessor) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"errors": ["invalid accessor"]})),
        );
    };
    let now = jiff::Timestamp::now().as_second();
    let expire = jiff::Timestamp::from_second(now + days * DAY)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let issued = jiff::Timestamp::from_second(v.created)
        .map(|t| t.to_string())
        .unwrap_or_default();
    (
        StatusCode::OK,
        Json(json!({
            "request_id": "demo", "lease_id": "", "renewable": false, "lease_duration": 0,
            "data": {
                "accessor": accessor, "creation_time": v.created,
                "creation_ttl": (now + days * DAY) - v.created, "display_name": name,
                "entity_id": "", "expire_time": expire, "explicit_max_ttl": 0, "id": "",
                "issue_time": issued, "meta": {"owner": owner}, "num_uses": 0, "orphan": true,
                "path": "auth/token/create", "policies": ["default", "backup"],
                "renewable": true, "ttl": days * DAY, "type": "service"
            },
            "wrap_info": null, "warnings": null, "auth": null
        })),
    )
}
