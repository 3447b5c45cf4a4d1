//! One error vocabulary from the core to HTTP.
//!
//! Every failure the extension reports is an [`Error`]: a [`Kind`], which carries the SQLSTATE
//! PostgreSQL reports and a stable code, a message, and optionally a detail and a hint. The
//! extension raises it once, at the edge of the SQL function, with the kind's SQLSTATE and a
//! DETAIL that starts with the stable code (`code` or `code: detail`); the gateway maps the
//! SQLSTATE to an HTTP status (`frontend/src/errors.rs`, tested against [`Kind::ALL`]) and reads
//! the code from the DETAIL where it needs more (the reason a credential was refused), never
//! the English text.

use std::borrow::Cow;
use std::fmt;

use crate::auth::{AuthError, KeyError};
use crate::crypto::CryptoError;
use crate::master_key::MasterKeyError;
use crate::vector::VectorError;

/// What kind of failure, with its SQLSTATE and stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// No verified tenant in this transaction (fail closed).
    NoTenantContext,
    /// A token or API key was refused; the code names the failed check.
    CredentialRejected,
    /// The caller may not do this (scope, role, a side channel refused).
    Forbidden,
    /// An argument breaks a documented rule.
    InvalidArgument,
    /// A required argument is NULL.
    NullArgument,
    /// A named object (tenant, collection, key version, JWT key, API key) does not exist for
    /// the caller: another tenant's looks the same.
    UndefinedObject,
    /// A row (a document) does not exist for the caller.
    NoData,
    /// The object exists or existed (names and kids are never reused).
    DuplicateObject,
    /// Bytes that are not a Sealstore ciphertext of a known format.
    MalformedCiphertext,
    /// Stored data failed its integrity check: a tampered, swapped or truncated ciphertext, a
    /// wrapped key that does not unwrap, a damaged row.
    DataCorrupted,
    /// A value beyond a program limit (size, dimensions, nesting).
    ProgramLimitExceeded,
    /// The operating system failed us (its random generator).
    SystemError,
    /// Decrypted bytes that are not text.
    NotText,
    /// vector text that does not parse.
    InvalidTextRepresentation,
    /// vector binary input that does not parse.
    InvalidBinaryRepresentation,
    /// A vector element outside f32's range.
    NumericValueOutOfRange,
    /// A vector that breaks a rule of the type (empty, NaN, infinite, dimensions).
    DataException,
    /// The server is not set up for this: no master key, another master key, not preloaded.
    NotInPrerequisiteState,
    /// A function that writes, where nothing may be written: a hot standby, a read-only
    /// transaction.
    ReadOnly,
    /// The configured master key file does not exist.
    UndefinedFile,
    /// The master key configuration is wrong (unreadable, permissive, malformed, command).
    ConfigFileError,
    /// A feature Sealstore does not offer (a WITH HOLD cursor using the context, an index
    /// option, backward scans).
    FeatureNotSupported,
    /// The extension's own relations are missing or altered.
    UndefinedTable,
    /// A bug or a damaged installation.
    Internal,
}

impl Kind {
    /// Every kind, for tests that check each one's mapping (SQLSTATE, HTTP status).
    pub const ALL: [Kind; 24] = [
        Kind::NoTenantContext,
        Kind::CredentialRejected,
        Kind::Forbidden,
        Kind::InvalidArgument,
        Kind::NullArgument,
        Kind::UndefinedObject,
        Kind::NoData,
        Kind::DuplicateObject,
        Kind::MalformedCiphertext,
        Kind::DataCorrupted,
        Kind::ProgramLimitExceeded,
        Kind::SystemError,
        Kind::NotText,
        Kind::InvalidTextRepresentation,
        Kind::InvalidBinaryRepresentation,
        Kind::NumericValueOutOfRange,
        Kind::DataException,
        Kind::NotInPrerequisiteState,
        Kind::ReadOnly,
        Kind::UndefinedFile,
        Kind::ConfigFileError,
        Kind::FeatureNotSupported,
        Kind::UndefinedTable,
        Kind::Internal,
    ];

