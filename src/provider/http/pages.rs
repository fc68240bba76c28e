//! Reading a provider's paged list with the probed token: at most a set number of pages,
//! and a next link only where the caller's `follow` allows it (the token goes with every
//! call, so a link to another server must not be fetched).

use std::future::Future;

use super::Response;
use crate::model::ProbeOutcome;

/// How reading a paged list ended.
#[derive(Debug)]
pub enum Walk<T> {
    /// A page without a next link was read: the entries of every page.
    Done(Vec<T>),
    /// A call got no answer; the outcome says why.
    Unanswered(Box<ProbeOutcome>),
    /// A page was not the documented answer: the parser's reason.
    Bad(String),
    /// `follow` refused a next link: the entries read so far.
    Refused(Vec<T>),
    /// There was still a next page after the most pages allowed: the entries read.
    TooMany(Vec<T>),
}

/// Reads `first`, then each next page `follow(current, next)` returns, up to `max_pages`
/// calls. `fetch` makes one call; `parse` turns an answer into its entries and next link.
pub async fn walk<T, F, Fut>(
    first: &str,
    max_pages: usize,
    fetch: F,
    parse: impl Fn(u16, &[u8]) -> Result<(Vec<T>, Option<String>), String>,
    follow: impl Fn(&str, &str) -> Option<String>,
) -> Walk<T>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Response, ProbeOutcome>>,
{
    let mut url = first.to_string();
    let mut entries = Vec::new();
    for _ in 0..max_pages {
        let resp = match fetch(url.clone()).await {
            Ok(resp) => resp,
            Err(failed) => return Walk::Unanswered(Box::new(failed)),
        };
        let (page, next) = match parse(resp.status, &resp.body) {
            Ok(p) => p,
            Err(why) => return Walk::Bad(why),
        };
        entries.extend(page);
        let Some(next) = next else {
            return Walk::Done(entries);
        };
        match follow(&url, &next) {
            Some(next) => url = next,
            None => return Walk::Refused(entries),
        }
    }
    Walk::TooMany(entries)
}

/// The next page's URL: `next` read against the page it came from, kept only on the first
/// page's origin (the token goes with every call).
pub fn next_on_origin(first: &str, current: &str, next: &str) -> Option<String> {
    let first = url::Url::parse(first).ok()?;
    let resolved = url::Url::parse(current).ok()?.join(next).ok()?;
    (resolved.origin() == first.origin()).then(|| resolved.to_string())
}

#[cfg(test)]
mod tests;
