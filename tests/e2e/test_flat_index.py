"""The `flat` index access method: ORDER BY <distance> through the index must return exactly
what a sequential scan and a sort return (same rows, same distances, same order, NULLs last),
under every snapshot, for every operator, across the index's batches; and it must refuse the
definitions it cannot serve with a clean SQLSTATE."""
import contextlib
import random

import psycopg
import pytest

OPS = ["<->", "<#>", "<=>", "<+>"]
DIMS = 8
# More rows than the index's first batch (1,000), so that an unlimited or filtered scan takes
# several passes.
ROWS = 2500


def vec(v) -> str:
    return "[" + ",".join(repr(float(x)) for x in v) + "]"


def plan(conn, sql, params=()):
    return "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql, params).fetchall())


@contextlib.contextmanager
def planned(conn, sql, params, *, index: bool):
    """Within the block, `sql` runs through the flat index, or with index scans off; asserts
    which plan it gets."""
    conn.execute(f"SET enable_indexscan = {'on' if index else 'off'}")
    conn.execute(f"SET enable_seqscan = {'off' if index else 'on'}")
    shown = plan(conn, sql, params)
    # Only an index scan that orders by an operator shows "Order By:".
    assert ("Order By:" in shown) == index, shown
    yield
    conn.execute("RESET enable_indexscan")
    conn.execute("RESET enable_seqscan")


def ordered(conn, sql, params, *, index: bool):
    """The rows of `sql` through the flat index, or with index scans off."""
    with planned(conn, sql, params, index=index):
        return conn.execute(sql, params).fetchall()


def canon(rows):
    """What any correct answer to an ORDER BY distance query shares: the distances in order (the
    last column; NaN as a string, so that it equals itself), and the ids of each run of equal
    distances but the last, which a LIMIT may cut anywhere."""
    distances = ["nan" if r[-1] is not None and r[-1] != r[-1] else r[-1] for r in rows]
    runs, start = [], 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or distances[i] != distances[start]:
            runs.append(sorted(r[0] for r in rows[start:i]))
            start = i
    return distances, runs[:-1]


def same(conn, sql, params=()):
    """The flat index's answer agrees with the sequential scan's, and is returned."""
    through_index = ordered(conn, sql, params, index=True)
    sequential = ordered(conn, sql, params, index=False)
    assert canon(through_index) == canon(sequential)
    return through_index


def ids(rows):
    return {r[0] for r in rows}


@pytest.fixture
def db(admin_url):
    """A superuser connection with a table of vectors (random, duplicated, zero and NULL) and a
    flat index on it; dropped afterwards."""
    rng = random.Random(7)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SET search_path = public, sealstore")
        conn.execute("SET max_parallel_workers_per_gather = 0")
        conn.execute("SET jit = off")
        conn.execute("DROP TABLE IF EXISTS flat_items")
        conn.execute(
            "CREATE TABLE flat_items (id int PRIMARY KEY, note text, embedding vector(8))"
            " WITH (fillfactor = 50)")
        rows = []
        for i in range(ROWS):
            if i % 97 == 0:
                v = None
            elif i % 89 == 0:
                v = vec([0.0] * DIMS)  # cosine distance NaN: sorts after every number
            elif i % 10 == 3:
                v = rows[i - 1][2] or vec([1.0] * DIMS)  # ties
            else:
                v = vec([rng.uniform(-1, 1) for _ in range(DIMS)])
            rows.append((i, "n", v))
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO flat_items VALUES (%s, %s, %s)", rows)
        conn.execute("CREATE INDEX flat_items_embedding ON flat_items USING flat (embedding)")
        conn.execute("ANALYZE flat_items")
        yield conn
        conn.execute("DROP TABLE flat_items")


def query(rng):
    return vec([rng.uniform(-1, 1) for _ in range(DIMS)])


def index_and_compare(conn, table, rng, rows):
    """Fills `table` (id int, embedding vector(8)) with `rows` random vectors, puts a flat index
    on it, and checks a top 10 through it against the sequential scan."""
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {table} VALUES (%s, %s)",
                        [(i, query(rng)) for i in range(rows)])
    conn.execute(f"CREATE INDEX ON {table} USING flat (embedding)")
    conn.execute(f"ANALYZE {table}")
    q = query(rng)
    got = same(conn, f"SELECT id, embedding <=> %s FROM {table} ORDER BY embedding <=> %s"
                     " LIMIT 10", (q, q))
    assert len(got) == 10