    /// The SQLSTATE the extension raises this kind with.
    pub const fn sqlstate(self) -> &'static str {
        match self {
            Kind::NoTenantContext => "28000",
            Kind::CredentialRejected => "28P01",
            Kind::Forbidden => "42501",
            Kind::InvalidArgument => "22023",
            Kind::NullArgument => "22004",
            Kind::UndefinedObject => "42704",
            Kind::NoData => "P0002",
            Kind::DuplicateObject => "42710",
            Kind::MalformedCiphertext => "22P03",
            Kind::DataCorrupted => "XX001",
            Kind::ProgramLimitExceeded => "54000",
            Kind::SystemError => "58000",
            Kind::NotText => "22021",
            Kind::InvalidTextRepresentation => "22P02",
            Kind::InvalidBinaryRepresentation => "22P03",
            Kind::NumericValueOutOfRange => "22003",
            Kind::DataException => "22000",
            Kind::NotInPrerequisiteState => "55000",
            Kind::ReadOnly => "25006",
            Kind::UndefinedFile => "58P01",
            Kind::ConfigFileError => "F0000",
            Kind::FeatureNotSupported => "0A000",
            Kind::UndefinedTable => "42P01",
            Kind::Internal => "XX000",
        }
    }

    /// The stable code of errors of this kind (an error may carry a more specific one).
    pub const fn code(self) -> &'static str {
        match self {
            Kind::NoTenantContext => "no_tenant_context",
            Kind::CredentialRejected => "credential_rejected",
            Kind::Forbidden => "forbidden",
            Kind::InvalidArgument => "invalid_argument",
            Kind::NullArgument => "null_argument",
            Kind::UndefinedObject => "undefined_object",
            Kind::NoData => "no_data",
            Kind::DuplicateObject => "duplicate_object",
            Kind::MalformedCiphertext => "malformed_ciphertext",
            Kind::DataCorrupted => "data_corrupted",
            Kind::ProgramLimitExceeded => "limit_exceeded",
            Kind::SystemError => "system_error",
            Kind::NotText => "not_text",
            Kind::InvalidTextRepresentation => "invalid_text",
            Kind::InvalidBinaryRepresentation => "invalid_binary",
            Kind::NumericValueOutOfRange => "out_of_range",
            Kind::DataException => "invalid_value",
            Kind::NotInPrerequisiteState => "not_ready",
            Kind::ReadOnly => "read_only",
            Kind::UndefinedFile => "key_file_missing",
            Kind::ConfigFileError => "key_config_error",
            Kind::FeatureNotSupported => "not_supported",
            Kind::UndefinedTable => "missing_relation",
            Kind::Internal => "internal",
        }
    }
}

/// A failure as the extension reports it. Messages, details and hints never hold key
/// material, plaintext or any part of a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: Kind,
    /// The stable code: the kind's, or a more specific one (the failed check of a refused
    /// credential, the master key problem).
    pub code: &'static str,
    pub message: Cow<'static, str>,
    pub detail: Option<String>,
    pub hint: Option<&'static str>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<Cow<'static, str>>) -> Self {
        Error {
            kind,
            code: kind.code(),
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_hint(mut self, hint: &'static str) -> Self {
        self.hint = Some(hint);
        self
    }

    /// The DETAIL line: the stable code, then what more there is to say.
    pub fn detail_line(&self) -> String {
        match &self.detail {
            Some(d) => format!("{}: {d}", self.code),
            None => self.code.to_owned(),
        }
    }

    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(Kind::InvalidArgument, message)
    }

    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(Kind::Forbidden, message)
    }

    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(Kind::Internal, message)
    }

    /// A row that breaks what its table's schema guarantees.
    pub fn damaged(message: &'static str) -> Self {
        Error::new(Kind::DataCorrupted, message).with_code("damaged_row")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.detail_line())
    }
}

impl std::error::Error for Error {}

/// The stable code at the start of a DETAIL line the extension wrote (see
/// [`Error::detail_line`]).
pub fn code_of(detail: &str) -> &str {
    detail.split(':').next().unwrap_or_default().trim()
}

impl From<AuthError> for Error {
    /// Every refused credential is one kind (28P01) and one message; the failed check is the
    /// code, and nothing of the token is said.
    fn from(e: AuthError) -> Self {
        Error::new(Kind::CredentialRejected, "credential rejected")
            .with_code(e.code())
            .with_detail(e.to_string())
    }
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        Error::new(Kind::InvalidArgument, e.to_string()).with_code("bad_jwt_key")
    }
}

impl From<CryptoError> for Error {
    fn from(e: CryptoError) -> Self {
        use CryptoError::*;
        let (kind, code) = match e {
            Truncated => (Kind::MalformedCiphertext, "truncated"),
            UnsupportedFormat(_) => (Kind::MalformedCiphertext, "unsupported_format"),
            UnknownAlgorithm(_) => (Kind::MalformedCiphertext, "unknown_algorithm"),
            UnknownAlgorithmName => (Kind::InvalidArgument, "unknown_algorithm"),
            Authentication => (Kind::DataCorrupted, "authentication_failed"),
            AlgorithmMismatch => (Kind::DataCorrupted, "algorithm_mismatch"),
            Unwrap => (Kind::DataCorrupted, "unwrap_failed"),
            TooLarge => (Kind::ProgramLimitExceeded, "too_large"),
            Random => (Kind::SystemError, "random_failed"),
        };
        let error = Error::new(kind, e.to_string()).with_code(code);
        match e {
            Unwrap => error.with_hint(
                "The stored key does not open under the master key its fingerprint names: the \
                 stored wrapped key was modified or damaged.",
            ),
            _ => error,
        }
    }
}

