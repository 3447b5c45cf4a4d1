-- Runs at the end of CREATE EXTENSION sealstore (and of every upgrade script): roles and
-- privileges. Least privilege: nothing in the schema is usable by PUBLIC; the roles of the
-- design get exactly what they need. Roles are cluster-wide, so they are created only if
-- missing.
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

-- Administrators read the whole audit log (the tenant policy of sql/isolation.sql lets a
-- tenant's context read its own rows).
CREATE POLICY sealstore_admin_reads ON @extschema@.audit_log FOR SELECT TO sealstore_admin USING (true);

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
    @extschema@.retire_jwt_key(text),
    @extschema@.revoke_token(text, timestamptz)
TO sealstore_app, sealstore_admin;

-- For gateways: public verification data, and (the gateway's role only, so that no application
-- can write audit rows in its name) the audit of failed authentications.
GRANT EXECUTE ON FUNCTION @extschema@.jwt_verification_config() TO sealstore_app, sealstore_admin;
GRANT EXECUTE ON FUNCTION @extschema@.record_auth_failures(jsonb) TO sealstore_gateway;
-- The change feed's listening connection reads every tenant's events and hands each to its
-- own tenant's subscribers (pg_ext/src/api/events.rs): the gateway's role only.
GRANT EXECUTE ON FUNCTION
    @extschema@.gateway_events_wait(bigint, bigint, integer),
    @extschema@.gateway_events_read(bigint, bigint, integer, uuid),
    @extschema@.gateway_events_tail(),
    @extschema@.gateway_events_purge(),
    @extschema@.gateway_credentials_valid(text[])
TO sealstore_gateway;

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
    @extschema@.route_revoke_self(text),
    @extschema@.route_subscribe_events(text, text),
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
    @extschema@.array_to_vector(numeric[], integer, boolean),
    @extschema@.vector_to_float4(@extschema@.vector, integer, boolean),
    @extschema@.l2_distance(@extschema@.vector, @extschema@.vector),
    @extschema@.inner_product(@extschema@.vector, @extschema@.vector),
    @extschema@.vector_negative_inner_product(@extschema@.vector, @extschema@.vector),
    @extschema@.cosine_distance(@extschema@.vector, @extschema@.vector),
    @extschema@.l1_distance(@extschema@.vector, @extschema@.vector),
    @extschema@.vector_dims(@extschema@.vector),
    @extschema@.l2_norm(@extschema@.vector),
    @extschema@.l2_normalize(@extschema@.vector),
    @extschema@.vector_norm(@extschema@.vector),
    @extschema@.binary_quantize(@extschema@.vector),
    @extschema@.subvector(@extschema@.vector, integer, integer),
    @extschema@.vector_add(@extschema@.vector, @extschema@.vector),
    @extschema@.vector_sub(@extschema@.vector, @extschema@.vector),
    @extschema@.vector_mul(@extschema@.vector, @extschema@.vector),
    @extschema@.vector_concat(@extschema@.vector, @extschema@.vector),
    @extschema@.vector_accum(double precision[], @extschema@.vector),
    @extschema@.vector_combine(double precision[], double precision[]),
    @extschema@.vector_avg(double precision[]),
    @extschema@.avg(@extschema@.vector),
    @extschema@.sum(@extschema@.vector),
    @extschema@.vector_cmp(@extschema@.vector, @extschema@.vector),
    @extschema@.vector_lt(@extschema@.vector, @extschema@.vector),
    @extschema@.vector_le(@extschema@.vector, @extschema@.vector),
    @extschema@.vector_eq(@extschema@.vector, @extschema@.vector),
    @extschema@.vector_ne(@extschema@.vector, @extschema@.vector),
    @extschema@.vector_ge(@extschema@.vector, @extschema@.vector),
    @extschema@.vector_gt(@extschema@.vector, @extschema@.vector)
TO PUBLIC;
