//! `check`: probe the selected tokens once and exit with a verdict a runbook can act on.
//! Exit codes: 0 every selected token passes; 1 one fails at the `--fail-on` level; 2 the
//! config does not load or the selection names nothing.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::app::cli::{FailOn, OutputFormat};
use crate::config::{Config, TokenSpec};
use crate::derive::view::{self, TokenView};
use crate::model::Severity;
use crate::probe::scheduler::Inventory;
use crate::provider::{BuildContext, run_probe};
use crate::state::store::Store;

/// Exit code when every token passes.
pub const EXIT_OK: u8 = 0;
/// Exit code when a token fails at the chosen level.
pub const EXIT_FAILED: u8 = 1;
/// Exit code when the config does not load or the selection is empty.
pub const EXIT_CONFIG: u8 = 2;

#[derive(Clone, Debug)]
pub struct Options {
    pub config_file: PathBuf,
    /// Where the daemon keeps its rotation ledger; read, never written.
    pub storage_path: PathBuf,
    pub output: OutputFormat,
    pub tokens: Vec<String>,
    pub selector: Option<String>,
    pub fail_on: FailOn,
}

/// One `key=value` or `key!=value` term of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    pub key: String,
    pub value: String,
    pub negated: bool,
}

/// Parses `team=platform,env!=dev`.
pub fn parse_selector(text: &str) -> Result<Vec<Term>, String> {
    let mut terms = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value, negated) = if let Some((k, v)) = part.split_once("!=") {
            (k, v, true)
        } else if let Some((k, v)) = part.split_once('=') {
            (k, v, false)
        } else {
            return Err(format!(
                "selector term \"{part}\" is not key=value or key!=value"
            ));
        };
        if key.trim().is_empty() {
            return Err(format!("selector term \"{part}\" has no key"));
        }
        terms.push(Term {
            key: key.trim().to_string(),
            value: value.trim().to_string(),
            negated,
        });
    }
    if terms.is_empty() {
        return Err("the selector is empty".into());
    }
    Ok(terms)
}

/// Whether a token matches every term. `provider` and `kind` are matched against the token's
/// provider name and kind unless the token has a label of that name.
pub fn matches(token: &TokenSpec, kind: &str, terms: &[Term]) -> bool {
    terms.iter().all(|t| {
        let actual = match t.key.as_str() {
            k if token.labels.contains_key(k) => token.labels.get(k).map(String::as_str),
            "provider" => Some(token.provider.as_str()),
            "kind" => Some(kind),
            "name" | "token" => Some(token.name.as_str()),
            "source" => token.source.as_deref(),
            _ => None,
        };
        (actual == Some(t.value.as_str())) != t.negated
    })
}

/// Narrows the config to the selected tokens; an error when the selection is empty or names
/// a token the config lacks.
pub fn select(config: &mut Config, names: &[String], selector: Option<&str>) -> Result<(), String> {
    for name in names {
        if config.token(name).is_none() {
            return Err(format!("no token named \"{name}\" in the config"));
        }
    }
    let terms = selector.map(parse_selector).transpose()?;
    let providers = config.providers.clone();
    config.tokens.retain(|t| {
        (names.is_empty() || names.contains(&t.name))
            && terms
                .as_ref()
                .is_none_or(|terms| matches(t, providers[&t.provider].kind(), terms))
    });
    if config.tokens.is_empty() {
        return Err("the selection matches no token".into());
    }
    Ok(())
}

/// Runs the check and prints its report to stdout; returns the exit code.
pub async fn run(opts: Options) -> u8 {
    let config = match Config::load(&opts.config_file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_CONFIG;
        }
    };
    let (mut config, sources_failed) = list_sources(config).await;
    if let Err(e) = select(&mut config, &opts.tokens, opts.selector.as_deref()) {
        eprintln!("{}: {e}", opts.config_file.display());
        return EXIT_CONFIG;
    }
    let inventory = match Inventory::build(config, &BuildContext::new()) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_CONFIG;
        }
    };
    let store = Arc::new(Store::with_storage_read_only(&opts.storage_path));
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
    let failed = views
        .iter()
        .filter(|v| failure(v, opts.fail_on).is_some())
        .count();
    match opts.output {
        OutputFormat::Json => {
            let doc = serde_json::json!({
                "generated_at": now.to_string(),
                "fail_on": format!("{:?}", opts.fail_on).to_lowercase(),
                "passed": failed == 0,
                "failed": failed,
                "tokens": views,
            });
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        OutputFormat::Table => print!("{}", table(&views, opts.fail_on)),
    }
    if failed == 0 && sources_failed == 0 {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

/// Lists every source once and adds what they list, as the daemon does. A failed listing is
/// said on stderr and fails the check: its tokens could not be checked.
async fn list_sources(config: Config) -> (Config, usize) {
    let ctx = BuildContext::new();
    let mut listings = std::collections::BTreeMap::new();
    let mut failed = 0;
    for spec in &config.sources {
        match crate::sources::list(spec, &config, &ctx).await {
            Ok(listing) => {
                listings.insert(spec.name.clone(), listing);
            }
            Err(e) => {
                failed += 1;
                eprintln!(
                    "source {}: listing failed ({}): {}",
                    spec.name,
                    e.reason.as_str(),
                    e.detail
                );
            }
        }
    }
    let (config, _) = crate::sources::compose(&config, &listings);
    (config, failed)
}

/// Why a token fails at `level`, or `None` when it passes.
pub fn failure(v: &TokenView, level: FailOn) -> Option<String> {
    if v.state != "valid" {
        return Some(v.reason.clone().unwrap_or_else(|| v.state.clone()));
    }
    if level >= FailOn::Critical && v.severity == Severity::Critical {
        return Some("inside critical window".into());
    }
    if level >= FailOn::Warning {
        if v.severity == Severity::Warning {
            return Some("inside warning window".into());
        }
        let violated: Vec<&str> = v.violations().map(|f| f.policy).collect();
        if !violated.is_empty() {
            return Some(format!("policy {}", violated.join(", ")));
        }
    }
    None
}

/// A fixed-width table: token, provider, state, expires in, scopes, policies, result.
pub fn table(views: &[TokenView], level: FailOn) -> String {
    let header = [
        "TOKEN",
        "PROVIDER",
        "STATE",
        "EXPIRES IN",
        "SCOPES",
        "POLICY",
        "RESULT",
    ];
    let rows: Vec<[String; 7]> = views
        .iter()
        .map(|v| {
            let violated: Vec<&str> = v.violations().map(|f| f.policy).collect();
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
                if violated.is_empty() {
                    "-".into()
                } else {
                    violated.join(",")
                },
                match failure(v, level) {
                    None => "ok".to_string(),
                    Some(why) => format!("FAIL: {why}"),
                },
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

#[cfg(test)]
mod tests;
