//! Every way a request can fail, and how each is answered: one failure type ([`Failure`]),
//! and the SQLSTATE to HTTP table that the database's errors and the pool's go through.
//! Clients get a status, a stable code and a fixed message; the database's own message and
//! detail go to the log only, under the request id. The table is tested against every error
//! kind the extension declares (`sealstore_core::error::Kind`).

use hyper::StatusCode;
use tokio_postgres::error::SqlState;

/// How one class of database error is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapped {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: &'static str,
    /// Seconds for Retry-After (503 only).
    pub retry_after: Option<u32>,
}

const fn m(status: StatusCode, code: &'static str, message: &'static str) -> Mapped {
    Mapped {
        status,
        code,
        message,
        retry_after: None,
    }
}

const fn retry(code: &'static str, message: &'static str, secs: u32) -> Mapped {
    Mapped {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code,
        message,
        retry_after: Some(secs),
    }
}

pub const UNAUTHORIZED: Mapped = m(
    StatusCode::UNAUTHORIZED,
    "unauthorized",
    "missing, invalid or expired credential",
);
pub const FORBIDDEN: Mapped = m(
    StatusCode::FORBIDDEN,
    "forbidden",
    "the credential does not allow this",
);
pub const NOT_FOUND: Mapped = m(StatusCode::NOT_FOUND, "not_found", "not found");
pub const DATABASE_UNAVAILABLE: Mapped = retry(
    "database_unavailable",
    "database unavailable, try again later",
    2,
);

/// The change feed has not read the database yet (it is down or just starting).
pub const EVENTS_NOT_READY: Mapped = retry(
    "events_unavailable",
    "the change feed is not available yet, try again",
    2,
);

/// `SEALSTORE_EVENTS_MAX_SUBSCRIBERS` streams are open, or the gateway is shutting down.
pub const EVENTS_FULL: Mapped = retry(
    "too_many_subscribers",
    "too many open event streams, try again later",
    5,
);

/// Every database connection busy for the whole pool wait: try again shortly.
pub const OVERLOADED: Mapped = retry("overloaded", "server busy, try again", 1);

/// Exact SQLSTATEs first, then whole classes (the first two characters).
const EXACT: &[(&str, Mapped)] = &[
    ("28P01", UNAUTHORIZED),
    // Through the gateway every transaction authenticates first, so "no tenant context"
    // means a verified credential that names no tenant (an admin token) on a tenant route.
    ("28000", FORBIDDEN),
    ("42501", FORBIDDEN),
    // A row of another tenant is indistinguishable from a missing one (the extension answers
    // both with the same SQLSTATE), so it is a 404 too.
    ("P0002", NOT_FOUND),
    ("42704", NOT_FOUND),
    (
        "23505",
        m(StatusCode::CONFLICT, "conflict", "already exists"),
    ),
    (
        "42710",
        m(StatusCode::CONFLICT, "conflict", "already exists"),
    ),
    (
        "54000",
        m(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "input exceeds a limit",
        ),
    ),
    (
        "XX001",
        m(
            StatusCode::INTERNAL_SERVER_ERROR,
            "data_corrupted",
            "stored data failed its integrity check",
        ),
    ),
    (
        "57014",
        m(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "the request took too long",
        ),
    ),
    (
        "40001",
        retry("conflict_retry", "concurrent update, try again", 1),
    ),
    (
        "40P01",
        retry("conflict_retry", "concurrent update, try again", 1),
    ),
    (
        "55000",
        retry("service_unavailable", "service unavailable", 5),
    ),
    // A write that reached a server in recovery (a standby, or a primary being demoted).
    (
        "25006",
        retry("service_unavailable", "service unavailable", 1),
    ),
    (
        "58P01",
        retry("service_unavailable", "service unavailable", 5),
    ),
    (
        "F0000",
        retry("service_unavailable", "service unavailable", 5),
    ),
    (
        "0A000",
        m(StatusCode::BAD_REQUEST, "invalid_request", "not supported"),
    ),
];

