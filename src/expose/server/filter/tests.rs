use super::*;

fn refused(raw: &str) -> QueryError {
    parse(raw).expect_err(raw)
}

#[test]
fn an_empty_query_admits_everything_without_a_limit() {
    for raw in ["", "&", "state=&team=&provider=&q=&limit=&after="] {
        let q = parse(raw).unwrap();
        assert_eq!(q, ViewQuery::default(), "{raw}");
        assert!(!q.filters());
        assert_eq!(q.href(), "");
    }
}

#[test]
fn limit_is_a_whole_number_from_one_to_the_maximum() {
    assert_eq!(parse("limit=1").unwrap().limit, Some(1));
    assert_eq!(parse("limit=1000").unwrap().limit, Some(MAX_LIMIT));
    assert_eq!(parse("limit=+7").unwrap().limit, Some(7));
    for raw in [
        "limit=0",
        "limit=1001",
        "limit=-1",
        "limit=ten",
        "limit=1.5",
        "limit=99999999999999999999999",
    ] {
        let e = refused(raw);
        assert_eq!(e.parameter, "limit", "{raw}");
        assert!(e.to_string().contains("from 1 to 1000"), "{e}");
    }
    assert_eq!(refused("limit=5&limit=6").parameter, "limit");
}

#[test]
fn unknown_parameters_and_states_are_refused_by_name_without_echoing_the_value() {
    let e = refused("stat=invalid");
    assert_eq!(e.parameter, "stat");
    assert!(e.message.contains("limit, after, q, state"), "{e}");
    for raw in [
        "glpat-Canary0123456789abcdef=1",
        "ghp_CANARY",
        "a%20b",
        "xoxb-canary",
    ] {
        let e = refused(raw);
        assert_eq!(e.parameter, "", "{raw}");
        assert!(!e.to_string().to_lowercase().contains("canary"), "{e}");
        assert!(
            e.to_string().starts_with("query: an unknown parameter"),
            "{e}"
        );
    }
    let e = refused("state=revoked-canary");
    assert_eq!(e.parameter, "state");
    assert!(!e.to_string().contains("canary"), "{e}");
    for state in state_names() {
        assert!(parse(&format!("state={state}")).is_ok(), "{state}");
    }
    assert!(state_names().contains(&"unknown") && state_names().contains(&"invalid"));
    let e = refused("after=glpat-canary");
    assert_eq!(e.parameter, "after");
    assert!(!e.to_string().contains("canary"), "{e}");
    let e = refused(&format!("q={}", "x".repeat(MAX_Q_CHARS + 1)));
    assert_eq!(e.parameter, "q");
    assert!(parse(&format!("q={}", "é".repeat(MAX_Q_CHARS))).is_ok());
    assert_eq!(refused("q=a&q=b").parameter, "q");
}

#[test]
fn repeated_values_are_kept_once_each_and_capped() {
    let q = parse("state=invalid&state=valid&state=invalid&team=a%20b&team=c%26d").unwrap();
    assert_eq!(q.states, ["invalid", "valid"]);
    assert_eq!(q.teams, ["a b", "c&d"]);
    let many: Vec<String> = (0..=MAX_VALUES).map(|i| format!("owner=o{i}")).collect();
    assert_eq!(refused(&many.join("&")).parameter, "owner");
    assert!(parse(&many[..MAX_VALUES].join("&")).is_ok());
}

#[test]
fn a_query_written_back_as_a_link_parses_to_itself() {
    let q = ViewQuery {
        limit: Some(50),
        after: Some(Cursor {
            rank: 3,
            expiry: 1_900_000_000,
            name: "a.b&c=d é".into(),
        }),
        q: "Deploy Bot".into(),
        states: vec!["invalid".into(), "unknown".into()],
        providers: vec!["git hub".into()],
        owners: vec!["o+1@example.com".into()],
        teams: vec!["<team>".into()],
        sources: vec!["entra/apps".into()],
    };
    let href = q.href();
    assert!(href.starts_with('?'), "{href}");
    assert_eq!(parse(&href[1..]).unwrap(), q);
    assert_eq!(q.first_page().after, None);
    let only = q.with_states(vec!["valid".into()]);
    assert_eq!((only.states, only.after), (vec!["valid".to_string()], None));
}

