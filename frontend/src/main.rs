//! `sealstore-gateway`: a thin HTTP front for the Sealstore extension.

use std::sync::Arc;

use clap::Parser;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

mod config;
mod db;
mod response;
mod routes;
mod server;

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
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(
            EnvFilter::try_from_env("SEALSTORE_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    std::process::exit(runtime.block_on(run(config)));
}

async fn run(config: Config) -> i32 {
    let pool = match db::pool(&config) {
        Ok(pool) => pool,
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
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(addr, version = env!("CARGO_PKG_VERSION"), "listening");
    let state = Arc::new(server::AppState { config, pool });
    server::serve(listener, state, shutdown_signal()).await;
    tracing::info!("stopped");
    0
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
