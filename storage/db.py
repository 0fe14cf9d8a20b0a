"""Engines and schema upgrades: how nightlegs connects to its database and brings it to head.

`make_engine` turns a URL into an Engine: for SQLite with the settings the bot relies on
(foreign keys enforced, WAL, a busy timeout, deleted content overwritten), for PostgreSQL
(`postgresql+psycopg://`) with a small pool whose connections are checked before use.
`migrate` runs the packaged alembic migrations. Health data lives in SQLite's files, so they
are created readable by their owner only (SQLite gives the -wal and -shm files the database
file's permissions). `erase_traces` removes what a deletion leaves in the files, on either.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from storage.models import Base

if TYPE_CHECKING:
    from alembic.config import Config

    from storage.sealing import Keyring

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _sqlite_file(database: str | None) -> Path | None:
    """The file behind a SQLite URL's database part; None for memory and `file:` URIs."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


POSTGRES_POOL_SIZE = 5
"""Connections a process keeps open to PostgreSQL; as many again may open under load."""


def _with_driver(url: URL) -> URL:
    """`postgresql://` and `postgres://` URLs name no driver: use psycopg 3, the one shipped."""
    if url.drivername in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    return url


def make_engine(url: str, *, pool_size: int = POSTGRES_POOL_SIZE) -> Engine:
    """Create an Engine for `url`; for SQLite, create the file's folder and set the pragmas.

    For PostgreSQL, `pool_size` connections stay open (and up to as many more under load);
    each is checked before use, so a restarted server or a dropped idle connection costs a
    reconnect, not a failed update.
    """
    parsed = _with_driver(make_url(url))
    if parsed.get_backend_name() == "postgresql":
        named = "application_name" in parsed.query
        connect_args = {} if named else {"application_name": "nightlegs"}
        return create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            pool_recycle=3600,
            connect_args=connect_args,
        )
    engine = create_engine(parsed)
    if parsed.get_backend_name() != "sqlite":
        return engine
    path = _sqlite_file(parsed.database)
    if path is not None:
        create_private(path)
    # secure_delete: deleted rows are overwritten with zeros, not left readable in free pages.
    pragmas = ["foreign_keys=ON", "busy_timeout=5000", "synchronous=NORMAL", "secure_delete=ON"]
    if path is not None:
        pragmas.append("journal_mode=WAL")

    @event.listens_for(engine, "connect")
    def _set_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for pragma in pragmas:
                cursor.execute(f"PRAGMA {pragma}")
        finally:
            cursor.close()

    return engine


def create_private(path: Path) -> None:
    """Create the database file (and a new folder for it) readable by its owner only."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    if not path.exists():
        path.touch(mode=0o600)
    path.chmod(0o600)


NAMING_TABLES = ("users", "outbox", "person_keys")
"""The tables whose rows name a person in plain (their Telegram id: `users`, `outbox`) or hold
their wrapped data key (`person_keys`, which the master key opens). With sealing on, a dead
row of any other table is ids, times and ciphertext under that key: once the key's row is
gone from the files, nothing in them can be read or traced to the account."""

RETENTION_TABLES = ("messages",)
"""What the transcript retention deletes from: the only table it rewrites. The person's key
lives on, so their deleted messages must not stay in the files."""


def erase_traces(engine: Engine, tables: Collection[str] | None = None) -> None:
    """After a deletion commits: leave no readable copy of the deleted rows in the table files.

    SQLite: fold the WAL back and truncate it, so no copy of the deleted pages survives in the
    -wal file (the main file's were zeroed by secure_delete).

    PostgreSQL: a DELETE only marks row versions dead; they stay in the table's pages, and a
    plain VACUUM frees their space without overwriting it. VACUUM FULL writes every table of
    the schema (with its TOAST table and indexes) into new files and deletes the old ones;
    ANALYZE then recomputes the planner's statistics, whose samples of column values may hold
    deleted values, and VACUUM FULL of pg_statistic drops the old samples (a database owner
    may do that; otherwise PostgreSQL skips it with a warning). Each table is locked while it
    is rewritten. It cannot reach the write-ahead log, archives, backups or replicas' own
    WAL (see the README), nor rows that a transaction older than the deletion still sees.
    `tables`: only these are rewritten (None: every table).
    """
    if engine.dialect.name == "postgresql":
        _vacuum_full(engine, tables)
        return
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def _vacuum_full(engine: Engine, tables: Collection[str] | None) -> None:
    preparer = engine.dialect.identifier_preparer
    chosen = [t for t in Base.metadata.sorted_tables if tables is None or t.name in tables]
    # VACUUM cannot run inside a transaction block.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in chosen:
            connection.exec_driver_sql(f"VACUUM (FULL, ANALYZE) {preparer.format_table(table)}")
        connection.exec_driver_sql("VACUUM FULL pg_catalog.pg_statistic")


def alembic_config() -> Config:
    """An alembic Config for the packaged migrations, without any ini file or logging setup."""
    from alembic.config import Config  # noqa: PLC0415 - alembic loads only to migrate

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


MIGRATION_LOCK = 0x6E6C6567  # "nleg"
"""PostgreSQL advisory lock key held while migrating, so processes starting together take
turns instead of creating the same tables at once."""


_REVISION = re.compile(r'^(down_revision|revision) = "([^"]*)"', re.MULTILINE)


def head_revision() -> str:
    """The newest migration's id, read from the revision files without loading alembic
    (which costs a running bot about 12 MB it would never need again)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("[0-9]*.py"):
        found = dict(_REVISION.findall(path.read_text("utf-8")))
        revisions.add(found["revision"])
        if found.get("down_revision"):
            parents.add(found["down_revision"])
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads: {sorted(heads)}")
    return heads.pop()


def at_head(engine: Engine) -> bool:
    """Whether the database's schema is already the newest."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return False
        current = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
        return list(current) == [head_revision()]


def migrate(engine: Engine, keyring: Keyring | None = None) -> None:
    """Upgrade the database behind `engine` to the newest revision, in one transaction.

    A database already at the newest revision is left alone without loading alembic.
    `keyring` seals the plaintext rows of a database older than sealing (migration 0010).
    """
    if at_head(engine):
        return
    from alembic import command  # noqa: PLC0415 - alembic loads only to migrate

    config = alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Released at commit; a process that waited finds the schema at head.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = connection
        config.attributes["keyring"] = keyring
        command.upgrade(config, "head")
