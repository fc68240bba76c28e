//! The query shared by `/` and `/api/v1/tokens`: its parsing, the filters, the urgency
//! order and keyset paging. Pure: the server takes the store's read lock around [`scan`] and
//! calls the rest without it.
//!
//! Paging is by cursor (`after`), not by offset: the cursor is the sort key of the last row
//! shown (rank, expiry as a Unix time, name), so a token added or removed elsewhere in the
//! order neither repeats nor skips a row of the next page. Only a token whose own urgency
//! changes between two requests can move across the cursor.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use crate::derive::view::{self, TokenView};
use crate::schema::spec::TokenSpec;
use crate::state::store::Inner;

/// Rows of a status page when the query names no `limit`.
pub const PAGE_LIMIT: usize = 100;
/// The largest `limit` either answer accepts.
pub const MAX_LIMIT: usize = 1000;
/// The longest `q`, in characters: a search box, not a document.
pub const MAX_Q_CHARS: usize = 200;
/// Values per filter parameter: a URL is not a list of every token.
pub const MAX_VALUES: usize = 100;

/// The parameters `/` and `/api/v1/tokens` accept; any other is refused.
pub const PARAMETERS: [&str; 8] = [
    "limit", "after", "q", "state", "provider", "owner", "team", "source",
];

/// A parsed query. Empty lists and `None` admit everything; values of one filter are
/// OR'ed, different filters AND'ed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ViewQuery {
    /// `None`: the API answers every matching token, the page [`PAGE_LIMIT`].
    pub limit: Option<usize>,
    pub after: Option<Cursor>,
    /// The search as typed (trimmed), matched case-insensitively against names.
    pub q: String,
    pub states: Vec<String>,
    pub providers: Vec<String>,
    pub owners: Vec<String>,
    pub teams: Vec<String>,
    pub sources: Vec<String>,
}

/// A refused query: the parameter at fault and why, never the value given (it is echoed
/// nowhere, whatever was pasted into it). An unknown parameter is named only when its name
/// looks like one ([`plausible_name`]); otherwise `parameter` is empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryError {
    pub parameter: String,
    pub message: String,
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.parameter.is_empty() {
            write!(f, "query: {}", self.message)
        } else {
            write!(f, "query parameter `{}`: {}", self.parameter, self.message)
        }
    }
}

/// Whether an unknown parameter's name may be repeated in the error: short, lowercase
/// letters, digits and `_`, as a mistyped parameter is and a pasted token is not.
fn plausible_name(key: &str) -> bool {
    (1..=24).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn refuse(parameter: &str, message: impl Into<String>) -> QueryError {
    QueryError {
        parameter: parameter.to_string(),
        message: message.into(),
    }
}

/// The state names a `state` filter accepts: every verdict and `unknown`.
pub fn state_names() -> Vec<&'static str> {
    view::count_states([]).into_iter().map(|(s, _)| s).collect()
}

