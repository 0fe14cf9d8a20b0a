"""The note for the doctor (spec v3 item 10) in storage: kept with a check's result, never
changed by saving a step, exported, and erased with the person. On SQLite and PostgreSQL."""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from dialogs.records import CONCLUDED, Conclusion, ConversationState
from dialogs.vocabulary import Pattern, Urgency
from storage import Store, make_engine
from storage.export import export_user

START = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
NOTE = "I flew back from Spain on Monday; my left calf was sore on the plane."


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    moments = iter(START + timedelta(seconds=i) for i in range(10_000))
    store = Store.open(database_url, clock=lambda: next(moments))
    yield store
    store.dispose()


def concluded() -> ConversationState:
    return ConversationState(
        flow="triage",
        state=CONCLUDED,
        findings={"muscle_hard_knot": True},
        conclusion=Conclusion(Pattern.LEG_CRAMPS, Urgency.SELF_CARE),
        started_at=START,
        finished_at=START,
    )


def a_check(store: Store) -> tuple[int, int]:
    with store.transaction() as repo:
        user = repo.user("telegram", "77")
        return user.id, repo.create_conversation(user.id, concluded())


def test_a_note_is_awaited_once_asked_and_kept_once_given(store: Store) -> None:
    user_id, cid = a_check(store)
    with store.transaction() as repo:
        assert repo.note_awaited(user_id, "triage") is None
        repo.ask_note(cid)
    with store.transaction() as repo:
        assert repo.note_awaited(user_id, "triage") == cid
        assert repo.note_awaited(user_id, "diary") is None
        repo.set_note(cid, NOTE)
    with store.transaction() as repo:
        assert repo.note_awaited(user_id, "triage") is None
        found = repo.load_conversation(cid)
    assert found is not None and found[1].note == NOTE


def test_skipping_stops_waiting_and_keeps_an_earlier_note(store: Store) -> None:
    user_id, cid = a_check(store)
    with store.transaction() as repo:
        repo.set_note(cid, NOTE)
        repo.ask_note(cid)
        repo.skip_note(cid)
    with store.transaction() as repo:
        assert repo.note_awaited(user_id, "triage") is None
        assert repo.latest_conversation(user_id, "triage")[1].note == NOTE  # type: ignore[index]


def test_saving_a_step_never_changes_the_note(store: Store) -> None:
    user_id, cid = a_check(store)
    with store.transaction() as repo:
        repo.set_note(cid, NOTE)
        repo.save_conversation(cid, concluded())  # the engine's state knows no note
    with store.transaction() as repo:
        assert repo.latest_conversation(user_id, "triage")[1].note == NOTE  # type: ignore[index]


def test_a_newer_check_is_not_waiting_for_the_older_ones_note(store: Store) -> None:
    user_id, cid = a_check(store)
    with store.transaction() as repo:
        repo.ask_note(cid)
        newer = repo.create_conversation(user_id, ConversationState("triage", "emergency_signs"))
    with store.transaction() as repo:
        assert newer != cid
        assert repo.note_awaited(user_id, "triage") is None


def test_the_export_holds_the_note_and_delete_removes_it(store: Store) -> None:
    user_id, cid = a_check(store)
    with store.transaction() as repo:
        repo.set_note(cid, NOTE)
    with store.transaction() as repo:
        data = export_user(repo, user_id, exported_at=START)
    assert data["schema_version"] == 5
    assert [c["note"] for c in data["conversations"]] == [NOTE]
    with store.transaction() as repo:
        repo.delete_user(user_id)
    with store.transaction() as repo:
        assert repo.find_user("telegram", "77") is None
        assert repo.load_conversation(cid) is None
        assert not any(repo.user_row_counts(user_id).values())


def test_the_note_migration_goes_down_and_up_again_keeping_the_checks(
    store: Store, database_url: str
) -> None:
    user_id, cid = a_check(store)
    with store.transaction() as repo:
        repo.set_note(cid, NOTE)
    store.dispose()
    ini = Path(__file__).resolve().parents[1] / "storage" / "alembic.ini"
    config = Config(str(ini), cmd_opts=Namespace(x=[f"url={database_url}"]))
    command.downgrade(config, "0008")
    engine = make_engine(database_url)
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("conversations")}
        assert "note" not in columns and "note_asked_at" not in columns
        command.upgrade(config, "head")
        columns = {c["name"] for c in inspect(engine).get_columns("conversations")}
        assert {"sealed", "note_asked_at"} <= columns, "the note is sealed with the result"
    finally:
        engine.dispose()
    again = Store.open(database_url)
    try:
        with again.transaction() as repo:
            found = repo.load_conversation(cid)
        assert found is not None and found[0] == user_id and found[1].note is None
    finally:
        again.dispose()
