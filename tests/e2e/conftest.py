import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import secrets  # noqa: E402
import uuid  # noqa: E402

import psycopg  # noqa: E402

from clients import Api, mint  # noqa: E402
from harness import Gateway, create_login_role, env  # noqa: E402


@pytest.fixture(scope="session")
def app_url() -> str:
    """An application's login role of the test cluster (member of sealstore_app only)."""
    return env("SEALSTORE_TEST_APP_PG_URL")


@pytest.fixture(scope="session")
def gateway_pg_url() -> str:
    """The gateway's own login role (sealstore_gateway), which no application is given."""
    return env("SEALSTORE_TEST_GATEWAY_PG_URL")


@pytest.fixture(scope="session")
def admin_url() -> str:
    return env("SEALSTORE_TEST_PG_URL")


@pytest.fixture(scope="session")
def admin_login(admin_url) -> str:
    """A login role that is a member of sealstore_admin (tenant lifecycle, act_as_tenant)."""
    return create_login_role(admin_url, "e2e_admin", "sealstore_admin")


@pytest.fixture
def gateway(gateway_pg_url):
    gw = Gateway(gateway_pg_url)
    yield gw
    gw.stop()


# The v1 API tests' shared world: one gateway, an admin token, two tenants with keys.

@pytest.fixture(scope="session")
def hs(admin_url):
    """A system-admin HS256 key, registered in the database only."""
    kid, secret = f"e2e-hs-{secrets.token_hex(4)}", secrets.token_hex(32)
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("SET log_statement = 'none'")
        su.execute("SELECT sealstore.add_jwt_key(%s, 'HS256', %s, admin => true)", (kid, secret))
    return kid, secret


@pytest.fixture(scope="session")
def gw(gateway_pg_url):
    g = Gateway(gateway_pg_url)
    yield g
    g.stop()


@pytest.fixture(scope="session")
def admin(gw, hs):
    return Api(gw.url, mint(hs[1], hs[0], scope="admin", sub="ops"))


@pytest.fixture(scope="session")
def tenants(admin):
    """Two tenants made over HTTP, each with API keys of several scopes."""
    out = []
    for i, alg in enumerate(["xchacha20-poly1305", "aes-256-gcm"]):
        r = admin("POST", "/v1/tenants", {"name": f"api-{i}-{secrets.token_hex(3)}", "algorithm": alg})
        assert r.status_code == 201, r.text
        t = r.json()
        assert t["algorithm"] == alg and uuid.UUID(t["id"])
        ks = {}
        for name, scopes in [("rw", ["read", "write"]), ("r", ["read"]), ("w", ["write"]),
                             ("adm", ["admin", "read", "write"])]:
            r = admin("POST", f"/v1/tenants/{t['id']}/api-keys", {"name": name, "scopes": scopes})
            assert r.status_code == 201, r.text
            k = r.json()
            assert k["key"].startswith("sst_") and k["scopes"] == scopes
            ks[name] = k
        out.append({"id": t["id"], "keys": ks, "api": Api(admin.url, ks["rw"]["key"])})
    return out
