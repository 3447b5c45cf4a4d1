"""Credentials over HTTP: the auth matrix, public-key JWTs verified in the gateway and new keys
reaching it, cross-tenant attempts, brute-force throttling and its audit rows, and logs that
carry no credential."""
import json
import secrets
import time
import uuid

import jwt
import psycopg
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from harness import Gateway, wait_until
from clients import Api, assert_error, mint

DIMS = 4


def test_auth_matrix(gw, admin, tenants, hs, admin_url):
    t0, t1 = tenants
    api = t0["api"]
    kid, secret = hs
    tenant_claims = {"tenant": t0["id"], "scope": "read write"}
    cases = [
        (None, 401),
        ("", 401),
        ("garbage", 401),
        ("sst_" + "0" * 32 + "_" + "0" * 64, 401),
        (mint(secret, kid, ttl=-120, **tenant_claims), 401),                  # expired
        (mint("x" * 64, kid, **tenant_claims), 401),                          # wrong secret
        (mint(secret, "no-such-kid", **tenant_claims), 401),                  # unknown kid
        (mint(secret, kid, tenant=str(uuid.uuid4()), scope="read"), 401),     # unknown tenant
        (mint(secret, kid, scope="read"), 401),                               # no tenant, no admin
        (mint(secret, kid, **tenant_claims), 200),
        (t0["keys"]["rw"]["key"], 200),
        (t0["keys"]["r"]["key"], 200),
        (t0["keys"]["w"]["key"], 403),                                        # write-only cannot read
    ]
    api("PUT", "/v1/secrets/matrix", {"value": "m"})
    for token, status in cases:
        r = api("GET", "/v1/secrets/matrix", token=token)
        assert r.status_code == status, (token and token[:12], r.text)
        if status == 401:
            assert r.headers["WWW-Authenticate"] == "Bearer"
            assert_error(r, 401, "unauthorized")
    # Scopes on writes.
    assert_error(api("PUT", "/v1/secrets/m2", {"value": "x"}, token=t0["keys"]["r"]["key"]), 403, "forbidden")
    # Tenant credentials on admin routes.
    assert_error(api("POST", "/v1/tenants", {"name": "nope"}), 403, "forbidden")
    assert_error(api("POST", f"/v1/tenants/{t0['id']}/rotate-key"), 403, "forbidden")
    # A tenant's admin key manages its own tenant only; other tenants look absent.
    tadm = api.as_(t0["keys"]["adm"]["key"])
    assert tadm("POST", f"/v1/tenants/{t0['id']}/rotate-key").status_code == 200
    assert_error(tadm("POST", f"/v1/tenants/{t1['id']}/rotate-key"), 404, "not_found")
    assert_error(tadm("DELETE", f"/v1/tenants/{t1['id']}"), 404, "not_found")
    assert_error(tadm("POST", f"/v1/tenants/{t1['id']}/api-keys", {"name": "x", "scopes": ["read"]}), 404, "not_found")
    assert_error(tadm("DELETE", f"/v1/api-keys/{t1['keys']['r']['id']}"), 404, "not_found")
    assert_error(tadm("POST", "/v1/tenants", {"name": "x"}), 403, "forbidden")
    # The other tenant's key is still alive after that attempt.
    assert api.as_(t1["keys"]["r"]["key"])("GET", "/v1/secrets/none").status_code == 404
    # Malformed Authorization headers.
    for header in ["Basic dXNlcjpwdw==", "Bearer", "Bearer a b", t0["keys"]["rw"]["key"]]:
        r = requests.get(f"{gw.url}/v1/secrets/matrix", headers={"Authorization": header}, timeout=10)
        assert_error(r, 401, "unauthorized")
    # Never a token in the URL, even alongside a good header.
    r = api("GET", f"/v1/secrets/matrix?access_token={t0['keys']['rw']['key']}")
    assert_error(r, 400, "credential_in_query")


