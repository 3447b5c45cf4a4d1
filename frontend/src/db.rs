//! The database side: one pool of connections for the gateway's login role, the one-transaction
//! call every API request makes, readiness, and fail-fast while the database is unreachable.
//!
//! A call is one statement of a route function, which authenticates the token and then does the
//! route's work (see `router::Call`), run as its own implicit transaction: one message out, one
//! answer back, one round trip. Directly connected, the statement is prepared once per
//! connection, and reads use connections whose transactions default to read-only. Behind a
//! pooler in transaction mode (`SEALSTORE_DB_TRANSACTION_POOLING`; PgBouncer before 1.21 keeps
//! no prepared statements there), every statement is unnamed, with its parameters' types
//! given, and a read is sent as `BEGIN READ ONLY`, the call and `COMMIT` in one write: one
//! transaction, which the pooler keeps on one server connection. Values are always bind
//! parameters.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    ClientWrapper, Hook, HookError, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime,
    Timeouts,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{NoTls, Row};

use crate::config::{Config, PgUrl};
use crate::errors::DbError;
use crate::lanes::Lanes;
use crate::plan::Param;
use crate::replicas::Replicas;
use crate::session;

/// Connections for writes (up to the pool size, one call on each at a time), and connections
/// whose transactions are read-only by default (`default_transaction_read_only`), for the read
/// routes: `SEALSTORE_DB_READ_CONNECTIONS` of them, which calls share (`reads`, see `lanes`);
/// as many on each hot standby (`replicas`). Behind a pooler in transaction mode, the
/// primary's reads take pooled connections too, one call on each at a time.
#[derive(Clone)]
pub struct Pools {
    pub write: Pool,
    pub reads: Arc<Lanes>,
    pub replicas: Arc<Replicas>,
    /// The change feed's: its listening connection and the resumes' reads (see `events`).
    pub events: Pool,
}

pub fn pools(config: &Config) -> Result<Pools, deadpool_postgres::BuildError> {
    BEHIND_POOLER.store(config.transaction_pooling, Ordering::Relaxed);
    let pooled = config.transaction_pooling;
    let read_only = |name| Role {
        name,
        read_only: true,
        size: config.db_read_connections,
    };
    let lanes = |pg: &PgUrl, name| {
        pool(config, pg, read_only(name), false)
            .map(|p| Arc::new(Lanes::new(p, config.db_pipeline_depth)))
    };
    let write = Role {
        name: "sealstore-gateway",
        read_only: false,
        size: config.db_pool_size,
    };
    let events = Role {
        name: "sealstore-gateway-events",
        read_only: false,
        size: EVENT_CONNECTIONS,
    };
    Ok(Pools {
        write: pool(config, &config.pg, write, pooled)?,
        events: pool(config, &config.pg, events, pooled)?,
        reads: lanes(&config.pg, "sealstore-gateway-read")?,
        replicas: Arc::new(Replicas::new(
            config
                .replicas
                .iter()
                .map(|pg| lanes(pg, "sealstore-gateway-replica"))
                .collect::<Result<_, _>>()?,
            config.replica_max_lag_bytes,
            config.read_your_writes,
        )),
    })
}

/// Connections of the change feed: the listening one and one for a resume's reads.
const EVENT_CONNECTIONS: usize = 2;

/// What a pool's connections are for: the application name they announce, whether their
/// transactions are read-only by default, and how many there are at most.
struct Role {
    name: &'static str,
    read_only: bool,
    size: usize,
}

/// A pool of connections to `pg` for `role`. Through a pooler in transaction mode (`pooled`),
/// the settings are the pooler's to pin, and each new connection checks them.
fn pool(
    config: &Config,
    pg: &PgUrl,
    role: Role,
    pooled: bool,
) -> Result<Pool, deadpool_postgres::BuildError> {
    let settings = session::settings(config.statement_timeout_ms, role.read_only);
    let mut pg = pg.config().clone();
    if !pooled {
        pg.options(session::options(&settings));
    }
    pg.application_name(role.name);
    pg.connect_timeout(config.db_timeout);
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(role.size)
        .runtime(Runtime::Tokio1)
        .timeouts(Timeouts {
            wait: Some(config.db_timeout),
            create: Some(config.db_timeout),
            recycle: Some(config.db_timeout),
        })
        .post_create(Hook::async_fn(move |client, _| {
            let settings = settings.clone();
            Box::pin(async move {
                let facts = session::facts(client).await.map_err(HookError::Backend)?;
                let mut problems = session::problems(&facts);
                if pooled {
                    let held = session::held(client, &settings)
                        .await
                        .map_err(HookError::Backend)?;
                    let unpinned = session::unpinned(&settings, &held);
                    if !unpinned.is_empty() {
                        problems.push(format!(
                            "behind the pooler, the connection does not hold the gateway's {}: \
                             make the connect_query of its database in pgbouncer.ini what \
                             `sealstore-gateway --print-connect-query` prints",
                            unpinned.join(", ")
                        ));
                    }
                }
                if problems.is_empty() {
                    return Ok(());
                }
                for problem in &problems {
                    tracing::error!(problem = problem.as_str(), "database login role refused");
                }
                Err(HookError::message(problems.join("; ")))
            })
        }))
        .build()
}