@pytest.mark.parametrize("op", OPS)
def test_orders_exactly_as_a_sequential_scan(db, op):
    rng = random.Random(op)
    for _ in range(3):
        q = query(rng)
        select = f"SELECT id, embedding {op} %s AS d FROM flat_items"
        for limit in (1, 10, 1000, 1001):
            got = same(db, f"{select} ORDER BY embedding {op} %s LIMIT {limit}", (q, q))
            assert len(got) == limit
        # The whole table: every batch, then the NaN distances, then the NULL vectors.
        everything = same(db, f"{select} ORDER BY embedding {op} %s", (q, q))
        assert len(everything) == ROWS and len(ids(everything)) == ROWS
        assert all(d is None for _, d in everything[-26:])
        # A filter that keeps few rows makes the scan take further passes.
        got = same(db, f"{select} WHERE id %% 41 = 0 ORDER BY embedding {op} %s LIMIT 50",
                   (q, q))
        assert len(got) == 50 and all(i % 41 == 0 for i in ids(got))


def test_a_null_query_returns_every_row_with_a_null_distance(db):
    # A NULL known at planning is folded away; a parameter of a generic plan reaches the scan.
    db.execute("SET plan_cache_mode = force_generic_plan")
    db.execute("PREPARE nearest(vector) AS SELECT id, embedding <-> $1 FROM flat_items"
               " ORDER BY embedding <-> $1 LIMIT 1500")
    try:
        shown = plan(db, "EXECUTE nearest(NULL)")
        assert "Order By:" in shown, shown
        rows = db.execute("EXECUTE nearest(NULL)").fetchall()
        assert len(ids(rows)) == 1500 and all(d is None for _, d in rows)
        # (EXECUTE takes no bind parameters: the query is a literal.)
        full = db.execute(f"EXECUTE nearest('{vec([1] * DIMS)}')").fetchall()
        assert len(full) == 1500 and full[0][1] is not None
    finally:
        db.execute("DEALLOCATE nearest")
        db.execute("RESET plan_cache_mode")


def test_sees_exactly_what_the_snapshot_sees(db, admin_url):
    rng = random.Random(11)
    q = query(rng)
    top = "SELECT id, embedding <-> %s FROM flat_items ORDER BY embedding <-> %s LIMIT 20"
    before = same(db, top, (q, q))
    # HOT updates (a column the index does not cover, room on the page): the chain's root TID
    # is what the index returns.
    db.execute("UPDATE flat_items SET note = 'hot' WHERE id % 3 = 0")
    db.execute("UPDATE flat_items SET note = 'hotter' WHERE id % 3 = 0")
    assert canon(same(db, top, (q, q))) == canon(before)
    # An embedding moved next to the query, rows deleted, a new row: all seen at once.
    db.execute("UPDATE flat_items SET embedding = %s WHERE id = 17", (q,))
    db.execute("DELETE FROM flat_items WHERE id = ANY(%s)", ([r[0] for r in before[:5]],))
    db.execute("INSERT INTO flat_items VALUES (-1, 'new', %s)", (q,))
    after = same(db, top, (q, q))
    assert ids(after[:2]) == {-1, 17}
    assert not ids(before[:5]) & ids(after)
    db.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
    heap_only = db.execute(
        "SELECT count(*) FROM generate_series(0, pg_relation_size('flat_items') / 8192 - 1) b,"
        " heap_page_items(get_raw_page('flat_items', b::int)) WHERE t_infomask2 & 32768 <> 0"
    ).fetchone()[0]
    assert heap_only > 100  # HEAP_ONLY_TUPLE: the updates were HOT

    # A repeatable-read snapshot keeps its view while another session commits changes, and an
    # uncommitted row is seen only by its own transaction.
    with psycopg.connect(admin_url, autocommit=True) as reader, \
            psycopg.connect(admin_url, autocommit=True) as writer:
        for c in (reader, writer):
            c.execute("SET search_path = public, sealstore")
            c.execute("SET jit = off")
        reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        seen = canon(same(reader, top, (q, q)))
        assert seen == canon(after)
        writer.execute("BEGIN")
        writer.execute("INSERT INTO flat_items VALUES (-2, 'uncommitted', %s)", (q,))
        assert ids(same(writer, top, (q, q))[:3]) == {-2, -1, 17}
        assert canon(same(reader, top, (q, q))) == seen
        writer.execute("COMMIT")
        writer.execute("DELETE FROM flat_items WHERE id = -1")
        assert canon(same(reader, top, (q, q))) == seen
        reader.execute("COMMIT")
        now = same(reader, top, (q, q))
        assert ids(now[:2]) == {-2, 17} and -1 not in ids(now)


