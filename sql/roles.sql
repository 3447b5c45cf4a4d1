-- Login roles and database hardening, run by .ci/sealstore after CREATE EXTENSION sealstore
-- (which creates the NOLOGIN roles sealstore_app, sealstore_admin and sealstore_gateway).
-- psql variables: db (the database), gateway_password, app_password.
--
-- Two login roles, never shared:
-- - sealstore_gateway: the gateway's, and only the gateway's (no application is given its
--   password). A role may change its own settings and signal its own backends, so a role an
--   application also logs in with could make the gateway log tokens and plaintext, put a
--   schema of its own first on the gateway's search_path, or cancel its calls.
-- - sealstore_app_user: an application's, a member of sealstore_app. Every application gets a
--   login role of its own like it (CREATE ROLE ... LOGIN IN ROLE sealstore_app).
-- Neither is a superuser, has BYPASSRLS or owns anything.

-- The passwords must not reach the server log, whatever log_statement says.
SET log_statement = 'none';
SET log_min_duration_statement = -1;

ALTER ROLE sealstore_gateway LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
    NOBYPASSRLS INHERIT CONNECTION LIMIT 200 PASSWORD :'gateway_password';

SELECT 'CREATE ROLE sealstore_app_user LOGIN'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sealstore_app_user') \gexec
ALTER ROLE sealstore_app_user LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
    NOBYPASSRLS INHERIT PASSWORD :'app_password';
GRANT sealstore_app TO sealstore_app_user;

-- Bind parameters carry tokens and plaintext: they never reach the server log, even where
-- log_statement or log_min_duration_statement log the statements. (The gateway also pins the
-- second one in its connection options; the first only a superuser can set.)
ALTER ROLE sealstore_gateway SET log_parameter_max_length = 0;
ALTER ROLE sealstore_gateway SET log_parameter_max_length_on_error = 0;
ALTER ROLE sealstore_app_user SET log_parameter_max_length = 0;
ALTER ROLE sealstore_app_user SET log_parameter_max_length_on_error = 0;

REVOKE CONNECT, TEMPORARY ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO sealstore_app, sealstore_admin;

-- Per-table activity counters count every tenant's reads and writes (pg_stat_user_tables'
-- n_tup_ins of a shared table, or of sealstore.secrets, counts other tenants' writes). They
-- are for monitoring roles (pg_read_all_stats, a member of pg_monitor), not for applications:
-- the views and the functions behind them are revoked from PUBLIC in this database.
DO $stats$
DECLARE
    obj record;
BEGIN
    FOR obj IN SELECT c.oid::regclass AS name FROM pg_class c
                WHERE c.relnamespace = 'pg_catalog'::regnamespace AND c.relkind = 'v'
                  AND c.relname ~ '^pg_stat(io)?_(xact_)?(all|user|sys)_(tables|indexes|sequences)$'
    LOOP
        EXECUTE format('REVOKE SELECT ON %s FROM PUBLIC', obj.name);
        EXECUTE format('GRANT SELECT ON %s TO pg_read_all_stats', obj.name);
    END LOOP;
    FOR obj IN SELECT p.oid::regprocedure AS name FROM pg_proc p
                WHERE p.pronamespace = 'pg_catalog'::regnamespace
                  AND p.proname ~ '^pg_stat_get_' AND p.proargtypes = '26'::oidvector
    LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', obj.name);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO pg_read_all_stats', obj.name);
    END LOOP;
END
$stats$;
