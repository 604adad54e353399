"""A throwaway PostgreSQL server for the tests: its own data directory, 127.0.0.1 only, a free port.

Its time zone is a parameter (the tests use America/New_York): a session that is not UTC is what
shifts timestamps a loader hands over as zoned values. As root, initdb and the server run as the
`postgres` user (PostgreSQL refuses to run as root); otherwise as the current user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
PORT_ATTEMPTS = 3


class PostgresServerError(RuntimeError):
    pass


def find_bindir() -> Path:
    """The directory of initdb and postgres: `pg_config --bindir`, else the newest
    /usr/lib/postgresql/*/bin (Debian's pg_config may belong to libpq only)."""
    candidates = []
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
        candidates.append(Path(out.stdout.strip()))
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    newest_first = sorted(versions, key=lambda p: [int(n) for n in re.findall(r"\d+", p)], reverse=True)
    candidates += [Path(p) for p in newest_first]
    for bindir in candidates:
        if all((bindir / name).is_file() for name in ("initdb", "postgres", "pg_isready")):
            return bindir
    raise PostgresServerError(
        "PostgreSQL server binaries (initdb, postgres, pg_isready) not found via `pg_config --bindir` "
        f"or /usr/lib/postgresql/*/bin (looked in {[str(c) for c in candidates]}); "
        "install them, e.g. apt-get install postgresql"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str
    directory: Path

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError as error:
            return f"(no server log: {error})"

    def connect(self, database: str = "postgres") -> Any:
        """A psycopg2 connection in autocommit, in the server's time zone."""
        import psycopg2

        connection = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname=database)
        connection.autocommit = True
        return connection

    def create_database(self, name: str) -> None:
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()


def _run_as(owner: pwd.struct_passwd | None) -> list[str]:
    return ["runuser", "-u", owner.pw_name, "--"] if owner else []


def _wait_ready(server: PostgresServer, bindir: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PostgresServerError(
                f"PostgreSQL exited with {process.returncode} while starting; its log:\n{server.log_tail()}"
            )
        ready = subprocess.run(
            [bindir / "pg_isready", "-q", "-h", server.host, "-p", str(server.port), "-t", "1"],
            check=False,
        )
        if ready.returncode == 0:
            return
        time.sleep(0.1)
    raise PostgresServerError(
        f"PostgreSQL did not accept connections within {START_TIMEOUT_S} s; its log:\n{server.log_tail()}"
    )


def _stop(directory: Path, process: subprocess.Popen) -> None:
    """Fast shutdown (SIGINT) of the postmaster named in postmaster.pid, then wait for it."""
    pid_file = directory / "data" / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int(pid_file.read_text().splitlines()[0])
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
    # The Popen is the postmaster itself, or runuser waiting on it: either ends when it ends.
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError, ValueError, IndexError, ProcessLookupError):
            os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGQUIT)  # immediate shutdown
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)
        raise PostgresServerError("PostgreSQL did not stop on SIGINT; sent SIGQUIT") from None


def _start(
    server: PostgresServer, bindir: Path, owner: pwd.struct_passwd | None, timezone: str
) -> subprocess.Popen:
    settings = {
        "listen_addresses": server.host,
        "port": server.port,
        "unix_socket_directories": server.directory,
        "timezone": timezone,
        "log_timezone": timezone,
        # A scratch server: durability buys nothing and costs seconds.
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
    }
    options = [arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")]
    with open(server.log, "wb") as log:
        if owner:
            os.chown(server.log, owner.pw_uid, owner.pw_gid)
        return subprocess.Popen(
            [*_run_as(owner), bindir / "postgres", "-D", server.directory / "data", *options],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal is not the server's shutdown
        )


@contextlib.contextmanager
def postgres_server(timezone: str) -> Iterator[PostgresServer]:
    """A started server with trust authentication, superuser `postgres`, session zone `timezone`."""
    bindir = find_bindir()
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresServerError(
                "running as root, the server needs the unprivileged `postgres` user, which does not exist "
                "(Debian's postgresql package creates it)"
            ) from None
    # Not under pytest's tmp_path: its parents are mode 0700 for root, and the server runs as postgres.
    directory = Path(tempfile.mkdtemp(prefix="ultravox-pg-"))
    process = None
    try:
        if owner:
            os.chown(directory, owner.pw_uid, owner.pw_gid)
        initdb = subprocess.run(
            [
                *_run_as(owner),
                bindir / "initdb",
                "--pgdata",
                directory / "data",
                "--username",
                "postgres",
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if initdb.returncode != 0:
            raise PostgresServerError(f"initdb failed ({initdb.returncode}):\n{initdb.stdout}{initdb.stderr}")
        # free_port() can lose its port to another process before the server binds it: try again.
        for attempt in range(1, PORT_ATTEMPTS + 1):
            server = PostgresServer("127.0.0.1", free_port(), "postgres", directory)
            process = _start(server, bindir, owner, timezone)
            try:
                _wait_ready(server, bindir, process)
                break
            except PostgresServerError:
                lost_port = process.poll() is not None and "could not bind" in server.log_tail()
                if attempt == PORT_ATTEMPTS or not lost_port:
                    raise
        yield server
    finally:
        try:
            if process is not None:
                _stop(directory, process)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
