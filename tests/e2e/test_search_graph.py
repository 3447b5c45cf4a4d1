"""search() over a collection's graph (sql/hnsw.sql: `documents_graph` for plaintext
embeddings, `documents_sealed_graph` for encrypted ones): a collection below
sealstore.hnsw_exact_below is scored exactly, a larger one is walked, with recall against the
exact answer, exact distances, results never short under a metadata filter, and the move
across made on its own as a collection grows. The sealed graph: no vector and no neighbour list
of it on disk (relation files, WAL, temporary files), checked against a plaintext graph that
the same detectors do find; records moved or changed on its pages do not open (XX001); and a
shredded tenant's graph is neither read nor blocks VACUUM."""
import json
import os
import random
import re
import struct
from pathlib import Path

import keys
import psycopg
import pytest
from harness import Cluster

DIMS = 16


def vec(v) -> str:
    return "[" + ",".join(repr(float(x)) for x in v) + "]"


def f32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


def clustered(rng, n, centres):
    return [[f32(c + rng.gauss(0, 0.3)) for c in centres[i % len(centres)]] for i in range(n)]


def centres_of(rng, clusters=25):
    return [[rng.uniform(-10, 10) for _ in range(DIMS)] for _ in range(clusters)]


def put_all(conn, collection, vectors, first=0):
    with conn.cursor() as cur:
        cur.executemany(
            "SELECT sealstore.put_document(%s, %s, %s::sealstore.vector, %s)",
            [(collection, f"doc {first + i}", vec(v),
              json.dumps({"n": first + i, "rare": (first + i) % 100 == 0, "even": (first + i) % 2 == 0}))
             for i, v in enumerate(vectors)])
    conn.commit()


def search(su, key, collection, q, k=10, filter=None, exact_below=100):
    """(ids, distances) of search() as the application role with API key `key`, and how many
    times it walked a graph (counted in the same transaction, as the superuser `su`)."""
    # The counts of earlier transactions of this backend may not be flushed yet: the walks of
    # this search are the difference within its own transaction.
    walks = """SELECT sum(pg_stat_get_xact_numscans(c.oid))::int FROM pg_class c
               WHERE c.relname IN ('documents_graph', 'documents_sealed_graph')"""
    su.execute("BEGIN")
    before = su.execute(walks).fetchone()[0]
    su.execute("SET LOCAL ROLE sealstore_app_user")
    su.execute("SELECT sealstore.authenticate(%s)", (key,))
    su.execute("SET LOCAL sealstore.hnsw_exact_below = %s" % int(exact_below))
    rows = su.execute("SELECT id, distance FROM sealstore.search(%s, %s::sealstore.vector, %s, %s)",
                      (collection, vec(q), k, json.dumps(filter) if filter else None)).fetchall()
    su.execute("RESET ROLE")
    walked = su.execute(walks).fetchone()[0] - before
    su.execute("COMMIT")
    return [r[0] for r in rows], [r[1] for r in rows], walked


@pytest.fixture(scope="module")
def world(admin_url):
    out = {}
    with psycopg.connect(admin_url, autocommit=True) as su:
        for alg in ("xchacha20-poly1305", "aes-256-gcm"):
            t = su.execute("SELECT sealstore.create_tenant(%s, %s)", (f"graph-{alg}", alg)).fetchone()[0]
            key = su.execute("SELECT sealstore.create_api_key(%s, 'rw', ARRAY['read', 'write'])", (t,)).fetchone()[0]
            out[alg] = {"tenant": t, "key": key}
    return out


def session(app_url, world, alg):
    conn = psycopg.connect(app_url)
    conn.execute("SELECT sealstore.authenticate(%s)", (world[alg]["key"],))
    return conn


