-- The secrets store: per tenant, encrypted at rest, names bound into the ciphertext.
\set VERBOSITY sqlstate
\set ON_ERROR_ROLLBACK on
CREATE TEMP TABLE st AS
SELECT sealstore.create_tenant('secrets-1') AS one, sealstore.create_tenant('secrets-2') AS two;
BEGIN;
SELECT sealstore.act_as_tenant(one) FROM st;
SELECT sealstore.put_secret('openai', 'sk-one');
SELECT sealstore.put_secret('openai', 'sk-one-v2');
SELECT sealstore.get_secret('openai');
SELECT sealstore.get_secret('missing');
SELECT sealstore.put_secret('', 'x');
SELECT sealstore.put_secret(repeat('n', 201), 'x');
SELECT sealstore.put_secret(E'bad\nname', 'x');
COMMIT;
BEGIN;
SELECT sealstore.act_as_tenant(two) FROM st;
SELECT sealstore.get_secret('openai');
SELECT sealstore.delete_secret('openai');
SELECT sealstore.put_secret('openai', 'sk-two');
SELECT sealstore.get_secret('openai');
COMMIT;
\set VERBOSITY default
-- Stored values are envelopes, not plaintext, and each tenant has its own row.
SELECT count(*) AS rows, bool_and(position('\x736b2d'::bytea in value) = 0) AS no_plaintext_prefix,
       bool_and(sealstore.envelope_key_version(value) = 1) AS envelopes
FROM sealstore.secrets s JOIN st ON s.tenant_id IN (st.one, st.two);
-- A secret moved to another name no longer decrypts (the name is in the associated data).
BEGIN;
SELECT sealstore.act_as_tenant(two) FROM st;
UPDATE sealstore.secrets SET name = 'anthropic' FROM st WHERE tenant_id = st.two AND name = 'openai';
\set VERBOSITY sqlstate
SELECT sealstore.get_secret('anthropic');
\set VERBOSITY default
ROLLBACK;
