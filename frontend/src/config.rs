//! Gateway configuration: command-line flags with environment fallbacks (clap), validated in
//! full before anything binds. Secrets may come from files (`--pg-url-file`), as mounted
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
    #[arg(long, env = "SEALSTORE_GATEWAY_PG_URL", hide_env_values = true)]
    pub pg_url: Option<String>,

    /// File holding the connection URL (instead of --pg-url).
    #[arg(long, env = "SEALSTORE_GATEWAY_PG_URL_FILE")]
    pub pg_url_file: Option<PathBuf>,

    /// Maximum number of database connections for writes (one call on each at a time).
    #[arg(long, env = "SEALSTORE_DB_POOL_SIZE", default_value = "16")]
    pub db_pool_size: String,

    /// Database connections for reads, which calls share (default: two per CPU).
    #[arg(long, env = "SEALSTORE_DB_READ_CONNECTIONS")]
    pub db_read_connections: Option<String>,

    /// Most read calls in flight on one read connection; beyond that on every one, 503.
    #[arg(long, env = "SEALSTORE_DB_PIPELINE_DEPTH", default_value = "32")]
    pub db_pipeline_depth: String,

    /// Comma-separated connection URLs of hot standbys (the gateway's login role on each): the
    /// read routes go to them while they keep up; none by default.
    #[arg(long, env = "SEALSTORE_DB_REPLICA_URLS", hide_env_values = true)]
    pub db_replica_urls: Option<String>,

    /// File holding the replica URLs (instead of --db-replica-urls; one per line or comma-separated).
    #[arg(long, env = "SEALSTORE_DB_REPLICA_URLS_FILE")]
    pub db_replica_urls_file: Option<PathBuf>,

    /// Most bytes of WAL a standby may lag behind the primary and still serve reads.
    #[arg(
        long,
        env = "SEALSTORE_DB_REPLICA_MAX_LAG_BYTES",
        default_value = "16777216"
    )]
    pub db_replica_max_lag_bytes: String,

    /// Seconds after a credential's own write during which its reads go to the primary.
    #[arg(long, env = "SEALSTORE_READ_YOUR_WRITES_SECS", default_value = "5")]
    pub read_your_writes_secs: String,

    /// The primary's URL leads to a pooler in transaction mode (PgBouncer): unnamed statements,
    /// no startup options (the pooler pins the settings: see --print-connect-query), one call
    /// per connection at a time.
    #[arg(
        long,
        env = "SEALSTORE_DB_TRANSACTION_POOLING",
        default_value = "false"
    )]
    pub db_transaction_pooling: String,

    /// Prints the connect_query that pins the gateway's settings behind PgBouncer (for
    /// pgbouncer.ini's entry of the gateway's database), then exits.
    #[arg(long)]
    pub print_connect_query: bool,

    /// Seconds to wait for a database connection or query in health checks.
    #[arg(long, env = "SEALSTORE_DB_TIMEOUT_SECS", default_value = "2")]
    pub db_timeout_secs: String,

    /// Seconds a request may take before it is answered with 503.
    #[arg(long, env = "SEALSTORE_REQUEST_TIMEOUT_SECS", default_value = "30")]
    pub request_timeout_secs: String,

    /// Seconds to let in-flight requests finish after SIGTERM or Ctrl-C.
    #[arg(long, env = "SEALSTORE_SHUTDOWN_TIMEOUT_SECS", default_value = "30")]
    pub shutdown_timeout_secs: String,

    /// Milliseconds one SQL statement may run (PostgreSQL's statement_timeout).
    #[arg(long, env = "SEALSTORE_STATEMENT_TIMEOUT_MS", default_value = "10000")]
    pub statement_timeout_ms: String,

    /// Production mode: refuses to start with a missing or weak database password, without
    /// TLS, without a Host allow-list, or with a wildcard CORS origin.
    #[arg(long, env = "SEALSTORE_PRODUCTION", default_value = "false")]
    pub production: String,

    /// PEM certificate chain for HTTPS (with --tls-key-file); plain HTTP without both.
    #[arg(long, env = "SEALSTORE_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key for HTTPS.
    #[arg(long, env = "SEALSTORE_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,

    /// Comma-separated Host header values to accept (host or host:port). Default: the listen
    /// address and, on loopback, localhost.
    #[arg(long, env = "SEALSTORE_ALLOWED_HOSTS")]
    pub allowed_hosts: Option<String>,

    /// Comma-separated origins allowed by CORS (scheme://host[:port]); none by default.
    #[arg(long, env = "SEALSTORE_CORS_ORIGINS", default_value = "")]
    pub cors_origins: String,

    /// Largest request body accepted, in bytes (larger: 413).
    #[arg(long, env = "SEALSTORE_MAX_BODY_BYTES", default_value = "1048576")]
    pub max_body_bytes: String,

    /// Requests per second per client address (sustained; bursts up to twice this).
    #[arg(long, env = "SEALSTORE_RATE_PER_IP", default_value = "2000")]
    pub rate_per_ip: String,

    /// Requests per second per credential (API key or JWT subject; bursts up to twice this).
    #[arg(long, env = "SEALSTORE_RATE_PER_KEY", default_value = "1000")]
    pub rate_per_key: String,

    /// Failed authentications per minute one client address may make before it is throttled.
    #[arg(long, env = "SEALSTORE_AUTH_FAILURES_PER_MINUTE", default_value = "30")]
    pub auth_failures_per_minute: String,

    /// Seconds a throttled client address is refused every authenticated request.
    #[arg(long, env = "SEALSTORE_AUTH_PENALTY_SECS", default_value = "60")]
    pub auth_penalty_secs: String,

    /// Threads serving requests (default: half the CPUs, at least one).
    #[arg(long, env = "SEALSTORE_WORKER_THREADS")]
    pub worker_threads: Option<String>,

    /// Scheduling policy of the gateway's threads on Linux: batch (no preemption on wake-up,
    /// so a busy machine's database backends are interrupted less) or normal.
    #[arg(long, env = "SEALSTORE_SCHED_POLICY", default_value = "batch")]
    pub sched_policy: String,

    /// Seconds between refreshes of the JWT verification keys from the database.
    #[arg(long, env = "SEALSTORE_KEY_REFRESH_SECS", default_value = "5")]
    pub key_refresh_secs: String,

    /// Most subscribers of GET /v1/events at once (beyond: 503).
    #[arg(
        long,
        env = "SEALSTORE_EVENTS_MAX_SUBSCRIBERS",
        default_value = "10000"
    )]
    pub events_max_subscribers: String,

    /// Events held for one subscriber that reads too slowly; beyond that it is disconnected
    /// (an error event `too_slow`) and resumes with Last-Event-ID.
    #[arg(long, env = "SEALSTORE_EVENTS_BUFFER", default_value = "4096")]
    pub events_buffer: String,

    /// Seconds between heartbeats (SSE comments) on an idle event stream.
    #[arg(long, env = "SEALSTORE_EVENTS_HEARTBEAT_SECS", default_value = "15")]
    pub events_heartbeat_secs: String,
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
pub struct Tls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub pg: PgUrl,
    pub db_pool_size: usize,
    pub db_read_connections: usize,
    pub db_pipeline_depth: usize,
    /// Hot standbys for the read routes, in the order given (named replica-1, replica-2, ...).
    pub replicas: Vec<PgUrl>,
    pub replica_max_lag_bytes: u64,
    pub read_your_writes: Duration,
    /// `SEALSTORE_DB_TRANSACTION_POOLING` (see `db` and `session`).
    pub transaction_pooling: bool,
    pub db_timeout: Duration,
    pub request_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub statement_timeout_ms: u64,
    pub production: bool,
    pub tls: Option<Tls>,
    /// Lower-case Host values accepted; `None`: derived from the bound address
    /// ([`default_hosts`]).
    pub allowed_hosts: Option<Vec<String>>,
    pub cors_origins: Vec<String>,
    pub max_body_bytes: usize,
    pub rate_per_ip: u32,
    pub rate_per_key: u32,
    pub auth_failures_per_minute: u32,
    pub auth_penalty: Duration,
    pub key_refresh: Duration,
    pub events_max_subscribers: usize,
    pub events_buffer: usize,
    pub events_heartbeat: Duration,
    pub worker_threads: usize,
    pub sched_policy: crate::sched::Policy,
}

