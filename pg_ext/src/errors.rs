//! The one place where failures become PostgreSQL errors with deliberate SQLSTATEs.
//! The README's "Errors" table documents every code raised here.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use sealstore_core::MasterKeyError;

use crate::master_key::Unavailable;

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