const CLASSES: &[(&str, Mapped)] = &[
    (
        "22",
        m(StatusCode::BAD_REQUEST, "invalid_request", "invalid input"),
    ),
    (
        "23",
        m(
            StatusCode::CONFLICT,
            "conflict",
            "conflicts with existing data",
        ),
    ),
    ("08", DATABASE_UNAVAILABLE),
    (
        "53",
        retry("service_unavailable", "service overloaded, try again", 2),
    ),
    ("57", DATABASE_UNAVAILABLE),
    // Program limits (54000 above; 54001 a value too deeply nested for the server's stack).
    (
        "54",
        m(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "input exceeds a limit",
        ),
    ),
];

pub const INTERNAL: Mapped = m(
    StatusCode::INTERNAL_SERVER_ERROR,
    "internal",
    "internal error",
);

/// Why a call of the database failed.
#[derive(Debug, Clone)]
pub enum DbError {
    /// No connection could be had, or it broke: the database is down or restarting.
    Unavailable(String),
    /// Every pooled connection stayed busy for the whole wait, every read connection holds
    /// its most calls, or the server refused more connections: overload, not an outage (no
    /// fail-fast mode).
    Busy,
    /// The database answered with an error. `message` and `detail` are logged, never sent to
    /// clients; `detail` starts with the extension's stable code.
    Sql {
        code: SqlState,
        message: String,
        detail: Option<String>,
    },
}

impl DbError {
    pub fn from_pg(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) if db.code() == &SqlState::TOO_MANY_CONNECTIONS => Self::Busy,
            Some(db) if !is_unavailable(db.code()) => Self::Sql {
                code: db.code().clone(),
                message: db.message().to_owned(),
                detail: db.detail().map(str::to_owned),
            },
            Some(db) => Self::Unavailable(format!("{}: {}", db.code().code(), db.message())),
            None => Self::Unavailable(e.to_string()),
        }
    }

    pub fn from_pool(e: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::{PoolError, TimeoutType};
        match e {
            PoolError::Backend(e) => Self::from_pg(e),
            PoolError::Timeout(TimeoutType::Wait) => Self::Busy,
            other => Self::Unavailable(other.to_string()),
        }
    }

    /// How the failure is answered.
    pub fn mapped(&self) -> Mapped {
        match self {
            Self::Unavailable(_) => DATABASE_UNAVAILABLE,
            Self::Busy => OVERLOADED,
            Self::Sql { code, .. } => for_sqlstate(code.code()),
        }
    }
}

/// SQLSTATEs that mean "the server is going away or not there yet", not "your request is bad".
fn is_unavailable(code: &SqlState) -> bool {
    let c = code.code();
    c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03")
}

/// Why a request failed: what the pipeline answers instead of the route's answer.
#[derive(Debug, Clone)]
pub enum Failure {
    /// Refused before the database (route, input, headers).
    Refused(Mapped),
    /// The credential is missing or was refused (by the gateway's checks or the database):
    /// 401, counted and audited under this reason code.
    Unauthorized(&'static str),
    /// A rate limit, named for the metrics: 429 with Retry-After `secs`.
    Limited { limit: &'static str, secs: u64 },
    /// The database or its pool.
    Db(DbError),
}

impl Failure {
    /// 400 `invalid_request` with a fixed message (never a quote of the input).
    pub fn bad_request(message: &'static str) -> Failure {
        Failure::Refused(m(StatusCode::BAD_REQUEST, "invalid_request", message))
    }

    pub fn refused(status: StatusCode, code: &'static str, message: &'static str) -> Failure {
        Failure::Refused(m(status, code, message))
    }

    /// How the failure is answered (429's Retry-After comes with `Limited`).
    pub fn mapped(&self) -> Mapped {
        match self {
            Failure::Refused(mapped) => *mapped,
            Failure::Unauthorized(_) => UNAUTHORIZED,
            Failure::Limited { .. } => TOO_MANY_REQUESTS,
            Failure::Db(e) => e.mapped(),
        }
    }
}

impl From<DbError> for Failure {
    fn from(e: DbError) -> Self {
        Failure::Db(e)
    }
}

pub const TOO_MANY_REQUESTS: Mapped = m(
    StatusCode::TOO_MANY_REQUESTS,
    "rate_limited",
    "too many requests, slow down",
);

pub fn for_sqlstate(code: &str) -> Mapped {
    EXACT
        .iter()
        .find(|(c, _)| *c == code)
        .or_else(|| CLASSES.iter().find(|(c, _)| code.starts_with(c)))
        .map_or(INTERNAL, |(_, mapped)| *mapped)
}

#[cfg(test)]
mod tests;
