-- Login role for the gateway, run by .ci/sealstore after CREATE EXTENSION sealstore (which
-- creates the NOLOGIN roles sealstore_app and sealstore_admin).
-- psql variables: db (the database), gateway_password.
-- The gateway's role is a member of sealstore_app and nothing else: no superuser, no BYPASSRLS,
-- no ownership of anything.

-- The password must not reach the server log, whatever log_statement says.
SET log_statement = 'none';
SET log_min_duration_statement = -1;

SELECT 'CREATE ROLE sealstore_gateway LOGIN'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sealstore_gateway') \gexec
ALTER ROLE sealstore_gateway LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
    NOBYPASSRLS INHERIT CONNECTION LIMIT 200 PASSWORD :'gateway_password';
GRANT sealstore_app TO sealstore_gateway;
-- The gateway's bind parameters carry tokens and plaintext: they never reach the server log,
-- even where log_statement or log_min_duration_statement log its statements.
ALTER ROLE sealstore_gateway SET log_parameter_max_length = 0;
ALTER ROLE sealstore_gateway SET log_parameter_max_length_on_error = 0;

REVOKE CONNECT, TEMPORARY ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO sealstore_app, sealstore_admin;