@pytest.mark.parametrize("alg", ["xchacha20-poly1305", "aes-256-gcm"])
@pytest.mark.parametrize("metric,encrypted", [("cosine", True), ("l2", True), ("l2", False), ("inner_product", False)])
def test_a_large_collection_is_walked_with_the_exact_searchs_answers(app_url, admin_url, world, alg, metric,
                                                                    encrypted):
    rng = random.Random(hash((alg, metric, encrypted)) & 0xFFFF)
    centres = centres_of(rng)
    name = f"walk-{metric}-{encrypted}"
    key = world[alg]["key"]
    with session(app_url, world, alg) as conn:
        conn.execute("SELECT sealstore.create_collection(%s, %s, %s, %s)", (name, DIMS, metric, encrypted))
        put_all(conn, name, clustered(rng, 1200, centres))
    with psycopg.connect(admin_url, autocommit=True) as su:
        total = 0.0
        queries = clustered(rng, 20, centres)
        for q in queries:
            exact, exact_d, walked = search(su, key, name, q, exact_below=1_000_000)
            assert walked == 0
            got, got_d, walked = search(su, key, name, q)
            assert walked == 1, "a collection of 1,200 documents was not walked"
            assert len(got) == 10 and got_d == sorted(got_d)
            # The walk's rows are scored exactly: a row both return has one distance.
            same = dict(zip(exact, exact_d))
            for i, d in zip(got, got_d):
                if i in same:
                    assert d == pytest.approx(same[i], rel=1e-5, abs=1e-5)
            total += len(set(got) & set(exact)) / 10
        assert total / len(queries) >= 0.95, f"recall@10 {total / len(queries)}"
        # A filter that 12 documents pass: all 12, though 10 of 1,200 rows are near the query.
        rare, _, walked = search(su, key, name, queries[0], k=20, filter={"rare": True})
        assert walked == 1
        every, _, _ = search(su, key, name, queries[0], k=20, filter={"rare": True}, exact_below=1_000_000)
        assert sorted(rare) == sorted(every) and len(rare) == 12
        # A filter that half pass: 10.
        even, _, _ = search(su, key, name, queries[1], filter={"even": True})
        assert len(even) == 10
        # Deleted documents are not returned, and the rest fill their places.
        first, _, _ = search(su, key, name, queries[2])
        with session(app_url, world, alg) as conn:
            for i in first[:5]:
                assert conn.execute("SELECT sealstore.delete_document(%s)", (i,)).fetchone()[0]
        after, _, walked = search(su, key, name, queries[2])
        assert walked == 1 and len(after) == 10 and not set(after) & set(first[:5])


def test_a_growing_collection_moves_to_its_graph_on_its_own(app_url, admin_url, world):
    rng = random.Random(5)
    centres = centres_of(rng)
    alg = "xchacha20-poly1305"
    key = world[alg]["key"]
    q = clustered(rng, 1, centres)[0]
    with session(app_url, world, alg) as conn, psycopg.connect(admin_url, autocommit=True) as su:
        conn.execute("SELECT sealstore.create_collection('growing', %s, 'l2', true)", (DIMS,))
        put_all(conn, "growing", clustered(rng, 250, centres))
        _, _, walked = search(su, key, "growing", q, exact_below=400)
        assert walked == 0
        conn.execute("SELECT sealstore.authenticate(%s)", (key,))
        put_all(conn, "growing", clustered(rng, 200, centres), first=250)
        got, _, walked = search(su, key, "growing", q, exact_below=400)
        assert walked == 1 and len(got) == 10


def test_a_backend_that_keeps_a_collections_graph_sees_new_and_deleted_documents(app_url, admin_url, world):
    rng = random.Random(8)
    centres = centres_of(rng)
    alg = "aes-256-gcm"
    key = world[alg]["key"]
    q = clustered(rng, 1, centres)[0]
    with session(app_url, world, alg) as conn, psycopg.connect(admin_url, autocommit=True) as su:
        conn.execute("SELECT sealstore.create_collection('kept', %s, 'l2', true)", (DIMS,))
        put_all(conn, "kept", clustered(rng, 1100, centres))
        first, _, walked = search(su, key, "kept", q)
        assert walked == 1 and search(su, key, "kept", q)[0] == first
        conn.execute("SELECT sealstore.authenticate(%s)", (key,))
        new = conn.execute("SELECT sealstore.put_document('kept', 'new', %s::sealstore.vector)", (vec(q),)).fetchone()[0]
        conn.commit()
        got, distances, _ = search(su, key, "kept", q)
        assert got[0] == new and distances[0] == 0
        conn.execute("SELECT sealstore.authenticate(%s)", (key,))
        assert conn.execute("SELECT sealstore.delete_document(%s)", (new,)).fetchone()[0]
        conn.commit()
        su.execute("VACUUM sealstore.documents")
        assert search(su, key, "kept", q)[0] == first


