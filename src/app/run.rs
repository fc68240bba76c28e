//! The daemon: wires the stages together, serves, reloads on SIGHUP and `POST /-/reload`,
//! and stops on SIGTERM. The only module that starts tasks for the whole process.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::app::cli;
use crate::app::discover::{self, DiscoveryHandle};
use crate::app::shard::Shard;
use crate::config;
use crate::config::{Config, ConfigError};
use crate::expose::metrics::ExporterStatus;
use crate::expose::server::{AppState, ReloadRequest};
use crate::expose::web::Web;
use crate::expose::{listen, metrics, server, web};
use crate::notify;
use crate::probe::scheduler;
use crate::probe::scheduler::Inventory;
use crate::provider::BuildContext;
use crate::rotate;
use crate::state::persist;
use crate::state::store::Store;

/// What the daemon needs to start.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub config_file: PathBuf,
    pub listen_address: String,
    pub telemetry_path: String,
    /// Directory for state that survives restarts.
    pub storage_path: PathBuf,
    /// `--web.config.file`: TLS, basic auth, response headers; `None` serves plain HTTP.
    pub web_config_file: Option<PathBuf>,
    /// The part of the inventory this replica probes.
    pub shard: Shard,
    /// `--web.max-connections`, `--web.read-header-timeout`, `--web.idle-timeout`.
    pub connections: listen::Limits,
    /// `--config.reload-max-drop`: the largest share of the running tokens an unforced
    /// reload may remove.
    pub reload_max_drop: f64,
    /// The per-token families `/metrics` writes (`--collector.<name>`).
    pub collectors: metrics::Collectors,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    /// A file or directory the exporter itself writes (the demo's inventory and secrets).
    #[error("cannot write {0}: {1}")]
    Write(String, std::io::Error),
    /// A command-line value that is not what the flag takes.
    #[error("{0}")]
    Flag(String),
}

/// Loads and builds the whole inventory from a file.
pub fn load_inventory(
    path: &std::path::Path,
    ctx: &BuildContext,
) -> Result<Inventory, ConfigError> {
    load_inventory_shard(path, ctx, Shard::ALL)
}

/// Loads the inventory and keeps this shard's tokens. The filter runs on every load, so a
/// reload honours it and a token added to the file lands on exactly one replica.
pub fn load_inventory_shard(
    path: &std::path::Path,
    ctx: &BuildContext,
    shard: Shard,
) -> Result<Inventory, ConfigError> {
    load_checked(path, ctx, shard, |_| Ok(()))
}

/// [`load_inventory_shard`] with `check` run on the shard's config before any provider is
/// built for it, so a refused reload costs a parse, not a build.
fn load_checked(
    path: &std::path::Path,
    ctx: &BuildContext,
    shard: Shard,
    check: impl FnOnce(&Config) -> Result<(), ConfigError>,
) -> Result<Inventory, ConfigError> {
    let config = shard.apply(Config::load(path)?);
    check(&config)?;
    for warning in config.deprecations() {
        tracing::warn!(file = %path.display(), "{warning}");
    }
    Inventory::build(config, ctx).map_err(|e| e.in_file(path))
}