/// Passwords shorter than this, or made of one repeated character, are weak in production.
pub const MIN_PASSWORD_LEN: usize = 16;

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

/// `SEALSTORE_STATEMENT_TIMEOUT_MS`, which `--print-connect-query` needs alone.
pub fn statement_timeout_ms(cli: &Cli) -> Result<u64, ConfigError> {
    bounded(
        "SEALSTORE_STATEMENT_TIMEOUT_MS",
        &cli.statement_timeout_ms,
        100u64,
        600_000,
    )
}

fn boolean(name: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(invalid(name, "expected true or false")),
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

/// A secret setting given as a value or as a file that holds it (a mounted secret), never both.
fn value_or_file(
    (name, value): (&'static str, Option<String>),
    (file_name, file): (&'static str, Option<PathBuf>),
) -> Result<Option<String>, ConfigError> {
    match (value, file) {
        (Some(_), Some(_)) => Err(invalid(
            name,
            format!("set either {name} or {file_name}, not both"),
        )),
        (Some(value), None) => Ok(Some(value)),
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map(Some)
            .map_err(|e| invalid(file_name, format!("cannot read {}: {e}", path.display()))),
        (None, None) => Ok(None),
    }
}

/// A PostgreSQL connection URL with a host and a user. tokio-postgres's parse errors can quote
/// the input, which holds the password: the errors here never do.
fn parse_pg_url(name: &'static str, url: &str) -> Result<tokio_postgres::Config, ConfigError> {
    let pg = tokio_postgres::Config::from_str(url).map_err(|_| {
        invalid(
            name,
            "not a valid PostgreSQL connection URL (value not shown)",
        )
    })?;
    if pg.get_hosts().is_empty() {
        return Err(invalid(name, "names no host (value not shown)"));
    }
    if pg.get_user().is_none_or(str::is_empty) {
        return Err(invalid(name, "names no user (value not shown)"));
    }
    Ok(pg)
}

impl Config {
    pub fn from_cli(cli: Cli) -> Result<Self, ConfigError> {
        let statement_timeout_ms = statement_timeout_ms(&cli)?;
        let listen = cli.listen.parse::<SocketAddr>().map_err(|_| {
            invalid(
                "SEALSTORE_GATEWAY_LISTEN",
                "expected IP:PORT, e.g. 127.0.0.1:8080",
            )
        })?;

        let url = value_or_file(
            ("SEALSTORE_GATEWAY_PG_URL", cli.pg_url),
            ("SEALSTORE_GATEWAY_PG_URL_FILE", cli.pg_url_file),
        )?
        .map(|text| text.trim().to_owned())
        .ok_or_else(|| {
            invalid(
                "SEALSTORE_GATEWAY_PG_URL",
                "required: the gateway role's connection URL (or SEALSTORE_GATEWAY_PG_URL_FILE)",
            )
        })?;
        let pg = parse_pg_url("SEALSTORE_GATEWAY_PG_URL", &url)?;
        let replica_list = value_or_file(
            ("SEALSTORE_DB_REPLICA_URLS", cli.db_replica_urls),
            ("SEALSTORE_DB_REPLICA_URLS_FILE", cli.db_replica_urls_file),
        )?
        .map(|text| text.lines().collect::<Vec<_>>().join(","))
        .unwrap_or_default();
        let replicas = split_urls(&replica_list)
            .iter()
            .map(|url| parse_pg_url("SEALSTORE_DB_REPLICA_URLS", url).map(PgUrl))
            .collect::<Result<Vec<_>, _>>()?;
        if replicas.len() > 16 {
            return Err(invalid("SEALSTORE_DB_REPLICA_URLS", "at most 16 replicas"));
        }

        let production = boolean("SEALSTORE_PRODUCTION", &cli.production)?;
        let transaction_pooling = boolean(
            "SEALSTORE_DB_TRANSACTION_POOLING",
            &cli.db_transaction_pooling,
        )?;
        let tls = match (cli.tls_cert_file, cli.tls_key_file) {
            (Some(cert_file), Some(key_file)) => Some(Tls {
                cert_file,
                key_file,
            }),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "SEALSTORE_TLS_CERT_FILE",
                    "set both SEALSTORE_TLS_CERT_FILE and SEALSTORE_TLS_KEY_FILE, or neither",
                ))
            }
        };
        let allowed_hosts = match cli.allowed_hosts {
            Some(list) => {
                let hosts = split_list(&list);
                if hosts.is_empty() || hosts.iter().any(|h| !valid_host(h)) {
                    return Err(invalid(
                        "SEALSTORE_ALLOWED_HOSTS",
                        "expected comma-separated host or host:port values",
                    ));
                }
                Some(hosts)
            }
            None => None,
        };
        let cors_origins = split_list(&cli.cors_origins);
        if let Some(bad) = cors_origins.iter().find(|o| !valid_origin(o)) {
            let problem = if bad == "*" {
                "a wildcard origin is not allowed: list the origins".to_owned()
            } else {
                format!("{bad:?} is not an origin (scheme://host[:port])")
            };
            return Err(invalid("SEALSTORE_CORS_ORIGINS", problem));
        }

        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let config = Self {
            listen,
            pg: PgUrl(pg),
            db_pool_size: bounded("SEALSTORE_DB_POOL_SIZE", &cli.db_pool_size, 1usize, 1024)?,
            db_read_connections: match cli.db_read_connections.as_deref() {
                Some(n) => bounded("SEALSTORE_DB_READ_CONNECTIONS", n, 1usize, 1024)?,
                None => default_read_connections(cpus),
            },
            db_pipeline_depth: bounded(
                "SEALSTORE_DB_PIPELINE_DEPTH",
                &cli.db_pipeline_depth,
                1usize,
                1024,
            )?,
            replicas,
            replica_max_lag_bytes: bounded(
                "SEALSTORE_DB_REPLICA_MAX_LAG_BYTES",
                &cli.db_replica_max_lag_bytes,
                0u64,
                1 << 40,
            )?,
            transaction_pooling,
            read_your_writes: Duration::from_secs(bounded(
                "SEALSTORE_READ_YOUR_WRITES_SECS",
                &cli.read_your_writes_secs,
                0u64,
                3600,
            )?),
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
            statement_timeout_ms,
            production,
            tls,
            allowed_hosts,
            cors_origins,
            max_body_bytes: bounded(
                "SEALSTORE_MAX_BODY_BYTES",
                &cli.max_body_bytes,
                1024usize,
                64 << 20,
            )?,
            rate_per_ip: bounded("SEALSTORE_RATE_PER_IP", &cli.rate_per_ip, 1u32, 1_000_000)?,
            rate_per_key: bounded("SEALSTORE_RATE_PER_KEY", &cli.rate_per_key, 1u32, 1_000_000)?,
            auth_failures_per_minute: bounded(
                "SEALSTORE_AUTH_FAILURES_PER_MINUTE",
                &cli.auth_failures_per_minute,
                1u32,
                100_000,
            )?,
            auth_penalty: Duration::from_secs(bounded(
                "SEALSTORE_AUTH_PENALTY_SECS",
                &cli.auth_penalty_secs,
                1u64,
                86_400,
            )?),
            key_refresh: Duration::from_secs(bounded(
                "SEALSTORE_KEY_REFRESH_SECS",
                &cli.key_refresh_secs,
                1u64,
                300,
            )?),
            events_max_subscribers: bounded(
                "SEALSTORE_EVENTS_MAX_SUBSCRIBERS",
                &cli.events_max_subscribers,
                0usize,
                1_000_000,
            )?,
            events_buffer: bounded(
                "SEALSTORE_EVENTS_BUFFER",
                &cli.events_buffer,
                1usize,
                65_536,
            )?,
            events_heartbeat: Duration::from_secs(bounded(
                "SEALSTORE_EVENTS_HEARTBEAT_SECS",
                &cli.events_heartbeat_secs,
                1u64,
                3600,
            )?),
            worker_threads: match cli.worker_threads.as_deref() {
                Some(n) => bounded("SEALSTORE_WORKER_THREADS", n, 1usize, 256)?,
                None => default_worker_threads(cpus),
            },
            sched_policy: cli
                .sched_policy
                .parse()
                .map_err(|()| invalid("SEALSTORE_SCHED_POLICY", "expected batch or normal"))?,
        };
        if config.production {
            config.check_production()?;
        }
        Ok(config)
    }

    /// What production mode refuses: secrets missing or weak, and settings that are only safe
    /// on a developer's machine.
    fn check_production(&self) -> Result<(), ConfigError> {
        let urls = std::iter::once(("SEALSTORE_GATEWAY_PG_URL", &self.pg)).chain(
            self.replicas
                .iter()
                .map(|r| ("SEALSTORE_DB_REPLICA_URLS", r)),
        );
        for (name, url) in urls {
            let weak = match url.config().get_password() {
                None => Some("has no password"),
                Some(pw) if pw.len() < MIN_PASSWORD_LEN => Some("has a password under 16 bytes"),
                Some(pw) if pw.iter().all(|b| *b == pw[0]) => Some("has a repetitive password"),
                Some(_) => None,
            };
            if let Some(problem) = weak {
                return Err(invalid(
                    name,
                    format!("{problem}, refused in production (value not shown)"),
                ));
            }
        }
        if self.tls.is_none() {
            return Err(invalid(
                "SEALSTORE_TLS_CERT_FILE",
                "production needs TLS (SEALSTORE_TLS_CERT_FILE and SEALSTORE_TLS_KEY_FILE)",
            ));
        }
        if self.allowed_hosts.is_none() && self.listen.ip().is_unspecified() {
            return Err(invalid(
                "SEALSTORE_ALLOWED_HOSTS",
                "production on a wildcard address needs the accepted Host values",
            ));
        }
        Ok(())
    }
}

