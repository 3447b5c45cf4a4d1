//! Failed authentications, reported to the database's append-only audit log.
//!
//! The request path only counts (a bounded channel, never blocking); a background task sums
//! the counts per (address, reason) and sends them once a second through
//! `sealstore.record_auth_failures`, so a flood of bad tokens costs one small write a second,
//! not one per request. If the database is down the sums are kept, up to a bound, and sent
//! when it is back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::mpsc;

use crate::db;
use crate::metrics::Metrics;

const CHANNEL: usize = 4096;
/// Distinct (address, reason) pairs held between flushes; more are counted as dropped.
const MAX_PENDING: usize = 1000;
const FLUSH_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<(IpAddr, &'static str)>,
    metrics: std::sync::Arc<Metrics>,
}

impl AuditSink {
    pub fn auth_failure(&self, ip: IpAddr, reason: &'static str) {
        if self.tx.try_send((ip, reason)).is_err() {
            self.metrics.audit_dropped.inc();
        }
    }
}

/// Starts the flushing task; it ends, after a last flush, when every sink is dropped.
pub fn spawn(
    pool: Pool,
    metrics: std::sync::Arc<Metrics>,
) -> (AuditSink, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel(CHANNEL);
    let sink = AuditSink {
        tx,
        metrics: metrics.clone(),
    };
    let task = tokio::spawn(async move {
        let mut pending: HashMap<(IpAddr, &'static str), u64> = HashMap::new();
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        loop {
            tokio::select! {
                got = rx.recv() => match got {
                    Some(key) => {
                        if pending.len() < MAX_PENDING || pending.contains_key(&key) {
                            *pending.entry(key).or_default() += 1;
                        } else {
                            metrics.audit_dropped.inc();
                        }
                    }
                    None => {
                        flush(&pool, &mut pending).await;
                        return;
                    }
                },
                _ = tick.tick() => flush(&pool, &mut pending).await,
            }
        }
    });
    (sink, task)
}

async fn flush(pool: &Pool, pending: &mut HashMap<(IpAddr, &'static str), u64>) {
    if pending.is_empty() {
        return;
    }
    let report: Vec<serde_json::Value> = pending
        .iter()
        .map(|((ip, reason), count)| {
            serde_json::json!({
                "client": ip.to_string(),
                "reason": reason,
                "count": (*count).min(sealstore_core::auth::MAX_AUTH_FAILURE_COUNT),
            })
        })
        .collect();
    let report = serde_json::Value::Array(report);
    match db::query_plain(
        pool,
        "SELECT sealstore.record_auth_failures($1)",
        &[(&report, tokio_postgres::types::Type::JSONB)],
    )
    .await
    {
        Ok(_) => pending.clear(),
        Err(e) => {
            tracing::warn!(error = ?e, pending = pending.len(), "audit report not written yet")
        }
    }
}
