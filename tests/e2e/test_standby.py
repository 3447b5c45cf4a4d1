"""A hot standby of the test cluster, made by the project's scripts (`.ci/lib/replica.sh`, the
test command's standby tier): every read works there and assigns no transaction id, writes fail
cleanly, and key changes committed on the primary (a revocation, a retirement, a rotation, a
shred) stop a standby session that has the old state cached as soon as they are replayed."""
import json
import os
import random
import secrets
import subprocess
import threading
import time

import jwt
import psycopg
import pytest
import requests

from clients import Api, Keys, mint
from harness import Gateway, env, wait_until

REPLAY_TIMEOUT = 30


@pytest.fixture(scope="module")
def standby_urls():
    return env("SEALSTORE_TEST_REPLICA_PG_URL"), env("SEALSTORE_TEST_REPLICA_APP_PG_URL")


def wait_for_replay(primary, standby_url):
    """Waits until the standby has replayed everything the primary has written; returns the
    seconds it took."""
    target = primary.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    started = time.monotonic()
    with psycopg.connect(standby_url, autocommit=True) as s:
        while True:
            done = s.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)).fetchone()[0]
            if done:
                return time.monotonic() - started
            assert time.monotonic() - started < REPLAY_TIMEOUT, "the standby did not catch up"
            time.sleep(0.01)


def sqlstate(conn, sql, params=(), tenant=None):
    """The SQLSTATE that SQL fails with in its own transaction, acting as TENANT if given
    (None if it succeeds)."""
    try:
        with conn.transaction():
            if tenant:
                conn.execute("SELECT sealstore.act_as_tenant(%s)", (tenant,))
            conn.execute(sql, params)
    except psycopg.Error as e:
        return e.sqlstate
    return None


@pytest.fixture(scope="module")
def world(admin_url, standby_urls):
    """A tenant with an API key, a JWT key of each algorithm, a secret, documents (plaintext and
    encrypted embeddings), an encrypted column under tenant isolation and a flat index, all made
    on the primary and replayed on the standby."""
    keys = Keys()
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("SET log_statement = 'none'")
        tenant = su.execute("SELECT sealstore.create_tenant(%s)", (f"standby-{secrets.token_hex(3)}",)).fetchone()[0]
        for alg, kid in keys.kids.items():
            su.execute("SELECT sealstore.add_jwt_key(%s, %s, %s, tenant => %s)",
                       (kid, alg, keys.material(alg), tenant))
        api_key = su.execute("SELECT sealstore.create_api_key(%s, 'standby', ARRAY['read', 'write'])",
                             (tenant,)).fetchone()[0]
        with su.transaction():
            su.execute("SELECT sealstore.act_as_tenant(%s)", (tenant,))
            su.execute("SELECT sealstore.put_secret('db-password', 'hunter2')")
            for name, enc in (("plain", False), ("sealed", True)):
                su.execute("SELECT sealstore.create_collection(%s, 3, 'l2', %s)", (name, enc))
            docs = {name: su.execute("SELECT sealstore.put_document(%s, %s, '[1,2,3]')", (name, f"text {name}")).fetchone()[0]
                    for name in ("plain", "sealed")}
        su.execute("DROP TABLE IF EXISTS standby_notes, standby_points")
        su.execute("CREATE TABLE standby_notes (id int PRIMARY KEY, tenant_id uuid NOT NULL, body bytea)")
        su.execute("SELECT sealstore.enable_tenant_isolation('standby_notes')")
        su.execute("GRANT SELECT ON standby_notes TO sealstore_app")
        with su.transaction():
            su.execute("SELECT sealstore.act_as_tenant(%s)", (tenant,))
            su.execute("INSERT INTO standby_notes VALUES (1, %s, sealstore.encrypt_text('note one', 'standby_notes:1'))", (tenant,))
        su.execute("CREATE TABLE standby_points (id int PRIMARY KEY, embedding sealstore.vector(3))")
        su.execute("INSERT INTO standby_points SELECT i, ARRAY[i, 0, 0]::real[]::sealstore.vector FROM generate_series(1, 50) i")
        su.execute("CREATE INDEX ON standby_points USING flat (embedding)")
        su.execute("GRANT SELECT ON standby_points TO sealstore_app")
        wait_for_replay(su, standby_urls[0])
    return {"tenant": tenant, "keys": keys, "api_key": api_key, "docs": docs}


