//! The layout of `tests/` itself: every area file is compiled into this binary, the only other
//! test binaries are the ones that must run alone, and nothing here changes what the whole
//! process shares.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn rs_stems(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// A file in `tests/it/` without its `mod` line is never compiled, so its tests would silently
/// stop running; a `mod` line without its file does not compile.
#[test]
fn every_area_file_is_a_module_of_the_binary() {
    let dir = tests_dir().join("it");
    let main = fs::read_to_string(dir.join("main.rs")).unwrap();
    let declared: BTreeSet<String> = main
        .lines()
        .filter_map(|l| l.strip_prefix("mod ")?.strip_suffix(';'))
        .filter(|m| *m != "support")
        .map(str::to_string)
        .collect();
    let mut files = rs_stems(&dir);
    files.remove("main");
    let missing: Vec<_> = files.difference(&declared).collect();
    assert!(
        missing.is_empty(),
        "tests/it/ files without a `mod` line in tests/it/main.rs: {missing:?}"
    );
}

/// Each test binary links the library again; only a test that must not share its process gets
/// one, and says why at its top.
#[test]
fn only_the_tests_that_must_run_alone_have_their_own_binary() {
    let alone: BTreeSet<String> = ["memory", "memory_api"].map(String::from).into();
    let binaries = rs_stems(&tests_dir());
    assert_eq!(
        binaries, alone,
        "a new file in tests/ is a new test binary: put the test in a module of tests/it/ \
         unless it must run alone, and then add it here with the reason at its top"
    );
    for name in &alone {
        let text = fs::read_to_string(tests_dir().join(format!("{name}.rs"))).unwrap();
        assert!(
            text.contains("Its own test binary"),
            "tests/{name}.rs does not say why it has its own binary"
        );
    }
}

/// Every area runs in this one process, in parallel: a test that changed the environment, an
/// rlimit, the allocator or the library's global answer caps would change every other test.
/// A child process gets its environment through `Command::env`.
#[test]
fn no_test_in_the_shared_binary_sets_process_wide_state() {
    // Built from pieces so this file does not match itself.
    let calls = [
        ["set", "_var("].concat(),
        ["remove", "_var("].concat(),
        ["set_answer", "_caps("].concat(),
        ["set", "rlimit"].concat(),
        ["tune", "_allocator("].concat(),
        ["mal", "lopt("].concat(),
    ];
    let mut found = Vec::new();
    for sub in ["it", "support"] {
        let dir = tests_dir().join(sub);
        for stem in rs_stems(&dir) {
            let path = dir.join(format!("{stem}.rs"));
            let text = fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                for call in &calls {
                    if line.contains(call.as_str()) {
                        found.push(format!("tests/{sub}/{stem}.rs:{}: {call}", n + 1));
                    }
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "process-wide state set in the shared test binary: {found:?}"
    );
}
