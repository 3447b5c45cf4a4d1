"""sealstore.authenticate() against a real database: every algorithm, a matrix of hostile tokens
(each rejected with SQLSTATE 28P01 and a reason that never echoes the token), API keys, and key
changes reaching other live backends without a restart. Keys are generated at run time."""
import base64
import json
import secrets
import time
import uuid

import jwt  # PyJWT
import psycopg
import pytest
from clients import Keys
from harness import create_login_role, drop_role

AUD, ISS = "sealstore-e2e", "https://idp.e2e.example"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header: dict, claims: dict, signature: bytes = b"") -> str:
    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(signature)])


@pytest.fixture(scope="module")
def setup(admin_url):
    """Keys registered, a tenant, and an app login role whose sessions check aud and iss."""
    keys = Keys()
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("SET log_min_error_statement = panic")
        for alg, kid in keys.kids.items():
            su.execute("SELECT sealstore.add_jwt_key(%s, %s, %s, admin => true)",
                       (kid, alg, keys.material(alg)))
        tenant = su.execute("SELECT sealstore.create_tenant('auth-e2e')").fetchone()[0]
        other = su.execute("SELECT sealstore.create_tenant('auth-e2e-shredded')").fetchone()[0]
        su.execute("SELECT sealstore.shred_tenant(%s)", (other,))
    url = create_login_role(admin_url, "e2e_auth_app", "sealstore_app",
                            f"sealstore.jwt_audience = '{AUD}'", f"sealstore.jwt_issuer = '{ISS}'",
                            "sealstore.jwt_leeway = 5")
    yield {"keys": keys, "tenant": tenant, "shredded": other, "url": url}
    with psycopg.connect(admin_url, autocommit=True) as su:
        drop_role(su, "e2e_auth_app")


def claims(setup, **over):
    c = {"sub": "user-1", "tenant": str(setup["tenant"]), "scope": "read write",
         "aud": AUD, "iss": ISS, "exp": int(time.time()) + 300}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def sign(setup, alg="HS256", kid=None, **over):
    keys = setup["keys"]
    return jwt.encode(claims(setup, **over), keys.signing(alg), algorithm=alg,
                      headers={"kid": kid or keys.kids[alg]})


def authenticate(url, token):
    with psycopg.connect(url) as conn:
        summary = conn.execute("SELECT sealstore.authenticate(%s)", (token,)).fetchone()[0]
        tenant = conn.execute("SELECT sealstore.current_tenant()").fetchone()[0]
        return summary, tenant


@pytest.mark.parametrize("alg", ["HS256", "RS256", "ES256", "EdDSA"])
def test_each_algorithm_authenticates(setup, alg):
    summary, tenant = authenticate(setup["url"], sign(setup, alg))
    assert tenant == setup["tenant"]
    assert summary == {"tenant": str(setup["tenant"]), "subject": "user-1", "scopes": ["read", "write"]}