def token(world, alg="HS256", **claims):
    keys = world["keys"]
    body = {"sub": "standby-user", "tenant": str(world["tenant"]), "scope": "read write",
            "exp": int(time.time()) + 300, **claims}
    return jwt.encode(body, keys.signing(alg), algorithm=alg, headers={"kid": keys.kids[alg]})


def no_xid(conn):
    return conn.execute("SELECT pg_current_xact_id_if_assigned() IS NULL").fetchone()[0]


@pytest.mark.parametrize("credential", ["api_key", "HS256", "RS256", "ES256", "EdDSA"])
def test_a_standby_authenticates_and_serves_every_read(world, standby_urls, credential):
    tok = world["api_key"] if credential == "api_key" else token(world, credential)
    with psycopg.connect(standby_urls[1]) as s:
        assert s.execute("SELECT pg_is_in_recovery()").fetchone()[0]
        with s.transaction():
            who = s.execute("SELECT sealstore.authenticate(%s)", (tok,)).fetchone()[0]
            assert who["tenant"] == str(world["tenant"])
            assert s.execute("SELECT sealstore.current_tenant()").fetchone()[0] == world["tenant"]
            assert s.execute("SELECT sealstore.has_scope('read')").fetchone()[0]
            assert s.execute("SELECT sealstore.get_secret('db-password')").fetchone()[0] == "hunter2"
            for name, doc in world["docs"].items():
                row = s.execute("SELECT collection, content FROM sealstore.get_document(%s)", (doc,)).fetchone()
                assert row == (name, f"text {name}")
                hits = s.execute("SELECT id FROM sealstore.search(%s, '[1,2,3]', 5)", (name,)).fetchall()
                assert hits == [(doc,)]
            body = s.execute("SELECT sealstore.decrypt_text(body, 'standby_notes:' || id) FROM standby_notes").fetchall()
            assert body == [("note one",)]
            sealed = s.execute("SELECT sealstore.encrypt_text('x', 'c')").fetchone()[0]
            assert s.execute("SELECT sealstore.decrypt_text(%s, 'c')", (sealed,)).fetchone()[0] == "x"
            assert no_xid(s), "a read on the standby asked for a transaction id"


def test_the_flat_index_and_isolation_report_on_a_standby(world, standby_urls):
    with psycopg.connect(standby_urls[0]) as s:
        s.execute("SET search_path = public, sealstore")
        s.execute("SET enable_seqscan = off")
        sql = "SELECT id FROM standby_points ORDER BY embedding <-> '[7.2,0,0]' LIMIT 3"
        plan = "\n".join(r[0] for r in s.execute("EXPLAIN " + sql).fetchall())
        assert "Index Scan using standby_points_embedding_idx" in plan
        assert [r[0] for r in s.execute(sql).fetchall()] == [7, 8, 6]
        report = s.execute("SELECT severity, object, detail FROM sealstore.isolation_report()").fetchall()
        assert not [r for r in report if r[1] == "public.standby_notes"], report
        # The superuser's own reach is reported, and names the isolated table.
        assert any(sev == "warning" and "public.standby_notes" in (detail or "")
                   for sev, _, detail in report), report
        assert no_xid(s)


def vec(v) -> str:
    return "[" + ",".join(f"{x:.4f}" for x in v) + "]"


