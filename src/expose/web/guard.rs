//! The middleware around every route: basic auth against the users of the web config in
//! use, the refusals (401, and 503 when too many password checks wait), and the configured
//! response headers on every answer.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::*;

/// Wraps every route of `router`, the fallback included, in basic auth (when users are
/// configured) and the configured response headers (on every answer, refusals included).
pub fn protect(router: Router, web: Arc<Web>) -> Router {
    router.layer(middleware::from_fn_with_state(web, guard))
}

pub(super) async fn guard(State(web): State<Arc<Web>>, request: Request, next: Next) -> Response {
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

pub(super) fn unauthorized() -> Response {
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
pub(super) fn busy() -> Response {
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
pub(super) fn basic_credentials(headers: &HeaderMap) -> Option<(String, Zeroizing<Vec<u8>>)> {
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
pub(super) fn cache_key(user: &str, hash: &str, password: &[u8]) -> [u8; 32] {
    let mut sha = Sha256::new();
    for part in [user.as_bytes(), hash.as_bytes(), password] {
        sha.update((part.len() as u64).to_be_bytes());
        sha.update(part);
    }
    sha.finalize().into()
}
