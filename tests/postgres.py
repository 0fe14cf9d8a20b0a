"""A throwaway PostgreSQL server for the tests, run from the distribution's own binaries.

`PostgresServer.start()` runs `initdb` into a new temporary folder and `pg_ctl start` with a
unix socket in that folder and no TCP listener, so nothing outside this machine, and no other
user, can reach it. Durability is switched off (fsync, full-page writes): the data lives for
one test session. As root the server runs as the `postgres` user that Debian's package
creates, since PostgreSQL refuses to run as root. `database()` gives each test a new, empty
database, owned by the unprivileged role `nightlegs` the bot connects as, and drops it
afterwards.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

SERVER_USER = "postgres"
"""The operating-system user the server runs as when the tests run as root; also the name of
the database superuser."""

BOT_ROLE = "nightlegs"
"""The role the bot connects as in the tests: no superuser, the owner of its database, as in
production."""

SETTINGS = {
    "listen_addresses": "",
    "fsync": "off",
    "full_page_writes": "off",
    "synchronous_commit": "off",
    "max_connections": "200",
}


WATCHDOG = """
import shutil, subprocess, sys
sys.stdin.read()  # end of file: the test process has exited, however it ended
pg_ctl, data, root, user = sys.argv[1:]
stop = [pg_ctl, "stop", "--mode", "immediate", "--pgdata", data]
subprocess.run(stop, capture_output=True, user=user or None)
shutil.rmtree(root, ignore_errors=True)
"""
"""Stops the server and removes its folder once the test process is gone, even if it was
killed and its fixtures never finished."""


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries here, or the server would not start; says which and why."""


def find_bin_dir() -> Path:
    """The folder holding initdb and pg_ctl: $PG_BINDIR if set, else Debian's newest, else
    the PATH's."""
    if os.environ.get("PG_BINDIR"):
        candidates = [Path(os.environ["PG_BINDIR"])]
    else:
        candidates = sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
            reverse=True,
        )
        on_path = shutil.which("initdb")
        if on_path:
            candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    where = " or ".join(map(str, candidates)) or "/usr/lib/postgresql/*/bin or on the PATH"
    raise PostgresUnavailable(
        f"no initdb and pg_ctl in {where}; install PostgreSQL's server "
        "(Debian: apt-get install postgresql) or set PG_BINDIR to their folder"
    )


class PostgresServer:
    """One running server; `url(name)` is a SQLAlchemy URL for one of its databases."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="nightlegs-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._names = itertools.count(1)
        self._run_as: str | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise PostgresUnavailable(
                    f"running as root, and there is no {SERVER_USER!r} user to run the server as"
                ) from None
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._run_as = SERVER_USER
        self.root.chmod(0o700)

    @classmethod
    def start_new(cls) -> PostgresServer:
        """Find the binaries, initialise a cluster in a temporary folder and start it."""
        server = cls(find_bin_dir())
        try:
            server.start()
        except BaseException:
            server.stop()
            raise
        return server

    def _run(self, *args: str) -> None:
        try:
            subprocess.run(
                args,
                check=True,
                capture_output=True,
                text=True,
                user=self._run_as,
                cwd=self.root,
                timeout=60,
            )
        except subprocess.CalledProcessError as exc:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise PostgresUnavailable(
                f"{Path(args[0]).name} failed: {exc.stderr.strip() or exc.stdout.strip()}\n{log}"
            ) from None

    def start(self) -> None:
        self._watchdog = subprocess.Popen(
            [
                sys.executable,
                "-c",
                WATCHDOG,
                str(self.bin_dir / "pg_ctl"),
                str(self.data),
                str(self.root),
                self._run_as or "",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # not stopped by a Ctrl-C meant for pytest
        )
        self._run(
            str(self.bin_dir / "initdb"),
            "--pgdata", str(self.data),
            "--username", SERVER_USER,
            "--auth", "trust",
            "--encoding", "UTF8",
            "--locale", "C.UTF-8",
            "--no-sync",
        )  # fmt: skip
        options = " ".join(f"-c {key}={value!r}" for key, value in SETTINGS.items())
        options += f" -c unix_socket_directories='{self.root}'"
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "start", "--wait", "--timeout", "60",
            "--pgdata", str(self.data),
            "--log", str(self.log),
            "--options", options,
        )  # fmt: skip
        with self.connect() as connection:
            connection.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(BOT_ROLE)))

    def stop(self) -> None:
        """Stop the server at once and remove its folder."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(PostgresUnavailable, subprocess.TimeoutExpired):
                self._run(
                    str(self.bin_dir / "pg_ctl"),
                    "stop", "--wait", "--mode", "immediate", "--pgdata", str(self.data),
                )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)
        if self._watchdog is not None:
            self._watchdog.communicate(timeout=30)  # closes its stdin: it finds nothing to do

    def url(self, database: str, user: str = BOT_ROLE) -> str:
        return f"postgresql+psycopg://{user}@/{database}?host={self.root}"

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        """A plain psycopg connection as the superuser, in autocommit mode."""
        return psycopg.connect(
            host=str(self.root), user=SERVER_USER, dbname=database, autocommit=True
        )

    @staticmethod
    def superuser_url(url: str) -> str:
        """The same database, as the superuser: for CHECKPOINT and reading the server's files."""
        return make_url(url).set(username=SERVER_USER).render_as_string(hide_password=False)

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        """A new, empty database for the block, dropped afterwards; yields its URL (as the bot's
        role; `superuser_url` gives the same database as the superuser)."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        with self.connect() as connection:
            connection.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(BOT_ROLE)
                )
            )
        try:
            yield self.url(name)
        finally:
            with self.connect() as connection:
                connection.execute(
                    sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
                )


sqlite_only = pytest.mark.parametrize(
    "database_url", [pytest.param("sqlite", marks=pytest.mark.sqlite)], indirect=True
)
"""For a test of SQLite's own files or pragmas: run only the SQLite half of `database_url`."""

postgresql_only = pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)
"""For a test of PostgreSQL's own behaviour: run only the PostgreSQL half of `database_url`."""
