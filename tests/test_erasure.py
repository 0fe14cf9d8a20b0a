"""Deleted means unreadable: no byte of a deleted person's words stays in the database files,
and the files are readable by their owner only.

The wiping tests here run with sealing off (`UNSEALED`), so the words are plain bytes that the
wipe alone must remove: it still guards what stays plain (the Telegram id in `users`). With
sealing on, the words are never plain on disk at all (`tests/test_sealing.py`)."""

from __future__ import annotations

import secrets
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, MetaData, create_engine, select, text

from bot.services.flow import FlowService, Start, Who
from bot.telegram.keys import MenuKey, decode
from dialogs.advice import AdviceBook
from dialogs.engine import Flow
from storage import Store
from storage.sealing import Keyring, MasterKey
from tests.botapi_stub import BotApiStub
from tests.postgres import PostgresServer, postgresql_only
from tests.telegram_harness import RunningBot

SENTINEL = "zebra-quartz-7731-sentinel"
UNSEALED = Keyring(MasterKey.generate(), enabled=False)
ANNA, BEN = Who("telegram", "5550001234"), Who("telegram", "2")
"""Anna's Telegram id is in the users table and its unique index, so it is a sentinel too."""


def db_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))


def test_delete_leaves_no_byte_of_the_persons_words_in_the_database_files(
    tmp_path: Path,
) -> None:
    db = tmp_path / "data" / "bot.db"
    store = Store.open(f"sqlite:///{db}", keyring=UNSEALED)
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


def relation_files(connection: Connection, *relations: str) -> dict[str, bytes]:
    """The bytes of each relation's files (all segments and forks), by relation name."""
    data_dir = Path(connection.execute(text("SHOW data_directory")).scalar_one())
    found = {}
    for relation in relations:
        path = connection.execute(
            text("SELECT pg_relation_filepath(CAST(:name AS regclass))"), {"name": relation}
        ).scalar_one()
        files = sorted((data_dir / path).parent.glob(Path(path).name + "*"))
        found[relation] = b"".join(f.read_bytes() for f in files)
    return found


def database_files(connection: Connection) -> dict[str, bytes]:
    """Every file in the database's own folder (its tables, indexes, TOAST, catalogs)."""
    data_dir = Path(connection.execute(text("SHOW data_directory")).scalar_one())
    oid = connection.execute(
        text("SELECT oid FROM pg_database WHERE datname = current_database()")
    ).scalar_one()
    folder = data_dir / "base" / str(oid)
    return {f.name: f.read_bytes() for f in folder.iterdir() if f.is_file()}


def anna_and_ben(url: str) -> tuple[Store, FlowService]:
    """Anna wrote the sentinel 101 times, once in a note long enough to go to TOAST; Ben not."""
    store = Store.open(url, keyring=UNSEALED)
    service = FlowService(store, Flow.load("triage"), AdviceBook.load())
    for who in (ANNA, BEN):
        service.consent(who, language_code="en")
        service.handle(who, Start(), said="/check")
    for i in range(100):
        service.handle(ANNA, Start(), said=f"{SENTINEL} note {i}")
    # Too long and too random to compress: PostgreSQL moves it out of line, to the TOAST table.
    service.handle(ANNA, Start(), said=f"{SENTINEL} {secrets.token_hex(4000)}")
    service.handle(BEN, Start(), said="ben's own words")
    return store, service


