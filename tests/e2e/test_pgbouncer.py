"""Through PgBouncer in transaction pooling mode (Debian's 1.18, made by `.ci/lib/pgbouncer.sh`
for the test command's pooler tier), with one server connection per user, so that every client
of a user takes turns on the same backend: the tenant context never passes from one client's
transaction to the next one's, also with interleaved transactions, a WITH HOLD cursor and a
prepared statement left on the server connection; isolation holds as it does directly. The
gateway works through it too (SEALSTORE_DB_TRANSACTION_POOLING), and refuses a pooler entry
that does not pin its settings."""
import secrets
import socket
import subprocess
import threading
import time

import psycopg
import pytest

from clients import Api, mint
from harness import Gateway, env


@pytest.fixture(scope="module")
def bouncer_urls():
    return env("SEALSTORE_TEST_PGBOUNCER_PG_URL"), env("SEALSTORE_TEST_PGBOUNCER_APP_PG_URL")


@pytest.fixture(scope="module")
def world(admin_url):
    """Two tenants with an API key each and a row each in a table under tenant isolation."""
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("SET log_statement = 'none'")
        out = {}
        su.execute("DROP TABLE IF EXISTS pooled_notes")
        su.execute("CREATE TABLE pooled_notes (id serial PRIMARY KEY, tenant_id uuid NOT NULL, body text)")
        su.execute("SELECT sealstore.enable_tenant_isolation('pooled_notes')")
        su.execute("GRANT SELECT, INSERT ON pooled_notes TO sealstore_app")
        su.execute("GRANT USAGE ON SEQUENCE pooled_notes_id_seq TO sealstore_app")
        for name in ("a", "b"):
            t = su.execute("SELECT sealstore.create_tenant(%s)", (f"pooled-{name}-{secrets.token_hex(3)}",)).fetchone()[0]
            key = su.execute("SELECT sealstore.create_api_key(%s, 'pooled', ARRAY['read', 'write'])", (t,)).fetchone()[0]
            with su.transaction():
                su.execute("SELECT sealstore.act_as_tenant(%s)", (t,))
                su.execute("INSERT INTO pooled_notes (body) VALUES (%s)", (f"note of {name}",))
            out[name] = {"tenant": t, "key": key}
    return out


def connect(url):
    # PgBouncer 1.18 cannot keep protocol-level prepared statements in transaction mode: psycopg
    # must not prepare (it would after 5 runs of a query).
    return psycopg.connect(url, prepare_threshold=None, autocommit=True)


def test_clients_share_one_backend_and_never_each_others_context(world, bouncer_urls):
    with connect(bouncer_urls[1]) as a, connect(bouncer_urls[1]) as b:
        with a.transaction():
            a.execute("SELECT sealstore.authenticate(%s)", (world["a"]["key"],))
            pid_a = a.execute("SELECT pg_backend_pid()").fetchone()[0]
            assert a.execute("SELECT body FROM pooled_notes").fetchall() == [("note of a",)]
        with b.transaction():
            assert b.execute("SELECT pg_backend_pid()").fetchone()[0] == pid_a
            with pytest.raises(psycopg.Error) as e:
                b.execute("SELECT sealstore.current_tenant()")
            assert e.value.sqlstate == "28000"
        with b.transaction():
            with pytest.raises(psycopg.Error) as e:
                b.execute("SELECT body FROM pooled_notes")
            assert e.value.sqlstate == "28000"
        with b.transaction():
            b.execute("SELECT sealstore.authenticate(%s)", (world["b"]["key"],))
            assert b.execute("SELECT body FROM pooled_notes").fetchall() == [("note of b",)]
            b.execute("INSERT INTO pooled_notes (body) VALUES ('second of b')")
        with a.transaction():
            assert a.execute("SELECT pg_backend_pid()").fetchone()[0] == pid_a
            assert a.execute("SELECT sealstore.claims()").fetchone()[0] is None
            a.execute("SELECT sealstore.authenticate(%s)", (world["a"]["key"],))
            assert a.execute("SELECT count(*) FROM pooled_notes").fetchone()[0] == 1


def test_interleaved_transactions_take_turns_without_passing_the_context(world, bouncer_urls):
    """A's transaction holds the only server connection; B's statements wait for it, then run
    on the same backend after A's commit, without A's context."""
    with connect(bouncer_urls[1]) as a, connect(bouncer_urls[1]) as b:
        seen = {}
        a.execute("BEGIN")
        a.execute("SELECT sealstore.authenticate(%s)", (world["a"]["key"],))
        pid_a = a.execute("SELECT pg_backend_pid()").fetchone()[0]

        def other():
            try:
                with b.transaction():
                    seen["pid"] = b.execute("SELECT pg_backend_pid()").fetchone()[0]
                    seen["tenant"] = b.execute("SELECT sealstore.current_tenant()").fetchone()[0]
            except psycopg.Error as e:
                seen["sqlstate"] = e.sqlstate
            seen["at"] = time.monotonic()

        t = threading.Thread(target=other)
        t.start()
        time.sleep(0.5)
        assert "at" not in seen, "B ran while A's transaction held the only server connection"
        assert a.execute("SELECT sealstore.current_tenant()").fetchone()[0] == world["a"]["tenant"]
        committed = time.monotonic()
        a.execute("COMMIT")
        t.join(10)
        assert seen.get("pid") == pid_a
        assert seen.get("sqlstate") == "28000" and "tenant" not in seen
        assert seen["at"] >= committed


