//! The layout invariant: the top-level modules are the pipeline's stages, and a module
//! imports only from its own stage or an earlier one. Reads the sources, so a reversed
//! import fails here whether it is a `use` line or an inline path.

use std::path::{Path, PathBuf};

/// The stages in pipeline order. A module may name `crate::<stage>` only for its own stage
/// or one listed before it. There is no allow-list: an exception is a new cycle.
const STAGES: [&str; 13] = [
    "model", "secret", "schema", "provider", "config", "sources", "state", "derive", "probe",
    "rotate", "notify", "expose", "app",
];

/// Files outside every stage: the index and the binary name no `crate::` stage of their own.
const OUTSIDE: [&str; 3] = ["lib.rs", "main.rs", "layout_tests.rs"];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every module name written after `crate::`, including each item of a `crate::{a, b}` group.
fn crate_refs(text: &str) -> Vec<String> {
    let mut refs = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        // `api_token_crate::` or `my_crate::` is another path, not this crate's root.
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    refs.push(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            refs.push(name);
        }
    }
    refs
}

/// Each source file with its stage: the first path component under `src/`.
fn staged_sources() -> Vec<(String, usize, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if OUTSIDE.contains(&rel.as_str()) {
            continue;
        }
        let top = rel.split('/').next().unwrap().trim_end_matches(".rs");
        let stage = STAGES
            .iter()
            .position(|s| *s == top)
            .unwrap_or_else(|| panic!("src/{rel} is in no stage: add it to a stage folder"));
        out.push((rel, stage, std::fs::read_to_string(&file).unwrap()));
    }
    out
}

/// The violations in one file: names of a later stage, or of no stage (a facade path from
/// `lib.rs` would hide which stage the code depends on).
fn violations(rel: &str, stage: usize, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for name in crate_refs(text) {
        match STAGES.iter().position(|s| *s == name) {
            Some(target) if target <= stage => {}
            Some(_) => found.push(format!(
                "src/{rel} ({}) imports crate::{name}, a later stage",
                STAGES[stage]
            )),
            None => found.push(format!(
                "src/{rel} names crate::{name}, which is not a stage (name the stage path)"
            )),
        }
    }
    found
}

#[test]
fn imports_point_only_to_earlier_stages() {
    let files = staged_sources();
    assert!(files.len() > 40, "found only {} source files", files.len());
    let mut all = Vec::new();
    for (rel, stage, text) in &files {
        all.extend(violations(rel, *stage, text));
    }
    all.sort();
    all.dedup();
    assert!(
        all.is_empty(),
        "imports against the pipeline:\n{}",
        all.join("\n")
    );
}

/// The most lines a source file other than a test module may have: past it a file is doing
/// more than one job, and is split along them.
const MAX_LINES: usize = 700;

/// Test modules live in their own files (`tests.rs`, `*_tests.rs`) next to the code, so the
/// budget counts the code.
fn is_test_file(rel: &str) -> bool {
    rel.ends_with("/tests.rs") || rel.ends_with("_tests.rs") || rel == "tests.rs"
}

#[test]
fn no_source_file_is_over_the_line_budget() {
    let over: Vec<String> = staged_sources()
        .into_iter()
        .filter(|(rel, _, text)| !is_test_file(rel) && text.lines().count() > MAX_LINES)
        .map(|(rel, _, text)| format!("src/{rel}: {} lines", text.lines().count()))
        .collect();
    assert!(
        over.is_empty(),
        "over {MAX_LINES} lines:\n{}",
        over.join("\n")
    );
}

#[test]
fn every_stage_is_a_module_of_the_index() {
    let lib = include_str!("lib.rs");
    for stage in STAGES {
        assert!(
            lib.contains(&format!("\npub mod {stage};\n")),
            "lib.rs does not declare stage {stage}"
        );
    }
}

#[test]
fn the_checker_catches_a_reversed_import() {
    let store = STAGES.iter().position(|s| *s == "state").unwrap();
    let model = STAGES.iter().position(|s| *s == "model").unwrap();
    assert!(violations("state/store.rs", store, "use crate::model::Verdict;\n").is_empty());
    assert_eq!(
        violations("model/mod.rs", model, "use crate::state::store::Store;\n").len(),
        1
    );
    assert_eq!(
        violations(
            "model/mod.rs",
            model,
            "use crate::{secret::Secret, expose};\n"
        )
        .len(),
        2
    );
    assert_eq!(
        violations(
            "model/mod.rs",
            model,
            "fn f() { crate::app::run::run(); }\n"
        )
        .len(),
        1
    );
    assert_eq!(
        violations("model/mod.rs", model, "use crate::store;\n").len(),
        1
    );
    assert!(violations("model/mod.rs", model, "use api_token_crate::app;\n").is_empty());
}
