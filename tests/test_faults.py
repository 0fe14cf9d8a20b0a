"""Issue 18, item 5: faults beyond a kill, each survived by the real bot process.

- PostgreSQL stopped hard (`pg_ctl stop -m immediate`) mid-traffic and started again: the bot
  stays up, `/healthz` says 503 while the database is away and 200 after, and every tap
  Telegram delivered is applied once, no reply is lost or shown twice, nobody is stranded.
- The Bot API answering 500, then not answering at all, for 30 s in all: the replies wait and
  go out once, in order, when it is back.
- SQLite on a filesystem that fills up (a small tmpfs, mounted for the test): one clear log
  line naming the full disk, no corrupt row, and the tap that could not be stored is fetched
  again (the getUpdates offset did not move past it) and applied once there is room.

Each runs `python -m bot` against the stand-in Bot API (`tests/botapi_stub.py`) and reuses
the crash test's simulated people and checks (`tests/test_crash_delivery.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

import tests.postgres
import tests.test_crash_delivery as crash
from tests.botapi_stub import BotApiStub
from tests.postgres import PostgresServer, PostgresUnavailable
from tests.test_crash_delivery import (
    Findings,
    Person,
    check_database,
    check_violations,
    converse,
    make_people,
    outbox_empty,
)
from tests.test_telegram_restart import BotProcess

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and mounts")

SECRET = "faults-secret"
PATH = "/telegram/hook"
PEOPLE = 12
DOWN_FOR = 4.0
"""Seconds PostgreSQL stays stopped."""
API_OUTAGE = ((500, 15.0), (None, 15.0))
"""The Bot API answers 500 to every call for 15 s, then answers nothing for 15 s."""
STEP_TIMEOUT = 90.0
"""A tap's reply may wait out a whole outage (the crash test's own is 45 s)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def webhook_bot(api: BotApiStub, tmp: Path, database_url: str) -> tuple[BotProcess, str]:
    """The bot in webhook mode on a free loopback port; returns it and its base URL."""
    process = BotProcess(api, tmp, database_url)
    port = free_port()
    process.env |= {
        "WEBHOOK_URL": f"https://bot.test{PATH}",
        "WEBHOOK_SECRET": SECRET,
        "WEBHOOK_LISTEN": f"127.0.0.1:{port}",
        "INSTANCE_NAME": "faults",
    }
    return process, f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def running_webhook_bot(
    api: BotApiStub, tmp: Path, database_url: str
) -> AsyncIterator[tuple[BotProcess, str]]:
    """The bot in webhook mode, the stand-in delivering to it; killed if still up at the end."""
    bot, base = webhook_bot(api, tmp, database_url)
    stop = asyncio.Event()
    delivery: asyncio.Task[None] | None = None
    try:
        await bot.start()
        delivery = asyncio.create_task(
            api.deliver_webhooks([f"{base}{PATH}"], secret=SECRET, stop=stop)
        )
        yield bot, base
    finally:
        stop.set()
        if delivery is not None:
            await delivery
        if bot.process is not None and bot.process.returncode is None:
            await bot.kill()


def stuck(api: BotApiStub, replay: str, people: list[Person], exc: BaseException) -> AssertionError:
    """The failure, with the chats of the first few people who did not finish."""
    detail = "\n".join(f"chat {p.chat}:\n{api.transcript(p.chat)}" for p in people if not p.done)
    return AssertionError(f"{replay}: {exc}\n{detail[:20000]}")


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float) -> float:
    """Poll `check` every 50 ms until it is true; returns the seconds it took."""
    began = time.monotonic()
    while not await check():
        if time.monotonic() - began > timeout:
            raise TimeoutError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - began


async def health(http: aiohttp.ClientSession, base: str) -> int | None:
    """`GET /healthz`'s status; None while the server does not listen (yet)."""
    try:
        async with http.get(f"{base}/healthz", timeout=aiohttp.ClientTimeout(total=10)) as answer:
            return answer.status
    except aiohttp.ClientConnectionError:
        return None


def presses(people: list[Person]) -> int:
    return sum(len(p.taps) for p in people)


def verdict(api: BotApiStub, database_url: str, people: list[Person]) -> Findings:
    """No send shown twice, the check's message went through exactly the states each person
    saw, in order, no Bot API rule broken, and every press stored once (the crash test's
    database check)."""
    found = Findings()
    for person in people:
        calls = crash.chat_calls(api, person.chat)
        sends = [
            (c.params.get("text"), str(c.params.get("reply_markup")))
            for c in calls
            if c.method == "sendMessage"
        ]
        if len(set(sends)) != len(sends):
            found.errors.append(
                f"chat {person.chat}: a send shown twice\n" + api.transcript(person.chat)
            )
        check_states(api, person, found)
    check_violations(api, found)
    check_database(api, database_url, people, found)
    return found


