"""Master key loading at server start, against a real PostgreSQL restarted with each setting:
clean SQLSTATEs for every way the key can be missing, /readyz reporting it, and no key bytes in
any error or server log line."""

import psycopg
import pytest
import requests

import keys
from harness import Cluster, Gateway

GATEWAY_PASSWORD = keys.new_key_hex()[:32]


@pytest.fixture(scope="module")
def cluster():
    c = Cluster("e2e-keys")
    c.configure()
    c.restart()
    with psycopg.connect(c.url(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION sealstore")
        conn.execute("SET log_statement = 'none'")
        conn.execute(f"CREATE ROLE gw LOGIN PASSWORD '{GATEWAY_PASSWORD}' IN ROLE sealstore_gateway")
    yield c
    c.destroy()


def fingerprint_error(c: Cluster, case: str) -> psycopg.Error:
    with psycopg.connect(c.url(), autocommit=True) as conn:
        try:
            conn.execute("SELECT sealstore.master_key_fingerprint()")
        except psycopg.Error as e:
            return e
    pytest.fail(f"{case}: the server loaded a key")


def readyz(c: Cluster) -> requests.Response:
    gw = Gateway(c.url("gw", GATEWAY_PASSWORD))
    try:
        return requests.get(f"{gw.url}/readyz", timeout=10)
    finally:
        gw.stop()


def test_valid_key_file_loads_and_fingerprint_matches(cluster):
    key = keys.new_key_hex()
    path = cluster.write_private("good.key", key + "\n")
    cluster.configure(master_key_file=path)
    cluster.restart()
    with psycopg.connect(cluster.url("gw", GATEWAY_PASSWORD)) as conn:
        fp = conn.execute("SELECT sealstore.master_key_fingerprint()").fetchone()[0]
    assert fp == keys.fingerprint(key)
    assert readyz(cluster).status_code == 200
    log = cluster.server_log()
    assert f"master key loaded (fingerprint {fp})" in log
    assert key not in log and key.upper() not in log


def test_key_command_loads_the_key(cluster):
    key = keys.new_key_hex()
    path = cluster.write_private("kms.sh", f"#!/bin/sh\necho {key}\n", mode=0o700)
    cluster.configure(master_key_command=str(path))
    cluster.restart()
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        fp = conn.execute("SELECT sealstore.master_key_fingerprint()").fetchone()[0]
    assert fp == keys.fingerprint(key)
    assert key not in cluster.server_log()


def _bad_cases(c: Cluster):
    key = keys.new_key_hex()
    return key, {
        "missing file": (dict(master_key_file=str(c.base / "absent.key")),
                         "58P01", "does not exist"),
        "group readable": (dict(master_key_file=str(c.write_private("open.key", key, 0o640))),
                           "F0000", "has mode 0640"),
        "world readable": (dict(master_key_file=str(c.write_private("world.key", key, 0o604))),
                           "F0000", "has mode 0604"),
        "malformed": (dict(master_key_file=str(c.write_private("bad.key", key[:63] + "g"))),
                      "F0000", "expected exactly 64 hexadecimal digits"),
        "too short": (dict(master_key_file=str(c.write_private("short.key", key[:40]))),
                      "F0000", "expected exactly 64 hexadecimal digits"),
        "directory": (dict(master_key_file=str(c.base)), "F0000", "is not a regular file"),
        "command fails": (dict(master_key_command=f"echo {key}; exit 7"),
                          "F0000", "exited with status 7"),
        "command prints junk": (dict(master_key_command=f"echo {key} | tr 0-9a-f g-v"),
                                "F0000", "expected exactly 64 hexadecimal digits"),
        "not configured": ({}, "55000", "no master key is configured"),
        "both configured": (dict(master_key_file=str(c.base / "x.key"), master_key_command="true"),
                            "55000", "both sealstore.master_key_file and"),
    }


def test_every_missing_key_is_a_clean_error_and_not_ready(cluster):
    key, cases = _bad_cases(cluster)
    for name, (settings, sqlstate, detail) in cases.items():
        cluster.configure(**settings)
        cluster.restart()
        err = fingerprint_error(cluster, name)
        assert err.sqlstate == sqlstate, (name, str(err))
        assert err.diag.message_primary == "sealstore master key is not available", name
        assert detail in err.diag.message_detail, (name, err.diag.message_detail)
        assert "shared_preload_libraries" in err.diag.message_hint or "master_key" in err.diag.message_hint
        r = readyz(cluster)
        assert r.status_code == 503, name
        assert r.json()["error"]["code"] == "master_key_unavailable", name
        log = cluster.server_log()
        assert "no master key, encryption is unavailable" in log, name
        for text in (str(err), err.diag.message_detail or "", log, r.text):
            assert key not in text and key[:63] not in text and key[:40] not in text, name
            assert key.translate(str.maketrans("0123456789abcdef", "ghijklmnopqrstuv")) not in text