def test_a_rolled_back_or_failed_transaction_leaves_no_context(world, bouncer_urls):
    with connect(bouncer_urls[1]) as a, connect(bouncer_urls[1]) as b:
        a.execute("BEGIN")
        a.execute("SELECT sealstore.authenticate(%s)", (world["a"]["key"],))
        a.execute("ROLLBACK")
        a.execute("BEGIN")
        a.execute("SELECT sealstore.authenticate(%s)", (world["a"]["key"],))
        with pytest.raises(psycopg.Error):
            a.execute("SELECT 1/0")
        a.execute("ROLLBACK")
        with b.transaction():
            with pytest.raises(psycopg.Error) as e:
                b.execute("SELECT sealstore.current_tenant()")
            assert e.value.sqlstate == "28000"


def test_a_with_hold_cursor_cannot_carry_the_context_to_the_next_client(world, bouncer_urls):
    with connect(bouncer_urls[1]) as a, connect(bouncer_urls[1]) as b:
        for sql in ("DECLARE c CURSOR WITH HOLD FOR SELECT sealstore.current_tenant()",
                    "DECLARE c CURSOR WITH HOLD FOR SELECT body FROM pooled_notes"):
            a.execute("BEGIN")
            a.execute("SELECT sealstore.authenticate(%s)", (world["a"]["key"],))
            with pytest.raises(psycopg.Error) as e:
                a.execute(sql)
                a.execute("COMMIT")  # a WITH HOLD cursor is materialised at commit
            assert e.value.sqlstate == "0A000", sql
            a.execute("ROLLBACK")
        with b.transaction():
            assert b.execute("SELECT count(*) FROM pg_cursors").fetchone()[0] == 0


def test_a_prepared_statement_left_on_the_backend_runs_with_its_callers_context(world, bouncer_urls):
    """SQL-level PREPARE outlives the transaction on the server connection, so the next client
    of the backend can EXECUTE it: it then runs under that client's context, not the
    preparer's."""
    with connect(bouncer_urls[1]) as a, connect(bouncer_urls[1]) as b:
        name = f"pooled_{secrets.token_hex(4)}"
        with a.transaction():
            a.execute("SELECT sealstore.authenticate(%s)", (world["a"]["key"],))
            a.execute(f"PREPARE {name} AS SELECT body FROM pooled_notes ORDER BY id")
            assert a.execute(f"EXECUTE {name}").fetchall() == [("note of a",)]
        with b.transaction():
            with pytest.raises(psycopg.Error) as e:
                b.execute(f"EXECUTE {name}")
            assert e.value.sqlstate == "28000"
        with b.transaction():
            b.execute("SELECT sealstore.authenticate(%s)", (world["b"]["key"],))
            assert [r[0] for r in b.execute(f"EXECUTE {name}").fetchall()][0] == "note of b"
        with b.transaction():
            b.execute(f"DEALLOCATE {name}")


# The gateway through PgBouncer: every request's call is one transaction on one of the gateway
# user's two server connections, which all requests share in turn (a statement prepared on one
# would be unknown on the other).

@pytest.fixture(scope="module")
def pooled_gateway_url():
    return env("SEALSTORE_TEST_PGBOUNCER_GATEWAY_PG_URL")


@pytest.fixture(scope="module")
def pooled_gateway(pooled_gateway_url, world, hs):
    gw = Gateway(pooled_gateway_url, extra_env={"SEALSTORE_DB_TRANSACTION_POOLING": "true",
                                                "SEALSTORE_RATE_PER_IP": "1000000",
                                                "SEALSTORE_RATE_PER_KEY": "1000000"})
    admin = mint(hs[1], hs[0], scope="admin", sub="ops")
    apis = {name: Api(gw.url, world[name]["key"]) for name in ("a", "b")}
    for name, api in apis.items():
        r = api("POST", "/v1/collections", {"name": "pooled", "dims": 3})
        assert r.status_code == 201, r.text
    yield gw, apis, admin
    gw.stop()


