-- Casts, operators and the btree operator class of the vector type.

-- vector(n) columns check their dimensions on every assignment through this coercion.
CREATE CAST (@extschema@.vector AS @extschema@.vector)
    WITH FUNCTION @extschema@.vector(@extschema@.vector, integer, boolean) AS IMPLICIT;

CREATE CAST (real[] AS @extschema@.vector)
    WITH FUNCTION @extschema@.array_to_vector(real[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (double precision[] AS @extschema@.vector)
    WITH FUNCTION @extschema@.array_to_vector(double precision[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (integer[] AS @extschema@.vector)
    WITH FUNCTION @extschema@.array_to_vector(integer[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (numeric[] AS @extschema@.vector)
    WITH FUNCTION @extschema@.array_to_vector(numeric[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (@extschema@.vector AS real[])
    WITH FUNCTION @extschema@.vector_to_float4(@extschema@.vector, integer, boolean) AS IMPLICIT;

-- Distances. Each is also a plain function (l2_distance, ...); ORDER BY <op> LIMIT k is an
-- exact search with a bounded top-k sort.
CREATE OPERATOR @extschema@.<-> (
    LEFTARG = @extschema@.vector, RIGHTARG = @extschema@.vector,
    FUNCTION = @extschema@.l2_distance, COMMUTATOR = OPERATOR(@extschema@.<->)
);
CREATE OPERATOR @extschema@.<=> (
    LEFTARG = @extschema@.vector, RIGHTARG = @extschema@.vector,
    FUNCTION = @extschema@.cosine_distance, COMMUTATOR = OPERATOR(@extschema@.<=>)
);
CREATE OPERATOR @extschema@.<#> (
    LEFTARG = @extschema@.vector, RIGHTARG = @extschema@.vector,
    FUNCTION = @extschema@.vector_negative_inner_product, COMMUTATOR = OPERATOR(@extschema@.<#>)
);
CREATE OPERATOR @extschema@.<+> (
    LEFTARG = @extschema@.vector, RIGHTARG = @extschema@.vector,
    FUNCTION = @extschema@.l1_distance, COMMUTATOR = OPERATOR(@extschema@.<+>)
);

-- Arithmetic and concatenation, element by element (pgvector's): without `||` here, `v || w`
-- would resolve to text concatenation and return a string.
CREATE OPERATOR @extschema@.+ (
    LEFTARG = @extschema@.vector, RIGHTARG = @extschema@.vector,
    FUNCTION = @extschema@.vector_add, COMMUTATOR = OPERATOR(@extschema@.+)
);
CREATE OPERATOR @extschema@.- (
    LEFTARG = @extschema@.vector, RIGHTARG = @extschema@.vector, FUNCTION = @extschema@.vector_sub
);
CREATE OPERATOR @extschema@.* (
    LEFTARG = @extschema@.vector, RIGHTARG = @extschema@.vector,
    FUNCTION = @extschema@.vector_mul, COMMUTATOR = OPERATOR(@extschema@.*)
);
CREATE OPERATOR @extschema@.|| (
    LEFTARG = @extschema@.vector, RIGHTARG = @extschema@.vector, FUNCTION = @extschema@.vector_concat
);

-- avg and sum, with partial states that parallel workers combine (pgvector's).
CREATE AGGREGATE @extschema@.avg(@extschema@.vector) (
    SFUNC = @extschema@.vector_accum,
    STYPE = double precision[],
    FINALFUNC = @extschema@.vector_avg,
    COMBINEFUNC = @extschema@.vector_combine,
    INITCOND = '{0}',
    PARALLEL = SAFE
);
CREATE AGGREGATE @extschema@.sum(@extschema@.vector) (
    SFUNC = @extschema@.vector_add,
    STYPE = @extschema@.vector,
    COMBINEFUNC = @extschema@.vector_add,
    PARALLEL = SAFE
);

-- Comparison (pgvector's order: element by element, then shorter first), so vectors can be
-- sorted, grouped, made DISTINCT or UNIQUE, and indexed with btree.
CREATE OPERATOR @extschema@.< (
    LEFTARG = @extschema@.vector, RIGHTARG = @extschema@.vector, FUNCTION = @extschema@.vector_lt,
    COMMUTATOR = OPERATOR(@extschema@.>), NEGATOR = OPERATOR(@extschema@.>=),
    RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
CREATE OPERATOR @extschema@.<= (
    LEFTARG = @extschema@.vector, RIGHTARG = @extschema@.vector, FUNCTION = @extschema@.vector_le,
    COMMUTATOR = OPERATOR(@extschema@.>=), NEGATOR = OPERATOR(@extschema@.>),
    RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
CREATE OPERATOR @extschema@.= (
    LEFTARG = @extschema@.vector, RIGHTARG = @extschema@.vector, FUNCTION = @extschema@.vector_eq,
    COMMUTATOR = OPERATOR(@extschema@.=), NEGATOR = OPERATOR(@extschema@.<>),
    RESTRICT = eqsel, JOIN = eqjoinsel
);
CREATE OPERATOR @extschema@.<> (
    LEFTARG = @extschema@.vector, RIGHTARG = @extschema@.vector, FUNCTION = @extschema@.vector_ne,
    COMMUTATOR = OPERATOR(@extschema@.<>), NEGATOR = OPERATOR(@extschema@.=),
    RESTRICT = neqsel, JOIN = neqjoinsel
);
CREATE OPERATOR @extschema@.>= (
    LEFTARG = @extschema@.vector, RIGHTARG = @extschema@.vector, FUNCTION = @extschema@.vector_ge,
    COMMUTATOR = OPERATOR(@extschema@.<=), NEGATOR = OPERATOR(@extschema@.<),
    RESTRICT = scalargesel, JOIN = scalargejoinsel
);
CREATE OPERATOR @extschema@.> (
    LEFTARG = @extschema@.vector, RIGHTARG = @extschema@.vector, FUNCTION = @extschema@.vector_gt,
    COMMUTATOR = OPERATOR(@extschema@.<), NEGATOR = OPERATOR(@extschema@.<=),
    RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);

CREATE OPERATOR CLASS @extschema@.vector_ops
    DEFAULT FOR TYPE @extschema@.vector USING btree AS
        OPERATOR 1 @extschema@.<,
        OPERATOR 2 @extschema@.<=,
        OPERATOR 3 @extschema@.=,
        OPERATOR 4 @extschema@.>=,
        OPERATOR 5 @extschema@.>,
        FUNCTION 1 @extschema@.vector_cmp(@extschema@.vector, @extschema@.vector);
