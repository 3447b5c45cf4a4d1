"""The README's "A first session" block, run as written with bash against a real gateway and
database, with a `.sealstore/dev.env` such as `run` writes: the manual's example cannot rot."""
import re
import secrets
import subprocess
from pathlib import Path

import psycopg

from clients import mint
from harness import env

README = Path(__file__).resolve().parents[2] / "README.md"


def first_session_block() -> str:
    text = README.read_text()
    section = text.split("\n## A first session\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the section holds one sh block"
    return blocks[0]


def test_the_readme_first_session_runs_as_written(tmp_path, admin_url, app_url, gateway):
    kid, secret = f"readme-{secrets.token_hex(4)}", secrets.token_hex(32)
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("SET log_statement = 'none'")
        su.execute("SELECT sealstore.add_jwt_key(%s, 'HS256', %s, admin => true)", (kid, secret))
    state = tmp_path / ".sealstore"
    state.mkdir()
    (state / "dev.env").write_text(
        f"SEALSTORE_PG_URL='{admin_url}'\n"
        f"SEALSTORE_APP_PG_URL='{app_url}'\n"
        f"SEALSTORE_GATEWAY_URL='{gateway.url}'\n"
        f"SEALSTORE_DEV_ADMIN_TOKEN='{mint(secret, kid, ttl=600, scope='admin', sub='dev')}'\n")
    block = first_session_block()
    assert block.startswith("set -a; . .sealstore/dev.env; set +a")
    r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120,
                       env={"PATH": f"{env('SEALSTORE_PG_BINDIR')}:/usr/bin:/bin", "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "s3cret" in out                      # the secret, read back over HTTP
    assert "hello" in out                       # decrypted in SQL
    assert '{"topic": "demo"}' in out           # the document, found by search
    assert "ERROR" not in r.stderr
