"""The gateway and its database: a busy pool is overload, reads share connections and keep to
their tenant, a full read connection recovers, the database stopped and started under
requests, and SIGTERM with requests in flight."""
import concurrent.futures
import secrets
import threading
import time

import psycopg
import pytest
import requests

import keys
from harness import Cluster, Gateway, create_login_role, wait_until
from clients import Api, assert_error

DIMS = 4


def test_a_busy_pool_is_overload_not_an_outage(gateway_pg_url, admin_url, tenants):
    """All connections busy: 503 `overloaded` after the pool wait, and the next request is
    served at once (no fail-fast mode, which is for an unreachable database)."""
    g = Gateway(gateway_pg_url, {"SEALSTORE_DB_POOL_SIZE": "1", "SEALSTORE_DB_TIMEOUT_SECS": "1"})
    try:
        api = Api(g.url, tenants[0]["keys"]["rw"]["key"])
        assert api("PUT", "/v1/secrets/busy", {"value": "v0"}).status_code == 204
        done = []
        with psycopg.connect(admin_url) as su:
            su.execute("SELECT 1 FROM sealstore.secrets WHERE name = 'busy' AND tenant_id = %s FOR UPDATE",
                       (tenants[0]["id"],))
            t = threading.Thread(target=lambda: done.append(api("PUT", "/v1/secrets/busy", {"value": "v1"}).status_code))
            t.start()
            time.sleep(0.5)  # the only write connection now waits on the lock
            r = api("PUT", "/v1/secrets/other", {"value": "x"})
            assert_error(r, 503, "overloaded")
            assert r.headers["Retry-After"] == "1"
            su.rollback()
        t.join(10)
        assert done == [204]
        assert api("PUT", "/v1/secrets/other", {"value": "x"}).status_code == 204
        assert api("GET", "/v1/secrets/busy").json()["value"] == "v1"
    finally:
        g.stop()


def read_connections(su, waiting_on_a_lock=False) -> int:
    """Open read connections of all gateways on this server (the read pool's application name),
    or those of them whose statement waits on a lock."""
    return su.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sealstore-gateway-read'"
                      + (" AND wait_event_type = 'Lock'" if waiting_on_a_lock else "")).fetchone()[0]


def test_concurrent_reads_share_a_connection_and_keep_to_their_tenant(gateway_pg_url, admin_url, tenants):
    """Reads of two tenants at once through one read connection, where they follow one another
    without waiting (pipelined): every answer is its own caller's, and a call that fails in the
    database (a search of the wrong dimension) fails alone."""
    own = []
    for t in tenants:
        api = t["api"]
        coll = f"lane-{secrets.token_hex(3)}"
        assert api("POST", "/v1/collections", {"name": coll, "dims": DIMS}).status_code == 201
        docs = {}
        for n in range(3):
            content = f"{t['id']} lane doc {n}"
            r = api("POST", f"/v1/collections/{coll}/documents",
                    {"content": content, "embedding": [n, 1, 0, 0], "metadata": {"n": n}})
            assert r.status_code == 201, r.text
            docs[r.json()["id"]] = content
        own.append((coll, docs))
    with psycopg.connect(admin_url, autocommit=True) as su:
        before = read_connections(su)
        g = Gateway(gateway_pg_url, {"SEALSTORE_DB_READ_CONNECTIONS": "1", "SEALSTORE_DB_PIPELINE_DEPTH": "1024",
                              "SEALSTORE_RATE_PER_IP": "100000", "SEALSTORE_RATE_PER_KEY": "100000"})
        try:
            jobs = []
            for rnd in range(20):
                for i, t in enumerate(tenants):
                    api = Api(g.url, t["keys"]["r"]["key"])
                    coll, docs = own[i]
                    other = list(own[1 - i][1])[rnd % 3]
                    mine = list(docs)[rnd % 3]
                    jobs += [
                        (lambda api=api, d=mine: api("GET", f"/v1/documents/{d}"), ("own", docs[mine])),
                        (lambda api=api, d=other: api("GET", f"/v1/documents/{d}"), ("other",)),
                        (lambda api=api, c=coll: api("POST", f"/v1/collections/{c}/search",
                                                     {"vector": [1, 1, 0, 0], "k": 3}), ("search", set(docs))),
                        (lambda api=api, c=coll: api("POST", f"/v1/collections/{c}/search",
                                                     {"vector": [1, 1, 0], "k": 3}), ("dims",)),
                    ]
            with concurrent.futures.ThreadPoolExecutor(32) as pool:
                answers = list(pool.map(lambda job: job[0](), jobs))
            wrong = 0
            for (_, want), r in zip(jobs, answers):
                if want[0] == "own":
                    wrong += r.status_code != 200 or r.json()["content"] != want[1]
                elif want[0] == "other":
                    wrong += r.status_code != 404 or r.json()["error"]["code"] != "not_found"
                elif want[0] == "search":
                    wrong += r.status_code != 200 or {x["id"] for x in r.json()["results"]} != want[1]
                else:
                    wrong += r.status_code != 400 or r.json()["error"]["code"] != "invalid_request"
            assert (len(answers), wrong) == (160, 0)
            # All of them went over the one connection this gateway opened for reads.
            assert read_connections(su) - before == 1
        finally:
            g.stop()


