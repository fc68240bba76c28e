use std::sync::Mutex;

use super::*;
use crate::model::Reason;

/// A list whose page `n` holds the entry `n` and links to `next(n)`.
fn page(status: u16, n: u32, next: Option<String>) -> Response {
    let body = serde_json::json!({"entry": n, "next": next});
    Response {
        status,
        headers: Default::default(),
        body: serde_json::to_vec(&body).unwrap(),
    }
}

fn parse(status: u16, body: &[u8]) -> Result<(Vec<u32>, Option<String>), String> {
    if status != 200 {
        return Err(format!("HTTP {status}"));
    }
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    let next = v["next"].as_str().map(str::to_string);
    Ok((vec![v["entry"].as_u64().unwrap() as u32], next))
}

/// Runs `walk` over pages `answer(n)` with at most `max` pages; also returns the URLs called.
fn run(
    max: usize,
    answer: impl Fn(u32) -> Result<Response, ProbeOutcome>,
    follow: impl Fn(&str, &str) -> Option<String>,
) -> (Walk<u32>, Vec<String>) {
    let called = Mutex::new(Vec::new());
    let fetch = |url: String| {
        let n = url.rsplit('/').next().unwrap().parse::<u32>().unwrap();
        called.lock().unwrap().push(url);
        std::future::ready(answer(n))
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let walk = rt.block_on(walk("https://a/1", max, fetch, parse, follow));
    (walk, called.into_inner().unwrap())
}

fn same(_: &str, next: &str) -> Option<String> {
    next.starts_with("https://a/").then(|| next.to_string())
}

#[test]
fn reads_every_page_until_one_has_no_next_link() {
    let (walk, called) = run(
        5,
        |n| {
            Ok(page(
                200,
                n,
                (n < 3).then(|| format!("https://a/{}", n + 1)),
            ))
        },
        same,
    );
    assert!(
        matches!(walk, Walk::Done(ref e) if e == &[1, 2, 3]),
        "{walk:?}"
    );
    assert_eq!(called, ["https://a/1", "https://a/2", "https://a/3"]);
}

#[test]
fn stops_at_the_most_pages_allowed() {
    let (walk, called) = run(
        2,
        |n| Ok(page(200, n, Some(format!("https://a/{}", n + 1)))),
        same,
    );
    assert!(
        matches!(walk, Walk::TooMany(ref e) if e == &[1, 2]),
        "{walk:?}"
    );
    assert_eq!(called.len(), 2);
}

#[test]
fn a_refused_next_link_is_not_fetched() {
    let (walk, called) = run(
        5,
        |n| Ok(page(200, n, Some(format!("https://b/{}", n + 1)))),
        same,
    );
    assert!(
        matches!(walk, Walk::Refused(ref e) if e == &[1]),
        "{walk:?}"
    );
    assert_eq!(called, ["https://a/1"]);
}

#[test]
fn a_bad_page_or_no_answer_ends_the_reading() {
    let next = |n: u32| Some(format!("https://a/{}", n + 1));
    let (walk, _) = run(
        5,
        |n| Ok(page(if n == 2 { 500 } else { 200 }, n, next(n))),
        same,
    );
    assert!(
        matches!(walk, Walk::Bad(ref why) if why == "HTTP 500"),
        "{walk:?}"
    );
    let (walk, called) = run(
        5,
        |n| match n {
            1 => Ok(page(200, n, next(n))),
            _ => Err(ProbeOutcome::unreachable(Reason::Timeout, "slow")),
        },
        same,
    );
    assert!(
        matches!(walk, Walk::Unanswered(ref o) if o.reason == Reason::Timeout),
        "{walk:?}"
    );
    assert_eq!(called.len(), 2);
}
