"""The outbox's memory of what reached Telegram: sends that left counted, the newest id of each chat
kept through pruning, and the sender's probe for a send an earlier try may have made, with
message ids numbered as Telegram numbers them (one counter for all of a bot's private chats)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from telegram import InlineKeyboardMarkup
from telegram.ext import ExtBot

from bot.telegram.delivery import LEASE, MAX_PROBES, PROBE_BATCH, PROBE_IDS, BuiltFile, Sender
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


def test_what_the_erasing_transaction_queues_to_the_chat_is_deleted_once_delivered(
    store: Store,
) -> None:
    kept = deliver(store, OTHER, 3)
    with store.transaction() as repo:
        repo.outbox.forget_chat(CHAT)
        confirmation = repo.outbox.add(CHAT, "edit", {"text": "erased", "message_id": 9})
        other = repo.outbox.add(OTHER, "send", {"text": "not erased"})
    with store.transaction() as repo:
        row = repo.outbox.claim_next(CHAT, "one", LEASE)
        assert row is not None and row.id == confirmation and row.payload["forget"] is True
        assert "forget" not in (repo.outbox.claim_next(OTHER, "one", LEASE) or row).payload
        repo.outbox.delivered(row.id, message_id=9, forget=True)
    assert row_ids(store) == {kept, other}
    with store.transaction() as repo:  # a later transaction writes to the chat as usual
        later = repo.outbox.add(CHAT, "send", {"text": "hello again"})
        assert "forget" not in (repo.outbox.claim_next(CHAT, "one", LEASE) or row).payload
    assert later in row_ids(store)


def test_only_a_send_that_left_counts_and_a_429_takes_it_back(store: Store) -> None:
    with store.transaction() as repo:
        repo.outbox.add(CHAT, "send", {"text": "x"})
        first = repo.outbox.claim_next(CHAT, "one", LEASE)
        assert first is not None and first.claims == 0, "taking a row sends nothing yet"
        again = repo.outbox.claim_next(CHAT, "one", LEASE)
        assert again is not None and again.claims == 0, "killed while it waited its turn"
        repo.outbox.going(again.id, 5, "one")
        repo.outbox.retry_later(again.id, NOW, unsent=True)  # a 429: nothing was applied
        third = repo.outbox.claim_next(CHAT, "one", LEASE)
        assert third is not None and third.claims == 0, "the refused send is not counted"
        repo.outbox.going(third.id, 6, "one")
        repo.outbox.retry_later(third.id, NOW)  # a lost answer: it may have been applied
        fourth = repo.outbox.claim_next(CHAT, "one", LEASE)
        assert fourth is not None and fourth.claims == 1


def test_each_send_that_leaves_sets_the_floor_and_starts_the_count_of_probes_afresh(
    store: Store,
) -> None:
    """A later send takes an id above every id known as it leaves: a probe for it looks
    there, with a fresh count (what the probe asked about an earlier send is not about it)."""
    with store.transaction() as repo:
        row = repo.outbox.add(CHAT, "send", {"text": "x"})
        unknown = repo.outbox.add(OTHER, "send", {"text": "y"})
        for chat in (CHAT, OTHER):
            assert repo.outbox.claim_next(chat, "one", LEASE) is not None
        assert repo.outbox.going(row, 5, "one") and repo.outbox.going(unknown, None, "one")
        repo.outbox.probed(row, frozenset({6, 7}), (9,))
        first = repo.outbox.claim_next(CHAT, "one", LEASE)
        assert first is not None and (first.probe_floor, first.probe_tries) == (5, 3)
        repo.outbox.going(row, 12, "one")
        again = repo.outbox.claim_next(CHAT, "one", LEASE)
        assert again is not None and (again.claims, again.probe_floor, again.probed) == (
            2,
            12,
            None,
        )
        other = repo.outbox.claim_next(OTHER, "one", LEASE)
        assert other is not None and (other.claims, other.probe_floor) == (1, None)


def test_a_send_may_leave_only_while_its_instance_holds_the_row(store: Store) -> None:
    """A lease that ran out while the send waited its turn, and another instance took the
    row over: the first must not send it too (nor count it)."""
    with store.transaction() as repo:
        row = repo.outbox.add(CHAT, "send", {"text": "x"})
        assert repo.outbox.claim_next(CHAT, "one", timedelta(seconds=-1)) is not None
        assert repo.outbox.claim_next(CHAT, "two", LEASE) is not None
        assert not repo.outbox.going(row, 5, "one")
        assert repo.outbox.going(row, 5, "two")
        repo.outbox.delivered(row, message_id=6)
        assert not repo.outbox.going(row, 6, "two"), "delivered meanwhile"


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


def queue(
    sender: Sender,
    payload: dict[str, Any],
    *,
    claimed_before: bool,
    floor: bool = True,
    chat: int = CHAT,
) -> int:
    """A send row; `claimed_before`: an earlier try let its send go (and then died), knowing
    the highest id recorded then (`floor`) as a sender does."""
    with sender.store.transaction() as repo:
        row_id = repo.outbox.add(chat, "send", payload)
        if claimed_before:
            highest = repo.outbox.highest_message_id() if floor else None
            assert repo.outbox.claim_next(chat, "dead", LEASE) is not None
            repo.outbox.going(row_id, highest, "dead")
    return row_id


async def bot_sends(sender: Sender, text: str, *, record: bool, chat: int = CHAT) -> int:
    """The bot sends `text` with the test's buttons; `record`: as a delivered outbox row."""
    message = await sender.bot.send_message(
        chat, text, parse_mode="HTML", reply_markup=InlineKeyboardMarkup.de_json(MARKUP, None)
    )
    if record:
        with sender.store.transaction() as repo:
            row_id = repo.outbox.add(chat, "send", {"text": text})
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
    first, *round_two = probes(api, mark)  # the likeliest alone, then PROBE_BATCH at once
    assert first[0] == typed and "message can't be edited" in first[1]
    assert lost in [i for i, _ in round_two] and len(round_two) <= PROBE_BATCH
    assert all("message to edit not found" in answer for i, answer in round_two if i != lost)
    assert sends(api, mark) == []
    assert recorded(sender, row) == ("sent", lost)


