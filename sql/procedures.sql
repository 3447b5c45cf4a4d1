-- The extension's procedures, which commit between batches (so they are PL/pgSQL procedures
-- around batch functions written in Rust): column rotation and master key rotation.

-- Re-encrypts one tenant's values in a column to the tenant's active key version, in batches
-- that each commit, so it can run beside live traffic and, if killed, be started again: it
-- only touches values not yet on the active version. Must be CALLed outside a transaction
-- block (it commits). Administrators only; each batch runs the table's own code (triggers,
-- defaults, policies) as the table's owner in a security-restricted operation (see
-- pg_ext/src/api/column_rotation.rs).
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
BEGIN
    IF batch_size IS NULL OR batch_size NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION 'batch_size must be from 1 to 100000' USING ERRCODE = '22023';
    END IF;
    IF tbl IS NULL OR tenant IS NULL OR col IS NULL OR context_col IS NULL OR tenant_column IS NULL THEN
        RAISE EXCEPTION 'tbl, tenant, col, context_col and tenant_column are required' USING ERRCODE = '22023';
    END IF;
    PERFORM @extschema@.act_as_tenant(tenant);
    target := @extschema@.active_key_version();
    total := @extschema@.rotate_column_pending(tbl, col, context_col, tenant, tenant_column);
    RAISE NOTICE 'rotate_column: % values of % to re-encrypt to key version %', total, tbl, target;
    LOOP
        n := @extschema@.rotate_column_batch(tbl, col, context_col, tenant, tenant_column, batch_size);
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