/// Runs the daemon until `shutdown` completes: probes in the background, serves HTTP,
/// reloads on SIGHUP and `POST /-/reload`.
pub async fn run(
    opts: RunOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let ctx = BuildContext::new();
    // The web config is read first: a bad one must stop the exporter before it serves
    // anything, rather than serve it unprotected.
    let web = Web::from_flag(opts.web_config_file.as_deref())?;
    if web.basic_auth_enabled() && !web.tls_enabled() {
        tracing::warn!("basic auth without TLS: passwords cross the network in clear text");
    }
    let inventory = load_inventory_shard(&opts.config_file, &ctx, opts.shard)?;
    tracing::info!(
        file = %opts.config_file.display(),
        providers = inventory.config.providers.len(),
        tokens = inventory.config.tokens.len(),
        shard = %opts.shard,
        "config loaded"
    );
    // Checked before anything is spawned: a storage path that is a file or read-only must
    // stop the start with the flag named, not fail every save in the background.
    persist::check_storage_dir(&opts.storage_path)
        .map_err(|e| RunError::Flag(format!("--storage.path: {e}")))?;
    let store = Arc::new(Store::with_storage(&opts.storage_path));
    let status = Arc::new(ExporterStatus {
        web: web.stats(),
        ..ExporterStatus::new()
    });
    // The sources are known before the notifier's first evaluation, so a restart holds the
    // alerts of their tokens until they are listed again instead of resolving them.
    status.sources.configure(
        inventory
            .config
            .sources
            .iter()
            .map(|s| (s.name.as_str(), s.kind.as_str())),
    );
    let notifier = notify::spawn(
        store.clone(),
        &inventory.config.notify,
        &opts.storage_path,
        status.notifications.clone(),
        notify::event::policies,
        notify::RetryPolicy::default(),
        status.sources.clone(),
    );
    let running_tokens = inventory.config.tokens.clone();
    let rotation =
        rotate::service::spawn(store.clone(), inventory.clone(), opts.storage_path.clone());
    let scheduler = scheduler::spawn(store.clone(), inventory.clone());
    let discovery = discover::spawn(
        scheduler.clone(),
        inventory,
        opts.shard,
        ctx.clone(),
        status.sources.clone(),
        rotation,
    );
    spawn_ledger_flusher(store.clone());

    let (reload_tx, reload_rx) = mpsc::channel::<ReloadRequest>(4);
    tokio::spawn(reloader(
        Reloader {
            path: opts.config_file.clone(),
            shard: opts.shard,
            ctx,
            web: web.clone(),
            max_drop: opts.reload_max_drop,
            running: running_tokens,
        },
        discovery,
        notifier,
        status.clone(),
        reload_rx,
    ));
    spawn_sighup(reload_tx.clone());
    web::spawn_watcher(web.clone());

    let flush_at_exit = store.clone();
    let connections = status.connections.clone();
    let state = AppState {
        store: store.clone(),
        metrics: metrics::Metrics::new(store, status).with_collectors(opts.collectors),
        ready: scheduler.ready.clone(),
        reload: reload_tx,
        telemetry_path: opts.telemetry_path.clone(),
    };
    let addr = cli::listen_addr(&opts.listen_address);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| RunError::Bind(addr.clone(), e))?;
    let bound = listener.local_addr().map(|a| a.to_string()).unwrap_or(addr);
    tracing::info!(
        address = %bound,
        telemetry_path = %opts.telemetry_path,
        collectors = %opts.collectors.names().join(","),
        tls = web.tls_enabled(),
        basic_auth = web.basic_auth_enabled(),
        "listening"
    );
    let app = web::protect(server::router(state), web.clone());
    let limits = opts.connections.fit_fd_limit(listen::raise_fd_limit());
    listen::serve(listener, app, web, limits, connections, shutdown)
        .await
        .map_err(RunError::Serve)?;
    let _ = tokio::task::spawn_blocking(move || flush_at_exit.flush_ledger()).await;
    tracing::info!("shut down");
    Ok(())
}

/// Writes the rotation ledger every two seconds when it changed. The write (with fsync) runs
/// on the blocking pool, off the scheduler and the HTTP workers.
fn spawn_ledger_flusher(store: Arc<Store>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
        loop {
            tick.tick().await;
            let store = store.clone();
            let _ = tokio::task::spawn_blocking(move || store.flush_ledger()).await;
        }
    });
}

/// What a reload reads again.
struct Reloader {
    path: PathBuf,
    shard: Shard,
    ctx: BuildContext,
    web: Arc<Web>,
    /// `--config.reload-max-drop`.
    max_drop: f64,
    /// The tokens of the config running now, to tell how many a new one removes.
    running: Vec<Arc<config::TokenSpec>>,
}

/// Applies reload requests one at a time. A bad config keeps the running one, and so does
/// one that removes more than `max_drop` of the running tokens unless the request forces it
/// (a half-written file must not wipe the inventory). The web config is read again too; its
/// errors are logged and its previous version keeps serving.
async fn reloader(
    Reloader {
        path,
        shard,
        ctx,
        web,
        max_drop,
        mut running,
    }: Reloader,
    discovery: DiscoveryHandle,
    notifier: notify::NotifyHandle,
    status: Arc<ExporterStatus>,
    mut requests: mpsc::Receiver<ReloadRequest>,
) {
    while let Some(ReloadRequest { force, reply }) = requests.recv().await {
        web::reload(web.clone(), true).await;
        let loaded = load_checked(&path, &ctx, shard, |config| {
            if force {
                return Ok(());
            }
            config::check_drop(&running, &config.tokens, max_drop)
                .map_err(|message| config::ConfigError::single("", message, None).in_file(&path))
        });
        let result = match loaded {
            Ok(inventory) => {
                running = inventory.config.tokens.clone();
                let tokens = inventory.config.tokens.len();
                notifier.reload(&inventory.config.notify).await;
                // Through discovery: the scheduler and the rotation task run the new tokens
                // plus the listed ones.
                discovery.reload(inventory).await;
                status.reload_succeeded();
                tracing::info!(file = %path.display(), tokens, force, "config reloaded");
                Ok(())
            }
            Err(e) => {
                status.reload_failed();
                tracing::error!(error = %e, "config reload failed; the previous config keeps running");
                Err(e.to_string())
            }
        };
        let _ = reply.send(result);
    }
}

#[cfg(unix)]
fn spawn_sighup(reload: mpsc::Sender<ReloadRequest>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot install the SIGHUP handler; reload with POST /-/reload");
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP received, reloading");
            // A signal never forces: it is what config management sends right after writing
            // the file, which is when a truncated write happens.
            let (tx, _rx) = tokio::sync::oneshot::channel();
            let request = ReloadRequest {
                force: false,
                reply: tx,
            };
            if reload.send(request).await.is_err() {
                break;
            }
        }
    });
}

#[cfg(not(unix))]
fn spawn_sighup(_: mpsc::Sender<ReloadRequest>) {}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested");
}
