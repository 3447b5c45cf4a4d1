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
    -- The gateway's own role: what an application role is, plus the gateway's audit report.
    -- No application is ever given it (sql/roles.sql gives it LOGIN for the gateway alone), so
    -- no application can change its settings, signal its backends or speak in its name.
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sealstore_gateway') THEN
        CREATE ROLE sealstore_gateway NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    END IF;
    GRANT sealstore_app TO sealstore_gateway;
END
$roles$;

-- Re-encrypts one tenant's values in a column to the tenant's active key version, in batches
-- that each commit, so it can run beside live traffic and, if killed, be started again: it
-- only touches values not yet on the active version. Must be CALLed outside a transaction
-- block (it commits). Administrators only; each batch runs the table's own code (triggers,
-- defaults, policies) as the table's owner in a security-restricted operation (see
-- pg_ext/src/column_rotation.rs).
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

-- Tenant isolation for a table: ENABLE and FORCE row level security (FORCE: the table's owner
-- is filtered too), a permissive policy and a restrictive one on the tenant column (so another
-- permissive policy added later cannot widen access), both USING and WITH CHECK against the
-- transaction's verified tenant; the column defaults to it; an index on it. Idempotent.
-- SECURITY INVOKER: the caller must be allowed to ALTER the table.
CREATE FUNCTION @extschema@.enable_tenant_isolation(tbl regclass, tenant_column name DEFAULT 'tenant_id')
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    col_type oid;
    kind "char";
    cond text;
BEGIN
    IF tbl IS NULL OR tenant_column IS NULL THEN
        RAISE EXCEPTION 'tbl and tenant_column are required' USING ERRCODE = '22023';
    END IF;
    SELECT relkind INTO kind FROM pg_class WHERE oid = tbl;
    IF kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', tbl USING ERRCODE = '42809';
    END IF;
    SELECT atttypid INTO col_type FROM pg_attribute
     WHERE attrelid = tbl AND attname = tenant_column AND attnum > 0 AND NOT attisdropped;
    IF col_type IS NULL THEN
        RAISE EXCEPTION 'column % of % does not exist', tenant_column, tbl USING ERRCODE = '42703';
    END IF;
    IF col_type <> 'uuid'::regtype THEN
        RAISE EXCEPTION 'column % of % must be of type uuid', tenant_column, tbl USING ERRCODE = '42804';
    END IF;
    cond := format('%I = (SELECT @extschema@.current_tenant())', tenant_column);
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format('DROP POLICY IF EXISTS sealstore_tenant ON %s', tbl);
    EXECUTE format('DROP POLICY IF EXISTS sealstore_tenant_guard ON %s', tbl);
    EXECUTE format('CREATE POLICY sealstore_tenant ON %s AS PERMISSIVE FOR ALL TO PUBLIC USING (%s) WITH CHECK (%s)',
                   tbl, cond, cond);
    EXECUTE format('CREATE POLICY sealstore_tenant_guard ON %s AS RESTRICTIVE FOR ALL TO PUBLIC USING (%s) WITH CHECK (%s)',
                   tbl, cond, cond);
    EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET DEFAULT @extschema@.current_tenant()', tbl, tenant_column);
    IF NOT EXISTS (SELECT FROM pg_index i
                    WHERE i.indrelid = tbl AND i.indkey[0] = (SELECT attnum FROM pg_attribute
                                                               WHERE attrelid = tbl AND attname = tenant_column)) THEN
        EXECUTE format('CREATE INDEX ON %s (%I)', tbl, tenant_column);
    END IF;
    -- Partitions and inheritance children too: read directly, a child answers with its own
    -- policies, not its parent's.
    PERFORM @extschema@.enable_tenant_isolation(inhrelid::regclass, tenant_column)
       FROM pg_inherits WHERE inhparent = tbl;
END
$fn$;

