"""Master-key helpers for tests, written independently of the Rust code they check.

`fingerprint` follows RFC 5869 (HKDF-SHA256, empty salt) with Sealstore's fixed label, using
only the standard library, so the extension's fingerprint is checked against a second
implementation. CLI: python keys.py fingerprint KEYFILE
"""
import hashlib
import hmac
import secrets
import sys

FINGERPRINT_INFO = b"sealstore/v1/master-key-fingerprint"


def hkdf_sha256(ikm: bytes, info: bytes, length: int, salt: bytes = b"") -> bytes:
    prk = hmac.new(salt or b"\0" * 32, ikm, hashlib.sha256).digest()
    out, block = b"", b""
    for i in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
    return out[:length]


def fingerprint(key_hex: str) -> str:
    return hkdf_sha256(bytes.fromhex(key_hex.strip()), FINGERPRINT_INFO, 16).hex()


def new_key_hex() -> str:
    return secrets.token_hex(32)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "fingerprint":
        sys.exit("usage: keys.py fingerprint KEYFILE")
    with open(sys.argv[2]) as f:
        print(fingerprint(f.read()))
