-- Least privilege: PUBLIC can use nothing; sealstore_app, sealstore_admin and sealstore_gateway
-- exactly what the design gives them; the gateway's role is a member of sealstore_app, and
-- only it may report failed authentications.
SELECT rolname, rolsuper, rolinherit, rolcanlogin, rolbypassrls, rolcreaterole, rolcreatedb
FROM pg_roles WHERE rolname IN ('sealstore_app', 'sealstore_admin', 'sealstore_gateway')
ORDER BY rolname;
SELECT r.rolname AS granted
FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
WHERE m.member = 'sealstore_gateway'::regrole ORDER BY 1;
SELECT p.oid::regprocedure AS function,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_exec,
       has_function_privilege('sealstore_app', p.oid, 'EXECUTE') AS app_exec,
       has_function_privilege('sealstore_admin', p.oid, 'EXECUTE') AS admin_exec,
       has_function_privilege('sealstore_gateway', p.oid, 'EXECUTE') AS gateway_exec
FROM pg_proc p WHERE p.pronamespace = 'sealstore'::regnamespace ORDER BY p.proname, p.oid::regprocedure::text;
SELECT has_schema_privilege('public', 'sealstore', 'USAGE') AS public_usage,
       has_schema_privilege('sealstore_app', 'sealstore', 'USAGE') AS app_usage,
       has_schema_privilege('sealstore_app', 'sealstore', 'CREATE') AS app_create;
-- A role outside sealstore_app gets nothing.
CREATE ROLE regress_outsider;
SET ROLE regress_outsider;
SELECT sealstore.version();
RESET ROLE;
-- The gateway role can call the functions but not see or change the key settings.
SET ROLE sealstore_gateway;
SELECT sealstore.version() IS NOT NULL AS app_can_call;
SELECT length(sealstore.master_key_fingerprint()) AS fingerprint_length;
SHOW sealstore.master_key_file;
SELECT count(*) AS visible_key_settings FROM pg_settings WHERE name LIKE 'sealstore.%master_key%';
RESET ROLE;
DROP ROLE regress_outsider;
