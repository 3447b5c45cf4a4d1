"""Through PgBouncer in transaction pooling mode (Debian's 1.18, made by `.ci/lib/pgbouncer.sh`
for the test command's pooler tier), with one server connection per user, so that every client
of a user takes turns on the same backend: the tenant context never passes from one client's
transaction to the next one's, also with interleaved transactions, a WITH HOLD cursor and a
prepared statement left on the server connection; isolation holds as it does directly."""
import secrets
import threading
import time

import psycopg
import pytest

from harness import env


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
