//! Documentation that must stay true: README.md is a landing page of at most 20 KB that routes
//! into `docs/`; every relative link in README.md, ARCHITECTURE.md, BENCHMARKS.md and `docs/`
//! reaches a file (and a heading, when it names one); every kind the provider registry accepts
//! has a page under `docs/providers/` and a README row linking it, and every page there is a
//! registered kind; and `docs/metrics.md` names every family `/metrics` serves, README's
//! compact list too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The landing page stays something a newcomer reads to the end: reference text belongs on a
/// page under `docs/`, linked from README's "Where to go" table.
const README_MAX_BYTES: usize = 20 * 1024;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// The kinds the registry accepts: the registry's own list, which its unit tests hold equal
/// to the kinds the config decoder accepts, so a kind added there is checked here too.
fn registered_kinds() -> Vec<String> {
    api_token_exporter::provider::KINDS
        .iter()
        .map(|k| k.to_string())
        .collect()
}

/// Lines of markdown outside fenced code blocks, where links and headings live.
fn prose_lines(text: &str) -> Vec<&str> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push(line);
        }
    }
    out
}

/// The targets of inline links and images, `[text](target)`, outside code blocks and code spans.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose_lines(text) {
        // Drop code spans so that `a[i](x)` in code is not read as a link.
        let mut plain = String::new();
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 0 {
                plain.push_str(part);
            }
        }
        let mut rest = plain.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].trim().to_string());
            rest = &after[end..];
        }
    }
    out
}

/// GitHub's anchor for a heading: lower case, spaces to `-`, punctuation other than `-` and
/// `_` dropped, and `-1`, `-2`... for repeats.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for line in prose_lines(text) {
        let Some(title) = line.strip_prefix('#') else {
            continue;
        };
        let title = title.trim_start_matches('#');
        if !title.starts_with(' ') {
            continue;
        }
        let slug: String = title
            .trim()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                '-' | '_' => Some(c),
                c if c.is_alphanumeric() => Some(c.to_ascii_lowercase()),
                _ => None,
            })
            .collect();
        let mut candidate = slug.clone();
        let mut n = 0;
        while seen.contains(&candidate) {
            n += 1;
            candidate = format!("{slug}-{n}");
        }
        seen.insert(candidate);
    }
    seen
}

/// README.md, ARCHITECTURE.md, BENCHMARKS.md and every page under `docs/`, relative to the
/// repository. `docs/hardening/` holds notes for the maintainers, not pages, and is left out.
fn doc_files() -> Vec<String> {
    let mut files: Vec<String> = ["README.md", "ARCHITECTURE.md", "BENCHMARKS.md"]
        .map(String::from)
        .to_vec();
    let mut dirs = vec![PathBuf::from("docs")];
    while let Some(dir) = dirs.pop() {
        if dir == Path::new("docs/hardening") {
            continue;
        }
        for entry in std::fs::read_dir(root().join(&dir)).unwrap() {
            let path = dir.join(entry.unwrap().file_name());
            if root().join(&path).is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path.to_string_lossy().into_owned());
            }
        }
    }
    files.sort();
    files
}

/// Every problem with the relative links of one markdown file.
fn broken_links(rel: &str, text: &str) -> Vec<String> {
    let base = Path::new(rel).parent().unwrap_or(Path::new(""));
    let mut broken = Vec::new();
    for link in links(text) {
        if link.contains("://") || link.starts_with("mailto:") || link.is_empty() {
            continue;
        }
        let (path, anchor) = match link.split_once('#') {
            Some((p, a)) => (p, Some(a)),
            None => (link.as_str(), None),
        };
        let target = if path.is_empty() {
            root().join(rel)
        } else {
            root().join(base).join(path)
        };
        if !target.exists() {
            broken.push(format!(
                "{rel}: link {link:?}: no file {}",
                target.display()
            ));
            continue;
        }
        if let Some(anchor) = anchor {
            let is_md = target.extension().is_some_and(|e| e == "md");
            let heads = if is_md {
                anchors(&std::fs::read_to_string(&target).unwrap())
            } else {
                BTreeSet::new()
            };
            if !heads.contains(anchor) {
                broken.push(format!(
                    "{rel}: link {link:?}: no heading #{anchor} in {}",
                    target.display()
                ));
            }
        }
    }
    broken
}

