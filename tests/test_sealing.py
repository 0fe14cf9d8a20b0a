"""Sealed at rest: a person's words and health data are ciphertext under their own key, and
destroying the key (`/delete`) leaves every copy, a backup taken before it too, unreadable."""

from __future__ import annotations

import sqlite3
import stat
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bot.services.flow import FlowService, Start, Who
from dialogs.advice import AdviceBook
from dialogs.engine import Flow
from dialogs.records import Conclusion
from dialogs.vocabulary import Pattern, Urgency
from storage import Store
from storage.models import Message, PersonKey
from storage.sealing import Keyring, MasterKey, Sealer, SealingError
from storage.store import MESSAGE
from tests.postgres import PostgresServer

NOTE = "quokka-lantern-4471 my calf burns when I climb stairs"
DIARY_NOTE = "marmot-violin-9902 woke three times, left foot cold"
TYPED = "ocelot-harbor-6618 typed in the chat"
WORDS = (NOTE, DIARY_NOTE, TYPED, "restless_legs")
"""Her note, her diary note, what she typed, and her check's result pattern."""
FOLLOWED_UP = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
ANNA, BEN = Who("telegram", "5550001234"), Who("telegram", "5550009999")


def readable(blob: bytes, word: str) -> bool:
    """Whether `word` can be read from `blob`: as bytes, or as the hex a dump writes bytea in."""
    raw = word.encode()
    return raw in blob or raw.hex().encode() in blob


def anna_with_everything(store: Store) -> FlowService:
    """Anna: a finished check ending `restless_legs`, a note for the doctor, a diary night with
    a note, and typed words in her transcript. Ben: a check of his own."""
    service = FlowService(store, Flow.load("triage"), AdviceBook.load())
    for who in (ANNA, BEN):
        service.consent(who, language_code="en")
        service.handle(who, Start(), said="/check")
    service.handle(ANNA, Start(), said=TYPED)
    with store.transaction() as repo:
        anna = repo.find_user(ANNA.channel, ANNA.external_id)
        assert anna is not None
        found = repo.latest_conversation(anna.id, "triage")
        assert found is not None
        cid, state = found
        repo.set_note(cid, NOTE)
        repo.diary.save_entry(
            anna.id,
            date(2026, 12, 5),
            values={"cramps": True, "worst_pain": 7, "note": DIARY_NOTE},
            findings={"urge_to_move": True},
            red_flags=[],
            backfilled=False,
            conversation_id=None,
        )
        # A stored result, as a finished check leaves it (the rules are tested elsewhere).
        state.conclusion = Conclusion(Pattern.RESTLESS_LEGS, Urgency.SOON)
        repo.save_conversation(cid, state)
        followup = repo.followups.offer(cid, "soon", FOLLOWED_UP)
        assert repo.followups.accept(followup.id, due_at=FOLLOWED_UP, zone="UTC", now=FOLLOWED_UP)
        assert repo.followups.claim(followup.id, FOLLOWED_UP)
        assert repo.followups.answer(followup.id, "changed", FOLLOWED_UP)
    with store.transaction() as repo:  # everything reads back as plain values
        anna = repo.find_user(ANNA.channel, ANNA.external_id)
        assert anna is not None
        found = repo.latest_conversation(anna.id, "triage")
        assert found is not None
        state = found[1]
        assert state.note == NOTE
        assert state.conclusion is not None and state.conclusion.pattern == "restless_legs"
        assert repo.diary.entries(anna.id)[0].values["note"] == DIARY_NOTE
        assert TYPED in [m.text for m in repo.messages(anna.id)]
        assert [(f.urgency, f.answer) for f in repo.followups.of_user(anna.id)] == [
            ("soon", "changed")
        ]
    return service


def backup(url: str, into: Path, request: pytest.FixtureRequest | None = None) -> bytes:
    """A backup of the live database, as an operator takes one: SQLite's online backup API, or
    `pg_dump` (plain SQL) from the test server's own binaries."""
    if url.startswith("sqlite"):
        source = sqlite3.connect(url.removeprefix("sqlite:///"))
        target = sqlite3.connect(into)
        with target:
            source.backup(target)
        source.close()
        target.close()
        return into.read_bytes()
    assert request is not None
    server: PostgresServer = request.getfixturevalue("postgres_server")
    database = make_url(url).database
    subprocess.run(
        [
            str(server.bin_dir / "pg_dump"),
            f"--host={server.root}",
            "--username=nightlegs",
            f"--dbname={database}",
            f"--file={into}",
        ],
        check=True,
    )
    return into.read_bytes()


