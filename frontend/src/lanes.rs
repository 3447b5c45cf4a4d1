//! Read connections that concurrent calls share: lanes.
//!
//! A read call is one statement in its own implicit transaction, ended by its own Sync, so
//! calls from different requests can follow one another on one connection without waiting for
//! each other's answers: tokio-postgres writes each call as soon as it is made and matches the
//! answers in order (pipelining). The server then finds the next statement already waiting when
//! it finishes one, instead of sleeping until a connection's next client wakes it: on the 2-core
//! benchmark machine, 16 clients' get-document throughput through the gateway went from 81% to
//! 88–92% of direct SQL with 4 shared connections instead of 8 exclusive ones.
//!
//! Isolation does not depend on the connection: a call's tenant context is set by its own
//! `authenticate` and ends with its own transaction, and an error in one call ends only that
//! call's transaction (the server skips to that call's Sync).
//!
//! A call takes an idle lane when there is one, else opens a lane not yet connected, else joins
//! the lane with the fewest calls in flight, and past `depth` calls on every lane it is refused
//! as overload. Writes do not share: each commit waits for its WAL flush, and on one connection
//! the next call would wait for it too, where separate connections flush together.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use deadpool_postgres::{ClientWrapper, Object, Pool};

use crate::errors::DbError;

/// Where a call goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Choice {
    /// Onto the open lane with this index.
    Join(usize),
    /// Onto the lane with this index, which needs a connection first.
    Open(usize),
    /// Nowhere: every lane holds `depth` calls.
    Full,
}

/// Chooses a lane for a call from each lane's state: `None` for a lane without an open
/// connection, else how many calls it has in flight.
pub fn choose(lanes: impl IntoIterator<Item = Option<usize>>, depth: usize) -> Choice {
    let mut least: Option<(usize, usize)> = None;
    let mut unopened = None;
    for (i, lane) in lanes.into_iter().enumerate() {
        match lane {
            Some(0) => return Choice::Join(i),
            Some(n) if n < depth && least.is_none_or(|(_, m)| n < m) => least = Some((i, n)),
            Some(_) => {}
            None => {
                unopened.get_or_insert(i);
            }
        }
    }
    match (unopened, least) {
        (Some(i), _) => Choice::Open(i),
        (None, Some((i, _))) => Choice::Join(i),
        (None, None) => Choice::Full,
    }
}

/// An open lane: the connection, and a token each call on it holds (so the count of tokens
/// beyond the lane's own is the number of calls in flight).
struct Open {
    client: Arc<Object>,
    in_flight: Arc<()>,
}

impl Open {
    fn lend(&self) -> Lent {
        Lent {
            client: self.client.clone(),
            _in_flight: self.in_flight.clone(),
        }
    }

    fn calls(&self) -> usize {
        Arc::strong_count(&self.in_flight) - 1
    }
}

struct Lane {
    /// `None` until connected, and again after its connection closed.
    open: Mutex<Option<Open>>,
    /// Held while the lane connects, so that calls choosing it meanwhile wait for that
    /// connection instead of each taking one; it keeps the last failed attempt, which the calls
    /// that waited for it share instead of each trying again in turn (against an unreachable
    /// server, one after another, each for the whole connect timeout).
    connecting: tokio::sync::Mutex<Option<(Instant, DbError)>>,
}

impl Lane {
    /// `f` of the lane's connection, unless it has none open.
    fn with_open<T>(&self, f: impl FnOnce(&Open) -> T) -> Option<T> {
        let open = self.open.lock().expect("lane lock");
        open.as_ref().filter(|o| !o.client.is_closed()).map(f)
    }

    /// The lane's connection with one more call on it, unless it has none open.
    fn lend(&self) -> Option<Lent> {
        self.with_open(Open::lend)
    }

    /// What `choose` needs to know of the lane.
    fn state(&self) -> Option<usize> {
        self.with_open(Open::calls)
    }
}

/// The lanes over one pool, as many as the pool may open connections; a closed connection
/// goes back to the pool (which drops it) once its last call ends, and the lane opens another.
pub struct Lanes {
    pool: Pool,
    lanes: Box<[Lane]>,
    depth: usize,
}

/// A connection lent to one call, counted in flight on its lane until dropped.
pub struct Lent {
    client: Arc<Object>,
    _in_flight: Arc<()>,
}

impl std::ops::Deref for Lent {
    type Target = ClientWrapper;

    fn deref(&self) -> &ClientWrapper {
        &self.client
    }
}

impl Lanes {
    pub fn new(pool: Pool, depth: usize) -> Self {
        let lanes = (0..pool.status().max_size)
            .map(|_| Lane {
                open: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(None),
            })
            .collect();
        Self { pool, lanes, depth }
    }

    /// A connection for one call.
    pub async fn lend(&self) -> Result<Lent, DbError> {
        let lane = match choose(self.lanes.iter().map(Lane::state), self.depth) {
            Choice::Full => return Err(DbError::Busy),
            Choice::Join(i) => match self.lanes[i].lend() {
                Some(lent) => return Ok(lent),
                // Closed since it was chosen.
                None => &self.lanes[i],
            },
            Choice::Open(i) => &self.lanes[i],
        };
        let asked = Instant::now();
        let mut failed = lane.connecting.lock().await;
        if let Some(lent) = lane.lend() {
            return Ok(lent);
        }
        if let Some((at, e)) = &*failed {
            if *at >= asked {
                return Err(e.clone());
            }
        }
        // A closed connection still counts against the pool until the lane lets go of it (and
        // its last call ends): with every lane holding one, no new one could be had.
        drop(lane.open.lock().expect("lane lock").take());
        let client = match self.pool.get().await {
            Ok(client) => Arc::new(client),
            Err(e) => {
                let e = DbError::from_pool(e);
                *failed = Some((Instant::now(), e.clone()));
                return Err(e);
            }
        };
        let open = Open {
            client,
            in_flight: Arc::new(()),
        };
        let lent = open.lend();
        *lane.open.lock().expect("lane lock") = Some(open);
        Ok(lent)
    }

    /// The pool's own counts (size, idle, waiting).
    pub fn status(&self) -> deadpool_postgres::Status {
        self.pool.status()
    }

    /// Calls in flight on all lanes.
    pub fn in_flight(&self) -> usize {
        self.lanes.iter().filter_map(Lane::state).sum()
    }
}

#[cfg(test)]
mod tests;
