"""A throw-away PostgreSQL server for the test suite, and a fresh database per test.

``MARKET_TEST_POSTGRES_URL`` names a server to use instead (its user must be allowed to create
databases). Otherwise Debian's ``postgresql`` binaries (``/usr/lib/postgresql/<v>/bin``;
``make test`` installs the package when missing) run a cluster of our own: ``initdb`` into a
temporary folder and ``pg_ctl start`` on a free loopback port, without fsync (nothing in it
needs to survive a crash), stopped when the session ends. PostgreSQL refuses to run as root,
and CI runs as root, so there the cluster runs as the ``postgres`` user the package creates.

``pg_ctl`` detaches the server, so a test process killed outright (a timeout, SIGKILL) could not
stop it: a small keeper process holds the read end of a pipe from the test process and, at end of
file — the test process finished or died — stops the server and deletes its folder.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
import subprocess
import sys
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


KEEPER = """
import shutil, subprocess, sys
pg_ctl, data, folder, *as_user = sys.argv[1:]
sys.stdin.read()  # returns at end of file: the test process closed the pipe, or died
argv = [pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"]
subprocess.run((["runuser", "-u", as_user[0], "--"] if as_user else []) + argv, capture_output=True, timeout=60)
shutil.rmtree(folder, ignore_errors=True)
"""
"""Stops a cluster of ours once the test process that started it is gone, however it went."""


@dataclass
class PostgresServer:
    """A server tests may create databases on: ``admin_url`` connects to its ``postgres`` database."""

    admin_url: str
    _keeper: subprocess.Popen[bytes] | None = None

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
        """Stop our own cluster (a named server is left alone) and delete its folder: the keeper
        does it once its pipe closes."""
        if self._keeper is None:
            return
        assert self._keeper.stdin is not None
        self._keeper.stdin.close()
        self._keeper.wait(timeout=START_TIMEOUT_SEC)
        self._keeper = None


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
    keeper = subprocess.Popen(
        [sys.executable, "-c", KEEPER, str(bin_dir / "pg_ctl"), str(folder / "data"), str(folder), *([as_user] if as_user else [])],
        stdin=subprocess.PIPE, start_new_session=True,  # a Ctrl-C meant for pytest must not stop it early
    )
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
        PostgresServer("", keeper).stop()
        raise
    return PostgresServer(admin_url=f"postgresql://market@127.0.0.1:{port}/postgres", _keeper=keeper)


@contextlib.contextmanager
def running_server() -> Iterator[PostgresServer]:
    server = start_server()
    try:
        yield server
    finally:
        server.stop()