def test_the_hnsw_index_replays_on_a_standby(admin_url, standby_urls):
    """Built, inserted into and vacuumed on the primary (generic WAL records); the standby's
    scans find what the primary's find."""
    rng = random.Random(11)
    name = f"standby_hnsw_{secrets.token_hex(3)}"
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("SET search_path = public, sealstore")
        su.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, tenant int, v vector(8))")
        su.execute(f"INSERT INTO {name} VALUES (1, 1, %s)", (vec([0] * 8),))
        with su.cursor() as cur:
            cur.executemany(f"INSERT INTO {name} VALUES (%s, %s, %s)",
                            [(i, i % 2, vec([rng.uniform(-1, 1) for _ in range(8)])) for i in range(2, 1500)])
        su.execute(f"CREATE INDEX ON {name} USING hnsw (tenant, v)")
        with su.cursor() as cur:
            cur.executemany(f"INSERT INTO {name} VALUES (%s, %s, %s)",
                            [(i, i % 2, vec([rng.uniform(-1, 1) for _ in range(8)])) for i in range(1500, 1700)])
        su.execute(f"DELETE FROM {name} WHERE id % 5 = 0")
        su.execute(f"VACUUM {name}")
        sql = f"SELECT id FROM {name} WHERE tenant = 1 ORDER BY v <-> %s LIMIT 2000"
        q = vec([0.1] * 8)
        su.execute("SET enable_seqscan = off")
        su.execute("SET sealstore.hnsw_exact_below = 0")
        on_primary = [r[0] for r in su.execute(sql, (q,))]
        assert sorted(on_primary) == [i for i in range(1, 1700) if i % 2 == 1 and i % 5 != 0]
        wait_for_replay(su, standby_urls[0])
    with psycopg.connect(standby_urls[0]) as s:
        s.execute("SET search_path = public, sealstore")
        s.execute("SET enable_seqscan = off")
        s.execute("SET sealstore.hnsw_exact_below = 0")
        plan = "\n".join(r[0] for r in s.execute("EXPLAIN " + sql, (q,)).fetchall())
        assert f"Index Scan using {name}_tenant_v_idx" in plan, plan
        assert [r[0] for r in s.execute(sql, (q,))] == on_primary
        assert no_xid(s)


def test_a_sealed_collection_graph_replays_and_is_walked_on_a_standby(admin_url, standby_urls):
    """search() on a standby walks the collection's sealed graph as replayed from the primary
    (twice: from its pages, then from the copy the backend keeps), with the primary's answers,
    and assigns no transaction id."""
    rng = random.Random(13)
    centres = [[rng.uniform(-5, 5) for _ in range(8)] for _ in range(10)]
    docs = [[c + rng.gauss(0, 0.2) for c in centres[i % 10]] for i in range(1100)]
    with psycopg.connect(admin_url, autocommit=True) as su:
        t = su.execute("SELECT sealstore.create_tenant('standby-graph')").fetchone()[0]
        key = su.execute("SELECT sealstore.create_api_key(%s, 'rw', ARRAY['read', 'write'])", (t,)).fetchone()[0]
        with su.transaction():
            su.execute("SELECT sealstore.authenticate(%s)", (key,))
            su.execute("SELECT sealstore.create_collection('g', 8, 'l2', true)")
            with su.cursor() as cur:
                cur.executemany("SELECT sealstore.put_document('g', 'x', %s::sealstore.vector)",
                                [(vec(d),) for d in docs])
        search = "SELECT id, distance FROM sealstore.search('g', %s::sealstore.vector, 10)"
        walks = "SELECT pg_stat_get_xact_numscans('sealstore.documents_sealed_graph'::regclass)"
        on_primary = []
        for q in docs[:5]:
            with su.transaction():
                su.execute("SELECT sealstore.authenticate(%s)", (key,))
                on_primary.append(su.execute(search, (vec(q),)).fetchall())
        wait_for_replay(su, standby_urls[0])
    with psycopg.connect(standby_urls[0]) as s:
        for _ in range(2):
            for q, want in zip(docs[:5], on_primary):
                before = s.execute(walks).fetchone()[0]
                s.execute("SELECT sealstore.authenticate(%s)", (key,))
                assert s.execute(search, (vec(q),)).fetchall() == want
                assert s.execute(walks).fetchone()[0] == before + 1
                assert no_xid(s)
                s.rollback()


def test_reads_on_a_primary_assign_no_transaction_id(world, admin_url):
    """The read-only SPI path matters on a primary too: an xid costs a commit record."""
    # A superuser session reads the same way as an application's; the context comes from the token.
    with psycopg.connect(admin_url) as p:
        for _ in range(2):  # the second call is past the API key's hourly last-use stamp
            with p.transaction():
                p.execute("SELECT sealstore.authenticate(%s)", (world["api_key"],))
                p.execute("SELECT sealstore.get_secret('db-password')")
                p.execute("SELECT * FROM sealstore.search('plain', '[1,2,3]', 5)")
                p.execute("SELECT sealstore.key_versions(%s)", (world["tenant"],))
                stamped = not no_xid(p)
        assert not stamped


