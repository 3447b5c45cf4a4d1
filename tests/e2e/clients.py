"""Clients for the end-to-end tests: token minting, signing keys of every algorithm, a gateway
client with one credential, and the checks every error answer and every response must pass."""
import json
import re
import secrets
import time

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def mint(secret, kid, alg="HS256", ttl=300, **claims):
    """A JWT signed with SECRET under KID, expiring in TTL seconds, with CLAIMS (sub: tester)."""
    body = {"sub": "tester", "exp": int(time.time()) + ttl, **claims}
    return jwt.encode(body, secret, algorithm=alg, headers={"kid": kid})


def pem_public(private) -> str:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


class Keys:
    """A JWT signing key of each algorithm, made now, under kids of their own."""

    def __init__(self):
        suffix = secrets.token_hex(4)
        self.hs_secret = secrets.token_hex(32)
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.ed = ed25519.Ed25519PrivateKey.generate()
        self.kids = {alg: f"e2e-{alg.lower()}-{suffix}" for alg in ("HS256", "RS256", "ES256", "EdDSA")}

    def signing(self, alg):
        return {"HS256": self.hs_secret.encode(), "RS256": self.rsa, "ES256": self.ec, "EdDSA": self.ed}[alg]

    def material(self, alg):
        if alg == "HS256":
            return self.hs_secret
        return pem_public({"RS256": self.rsa, "ES256": self.ec, "EdDSA": self.ed}[alg])


class Api:
    """A client of one gateway with one credential."""

    def __init__(self, url, token=None):
        self.url, self.token = url, token

    def __call__(self, method, path, body=None, token=..., headers=None, **kw):
        h = dict(headers or {})
        tok = self.token if token is ... else token
        if tok is not None:
            h["Authorization"] = f"Bearer {tok}"
        if body is not None:
            kw["data"] = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        return requests.request(method, self.url + path, headers=h, timeout=20, **kw)

    def as_(self, token):
        return Api(self.url, token)


def assert_security_headers(resp):
    h = resp.headers
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert h["X-Frame-Options"] == "DENY"
    assert h["Referrer-Policy"] == "no-referrer"
    assert h["Cache-Control"] == "no-store"
    assert UUID.match(h["X-Request-Id"]), h["X-Request-Id"]


def assert_error(resp, status, code):
    """A generic JSON error: STATUS, CODE, a fixed message and the request id, nothing else."""
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"] == "application/json"
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "request_id"}
    assert body["error"]["code"] == code
    assert body["error"]["request_id"] == resp.headers["X-Request-Id"]
    assert_security_headers(resp)
    return body["error"]
