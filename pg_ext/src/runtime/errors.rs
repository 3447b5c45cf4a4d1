//! The one place where a failure becomes a PostgreSQL ERROR.
//!
//! Helpers return `Result<_, Error>` (the core's vocabulary, `sealstore_core::error`); a SQL
//! function raises once, at its edge (`edge`, `OrRaise`), with the SQLSTATE its kind carries,
//! the message, a DETAIL that starts with the stable code, and the hint. The constructors below
//! name the failures the extension itself defines; docs/sql.md's error table lists them all.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
pub use sealstore_core::error::{Error, Kind, Result};

/// PostgreSQL's numeric form of a five-character SQLSTATE (elog.h, MAKE_SQLSTATE).
const fn make_sqlstate(code: &str) -> i32 {
    let b = code.as_bytes();
    let mut value = 0i32;
    let mut i = 0;
    while i < 5 {
        value |= ((b[i] as i32 - '0' as i32) & 0x3f) << (6 * i);
        i += 1;
    }
    value
}

/// Raises `e` as an ERROR; never returns.
pub fn raise(e: impl Into<Error>) -> ! {
    let e = e.into();
    let mut report = ErrorReport::new(
        PgSqlErrorCode::from(make_sqlstate(e.kind.sqlstate())),
        e.message.into_owned(),
        "sealstore",
    )
    .set_detail(match &e.detail {
        Some(d) => format!("{}: {d}", e.code),
        None => e.code.to_owned(),
    });
    if let Some(hint) = e.hint {
        report = report.set_hint(hint);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("an ERROR report does not return")
}

/// The value of `f`, or its error raised: the edge of a SQL function.
pub fn edge<T>(f: impl FnOnce() -> Result<T>) -> T {
    f().unwrap_or_else(|e| raise(e))
}

/// `result.or_raise()`: the value, or the error raised (for a single call at an edge).
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T, E: Into<Error>> OrRaise<T> for std::result::Result<T, E> {
    fn or_raise(self) -> T {
        self.unwrap_or_else(|e| raise(e))
    }
}

/// SPI failures of the extension's own fixed queries: a bug or a damaged installation.
pub fn spi<T>(r: std::result::Result<T, pgrx::spi::Error>) -> Result<T> {
    r.map_err(|e| Error::internal("sealstore internal query failed").with_detail(e.to_string()))
}

pub fn no_tenant_context() -> Error {
    Error::new(Kind::NoTenantContext, "no tenant context").with_hint(
        "Call sealstore.authenticate(token) in this transaction first; the context ends with it.",
    )
}

/// The context lacks a scope the function needs.
pub fn missing_scope(scope: &str) -> Error {
    Error::forbidden("the credential of this transaction lacks the required scope")
        .with_code("missing_scope")
        .with_detail(format!("required scope: {scope}"))
}

pub fn not_admin() -> Error {
    Error::forbidden(
        "administration needs the sealstore_admin role or a credential with scope admin",
    )
    .with_code("not_admin")
}

pub fn not_system_admin() -> Error {
    Error::forbidden(
        "this needs the sealstore_admin role or an admin credential that names no tenant",
    )
    .with_code("not_system_admin")
}

pub fn unknown_tenant() -> Error {
    Error::new(Kind::UndefinedObject, "tenant does not exist").with_code("unknown_tenant")
}

pub fn shredded_tenant() -> Error {
    Error::new(Kind::UndefinedObject, "tenant has been shredded")
        .with_code("shredded_tenant")
        .with_detail("Its data keys were destroyed; its encrypted data cannot be recovered.")
}

pub fn missing_key_version(version: u32) -> Error {
    Error::new(
        Kind::UndefinedObject,
        "the tenant has no data key of this version",
    )
    .with_code("missing_key_version")
    .with_detail(format!("key version {version}"))
}

pub fn undefined(message: &'static str) -> Error {
    Error::new(Kind::UndefinedObject, message)
}

pub fn not_found(message: &'static str) -> Error {
    Error::new(Kind::NoData, message)
}

pub fn duplicate(message: &'static str) -> Error {
    Error::new(Kind::DuplicateObject, message)
}

pub fn null_argument(message: &'static str) -> Error {
    Error::new(Kind::NullArgument, message)
}

pub fn not_supported(message: &'static str) -> Error {
    Error::new(Kind::FeatureNotSupported, message)
}

/// Keys wrapped by a master key this server did not load. Not corruption: the server was
/// started with another key (or without the previous one during a rotation). Fingerprints are
/// not secret (the server log shows the loaded ones).
pub fn foreign_master_key(stored: &str, loaded: &[String]) -> Error {
    Error::new(
        Kind::NotInPrerequisiteState,
        "the loaded master key did not wrap this database's keys",
    )
    .with_code("foreign_master_key")
    .with_detail(format!(
        "Keys here are wrapped by the master key with fingerprint {stored}; this server loaded {}.",
        loaded.join(" and ")
    ))
    .with_hint(
        "Start the server with the master key that wrapped them (during a master key rotation, \
         also set sealstore.previous_master_key_file).",
    )
}

/// The library was loaded without `shared_preload_libraries`: no master key, no shared memory.
pub fn not_preloaded() -> Error {
    Error::new(
        Kind::NotInPrerequisiteState,
        "sealstore master key is not available",
    )
    .with_code("not_preloaded")
    .with_detail("sealstore is not in shared_preload_libraries")
    .with_hint("Add sealstore to shared_preload_libraries and restart the server.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_are_encoded_as_postgresql_does() {
        assert_eq!(
            PgSqlErrorCode::from(make_sqlstate("28P01")),
            PgSqlErrorCode::ERRCODE_INVALID_PASSWORD
        );
        assert_eq!(
            PgSqlErrorCode::from(make_sqlstate("XX001")),
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED
        );
    }
}