def sealed_messages(backup_path: Path) -> list[tuple[int, bytes]]:
    """Every transcript row's (user id, sealed value), read from a SQLite backup file."""
    connection = sqlite3.connect(backup_path)
    rows = connection.execute("SELECT user_id, sealed FROM messages").fetchall()
    connection.close()
    return [(user_id, bytes(blob)) for user_id, blob in rows]


def test_without_sealing_a_backup_holds_the_words_in_plain(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The control: with plain columns the same search finds every word, so the sealed test
    below can fail."""
    store = Store.open(database_url, keyring=Keyring(MasterKey.generate(), enabled=False))
    anna_with_everything(store)
    copy = backup(database_url, tmp_path / "plain.backup", request)
    assert all(readable(copy, word) for word in WORDS)
    store.dispose()


def test_a_backup_taken_before_delete_yields_no_readable_byte_of_the_person(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    keyring = Keyring(MasterKey.generate())
    store = Store.open(database_url, keyring=keyring)
    service = anna_with_everything(store)
    with store.transaction() as repo:
        anna = repo.find_user(ANNA.channel, ANNA.external_id)
        assert anna is not None
    copy = backup(database_url, tmp_path / "before-delete.backup", request)
    assert readable(copy, ANNA.external_id), "the backup is of the live database"
    for word in WORDS:
        assert not readable(copy, word), word

    assert service.delete(ANNA)

    with Session(store.engine) as session:  # the live database no longer has her key
        assert session.get(PersonKey, anna.id) is None
        assert session.scalars(select(PersonKey.user_id)).all(), "Ben's key stays"
    # Her ciphertext, as kept in the backup, cannot be opened with what the live database and
    # its master key hold.
    if database_url.startswith("sqlite"):
        found = sealed_messages(tmp_path / "before-delete.backup")
        rows = [blob for user_id, blob in found if user_id == anna.id]
    else:
        rows = _anna_rows_from_dump(copy, anna.id)
    assert rows
    with Session(store.engine) as session:
        sealer = Sealer(session, Keyring(keyring.master))
        for blob in rows:
            with pytest.raises(SealingError, match="no key"):
                sealer.open(anna.id, MESSAGE, blob)
    with store.transaction() as repo:  # Ben's data is untouched
        ben = repo.find_user(BEN.channel, BEN.external_id)
        assert ben is not None and repo.messages(ben.id)
    store.dispose()


def _anna_rows_from_dump(dump: bytes, user_id: int) -> list[bytes]:
    """The sealed column of the person's transcript rows in a plain pg_dump (bytea in hex)."""
    lines = dump.decode().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("COPY public.messages "))
    columns = lines[start].split("(")[1].split(")")[0].split(", ")
    rows = []
    for line in lines[start + 1 :]:
        if line == "\\.":
            break
        values = line.split("\t")
        if values[columns.index("user_id")] == str(user_id):
            rows.append(bytes.fromhex(values[columns.index("sealed")].removeprefix("\\\\x")))
    return rows


def test_after_a_rotation_no_older_backup_opens_with_the_master_key(tmp_path: Path) -> None:
    """The limit of crypto-shredding with wrapped keys in the database: a backup taken before
    a delete still holds the person's wrapped key, which the master key of that time opens.
    Rotating the master key (`bot.admin rekey`) and destroying the old one closes it."""
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    old = Keyring(MasterKey.generate())
    store = Store.open(url, keyring=old)
    service = anna_with_everything(store)
    copy_path = tmp_path / "old.backup"
    backup(url, copy_path)
    assert service.delete(ANNA)
    new = MasterKey.generate()
    with store.transaction() as repo:
        assert repo.sealer.rewrap(new) == 1  # Ben's key only
    store.dispose()

    backup_engine = create_engine(f"sqlite:///{copy_path}")
    with Session(backup_engine) as session:
        anna_id = session.scalar(
            text("SELECT id FROM users WHERE external_id = :e"), {"e": ANNA.external_id}
        )
        blob = session.scalars(select(Message.sealed).where(Message.user_id == anna_id)).first()
        assert blob is not None
        # With the old master key (as long as it exists) the backup opens ...
        assert Sealer(session, Keyring(old.master)).open(anna_id, MESSAGE, blob)
        # ... with only the new one, it does not.
        with pytest.raises(SealingError, match="unknown master key"):
            Sealer(session, Keyring(new)).open(anna_id, MESSAGE, blob)
    backup_engine.dispose()
    again = Store.open(url, keyring=Keyring(new))  # the live database works on the new key
    with again.transaction() as repo:
        ben = repo.find_user(BEN.channel, BEN.external_id)
        assert ben is not None and repo.conversations(ben.id)
    again.dispose()


