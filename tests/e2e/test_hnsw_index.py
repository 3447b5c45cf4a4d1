"""The `hnsw` index access method, on the test cluster: pgvector's DDL; recall against the exact
answer on clustered data for every operator; one graph per key value, whose results are never
short and do not change when another key's data grows or crowds in; the key taken from a
row-level security policy; VACUUM, REINDEX (also CONCURRENTLY), builds beyond
maintenance_work_mem and concurrent inserts; clean errors for bad definitions and input; and,
on a throw-away cluster, recovery after a backend is killed and after an immediate stop."""
import os
import random
import secrets
import signal
import threading

import keys
import psycopg
import pytest
from harness import Cluster, wait_until

DIMS = 16
OPS = {"<->": "vector_l2_ops", "<#>": "vector_ip_ops", "<=>": "vector_cosine_ops", "<+>": "vector_l1_ops"}


def vec(v) -> str:
    return "[" + ",".join(f"{x:.5f}" for x in v) + "]"


def clustered(rng, n, clusters=30, spread=0.3, dims=DIMS, centres=None):
    centres = centres or [[rng.uniform(-10, 10) for _ in range(dims)] for _ in range(clusters)]
    return [[c + rng.gauss(0, spread) for c in centres[i % len(centres)]] for i in range(n)], centres


@pytest.fixture
def db(admin_url):
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SET search_path = public, sealstore")
        yield conn


def table(db, rows, key=None, name=None):
    """A table of (id, [tenant,] v) rows, returned by name."""
    name = name or f"h_{secrets.token_hex(4)}"
    db.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, tenant int, v vector({DIMS}))")
    with db.cursor() as cur:
        with cur.copy(f"COPY {name} (id, tenant, v) FROM STDIN") as copy:
            for i, v in enumerate(rows):
                copy.write_row((i, key(i) if key else None, vec(v)))
    return name


def top(db, sql, params=(), index=True):
    """The ids `sql` returns, through an index scan or with index scans off."""
    db.execute(f"SET enable_indexscan = {'on' if index else 'off'}")
    db.execute(f"SET enable_seqscan = {'off' if index else 'on'}")
    plan = "\n".join(r[0] for r in db.execute("EXPLAIN " + sql, params).fetchall())
    assert ("Index Scan using" in plan) == index, plan
    ids = [r[0] for r in db.execute(sql, params).fetchall()]
    db.execute("RESET enable_indexscan")
    db.execute("RESET enable_seqscan")
    return ids


def recall(got, want):
    return len(set(got) & set(want)) / max(1, len(want))


def test_every_operator_finds_the_nearest_on_clustered_data(db):
    rng = random.Random(1)
    data, centres = clustered(rng, 4000)
    queries, _ = clustered(rng, 30, centres=centres)
    name = table(db, data)
    db.execute("SET sealstore.hnsw_exact_below = 0")
    for op, opclass in OPS.items():
        db.execute(f"CREATE INDEX {name}_idx ON {name} USING hnsw (v {opclass}) WITH (m = 16, ef_construction = 64)")
        total = 0.0
        for q in queries:
            sql = f"SELECT id FROM {name} ORDER BY v {op} %s LIMIT 10"
            r = recall(top(db, sql, (vec(q),)), top(db, sql, (vec(q),), index=False))
            assert r > 0, f"{op}: a query found none of its 10 nearest"
            total += r
        assert total / len(queries) >= 0.95, f"{op}: recall@10 {total / len(queries)}"
        db.execute(f"DROP INDEX {name}_idx")


