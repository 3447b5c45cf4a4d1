"""The gateway's hardening over HTTP: strict input, the body limit, rate limits, CORS and the
Host check, TLS with HSTS, and production mode's refusals."""
import datetime
import ipaddress
import secrets
import subprocess

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harness import Gateway, env
from clients import Api, assert_error, assert_security_headers, mint

DIMS = 4


def test_strict_input(gw, tenants):
    a = tenants[0]["api"]
    coll = f"strict-{secrets.token_hex(3)}"
    a("POST", "/v1/collections", {"name": coll, "dims": DIMS})
    bad_bodies = [
        ("POST", "/v1/collections", {"name": "x", "dims": DIMS, "colour": "red"}),
        ("POST", "/v1/collections", {"name": "x", "dims": "4"}),
        ("POST", "/v1/collections", {"name": "x"}),
        ("POST", "/v1/collections", {"name": "x", "dims": 0}),
        ("POST", "/v1/collections", {"name": "x", "dims": 20000}),
        ("POST", "/v1/collections", {"name": "x", "dims": 4, "metric": "manhattan"}),
        ("POST", "/v1/collections", {"name": "", "dims": 4}),
        ("POST", f"/v1/collections/{coll}/documents", {"content": "x", "embedding": [1, 2, 3]}),
        ("POST", f"/v1/collections/{coll}/documents", {"content": "x", "embedding": [1, 2, 3, 4], "metadata": [1]}),
        ("POST", f"/v1/collections/{coll}/documents", {"content": "x\u0000y", "embedding": [1, 2, 3, 4]}),
        ("POST", f"/v1/collections/{coll}/documents", {"content": "x", "embedding": [1e39, 0, 0, 0]}),
        ("POST", f"/v1/collections/{coll}/documents", {"content": 5, "embedding": [1, 2, 3, 4]}),
        ("POST", f"/v1/collections/{coll}/search", {"vector": [1, 2, 3, 4], "k": 0}),
        ("POST", f"/v1/collections/{coll}/search", {"vector": [1, 2, 3, 4], "k": 1001}),
        ("POST", f"/v1/collections/{coll}/search", {"vector": [1, 2, 3, 4], "filter": "x"}),
        ("POST", f"/v1/collections/{coll}/search", {"vector": []}),
        ("PUT", "/v1/secrets/x", {"value": None}),
        ("PUT", "/v1/secrets/x", {}),
        ("PUT", "/v1/secrets/" + "n" * 201, {"value": "v"}),
        ("GET", "/v1/documents/not-a-uuid", None),
        ("DELETE", "/v1/documents/123", None),
    ]
    for method, path, body in bad_bodies:
        r = a(method, path, body)
        assert_error(r, 400, "invalid_request")
        assert "\u0000" not in r.text
    r = requests.post(f"{gw.url}/v1/collections/{coll}/search", data="{not json",
                      headers={"Authorization": f"Bearer {a.token}", "Content-Type": "application/json"}, timeout=10)
    assert_error(r, 400, "invalid_request")
    r = requests.post(f"{gw.url}/v1/collections/{coll}/search", data='{"vector": [1,2,3,4]}',
                      headers={"Authorization": f"Bearer {a.token}", "Content-Type": "text/plain"}, timeout=10)
    assert_error(r, 415, "unsupported_media_type")
    assert_error(a("POST", "/v1/collections/nope/search", {"vector": [1, 2, 3, 4]}), 404, "not_found")
    assert_error(a("PATCH", "/v1/secrets/x", {"value": "v"}), 405, "method_not_allowed")


def test_body_limit_is_413(gateway_pg_url, hs):
    g = Gateway(gateway_pg_url, {"SEALSTORE_MAX_BODY_BYTES": "4096"})
    try:
        api = Api(g.url, mint(hs[1], hs[0], scope="admin"))
        r = api("PUT", "/v1/secrets/big", {"value": "x" * 5000})
        assert_error(r, 413, "payload_too_large")
        # Chunked, with no announced length: cut off while reading.
        def chunks():
            for _ in range(10):
                yield b'{"value": "' + b"y" * 1000
        r = requests.put(f"{g.url}/v1/secrets/big", data=chunks(),
                         headers={"Authorization": f"Bearer {api.token}", "Content-Type": "application/json"},
                         timeout=10)
        assert_error(r, 413, "payload_too_large")
    finally:
        g.stop()


