"""The outbox's memory of what reached Telegram: claims counted, the newest id of each chat
kept through pruning, and the sender's probe for a send an earlier try may have made."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from telegram import InlineKeyboardMarkup
from telegram.ext import ExtBot

from bot.telegram.delivery import LEASE, Sender
from bot.telegram.pacing import LanePacer
from storage import Store
from storage.models import OutboxMessage
from storage.outbox import PRUNE_LOOKBACK
from tests.botapi_stub import BotApiStub

CHAT = 5151
OTHER = 5252
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
TEXT = "<b>Next question</b>"
MARKUP = {"inline_keyboard": [[{"text": "Yes", "callback_data": "y"}]]}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


# --- storage ------------------------------------------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(database_url: str, clock: Clock) -> Iterator[Store]:
    store = Store.open(database_url, clock=clock)
    yield store
    store.dispose()


def deliver(store: Store, chat: int, message_id: int | None, kind: str = "send") -> int:
    with store.transaction() as repo:
        row_id = repo.outbox.add(chat, kind, {"text": "x"})
        repo.outbox.delivered(row_id, message_id=message_id)
    return row_id


def row_ids(store: Store) -> set[int]:
    with store.engine.connect() as connection:
        return set(connection.scalars(select(OutboxMessage.id)))


def test_prune_keeps_each_chats_highest_message_id_and_deletes_the_rest(
    store: Store, clock: Clock
) -> None:
    old = [deliver(store, CHAT, 10), deliver(store, CHAT, 11)]
    newest_by_id = deliver(store, CHAT, 4, kind="edit")  # an edit of an older message
    refused = deliver(store, CHAT, None)
    other = [deliver(store, OTHER, 3), deliver(store, OTHER, 5)]
    clock.now = NOW + timedelta(days=3)
    recent = deliver(store, OTHER, 6)
    with store.transaction() as repo:
        waiting = repo.outbox.add(CHAT, "send", {"text": "not yet"})
        assert repo.outbox.prune(NOW + timedelta(days=1)) == 5
    assert row_ids(store) == {old[1], recent, waiting}, "other chat: its newest is recent"
    assert not {newest_by_id, refused, *other} & row_ids(store)
    with store.transaction() as repo:
        assert repo.outbox.last_message_id(CHAT) == 11
        assert repo.outbox.last_message_id(OTHER) == 6
        assert repo.outbox.last_message_id(CHAT + 1) is None
        assert repo.outbox.prune(NOW + timedelta(days=1)) == 0, "the kept rows stay kept"


def test_prune_looks_only_at_chats_with_a_row_that_came_of_age_in_the_last_day(
    store: Store, clock: Clock
) -> None:
    older, newest = deliver(store, CHAT, 10), deliver(store, CHAT, 11)
    with store.transaction() as repo:  # the bot was away for the day these came of age
        assert repo.outbox.prune(NOW + PRUNE_LOOKBACK + timedelta(days=2)) == 0
    clock.now = NOW + timedelta(days=5)
    latest = deliver(store, CHAT, 12)
    with store.transaction() as repo:  # the chat's next row comes of age: all its old go
        assert repo.outbox.prune(NOW + timedelta(days=5, hours=1)) == 2
    assert row_ids(store) == {latest} and not {older, newest} & row_ids(store)


def test_forgetting_a_chat_deletes_its_kept_row_too(store: Store) -> None:
    deliver(store, CHAT, 10)
    kept = deliver(store, OTHER, 3)
    with store.transaction() as repo:
        repo.outbox.add(CHAT, "send", {"text": "queued"})
        assert repo.outbox.forget_chat(CHAT) == 2
        assert repo.outbox.last_message_id(CHAT) is None
    assert row_ids(store) == {kept}


def test_a_429_does_not_count_as_a_claim_that_may_have_reached_telegram(store: Store) -> None:
    with store.transaction() as repo:
        repo.outbox.add(CHAT, "send", {"text": "x"})
        first = repo.outbox.claim_next(CHAT, "one", LEASE)
        assert first is not None and first.claims == 1
        repo.outbox.retry_later(first.id, NOW, unsent=True)
        again = repo.outbox.claim_next(CHAT, "one", LEASE)
        assert again is not None and again.claims == 1, "the refused try is not counted"
        repo.outbox.retry_later(again.id, NOW)  # a lost answer: it may have been applied
        third = repo.outbox.claim_next(CHAT, "one", LEASE)
        assert third is not None and third.claims == 2


def test_a_delivered_row_is_never_claimed_again(store: Store) -> None:
    with store.transaction() as repo:
        repo.outbox.add(CHAT, "send", {"text": "x"})
        first = repo.outbox.claim_next(CHAT, "one", LEASE)
        assert first is not None
        repo.outbox.delivered(first.id, message_id=9)
        assert repo.outbox.claim_next(CHAT, "one", LEASE) is None


def test_prune_keeps_one_row_when_several_edits_recorded_the_same_id(
    store: Store, clock: Clock
) -> None:
    sent = deliver(store, CHAT, 7)
    edits = [deliver(store, CHAT, 7, kind="edit") for _ in range(3)]
    clock.now = NOW + timedelta(days=3)
    with store.transaction() as repo:
        assert repo.outbox.prune(NOW + timedelta(days=1)) == 3
        assert repo.outbox.last_message_id(CHAT) == 7
    assert row_ids(store) == {edits[-1]} and sent not in row_ids(store)


# --- the probe ----------------------------------------------------------------------------------


@pytest.fixture
async def api() -> AsyncIterator[BotApiStub]:
    async with BotApiStub() as api:
        yield api


@pytest.fixture
async def sender(api: BotApiStub, tmp_path: Path) -> AsyncIterator[Sender]:
    store = Store.open(f"sqlite:///{tmp_path / 'outbox.db'}")
    bot = ExtBot(api.token, base_url=api.base_url, rate_limiter=LanePacer())
    async with bot:
        yield Sender(bot, store, clock=lambda: datetime.now(UTC))
    store.dispose()


def queue(sender: Sender, payload: dict[str, Any], *, claimed_before: bool) -> int:
    """A send row; `claimed_before`: an earlier try took it (and then died)."""
    with sender.store.transaction() as repo:
        row_id = repo.outbox.add(CHAT, "send", payload)
        if claimed_before:
            assert repo.outbox.claim_next(CHAT, "dead", LEASE) is not None
    return row_id


async def bot_sends(sender: Sender, text: str, *, record: bool) -> int:
    """The bot sends `text` with the test's buttons; `record`: as a delivered outbox row."""
    message = await sender.bot.send_message(
        CHAT, text, parse_mode="HTML", reply_markup=InlineKeyboardMarkup.de_json(MARKUP, None)
    )
    if record:
        with sender.store.transaction() as repo:
            row_id = repo.outbox.add(CHAT, "send", {"text": text})
            repo.outbox.delivered(row_id, message_id=message.message_id)
    return message.message_id


