//! What the gateway's database sessions may rely on: the settings it pins on every connection
//! and the checks of its login role that every new connection passes before it is used.
//!
//! Directly connected, the settings travel in the connection's startup options (which outrank
//! the login role's and the database's defaults). Behind a pooler in transaction mode
//! (`SEALSTORE_DB_TRANSACTION_POOLING`), which refuses startup options, the pooler sets them on
//! each server connection it opens (PgBouncer's `connect_query`, as [`connect_query`] writes
//! it), and every new connection checks that they are in effect ([`unpinned`]).
//!
//! The login role is the gateway's alone (see sql/roles.sql). If it were not, an application
//! could `ALTER ROLE CURRENT_USER SET` defaults that make the server log every request's token
//! and values (`debug_print_plan`, `log_parameter_max_length_on_error`), or put a schema of its
//! own first on the search path. Pinning makes such defaults powerless; the check refuses a
//! role that has any the gateway does not know, that lets bind parameters into the log, or
//! that is more than an application role.

use std::fmt::Write;

use tokio_postgres::Client;

/// Settings pinned on every connection. `search_path` holds pg_catalog alone: nothing an
/// application creates can stand in for a function or operator the gateway's SQL names.
/// Values are written as `pg_settings.setting` shows them, so that they can be compared.
pub const PINNED: &[(&str, &str)] = &[
    ("search_path", "pg_catalog"),
    ("log_parameter_max_length_on_error", "0"),
    ("debug_print_parse", "off"),
    ("debug_print_rewritten", "off"),
    ("debug_print_plan", "off"),
    ("row_security", "on"),
    ("idle_session_timeout", "0"),
    ("default_transaction_isolation", "read committed"),
];

/// Role defaults the gateway accepts besides the pinned ones (sql/roles.sql sets them).
const ACCEPTED: &[&str] = &[
    "log_parameter_max_length",
    "log_parameter_max_length_on_error",
];

/// Every setting a connection holds: the pinned ones, and the bounds the database enforces
/// too: a statement cannot outlive the request, a connection cannot sit in an open
/// transaction, and read connections' transactions are read-only unless they say otherwise.
pub fn settings(statement_timeout_ms: u64, read_only: bool) -> Vec<(&'static str, String)> {
    PINNED
        .iter()
        .map(|(n, v)| (*n, (*v).to_owned()))
        .chain([
            ("statement_timeout", statement_timeout_ms.to_string()),
            (
                "idle_in_transaction_session_timeout",
                statement_timeout_ms.saturating_mul(2).to_string(),
            ),
            (
                "default_transaction_read_only",
                if read_only { "on" } else { "off" }.to_owned(),
            ),
        ])
        .collect()
}

/// The startup options that pin `settings`, as libpq's `options` (`-c name=value`, spaces
/// escaped).
pub fn options(settings: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (name, value) in settings {
        if !out.is_empty() {
            out.push(' ');
        }
        let _ = write!(
            out,
            "-c {name}={}",
            value.replace('\\', "\\\\").replace(' ', "\\ ")
        );
    }
    out
}

