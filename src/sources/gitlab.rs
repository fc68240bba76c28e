//! `kind: gitlab`: GitLab's own token lists (docs.gitlab.com/api/personal_access_tokens,
//! group_access_tokens, project_access_tokens), read with the source's credential in
//! `PRIVATE-TOKEN`:
//!
//! - `personal`: `GET /api/v4/personal_access_tokens` (an administrator sees every user's);
//! - `groups`: `GET /api/v4/groups?min_access_level=50`, then each group's
//!   `GET /api/v4/groups/:id/access_tokens`;
//! - `projects`: `GET /api/v4/projects?min_access_level=40&simple=true`, then each
//!   project's `GET /api/v4/projects/:id/access_tokens`;
//! - `deploy_tokens`: also each walked group's and project's `GET .../:id/deploy_tokens`
//!   (docs.gitlab.com/api/deploy_tokens);
//! - `instance_deploy_tokens`: `GET /api/v4/deploy_tokens` (an administrator, self-managed).
//!
//! Every list is paged with GitLab's offset paging: `per_page=100` and the `x-next-page`
//! header (empty on the last page); at most [`MAX_PAGES`] pages per list. The walks over
//! groups and projects run `max_concurrency` lists at once. The listing holds no token
//! secret: each active token enters with the dates GitLab states (`expires_at`,
//! `created_at`) under the source's `static` provider entry; revoked and expired ones are
//! skipped (`inactive`), so a listed token never shows valid after GitLab stopped it.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Semaphore;

use super::{Discovered, FailReason, Identity, ListError, Listing};
use crate::config::sources::GitlabWalk;
use crate::provider::BuildContext;
use crate::provider::http;
use crate::secret::SecretSource;

/// The most pages read of one list (100 items each): past it the listing fails rather
/// than enter part of a list.
pub const MAX_PAGES: u32 = 500;

/// One token as GitLab lists it (the fields the three lists share).
#[derive(Deserialize)]
struct Token {
    id: u64,
    name: String,
    #[serde(default)]
    active: bool,
    #[serde(default)]
    revoked: bool,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    user_id: Option<u64>,
    #[serde(default)]
    last_used_at: Option<String>,
}

/// One deploy token as GitLab lists it: no creation date, no last use.
#[derive(Deserialize)]
struct DeployToken {
    id: u64,
    name: String,
    #[serde(default)]
    revoked: bool,
    #[serde(default)]
    expired: bool,
    #[serde(default)]
    expires_at: Option<String>,
}

/// A group or a project, as its list gives it.
#[derive(Deserialize)]
struct Entity {
    id: u64,
    #[serde(default)]
    full_path: Option<String>,
    #[serde(default)]
    path_with_namespace: Option<String>,
}

struct Ctx<'a> {
    base: String,
    /// Wiped when the listing ends.
    token: zeroize::Zeroizing<String>,
    timeout: Duration,
    http: &'a http::Client,
}