def test_rate_limits_answer_429_with_retry_after(gateway_pg_url, tenants):
    g = Gateway(gateway_pg_url, {"SEALSTORE_RATE_PER_KEY": "2", "SEALSTORE_RATE_PER_IP": "1000"})
    try:
        api = Api(g.url, tenants[0]["keys"]["r"]["key"])
        statuses = [api("GET", "/v1/secrets/none").status_code for _ in range(12)]
        assert statuses.count(429) >= 6, statuses
        assert statuses[:4] == [404] * 4, statuses  # burst of 2x the rate
        r = api("GET", "/v1/secrets/none")
        assert_error(r, 429, "rate_limited")
        assert 1 <= int(r.headers["Retry-After"]) <= 2
        # Another credential has its own allowance.
        assert api.as_(tenants[1]["keys"]["r"]["key"])("GET", "/v1/secrets/none").status_code == 404
    finally:
        g.stop()
    g = Gateway(gateway_pg_url, {"SEALSTORE_RATE_PER_IP": "3"})
    try:
        statuses = [requests.get(f"{g.url}/v1/secrets/x", timeout=5).status_code for _ in range(12)]
        assert 429 in statuses and statuses[0] == 401, statuses
    finally:
        g.stop()


def test_cors_allow_list_and_host_check(gateway_pg_url, tenants):
    g = Gateway(gateway_pg_url, {"SEALSTORE_CORS_ORIGINS": "https://app.example.com"})
    try:
        pre = lambda origin: requests.options(  # noqa: E731
            f"{g.url}/v1/secrets/x", timeout=5,
            headers={"Origin": origin, "Access-Control-Request-Method": "GET",
                     "Access-Control-Request-Headers": "authorization"})
        r = pre("https://app.example.com")
        assert r.status_code == 200
        assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        assert "authorization" in r.headers["Access-Control-Allow-Headers"].lower()
        assert_security_headers(r)
        r = pre("https://evil.example.com")
        assert "Access-Control-Allow-Origin" not in r.headers
        api = Api(g.url, tenants[0]["keys"]["r"]["key"])
        r = api("GET", "/v1/secrets/none", headers={"Origin": "https://app.example.com"})
        assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        assert "x-request-id" in r.headers["Access-Control-Expose-Headers"].lower()
        # Host allow-list: the listen address and localhost by default.
        port = g.addr.split(":")[1]
        for host, status in [(f"localhost:{port}", 404), (f"127.0.0.1:{port}", 404), ("evil.example.com", 421)]:
            r = api("GET", "/v1/secrets/none", headers={"Host": host})
            assert r.status_code == status, host
        assert requests.get(f"{g.url}/healthz", headers={"Host": "evil.example.com"}, timeout=5).status_code == 200
    finally:
        g.stop()


def self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return cert_file, key_file


def test_tls_with_hsts(gateway_pg_url, tenants, tmp_path):
    cert, key = self_signed(tmp_path)
    g = Gateway(gateway_pg_url, {"SEALSTORE_TLS_CERT_FILE": str(cert), "SEALSTORE_TLS_KEY_FILE": str(key)})
    try:
        url = f"https://{g.addr}"
        r = requests.get(f"{url}/v1/secrets/none", verify=str(cert), timeout=10,
                         headers={"Authorization": f"Bearer {tenants[0]['keys']['r']['key']}"})
        assert r.status_code == 404
        assert r.headers["Strict-Transport-Security"].startswith("max-age=31536000")
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://{g.addr}/healthz", timeout=5)
    finally:
        g.stop()
    # A key file that is not a key: refused at start, exit 64, nothing of the file in the log.
    (tmp_path / "bad.pem").write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    r = run_gateway({"SEALSTORE_GATEWAY_PG_URL": gateway_pg_url, "SEALSTORE_GATEWAY_LISTEN": "127.0.0.1:0",
                     "SEALSTORE_TLS_CERT_FILE": str(cert), "SEALSTORE_TLS_KEY_FILE": str(tmp_path / "bad.pem")})
    assert r.returncode == 64
    assert "bad.pem" in r.stdout + r.stderr and "bm90IGEga2V5" not in r.stdout + r.stderr


def run_gateway(environment):
    return subprocess.run([env("SEALSTORE_GATEWAY_BIN")], capture_output=True, text=True, timeout=20,
                          env={"PATH": "/usr/bin:/bin", **environment})


def test_production_mode_refuses_weak_secrets():
    weak = "postgresql://sealstore_gateway:short@127.0.0.1:1/sealstore"
    r = run_gateway({"SEALSTORE_GATEWAY_PG_URL": weak, "SEALSTORE_PRODUCTION": "true"})
    assert r.returncode == 64
    assert "under 16 bytes" in r.stderr and "short" not in r.stderr.replace("under 16 bytes", "")