#[test]
fn readme_is_a_landing_page_of_at_most_20_kb() {
    let size = read("README.md").len();
    assert!(
        size <= README_MAX_BYTES,
        "README.md is {size} bytes, over {README_MAX_BYTES}: move the reference text to a page under docs/ and link it"
    );
}

#[test]
fn readme_routes_to_every_reference_page() {
    let readme = read("README.md");
    let targets: BTreeSet<String> = links(&readme)
        .into_iter()
        .map(|l| l.split('#').next().unwrap().to_string())
        .collect();
    for page in [
        "docs/configuration.md",
        "docs/notifications.md",
        "docs/metrics.md",
        "docs/http-api.md",
        "docs/command-line.md",
        "docs/alerts-and-dashboards.md",
        "docs/security.md",
        "docs/sharding.md",
        "docs/development.md",
        "BENCHMARKS.md",
        "ARCHITECTURE.md",
    ] {
        assert!(targets.contains(page), "README.md does not link {page}");
    }
    // Every top-level page under docs/ is reachable from README.
    for file in doc_files() {
        let Some(page) = file.strip_prefix("docs/") else {
            continue;
        };
        if !page.contains('/') {
            assert!(targets.contains(&file), "README.md does not link {file}");
        }
    }
}

#[test]
fn every_relative_link_resolves() {
    let mut broken = Vec::new();
    let files = doc_files();
    assert!(files.len() >= 20, "found only {files:?}");
    for rel in &files {
        broken.extend(broken_links(rel, &read(rel)));
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_checker_sees_a_broken_file_and_a_broken_anchor() {
    let text = "[ok](docs/metrics.md) [gone](docs/nope.md) [bad](docs/metrics.md#nope) \
                [head](#verdict-states)\n## Verdict states\n```\n[code](nope.md)\n```\n";
    let broken = broken_links("README.md", text);
    assert_eq!(broken.len(), 2, "{broken:?}");
    assert!(broken[0].contains("docs/nope.md"), "{broken:?}");
    assert!(broken[1].contains("#nope"), "{broken:?}");
    assert!(
        anchors("## `notify-test`: check a receiver\n## TLS, basic auth: `--web.config.file`\n")
            == BTreeSet::from([
                "notify-test-check-a-receiver".to_string(),
                "tls-basic-auth---webconfigfile".to_string()
            ])
    );
}

#[test]
fn every_registered_kind_has_a_page_and_a_readme_row() {
    let readme = read("README.md");
    let kinds = registered_kinds();
    for kind in &kinds {
        assert!(
            root().join(format!("docs/providers/{kind}.md")).exists(),
            "no docs/providers/{kind}.md"
        );
        let row = format!("| [`{kind}`](docs/providers/{kind}.md) |");
        assert!(
            readme.lines().any(|l| l.starts_with(&row)),
            "README's provider table has no row starting {row:?}"
        );
    }
    // And every page is a registered kind, so a page cannot outlive its kind unlinked.
    for entry in std::fs::read_dir(root().join("docs/providers")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let kind = name.strip_suffix(".md").unwrap_or(&name);
        assert!(
            kinds.iter().any(|k| k == kind),
            "docs/providers/{name} is not a registered kind ({kinds:?})"
        );
    }
}

#[test]
fn metrics_table_names_every_family() {
    let table = read("docs/metrics.md");
    let readme = read("README.md");
    let src = read("src/expose/metrics/families.rs");
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
            "api_token_exporter_web_auth_refused",
            "api_token_exporter_answer_caps_applied",
            "api_token_exporter_http_requests_refused",
            "api_token_exporter_http_connections_dropped",
            "api_token_rotations",
            "api_token_source_failures",
        ];
        let shown = if counters.contains(&name.as_str()) {
            format!("{name}_total")
        } else {
            name
        };
        assert!(
            table.contains(&format!("| `{shown}` |")),
            "docs/metrics.md's metrics table lacks {shown}"
        );
        assert!(
            readme.contains(&format!("`{shown}`")),
            "README's list of metric names lacks {shown}"
        );
        n += 1;
    }
    assert!(
        n >= 15,
        "found only {n} metric names in src/expose/metrics/families.rs"
    );
}