async def test_with_nothing_else_sent_a_send_that_never_reached_telegram_goes_after_a_few_probes(
    api: BotApiStub, sender: Sender
) -> None:
    asked = api.feed_message(CHAT, "/start")["message"]["message_id"]
    row = queue(sender, {"text": TEXT, "markup": MARKUP, "after": asked}, claimed_before=True)
    mark = api.mark()
    await deliver_now(sender)
    tried = probes(api, mark)
    assert [i for i, _ in tried] == list(range(asked + 1, asked + 1 + PROBE_IDS))
    assert all("message to edit not found" in answer for _, answer in tried)
    assert sends(api, mark) == [asked + 1]
    assert recorded(sender, row) == ("sent", asked + 1)


async def test_a_probe_cut_short_by_restarts_makes_at_most_max_probes_edits_in_all(
    api: BotApiStub, sender: Sender
) -> None:
    """Asks above the highest known id are asked again in a later run (a call applied late may
    take one), but each counts: with kills every few seconds, repeating them in every run had
    kept a person's introduction from ever going out."""
    asked = api.feed_message(CHAT, "/start")["message"]["message_id"]
    row = queue(sender, {"text": TEXT, "markup": MARKUP, "after": asked}, claimed_before=True)
    earlier = tuple(range(asked + 1, asked + MAX_PROBES - 1))  # asked by runs that were killed
    with sender.store.transaction() as repo:
        repo.outbox.probed(row, frozenset(), earlier)
    mark = api.mark()
    await deliver_now(sender)
    assert len(probes(api, mark)) == MAX_PROBES - len(earlier) == 2
    assert sends(api, mark) == [asked + 1]
    assert recorded(sender, row) == ("sent", asked + 1)


