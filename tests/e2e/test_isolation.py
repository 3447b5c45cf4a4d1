"""Tenant isolation against a client with the application role running arbitrary SQL.

A table owned by a separate role is put under sealstore.enable_tenant_isolation(); 24 tenants
each hold rows, ciphertext and a secret; the attacker role (member of sealstore_app, with its own
schema to create functions and views in) authenticates as one tenant with an API key and tries
to read, write or decrypt another's data by every route the threat model names."""
import random
import secrets

import psycopg
import pytest

from harness import create_login_role, drop_role

N_TENANTS = 24
ROWS = 5


@pytest.fixture(scope="module")
def world(admin_url):
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("DROP SCHEMA IF EXISTS iso, scratch, isoprob CASCADE")
        drop_role(su, "e2e_iso_bypass")
    owner_url = create_login_role(admin_url, "e2e_iso_owner", "sealstore_app")
    app_url = create_login_role(admin_url, "e2e_iso_app", "sealstore_app")
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("SET log_min_error_statement = panic")
        su.execute("CREATE SCHEMA iso AUTHORIZATION e2e_iso_owner")
        su.execute("CREATE SCHEMA scratch AUTHORIZATION e2e_iso_app")
        su.execute("SET ROLE e2e_iso_owner")
        su.execute("""CREATE TABLE iso.docs (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                      tenant_id uuid NOT NULL, body text NOT NULL, sealed bytea)""")
        su.execute("GRANT USAGE ON SCHEMA iso TO sealstore_app")
        su.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON iso.docs TO sealstore_app")
        su.execute("RESET ROLE")
        su.execute("SELECT sealstore.enable_tenant_isolation('iso.docs')")
        tenants, keys, bodies = [], {}, {}
        for i in range(N_TENANTS):
            t = su.execute("SELECT sealstore.create_tenant(%s, %s)",
                           (f"iso-{i}", "aes-256-gcm" if i % 2 else "xchacha20-poly1305")).fetchone()[0]
            tenants.append(t)
            keys[t] = su.execute("SELECT sealstore.create_api_key(%s, 'iso', '{read,write}')", (t,)).fetchone()[0]
    with psycopg.connect(app_url) as app:
        for t in tenants:
            app.execute("SELECT sealstore.authenticate(%s)", (keys[t],))
            bodies[t] = [f"{t}-{k}-{secrets.token_hex(6)}" for k in range(ROWS)]
            for b in bodies[t]:
                app.execute("INSERT INTO iso.docs (body, sealed) VALUES (%s, sealstore.encrypt_text(%s, 'docs'))", (b, b))
            app.execute("SELECT sealstore.put_secret('s', %s)", (bodies[t][0],))
            app.commit()
    with psycopg.connect(admin_url) as su:
        sealed = {t: su.execute("SELECT sealed FROM iso.docs WHERE tenant_id = %s LIMIT 1", (t,)).fetchone()[0]
                  for t in tenants}
    yield {"tenants": tenants, "keys": keys, "bodies": bodies, "sealed": sealed, "app_url": app_url,
           "owner_url": owner_url}
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("DROP SCHEMA IF EXISTS iso, scratch, isoprob CASCADE")
        for role in ("e2e_iso_app", "e2e_iso_owner", "e2e_iso_bypass"):
            drop_role(su, role)


def login(conn, world, t):
    conn.execute("SELECT sealstore.authenticate(%s)", (world["keys"][t],))