/// The statements that pin `settings` on a pooler's server connection: PgBouncer's
/// `connect_query`, ready to be put between single quotes in pgbouncer.ini (a value with a
/// space is a quoted identifier, which `SET` takes as its text).
pub fn connect_query(settings: &[(&str, String)]) -> String {
    settings
        .iter()
        .map(|(name, value)| {
            if value.contains(' ') {
                format!("SET {name} = \"{value}\"")
            } else {
                format!("SET {name} = {value}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The names of `settings` that a connection does not hold as pinned, given what it holds
/// (name, `pg_settings.setting`).
pub fn unpinned<'a>(settings: &'a [(&str, String)], held: &[(String, String)]) -> Vec<&'a str> {
    settings
        .iter()
        .filter(|(name, value)| !held.iter().any(|(n, v)| n == name && v == value))
        .map(|(name, _)| *name)
        .collect()
}

/// Reads what a connection holds of `settings` (an unnamed statement, which poolers pass).
pub async fn held(
    client: &Client,
    settings: &[(&str, String)],
) -> Result<Vec<(String, String)>, tokio_postgres::Error> {
    let names: Vec<&str> = settings.iter().map(|(n, _)| *n).collect();
    let rows = client
        .query_typed(
            "SELECT name, setting FROM pg_catalog.pg_settings \
              WHERE name OPERATOR(pg_catalog.=) ANY ($1)",
            &[(&names, tokio_postgres::types::Type::TEXT_ARRAY)],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// What the check reads of the login role.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RoleFacts {
    /// Names of the settings `ALTER ROLE ... SET` gave the role (in any or this database).
    pub defaults: Vec<String>,
    /// `log_parameter_max_length` in effect (only a superuser can pin it).
    pub log_parameter_max_length: String,
    pub superuser: bool,
    pub bypass_rls: bool,
    /// Member of sealstore_admin: every request would administer every tenant.
    pub admin: bool,
}

/// Why the login role is refused, one reason each; empty when it is fit.
pub fn problems(facts: &RoleFacts) -> Vec<String> {
    let mut out = Vec::new();
    let unknown: Vec<&str> = facts
        .defaults
        .iter()
        .map(String::as_str)
        .filter(|name| !ACCEPTED.contains(name) && !PINNED.iter().any(|(p, _)| p == name))
        .collect();
    if !unknown.is_empty() {
        out.push(format!(
            "the login role has defaults the gateway does not accept: {} (ALTER ROLE ... RESET them)",
            unknown.join(", ")
        ));
    }
    if facts.log_parameter_max_length != "0" {
        out.push(
            "log_parameter_max_length is not 0: bind parameters (tokens, plaintext) could reach the server log \
             (ALTER ROLE ... SET log_parameter_max_length = 0, as a superuser)"
                .to_owned(),
        );
    }
    if facts.superuser || facts.bypass_rls {
        out.push("the login role is a superuser or bypasses row-level security".to_owned());
    }
    if facts.admin {
        out.push("the login role is a member of sealstore_admin".to_owned());
    }
    out
}

/// Reads the facts of the connection's login role (every name qualified, as in all of the
/// gateway's SQL, on top of the pinned search_path).
pub async fn facts(client: &Client) -> Result<RoleFacts, tokio_postgres::Error> {
    let row = client
        .query_typed_one(
            "SELECT ARRAY(SELECT DISTINCT pg_catalog.split_part(s, '=', 1) \
                            FROM pg_catalog.pg_db_role_setting d, pg_catalog.unnest(d.setconfig) s \
                           WHERE d.setrole OPERATOR(pg_catalog.=) r.oid \
                             AND d.setdatabase OPERATOR(pg_catalog.=) ANY (ARRAY[0, \
                                 (SELECT oid FROM pg_catalog.pg_database \
                                   WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database())]::pg_catalog.oid[]) \
                           ORDER BY 1), \
                    pg_catalog.current_setting('log_parameter_max_length'), r.rolsuper, r.rolbypassrls, \
                    pg_catalog.pg_has_role(r.oid, 'sealstore_admin', 'USAGE') \
               FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER",
            &[],
        )
        .await?;
    Ok(RoleFacts {
        defaults: row.get(0),
        log_parameter_max_length: row.get(1),
        superuser: row.get(2),
        bypass_rls: row.get(3),
        admin: row.get(4),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit() -> RoleFacts {
        RoleFacts {
            defaults: vec![
                "log_parameter_max_length".into(),
                "log_parameter_max_length_on_error".into(),
            ],
            log_parameter_max_length: "0".into(),
            ..RoleFacts::default()
        }
    }

    #[test]
    fn the_role_that_roles_sql_makes_is_fit() {
        assert!(problems(&fit()).is_empty());
        // Defaults of pinned settings are harmless: the startup options outrank them.
        let pinned = RoleFacts {
            defaults: vec!["debug_print_plan".into(), "search_path".into()],
            ..fit()
        };
        assert!(problems(&pinned).is_empty());
    }

    #[test]
    fn unknown_defaults_logged_parameters_and_extra_rights_are_refused() {
        let logs = RoleFacts {
            defaults: vec!["plan_cache_mode".into(), "log_min_messages".into()],
            ..fit()
        };
        let p = problems(&logs);
        assert!(p[0].contains("plan_cache_mode, log_min_messages"), "{p:?}");
        for facts in [
            RoleFacts {
                log_parameter_max_length: "-1".into(),
                ..fit()
            },
            RoleFacts {
                superuser: true,
                ..fit()
            },
            RoleFacts {
                bypass_rls: true,
                ..fit()
            },
            RoleFacts {
                admin: true,
                ..fit()
            },
        ] {
            assert_eq!(problems(&facts).len(), 1, "{facts:?}");
        }
    }

    #[test]
    fn options_pin_every_setting_with_spaces_escaped() {
        let o = options(&settings(10_000, true));
        assert!(o.starts_with("-c search_path=pg_catalog "), "{o}");
        assert!(
            o.contains("-c default_transaction_isolation=read\\ committed"),
            "{o}"
        );
        assert!(o.contains("-c statement_timeout=10000 "), "{o}");
        assert!(
            o.contains("-c idle_in_transaction_session_timeout=20000 "),
            "{o}"
        );
        assert!(o.ends_with("-c default_transaction_read_only=on"), "{o}");
        assert_eq!(o.matches("-c ").count(), PINNED.len() + 3);
    }

    #[test]
    fn the_connect_query_sets_the_same_settings() {
        let s = settings(5_000, false);
        let q = connect_query(&s);
        assert!(q.starts_with("SET search_path = pg_catalog; "), "{q}");
        assert!(
            q.contains("; SET default_transaction_isolation = \"read committed\"; "),
            "{q}"
        );
        assert!(
            q.ends_with("; SET default_transaction_read_only = off"),
            "{q}"
        );
        assert_eq!(q.matches("SET ").count(), s.len());
        // No single quote: the whole goes between single quotes in pgbouncer.ini.
        assert!(!q.contains('\''), "{q}");
    }

    #[test]
    fn a_setting_missing_or_different_is_unpinned() {
        let s = settings(5_000, false);
        let mut held: Vec<(String, String)> = s
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.clone()))
            .collect();
        assert!(unpinned(&s, &held).is_empty());
        held.retain(|(n, _)| n != "row_security");
        held.iter_mut()
            .filter(|(n, _)| n == "statement_timeout")
            .for_each(|(_, v)| *v = "0".into());
        assert_eq!(unpinned(&s, &held), ["row_security", "statement_timeout"]);
    }
}