def test_a_full_read_connection_is_overload_and_recovers(gateway_pg_url, admin_url, admin, tenants):
    """Past SEALSTORE_DB_PIPELINE_DEPTH calls waiting on every read connection, a read is 503
    `overloaded` at once; the waiting ones complete, and the next read is served."""
    api0 = tenants[0]["api"]
    coll = f"full-{secrets.token_hex(3)}"
    assert api0("POST", "/v1/collections", {"name": coll, "dims": DIMS}).status_code == 201
    doc = api0("POST", f"/v1/collections/{coll}/documents", {"content": "held", "embedding": [1, 0, 0, 0]}).json()["id"]
    g = Gateway(gateway_pg_url, {"SEALSTORE_DB_READ_CONNECTIONS": "1", "SEALSTORE_DB_PIPELINE_DEPTH": "2"})
    try:
        api = Api(g.url, tenants[0]["keys"]["r"]["key"])
        assert api("GET", f"/v1/documents/{doc}").status_code == 200  # the connection is open
        done = []
        with psycopg.connect(admin_url) as su:
            su.execute("LOCK TABLE sealstore.documents IN ACCESS EXCLUSIVE MODE")
            waiting = [threading.Thread(target=lambda: done.append(api("GET", f"/v1/documents/{doc}")))
                       for _ in range(2)]
            # The first waits on the lock in the server, the second behind it on the connection.
            waiting[0].start()
            with psycopg.connect(admin_url, autocommit=True) as watch:
                assert wait_until(lambda: read_connections(watch, waiting_on_a_lock=True) == 1, 10)
            waiting[1].start()
            time.sleep(0.5)
            began = time.monotonic()
            r = api("GET", f"/v1/documents/{doc}")
            assert_error(r, 503, "overloaded")
            assert r.headers["Retry-After"] == "1"
            assert time.monotonic() - began < 1, "refused at once, not after the pool wait (2 s)"
            su.rollback()
        for t in waiting:
            t.join(10)
        assert [x.status_code for x in done] == [200, 200]
        assert all(x.json()["content"] == "held" for x in done)
        assert api("GET", f"/v1/documents/{doc}").status_code == 200
        # Metrics are a read call too; none is left counted in flight.
        assert "sealstore_gateway_db_reads_in_flight 0\n" in Api(g.url, admin.token)("GET", "/metrics").text
    finally:
        g.stop()