/// Parses a raw query string (`application/x-www-form-urlencoded`, as a GET form sends
/// it). An empty value is no filter, so a form's untouched fields change nothing.
pub fn parse(raw: &str) -> Result<ViewQuery, QueryError> {
    let mut query = ViewQuery::default();
    let mut seen_limit = false;
    let mut seen_after = false;
    let mut seen_q = false;
    for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        let value = value.trim();
        let once = |seen: &mut bool| {
            if std::mem::replace(seen, true) {
                Err(refuse(&key, "given more than once"))
            } else {
                Ok(())
            }
        };
        match &*key {
            "limit" => {
                once(&mut seen_limit)?;
                if value.is_empty() {
                    continue;
                }
                let n: usize = value.parse().map_err(|_| {
                    refuse(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_LIMIT}"),
                    )
                })?;
                if !(1..=MAX_LIMIT).contains(&n) {
                    return Err(refuse(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_LIMIT}"),
                    ));
                }
                query.limit = Some(n);
            }
            "after" => {
                once(&mut seen_after)?;
                if !value.is_empty() {
                    query.after = Some(Cursor::parse(value).ok_or_else(|| {
                        refuse(
                            "after",
                            "not a cursor: pass the `next` of a previous answer unchanged",
                        )
                    })?);
                }
            }
            "q" => {
                once(&mut seen_q)?;
                if value.chars().count() > MAX_Q_CHARS {
                    return Err(refuse("q", format!("longer than {MAX_Q_CHARS} characters")));
                }
                query.q = value.to_string();
            }
            "state" => {
                if !value.is_empty() && !state_names().contains(&value) {
                    return Err(refuse(
                        "state",
                        format!("not a state; one of {}", state_names().join(", ")),
                    ));
                }
                push(&mut query.states, "state", value)?;
            }
            "provider" => push(&mut query.providers, "provider", value)?,
            "owner" => push(&mut query.owners, "owner", value)?,
            "team" => push(&mut query.teams, "team", value)?,
            "source" => push(&mut query.sources, "source", value)?,
            _ => {
                let known = PARAMETERS.join(", ");
                return Err(if plausible_name(&key) {
                    refuse(&key, format!("unknown; the parameters are {known}"))
                } else {
                    refuse(
                        "",
                        format!("an unknown parameter; the parameters are {known}"),
                    )
                });
            }
        }
    }
    Ok(query)
}

fn push(list: &mut Vec<String>, parameter: &str, value: &str) -> Result<(), QueryError> {
    if value.is_empty() || list.iter().any(|v| v == value) {
        return Ok(());
    }
    if list.len() == MAX_VALUES {
        return Err(refuse(parameter, format!("more than {MAX_VALUES} values")));
    }
    list.push(value.to_string());
    Ok(())
}

/// What the filters read of a token, from its state or from its view alike.
#[derive(Clone, Copy, Debug)]
pub struct Parts<'a> {
    pub name: &'a str,
    pub state: &'a str,
    pub provider: &'a str,
    pub owner: Option<&'a str>,
    pub team: Option<&'a str>,
    /// Where the token was found; `None` for a token written in the config.
    pub source: Option<&'a str>,
}

impl<'a> Parts<'a> {
    pub fn of_view(v: &'a TokenView) -> Self {
        Parts {
            name: &v.name,
            state: &v.state,
            provider: &v.provider,
            owner: v.labels.get("owner").map(String::as_str),
            team: v.labels.get("team").map(String::as_str),
            source: v.source.as_deref(),
        }
    }
}

/// The source a token was discovered by; a configured token has none.
fn source_of(spec: &TokenSpec) -> Option<&str> {
    spec.source.as_deref()
}

impl ViewQuery {
    /// Whether a token passes every filter (not the paging).
    pub fn admits(&self, p: &Parts<'_>) -> bool {
        let one_of = |list: &[String], value: Option<&str>| {
            list.is_empty() || value.is_some_and(|v| list.iter().any(|l| l == v))
        };
        one_of(&self.states, Some(p.state))
            && one_of(&self.providers, Some(p.provider))
            && one_of(&self.owners, p.owner)
            && one_of(&self.teams, p.team)
            && one_of(&self.sources, p.source)
            && contains_folded(p.name, &self.q)
    }

    /// Whether any filter is set (paging aside).
    pub fn filters(&self) -> bool {
        !(self.q.is_empty()
            && self.states.is_empty()
            && self.providers.is_empty()
            && self.owners.is_empty()
            && self.teams.is_empty()
            && self.sources.is_empty())
    }

    /// The query string (`?...`, or empty) that asks for this query again: filters, limit
    /// and cursor, each encoded.
    pub fn href(&self) -> String {
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        if !self.q.is_empty() {
            out.append_pair("q", &self.q);
        }
        for (name, list) in [
            ("state", &self.states),
            ("provider", &self.providers),
            ("owner", &self.owners),
            ("team", &self.teams),
            ("source", &self.sources),
        ] {
            for v in list {
                out.append_pair(name, v);
            }
        }
        if let Some(limit) = self.limit {
            out.append_pair("limit", &limit.to_string());
        }
        if let Some(after) = &self.after {
            out.append_pair("after", &after.to_string());
        }
        let text = out.finish();
        if text.is_empty() {
            text
        } else {
            format!("?{text}")
        }
    }