def test_serializable_scans_lock_the_table_as_a_sequential_scan_does(db, admin_url):
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SET search_path = public, sealstore")
        conn.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
        ordered(conn, "SELECT id FROM flat_items ORDER BY embedding <=> %s LIMIT 5",
                (vec([1] * DIMS),), index=True)
        locks = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE mode = 'SIReadLock' AND locktype = 'relation'"
            " AND relation = 'flat_items'::regclass AND pid = pg_backend_pid()").fetchone()[0]
        assert locks == 1
        conn.execute("ROLLBACK")


def test_vacuum_and_a_rebuild_change_nothing(db):
    q = vec([0.5] * DIMS)
    top = "SELECT id, embedding <+> %s FROM flat_items ORDER BY embedding <+> %s LIMIT 30"
    same(db, top, (q, q))
    db.execute("DELETE FROM flat_items WHERE id % 2 = 1")
    db.execute("VACUUM flat_items")
    after = same(db, top, (q, q))
    assert all(r[0] % 2 == 0 for r in after)
    db.execute("REINDEX INDEX flat_items_embedding")
    assert canon(same(db, top, (q, q))) == canon(after)
    # The concurrent forms validate the index against the table through bulk delete and insert.
    db.execute("REINDEX INDEX CONCURRENTLY flat_items_embedding")
    assert canon(same(db, top, (q, q))) == canon(after)
    db.execute("DROP INDEX flat_items_embedding")
    db.execute("CREATE INDEX CONCURRENTLY flat_items_embedding ON flat_items USING flat (embedding)")
    assert db.execute("SELECT indisvalid FROM pg_index"
                      " WHERE indexrelid = 'flat_items_embedding'::regclass").fetchone()[0]
    assert canon(same(db, top, (q, q))) == canon(after)
    tuples = db.execute("SELECT reltuples FROM pg_class WHERE relname = 'flat_items_embedding'"
                        ).fetchone()[0]
    assert tuples == db.execute("SELECT count(*) FROM flat_items").fetchone()[0]


def test_the_application_role_indexes_and_searches_its_own_table(admin_url, app_url):
    """No privilege beyond the schema's USAGE: a role that owns a table can put a flat index on
    it, and its queries use it."""
    rng = random.Random(5)
    with psycopg.connect(app_url, autocommit=True) as app:
        role = app.execute("SELECT current_user").fetchone()[0]
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("DROP SCHEMA IF EXISTS flatown CASCADE")
        su.execute(f'CREATE SCHEMA flatown AUTHORIZATION "{role}"')
    try:
        with psycopg.connect(app_url, autocommit=True) as app:
            app.execute("SET search_path = flatown, sealstore")
            app.execute("SET jit = off")
            app.execute("CREATE TABLE mine (id int, embedding vector(8))")
            index_and_compare(app, "mine", rng, 500)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as su:
            su.execute("DROP SCHEMA flatown CASCADE")


@pytest.mark.parametrize("persistence", ["TEMPORARY", "UNLOGGED"])
def test_temporary_and_unlogged_tables(admin_url, persistence):
    rng = random.Random(persistence)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SET search_path = public, sealstore")
        conn.execute(f"CREATE {persistence} TABLE flat_other (id int, embedding vector(8))")
        try:
            index_and_compare(conn, "flat_other", rng, 300)
        finally:
            conn.execute("DROP TABLE flat_other")