async def deliver_now(sender: Sender) -> None:
    sender.wake([CHAT])
    await sender.settled()


def recorded(sender: Sender, row_id: int) -> tuple[str | None, int | None]:
    with sender.store.engine.connect() as connection:
        row = connection.execute(
            select(OutboxMessage.outcome, OutboxMessage.message_id).where(
                OutboxMessage.id == row_id
            )
        ).one()
    return row.outcome, row.message_id


def sends(api: BotApiStub, mark: int) -> list[int]:
    return [c.result["message_id"] for c in api.calls[mark:] if c.method == "sendMessage"]


def probes(api: BotApiStub, mark: int) -> list[tuple[int, str]]:
    return [
        (int(c.params["message_id"]), c.description or "ok")
        for c in api.calls[mark:]
        if c.method == "editMessageText"
    ]


async def test_a_send_that_reached_telegram_before_a_kill_is_recorded_not_sent_again(
    api: BotApiStub, sender: Sender
) -> None:
    asked = api.feed_message(CHAT, "/start")["message"]["message_id"]
    floor = await bot_sends(sender, "Hello", record=True)
    row = queue(sender, {"text": TEXT, "markup": MARKUP, "after": asked}, claimed_before=True)
    lost = await bot_sends(sender, TEXT, record=False)  # applied; the bot died unaware
    mark = api.mark()
    await deliver_now(sender)
    assert sends(api, mark) == [], "not sent a second time"
    [(probed, answer)] = probes(api, mark)
    assert probed == lost == floor + 1 and "message is not modified" in answer
    assert recorded(sender, row) == ("sent", lost)
    assert [m.plain_text for m in api.messages(CHAT)] == ["Hello", "Next question"]


