-- The vector type. Same layout, text and binary forms as pgvector, so a pgvector column's
-- dump loads after changing the type name. STORAGE main keeps values in the row (see
-- docs/performance.md, "Vector storage").
CREATE TYPE @extschema@.vector (
    INPUT     = @extschema@.vector_in,
    OUTPUT    = @extschema@.vector_out,
    TYPMOD_IN = @extschema@.vector_typmod_in,
    RECEIVE   = @extschema@.vector_recv,
    SEND      = @extschema@.vector_send,
    STORAGE   = main
);
