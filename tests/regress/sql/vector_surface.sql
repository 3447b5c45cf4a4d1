-- pgvector's vector surface beyond the type and its distances: arithmetic, concatenation,
-- norm, subvector, avg and sum (also in parallel), the numeric[] cast, and pgvector's errors
-- where input is bad (issue 23). Each result here is pgvector 0.8.6's for the same input.
SET search_path = public, sealstore;

SELECT '[1,2,3]'::vector + '[4,5,6]' AS add, '[1,2,3]'::vector - '[4,5,6]' AS sub,
       '[1,2,3]'::vector * '[4,5,6]' AS mul;
-- Concatenation is a vector, not the text '[1,2,3][4,5]'.
SELECT '[1,2,3]'::vector || '[4,5]' AS concat, pg_typeof('[1,2,3]'::vector || '[4,5]');
SELECT binary_quantize('[1,-1,0,2,0.5,-3,7,8,9,-0.1]'), binary_quantize('[0]'),
       length(binary_quantize(array_fill(1, ARRAY[1000])::vector));
SELECT vector_norm('[3,4]'), subvector('[1,2,3,4,5]', 2, 3), subvector('[1,2,3,4,5]', 4, 10),
       subvector('[1,2,3,4,5]', -1, 3);
\set VERBOSITY sqlstate
SELECT '[1,2]'::vector + '[1,2,3]';
SELECT '[3e38]'::vector + '[3e38]';
SELECT '[1e-30]'::vector * '[1e-30]';
SELECT subvector('[1,2,3]', 4, 1);
SELECT subvector('[1,2,3]', 1, 0);
SELECT array_fill(1, ARRAY[8000])::vector || array_fill(1, ARRAY[8001])::vector;
\set VERBOSITY default

-- avg and sum, with NULLs skipped and no rows giving NULL; in parallel the partial states of the
-- workers combine to the same answer.
CREATE TABLE agg (id int, v vector(3));
INSERT INTO agg SELECT i, ARRAY[i % 7, 1, -(i % 3) * 0.5]::real[]::vector FROM generate_series(1, 10000) i;
INSERT INTO agg VALUES (0, NULL);
SELECT avg(v), sum(v) FROM agg;
SELECT avg(v), sum(v) FROM agg WHERE id < 0;
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT avg(v) FROM agg;
SELECT avg(v), sum(v) FROM agg;
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
\set VERBOSITY sqlstate
SELECT avg(v) FROM (VALUES ('[1,2]'::vector), ('[1,2,3]')) t(v);
\set VERBOSITY default
DROP TABLE agg;

-- Casts from arrays: numeric[] too; a multi-dimensional array is refused, not flattened; an
-- element beyond real's range is infinite, and refused as such.
SELECT '{1.5,2.25,-3}'::numeric[]::vector, '{1,2}'::int[]::vector, '{0.5}'::float8[]::vector;
\set VERBOSITY sqlstate
SELECT '{{1,2},{3,4}}'::real[]::vector;
SELECT '{{1,2},{3,4}}'::int[]::vector;
SELECT '{{1,2},{3,4}}'::float8[]::vector;
SELECT '{{1,2},{3,4}}'::numeric[]::vector;
SELECT '{1e300}'::float8[]::vector;
SELECT '{1e300}'::numeric[]::vector;
SELECT '{1,NULL}'::numeric[]::vector;
-- A type modifier that is not an integer is PostgreSQL's own error; one out of range is
-- pgvector's.
SELECT '[1,2]'::vector(1.5);
SELECT '[1,2]'::vector(0);
\set VERBOSITY default

-- Text output is real's: the shortest form that reads back, a tie between two taking the even
-- digit (as Ryu, PostgreSQL and pgvector do), so a text dump is byte for byte pgvector's.
SELECT '[343126.125,-343126.125]'::vector, 343126.125::real;
SELECT setseed(0.23);
SELECT count(*) FILTER (WHERE ('[' || x::text || ']')::vector::text <> '[' || x::text || ']') AS differ,
       count(*) AS checked
FROM (SELECT (exp(random() * 160 - 80) * (random() - 0.5))::real AS x
      FROM generate_series(1, 200000)) s
WHERE x <> 0;
