//! `sealstore-gateway`: a thin HTTP front for the Sealstore extension.

use std::sync::Arc;

use clap::Parser;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

mod audit;
mod auth;
mod config;
mod db;
mod errors;
mod events;
mod lanes;
mod limits;
mod metrics;
mod pipeline;
mod plan;
mod replicas;
mod response;
mod router;
mod sched;
mod server;
mod session;
mod state;
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
    if cli.print_connect_query {
        match config::statement_timeout_ms(&cli) {
            Ok(ms) => println!("{}", session::connect_query(&session::settings(ms, false))),
            Err(e) => {
                eprintln!("sealstore-gateway: configuration error: {e}");
                std::process::exit(EXIT_CONFIG);
            }
        }
        return;
    }
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
        .with_env_filter(log_filter(std::env::var("SEALSTORE_LOG").ok().as_deref()))
        .init();
    // Before the runtime starts, so that its threads inherit the policy.
    if let Err(e) = sched::apply(config.sched_policy) {
        tracing::warn!(policy = %config.sched_policy, error = %e, "scheduling policy not set");
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
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
    let checked = tokio::time::timeout(config.db_timeout, db::check_login_role(&pools.write));
    if let Ok(Err(why)) = checked.await {
        tracing::error!(
            problem = why.as_str(),
            "refusing to start with this database login role"
        );
        return EXIT_CONFIG;
    }
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
    let hub = Arc::new(events::Hub::new(
        config.events_max_subscribers,
        config.events_buffer,
        metrics.clone(),
    ));
    let state = Arc::new(state::AppState {
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
        events: hub.clone(),
        pools,
        config,
    });
    limits::spawn_housekeeping(state.limits.clone());
    state
        .pools
        .replicas
        .spawn_monitor(state.pools.write.clone(), state.config.db_timeout);
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
    let primed = tokio::time::timeout(
        state.config.db_timeout,
        events::prime(&hub, &state.pools.events),
    );
    if !matches!(primed.await, Ok(Ok(()))) {
        tracing::warn!("change feed not started yet: the database is unavailable");
    }
    let feed = tokio::spawn(events::run(
        hub.clone(),
        state.pools.events.clone(),
        state.config.statement_timeout_ms,
    ));
    tracing::info!(
        addr = bound.to_string(),
        tls = tls.is_some(),
        version = env!("CARGO_PKG_VERSION"),
        "listening"
    );
    // Event streams never end on their own: they are told to (and resume elsewhere) before
    // the connections drain.
    let shutdown = async {
        shutdown_signal().await;
        hub.close_all();
    };
    server::serve(listener, state.clone(), tls, shutdown).await;
    for task in [refresher, feed] {
        task.abort();
        let _ = task.await;
    }
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
fn spawn_key_refresh(state: Arc<state::AppState>) -> tokio::task::JoinHandle<()> {
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

/// SEALSTORE_LOG's directives (default `info`), except that tokio-postgres never logs below
/// INFO: at DEBUG it writes every statement's bind parameters (tokens, plaintext). Its own
/// directives are dropped and `tokio_postgres=info` added, so the filter stays static (disabled
/// call sites cost nothing) and the parameters are never even formatted.
fn log_filter(setting: Option<&str>) -> EnvFilter {
    let mut directives: Vec<&str> = setting
        .unwrap_or("info")
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !d.starts_with("tokio_postgres"))
        .collect();
    if directives.is_empty() {
        directives.push("info");
    }
    directives.push("tokio_postgres=info");
    EnvFilter::try_new(directives.join(","))
        .unwrap_or_else(|_| EnvFilter::new("info,tokio_postgres=info"))
}

#[cfg(test)]
mod tests {
    use super::log_filter;
    use tracing::level_filters::LevelFilter;

    #[test]
    fn tokio_postgres_never_logs_below_info() {
        for setting in [
            None,
            Some("trace"),
            Some("debug,tokio_postgres=trace"),
            Some("tokio_postgres::query=debug"),
            Some("warn"),
            Some(""),
        ] {
            let filter = log_filter(setting).to_string();
            assert!(
                filter.contains("tokio_postgres=info"),
                "{setting:?}: {filter}"
            );
            assert!(
                !filter.contains("tokio_postgres=trace") && !filter.contains("query=debug"),
                "{setting:?}: {filter}"
            );
        }
        assert_eq!(log_filter(None).max_level_hint(), Some(LevelFilter::INFO));
        assert_eq!(
            log_filter(Some("warn")).max_level_hint(),
            Some(LevelFilter::INFO)
        );
    }
}