def test_a_rescan_takes_each_outer_rows_query(db):
    """A LATERAL subquery rescans the index once per outer row with a new ORDER BY value (and a
    NULL one): each row's nearest must be its own query's."""
    rng = random.Random(13)
    db.execute("CREATE TEMPORARY TABLE flat_queries (qid int, v vector(8))")
    db.execute("INSERT INTO flat_queries VALUES (1, %s), (2, NULL), (3, %s), (4, %s)",
               (query(rng), query(rng), vec([0] * DIMS)))
    try:
        sql = ("SELECT q.qid, s.id, s.d FROM flat_queries q, LATERAL (SELECT id,"
               " embedding <=> q.v AS d FROM flat_items ORDER BY embedding <=> q.v LIMIT 7) s")
        assert "Nested Loop" in plan(db, sql)
        through_index = ordered(db, sql, (), index=True)
        sequential = ordered(db, sql, (), index=False)
        for qid in (1, 2, 3, 4):
            mine = [r[1:] for r in through_index if r[0] == qid]
            assert len(mine) == 7
            assert canon(mine) == canon([r[1:] for r in sequential if r[0] == qid])
        # The NULL query's rows have NULL distances, and the zero vector's NaN ones.
        assert all(d is None for qid, _, d in through_index if qid == 2)
        assert all(d != d for qid, _, d in through_index if qid == 4)
    finally:
        db.execute("DROP TABLE flat_queries")


def test_a_partitioned_table_merges_its_partitions_scans(db):
    rng = random.Random(17)
    db.execute("CREATE TABLE flat_parts (id int, part int, embedding vector(8))"
               " PARTITION BY LIST (part)")
    try:
        for p in range(3):
            db.execute(f"CREATE TABLE flat_parts_{p} PARTITION OF flat_parts FOR VALUES IN ({p})")
        with db.cursor() as cur:
            cur.executemany("INSERT INTO flat_parts VALUES (%s, %s, %s)",
                            [(i, i % 3, query(rng)) for i in range(1500)])
        # On the parent, the index is made on every partition.
        db.execute("CREATE INDEX flat_parts_embedding ON flat_parts USING flat (embedding)")
        db.execute("ANALYZE flat_parts")
        q = query(rng)
        sql = "SELECT id, embedding <-> %s FROM flat_parts ORDER BY embedding <-> %s LIMIT 25"
        assert plan(db, sql, (q, q)).count("Index Scan using flat_parts_") == 3
        assert len(same(db, sql, (q, q))) == 25
    finally:
        db.execute("DROP TABLE flat_parts")


def test_a_scroll_cursor_moves_both_ways(db):
    """The index scans forward only; PostgreSQL keeps what a scroll cursor fetched, so fetching
    backwards returns the same rows as the sequential scan's cursor."""
    rng = random.Random(19)
    q = query(rng)
    moves = ["FETCH 40", "FETCH BACKWARD 15", "FETCH ABSOLUTE 1200", "FETCH PRIOR",
             "FETCH RELATIVE -300", "FETCH FIRST", "FETCH LAST"]
    # Positions must mean the same rows in both orders: no ties (the copies, the zero vectors)
    # and no NULLs.
    sql = ("SELECT id, embedding <-> %s FROM flat_items WHERE id %% 10 <> 3 AND id %% 89 <> 0"
           " AND embedding IS NOT NULL ORDER BY embedding <-> %s")
    answers = []
    for index in (True, False):
        with planned(db, sql, (q, q), index=index):
            db.execute("BEGIN")
            db.execute("DECLARE c SCROLL CURSOR FOR " + sql, (q, q))
            answers.append([db.execute(f"{m} FROM c").fetchall() for m in moves])
            db.execute("COMMIT")
    assert answers[0] == answers[1]
    assert [len(a) for a in answers[0]] == [40, 15, 1, 1, 1, 1, 1]


def test_a_query_of_other_dimensions_fails_as_the_operator_does(db):
    q = vec([1, 2, 3])
    sql = "SELECT id FROM flat_items ORDER BY embedding <-> %s LIMIT 3"
    states = []
    for index in (True, False):
        with pytest.raises(psycopg.Error) as info:
            ordered(db, sql, (q,), index=index)
        states.append((info.value.sqlstate, str(info.value).splitlines()[0]))
        db.execute("RESET ALL")
        db.execute("SET search_path = public, sealstore")
        db.execute("SET max_parallel_workers_per_gather = 0")
        db.execute("SET jit = off")
    assert states[0] == states[1]
    assert states[0][0] == "22000"


