import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import Gateway, env  # noqa: E402


@pytest.fixture(scope="session")
def app_url() -> str:
    """The gateway login role of the test cluster (member of sealstore_app only)."""
    return env("SEALSTORE_TEST_APP_PG_URL")


@pytest.fixture(scope="session")
def admin_url() -> str:
    return env("SEALSTORE_TEST_PG_URL")


@pytest.fixture
def gateway(app_url):
    gw = Gateway(app_url)
    yield gw
    gw.stop()
