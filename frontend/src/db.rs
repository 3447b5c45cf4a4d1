//! The database side: one pool of connections for the gateway's login role, and the readiness
//! probe. Every call is bounded by a timeout so a database that hangs cannot hang the gateway.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::NoTls;

use crate::config::Config;

pub fn pool(config: &Config) -> Result<Pool, deadpool_postgres::BuildError> {
    let manager = Manager::from_config(
        config.pg.config().clone(),
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(config.db_pool_size)
        .runtime(Runtime::Tokio1)
        .timeouts(Timeouts {
            wait: Some(config.db_timeout),
            create: Some(config.db_timeout),
            recycle: Some(config.db_timeout),
        })
        .build()
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
/// (see the README's error table).
const KEY_UNAVAILABLE: &[&str] = &["55000", "58P01", "F0000"];

/// Ready means: a connection can be had, and the server holds the master key.
pub async fn check_ready(pool: &Pool, timeout: Duration) -> Result<(), NotReady> {
    let probe = async {
        let client = pool
            .get()
            .await
            .map_err(|e| NotReady::Database(e.to_string()))?;
        match client
            .query_one("SELECT sealstore.master_key_fingerprint()", &[])
            .await
        {
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
