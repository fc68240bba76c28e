//! Documentation that must stay true: README's provider section is the concatenation of
//! docs/providers/*.md and its alerts section is docs/alerts-and-dashboards.md (refresh both
//! with UPDATE_GOLDEN=1), every registered kind has a page, and
//! the metrics table names every family `/metrics` serves.

use std::path::Path;

const BEGIN: &str = "<!-- providers:begin (generated from docs/providers/*.md by `UPDATE_GOLDEN=1 cargo test --test docs`) -->";
const END: &str = "<!-- providers:end -->";
const ALERTS_BEGIN: &str = "<!-- alerts:begin (generated from docs/alerts-and-dashboards.md by `UPDATE_GOLDEN=1 cargo test --test docs`) -->";
const ALERTS_END: &str = "<!-- alerts:end -->";

/// The order pages appear in README: the registry's order.
const ORDER: &[&str] = &[
    "oauth2_introspection",
    "jwt",
    "github",
    "gitlab",
    "vault",
    "slack",
    "cloudflare",
    "google",
    "kubernetes",
    "static",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn provider_section() -> String {
    let dir = root().join("docs/providers");
    let mut pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    for page in &pages {
        assert!(
            ORDER.contains(&page.as_str()),
            "docs/providers/{page}.md is not in the README order list"
        );
    }
    pages.sort_by_key(|p| ORDER.iter().position(|o| o == p));
    let mut out = String::new();
    for page in pages {
        let text = std::fs::read_to_string(dir.join(format!("{page}.md"))).unwrap();
        out.push('\n');
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out.push('\n');
    out
}

/// Replaces the text between `<!-- NAME:begin ... -->` and `<!-- NAME:end -->` in README when
/// UPDATE_GOLDEN=1, and fails when it differs otherwise.
fn check_section(readme: &mut String, begin: &str, end: &str, wanted: &str) -> bool {
    let start = readme
        .find(begin)
        .unwrap_or_else(|| panic!("README lacks {begin}"))
        + begin.len();
    let stop = readme
        .find(end)
        .unwrap_or_else(|| panic!("README lacks {end}"));
    if readme[start..stop] == *wanted {
        return false;
    }
    assert!(
        std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1"),
        "README's section {begin} is out of date: run UPDATE_GOLDEN=1 cargo test --test docs"
    );
    *readme = format!("{}{}{}", &readme[..start], wanted, &readme[stop..]);
    true
}

#[test]
fn readme_generated_sections_are_current() {
    let path = root().join("README.md");
    let mut readme = std::fs::read_to_string(&path).unwrap();
    let alerts = std::fs::read_to_string(root().join("docs/alerts-and-dashboards.md")).unwrap();
    let mut changed = check_section(&mut readme, BEGIN, END, &provider_section());
    changed |= check_section(
        &mut readme,
        ALERTS_BEGIN,
        ALERTS_END,
        &format!("\n{}\n\n", alerts.trim_end()),
    );
    if changed {
        std::fs::write(&path, readme).unwrap();
    }
}

#[test]
fn every_registered_kind_has_a_page() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    // The kinds the registry accepts, read from the error for an unknown kind.
    let err = api_token_exporter::config::Config::parse("providers:\n  x:\n    kind: nope\n")
        .unwrap_err()
        .to_string();
    let list = err
        .split("expected one of ")
        .nth(1)
        .expect(&err)
        .split(" (line")
        .next()
        .unwrap();
    for kind in list.split(", ") {
        let kind = kind.trim_matches('`');
        assert!(
            root().join(format!("docs/providers/{kind}.md")).exists(),
            "no docs/providers/{kind}.md"
        );
        assert!(
            readme.contains(&format!("| `{kind}` |")),
            "README's provider table lacks {kind}"
        );
    }
}

#[test]
fn metrics_table_names_every_family() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let src = std::fs::read_to_string(root().join("src/metrics.rs")).unwrap();
    let mut n = 0;
    for (i, _) in src.match_indices("\"api_token_") {
        let name: String = src[i + 1..]
            .chars()
            .take_while(|c| *c != '"' && *c != '{')
            .collect();
        let counters = [
            "api_token_probes",
            "api_token_probe_failures",
            "api_token_notifications",
            "api_token_notification_failures",
            "api_token_exporter_http_connections_dropped",
        ];
        let shown = if counters.contains(&name.as_str()) {
            format!("{name}_total")
        } else {
            name
        };
        assert!(
            readme.contains(&format!("| `{shown}` |")),
            "README's metrics table lacks {shown}"
        );
        n += 1;
    }
    assert!(n >= 15, "found only {n} metric names in src/metrics.rs");
}
