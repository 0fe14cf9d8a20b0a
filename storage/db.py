"""Engines and schema upgrades: how nightlegs connects to its database and brings it to head.

`make_engine` turns a URL into an Engine with the SQLite settings the bot relies on
(foreign keys enforced, WAL, a busy timeout, deleted content overwritten); `migrate` runs the
packaged alembic migrations. Health data lives in these files, so they are created readable by
their owner only (SQLite gives the -wal and -shm files the database file's permissions).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _sqlite_file(database: str | None) -> Path | None:
    """The file behind a SQLite URL's database part; None for memory and `file:` URIs."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def make_engine(url: str) -> Engine:
    """Create an Engine for `url`; for SQLite, create the file's folder and set the pragmas."""
    parsed = make_url(url)
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


def erase_traces(engine: Engine) -> None:
    """After deleting someone's rows: fold the WAL back and truncate it, so no copy of the
    deleted pages survives in the -wal file (the main file's were zeroed by secure_delete)."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def alembic_config() -> Config:
    """An alembic Config for the packaged migrations, without any ini file or logging setup."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(engine: Engine) -> None:
    """Upgrade the database behind `engine` to the newest revision, in one transaction."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
