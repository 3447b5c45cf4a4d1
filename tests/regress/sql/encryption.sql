-- Envelope encryption for the current tenant: round trips, binding, rotation, and clean
-- SQLSTATEs for every kind of bad ciphertext. Keys and nonces are random, so only properties
-- (never bytes) are printed.
\set VERBOSITY sqlstate
CREATE TEMP TABLE t AS
SELECT sealstore.create_tenant('regress-x') AS x,
       sealstore.create_tenant('regress-a', 'aes-256-gcm') AS a;
SELECT sealstore.create_tenant('bad', 'rot13');
SELECT sealstore.create_tenant('');
-- No context: fails closed.
SELECT sealstore.encrypt('\x00'::bytea);
SELECT sealstore.current_tenant();
-- Round trips and envelope sizes: header 6 + nonce (24 or 12) + plaintext + tag 16.
BEGIN;
SELECT sealstore.act_as_tenant(x) FROM t;
SELECT sealstore.current_tenant() = x AS acting_as_x FROM t;
SELECT n, length(sealstore.encrypt(convert_to(repeat('a', n), 'UTF8'), 'c')) AS envelope_bytes,
       sealstore.decrypt(sealstore.encrypt(convert_to(repeat('a', n), 'UTF8'), 'c'), 'c')
         = convert_to(repeat('a', n), 'UTF8') AS round_trip
FROM unnest(ARRAY[0, 1, 64, 1024, 16384]) AS n ORDER BY n;
SELECT sealstore.decrypt_text(sealstore.encrypt_text('grüße', 'note'), 'note') AS text_round_trip;
SELECT sealstore.encrypt_text('x', 'c') <> sealstore.encrypt_text('x', 'c') AS randomized;
SELECT sealstore.encrypt(NULL) IS NULL AS strict_null;
\set VERBOSITY default
-- Every single-bit flip of a 5-byte value's envelope (51 bytes), counted by SQLSTATE:
-- byte 0 (format) and 1 (algorithm) 22P03, bytes 2-5 (key version) 42704, the rest XX001.
DO $$
DECLARE
    env bytea := sealstore.encrypt('\x0102030405'::bytea, 'ctx');
    codes text[] := '{}';
BEGIN
    FOR i IN 0 .. length(env) * 8 - 1 LOOP
        BEGIN
            PERFORM sealstore.decrypt(set_bit(env, i, 1 - get_bit(env, i)), 'ctx');
            codes := codes || 'decrypted!'::text;
        EXCEPTION WHEN OTHERS THEN
            codes := codes || SQLSTATE::text;
        END;
    END LOOP;
    RAISE NOTICE 'flips: %', (SELECT string_agg(c || '=' || n, ', ' ORDER BY c)
                              FROM (SELECT c, count(*) AS n FROM unnest(codes) c GROUP BY c) s);
END $$;
-- Truncated, extended, foreign and wrong-context envelopes. ON_ERROR_ROLLBACK wraps each
-- statement in a savepoint, so one error does not abort the block (nor clear the context).
\set ON_ERROR_ROLLBACK on
CREATE TEMP TABLE env AS SELECT sealstore.encrypt('\xdeadbeef'::bytea, 'users.ssn:1') AS e;
\set VERBOSITY sqlstate
SELECT sealstore.decrypt(substr(e, 1, 5), 'users.ssn:1') FROM env;
SELECT sealstore.decrypt(substr(e, 1, length(e) - 1), 'users.ssn:1') FROM env;
SELECT sealstore.decrypt(e || '\x00'::bytea, 'users.ssn:1') FROM env;
SELECT sealstore.decrypt('\x'::bytea);
SELECT sealstore.decrypt('not an envelope at all, just some bytes'::bytea);
SELECT sealstore.decrypt(e, 'users.ssn:2') FROM env;
SELECT sealstore.decrypt(e) FROM env;
SELECT sealstore.decrypt_text(sealstore.encrypt('\xff'::bytea));
-- Another tenant's ciphertext.
SELECT sealstore.act_as_tenant(a) FROM t;
SELECT sealstore.decrypt(e, 'users.ssn:1') FROM env;
\set VERBOSITY default
SELECT length(sealstore.encrypt('\x01'::bytea)) AS aes_envelope_bytes;
COMMIT;
\set ON_ERROR_ROLLBACK off
-- The context ended with the transaction.
\set VERBOSITY sqlstate
SELECT sealstore.current_tenant();
\set VERBOSITY default
-- Rotation: new writes use the new version, old values still decrypt, reencrypt moves them.
BEGIN;
SELECT sealstore.act_as_tenant(x) FROM t;
CREATE TEMP TABLE v1 AS SELECT sealstore.encrypt_text('before rotation', 'r') AS e;
SELECT sealstore.rotate_tenant_key(x) AS new_version FROM t;
SELECT sealstore.envelope_key_version(e) AS old_version,
       sealstore.envelope_key_version(sealstore.encrypt_text('after', 'r')) AS new_writes,
       sealstore.decrypt_text(e, 'r') AS old_still_decrypts,
       sealstore.envelope_key_version(sealstore.reencrypt(e, 'r')) AS reencrypted_version,
       sealstore.decrypt_text(sealstore.reencrypt(e, 'r'), 'r') AS reencrypted_value
FROM v1;
SELECT version, active, master_fingerprint = sealstore.master_key_fingerprint() AS current_master
FROM t, sealstore.key_versions(t.x) ORDER BY version;
-- Blind index: 32 bytes, deterministic, separated by context.
SELECT length(sealstore.blind_index('a@x.org', 'email')) AS index_bytes,
       sealstore.blind_index('a@x.org', 'email') = sealstore.blind_index('a@x.org', 'email') AS deterministic,
       sealstore.blind_index('a@x.org', 'email') <> sealstore.blind_index('a@x.org', 'login') AS per_context;
COMMIT;
-- Shredding: keys and secrets gone, the tenant can no longer be used; audited.
BEGIN;
SELECT sealstore.act_as_tenant(x) FROM t;
SELECT sealstore.put_secret('stripe', 'rk_live_123');
COMMIT;
SELECT sealstore.shred_tenant(x) FROM t;
SELECT sealstore.shred_tenant(x) FROM t;  -- a second time does nothing
\set VERBOSITY sqlstate
SELECT sealstore.act_as_tenant(x) FROM t;
SELECT sealstore.rotate_tenant_key(x) FROM t;
SELECT sealstore.shred_tenant('00000000-0000-4000-8000-000000000000');
\set VERBOSITY default
SELECT (SELECT count(*) FROM sealstore.tenant_keys k WHERE k.tenant_id = t.x) AS keys_left,
       (SELECT count(*) FROM sealstore.secrets s WHERE s.tenant_id = t.x) AS secrets_left
FROM t;
SELECT action, actor = session_user AS by_login_role, detail
FROM sealstore.audit_log, t WHERE tenant_id = t.x ORDER BY id;
-- An unknown tenant is 42704, not an internal error.
\set VERBOSITY sqlstate
SELECT sealstore.act_as_tenant('00000000-0000-4000-8000-000000000000');
\set VERBOSITY default
