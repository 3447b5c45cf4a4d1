"""Master key rotation on a real server, following docs/operations.md's procedure: restart with the new
key and the previous one, re-wrap (interrupted, then resumed), restart with the new key only.
Data is never rewritten; every value decrypts at every step."""
import secrets

import psycopg
import pytest

import keys
from clients import mint
from harness import Cluster


def fingerprints(conn):
    return conn.execute("SELECT master_fingerprint, current, keys FROM sealstore.master_key_usage()").fetchall()


def snapshot(conn):
    return conn.execute("SELECT id, body FROM docs ORDER BY id").fetchall()


def check_all_decrypt(conn, tenants):
    for n, t in enumerate(tenants):
        conn.execute("SELECT sealstore.act_as_tenant(%s)", (t,))
        bad = conn.execute("SELECT count(*) FROM docs WHERE tenant_id = %s AND "
                           "sealstore.decrypt_text(body, id::text) <> 'doc ' || id", (t,)).fetchone()[0]
        assert bad == 0
        assert conn.execute("SELECT sealstore.get_secret('s')").fetchone()[0] == f"secret {n}"
        conn.commit()


def authenticate(conn, token):
    return conn.execute("SELECT sealstore.authenticate(%s) ->> 'tenant'", (token,)).fetchone()[0]


def test_rotation_rewraps_every_key_resumably_without_touching_data():
    k1, k2 = keys.new_key_hex(), keys.new_key_hex()
    c = Cluster("master-rotation")
    try:
        f1 = c.write_private("k1.key", k1)
        f2 = c.write_private("k2.key", k2)
        c.configure(master_key_file=str(f1))
        c.restart()
        with psycopg.connect(c.url()) as conn:
            conn.execute("CREATE EXTENSION sealstore")
            conn.execute("CREATE TABLE docs (id int PRIMARY KEY, tenant_id uuid, body bytea)")
            tenants = [conn.execute("SELECT sealstore.create_tenant(%s, %s)", (f"t{i}", a)).fetchone()[0]
                       for i, a in enumerate(["xchacha20-poly1305", "aes-256-gcm"])]
            conn.execute("SELECT sealstore.rotate_tenant_key(%s)", (tenants[0],))
            for n, t in enumerate(tenants):
                conn.execute("SELECT sealstore.act_as_tenant(%s)", (t,))
                conn.execute("INSERT INTO docs SELECT g, %s, sealstore.encrypt_text('doc ' || g, g::text) "
                             "FROM generate_series(%s::int, %s::int) g", (t, n * 100 + 1, n * 100 + 100))
                conn.execute("SELECT sealstore.put_secret('s', %s)", (f"secret {n}",))
            # An HS256 JWT key: its secret is sealed under the master key too.
            hs_secret = secrets.token_hex(32)
            conn.execute("SELECT sealstore.add_jwt_key('rot', 'HS256', %s)", (hs_secret,))
            conn.commit()
            token = mint(hs_secret, "rot", ttl=600, sub="u", tenant=str(tenants[0]))
            assert authenticate(conn, token) == str(tenants[0])
            conn.rollback()
            before = snapshot(conn)
            assert fingerprints(conn) == [(keys.fingerprint(k1), True, 4)]

        # Step 1: the new key becomes current, the old one is kept as previous.
        c.configure(master_key_file=str(f2), previous_master_key_file=str(f1))
        c.restart()
        assert f"previous master key loaded (fingerprint {keys.fingerprint(k1)})" in c.server_log()
        with psycopg.connect(c.url()) as conn:
            assert conn.execute("SELECT sealstore.master_key_fingerprint()").fetchone()[0] == keys.fingerprint(k2)
            assert fingerprints(conn) == [(keys.fingerprint(k1), False, 4)]
            check_all_decrypt(conn, tenants)
            # An interrupted run: one batch committed, then nothing.
            assert conn.execute("SELECT sealstore.rewrap_tenant_keys_batch(1)").fetchone()[0] == 1
            conn.commit()
            assert fingerprints(conn) == [(keys.fingerprint(k2), True, 1), (keys.fingerprint(k1), False, 3)]
            check_all_decrypt(conn, tenants)  # mixed keys work
        # Step 2: run the procedure to the end; it picks up where the interruption left off.
        with psycopg.connect(c.url(), autocommit=True) as conn:
            notices = []
            conn.add_notice_handler(lambda d: notices.append(d.message_primary))
            conn.execute("CALL sealstore.rewrap_tenant_keys(1)")
            assert notices[-1] == "rewrap_tenant_keys: finished, 3 keys re-wrapped", notices
            assert fingerprints(conn) == [(keys.fingerprint(k2), True, 4)]
            assert snapshot(conn) == before  # no data was rewritten
            audit = conn.execute("SELECT count(*), sum((detail->>'keys')::int), sum((detail->>'jwt_secrets')::int) "
                                 "FROM sealstore.audit_log WHERE action = 'rewrap_tenant_keys'").fetchone()
            assert audit == (4, 3, 1)

        # Step 3: the previous key is no longer needed.
        c.configure(master_key_file=str(f2))
        c.restart()
        with psycopg.connect(c.url()) as conn:
            check_all_decrypt(conn, tenants)
            assert snapshot(conn) == before
            assert authenticate(conn, token) == str(tenants[0])
            conn.rollback()

        # And the old key alone can no longer open anything: a clean 55000 naming the
        # fingerprints, not an attempt to unwrap with the wrong key.
        c.configure(master_key_file=str(f1))
        c.restart()
        with psycopg.connect(c.url(), autocommit=True) as conn:
            with pytest.raises(psycopg.Error) as info:
                conn.execute("SELECT sealstore.act_as_tenant(%s)", (tenants[0],))
            assert info.value.sqlstate == "55000", str(info.value)
            with pytest.raises(psycopg.Error) as info:
                conn.execute("SELECT sealstore.rewrap_tenant_keys_batch(10)")
            assert info.value.sqlstate == "55000", str(info.value)
            with pytest.raises(psycopg.Error) as info:
                authenticate(conn, token)
            assert info.value.sqlstate == "55000", str(info.value)
            assert fingerprints(conn) == [(keys.fingerprint(k2), False, 4)]  # nothing modified
    finally:
        c.destroy()


def test_batch_size_is_checked(admin_url):
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for bad in (0, -1, 10001):
            with pytest.raises(psycopg.Error) as info:
                conn.execute("SELECT sealstore.rewrap_tenant_keys_batch(%s)", (bad,))
            assert info.value.sqlstate == "22023"