def check_states(api: BotApiStub, person: Person, found: Findings) -> None:
    """The check's one message went through exactly the states the person saw, in order."""
    first = next((v for v in person.views if v is not None), None)
    if first is None:
        found.errors.append(f"chat {person.chat}: never saw a question")
        return
    message = api.message(person.chat, first.message_id)
    states: list[object] = []
    for markup in [markup for _, markup in message.history] + [message.reply_markup]:
        state = crash.question_of(markup)
        if (states or state is not None) and (not states or states[-1] != state):
            states.append(state)  # (the introduction, before it, asks nothing)
    seen: list[object] = []
    for shown in person.views:
        state = None if shown is None else (shown.question_id, shown.ticked)
        if not seen or seen[-1] != state:
            seen.append(state)
    if states != seen:
        found.errors.append(f"chat {person.chat}: the message went {states}, the person saw {seen}")


async def talk_until_done(
    api: BotApiStub, database_url: str, people: list[Person], talks: list[asyncio.Task[None]]
) -> None:
    """Wait for every conversation and an empty outbox (every reply delivered)."""
    await crash.first_failure(talks, 240)
    await outbox_empty(database_url, STEP_TIMEOUT)


# --- PostgreSQL stopped and started again ----------------------------------------------------


DURABLE = {"fsync": "on", "full_page_writes": "on", "synchronous_commit": "on"}
"""The tests' servers skip durability (their data lives for a session). One stopped as by a
crash must keep what it said was committed, as a production server does: with
`synchronous_commit=off` a commit the bot was told of (and whose reply went out) is lost."""


@pytest.fixture
def own_postgres(monkeypatch: pytest.MonkeyPatch) -> Iterator[PostgresServer]:
    """A durable PostgreSQL server of this test's own: it is stopped mid-test, others' not."""
    monkeypatch.setattr(tests.postgres, "SETTINGS", {**tests.postgres.SETTINGS, **DURABLE})
    try:
        server = PostgresServer.start_new()
    except PostgresUnavailable as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


def pg_ctl(server: PostgresServer, *args: str) -> None:
    server._run(str(server.bin_dir / "pg_ctl"), *args, "--pgdata", str(server.data))


def stop_hard(server: PostgresServer) -> None:
    """As a crash: no checkpoint, every connection cut."""
    pg_ctl(server, "stop", "--wait", "--mode", "immediate")


def start_again(server: PostgresServer) -> None:
    settings = tests.postgres.SETTINGS
    options = " ".join(f"-c {key}={value!r}" for key, value in settings.items())
    options += f" -c unix_socket_directories='{server.root}'"
    pg_ctl(server, "start", "--wait", "--timeout", "60", "--log", str(server.log),
           "--options", options)  # fmt: skip


@pytest.mark.postgresql
async def test_postgresql_stopped_hard_mid_traffic_loses_and_repeats_nothing(
    tmp_path: Path, own_postgres: PostgresServer
) -> None:
    chosen = crash.seed()
    rng = random.Random(chosen)
    replay = f"seed {chosen} ({crash.SEED_VARIABLE}={chosen})"
    people = make_people(rng)[:PEOPLE]
    began = time.monotonic()
    timings: dict[str, float] = {}
    with own_postgres.database() as database_url:
        async with (
            BotApiStub(latency=crash.LATENCY, seed=chosen) as api,
            running_webhook_bot(api, tmp_path, database_url) as (bot, base),
            aiohttp.ClientSession() as http,
        ):

            async def up() -> bool:
                return await health(http, base) == 200

            await until(up, "/healthz 200 at the start", 30)
            talks = [asyncio.create_task(converse(api, p)) for p in people]
            try:

                async def busy() -> bool:
                    return presses(people) >= 2 * PEOPLE

                await until(busy, "people tapping", 60)
                taps_before = presses(people)
                await asyncio.to_thread(stop_hard, own_postgres)
                stopped = time.monotonic()

                async def down() -> bool:
                    return await health(http, base) == 503

                timings["503 after"] = await until(down, "/healthz 503", 20)
                await asyncio.sleep(DOWN_FOR)  # the outage itself, not a wait for a result
                assert await health(http, base) == 503
                assert bot.process is not None and bot.process.returncode is None
                await asyncio.to_thread(start_again, own_postgres)
                timings["down"] = time.monotonic() - stopped
                timings["200 after"] = await until(up, "/healthz 200", 30)
                await talk_until_done(api, database_url, people, talks)
            except (AssertionError, TimeoutError) as exc:
                raise stuck(api, replay, people, exc) from exc
            finally:
                for task in talks:
                    task.cancel()
                await asyncio.gather(*talks, return_exceptions=True)
            assert await bot.terminate() == 0, replay
        found = verdict(api, database_url, people)
    refused = sum(1 for _, _, status in api.webhook_attempts if status != 200)
    logs = bot.logs()
    summary = (
        f"{replay}: {presses(people)} presses ({taps_before} before the stop), PostgreSQL down "
        f"{timings['down']:.1f} s, /healthz 503 after {timings['503 after']:.2f} s and 200 "
        f"{timings['200 after']:.2f} s after the start; {refused} webhook posts refused and "
        f"sent again; {len(found.send_repeats)} sends repeated; "
        f"{time.monotonic() - began:.1f} s in all"
    )
    print(summary)
    assert not found.errors, summary + "\n" + "\n".join(found.errors)
    assert bot.runs == 1, "the bot process stayed up"
    assert "Traceback" not in logs, replay


