-- Runs first in CREATE EXTENSION sealstore: the extension's own tables.
-- Nothing here is readable by sealstore_app or sealstore_admin directly; the functions read and
-- write these tables as the extension's owner, with bind parameters only.

-- One row per tenant, kept after shredding (shredded_at set) so ids are never reused.
CREATE TABLE @extschema@.tenants (
    id             uuid PRIMARY KEY,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    algorithm      text NOT NULL CHECK (algorithm IN ('xchacha20-poly1305', 'aes-256-gcm')),
    active_version integer NOT NULL DEFAULT 1 CHECK (active_version >= 1),
    created_at     timestamptz NOT NULL DEFAULT now(),
    shredded_at    timestamptz
);

-- Data keys, only ever stored wrapped under the master key (bound to tenant, version and
-- algorithm). master_fingerprint names the master key that wrapped each one.
CREATE TABLE @extschema@.tenant_keys (
    tenant_id          uuid NOT NULL REFERENCES @extschema@.tenants (id),
    version            integer NOT NULL CHECK (version >= 1),
    wrapped            bytea NOT NULL,
    master_fingerprint text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, version)
);

-- Secrets, encrypted with the tenant's data key; the context binds each to its name.
CREATE TABLE @extschema@.secrets (
    tenant_id  uuid NOT NULL REFERENCES @extschema@.tenants (id),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    value      bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);

-- Append-only record of key lifecycle events: who (the login role), what, when.
CREATE TABLE @extschema@.audit_log (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    actor     text NOT NULL DEFAULT session_user,
    action    text NOT NULL,
    tenant_id uuid,
    detail    jsonb NOT NULL DEFAULT '{}'
);

-- Keys that verify JWTs, selected by the token's kid; each allows exactly one algorithm.
-- HS256 secrets are stored sealed under the master key (master_fingerprint names it); public
-- keys are stored as PEM. A retired kid is never accepted again and cannot be reused.
-- for_tenant: the only tenant the key's tokens may name (NULL: any); admin: whether they may
-- carry scope admin.
CREATE TABLE @extschema@.jwt_keys (
    kid                text PRIMARY KEY CHECK (length(kid) BETWEEN 1 AND 200),
    algorithm          text NOT NULL CHECK (algorithm IN ('HS256', 'RS256', 'ES256', 'EdDSA')),
    material           bytea,
    master_fingerprint text,
    for_tenant         uuid REFERENCES @extschema@.tenants (id),
    admin              boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now(),
    retired_at         timestamptz,
    CHECK ((retired_at IS NULL) = (material IS NOT NULL)),
    CHECK ((algorithm = 'HS256' AND material IS NOT NULL) = (master_fingerprint IS NOT NULL))
);

-- API keys: the id is public (it finds the row), the secret is stored only as an HMAC under a
-- key derived from the tenant's first data key, so shredding the tenant voids its API keys.
-- last_used_at is recorded at most once an hour per key and backend.
CREATE TABLE @extschema@.api_keys (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES @extschema@.tenants (id),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    scopes       text[] NOT NULL,
    tag          bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    last_used_at timestamptz
);
CREATE INDEX ON @extschema@.api_keys (tenant_id);

-- Revoked JWTs by their jti, kept until the token would have expired anyway (plus the most
-- clock-skew leeway), then purged by the next revocation.
CREATE TABLE @extschema@.revoked_tokens (
    jti        text PRIMARY KEY CHECK (octet_length(jti) BETWEEN 1 AND 256),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz NOT NULL DEFAULT now()
);

-- pg_dump includes the rows of extension tables only when told to.
SELECT pg_catalog.pg_extension_config_dump('@extschema@.tenants', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.tenant_keys', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.secrets', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.jwt_keys', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.api_keys', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.revoked_tokens', '');
-- ... and the identity's sequence, or a restored database would hand out audit ids again.
SELECT pg_catalog.pg_extension_config_dump(
    pg_catalog.pg_get_serial_sequence('@extschema@.audit_log', 'id'), '');

REVOKE ALL ON ALL TABLES IN SCHEMA @extschema@ FROM PUBLIC;