def test_writes_on_a_standby_fail_cleanly(world, standby_urls):
    with psycopg.connect(standby_urls[1]) as s:
        with s.transaction():
            s.execute("SELECT sealstore.authenticate(%s)", (world["api_key"],))
            s.execute("SAVEPOINT w")
            for sql in ("SELECT sealstore.put_secret('new', 'value')",
                        "SELECT sealstore.put_document('plain', 'x', '[1,1,1]')",
                        "SELECT sealstore.create_collection('more', 3)"):
                with pytest.raises(psycopg.Error) as e:
                    s.execute(sql)
                assert e.value.sqlstate == "25006", (sql, e.value.sqlstate)
                s.execute("ROLLBACK TO SAVEPOINT w")
    t, doc = world["tenant"], world["docs"]["plain"]
    with psycopg.connect(standby_urls[0]) as su:
        for sql, params, tenant in (
            ("SELECT sealstore.create_tenant('on-standby')", (), None),
            ("SELECT sealstore.rotate_tenant_key(%s)", (t,), None),
            ("SELECT sealstore.shred_tenant(%s)", (t,), None),
            ("SELECT sealstore.add_jwt_key('standby-kid', 'HS256', %s)", (secrets.token_hex(32),), None),
            ("SELECT sealstore.retire_jwt_key(%s)", (world["keys"].kids["HS256"],), None),
            ("SELECT sealstore.create_api_key(%s, 'more', ARRAY['read'])", (t,), None),
            ("SELECT sealstore.revoke_api_key(id) FROM sealstore.api_keys LIMIT 1", (), None),
            ("SELECT sealstore.record_auth_failures('[]')", (), None),
            ("SELECT sealstore.rewrap_tenant_keys_batch(10)", (), None),
            ("SELECT sealstore.delete_secret('db-password')", (), t),
            ("SELECT sealstore.delete_document(%s)", (doc,), t),
            ("SELECT sealstore.drop_collection('plain')", (), t),
            ("SELECT * FROM sealstore.route_put_secret(%s, 'x', 'y')", (world["api_key"],), None),
        ):
            assert sqlstate(su, sql, params, tenant) == "25006", sql


def test_changes_replayed_from_the_primary_stop_a_standby_session_at_once(admin_url, standby_urls):
    """One standby session caches a tenant's keys, an API key and a JWT key; each change
    committed on the primary must stop it at its next call after replay."""
    keys = Keys()
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("SET log_statement = 'none'")
        tenant = su.execute("SELECT sealstore.create_tenant(%s)", (f"replayed-{secrets.token_hex(3)}",)).fetchone()[0]
        su.execute("SELECT sealstore.add_jwt_key(%s, 'HS256', %s, tenant => %s)",
                   (keys.kids["HS256"], keys.material("HS256"), tenant))
        api_key = su.execute("SELECT sealstore.create_api_key(%s, 'replayed', ARRAY['read'])",
                             (tenant,)).fetchone()[0]
        api_id = su.execute("SELECT id FROM sealstore.api_keys WHERE tenant_id = %s", (tenant,)).fetchone()[0]
        with su.transaction():
            su.execute("SELECT sealstore.act_as_tenant(%s)", (tenant,))
            sealed = su.execute("SELECT sealstore.encrypt_text('before', 'ctx')").fetchone()[0]
        wait_for_replay(su, standby_urls[0])
        world = {"tenant": tenant, "keys": keys}
        jwt_token = token(world)

        with psycopg.connect(standby_urls[1]) as s:
            def call(tok, sql, params=()):
                with s.transaction():
                    s.execute("SELECT sealstore.authenticate(%s)", (tok,))
                    return s.execute(sql, params).fetchone()[0]

            def refused(tok, sql, params=()):
                try:
                    call(tok, sql, params)
                except psycopg.Error as e:
                    return e.sqlstate
                return None

            delays = {}
            # Warm: every cache of this backend holds the current state.
            for _ in range(3):
                assert call(api_key, "SELECT sealstore.decrypt_text(%s, 'ctx')", (sealed,)) == "before"
                assert call(jwt_token, "SELECT sealstore.active_key_version()") == 1

            su.execute("SELECT sealstore.revoke_api_key(%s)", (api_id,))
            delays["revoke_api_key"] = wait_for_replay(su, standby_urls[0])
            assert refused(api_key, "SELECT 1") == "28P01"

            su.execute("SELECT sealstore.rotate_tenant_key(%s)", (tenant,))
            delays["rotate_tenant_key"] = wait_for_replay(su, standby_urls[0])
            assert call(jwt_token, "SELECT sealstore.active_key_version()") == 2
            assert call(jwt_token, "SELECT sealstore.envelope_key_version(sealstore.encrypt_text('after', 'ctx'))") == 2

            other = Keys()
            su.execute("SELECT sealstore.add_jwt_key(%s, 'HS256', %s, tenant => %s)",
                       (other.kids["HS256"], other.material("HS256"), tenant))
            wait_for_replay(su, standby_urls[0])
            other_token = token({"tenant": tenant, "keys": other})
            assert call(other_token, "SELECT sealstore.decrypt_text(%s, 'ctx')", (sealed,)) == "before"
            session = token({"tenant": tenant, "keys": other}, jti="standby-session")
            assert call(session, "SELECT sealstore.active_key_version()") == 2
            su.execute("SELECT sealstore.revoke_token('standby-session', now() + interval '5 minutes')")
            delays["revoke_token"] = wait_for_replay(su, standby_urls[0])
            assert refused(session, "SELECT 1") == "28P01"
            assert call(other_token, "SELECT sealstore.active_key_version()") == 2
            su.execute("SELECT sealstore.retire_jwt_key(%s)", (keys.kids["HS256"],))
            delays["retire_jwt_key"] = wait_for_replay(su, standby_urls[0])
            assert refused(jwt_token, "SELECT 1") == "28P01"

            su.execute("SELECT sealstore.shred_tenant(%s)", (tenant,))
            delays["shred_tenant"] = wait_for_replay(su, standby_urls[0])
            state = refused(other_token, "SELECT sealstore.decrypt_text(%s, 'ctx')", (sealed,))
            assert state in ("28P01", "42704"), state
    print("replay delays (s):", {k: round(v, 4) for k, v in delays.items()})


