"""What the gateway's login role (a plain sealstore_app member) can and cannot do over SQL."""
import os

import psycopg
import pytest

import keys
from harness import env


@pytest.fixture
def app(app_url):
    with psycopg.connect(app_url, autocommit=True) as conn:
        yield conn


def test_app_role_calls_version_and_fingerprint(app):
    version = app.execute("SELECT sealstore.version()").fetchone()[0]
    assert version.count(".") == 2
    fp = app.execute("SELECT sealstore.master_key_fingerprint()").fetchone()[0]
    with open(env("SEALSTORE_TEST_MASTER_KEY_FILE")) as f:
        assert fp == keys.fingerprint(f.read())


def test_gateway_role_has_sealstore_app_only(app):
    row = app.execute(
        "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolreplication "
        "FROM pg_roles WHERE rolname = current_user").fetchone()
    assert row == (False, False, False, False, False)
    granted = app.execute(
        "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
        "WHERE m.member = current_user::regrole ORDER BY 1").fetchall()
    assert granted == [("sealstore_app",)]


@pytest.mark.parametrize("sql, sqlstate", [
    ("SHOW sealstore.master_key_file", "42501"),
    ("SELECT current_setting('sealstore.master_key_command')", "42501"),
    ("SET sealstore.master_key_file = '/tmp/x'", "55P02"),
    ("ALTER SYSTEM SET sealstore.master_key_file = '/tmp/x'", "42501"),
    ("SET sealstore.anything = 'x'", "42602"),
    ("SET ROLE postgres", "42501"),
    ("SET ROLE sealstore_admin", "42501"),
    ("SELECT pg_read_file('postgresql.conf')", "42501"),
    ("COPY (SELECT 1) TO '/tmp/sealstore-e2e-copy'", "42501"),
    ("CREATE TABLE public.t (x int)", "42501"),
])
def test_app_role_cannot_reach_key_settings_or_escalate(app, sql, sqlstate):
    with pytest.raises(psycopg.Error) as info:
        app.execute(sql)
    assert info.value.sqlstate == sqlstate, str(info.value)


def test_settings_listing_hides_key_settings_from_app(app):
    rows = app.execute(
        "SELECT name FROM pg_settings WHERE name LIKE 'sealstore.%' ORDER BY name").fetchall()
    # Only the (non-secret) token-check, feed and index settings are visible; no master key
    # setting.
    assert rows == [("sealstore.event_retention",), ("sealstore.hnsw_exact_below",),
                    ("sealstore.hnsw_graph_memory",), ("sealstore.jwt_audience",),
                    ("sealstore.jwt_issuer",), ("sealstore.jwt_leeway",), ("sealstore.jwt_require_jti",)]


def test_superuser_sees_the_key_path_but_not_the_key(admin_url):
    with psycopg.connect(admin_url, autocommit=True) as conn:
        path = conn.execute("SHOW sealstore.master_key_file").fetchone()[0]
        assert path == os.environ["SEALSTORE_TEST_MASTER_KEY_FILE"]
