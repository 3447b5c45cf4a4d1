//! SQLSTATE to HTTP, in one table. Clients get a status, a stable code and a fixed message;
//! the database's own message and detail go to the log only, under the request id.

use hyper::StatusCode;

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

const INTERNAL: Mapped = m(
    StatusCode::INTERNAL_SERVER_ERROR,
    "internal",
    "internal error",
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