async def test_a_send_made_after_a_spent_probe_and_lost_in_turn_is_found_not_sent_again(
    api: BotApiStub, sender: Sender
) -> None:
    """The probe ends with its count spent and sends; a kill then comes before "delivered" is
    committed. The next probe looks above the ids known when that send started, with a fresh
    count, so it finds it (with the old count, it had sent it a third time unseen)."""
    asked = api.feed_message(CHAT, "/start")["message"]["message_id"]
    row = queue(sender, {"text": TEXT, "markup": MARKUP, "after": asked}, claimed_before=True)
    with sender.store.transaction() as repo:
        repo.outbox.probed(row, frozenset(), tuple(range(asked + 100, asked + 100 + MAX_PROBES)))
    await bot_sends(sender, "Elsewhere", record=True, chat=OTHER)  # ids go on meanwhile
    with sender.store.engine.connect() as connection:
        payload = connection.execute(
            select(OutboxMessage.payload).where(OutboxMessage.id == row)
        ).scalar_one()
    mark = api.mark()
    await deliver_now(sender)
    [sent] = sends(api, mark)
    assert probes(api, mark) == [], "the count was spent"
    with sender.store.engine.begin() as connection:  # the kill: "delivered" never committed
        connection.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row)
            .values(delivered_at=None, message_id=None, outcome=None, claims=3, payload=payload)
        )
    restarted = Sender(sender.bot, sender.store, clock=lambda: datetime.now(UTC))
    mark = api.mark()
    await deliver_now(restarted)
    assert sends(api, mark) == [], "not sent again"
    [(probed, answer)] = probes(api, mark)
    assert probed == sent and "message is not modified" in answer
    assert recorded(sender, row) == ("sent", sent)


async def test_other_chats_ids_are_skipped_and_the_lost_send_found_between_them(
    api: BotApiStub, sender: Sender
) -> None:
    """Telegram's numbering: ids in a chat jump by what other chats exchanged meanwhile."""
    await bot_sends(sender, "Hello", record=True)
    await bot_sends(sender, "Hi there", record=True, chat=OTHER)
    row = queue(sender, {"text": TEXT, "markup": MARKUP}, claimed_before=True)
    await bot_sends(sender, "Meanwhile", record=True, chat=OTHER)
    lost = await bot_sends(sender, TEXT, record=False)  # applied; the bot died unaware
    later = await bot_sends(sender, "And later", record=True, chat=OTHER)
    mark = api.mark()
    await deliver_now(sender)
    assert probes(api, mark) == [(lost, probes(api, mark)[0][1])]
    assert "message is not modified" in probes(api, mark)[0][1] and later == lost + 1
    assert sends(api, mark) == []
    assert recorded(sender, row) == ("sent", lost)


async def test_the_ids_of_messages_people_sent_that_the_bot_replied_to_are_skipped(
    api: BotApiStub, sender: Sender
) -> None:
    """A restarted bot knows them from the outbox, the rows still queued included."""
    await bot_sends(sender, "Hello", record=True)
    row = queue(sender, {"text": TEXT, "markup": MARKUP}, claimed_before=True)
    typed = api.feed_message(OTHER, "/start")["message"]["message_id"]
    queue(sender, {"text": "Welcome", "after": typed}, claimed_before=False, chat=OTHER)
    lost = await bot_sends(sender, TEXT, record=False)
    mark = api.mark()
    sender.wake([CHAT])
    await sender.settled()
    assert [i for i, _ in probes(api, mark)] == [lost] and typed == lost - 1
    assert recorded(sender, row) == ("sent", lost)


async def test_a_lost_send_the_person_already_pressed_a_button_on_is_found_first(
    api: BotApiStub, sender: Sender
) -> None:
    await bot_sends(sender, "Hello", record=True)
    row = queue(sender, {"text": TEXT, "markup": MARKUP}, claimed_before=True)
    for chat in (OTHER, OTHER + 1):  # ids the bot does not know, before the lost send
        api.feed_message(chat, "hi")
    lost = await bot_sends(sender, TEXT, record=False)
    queue(sender, {"text": "Next, after the press", "after": lost}, claimed_before=False)
    mark = api.mark()
    await deliver_now(sender)
    assert [i for i, _ in probes(api, mark)] == [lost], "the pressed message first"
    assert recorded(sender, row) == ("sent", lost)
    assert [m.plain_text for m in api.messages(CHAT)].count("Next question") == 1