#[test]
fn cursors_read_back_what_they_write_and_refuse_the_rest() {
    for c in [
        Cursor {
            rank: 0,
            expiry: -5,
            name: "x".into(),
        },
        Cursor {
            rank: 255,
            expiry: i64::MAX,
            name: "name.with.dots".into(),
        },
    ] {
        assert_eq!(Cursor::parse(&c.to_string()), Some(c));
    }
    for bad in ["", "1", "1.2", "1.2.", "256.0.x", "a.0.x", "1.b.x", "1..x"] {
        assert_eq!(Cursor::parse(bad), None, "{bad}");
    }
}

fn parts<'a>(name: &'a str, state: &'a str, team: Option<&'a str>) -> Parts<'a> {
    Parts {
        name,
        state,
        provider: "github",
        owner: Some("alice"),
        team,
        source: None,
    }
}

#[test]
fn values_of_one_filter_are_ored_and_filters_are_anded() {
    let q = parse("state=invalid&state=unknown&team=platform").unwrap();
    assert!(q.admits(&parts("a", "invalid", Some("platform"))));
    assert!(q.admits(&parts("a", "unknown", Some("platform"))));
    assert!(!q.admits(&parts("a", "valid", Some("platform"))));
    assert!(!q.admits(&parts("a", "invalid", Some("data"))));
    // A token without the label never matches a filter on it.
    assert!(!q.admits(&parts("a", "invalid", None)));
    assert!(
        parse("owner=alice")
            .unwrap()
            .admits(&parts("a", "valid", None))
    );
    assert!(
        !parse("owner=bob")
            .unwrap()
            .admits(&parts("a", "valid", None))
    );
    assert!(
        parse("provider=gitlab&provider=github")
            .unwrap()
            .admits(&parts("a", "valid", None))
    );
}

#[test]
fn a_configured_token_has_no_source_and_matches_no_source_filter() {
    let configured = parts("a", "valid", None);
    assert!(!parse("source=config").unwrap().admits(&configured));
    let found = Parts {
        source: Some("entra"),
        ..configured
    };
    assert!(parse("source=gitlab&source=entra").unwrap().admits(&found));
    assert!(!parse("source=gitlab").unwrap().admits(&found));
    assert!(ViewQuery::default().admits(&found) && ViewQuery::default().admits(&configured));
}

#[test]
fn the_name_search_ignores_case_and_matches_anywhere() {
    assert!(contains_folded("Deploy-Bot", "deploy"));
    assert!(contains_folded("Deploy-Bot", "Y-BO"));
    assert!(contains_folded("x", ""));
    assert!(!contains_folded("dep", "deploy"));
    assert!(contains_folded("CAFÉ-token", "café"));
    assert!(!contains_folded("cafe-token", "café"));
    let q = parse("q=%20BOT%20").unwrap();
    assert_eq!(q.q, "BOT");
    assert!(q.admits(&parts("deploy-bot", "valid", None)));
    assert!(!q.admits(&parts("deploy", "valid", None)));
}

/// `n` entries whose keys repeat (rank and expiry), so names break ties, in a scrambled
/// order.
fn entries(n: usize) -> Vec<Entry<String>> {
    let mut out: Vec<Entry<String>> = (0..n)
        .map(|i| Entry {
            rank: (i % 3) as u8,
            expiry: if i % 4 == 0 {
                i64::MAX
            } else {
                1_000 + (i % 5) as i64
            },
            // `seq` in name order, as a scan of the store's sorted map gives it.
            seq: ((i * 7919) % 10_007) as u32,
            name: format!("t{:05}", (i * 7919) % 10_007),
        })
        .collect();
    out.reverse();
    out
}

