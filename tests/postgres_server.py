"""A throw-away PostgreSQL server for the test suite, and a fresh database per test.

``MARKET_TEST_POSTGRES_URL`` names a server to use instead (its user must be allowed to create
databases). Otherwise Debian's ``postgresql`` binaries (``/usr/lib/postgresql/<v>/bin``;
``make test`` installs the package when missing) run a cluster of our own: ``initdb`` into a
temporary folder and ``pg_ctl start`` on a free loopback port, without fsync (nothing in it
needs to survive a crash), stopped when the session ends. PostgreSQL refuses to run as root,
and CI runs as root, so there the cluster runs as the ``postgres`` user the package creates.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from market_assets.memory.target import PostgresUrl

URL_ENV = "MARKET_TEST_POSTGRES_URL"
SERVER_USER = "postgres"
"""The system user a root test session runs the cluster as (Debian's package creates it)."""
START_TIMEOUT_SEC = 60


class PostgresUnavailable(RuntimeError):
    """No server named and no PostgreSQL binaries to start one."""


def binaries() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``pg_ctl``."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if not found:
        raise PostgresUnavailable(
            "no PostgreSQL server binaries in /usr/lib/postgresql (apt-get install postgresql, "
            f"as make test does) and {URL_ENV} is not set"
        )
    return found[-1].parent


@dataclass
class PostgresServer:
    """A server tests may create databases on: ``admin_url`` connects to its ``postgres`` database."""

    admin_url: str
    _folder: Path | None = None
    _as_user: str | None = None

    def create_database(self) -> PostgresUrl:
        """A new empty database; its URL."""
        name = f"market_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return PostgresUrl(_with_database(self.admin_url, name))

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1].split("?", 1)[0]
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Stop our own cluster (a named server is left alone) and delete its folder."""
        if self._folder is None:
            return
        _run([str(binaries() / "pg_ctl"), "-D", str(self._folder / "data"), "-m", "immediate", "-w", "stop"], self._as_user, check=False)
        shutil.rmtree(self._folder, ignore_errors=True)
        self._folder = None


def _with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    base = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
    return f"{base}/{name}" + (f"?{query}" if query else "")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(argv: list[str], as_user: str | None, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    if as_user is not None:
        argv = ["runuser", "-u", as_user, "--", *argv]
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=START_TIMEOUT_SEC)


def start_server() -> PostgresServer:
    """The server named by ``MARKET_TEST_POSTGRES_URL``, else a new cluster of our own."""
    named = os.environ.get(URL_ENV)
    if named:
        return PostgresServer(admin_url=named)
    bin_dir = binaries()
    as_user = SERVER_USER if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="market-pg-"))
    try:
        if as_user is not None:
            account = pwd.getpwnam(as_user)
            os.chown(folder, account.pw_uid, account.pw_gid)
        data = folder / "data"
        _run([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "market", "--no-sync", "-E", "UTF8", "--locale", "C"], as_user)
        port = _free_port()
        settings = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=200 -c shared_buffers=128MB"
        )
        started = _run(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-o", settings, "-w", "-t", str(START_TIMEOUT_SEC), "start"],
            as_user, check=False,
        )
        if started.returncode != 0:
            log = (folder / "server.log").read_text(errors="replace") if (folder / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {started.stderr.strip()} {log[-2000:]}")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return PostgresServer(admin_url=f"postgresql://market@127.0.0.1:{port}/postgres", _folder=folder, _as_user=as_user)


@contextlib.contextmanager
def running_server() -> Iterator[PostgresServer]:
    server = start_server()
    try:
        yield server
    finally:
        server.stop()
