"""Deleted means unreadable: no byte of a deleted person's words stays in the database files,
and the files are readable by their owner only."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.services.flow import FlowService, Start, Who
from dialogs.advice import AdviceBook
from dialogs.engine import Flow
from storage import Store

SENTINEL = "zebra-quartz-7731-sentinel"


def db_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))


def test_delete_leaves_no_byte_of_the_persons_words_in_the_database_files(
    tmp_path: Path,
) -> None:
    db = tmp_path / "data" / "bot.db"
    store = Store.open(f"sqlite:///{db}")
    service = FlowService(store, Flow.load("triage"), AdviceBook.load())
    anna, ben = Who("telegram", "1"), Who("telegram", "2")
    for who in (anna, ben):
        service.consent(who, language_code="en")
        service.handle(who, Start(), said="/check")
    for i in range(100):
        service.handle(anna, Start(), said=f"{SENTINEL} note {i}")
    service.handle(ben, Start(), said="ben's own words")
    assert SENTINEL.encode() in db_bytes(db), "the sentinel must be on disk before the delete"

    assert service.delete(anna)
    with store.transaction() as repo:
        assert repo.find_user("telegram", "1") is None
        assert repo.find_user("telegram", "2") is not None
    assert SENTINEL.encode() not in db_bytes(db)
    assert b"ben's own words" in db_bytes(db)
    store.dispose()


def test_the_database_and_its_folder_are_private_to_their_owner(tmp_path: Path) -> None:
    db = tmp_path / "fresh" / "bot.db"
    store = Store.open(f"sqlite:///{db}")
    with store.transaction() as repo:
        repo.user("telegram", "1")
    for path in db.parent.glob(db.name + "*"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    store.dispose()


def test_retention_removes_only_messages_older_than_the_limit(tmp_path: Path) -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    clock = [now - timedelta(days=40)]
    store = Store.open(f"sqlite:///{tmp_path / 'r.db'}", clock=lambda: clock[0])
    with store.transaction() as repo:
        user = repo.user("telegram", "1")
        repo.add_message(user.id, "in", "old")
        clock[0] = now - timedelta(days=5)
        repo.add_message(user.id, "in", "recent")
    with store.transaction() as repo:
        assert repo.prune_messages(now - timedelta(days=30)) == 1
        assert [m.text for m in repo.messages(user.id)] == ["recent"]
    store.dispose()
