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

REVOKE ALL ON SCHEMA @extschema@ FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA @extschema@ FROM PUBLIC;
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
    @extschema@.blind_index(text, text),
    @extschema@.put_secret(text, text),
    @extschema@.get_secret(text),
    @extschema@.delete_secret(text)
TO sealstore_app, sealstore_admin;