/// Whether the write pool's connections lead to a pooler in transaction mode (set once, by
/// `pools`).
static BEHIND_POOLER: AtomicBool = AtomicBool::new(false);

fn behind_pooler() -> bool {
    BEHIND_POOLER.load(Ordering::Relaxed)
}

/// A connection of the write pool, lent for one statement. Behind a pooler in transaction mode,
/// a connection whose statement did not finish (its future dropped: a request cancelled or
/// timed out while its answer was due) is closed instead of going back to the pool: its next
/// statement would follow the unanswered one, and PgBouncer 1.18 may hand the server
/// connection to another client at the first answer (pipelining it cannot follow). Directly
/// connected, the server answers in order and the connection stays.
pub struct Lease(Option<Object>);

impl Lease {
    pub async fn get(pool: &Pool) -> Result<Lease, DbError> {
        pool.get()
            .await
            .map(|o| Lease(Some(o)))
            .map_err(DbError::from_pool)
    }

    /// The statement finished: the connection goes back to the pool.
    pub fn finished(mut self) {
        self.0.take();
    }
}

impl Deref for Lease {
    type Target = ClientWrapper;

    fn deref(&self) -> &ClientWrapper {
        self.0
            .as_ref()
            .expect("a lease holds its connection until it ends")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(object) = self.0.take() {
            if behind_pooler() {
                drop(Object::take(object));
            }
        }
    }
}

/// Makes one connection now, so that a login role the gateway refuses stops it at start
/// (`Err` with the reasons). A database that cannot be reached is not an error here: the
/// gateway starts and answers 503 until it can.
pub async fn check_login_role(pool: &Pool) -> Result<(), String> {
    match pool.get().await {
        Err(deadpool_postgres::PoolError::PostCreateHook(HookError::Message(why))) => {
            Err(why.into_owned())
        }
        _ => Ok(()),
    }
}

/// Whether the database is believed down. While it is, calls fail at once (503) instead of
/// each waiting for a connection timeout; one probe loop brings it back.
#[derive(Default)]
pub struct Health {
    down: AtomicBool,
    probing: AtomicBool,
}

/// How often the probe loop retries while the database is down.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);

impl Health {
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Marks the database down and starts the probe loop unless one runs.
    pub fn mark_down(self: &Arc<Self>, pool: &Pool, timeout: Duration) {
        self.down.store(true, Ordering::Relaxed);
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!("database unavailable: failing fast until it answers again");
        let health = self.clone();
        let pool = pool.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_INTERVAL).await;
                let probe = async {
                    let client = Lease::get(&pool).await.ok()?;
                    let answer = client.simple_query("SELECT 1").await.ok();
                    client.finished();
                    answer
                };
                if let Ok(Some(_)) = tokio::time::timeout(timeout, probe).await {
                    break;
                }
            }
            health.down.store(false, Ordering::Relaxed);
            health.probing.store(false, Ordering::Release);
            tracing::info!("database available again");
        });
    }
}

/// What a route function answered (see `pg_ext/src/api/routes.rs`): whom the token speaks
/// for, and the response's JSON (None: no body).
pub struct Answer {
    pub subject: String,
    pub body: Option<String>,
}

/// Which server answered a call: the primary, or the replica with this index.
pub type Served = Option<usize>;

/// Makes one call of a route function: `statement` takes the token as `$1` and `params` after
/// it, and runs as one statement in its own transaction, on a shared read connection (of a
/// replica that keeps up, see `replicas`, else of the primary) or a pooled write one.
pub async fn call(
    pools: &Pools,
    read_only: bool,
    statement: &str,
    token: &str,
    params: &[Param],
) -> Result<(Answer, Served), DbError> {
    if read_only {
        if let Some((i, replica)) = pools.replicas.pick(token) {
            let answer = async {
                let client = replica.lanes.lend().await?;
                call_on(&client, Protocol::Prepared, statement, token, params).await
            };
            match answer.await {
                Ok(answer) => return Ok((answer, Some(i))),
                // Unreachable: the primary answers, and the replica gets no reads until the
                // monitor finds it again.
                Err(DbError::Unavailable(_)) => pools.replicas.mark_down(i),
                // Full for now: the primary answers this one.
                Err(DbError::Busy) => {}
                // A credential made on the primary a moment ago may not have been replayed
                // yet, and a standby cancels a read that conflicts with replay (40001): the
                // primary decides.
                Err(DbError::Sql { code, .. })
                    if code == SqlState::INVALID_PASSWORD
                        || code == SqlState::T_R_SERIALIZATION_FAILURE => {}
                Err(e) => return Err(e),
            }
        }
        if !behind_pooler() {
            let client = pools.reads.lend().await?;
            let answer = call_on(&client, Protocol::Prepared, statement, token, params).await?;
            return Ok((answer, None));
        }
    }
    let protocol = if behind_pooler() {
        Protocol::Unnamed { read_only }
    } else {
        Protocol::Prepared
    };
    let client = Lease::get(&pools.write).await?;
    let answer = call_on(&client, protocol, statement, token, params).await;
    client.finished();
    let answer = answer?;
    if !read_only {
        pools.replicas.wrote(token);
    }
    Ok((answer, None))
}