impl From<VectorError> for Error {
    fn from(e: VectorError) -> Self {
        use VectorError::*;
        let kind = match e {
            Syntax { .. } => Kind::InvalidTextRepresentation,
            Binary { .. } => Kind::InvalidBinaryRepresentation,
            TooManyDims => Kind::ProgramLimitExceeded,
            OutOfRange | Overflow | Underflow => Kind::NumericValueOutOfRange,
            Empty | NaN | Infinite | WrongDims { .. } | DimsMismatch(..) => Kind::DataException,
        };
        // The value itself is never part of the message.
        let error = Error::new(kind, e.to_string());
        match e {
            Syntax { detail } | Binary { detail } => error.with_detail(detail),
            _ => error,
        }
    }
}

impl From<MasterKeyError> for Error {
    /// The message names the problem and, for a file, its path; never any of its content.
    fn from(e: MasterKeyError) -> Self {
        use MasterKeyError::*;
        let kind = match e {
            NotConfigured | BothConfigured => Kind::NotInPrerequisiteState,
            FileMissing { .. } => Kind::UndefinedFile,
            FileUnreadable { .. }
            | NotARegularFile { .. }
            | TooPermissive { .. }
            | Malformed { .. }
            | CommandFailed { .. } => Kind::ConfigFileError,
        };
        Error::new(kind, "sealstore master key is not available")
            .with_code(e.kind())
            .with_detail(e.to_string())
            .with_hint(
                "Set exactly one of sealstore.master_key_file or sealstore.master_key_command \
                 (superuser, postgresql.conf) and restart the server.",
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_kind_has_a_sqlstate_and_a_code_of_its_own() {
        let codes: HashSet<&str> = Kind::ALL.iter().map(|k| k.code()).collect();
        assert_eq!(codes.len(), Kind::ALL.len());
        for kind in Kind::ALL {
            let s = kind.sqlstate();
            assert!(
                s.len() == 5
                    && s.bytes()
                        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()),
                "{s}"
            );
            assert!(kind
                .code()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
    }

    #[test]
    fn the_detail_starts_with_the_code_and_the_code_reads_back() {
        let e = Error::from(AuthError::Expired);
        assert_eq!(e.kind.sqlstate(), "28P01");
        assert_eq!(e.detail_line(), "expired: JWT has expired");
        assert_eq!(code_of(&e.detail_line()), "expired");
        let plain = Error::new(Kind::NoData, "document does not exist");
        assert_eq!(plain.detail_line(), "no_data");
        assert_eq!(code_of(&plain.detail_line()), "no_data");
        for a in AuthError::all() {
            assert_eq!(code_of(&Error::from(a.clone()).detail_line()), a.code());
        }
    }

    #[test]
    fn core_errors_map_to_their_kinds() {
        assert_eq!(
            Error::from(CryptoError::Authentication).kind,
            Kind::DataCorrupted
        );
        assert_eq!(
            Error::from(CryptoError::Truncated).kind,
            Kind::MalformedCiphertext
        );
        assert_eq!(
            Error::from(CryptoError::TooLarge).kind,
            Kind::ProgramLimitExceeded
        );
        assert_eq!(
            Error::from(VectorError::TooManyDims).kind,
            Kind::ProgramLimitExceeded
        );
        assert_eq!(Error::from(VectorError::NaN).kind, Kind::DataException);
        assert_eq!(
            Error::from(MasterKeyError::FileMissing { path: "/k".into() }).kind,
            Kind::UndefinedFile
        );
        assert_eq!(
            Error::from(KeyError::WeakSecret).kind,
            Kind::InvalidArgument
        );
    }

    /// docs/sql.md's error table (after `<!-- errors-table -->`): (SQLSTATE, raised when).
    fn documented() -> Vec<(String, String)> {
        let doc = include_str!("../../../docs/sql.md");
        let table = doc
            .split("<!-- errors-table -->")
            .nth(1)
            .expect("docs/sql.md has the errors table");
        table
            .lines()
            .skip_while(|l| l.trim().is_empty())
            .take_while(|l| l.starts_with('|'))
            .skip(2)
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells[1].trim_matches('`').to_owned(), cells[3].to_owned())
            })
            .collect()
    }

    #[test]
    fn the_documented_error_table_matches_the_kinds() {
        let rows = documented();
        let states: HashSet<&str> = rows.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(states.len(), rows.len(), "a SQLSTATE listed twice");
        // Every kind the extension raises is documented ...
        for kind in Kind::ALL {
            assert!(
                states.contains(kind.sqlstate()),
                "{kind:?} ({}) is not documented",
                kind.sqlstate()
            );
        }
        // ... and every other row is PostgreSQL's own, and says so.
        let ours: HashSet<&str> = Kind::ALL.iter().map(|k| k.sqlstate()).collect();
        for (state, when) in &rows {
            assert!(
                ours.contains(state.as_str()) || when.starts_with("(PostgreSQL)"),
                "{state} is documented but no kind raises it"
            );
        }
    }
}