# --- the Bot API away for 30 s ---------------------------------------------------------------


async def test_bot_api_500_then_silent_for_30_s_delays_replies_and_sends_each_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(crash, "STEP_TIMEOUT", STEP_TIMEOUT)
    chosen = crash.seed()
    rng = random.Random(chosen)
    replay = f"seed {chosen} ({crash.SEED_VARIABLE}={chosen})"
    everyone = make_people(rng)[:PEOPLE]
    early, late = everyone[: PEOPLE // 2], everyone[PEOPLE // 2 :]
    database_url = f"sqlite:///{tmp_path / 'nightlegs.db'}"
    began = time.monotonic()
    async with (
        BotApiStub(seed=chosen) as api,
        running_webhook_bot(api, tmp_path, database_url) as (bot, _base),
    ):
        talks = [asyncio.create_task(converse(api, p)) for p in early]
        try:

            async def busy() -> bool:
                return presses(early) >= len(early)

            await until(busy, "people tapping", 60)
            api.outage(*API_OUTAGE)
            outage_began = time.monotonic()
            # Others arrive while Telegram is away: their /start is taken, not answered.
            talks += [asyncio.create_task(converse(api, p)) for p in late]
            await api.outage_over()
            back = time.monotonic()
            mark = len(api.calls)

            async def answered() -> bool:
                return any(c.ok for c in api.calls[mark:])

            await until(answered, "a call answered after the outage", 60)
            first_ok = time.monotonic() - back
            await talk_until_done(api, database_url, everyone, talks)
            settled = time.monotonic() - back
        except (AssertionError, TimeoutError) as exc:
            raise stuck(api, replay, everyone, exc) from exc
        finally:
            for task in talks:
                task.cancel()
            await asyncio.gather(*talks, return_exceptions=True)
        assert await bot.terminate() == 0, replay
    during = [c for c in api.calls if outage_began <= c.at < back]
    applied_during = [c for c in during if c.applied is not None]
    found = verdict(api, database_url, everyone)
    summary = (
        f"{replay}: {presses(everyone)} presses; {len(during)} calls refused or unanswered "
        f"during the {back - outage_began:.1f} s outage; first answered call "
        f"{first_ok:.1f} s after it, all replies out {settled:.1f} s after it; "
        f"{time.monotonic() - began:.1f} s in all"
    )
    print(summary)
    assert not applied_during, "the stand-in applied nothing while away"
    assert not found.errors, summary + "\n" + "\n".join(found.errors)
    assert "Traceback" not in bot.logs(), replay


# --- SQLite on a full disk -------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted for the test (root only): a real filesystem that can fill up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small filesystem needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


def fill(folder: Path) -> Path:
    """Write a file until the filesystem is full; returns it."""
    filler = folder / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as out:
        with contextlib.suppress(OSError):
            while True:
                out.write(chunk)
        with contextlib.suppress(OSError):
            while True:  # the last few bytes
                out.write(b"\0" * 512)
    probe = folder / "probe"
    try:
        probe.write_bytes(b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    else:
        raise AssertionError("the filesystem is not full")
    return filler


def checkpoint(database: Path) -> None:
    """Move the write-ahead log into the database and truncate it: the next write must grow
    the log, so on a full disk it fails instead of reusing the log's pages."""
    with contextlib.closing(sqlite3.connect(database)) as connection:
        busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0, "the checkpoint could not finish"


def integrity(database: Path) -> str:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])