/// How a call's statement is sent.
#[derive(Clone, Copy)]
enum Protocol {
    /// Prepared once per connection (tokio-postgres's statement cache), then bound and run.
    Prepared,
    /// Parsed, bound and run in one go as the unnamed statement (which a pooler in transaction
    /// mode passes), in a read-only transaction block for a read.
    Unnamed { read_only: bool },
}

async fn call_on(
    client: &ClientWrapper,
    protocol: Protocol,
    statement: &str,
    token: &str,
    params: &[Param],
) -> Result<Answer, DbError> {
    let rows = match protocol {
        Protocol::Prepared => {
            let stmt = client
                .prepare_cached(statement)
                .await
                .map_err(DbError::from_pg)?;
            let mut all: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(params.len() + 1);
            all.push(&token);
            all.extend(params.iter().map(Param::value));
            client.query(&stmt, &all).await
        }
        Protocol::Unnamed { read_only } => {
            let mut all: Vec<(&(dyn ToSql + Sync), Type)> = Vec::with_capacity(params.len() + 1);
            all.push((&token, Type::TEXT));
            all.extend(params.iter().map(|p| (p.value(), p.ty().clone())));
            if read_only {
                // Each request is written when first polled, and join3 polls in order: the
                // three go out together. An error in the call makes COMMIT roll back.
                let (begin, rows, end) = futures_util::future::join3(
                    client.batch_execute("BEGIN READ ONLY"),
                    client.query_typed(statement, &all),
                    client.batch_execute("COMMIT"),
                )
                .await;
                begin.and(rows).and_then(|rows| end.map(|()| rows))
            } else {
                client.query_typed(statement, &all).await
            }
        }
    }
    .map_err(DbError::from_pg)?;
    let row = rows.first().ok_or_else(|| DbError::Sql {
        code: SqlState::INTERNAL_ERROR,
        message: "a route function returned no row".to_owned(),
        detail: None,
    })?;
    Ok(Answer {
        subject: row.try_get(0).map_err(DbError::from_pg)?,
        body: row.try_get(1).map_err(DbError::from_pg)?,
    })
}

/// Runs a statement outside any tenant context (public verification data, audit reports), as
/// the unnamed statement: these are rare, and any pooler passes them.
pub async fn query_plain(
    pool: &Pool,
    sql: &'static str,
    params: &[(&(dyn ToSql + Sync), Type)],
) -> Result<Vec<Row>, DbError> {
    let client = pool.get().await.map_err(DbError::from_pool)?;
    client
        .query_typed(sql, params)
        .await
        .map_err(DbError::from_pg)
}

/// Why the service is not ready.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("database unreachable: {0}")]
    Database(String),
    #[error("master key unavailable (SQLSTATE {sqlstate})")]
    MasterKey { sqlstate: String },
}

/// SQLSTATEs that `sealstore.master_key_fingerprint()` raises when the server has no key
/// (see the error table in docs/sql.md).
const KEY_UNAVAILABLE: &[&str] = &["55000", "58P01", "F0000"];

/// Ready means: a connection can be had, and the server holds the master key.
pub async fn check_ready(pool: &Pool, timeout: Duration) -> Result<(), NotReady> {
    let probe = async {
        let client = Lease::get(pool)
            .await
            .map_err(|e| NotReady::Database(format!("{e:?}")))?;
        let answer = client
            .query_typed_one("SELECT sealstore.master_key_fingerprint()", &[])
            .await;
        client.finished();
        match answer {
            Ok(_) => Ok(()),
            Err(e) => match e.code().map(|c| c.code()) {
                Some(code) if KEY_UNAVAILABLE.contains(&code) => Err(NotReady::MasterKey {
                    sqlstate: code.to_owned(),
                }),
                _ => Err(NotReady::Database(e.to_string())),
            },
        }
    };
    tokio::time::timeout(timeout, probe)
        .await
        .unwrap_or_else(|_| Err(NotReady::Database("timed out".to_owned())))
}
