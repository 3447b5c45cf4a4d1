//! Hot standbys for the read routes (`SEALSTORE_DB_REPLICA_URLS`).
//!
//! A monitor asks every replica once a second whether it is still a standby and how far its
//! replay is behind the primary's WAL position. A read goes to the next replica, in turn, that
//! answered, is a standby and lags at most `SEALSTORE_DB_REPLICA_MAX_LAG_BYTES`; otherwise to the
//! primary. A replica whose call fails to connect is taken out at once (the call is made again
//! on the primary) until the monitor finds it answering. A credential that wrote through the
//! gateway reads from the primary for `SEALSTORE_READ_YOUR_WRITES_SECS` afterwards, so it sees
//! its own writes whatever the lag. Key changes need no such care: a standby stops using
//! revoked or shredded keys as soon as it replays them (docs/operations.md, "Hot standbys").

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;

use crate::lanes::Lanes;

/// How often the monitor looks at every replica.
pub const MONITOR_INTERVAL: Duration = Duration::from_secs(1);

/// Bytes by which a standby's replay is behind the primary's WAL position (0 when ahead: the
/// primary's position was read first).
pub fn lag(primary: u64, replayed: u64) -> u64 {
    primary.saturating_sub(replayed)
}

/// What the monitor last learned of a replica: whether it answered as a standby, and its lag
/// when the primary's position could be read too (`None`: unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub standby: bool,
    pub lag: Option<u64>,
}

/// A replica serves reads when it answered as a standby and is known to lag at most `max_lag`
/// bytes; while the primary cannot be reached its lag is unknown, and it serves reads (the
/// primary could not).
pub fn usable(seen: Option<Seen>, max_lag: u64) -> bool {
    seen.is_some_and(|s| s.standby && s.lag.is_none_or(|lag| lag <= max_lag))
}

/// What a look at a replica says, its lag filled in from the last look when the primary's
/// position could not be read (down, or its pool saturated): a standby is not taken to keep up
/// because nobody could tell.
pub fn with_last_lag(seen: Option<Seen>, last: Option<u64>) -> Option<Seen> {
    seen.map(|s| Seen {
        lag: s.lag.or(last),
        ..s
    })
}

/// The first of `n` replicas from `start` on (round robin) that `ok` accepts.
pub fn choose(n: usize, start: usize, ok: impl Fn(usize) -> bool) -> Option<usize> {
    (0..n).map(|k| (start + k) % n).find(|&i| ok(i))
}

/// Credentials that wrote lately, by a keyed hash of the token (never the token itself).
pub struct RecentWrites {
    hasher: RandomState,
    window: Duration,
    at: Mutex<HashMap<u64, Instant>>,
}

/// Credentials remembered at most: past it, those whose window has passed are forgotten, and if
/// that is not enough, all (their next reads may go to a replica early).
const RECENT_WRITES_LIMIT: usize = 65_536;

impl RecentWrites {
    pub fn new(window: Duration) -> Self {
        RecentWrites {
            hasher: RandomState::new(),
            window,
            at: Mutex::new(HashMap::new()),
        }
    }

    pub fn note(&self, token: &str, now: Instant) {
        if self.window.is_zero() {
            return;
        }
        let key = self.hasher.hash_one(token);
        let mut at = self.at.lock().expect("recent writes lock");
        if at.len() >= RECENT_WRITES_LIMIT && !at.contains_key(&key) {
            at.retain(|_, t| now.saturating_duration_since(*t) < self.window);
            if at.len() >= RECENT_WRITES_LIMIT {
                at.clear();
            }
        }
        at.insert(key, now);
    }

    pub fn recent(&self, token: &str, now: Instant) -> bool {
        if self.window.is_zero() {
            return false;
        }
        let key = self.hasher.hash_one(token);
        let at = self.at.lock().expect("recent writes lock");
        at.get(&key)
            .is_some_and(|t| now.saturating_duration_since(*t) < self.window)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.at.lock().unwrap().len()
    }
}

/// One replica: its shared read connections and what the monitor last learned.
pub struct Replica {
    /// `replica-N`, N its place in `SEALSTORE_DB_REPLICA_URLS` from 1 (no host or password).
    pub name: String,
    pub lanes: Arc<Lanes>,
    usable: AtomicBool,
    standby: AtomicBool,
    /// Bytes behind the primary; `u64::MAX` when unknown.
    lag: AtomicU64,
}

/// A replica's state as `/readyz` and `/metrics` show it.
pub struct State<'a> {
    pub name: &'a str,
    pub usable: bool,
    pub lag_bytes: Option<u64>,
}

pub struct Replicas {
    list: Vec<Replica>,
    next: AtomicUsize,
    max_lag: u64,
    writes: RecentWrites,
}