async def test_a_send_this_process_made_since_bounds_the_probe(
    api: BotApiStub, sender: Sender
) -> None:
    await bot_sends(sender, "Hello", record=True)
    row = queue(sender, {"text": TEXT, "markup": MARKUP}, claimed_before=True)
    fresh = queue(sender, {"text": "for someone else"}, claimed_before=False, chat=OTHER)
    mark = api.mark()
    sender.wake([CHAT])  # the probe begins, then another chat's send starts
    sender.wake([OTHER])
    await sender.settled()
    assert recorded(sender, fresh)[0] == "sent"
    tried = [i for i, _ in probes(api, mark)]
    assert 0 < len(tried) < PROBE_IDS, "without that send, it would try PROBE_IDS ids"
    assert recorded(sender, row)[0] == "sent"
    assert [m.plain_text for m in api.messages(CHAT)].count("Next question") == 1


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


async def test_a_document_that_reached_telegram_is_found_by_its_caption_not_sent_again(
    api: BotApiStub, sender: Sender
) -> None:
    async def make_file(_chat: int, recipe: dict[str, Any]) -> BuiltFile:
        return BuiltFile(b'{"nights": []}', "nightlegs.json", caption=recipe["caption"])

    sender.make_file = make_file
    await bot_sends(sender, "Hello", record=True)
    await bot_sends(sender, "Hi there", record=True, chat=OTHER)
    with sender.store.transaction() as repo:
        row = repo.outbox.add(CHAT, "file", {"recipe": {"caption": "Your data, all of it"}})
        assert repo.outbox.claim_next(CHAT, "dead", LEASE) is not None
        repo.outbox.going(row, repo.outbox.highest_message_id(), "dead")
    lost = await sender.bot.send_document(
        CHAT, b"{}", filename="x.json", caption="Your data, all of it"
    )
    mark = api.mark()
    await deliver_now(sender)
    captions = [c for c in api.calls[mark:] if c.method == "editMessageCaption"]
    assert [int(c.params["message_id"]) for c in captions] == [lost.message_id]
    assert "message is not modified" in (captions[0].description or "")
    assert api.calls_of("sendDocument")[-1].index < mark, "not sent a second time"
    assert recorded(sender, row) == ("sent", lost.message_id)


async def test_a_send_counts_as_gone_before_it_leaves_and_one_that_never_left_needs_no_probe(
    api: BotApiStub, sender: Sender
) -> None:
    """A kill while a send waits its turn (under load, behind everyone's calls) leaves a row
    taken but never sent: it goes without a probe. One that left is probed for."""
    asked = api.feed_message(CHAT, "/start")["message"]["message_id"]
    await bot_sends(sender, "Hello", record=True)
    waited = queue(sender, {"text": TEXT, "markup": MARKUP, "after": asked}, claimed_before=False)
    with sender.store.transaction() as repo:  # taken by a bot killed before its turn came
        assert repo.outbox.claim_next(CHAT, "dead", LEASE) is not None
    hold = api.hold_next("sendMessage", chat_id=CHAT)
    mark = api.mark()
    sender.wake([CHAT])
    held = await api.wait_for_hold(hold, timeout=10)
    with sender.store.engine.connect() as connection:  # the call is at Telegram, unanswered
        claims, floor = connection.execute(
            select(OutboxMessage.claims, OutboxMessage.probe_floor).where(
                OutboxMessage.id == waited
            )
        ).one()
    assert (claims, floor) == (1, asked + 1), "committed before it left, with the floor"
    hold.release()
    await sender.settled()
    assert probes(api, mark) == [] and sends(api, mark) == [held.result["message_id"]]
    assert recorded(sender, waited) == ("sent", asked + 2)
