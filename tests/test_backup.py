"""`python -m storage backup` and `restore`, run as an operator would, on a SQLite database
that the tests write to meanwhile."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import Store
from storage.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def storage_command(url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "storage", *args],
        env=env,
        cwd=cwd,  # no .env of the repository is read
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def people(path: Path) -> list[str]:
    """External ids of the users in a database file, opened read-only as a plain file."""
    with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as connection:
        rows = connection.execute("SELECT external_id FROM users ORDER BY id").fetchall()
    return [row[0] for row in rows]


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[str, Path, Store]]:
    path = tmp_path / "data" / "nightlegs.db"
    url = f"sqlite:///{path}"
    store = Store.open(url)
    try:
        yield url, path, store
    finally:
        store.dispose()


def add_people(store: Store, names: range) -> None:
    for n in names:
        with store.transaction() as repo:
            repo.user("telegram", str(n))


class Writer(threading.Thread):
    """Adds one person per transaction until stopped; `committed` counts them."""

    def __init__(self, store: Store) -> None:
        super().__init__(daemon=True)
        self.store = store
        self.committed = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            with self.store.transaction() as repo:
                repo.user("telegram", str(self.committed))
            self.committed += 1


def test_a_backup_taken_while_the_bot_writes_is_one_consistent_moment(
    database: tuple[str, Path, Store], tmp_path: Path
) -> None:
    url, _path, store = database
    writer = Writer(store)
    writer.start()
    try:
        while writer.committed < 50:  # bounded by the join's timeout below
            writer.join(timeout=0.01)
        before = writer.committed
        done = storage_command(url, "backup", "backups/nightly.db", cwd=tmp_path)
        after = writer.committed
    finally:
        writer.stop.set()
        writer.join(timeout=10)
    assert done.returncode == 0, done.stderr
    copy = tmp_path / "backups" / "nightly.db"
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert not list(copy.parent.glob("*-wal")) and len(list(copy.parent.iterdir())) == 1
    assert after > before, "no write happened while the backup ran"
    saved = people(copy)
    # Each person was one transaction: a consistent copy holds the first n of them, no gap.
    assert before <= len(saved) <= after
    assert saved == [str(n) for n in range(len(saved))]
    with contextlib.closing(sqlite3.connect(copy)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert f"{len(saved)} people" in done.stdout


def test_restore_brings_the_rows_of_the_backup_back(
    database: tuple[str, Path, Store], tmp_path: Path
) -> None:
    url, path, store = database
    add_people(store, range(3))
    assert storage_command(url, "backup", "before.db", cwd=tmp_path).returncode == 0
    add_people(store, range(3, 5))
    with store.transaction() as repo:
        lost = repo.find_user("telegram", "0")
        assert lost is not None
        repo.delete_user(lost.id)
    store.dispose()  # the bot is stopped
    assert people(path) == ["1", "2", "3", "4"]

    refused = storage_command(url, "restore", "before.db", cwd=tmp_path)
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert people(path) == ["1", "2", "3", "4"]  # nothing changed

    done = storage_command(url, "restore", "before.db", "--force", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert people(path) == ["0", "1", "2"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    reopened = Store.open(url)  # the bot starts on it as usual
    try:
        with reopened.transaction() as repo:
            assert repo.find_user("telegram", "0") is not None
            assert repo.find_user("telegram", "4") is None
    finally:
        reopened.dispose()


def test_restore_refuses_a_database_in_use_even_with_force(
    database: tuple[str, Path, Store], tmp_path: Path
) -> None:
    url, path, store = database
    add_people(store, range(2))
    assert storage_command(url, "backup", "copy.db", cwd=tmp_path).returncode == 0
    add_people(store, range(2, 4))  # the store's pool keeps its connection open: "running"
    refused = storage_command(url, "restore", "copy.db", "--force", cwd=tmp_path)
    assert refused.returncode == 3
    assert "in use" in refused.stderr
    with store.transaction() as repo:  # the running bot goes on, on its own data
        assert repo.find_user("telegram", "3") is not None
    store.dispose()
    assert people(path) == ["0", "1", "2", "3"]


def test_restore_into_a_new_place_needs_no_force(
    database: tuple[str, Path, Store], tmp_path: Path
) -> None:
    url, _path, store = database
    add_people(store, range(2))
    assert storage_command(url, "backup", "copy.db", cwd=tmp_path).returncode == 0
    fresh = tmp_path / "elsewhere" / "restored.db"
    done = storage_command(f"sqlite:///{fresh}", "restore", "copy.db", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert people(fresh) == ["0", "1"]
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600


def test_restore_refuses_what_is_not_a_sound_nightlegs_backup(
    database: tuple[str, Path, Store], tmp_path: Path
) -> None:
    url, path, store = database
    add_people(store, range(1))
    store.dispose()
    (tmp_path / "notes.txt").write_text("not a database at all, " * 100)
    with contextlib.closing(sqlite3.connect(tmp_path / "other.db")) as other:
        other.execute("CREATE TABLE things (id INTEGER)")
    with contextlib.closing(sqlite3.connect(tmp_path / "newer.db")) as newer:
        newer.execute("CREATE TABLE alembic_version (version_num TEXT)")
        newer.execute("INSERT INTO alembic_version VALUES ('9999_from_the_future')")
        newer.commit()
    for name, reason in [
        ("notes.txt", "not a SQLite database"),
        ("other.db", "not a nightlegs database"),
        ("newer.db", "does not know"),
        ("missing.db", "no backup"),
    ]:
        refused = storage_command(url, "restore", name, "--force", cwd=tmp_path)
        assert refused.returncode == 1, name
        assert reason in refused.stderr, (name, refused.stderr)
    assert people(path) == ["0"]


def test_backup_keeps_an_existing_file_unless_forced(
    database: tuple[str, Path, Store], tmp_path: Path
) -> None:
    url, _path, store = database
    add_people(store, range(1))
    (tmp_path / "taken.db").write_text("keep me")
    refused = storage_command(url, "backup", "taken.db", cwd=tmp_path)
    assert refused.returncode == 1 and "exists" in refused.stderr
    assert (tmp_path / "taken.db").read_text() == "keep me"
    assert storage_command(url, "backup", "taken.db", "--force", cwd=tmp_path).returncode == 0
    assert people(tmp_path / "taken.db") == ["0"]


def test_on_postgresql_the_commands_point_to_pg_dump(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://nightlegs:secret@db.example/nl")
    monkeypatch.chdir(tmp_path)
    for command in ("backup", "restore"):
        assert main([command, "nightlegs.dump"]) == 2
        said = capsys.readouterr().err
        assert "pg_dump --format=custom" in said and "pg_restore" in said
        assert "secret" not in said
    assert not (tmp_path / "nightlegs.dump").exists()


def test_the_database_comes_from_the_environment_then_dotenv(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from storage.__main__ import DEFAULT_URL, database_url  # noqa: PLC0415

    monkeypatch.delenv("DATABASE_URL", raising=False)
    env = tmp_path / ".env"
    assert database_url(env) == DEFAULT_URL
    env.write_text("DATABASE_URL=sqlite:///from-dotenv.db\n")
    assert database_url(env) == "sqlite:///from-dotenv.db"
    monkeypatch.setenv("DATABASE_URL", "sqlite:///from-env.db")
    assert database_url(env) == "sqlite:///from-env.db"
