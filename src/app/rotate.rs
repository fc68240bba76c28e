//! `rotate --token NAME [--dry-run]`: the runbook's way to rotate one token now. It probes the
//! token once, then runs its rotation through the same state machine, state file and lock as
//! the daemon (so it waits for a rotation the daemon is running, and never runs beside one).
//! It starts a rotation that is not due yet, ignores the backoff, and resumes one a crash
//! left `interrupted`. A discovered token (`<source>/<name>`, its source with `rotate:`) is
//! found by listing its source once first. Exit codes: 0 rotated (or planned, with `--dry-run`); 1 the rotation
//! failed; 2 the config does not load or the token has no `rotate:` block.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::Config;
use crate::model::rotation::RotationResult;
use crate::probe::scheduler::Inventory;
use crate::provider::{BuildContext, run_probe};
use crate::rotate::{Ask, Rotations};
use crate::state::persist;
use crate::state::store::Store;

#[derive(Clone, Debug)]
pub struct Options {
    pub config_file: PathBuf,
    pub storage_path: PathBuf,
    pub token: String,
    pub dry_run: bool,
}

pub async fn run(opts: Options) -> u8 {
    let config = match Config::load(&opts.config_file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let config = match discovered(config, &opts.token).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rotate: {}: {e}", opts.token);
            return 2;
        }
    };
    if !config.rotations.contains_key(&opts.token) {
        let known: Vec<&str> = config.rotations.keys().map(String::as_str).collect();
        eprintln!(
            "{}: token \"{}\" has no rotate: block (tokens with one: {})",
            opts.config_file.display(),
            opts.token,
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
        return 2;
    }
    let inventory = match Inventory::build(config, &BuildContext::new()) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{}", e.in_file(&opts.config_file));
            return 2;
        }
    };
    if let Err(e) = persist::check_storage_dir(&opts.storage_path) {
        eprintln!("--storage.path: {e}");
        return 2;
    }
    // The ledger is read, never written: the daemon owns it.
    let store = Arc::new(Store::with_storage_read_only(&opts.storage_path));
    store.reconcile(&inventory.config);
    let spec = inventory
        .config
        .token(&opts.token)
        .expect("a rotation names a token of the config");
    let now = jiff::Timestamp::now();
    let provider = &inventory.providers[&spec.provider];
    let probed = run_probe(provider.as_ref(), spec, now).await;
    store.record(&opts.token, probed, now);
    let mut rotations = Rotations::new(&opts.storage_path);
    let ask = Ask {
        forced: true,
        dry_run: opts.dry_run,
    };
    let result = rotations.run(&inventory, &store, &opts.token, ask).await;
    let status = store.read().tokens[&opts.token]
        .rotation
        .as_deref()
        .cloned()
        .unwrap_or_default();
    match result {
        Ok(Some(RotationResult::Success)) => {
            println!("rotate: {}: rotated ({})", opts.token, status.rotator);
            0
        }
        Ok(Some(RotationResult::DryRun)) => {
            println!(
                "rotate: {}: dry run, nothing called or written (the steps are in the log)",
                opts.token
            );
            0
        }
        Ok(Some(RotationResult::Failure)) => {
            eprintln!(
                "rotate: {}: failed at step {}: {}",
                opts.token,
                status.step.as_str(),
                status.last_error.as_deref().unwrap_or("unknown error")
            );
            1
        }
        Ok(None) => {
            eprintln!("rotate: {}: nothing to do", opts.token);
            1
        }
        Err(e) => {
            eprintln!("rotate: {}: {e}", opts.token);
            1
        }
    }
}

/// `config`, with the tokens of `token`'s source when it is a discovered one: its source
/// (the name before the first `/`) is listed once, as the daemon lists it. A configured
/// token, or a source without `rotate:`, leaves the config as it is.
async fn discovered(config: Config, token: &str) -> Result<Config, String> {
    if config.rotations.contains_key(token) {
        return Ok(config);
    }
    let Some(spec) = token
        .split_once('/')
        .and_then(|(source, _)| config.sources.iter().find(|s| s.name == source))
        .filter(|s| s.rotate.is_some())
        .cloned()
    else {
        return Ok(config);
    };
    let listing = crate::sources::list(&spec, &config, &BuildContext::new())
        .await
        .map_err(|e| {
            format!(
                "source {:?} cannot list ({}): {}",
                spec.name,
                e.reason.as_str(),
                e.detail
            )
        })?;
    let listings = std::collections::BTreeMap::from([(spec.name.clone(), listing)]);
    let (composed, _, notes) = crate::sources::compose_noted(&config, &listings);
    if let Some(note) = notes.values().flatten().find(|n| n.token == token) {
        return Err(format!(
            "the source's rotate: does not apply to it ({}): {}",
            note.reason, note.detail
        ));
    }
    Ok(composed)
}
