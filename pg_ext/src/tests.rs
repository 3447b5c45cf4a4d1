//! `#[pg_test]`s: run inside a real PostgreSQL started by `cargo pgrx test` with
//! `shared_preload_libraries = 'sealstore'` and a random master key from a key command.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    /// Raises an error of the kind whose stable code is `code` (tests only).
    #[pg_extern]
    fn raise_kind(code: &str) {
        let kind = sealstore_core::error::Kind::ALL
            .into_iter()
            .find(|k| k.code() == code)
            .expect("a kind's code");
        crate::runtime::errors::raise(sealstore_core::error::Error::new(kind, "test"));
    }

    #[pg_test]
    fn every_kind_is_raised_with_the_sqlstate_the_core_declares() {
        Spi::run(
            "CREATE FUNCTION pg_temp.raised(code text) RETURNS text LANGUAGE plpgsql AS $$
             DECLARE d text;
             BEGIN
                 PERFORM tests.raise_kind(code);
                 RETURN NULL;
             EXCEPTION WHEN OTHERS THEN
                 GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
                 RETURN SQLSTATE || ' ' || d;
             END $$",
        )
        .unwrap();
        for kind in sealstore_core::error::Kind::ALL {
            let got = Spi::get_one_with_args::<String>(
                "SELECT pg_temp.raised($1)",
                &[kind.code().into()],
            )
            .unwrap();
            // The SQLSTATE, and the DETAIL that starts with the stable code.
            assert_eq!(
                got.as_deref(),
                Some(format!("{} {}", kind.sqlstate(), kind.code()).as_str()),
                "{kind:?}"
            );
        }
    }

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

    // --- encryption, keys, secrets ---

    fn new_tenant(alg: &str) -> pgrx::Uuid {
        Spi::get_one_with_args::<pgrx::Uuid>(
            "SELECT sealstore.create_tenant('t', $1)",
            &[alg.into()],
        )
        .unwrap()
        .unwrap()
    }

    fn act_as(t: pgrx::Uuid) {
        Spi::run_with_args("SELECT sealstore.act_as_tenant($1)", &[t.into()]).unwrap();
    }

    fn encrypt(pt: &[u8], ctx: &str) -> Vec<u8> {
        Spi::get_one_with_args::<Vec<u8>>(
            "SELECT sealstore.encrypt($1, $2)",
            &[pt.to_vec().into(), ctx.into()],
        )
        .unwrap()
        .unwrap()
    }

    fn decrypt(ct: &[u8], ctx: &str) -> Vec<u8> {
        Spi::get_one_with_args::<Vec<u8>>(
            "SELECT sealstore.decrypt($1, $2)",
            &[ct.to_vec().into(), ctx.into()],
        )
        .unwrap()
        .unwrap()
    }

    #[pg_test]
    fn round_trip_for_both_algorithms_and_text() {
        for alg in ["xchacha20-poly1305", "aes-256-gcm"] {
            act_as(new_tenant(alg));
            for size in [0usize, 1, 64, 1024, 16 * 1024, 1 << 20] {
                let pt: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
                let ct = encrypt(&pt, "orders.note:7");
                assert_eq!(decrypt(&ct, "orders.note:7"), pt, "{alg} {size}");
            }
            let t = Spi::get_one::<String>(
                "SELECT sealstore.decrypt_text(sealstore.encrypt_text('héllo ✓', 'c'), 'c')",
            )
            .unwrap();
            assert_eq!(t.as_deref(), Some("héllo ✓"));
        }
    }

    #[pg_test]
    fn encryption_is_randomized_and_strict() {
        act_as(new_tenant("xchacha20-poly1305"));
        assert_ne!(encrypt(b"same", ""), encrypt(b"same", ""));
        let null = Spi::get_one::<Vec<u8>>("SELECT sealstore.encrypt(NULL::bytea)").unwrap();
        assert_eq!(null, None);
    }

    #[pg_test(
        error = "ciphertext failed authentication: it was modified, or belongs to another tenant, key version or context"
    )]
    fn wrong_context_fails() {
        act_as(new_tenant("aes-256-gcm"));
        let ct = encrypt(b"v", "row:1");
        decrypt(&ct, "row:2");
    }

    #[pg_test(
        error = "ciphertext failed authentication: it was modified, or belongs to another tenant, key version or context"
    )]
    fn another_tenants_ciphertext_fails() {
        act_as(new_tenant("xchacha20-poly1305"));
        let ct = encrypt(b"v", "");
        act_as(new_tenant("xchacha20-poly1305"));
        decrypt(&ct, "");
    }

    #[pg_test(error = "no tenant context")]
    fn no_context_fails_closed() {
        encrypt(b"v", "");
    }

    #[pg_test]
    fn rotation_keeps_old_versions_and_reencrypt_moves_to_active() {
        let t = new_tenant("aes-256-gcm");
        act_as(t);
        let old = encrypt(b"payload", "c");
        let v =
            Spi::get_one_with_args::<i32>("SELECT sealstore.rotate_tenant_key($1)", &[t.into()])
                .unwrap();
        assert_eq!(v, Some(2));
        let new = encrypt(b"payload", "c");
        let version = |ct: &[u8]| {
            Spi::get_one_with_args::<i32>(
                "SELECT sealstore.envelope_key_version($1)",
                &[ct.to_vec().into()],
            )
            .unwrap()
            .unwrap()
        };
        assert_eq!((version(&old), version(&new)), (1, 2));
        assert_eq!(decrypt(&old, "c"), b"payload");
        let moved =
            Spi::get_one_with_args::<Vec<u8>>("SELECT sealstore.reencrypt($1, 'c')", &[old.into()])
                .unwrap()
                .unwrap();
        assert_eq!(version(&moved), 2);
        assert_eq!(decrypt(&moved, "c"), b"payload");
        let versions = Spi::get_one_with_args::<String>(
            "SELECT string_agg(version || ':' || active, ',' ORDER BY version) FROM sealstore.key_versions($1)",
            &[t.into()],
        )
        .unwrap();
        assert_eq!(versions.as_deref(), Some("1:false,2:true"));
    }

    #[pg_test]
    fn blind_index_survives_rotation_and_differs_per_tenant() {
        let t = new_tenant("xchacha20-poly1305");
        act_as(t);
        let idx = || {
            Spi::get_one::<Vec<u8>>("SELECT sealstore.blind_index('a@example.com', 'email')")
                .unwrap()
        };
        let before = idx();
        assert_eq!(before.as_ref().map(Vec::len), Some(32));
        Spi::run_with_args("SELECT sealstore.rotate_tenant_key($1)", &[t.into()]).unwrap();
        assert_eq!(idx(), before);
        act_as(new_tenant("xchacha20-poly1305"));
        assert_ne!(idx(), before);
    }

    #[pg_test(error = "tenant has been shredded")]
    fn shredded_tenant_cannot_decrypt_even_with_a_warm_cache() {
        let t = new_tenant("xchacha20-poly1305");
        act_as(t);
        let ct = encrypt(b"v", "");
        assert_eq!(decrypt(&ct, ""), b"v"); // the key is now cached in this backend
        Spi::run_with_args("SELECT sealstore.shred_tenant($1)", &[t.into()]).unwrap();
        decrypt(&ct, "");
    }

    #[pg_test]
    fn secrets_are_per_tenant_and_stored_encrypted() {
        let (a, b) = (new_tenant("xchacha20-poly1305"), new_tenant("aes-256-gcm"));
        act_as(a);
        Spi::run("SELECT sealstore.put_secret('openai', 'sk-live-AAAA')").unwrap();
        Spi::run("SELECT sealstore.put_secret('openai', 'sk-live-BBBB')").unwrap();
        act_as(b);
        Spi::run("SELECT sealstore.put_secret('openai', 'sk-other')").unwrap();
        assert_eq!(
            Spi::get_one::<String>("SELECT sealstore.get_secret('openai')")
                .unwrap()
                .as_deref(),
            Some("sk-other")
        );
        act_as(a);
        assert_eq!(
            Spi::get_one::<String>("SELECT sealstore.get_secret('openai')")
                .unwrap()
                .as_deref(),
            Some("sk-live-BBBB")
        );
        let stored = Spi::get_one::<bool>(
            "SELECT bool_and(position(convert_to('sk-', 'UTF8') in value) = 0) FROM sealstore.secrets",
        )
        .unwrap();
        assert_eq!(stored, Some(true));
        Spi::run("SELECT sealstore.delete_secret('openai')").unwrap();
        act_as(b);
        assert_eq!(
            Spi::get_one::<String>("SELECT sealstore.get_secret('openai')")
                .unwrap()
                .as_deref(),
            Some("sk-other")
        );
    }

    #[pg_test(error = "secret does not exist")]
    fn deleted_secret_is_gone() {
        act_as(new_tenant("xchacha20-poly1305"));
        Spi::run("SELECT sealstore.put_secret('k', 'v')").unwrap();
        Spi::run("SELECT sealstore.delete_secret('k')").unwrap();
        Spi::run("SELECT sealstore.get_secret('k')").unwrap();
    }

    #[pg_test]
    fn lifecycle_is_audited_with_the_login_role() {
        let t = new_tenant("aes-256-gcm");
        Spi::run_with_args("SELECT sealstore.rotate_tenant_key($1)", &[t.into()]).unwrap();
        Spi::run_with_args("SELECT sealstore.shred_tenant($1)", &[t.into()]).unwrap();
        Spi::run_with_args("SELECT sealstore.shred_tenant($1)", &[t.into()]).unwrap();
        let actions = Spi::get_one_with_args::<String>(
            "SELECT string_agg(action, ',' ORDER BY id) FROM sealstore.audit_log \
             WHERE tenant_id = $1 AND actor = session_user",
            &[t.into()],
        )
        .unwrap();
        assert_eq!(
            actions.as_deref(),
            Some("create_tenant,rotate_tenant_key,shred_tenant")
        );
        let keys = Spi::get_one_with_args::<i64>(
            "SELECT count(*) FROM sealstore.tenant_keys WHERE tenant_id = $1",
            &[t.into()],
        )
        .unwrap();
        assert_eq!(keys, Some(0));
    }

    fn current_tenant() -> Option<pgrx::Uuid> {
        Spi::get_one::<pgrx::Uuid>("SELECT sealstore.current_tenant()").unwrap()
    }

    #[pg_test]
    fn a_rolled_back_subtransaction_restores_the_previous_context() {
        let a = new_tenant("xchacha20-poly1305");
        let b = new_tenant("xchacha20-poly1305");
        act_as(a);
        // A PL/pgSQL exception block is a subtransaction, like a savepoint.
        Spi::run(
            &"DO $$ BEGIN \
               BEGIN PERFORM sealstore.act_as_tenant('%L'::uuid); RAISE EXCEPTION 'undo'; \
               EXCEPTION WHEN raise_exception THEN NULL; END; END $$"
                .replace("%L", &b.to_string()),
        )
        .unwrap();
        assert_eq!(current_tenant(), Some(a));
        // A subtransaction that completes keeps its change.
        Spi::run(
            &"DO $$ BEGIN BEGIN PERFORM sealstore.act_as_tenant('%L'::uuid); \
               EXCEPTION WHEN raise_exception THEN NULL; END; END $$"
                .replace("%L", &b.to_string()),
        )
        .unwrap();
        assert_eq!(current_tenant(), Some(b));
    }

    #[pg_test]
    fn context_functions_report_the_identity() {
        let a = new_tenant("xchacha20-poly1305");
        assert_eq!(
            Spi::get_one::<bool>("SELECT sealstore.has_scope('read')").unwrap(),
            Some(false)
        );
        assert_eq!(
            Spi::get_one::<String>("SELECT sealstore.current_subject()").unwrap(),
            None
        );
        act_as(a);
        assert_eq!(
            Spi::get_one::<bool>(
                "SELECT sealstore.has_scope('write') AND NOT sealstore.has_scope('admin')"
            )
            .unwrap(),
            Some(true)
        );
        assert_eq!(
            Spi::get_one::<String>("SELECT sealstore.claims() ->> 'tenant'").unwrap(),
            Some(a.to_string())
        );
    }

    fn create_api_key(t: pgrx::Uuid, scopes: &str) -> String {
        Spi::get_one_with_args::<String>(
            "SELECT sealstore.create_api_key($1, 'test', $2::text[])",
            &[t.into(), scopes.into()],
        )
        .unwrap()
        .unwrap()
    }

    #[pg_test]
    fn api_key_authenticates_its_tenant_with_its_scopes() {
        let a = new_tenant("aes-256-gcm");
        let key = create_api_key(a, "{read}");
        assert!(key.starts_with("sst_"));
        let summary = Spi::get_one_with_args::<pgrx::JsonB>(
            "SELECT sealstore.authenticate($1)",
            &[key.as_str().into()],
        )
        .unwrap()
        .unwrap();
        assert_eq!(summary.0["tenant"], a.to_string());
        assert_eq!(summary.0["scopes"], serde_json::json!(["read"]));
        assert_eq!(current_tenant(), Some(a));
        // Only a 32-byte keyed hash is stored: neither the secret nor its bytes.
        let secret = key.rsplit('_').next().unwrap();
        let stored = Spi::get_one_with_args::<bool>(
            "SELECT length(tag) = 32 AND position(decode($1, 'hex') IN tag) = 0 \
                    AND position(convert_to($1, 'UTF8') IN tag) = 0 \
             FROM sealstore.api_keys WHERE id = (sealstore.claims() ->> 'api_key')::uuid",
            &[secret.into()],
        )
        .unwrap();
        assert_eq!(stored, Some(true));
    }

    #[pg_test(error = "the credential of this transaction lacks the required scope")]
    fn read_only_api_key_cannot_write_secrets() {
        let a = new_tenant("aes-256-gcm");
        let key = create_api_key(a, "{read}");
        Spi::run_with_args("SELECT sealstore.authenticate($1)", &[key.as_str().into()]).unwrap();
        Spi::run("SELECT sealstore.put_secret('n', 'v')").unwrap();
    }

    #[pg_test(error = "credential rejected")]
    fn revoked_api_key_is_rejected_at_once() {
        let a = new_tenant("aes-256-gcm");
        let key = create_api_key(a, "{read,write}");
        Spi::run_with_args("SELECT sealstore.authenticate($1)", &[key.as_str().into()]).unwrap();
        Spi::run("SELECT sealstore.revoke_api_key((sealstore.claims() ->> 'api_key')::uuid)")
            .unwrap();
        Spi::run_with_args("SELECT sealstore.authenticate($1)", &[key.as_str().into()]).unwrap();
    }

    #[pg_test(error = "credential rejected")]
    fn api_key_with_a_wrong_secret_is_rejected() {
        let a = new_tenant("aes-256-gcm");
        let mut key = create_api_key(a, "{read}");
        let last = key.pop().unwrap();
        key.push(if last == '0' { '1' } else { '0' });
        Spi::run_with_args("SELECT sealstore.authenticate($1)", &[key.as_str().into()]).unwrap();
    }

    #[pg_test(error = "credential rejected")]
    fn shredding_a_tenant_voids_its_api_keys() {
        let a = new_tenant("xchacha20-poly1305");
        let key = create_api_key(a, "{read}");
        Spi::run_with_args("SELECT sealstore.shred_tenant($1)", &[a.into()]).unwrap();
        Spi::run_with_args("SELECT sealstore.authenticate($1)", &[key.as_str().into()]).unwrap();
    }

    #[pg_test(error = "HMAC secret must be at least 32 bytes")]
    fn short_hmac_secrets_are_refused() {
        Spi::run("SELECT sealstore.add_jwt_key('short', 'HS256', 'only-20-bytes-long!!')").unwrap();
    }

    #[pg_test]
    fn hmac_secrets_are_stored_sealed_and_retired_keys_forgotten() {
        let secret = "0123456789abcdef0123456789abcdef-pg-test-secret";
        Spi::run_with_args(
            "SELECT sealstore.add_jwt_key('pgtest', 'HS256', $1)",
            &[secret.into()],
        )
        .unwrap();
        let leaked = Spi::get_one_with_args::<bool>(
            "SELECT position(convert_to($1, 'UTF8') IN material) > 0 FROM sealstore.jwt_keys WHERE kid = 'pgtest'",
            &[secret.into()],
        )
        .unwrap();
        assert_eq!(leaked, Some(false));
        Spi::run("SELECT sealstore.retire_jwt_key('pgtest')").unwrap();
        let material = Spi::get_one::<bool>(
            "SELECT material IS NULL FROM sealstore.jwt_keys WHERE kid = 'pgtest'",
        )
        .unwrap();
        assert_eq!(material, Some(true));
    }

    // --- search ---

    /// The ids of `search('hints', q, k)` and of SQL's `ORDER BY distance, id LIMIT k` over the
    /// same rows, as text, with k (1,000, the most it allows) at least the row count: every row, in order, so that a row lost or
    /// read twice shows.
    fn search_and_reference() -> (Option<String>, Option<String>) {
        let q = "'[0.5,-0.25,0.125,1,0,-1,0.75,0.3]'::sealstore.vector";
        let got = Spi::get_one::<String>(&format!(
            "SELECT string_agg(id::text, ',' ORDER BY n) FROM \
               (SELECT id, row_number() OVER () AS n FROM sealstore.search('hints', {q}, 1000)) s"
        ))
        .unwrap();
        let want = Spi::get_one::<String>(&format!(
            "SELECT string_agg(id::text, ',' ORDER BY d, id) FROM \
               (SELECT d.id, d.embedding OPERATOR(sealstore.<->) {q} AS d \
                  FROM sealstore.documents d JOIN sealstore.collections c ON c.id = d.collection_id \
                 WHERE c.name = 'hints' AND c.tenant_id = sealstore.current_tenant() \
                 ORDER BY 2, 1) s"
        ))
        .unwrap();
        (got, want)
    }

    #[pg_test]
    fn search_is_exact_whatever_buffers_the_hints_name() {
        let t = new_tenant("aes-256-gcm");
        act_as(t);
        Spi::run("SELECT sealstore.create_collection('hints', 8, 'l2', false)").unwrap();
        // 1,000 rows of 8 dimensions: many pages, and (with the test build's batches of 300
        // TIDs) several batches, whose boundaries fall inside pages.
        Spi::run(
            "SELECT count(sealstore.put_document('hints', 'row ' || i, \
                 (SELECT array_agg(sin(i * 7.1 + j * 1.3)::real) FROM generate_series(1, 8) j \
                   WHERE i > 0)::sealstore.vector, '{}')) \
               FROM generate_series(1, 1000) i",
        )
        .unwrap();
        let split_page = Spi::get_one::<bool>(
            "SELECT ((a[300]::text::point)[0] = (a[301]::text::point)[0]) \
               FROM (SELECT array_agg(d.ctid ORDER BY d.ctid) AS a FROM sealstore.documents d \
                       JOIN sealstore.collections c ON c.id = d.collection_id \
                      WHERE c.name = 'hints') s",
        )
        .unwrap();
        assert_eq!(
            split_page,
            Some(true),
            "the first batch boundary falls inside a page"
        );
        let (first, want) = search_and_reference();
        assert!(want.is_some());
        assert_eq!(first, want);
        let learned = crate::storage::pages::hinted_buffers();
        assert!(
            learned.iter().filter(|&&b| b > 0).count() > 10,
            "the first search notes the buffers of the pages it read"
        );
        assert_eq!(search_and_reference().0, want, "with the buffers hinted");

        crate::storage::pages::scramble_hints(false);
        let scrambled = crate::storage::pages::hinted_buffers();
        assert_ne!(scrambled, learned);
        assert_eq!(search_and_reference().0, want, "with every hint wrong");
        assert_eq!(
            crate::storage::pages::hinted_buffers(),
            learned,
            "wrong hints are replaced by the buffers the pages are in"
        );

        crate::storage::pages::scramble_hints(true);
        assert_eq!(
            search_and_reference().0,
            want,
            "with buffer numbers out of range"
        );

        // Rows updated (HOT chains from the index's TIDs, and new versions on other pages),
        // then deleted and added, then the table rewritten into a new file: the hints of the
        // old file must not be used for the new one.
        let updated = Spi::get_one::<i64>(
            "WITH u AS (UPDATE sealstore.documents d SET metadata = '{\"v\": 2}', \
                    embedding = (SELECT array_agg(-x ORDER BY o) \
                                   FROM unnest(d.embedding::real[]) WITH ORDINALITY u(x, o))::sealstore.vector \
               FROM sealstore.collections c \
              WHERE c.id = d.collection_id AND c.name = 'hints' AND d.ctid::text LIKE '%2)' \
             RETURNING 1) SELECT count(*) FROM u",
        )
        .unwrap();
        assert!(updated > Some(50), "{updated:?} rows updated");
        let (after_update, want) = search_and_reference();
        assert_eq!(after_update, want, "after updates");
        Spi::run(
            "SELECT count(sealstore.delete_document(d.id)) FROM sealstore.documents d \
               JOIN sealstore.collections c ON c.id = d.collection_id \
              WHERE c.name = 'hints' AND d.ctid::text LIKE '(%,1)'",
        )
        .unwrap();
        let (after_delete, want) = search_and_reference();
        assert_eq!(after_delete, want, "after deletes");
        let before =
            Spi::get_one::<pgrx::pg_sys::Oid>("SELECT pg_relation_filenode('sealstore.documents')")
                .unwrap();
        Spi::run("TRUNCATE sealstore.documents").unwrap();
        Spi::run(
            "SELECT count(sealstore.put_document('hints', 'row ' || i, \
                 (SELECT array_agg(cos(i * 3.7 + j)::real) FROM generate_series(1, 8) j \
                   WHERE i > 0)::sealstore.vector, '{}')) \
               FROM generate_series(1, 500) i",
        )
        .unwrap();
        let after =
            Spi::get_one::<pgrx::pg_sys::Oid>("SELECT pg_relation_filenode('sealstore.documents')")
                .unwrap();
        assert_ne!(before, after, "TRUNCATE gives the table a new file");
        let (rewritten, want) = search_and_reference();
        assert!(want.is_some());
        assert_eq!(rewritten, want, "after the table moved to a new file");
    }
}
