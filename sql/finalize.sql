-- Runs at the end of CREATE EXTENSION sealstore (and of every upgrade script).
-- Least privilege: nothing in the schema is usable by PUBLIC; the two roles of the design get
-- exactly what they need. Roles are cluster-wide, so they are created only if missing.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sealstore_app') THEN
        CREATE ROLE sealstore_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sealstore_admin') THEN
        CREATE ROLE sealstore_admin NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    END IF;
END
$roles$;

-- Re-encrypts one tenant's values in a column to the tenant's active key version, in batches
-- that each commit, so it can run beside live traffic and, if killed, be started again: it
-- only touches values not yet on the active version. Must be CALLed outside a transaction
-- block (it commits). It sets the tenant context itself in each batch's transaction, hence
-- the explicit tenant and the administrators-only EXECUTE.
CREATE PROCEDURE @extschema@.rotate_column(
    tbl regclass,
    col name,
    context_col name,
    batch_size integer DEFAULT 1000,
    tenant uuid DEFAULT NULL,
    tenant_column name DEFAULT 'tenant_id')
LANGUAGE plpgsql AS $proc$
DECLARE
    target integer;
    total bigint;
    done bigint := 0;
    n bigint;
    pending text;
BEGIN
    IF batch_size IS NULL OR batch_size NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION 'batch_size must be from 1 to 100000' USING ERRCODE = '22023';
    END IF;
    IF tenant IS NULL OR col IS NULL OR context_col IS NULL OR tenant_column IS NULL THEN
        RAISE EXCEPTION 'tenant, col, context_col and tenant_column are required' USING ERRCODE = '22023';
    END IF;
    pending := format('%s WHERE %I = $1 AND %I IS NOT NULL AND @extschema@.envelope_key_version(%I) <> $2',
                      tbl, tenant_column, col, col);
    PERFORM @extschema@.act_as_tenant(tenant);
    target := @extschema@.active_key_version();
    EXECUTE 'SELECT count(*) FROM ' || pending INTO total USING tenant, target;
    RAISE NOTICE 'rotate_column: % values of % to re-encrypt to key version %', total, tbl, target;
    LOOP
        PERFORM @extschema@.act_as_tenant(tenant);
        EXECUTE format('WITH batch AS (SELECT ctid FROM %s LIMIT $3 FOR UPDATE) '
                       'UPDATE %s t SET %I = @extschema@.reencrypt(t.%I, t.%I::text) '
                       'FROM batch WHERE t.ctid = batch.ctid',
                       pending, tbl, col, col, context_col)
            USING tenant, target, batch_size;
        GET DIAGNOSTICS n = ROW_COUNT;
        done := done + n;
        COMMIT;
        EXIT WHEN n = 0;
        RAISE NOTICE 'rotate_column: % of % done', done, total;
    END LOOP;
    RAISE NOTICE 'rotate_column: finished, % values re-encrypted', done;
END
$proc$;

-- Master key rotation: re-wraps every data key still under another master key, in committed
-- batches; resumable (it only selects keys not yet under the current master key). CALL it
-- outside a transaction block, with the old key in sealstore.previous_master_key_*.
CREATE PROCEDURE @extschema@.rewrap_tenant_keys(batch_size integer DEFAULT 100)
LANGUAGE plpgsql AS $proc$
DECLARE
    n integer;
    done bigint := 0;
BEGIN
    LOOP
        n := @extschema@.rewrap_tenant_keys_batch(batch_size);
        done := done + n;
        COMMIT;
        EXIT WHEN n = 0;
        RAISE NOTICE 'rewrap_tenant_keys: % keys re-wrapped', done;
    END LOOP;
    RAISE NOTICE 'rewrap_tenant_keys: finished, % keys re-wrapped', done;
END
$proc$;

REVOKE ALL ON SCHEMA @extschema@ FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA @extschema@ FROM PUBLIC;
REVOKE EXECUTE ON ALL PROCEDURES IN SCHEMA @extschema@ FROM PUBLIC;
GRANT USAGE ON SCHEMA @extschema@ TO sealstore_app, sealstore_admin;

GRANT EXECUTE ON FUNCTION @extschema@.version() TO sealstore_app, sealstore_admin;
GRANT EXECUTE ON FUNCTION @extschema@.master_key_fingerprint() TO sealstore_app, sealstore_admin;

-- Tenants and keys: administrators.
GRANT EXECUTE ON FUNCTION
    @extschema@.create_tenant(text, text),
    @extschema@.rotate_tenant_key(uuid),
    @extschema@.key_versions(uuid),
    @extschema@.shred_tenant(uuid),
    @extschema@.act_as_tenant(uuid)
TO sealstore_admin;
GRANT EXECUTE ON PROCEDURE @extschema@.rotate_column(regclass, name, name, integer, uuid, name)
TO sealstore_admin;
GRANT EXECUTE ON FUNCTION
    @extschema@.rewrap_tenant_keys_batch(integer),
    @extschema@.master_key_usage()
TO sealstore_admin;
GRANT EXECUTE ON PROCEDURE @extschema@.rewrap_tenant_keys(integer) TO sealstore_admin;
GRANT SELECT ON @extschema@.audit_log TO sealstore_admin;

-- Encryption and secrets for the current tenant: applications and administrators.
GRANT EXECUTE ON FUNCTION
    @extschema@.current_tenant(),
    @extschema@.encrypt(bytea, text),
    @extschema@.decrypt(bytea, text),
    @extschema@.encrypt_text(text, text),
    @extschema@.decrypt_text(bytea, text),
    @extschema@.reencrypt(bytea, text),
    @extschema@.envelope_key_version(bytea),
    @extschema@.active_key_version(),
    @extschema@.blind_index(text, text),
    @extschema@.put_secret(text, text),
    @extschema@.get_secret(text),
    @extschema@.delete_secret(text)
TO sealstore_app, sealstore_admin;