# The gateway with the standby in SEALSTORE_DB_REPLICA_URLS.

def replica_reads(gw, admin_token):
    """Read calls the gateway's replica 1 answered (its /metrics)."""
    text = requests.get(f"{gw.url}/metrics", headers={"Authorization": f"Bearer {admin_token}"},
                        timeout=10).text
    for line in text.splitlines():
        if line.startswith('sealstore_gateway_replica_reads_total{replica="1"}'):
            return int(float(line.split()[-1]))
    return 0


def replica_usable(gw):
    r = requests.get(f"{gw.url}/readyz", timeout=10).json()
    assert [x["name"] for x in r["replicas"]] == ["replica-1"], r
    return r["replicas"][0]["usable"]


@pytest.fixture(scope="module")
def replicated_gateway(gateway_pg_url, hs, world):
    gw = Gateway(gateway_pg_url, extra_env={
        "SEALSTORE_DB_REPLICA_URLS": env("SEALSTORE_TEST_REPLICA_GATEWAY_PG_URL"),
        "SEALSTORE_READ_YOUR_WRITES_SECS": "2"})
    wait_until(lambda: replica_usable(gw), 15)
    yield gw, mint(hs[1], hs[0], scope="admin", sub="ops")
    gw.stop()


def test_the_gateway_reads_from_the_standby_and_shows_it(replicated_gateway, world):
    gw, admin_token = replicated_gateway
    api = Api(gw.url, world["api_key"])
    before = replica_reads(gw, admin_token)
    for _ in range(10):
        r = api("GET", f"/v1/documents/{world['docs']['sealed']}")
        assert r.status_code == 200 and r.json()["content"] == "text sealed", r.text
        r = api("POST", "/v1/collections/plain/search", {"vector": [1, 2, 3], "k": 1})
        assert r.status_code == 200 and r.json()["results"][0]["id"] == str(world["docs"]["plain"]), r.text
    assert replica_reads(gw, admin_token) - before == 20
    ready = requests.get(f"{gw.url}/readyz", timeout=10).json()
    assert ready["replicas"][0]["lag_bytes"] is not None
    assert "127.0.0.1" not in json.dumps(ready)
    metrics = requests.get(f"{gw.url}/metrics", headers={"Authorization": f"Bearer {admin_token}"},
                           timeout=10).text
    assert 'sealstore_gateway_replica_usable{replica="1"} 1' in metrics


