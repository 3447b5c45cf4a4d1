-- The vector type: pgvector's text and binary forms, type modifiers, casts, distances and
-- operators, and clean errors for every malformed input.
SET search_path = sealstore, public;

-- Text in and out; output is PostgreSQL's shortest float4 form and reads back bit for bit.
SELECT '[1,2,3]'::vector, ' [ 1 , -2.5 ,3e-2 ] '::vector, '[1e-5,1e6,-0,0.1]'::vector;
SELECT v::text::vector = v AS round_trips
FROM (VALUES ('[0.33333334,1.234567e+06,3.4028235e+38,-1.1754944e-38,1e-45]'::vector)) t(v);

-- Errors (SQLSTATEs: 22P02 syntax, 22000 value, 22003 range, 54000 limit).
\set VERBOSITY sqlstate
SELECT '[1,2'::vector;
SELECT '1,2'::vector;
SELECT '[1,,2]'::vector;
SELECT '[1,2] x'::vector;
SELECT '[a]'::vector;
SELECT '[]'::vector;
SELECT '[NaN]'::vector;
SELECT '[Infinity]'::vector;
SELECT '[1e39]'::vector;
SELECT ('[' || repeat('1,', 16000) || '1]')::vector;
SELECT vector_dims(('[' || repeat('1,', 15999) || '1]')::vector);
\set VERBOSITY default

-- Type modifiers: checked on input, on assignment and on casts.
CREATE TEMP TABLE items (id int PRIMARY KEY, v vector(3));
INSERT INTO items VALUES (1, '[1,2,3]'), (2, '[3,2,1]'), (3, '[0,0,1]'), (4, '[-1,0.5,2]');
\set VERBOSITY sqlstate
INSERT INTO items VALUES (5, '[1,2]');
INSERT INTO items SELECT 6, '[1,2,3,4]'::vector;
SELECT '[1,2]'::vector(3);
CREATE TEMP TABLE bad (v vector(0));
CREATE TEMP TABLE bad (v vector(16001));
CREATE TEMP TABLE bad (v vector(3, 4));
\set VERBOSITY default
SELECT format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 'items'::regclass AND attname = 'v';

-- Casts to and from arrays.
SELECT ARRAY[1, 2.5, -3]::real[]::vector, ARRAY[1, 2]::int[]::vector, ARRAY[0.5]::float8[]::vector;
SELECT '[1,2.5]'::vector::real[];
INSERT INTO items VALUES (7, ARRAY[7, 7, 7]::real[]);
\set VERBOSITY sqlstate
SELECT ARRAY[1, NULL]::real[]::vector;
SELECT ARRAY[1e300]::float8[]::vector;
SELECT ARRAY[]::real[]::vector;
SELECT ARRAY['NaN']::real[]::vector;
\set VERBOSITY default

-- Distances follow pgvector's definitions; each operator is its function.
SELECT l2_distance('[1,2,3]', '[4,5,6]'), '[1,2,3]'::vector <-> '[4,5,6]' AS l2_op,
       inner_product('[1,2,3]', '[4,5,6]'), '[1,2,3]'::vector <#> '[4,5,6]' AS neg_ip_op,
       round(cosine_distance('[1,2,3]', '[4,5,6]')::numeric, 12) AS cosine,
       round(('[1,2,3]'::vector <=> '[4,5,6]')::numeric, 12) AS cosine_op,
       l1_distance('[1,2,3]', '[4,5,6]'), '[1,2,3]'::vector <+> '[4,5,6]' AS l1_op;
SELECT cosine_distance('[1,0]', '[0,1]') AS orthogonal, cosine_distance('[1,1]', '[-2,-2]') AS opposite,
       cosine_distance('[0,0]', '[1,1]') AS zero_vector;
SELECT vector_dims('[1,2,3]'), l2_norm('[3,4]'), l2_normalize('[3,4]'), l2_normalize('[0,0]');
\set VERBOSITY sqlstate
SELECT '[1,2]'::vector <-> '[1,2,3]';
\set VERBOSITY default

-- Exact nearest neighbours: ORDER BY distance LIMIT k, for each operator.
SELECT id FROM items ORDER BY v <-> '[1,1,1]', id LIMIT 2;
SELECT id FROM items ORDER BY v <=> '[1,1,1]', id LIMIT 2;
SELECT id FROM items ORDER BY v <#> '[1,1,1]', id LIMIT 2;
SELECT id FROM items ORDER BY v <+> '[1,1,1]', id LIMIT 2;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v <-> '[1,1,1]' LIMIT 2;

-- Comparison and the btree operator class: ORDER BY v, DISTINCT, UNIQUE.
SELECT v FROM items ORDER BY v;
SELECT '[1,2]'::vector < '[1,2,0]', '[1,2]'::vector = '[1,2]', '[2]'::vector > '[1,9]';
SELECT count(DISTINCT v) FROM (VALUES ('[1,2]'::vector), ('[1,2]'), ('[2,1]')) t(v);
CREATE UNIQUE INDEX ON items (v);
\set VERBOSITY sqlstate
INSERT INTO items VALUES (8, '[1,2,3]');
\set VERBOSITY default

-- Binary form: pgvector's (int16 dims, int16 0, big-endian float4s), and back.
SELECT vector_send('[1,-2]');

-- A pgvector column's dump, with only the type name changed (public.vector -> sealstore.vector),
-- loads, and prints back exactly as it was dumped.
CREATE TABLE public.pgv_items (
    id bigint NOT NULL,
    embedding sealstore.vector(3)
);
COPY public.pgv_items (id, embedding) FROM stdin;
1	[1,2,3]
2	[-0.5,1e-05,3.4028235e+38]
3	[0.33333334,1.234567e+06,-0]
4	[100000,0.0001,-1.5e-07]
\.
COPY public.pgv_items TO stdout;
DROP TABLE public.pgv_items;

-- The type keeps vectors in the row (STORAGE main): no TOAST fetch per row in a scan.
SELECT typstorage, typalign FROM pg_type WHERE oid = 'sealstore.vector'::regtype;
CREATE TEMP TABLE wide (v vector(768));
INSERT INTO wide SELECT array_agg(((i * 7919 + j) % 1000) / 1000.0 - 0.5)::real[]::vector
FROM generate_series(1, 20) i, generate_series(1, 768) j GROUP BY i;
SELECT count(*) AS rows, count(pg_column_compression(v)) AS compressed,
       pg_relation_size(reltoastrelid) AS toast_bytes
FROM wide, pg_class WHERE pg_class.oid = 'wide'::regclass GROUP BY reltoastrelid;