@pytest.mark.parametrize("definition, sqlstate", [
    ("(embedding) WHERE id > 0", "0A000"),
    ("((embedding))", None),  # a parenthesised column is still the column
    ("((embedding + embedding))", "0A000"),  # an expression, as l2_normalize below
    ("(l2_normalize(embedding))", "0A000"),
    ("(embedding, embedding)", "0A000"),
    ("(embedding) WITH (lists = 3)", "22023"),
    ("(id)", "42704"),  # no operator class for int
])
def test_definitions_it_cannot_serve_are_refused(db, definition, sqlstate):
    sql = f"CREATE INDEX flat_bad ON flat_items USING flat {definition}"
    if sqlstate is None:
        db.execute(sql)
        db.execute("DROP INDEX flat_bad")
        return
    with pytest.raises(psycopg.Error) as info:
        db.execute(sql)
    assert info.value.sqlstate == sqlstate, info.value


def test_a_table_under_tenant_isolation_is_never_scanned_through_it(admin_url, app_url):
    """A flat scan would score the rows a policy hides (its time would follow other tenants' data,
    and another tenant's vector of other dimensions would fail the query), so a query that a
    policy filters never uses the index; one that no policy filters does."""
    rng = random.Random(3)
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("SET search_path = public, sealstore")
        su.execute("DROP SCHEMA IF EXISTS flatiso CASCADE")
        su.execute("CREATE SCHEMA flatiso")
        su.execute("GRANT USAGE ON SCHEMA flatiso TO sealstore_app")
        su.execute("CREATE TABLE flatiso.items (id int PRIMARY KEY, tenant_id uuid NOT NULL,"
                   " embedding vector)")
        su.execute("GRANT SELECT ON flatiso.items TO sealstore_app")
        su.execute("SELECT enable_tenant_isolation('flatiso.items')")
        mine, other = (su.execute("SELECT create_tenant(%s)", (f"flat-{n}",)).fetchone()[0]
                       for n in ("mine", "other"))
        key = su.execute("SELECT create_api_key(%s, 'flat', '{read}')", (mine,)).fetchone()[0]
        with su.cursor() as cur:
            cur.executemany("INSERT INTO flatiso.items VALUES (%s, %s, %s)",
                            [(i, mine, query(rng)) for i in range(2000)])
        # Another tenant's vector of other dimensions: scoring it fails an 8-dimension query.
        su.execute("INSERT INTO flatiso.items VALUES (-1, %s, '[1,2,3]')", (other,))
        su.execute("CREATE INDEX flatiso_items ON flatiso.items USING flat (embedding)")
        su.execute("ANALYZE flatiso.items")
        q = query(rng)
        nearest = "SELECT id FROM flatiso.items ORDER BY embedding <-> %s LIMIT 10"
        # (Through the index, a WHERE clause would not spare that row either: see docs/sql.md, "The flat index".)
        su.execute("SET enable_indexscan = off")
        expected = [r[0] for r in su.execute(
            "SELECT id FROM flatiso.items WHERE tenant_id = %s ORDER BY embedding <-> %s LIMIT 10",
            (mine, q))]
        su.execute("RESET enable_indexscan")
        # No policy applies to the superuser: the index is used, and meets the other row.
        assert "Order By:" in plan(su, nearest, (q,))
        with pytest.raises(psycopg.Error) as info:
            su.execute(nearest, (q,))
        assert info.value.sqlstate == "22000"
        try:
            with psycopg.connect(app_url) as app:
                app.execute("SELECT sealstore.authenticate(%s)", (key,))
                app.execute("SET LOCAL search_path = public, sealstore")
                for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
                    app.execute(f"SET LOCAL {setting} = off")
                # Scoring the other tenant's row would fail the query (22000, as above), so the
                # right answer shows the index was not scanned. (The application may not
                # EXPLAIN a query a policy filters: a plan describes every tenant's rows.)
                assert [r[0] for r in app.execute(nearest, (q,))] == expected
                app.execute("SAVEPOINT s")
                with pytest.raises(psycopg.Error) as info:
                    plan(app, nearest, (q,))
                assert info.value.sqlstate == "42501"
                app.rollback()
        finally:
            su.execute("DROP SCHEMA flatiso CASCADE")
