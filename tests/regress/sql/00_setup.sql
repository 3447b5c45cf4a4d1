-- Shared setup for every regression file: the extension in a fresh database.
CREATE EXTENSION sealstore;
SELECT extname, extversion ~ '^\d+\.\d+\.\d+$' AS semver, nspname
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE extname = 'sealstore';