def test_public_key_jwt_verified_in_the_gateway_and_new_keys_work_within_seconds(gw, tenants, admin_url):
    t0 = tenants[0]
    sk = ed25519.Ed25519PrivateKey.generate()
    pem = sk.public_key().public_bytes(serialization.Encoding.PEM,
                                       serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    kid = f"e2e-ed-{secrets.token_hex(4)}"
    token = mint(sk, kid, alg="EdDSA", tenant=t0["id"], scope="read")
    api = t0["api"].as_(token)
    # Unknown kid at first.
    assert_error(api("GET", "/v1/secrets/none"), 401, "unauthorized")
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("SELECT sealstore.add_jwt_key(%s, 'EdDSA', %s)", (kid, pem))
    started = time.monotonic()
    assert wait_until(lambda: api("GET", "/v1/secrets/none").status_code == 404, 10), "new key never accepted"
    assert time.monotonic() - started < 10
    # A token signed by another Ed25519 key with the same kid is refused.
    forged = mint(ed25519.Ed25519PrivateKey.generate(), kid, alg="EdDSA", tenant=t0["id"], scope="read")
    assert_error(api("GET", "/v1/secrets/none", token=forged), 401, "unauthorized")
    # Retiring it stops it.
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("SELECT sealstore.retire_jwt_key(%s)", (kid,))
    assert wait_until(lambda: api("GET", "/v1/secrets/none").status_code == 401, 15)


def test_cross_tenant_attempts_leak_nothing(tenants):
    (a, b) = (tenants[0]["api"], tenants[1]["api"])
    coll = f"iso-{secrets.token_hex(3)}"
    for api in (a, b):
        assert api("POST", "/v1/collections", {"name": coll, "dims": DIMS}).status_code == 201
    doc = a("POST", f"/v1/collections/{coll}/documents",
            {"content": "tenant A only", "embedding": [1, 2, 3, 4], "metadata": {"owner": "A"}}).json()["id"]
    a("PUT", "/v1/secrets/iso", {"value": "A's secret"})
    leaks = 0
    for r in [b("GET", f"/v1/documents/{doc}"), b("DELETE", f"/v1/documents/{doc}"), b("GET", "/v1/secrets/iso")]:
        leaks += r.status_code != 404
        leaks += "tenant A only" in r.text or "A's secret" in r.text
    r = b("POST", f"/v1/collections/{coll}/search", {"vector": [1, 2, 3, 4], "k": 100})
    assert r.status_code == 200
    leaks += any(x["id"] == doc for x in r.json()["results"])
    # B deleting its own same-named secret leaves A's alone.
    assert b("DELETE", "/v1/secrets/iso").status_code == 404
    assert leaks == 0
    assert a("GET", f"/v1/documents/{doc}").json()["content"] == "tenant A only"
    assert a("GET", "/v1/secrets/iso").json()["value"] == "A's secret"


def test_repeated_auth_failures_throttle_the_address_and_are_audited(gateway_pg_url, admin_url, tenants):
    g = Gateway(gateway_pg_url, {"SEALSTORE_AUTH_FAILURES_PER_MINUTE": "5", "SEALSTORE_AUTH_PENALTY_SECS": "30"})
    try:
        api = Api(g.url, tenants[0]["keys"]["r"]["key"])
        with psycopg.connect(admin_url, autocommit=True) as su:
            before = su.execute("SELECT coalesce(sum((detail->>'count')::int), 0) FROM sealstore.audit_log "
                                "WHERE action = 'authentication_failed'").fetchone()[0]
        assert api("GET", "/v1/secrets/none").status_code == 404
        wrong = "sst_" + "1" * 32 + "_" + "2" * 64
        statuses = [api("GET", "/v1/secrets/none", token=wrong).status_code for _ in range(10)]
        assert statuses[:5] == [401] * 5 and statuses[-1] == 429, statuses
        # Now even a good credential from that address waits out the penalty.
        r = api("GET", "/v1/secrets/none")
        assert_error(r, 429, "rate_limited")
        assert 20 <= int(r.headers["Retry-After"]) <= 30
        # The failures reached the audit log (batched, within a few seconds); nothing of the token.
        def audited():
            with psycopg.connect(admin_url, autocommit=True) as su:
                rows = su.execute("SELECT actor, detail FROM sealstore.audit_log "
                                  "WHERE action = 'authentication_failed'").fetchall()
            total = sum(d["count"] for _, d in rows)
            return total - before >= 6 and rows
        rows = None
        assert wait_until(lambda: audited(), 10)
        rows = audited()
        assert all(d["client"] == "127.0.0.1" and set(d) == {"client", "reason", "count"} for _, d in rows)
        assert any(d["reason"] == "bad_api_key" for _, d in rows)
        assert "1111111111" not in json.dumps([d for _, d in rows])
        assert {a for a, _ in rows} == {gateway_pg_url.split("//")[1].split(":")[0]}
    finally:
        g.stop()


def test_only_the_gateway_reports_failed_authentications_and_only_well_formed_ones(app_url, gateway_pg_url):
    good = '[{"client": "1.2.3.4", "reason": "bad_signature", "count": 1}]'
    with psycopg.connect(app_url, autocommit=True) as conn:
        # An application cannot write audit rows that look like the gateway's.
        with pytest.raises(psycopg.Error) as info:
            conn.execute("SELECT sealstore.record_auth_failures(%s::jsonb)", (good,))
        assert info.value.sqlstate == "42501"
        with pytest.raises(psycopg.Error) as info:
            conn.execute("DELETE FROM sealstore.audit_log")
        assert info.value.sqlstate == "42501"
    with psycopg.connect(gateway_pg_url, autocommit=True) as conn:
        for bad in ['[]', '[{"client": "1.2.3.4", "reason": "x", "count": 1, "token": "t"}]',
                    '[{"client": "not-an-ip", "reason": "x", "count": 1}]']:
            with pytest.raises(psycopg.Error) as info:
                conn.execute("SELECT sealstore.record_auth_failures(%s::jsonb)", (bad,))
            assert info.value.sqlstate == "22023"


def test_gateway_log_carries_no_credentials_or_plaintext(gw, tenants, hs):
    log = gw.log()
    for t in tenants:
        for k in t["keys"].values():
            assert k["key"] not in log
            assert k["key"][4:36] not in log
    assert hs[1] not in log
    for plaintext in ["hunter2", "A's secret", "tenant A only", "ünïcode"]:
        assert plaintext not in log
    assert "Authorization" not in log and "Bearer" not in log


def test_a_credential_revokes_itself_and_nothing_else(gw, admin, tenants, hs, admin_url):
    """POST /v1/auth/revoke, a log-out: a JWT by its jti, an API key as itself; any scope."""
    t0, _ = tenants
    kid, secret = hs
    claims = {"tenant": t0["id"], "scope": "read"}
    jwt_out, jwt_kept = (mint(secret, kid, jti=f"out-{secrets.token_hex(6)}", **claims),
                         mint(secret, kid, jti=f"kept-{secrets.token_hex(6)}", **claims))
    no_jti = mint(secret, kid, **claims)
    key = admin("POST", f"/v1/tenants/{t0['id']}/api-keys", {"name": "logout", "scopes": ["write"]}).json()
    a = Api(gw.url)
    for token in (jwt_out, jwt_kept, key["key"]):
        assert a("POST", "/v1/collections/none/search", {"vector": [0] * DIMS}, token=token).status_code != 401
    assert a("POST", "/v1/auth/revoke", token=jwt_out).status_code == 204
    assert_error(a("POST", "/v1/auth/revoke", token=jwt_out), 401, "unauthorized")
    assert_error(a("GET", f"/v1/documents/{uuid.uuid4()}", token=jwt_out), 401, "unauthorized")
    assert a("GET", f"/v1/documents/{uuid.uuid4()}", token=jwt_kept).status_code == 404
    # A JWT without a jti cannot be revoked early: it says so, and still works.
    assert_error(a("POST", "/v1/auth/revoke", token=no_jti), 400, "invalid_request")
    assert a("GET", f"/v1/documents/{uuid.uuid4()}", token=no_jti).status_code == 404
    # An API key, whatever its scopes, revokes itself only; a body is refused.
    assert_error(a("POST", "/v1/auth/revoke", {"id": "other"}, token=key["key"]), 400, "invalid_request")
    assert a("POST", "/v1/auth/revoke", token=key["key"]).status_code == 204
    assert_error(a("POST", "/v1/collections/none/search", {"vector": [0] * DIMS}, token=key["key"]),
                 401, "unauthorized")
    assert t0["api"]("GET", f"/v1/documents/{uuid.uuid4()}").status_code == 404
    with psycopg.connect(admin_url, autocommit=True) as su:
        rows = su.execute("SELECT detail FROM sealstore.audit_log WHERE action = 'revoke_token' "
                          "AND detail->>'jti' = %s", (jwt.decode(jwt_out, options={"verify_signature": False})["jti"],)).fetchall()
        assert [r[0]["own"] for r in rows] == [True]
        assert su.execute("SELECT revoked_at IS NOT NULL FROM sealstore.api_keys WHERE id = %s",
                          (key["id"],)).fetchone() == (True,)
