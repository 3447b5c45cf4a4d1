//! `sealstore-gateway`: a thin HTTP front for the Sealstore extension.

use std::sync::Arc;

use clap::Parser;
use tokio::net::TcpListener;
use tracing_subscriber::filter::{filter_fn, FilterExt};
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

mod audit;
mod auth;
mod calls;
mod config;
mod db;
mod errors;
mod limits;
mod metrics;
mod response;
mod routes;
mod server;
mod tls;

use config::{Cli, Config, EXIT_CONFIG};

/// Exit status when the listen address cannot be bound (EX_UNAVAILABLE).
const EXIT_BIND: i32 = 69;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            let _ = e.print();
            std::process::exit(EXIT_CONFIG);
        }
    };
    // Everything is checked before anything binds or connects.
    let config = match Config::from_cli(cli) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("sealstore-gateway: configuration error: {e}");
            std::process::exit(EXIT_CONFIG);
        }
    };
    let level =
        EnvFilter::try_from_env("SEALSTORE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_filter(level.and(filter_fn(never_logs_bind_parameters))),
        )
        .init();

    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = config.worker_threads {
        builder.worker_threads(n);
    }
    let runtime = builder.enable_all().build().expect("tokio runtime");
    std::process::exit(runtime.block_on(run(config)));
}

async fn run(config: Config) -> i32 {
    let tls = match config.tls.as_ref().map(tls::acceptor).transpose() {
        Ok(tls) => tls,
        Err(e) => {
            tracing::error!(error = %e, "cannot load the TLS certificate or key");
            return EXIT_CONFIG;
        }
    };
    let pools = match db::pools(&config) {
        Ok(pools) => pools,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the database pool");
            return EXIT_CONFIG;
        }
    };
    let listener = match TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(addr = %config.listen, error = %e, "cannot listen");
            return EXIT_BIND;
        }
    };
    let bound = listener.local_addr().unwrap_or(config.listen);
    let metrics = Arc::new(metrics::Metrics::new());
    let (audit, audit_task) = audit::spawn(pools.write.clone(), metrics.clone());
    let state = Arc::new(server::AppState {
        allowed_hosts: config
            .allowed_hosts
            .clone()
            .unwrap_or_else(|| config::default_hosts(bound)),
        cors: server::cors(&config),
        limits: Arc::new(limits::Limits::new(&config)),
        verifier: auth::Verifier::new(),
        health: Default::default(),
        metrics,
        audit,
        pools,
        config,
    });
    limits::spawn_housekeeping(state.limits.clone());
    // Keys first, so the first requests need no on-demand refresh; a database that is down
    // now is not fatal (the refresh loop retries, requests meanwhile get 503).
    let first = tokio::time::timeout(
        state.config.db_timeout,
        state.verifier.refresh(&state.pools.write),
    );
    if !matches!(first.await, Ok(Ok(()))) {
        tracing::warn!("JWT verification keys not loaded yet: the database is unavailable");
    }
    let refresher = spawn_key_refresh(state.clone());
    tracing::info!(
        addr = bound.to_string(),
        tls = tls.is_some(),
        version = env!("CARGO_PKG_VERSION"),
        "listening"
    );
    server::serve(listener, state.clone(), tls, shutdown_signal()).await;
    refresher.abort();
    let _ = refresher.await;
    // The last references to the audit sink go with the state: its task flushes and ends.
    drop(state);
    if tokio::time::timeout(std::time::Duration::from_secs(5), audit_task)
        .await
        .is_err()
    {
        tracing::warn!("audit backlog not flushed");
    }
    tracing::info!("stopped");
    0
}

/// Reads the JWT verification keys now and then every few seconds (a failure only means the
/// database is down: the next round retries).
fn spawn_key_refresh(state: Arc<server::AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(state.config.key_refresh);
        loop {
            tick.tick().await;
            if let Err(e) = state.verifier.refresh(&state.pools.write).await {
                tracing::debug!(error = ?e, "JWT key refresh failed");
            }
        }
    })
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
        _ = int.recv() => tracing::info!(signal = "SIGINT", "shutdown requested"),
    }
}

/// tokio-postgres logs every statement's bind parameters (tokens, plaintext) at DEBUG, so its
/// DEBUG and TRACE events are dropped whatever SEALSTORE_LOG asks for.
fn never_logs_bind_parameters(meta: &tracing::Metadata<'_>) -> bool {
    !(meta.target().starts_with("tokio_postgres") && *meta.level() > tracing::Level::INFO)
}
