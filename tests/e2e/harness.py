"""Real processes for end-to-end tests: the gateway binary and throw-away PostgreSQL clusters.

Everything binds 127.0.0.1 on ports picked at run time; every wait is bounded.
"""
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import psycopg

import keys


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: run the tests through `.ci/sealstore test`")
    return value


class Gateway:
    """The real `sealstore-gateway` binary, listening on an ephemeral port."""

    def __init__(self, pg_url: str, extra_env: dict | None = None, args: list | None = None):
        self.lines: list[str] = []
        e = {k: v for k, v in os.environ.items() if not k.startswith("SEALSTORE_")}
        e.update({"SEALSTORE_GATEWAY_PG_URL": pg_url, "SEALSTORE_GATEWAY_LISTEN": "127.0.0.1:0",
                  "SEALSTORE_DB_TIMEOUT_SECS": "2"})
        e.update(extra_env or {})
        self.proc = subprocess.Popen([env("SEALSTORE_GATEWAY_BIN"), *(args or [])], env=e,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._listening = threading.Event()
        self.addr = None
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        if not self._listening.wait(15):
            self.stop()
            raise RuntimeError("gateway did not start listening:\n" + self.log())
        self.url = f"http://{self.addr}"

    def _drain(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("message") == "listening":
                self.addr = event["addr"]
                self._listening.set()

    def log(self) -> str:
        return "".join(self.lines)

    def events(self) -> list[dict]:
        out = []
        for line in self.lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def terminate(self, timeout: float = 15) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 15) -> int:
        """Waits for exit and for every line the process wrote to be read."""
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Cluster:
    """A throw-away PostgreSQL cluster with the extension preloaded, run as the OS user the
    test script names (PostgreSQL refuses root)."""

    def __init__(self, name: str):
        self.os_user = env("SEALSTORE_PG_OS_USER")
        self.bindir = Path(env("SEALSTORE_PG_BINDIR"))
        self.base = Path(env("SEALSTORE_CLUSTER_ROOT")) / f"{name}-{os.getpid()}"
        self.data = self.base / "data"
        self.logfile = self.base / "postgres.log"
        self.password = keys.new_key_hex()[:32]
        self.port = free_port()
        if self.base.exists():
            shutil.rmtree(self.base)
        self.base.mkdir(parents=True, mode=0o700)
        self.chown(self.base)
        pwfile = self.write_private("pw", self.password)
        self.as_user([self.bindir / "initdb", "-D", self.data, "-U", "postgres",
                      f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8",
                      "--locale=C.UTF-8", "--no-instructions"])
        with open(self.data / "postgresql.conf", "a") as f:
            f.write("\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
                    "shared_preload_libraries = 'sealstore'\n"
                    # As every cluster of .ci/sealstore: bind parameters never reach the log.
                    "log_parameter_max_length = 0\nlog_parameter_max_length_on_error = 0\n")

    def chown(self, path: Path):
        if os.geteuid() == 0:
            pw = pwd.getpwnam(self.os_user)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def write_private(self, name: str, content: str, mode: int = 0o600) -> Path:
        path = self.base / name
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(content)
        os.chmod(path, mode)
        self.chown(path)
        return path

    def as_user(self, argv: list, check: bool = True) -> subprocess.CompletedProcess:
        argv = [str(a) for a in argv]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", self.os_user, "--", *argv]
        return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=120)

    def configure(self, **settings: str | None):
        """Writes the sealstore.* key settings (None removes one) to a conf file read at start."""
        lines = [f"sealstore.{k} = '{v}'\n" for k, v in settings.items() if v is not None]
        (self.data / "postgresql.auto.conf").write_text(
            "# Do not edit this file manually!\n" + "".join(lines))
        self.chown(self.data / "postgresql.auto.conf")

    def restart(self):
        self.stop()
        self.logfile.unlink(missing_ok=True)
        r = self.as_user(["env", "-u", "RUST_BACKTRACE", "-u", "RUST_LIB_BACKTRACE",
                          self.bindir / "pg_ctl", "-D", self.data, "-l", self.logfile,
                          "-o", f"-p {self.port}", "-w", "-t", "60", "start"], check=False)
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {r.stdout}{r.stderr}\n{self.server_log()}")

    def stop(self, mode: str = "fast"):
        self.as_user([self.bindir / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop"],
                     check=False)

    def append_conf(self, text: str):
        with open(self.data / "postgresql.conf", "a") as f:
            f.write("\n" + text + "\n")

    def prepare_database(self, db: str = "sealstore") -> tuple[str, str, str]:
        """Creates DB with the extension and the login roles of sql/roles.sql, as
        `.ci/sealstore` does. Returns the URLs of (superuser, gateway, application)."""
        gateway_password, app_password = secrets.token_hex(16), secrets.token_hex(16)
        with psycopg.connect(self.url(), autocommit=True) as su:
            su.execute(f'CREATE DATABASE "{db}"')
        with psycopg.connect(self.url(db=db), autocommit=True) as su:
            su.execute("CREATE EXTENSION sealstore")
        roles = Path(__file__).resolve().parents[2] / "sql" / "roles.sql"
        subprocess.run([str(self.bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                        "-v", f"db={db}", "-v", f"gateway_password={gateway_password}",
                        "-v", f"app_password={app_password}",
                        "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db,
                        "-f", str(roles)],
                       env={**os.environ, "PGPASSWORD": self.password}, check=True,
                       capture_output=True, timeout=60)
        return (self.url(db=db), self.url("sealstore_gateway", gateway_password, db),
                self.url("sealstore_app_user", app_password, db))

    def destroy(self):
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def server_log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def url(self, user: str = "postgres", password: str | None = None, db: str = "postgres"):
        return f"postgresql://{user}:{password or self.password}@127.0.0.1:{self.port}/{db}"


def wait_until(predicate, timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def create_login_role(admin_url: str, name: str, in_role: str, *settings: str) -> str:
    """(Re)creates login role NAME, member of IN_ROLE, with a password made now, and returns its
    connection URL on the same server and database. SETTINGS are `ALTER ROLE ... SET` clauses."""
    password = secrets.token_hex(16)
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("SET log_statement = 'none'")
        drop_role(su, name)
        su.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}' IN ROLE {in_role}")
        for setting in settings:
            su.execute(f"ALTER ROLE {name} SET {setting}")
    return f"postgresql://{name}:{password}@{admin_url.split('@', 1)[1]}"


def drop_role(su: psycopg.Connection, name: str):
    """Drops role NAME and what it owns in this database, if it exists."""
    if su.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
        su.execute(f"DROP OWNED BY {name}")
        su.execute(f"DROP ROLE {name}")
