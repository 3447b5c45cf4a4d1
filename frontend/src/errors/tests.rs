use super::*;

#[test]
fn the_table_answers_every_sqlstate_the_extension_raises() {
    let cases = [
        ("28P01", 401, "unauthorized"),
        ("28000", 403, "forbidden"),
        ("42501", 403, "forbidden"),
        ("P0002", 404, "not_found"),
        ("42704", 404, "not_found"),
        ("42710", 409, "conflict"),
        ("23505", 409, "conflict"),
        ("22P02", 400, "invalid_request"),
        ("22P03", 400, "invalid_request"),
        ("22023", 400, "invalid_request"),
        ("22000", 400, "invalid_request"),
        ("22003", 400, "invalid_request"),
        ("54000", 400, "invalid_request"),
        ("XX001", 500, "data_corrupted"),
        ("57014", 504, "timeout"),
        ("40001", 503, "conflict_retry"),
        ("57P01", 503, "database_unavailable"),
        ("08006", 503, "database_unavailable"),
        ("55000", 503, "service_unavailable"),
        ("53200", 503, "service_unavailable"),
        ("XX000", 500, "internal"),
        ("42883", 500, "internal"),
    ];
    for (sqlstate, status, code) in cases {
        let m = for_sqlstate(sqlstate);
        assert_eq!((m.status.as_u16(), m.code), (status, code), "{sqlstate}");
        assert_eq!(m.retry_after.is_some(), status == 503, "{sqlstate}");
    }
}

#[test]
fn exact_entries_are_unique_and_messages_are_generic() {
    let mut seen = std::collections::HashSet::new();
    for (code, m) in EXACT.iter().chain(CLASSES) {
        assert!(seen.insert(*code), "{code} twice");
        assert!(!m.message.is_empty() && m.message.len() < 60);
    }
}

#[test]
fn every_kind_the_core_declares_has_a_deliberate_answer() {
    use sealstore_core::error::Kind::{self, *};
    for kind in Kind::ALL {
        // Exhaustive: a kind added to the core does not compile here until it has an answer.
        let (status, code) = match kind {
            CredentialRejected => (401, "unauthorized"),
            NoTenantContext | Forbidden => (403, "forbidden"),
            UndefinedObject | NoData => (404, "not_found"),
            DuplicateObject => (409, "conflict"),
            InvalidArgument
            | NullArgument
            | MalformedCiphertext
            | ProgramLimitExceeded
            | NotText
            | InvalidTextRepresentation
            | InvalidBinaryRepresentation
            | NumericValueOutOfRange
            | DataException
            | FeatureNotSupported => (400, "invalid_request"),
            DataCorrupted => (500, "data_corrupted"),
            NotInPrerequisiteState | ReadOnly | UndefinedFile | ConfigFileError => {
                (503, "service_unavailable")
            }
            SystemError | UndefinedTable | Internal => (500, "internal"),
        };
        let m = for_sqlstate(kind.sqlstate());
        assert_eq!((m.status.as_u16(), m.code), (status, code), "{kind:?}");
    }
}

#[test]
fn a_busy_pool_is_overload_and_a_failed_connect_an_outage() {
    use deadpool_postgres::{PoolError, TimeoutType};
    assert!(matches!(
        DbError::from_pool(PoolError::Timeout(TimeoutType::Wait)),
        DbError::Busy
    ));
    assert!(matches!(
        DbError::from_pool(PoolError::Timeout(TimeoutType::Create)),
        DbError::Unavailable(_)
    ));
    assert!(matches!(
        DbError::from_pool(PoolError::Closed),
        DbError::Unavailable(_)
    ));
    for code in ["08006", "57P01", "57P03"] {
        assert!(is_unavailable(&SqlState::from_code(code)), "{code}");
    }
    for code in ["53300", "57014", "28P01", "XX000"] {
        assert!(!is_unavailable(&SqlState::from_code(code)), "{code}");
    }
    assert_eq!(DbError::Busy.mapped(), OVERLOADED);
    assert_eq!(
        DbError::Unavailable("x".into()).mapped(),
        DATABASE_UNAVAILABLE
    );
}
