"""API fuzzing: schemathesis (its own virtualenv, .sealstore/st-venv) generates requests from
/openapi.json, valid and invalid, against the real gateway with a valid read-write API key of
a tenant that has a collection, and runs every check it has: no 5xx, every status, header,
content type and body as the document says, invalid data refused, valid data accepted.

The one configured exception is in tests/schemathesis/schemathesis.toml: 400 is an accepted
answer to schema-valid input where a rule depends on stored state the schema cannot know (a
vector's length must equal its collection's dims)."""
import os
import subprocess
from pathlib import Path

import psycopg
import pytest

from harness import Gateway, env

CONFIG = Path(__file__).resolve().parents[1] / "schemathesis" / "schemathesis.toml"
EXAMPLES = os.environ.get("SEALSTORE_SCHEMATHESIS_EXAMPLES", "100")


@pytest.fixture(scope="module")
def tenant_key(admin_url):
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("SET log_parameter_max_length = 0")
        t = su.execute("SELECT sealstore.create_tenant('schemathesis')").fetchone()[0]
        key = su.execute("SELECT sealstore.create_api_key(%s, 'st', ARRAY['read','write'])",
                         (t,)).fetchone()[0]
        with su.transaction():
            su.execute("SELECT sealstore.act_as_tenant(%s)", (t,))
            su.execute("SELECT sealstore.create_collection('st', 3)")
    return key


def test_schemathesis_finds_no_server_error_and_no_departure_from_the_document(gateway_pg_url, tenant_key,
                                                                                tmp_path):
    # Generated requests would trip the limits meant for attackers; they are not under test here.
    gw = Gateway(gateway_pg_url, {"SEALSTORE_RATE_PER_IP": "1000000", "SEALSTORE_RATE_PER_KEY": "1000000",
                           "SEALSTORE_AUTH_FAILURES_PER_MINUTE": "100000"})
    try:
        r = subprocess.run(
            [env("SEALSTORE_SCHEMATHESIS_BIN"), "--config-file", str(CONFIG), "run",
             f"{gw.url}/openapi.json", "-H", f"Authorization: Bearer {tenant_key}",
             "--checks", "all", "--max-examples", EXAMPLES, "--seed", str(int.from_bytes(os.urandom(4), "big")),
             "--workers", "1",  # CPython 3.11 compiles in threads unreliably "--no-color", "--output-sanitize", "true", "--output-truncate", "false",
             "--report", "junit,vcr", "--report-dir", str(tmp_path)],
            capture_output=True, text=True, timeout=900, cwd=tmp_path)
    finally:
        gw.stop()
    out = r.stdout + r.stderr
    print(out[-6000:])
    assert r.returncode == 0, out[-6000:]
    assert "No issues found" in out or "passed" in out
    # The gateway itself logged no failure while being fuzzed.
    assert not [e for e in gw.events() if e.get("level") == "ERROR"]
