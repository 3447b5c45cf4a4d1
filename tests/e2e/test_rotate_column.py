"""rotate_column: committed batches, progress reports, and a run killed mid-way that finishes
when started again, leaving every value decryptable and other tenants untouched."""
import threading
import time

import psycopg
import pytest

ROWS = 4000
OTHER_ROWS = 300


@pytest.fixture(scope="module")
def table(admin_url, admin_login):
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("DROP TABLE IF EXISTS rot_items")
        su.execute("CREATE TABLE rot_items (id bigint PRIMARY KEY, tenant_id uuid NOT NULL, secret bytea)")
        su.execute("GRANT SELECT, INSERT, UPDATE ON rot_items TO e2e_admin")
    with psycopg.connect(admin_login) as a:
        t = a.execute("SELECT sealstore.create_tenant('rotating')").fetchone()[0]
        u = a.execute("SELECT sealstore.create_tenant('bystander', 'aes-256-gcm')").fetchone()[0]
        a.commit()
        for tenant, first, count in ((t, 1, ROWS), (u, ROWS + 1, OTHER_ROWS)):
            a.execute("SELECT sealstore.act_as_tenant(%s)", (tenant,))
            a.execute(
                "INSERT INTO rot_items SELECT g, %s, sealstore.encrypt_text('value-' || g, g::text) "
                "FROM generate_series(%s::bigint, %s::bigint) g", (tenant, first, first + count - 1))
            a.commit()
        # One NULL value: skipped, not an error.
        a.execute("INSERT INTO rot_items VALUES (0, %s, NULL)", (t,))
        assert a.execute("SELECT sealstore.rotate_tenant_key(%s)", (t,)).fetchone()[0] == 2
        a.commit()
    yield t, u


def versions(conn, tenant):
    return dict(conn.execute(
        "SELECT sealstore.envelope_key_version(secret), count(*) FROM rot_items "
        "WHERE tenant_id = %s AND secret IS NOT NULL GROUP BY 1", (tenant,)).fetchall())


def test_killed_rotation_resumes_and_completes(admin_login, table):
    t, u = table
    with psycopg.connect(admin_login) as blocker, psycopg.connect(admin_login) as watch:
        watch.autocommit = True
        # Hold a lock on a late row: the procedure commits batches until it reaches it.
        blocker.execute("SELECT 1 FROM rot_items WHERE id = %s FOR UPDATE", (ROWS - 100,))
        runner = psycopg.connect(admin_login, autocommit=True)
        notices = []
        runner.add_notice_handler(lambda d: notices.append(d.message_primary))
        pid = runner.info.backend_pid
        outcome = {}

        def run():
            try:
                runner.execute("CALL sealstore.rotate_column('rot_items', 'secret', 'id', 100, %s)", (t,))
                outcome["ok"] = True
            except psycopg.Error as e:
                outcome["error"] = e.sqlstate

        th = threading.Thread(target=run)
        th.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            waiting = watch.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
            if waiting and waiting[0] == "Lock":
                break
            time.sleep(0.05)
        else:
            pytest.fail("rotate_column never reached the locked row")
        partial = versions(watch, t)
        assert partial.get(2, 0) >= 3000 and partial.get(1, 0) > 0, partial  # batches committed
        watch.execute("SELECT pg_terminate_backend(%s)", (pid,))
        th.join(30)
        assert outcome.get("error") in ("57P01", None) and "ok" not in outcome, outcome
        blocker.rollback()
        runner.close()
        assert any("to re-encrypt to key version 2" in n for n in notices), notices
        assert any(" done" in n for n in notices), notices
        assert versions(watch, t) == partial  # the killed batch left nothing half-done

    with psycopg.connect(admin_login, autocommit=True) as again:
        notices = []
        again.add_notice_handler(lambda d: notices.append(d.message_primary))
        again.execute("CALL sealstore.rotate_column('rot_items', 'secret', 'id', 500, %s)", (t,))
        assert notices[-1] == f"rotate_column: finished, {partial[1]} values re-encrypted", notices
        assert versions(again, t) == {2: ROWS}
        assert versions(again, u) == {1: OTHER_ROWS}
        # Running it once more finds nothing to do.
        again.execute("CALL sealstore.rotate_column('rot_items', 'secret', 'id', 500, %s)", (t,))
    with psycopg.connect(admin_login) as check:
        for tenant, first, count in ((t, 1, ROWS), (u, ROWS + 1, OTHER_ROWS)):
            check.execute("SELECT sealstore.act_as_tenant(%s)", (tenant,))
            bad = check.execute(
                "SELECT count(*) FROM rot_items WHERE tenant_id = %s AND secret IS NOT NULL "
                "AND sealstore.decrypt_text(secret, id::text) <> 'value-' || id", (tenant,)).fetchone()[0]
            total = check.execute(
                "SELECT count(*) FROM rot_items WHERE tenant_id = %s AND secret IS NOT NULL",
                (tenant,)).fetchone()[0]
            assert (bad, total) == (0, count)
            check.commit()


@pytest.mark.parametrize("args, sqlstate", [
    ("'rot_items', 'secret', 'id', 0, '{t}'", "22023"),
    ("'rot_items', 'secret', 'id', 100, NULL", "22023"),
    ("'rot_items', 'secret', 'id', 100, '00000000-0000-4000-8000-000000000000'", "42704"),
    ("'rot_items', 'nope', 'id', 100, '{t}'", "42703"),
    ("'rot_items', 'secret', 'id', 100, '{t}', 'no_such_column'", "42703"),
    ("'no_such_table', 'secret', 'id', 100, '{t}'", "42P01"),
])
def test_bad_arguments_are_clean_errors(admin_login, table, args, sqlstate):
    with psycopg.connect(admin_login, autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as info:
            conn.execute(f"CALL sealstore.rotate_column({args.format(t=table[0])})")
        assert info.value.sqlstate == sqlstate, str(info.value)


def test_inside_a_transaction_block_it_refuses_to_start(admin_login, table):
    t, _ = table
    with psycopg.connect(admin_login) as conn:
        with pytest.raises(psycopg.Error) as info:
            conn.execute("CALL sealstore.rotate_column('rot_items', 'secret', 'id', 100, %s)", (t,))
        assert info.value.sqlstate == "2D000", str(info.value)


def test_app_role_cannot_call_it(app_url, table):
    t, _ = table
    with psycopg.connect(app_url, autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as info:
            conn.execute("CALL sealstore.rotate_column('rot_items', 'secret', 'id', 100, %s)", (t,))
        assert info.value.sqlstate == "42501"