def test_a_credential_reads_its_own_writes_then_the_standby_again(replicated_gateway, world):
    gw, admin_token = replicated_gateway
    api = Api(gw.url, world["api_key"])
    before = replica_reads(gw, admin_token)
    for i in range(20):
        value = f"v{i}-{secrets.token_hex(4)}"
        assert api("PUT", "/v1/secrets/ryw", {"value": value}).status_code == 204
        r = api("GET", "/v1/secrets/ryw")
        assert r.status_code == 200 and r.json()["value"] == value, (i, r.text)
    assert replica_reads(gw, admin_token) == before, "a read inside the window went to the standby"
    time.sleep(2.2)
    assert api("GET", "/v1/secrets/ryw").status_code == 200
    assert replica_reads(gw, admin_token) == before + 1


def test_a_stopped_standby_moves_reads_to_the_primary_and_back(replicated_gateway, world):
    gw, admin_token = replicated_gateway
    api = Api(gw.url, world["api_key"])
    statuses, stop = [], threading.Event()

    def load():
        while not stop.is_set():
            statuses.append(api("GET", f"/v1/documents/{world['docs']['plain']}").status_code)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        replica_ctl("stop", "-m", "fast")
        wait_until(lambda: not replica_usable(gw), 10)
        time.sleep(1)
        replica_ctl("start", "-w", "-t", "60")
        wait_until(lambda: replica_usable(gw), 30)
        before = replica_reads(gw, admin_token)
        time.sleep(1)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert replica_reads(gw, admin_token) > before, "reads did not come back to the standby"
    assert statuses and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    print(f"reads during the standby's stop and restart: {len(statuses)}, all 200")


def replica_ctl(*args):
    """pg_ctl of the test standby, as the cluster's OS user."""
    data = env("SEALSTORE_TEST_REPLICA_DIR") + "/data"
    argv = [env("SEALSTORE_PG_BINDIR") + "/pg_ctl", "-D", data, *args]
    if args[0] == "start":
        argv += ["-l", env("SEALSTORE_TEST_REPLICA_DIR") + "/postgres.log",
                 "-o", f"-p {env('SEALSTORE_TEST_REPLICA_PORT')} -k {env('SEALSTORE_TEST_REPLICA_DIR')}"]
    if os.geteuid() == 0:
        argv = ["runuser", "-u", env("SEALSTORE_PG_OS_USER"), "--", *argv]
    subprocess.run(argv, check=True, capture_output=True, timeout=90,
                   env={k: v for k, v in os.environ.items() if not k.startswith("RUST_")})


def test_a_new_api_key_used_on_a_standby_before_replay_works_once_replayed(admin_url, standby_urls, world):
    """A lookup of an id the standby has not replayed yet is cached as a miss; creating a key
    makes every backend drop such misses once it is replayed."""
    with psycopg.connect(standby_urls[0], autocommit=True) as su_standby, \
            psycopg.connect(standby_urls[1]) as s, \
            psycopg.connect(admin_url, autocommit=True) as su:
        su_standby.execute("SELECT pg_wal_replay_pause()")
        try:
            key = su.execute("SELECT sealstore.create_api_key(%s, 'late', ARRAY['read'])",
                             (world["tenant"],)).fetchone()[0]
            with pytest.raises(psycopg.Error) as e:
                with s.transaction():
                    s.execute("SELECT sealstore.authenticate(%s)", (key,))
            assert e.value.sqlstate == "28P01"
        finally:
            su_standby.execute("SELECT pg_wal_replay_resume()")
        wait_for_replay(su, standby_urls[0])
        with s.transaction():
            who = s.execute("SELECT sealstore.authenticate(%s)", (key,)).fetchone()[0]
        assert who["tenant"] == str(world["tenant"])


def test_a_key_change_cannot_be_prepared(admin_url, world):
    """COMMIT PREPARED would run where nothing tells other backends (or standbys) to drop their
    caches: a transaction that changes keys is refused at PREPARE."""
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("BEGIN")
        su.execute("SELECT sealstore.rotate_tenant_key(%s)", (world["tenant"],))
        with pytest.raises(psycopg.Error) as e:
            su.execute("PREPARE TRANSACTION 'sealstore-key-change'")
        assert e.value.sqlstate == "0A000", e.value
        su.execute("ROLLBACK")
        versions = su.execute("SELECT count(*) FROM sealstore.key_versions(%s)", (world["tenant"],)).fetchone()[0]
        assert versions == 1, "the refused transaction's rotation was kept"
