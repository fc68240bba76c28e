//! `check`: probe every token once and exit with a verdict a runbook can act on.
//! Exit codes: 0 all valid and none inside its critical window; 1 otherwise; 2 config error.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::cli::OutputFormat;
use crate::model::Severity;
use crate::provider::{BuildContext, run_probe};
use crate::store::Store;
use crate::view::{self, TokenView};

/// Exit code when every token passes.
pub const EXIT_OK: u8 = 0;
/// Exit code when a token is not valid or is inside its critical window.
pub const EXIT_FAILED: u8 = 1;
/// Exit code when the config does not load.
pub const EXIT_CONFIG: u8 = 2;

/// Runs the check and prints its report to stdout; returns the exit code.
pub async fn run(config_file: &Path, output: OutputFormat) -> u8 {
    let ctx = BuildContext::new();
    let inventory = match crate::load_inventory(config_file, &ctx) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_CONFIG;
        }
    };
    let store = Arc::new(Store::new());
    store.reconcile(&inventory.config);
    let limit = Arc::new(Semaphore::new(inventory.config.global.max_concurrency));
    let mut tasks = JoinSet::new();
    for spec in inventory.config.tokens.iter().cloned() {
        let provider = inventory.providers[&spec.provider].clone();
        let store = store.clone();
        let limit = limit.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let now = jiff::Timestamp::now();
            let run = run_probe(provider.as_ref(), &spec, now).await;
            store.record(&spec.name, run, now);
        });
    }
    while tasks.join_next().await.is_some() {}

    let now = jiff::Timestamp::now();
    let views = view::all(&store.read(), now);
    let failed = views.iter().filter(|v| !passes(v)).count();
    match output {
        OutputFormat::Json => {
            let doc = serde_json::json!({
                "generated_at": now.to_string(),
                "passed": failed == 0,
                "failed": failed,
                "tokens": views,
            });
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        OutputFormat::Table => print!("{}", table(&views)),
    }
    if failed == 0 { EXIT_OK } else { EXIT_FAILED }
}

/// A token passes when the provider says it is valid and it is not inside its critical window.
pub fn passes(v: &TokenView) -> bool {
    v.state == "valid" && v.severity != Severity::Critical
}

/// A fixed-width table: token, provider, state, expires in, scopes, and why it failed.
pub fn table(views: &[TokenView]) -> String {
    let header = [
        "TOKEN",
        "PROVIDER",
        "STATE",
        "EXPIRES IN",
        "SCOPES",
        "RESULT",
    ];
    let rows: Vec<[String; 6]> = views
        .iter()
        .map(|v| {
            let result = if passes(v) {
                "ok".to_string()
            } else if v.state == "valid" {
                "FAIL: inside critical window".to_string()
            } else {
                format!("FAIL: {}", v.reason.as_deref().unwrap_or(&v.state))
            };
            [
                v.name.clone(),
                v.provider.clone(),
                v.state.clone(),
                v.expires_in.clone(),
                if v.scopes.is_empty() {
                    "-".into()
                } else {
                    v.scopes.join(",")
                },
                result,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&header.map(String::from));
    for row in &rows {
        line(row);
    }
    out
}