def test_a_value_cannot_move_to_another_person_or_column(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'bot.db'}")
    with store.transaction() as repo:
        anna = repo.user("telegram", "1")
        ben = repo.user("telegram", "2")
        blob = repo.sealer.seal(anna.id, MESSAGE, "hers")
        assert repo.sealer.open(anna.id, MESSAGE, blob) == "hers"
        with pytest.raises(SealingError):
            repo.sealer.open(ben.id, MESSAGE, blob)
        with pytest.raises(SealingError):
            repo.sealer.open(anna.id, "answers.sealed", blob)
        tampered = blob[:-1] + bytes([blob[-1] ^ 1])
        with pytest.raises(SealingError):
            repo.sealer.open(anna.id, MESSAGE, tampered)
    store.dispose()


def test_the_key_file_is_made_once_private_and_the_key_never_shows(tmp_path: Path) -> None:
    path = tmp_path / "data" / "master.key"
    key = MasterKey.from_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert MasterKey.from_file(path) == key
    shown = repr(key) + repr(Keyring(key)) + str(key)
    assert key.to_base64() not in shown and key.secret.hex() not in shown
    assert key.key_id in shown


def test_a_store_opens_again_with_its_key_file_and_reads_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MASTER_KEY", raising=False)
    monkeypatch.delenv("MASTER_KEY_FILE", raising=False)
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    store = Store.open(url)
    with store.transaction() as repo:
        user = repo.user("telegram", "1")
        repo.add_message(user.id, "in", TYPED)
    store.dispose()
    assert (tmp_path / "master.key").is_file()
    again = Store.open(url)
    with again.transaction() as repo:
        assert [m.text for m in repo.messages(user.id)] == [TYPED]
    again.dispose()


def test_the_upgrade_seals_rows_written_before_sealing_and_loses_none(tmp_path: Path) -> None:
    from alembic import command  # noqa: PLC0415

    from storage.db import alembic_config, make_engine  # noqa: PLC0415

    url = f"sqlite:///{tmp_path / 'bot.db'}"
    keyring = Keyring(MasterKey.generate())
    store = Store.open(url, keyring=keyring)
    anna_with_everything(store)
    store.dispose()
    engine = make_engine(url)
    config = alembic_config()
    with engine.begin() as connection:  # back to 0009: the plain columns, as before sealing
        config.attributes.update(connection=connection, keyring=keyring)
        command.downgrade(config, "0009")
    plain = b"".join(p.read_bytes() for p in tmp_path.glob("bot.db*"))
    assert all(readable(plain, word) for word in WORDS), "0009 keeps them plain"
    with engine.begin() as connection:
        config.attributes.update(connection=connection, keyring=keyring)
        command.upgrade(config, "head")
    with engine.connect() as connection:
        connection.exec_driver_sql("VACUUM")  # the plain pages freed by the upgrade go too
    engine.dispose()
    sealed = b"".join(p.read_bytes() for p in tmp_path.glob("bot.db*"))
    assert not any(readable(sealed, word) for word in WORDS)
    again = Store.open(url, keyring=Keyring(keyring.master))  # as the bot starts again
    with again.transaction() as repo:
        anna = repo.find_user(ANNA.channel, ANNA.external_id)
        assert anna is not None
        found = repo.latest_conversation(anna.id, "triage")
        assert found is not None and found[1].note == NOTE
        assert found[1].conclusion is not None and found[1].conclusion.pattern == "restless_legs"
        assert repo.diary.entries(anna.id)[0].values["note"] == DIARY_NOTE
        assert TYPED in [m.text for m in repo.messages(anna.id)]
        followups = repo.followups.of_user(anna.id)
        assert [(f.urgency, f.answer) for f in followups] == [("soon", "changed")]
    again.dispose()


def test_admin_rekey_rewraps_every_key_and_replaces_the_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.admin import main  # noqa: PLC0415

    monkeypatch.delenv("MASTER_KEY", raising=False)
    monkeypatch.delenv("MASTER_KEY_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    store = Store.open(url)
    anna_with_everything(store)
    store.dispose()
    key_file = tmp_path / "master.key"
    before = MasterKey.from_file(key_file, create=False)

    assert main(["--database-url", url, "rekey"]) == 0

    after = MasterKey.from_file(key_file, create=False)
    assert after != before and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not (tmp_path / "master.key.new").exists()
    with Session(create_engine(url)) as session:
        assert set(session.scalars(select(PersonKey.key_id))) == {after.key_id}
    again = Store.open(url)  # the bot starts on the new key file and reads everything
    with again.transaction() as repo:
        anna = repo.find_user(ANNA.channel, ANNA.external_id)
        assert anna is not None and TYPED in [m.text for m in repo.messages(anna.id)]
    again.dispose()
