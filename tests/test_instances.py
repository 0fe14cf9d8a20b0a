"""Several processes on one database: a chat's updates one at a time, an outbox row sent by
one instance only and in order, a check-in opened once, one send budget for all."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from itertools import pairwise

import pytest
from sqlalchemy import select, update
from telegram.ext import ExtBot

from bot.telegram.delivery import Sender
from bot.telegram.pacing import LanePacer
from storage import Store
from storage.models import OutboxMessage
from tests.botapi_stub import BotApiStub
from tests.postgres import postgresql_only, sqlite_only

LEASE = timedelta(seconds=60)
CHAT = 4242


@pytest.fixture
def stores(database_url: str) -> Iterator[tuple[Store, Store]]:
    """Two processes' views of one database (two engines, two pools)."""
    first, second = Store.open(database_url), Store.open(database_url)
    try:
        yield first, second
    finally:
        first.dispose()
        second.dispose()


def queue(store: Store, *texts: str) -> None:
    with store.transaction() as repo:
        for text in texts:
            repo.outbox.add(CHAT, "send", {"text": text})


@postgresql_only
def test_a_chat_is_delivered_by_one_instance_at_a_time_and_in_order(
    stores: tuple[Store, Store],
) -> None:
    one, two = stores
    queue(one, "first", "second")
    with one.transaction() as repo:
        first = repo.outbox.claim_next(CHAT, "one", LEASE)
    with two.transaction() as repo:
        assert repo.outbox.claim_next(CHAT, "two", LEASE) is None, "the chat is one's now"
    assert first is not None and first.payload["text"] == "first"
    with one.transaction() as repo:
        again = repo.outbox.claim_next(CHAT, "one", LEASE)
        assert again is not None and again.id == first.id, "one may go on with it"
        repo.outbox.delivered(first.id, message_id=7)
    with two.transaction() as repo:
        nxt = repo.outbox.claim_next(CHAT, "two", LEASE)
    assert nxt is not None and nxt.payload["text"] == "second", "the next, in order"


@postgresql_only
def test_a_dead_instances_chat_is_taken_over_when_its_lease_ends(
    stores: tuple[Store, Store],
) -> None:
    one, two = stores
    queue(one, "only")
    with one.transaction() as repo:
        held = repo.outbox.claim_next(CHAT, "one", timedelta(seconds=-1))
        assert held is not None
    with one.transaction() as repo:  # one's send leaves, and one dies
        repo.outbox.going(held.id, 6, "one")
    with two.transaction() as repo:
        taken = repo.outbox.claim_next(CHAT, "two", LEASE)
    assert taken is not None and taken.payload["text"] == "only"
    assert (taken.claims, taken.probe_floor) == (1, 6), "two knows one may have sent it"


@postgresql_only
async def test_a_send_whose_row_another_instance_took_while_it_waited_does_not_leave(
    stores: tuple[Store, Store],
) -> None:
    """One's lease ran out while its send waited in a long queue, and two took the row over:
    two sends it, so one must not send it too."""
    one, two = stores
    with one.transaction() as repo:
        first = repo.outbox.add(CHAT + 1, "send", {"text": "first in the queue"})
        waits = repo.outbox.add(CHAT, "send", {"text": "waits its turn"})
    async with BotApiStub() as api:
        pacer = LanePacer(per_second=1, headroom=0)  # one call a second: the second waits
        async with ExtBot(api.token, base_url=api.base_url, rate_limiter=pacer) as bot:
            sender = Sender(bot, one, clock=lambda: datetime.now(UTC), instance="one")
            sender.wake([CHAT + 1])
            sender.wake([CHAT])  # its worker takes the row, then waits for its turn
            await api.wait_for_call("sendMessage", timeout=10)
            with two.engine.begin() as connection:  # one's lease runs out
                connection.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == waits)
                    .values(claimed_until=datetime.now(UTC) - timedelta(seconds=1))
                )
            with two.transaction() as repo:  # and two takes the row over
                assert repo.outbox.claim_next(CHAT, "two", LEASE) is not None
            await sender.settled()
        assert [c.params["chat_id"] for c in api.calls_of("sendMessage")] == [CHAT + 1]
    with one.engine.connect() as connection:
        rows = dict(
            connection.execute(
                select(OutboxMessage.id, OutboxMessage.claimed_by).where(
                    OutboxMessage.id.in_((first, waits))
                )
            ).all()
        )
    assert rows == {first: None, waits: "two"}, "two holds it, unsent and uncounted"


@sqlite_only
def test_on_sqlite_a_restarted_bot_sends_what_its_killed_self_had_leased_at_once(
    stores: tuple[Store, Store],
) -> None:
    killed, restarted = stores  # one process per SQLite file: the second is the first, later
    queue(killed, "held when killed")
    with killed.transaction() as repo:
        held = repo.outbox.claim_next(CHAT, "killed", LEASE)
        assert held is not None
    with killed.transaction() as repo:  # its send leaves, and the bot is killed
        repo.outbox.going(held.id, 6, "killed")
    with restarted.transaction() as repo:
        again = repo.outbox.claim_next(CHAT, "restarted", LEASE)
    assert again is not None and again.payload["text"] == "held when killed"
    assert again.claims == 1, "the restarted bot knows it may have been sent"


@postgresql_only
def test_a_chats_updates_wait_for_each_other_across_processes(
    stores: tuple[Store, Store],
) -> None:
    one, two = stores
    order: list[str] = []
    holding = threading.Event()

    def first() -> None:
        with one.transaction() as repo:
            repo.lock_chat(CHAT)
            holding.set()
            time.sleep(0.3)  # a slow update in another process (not a wait for a result)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    assert holding.wait(10)
    with two.transaction() as repo:
        repo.lock_chat(CHAT)
        order.append("second in")
    thread.join(10)
    assert order == ["first done", "second in"]
    with two.transaction() as repo:  # another chat is not held up
        repo.lock_chat(CHAT + 1)


@postgresql_only
def test_the_send_budget_is_shared_by_every_instance(stores: tuple[Store, Store]) -> None:
    one, two = stores
    gap = timedelta(seconds=1 / 30)
    slots = []
    for store in (one, two, one, two, one, two):
        with store.transaction() as repo:
            wait = repo.outbox.reserve_send(gap)
        slots.append(time.monotonic() + wait)
    # Six sends back to back, from two processes: no two closer than one slot apart.
    apart = [later - earlier for earlier, later in pairwise(slots)]
    assert min(apart) >= gap.total_seconds() - 0.005, apart


def test_two_instances_opening_the_same_check_in_open_it_once(
    stores: tuple[Store, Store],
) -> None:
    one, two = stores
    now = datetime(2026, 11, 30, 20, 5, tzinfo=UTC)
    with one.transaction() as repo:
        user = repo.user("telegram", str(CHAT))
        repo.diary.set_schedule(
            user.id,
            local_time=clock_time(21, 0),
            zone="Europe/Berlin",
            now=now - timedelta(hours=2),
        )
    with one.transaction() as repo:
        [due] = repo.diary.due(now)
    assert due.next_night == date(2026, 11, 30)
    opened = []
    for store in (one, two):  # both read the same due schedule before either opened it
        with store.transaction() as repo:
            opened.append(
                repo.diary.open_checkin(due.user_id, due.next_night, due.next_due_at, now)
            )
    assert [c is not None for c in opened] == [True, False]
    with two.transaction() as repo:
        assert len(repo.diary.checkins(due.user_id)) == 1