@postgresql_only
def test_on_postgresql_a_delete_alone_leaves_the_rows_bytes_in_the_table_files(
    database_url: str,
) -> None:
    store, _ = anna_and_ben(database_url)
    admin = create_engine(PostgresServer.superuser_url(database_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        toast = connection.execute(
            text("SELECT reltoastrelid::regclass::text FROM pg_class WHERE relname = 'messages'")
        ).scalar_one()
        relations = ("messages", toast, "uq_users_channel_external_id")
        connection.execute(text("CHECKPOINT"))  # write the shared buffers to the files
        before = relation_files(connection, *relations)
        assert SENTINEL.encode() in before["messages"]
        assert SENTINEL.encode() in before[toast]
        assert ANNA.external_id.encode() in before["uq_users_channel_external_id"]

        with store.transaction() as repo:
            user = repo.find_user(ANNA.channel, ANNA.external_id)
            assert user is not None
            repo.delete_user(user.id)
        connection.execute(text("CHECKPOINT"))
        after = relation_files(connection, *relations)  # the rows are only marked dead
        assert SENTINEL.encode() in after["messages"]
        assert SENTINEL.encode() in after[toast]
        assert ANNA.external_id.encode() in after["uq_users_channel_external_id"]
    admin.dispose()
    store.dispose()


@postgresql_only
def test_on_postgresql_delete_rewrites_the_tables_so_no_byte_of_the_person_stays(
    database_url: str,
) -> None:
    store, service = anna_and_ben(database_url)
    admin = create_engine(PostgresServer.superuser_url(database_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("ANALYZE"))  # the planner's samples of column values, too
        statistics_file = connection.execute(
            text("SELECT pg_relation_filenode('pg_statistic')")
        ).scalar_one()
        connection.execute(text("CHECKPOINT"))
        assert any(SENTINEL.encode() in content for content in database_files(connection).values())

        assert service.delete(ANNA)

        connection.execute(text("CHECKPOINT"))
        for name, content in database_files(connection).items():
            assert SENTINEL.encode() not in content, name
            assert ANNA.external_id.encode() not in content, name
        assert b"ben's own words" in relation_files(connection, "messages")["messages"]
        stats = connection.execute(text("SELECT CAST(pg_stats AS text) FROM pg_stats")).scalars()
        assert not [row for row in stats if SENTINEL in row or ANNA.external_id in row]
        rewritten = connection.execute(text("SELECT pg_relation_filenode('pg_statistic')"))
        assert rewritten.scalar_one() != statistics_file, "old statistics went with the old file"
    admin.dispose()
    with store.transaction() as repo:
        assert repo.find_user(ANNA.channel, ANNA.external_id) is None
        assert repo.find_user(BEN.channel, BEN.external_id) is not None
    store.dispose()


@postgresql_only
def test_on_postgresql_with_sealing_delete_rewrites_only_the_tables_that_name_the_person(
    database_url: str,
) -> None:
    """Sealed, Anna's words are ciphertext under her key: once her key's row is out of the
    files, the transcript and answers need no rewrite (the slow part with many people). What
    names her in plain (her Telegram id) and her wrapped key are rewritten away."""
    store = Store.open(database_url, keyring=Keyring(MasterKey.generate()))
    service = FlowService(store, Flow.load("triage"), AdviceBook.load())
    for who in (ANNA, BEN):
        service.consent(who, language_code="en")
        service.handle(who, Start(), said=f"{SENTINEL} /check")
    admin = create_engine(PostgresServer.superuser_url(database_url), isolation_level="AUTOCOMMIT")

    def filenode(connection: Connection, relation: str) -> int:
        query = text("SELECT pg_relation_filenode(CAST(:name AS regclass))")
        return int(connection.execute(query, {"name": relation}).scalar_one())

    with admin.connect() as connection:
        wrapped = bytes(
            connection.execute(
                text(
                    "SELECT wrapped FROM person_keys JOIN users ON users.id = person_keys.user_id"
                    " WHERE users.external_id = :id"
                ),
                {"id": ANNA.external_id},
            ).scalar_one()
        )
        before = {name: filenode(connection, name) for name in ("messages", "answers", "users")}

        assert service.delete(ANNA)

        connection.execute(text("CHECKPOINT"))
        for name, content in database_files(connection).items():
            assert ANNA.external_id.encode() not in content, name
            assert wrapped not in content, name
            assert SENTINEL.encode() not in content, name
        after = {name: filenode(connection, name) for name in before}
    assert after["users"] != before["users"], "users is rewritten"
    assert after["messages"] == before["messages"] and after["answers"] == before["answers"]
    admin.dispose()
    with store.transaction() as repo:
        ben = repo.find_user(BEN.channel, BEN.external_id)
        assert ben is not None
        assert any(SENTINEL in m.text for m in repo.messages(ben.id)), "Ben's words still open"
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


def test_retention_removes_only_messages_older_than_the_limit(database_url: str) -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    clock = [now - timedelta(days=40)]
    store = Store.open(database_url, clock=lambda: clock[0])
    with store.transaction() as repo:
        user = repo.user("telegram", "1")
        repo.add_message(user.id, "in", "old")
        clock[0] = now - timedelta(days=5)
        repo.add_message(user.id, "in", "recent")
    with store.transaction() as repo:
        assert repo.prune_messages(now - timedelta(days=30)) == 1
        assert [m.text for m in repo.messages(user.id)] == ["recent"]
    store.dispose()


def rows_naming(engine_url: str, *ids: int) -> dict[int, list[str]]:
    """For each id: "table: row" of every row, in every table, with the id in any column."""
    engine = create_engine(engine_url)
    found: dict[int, list[str]] = {i: [] for i in ids}
    try:
        tables = MetaData()
        tables.reflect(engine)
        with engine.connect() as connection:
            for table in tables.sorted_tables:
                for row in connection.execute(select(table)):
                    shown = repr(tuple(row))
                    for i in ids:
                        if str(i) in shown:
                            found[i].append(f"{table.name}: {shown}")
    finally:
        engine.dispose()
    return found


def button(bot: RunningBot, chat: int, key: MenuKey) -> str:
    """The label of the button with `key` on the chat's newest message that has it."""
    for message in reversed(bot.api.messages(chat)):
        for label, data in message.buttons:
            if data is not None and decode(data) == key:
                return label
    raise LookupError(f"no {key} button in chat {chat}\n{bot.api.transcript(chat)}")


async def test_after_delete_no_row_in_any_table_names_the_persons_telegram_id(
    database_url: str,
) -> None:
    """The confirmation that all is erased is an outbox row to the chat: once delivered it
    goes too, and the sender's bookkeeping of message ids names no chat."""
    anna, ben = 7_341_902_615, 7_341_902_616  # private chat id = the person's user id
    async with BotApiStub() as api:
        bot = await RunningBot(api, database_url).start()
        try:
            for chat in (anna, ben):
                await bot.send("/start", chat=chat)
                await bot.press(button(bot, chat, MenuKey("consent")), chat=chat)
                await bot.send("my legs woke me", chat=chat)
            assert all(rows_naming(database_url, anna, ben).values()), "both are stored"

            await bot.send("/delete", chat=anna)
            shown = await bot.press(button(bot, anna, MenuKey("erase")), chat=anna)
            assert any("erased" in (m.plain_text or "") for m in shown), api.transcript(anna)
        finally:
            await bot.stop()
    found = rows_naming(database_url, anna, ben)
    assert found[anna] == [], "\n".join(found[anna])
    assert found[ben], "the other person's rows stay"