async def test_sqlite_on_a_full_disk_logs_once_keeps_its_rows_and_applies_the_tap_later(
    tmp_path: Path, small_disk: Path
) -> None:
    database = small_disk / "nightlegs.db"
    database_url = f"sqlite:///{database}"
    chat = 861_001
    began = time.monotonic()
    async with BotApiStub() as api:
        bot = BotProcess(api, tmp_path, database_url)
        try:
            await bot.start()
            shown = await first_question(api, chat, database_url)
            checkpoint(database)
            filler = fill(small_disk)
            logged = len(bot.logs())

            question = api.message(chat, shown.message_id)
            none = crash.button_data(
                question,
                lambda k: isinstance(k, crash.AnswerKey) and k.option_id == "none",
            )
            tapped = api.feed_callback(chat, shown.message_id, none)
            update_id = tapped["update_id"]

            async def refused() -> bool:
                return "disk is full" in bot.logs()[logged:]

            await until(refused, "a log line naming the full disk", 30)
            # Let the poller try again a few times while the disk stays full.
            attempts = len(api.calls_of("getUpdates"))

            async def retried() -> bool:
                return len(api.calls_of("getUpdates")) >= attempts + 2

            await until(retried, "getUpdates tried again", 30)
            assert api.confirmed_offset <= update_id, "offset moved past an unsaved tap"
            assert crash.view(api, chat) == shown, "the question moved on without its answer"
            filler.unlink()
            freed = time.monotonic()

            async def applied() -> bool:
                now = crash.view(api, chat)
                return now is not None and now.question_id != "emergency_signs"

            await until(applied, "the tap applied once there is room", 60)
            room_to_reply = time.monotonic() - freed
            await api.wait_until_confirmed(tapped, timeout=20)
            await outbox_empty(database_url, 20)
            assert await bot.terminate() == 0
        finally:
            if bot.process is not None and bot.process.returncode is None:
                await bot.kill()

    logs = bot.logs()[logged:]
    full_lines = [line for line in logs.splitlines() if "disk is full" in line]
    assert len(full_lines) == 1, full_lines
    assert "Traceback" not in logs, logs[-3000:]
    assert "None of these" not in logs, "no message text in the logs"
    assert integrity(database) == "ok"
    with contextlib.closing(sqlite3.connect(database)) as connection:
        claimed = connection.execute(
            "SELECT count(*) FROM processed_updates WHERE update_id = ?", (update_id,)
        ).fetchone()[0]
    assert claimed == 1
    answers = stored_answers(database_url, chat)
    assert answers == [("emergency_signs", ("none",))], answers
    print(
        f"full disk: the tap applied {room_to_reply:.1f} s after room was made; "
        f"{time.monotonic() - began:.1f} s in all; log: {full_lines[0]}"
    )


async def first_question(api: BotApiStub, chat: int, database_url: str) -> crash.View:
    """/start and agree: the check's first question, on screen and every reply delivered."""
    await api.wait_until_confirmed(api.feed_message(chat, "/start"), timeout=20)
    intro = await api.wait_for_message(chat, lambda m: m.has_inline_keyboard)
    consent = crash.button_data(intro, lambda k: k == crash.MenuKey("consent"))
    await api.wait_until_confirmed(api.feed_callback(chat, intro.message_id, consent))
    await outbox_empty(database_url, 20)
    shown = crash.view(api, chat)
    assert shown is not None and shown.question_id == "emergency_signs"
    return shown


def stored_answers(database_url: str, chat: int) -> list[tuple[str, tuple[str, ...]]]:
    from storage import Store  # noqa: PLC0415

    store = Store.open(database_url)
    try:
        with store.transaction() as repo:
            user = repo.find_user("telegram", str(chat))
            assert user is not None
            found = repo.latest_conversation(user.id, "triage")
            assert found is not None
            return [(a.question_id, a.option_ids) for a in found[1].answers]
    finally:
        store.dispose()


def test_a_full_disk_and_a_lost_database_are_told_apart_from_other_errors() -> None:
    from sqlalchemy.exc import OperationalError  # noqa: PLC0415

    from bot.telegram.trouble import AWAY, FULL, kind  # noqa: PLC0415

    full = OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full"))
    gone = OperationalError("SELECT 1", {}, Exception("server closed the connection"))
    assert kind(full) == FULL
    assert kind(gone) == AWAY
    try:
        raise RuntimeError("while saving") from full
    except RuntimeError as wrapped:
        assert kind(wrapped) == FULL
    assert kind(ValueError("a bug")) is None