def bad_tokens(setup):
    keys, t = setup["keys"], int(time.time())
    hs, rs = keys.kids["HS256"], keys.kids["RS256"]
    good = sign(setup)
    h, p, s = good.split(".")
    flipped = s[:-2] + ("A" if s[-2] != "A" else "B") + s[-1]
    other_tenant_claims = b64(json.dumps(claims(setup, tenant=str(uuid.uuid4()))).encode())
    rsa_pem = keys.material("RS256")
    return {
        "alg none": raw_token({"alg": "none", "kid": hs}, claims(setup)),
        "alg none, typ JWT": raw_token({"alg": "none", "typ": "JWT", "kid": rs}, claims(setup), b""),
        # The classic confusion: HMAC keyed with the RSA public key, under the RSA key's kid.
        # (PyJWT refuses to make it, so it is signed by hand.)
        "HS256 signed with the RS256 public key": raw_hs256(claims(setup), rsa_pem.encode(), rs),
        "RS256 token under the HS256 kid": sign(setup, "RS256", kid=hs),
        "expired": sign(setup, exp=t - 120),
        "expired within the cap but beyond the leeway": sign(setup, exp=t - 20),
        "nbf in the future": sign(setup, nbf=t + 120),
        "missing exp": sign(setup, exp=None),
        "string exp": sign(setup, exp=str(t + 300)),
        "string nbf": sign(setup, nbf=str(t - 10)),
        "float exp": sign(setup, exp=t + 300.5),
        "wrong aud": sign(setup, aud="someone-else"),
        "missing aud": sign(setup, aud=None),
        "wrong iss": sign(setup, iss="https://evil.example"),
        "missing iss": sign(setup, iss=None),
        "unknown kid": sign(setup, kid="no-such-kid"),
        "no kid": jwt.encode(claims(setup), keys.hs_secret.encode(), algorithm="HS256"),
        "bad signature": f"{h}.{p}.{flipped}",
        "payload swapped under a valid signature": f"{h}.{other_tenant_claims}.{s}",
        "signed with another secret": jwt.encode(claims(setup), secrets.token_hex(32).encode(),
                                                 algorithm="HS256", headers={"kid": hs}),
        "two segments": f"{h}.{p}",
        "four segments": f"{good}.{s}",
        "empty": "",
        "garbage": "not a token at all",
        "header not JSON": f"{b64(b'{{{')}.{p}.{s}",
        "oversized": sign(setup, pad="x" * 9000),
        "unknown tenant": sign(setup, tenant=str(uuid.uuid4())),
        "shredded tenant": sign(setup, tenant=str(setup["shredded"])),
        "tenant not a uuid": sign(setup, tenant="acme"),
        "no tenant and no admin scope": sign(setup, tenant=None),
        "scope not a string": sign(setup, scope=["admin"]),
        "no sub": sign(setup, sub=None),
        "API key of unknown id": "sst_" + secrets.token_hex(16) + "_" + secrets.token_hex(32),
        "API key malformed": "sst_" + secrets.token_hex(16),
        "API key upper-case": "sst_" + secrets.token_hex(16).upper() + "_" + secrets.token_hex(32),
    }


def raw_hs256(claims_: dict, key: bytes, kid: str) -> str:
    import hashlib
    import hmac
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64(json.dumps(claims_).encode())
    sig = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def test_bad_token_matrix_is_rejected_with_28P01(setup, admin_url):
    tokens = bad_tokens(setup)
    assert len(tokens) >= 25
    reasons = {}
    with psycopg.connect(setup["url"], autocommit=True) as conn:
        for name, token in tokens.items():
            with pytest.raises(psycopg.Error) as err:
                conn.execute("SELECT sealstore.authenticate(%s)", (token,))
            diag = err.value.diag
            assert diag.sqlstate == "28P01", f"{name}: {diag.sqlstate} {diag.message_primary}"
            assert diag.message_primary == "credential rejected", name
            # Nothing of the token comes back.
            for piece in [p for p in token.split(".") + [token[4:40]] if len(p) > 8]:
                assert piece not in str(diag.message_detail), name
            reasons[name] = diag.message_detail
            # And no context is left behind.
            with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
                conn.execute("SELECT sealstore.current_tenant()")
    # DETAIL: the failed check's stable code, then what it means.
    assert reasons["expired"] == "expired: JWT has expired"
    assert reasons["string exp"] == "bad_claim: JWT claim exp has the wrong type or format"
    assert reasons["HS256 signed with the RS256 public key"] == \
        "algorithm_not_allowed: JWT algorithm is not the one configured for its key"
    assert reasons["unknown tenant"] == reasons["shredded tenant"]


def test_leeway_accepts_small_clock_skew(setup):
    _, tenant = authenticate(setup["url"], sign(setup, exp=int(time.time()) - 2))
    assert tenant == setup["tenant"]