impl Replicas {
    pub fn new(lanes: Vec<Arc<Lanes>>, max_lag: u64, read_your_writes: Duration) -> Self {
        Replicas {
            list: lanes
                .into_iter()
                .enumerate()
                .map(|(i, lanes)| Replica {
                    name: format!("replica-{}", i + 1),
                    lanes,
                    usable: AtomicBool::new(false),
                    standby: AtomicBool::new(false),
                    lag: AtomicU64::new(u64::MAX),
                })
                .collect(),
            next: AtomicUsize::new(0),
            max_lag,
            writes: RecentWrites::new(read_your_writes),
        }
    }

    /// The replica a read with `token` goes to, if any.
    pub fn pick(&self, token: &str) -> Option<(usize, &Replica)> {
        if self.list.is_empty() {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let i = choose(self.list.len(), start, |i| {
            self.list[i].usable.load(Ordering::Relaxed)
        })?;
        // Looked up (a lock and a hash) only when a replica would take the read.
        if self.writes.recent(token, Instant::now()) {
            return None;
        }
        Some((i, &self.list[i]))
    }

    /// `token` wrote: its reads go to the primary for the read-your-writes window.
    pub fn wrote(&self, token: &str) {
        if !self.list.is_empty() {
            self.writes.note(token, Instant::now());
        }
    }

    /// A call could not reach replica `i`: no reads for it until the monitor finds it again.
    pub fn mark_down(&self, i: usize) {
        if let Some(r) = self.list.get(i) {
            if r.usable.swap(false, Ordering::Relaxed) {
                tracing::warn!(
                    replica = r.name.as_str(),
                    "replica unreachable: reads go elsewhere"
                );
            }
        }
    }

    pub fn states(&self) -> Vec<State<'_>> {
        self.list
            .iter()
            .map(|r| State {
                name: &r.name,
                usable: r.usable.load(Ordering::Relaxed),
                lag_bytes: Some(r.lag.load(Ordering::Relaxed)).filter(|&l| l != u64::MAX),
            })
            .collect()
    }

    /// Whether some replica serves reads now.
    pub fn any_usable(&self) -> bool {
        self.list.iter().any(|r| r.usable.load(Ordering::Relaxed))
    }

    fn record(&self, r: &Replica, seen: Option<Seen>) {
        let last = Some(r.lag.load(Ordering::Relaxed)).filter(|&l| l != u64::MAX);
        let seen = with_last_lag(seen, last);
        let now_usable = usable(seen, self.max_lag);
        r.standby
            .store(seen.is_some_and(|s| s.standby), Ordering::Relaxed);
        r.lag.store(
            seen.and_then(|s| s.lag).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if r.usable.swap(now_usable, Ordering::Relaxed) != now_usable {
            tracing::info!(
                replica = r.name.as_str(),
                usable = now_usable,
                lag_bytes = seen.and_then(|s| s.lag),
                standby = seen.map(|s| s.standby),
                "replica state changed"
            );
        }
    }

    /// Starts the monitor (nothing without replicas).
    pub fn spawn_monitor(self: &Arc<Self>, primary: Pool, timeout: Duration) {
        if self.list.is_empty() {
            return;
        }
        let replicas = self.clone();
        tokio::spawn(async move {
            loop {
                let position = tokio::time::timeout(timeout, primary_position(&primary))
                    .await
                    .ok()
                    .flatten();
                for r in &replicas.list {
                    let seen = tokio::time::timeout(timeout, replay_position(&r.lanes))
                        .await
                        .ok()
                        .flatten()
                        .map(|(standby, replayed)| Seen {
                            standby,
                            lag: position.zip(replayed).map(|(p, r)| lag(p, r)),
                        });
                    replicas.record(r, seen);
                }
                tokio::time::sleep(MONITOR_INTERVAL).await;
            }
        });
    }
}

/// The primary's WAL position in bytes.
async fn primary_position(pool: &Pool) -> Option<u64> {
    let client = crate::db::Lease::get(pool).await.ok()?;
    let row = client
        .query_typed_one(
            "SELECT (pg_catalog.pg_current_wal_lsn() OPERATOR(pg_catalog.-) '0/0'::pg_catalog.pg_lsn)::pg_catalog.int8",
            &[],
        )
        .await;
    client.finished();
    let row = row.ok()?;
    row.try_get::<_, i64>(0).ok().map(|p| p as u64)
}

/// Whether the replica is a standby, and its replay position in bytes.
async fn replay_position(lanes: &Lanes) -> Option<(bool, Option<u64>)> {
    let client = lanes.lend().await.ok()?;
    let row = client
        .query_typed_one(
            "SELECT pg_catalog.pg_is_in_recovery(), \
                    (pg_catalog.pg_last_wal_replay_lsn() OPERATOR(pg_catalog.-) '0/0'::pg_catalog.pg_lsn)::pg_catalog.int8",
            &[],
        )
        .await
        .ok()?;
    let standby: bool = row.try_get(0).ok()?;
    let replayed: Option<i64> = row.try_get(1).ok()?;
    Some((standby, replayed.map(|r| r as u64)))
}

#[cfg(test)]
mod tests;