def test_zero_vectors_under_cosine_are_found_though_the_graph_has_none(app_url, admin_url, world):
    """A zero vector has no cosine distance and is not in the graph; a walk that comes back
    short gives way to the exact search, which returns it (last, with a NaN distance)."""
    rng = random.Random(9)
    centres = centres_of(rng)
    alg = "xchacha20-poly1305"
    key = world[alg]["key"]
    with session(app_url, world, alg) as conn, psycopg.connect(admin_url, autocommit=True) as su:
        conn.execute("SELECT sealstore.create_collection('zeros', %s, 'cosine', false)", (DIMS,))
        put_all(conn, "zeros", clustered(rng, 1050, centres))
        conn.execute("SELECT sealstore.authenticate(%s)", (key,))
        zeros = sorted(conn.execute("SELECT sealstore.put_document('zeros', 'z', %s::sealstore.vector, "
                                    "'{\"zero\": true}')", (vec([0.0] * DIMS),)).fetchone()[0] for _ in range(2))
        conn.commit()
        got, distances, walked = search(su, key, "zeros", clustered(rng, 1, centres)[0], k=5,
                                        filter={"zero": True})
        assert walked == 1 and sorted(got) == zeros and all(d != d for d in distances)
        # Unfiltered, k rows come from the graph as usual.
        got, _, _ = search(su, key, "zeros", clustered(rng, 1, centres)[0], k=5)
        assert len(got) == 5 and not set(got) & set(zeros)


def test_the_collection_operator_classes_are_only_for_the_documents_graphs(admin_url):
    with psycopg.connect(admin_url, autocommit=True) as db:
        db.execute("CREATE TABLE cg (id uuid, c uuid, v sealstore.vector(3), b bytea)")
        for ddl in ["CREATE INDEX ON cg USING hnsw (v sealstore.collection_vector_ops)",
                    "CREATE INDEX ON cg USING hnsw (c, b sealstore.collection_sealed_ops)",
                    "CREATE INDEX ON cg USING hnsw (c, v sealstore.vector_l2_ops) INCLUDE (id)",
                    # The right shape, on another table: it would open envelopes handed to it.
                    "CREATE INDEX ON cg USING hnsw (c, b sealstore.collection_sealed_ops) INCLUDE (id, id)",
                    "CREATE INDEX ON cg USING hnsw (c, v sealstore.collection_vector_ops)"]:
            with pytest.raises(psycopg.Error) as info:
                db.execute(ddl)
            assert info.value.sqlstate == "0A000", ddl
        # Nor is a graph of collections read by a query.
        db.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in db.execute(
            "EXPLAIN SELECT id FROM sealstore.documents ORDER BY embedding OPERATOR(sealstore.<->) '[1,2,3]' LIMIT 3"))
        assert "documents_graph" not in plan and "documents_sealed_graph" not in plan
        db.execute("DROP TABLE cg")


# --- on a throw-away cluster: what is on disk, tampering, shredding ---------------------------

# A plaintext neighbour record (sealstore_core::graph::record): format 1, its levels (1-4), level
# 0's count (4-32, little-endian), then at least four slots of a block below 65,536 and an odd
# line below 64. Chance bytes do not look like this; a plaintext graph is full of it.
NEIGHBOURS = re.compile(rb"\x01[\x01-\x04][\x04-\x20]\x00(?:..\x00\x00[" +
                        b"".join(bytes([o]) for o in range(1, 64, 2)) + rb"]\x00){4}", re.DOTALL)


def files_under(*roots):
    for root in roots:
        for dirpath, _, names in os.walk(root):
            for n in names:
                yield Path(dirpath) / n


def hits(paths, needles):
    """How many of the files' bytes windows are one of `needles` (8-byte strings), and how many
    plaintext neighbour records they hold."""
    found, lists = 0, 0
    for p in paths:
        try:
            data = p.read_bytes()
        except (FileNotFoundError, PermissionError, IsADirectoryError):
            continue
        found += sum(1 for n in needles if n in data)
        lists += len(NEIGHBOURS.findall(data))
    return found, lists


