-- flat: an exact index for ORDER BY <distance> LIMIT k over a vector column (see flat.rs and
-- docs/sql.md, "The flat index"). It stores nothing; a scan scores the table's rows
-- where they lie and returns them nearest first, exactly as a sequential scan and a sort would.
CREATE FUNCTION @extschema@.flat_handler(internal) RETURNS index_am_handler
    AS 'MODULE_PATHNAME', 'flat_handler' LANGUAGE C STRICT;

CREATE ACCESS METHOD flat TYPE INDEX HANDLER @extschema@.flat_handler;
COMMENT ON ACCESS METHOD flat IS 'exact nearest-neighbour search over a vector column';

-- One operator class for the four distances: the index holds no per-metric data.
CREATE OPERATOR CLASS @extschema@.vector_flat_ops
    DEFAULT FOR TYPE @extschema@.vector USING flat AS
        OPERATOR 1 @extschema@.<-> (@extschema@.vector, @extschema@.vector) FOR ORDER BY float_ops,
        OPERATOR 2 @extschema@.<#> (@extschema@.vector, @extschema@.vector) FOR ORDER BY float_ops,
        OPERATOR 3 @extschema@.<=> (@extschema@.vector, @extschema@.vector) FOR ORDER BY float_ops,
        OPERATOR 4 @extschema@.<+> (@extschema@.vector, @extschema@.vector) FOR ORDER BY float_ops;
