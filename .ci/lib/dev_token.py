"""Mints the development admin token (an HS256 JWT, kid "sealstore-dev", scope "admin", 7 days)
printed by `run`.

The HMAC secret (64 hex characters, used as text, as sealstore.add_jwt_key takes it) is generated
once per development cluster and kept beside it (mode 0600); `run` registers it in the database.
Usage: dev_token.py SECRET_FILE
"""
import os
import secrets
import sys
import time

import jwt  # PyJWT

KID = "sealstore-dev"


def load_or_create_secret(path: str) -> str:
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    with open(path) as f:
        return f.read().strip()


def main() -> None:
    secret = load_or_create_secret(sys.argv[1])
    now = int(time.time())
    claims = {"iss": "sealstore-dev", "sub": "dev-admin", "scope": "admin",
              "iat": now, "exp": now + 7 * 24 * 3600}
    print(jwt.encode(claims, secret.encode(), algorithm="HS256", headers={"kid": KID}))


if __name__ == "__main__":
    main()