def test_randomized_cross_tenant_operations_see_no_other_tenant(world, admin_url):
    rng = random.Random(4242)
    tenants = world["tenants"]
    foreign = 0
    ops = 0
    with psycopg.connect(world["app_url"]) as app:
        for _ in range(400):
            me, other = rng.sample(tenants, 2)
            op = rng.choice(["select", "select_other", "by_body", "count", "update_other", "delete_other",
                             "insert_other", "move_row", "insert_default", "decrypt_other", "secret",
                             "copy", "join", "returning"])
            login(app, world, me)
            ops += 1
            try:
                if op == "select":
                    rows = app.execute("SELECT tenant_id, body FROM iso.docs").fetchall()
                    foreign += sum(r[0] != me for r in rows)
                    assert sorted(r[1] for r in rows) == sorted(world["bodies"][me])
                elif op == "select_other":
                    foreign += len(app.execute("SELECT 1 FROM iso.docs WHERE tenant_id = %s", (other,)).fetchall())
                elif op == "by_body":
                    foreign += len(app.execute("SELECT 1 FROM iso.docs WHERE body = ANY(%s)",
                                               (world["bodies"][other],)).fetchall())
                elif op == "count":
                    assert app.execute("SELECT count(*) FROM iso.docs").fetchone()[0] == ROWS
                elif op == "update_other":
                    foreign += app.execute("UPDATE iso.docs SET body = 'pwned' WHERE tenant_id = %s", (other,)).rowcount
                elif op == "delete_other":
                    foreign += app.execute("DELETE FROM iso.docs WHERE tenant_id <> %s", (me,)).rowcount
                elif op == "insert_other":
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        app.execute("INSERT INTO iso.docs (tenant_id, body) VALUES (%s, 'x')", (other,))
                elif op == "move_row":
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        app.execute("UPDATE iso.docs SET tenant_id = %s", (other,))
                elif op == "insert_default":
                    got = app.execute("INSERT INTO iso.docs (body) VALUES ('tmp') RETURNING tenant_id").fetchone()[0]
                    assert got == me
                elif op == "decrypt_other":
                    with pytest.raises(psycopg.errors.DataCorrupted):
                        app.execute("SELECT sealstore.decrypt_text(%s, 'docs')", (world["sealed"][other],))
                elif op == "secret":
                    assert app.execute("SELECT sealstore.get_secret('s')").fetchone()[0] == world["bodies"][me][0]
                elif op == "copy":
                    with app.cursor().copy("COPY iso.docs (tenant_id) TO STDOUT") as cp:
                        foreign += sum(str(me) not in bytes(row).decode() for row in cp)
                elif op == "join":
                    rows = app.execute("SELECT b.tenant_id FROM iso.docs a JOIN iso.docs b ON a.id <> b.id").fetchall()
                    foreign += sum(r[0] != me for r in rows)
                elif op == "returning":
                    rows = app.execute("UPDATE iso.docs SET body = body RETURNING tenant_id").fetchall()
                    foreign += sum(r[0] != me for r in rows)
                    assert len(rows) == ROWS
            finally:
                app.rollback()
    assert ops == 400 and foreign == 0
    with psycopg.connect(admin_url) as su:
        for t in tenants:
            got = sorted(r[0] for r in su.execute("SELECT body FROM iso.docs WHERE tenant_id = %s", (t,)))
            assert got == sorted(world["bodies"][t])


