"""Tests of storage/: migrations, SQLite settings, state round trips, deletion, transactions."""

from __future__ import annotations

import io
import subprocess
import sys
from argparse import Namespace
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.pool import QueuePool

from dialogs.records import CONCLUDED, AnswerRecord, Conclusion, ConversationState
from dialogs.vocabulary import Pattern, Urgency
from storage import NotFound, Store, make_engine, migrate
from storage.db import alembic_config, at_head, head_revision
from storage.models import (
    Answer,
    Conversation,
    DiaryCheckin,
    DiaryEntry,
    DiarySchedule,
    FollowUp,
    Message,
    User,
    UTCDateTime,
)
from tests.postgres import postgresql_only, sqlite_only

START = datetime(2025, 3, 4, 1, 2, 3, 456789, tzinfo=UTC)
TABLES = {
    "users",
    "conversations",
    "answers",
    "messages",
    "diary_schedules",
    "diary_checkins",
    "diary_entries",
    "followups",
}


class FakeClock:
    """A clock that moves one second forward on every reading."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def url(database_url: str) -> str:
    """A new, empty database: each test runs on SQLite and on PostgreSQL."""
    return database_url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(url: str, clock: FakeClock) -> Iterator[Store]:
    store = Store.open(url, clock=clock)
    yield store
    store.dispose()


def open_state() -> ConversationState:
    """A conversation midway: two answers, options ticked on the current question."""
    return ConversationState(
        flow="triage",
        state="q_location",
        answers=[
            AnswerRecord("q_episode", ("muscle_hard_knot", "toes_pulled"), START),
            AnswerRecord(
                "q_background",
                (),
                datetime(2025, 3, 4, 3, 3, 0, 1, tzinfo=timezone(timedelta(hours=2))),
            ),
        ],
        pending=("loc_calf", "loc_foot_toes"),
        findings={"muscle_hard_knot": True, "toes_pulled": True, "urge_to_move": False},
        started_at=START,
    )


def finished_state() -> ConversationState:
    """A concluded conversation with red flags."""
    state = open_state()
    state.state = CONCLUDED
    state.pending = ()
    state.answers.append(AnswerRecord("q_location", ("loc_calf",), START + timedelta(minutes=2)))
    state.conclusion = Conclusion(
        pattern=Pattern.POSSIBLE_DVT,
        urgency=Urgency.EMERGENCY,
        red_flags=("calf_swelling_warm_red", "chest_pain_or_breathless"),
    )
    state.finished_at = START + timedelta(minutes=3)
    return state


def table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table.__tablename__: connection.scalar(select(func.count()).select_from(table)) or 0
            for table in (
                User,
                Conversation,
                Answer,
                Message,
                DiarySchedule,
                DiaryCheckin,
                DiaryEntry,
                FollowUp,
            )
        }


def test_the_head_read_from_the_files_is_alembics_head() -> None:
    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_migrate_creates_the_tables_and_stamps_head(store: Store) -> None:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert at_head(store.engine)
    with store.engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
        revision = MigrationContext.configure(connection).get_current_revision()
    assert TABLES | {"alembic_version"} <= tables
    assert head == "0017"
    assert revision == head


def test_migrating_again_keeps_the_data(store: Store) -> None:
    with store.transaction() as repo:
        repo.user("telegram", "42")
    migrate(store.engine)
    with store.transaction() as repo:
        assert repo.find_user("telegram", "42") is not None


@postgresql_only
def test_processes_starting_together_on_a_new_database_migrate_it_once(url: str) -> None:
    opens = "import sys; from storage import Store; Store.open(sys.argv[1]).dispose()"
    processes = [
        subprocess.Popen([sys.executable, "-c", opens, url], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=120)[1] for p in processes]
    assert [p.returncode for p in processes] == [0] * 4, errors
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) >= TABLES
            assert (
                MigrationContext.configure(connection).get_current_revision()
                == ScriptDirectory.from_config(alembic_config()).get_current_head()
            )
    finally:
        engine.dispose()


def test_models_match_the_migrations(store: Store) -> None:
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), User.metadata)
    assert diff == []


@sqlite_only
def test_new_connections_use_wal_and_enforce_foreign_keys(store: Store) -> None:
    store.engine.dispose()
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        with pytest.raises(IntegrityError):
            connection.execute(
                text(
                    "INSERT INTO messages (user_id, direction, sealed, created_at)"
                    " VALUES (999, 'in', 'hi', '2025-01-01 00:00:00')"
                )
            )


def test_the_database_refuses_a_message_of_an_unknown_user(store: Store) -> None:
    with store.engine.connect() as connection, pytest.raises(IntegrityError):
        connection.execute(
            text(
                "INSERT INTO messages (user_id, direction, sealed, created_at)"
                " VALUES (999, 'in', 'hi', '2025-01-01 00:00:00')"
            )
        )


def test_a_postgresql_url_without_a_driver_gets_psycopg_and_a_bounded_pool() -> None:
    for url in ("postgresql://bot@/nightlegs", "postgres://bot@/nightlegs"):
        engine = make_engine(url, pool_size=3)
        assert engine.dialect.driver == "psycopg"
        assert isinstance(engine.pool, QueuePool)
        assert engine.pool.size() == 3
        engine.dispose()


def test_in_memory_database_migrates_without_wal() -> None:
    store = Store.open("sqlite://")
    try:
        with store.transaction() as repo:
            user = repo.user("terminal", "me")
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "memory"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        with store.transaction() as repo:
            assert repo.find_user("terminal", "me") == user
    finally:
        store.dispose()


def test_a_file_url_in_a_missing_folder_creates_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "nested"
    engine = make_engine(f"sqlite:///{folder / 'bot.db'}")
    try:
        assert folder.is_dir()
        migrate(engine)
        assert (folder / "bot.db").is_file()
    finally:
        engine.dispose()


def test_the_alembic_ini_upgrades_downgrades_and_writes_sql(url: str) -> None:
    ini = Path(__file__).resolve().parents[1] / "storage" / "alembic.ini"
    buffer = io.StringIO()
    config = Config(str(ini), output_buffer=buffer, cmd_opts=Namespace(x=[f"url={url}"]))
    command.upgrade(config, "head", sql=True)
    assert "CREATE TABLE users" in buffer.getvalue()
    engine = make_engine(url)
    try:
        command.upgrade(config, "head")
        assert set(inspect(engine).get_table_names()) >= TABLES
        command.downgrade(config, "base")
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    finally:
        engine.dispose()


def test_user_is_created_once_per_channel_and_external_id(store: Store) -> None:
    with store.transaction() as repo:
        assert repo.find_user("telegram", "42") is None
        first = repo.user("telegram", "42")
        again = repo.user("telegram", "42")
        other_channel = repo.user("terminal", "42")
    assert first == again
    assert first.created_at == START + timedelta(seconds=1)
    assert first.created_at.tzinfo is UTC
    assert other_channel.id != first.id


def test_update_user_changes_only_the_fields_given(store: Store) -> None:
    consent = START + timedelta(days=1)
    with store.transaction() as repo:
        user = repo.user("telegram", "42")
        repo.update_user(user.id, country="de", language_code="de-AT", consent_at=consent)
        updated = repo.update_user(user.id, language_code=None)
    assert updated.country == "DE"
    assert updated.language_code is None
    assert updated.consent_at == consent
    with store.transaction() as repo, pytest.raises(ValueError, match="alpha-2"):
        repo.update_user(user.id, country="DEU")


def test_unknown_ids_raise_not_found(store: Store) -> None:
    with store.transaction() as repo:
        assert repo.load_conversation(1) is None
        with pytest.raises(NotFound):
            repo.update_user(1, country="DE")
        with pytest.raises(NotFound):
            repo.save_conversation(1, open_state())
        with pytest.raises(NotFound):
            repo.create_conversation(1, open_state())


@pytest.mark.parametrize("make_state", [open_state, finished_state])
def test_conversation_state_round_trips_exactly_across_a_restart(
    url: str, clock: FakeClock, make_state: Callable[[], ConversationState]
) -> None:
    state = make_state()
    first = Store.open(url, clock=clock)
    with first.transaction() as repo:
        user_id = repo.user("telegram", "42").id
        conversation_id = repo.create_conversation(user_id, open_state())
        repo.save_conversation(conversation_id, state)
    first.dispose()

    reopened = Store.open(url, clock=clock)
    with reopened.transaction() as repo:
        loaded = repo.load_conversation(conversation_id)
    reopened.dispose()
    assert loaded == (user_id, state)
    loaded_state = loaded[1]
    assert loaded_state.answers[1].answered_at.tzinfo is UTC
    assert isinstance(loaded_state.pending, tuple)
    assert isinstance(loaded_state.answers[0].option_ids, tuple)


def test_a_final_state_without_finished_at_is_stamped_by_the_clock(store: Store) -> None:
    state = finished_state()
    state.finished_at = None
    with store.transaction() as repo:
        user_id = repo.user("telegram", "42").id
        conversation_id = repo.create_conversation(user_id, state)
        loaded = repo.load_conversation(conversation_id)
    assert loaded is not None
    assert loaded[1].finished_at == START + timedelta(seconds=2)


def test_saving_after_a_back_removes_the_last_answer_row(store: Store) -> None:
    state = finished_state()
    with store.transaction() as repo:
        user_id = repo.user("telegram", "42").id
        conversation_id = repo.create_conversation(user_id, state)
    back = open_state()
    with store.transaction() as repo:
        repo.save_conversation(conversation_id, back)
        counts = repo.user_row_counts(user_id)
        loaded = repo.load_conversation(conversation_id)
    assert counts["answers"] == 2
    assert loaded == (user_id, back)
    assert table_counts(store.engine)["answers"] == 2


def test_save_conversation_bumps_updated_at(store: Store, clock: FakeClock) -> None:
    with store.transaction() as repo:
        user_id = repo.user("telegram", "42").id
        conversation_id = repo.create_conversation(user_id, open_state())
        repo.save_conversation(conversation_id, open_state())
    with store.engine.connect() as connection:
        updated_at = connection.scalar(select(Conversation.updated_at))
    assert updated_at == clock.now


def test_open_conversation_ignores_finished_ones(store: Store) -> None:
    with store.transaction() as repo:
        user_id = repo.user("telegram", "42").id
        assert repo.open_conversation(user_id, "triage") is None
        open_id = repo.create_conversation(user_id, open_state())
        finished = finished_state()
        finished.started_at = START + timedelta(hours=1)
        finished_id = repo.create_conversation(user_id, finished)
        opened = repo.open_conversation(user_id, "triage")
        latest = repo.latest_conversation(user_id, "triage")
        other_flow = repo.open_conversation(user_id, "follow_up")
    assert opened == (open_id, open_state())
    assert latest == (finished_id, finished)
    assert other_flow is None


def test_messages_are_kept_in_order_with_their_meta(store: Store) -> None:
    with store.transaction() as repo:
        user_id = repo.user("telegram", "42").id
        conversation_id = repo.create_conversation(user_id, open_state())
        repo.add_message(user_id, "in", "/start")
        repo.add_message(
            user_id, "out", "Where?", conversation_id=conversation_id, meta={"button": "loc"}
        )
        with pytest.raises(ValueError, match="direction"):
            repo.add_message(user_id, "sideways", "?")
        messages = repo.messages(user_id)
    assert [(m.direction, m.text, m.meta) for m in messages] == [
        ("in", "/start", None),
        ("out", "Where?", {"button": "loc"}),
    ]
    assert messages[1].conversation_id == conversation_id
    assert messages[0].created_at < messages[1].created_at


def test_the_database_rejects_an_unknown_direction(store: Store) -> None:
    with store.transaction() as repo:
        user_id = repo.user("telegram", "42").id
    with store.engine.connect() as connection, pytest.raises(IntegrityError):
        connection.execute(
            text(
                "INSERT INTO messages (user_id, direction, sealed, created_at)"
                " VALUES (:user_id, 'up', 'hi', '2025-01-01 00:00:00')"
            ),
            {"user_id": user_id},
        )


def add_history(store: Store, external_id: str) -> int:
    """A user with a finished and an open conversation, answers and messages."""
    with store.transaction() as repo:
        user_id = repo.user("telegram", external_id).id
        repo.create_conversation(user_id, finished_state())
        conversation_id = repo.create_conversation(user_id, open_state())
        repo.add_message(user_id, "in", "hello")
        repo.add_message(user_id, "out", "Where?", conversation_id=conversation_id)
    return user_id


def test_delete_user_leaves_no_rows_about_them_and_keeps_others(store: Store) -> None:
    doomed = add_history(store, "1")
    kept = add_history(store, "2")
    with store.transaction() as repo:
        kept_counts = repo.user_row_counts(kept)
        repo.delete_user(doomed)
        repo.delete_user(doomed)
    with store.transaction() as repo:
        assert repo.user_row_counts(doomed) == dict.fromkeys(TABLES, 0)
        assert repo.user_row_counts(kept) == kept_counts
        assert repo.find_user("telegram", "1") is None
    assert kept_counts == dict.fromkeys(TABLES, 0) | {
        "users": 1,
        "conversations": 2,
        "answers": 5,
        "messages": 2,
    }
    assert table_counts(store.engine) == kept_counts


def test_an_exception_inside_a_transaction_rolls_everything_back(store: Store) -> None:
    user_id = add_history(store, "1")
    before = table_counts(store.engine)
    with pytest.raises(RuntimeError, match="boom"), store.transaction() as repo:
        repo.user("telegram", "2")
        repo.add_message(user_id, "in", "lost")
        repo.update_user(user_id, country="FR")
        repo.delete_user(user_id)
        raise RuntimeError("boom")
    assert table_counts(store.engine) == before
    with store.transaction() as repo:
        assert repo.find_user("telegram", "2") is None
        user = repo.find_user("telegram", "1")
    assert user is not None
    assert user.country is None


def test_naive_datetimes_are_rejected(store: Store) -> None:
    naive = datetime(2025, 1, 1)
    with pytest.raises(ValueError, match="naive"):
        UTCDateTime().process_bind_param(naive, sqlite.dialect())
    with store.transaction() as repo:
        user_id = repo.user("telegram", "42").id
    with pytest.raises(StatementError) as caught, store.transaction() as repo:
        repo.update_user(user_id, consent_at=naive)
    assert isinstance(caught.value.orig, ValueError)
    naive_clock = Store(store.engine, clock=lambda: naive)
    with pytest.raises(StatementError), naive_clock.transaction() as repo:
        repo.user("telegram", "43")
    with store.transaction() as repo:
        user = repo.find_user("telegram", "42")
        assert repo.find_user("telegram", "43") is None
    assert user is not None
    assert user.consent_at is None


answer_lists = st.lists(
    st.builds(
        AnswerRecord,
        st.sampled_from(["q_episode", "q_location", "q_background"]),
        st.lists(st.sampled_from(["a", "b", "c"]), max_size=3, unique=True).map(tuple),
        st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)),
    ),
    max_size=5,
)


def test_answer_rows_always_equal_the_last_saved_answers(url: str) -> None:
    store = Store.open(url)
    with store.transaction() as repo:
        user_id = repo.user("terminal", "me").id

    @settings(max_examples=50, deadline=None)
    @given(history=st.lists(answer_lists, min_size=1, max_size=4))
    def check(history: list[list[AnswerRecord]]) -> None:
        with store.transaction() as repo:
            conversation_id = repo.create_conversation(user_id, open_state())
            for answers in history:
                state = open_state()
                state.answers = answers
                repo.save_conversation(conversation_id, state)
            loaded = repo.load_conversation(conversation_id)
        assert loaded is not None
        assert loaded[1].answers == history[-1]

    try:
        check()
    finally:
        store.dispose()


def test_an_update_is_claimed_once_and_pruning_forgets_old_ones(store: Store) -> None:
    with store.transaction() as repo:
        assert repo.claim_update(1001) is True
        assert repo.claim_update(1001) is False
        assert repo.is_processed(1001)
    with store.transaction() as repo:
        assert repo.claim_update(1001) is False
        assert repo.prune_updates(datetime.now(UTC) + timedelta(days=1)) == 1
        assert not repo.is_processed(1001)


def test_a_rolled_back_claim_leaves_the_update_unprocessed(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as repo:
        repo.claim_update(7)
        raise RuntimeError("handler failed before commit")
    with store.transaction() as repo:
        assert not repo.is_processed(7)