def test_the_gateway_serves_every_route_through_the_pooler(pooled_gateway):
    gw, apis, admin = pooled_gateway
    assert Api(gw.url)("GET", "/readyz").status_code == 200
    a = apis["a"]
    r = a("POST", "/v1/collections/pooled/documents",
          {"content": "pooled text", "embedding": [1, 0, 0], "metadata": {"n": 1.50}})
    assert r.status_code == 201, r.text
    doc = r.json()["id"]
    r = a("GET", f"/v1/documents/{doc}")
    assert r.status_code == 200 and r.json()["content"] == "pooled text", r.text
    assert r.json()["metadata"] == {"n": 1.50}
    r = a("POST", "/v1/collections/pooled/search", {"vector": [1, 0, 0], "k": 5})
    assert r.status_code == 200 and [x["id"] for x in r.json()["results"]] == [doc], r.text
    assert a("PUT", "/v1/secrets/pooled", {"value": "pooled secret"}).status_code == 204
    r = a("GET", "/v1/secrets/pooled")
    assert r.status_code == 200 and r.json()["value"] == "pooled secret", r.text
    assert a("DELETE", "/v1/secrets/pooled").status_code == 204
    assert a("DELETE", f"/v1/documents/{doc}").status_code == 204
    assert a("GET", f"/v1/documents/{doc}").status_code == 404
    # An administrator's JWT: tenant lifecycle (writes) and the metrics (a read).
    ops = Api(gw.url, admin)
    r = ops("POST", "/v1/tenants", {"name": f"pooled-{secrets.token_hex(3)}"})
    assert r.status_code == 201, r.text
    tenant = r.json()["id"]
    r = ops("POST", f"/v1/tenants/{tenant}/api-keys", {"name": "pooled", "scopes": ["read", "write"]})
    assert r.status_code == 201, r.text
    key, key_id = r.json()["key"], r.json()["id"]
    assert Api(gw.url, key)("PUT", "/v1/secrets/k", {"value": "v"}).status_code == 204
    assert ops("DELETE", f"/v1/api-keys/{key_id}").status_code == 204
    assert Api(gw.url, key)("GET", "/v1/secrets/k").status_code == 401
    assert ops("POST", f"/v1/tenants/{tenant}/rotate-key").status_code == 200
    assert ops("DELETE", f"/v1/tenants/{tenant}").status_code == 204
    assert ops("GET", "/metrics").status_code == 200


