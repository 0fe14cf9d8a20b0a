"""Tests of bot/admin.py: `main(argv)` run in-process on a SQLite file holding two users.

Anna (Telegram id 111) and Ben (222) each have a triage, a diary night and transcript
messages, some 40 days old and some 5 days old. Every command must touch only the user it
names.
"""

from __future__ import annotations

import json
import stat
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from bot.admin import main
from dialogs.records import CONCLUDED, AnswerRecord, Conclusion, ConversationState
from dialogs.vocabulary import Pattern, Urgency
from storage import Store
from tests.postgres import postgresql_only

ANNA, BEN = "111", "222"
NOW = datetime.now(UTC)


@pytest.fixture
def url(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A database with Anna and Ben; the working folder is empty, so no .env is read."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    url = database_url
    clock = [NOW - timedelta(days=40)]
    store = Store.open(url, clock=lambda: clock[0])
    with store.transaction() as repo:
        for external_id in (ANNA, BEN):
            clock[0] = NOW - timedelta(days=40)
            user = repo.user("telegram", external_id)
            conversation_id = repo.create_conversation(
                user.id,
                ConversationState(
                    flow="triage",
                    state=CONCLUDED,
                    answers=[AnswerRecord("feeling", ("knot",), NOW - timedelta(days=40))],
                    findings={"muscle_hard_knot": True},
                    conclusion=Conclusion(Pattern.LEG_CRAMPS, Urgency.SELF_CARE),
                ),
            )
            repo.add_message(user.id, "in", f"old words of {external_id}", conversation_id=None)
            # a row in every table of the person (storage does not check the result's urgency)
            repo.followups.offer(conversation_id, "soon", NOW - timedelta(days=40))
            repo.diary.set_schedule(user.id, local_time=time(21, 30), zone="UTC", now=NOW)
            repo.diary.backfill_checkin(user.id, date(2026, 1, 1), NOW)
            repo.diary.save_entry(
                user.id,
                date(2026, 1, 1),
                values={"cramps": True},
                findings={"muscle_hard_knot": True},
                red_flags=[],
                backfilled=True,
                conversation_id=conversation_id,
            )
            clock[0] = NOW - timedelta(days=5)
            repo.add_message(user.id, "out", f"recent words to {external_id}")
    store.dispose()
    return url


def user_id(url: str, external_id: str) -> int | None:
    store = Store.open(url)
    with store.transaction() as repo:
        user = repo.find_user("telegram", external_id)
    store.dispose()
    return None if user is None else user.id


def counts(url: str, user_id: int) -> dict[str, int]:
    store = Store.open(url)
    with store.transaction() as repo:
        result = repo.user_row_counts(user_id)
    store.dispose()
    return result


def messages(url: str, external_id: str) -> list[str]:
    store = Store.open(url)
    with store.transaction() as repo:
        user = repo.find_user("telegram", external_id)
        assert user is not None
        texts = [m.text for m in repo.messages(user.id)]
    store.dispose()
    return texts


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def test_export_user_writes_only_that_users_data_to_a_private_file(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "anna.json"

    assert main(["--database-url", url, "export-user", "--user", ANNA, "--out", str(out)]) == 0

    assert mode(out) == 0o600
    data = read(out)
    assert data["user"]["external_id"] == ANNA
    assert len(data["conversations"]) == 1
    assert [m["text"] for m in data["transcript"]] == ["old words of 111", "recent words to 111"]
    assert BEN not in out.read_text(encoding="utf-8")
    assert str(out) in capsys.readouterr().out


def test_export_all_writes_one_private_file_per_user_named_by_that_user(
    url: str, tmp_path: Path
) -> None:
    out_dir = tmp_path / "exports" / "today"

    assert main(["--database-url", url, "export-all", "--out-dir", str(out_dir)]) == 0

    assert mode(out_dir) == 0o700
    files = sorted(out_dir.iterdir())
    assert [f.name for f in files] == ["telegram-111.json", "telegram-222.json"]
    for path, external_id, other in zip(files, (ANNA, BEN), (BEN, ANNA), strict=True):
        assert mode(path) == 0o600
        assert read(path)["user"]["external_id"] == external_id
        assert f"words of {other}" not in path.read_text(encoding="utf-8")


def test_exports_never_overwrite_a_file_or_fill_a_used_folder(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = tmp_path / "ben.json"
    existing.write_text("ben's earlier export")
    used = tmp_path / "used"
    used.mkdir()
    (used / "telegram-222.json").write_text("{}")

    assert main(["--database-url", url, "export-user", "--user", ANNA, "--out", str(existing)]) == 1
    assert main(["--database-url", url, "export-all", "--out-dir", str(used)]) == 1

    assert existing.read_text() == "ben's earlier export"
    assert [p.name for p in used.iterdir()] == ["telegram-222.json"]
    err = capsys.readouterr().err
    assert "already exists" in err
    assert "not an empty folder" in err


def test_delete_user_removes_every_row_of_that_user_and_keeps_the_other(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    anna, ben = user_id(url, ANNA), user_id(url, BEN)
    assert anna is not None
    assert ben is not None
    before, ben_before = counts(url, anna), counts(url, ben)
    assert all(before.values()), before

    assert main(["--database-url", url, "delete-user", "--user", ANNA, "--yes"]) == 0

    assert set(counts(url, anna).values()) == {0}
    assert user_id(url, ANNA) is None
    assert counts(url, ben) == ben_before
    assert f"{sum(before.values())} rows" in capsys.readouterr().out


def test_delete_user_refuses_without_yes(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--database-url", url, "delete-user", "--user", ANNA])

    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage:")
    assert "--yes" in err
    assert user_id(url, ANNA) is not None


def test_retention_removes_only_messages_older_than_n_days(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    anna = user_id(url, ANNA)
    assert anna is not None
    before = counts(url, anna)

    assert main(["--database-url", url, "retention", "--days", "30"]) == 0

    assert "removed 2 transcript messages" in capsys.readouterr().out
    assert messages(url, ANNA) == ["recent words to 111"]
    assert messages(url, BEN) == ["recent words to 222"]
    assert counts(url, anna) == {**before, "messages": 1}


def test_database_url_comes_from_the_environment(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    out = tmp_path / "ben.json"

    assert main(["export-user", "--user", BEN, "--out", str(out)]) == 0

    assert read(out)["user"]["external_id"] == BEN


@pytest.mark.parametrize(
    "argv",
    [
        ["export-user", "--user", "999", "--out", "x.json"],
        ["delete-user", "--user", "999", "--yes"],
    ],
)
def test_an_unknown_user_is_one_line_and_exit_1(
    url: str, tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--database-url", url, *argv]) == 1

    err = capsys.readouterr().err
    assert err == "python -m bot.admin: error: no user with Telegram id 999\n"
    assert not (tmp_path / "x.json").exists()


def test_a_missing_database_file_is_an_error_not_a_new_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere" / "bot.db"

    assert main(["--database-url", f"sqlite:///{missing}", "retention", "--days", "1"]) == 1

    assert "no database file" in capsys.readouterr().err
    assert not missing.parent.exists()


@postgresql_only
def test_an_unreachable_postgresql_database_is_one_line_and_exit_1(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = make_url(database_url).set(database="no_such_database")
    url = missing.render_as_string(hide_password=False)

    assert main(["--database-url", url, "retention", "--days", "1"]) == 1

    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("python -m bot.admin: error: cannot use the database: ")
    assert "no_such_database" in line


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["export-user", "--out", "x.json"],
        ["export-user", "--user", "abc", "--out", "x.json"],
        ["export-user", "--user", "-5", "--out", "x.json"],
        ["export-all"],
        ["retention", "--days", "0"],
        ["retention", "--days", "ten"],
        ["frobnicate"],
    ],
)
def test_bad_arguments_exit_2_with_the_usage(
    url: str, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--database-url", url, *argv])

    assert exit_.value.code == 2
    assert capsys.readouterr().err.startswith("usage: python -m bot.admin")
