"""Backups of a SQLite database, taken while the bot runs, and their restore.

`backup` uses SQLite's online backup API (`sqlite3.Connection.backup`) in one step: it reads
the database in one read transaction, so the copy is one consistent moment even while the bot
writes (in WAL mode writers do not wait for it). The copy is written next to its destination
with mode 600, checked (`PRAGMA quick_check`), switched to a rollback journal so it is one
self-contained file, and only then renamed into place.

`restore` copies a backup into the database with the same API, after checking that the backup
is a sound nightlegs database no newer than this code. It refuses while any other process has
the database open: leaving WAL mode needs every other connection closed, so the attempt is
the test, and from then on it holds the database exclusively until the copy is done (a bot
starting meanwhile waits, then fails). There is no way to force it past a running bot: the bot
keeps rows in memory (the outbox rows it is sending, the updates it has claimed) and would act
on a database that went back in time under it, sending replies twice or none. Replacing a
database that holds people needs `--force`, since their data since the backup is lost.

On PostgreSQL neither applies: `pg_dump` and `pg_restore` do this (see the README).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from storage.db import _REVISION, MIGRATIONS, _sqlite_file, create_private

LOCK_WAIT = 2.0
"""Seconds restore waits for a moment's lock (a checkpoint) before calling the database busy."""
POSTGRES_HELP = """\
On PostgreSQL, back up and restore with PostgreSQL's own tools, e.g.
  pg_dump --format=custom --file=nightlegs.dump "$DATABASE_URL"
  pg_restore --clean --if-exists --no-owner --dbname="$DATABASE_URL" nightlegs.dump
(with a postgresql:// URL: drop the "+psycopg" part for pg_dump and pg_restore)."""


class BackupError(Exception):
    """Why a backup or restore did not happen; the message is for the operator."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Copied:
    path: Path
    pages: int
    people: int


def sqlite_path(url: str) -> Path:
    """The file of a SQLite URL; a BackupError for PostgreSQL or an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        raise BackupError(POSTGRES_HELP, code=2)
    if parsed.get_backend_name() != "sqlite":
        raise BackupError(f"backups support SQLite and PostgreSQL, not {parsed.drivername}", 2)
    path = _sqlite_file(parsed.database)
    if path is None:
        raise BackupError("an in-memory SQLite database has nothing to back up", code=2)
    return path


def backup(url: str, destination: Path, *, force: bool = False) -> Copied:
    """Copy the database of `url` to `destination` (mode 600) while it may be in use."""
    source = sqlite_path(url)
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    if destination.exists() and not force:
        raise BackupError(f"{destination} exists; choose a new name, or pass --force to replace it")
    if destination.exists() and destination.resolve() == source.resolve():
        raise BackupError("the backup cannot replace the database itself")
    partial = destination.with_name(f".{destination.name}.partial-{os.getpid()}")
    _create_private(partial)
    try:
        with (
            contextlib.closing(_connect(source)) as src,
            contextlib.closing(sqlite3.connect(partial, isolation_level=None)) as dst,
        ):
            src.backup(dst)  # one step: one read transaction, one consistent moment
            dst.execute("PRAGMA journal_mode=DELETE")  # one file, no -wal beside it
            _check(dst, partial)
            pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
            people = _people(dst)
        os.chmod(partial, 0o600)
        os.replace(partial, destination)
    finally:
        for leftover in (partial, *_sidecars(partial)):
            leftover.unlink(missing_ok=True)
    _sync_folder(destination.parent)
    return Copied(destination, pages, people)


def restore(url: str, source: Path, *, force: bool = False) -> Copied:
    """Replace the database of `url` with the backup at `source`; refused while the database
    is in use, and without `force` when it holds people."""
    target = sqlite_path(url)
    if not source.is_file():
        raise BackupError(f"no backup at {source}")
    if target.exists() and target.resolve() == source.resolve():
        raise BackupError("the backup is the database itself")
    with contextlib.closing(_open_backup(source)) as src:
        _check(src, source)
        _check_revision(src, source)
        create_private(target)  # a missing database: a new file, mode 600
        dst = sqlite3.connect(target, timeout=LOCK_WAIT, isolation_level=None)
        try:
            _take_exclusively(dst, target)
            people = _people(dst)
            if people and not force:
                raise BackupError(
                    f"{target} holds {people} people's data, which the backup would replace; "
                    "pass --force to restore anyway"
                )
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=WAL")  # as the bot keeps it
            _check(dst, target)
            pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
            restored = _people(dst)
        finally:
            dst.close()
    target.chmod(0o600)
    return Copied(target, pages, restored)


def _take_exclusively(connection: sqlite3.Connection, path: Path) -> None:
    """Hold the database for this connection alone until it closes, or refuse if another
    process has it open (leaving WAL mode needs every other connection closed)."""
    connection.execute("PRAGMA locking_mode=EXCLUSIVE")
    try:
        connection.execute("PRAGMA journal_mode=DELETE")
        connection.execute("BEGIN EXCLUSIVE")
        connection.execute("COMMIT")  # the lock stays: locking_mode=EXCLUSIVE
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise BackupError(
                f"{path} is in use by another process (is the bot running?); stop it, then "
                "restore. A running bot would act on a database that went back in time under it.",
                code=3,
            ) from exc
        raise


def _open_backup(path: Path) -> sqlite3.Connection:
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a SQLite database ({exc})") from exc
    return connection


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=5.0)
    connection.execute("PRAGMA busy_timeout=5000")
    return connection


def _check(connection: sqlite3.Connection, path: Path) -> None:
    result = connection.execute("PRAGMA quick_check").fetchone()[0]
    if result != "ok":
        raise BackupError(f"{path} is damaged: {result}")


def _check_revision(connection: sqlite3.Connection, path: Path) -> None:
    try:
        found = {row[0] for row in connection.execute("SELECT version_num FROM alembic_version")}
    except sqlite3.OperationalError as exc:
        raise BackupError(f"{path} is not a nightlegs database (no schema version)") from exc
    known = _revisions()
    if not found or not found <= known:
        raise BackupError(
            f"{path} has schema {', '.join(sorted(found)) or 'none'}, which this version of "
            "nightlegs does not know (a backup from a newer version?)"
        )


def _revisions() -> set[str]:
    revisions = set()
    for path in (MIGRATIONS / "versions").glob("[0-9]*.py"):
        revisions.update(
            v for k, v in _REVISION.findall(path.read_text("utf-8")) if k == "revision"
        )
    return revisions


def _people(connection: sqlite3.Connection) -> int:
    try:
        return int(connection.execute("SELECT count(*) FROM users").fetchone()[0])
    except sqlite3.OperationalError:  # no schema yet
        return 0


def _create_private(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _sidecars(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def _sync_folder(folder: Path) -> None:
    """Make the rename durable."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