def test_settings_roles_and_search_path_cannot_lift_isolation(world):
    me, other = world["tenants"][:2]
    with psycopg.connect(world["app_url"]) as app:
        login(app, world, me)
        app.execute("SAVEPOINT s")
        for stmt in ("SET ROLE e2e_iso_owner", "SET ROLE postgres", "SET ROLE sealstore_admin",
                     "SET SESSION AUTHORIZATION postgres", "SET sealstore.jwt_leeway = 30"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(stmt)
            app.execute("ROLLBACK TO SAVEPOINT s")
        for stmt in ("SET sealstore.tenant = '%s'" % other,
                     "SELECT set_config('sealstore.current_tenant', '%s', true)" % other):
            with pytest.raises(psycopg.Error):
                app.execute(stmt)
            app.execute("ROLLBACK TO SAVEPOINT s")
        # row_security = off makes a query that RLS would filter an error, never a bypass.
        app.execute("SET row_security = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT * FROM iso.docs")
        app.execute("ROLLBACK TO SAVEPOINT s")
        app.execute("RESET ALL")
        app.execute("DISCARD PLANS")
        # A function shadowing current_tenant() in the caller's search_path is not what the
        # policy calls (schema-qualified).
        app.execute(f"CREATE FUNCTION scratch.current_tenant() RETURNS uuid LANGUAGE sql AS $$ SELECT '{other}'::uuid $$")
        app.execute("SET LOCAL search_path = scratch, public")
        rows = app.execute("SELECT DISTINCT tenant_id FROM iso.docs").fetchall()
        assert rows == [(me,)]
        assert app.execute("SELECT sealstore.current_tenant()").fetchone()[0] == me


def test_views_and_security_definer_functions_of_the_app_role_stay_filtered(world):
    me = world["tenants"][3]
    with psycopg.connect(world["app_url"]) as app:
        app.execute("CREATE VIEW scratch.all_docs AS SELECT * FROM iso.docs")
        app.execute("""CREATE FUNCTION scratch.count_docs() RETURNS bigint SECURITY DEFINER
                       LANGUAGE sql AS $$ SELECT count(*) FROM iso.docs $$""")
        login(app, world, me)
        assert app.execute("SELECT count(*), count(DISTINCT tenant_id) FROM scratch.all_docs").fetchone() == (ROWS, 1)
        assert app.execute("SELECT scratch.count_docs()").fetchone()[0] == ROWS
        app.rollback()


def test_the_table_owner_is_filtered_too(world):
    """FORCE ROW LEVEL SECURITY: the owner, and its SECURITY DEFINER functions, see one tenant."""
    me = world["tenants"][4]
    with psycopg.connect(world["owner_url"]) as owner:
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            owner.execute("SELECT count(*) FROM iso.docs")
        owner.rollback()
        owner.execute("""CREATE FUNCTION iso.owner_count() RETURNS bigint SECURITY DEFINER
                         LANGUAGE sql AS $$ SELECT count(*) FROM iso.docs $$""")
        owner.execute("GRANT EXECUTE ON FUNCTION iso.owner_count() TO sealstore_app")
        owner.commit()
        login(owner, world, me)
        assert owner.execute("SELECT count(*), count(DISTINCT tenant_id) FROM iso.docs").fetchone() == (ROWS, 1)
        owner.rollback()
    with psycopg.connect(world["app_url"]) as app:
        login(app, world, me)
        assert app.execute("SELECT iso.owner_count()").fetchone()[0] == ROWS


def test_leaky_functions_see_only_the_own_tenant(world):
    me, other = world["tenants"][5:7]
    notices = []
    with psycopg.connect(world["app_url"]) as app:
        app.add_notice_handler(lambda d: notices.append(d.message_primary))
        app.execute("""CREATE FUNCTION scratch.leak(text) RETURNS boolean LANGUAGE plpgsql COST 0.00001
                       AS $$ BEGIN RAISE NOTICE 'saw %', $1; RETURN true; END $$""")
        app.execute("""CREATE FUNCTION scratch.boom(text, text[]) RETURNS boolean LANGUAGE plpgsql COST 0.00001
                       AS $$ BEGIN IF $1 = ANY($2) THEN RAISE EXCEPTION 'found %', $1; END IF; RETURN true; END $$""")
        login(app, world, me)
        app.execute("SELECT * FROM iso.docs WHERE scratch.leak(body)").fetchall()
        app.execute("SELECT * FROM iso.docs WHERE scratch.leak(body) AND tenant_id = %s", (other,)).fetchall()
        # Via errors: a function that fails only on another tenant's values never fails.
        app.execute("SELECT * FROM iso.docs WHERE scratch.boom(body, %s)", (world["bodies"][other],)).fetchall()
        app.execute("SELECT * FROM iso.docs WHERE 1 / (CASE WHEN tenant_id = %s THEN 0 ELSE 1 END) = 1",
                    (other,)).fetchall()
        app.rollback()
    seen = {n.removeprefix("saw ") for n in notices if n.startswith("saw ")}
    assert seen == set(world["bodies"][me])


def test_copy_out_is_filtered_and_copy_in_is_refused(world):
    me, other = world["tenants"][7:9]
    with psycopg.connect(world["app_url"]) as app:
        login(app, world, me)
        with app.cursor().copy("COPY iso.docs (tenant_id, body) TO STDOUT") as cp:
            rows = [bytes(r).decode() for r in cp]
        assert len(rows) == ROWS and all(r.startswith(str(me)) for r in rows)
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            with app.cursor().copy("COPY iso.docs (tenant_id, body) FROM STDIN") as cp:
                cp.write_row((other, "smuggled"))
        app.rollback()


def test_cursors_and_prepared_statements_across_a_context_change(world):
    a, b = world["tenants"][9:11]
    with psycopg.connect(world["app_url"]) as app:
        # A WITH HOLD cursor would outlive the transaction (and the context): refused.
        login(app, world, a)
        app.execute("DECLARE held CURSOR WITH HOLD FOR SELECT tenant_id, body FROM iso.docs")
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            app.commit()
        app.rollback()
        login(app, world, a)
        app.execute("DECLARE held2 CURSOR WITH HOLD FOR SELECT sealstore.decrypt_text(sealed, 'docs') FROM iso.docs")
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            app.execute("FETCH 1 FROM held2")
        app.rollback()
        # An ordinary cursor ends with its transaction.
        login(app, world, a)
        app.execute("DECLARE c CURSOR FOR SELECT tenant_id FROM iso.docs")
        assert app.execute("FETCH 1 FROM c").fetchone()[0] == a
        app.commit()
        login(app, world, b)
        with pytest.raises(psycopg.errors.InvalidCursorName):
            app.execute("FETCH 1 FROM c")
        app.rollback()
        # A prepared statement, generic plan forced, follows each transaction's context.
        app.execute("SET plan_cache_mode = force_generic_plan")
        app.execute("PREPARE q AS SELECT DISTINCT tenant_id FROM iso.docs")
        app.commit()
        for t in (a, b, a, b, a, b, a):
            login(app, world, t)
            assert app.execute("EXECUTE q").fetchall() == [(t,)]
            app.commit()
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            app.execute("EXECUTE q")
        app.rollback()


def test_context_ends_with_each_transaction(world):
    a = world["tenants"][11]
    with psycopg.connect(world["app_url"]) as app:
        login(app, world, a)
        assert app.execute("SELECT count(*) FROM iso.docs").fetchone()[0] == ROWS
        app.commit()
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            app.execute("SELECT count(*) FROM iso.docs")
        app.rollback()
        login(app, world, a)
        app.rollback()
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            app.execute("SELECT sealstore.get_secret('s')")
        app.rollback()
        assert app.execute("SELECT sealstore.current_subject() IS NULL, sealstore.claims() IS NULL").fetchone() == (True, True)
        app.rollback()


def test_savepoint_rollback_restores_the_previous_context(world):
    a, b = world["tenants"][12:14]
    with psycopg.connect(world["app_url"]) as app:
        app.execute("SAVEPOINT s0")
        login(app, world, a)
        app.execute("ROLLBACK TO SAVEPOINT s0")
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            app.execute("SELECT sealstore.current_tenant()")
        app.rollback()
        login(app, world, a)
        app.execute("SAVEPOINT s1")
        login(app, world, b)
        assert app.execute("SELECT DISTINCT tenant_id FROM iso.docs").fetchall() == [(b,)]
        app.execute("ROLLBACK TO SAVEPOINT s1")
        assert app.execute("SELECT DISTINCT tenant_id FROM iso.docs").fetchall() == [(a,)]
        app.execute("SAVEPOINT s2")
        login(app, world, b)
        app.execute("RELEASE SAVEPOINT s2")
        assert app.execute("SELECT sealstore.current_tenant()").fetchone()[0] == b
        app.rollback()


def test_enable_tenant_isolation_is_idempotent_and_checks_input(world, admin_url):
    with psycopg.connect(admin_url, autocommit=True) as su:
        def shape():
            return su.execute("""SELECT (SELECT string_agg(polname || ':' || polpermissive, ',' ORDER BY polname)
                                           FROM pg_policy WHERE polrelid = 'iso.docs'::regclass),
                                        (SELECT count(*) FROM pg_index WHERE indrelid = 'iso.docs'::regclass),
                                        (SELECT relforcerowsecurity FROM pg_class WHERE oid = 'iso.docs'::regclass)""").fetchone()
        before = shape()
        su.execute("SELECT sealstore.enable_tenant_isolation('iso.docs')")
        su.execute("SELECT sealstore.enable_tenant_isolation('iso.docs', 'tenant_id')")
        assert shape() == before == ("sealstore_tenant:true,sealstore_tenant_guard:false", 2, True)
        su.execute("CREATE SCHEMA isoprob")
        su.execute("CREATE TABLE isoprob.wrong_type (tenant_id text)")
        su.execute("CREATE VIEW isoprob.v AS SELECT 1 AS tenant_id")
        for args, state in ((("isoprob.wrong_type",), psycopg.errors.DatatypeMismatch),
                            (("iso.docs", "owner_id"), psycopg.errors.UndefinedColumn),
                            (("isoprob.v",), psycopg.errors.WrongObjectType)):
            with pytest.raises(state):
                su.execute(f"SELECT sealstore.enable_tenant_isolation({', '.join(['%s::regclass'] + ['%s'] * (len(args) - 1))})", args)
        su.execute("DROP SCHEMA isoprob CASCADE")


def test_isolation_report_names_every_problem(world, admin_url):
    def report(su):
        return {(r[0], r[1], r[2]) for r in su.execute("SELECT severity, object, problem FROM sealstore.isolation_report()")}

    with psycopg.connect(admin_url, autocommit=True) as su:
        base = report(su)
        # The isolated tables themselves raise no error (the owner's SECURITY DEFINER function
        # from another test aside).
        assert not [r for r in base if r[0] == "error" and ("iso.docs" in r[1] or r[1].startswith("sealstore."))
                    and "SECURITY DEFINER" not in r[2]], base
        assert ("warning", "postgres", "superuser bypasses row level security") in base
        su.execute("CREATE SCHEMA isoprob")
        su.execute("CREATE TABLE isoprob.no_rls (tenant_id uuid, x int)")
        su.execute("CREATE TABLE isoprob.no_force (tenant_id uuid)")
        su.execute("SELECT sealstore.enable_tenant_isolation('isoprob.no_force')")
        su.execute("ALTER TABLE isoprob.no_force NO FORCE ROW LEVEL SECURITY")
        su.execute("CREATE TABLE isoprob.no_policy (tenant_id uuid)")
        su.execute("ALTER TABLE isoprob.no_policy ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
        su.execute("CREATE TABLE isoprob.fake_policy (tenant_id uuid)")
        su.execute("ALTER TABLE isoprob.fake_policy ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
        su.execute("CREATE POLICY p ON isoprob.fake_policy USING (sealstore.current_tenant() IS NOT NULL)")
        su.execute("CREATE INDEX ON isoprob.fake_policy (tenant_id)")
        su.execute("CREATE TABLE isoprob.no_index (tenant_id uuid)")
        su.execute("SELECT sealstore.enable_tenant_isolation('isoprob.no_index')")
        su.execute("DROP INDEX isoprob.no_index_tenant_id_idx")
        su.execute("CREATE VIEW isoprob.definer_view AS SELECT * FROM iso.docs")
        su.execute("CREATE VIEW isoprob.invoker_view WITH (security_invoker = true) AS SELECT * FROM iso.docs")
        su.execute("CREATE MATERIALIZED VIEW isoprob.mat AS SELECT * FROM iso.docs WITH NO DATA")
        su.execute("CREATE ROLE e2e_iso_bypass NOLOGIN BYPASSRLS")
        su.execute("GRANT USAGE ON SCHEMA iso TO e2e_iso_bypass")
        su.execute("GRANT SELECT ON iso.docs TO e2e_iso_bypass")
        su.execute("""CREATE FUNCTION isoprob.peek() RETURNS bigint SECURITY DEFINER LANGUAGE sql
                      AS $$ SELECT count(*) FROM iso.docs $$""")
        # Partitions isolated with their parent; one attached afterwards is not.
        su.execute("CREATE TABLE isoprob.parts (tenant_id uuid, k int) PARTITION BY LIST (k)")
        su.execute("CREATE TABLE isoprob.parts_1 PARTITION OF isoprob.parts FOR VALUES IN (1)")
        su.execute("SELECT sealstore.enable_tenant_isolation('isoprob.parts')")
        su.execute("CREATE TABLE isoprob.parts_2 PARTITION OF isoprob.parts FOR VALUES IN (2)")
        # One namespace for all tenants, and an index that mixes their entries.
        su.execute("CREATE TABLE isoprob.shared (tenant_id uuid, email text UNIQUE, created int)")
        su.execute("SELECT sealstore.enable_tenant_isolation('isoprob.shared')")
        su.execute("CREATE INDEX isoprob_shared_created ON isoprob.shared (created)")
        su.execute("CREATE INDEX isoprob_shared_led ON isoprob.shared (tenant_id, created)")
        new = report(su) - base
        expected = {
            ("error", "isoprob.no_rls", "row level security disabled"),
            ("error", "isoprob.no_force", "row level security not forced"),
            ("error", "isoprob.no_policy", "missing tenant policy"),
            ("error", "isoprob.fake_policy", "missing tenant policy"),
            ("warning", "isoprob.no_index", "missing tenant index"),
            ("error", "isoprob.definer_view", "view without security_invoker over an isolated table"),
            ("error", "isoprob.mat", "materialized view over an isolated table"),
            ("error", "e2e_iso_bypass", "role has BYPASSRLS"),
            ("error", "isoprob.peek()", "SECURITY DEFINER function touches an isolated table"),
            ("error", "isoprob.parts_2", "row level security disabled"),
            ("warning", "isoprob.shared_email_key", "unique index without the tenant column"),
            ("warning", "isoprob.isoprob_shared_created", "index does not start with the tenant column"),
        }
        assert expected <= new, new
        assert not any(r[1] in ("isoprob.parts_1", "isoprob.parts", "isoprob.isoprob_shared_led") for r in new), new
        assert not any("invoker_view" in r[1] for r in new)
        su.execute("DROP SCHEMA isoprob CASCADE")
        drop_role(su, "e2e_iso_bypass")