    /// The same filters from the first page.
    pub fn first_page(&self) -> ViewQuery {
        ViewQuery {
            after: None,
            ..self.clone()
        }
    }

    /// The same filters, limit and cursor with the state filter replaced.
    pub fn with_states(&self, states: Vec<String>) -> ViewQuery {
        ViewQuery {
            states,
            after: None,
            ..self.clone()
        }
    }
}

/// Whether `hay` contains `needle` ignoring case; an empty needle is in everything. ASCII
/// needles (the usual search) compare without allocating, as this runs for every token
/// under the store's lock.
pub fn contains_folded(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if needle.is_ascii() {
        let n = needle.len();
        return hay
            .as_bytes()
            .windows(n)
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()));
    }
    hay.to_lowercase().contains(&needle.to_lowercase())
}

/// A position in the order: the sort key of the last row of a page.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub rank: u8,
    /// Unix seconds of the expiry, `i64::MAX` when there is none.
    pub expiry: i64,
    pub name: String,
}

impl Cursor {
    /// `rank.expiry.name`, as [`Cursor`]'s `Display` writes it.
    pub fn parse(text: &str) -> Option<Cursor> {
        let mut parts = text.splitn(3, '.');
        let rank = parts.next()?.parse().ok()?;
        let expiry = parts.next()?.parse().ok()?;
        let name = parts.next()?;
        (!name.is_empty()).then(|| Cursor {
            rank,
            expiry,
            name: name.to_string(),
        })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.rank, self.expiry, self.name)
    }
}

/// A token in the order: its key, and something that names it.
#[derive(Clone, Debug)]
pub struct Entry<N> {
    pub rank: u8,
    pub expiry: i64,
    /// The name's place among the names of one scan (the store's map is sorted by name):
    /// ties are broken by name without reading it, which at 50,000 tokens would be a cache
    /// miss per comparison.
    pub seq: u32,
    pub name: N,
}

impl<N: AsRef<str>> Entry<N> {
    fn cmp_key(&self, rank: u8, expiry: i64, name: &str) -> Ordering {
        (self.rank, self.expiry)
            .cmp(&(rank, expiry))
            .then_with(|| self.name.as_ref().cmp(name))
    }

    fn cmp(&self, other: &Self) -> Ordering {
        (self.rank, self.expiry, self.seq).cmp(&(other.rank, other.expiry, other.seq))
    }

    fn cursor(&self) -> Cursor {
        Cursor {
            rank: self.rank,
            expiry: self.expiry,
            name: self.name.as_ref().to_string(),
        }
    }

    fn after(&self, cursor: &Cursor) -> bool {
        self.cmp_key(cursor.rank, cursor.expiry, &cursor.name) == Ordering::Greater
    }
}

/// Where the previous page starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Back {
    First,
    After(Cursor),
}

/// One page of the order.
#[derive(Debug)]
pub struct Selection<N> {
    /// The page's tokens, most urgent first.
    pub page: Vec<Entry<N>>,
    /// Tokens that match the filters, on every page.
    pub matching: usize,
    /// How many matching tokens come before the page.
    pub start: usize,
    /// The cursor of the next page; `None` on the last.
    pub next: Option<Cursor>,
    /// The start of the previous page; `None` on the first.
    pub previous: Option<Back>,
}