@pytest.fixture
def own_cluster():
    c = Cluster("api-restart")
    c.configure(master_key_file=str(c.write_private("master.key", keys.new_key_hex())))
    c.restart()
    with psycopg.connect(c.url(), autocommit=True) as su:
        su.execute("CREATE DATABASE sealstore")
    with psycopg.connect(c.url(db="sealstore"), autocommit=True) as su:
        su.execute("CREATE EXTENSION sealstore")
        t = su.execute("SELECT sealstore.create_tenant('restart')").fetchone()[0]
        key = su.execute("SELECT sealstore.create_api_key(%s, 'k', ARRAY['read','write'])", (t,)).fetchone()[0]
    app = create_login_role(c.url(db="sealstore"), "gw_restart", "sealstore_gateway")
    yield c, app, key
    c.destroy()


def test_database_stopped_and_started_during_requests(own_cluster):
    cluster, app, key = own_cluster
    # One read connection, opened before the stop: after the restart the closed one must give
    # way to a new one.
    g = Gateway(app, {"SEALSTORE_DB_TIMEOUT_SECS": "1", "SEALSTORE_DB_READ_CONNECTIONS": "1"})
    try:
        api = Api(g.url, key)
        acked, statuses, stop = [], [], threading.Event()

        def writer(w):
            n = 0
            while not stop.is_set():
                name = f"w{w}-{n}"
                try:
                    r = api("PUT", f"/v1/secrets/{name}", {"value": f"value {name}"})
                except requests.RequestException:
                    continue
                statuses.append((r.status_code, r.headers.get("Retry-After")))
                if r.status_code == 204:
                    acked.append(name)
                n += 1

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        assert wait_until(lambda: len(acked) > 20, 20)
        assert api("GET", f"/v1/secrets/{acked[0]}").status_code == 200
        cluster.stop()
        assert wait_until(lambda: sum(s == 503 for s, _ in statuses) > 10, 20)
        down_started = time.monotonic()
        cluster.restart()
        assert wait_until(lambda: statuses[-1][0] == 204, 30), statuses[-5:]
        recovered = time.monotonic() - down_started
        acked_at_recovery = len(acked)
        assert wait_until(lambda: len(acked) > acked_at_recovery + 20, 20)
        stop.set()
        for t in threads:
            t.join(20)
        # Only 204 and 503 (with Retry-After): no 500, nothing else.
        kinds = {s for s, _ in statuses}
        assert kinds <= {204, 503}, kinds
        assert all(ra is not None for s, ra in statuses if s == 503)
        assert recovered < 30
        # Reads recover too (the first ones may still meet the closed connection), and every
        # acknowledged write is there and decrypts.
        assert wait_until(lambda: api("GET", f"/v1/secrets/{acked[0]}").status_code == 200, 10)
        missing = [n for n in acked if api("GET", f"/v1/secrets/{n}").json().get("value") != f"value {n}"]
        assert missing == []
    finally:
        g.stop()


def test_sigterm_lets_in_flight_api_requests_complete(own_cluster):
    cluster, app, key = own_cluster
    g = Gateway(app)
    api = Api(g.url, key)
    assert api("PUT", "/v1/secrets/locked", {"value": "v0"}).status_code == 204
    results = []
    with psycopg.connect(cluster.url(db="sealstore")) as su:
        # Hold the secret's row: the writes below wait on the lock inside their transactions.
        su.execute("SELECT 1 FROM sealstore.secrets WHERE name = 'locked' FOR UPDATE")
        threads = [threading.Thread(target=lambda i=i: results.append(
            api("PUT", "/v1/secrets/locked", {"value": f"v{i}"}).status_code)) for i in range(1, 4)]
        for t in threads:
            t.start()
        time.sleep(1)
        g.proc.send_signal(15)
        time.sleep(1)
        assert results == []  # still waiting, not cut off
        su.rollback()
    for t in threads:
        t.join(20)
    assert results == [204, 204, 204]
    assert g.wait(15) == 0
