-- sealstore.version(): the library's version, the same one CREATE EXTENSION installed.
SELECT sealstore.version() = (SELECT extversion FROM pg_extension WHERE extname = 'sealstore')
    AS matches_extension;
SELECT provolatile, proparallel, prosecdef
FROM pg_proc WHERE oid = 'sealstore.version()'::regprocedure;