def needles_of(vectors):
    """Two neighbouring elements of 64 of the vectors, as they lie in memory (little-endian
    f32): a graph that kept vectors in plaintext would hold every one of them."""
    step = max(1, len(vectors) // 64)
    return [struct.pack("<2f", v[i % (DIMS - 1)], v[i % (DIMS - 1) + 1])
            for i, v in enumerate(vectors[::step])]


def test_a_sealed_graph_keeps_no_vector_or_neighbour_list_on_disk_and_no_moved_record_opens():
    cluster = Cluster("sealed-graph")
    try:
        cluster.configure(master_key_file=str(cluster.write_private("master.key", keys.new_key_hex())))
        cluster.restart()
        admin, _, app = cluster.prepare_database()
        rng = random.Random(11)
        centres = centres_of(rng)
        # 1,050 documents (the graph links itself at 1,000), then 50 more after a REINDEX.
        sealed_vectors = clustered(rng, 1100, centres)
        with psycopg.connect(admin, autocommit=True) as su:
            tenant = su.execute("SELECT sealstore.create_tenant('sealed-graph')").fetchone()[0]
            key = su.execute("SELECT sealstore.create_api_key(%s, 'rw', ARRAY['read', 'write'])", (tenant,)).fetchone()[0]
            other = su.execute("SELECT sealstore.create_tenant('plain-graph')").fetchone()[0]
            other_key = su.execute("SELECT sealstore.create_api_key(%s, 'rw', ARRAY['read', 'write'])", (other,)).fetchone()[0]
            dboid = su.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()[0]
        with psycopg.connect(app) as conn:
            conn.execute("SELECT sealstore.authenticate(%s)", (key,))
            conn.execute("SELECT sealstore.create_collection('s', %s, 'l2', true)", (DIMS,))
            put_all(conn, "s", sealed_vectors[:1050])
            with psycopg.connect(admin, autocommit=True) as su:
                got, _, walked = search(su, key, "s", sealed_vectors[3])
            assert walked == 1 and len(got) == 10
            conn.execute("SELECT sealstore.authenticate(%s)", (key,))
            for i in got[:3]:
                conn.execute("SELECT sealstore.delete_document(%s)", (i,))
            conn.commit()
        with psycopg.connect(admin, autocommit=True) as su:
            # VACUUM relinks (reseals) neighbour records, REINDEX rebuilds (the build's path),
            # and inserts after it go through the insert's path again.
            su.execute("VACUUM sealstore.documents")
            su.execute("REINDEX INDEX sealstore.documents_sealed_graph")
        with psycopg.connect(app) as conn:
            conn.execute("SELECT sealstore.authenticate(%s)", (key,))
            put_all(conn, "s", sealed_vectors[1050:], first=1050)
        with psycopg.connect(admin, autocommit=True) as su:
            got, _, walked = search(su, key, "s", sealed_vectors[550], k=5)
            assert walked == 1 and len(got) == 5
        with psycopg.connect(admin, autocommit=True) as su:
            su.execute("CHECKPOINT")
            graph_file = cluster.data / su.execute(
                "SELECT pg_relation_filepath('sealstore.documents_sealed_graph')").fetchone()[0]
        everything = list(files_under(cluster.data)) + [cluster.logfile]
        found, lists = hits(everything, needles_of(sealed_vectors))
        assert (found, lists) == (0, 0), f"{found} vector pieces, {lists} neighbour lists on disk"

        # The same detectors find a plaintext collection's vectors and graph.
        plain_vectors = clustered(rng, 500, centres)
        with psycopg.connect(app) as conn:
            conn.execute("SELECT sealstore.authenticate(%s)", (other_key,))
            conn.execute("SELECT sealstore.create_collection('p', %s, 'l2', false)", (DIMS,))
            put_all(conn, "p", plain_vectors)
        with psycopg.connect(admin, autocommit=True) as su:
            su.execute("REINDEX INDEX sealstore.documents_graph")  # linked, as the sealed one
            su.execute("CHECKPOINT")
            plain_file = cluster.data / su.execute(
                "SELECT pg_relation_filepath('sealstore.documents_graph')").fetchone()[0]
        found, lists = hits([plain_file], needles_of(plain_vectors))
        assert found > 50 and lists > 100, (found, lists)
        found, lists = hits(files_under(cluster.data / "pg_wal"), needles_of(plain_vectors))
        assert found > 50 and lists > 100, (found, lists)
        assert hits([graph_file], needles_of(sealed_vectors)) == (0, 0)

        # Records moved on a page (two elements swapped) do not open: XX001, never a result
        # built on them. (No document passes the filter, so the walk reads every node.)
        cluster.stop()
        data = bytearray(graph_file.read_bytes())
        tampered = swap_first_two_elements(data, dboid)
        graph_file.write_bytes(bytes(tampered))
        cluster.restart()
        with psycopg.connect(app) as conn:
            conn.execute("SELECT sealstore.authenticate(%s)", (key,))
            conn.execute("SET sealstore.hnsw_exact_below = 100")
            with pytest.raises(psycopg.Error) as info:
                conn.execute("SELECT count(*) FROM sealstore.search('s', %s::sealstore.vector, 10, "
                             "'{\"none\": 1}')",
                             (vec(sealed_vectors[0]),))
            assert info.value.sqlstate == "XX001"
            conn.rollback()
            # The exact search does not read the graph: the documents themselves are whole.
            conn.execute("SELECT sealstore.authenticate(%s)", (key,))
            conn.execute("SET sealstore.hnsw_exact_below = 100000")
            assert conn.execute("SELECT count(*) FROM sealstore.search('s', %s::sealstore.vector, 1000)",
                                (vec(sealed_vectors[0]),)).fetchone()[0] == 1000
            conn.commit()
        with psycopg.connect(admin, autocommit=True) as su, psycopg.connect(admin, autocommit=True) as warm:
            su.execute("REINDEX INDEX sealstore.documents_sealed_graph")
            # A backend that has walked the sealed graph (its vectors opened and kept)...
            got, _, walked = search(warm, key, "s", sealed_vectors[7])
            assert walked == 1 and len(got) == 10
            # ... cannot read it once the tenant is shredded; VACUUM still marks its removed rows.
            su.execute("SELECT sealstore.shred_tenant(%s)", (tenant,))
            warm.execute("BEGIN")
            warm.execute("SET LOCAL sealstore.hnsw_exact_below = 100")
            with pytest.raises(psycopg.Error) as info:
                warm.execute("SELECT sealstore.act_as_tenant(%s)", (tenant,))
                warm.execute("SELECT * FROM sealstore.search('s', %s::sealstore.vector)", (vec(sealed_vectors[7]),))
            assert info.value.sqlstate == "42704", info.value
            warm.execute("ROLLBACK")
        with psycopg.connect(admin, autocommit=True) as su:
            got, _, walked = search(su, other_key, "p", plain_vectors[0])
            assert walked == 1 and len(got) == 10
        with psycopg.connect(admin, autocommit=True) as su:
            su.execute("DELETE FROM sealstore.documents WHERE tenant_id = %s", (tenant,))
            su.execute("VACUUM sealstore.documents")
            assert su.execute("SELECT count(*) FROM sealstore.documents").fetchone()[0] == 500
        assert "PANIC" not in cluster.server_log() and "TRAP" not in cluster.server_log()
    finally:
        cluster.destroy()


def swap_first_two_elements(data: bytearray, _dboid) -> bytearray:
    """Swaps the element records of the first node page's first two nodes (lines 1 and 3, of
    equal length) in a copy of the index file."""
    page_size = 8192
    for start in range(0, len(data), page_size):
        page = data[start:start + page_size]
        special = struct.unpack_from("<H", page, 16)[0]
        kind, page_id = struct.unpack_from("<HH", page, special + 4)
        lower = struct.unpack_from("<H", page, 12)[0]
        if page_id != 0xFF95 or kind != 3 or (lower - 24) // 4 < 4:
            continue

        def item(line):
            raw = struct.unpack_from("<I", page, 24 + 4 * (line - 1))[0]
            return raw & 0x7FFF, raw >> 17

        (off1, len1), (off3, len3) = item(1), item(3)
        assert len1 == len3
        out = bytearray(data)
        out[start + off1:start + off1 + len1] = page[off3:off3 + len3]
        out[start + off3:start + off3 + len3] = page[off1:off1 + len1]
        return out
    raise AssertionError("no node page with two nodes")