def test_a_tenant_gets_its_own_nearest_never_short_and_unmoved_by_another_tenant(db):
    rng = random.Random(2)
    small, centres = clustered(rng, 150)
    big, _ = clustered(rng, 1000, centres=centres)
    name = table(db, small + big, key=lambda i: 1 if i < 150 else 2)
    db.execute(f"CREATE INDEX ON {name} USING hnsw (tenant, v vector_cosine_ops)")
    db.execute("SET sealstore.hnsw_exact_below = 100")  # tenant 1's 150 rows are walked
    queries, _ = clustered(rng, 20, centres=centres)
    sql = f"SELECT id FROM {name} WHERE tenant = 1 ORDER BY v <=> %s LIMIT 10"
    before = []
    for q in queries:
        got = top(db, sql, (vec(q),))
        assert len(got) == 10 and all(i < 150 for i in got)
        assert recall(got, top(db, sql, (vec(q),), index=False)) >= 0.9
        before.append(got)
        # A filter that keeps 15 of the tenant's rows: 10 come back, not fewer.
        filtered = top(db, f"SELECT id FROM {name} WHERE tenant = 1 AND id %% 10 = 0 "
                           f"ORDER BY v <=> %s LIMIT 10", (vec(q),))
        assert len(filtered) == 10 and all(i % 10 == 0 for i in filtered)
        # A filter that keeps 3: all 3.
        few = top(db, f"SELECT id FROM {name} WHERE tenant = 1 AND id + 0 IN (3, 77, 149) "
                      f"ORDER BY v <=> %s LIMIT 10", (vec(q),))
        assert sorted(few) == [3, 77, 149]
    # Tenant 2 grows tenfold, right next to tenant 1's queries.
    with db.cursor() as cur:
        with cur.copy(f"COPY {name} (id, tenant, v) FROM STDIN") as copy:
            for i in range(10_000):
                q = queries[i % len(queries)]
                copy.write_row((10_000 + i, 2, vec([x + rng.gauss(0, 0.01) for x in q])))
    for q, was in zip(queries, before):
        assert top(db, sql, (vec(q),)) == was
    # The key bound as another integer type (psycopg sends a small int as int2) is still the
    # key condition, not a filter over every tenant's graph.
    db.execute("SET enable_seqscan = off")
    for key in ["1::int2", "1::int8"]:
        plan = "\n".join(r[0] for r in db.execute(
            f"EXPLAIN SELECT id FROM {name} WHERE tenant = {key} ORDER BY v <=> %s LIMIT 10", (vec(queries[0]),)))
        assert "Index Cond: (tenant = " in plan and "Filter" not in plan, plan
    db.execute("RESET enable_seqscan")
    assert top(db, f"SELECT id FROM {name} WHERE tenant = %s ORDER BY v <=> %s LIMIT 10", (1, vec(queries[0]))) == before[0]
    assert top(db, f"SELECT id FROM {name} WHERE tenant = 5000000000 ORDER BY v <=> %s LIMIT 10", (vec(queries[0]),)) == []


