"""pg_dump of a database using Sealstore, restored into fresh clusters: with the same master key
every value decrypts (and nothing is encrypted twice); with another master key every use fails
cleanly and nothing is modified."""
import subprocess

import psycopg
import pytest

import keys
from harness import Cluster, env

ROWS = 200


def make_cluster(name, key_hex):
    c = Cluster(name)
    c.configure(master_key_file=str(c.write_private("master.key", key_hex)))
    c.restart()
    return c


def run(argv):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def dumped(tmp_path_factory):
    key = keys.new_key_hex()
    src = make_cluster("dump-src", key)
    with psycopg.connect(src.url(), autocommit=True) as su:
        su.execute("CREATE DATABASE app")
    with psycopg.connect(src.url(db="app")) as conn:
        conn.execute("CREATE EXTENSION sealstore")
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY, tenant_id uuid, body bytea, body_idx bytea)")
        tenants = [conn.execute("SELECT sealstore.create_tenant(%s, %s)", (f"t{i}", alg)).fetchone()[0]
                   for i, alg in enumerate(["xchacha20-poly1305", "aes-256-gcm"])]
        conn.execute("SELECT sealstore.rotate_tenant_key(%s)", (tenants[0],))
        for n, t in enumerate(tenants):
            conn.execute("SELECT sealstore.act_as_tenant(%s)", (t,))
            conn.execute(
                "INSERT INTO notes SELECT g, %s, sealstore.encrypt_text('note ' || g, g::text), "
                "sealstore.blind_index('note ' || g, 'notes.body') "
                "FROM generate_series(%s::int, %s::int) g", (t, n * ROWS + 1, (n + 1) * ROWS))
            conn.execute("SELECT sealstore.put_secret('api', %s)", (f"secret-of-{n}",))
        conn.commit()
        source_rows = conn.execute("SELECT id, body FROM notes ORDER BY id").fetchall()
        source_keys = conn.execute(
            "SELECT tenant_id, version, wrapped FROM sealstore.tenant_keys ORDER BY 1, 2").fetchall()
    dump = tmp_path_factory.mktemp("dump") / "app.dump"
    run([env("SEALSTORE_PG_BINDIR") + "/pg_dump", "-Fc", "-f", dump, src.url(db="app")])
    src.destroy()
    yield {"key": key, "dump": dump, "tenants": tenants, "rows": source_rows, "keys": source_keys}


def restore(c: Cluster, dump):
    with psycopg.connect(c.url(), autocommit=True) as su:
        su.execute("CREATE DATABASE app")
    run([env("SEALSTORE_PG_BINDIR") + "/pg_restore", "--exit-on-error", "-d", c.url(db="app"), dump])


def test_restore_with_the_same_master_key_decrypts_everything(dumped):
    c = make_cluster("dump-same", dumped["key"])
    try:
        restore(c, dumped["dump"])
        with psycopg.connect(c.url(db="app")) as conn:
            # Restored bytes are the source's bytes: nothing was encrypted again.
            assert conn.execute("SELECT id, body FROM notes ORDER BY id").fetchall() == dumped["rows"]
            for n, t in enumerate(dumped["tenants"]):
                conn.execute("SELECT sealstore.act_as_tenant(%s)", (t,))
                bad = conn.execute(
                    "SELECT count(*) FROM notes WHERE tenant_id = %s AND "
                    "(sealstore.decrypt_text(body, id::text) <> 'note ' || id OR "
                    " body_idx <> sealstore.blind_index('note ' || id, 'notes.body'))", (t,)).fetchone()[0]
                assert bad == 0
                assert conn.execute("SELECT sealstore.get_secret('api')").fetchone()[0] == f"secret-of-{n}"
                conn.commit()
            versions = conn.execute(
                "SELECT version, active FROM sealstore.key_versions(%s) ORDER BY 1",
                (dumped["tenants"][0],)).fetchall()
            assert versions == [(1, False), (2, True)]
            # The restored database keeps working: new tenants and audit rows.
            conn.execute("SELECT sealstore.create_tenant('after-restore')")
            conn.commit()
            assert conn.execute("SELECT count(*) FROM sealstore.audit_log").fetchone()[0] == 4
    finally:
        c.destroy()


def test_restore_with_another_master_key_fails_cleanly_and_modifies_nothing(dumped):
    c = make_cluster("dump-other", keys.new_key_hex())
    try:
        restore(c, dumped["dump"])
        with psycopg.connect(c.url(db="app"), autocommit=True) as conn:
            for t in dumped["tenants"]:
                for sql in ("SELECT sealstore.act_as_tenant(%s)", "SELECT sealstore.rotate_tenant_key(%s)"):
                    with pytest.raises(psycopg.Error) as info:
                        conn.execute(sql, (t,))
                    # Not corruption: the keys name a master key this server does not hold.
                    assert info.value.sqlstate == "55000", str(info.value)
                    assert info.value.diag.message_primary == \
                        "the loaded master key did not wrap this database's keys"
                    assert keys.fingerprint(dumped["key"]) in info.value.diag.message_detail
            assert conn.execute("SELECT id, body FROM notes ORDER BY id").fetchall() == dumped["rows"]
            assert conn.execute(
                "SELECT tenant_id, version, wrapped FROM sealstore.tenant_keys ORDER BY 1, 2"
            ).fetchall() == dumped["keys"]
            # key_versions shows which master key the keys need, so an operator can tell.
            fps = {r[0] for r in conn.execute(
                "SELECT master_fingerprint FROM sealstore.key_versions(%s)", (dumped["tenants"][0],))}
            assert fps == {keys.fingerprint(dumped["key"])}
            assert conn.execute("SELECT sealstore.master_key_fingerprint()").fetchone()[0] not in fps
    finally:
        c.destroy()