/// Lists what `walk` asks for.
pub async fn list(
    url: &str,
    walk: &GitlabWalk,
    provider: &str,
    credential: &SecretSource,
    max_concurrency: usize,
    timeout: Duration,
    ctx: &BuildContext,
) -> Result<Listing, ListError> {
    let secret = credential.read().await.map_err(|e| {
        ListError::new(
            FailReason::Misconfigured,
            format!("the source's credential cannot be read: {e}"),
        )
    })?;
    let c = Arc::new(Ctx {
        base: url.trim_end_matches('/').to_string(),
        token: zeroize::Zeroizing::new(secret.expose().to_string()),
        timeout,
        http: &ctx.http,
    });
    let mut found: Vec<(String, Token)> = Vec::new();
    let mut deploy: Vec<(String, DeployToken)> = Vec::new();
    if walk.personal {
        for t in pages::<Token>(&c, "/api/v4/personal_access_tokens?").await? {
            let owner = t.user_id.map(|u| format!("user-{u}")).unwrap_or_default();
            found.push((owner, t));
        }
    }
    for (enabled, entities, tokens) in [
        (walk.groups, "/api/v4/groups?min_access_level=50&", "groups"),
        (
            walk.projects,
            "/api/v4/projects?min_access_level=40&simple=true&",
            "projects",
        ),
    ] {
        if !enabled {
            continue;
        }
        let list = pages::<Entity>(&c, entities).await?;
        let permits = Arc::new(Semaphore::new(max_concurrency.max(1)));
        let mut each = Vec::new();
        for e in list {
            let path = e
                .full_path
                .or(e.path_with_namespace)
                .unwrap_or_else(|| e.id.to_string());
            let permits = permits.clone();
            let c = c.clone();
            let with_deploy = walk.deploy_tokens;
            each.push(async move {
                let _permit = permits.acquire_owned().await;
                let at = format!("/api/v4/{tokens}/{}/access_tokens?", e.id);
                let access = pages::<Token>(&c, &at).await;
                let deploy = if with_deploy && access.is_ok() {
                    let at = format!("/api/v4/{tokens}/{}/deploy_tokens?", e.id);
                    pages::<DeployToken>(&c, &at).await
                } else {
                    Ok(Vec::new())
                };
                (path, access, deploy)
            });
        }
        for (path, access, listed) in join_all(each).await {
            for t in access? {
                found.push((path.clone(), t));
            }
            for t in listed? {
                deploy.push((path.clone(), t));
            }
        }
    }
    if walk.instance_deploy_tokens {
        // The instance's list holds the walked ones too: those keep the owner the walk gave.
        let seen: std::collections::HashSet<u64> = deploy.iter().map(|(_, t)| t.id).collect();
        for t in pages::<DeployToken>(&c, "/api/v4/deploy_tokens?").await? {
            if !seen.contains(&t.id) {
                deploy.push((String::new(), t));
            }
        }
    }
    let mut listing = Listing::default();
    for (owner, t) in found {
        if !t.active || t.revoked {
            listing.skip("inactive");
            continue;
        }
        let where_ = if owner.is_empty() {
            "user".into()
        } else {
            owner.clone()
        };
        listing.tokens.push(Discovered {
            name: format!("{where_}/{}-{}", t.name, t.id),
            provider: provider.to_string(),
            secret: None,
            accessor: None,
            owner: (!owner.is_empty()).then_some(owner),
            state: Some("active".into()),
            identity: Identity::Listed(format!("gitlab:{}:{}", c.base, t.id)),
            expires_at: t.expires_at,
            issued_at: t.created_at,
            last_used_at: super::page::date(t.last_used_at, "a token's last_used_at")?,
            sliding_window_seconds: None,
        });
    }
    for (owner, t) in deploy {
        if t.revoked || t.expired {
            listing.skip("inactive");
            continue;
        }
        let where_ = if owner.is_empty() {
            "instance".into()
        } else {
            owner.clone()
        };
        listing.tokens.push(Discovered {
            name: format!("{where_}/deploy/{}-{}", t.name, t.id),
            provider: provider.to_string(),
            secret: None,
            accessor: None,
            owner: (!owner.is_empty()).then_some(owner),
            state: Some("active".into()),
            identity: Identity::Listed(format!("gitlab:{}:deploy:{}", c.base, t.id)),
            expires_at: super::page::date(t.expires_at, "a deploy token's expires_at")?,
            issued_at: None,
            last_used_at: None,
            sliding_window_seconds: None,
        });
    }
    listing.tokens.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(listing)
}

/// Runs the futures together (their bound is the semaphore they share); the results keep
/// the order of the list.
async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    futures_join(futures.into_iter().map(Box::pin).collect()).await
}

/// Polls every future until all are done.
async fn futures_join<F: std::future::Future>(
    mut futures: Vec<std::pin::Pin<Box<F>>>,
) -> Vec<F::Output> {
    let mut results: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in futures.iter_mut().enumerate() {
            if results[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => results[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

/// Every page of one list, following `x-next-page`.
async fn pages<T: for<'de> Deserialize<'de>>(c: &Ctx<'_>, path: &str) -> Result<Vec<T>, ListError> {
    let mut out = Vec::new();
    let mut page = 1u32;
    loop {
        if page > MAX_PAGES {
            return Err(ListError::new(
                FailReason::BadResponse,
                format!("a list is longer than {MAX_PAGES} pages"),
            ));
        }
        let url = format!("{}{path}per_page=100&page={page}", c.base);
        let request = c
            .http
            .get(url)
            .sensitive_header("private-token", (*c.token).clone());
        let resp = match tokio::time::timeout(c.timeout, http::send(request)).await {
            Ok(Ok(r)) => r,
            Ok(Err(outcome)) => {
                return Err(ListError::new(FailReason::Unreachable, outcome.detail));
            }
            Err(_) => {
                return Err(ListError::new(
                    FailReason::Unreachable,
                    format!("no answer within {}", humantime::format_duration(c.timeout)),
                ));
            }
        };
        if resp.status != 200 {
            let reason = FailReason::of_status(resp.status);
            let hint = match reason {
                FailReason::Unauthorized | FailReason::Forbidden => {
                    ": the credential needs read_api (and administrator for personal)"
                }
                _ => "",
            };
            return Err(ListError::of_answer(
                resp.status,
                &resp.headers,
                format!("page {page} of a list: HTTP {}{hint}", resp.status),
            ));
        }
        let items: Vec<T> = serde_json::from_slice(&resp.body).map_err(|_| {
            ListError::new(
                FailReason::BadResponse,
                format!("page {page} of a list is not the JSON array GitLab documents"),
            )
        })?;
        out.extend(items);
        match http::header(&resp.headers, "x-next-page").map(str::trim) {
            None | Some("") => return Ok(out),
            Some(next) => match next.parse::<u32>() {
                Ok(n) if n > page => page = n,
                _ => {
                    return Err(ListError::new(
                        FailReason::BadResponse,
                        "x-next-page does not name a later page",
                    ));
                }
            },
        }
    }
}