/// Connection URLs separated by commas, as they are (passwords and names keep their case); a
/// comma inside a URL (several hosts) stays in it: a new URL starts with its scheme.
fn split_urls(s: &str) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    for piece in s.split(',') {
        let t = piece.trim();
        let starts = t.starts_with("postgresql://") || t.starts_with("postgres://");
        match urls.last_mut() {
            Some(last) if !starts => {
                last.push(',');
                last.push_str(t);
            }
            _ if !t.is_empty() => urls.push(t.to_owned()),
            _ => {}
        }
    }
    urls
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|x| x.trim().to_ascii_lowercase())
        .filter(|x| !x.is_empty())
        .collect()
}

/// Worker threads when none are configured: half the CPUs, at least one. A request costs the
/// gateway tens of microseconds, and the gateway usually shares its machine with PostgreSQL. With
/// a worker per CPU, each request that arrives on a quiet server wakes an idle worker which finds
/// nothing to do; on a busy machine that wake-up takes a core the database needed. Measured on
/// 2 cores: one client's searches went from 66% to 91% of direct SQL's rate with one worker, and
/// 64 clients' throughput was unchanged.
pub fn default_worker_threads(cpus: usize) -> usize {
    (cpus / 2).max(1)
}

/// Read connections when none are configured: two per CPU. Calls share them (see `lanes`), so
/// they need not match the clients: on 2 cores, 4 shared connections served 16 and 64 clients
/// better than 8 exclusive ones, and as well as 2 or 8 shared ones.
pub fn default_read_connections(cpus: usize) -> usize {
    2 * cpus.max(1)
}

fn valid_host(h: &str) -> bool {
    h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}

fn valid_origin(o: &str) -> bool {
    let Some((scheme, rest)) = o.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https") && !rest.is_empty() && valid_host(rest)
}

/// The listen address itself, and localhost too when it is a loopback address. A wildcard
/// address (0.0.0.0, ::) has no name of its own: any Host is accepted then (empty list; refused
/// in production).
pub fn default_hosts(listen: SocketAddr) -> Vec<String> {
    let ip = listen.ip();
    if ip.is_unspecified() {
        return Vec::new();
    }
    let port = listen.port();
    let name = match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let mut hosts = vec![name.clone(), format!("{name}:{port}")];
    if ip.is_loopback() {
        hosts.extend(["localhost".to_owned(), format!("localhost:{port}")]);
    }
    hosts
}

#[cfg(test)]
mod tests;
