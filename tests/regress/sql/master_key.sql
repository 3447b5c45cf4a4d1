-- The master key was loaded from sealstore.master_key_file at server start; its fingerprint
-- is compared with one the test script computed independently (HKDF in Python) and left in
-- the data directory.
SELECT sealstore.master_key_fingerprint() ~ '^[0-9a-f]{32}$' AS well_formed;
SELECT sealstore.master_key_fingerprint()
       = btrim(pg_read_file('sealstore_expected_fingerprint'), E' \n') AS matches_independent_hkdf;
SELECT current_setting('sealstore.master_key_file') LIKE '%/master.key' AS file_setting,
       current_setting('sealstore.master_key_command') = '' AS no_command;
SELECT name, context, source FROM pg_settings WHERE name LIKE 'sealstore.%' ORDER BY name;
-- Loaded once at start: the settings cannot change while the server runs.
SET sealstore.master_key_file = '/tmp/other.key';
ALTER SYSTEM SET sealstore.master_key_command = 'echo hello';
SELECT pg_reload_conf() IS NOT NULL AS reloaded;
SELECT current_setting('sealstore.master_key_command') = '' AS still_no_command;
ALTER SYSTEM RESET sealstore.master_key_command;
-- The prefix is reserved: a misspelt setting is an error, not a silent placeholder.
SET sealstore.master_keyfile = '/tmp/x';