fn sorted_keys(mut all: Vec<Entry<String>>) -> Vec<(u8, i64, String)> {
    all.sort_by(|a, b| a.cmp(b));
    all.into_iter()
        .map(|e| (e.rank, e.expiry, e.name))
        .collect()
}

fn keys(page: &[Entry<String>]) -> Vec<(u8, i64, String)> {
    page.iter()
        .map(|e| (e.rank, e.expiry, e.name.clone()))
        .collect()
}

#[test]
fn nothing_to_page_is_one_empty_page() {
    let s = select(Vec::<Entry<String>>::new(), None, Some(10));
    assert!(s.page.is_empty());
    assert_eq!(
        (s.matching, s.start, s.next, s.previous),
        (0, 0, None, None)
    );
    let c = Cursor::parse("1.1.x").unwrap();
    let s = select(Vec::<Entry<String>>::new(), Some(&c), Some(10));
    assert_eq!(
        (s.matching, s.start, s.next, s.previous),
        (0, 0, None, None)
    );
}

#[test]
fn pages_cover_every_entry_once_in_order_and_the_last_has_no_next() {
    for (n, limit) in [
        (1, 1),
        (9, 3),
        (10, 3),
        (11, 3),
        (250, 100),
        (200, 100),
        (37, 1000),
    ] {
        let want = sorted_keys(entries(n));
        let mut seen = Vec::new();
        let mut after: Option<Cursor> = None;
        let mut starts = Vec::new();
        loop {
            let s = select(entries(n), after.as_ref(), Some(limit));
            assert_eq!(s.matching, n);
            assert_eq!(s.start, seen.len(), "{n}/{limit}");
            assert!(s.page.len() <= limit);
            assert_eq!(s.previous.is_none(), s.start == 0);
            starts.push(after.clone());
            seen.extend(keys(&s.page));
            match s.next {
                Some(c) => {
                    assert_eq!(s.page.len(), limit, "only a full page has a next");
                    after = Some(c);
                }
                None => break,
            }
        }
        assert_eq!(seen, want, "{n} entries, {limit} a page");
        assert_eq!(starts.len(), n.div_ceil(limit).max(1));

        // Walking back from the last page with `previous` lands on each page's start.
        let mut back = after;
        for start in starts.iter().rev().skip(1) {
            let s = select(entries(n), back.as_ref(), Some(limit));
            back = match s.previous.expect("a previous page") {
                Back::First => None,
                Back::After(c) => Some(c),
            };
            assert_eq!(&back, start);
        }
    }
}

#[test]
fn without_a_limit_the_rest_is_one_page() {
    let s = select(entries(30), None, None);
    assert_eq!(keys(&s.page), sorted_keys(entries(30)));
    assert_eq!((s.next, s.previous), (None, None));
    let cut = keys(&s.page)[9].clone();
    let c = Cursor {
        rank: cut.0,
        expiry: cut.1,
        name: cut.2,
    };
    let s = select(entries(30), Some(&c), None);
    assert_eq!((s.start, s.page.len()), (10, 20));
    assert_eq!(s.previous, Some(Back::First));
}

#[test]
fn a_cursor_whose_token_is_gone_still_places_the_next_page() {
    let all = sorted_keys(entries(20));
    let gone = &all[7];
    let c = Cursor {
        rank: gone.0,
        expiry: gone.1,
        name: gone.2.clone(),
    };
    let rest: Vec<Entry<String>> = entries(20)
        .into_iter()
        .filter(|e| e.name != gone.2)
        .collect();
    let s = select(rest, Some(&c), Some(5));
    assert_eq!(s.start, 7);
    assert_eq!(keys(&s.page), all[8..13].to_vec());
}
