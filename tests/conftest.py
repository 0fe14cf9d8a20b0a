"""Shared fixtures. PTB 22 warns unless timedelta durations are opted into; tests turn warnings
into errors, so opt in before telegram is imported anywhere.

`database_url` is a new, empty database for one test, once on SQLite and once on PostgreSQL
(ids `[sqlite]` and `[postgresql]`); a test or fixture that asks for it runs on both. The
PostgreSQL server is started once per session (`tests/postgres.py`). Without its binaries the
PostgreSQL half is skipped with one message, unless CI=true, where that is a failure.
"""

import base64
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("PTB_TIMEDELTA", "true")
# One master key for the session, in the environment: the bot processes the tests start and
# the tests' own `Store.open` find the same key, whatever their working folder.
os.environ.setdefault("MASTER_KEY", base64.b64encode(secrets.token_bytes(32)).decode())

from tests.postgres import PostgresServer, PostgresUnavailable

_unavailable: list[str] = []


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server: skipped without binaries, a failure in CI."""
    try:
        server = PostgresServer.start_new()
    except PostgresUnavailable as exc:
        message = f"PostgreSQL tests need a server: {exc}"
        if _in_ci():
            pytest.fail(f"{message} (CI=true: PostgreSQL must not be skipped)", pytrace=False)
        _unavailable.append(str(exc))
        pytest.skip(message)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgresql", marks=pytest.mark.postgresql),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLAlchemy URL of a new, empty database: a SQLite file, or a PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nightlegs.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    with server.database() as url:
        yield url


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _unavailable:
        terminalreporter.write_line(
            f"PostgreSQL half skipped: {_unavailable[0].splitlines()[0]}", yellow=True
        )