/// The page of `entries` (every matching token, in any order, `seq` in name order) after
/// `after`, at most `limit` long, most urgent first: linear in the entries, sorting only the
/// page.
pub fn select<N: AsRef<str>>(
    entries: Vec<Entry<N>>,
    after: Option<&Cursor>,
    limit: Option<usize>,
) -> Selection<N> {
    let matching = entries.len();
    let (mut before, mut rest): (Vec<Entry<N>>, Vec<Entry<N>>) = match after {
        Some(c) => entries.into_iter().partition(|e| !e.after(c)),
        None => (Vec::new(), entries),
    };
    let start = before.len();
    if let Some(l) = limit.filter(|l| *l > 0 && rest.len() > *l) {
        rest.select_nth_unstable_by(l - 1, Entry::cmp);
        rest.truncate(l);
    }
    rest.sort_unstable_by(Entry::cmp);
    let next = (start + rest.len() < matching)
        .then(|| rest.last().map(Entry::cursor))
        .flatten();
    let previous = match limit {
        _ if start == 0 => None,
        Some(l) if start > l => {
            let (_, e, _) = before.select_nth_unstable_by(start - l - 1, Entry::cmp);
            Some(Back::After(e.cursor()))
        }
        _ => Some(Back::First),
    };
    Selection {
        page: rest,
        matching,
        start,
        next,
        previous,
    }
}

/// What one pass over the store under its read lock gives an answer.
pub struct Scan<'a> {
    /// The tokens the query admits, unordered, named by the store's own keys.
    pub entries: Vec<Entry<&'a str>>,
    /// Every token of the store.
    pub total: usize,
    /// Counts per state over the whole store, in [`view::count_states`]' order.
    pub counts: Vec<(&'static str, usize)>,
    /// The distinct values the page offers as filter choices; empty unless asked for.
    pub choices: Choices,
}

#[derive(Debug, Default)]
pub struct Choices {
    pub providers: BTreeSet<String>,
    pub teams: BTreeSet<String>,
    pub sources: BTreeSet<String>,
}

/// One pass over the store (under its read lock): the admitted tokens with their sort keys,
/// the counts, and, when `choices`, the values the page's filters offer. Copies no name and
/// reads a token's labels only when a filter or the choices need them.
pub fn scan<'a>(
    inner: &'a Inner,
    query: &ViewQuery,
    now: jiff::Timestamp,
    choices: bool,
) -> Scan<'a> {
    let mut counts = view::count_states([]);
    let mut entries = Vec::new();
    let mut offered: [BTreeSet<&str>; 3] = Default::default();
    let owners = !query.owners.is_empty();
    let teams = choices || !query.teams.is_empty();
    for (seq, (name, s)) in inner.tokens.iter().enumerate() {
        let label = |want: bool, key: &str| {
            want.then(|| s.spec.labels.get(key).map(String::as_str))
                .flatten()
        };
        let parts = Parts {
            name,
            state: view::state_name(s),
            provider: &s.spec.provider,
            owner: label(owners, "owner"),
            team: label(teams, "team"),
            source: source_of(&s.spec),
        };
        if let Some(c) = counts.iter_mut().find(|(n, _)| *n == parts.state) {
            c.1 += 1;
        }
        if choices {
            offered[0].insert(parts.provider);
            offered[1].extend(parts.team);
            offered[2].extend(parts.source);
        }
        if query.admits(&parts) {
            let (rank, left) = view::urgency_of(s, now);
            entries.push(Entry {
                rank,
                expiry: absolute(left, now),
                // A store of more than 4 billion tokens is not a case.
                seq: seq as u32,
                name: name.as_str(),
            });
        }
    }
    let owned = |set: &BTreeSet<&str>| set.iter().map(|s| s.to_string()).collect();
    Scan {
        entries,
        total: inner.tokens.len(),
        counts,
        choices: Choices {
            providers: owned(&offered[0]),
            teams: owned(&offered[1]),
            sources: owned(&offered[2]),
        },
    }
}

/// The urgency's time left as the expiry's Unix time: a cursor outlives the request that
/// wrote it, and time left moves with the clock.
fn absolute(left: i64, now: jiff::Timestamp) -> i64 {
    if left == i64::MAX {
        left
    } else {
        left.saturating_add(now.as_second())
    }
}

#[cfg(test)]
mod tests;