-- Every problem that can let one tenant see another's rows, one row each. severity 'error':
-- fix it; 'warning': inherent (superusers) or performance (missing index).
CREATE FUNCTION @extschema@.isolation_report()
RETURNS TABLE (severity text, object text, problem text, detail text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
WITH tenant_tables AS (
    -- Tables with a tenant_id column, or under row level security with a tenant policy.
    SELECT c.oid AS rel, c.oid::regclass::text AS name, c.relrowsecurity AS rls,
           c.relforcerowsecurity AS forced, coalesce(a.attname, 'tenant_id') AS col, a.attnum
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
     WHERE c.relkind IN ('r', 'p')
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
       AND (a.attnum IS NOT NULL
            OR EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = c.oid
                         AND pg_get_expr(p.polqual, p.polrelid) LIKE '%current_tenant()%'))
),
tenant_policies AS (
    -- A tenant policy compares a column with the verified tenant and nothing else: merely
    -- calling current_tenant() (say, `current_tenant() IS NOT NULL`) filters no row.
    SELECT t.rel,
           bool_or(p.polpermissive AND p.polcmd = '*'
                   AND pg_get_expr(p.polqual, p.polrelid) ~ tp.pattern
                   AND (p.polwithcheck IS NULL
                        OR pg_get_expr(p.polwithcheck, p.polrelid) ~ tp.pattern)) AS ok
      FROM tenant_tables t
      LEFT JOIN pg_policy p ON p.polrelid = t.rel
     CROSS JOIN (SELECT '^\(("[^"]+"|[a-z_][a-z0-9_$]*) = \( SELECT @extschema@\.current_tenant\(\)( AS current_tenant)?\)\)$'
                        AS pattern) tp
     GROUP BY t.rel
),
isolated AS (
    SELECT t.* FROM tenant_tables t JOIN tenant_policies p USING (rel) WHERE t.rls AND p.ok
)
SELECT 'error', name, 'row level security disabled', 'the table has a tenant column but no row level security'
  FROM tenant_tables WHERE NOT rls
UNION ALL
SELECT 'error', name, 'row level security not forced', 'its owner is not filtered: ALTER TABLE ... FORCE ROW LEVEL SECURITY'
  FROM tenant_tables WHERE rls AND NOT forced
UNION ALL
SELECT 'error', t.name, 'missing tenant policy',
       'no permissive FOR ALL policy on sealstore.current_tenant() with USING and WITH CHECK'
  FROM tenant_tables t JOIN tenant_policies p USING (rel) WHERE t.rls AND NOT coalesce(p.ok, false)
UNION ALL
SELECT 'warning', i.name, 'missing tenant index', format('no index starts with %I', i.col)
  FROM isolated i
 WHERE NOT EXISTS (SELECT FROM pg_index x WHERE x.indrelid = i.rel AND x.indkey[0] = i.attnum)
