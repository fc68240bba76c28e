//! What the listing sources that read a provider's paged list share: one read call with a
//! deadline, its answer sorted into the documented success or a [`ListError`], and the
//! dates a list states checked before they reach a `static` entry.

use std::time::Duration;

use super::{FailReason, ListError};
use crate::provider::http;

/// Sends one call of a listing. Any answer but a 200 fails the listing: `hint` follows a
/// 401 or a 403 (the permission the credential lacks). The detail names `what` (a fixed
/// phrase, never a URL that could carry a provider's free text).
pub async fn send(
    request: http::RequestBuilder,
    timeout: Duration,
    what: &str,
    hint: &str,
) -> Result<http::Response, ListError> {
    let resp = match tokio::time::timeout(timeout, http::send(request)).await {
        Ok(Ok(r)) => r,
        Ok(Err(outcome)) => return Err(ListError::new(FailReason::Unreachable, outcome.detail)),
        Err(_) => {
            return Err(ListError::new(
                FailReason::Unreachable,
                format!("no answer within {}", humantime::format_duration(timeout)),
            ));
        }
    };
    if resp.status == 200 {
        return Ok(resp);
    }
    let reason = FailReason::of_status(resp.status);
    let hint = match reason {
        FailReason::Unauthorized | FailReason::Forbidden => hint,
        _ => "",
    };
    let mut error = ListError::of_answer(
        resp.status,
        &resp.headers,
        format!("{what}: HTTP {}{hint}", resp.status),
    );
    // A 429 without Retry-After (Okta's): the rate-limit window's reset is the wait.
    if reason == FailReason::RateLimited && error.retry_after.is_none() {
        error.retry_after =
            http::reset_wait(http::rate_limit(&resp.headers), jiff::Timestamp::now())
                .map(|d| d.min(super::MAX_RETRY_AFTER));
    }
    Err(error)
}

/// A list's date, checked as the `static` entry will read it: an answer whose dates are not
/// dates is not the documented one.
pub fn date(value: Option<String>, what: &str) -> Result<Option<String>, ListError> {
    match value {
        Some(v) if crate::provider::r#static::parse_declared_expiry(&v).is_err() => {
            Err(ListError::new(
                FailReason::BadResponse,
                format!("{what} is not the date the provider documents"),
            ))
        }
        other => Ok(other),
    }
}

/// A page count past `max`: the listing fails rather than enter part of a list.
pub fn too_long(max: u32) -> ListError {
    ListError::new(
        FailReason::BadResponse,
        format!("a list is longer than {max} pages"),
    )
}