def test_app_role_cannot_relax_token_checks(setup):
    with psycopg.connect(setup["url"], autocommit=True) as conn:
        for stmt in ("SET sealstore.jwt_leeway = 30", "SET sealstore.jwt_audience = ''",
                     "SELECT set_config('sealstore.jwt_issuer', '', false)", "RESET sealstore.jwt_audience"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(stmt)
        with pytest.raises(psycopg.Error):
            conn.execute("SET sealstore.jwt_leeway = 31")


def test_admin_token_has_no_tenant(setup):
    with psycopg.connect(setup["url"]) as conn:
        summary = conn.execute("SELECT sealstore.authenticate(%s)",
                               (sign(setup, tenant=None, scope="admin"),)).fetchone()[0]
        assert summary["tenant"] is None and summary["scopes"] == ["admin"]
        assert conn.execute("SELECT sealstore.has_scope('admin')").fetchone()[0] is True
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            conn.execute("SELECT sealstore.current_tenant()")


def test_key_changes_reach_a_live_backend_without_restart(setup, admin_url):
    """A second backend that has verified with (and cached) a key sees its retirement, and a new
    key, as soon as they commit."""
    kid = "e2e-live-" + secrets.token_hex(4)
    secret = secrets.token_hex(32)
    token = jwt.encode(claims(setup), secret.encode(), algorithm="HS256", headers={"kid": kid})
    with psycopg.connect(setup["url"], autocommit=True) as app, \
            psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("SET log_min_error_statement = panic")
        with pytest.raises(psycopg.errors.InvalidPassword):
            app.execute("SELECT sealstore.authenticate(%s)", (token,))
        su.execute("SELECT sealstore.add_jwt_key(%s, 'HS256', %s)", (kid, secret))
        app.execute("SELECT sealstore.authenticate(%s)", (token,))
        app.execute("SELECT sealstore.authenticate(%s)", (token,))  # cached now
        su.execute("SELECT sealstore.retire_jwt_key(%s)", (kid,))
        with pytest.raises(psycopg.errors.InvalidPassword):
            app.execute("SELECT sealstore.authenticate(%s)", (token,))
        # A retired kid is never reused.
        with pytest.raises(psycopg.errors.DuplicateObject):
            su.execute("SELECT sealstore.add_jwt_key(%s, 'HS256', %s)", (kid, secret))
        with pytest.raises(psycopg.errors.UndefinedObject):
            su.execute("SELECT sealstore.retire_jwt_key(%s)", (kid,))


def test_api_key_revocation_reaches_a_live_backend_at_once(setup, admin_url):
    with psycopg.connect(admin_url, autocommit=True) as su, \
            psycopg.connect(setup["url"], autocommit=True) as app:
        key = su.execute("SELECT sealstore.create_api_key(%s, 'live', '{read}')",
                         (setup["tenant"],)).fetchone()[0]
        key_id = uuid.UUID(key.split("_")[1])
        for _ in range(3):
            app.execute("SELECT sealstore.authenticate(%s)", (key,))
        su.execute("SELECT sealstore.revoke_api_key(%s)", (key_id,))
        with pytest.raises(psycopg.errors.InvalidPassword):
            app.execute("SELECT sealstore.authenticate(%s)", (key,))
        with pytest.raises(psycopg.errors.UndefinedObject):
            su.execute("SELECT sealstore.revoke_api_key(%s)", (key_id,))


def test_api_key_use_is_recorded_coarsely_and_never_fails_read_only(setup, admin_url):
    with psycopg.connect(admin_url, autocommit=True) as su:
        key = su.execute("SELECT sealstore.create_api_key(%s, 'usage', '{read}')",
                         (setup["tenant"],)).fetchone()[0]
        key_id = uuid.UUID(key.split("_")[1])

        def last_used():
            return su.execute("SELECT last_used_at FROM sealstore.api_keys WHERE id = %s",
                              (key_id,)).fetchone()[0]

        # Read-only transaction and REPEATABLE READ: authenticated, nothing written.
        with psycopg.connect(setup["url"]) as app:
            app.execute("BEGIN READ ONLY")
            app.execute("SELECT sealstore.authenticate(%s)", (key,))
            app.execute("COMMIT")
            app.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            app.execute("SELECT sealstore.authenticate(%s)", (key,))
            app.execute("COMMIT")
        assert last_used() is None
        # A read-write transaction records it, truncated to the hour, once.
        with psycopg.connect(setup["url"]) as app:
            app.execute("SELECT sealstore.authenticate(%s)", (key,))
            app.commit()
            first = last_used()
            assert first is not None and first.minute == 0 and first.second == 0
            xmin = su.execute("SELECT xmin::text FROM sealstore.api_keys WHERE id = %s", (key_id,)).fetchone()[0]
            for _ in range(20):
                app.execute("SELECT sealstore.authenticate(%s)", (key,))
                app.commit()
        with psycopg.connect(setup["url"]) as app2:  # a new backend, same hour: no write either
            app2.execute("SELECT sealstore.authenticate(%s)", (key,))
            app2.commit()
        assert su.execute("SELECT xmin::text FROM sealstore.api_keys WHERE id = %s", (key_id,)).fetchone()[0] == xmin


def sqlstate(conn, sql, params=()):
    with pytest.raises(psycopg.Error) as info:
        conn.execute(sql, params)
    conn.rollback()
    return info.value.sqlstate


def test_administration_through_a_token_is_confined(setup, admin_url):
    """The app role reaches the tenant and key functions only with an admin credential in the
    same transaction; a tenant's admin API key reaches its own tenant only (raw SQL, as a
    client holding the application role could try)."""
    with psycopg.connect(admin_url, autocommit=True) as su:
        mine = su.execute("SELECT sealstore.create_tenant('admin-scope-mine')").fetchone()[0]
        theirs = su.execute("SELECT sealstore.create_tenant('admin-scope-theirs')").fetchone()[0]
        tenant_admin = su.execute("SELECT sealstore.create_api_key(%s, 'adm', ARRAY['admin'])", (mine,)).fetchone()[0]
        rw = su.execute("SELECT sealstore.create_api_key(%s, 'rw', ARRAY['read', 'write'])", (mine,)).fetchone()[0]
        their_key = su.execute("SELECT sealstore.create_api_key(%s, 'k', ARRAY['read'])", (theirs,)).fetchone()[0]
    their_key_id = str(uuid.UUID(their_key.split("_")[1]))
    calls = {
        "create_tenant": ("SELECT sealstore.create_tenant('x')", ()),
        "add_jwt_key": ("SELECT sealstore.add_jwt_key('x-kid', 'HS256', %s)", (secrets.token_hex(32),)),
        "retire_jwt_key": ("SELECT sealstore.retire_jwt_key('x-kid')", ()),
        "rotate_theirs": ("SELECT sealstore.rotate_tenant_key(%s)", (theirs,)),
        "shred_theirs": ("SELECT sealstore.shred_tenant(%s)", (theirs,)),
        "versions_theirs": ("SELECT * FROM sealstore.key_versions(%s)", (theirs,)),
        "api_key_theirs": ("SELECT sealstore.create_api_key(%s, 'x', ARRAY['read'])", (theirs,)),
        "revoke_theirs": ("SELECT sealstore.revoke_api_key(%s)", (their_key_id,)),
    }
    with psycopg.connect(setup["url"]) as conn:
        # No credential, and a read/write credential: 42501 for every one of them.
        for token in (None, rw):
            for name, (sql, params) in calls.items():
                if token:
                    conn.execute("SELECT sealstore.authenticate(%s)", (token,))
                assert sqlstate(conn, sql, params) == "42501", (name, token and "rw")
        # The tenant's admin key: system-wide ones are 42501, another tenant looks absent.
        expected = {"create_tenant": "42501", "add_jwt_key": "42501", "retire_jwt_key": "42501"}
        for name, (sql, params) in calls.items():
            conn.execute("SELECT sealstore.authenticate(%s)", (tenant_admin,))
            assert sqlstate(conn, sql, params) == expected.get(name, "42704"), name
        # Its own tenant it may administer.
        conn.execute("SELECT sealstore.authenticate(%s)", (tenant_admin,))
        assert conn.execute("SELECT sealstore.rotate_tenant_key(%s)", (mine,)).fetchone()[0] == 2
        conn.commit()
    # Their key survived every attempt.
    summary, tenant = authenticate(setup["url"], their_key)
    assert str(tenant) == str(theirs)


def test_verification_config_carries_no_secret(setup):
    with psycopg.connect(setup["url"]) as conn:
        config = conn.execute("SELECT sealstore.jwt_verification_config()").fetchone()[0]
    by_kid = {k["kid"]: k for k in config["keys"]}
    keys = setup["keys"]
    assert by_kid[keys.kids["HS256"]] == {"kid": keys.kids["HS256"], "algorithm": "HS256", "public_key": None}
    assert by_kid[keys.kids["EdDSA"]]["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    assert keys.hs_secret not in json.dumps(config)
    assert config["audience"] == AUD and config["issuer"] == ISS and config["leeway_secs"] == 5


# Revoked tokens (sealstore.revoke_token): by jti, in every backend once committed.

def refusal(conn, token):
    """The refusal's reason code (the DETAIL's first word), or None if the token is accepted."""
    try:
        conn.execute("SELECT sealstore.authenticate(%s)", (token,))
    except psycopg.errors.InvalidPassword as e:
        if not conn.autocommit:
            conn.rollback()
        return e.diag.message_detail.split(":")[0]
    return None


def test_a_revoked_jti_is_refused_by_a_live_backend_at_once(setup, admin_url):
    jti, other = f"session-{secrets.token_hex(6)}", f"session-{secrets.token_hex(6)}"
    exp = int(time.time()) + 300
    revoked, kept = sign(setup, jti=jti, exp=exp), sign(setup, jti=other, exp=exp)
    with psycopg.connect(admin_url, autocommit=True) as su, \
            psycopg.connect(setup["url"], autocommit=True) as app:
        su.execute("SET log_min_error_statement = panic")
        for _ in range(3):  # cached in the app's backend
            assert refusal(app, revoked) is None and refusal(app, kept) is None
        su.execute("SELECT sealstore.revoke_token(%s, to_timestamp(%s))", (jti, exp))
        started = time.monotonic()
        assert refusal(app, revoked) == "revoked"
        print(f"refused {1000 * (time.monotonic() - started):.1f} ms after the revocation's commit")
        assert refusal(app, kept) is None
        # Every algorithm's tokens carry the same jti namespace.
        assert refusal(app, sign(setup, "EdDSA", jti=jti)) == "revoked"
        # Revoking again is no error, and never shortens a revocation.
        su.execute("SELECT sealstore.revoke_token(%s, to_timestamp(%s))", (jti, exp - 200))
        assert su.execute("SELECT expires_at = to_timestamp(%s) FROM sealstore.revoked_tokens WHERE jti = %s",
                          (exp, jti)).fetchone() == (True,)
        assert refusal(app, revoked) == "revoked"
        audit = su.execute("SELECT count(*) FROM sealstore.audit_log WHERE action = 'revoke_token' "
                           "AND detail->>'jti' = %s", (jti,)).fetchone()[0]
        assert audit == 2


def test_revocations_are_purged_after_their_tokens_expire(setup, admin_url):
    old, new = f"old-{secrets.token_hex(6)}", f"new-{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("SELECT sealstore.revoke_token(%s, now() - interval '2 minutes')", (old,))
        assert su.execute("SELECT count(*) FROM sealstore.revoked_tokens WHERE jti = %s", (old,)).fetchone()[0] == 1
        su.execute("SELECT sealstore.revoke_token(%s, now() + interval '1 hour')", (new,))
        rows = su.execute("SELECT jti FROM sealstore.revoked_tokens WHERE jti IN (%s, %s)", (old, new)).fetchall()
        assert rows == [(new,)]


def test_revoke_token_is_for_system_administrators_with_clean_errors(setup, admin_url):
    with psycopg.connect(admin_url, autocommit=True) as su:
        key = su.execute("SELECT sealstore.create_api_key(%s, 'tenant-admin', '{admin}')",
                         (setup["tenant"],)).fetchone()[0]
        for bad in ("", "x" * 257):
            assert sqlstate(su, "SELECT sealstore.revoke_token(%s, now())", (bad,)) == "22023"
        assert su.execute("SELECT sealstore.revoke_token(NULL, now())").fetchone() == (None,)
    with psycopg.connect(setup["url"]) as app:
        # No context, a tenant's admin key, a tenant's read/write token: none may revoke.
        assert sqlstate(app, "SELECT sealstore.revoke_token('any', now())") == "42501"
        for token in (key, sign(setup)):
            app.execute("SELECT sealstore.authenticate(%s)", (token,))
            assert sqlstate(app, "SELECT sealstore.revoke_token('any', now())") == "42501"
        # A system administrator's token may.
        app.execute("SELECT sealstore.authenticate(%s)",
                    (sign(setup, tenant=None, scope="admin", sub="ops"),))
        app.execute("SELECT sealstore.revoke_token(%s, now() + interval '1 minute')",
                    (f"by-token-{secrets.token_hex(4)}",))
        app.commit()


def test_jti_can_be_required_but_not_relaxed_by_the_app(setup, admin_url):
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("SELECT set_config('sealstore.jwt_audience', %s, false), "
                   "set_config('sealstore.jwt_issuer', %s, false)", (AUD, ISS))
        assert refusal(su, sign(setup)) is None
        su.execute("SET sealstore.jwt_require_jti = on")
        assert refusal(su, sign(setup)) == "missing_claim"
        assert refusal(su, sign(setup, jti="with-one")) is None
        assert refusal(su, sign(setup, jti=7)) == "bad_claim"
    with psycopg.connect(setup["url"], autocommit=True) as app:
        assert sqlstate(app, "SET sealstore.jwt_require_jti = off") == "42501"
