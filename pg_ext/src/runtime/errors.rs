//! The one place where failures become PostgreSQL errors with deliberate SQLSTATEs.
//! The README's "Errors" table documents every code raised here.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use sealstore_core::MasterKeyError;

use crate::runtime::master_key::Unavailable;

/// Raises `report` as an ERROR; never returns.
pub fn raise(report: ErrorReport) -> ! {
    report.report(PgLogLevel::ERROR);
    unreachable!("an ERROR report does not return")
}

/// Master key missing at server start. The message names the problem and, for a file, its path;
/// never any of the file's content.
pub fn key_unavailable(why: &Unavailable) -> ErrorReport {
    use PgSqlErrorCode::*;
    const FN: &str = "master_key";
    let (code, detail, hint) = match why {
        Unavailable::NotPreloaded => (
            ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "sealstore is not in shared_preload_libraries".to_owned(),
            "Add sealstore to shared_preload_libraries and restart the server.",
        ),
        Unavailable::Key(e) => {
            let code = match e {
                MasterKeyError::NotConfigured | MasterKeyError::BothConfigured => {
                    ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE
                }
                MasterKeyError::FileMissing { .. } => ERRCODE_UNDEFINED_FILE,
                MasterKeyError::FileUnreadable { .. }
                | MasterKeyError::NotARegularFile { .. }
                | MasterKeyError::TooPermissive { .. }
                | MasterKeyError::Malformed { .. }
                | MasterKeyError::CommandFailed { .. } => ERRCODE_CONFIG_FILE_ERROR,
            };
            (
                code,
                e.to_string(),
                "Set exactly one of sealstore.master_key_file or sealstore.master_key_command \
                 (superuser, postgresql.conf) and restart the server.",
            )
        }
    };
    ErrorReport::new(code, "sealstore master key is not available", FN)
        .set_detail(detail)
        .set_hint(hint)
}

/// Keys wrapped by a master key this server did not load. Not corruption: the server was
/// started with another key (or without the previous one during a rotation). Fingerprints are
/// not secret (the server log shows the loaded ones).
pub fn foreign_master_key(stored: &str, loaded: &[String]) -> ErrorReport {
    plain(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "the loaded master key did not wrap this database's keys",
    )
    .set_detail(format!(
        "Keys here are wrapped by the master key with fingerprint {stored}; this server loaded {}.",
        loaded.join(" and ")
    ))
    .set_hint(
        "Start the server with the master key that wrapped them (during a master key rotation, \
         also set sealstore.previous_master_key_file).",
    )
}

/// An error with a code and a fixed message.
pub fn plain(code: PgSqlErrorCode, message: &'static str) -> ErrorReport {
    ErrorReport::new(code, message, "sealstore")
}

pub fn no_tenant_context() -> ErrorReport {
    plain(
        PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
        "no tenant context",
    )
    .set_hint(
        "Call sealstore.authenticate(token) in this transaction first; the context ends with it.",
    )
}

/// Every rejected credential: one SQLSTATE (28P01), the failed check in DETAIL, nothing of
/// the token itself.
pub fn credential_rejected(e: &sealstore_core::auth::AuthError) -> ErrorReport {
    plain(
        PgSqlErrorCode::ERRCODE_INVALID_PASSWORD,
        "credential rejected",
    )
    .set_detail(e.to_string())
}

/// The context lacks a scope the function needs.
pub fn missing_scope(scope: &str) -> ErrorReport {
    plain(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        "the credential of this transaction lacks the required scope",
    )
    .set_detail(format!("required scope: {scope}"))
}

/// A JWT key given to add_jwt_key that cannot be used (message names the rule, not the key).
pub fn bad_key(e: &sealstore_core::auth::KeyError) -> ErrorReport {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        e.to_string(),
        "sealstore",
    )
}

pub fn duplicate(message: &'static str) -> ErrorReport {
    plain(PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT, message)
}

pub fn undefined(message: &'static str) -> ErrorReport {
    plain(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, message)
}

pub fn unknown_tenant() -> ErrorReport {
    plain(
        PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
        "tenant does not exist",
    )
}

pub fn shredded_tenant() -> ErrorReport {
    plain(
        PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
        "tenant has been shredded",
    )
    .set_detail("Its data keys were destroyed; its encrypted data cannot be recovered.")
}

pub fn missing_key_version(version: u32) -> ErrorReport {
    plain(
        PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
        "the tenant has no data key of this version",
    )
    .set_detail(format!("key version {version}"))
}

pub fn invalid_argument(message: &'static str) -> ErrorReport {
    plain(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, message)
}

pub fn not_found(message: &'static str) -> ErrorReport {
    plain(PgSqlErrorCode::ERRCODE_NO_DATA_FOUND, message)
}

/// SPI failures of the extension's own fixed queries: a bug or a damaged installation.
pub fn internal(e: &pgrx::spi::Error) -> ErrorReport {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        "sealstore internal query failed",
        "sealstore",
    )
    .set_detail(e.to_string())
}

/// The value of one of the extension's own SPI queries, or an internal ERROR.
pub fn spi<T>(r: Result<T, pgrx::spi::Error>) -> T {
    r.unwrap_or_else(|e| raise(internal(&e)))
}

/// Crypto failures. The core's messages never contain key or plaintext bytes.
pub fn crypto(e: &sealstore_core::crypto::CryptoError) -> ErrorReport {
    use sealstore_core::crypto::CryptoError::*;
    use PgSqlErrorCode::*;
    let code = match e {
        Truncated | UnsupportedFormat(_) | UnknownAlgorithm(_) => {
            ERRCODE_INVALID_BINARY_REPRESENTATION
        }
        Authentication | AlgorithmMismatch | Unwrap => ERRCODE_DATA_CORRUPTED,
        UnknownAlgorithmName => ERRCODE_INVALID_PARAMETER_VALUE,
        TooLarge => ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        Random => ERRCODE_SYSTEM_ERROR,
    };
    let report = ErrorReport::new(code, e.to_string(), "sealstore");
    match e {
        Unwrap => report.set_hint(
            "The stored key does not open under the master key its fingerprint names: the \
             stored wrapped key was modified or damaged.",
        ),
        _ => report,
    }
}

/// Vector input and arithmetic errors, with pgvector's SQLSTATEs. The value itself is never
/// part of the message.
pub fn vector(e: &sealstore_core::vector::VectorError) -> ErrorReport {
    use sealstore_core::vector::VectorError::*;
    use PgSqlErrorCode::*;
    let code = match e {
        Syntax { .. } => ERRCODE_INVALID_TEXT_REPRESENTATION,
        Binary { .. } => ERRCODE_INVALID_BINARY_REPRESENTATION,
        TooManyDims => ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        OutOfRange => ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
        Empty | NaN | Infinite | WrongDims { .. } | DimsMismatch(..) => ERRCODE_DATA_EXCEPTION,
    };
    let report = ErrorReport::new(code, e.to_string(), "sealstore");
    match e {
        Syntax { detail } | Binary { detail } => report.set_detail(*detail),
        _ => report,
    }
}