async def test_the_persons_own_messages_after_the_floor_are_skipped(
    api: BotApiStub, sender: Sender
) -> None:
    api.feed_message(CHAT, "/start")
    floor = await bot_sends(sender, "Hello", record=True)
    typed = api.feed_message(CHAT, "and another thing")["message"]["message_id"]
    row = queue(sender, {"text": TEXT, "markup": MARKUP}, claimed_before=True)
    lost = await bot_sends(sender, TEXT, record=False)
    mark = api.mark()
    await deliver_now(sender)
    assert typed == floor + 1 and lost == floor + 2
    assert [i for i, _ in probes(api, mark)] == [typed, lost]
    assert "message can't be edited" in probes(api, mark)[0][1]
    assert sends(api, mark) == []
    assert recorded(sender, row) == ("sent", lost)


async def test_a_send_that_never_reached_telegram_is_sent_after_one_probe(
    api: BotApiStub, sender: Sender
) -> None:
    asked = api.feed_message(CHAT, "/start")["message"]["message_id"]
    row = queue(sender, {"text": TEXT, "markup": MARKUP, "after": asked}, claimed_before=True)
    mark = api.mark()
    await deliver_now(sender)
    [(probed, answer)] = probes(api, mark)
    assert probed == asked + 1 and "message to edit not found" in answer
    assert sends(api, mark) == [asked + 1]
    assert recorded(sender, row) == ("sent", asked + 1)


async def test_without_a_known_id_the_send_is_made_without_a_probe(
    api: BotApiStub, sender: Sender
) -> None:
    api.feed_message(CHAT, "/start")  # a check-in, say: no reply to anything, nothing recorded
    row = queue(sender, {"text": TEXT, "markup": MARKUP}, claimed_before=True)
    mark = api.mark()
    await deliver_now(sender)
    assert probes(api, mark) == []
    assert sends(api, mark) == [2]
    assert recorded(sender, row) == ("sent", 2)


async def test_a_first_try_costs_no_probe_and_a_429_leaves_no_doubt(
    api: BotApiStub, sender: Sender
) -> None:
    asked = api.feed_message(CHAT, "/start")["message"]["message_id"]
    await bot_sends(sender, "Hello", record=True)
    first = queue(sender, {"text": TEXT, "after": asked}, claimed_before=False)
    mark = api.mark()
    await deliver_now(sender)
    assert [c.method for c in api.calls[mark:]] == ["sendMessage"]
    assert recorded(sender, first)[0] == "sent"
    api.rate_limit_next("sendMessage", retry_after=1)
    second = queue(sender, {"text": "again", "after": asked}, claimed_before=False)
    mark = api.mark()
    await deliver_now(sender)  # the worker waits out the 429 itself, then sends
    assert [(c.method, c.status) for c in api.calls[mark:]] == [
        ("sendMessage", 429),
        ("sendMessage", 200),
    ]
    assert recorded(sender, second)[0] == "sent"
    assert api.violations == []
