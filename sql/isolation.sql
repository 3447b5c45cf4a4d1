-- Tenant isolation: the function that puts a table under it, the report of everything that
-- could let one tenant see another's rows, and the extension's own tables isolated the same
-- way. Created after the context functions (the policies call current_tenant()) and the
-- documents tables (pg_ext/src/api/context.rs says so to pgrx).

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
CREATE INDEX ON @extschema@.audit_log (tenant_id);
