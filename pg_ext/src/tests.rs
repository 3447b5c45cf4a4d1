//! `#[pg_test]`s: run inside a real PostgreSQL started by `cargo pgrx test` with
//! `shared_preload_libraries = 'sealstore'` and a random master key from a key command.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn version_is_the_crate_version() {
        let v = Spi::get_one::<String>("SELECT sealstore.version()").unwrap();
        assert_eq!(v.as_deref(), Some(env!("CARGO_PKG_VERSION")));
    }

    #[pg_test]
    fn fingerprint_is_32_hex_digits_and_stable() {
        let a = Spi::get_one::<String>("SELECT sealstore.master_key_fingerprint()")
            .unwrap()
            .unwrap();
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{a}"
        );
        let b = Spi::get_one::<String>("SELECT sealstore.master_key_fingerprint()")
            .unwrap()
            .unwrap();
        assert_eq!(a, b);
    }

    #[pg_test(
        error = "parameter \"sealstore.master_key_file\" cannot be changed without restarting the server"
    )]
    fn key_file_setting_cannot_be_changed_at_run_time() {
        Spi::run("SET sealstore.master_key_file = '/tmp/other.key'").unwrap();
    }

    #[pg_test(
        error = "must be superuser or have privileges of pg_read_all_settings to examine \"sealstore.master_key_command\""
    )]
    fn key_settings_are_hidden_from_ordinary_roles() {
        Spi::run("CREATE ROLE sealstore_pgtest_plain NOLOGIN").unwrap();
        Spi::run("SET ROLE sealstore_pgtest_plain").unwrap();
        Spi::run("SELECT current_setting('sealstore.master_key_command')").unwrap();
    }

    #[pg_test(error = "invalid configuration parameter name \"sealstore.master_keyfile\"")]
    fn setting_prefix_is_reserved() {
        Spi::run("SET sealstore.master_keyfile = 'x'").unwrap();
    }

    #[pg_test(error = "permission denied for schema sealstore")]
    fn public_cannot_use_the_schema() {
        Spi::run("CREATE ROLE sealstore_pgtest_public NOLOGIN").unwrap();
        Spi::run("SET ROLE sealstore_pgtest_public").unwrap();
        Spi::run("SELECT sealstore.version()").unwrap();
    }

    #[pg_test]
    fn app_role_can_call_version_and_fingerprint() {
        Spi::run("CREATE ROLE sealstore_pgtest_app NOLOGIN IN ROLE sealstore_app").unwrap();
        Spi::run("SET ROLE sealstore_pgtest_app").unwrap();
        let v = Spi::get_one::<String>("SELECT sealstore.version()").unwrap();
        assert_eq!(v.as_deref(), Some(env!("CARGO_PKG_VERSION")));
        let fp = Spi::get_one::<String>("SELECT sealstore.master_key_fingerprint()").unwrap();
        assert_eq!(fp.map(|f| f.len()), Some(32));
    }

    #[pg_test]
    fn app_role_has_no_bypassrls_and_no_login() {
        let row = Spi::get_two::<bool, bool>(
            "SELECT rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = 'sealstore_app'",
        )
        .unwrap();
        assert_eq!(row, (Some(false), Some(false)));
    }
}
