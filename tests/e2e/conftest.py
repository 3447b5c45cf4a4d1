import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

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