def test_requests_of_two_tenants_share_the_backends_and_never_each_others_data(pooled_gateway):
    gw, apis, _ = pooled_gateway
    docs = {}
    for name, api in apis.items():
        r = api("POST", "/v1/collections/pooled/documents",
                {"content": f"only {name}", "embedding": [0, 1, 0]})
        assert r.status_code == 201, r.text
        docs[name] = r.json()["id"]
    wrong = []

    def client(name, other):
        api = apis[name]
        for i in range(40):
            if i % 2:
                r = api("GET", f"/v1/documents/{docs[name]}")
                if r.status_code != 200 or r.json()["content"] != f"only {name}":
                    wrong.append((name, r.status_code, r.text))
            else:
                r = api("GET", f"/v1/documents/{docs[other]}")
                if r.status_code != 404:
                    wrong.append((name, r.status_code, r.text))
            r = api("POST", "/v1/collections/pooled/search", {"vector": [0, 1, 0], "k": 10})
            contents = [x["id"] for x in r.json().get("results", [])] if r.status_code == 200 else None
            if contents is None or docs[other] in contents or docs[name] not in contents:
                wrong.append((name, r.status_code, r.text))

    threads = [threading.Thread(target=client, args=pair) for pair in
               (("a", "b"), ("b", "a"), ("a", "b"), ("b", "a"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not wrong, wrong[:3]


def test_a_failed_call_leaves_the_shared_backend_clean(pooled_gateway, world):
    """A read that fails inside its read-only transaction (an unknown id, an unknown key) and a
    write that fails (a duplicate collection) roll back; the next request on the same backend,
    of another tenant, runs in a fresh transaction."""
    gw, apis, _ = pooled_gateway
    # Well formed, so that the database (not the gateway's format check) refuses it.
    key = world["a"]["key"]
    unknown_key = key[:-4] + ("aaaa" if not key.endswith("aaaa") else "bbbb")
    for _ in range(3):
        assert apis["a"]("GET", f"/v1/documents/{'0' * 8}-0000-4000-8000-{'0' * 12}").status_code == 404
        assert apis["a"]("GET", "/v1/secrets/pooled", token=unknown_key).status_code == 401
        assert apis["a"]("POST", "/v1/collections", {"name": "pooled", "dims": 3}).status_code == 409
        r = apis["b"]("PUT", "/v1/secrets/after-failure", {"value": "b's"})
        assert r.status_code == 204, r.text
        assert apis["b"]("GET", "/v1/secrets/after-failure").json()["value"] == "b's"
    with psycopg.connect(env("SEALSTORE_TEST_PG_URL"), autocommit=True) as su:
        # The change feed's listening connection sleeps in its call (active) by design.
        states = su.execute("SELECT state FROM pg_stat_activity WHERE usename = 'sealstore_gateway'"
                            " AND datname = current_database()"
                            " AND query NOT LIKE '%%gateway_events_wait%%'").fetchall()
    assert states and all(s == ("idle",) for s in states), states


def test_requests_cut_off_mid_call_leave_no_answer_behind(pooled_gateway):
    """Clients that send a request and hang up while its call is under way: the gateway drops
    the call, and the connection it was on must not serve the next call (behind PgBouncer 1.18
    the unanswered statement could end on a server connection handed to another client). Other
    tenants' requests meanwhile get their own answers, and the gateway keeps serving."""
    gw, apis, _ = pooled_gateway
    docs = {}
    for name, api in apis.items():
        r = api("POST", "/v1/collections/pooled/documents", {"content": f"cut {name}", "embedding": [0, 0, 1]})
        docs[name] = r.json()["id"]
    host, port = gw.url.removeprefix("http://").rsplit(":", 1)
    body = b'{"vector": [0, 0, 1], "k": 100}'
    stop, wrong = threading.Event(), []

    def hang_up():
        while not stop.is_set():
            with socket.create_connection((host, int(port)), timeout=5) as s:
                s.sendall(b"POST /v1/collections/pooled/search HTTP/1.1\r\nHost: " + host.encode() +
                          b"\r\nAuthorization: Bearer " + apis["a"].token.encode() +
                          b"\r\nContent-Type: application/json\r\nContent-Length: " +
                          str(len(body)).encode() + b"\r\n\r\n" + body)
                time.sleep(0.0005 * secrets.randbelow(4))

    def check(name):
        for _ in range(60):
            r = apis[name]("GET", f"/v1/documents/{docs[name]}")
            if r.status_code != 200 or r.json()["content"] != f"cut {name}":
                wrong.append((name, r.status_code, r.text[:200]))

    cutters = [threading.Thread(target=hang_up) for _ in range(3)]
    checkers = [threading.Thread(target=check, args=(n,)) for n in ("a", "b")]
    for t in cutters + checkers:
        t.start()
    for t in checkers:
        t.join(120)
    stop.set()
    for t in cutters:
        t.join(10)
    assert not wrong, wrong[:3]
    assert apis["b"]("GET", f"/v1/documents/{docs['b']}").status_code == 200


def test_reads_run_in_read_only_transactions_through_the_pooler(pooled_gateway, world):
    """Behind the pooler the gateway's connections are not read-only by default, so each read is
    sent in a read-only transaction block: a key that only reads is never stamped as used
    (the stamp is a write, skipped where writing is not allowed); its first write stamps it."""
    gw, _, _ = pooled_gateway
    with psycopg.connect(env("SEALSTORE_TEST_PG_URL"), autocommit=True) as su:
        su.execute("SET log_statement = 'none'")
        key = su.execute("SELECT sealstore.create_api_key(%s, 'reader', ARRAY['read', 'write'])",
                         (world["a"]["tenant"],)).fetchone()[0]
        stamp = "SELECT last_used_at FROM sealstore.api_keys WHERE name = 'reader' AND tenant_id = %s"
        api = Api(gw.url, key)
        for _ in range(3):
            assert api("POST", "/v1/collections/pooled/search", {"vector": [1, 1, 1]}).status_code == 200
            assert api("GET", "/v1/secrets/none").status_code == 404
        assert su.execute(stamp, (world["a"]["tenant"],)).fetchone() == (None,)
        assert api("PUT", "/v1/secrets/reader", {"value": "x"}).status_code == 204
        assert su.execute(stamp, (world["a"]["tenant"],)).fetchone()[0] is not None


def test_a_pooler_entry_without_the_pins_stops_the_gateway_with_the_reason(pooled_gateway_url):
    """The pooler's plain entry of the same database has no connect_query: the gateway's role
    would run with the database's defaults (search_path, no statement timeout), so the gateway
    stops at start, naming what is missing, and never the URL's password."""
    plain = pooled_gateway_url.rsplit("/", 1)[0] + "/sealstore_e2e"
    e = {"PATH": "/usr/bin:/bin", "SEALSTORE_GATEWAY_PG_URL": plain,
         "SEALSTORE_GATEWAY_LISTEN": "127.0.0.1:0", "SEALSTORE_DB_TRANSACTION_POOLING": "true"}
    p = subprocess.run([env("SEALSTORE_GATEWAY_BIN")], env=e, capture_output=True, text=True, timeout=30)
    assert p.returncode == 64, p.stdout + p.stderr
    out = p.stdout + p.stderr
    assert "search_path" in out and "statement_timeout" in out and "--print-connect-query" in out, out
    assert plain.split(":")[2].split("@")[0] not in out
