"""The gateway binary against the real database: health, readiness, errors, headers, config
checks before binding, graceful shutdown, and logs that carry no secrets."""
import json
import socket
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest
import requests

from clients import UUID, assert_error, assert_security_headers
from harness import Gateway, env, free_port


def test_healthz_is_up(gateway):
    r = requests.get(f"{gateway.url}/healthz", timeout=5)
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert_security_headers(r)
    # Every response gets its own request id.
    r2 = requests.get(f"{gateway.url}/healthz", timeout=5)
    assert r2.headers["X-Request-Id"] != r.headers["X-Request-Id"]


def test_readyz_is_ready_with_database_and_key(gateway):
    r = requests.get(f"{gateway.url}/readyz", timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready"}
    assert_security_headers(r)


def test_gateway_next_to_its_database_goes_through_the_unix_socket(admin_url):
    """`.ci/sealstore run` connects the gateway through the cluster's Unix socket: the whole
    API works that way, and the server sees the gateway's sessions on the socket, not TCP."""
    url = env("SEALSTORE_TEST_GATEWAY_PG_LOCAL_URL")
    assert "?host=/" in url, "the test cluster has no Unix socket"
    with psycopg.connect(admin_url, autocommit=True) as su:
        tenant = su.execute("SELECT sealstore.create_tenant('unix-socket')").fetchone()[0]
        key = su.execute("SELECT sealstore.create_api_key(%s, 'k', ARRAY['read','write'])",
                         (tenant,)).fetchone()[0]
        gw = Gateway(url)
        try:
            h = {"Authorization": f"Bearer {key}"}
            assert requests.get(f"{gw.url}/readyz", timeout=10).status_code == 200
            r = requests.post(f"{gw.url}/v1/collections", json={"name": "c", "dims": 2}, headers=h, timeout=10)
            assert r.status_code == 201, r.text
            r = requests.post(f"{gw.url}/v1/collections/c/documents", headers=h, timeout=10,
                              json={"content": "over the socket", "embedding": [1, 0]})
            assert r.status_code == 201, r.text
            r = requests.get(f"{gw.url}/v1/documents/{r.json()['id']}", headers=h, timeout=10)
            assert r.status_code == 200 and r.json()["content"] == "over the socket", r.text
            sessions = su.execute(
                "SELECT client_port FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                "AND usename = 'sealstore_gateway' AND application_name LIKE 'sealstore-gateway%'").fetchall()
            # client_port is -1 for a Unix-socket session; no other test uses the socket.
            assert any(port == -1 for (port,) in sessions), sessions
        finally:
            gw.stop()


def test_unknown_route_and_wrong_method_are_json_errors(gateway):
    assert_error(requests.get(f"{gateway.url}/nope", timeout=5), 404, "not_found")
    assert_error(requests.get(f"{gateway.url}/healthz/x", timeout=5), 404, "not_found")
    assert_error(requests.post(f"{gateway.url}/healthz", timeout=5), 405, "method_not_allowed")
    assert_error(requests.delete(f"{gateway.url}/readyz", timeout=5), 405, "method_not_allowed")


def test_readyz_503_when_database_unreachable_while_healthz_stays_up():
    closed = free_port()  # nothing listens there
    gw = Gateway(f"postgresql://sealstore_gateway:pw@127.0.0.1:{closed}/sealstore")
    try:
        started = time.monotonic()
        r = requests.get(f"{gw.url}/readyz", timeout=10)
        assert time.monotonic() - started < 5
        err = assert_error(r, 503, "database_unavailable")
        assert err["message"] == "database unavailable"
        assert r.headers["Retry-After"] == "5"
        assert requests.get(f"{gw.url}/healthz", timeout=5).status_code == 200
    finally:
        gw.stop()


class Blackhole:
    """A TCP server that accepts connections and never answers: a hung database."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self):
        for c in self.conns:
            c.close()
        self.sock.close()


def test_hung_database_is_bounded_and_sigterm_drains_in_flight_requests():
    hole = Blackhole()
    gw = Gateway(f"postgresql://sealstore_gateway:pw@127.0.0.1:{hole.port}/sealstore")
    try:
        result = {}

        def call():
            started = time.monotonic()
            result["resp"] = requests.get(f"{gw.url}/readyz", timeout=20)
            result["secs"] = time.monotonic() - started

        t = threading.Thread(target=call)
        t.start()
        time.sleep(0.5)  # the request is now waiting on the database
        gw.proc.send_signal(15)
        t.join(20)
        # The in-flight request was answered (503 after the 2 s database timeout), not cut off.
        assert_error(result["resp"], 503, "database_unavailable")
        assert 1.5 < result["secs"] < 6, result["secs"]
        assert gw.wait(10) == 0
        messages = [e.get("message") for e in gw.events()]
        assert "shutdown requested" in messages and messages[-1] == "stopped", messages
        # After shutdown nothing listens any more.
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{gw.url}/healthz", timeout=2)
    finally:
        gw.stop()
        hole.close()


def test_sigterm_when_idle_exits_cleanly(gateway):
    assert requests.get(f"{gateway.url}/healthz", timeout=5).status_code == 200
    assert gateway.terminate() == 0
    assert [e for e in gateway.events() if e.get("message") == "stopped"]


def thread_policies(pid: int) -> set[int]:
    """The scheduling policy of each of a process's threads (field 41 of their stat lines)."""
    policies = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        policies.add(int(fields[41 - 3]))
    return policies


SCHED_OTHER, SCHED_BATCH = 0, 3


def test_every_gateway_thread_runs_under_the_configured_scheduling_policy(gateway, gateway_pg_url):
    assert requests.get(f"{gateway.url}/readyz", timeout=10).status_code == 200
    assert thread_policies(gateway.proc.pid) == {SCHED_BATCH}
    normal = Gateway(gateway_pg_url, {"SEALSTORE_SCHED_POLICY": "normal"})
    try:
        assert requests.get(f"{normal.url}/readyz", timeout=10).status_code == 200
        assert thread_policies(normal.proc.pid) == {SCHED_OTHER}
    finally:
        normal.stop()
    assert not [e for e in gateway.events() if "scheduling policy" in e.get("message", "")]


def run_gateway(env_vars: dict, args=()):
    e = {"PATH": "/usr/bin:/bin"}
    e.update(env_vars)
    return subprocess.run([env("SEALSTORE_GATEWAY_BIN"), *args], env=e, capture_output=True,
                          text=True, timeout=15)


def test_bad_config_exits_64_before_binding_and_never_echoes_the_password():
    port = free_port()
    listen = {"SEALSTORE_GATEWAY_LISTEN": f"127.0.0.1:{port}"}
    r = run_gateway(listen)
    assert r.returncode == 64
    assert "SEALSTORE_GATEWAY_PG_URL: required" in r.stderr

    for bad in ["postgresql://gw:Very-S3cret@127.0.0.1:notaport/db",
                "host=127.0.0.1 password=Very-S3cret port=x"]:
        r = run_gateway({**listen, "SEALSTORE_GATEWAY_PG_URL": bad})
        assert r.returncode == 64, r.stderr
        assert "SEALSTORE_GATEWAY_PG_URL" in r.stderr
        assert "Very-S3cret" not in r.stdout + r.stderr

    good = "postgresql://gw:Very-S3cret@127.0.0.1:1/db"
    for name, value in [("SEALSTORE_DB_POOL_SIZE", "0"), ("SEALSTORE_GATEWAY_LISTEN", "nowhere"),
                        ("SEALSTORE_SHUTDOWN_TIMEOUT_SECS", "forever"),
                        ("SEALSTORE_SCHED_POLICY", "realtime")]:
        r = run_gateway({**listen, "SEALSTORE_GATEWAY_PG_URL": good, name: value})
        assert r.returncode == 64 and name in r.stderr, (name, r.stderr)
        assert "Very-S3cret" not in r.stdout + r.stderr
    r = run_gateway({**listen, "SEALSTORE_GATEWAY_PG_URL": good}, ["--no-such-flag"])
    assert r.returncode == 64


def test_help_never_shows_the_connection_url():
    r = run_gateway({"SEALSTORE_GATEWAY_PG_URL": "postgresql://gw:Very-S3cret@127.0.0.1/db"},
                    ["--help"])
    assert r.returncode == 0
    assert "SEALSTORE_GATEWAY_PG_URL" in r.stdout
    assert "Very-S3cret" not in r.stdout + r.stderr


def test_port_in_use_exits_69():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = run_gateway({"SEALSTORE_GATEWAY_PG_URL": "postgresql://gw:pw@127.0.0.1:1/db",
                         "SEALSTORE_GATEWAY_LISTEN": f"127.0.0.1:{port}"})
    assert r.returncode == 69
    assert "cannot listen" in r.stdout


def test_logs_are_json_and_carry_no_credentials(gateway_pg_url):
    gw = Gateway(gateway_pg_url)
    token = "sk_test_" + "Q" * 40
    try:
        requests.get(f"{gw.url}/readyz", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        requests.get(f"{gw.url}/nope?token={token}", timeout=5)
        assert gw.terminate() == 0
    finally:
        gw.stop()
    log = gw.log()
    password = gateway_pg_url.split(":")[2].split("@")[0]
    assert token not in log
    assert password not in log
    for line in gw.lines:
        json.loads(line)  # every line is one JSON object
    requests_logged = [e for e in gw.events() if e.get("message") == "request"]
    # Route templates, never raw paths (ids, secret names) or query strings.
    assert {(e["route"], e["status"]) for e in requests_logged} == {("/readyz", 200), ("unmatched", 404)}
    assert all(UUID.match(e["request_id"]) for e in requests_logged)
