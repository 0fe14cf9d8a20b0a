"""Issue 10's acceptance: three instances on one PostgreSQL, behind the stand-in's webhook
delivery, one of them killed with SIGKILL 20 times while people tap and check-ins fall due.

Result: no reply lost or shown twice (a send applied just before a kill is found by the
taking-over instance's probe, see `bot/telegram/delivery.py`), no answer applied twice, every
due check-in sent exactly once, and nobody left without their next question.
"""

from __future__ import annotations

import asyncio
import random
import socket
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage import Store
from tests.botapi_stub import BotApiStub
from tests.postgres import postgresql_only
from tests.test_crash_delivery import (
    STEP_TIMEOUT,
    Findings,
    Kill,
    Person,
    check_database,
    check_living_message,
    check_sends,
    check_toasts,
    check_violations,
    converse,
    make_people,
    seed,
)
from tests.test_telegram_restart import BotProcess

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

INSTANCES = 3
KILLS = 20
CHECK_INS = 30
FIRST_DIARY_CHAT = 820_001
SECRET = "several-instances-secret"
PATH = "/telegram/hook"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def seed_check_ins(database_url: str) -> list[int]:
    """People whose nightly check-in is due as the instances start (set up an hour ago)."""
    now = datetime.now(UTC)
    due = (now - timedelta(minutes=10)).time().replace(second=0, microsecond=0)
    store = Store.open(database_url)
    chats = []
    try:
        with store.transaction() as repo:
            for i in range(CHECK_INS):
                chat = FIRST_DIARY_CHAT + i
                user = repo.user("telegram", str(chat))
                repo.update_user(user.id, consent_at=now - timedelta(days=1))
                repo.diary.set_schedule(
                    user.id, local_time=due, zone="UTC", now=now - timedelta(hours=1)
                )
                chats.append(chat)
        with store.transaction() as repo:
            assert len(repo.diary.due(now)) == CHECK_INS, "the seeded check-ins are due"
    finally:
        store.dispose()
    return chats


def instance(api: BotApiStub, tmp: Path, database_url: str, number: int) -> BotProcess:
    folder = tmp / f"instance{number}"
    folder.mkdir()
    process = BotProcess(api, folder, database_url)
    port = free_port()
    process.env |= {
        "WEBHOOK_URL": f"https://bot.test{PATH}",
        "WEBHOOK_SECRET": SECRET,
        "WEBHOOK_LISTEN": f"127.0.0.1:{port}",
        "INSTANCE_NAME": f"instance-{number}",
    }
    process.target = f"http://127.0.0.1:{port}{PATH}"  # type: ignore[attr-defined]
    process.health = f"http://127.0.0.1:{port}/healthz"
    return process


async def kill_and_restart(
    api: BotApiStub, bots: list[BotProcess], rng: random.Random
) -> list[Kill]:
    """SIGKILL a random instance at a random moment, start it again, 20 times."""
    kills = []
    for number in range(1, KILLS + 1):
        await asyncio.sleep(rng.uniform(0.1, 0.6))  # a random moment, mid-traffic
        victim = rng.choice(bots)
        kill = Kill(number, f"instance {bots.index(victim)}")
        kill.when = time.monotonic()
        await victim.kill()
        kill.at = api.mark()
        kills.append(kill)
        await victim.start()
        kill.restart = time.monotonic() - kill.when
    return kills


def findings(
    api: BotApiStub,
    database_url: str,
    people: list[Person],
    kills: list[Kill],
    diary_chats: list[int],
) -> Findings:
    """The crash test's checks, and every due check-in sent exactly once."""
    found = Findings()
    for person in people:
        check_sends(api, person, kills, found)
        check_living_message(api, person, found)
    check_toasts(api, people, found)
    check_violations(api, found)
    check_database(api, database_url, people, found)
    sent = Counter(
        int(c.params["chat_id"])
        for c in api.calls_of("sendMessage")
        if c.ok and int(c.params["chat_id"]) in diary_chats
    )
    if sent != Counter(diary_chats):
        found.errors.append(f"check-ins not sent exactly once: {sent}")
    return found


@postgresql_only
async def test_three_instances_one_killed_20_times_lose_and_repeat_nothing(
    tmp_path: Path, database_url: str
) -> None:
    chosen = seed()
    rng = random.Random(chosen)
    replay = f"seed {chosen}"
    people = make_people(rng)
    diary_chats = seed_check_ins(database_url)
    kills: list[Kill] = []
    async with BotApiStub() as api:
        bots = [instance(api, tmp_path, database_url, n) for n in range(INSTANCES)]
        stop = asyncio.Event()
        delivery: asyncio.Task[None] | None = None
        try:
            for bot in bots:
                await bot.start()
            targets = [bot.target for bot in bots]  # type: ignore[attr-defined]
            delivery = asyncio.create_task(api.deliver_webhooks(targets, secret=SECRET, stop=stop))
            talks = [asyncio.create_task(converse(api, p)) for p in people]
            try:
                kills = await kill_and_restart(api, bots, rng)
                # Every reply is to a tap, and each person waits for it: done talking, all seen.
                await asyncio.wait_for(asyncio.gather(*talks), 180)
                for chat in diary_chats:  # every check-in that fell due, sent
                    await api.wait_for_message(chat, timeout=STEP_TIMEOUT)
            except (AssertionError, TimeoutError) as exc:
                stuck = [p for p in people if not p.done]
                detail = "\n".join(f"chat {p.chat}:\n{api.transcript(p.chat)}" for p in stuck[:3])
                raise AssertionError(f"{replay}: {exc}\n{detail}") from exc
            finally:
                for task in talks:
                    task.cancel()
                await asyncio.gather(*talks, return_exceptions=True)
            for bot in bots:
                assert await bot.terminate() == 0, replay
        finally:
            stop.set()
            if delivery is not None:
                await delivery
            for bot in bots:
                if bot.process is not None and bot.process.returncode is None:
                    await bot.kill()

    found = findings(api, database_url, people, kills, diary_chats)
    retried = sum(1 for _, _, status in api.webhook_attempts if status != 200)
    summary = (
        f"{replay}: {len(kills)} kills over {INSTANCES} instances, "
        f"{sum(len(p.taps) for p in people)} presses, {len(api.webhook_attempts)} webhook posts "
        f"({retried} sent again to another instance), {len(found.send_repeats)} sends repeated "
        f"in the kill window (must be 0), {found.probes} probe misses"
    )
    print(summary, *found.send_repeats, sep="\n  ")
    assert not found.errors, summary + "\n" + "\n".join(found.errors)
    for bot in bots:
        assert "Traceback" not in bot.logs(), replay