UNION ALL
-- A unique index without the tenant column is one namespace for all tenants: where tenants
-- choose the values, a unique violation tells one that another holds a value. Any other index
-- that does not start with it mixes all tenants' entries, so a lookup's time follows theirs. (The
-- extension's own tables are reached only through its functions, which pick their keys.)
SELECT 'warning', x.indexrelid::regclass::text,
       CASE WHEN x.indisunique THEN 'unique index without the tenant column'
            ELSE 'index does not start with the tenant column' END,
       CASE WHEN x.indisunique
            THEN format('where tenants choose its values, a unique violation on %s reveals another tenant''s value: add %I', i.name, i.col)
            ELSE format('lookups in %s pass over every tenant''s entries: lead it with %I', i.name, i.col) END
  FROM isolated i
  JOIN pg_index x ON x.indrelid = i.rel
 WHERE NOT (x.indisunique AND i.attnum = ANY (x.indkey::int2[]))
   AND (x.indisunique OR x.indkey[0] <> i.attnum)
   AND NOT EXISTS (SELECT FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = i.rel
                      AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e')
UNION ALL
-- Activity counters (pg_stat_*_tables and the functions behind them) count every tenant's
-- reads and writes of every table; sql/roles.sql revokes them from PUBLIC.
SELECT 'warning', 'pg_catalog.pg_stat_get_tuples_inserted(oid)', 'activity statistics readable by applications',
       'sealstore_app can count every tenant''s writes: revoke pg_stat_* from PUBLIC (see sql/roles.sql)'
 WHERE has_function_privilege('sealstore_app', 'pg_catalog.pg_stat_get_tuples_inserted(oid)', 'EXECUTE')
    OR has_table_privilege('sealstore_app', 'pg_catalog.pg_stat_all_tables', 'SELECT')
UNION ALL
SELECT DISTINCT 'error', v.oid::regclass::text,
       CASE v.relkind WHEN 'm' THEN 'materialized view over an isolated table'
                      ELSE 'view without security_invoker over an isolated table' END,
       format('reads %s with its owner''s rights', i.name)
  FROM pg_class v
  JOIN pg_rewrite r ON r.ev_class = v.oid
  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                  AND d.refclassid = 'pg_class'::regclass
  JOIN tenant_tables i ON i.rel = d.refobjid
 WHERE v.relkind IN ('v', 'm') AND v.oid <> i.rel
   AND (v.relkind = 'm' OR NOT coalesce('security_invoker=true' = ANY (v.reloptions)
                                        OR 'security_invoker=on' = ANY (v.reloptions), false))
UNION ALL
SELECT CASE WHEN r.rolsuper THEN 'warning' ELSE 'error' END, r.rolname,
       CASE WHEN r.rolsuper THEN 'superuser bypasses row level security' ELSE 'role has BYPASSRLS' END,
       'can read every tenant''s rows of: ' || string_agg(t.name, ', ' ORDER BY t.name)
  FROM pg_roles r CROSS JOIN tenant_tables t
 WHERE (r.rolsuper OR r.rolbypassrls) AND has_table_privilege(r.oid, t.rel, 'SELECT')
 GROUP BY r.rolname, r.rolsuper
UNION ALL
SELECT DISTINCT 'error', p.oid::regprocedure::text, 'SECURITY DEFINER function touches an isolated table',
       format('runs as %s and mentions %s', pg_get_userbyid(p.proowner), t.name)
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
  CROSS JOIN tenant_tables t
  JOIN pg_class c ON c.oid = t.rel
 WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND (p.prosrc ~* ('\m' || regexp_replace(c.relname, '([^A-Za-z0-9_])', '\\\1', 'g') || '\M')
        OR EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                     AND d.refclassid = 'pg_class'::regclass AND d.refobjid = t.rel))
ORDER BY 1, 2, 3
$fn$;

-- The extension's own tenant tables are isolated the same way. The functions reach them as the
-- extension's owner (a superuser, not subject to row level security), so this is defence in
-- depth: a role granted access to them by mistake still sees one tenant at most.
SELECT @extschema@.enable_tenant_isolation('@extschema@.tenant_keys');
SELECT @extschema@.enable_tenant_isolation('@extschema@.secrets');
SELECT @extschema@.enable_tenant_isolation('@extschema@.api_keys');
SELECT @extschema@.enable_tenant_isolation('@extschema@.collections');
SELECT @extschema@.enable_tenant_isolation('@extschema@.documents');
ALTER TABLE @extschema@.audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY sealstore_tenant ON @extschema@.audit_log FOR ALL TO PUBLIC
    USING (tenant_id = (SELECT @extschema@.current_tenant()))
    WITH CHECK (tenant_id = (SELECT @extschema@.current_tenant()));
CREATE POLICY sealstore_admin_reads ON @extschema@.audit_log FOR SELECT TO sealstore_admin USING (true);
CREATE INDEX ON @extschema@.audit_log (tenant_id);

REVOKE ALL ON SCHEMA @extschema@ FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA @extschema@ FROM PUBLIC;
REVOKE EXECUTE ON ALL PROCEDURES IN SCHEMA @extschema@ FROM PUBLIC;
GRANT USAGE ON SCHEMA @extschema@ TO sealstore_app, sealstore_admin;

GRANT EXECUTE ON FUNCTION @extschema@.version() TO sealstore_app, sealstore_admin;
GRANT EXECUTE ON FUNCTION @extschema@.master_key_fingerprint() TO sealstore_app, sealstore_admin;

-- Tenants and keys: callable by both roles, each function checks for itself that the caller
-- is a member of sealstore_admin or authenticated a credential with scope admin in this
-- transaction (a tenant's admin credential reaches its own tenant only). This is how the
-- gateway, which logs in with the application role, serves the admin routes.
GRANT EXECUTE ON FUNCTION
    @extschema@.create_tenant(text, text),
    @extschema@.rotate_tenant_key(uuid),
    @extschema@.key_versions(uuid),
    @extschema@.shred_tenant(uuid),
    @extschema@.create_api_key(uuid, text, text[]),
    @extschema@.revoke_api_key(uuid),
    @extschema@.add_jwt_key(text, text, text, uuid, boolean),
    @extschema@.retire_jwt_key(text)
TO sealstore_app, sealstore_admin;

-- For gateways: public verification data, and (the gateway's role only, so that no application
-- can write audit rows in its name) the audit of failed authentications.
GRANT EXECUTE ON FUNCTION @extschema@.jwt_verification_config() TO sealstore_app, sealstore_admin;
GRANT EXECUTE ON FUNCTION @extschema@.record_auth_failures(jsonb) TO sealstore_gateway;

-- Database administrators only.
GRANT EXECUTE ON FUNCTION
    @extschema@.act_as_tenant(uuid),
    @extschema@.enable_tenant_isolation(regclass, name),
    @extschema@.isolation_report()
TO sealstore_admin;
GRANT EXECUTE ON PROCEDURE @extschema@.rotate_column(regclass, name, name, integer, uuid, name)
TO sealstore_admin;
GRANT EXECUTE ON FUNCTION
    @extschema@.rotate_column_pending(oid, text, text, uuid, text),
    @extschema@.rotate_column_batch(oid, text, text, uuid, text, integer)
TO sealstore_admin;
GRANT EXECUTE ON FUNCTION
    @extschema@.rewrap_tenant_keys_batch(integer),
    @extschema@.master_key_usage()
TO sealstore_admin;
GRANT EXECUTE ON PROCEDURE @extschema@.rewrap_tenant_keys(integer) TO sealstore_admin;
GRANT SELECT ON @extschema@.audit_log TO sealstore_admin;

-- Encryption and secrets for the current tenant: applications and administrators.
GRANT EXECUTE ON FUNCTION
    @extschema@.authenticate(text),
    @extschema@.current_tenant(),
    @extschema@.current_subject(),
    @extschema@.claims(),
    @extschema@.has_scope(text),
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

-- Documents and search for the current tenant (their scopes are checked inside).
GRANT EXECUTE ON FUNCTION
    @extschema@.create_collection(text, integer, text, boolean),
    @extschema@.drop_collection(text),
    @extschema@.put_document(text, text, @extschema@.vector, jsonb),
    @extschema@.get_document(uuid),
    @extschema@.delete_document(uuid),
    @extschema@.search(text, @extschema@.vector, integer, jsonb)
TO sealstore_app, sealstore_admin;

-- The gateway's routes as functions (pg_ext/src/api/routes.rs): each authenticates its token and
-- makes one call of the functions above, so the same checks apply; any client may call them.
GRANT EXECUTE ON FUNCTION
    @extschema@.route_create_collection(text, text, integer, text, boolean),
    @extschema@.route_put_document(text, text, text, @extschema@.vector, text),
    @extschema@.route_search(text, text, @extschema@.vector, integer, text),
    @extschema@.route_get_document(text, uuid),
    @extschema@.route_delete_document(text, uuid),
    @extschema@.route_put_secret(text, text, text),
    @extschema@.route_get_secret(text, text),
    @extschema@.route_delete_secret(text, text),
    @extschema@.route_create_tenant(text, text, text),
    @extschema@.route_rotate_tenant_key(text, uuid),
    @extschema@.route_shred_tenant(text, uuid),
    @extschema@.route_create_api_key(text, uuid, text, text[]),
    @extschema@.route_revoke_api_key(text, uuid),
    @extschema@.route_metrics(text)
TO sealstore_app, sealstore_admin;

-- The vector type's functions are pure arithmetic on their arguments, usable by every role that
-- may use the schema (as with pgvector).
GRANT EXECUTE ON FUNCTION
    @extschema@.vector_in(cstring, oid, integer),
    @extschema@.vector_out(@extschema@.vector),
    @extschema@.vector_typmod_in(cstring[]),
    @extschema@.vector_recv(internal, oid, integer),
    @extschema@.vector_send(@extschema@.vector),
    @extschema@.vector(@extschema@.vector, integer, boolean),
    @extschema@.array_to_vector(real[], integer, boolean),
    @extschema@.array_to_vector(double precision[], integer, boolean),
    @extschema@.array_to_vector(integer[], integer, boolean),
    @extschema@.vector_to_float4(@extschema@.vector, integer, boolean),
    @extschema@.l2_distance(@extschema@.vector, @extschema@.vector),
    @extschema@.inner_product(@extschema@.vector, @extschema@.vector),
    @extschema@.vector_negative_inner_product(@extschema@.vector, @extschema@.vector),
    @extschema@.cosine_distance(@extschema@.vector, @extschema@.vector),
    @extschema@.l1_distance(@extschema@.vector, @extschema@.vector),
    @extschema@.vector_dims(@extschema@.vector),
    @extschema@.l2_norm(@extschema@.vector),
    @extschema@.l2_normalize(@extschema@.vector),
    @extschema@.vector_cmp(@extschema@.vector, @extschema@.vector),
    @extschema@.vector_lt(@extschema@.vector, @extschema@.vector),
    @extschema@.vector_le(@extschema@.vector, @extschema@.vector),
    @extschema@.vector_eq(@extschema@.vector, @extschema@.vector),
    @extschema@.vector_ne(@extschema@.vector, @extschema@.vector),
    @extschema@.vector_ge(@extschema@.vector, @extschema@.vector),
    @extschema@.vector_gt(@extschema@.vector, @extschema@.vector)
TO PUBLIC;
