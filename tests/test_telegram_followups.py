"""End to end: follow-ups after an `urgent` or `soon` result (spec v2 item 6) in Telegram.

The real application runs in-process against the Bot API stand-in with an injected clock that
the tests move by hand. The dispatchers' repeating jobs run on wall-clock time, so they are
switched off here and each test runs the follow-up dispatcher itself
(`RunningBot.dispatch_followups`) at the clock's "now", as its job would.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from jsonschema import Draft202012Validator

from bot.services.flow import Who
from bot.telegram import render as views
from bot.telegram.app import wiring
from bot.telegram.keys import FollowUpKey, MenuKey, encode
from dialogs.advice import AdviceBook
from dialogs.countries import EmergencyNumbers
from dialogs.followups import FollowUpBook
from dialogs.records import Conclusion
from dialogs.vocabulary import Pattern, Urgency
from storage.followups import FollowUp, FollowUpStatus
from tests.botapi_stub import BotApiStub, SentMessage
from tests.cases import CASES
from tests.clock import Clock
from tests.telegram_harness import CHAT, RunningBot
from tests.test_telegram_e2e import answer_all

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "docs/export.schema.json").read_text("utf-8"))
BERLIN = ZoneInfo("Europe/Berlin")
OTHER_CHAT = 5353

BOOK = FollowUpBook.load()
ADVICE = AdviceBook.load()
NUMBERS = EmergencyNumbers.load()
CASE = {c["id"]: c for c in CASES}
URGENT = CASE["rest_pain_burning_worse_raised"]["facts"]
SOON = CASE["classic_restless_legs"]["facts"]
SELF_CARE = CASE["classic_cramp"]["facts"]
LABELS = dict(BOOK.question(ADVICE.advise(Conclusion(Pattern.UNCLEAR, Urgency.SOON), {})).options)
HEADLINE = {u: ADVICE.advise(Conclusion(Pattern.UNCLEAR, u), {}).headline for u in Urgency}
CONSENT = "✅ OK, skip the country"
ERASE = "🗑 Yes, erase it all"
ASKED = "Have you been seen by a doctor since?"


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    """Wednesday 18 November 2026, 22:00 in Berlin."""
    clock = Clock(datetime(2026, 11, 18, 12, 0, tzinfo=UTC))
    clock.at(BERLIN, 2026, 11, 18, 22, 0)
    return clock


@pytest.fixture
async def api() -> AsyncIterator[BotApiStub]:
    async with BotApiStub() as stub:
        yield stub


async def start_bot(api: BotApiStub, db: str, clock: Clock) -> RunningBot:
    """A started bot whose dispatchers run only when the test says so."""
    mark = api.mark()
    running = await RunningBot(api, db, clock=clock).start()
    await api.wait_for_call("deleteWebhook", after=mark)  # on_ready has run by then
    assert running.application is not None and running.application.job_queue is not None
    for name in ("diary-dispatch", "followup-dispatch"):
        [job] = running.application.job_queue.get_jobs_by_name(name)
        job.enabled = False
    return running


async def finish(running: RunningBot, api: BotApiStub) -> None:
    await running.stop()
    assert api.unanswered_callbacks() == [], "a button press was left spinning"
    api.assert_no_violations()


@pytest.fixture
async def bot(api: BotApiStub, database_url: str, clock: Clock) -> AsyncIterator[RunningBot]:
    running = await start_bot(api, database_url, clock)
    try:
        yield running
    finally:
        await finish(running, api)


# --- reading the chat and the database ---------------------------------------------------------


def texts(messages: list[SentMessage]) -> list[str]:
    return [m.plain_text or "" for m in messages]


def with_button(api: BotApiStub, label: str, chat: int = CHAT) -> SentMessage:
    """The newest message of the chat that shows a button labelled `label`."""
    found = [m for m in api.messages(chat) if label in [text for text, _ in m.buttons]]
    assert found, f"no button {label!r}\n{api.transcript(chat)}"
    return found[-1]


async def press_on(bot: RunningBot, label: str, chat: int = CHAT) -> list[SentMessage]:
    """Press the button labelled `label` on the newest message that shows it."""
    return await bot.press(label, chat=chat, message=with_button(bot.api, label, chat))


def followups_sent(api: BotApiStub, chat: int = CHAT, mark: int = 0) -> list[str]:
    """The follow-up messages delivered to `chat` after `mark`, as sent."""
    return [
        c.params["text"]
        for c in api.calls[mark:]
        if c.method == "sendMessage"
        and c.ok
        and str(c.params.get("chat_id")) == str(chat)
        and ASKED in c.params["text"]
    ]


def user_id(bot: RunningBot, chat: int = CHAT) -> int:
    assert bot.core is not None
    with bot.core.store.transaction() as repo:
        info = repo.find_user("telegram", str(chat))
        assert info is not None
        return info.id


def stored(bot: RunningBot, chat: int = CHAT) -> list[FollowUp]:
    assert bot.core is not None
    uid = user_id(bot, chat)
    with bot.core.store.transaction() as repo:
        return repo.followups.of_user(uid)


def export(bot: RunningBot, chat: int = CHAT) -> dict[str, Any]:
    assert bot.core is not None
    data = bot.core.service.export(Who("telegram", str(chat)))
    assert data is not None
    return data


async def dispatch_at(bot: RunningBot, clock: Clock, zone: ZoneInfo, *args: int) -> int:
    clock.at(zone, *args)
    return await bot.dispatch_followups()


# --- acting like a person ----------------------------------------------------------------------


async def check(
    bot: RunningBot, facts: dict[str, Any], *, chat: int = CHAT, diary: str | None = None
) -> None:
    """Agree, optionally set the diary (its zone is the person's), and run a check to its
    result."""
    await bot.send("/start", chat=chat)
    await bot.press(CONSENT, chat=chat)
    if diary is not None:
        await bot.send(f"/diary {diary}", chat=chat)
        await bot.send("/check", chat=chat)
    await answer_all(bot, facts, chat)


async def urgent_accepted(bot: RunningBot, chat: int = CHAT) -> SentMessage:
    """An urgent result at 22:00 in Berlin (the diary's zone), follow-up accepted."""
    await check(bot, URGENT, chat=chat, diary="21:30 Europe/Berlin")
    [edited] = await press_on(bot, BOOK.yes_label, chat)
    return edited


# === the offer ===================================================================================


async def test_an_urgent_result_offers_a_follow_up_with_yes_and_no(
    bot: RunningBot, api: BotApiStub
) -> None:
    await check(bot, URGENT)
    offer = with_button(api, BOOK.yes_label)
    text = offer.plain_text or ""
    assert text.startswith(HEADLINE[Urgency.URGENT]), "the offer is on the result's message"
    assert text.endswith(BOOK.offer(Urgency.URGENT).text)  # type: ignore[union-attr]
    assert [text for text, _ in offer.buttons][:2] == [BOOK.yes_label, BOOK.no_label]
    assert api.messages(CHAT)[-1].message_id == offer.message_id, "no message of its own"
    [followup] = stored(bot)
    assert (followup.status, followup.urgency) == (FollowUpStatus.OFFERED, "urgent")


async def test_a_self_care_result_offers_no_follow_up(bot: RunningBot, api: BotApiStub) -> None:
    await check(bot, SELF_CARE)
    assert not any(BOOK.yes_label in [t for t, _ in m.buttons] for m in api.messages(CHAT))
    assert stored(bot) == []


async def test_accepting_reads_as_answered_and_stores_the_due_moment(
    bot: RunningBot, api: BotApiStub
) -> None:
    edited = await urgent_accepted(bot)
    text = edited.plain_text or ""
    assert text.startswith(HEADLINE[Urgency.URGENT]), "the result stays"
    assert text.endswith(BOOK.accepted)
    assert BOOK.offer(Urgency.URGENT).text not in text  # type: ignore[union-attr]
    labels = [t for t, _ in edited.buttons]
    assert BOOK.yes_label not in labels and BOOK.no_label not in labels and labels
    [followup] = stored(bot)
    assert followup.status is FollowUpStatus.ACCEPTED
    assert followup.zone == "Europe/Berlin"
    assert followup.due_at == datetime(2026, 11, 19, 9, 0, tzinfo=BERLIN)


# === sent once, at the right local time ========================================================


async def test_an_accepted_urgent_follow_up_is_sent_once_the_next_morning_local_time(
    bot: RunningBot, api: BotApiStub, clock: Clock
) -> None:
    await urgent_accepted(bot)
    mark = api.mark()
    assert await dispatch_at(bot, clock, BERLIN, 2026, 11, 19, 2, 0) == 0
    assert await dispatch_at(bot, clock, BERLIN, 2026, 11, 19, 8, 59) == 0
    assert followups_sent(api, mark=mark) == []

    assert await dispatch_at(bot, clock, BERLIN, 2026, 11, 19, 9, 0) == 1
    [sent] = followups_sent(api, mark=mark)
    assert HEADLINE[Urgency.URGENT] in sent
    message = api.last_message(CHAT)
    assert message is not None
    assert [t for t, _ in message.buttons] == list(LABELS.values())
    for _ in range(2):  # again at once, and in the following days: nothing more
        assert await bot.dispatch_followups() == 0
    for day in (20, 21):
        assert await dispatch_at(bot, clock, BERLIN, 2026, 11, day, 9, 0) == 0
    assert len(followups_sent(api, mark=mark)) == 1
    [followup] = stored(bot)
    assert followup.status is FollowUpStatus.SENT
    assert followup.sent_at == datetime(2026, 11, 19, 9, 0, tzinfo=BERLIN)


async def test_a_soon_follow_up_comes_a_few_days_later_in_the_evening(
    bot: RunningBot, api: BotApiStub, clock: Clock
) -> None:
    await check(bot, SOON, diary="21:30 Europe/Berlin")
    offer = with_button(api, BOOK.yes_label)
    assert (offer.plain_text or "").endswith(BOOK.offer(Urgency.SOON).text)  # type: ignore[union-attr]
    await press_on(bot, BOOK.yes_label)
    mark = api.mark()
    for day in (19, 20):
        assert await dispatch_at(bot, clock, BERLIN, 2026, 11, day, 18, 0) == 0
    assert await dispatch_at(bot, clock, BERLIN, 2026, 11, 21, 17, 59) == 0
    assert await dispatch_at(bot, clock, BERLIN, 2026, 11, 21, 18, 0) == 1
    [sent] = followups_sent(api, mark=mark)
    assert HEADLINE[Urgency.SOON] in sent
    [followup] = stored(bot)
    assert followup.due_at == datetime(2026, 11, 21, 18, 0, tzinfo=BERLIN)


async def test_declining_sends_nothing(bot: RunningBot, api: BotApiStub, clock: Clock) -> None:
    await check(bot, URGENT, diary="21:30 Europe/Berlin")
    [edited] = await press_on(bot, BOOK.no_label)
    text = edited.plain_text or ""
    assert text.startswith(HEADLINE[Urgency.URGENT]) and text.endswith(BOOK.declined)
    mark = api.mark()
    for day in range(19, 26):
        await dispatch_at(bot, clock, BERLIN, 2026, 11, day, 9, 0)
        await dispatch_at(bot, clock, BERLIN, 2026, 11, day, 18, 0)
    assert followups_sent(api, mark=mark) == []
    [followup] = stored(bot)
    assert followup.status is FollowUpStatus.DECLINED and followup.due_at is None


async def test_without_a_diary_the_country_gives_the_zone_even_when_chosen_after_accepting(
    bot: RunningBot, api: BotApiStub, clock: Clock
) -> None:
    await bot.send("/start")
    await bot.press(CONSENT)
    await answer_all(bot, URGENT, language_code="en-GB")
    await press_on(bot, BOOK.yes_label)
    [followup] = stored(bot)
    assert followup.zone is None, "no zone known yet: timed in UTC for now"
    assert followup.due_at == datetime(2026, 11, 19, 9, 0, tzinfo=UTC)
    [settings] = await bot.send("/settings")  # the country, chosen after the offer
    await bot.press("🌍 Change country", message=settings)
    await bot.press("Germany", message=settings)

    mark = api.mark()
    assert await dispatch_at(bot, clock, BERLIN, 2026, 11, 19, 8, 59) == 0
    [followup] = stored(bot)
    assert followup.zone == "Europe/Berlin"
    assert followup.due_at == datetime(2026, 11, 19, 9, 0, tzinfo=BERLIN)
    assert await dispatch_at(bot, clock, BERLIN, 2026, 11, 19, 9, 0) == 1
    assert len(followups_sent(api, mark=mark)) == 1


# === across a restart =========================================================================


async def test_sent_exactly_once_across_restarts(
    api: BotApiStub, database_url: str, clock: Clock
) -> None:
    running = await start_bot(api, database_url, clock)
    try:
        await urgent_accepted(running)
        mark = api.mark()
        # A restart between accepting and the morning: the follow-up is a row, not a job.
        await running.stop()
        running = await start_bot(api, database_url, clock)
        assert await dispatch_at(running, clock, BERLIN, 2026, 11, 19, 8, 30) == 0

        # Killed right after the dispatcher committed, before the sender ran: the queued
        # message goes out when the bot starts again, and is not queued a second time.
        clock.at(BERLIN, 2026, 11, 19, 9, 0)
        parts = wiring(running.application)
        parts.followups.wake = lambda _chats, **_how: None  # the sender never hears of it
        assert parts.followups.dispatch() == 1
        await running.kill()
        assert followups_sent(api, mark=mark) == []
        running = await start_bot(api, database_url, clock)
        await api.wait_for_message(CHAT, lambda m: ASKED in (m.plain_text or ""), after=mark)
        await running.settled()
        assert len(followups_sent(api, mark=mark)) == 1
        for minutes in (0, 1, 30):
            clock.at(BERLIN, 2026, 11, 19, 9, minutes)
            assert await running.dispatch_followups() == 0
        await running.stop()
        running = await start_bot(api, database_url, clock)
        assert await dispatch_at(running, clock, BERLIN, 2026, 11, 20, 9, 0) == 0
        assert len(followups_sent(api, mark=mark)) == 1

        # and it can be answered after the restart
        shown = await press_on(running, LABELS["seen"])
        assert texts(shown)[-1] == BOOK.reply("seen", _advice(Urgency.URGENT)).text
    finally:
        await finish(running, api)


# === the answers ================================================================================


def _advice(urgency: Urgency) -> Any:
    return ADVICE.advise(Conclusion(Pattern.UNCLEAR, urgency), {})


async def sent_followup(bot: RunningBot, clock: Clock) -> SentMessage:
    await urgent_accepted(bot)
    assert await dispatch_at(bot, clock, BERLIN, 2026, 11, 19, 9, 0) == 1
    return with_button(bot.api, LABELS["seen"])


async def test_seen_is_recorded_and_thanked(bot: RunningBot, api: BotApiStub, clock: Clock) -> None:
    question = await sent_followup(bot, clock)
    clock.at(BERLIN, 2026, 11, 19, 9, 20)
    shown = await press_on(bot, LABELS["seen"])
    edited, thanks = shown
    assert edited.message_id == question.message_id and edited.buttons == []
    assert (edited.plain_text or "").endswith(f"➡️ {LABELS['seen']}")
    assert thanks.plain_text == BOOK.reply("seen", _advice(Urgency.URGENT)).text
    assert thanks.buttons == []
    [followup] = stored(bot)
    assert (followup.status, followup.answer) == (FollowUpStatus.ANSWERED, "seen")
    assert followup.answered_at == datetime(2026, 11, 19, 9, 20, tzinfo=BERLIN)


async def test_not_yet_restates_the_advice_and_offers_a_new_check(
    bot: RunningBot, api: BotApiStub, clock: Clock
) -> None:
    await sent_followup(bot, clock)
    shown = await press_on(bot, LABELS["not_yet"])
    reply = shown[-1]
    text = reply.plain_text or ""
    [conversation] = [c for c in export(bot)["conversations"] if c["conclusion"]]
    conclusion = conversation["conclusion"]
    advice = ADVICE.advise(
        Conclusion(
            Pattern(conclusion["pattern"]),
            Urgency(conclusion["urgency"]),
            tuple(conclusion["red_flags"]),
        ),
        conversation["findings"],
        urgent_care=NUMBERS.urgent_care(None),
    )
    assert advice.headline in text and advice.action in text
    assert text == BOOK.reply("not_yet", advice).text
    assert [t for t, _ in reply.buttons] == [BOOK.new_check_label]
    [followup] = stored(bot)
    assert followup.answer == "not_yet"


async def test_things_changed_offers_a_new_check_that_starts_one(
    bot: RunningBot, api: BotApiStub, clock: Clock
) -> None:
    await sent_followup(bot, clock)
    shown = await press_on(bot, LABELS["changed"])
    assert shown[-1].plain_text == BOOK.reply("changed", _advice(Urgency.URGENT)).text
    [(_, data)] = shown[-1].buttons
    assert data == encode(MenuKey("new"))
    shown = await press_on(bot, BOOK.new_check_label)
    first = bot.core.flow.content.questions[0]  # type: ignore[union-attr]
    assert first.text in (shown[-1].plain_text or "")
    [followup] = stored(bot)
    assert followup.answer == "changed"


async def test_a_second_tap_on_an_answer_changes_nothing(
    bot: RunningBot, api: BotApiStub, clock: Clock
) -> None:
    question = await sent_followup(bot, clock)
    await press_on(bot, LABELS["seen"])
    data = encode(FollowUpKey(stored(bot)[0].id, "not_yet"))
    mark = api.mark()
    update = api.feed_callback(CHAT, question.message_id, data)
    await bot.feed(update)
    assert bot.toasts(mark) == [views.ALREADY]
    assert stored(bot)[0].answer == "seen"


async def test_someone_elses_follow_up_button_does_nothing(
    bot: RunningBot, api: BotApiStub, clock: Clock
) -> None:
    await sent_followup(bot, clock)
    await bot.send("/start", chat=OTHER_CHAT)
    intro = await bot.press(CONSENT, chat=OTHER_CHAT)
    forged = encode(FollowUpKey(stored(bot)[0].id, "seen"))
    mark = api.mark()
    await bot.feed(api.feed_callback(OTHER_CHAT, intro[-1].message_id, forged), OTHER_CHAT)
    assert bot.toasts(mark) == [views.EXPIRED]
    assert stored(bot)[0].status is FollowUpStatus.SENT


# === export and /delete ========================================================================


async def test_the_export_holds_the_follow_up_and_delete_removes_it(
    bot: RunningBot, api: BotApiStub, clock: Clock
) -> None:
    await sent_followup(bot, clock)
    await press_on(bot, LABELS["not_yet"])
    assert bot.core is not None
    data = export(bot)
    validator = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
    assert [e.message for e in validator.iter_errors(data)] == []
    [exported] = data["followups"]
    [concluded] = [c for c in data["conversations"] if c["conclusion"]]
    assert exported == {
        "conversation_id": concluded["id"],
        "urgency": "urgent",
        "status": "answered",
        "offered_at": datetime(2026, 11, 18, 22, 0, tzinfo=BERLIN).astimezone(UTC).isoformat(),
        "decided_at": datetime(2026, 11, 18, 22, 0, tzinfo=BERLIN).astimezone(UTC).isoformat(),
        "timezone": "Europe/Berlin",
        "due_at": datetime(2026, 11, 19, 8, 0, tzinfo=UTC).isoformat(),
        "sent_at": datetime(2026, 11, 19, 8, 0, tzinfo=UTC).isoformat(),
        "answer": "not_yet",
        "answered_at": datetime(2026, 11, 19, 8, 0, tzinfo=UTC).isoformat(),
    }

    uid = user_id(bot)
    await bot.send("/delete")
    shown = await bot.press(ERASE)
    assert texts(shown) == [views.DELETED]
    with bot.core.store.transaction() as repo:
        counts = repo.user_row_counts(uid)
    assert "followups" in counts and not any(counts.values()), counts


async def test_delete_before_the_morning_means_no_follow_up(
    bot: RunningBot, api: BotApiStub, clock: Clock
) -> None:
    await urgent_accepted(bot)
    await bot.send("/delete")
    await bot.press(ERASE)
    mark = api.mark()
    assert await dispatch_at(bot, clock, BERLIN, 2026, 11, 19, 9, 0) == 0
    assert followups_sent(api, mark=mark) == []


async def test_a_blocked_bot_marks_the_follow_up_failed_and_does_not_retry(
    bot: RunningBot, api: BotApiStub, clock: Clock
) -> None:
    await urgent_accepted(bot)
    api.block_user(CHAT)
    mark = api.mark()
    await dispatch_at(bot, clock, BERLIN, 2026, 11, 19, 9, 0)
    attempts = [c for c in api.calls[mark:] if c.method == "sendMessage"]
    assert [c.status for c in attempts] == [403]
    [followup] = stored(bot)
    assert followup.status is FollowUpStatus.FAILED
    for day in (19, 20):
        assert await dispatch_at(bot, clock, BERLIN, 2026, 11, day, 9, 30) == 0
    assert len([c for c in api.calls[mark:] if c.method == "sendMessage"]) == 1
