"""The extension runs its own queries as the extension's owner (a superuser). A caller that can
create objects must not get its code run by that owner by shadowing pg_catalog's operators
through its search_path."""
import psycopg
import pytest

from harness import create_login_role, drop_role


@pytest.fixture(scope="module")
def attacker_url(admin_url):
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("DROP SCHEMA IF EXISTS evil CASCADE")
    url = create_login_role(admin_url, "e2e_attacker", "sealstore_admin")
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("CREATE SCHEMA evil AUTHORIZATION e2e_attacker")
    yield url
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("DROP SCHEMA IF EXISTS evil CASCADE")
        drop_role(su, "e2e_attacker")


def test_shadowed_operators_never_run_as_the_extension_owner(attacker_url):
    with psycopg.connect(attacker_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE evil.log (who text)")
        conn.execute("GRANT INSERT ON evil.log TO PUBLIC")
        for typ in ("uuid", "text"):
            conn.execute(f"""
                CREATE FUNCTION evil.eq_{typ}({typ}, {typ}) RETURNS bool LANGUAGE plpgsql AS $$
                BEGIN INSERT INTO evil.log VALUES (current_user); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$""")
            conn.execute(f"CREATE OPERATOR evil.= (LEFTARG = {typ}, RIGHTARG = {typ}, FUNCTION = evil.eq_{typ})")
        conn.execute("SET search_path = evil, pg_catalog")
        # Positive control: for this role's own queries the operator does shadow pg_catalog's.
        conn.execute("SELECT gen_random_uuid() = gen_random_uuid()")
        assert conn.execute("SELECT array_agg(DISTINCT who) FROM evil.log").fetchone()[0] == ["e2e_attacker"]
        conn.execute("TRUNCATE evil.log")

        conn.autocommit = False
        t = conn.execute("SELECT sealstore.create_tenant('victim')").fetchone()[0]
        conn.execute("SELECT sealstore.rotate_tenant_key(%s)", (t,))
        conn.execute("SELECT * FROM sealstore.key_versions(%s)", (t,))
        conn.execute("SELECT sealstore.act_as_tenant(%s)", (t,))
        ct = conn.execute("SELECT sealstore.encrypt_text('x', 'c')").fetchone()[0]
        conn.execute("SELECT sealstore.decrypt_text(%s, 'c')", (ct,))
        conn.execute("SELECT sealstore.put_secret('k', 'v')")
        conn.execute("SELECT sealstore.get_secret('k')")
        conn.execute("SELECT sealstore.delete_secret('k')")
        conn.execute("SELECT * FROM sealstore.master_key_usage()")
        conn.execute("SELECT sealstore.shred_tenant(%s)", (t,))
        conn.commit()
        # The caller's own search_path is back in force afterwards.
        assert conn.execute("SHOW search_path").fetchone()[0] == "evil, pg_catalog"
        assert conn.execute("SELECT count(*) FROM evil.log").fetchone()[0] == 0
