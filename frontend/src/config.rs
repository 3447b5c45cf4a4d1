//! Gateway configuration: command-line flags with environment fallbacks (clap), validated in
//! full before anything binds. Secrets may come from files (`--app-pg-url-file`), as mounted
//! secrets do. Nothing here ever prints a secret: the connection string's value is hidden from
//! `--help` and never echoed in an error.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;

/// Exit status for a configuration error (EX_USAGE from sysexits.h).
pub const EXIT_CONFIG: i32 = 64;

#[derive(Debug, Parser)]
#[command(name = "sealstore-gateway", version, about = "Sealstore HTTP gateway")]
pub struct Cli {
    /// Address to listen on.
    #[arg(
        long,
        env = "SEALSTORE_GATEWAY_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: String,

    /// PostgreSQL connection URL of the gateway's login role (member of sealstore_app only).
    #[arg(long, env = "SEALSTORE_APP_PG_URL", hide_env_values = true)]
    pub app_pg_url: Option<String>,

    /// File holding the connection URL (instead of --app-pg-url).
    #[arg(long, env = "SEALSTORE_APP_PG_URL_FILE")]
    pub app_pg_url_file: Option<PathBuf>,

    /// Maximum number of database connections.
    #[arg(long, env = "SEALSTORE_DB_POOL_SIZE", default_value = "16")]
    pub db_pool_size: String,

    /// Seconds to wait for a database connection or query in health checks.
    #[arg(long, env = "SEALSTORE_DB_TIMEOUT_SECS", default_value = "2")]
    pub db_timeout_secs: String,

    /// Seconds a request may take before it is answered with 503.
    #[arg(long, env = "SEALSTORE_REQUEST_TIMEOUT_SECS", default_value = "30")]
    pub request_timeout_secs: String,

    /// Seconds to let in-flight requests finish after SIGTERM or Ctrl-C.
    #[arg(long, env = "SEALSTORE_SHUTDOWN_TIMEOUT_SECS", default_value = "30")]
    pub shutdown_timeout_secs: String,
}

/// A connection string that never shows up in `Debug` output or logs.
#[derive(Clone)]
pub struct PgUrl(tokio_postgres::Config);

impl PgUrl {
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.0
    }
}

impl fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PgUrl(<redacted>)")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub pg: PgUrl,
    pub db_pool_size: usize,
    pub db_timeout: Duration,
    pub request_timeout: Duration,
    pub shutdown_timeout: Duration,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}: {problem}")]
    Invalid { name: &'static str, problem: String },
}

fn invalid(name: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        problem: problem.into(),
    }
}

fn bounded<T: FromStr + PartialOrd + fmt::Display + Copy>(
    name: &'static str,
    text: &str,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    let value: T = text
        .trim()
        .parse()
        .map_err(|_| invalid(name, format!("expected a whole number from {min} to {max}")))?;
    if value < min || value > max {
        return Err(invalid(name, format!("must be from {min} to {max}")));
    }
    Ok(value)
}

impl Config {
    pub fn from_cli(cli: Cli) -> Result<Self, ConfigError> {
        let listen = cli.listen.parse::<SocketAddr>().map_err(|_| {
            invalid(
                "SEALSTORE_GATEWAY_LISTEN",
                "expected IP:PORT, e.g. 127.0.0.1:8080",
            )
        })?;

        let url =
            match (cli.app_pg_url, cli.app_pg_url_file) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        "SEALSTORE_APP_PG_URL",
                        "set either SEALSTORE_APP_PG_URL or SEALSTORE_APP_PG_URL_FILE, not both",
                    ))
                }
                (Some(url), None) => url,
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .map_err(|e| {
                        invalid(
                            "SEALSTORE_APP_PG_URL_FILE",
                            format!("cannot read {}: {e}", path.display()),
                        )
                    })?
                    .trim()
                    .to_owned(),
                (None, None) => return Err(invalid(
                    "SEALSTORE_APP_PG_URL",
                    "required: the gateway role's connection URL (or SEALSTORE_APP_PG_URL_FILE)",
                )),
            };
        // tokio-postgres's parse errors can quote the input, which holds the password.
        let pg = tokio_postgres::Config::from_str(&url).map_err(|_| {
            invalid(
                "SEALSTORE_APP_PG_URL",
                "not a valid PostgreSQL connection URL (value not shown)",
            )
        })?;
        if pg.get_hosts().is_empty() {
            return Err(invalid(
                "SEALSTORE_APP_PG_URL",
                "names no host (value not shown)",
            ));
        }
        if pg.get_user().is_none_or(str::is_empty) {
            return Err(invalid(
                "SEALSTORE_APP_PG_URL",
                "names no user (value not shown)",
            ));
        }

        Ok(Self {
            listen,
            pg: PgUrl(pg),
            db_pool_size: bounded("SEALSTORE_DB_POOL_SIZE", &cli.db_pool_size, 1usize, 1024)?,
            db_timeout: Duration::from_secs(bounded(
                "SEALSTORE_DB_TIMEOUT_SECS",
                &cli.db_timeout_secs,
                1u64,
                60,
            )?),
            request_timeout: Duration::from_secs(bounded(
                "SEALSTORE_REQUEST_TIMEOUT_SECS",
                &cli.request_timeout_secs,
                1u64,
                600,
            )?),
            shutdown_timeout: Duration::from_secs(bounded(
                "SEALSTORE_SHUTDOWN_TIMEOUT_SECS",
                &cli.shutdown_timeout_secs,
                0u64,
                600,
            )?),
        })
    }
}

#[cfg(test)]
mod tests;
