"""Encryption through real connections: crypto-shredding seen by another live backend, what
the application role cannot do, and no plaintext or context in errors or the server log."""
import secrets

import psycopg
import pytest

from harness import env


def connect(url):
    return psycopg.connect(url)


def test_shred_is_seen_by_a_backend_holding_the_key_in_its_cache(admin_login):
    with connect(admin_login) as a, connect(admin_login) as b:
        tenant = a.execute("SELECT sealstore.create_tenant('shred-me')").fetchone()[0]
        a.commit()
        # b: one open transaction that has used (and so cached) the tenant's key.
        b.execute("SELECT sealstore.act_as_tenant(%s)", (tenant,))
        ct = b.execute("SELECT sealstore.encrypt_text('top secret', 'doc:1')").fetchone()[0]
        assert b.execute("SELECT sealstore.decrypt_text(%s, 'doc:1')", (ct,)).fetchone()[0] == "top secret"
        # a shreds and commits while b's transaction is still open.
        a.execute("SELECT sealstore.shred_tenant(%s)", (tenant,))
        # Before the commit, b still works (the shred is not visible yet).
        assert b.execute("SELECT sealstore.decrypt_text(%s, 'doc:1')", (ct,)).fetchone()[0] == "top secret"
        a.commit()
        with pytest.raises(psycopg.Error) as info:
            b.execute("SELECT sealstore.decrypt_text(%s, 'doc:1')", (ct,))
        assert info.value.sqlstate == "42704"
        assert info.value.diag.message_primary == "tenant has been shredded"
        b.rollback()
        with pytest.raises(psycopg.Error) as info:
            b.execute("SELECT sealstore.act_as_tenant(%s)", (tenant,))
        assert info.value.sqlstate == "42704"


def test_rotation_is_seen_by_other_backends(admin_login):
    with connect(admin_login) as a, connect(admin_login) as b:
        tenant = a.execute("SELECT sealstore.create_tenant('rotate-me', 'aes-256-gcm')").fetchone()[0]
        a.commit()
        b.execute("SELECT sealstore.act_as_tenant(%s)", (tenant,))
        v = b.execute("SELECT sealstore.envelope_key_version(sealstore.encrypt('\\x01'::bytea))").fetchone()[0]
        assert v == 1
        b.commit()
        assert a.execute("SELECT sealstore.rotate_tenant_key(%s)", (tenant,)).fetchone()[0] == 2
        a.commit()
        b.execute("SELECT sealstore.act_as_tenant(%s)", (tenant,))
        v = b.execute("SELECT sealstore.envelope_key_version(sealstore.encrypt('\\x01'::bytea))").fetchone()[0]
        assert v == 2
        b.commit()


def test_a_rolled_back_rotation_leaves_no_trace_in_the_cache(admin_login):
    with connect(admin_login) as a:
        tenant = a.execute("SELECT sealstore.create_tenant('rollback')").fetchone()[0]
        a.commit()
        a.execute("SELECT sealstore.rotate_tenant_key(%s)", (tenant,))
        a.execute("SELECT sealstore.act_as_tenant(%s)", (tenant,))
        assert a.execute("SELECT sealstore.envelope_key_version(sealstore.encrypt('\\x01'::bytea))").fetchone()[0] == 2
        a.rollback()
        a.execute("SELECT sealstore.act_as_tenant(%s)", (tenant,))
        ct = a.execute("SELECT sealstore.encrypt('\\x01'::bytea)").fetchone()[0]
        assert a.execute("SELECT sealstore.envelope_key_version(%s)", (ct,)).fetchone()[0] == 1
        assert a.execute("SELECT sealstore.decrypt(%s)", (ct,)).fetchone()[0] == b"\x01"
        a.commit()


@pytest.mark.parametrize("sql, sqlstate", [
    ("SELECT sealstore.act_as_tenant(gen_random_uuid())", "42501"),
    ("SELECT sealstore.create_tenant('x')", "42501"),
    ("SELECT sealstore.shred_tenant(gen_random_uuid())", "42501"),
    ("SELECT sealstore.rotate_tenant_key(gen_random_uuid())", "42501"),
    ("SELECT * FROM sealstore.key_versions(gen_random_uuid())", "42501"),
    ("SELECT * FROM sealstore.tenant_keys", "42501"),
    ("SELECT * FROM sealstore.secrets", "42501"),
    ("SELECT * FROM sealstore.audit_log", "42501"),
    ("UPDATE sealstore.tenants SET shredded_at = NULL", "42501"),
    ("SELECT sealstore.encrypt('\\x01'::bytea)", "28000"),
    ("SELECT sealstore.get_secret('x')", "28000"),
    ("SELECT sealstore.current_tenant()", "28000"),
    ("SET ROLE sealstore_admin", "42501"),
])
def test_app_role_cannot_manage_keys_or_act_without_a_context(app_url, sql, sqlstate):
    with psycopg.connect(app_url, autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as info:
            conn.execute(sql)
        assert info.value.sqlstate == sqlstate, str(info.value)


def test_no_plaintext_or_context_in_errors_or_the_server_log(admin_login):
    marker_pt = "PLAINTEXT-" + secrets.token_hex(8)
    marker_ctx = "CONTEXT-" + secrets.token_hex(8)
    marker_secret = "SECRET-" + secrets.token_hex(8)
    errors = []
    with connect(admin_login) as a:
        tenant = a.execute("SELECT sealstore.create_tenant('leaks')").fetchone()[0]
        a.execute("SELECT sealstore.act_as_tenant(%s)", (tenant,))
        ct = a.execute("SELECT sealstore.encrypt_text(%s, %s)", (marker_pt, marker_ctx)).fetchone()[0]
        a.execute("SELECT sealstore.put_secret('k', %s)", (marker_secret,))
        a.commit()
        attempts = [  # (sql, args, act as the tenant first)
            ("SELECT sealstore.decrypt_text(%s, %s)", (ct, marker_ctx + "x"), True),
            ("SELECT sealstore.decrypt_text(%s, %s)", (bytes(ct[:-1]) + bytes([ct[-1] ^ 1]), marker_ctx), True),
            ("SELECT sealstore.decrypt_text(%s, %s)", (ct[:20], marker_ctx), True),
            ("SELECT sealstore.encrypt_text(%s, %s)", (marker_pt, marker_ctx), False),
            ("SELECT sealstore.put_secret(%s, %s)", ("", marker_secret), True),
        ]
        for sql, args, with_context in attempts:
            if with_context:
                a.execute("SELECT sealstore.act_as_tenant(%s)", (tenant,))
            with pytest.raises(psycopg.Error) as info:
                a.execute(sql, args)
            e = info.value
            errors.append(f"{e.sqlstate} {e} {e.diag.message_detail or ''} {e.diag.message_hint or ''}")
            a.rollback()
    assert [e[:5] for e in errors] == ["XX001", "XX001", "22P03", "28000", "22023"], errors
    log = open(env("SEALSTORE_TEST_PG_LOG"), errors="replace").read()
    for text in errors + [log]:
        for marker in (marker_pt, marker_ctx, marker_secret):
            assert marker not in text