def test_the_isolation_policy_gives_the_key_and_a_shared_graph_is_not_used_under_it(db, admin_url):
    rng = random.Random(3)
    data, centres = clustered(rng, 600)
    name = table(db, data, key=lambda i: i % 3)
    db.execute(f"CREATE INDEX {name}_keyed ON {name} USING hnsw (tenant, v)")
    db.execute(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY")
    db.execute(f"CREATE POLICY p ON {name} USING (tenant = current_setting('app.tenant')::int)")
    db.execute(f"GRANT SELECT ON {name} TO sealstore_app")
    q = vec(clustered(rng, 1, centres=centres)[0][0])
    with psycopg.connect(admin_url) as su:
        sql = f"SELECT id, tenant FROM {name} ORDER BY v <-> %s LIMIT 10"

        def as_app(seqscan="off"):
            # The application's role, in a transaction whose own scan counts the superuser
            # reads after (EXPLAIN is refused under a policy, by design).
            su.execute("SET LOCAL ROLE sealstore_app_user")
            su.execute("SET LOCAL search_path = public, sealstore")
            su.execute("SET LOCAL app.tenant = '2'")
            su.execute(f"SET LOCAL enable_seqscan = {seqscan}")
            rows = su.execute(sql, (q,)).fetchall()
            su.execute("RESET ROLE")
            return rows

        def scans(index):
            return su.execute("SELECT pg_stat_get_xact_numscans(%s::regclass)", (index,)).fetchone()[0]

        rows = as_app()
        assert len(rows) == 10 and {t for _, t in rows} == {2}
        assert scans(f"{name}_keyed") == 1
        su.rollback()
        # One graph of every tenant's rows: the planner does not see it under the policy.
        db.execute(f"DROP INDEX {name}_keyed")
        db.execute(f"CREATE INDEX {name}_shared ON {name} USING hnsw (v)")
        rows = as_app()
        assert len(rows) == 10 and {t for _, t in rows} == {2}
        assert scans(f"{name}_shared") == 0
        su.rollback()
        # A graph per key, under a policy on another column: no key value, so not this index.
        db.execute(f"DROP INDEX {name}_shared")
        db.execute(f"CREATE INDEX {name}_by_id ON {name} USING hnsw (id, v)")
        rows = as_app(seqscan="on")
        assert len(rows) == 10 and {t for _, t in rows} == {2}
        assert scans(f"{name}_by_id") == 0
        su.rollback()


def test_bad_definitions_and_input_get_clean_errors(db):
    name = table(db, [[0.0] * DIMS])
    bad = [
        (f"CREATE INDEX ON {name} USING hnsw (v) WITH (m = 1)", "22023"),
        (f"CREATE INDEX ON {name} USING hnsw (v) WITH (m = 101)", "22023"),
        (f"CREATE INDEX ON {name} USING hnsw (v) WITH (ef_construction = 3)", "22023"),
        (f"CREATE INDEX ON {name} USING hnsw (v) WITH (m = 32, ef_construction = 40)", "22023"),
        (f"CREATE INDEX ON {name} USING hnsw (v) WITH (lists = 4)", "22023"),
        (f"CREATE INDEX ON {name} USING hnsw ((v::text::vector))", "0A000"),
        (f"CREATE INDEX ON {name} USING hnsw (v) WHERE id > 0", "0A000"),
        (f"CREATE INDEX ON {name} USING hnsw (id)", "0A000"),
        (f"CREATE INDEX ON {name} USING hnsw (id, tenant, v)", "0A000"),
    ]
    db.execute(f"ALTER TABLE {name} ADD COLUMN label text")
    bad.append((f"CREATE INDEX ON {name} USING hnsw (label, v)", "42704"))
    for sql, state in bad:
        with pytest.raises(psycopg.Error) as e:
            db.execute(sql)
        assert e.value.sqlstate == state, (sql, e.value.sqlstate, str(e.value))
    # Dimensions: a column without a typmod takes the first vector's; others are refused.
    db.execute(f"CREATE TABLE {name}_free (id int, v vector)")
    db.execute(f"CREATE INDEX ON {name}_free USING hnsw (v)")
    db.execute(f"INSERT INTO {name}_free VALUES (1, '[1,2,3]'), (2, NULL)")
    with pytest.raises(psycopg.Error) as e:
        db.execute(f"INSERT INTO {name}_free VALUES (3, '[1,2]')")
    assert e.value.sqlstate == "22000" and "expected 3 dimensions, not 2" in str(e.value)
    db.execute("SET enable_seqscan = off")
    with pytest.raises(psycopg.Error) as e:
        db.execute(f"SELECT id FROM {name}_free ORDER BY v <-> '[1,2,3,4]' LIMIT 1").fetchall()
    assert e.value.sqlstate == "22000"
    for value in ["0", "1001", "many"]:
        db.execute(f"SET hnsw.ef_search = '{value}'")
        with pytest.raises(psycopg.Error) as e:
            db.execute(f"SELECT id FROM {name}_free ORDER BY v <-> '[1,2,3]' LIMIT 1").fetchall()
        assert e.value.sqlstate == "22023", value
    db.execute("SET hnsw.ef_search = 100")
    # The NULL vector is not indexed and never returned.
    assert [r[0] for r in db.execute(f"SELECT id FROM {name}_free ORDER BY v <-> '[1,2,3]' LIMIT 5")] == [1]
    db.execute("RESET hnsw.ef_search")
    # Zero vectors have no cosine distance: not indexed, as in pgvector.
    db.execute(f"CREATE INDEX {name}_cos ON {name}_free USING hnsw (v vector_cosine_ops)")
    db.execute(f"INSERT INTO {name}_free VALUES (4, '[0,0,0]')")
    assert [r[0] for r in db.execute(f"SELECT id FROM {name}_free ORDER BY v <=> '[1,2,3]' LIMIT 5")] == [1]


def test_an_unlogged_table_and_a_temporary_table_have_working_indexes(db):
    for kind in ["UNLOGGED", "TEMPORARY"]:
        name = f"h_{kind.lower()}_{secrets.token_hex(3)}"
        db.execute(f"CREATE {kind} TABLE {name} (id int, tenant int, v vector(3))")
        db.execute(f"CREATE INDEX ON {name} USING hnsw (tenant, v)")
        db.execute(f"INSERT INTO {name} SELECT i, i % 2, ('[' || i || ',' || i % 7 || ',1]')::vector "
                   "FROM generate_series(1, 500) i")
        sql = f"SELECT id FROM {name} WHERE tenant = 1 ORDER BY v <-> '[100, 2, 1]' LIMIT 5"
        got = top(db, sql)
        assert len(got) == 5 and got == top(db, sql, index=False)


def test_vacuum_drops_deleted_rows_and_keeps_recall(db):
    rng = random.Random(4)
    data, centres = clustered(rng, 3000)
    name = table(db, data)
    db.execute(f"CREATE INDEX ON {name} USING hnsw (v)")
    db.execute("SET sealstore.hnsw_exact_below = 0")
    gone = set(rng.sample(range(3000), 900))
    db.execute(f"DELETE FROM {name} WHERE id = ANY(%s)", (sorted(gone),))
    db.execute(f"VACUUM {name}")
    everything = top(db, f"SELECT id FROM {name} ORDER BY v <-> %s LIMIT 5000", (vec(data[0]),))
    assert sorted(everything) == [i for i in range(3000) if i not in gone]
    queries, _ = clustered(rng, 20, centres=centres)
    sql = f"SELECT id FROM {name} ORDER BY v <-> %s LIMIT 10"
    total = sum(recall(top(db, sql, (vec(q),)), top(db, sql, (vec(q),), index=False)) for q in queries)
    assert total / len(queries) >= 0.95
    # Rows added after the vacuum are found too.
    db.execute(f"INSERT INTO {name} SELECT 5000 + id, NULL, v FROM {name} WHERE id < 100 ORDER BY id LIMIT 50")
    assert len(top(db, f"SELECT id FROM {name} ORDER BY v <-> %s LIMIT 5000", (vec(data[0]),))) == 2100 + 50


def test_reindex_and_reindex_concurrently_keep_the_answers(db):
    rng = random.Random(5)
    data, centres = clustered(rng, 2000)
    name = table(db, data, key=lambda i: i % 2)
    db.execute(f"CREATE INDEX {name}_idx ON {name} USING hnsw (tenant, v vector_l1_ops)")
    # Queries near tenant 1's rows (the odd clusters: row i is in cluster i % 30, tenant i % 2).
    queries, _ = clustered(rng, 10, centres=centres[1::2])
    sql = f"SELECT id FROM {name} WHERE tenant = 1 ORDER BY v <+> %s LIMIT 10"
    exact = [top(db, sql, (vec(q),), index=False) for q in queries]
    for stmt in [f"REINDEX INDEX {name}_idx", f"REINDEX INDEX CONCURRENTLY {name}_idx"]:
        db.execute(stmt)
        total = sum(recall(top(db, sql, (vec(q),)), e) for q, e in zip(queries, exact))
        assert total / len(queries) >= 0.95, stmt


def test_a_build_beyond_maintenance_work_mem_says_so_and_stays_correct(db):
    rng = random.Random(6)
    data, centres = clustered(rng, 6000)
    name = table(db, data)
    notices = []
    db.add_notice_handler(lambda n: notices.append(n.message_primary))
    db.execute("SET maintenance_work_mem = '1MB'")
    db.execute(f"CREATE INDEX ON {name} USING hnsw (v)")
    db.execute("RESET maintenance_work_mem")
    assert any("no longer fits into maintenance_work_mem" in n for n in notices), notices
    db.execute("SET sealstore.hnsw_exact_below = 0")
    assert len(top(db, f"SELECT id FROM {name} ORDER BY v <-> %s LIMIT 7000", (vec(data[0]),))) == 6000
    queries, _ = clustered(rng, 20, centres=centres)
    sql = f"SELECT id FROM {name} ORDER BY v <-> %s LIMIT 10"
    total = sum(recall(top(db, sql, (vec(q),)), top(db, sql, (vec(q),), index=False)) for q in queries)
    assert total / len(queries) >= 0.95


def test_a_graph_kept_in_a_backends_memory_follows_every_change(db, admin_url):
    """A backend keeps a graph it has walked in its memory; a row another backend inserts, a
    delete and a VACUUM, and a REINDEX are all seen by its next walk."""
    rng = random.Random(12)
    data, centres = clustered(rng, 2500)
    name = table(db, data, key=lambda i: 1)
    db.execute(f"CREATE INDEX ON {name} USING hnsw (tenant, v)")
    q = clustered(rng, 1, centres=centres)[0][0]
    sql = f"SELECT id FROM {name} WHERE tenant = 1 ORDER BY v <-> %s LIMIT 10"
    with psycopg.connect(admin_url, autocommit=True) as reader:
        reader.execute("SET search_path = public, sealstore")
        reader.execute("SET enable_seqscan = off")
        first = [r[0] for r in reader.execute(sql, (vec(q),))]
        assert [r[0] for r in reader.execute(sql, (vec(q),))] == first
        db.execute(f"INSERT INTO {name} SELECT 100000 + g, 1, %s FROM generate_series(1, 3) g", (vec(q),))
        assert sorted([r[0] for r in reader.execute(sql, (vec(q),))][:3]) == [100001, 100002, 100003]
        db.execute(f"DELETE FROM {name} WHERE id > 100000 OR id = ANY(%s)", (first[:2],))
        db.execute(f"VACUUM {name}")
        got = [r[0] for r in reader.execute(sql, (vec(q),))]
        assert not set(got) & {100001, 100002, 100003, *first[:2]} and len(got) == 10
        assert recall(got, top(db, sql, (vec(q),), index=False)) >= 0.9
        db.execute(f"REINDEX TABLE {name}")
        assert [r[0] for r in reader.execute(sql, (vec(q),))] == got
    # With no room to keep it, a backend walks the graph on its pages, query after query.
    with psycopg.connect(admin_url, autocommit=True) as small:
        small.execute("SET search_path = public, sealstore")
        small.execute("SET enable_seqscan = off")
        small.execute("SET sealstore.hnsw_graph_memory = '64kB'")
        for _ in range(3):
            assert [r[0] for r in small.execute(sql, (vec(q),))] == got


def test_concurrent_inserts_lose_no_row(db, admin_url):
    name = table(db, [])
    db.execute(f"CREATE INDEX ON {name} USING hnsw (tenant, v)")
    errors = []

    def writer(w):
        rng = random.Random(w)
        try:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute("SET search_path = public, sealstore")
                for i in range(250):
                    conn.execute(f"INSERT INTO {name} VALUES (%s, %s, %s)",
                                 (w * 1000 + i, i % 2, vec([rng.uniform(-1, 1) for _ in range(DIMS)])))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    db.execute("SET sealstore.hnsw_exact_below = 0")
    for tenant in (0, 1):
        got = top(db, f"SELECT id FROM {name} WHERE tenant = %s ORDER BY v <-> %s LIMIT 2000",
                  (tenant, vec([0.0] * DIMS)))
        assert sorted(got) == sorted(w * 1000 + i for w in range(4) for i in range(250) if i % 2 == tenant)


def test_the_index_is_whole_after_a_killed_backend_and_an_immediate_stop():
    cluster = Cluster("hnsw-crash")
    try:
        cluster.configure(master_key_file=str(cluster.write_private("master.key", keys.new_key_hex())))
        cluster.restart()
        admin, _, _ = cluster.prepare_database()

        def connect():
            conn = psycopg.connect(admin, autocommit=True)
            conn.execute("SET search_path = public, sealstore")
            return conn

        with connect() as db:
            db.execute(f"CREATE TABLE c (id int PRIMARY KEY, tenant int, v vector({DIMS}))")
            db.execute("CREATE INDEX c_idx ON c USING hnsw (tenant, v)")
        rng = random.Random(7)
        next_id = [0]
        stopped_by = []

        def insert_until_stopped():
            try:
                with connect() as conn:
                    while True:
                        # A row whose commit the kill raced with may be there already.
                        conn.execute("INSERT INTO c VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING",
                                     (next_id[0], next_id[0] % 2, vec([rng.uniform(-1, 1) for _ in range(DIMS)])))
                        next_id[0] += 1
            except psycopg.Error as e:
                stopped_by.append(e)

        # A backend killed with SIGKILL mid-insert: the server restarts and recovers.
        t = threading.Thread(target=insert_until_stopped)
        t.start()
        assert wait_until(lambda: next_id[0] > 300, 60)
        with connect() as db:
            pid = db.execute("SELECT pid FROM pg_stat_activity WHERE query LIKE 'INSERT INTO c%' "
                             "AND pid <> pg_backend_pid()").fetchone()[0]
        os.kill(pid, signal.SIGKILL)
        t.join(30)

        def up():
            try:
                with connect():
                    return True
            except psycopg.Error:
                return False
        assert wait_until(up, 60), cluster.server_log()
        # Then an immediate stop mid-insert, and a start that replays the WAL.
        t = threading.Thread(target=insert_until_stopped)
        t.start()
        start = next_id[0]
        assert wait_until(lambda: next_id[0] > start + 300, 60)
        cluster.stop("immediate")
        t.join(30)
        cluster.restart()
        # Both writers stopped because their server went away, not for an error of the index.
        assert len(stopped_by) == 2 and all(isinstance(e, psycopg.OperationalError) for e in stopped_by), stopped_by
        with connect() as db:
            db.execute("SET sealstore.hnsw_exact_below = 0")
            rows = {r[0]: r for r in db.execute("SELECT id, tenant, v::text FROM c")}
            assert len(rows) > 600
            for tenant in (0, 1):
                db.execute("SET enable_seqscan = off")
                got = [r[0] for r in db.execute(
                    "SELECT id FROM c WHERE tenant = %s ORDER BY v <-> %s LIMIT 100000",
                    (tenant, vec([0.0] * DIMS)))]
                assert sorted(got) == sorted(i for i, r in rows.items() if r[1] == tenant)
            # Every row is its own nearest.
            for i in list(rows)[::50]:
                nearest = db.execute("SELECT id FROM c WHERE tenant = %s ORDER BY v <-> %s LIMIT 1",
                                     (rows[i][1], rows[i][2])).fetchone()[0]
                assert nearest == i
    finally:
        cluster.destroy()
