-- hnsw: the approximate index (see storage/hnsw/mod.rs and docs/sql.md, "The hnsw index"),
-- with pgvector's operator class names, and one graph per value of a leading key column.
CREATE FUNCTION @extschema@.hnsw_handler(internal) RETURNS index_am_handler
    AS 'MODULE_PATHNAME', 'sealstore_hnsw_handler' LANGUAGE C STRICT;

CREATE ACCESS METHOD hnsw TYPE INDEX HANDLER @extschema@.hnsw_handler;
COMMENT ON ACCESS METHOD hnsw IS 'approximate nearest-neighbour search over a vector column, one graph per key value';

-- One distance per operator class; its strategy number tells the index which (as flat's).
CREATE OPERATOR CLASS @extschema@.vector_l2_ops
    DEFAULT FOR TYPE @extschema@.vector USING hnsw AS
        OPERATOR 1 @extschema@.<-> (@extschema@.vector, @extschema@.vector) FOR ORDER BY pg_catalog.float_ops;
CREATE OPERATOR CLASS @extschema@.vector_ip_ops
    FOR TYPE @extschema@.vector USING hnsw AS
        OPERATOR 2 @extschema@.<#> (@extschema@.vector, @extschema@.vector) FOR ORDER BY pg_catalog.float_ops;
CREATE OPERATOR CLASS @extschema@.vector_cosine_ops
    FOR TYPE @extschema@.vector USING hnsw AS
        OPERATOR 3 @extschema@.<=> (@extschema@.vector, @extschema@.vector) FOR ORDER BY pg_catalog.float_ops;
CREATE OPERATOR CLASS @extschema@.vector_l1_ops
    FOR TYPE @extschema@.vector USING hnsw AS
        OPERATOR 4 @extschema@.<+> (@extschema@.vector, @extschema@.vector) FOR ORDER BY pg_catalog.float_ops;

-- The key column: a graph per value, found by equality.
CREATE OPERATOR CLASS @extschema@.uuid_hnsw_ops
    DEFAULT FOR TYPE pg_catalog.uuid USING hnsw AS
        OPERATOR 1 pg_catalog.= (pg_catalog.uuid, pg_catalog.uuid);
-- Integer keys: one family, so that `key = $1` is a key condition whatever integer type a client
-- binds (psycopg sends a small int as int2, a large one as int8).
CREATE OPERATOR FAMILY @extschema@.integer_hnsw_ops USING hnsw;
CREATE OPERATOR CLASS @extschema@.int4_hnsw_ops
    DEFAULT FOR TYPE pg_catalog.int4 USING hnsw FAMILY @extschema@.integer_hnsw_ops AS
        OPERATOR 1 pg_catalog.= (pg_catalog.int4, pg_catalog.int4);
CREATE OPERATOR CLASS @extschema@.int8_hnsw_ops
    DEFAULT FOR TYPE pg_catalog.int8 USING hnsw FAMILY @extschema@.integer_hnsw_ops AS
        OPERATOR 1 pg_catalog.= (pg_catalog.int8, pg_catalog.int8);
ALTER OPERATOR FAMILY @extschema@.integer_hnsw_ops USING hnsw ADD
    OPERATOR 1 pg_catalog.= (pg_catalog.int4, pg_catalog.int2),
    OPERATOR 1 pg_catalog.= (pg_catalog.int4, pg_catalog.int8),
    OPERATOR 1 pg_catalog.= (pg_catalog.int8, pg_catalog.int2),
    OPERATOR 1 pg_catalog.= (pg_catalog.int8, pg_catalog.int4);

-- search()'s graphs: one per collection over sealstore.documents, each with its collection's
-- distance and dimensions (kept in the graph's directory entry), so these operator classes
-- name no operator: no query orders by them, search() walks the graphs itself. The sealed one
-- opens each encrypted embedding with its tenant's key (the tenant and the document id, which
-- the envelope is bound to, are its INCLUDE columns) and keeps its graph sealed with that key.
CREATE OPERATOR CLASS @extschema@.collection_vector_ops
    FOR TYPE @extschema@.vector USING hnsw AS STORAGE @extschema@.vector;
CREATE OPERATOR CLASS @extschema@.collection_sealed_ops
    FOR TYPE bytea USING hnsw AS STORAGE bytea;
CREATE INDEX documents_graph ON @extschema@.documents
    USING hnsw (collection_id, embedding @extschema@.collection_vector_ops);
CREATE INDEX documents_sealed_graph ON @extschema@.documents
    USING hnsw (collection_id, sealed_embedding @extschema@.collection_sealed_ops)
    INCLUDE (tenant_id, id);
