//! The status page's controls: the state badges, the search and filter form, and the page
//! links. Plain links and a GET form, so the page needs no JavaScript and every view of it
//! is a URL that can be shared.

use std::fmt::Write as _;

use super::escape;
use super::filter::{Back, Choices, Cursor, ViewQuery};

/// Past this many distinct values a filter is a text field, not a list: a page of 50,000
/// tokens must not carry a `<select>` of 50,000 options.
pub const MAX_CHOICES: usize = 200;

/// The table's head, after the controls.
pub const TABLE_HEAD: &str = "<table><thead><tr><th>Token</th><th>State</th><th>Expires</th><th>Provider</th><th>Owner / team</th><th>Scopes</th><th>Policies</th><th>Last probe</th></tr></thead><tbody>";

/// What the top of the status page says about the whole store and this page of it.
pub struct PageSummary {
    /// Rows on this page.
    pub shown: usize,
    /// Tokens that match the filters, on every page.
    pub matching: usize,
    /// Matching tokens before this page.
    pub start: usize,
    /// Tokens in the store.
    pub total: usize,
    /// Per state, over the whole store.
    pub counts: Vec<(&'static str, usize)>,
    pub choices: Choices,
    pub next: Option<Cursor>,
    pub previous: Option<Back>,
}

/// "tokens 101-200 of 4,210 matching (50,000 in all)".
pub fn shown(s: &PageSummary) -> String {
    let range = if s.shown == 0 {
        "no token".to_string()
    } else {
        format!("tokens {}&ndash;{}", s.start + 1, s.start + s.shown)
    };
    format!("{range} of {} matching ({} in all)", s.matching, s.total)
}

/// A link to `query`, as an `href` value.
fn href(query: &ViewQuery) -> String {
    escape(&format!("/{}", query.href()))
}

/// One badge per state with its count over the whole store; each sets the state filter to
/// that state alone, or clears it when it is the only one set. Other filters are kept.
pub fn badges(html: &mut String, s: &PageSummary, filter: &ViewQuery) {
    html.push_str("<nav>");
    for &(state, n) in &s.counts {
        let on = filter.states.iter().any(|v| v == state);
        let states = if on && filter.states.len() == 1 {
            Vec::new()
        } else {
            vec![state.to_string()]
        };
        let _ = write!(
            html,
            "<a class=\"badge s-{state}{}\" href=\"{}\">{state}: {n}</a>",
            if on { " on" } else { "" },
            href(&filter.with_states(states))
        );
    }
    html.push_str("</nav>");
}

/// A `<select>` of `values` with "all" first, or a text field past [`MAX_CHOICES`].
fn choice<'a>(
    name: &str,
    values: impl ExactSizeIterator<Item = &'a str>,
    current: &[String],
) -> String {
    // A single field holds one value; several (from a URL) show as "all" and are replaced
    // by whatever the form submits.
    let current = match current {
        [one] => one.as_str(),
        _ => "",
    };
    if values.len() > MAX_CHOICES {
        return format!(
            "<label>{name} <input type=\"text\" name=\"{name}\" value=\"{}\" size=\"12\"></label>",
            escape(current)
        );
    }
    let mut out = format!("<label>{name} <select name=\"{name}\"><option value=\"\">all</option>");
    for v in values {
        let selected = if v == current { " selected" } else { "" };
        let _ = write!(
            out,
            "<option value=\"{0}\"{selected}>{0}</option>",
            escape(v)
        );
    }
    out.push_str("</select></label>");
    out
}

/// The search and filter form: a plain GET to `/`, starting again from the first page.
pub fn form(html: &mut String, s: &PageSummary, filter: &ViewQuery) {
    let mut states: Vec<&str> = s.counts.iter().map(|(name, _)| *name).collect();
    states.sort_unstable();
    let c = &s.choices;
    let _ = write!(
        html,
        "<form method=\"get\" action=\"/\"><label>name <input type=\"search\" name=\"q\" value=\"{}\" size=\"16\"></label>{}{}{}",
        escape(&filter.q),
        choice("state", states.into_iter(), &filter.states),
        choice("team", c.teams.iter().map(String::as_str), &filter.teams),
        choice(
            "provider",
            c.providers.iter().map(String::as_str),
            &filter.providers
        ),
    );
    // Only tokens found by a source have one; without any the list would offer nothing.
    if !c.sources.is_empty() {
        html.push_str(&choice(
            "source",
            c.sources.iter().map(String::as_str),
            &filter.sources,
        ));
    }
    let owner = match filter.owners.as_slice() {
        [one] => one.as_str(),
        _ => "",
    };
    let _ = write!(
        html,
        "<label>owner <input type=\"text\" name=\"owner\" value=\"{}\" size=\"16\"></label>",
        escape(owner)
    );
    if let Some(limit) = filter.limit {
        let _ = write!(
            html,
            "<input type=\"hidden\" name=\"limit\" value=\"{limit}\">"
        );
    }
    html.push_str("<button type=\"submit\">Filter</button> <a href=\"/\">clear</a></form>");
}

/// The links to the first, previous and next pages, where there are such pages.
pub fn nav(s: &PageSummary, filter: &ViewQuery) -> String {
    let mut links = Vec::new();
    if let Some(back) = &s.previous {
        links.push(format!(
            "<a rel=\"first\" href=\"{}\">&laquo; first</a>",
            href(&filter.first_page())
        ));
        let after = match back {
            Back::First => None,
            Back::After(c) => Some(c.clone()),
        };
        links.push(format!(
            "<a rel=\"prev\" href=\"{}\">&lsaquo; previous</a>",
            href(&ViewQuery {
                after,
                ..filter.clone()
            })
        ));
    }
    if let Some(next) = &s.next {
        links.push(format!(
            "<a rel=\"next\" href=\"{}\">next &rsaquo;</a>",
            href(&ViewQuery {
                after: Some(next.clone()),
                ..filter.clone()
            })
        ));
    }
    if links.is_empty() {
        return String::new();
    }
    format!("<p class=\"pages\">{}</p>", links.concat())
}
