"""End to end: the real Telegram application against the Bot API stand-in, used like a person.

Every test runs the bot in-process (durable polling) against its own stub server on 127.0.0.1
and its own SQLite file, types messages and presses the inline buttons it sees, then checks
the chat screen, the toasts, the database and the files the bot uploads. Waiting is done by
the harness (an update counts as handled once the bot confirmed it), so there are no sleeps.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pypdf import PdfReader
from sqlalchemy import select

from bot.logs import CLAMPED, configure_logging
from bot.services.flow import Who
from bot.telegram import render as views
from bot.telegram.delivery import PROBE_IDS
from bot.telegram.keys import AnswerKey, DoneKey, Key, MenuKey, NavKey, decode, encode
from bot.telegram.turn import plain
from dialogs.advice import AdviceBook
from dialogs.chat import chat_book, one_line
from dialogs.countries import EmergencyNumbers
from dialogs.engine import Flow, Prompt
from dialogs.followups import FollowUpBook
from dialogs.i18n import pick
from dialogs.records import CANCELLED, FINAL_STATES, AnswerRecord, Conclusion
from dialogs.texts import texts as texts_in
from dialogs.vocabulary import FINDINGS, Pattern, Urgency
from storage.models import OutboxMessage
from tests import test_danger as danger_table
from tests.botapi_stub import BotApiStub, SentMessage
from tests.cases import CASES, CLASSIC_CRAMP, NO_RED_FLAGS, v2_facts
from tests.telegram_harness import CHAT, RunningBot
from tests.walker import Facts, plan_answer

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "docs/export.schema.json").read_text("utf-8"))
VIGNETTES_PATH = ROOT.parent / "shared/clinical/vignettes-dev.json"
VIGNETTES: list[dict[str, Any]] = (
    json.loads(VIGNETTES_PATH.read_text("utf-8")) if VIGNETTES_PATH.exists() else []
)

FLOW = Flow.load("triage")
BOOK = AdviceBook.load()
NUMBERS = EmergencyNumbers.load()
FOLLOWUP_BOOK = FollowUpBook.load()
HEADLINES = {u: BOOK.advise(Conclusion(Pattern.UNCLEAR, u), {}).headline for u in Urgency}
CASE = {c["id"]: c for c in CASES}
CRAMP = {**NO_RED_FLAGS, **CLASSIC_CRAMP}
"""A plain night cramp: no red flags, self care."""
ONE_PER_URGENCY = [
    "classic_cramp",  # self_care
    "classic_restless_legs",  # soon
    "rest_pain_burning_worse_raised",  # urgent
    "swollen_warm_red_calf_after_a_flight",  # emergency
]
OTHER_CHAT = 5353
"""A second person, in their own private chat."""


def label(screen: views.Screen, key: Key) -> str:
    """The text of the button carrying `key` on a rendered screen (labels come from views)."""
    assert screen.markup is not None
    data = encode(key)
    for row in screen.markup.inline_keyboard:
        for button in row:
            if button.callback_data == data:
                return button.text
    raise LookupError(f"no button {data!r} on {screen.text[:40]!r}")


def _sample_question() -> views.Screen:
    question = FLOW.content.questions[0]
    return views.question(Prompt(question, can_go_back=True), 1)


def _sample_outcome() -> views.Screen:
    return views.outcome(BOOK.advise(Conclusion(Pattern.LEG_CRAMPS, Urgency.SELF_CARE), {}), 1)


CONSENT = label(views.INTRO, MenuKey("consent"))
DECLINE = label(views.INTRO, MenuKey("decline"))
BACK = label(_sample_question(), NavKey("back", 1))
CANCEL = label(_sample_question(), NavKey("cancel", 1))
NEW_CHECK = label(_sample_outcome(), MenuKey("new"))
ERASE = label(views.delete_confirm(), MenuKey("erase"))
KEEP = label(views.delete_confirm(), MenuKey("keep"))
CHANGE_COUNTRY = label(views.settings_screen(None), MenuKey("countries"))
CHOOSE_COUNTRY = label(views.INTRO, MenuKey("consent", "pick"))
"""Agreeing, by way of the list of countries."""
NOTE = label(_sample_outcome(), MenuKey("note", "1"))
CHAT_BOOK = chat_book()
IN_QUESTION = CHAT_BOOK.text("typed", "in_question")
"""The kind words above the question shown again when someone types inside a question."""
NO_CHECK_REPLY = plain(views.typed_no_check().text)


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
async def api() -> AsyncIterator[BotApiStub]:
    async with BotApiStub() as stub:
        yield stub


@pytest.fixture
async def bot(api: BotApiStub, database_url: str) -> AsyncIterator[RunningBot]:
    """The bot, stopped cleanly afterwards; then every tap was answered and no API rule broken."""
    running = await RunningBot(api, database_url).start()
    try:
        yield running
    finally:
        await running.stop()
    assert api.unanswered_callbacks() == [], "a button press was left spinning"
    api.assert_no_violations()


# --- reading the chat --------------------------------------------------------------------------


def keys(message: SentMessage) -> list[tuple[str, Key | None]]:
    return [(text, decode(data)) for text, data in message.buttons]


def is_question(message: SentMessage) -> bool:
    return any(isinstance(k, AnswerKey | DoneKey) for _, k in keys(message))


def live_questions(api: BotApiStub, chat: int = CHAT) -> list[SentMessage]:
    """Messages that still show answer buttons."""
    return [m for m in api.messages(chat) if is_question(m)]


def open_question(bot: RunningBot, chat: int = CHAT) -> SentMessage | None:
    """The newest message showing the question the database says is open (None: no check)."""
    data = state(bot, chat)
    if data is None or not data["conversations"]:
        return None
    open_id = data["conversations"][-1]["state"]
    if open_id in FINAL_STATES:
        return None
    shown = [m for m in live_questions(bot.api, chat) if question_id(m) == open_id]
    assert shown, f"{open_id!r} is open but not shown\n{bot.api.transcript(chat)}"
    return shown[-1]


def question_id(message: SentMessage) -> str:
    ids = {k.question_id for _, k in keys(message) if isinstance(k, AnswerKey | DoneKey)}
    assert len(ids) == 1, message.buttons
    return ids.pop()


def conversation_of(message: SentMessage) -> int:
    ids = {
        k.conversation_id for _, k in keys(message) if isinstance(k, AnswerKey | DoneKey | NavKey)
    }
    assert len(ids) == 1, message.buttons
    return ids.pop()


def option_label(message: SentMessage, option_id: str) -> str:
    for text, key in keys(message):
        if isinstance(key, AnswerKey) and key.option_id == option_id:
            return text
    raise LookupError(f"no option {option_id!r} on {message.buttons}")


def data_of(message: SentMessage, text: str) -> str:
    for button_text, data in message.buttons:
        if button_text == text and data is not None:
            return data
    raise LookupError(f"no button {text!r} on {message.buttons}")


def done_label(message: SentMessage) -> str:
    return next(text for text, key in keys(message) if isinstance(key, DoneKey))


def shown_as_answered(question: str, *option_ids: str) -> str:
    """The line that shows an answer above the next question in the check's message."""
    record = AnswerRecord(question, option_ids, datetime.now(UTC))
    return plain(views.answer_lines(FLOW.content, (record,))[0])


def chat_bound(api: BotApiStub, mark: int) -> list[str]:
    """The sends and edits since `mark`: what counts against Telegram's 30 a second."""
    return [c.method for c in api.calls[mark:] if c.method.startswith(("send", "edit"))]


def headline_of(message: SentMessage) -> Urgency | None:
    text = message.plain_text or ""
    return next((u for u, h in HEADLINES.items() if text.startswith(h)), None)


def outcomes(api: BotApiStub, chat: int = CHAT) -> list[SentMessage]:
    return [m for m in api.messages(chat) if headline_of(m) is not None]


def texts(messages: list[SentMessage]) -> list[str]:
    return [m.plain_text or "" for m in messages]


def tolerate_not_modified(api: BotApiStub) -> None:
    """An edit to identical content is harmless (the handler ignores it); anything else is not."""
    assert all("message is not modified" in v for v in api.violations), api.violations
    api.violations.clear()


# --- the database ------------------------------------------------------------------------------


def who(chat: int = CHAT) -> Who:
    return Who("telegram", str(chat))


def user_id(bot: RunningBot, chat: int = CHAT) -> int | None:
    assert bot.core is not None
    with bot.core.store.transaction() as repo:
        info = repo.find_user("telegram", str(chat))
        return None if info is None else info.id


def row_counts(bot: RunningBot, uid: int) -> dict[str, int]:
    assert bot.core is not None
    with bot.core.store.transaction() as repo:
        return repo.user_row_counts(uid)


def state(bot: RunningBot, chat: int = CHAT) -> dict[str, Any] | None:
    """What the person's checks hold (answers, ticks, findings, conclusions), without the chat."""
    assert bot.core is not None
    data = bot.core.service.export(who(chat))
    if data is None:
        return None
    return {"user": data["user"], "conversations": data["conversations"]}


def latest_followup_status(bot: RunningBot, chat: int = CHAT) -> str:
    assert bot.core is not None
    followups = bot.core.followups.followups(who(chat))
    assert followups, "no follow-up stored"
    return str(followups[-1].status)


def latest(bot: RunningBot, chat: int = CHAT) -> dict[str, Any]:
    data = state(bot, chat)
    assert data is not None and data["conversations"], "no conversation stored"
    return data["conversations"][-1]


def answered(bot: RunningBot, chat: int = CHAT) -> list[str]:
    return [a["question_id"] for a in latest(bot, chat)["answers"]]


# --- acting like a person ------------------------------------------------------------------------


async def consent(bot: RunningBot, chat: int = CHAT) -> list[SentMessage]:
    await bot.send("/start", chat=chat)
    return await bot.press(CONSENT, chat=chat)


async def tap(
    bot: RunningBot,
    message: SentMessage,
    text: str,
    *,
    chat: int = CHAT,
    language_code: str = "en",
) -> list[SentMessage]:
    """Press the button labelled `text` on `message` as it looks now."""
    current = bot.api.message(chat, message.message_id)
    update = bot.api.feed_callback(
        chat, message.message_id, data_of(current, text), language_code=language_code
    )
    return await bot.feed(update, chat)


async def answer_open_question(
    bot: RunningBot, facts: Facts, chat: int = CHAT, *, language_code: str = "en"
) -> str:
    """Answer the open question by its buttons as a person knowing `facts` would."""
    message = open_question(bot, chat)
    assert message is not None, bot.api.transcript(chat)
    question = FLOW.content.question(question_id(message))
    assert question is not None
    plan = plan_answer(question, facts)
    if plan.ticks:
        for option_id in plan.option_ids:
            current = bot.api.message(chat, message.message_id)
            label = option_label(current, option_id)
            await tap(bot, message, label, chat=chat, language_code=language_code)
        current = bot.api.message(chat, message.message_id)
        await tap(bot, message, done_label(current), chat=chat, language_code=language_code)
    else:
        text = option_label(message, plan.option_id)
        await tap(bot, message, text, chat=chat, language_code=language_code)
    return question.id


async def answer_all(
    bot: RunningBot, facts: Facts, chat: int = CHAT, *, language_code: str = "en"
) -> list[str]:
    """Answer until no question is open; returns the question ids in asking order."""
    asked: list[str] = []
    for _ in range(len(FLOW.content.questions) + 1):
        if open_question(bot, chat) is None:
            return asked
        asked.append(await answer_open_question(bot, facts, chat, language_code=language_code))
    raise AssertionError(f"the check never ended: {asked}\n{bot.api.transcript(chat)}")


def export_of(api: BotApiStub, mark: int, chat: int = CHAT) -> dict[str, Any]:
    """The JSON data inside the ZIP the bot uploaded to `chat` after `mark`."""
    uploads = [
        c
        for c in api.calls[mark:]
        if c.method == "sendDocument" and c.ok and c.result["chat"]["id"] == chat
    ]
    assert len(uploads) == 1, [c.method for c in api.calls[mark:]]
    document = uploads[0].params["document"]
    assert document.filename.endswith(".zip")
    with zipfile.ZipFile(io.BytesIO(document.data)) as bundle:
        return json.loads(bundle.read("nightlegs-export.json").decode("utf-8"))


async def export_everything(bot: RunningBot, chat: int = CHAT) -> dict[str, Any]:
    """/export, then the "everything, all time" button; the data from the ZIP."""
    mark = bot.api.mark()
    await bot.send("/export", chat=chat)
    await bot.press("🗂 ZIP · all", chat=chat)
    return export_of(bot.api, mark, chat)


def assert_valid_export(data: dict[str, Any]) -> None:
    validator = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


# === 1. introduction and consent =================================================================


async def test_start_shows_the_introduction_and_stores_nothing_before_consent(
    bot: RunningBot,
) -> None:
    shown = await bot.send("/start")
    assert texts(shown) == [plain(views.INTRO.text)]
    intro = shown[-1].plain_text or ""
    assert "not a diagnosis" in intro
    assert "/export" in intro and "/delete" in intro
    assert "keep your answers" in intro
    assert [text for text, _ in shown[-1].buttons] == [CHOOSE_COUNTRY, CONSENT, DECLINE]
    for said in ("/check", "my calf hurts", "/export", "/help", "/settings", "/back"):
        await bot.send(said)
    assert user_id(bot) is None, "a row was stored before consent"


async def test_no_question_is_asked_before_consent(bot: RunningBot) -> None:
    shown = await bot.send("/check")
    assert not any(is_question(m) for m in shown)
    assert texts(shown)[0] == views.NEED_CONSENT
    assert CONSENT in [t for t, _ in shown[-1].buttons]
    assert user_id(bot) is None


async def test_declining_stores_nothing_and_start_asks_again(bot: RunningBot) -> None:
    await bot.send("/start")
    shown = await bot.press(DECLINE)
    assert texts(shown) == [views.DECLINED.text]
    assert not shown[-1].has_inline_keyboard
    assert user_id(bot) is None
    shown = await bot.send("/start")
    assert CONSENT in [t for t, _ in shown[-1].buttons]


async def test_consent_starts_the_check_at_the_safety_screen(bot: RunningBot) -> None:
    [intro] = await bot.send("/start")
    shown = await bot.press(CONSENT)
    assert len(shown) == 1, "agreeing turns the introduction into the first question"
    [first] = shown
    assert first.message_id == intro.message_id
    assert "Agreed" in (first.plain_text or "")
    assert question_id(first) == FLOW.content.questions[0].id
    uid = user_id(bot)
    assert uid is not None
    assert row_counts(bot, uid)["conversations"] == 1


# === 2. a full check for each urgency, export, delete ==========================================


@pytest.mark.parametrize("case_id", ONE_PER_URGENCY)
async def test_a_full_check_by_buttons_then_export_then_delete(
    bot: RunningBot, api: BotApiStub, case_id: str
) -> None:
    case = CASE[case_id]
    urgency = Urgency(case["urgency"])
    await consent(bot)
    asked = await answer_all(bot, case["facts"])
    assert asked[0] == "emergency_signs"

    # the conclusion names the right urgency, with the advice book's headline first
    [result] = outcomes(api)
    assert headline_of(result) is urgency, api.transcript(CHAT)
    conclusion = latest(bot)["conclusion"]
    assert conclusion["urgency"] == str(urgency)
    assert conclusion["pattern"] in case["patterns"]
    advice = BOOK.advise(
        Conclusion(Pattern(conclusion["pattern"]), urgency, tuple(conclusion["red_flags"])), {}
    )
    assert advice.pattern_name in (result.plain_text or "")

    # /export: a JSON file that follows the schema and holds this conclusion in spec ids
    data = await export_everything(bot)
    assert_valid_export(data)
    assert data["user"]["external_id"] == str(CHAT)
    [conversation] = data["conversations"]
    assert conversation["conclusion"] == conclusion
    assert [a["question_id"] for a in conversation["answers"]] == asked
    assert set(conversation["findings"]) <= FINDINGS
    for finding, value in conversation["findings"].items():
        if case["facts"].get(finding) is not None:
            assert value is case["facts"][finding], finding
    assert any(m["direction"] == "in" for m in data["transcript"])

    # /delete -> confirm: nothing left about this person, in any table
    uid = user_id(bot)
    assert uid is not None
    stored = row_counts(bot, uid)
    assert min(stored["conversations"], stored["answers"], stored["messages"]) > 0, stored
    shown = await bot.send("/delete")
    assert [t for t, _ in shown[-1].buttons] == [ERASE, KEEP]
    shown = await bot.press(ERASE)
    assert texts(shown) == [views.DELETED]
    counts = row_counts(bot, uid)
    assert {"users", "conversations", "answers", "messages"} <= set(counts)
    assert not any(counts.values()), counts

    # an old button after the deletion stores nothing, and /start begins from scratch
    await bot.press(NEW_CHECK, message=result)
    assert user_id(bot) is None
    shown = await bot.send("/start")
    assert CONSENT in [t for t, _ in shown[-1].buttons]
    assert user_id(bot) is None


async def test_keep_on_the_delete_question_deletes_nothing(bot: RunningBot) -> None:
    await consent(bot)
    uid = user_id(bot)
    assert uid is not None
    before = row_counts(bot, uid)
    await bot.send("/delete")
    shown = await bot.press(KEEP)
    assert not shown[-1].has_inline_keyboard
    after = row_counts(bot, uid)
    assert after["conversations"] == before["conversations"] == 1
    assert after["users"] == 1


async def test_export_and_delete_before_consent_say_nothing_is_stored(
    bot: RunningBot, api: BotApiStub
) -> None:
    shown = await bot.send("/export")
    assert texts(shown) == [views.NOTHING_STORED]
    assert api.calls_of("sendDocument") == []
    await bot.send("/delete")
    shown = await bot.press(ERASE)
    assert user_id(bot) is None
    assert not any("erased" in t for t in texts(shown))


# === 3. the dev vignettes, answered through the buttons ========================================


@pytest.mark.skipif(not VIGNETTES, reason=f"no vignettes at {VIGNETTES_PATH}")
@pytest.mark.parametrize("vignette", VIGNETTES, ids=lambda v: v["id"])
async def test_a_vignette_answered_by_buttons_gets_the_gold_urgency(
    bot: RunningBot, api: BotApiStub, vignette: dict[str, Any]
) -> None:
    await consent(bot)
    asked = await answer_all(bot, v2_facts(vignette))
    gold = Urgency(vignette["gold"]["urgency"])
    conclusion = latest(bot)["conclusion"]
    assert conclusion is not None, asked
    assert Urgency(conclusion["urgency"]) >= gold, f"UNDER-TRIAGE, asked {asked}"
    assert conclusion["urgency"] == str(gold), f"over-triage, asked {asked}"
    assert conclusion["pattern"] in vignette["acceptable_patterns"], asked
    [result] = outcomes(api)
    assert headline_of(result) is gold, api.transcript(CHAT)


# === 4. how questions behave =====================================================================


async def test_an_answer_edits_the_one_check_message_to_show_it_above_the_next_question(
    bot: RunningBot, api: BotApiStub
) -> None:
    await consent(bot)
    first = open_question(bot)
    assert first is not None
    mark = api.mark()
    await bot.press(option_label(first, "none"), message=first)
    assert chat_bound(api, mark) == ["editMessageText"], "one Bot API call per tap"
    second = open_question(bot)
    assert second is not None and question_id(second) == "feeling"
    assert second.message_id == first.message_id, "the check stays one message"
    assert shown_as_answered("emergency_signs", "none") in (second.plain_text or "")
    assert (second.plain_text or "").index("None of these") < (second.plain_text or "").index(
        FLOW.content.question("feeling").text  # type: ignore[union-attr]
    )
    await bot.press("None of these", message=second)
    text = api.message(CHAT, second.message_id).plain_text or ""
    assert shown_as_answered("emergency_signs", "none") in text
    assert shown_as_answered("feeling", "none") in text


async def test_ticks_toggle_visibly_and_a_double_tick_counts_once(
    bot: RunningBot, api: BotApiStub
) -> None:
    await consent(bot)
    await answer_open_question(bot, CRAMP)
    feeling = open_question(bot)
    assert feeling is not None and question_id(feeling) == "feeling"
    knot = option_label(feeling, "knot")
    assert knot.startswith(views.UNTICKED)
    await bot.press(knot, message=feeling)
    ticked = api.message(CHAT, feeling.message_id)
    assert ticked.message_id == feeling.message_id, "a tick edits the question in place"
    assert option_label(ticked, "knot") == views.TICKED + knot.removeprefix(views.UNTICKED)
    await bot.press(option_label(ticked, "knot"), message=ticked)
    assert option_label(api.message(CHAT, feeling.message_id), "knot") == knot

    # the same tick pressed twice before the bot sees either: ticked once, not toggled back
    tick = data_of(api.message(CHAT, feeling.message_id), knot)
    first = api.feed_callback(CHAT, feeling.message_id, tick)
    second = api.feed_callback(CHAT, feeling.message_id, tick)
    await api.wait_until_confirmed(second)
    await bot.settled()
    assert first["update_id"] < second["update_id"]
    assert option_label(api.message(CHAT, feeling.message_id), "knot").startswith(views.TICKED)
    assert latest(bot)["pending"] == ["knot"]
    await bot.press(done_label(api.message(CHAT, feeling.message_id)), message=feeling)
    assert latest(bot)["answers"][-1]["option_ids"] == ["knot"]
    assert answered(bot).count("feeling") == 1
    tolerate_not_modified(api)


async def test_done_with_nothing_ticked_asks_for_a_tick(bot: RunningBot, api: BotApiStub) -> None:
    await consent(bot)
    question = open_question(bot)
    assert question is not None
    mark = api.mark()
    await bot.press(done_label(question), message=question)
    assert bot.toasts(mark) == [views.TICK_FIRST]
    assert answered(bot) == []
    assert open_question(bot) is not None


async def test_back_returns_to_the_previous_question(bot: RunningBot, api: BotApiStub) -> None:
    await consent(bot)
    await answer_open_question(bot, CRAMP)
    await answer_open_question(bot, CRAMP)
    third = open_question(bot)
    assert third is not None and question_id(third) == "where"
    shown = await bot.press(BACK, message=third)
    current = open_question(bot)
    assert current is not None and current in shown
    assert current.message_id == third.message_id, "back shows the question in the same message"
    assert question_id(current) == "feeling"
    assert answered(bot) == ["emergency_signs"]
    await answer_open_question(bot, CRAMP)
    assert answered(bot) == ["emergency_signs", "feeling"]
    assert question_id(open_question(bot)) == "where"  # type: ignore[arg-type]


async def test_cancel_ends_the_check(bot: RunningBot, api: BotApiStub) -> None:
    await consent(bot)
    await answer_open_question(bot, CRAMP)
    question = open_question(bot)
    assert question is not None
    shown = await bot.press(CANCEL, message=question)
    assert views.CANCELLED in texts(shown)
    assert open_question(bot) is None
    assert latest(bot)["state"] == CANCELLED
    shown = await bot.send("hello?")
    assert texts(shown) == [NO_CHECK_REPLY]


async def test_back_and_cancel_commands_work(bot: RunningBot, api: BotApiStub) -> None:
    await consent(bot)
    await answer_open_question(bot, CRAMP)
    await answer_open_question(bot, CRAMP)
    shown = await bot.send("/back")
    assert question_id(shown[-1]) == "feeling"
    assert answered(bot) == ["emergency_signs"]
    shown = await bot.send("/cancel")
    assert texts(shown) == [views.CANCELLED]
    assert latest(bot)["state"] == CANCELLED
    shown = await bot.send("/cancel")
    assert not any(is_question(m) for m in shown)
    shown = await bot.send("/check")
    assert question_id(shown[-1]) == "emergency_signs"
    assert len(state(bot)["conversations"]) == 2  # type: ignore[index]


async def test_change_answer_after_the_result_reopens_the_last_question(
    bot: RunningBot, api: BotApiStub
) -> None:
    await consent(bot)
    asked = await answer_all(bot, CRAMP)
    [result] = outcomes(api)
    await bot.press(label(_sample_outcome(), NavKey("back", 1)), message=result)
    current = open_question(bot)
    assert current is not None and question_id(current) == asked[-1]
    assert latest(bot)["conclusion"] is None
    await answer_all(bot, CRAMP)
    assert latest(bot)["conclusion"]["urgency"] == "self_care"
    assert len(state(bot)["conversations"]) == 1  # type: ignore[index]


async def test_a_result_is_the_check_message_edited_with_all_that_follows_on_its_buttons(
    bot: RunningBot, api: BotApiStub
) -> None:
    await consent(bot)
    check = open_question(bot)
    assert check is not None
    await answer_all(bot, CASE["classic_restless_legs"]["facts"])  # soon: a follow-up offer
    assert bot.core is not None
    with bot.core.store.engine.connect() as connection:
        last = connection.execute(
            select(OutboxMessage.kind, OutboxMessage.lane)
            .where(OutboxMessage.chat_id == CHAT)
            .order_by(OutboxMessage.id.desc())
            .limit(1)
        ).all()
    # The last answer's one reply: the check's message becomes the result, in the reply lane.
    assert [tuple(row) for row in last] == [("edit", "reply")]
    [result] = outcomes(api)
    assert result.message_id == check.message_id
    assert api.messages(CHAT)[-1].message_id == result.message_id, "nothing trails the result"
    offer = FOLLOWUP_BOOK.offer(Urgency.SOON)
    assert offer is not None and offer.text in (result.plain_text or "")
    labels = [t for t, _ in result.buttons]
    assert {offer.yes_label, offer.no_label, NOTE, NEW_CHECK} <= set(labels)
    # the answers stay readable, folded under the result
    assert shown_as_answered("emergency_signs", "none") in (result.plain_text or "")


async def test_accepting_the_follow_up_on_the_result_keeps_the_result(
    bot: RunningBot, api: BotApiStub
) -> None:
    await consent(bot)
    await answer_all(bot, CASE["classic_restless_legs"]["facts"])
    [result] = outcomes(api)
    offer = FOLLOWUP_BOOK.offer(Urgency.SOON)
    assert offer is not None
    mark = api.mark()
    await bot.press(offer.yes_label, message=result)
    assert chat_bound(api, mark) == ["editMessageText"]
    now = api.message(CHAT, result.message_id)
    assert headline_of(now) is Urgency.SOON, "the result is still there"
    assert offer.text not in (now.plain_text or "")
    assert FOLLOWUP_BOOK.accepted in (now.plain_text or "")
    labels = [t for t, _ in now.buttons]
    assert offer.yes_label not in labels and NOTE in labels and NEW_CHECK in labels
    assert latest_followup_status(bot) == "accepted"


# === 5. bad input ================================================================================


async def test_free_text_during_a_question_reminds_and_asks_again(
    bot: RunningBot, api: BotApiStub
) -> None:
    await consent(bot)
    await answer_open_question(bot, CRAMP)
    before = state(bot)
    shown = await bot.send("my left calf, I think?")
    assert texts(shown)[0].startswith(IN_QUESTION)
    assert question_id(shown[-1]) == "feeling"
    assert state(bot) == before


TYPED_DANGER = [
    ("my calf is swollen and hot", "calf_swelling_warm_red"),
    ("chest pain", "chest_pain_or_breathless"),
    ("cant breath", "chest_pain_or_breathless"),
    ("my face is drooping on one side", "sudden_weakness"),
]
TYPED_HARMLESS = ["no chest pain", "my calf is not swollen", "it cramps at night"]
DANGER_EXAMPLES = danger_table.POSITIVE
DANGER_NEGATIVES = [text for text in danger_table.NEGATIVE if text.strip()]
"""(An empty message is not a text message in Telegram.)"""


def typed_advice(flag: str) -> str:
    book = AdviceBook.load()
    return plain(views.advice_html(book.advise_typed([flag])))


@pytest.mark.parametrize(("text", "flag"), TYPED_DANGER)
async def test_typed_words_naming_an_emergency_get_its_advice_and_go_on_loses_nothing(
    bot: RunningBot, api: BotApiStub, text: str, flag: str
) -> None:
    await consent(bot)
    await answer_open_question(bot, CRAMP)
    before = state(bot)
    shown = await bot.send(text)
    assert len(shown) == 1
    [advice] = shown
    assert (advice.plain_text or "").startswith(typed_advice(flag)[:80]), advice.plain_text
    assert HEADLINES[Urgency.EMERGENCY] in (advice.plain_text or "")
    assert IN_QUESTION not in (advice.plain_text or "")
    assert state(bot) == before, "nothing about the open check changed"
    go_on = AdviceBook.load().go_on_label
    shown = await bot.press(go_on, message=advice)
    assert not api.message(CHAT, advice.message_id).has_inline_keyboard
    current = open_question(bot)
    assert current is not None and question_id(current) == "feeling" and current in shown
    await answer_all(bot, CRAMP)
    assert latest(bot)["conclusion"]["urgency"] == "self_care"


async def test_every_example_of_typed_danger_gets_its_advice_and_no_negative_does(
    bot: RunningBot,
) -> None:
    """The reader's whole table of examples (tests/test_danger.py), typed in one chat."""
    await consent(bot)
    await answer_open_question(bot, CRAMP)
    before = state(bot)
    for text, flags in DANGER_EXAMPLES:
        shown = await bot.send(text)
        first = shown[0].plain_text or ""
        assert HEADLINES[Urgency.EMERGENCY] in first, text
        assert first.startswith(typed_advice(flags[0])[:40]), text
    for text in DANGER_NEGATIVES:
        shown = await bot.send(text)
        assert texts(shown)[0].startswith(IN_QUESTION), text
    assert state(bot) == before, "typing changed nothing about the open check"


@pytest.mark.parametrize("text", TYPED_HARMLESS)
async def test_ordinary_or_negated_words_get_the_usual_reminder(bot: RunningBot, text: str) -> None:
    await consent(bot)
    await answer_open_question(bot, CRAMP)
    shown = await bot.send(text)
    assert texts(shown)[0].startswith(IN_QUESTION)
    assert question_id(shown[-1]) == "feeling"


async def test_typed_danger_before_consent_still_gets_the_emergency_advice(
    bot: RunningBot,
) -> None:
    shown = await bot.send("chest pain")
    assert HEADLINES[Urgency.EMERGENCY] in (shown[0].plain_text or "")
    assert user_id(bot) is None, "nothing stored before consent"


async def test_a_stale_button_gets_a_toast_and_changes_nothing(
    bot: RunningBot, api: BotApiStub
) -> None:
    await consent(bot)
    first = open_question(bot)
    assert first is not None
    unsure = data_of(first, option_label(first, "unsure"))
    await answer_open_question(bot, CRAMP)
    await answer_open_question(bot, CRAMP)
    before = state(bot)

    # an older question, pressed from a client that still shows its buttons
    mark = api.mark()
    await bot.feed(api.feed_callback(CHAT, first.message_id, unsure))
    assert bot.toasts(mark) == [views.STALE]
    assert state(bot) == before

    # a button of the open question, but of another (made-up) conversation id
    current = open_question(bot)
    assert current is not None
    calf = option_label(current, "calf")
    forged = data_of(current, calf).replace(f":{conversation_of(current)}:", ":999:")
    mark = api.mark()
    await bot.feed(api.feed_callback(CHAT, current.message_id, forged))
    assert bot.toasts(mark) == [views.STALE]
    assert state(bot) == before


async def test_a_tap_on_an_older_copy_of_an_answered_question_shows_the_open_one(
    bot: RunningBot, api: BotApiStub
) -> None:
    """Issue 18: a question shown twice (here /start during a check shows it again; after a
    kill, a send Telegram applied unheard can be), answered on one copy, then tapped on the
    other. The tap is answered, the answer stands, and that copy shows the open question."""
    await consent(bot)
    first = open_question(bot)
    assert first is not None and question_id(first) == "emergency_signs"
    await bot.send("/start")
    again = open_question(bot)
    assert again is not None and again.message_id != first.message_id
    assert question_id(again) == "emergency_signs"
    none = option_label(again, "none")
    unsure = data_of(again, option_label(again, "unsure"))
    await tap(bot, first, none)
    assert question_id(api.message(CHAT, first.message_id)) == "feeling"
    before = state(bot)

    mark = api.mark()
    shown = await bot.feed(api.feed_callback(CHAT, again.message_id, unsure))
    assert bot.toasts(mark) == [views.old_copy()]
    assert state(bot) == before, "the older copy's answer is not applied"
    assert chat_bound(api, mark) == ["editMessageText"], "that copy edited, nothing sent"
    assert [m.message_id for m in shown] == [again.message_id]
    assert question_id(api.message(CHAT, again.message_id)) == "feeling"

    # Either copy now takes the open question's answer; the other then catches up the same way.
    await answer_open_question(bot, CRAMP)
    assert answered(bot) == ["emergency_signs", "feeling"]
    [ahead, behind] = sorted(
        (first, again), key=lambda m: question_id(api.message(CHAT, m.message_id)) == "feeling"
    )
    mark = api.mark()
    stale = api.message(CHAT, behind.message_id)
    await tap(bot, stale, option_label(stale, "knot"))
    assert bot.toasts(mark) == [views.old_copy()]
    assert question_id(api.message(CHAT, behind.message_id)) == question_id(
        api.message(CHAT, ahead.message_id)
    )
    assert answered(bot) == ["emergency_signs", "feeling"]
    assert await answer_all(bot, CRAMP)


async def test_a_second_press_on_the_check_message_only_gets_a_toast(
    bot: RunningBot, api: BotApiStub
) -> None:
    """A press on the check's own message after its answer (the edit on its way, or made)
    is not shown again: the message shows the open question already."""
    await consent(bot)
    question = open_question(bot)
    assert question is not None
    none = data_of(question, option_label(question, "none"))
    await bot.feed(api.feed_callback(CHAT, question.message_id, none))
    mark = api.mark()
    await bot.feed(api.feed_callback(CHAT, question.message_id, none))
    assert bot.toasts(mark) == [views.ALREADY]
    assert chat_bound(api, mark) == []
    assert answered(bot) == ["emergency_signs"]


async def test_a_button_of_a_finished_check_gets_a_toast_and_changes_nothing(
    bot: RunningBot, api: BotApiStub
) -> None:
    await consent(bot)
    first = open_question(bot)
    assert first is not None
    chest = data_of(first, option_label(first, "chest"))
    await answer_all(bot, CRAMP)
    assert latest(bot)["conclusion"] is not None
    before = state(bot)
    mark = api.mark()
    await bot.feed(api.feed_callback(CHAT, first.message_id, chest))
    assert bot.toasts(mark) == [views.STALE]
    assert state(bot) == before
    assert open_question(bot) is None


GARBAGE = [
    "",
    "hello",
    "a:999:feeling:knot",
    "t:1:feeling:knot:2",
    "a:1:Feeling:knot",
    "a:-1:feeling:knot",
    "back:",
    "cancel:abc",
    "m:",
    "m:format_disk",
    "m:country:ZZ",
    "m:country:../../etc",
    "d:1:",
    "x" * 65,
    "a:1:" + "q" * 100 + ":o",
    "🦵" * 16,
    "a:1:feeling:knot\n",
    "\u200b",
    "null",
    '{"a": 1}',
]


async def test_garbage_callback_data_gets_a_toast_and_changes_nothing(
    bot: RunningBot, api: BotApiStub, caplog: pytest.LogCaptureFixture
) -> None:
    await consent(bot)
    await answer_open_question(bot, CRAMP)
    question = open_question(bot)
    assert question is not None
    before = state(bot)
    mark = api.mark()
    for data in GARBAGE:
        await bot.feed(api.feed_callback(CHAT, question.message_id, data))
    toasts = bot.toasts(mark)
    assert len(toasts) == len(GARBAGE)
    assert all(t in (views.EXPIRED, views.STALE) for t in toasts), toasts
    assert state(bot) == before
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    for message in api.messages(CHAT):
        assert views.ERROR not in (message.plain_text or "")
        assert "Traceback" not in (message.plain_text or "")
    assert open_question(bot) is not None


async def test_data_that_trips_the_key_parser_is_still_answered_and_the_check_goes_on(
    bot: RunningBot, api: BotApiStub
) -> None:
    await consent(bot)
    question = open_question(bot)
    assert question is not None
    before = state(bot)
    mark = api.mark()
    await bot.feed(api.feed_callback(CHAT, question.message_id, "a:1:x\ud800"))
    assert len(bot.toasts(mark)) == 1
    assert state(bot) == before
    assert await answer_all(bot, CRAMP)


async def test_garbage_callback_data_before_consent_stores_nothing(
    bot: RunningBot, api: BotApiStub
) -> None:
    shown = await bot.send("/start")
    mark = api.mark()
    more = ["a:1:dangling:no", "t:1:feeling:knot:1", "back:1", "m:new", "m:note:1", "m:nskip:1"]
    more += ["m:consent:ZZ", "m:consent:zz", "m:consent:x" * 3]
    for data in [*GARBAGE, *more]:
        await bot.feed(api.feed_callback(CHAT, shown[-1].message_id, data))
    assert len(bot.toasts(mark)) == len(GARBAGE) + len(more)
    assert user_id(bot) is None


async def test_two_quick_presses_of_one_answer_count_once(bot: RunningBot, api: BotApiStub) -> None:
    await consent(bot)
    await answer_open_question(bot, CRAMP)
    question = open_question(bot)
    assert question is not None and question_id(question) == "feeling"
    data = data_of(question, "None of these")
    mark = api.mark()
    api.feed_callback(CHAT, question.message_id, data)
    await bot.feed(api.feed_callback(CHAT, question.message_id, data))
    assert answered(bot) == ["emergency_signs", "feeling"]
    assert bot.toasts(mark) == [None, views.ALREADY]
    live = [m for m in api.messages(CHAT) if is_question(m)]
    assert [question_id(m) for m in live] == ["where"], "the next question shown once"


async def test_two_different_answers_pressed_quickly_keep_the_first(
    bot: RunningBot, api: BotApiStub
) -> None:
    await consent(bot)
    await answer_open_question(bot, CRAMP)
    question = open_question(bot)
    assert question is not None
    api.feed_callback(CHAT, question.message_id, data_of(question, "None of these"))
    await bot.feed(api.feed_callback(CHAT, question.message_id, data_of(question, "Not sure")))
    last = latest(bot)["answers"][-1]
    assert (last["question_id"], last["option_ids"]) == ("feeling", ["none"])
    assert answered(bot).count("feeling") == 1


@pytest.mark.parametrize("kind", ["sticker", "photo", "voice"])
async def test_media_gets_a_polite_hint(bot: RunningBot, api: BotApiStub, kind: str) -> None:
    await consent(bot)
    before = state(bot)
    feed = {"sticker": api.feed_sticker, "photo": api.feed_photo, "voice": api.feed_voice}[kind]
    shown = await bot.feed(feed(CHAT))
    assert texts(shown) == [views.NOT_TEXT]
    assert state(bot) == before


async def test_an_edited_message_gets_a_polite_hint(bot: RunningBot, api: BotApiStub) -> None:
    await consent(bot)
    sent = api.feed_message(CHAT, "/help")
    await api.wait_until_confirmed(sent)
    await bot.settled()
    before = state(bot)
    shown = await bot.feed(api.feed_edited_message(CHAT, sent["message"]["message_id"], "/check"))
    assert texts(shown) == [views.EDITED]
    assert state(bot) == before


async def test_an_edit_or_a_caption_naming_an_emergency_gets_its_advice(
    bot: RunningBot, api: BotApiStub
) -> None:
    await consent(bot)
    sent = api.feed_message(CHAT, "my calf hurts")
    await api.wait_until_confirmed(sent)
    await bot.settled()
    before = state(bot)
    edited = api.feed_edited_message(
        CHAT, sent["message"]["message_id"], "my calf is swollen and hot"
    )
    shown = await bot.feed(edited)
    assert HEADLINES[Urgency.EMERGENCY] in (shown[0].plain_text or "")
    shown = await bot.feed(api.feed_photo(CHAT, caption="chest pain since an hour"))
    assert HEADLINES[Urgency.EMERGENCY] in (shown[0].plain_text or "")
    shown = await bot.feed(api.feed_photo(CHAT, caption="my sore foot"))
    assert texts(shown) == [views.NOT_TEXT]
    assert state(bot) == before


ODD_TEXTS = [
    "x" * 4096,
    "🦵💥🦵💥 " * 200,
    "مرحبا، ساقي تؤلمني في الليل",
    "\u200b\u200c\u200d\ufeff",
    "\u202eevil\u202c <b>bold</b> &amp; <script>",
    "Z̴̡̛a̸͈͝l̵̙̈g̶̱̈́o̷̧͝",
    "/",
    "/CHECK@someone_else_bot",
]


@pytest.mark.parametrize("text", ODD_TEXTS, ids=range(len(ODD_TEXTS)))
async def test_huge_and_odd_texts_get_a_short_reply(bot: RunningBot, text: str) -> None:
    await consent(bot)
    await bot.send("/cancel")
    shown = await bot.send(text)
    assert shown, "no reply"
    for message in shown:
        assert len(message.plain_text or "") < 300
    uid = user_id(bot)
    assert uid is not None
    assert row_counts(bot, uid)["conversations"] == 1


async def test_a_huge_text_during_a_question_gets_the_reminder(bot: RunningBot) -> None:
    await consent(bot)
    shown = await bot.send("help " * 819)
    assert texts(shown)[0].startswith(IN_QUESTION)
    assert question_id(shown[-1]) == "emergency_signs"


@pytest.mark.parametrize("chat_type", ["group", "supergroup", "channel"])
@pytest.mark.parametrize("text", ["/start", "/check", "/export", "my legs hurt at night"])
async def test_outside_a_private_chat_the_bot_only_points_to_a_private_chat(
    bot: RunningBot, api: BotApiStub, chat_type: str, text: str
) -> None:
    group = -1001234567890
    shown = await bot.send(text, chat=group, chat_type=chat_type, user_id=777)
    assert texts(shown) == [views.GROUP]
    assert user_id(bot, group) is None
    assert user_id(bot, 777) is None
    assert api.calls_of("sendDocument") == []


# === 6. Bot API errors ===========================================================================


async def test_a_failing_handler_changes_nothing_and_says_how_to_go_on(
    bot: RunningBot,
    api: BotApiStub,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await consent(bot)
    await answer_open_question(bot, CRAMP)
    assert bot.core is not None
    service = bot.core.service
    real = service.handle
    calls = iter([True])

    def broken(*args: Any, **kwargs: Any) -> Any:
        if next(calls, False):
            raise RuntimeError("a bug")
        return real(*args, **kwargs)

    monkeypatch.setattr(service, "handle", broken)
    shown = await bot.press("None of these", message=open_question(bot))
    assert views.ERROR in texts(shown), api.transcript(CHAT)
    assert answered(bot) == ["emergency_signs"], "the failed update changed nothing"
    assert [r for r in caplog.records if r.levelno >= logging.ERROR], "the failure is logged"

    # the person does what the message says, and carries on where they were
    shown = await bot.send("/start")
    assert question_id(shown[-1]) == "feeling"
    await answer_all(bot, CRAMP)
    assert latest(bot)["conclusion"]["urgency"] == "self_care"
    for message in api.messages(CHAT):
        assert "Traceback" not in (message.plain_text or "")
        assert "RuntimeError" not in (message.plain_text or "")


@pytest.mark.parametrize("method", ["editMessageText", "sendMessage"])
async def test_a_500_from_telegram_is_retried_and_the_next_question_still_arrives(
    bot: RunningBot, api: BotApiStub, method: str
) -> None:
    await consent(bot)
    api.fail_next(method, status=500)
    mark = api.mark()
    if method == "sendMessage":  # /check starts a new check message
        await bot.send("/check")
    else:  # an answer edits the check message
        await answer_open_question(bot, CRAMP)
    calls = [c.status for c in api.calls[mark:] if c.method == method]
    assert calls[:2] == [500, 200], "delivered on the next try"
    if method == "sendMessage":  # a 500 may hide an applied send: the retry looks for it first
        # a quiet bot tries a few ids above the highest it knows (delivery.PROBE_IDS)
        probes = [c for c in api.calls[mark:] if c.method == "editMessageText"]
        assert 1 <= len(probes) <= PROBE_IDS
        for probe in probes:
            assert probe.description == "Bad Request: message to edit not found"
            api.violations.remove(f"editMessageText: {probe.description}")
    assert views.ERROR not in api.transcript(CHAT)
    current = open_question(bot)
    assert current is not None
    assert question_id(current) == ("emergency_signs" if method == "sendMessage" else "feeling")
    await answer_open_question(bot, CRAMP)
    assert len(answered(bot)) == (1 if method == "sendMessage" else 2)


async def test_a_429_is_retried_and_the_message_delivered(bot: RunningBot, api: BotApiStub) -> None:
    await consent(bot)
    api.rate_limit_next("editMessageText", retry_after=1)
    mark = api.mark()
    shown = await bot.press(option_label(open_question(bot), "none"))  # type: ignore[arg-type]
    edits = [c for c in api.calls[mark:] if c.method == "editMessageText"]
    assert [c.status for c in edits] == [429, 200]
    assert edits[1].at - edits[0].at >= 0.9, "retried after retry_after"
    assert question_id(shown[-1]) == "feeling"
    assert views.ERROR not in texts(shown)
    assert answered(bot) == ["emergency_signs"]


# === 7. the token stays secret ===================================================================


@contextmanager
def production_logging(caplog: pytest.LogCaptureFixture, token: str) -> Iterator[None]:
    """The logging `python -m bot` sets up with LOG_LEVEL=DEBUG, with caplog still listening."""
    caplog.set_level(logging.DEBUG)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in CLAMPED}
    configure_logging("DEBUG", secrets=[token])
    for handler in list(root.handlers):  # the app's stderr handler: caplog reads the records
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    try:
        yield
    finally:
        root.setLevel(level)
        for name, saved in levels.items():
            logging.getLogger(name).setLevel(saved)


def _raise(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("a bug")


def leaks(records: list[logging.LogRecord], secret: str) -> list[str]:
    found = []
    for record in records:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        if secret in text:
            found.append(f"{record.name} {record.levelname}: {text[:160]}")
    return found


async def test_the_token_is_in_no_log_record_and_no_message_at_debug_level(
    api: BotApiStub,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = api.token.split(":", 1)[1]
    with production_logging(caplog, api.token):
        bot = await RunningBot(api, database_url).start()
        try:
            await consent(bot)
            await answer_open_question(bot, CRAMP)
            api.fail_next("editMessageText", status=500)  # a delivery retried
            assert bot.core is not None
            with monkeypatch.context() as patch:  # a handler bug: a traceback in the log
                patch.setattr(bot.core.service, "handle", _raise)
                await bot.send("/check")
            await answer_open_question(bot, CRAMP)
            await bot.send("/start")
            await answer_all(bot, CRAMP)
            await bot.send("/export")
            await bot.send("what?")
        finally:
            await bot.stop()
    names = {r.name.split(".")[0] for r in caplog.records}
    assert {"bot", "telegram"} <= names, names
    assert any(r.levelno == logging.DEBUG for r in caplog.records)
    assert any(r.exc_info for r in caplog.records), "the failure was logged with its traceback"
    assert leaks(caplog.records, secret) == []
    for message in api.messages(CHAT):
        assert secret not in (message.plain_text or "")
        assert secret not in (message.text or "")
        assert "Traceback" not in (message.plain_text or "")
    assert all(secret not in json.dumps(c.params, default=str) for c in api.calls)


# === 8. only the person themself ================================================================


async def test_export_holds_only_the_persons_own_data(bot: RunningBot, api: BotApiStub) -> None:
    await consent(bot, chat=CHAT)
    await answer_all(bot, CRAMP, chat=CHAT)
    await consent(bot, chat=OTHER_CHAT)
    await answer_all(bot, CASE["classic_restless_legs"]["facts"], chat=OTHER_CHAT)
    theirs = state(bot, OTHER_CHAT)
    assert theirs is not None
    their_ids = {c["id"] for c in theirs["conversations"]}

    mark = api.mark()
    mine = await export_everything(bot, CHAT)
    assert_valid_export(mine)
    assert mine["user"]["external_id"] == str(CHAT)
    assert not their_ids & {c["id"] for c in mine["conversations"]}
    assert not their_ids & {m["conversation_id"] for m in mine["transcript"]}
    assert str(OTHER_CHAT) not in json.dumps(mine)
    assert [c["conclusion"]["pattern"] for c in mine["conversations"]] == ["leg_cramps"]
    assert all(
        m.get("chat", {}).get("id") != OTHER_CHAT
        for c in api.calls[mark:]
        if c.ok and isinstance(c.result, dict)
        for m in [c.result]
    )


async def test_another_persons_conversation_id_does_nothing(
    bot: RunningBot, api: BotApiStub
) -> None:
    await consent(bot, chat=OTHER_CHAT)
    await answer_open_question(bot, CRAMP, chat=OTHER_CHAT)
    theirs = open_question(bot, OTHER_CHAT)
    assert theirs is not None
    their_cid = conversation_of(theirs)
    await consent(bot, chat=CHAT)
    await answer_open_question(bot, CRAMP, chat=CHAT)
    mine = open_question(bot, CHAT)
    assert mine is not None and conversation_of(mine) != their_cid
    their_before, my_before = state(bot, OTHER_CHAT), state(bot, CHAT)

    mark = api.mark()
    for data in (
        f"a:{their_cid}:where:calf",
        f"back:{their_cid}",
        f"cancel:{their_cid}",
        f"t:{their_cid}:feeling:knot:1",
        f"d:{their_cid}:feeling",
    ):
        await bot.feed(api.feed_callback(CHAT, mine.message_id, data))
    assert all(t == views.STALE for t in bot.toasts(mark)), bot.toasts(mark)
    assert state(bot, OTHER_CHAT) == their_before
    assert state(bot, CHAT) == my_before
    assert not [c for c in api.calls[mark:] if c.params.get("chat_id") == OTHER_CHAT]


async def test_a_person_without_a_check_pressing_another_ones_button_changes_nothing(
    bot: RunningBot, api: BotApiStub
) -> None:
    await consent(bot, chat=OTHER_CHAT)
    theirs = open_question(bot, OTHER_CHAT)
    assert theirs is not None
    their_cid = conversation_of(theirs)
    their_before = state(bot, OTHER_CHAT)
    await consent(bot, chat=CHAT)
    await bot.send("/cancel", chat=CHAT)
    anchor = api.last_message(CHAT)
    assert anchor is not None
    for data in (f"a:{their_cid}:emergency_signs:none", f"back:{their_cid}"):
        await bot.feed(api.feed_callback(CHAT, anchor.message_id, data))
    assert state(bot, OTHER_CHAT) == their_before
    assert latest(bot, CHAT)["state"] == CANCELLED


# === 9. restarts =================================================================================


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_a_restart_mid_check_carries_on_at_the_same_question(
    api: BotApiStub, database_url: str, how: str
) -> None:
    first = await RunningBot(api, database_url).start()
    try:
        await consent(first)
        await answer_open_question(first, CRAMP)
        before = answered(first)
        question = open_question(first)
    finally:
        await (first.stop() if how == "stop" else first.kill())
    assert before == ["emergency_signs"]
    assert question is not None and question_id(question) == "feeling"

    second = await RunningBot(api, database_url).start()
    try:
        await bot_press_on(second, question, "knot")
        assert option_label(api.message(CHAT, question.message_id), "knot").startswith(views.TICKED)
        await second.press(done_label(api.message(CHAT, question.message_id)), message=question)
        assert answered(second) == [*before, "feeling"]
        await answer_all(second, CRAMP)
        conversation = latest(second)
        ids = [a["question_id"] for a in conversation["answers"]]
        assert len(ids) == len(set(ids)), "an answer was applied twice"
        assert conversation["conclusion"]["urgency"] == "self_care"
    finally:
        await second.stop()
    assert api.unanswered_callbacks() == []
    api.assert_no_violations()


async def bot_press_on(bot: RunningBot, message: SentMessage, option_id: str) -> None:
    current = bot.api.message(CHAT, message.message_id)
    await tap(bot, message, option_label(current, option_id))


@pytest.mark.parametrize("when", ["answerCallbackQuery", "editMessageText"])
async def test_a_kill_while_an_answer_is_handled_applies_it_once(
    api: BotApiStub, database_url: str, when: str
) -> None:
    first = await RunningBot(api, database_url).start()
    try:
        await consent(first)
        await answer_open_question(first, CRAMP)
        await answer_open_question(first, CRAMP)
        question = open_question(first)
        assert question is not None and question_id(question) == "where"
        mark = api.mark()
        pressed = await api.press(CHAT, "Hard to say", message=question)
        await api.wait_for_call(when, after=mark)
    finally:
        await first.kill()

    second = await RunningBot(api, database_url).start()
    try:
        await api.wait_until_confirmed(pressed)
        await second.settled()
        assert answered(second) == ["emergency_signs", "feeling", "where"]
        current = open_question(second)  # arrived by itself: nobody typed anything
        assert current is not None and question_id(current) == "timing"
        await answer_all(second, CRAMP)
        ids = [a["question_id"] for a in latest(second)["answers"]]
        assert ids.count("where") == 1
        assert latest(second)["conclusion"]["urgency"] == "self_care"
    finally:
        await second.stop()
    # A kill after the edit or the button's answer repeats it after the restart: the same
    # text again, or an answer Telegram refuses as too old; neither is seen.
    api.violations[:] = [v for v in api.violations if "query is too old" not in v]
    tolerate_not_modified(api)
    api.assert_no_violations()


# === 10. country and emergency number ============================================================


def country_questions(api: BotApiStub, chat: int = CHAT) -> list[SentMessage]:
    """Messages that asked for the country on their own (now or before an edit): settings
    screens and the introduction's list aside."""

    def asks(markup: dict[str, Any] | None) -> bool:
        actions = {
            key.action
            for _, data in api.buttons(markup)
            if isinstance(key := decode(data), MenuKey)
        }
        return "countries" in actions and not actions & {"export", "consent"}

    return [
        m
        for m in api.messages(chat)
        if asks(m.reply_markup) or any(asks(markup) for _, markup in m.history)
    ]


def agree_in(country: str, language_code: str = "en") -> str:
    """The introduction's "OK, country" button, in the language of the person's app."""
    lang = pick(language_code)
    name = NUMBERS.countries[country].name_in(lang)
    return texts_in(lang).chat.text("consent", "agree_in", country=name)


@pytest.mark.parametrize(
    ("language_code", "country"),
    [("en-GB", "GB"), ("de", "DE"), ("en-US", "US"), ("ja", None), ("en", None)],
)
async def test_the_introduction_suggests_the_country_of_the_telegram_language(
    bot: RunningBot, language_code: str, country: str | None
) -> None:
    [intro] = await bot.send("/start", language_code=language_code)
    labels = [t for t, _ in intro.buttons]
    consent = texts_in(pick(language_code)).chat
    others = [consent.text("consent", k) for k in ("agree_choose", "agree_skip", "decline")]
    if country is None:
        assert labels == others
    else:
        assert labels == [agree_in(country, language_code), *others]
    assert user_id(bot) is None, "nothing stored before the tap"


async def test_a_new_uk_persons_first_urgent_result_names_999_and_111(
    bot: RunningBot, api: BotApiStub
) -> None:
    await bot.send("/start", language_code="en-GB")
    shown = await bot.press(agree_in("GB"))
    assert question_id(shown[-1]) == "emergency_signs", "agreeing and the country: one tap"
    assert state(bot)["user"]["country"] == "GB"  # type: ignore[index]
    await answer_all(bot, CASE["rest_pain_burning_worse_raised"]["facts"])
    [result] = outcomes(api)
    assert headline_of(result) is Urgency.URGENT
    text = result.plain_text or ""
    uk = NUMBERS.countries["GB"]
    assert uk.number in text and "111" in text, text
    for other in ("911", "000"):
        assert other not in text, f"{other} shown though the country is known"
    assert country_questions(api) == [], "the country is never asked on its own"


async def test_another_country_from_the_list_agrees_in_the_same_tap(
    bot: RunningBot, api: BotApiStub
) -> None:
    [intro] = await bot.send("/start")
    await bot.press(CHOOSE_COUNTRY, message=intro)
    assert user_id(bot) is None, "the list stores nothing"
    await bot.press(CHAT_BOOK.text("consent", "back"), message=intro)
    assert api.message(CHAT, intro.message_id).plain_text == plain(views.INTRO.text)
    await bot.press(CHOOSE_COUNTRY, message=intro)
    listed = api.message(CHAT, intro.message_id)
    assert NUMBERS.countries["NZ"].name in [t for t, _ in listed.buttons]
    shown = await bot.press(NUMBERS.countries["NZ"].name, message=intro)
    assert shown[-1].message_id == intro.message_id
    assert question_id(shown[-1]) == "emergency_signs"
    assert state(bot)["user"]["country"] == "NZ"  # type: ignore[index]
    await answer_all(bot, CASE["swollen_warm_red_calf_after_a_flight"]["facts"])
    [emergency] = outcomes(api)
    assert headline_of(emergency) is Urgency.EMERGENCY
    number = NUMBERS.countries["NZ"].number
    assert f"Call {number} if you cannot get there safely" in (emergency.plain_text or "")
    assert "911" not in (emergency.plain_text or "")


async def test_skipping_the_country_lists_the_common_numbers_and_asks_no_more(
    bot: RunningBot, api: BotApiStub
) -> None:
    await consent(bot)
    assert state(bot)["user"]["country"] is None  # type: ignore[index]
    await answer_all(bot, CASE["swollen_warm_red_calf_after_a_flight"]["facts"])
    [emergency] = outcomes(api)
    assert BOOK.emergency_line(None) in (emergency.plain_text or "")
    await bot.send("/check")
    await answer_all(bot, CRAMP)
    assert country_questions(api) == []


async def test_settings_shows_and_changes_the_country(bot: RunningBot, api: BotApiStub) -> None:
    await consent(bot)
    shown = await bot.send("/settings")
    assert texts(shown) == [plain(views.settings_screen(None).text)]
    await bot.press(CHANGE_COUNTRY, message=shown[-1])
    france = NUMBERS.countries["FR"]
    shown = await bot.press(france.name, message=shown[-1])
    assert france.number in (shown[-1].plain_text or "")
    assert state(bot)["user"]["country"] == "FR"  # type: ignore[index]
    shown = await bot.send("/settings")
    assert france.name in (shown[-1].plain_text or "")
    assert france.number in (shown[-1].plain_text or "")
    await bot.press(CHANGE_COUNTRY, message=shown[-1])
    await bot.press("My country is not listed", message=shown[-1])
    assert state(bot)["user"]["country"] is None  # type: ignore[index]
    shown = await bot.send("/settings")
    assert "not set" in (shown[-1].plain_text or "")


async def test_export_offers_pdf_zip_and_json_and_each_file_is_the_persons_own(
    bot: RunningBot, api: BotApiStub
) -> None:
    await consent(bot)
    await answer_all(bot, CRAMP)
    [menu] = await bot.send("/export")
    labels = [text for text, _ in api.buttons(menu)]
    assert {"🩺 PDF · 30 days", "🗂 ZIP · all", "🧾 Data (JSON) · all"} <= set(labels)
    sent = {}
    for label in ("🩺 PDF · 30 days", "🧾 Data (JSON) · all"):
        mark = api.mark()
        await bot.press(label, message=menu)
        [upload] = [c for c in api.calls[mark:] if c.method == "sendDocument" and c.ok]
        sent[label] = upload.params["document"]
    pdf = sent["🩺 PDF · 30 days"]
    assert pdf.filename.endswith(".pdf")
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.data)).pages)
    assert "self-report" in text
    assert str(CHAT) not in text
    document = sent["🧾 Data (JSON) · all"]
    assert document.filename.endswith(".json")
    data = json.loads(document.data.decode("utf-8"))
    assert_valid_export(data)
    assert data["conversations"][0]["conclusion"]["pattern"] == "leg_cramps"


async def test_emergency_advice_is_not_followed_by_the_country_question(
    bot: RunningBot, api: BotApiStub
) -> None:
    await consent(bot)
    await bot.press(views.UNTICKED + "Chest pain or breathless")
    shown = await bot.press("Done ➡️")
    assert any("Get emergency help now" in (m.plain_text or "") for m in shown)
    assert not any("which country" in (m.plain_text or "") for m in shown)
    assert state(bot, CHAT) is not None


# === 11. spec v3: no more messages than taps, typed words heard, a note for the doctor ==========


def taps_since(api: BotApiStub, mark: int) -> int:
    """Button presses since `mark` (each is answered once, and that answer is no message)."""
    return sum(1 for c in api.calls[mark:] if c.method == "answerCallbackQuery")


@pytest.mark.parametrize("case_id", ONE_PER_URGENCY)
async def test_a_whole_first_check_costs_at_most_one_call_per_tap_plus_two(
    bot: RunningBot, api: BotApiStub, case_id: str
) -> None:
    mark = api.mark()
    await bot.send("/start", language_code="en-GB")
    await bot.press(agree_in("GB"))
    await answer_all(bot, CASE[case_id]["facts"])
    taps = taps_since(api, mark)
    calls = chat_bound(api, mark)
    assert [r for r in outcomes(api)], "the check ended with a result"
    assert taps >= 3
    assert len(calls) <= taps + 2, (taps, calls)
    # what it is today: the introduction, then one edit per tap
    assert calls == ["sendMessage"] + ["editMessageText"] * taps, calls


def result_line(bot: RunningBot, country: str | None = None) -> str:
    """The newest result in one line, as the bot words it (spec v3 item 10)."""
    conclusion = latest(bot)["conclusion"]
    advice = BOOK.advise(
        Conclusion(
            Pattern(conclusion["pattern"]),
            Urgency(conclusion["urgency"]),
            tuple(conclusion["red_flags"]),
        ),
        latest(bot)["findings"],
        emergency_number=NUMBERS.number(country),
        urgent_care=NUMBERS.urgent_care(country),
    )
    return one_line(advice)


async def test_a_typed_question_after_a_result_gets_a_kind_reply_with_the_result_and_who_can_answer(
    bot: RunningBot, api: BotApiStub
) -> None:
    await bot.send("/start", language_code="en-GB")
    await bot.press(agree_in("GB"))
    await answer_all(bot, CASE["rest_pain_burning_worse_raised"]["facts"])
    before = state(bot)
    shown = await bot.send("I'm in the UK, should I ring 111 now?")
    [reply] = shown
    text = reply.plain_text or ""
    assert "can't answer typed questions" in text
    assert result_line(bot, "GB") in text
    assert NUMBERS.urgent_care("GB") in text and "pharmacist" in text
    assert "Type 'check'" not in text and not text.startswith(views.NO_CHECK)
    assert NOTE in [t for t, _ in reply.buttons]
    assert state(bot) == before, "a typed question changes nothing stored but the transcript"


async def test_a_typed_question_without_a_country_names_the_prescriber_and_a_pharmacist(
    bot: RunningBot,
) -> None:
    await consent(bot)
    await answer_all(bot, CRAMP)
    [reply] = await bot.send("should I take my statin tonight?")
    text = reply.plain_text or ""
    assert result_line(bot) in text
    assert CHAT_BOOK.text("typed", "who_without_line") in text


async def test_text_with_no_check_open_gets_a_helpful_reply_and_a_way_to_start(
    bot: RunningBot, api: BotApiStub
) -> None:
    await consent(bot)
    await bot.send("/cancel")
    [reply] = await bot.send("hello, is anyone there?")
    assert reply.plain_text == NO_CHECK_REPLY
    start = CHAT_BOOK.text("typed", "start_check")
    shown = await bot.press(start, message=reply)
    assert question_id(shown[-1]) == "emergency_signs"


async def test_text_inside_a_question_is_answered_kindly_with_the_question_and_the_note_hint(
    bot: RunningBot,
) -> None:
    await consent(bot)
    await answer_open_question(bot, CRAMP)
    [reply] = await bot.send("both calves for the jitters, the left one for the walking ache")
    text = reply.plain_text or ""
    assert text.startswith(IN_QUESTION)
    assert "note" in IN_QUESTION and "doctor" in IN_QUESTION
    assert question_id(reply) == "feeling", "the question again, in the same message"


NOTE_WORDS = "I had a hip operation 9 days ago & flew home from Spain <on Monday>"


async def add_note(bot: RunningBot, api: BotApiStub, words: str = NOTE_WORDS) -> SentMessage:
    """Press the note button under the result and type `words`; the bot's reply."""
    [result] = outcomes(api)
    [prompt] = await bot.press(NOTE, message=result)
    assert (prompt.plain_text or "") == CHAT_BOOK.text("note", "prompt")
    [saved] = await bot.send(words)
    return saved


async def test_a_note_for_the_doctor_is_kept_and_reaches_transcript_pdf_and_fhir(
    bot: RunningBot, api: BotApiStub
) -> None:
    await consent(bot)
    await answer_all(bot, CRAMP)
    saved = await add_note(bot, api)
    assert (saved.plain_text or "") == CHAT_BOOK.text("note", "saved", note=NOTE_WORDS)
    assert latest(bot)["note"] == NOTE_WORDS

    mark = api.mark()
    await bot.send("/export")
    await bot.press("🗂 ZIP · all")
    [upload] = [c for c in api.calls[mark:] if c.method == "sendDocument" and c.ok]
    with zipfile.ZipFile(io.BytesIO(upload.params["document"].data)) as bundle:
        data = json.loads(bundle.read("nightlegs-export.json"))
        transcript = bundle.read("transcript.txt").decode()
        fhir = json.loads(bundle.read("fhir-bundle.json"))
        pdf = PdfReader(io.BytesIO(bundle.read("doctor-summary.pdf")))
    assert_valid_export(data)
    assert data["conversations"][-1]["note"] == NOTE_WORDS
    assert NOTE_WORDS in transcript
    items = fhir["entry"][0]["resource"]["item"]
    [note] = [item for item in items if item["linkId"] == "note.for_doctor"]
    assert note["answer"] == [{"valueString": NOTE_WORDS}]
    pdf_text = " ".join(" ".join(page.extract_text().split()) for page in pdf.pages)
    assert "for the doctor" in pdf_text
    assert "hip operation 9 days ago" in pdf_text and "Spain <on Monday>" in pdf_text

    uid = user_id(bot)
    assert uid is not None
    await bot.send("/delete")
    await bot.press(ERASE)
    assert not any(row_counts(bot, uid).values())
    assert state(bot) is None


async def test_skipping_the_note_keeps_none_and_later_words_get_the_kind_reply(
    bot: RunningBot, api: BotApiStub
) -> None:
    await consent(bot)
    await answer_all(bot, CRAMP)
    [result] = outcomes(api)
    [prompt] = await bot.press(NOTE, message=result)
    await bot.press(CHAT_BOOK.text("note", "skip"), message=prompt)
    assert api.message(CHAT, prompt.message_id).plain_text == CHAT_BOOK.text("note", "skipped")
    [reply] = await bot.send("is it my back?")
    assert "can't answer typed questions" in (reply.plain_text or "")
    assert latest(bot)["note"] is None


async def test_typed_danger_while_the_note_is_asked_gets_emergency_advice_not_a_note(
    bot: RunningBot, api: BotApiStub
) -> None:
    await consent(bot)
    await answer_all(bot, CRAMP)
    [result] = outcomes(api)
    await bot.press(NOTE, message=result)
    shown = await bot.send("chest pain")
    assert HEADLINES[Urgency.EMERGENCY] in (shown[0].plain_text or "")
    assert latest(bot)["note"] is None


async def test_a_forged_note_button_gets_a_toast_and_stores_nothing(
    bot: RunningBot, api: BotApiStub
) -> None:
    await consent(bot)
    await answer_all(bot, CRAMP)
    for data in ("m:note:999999", "m:note:abc", "m:nskip:1x", "m:note"):
        [result] = outcomes(api)
        mark = api.mark()
        update = api.feed_callback(CHAT, result.message_id, data)
        await bot.feed(update)
        assert bot.toasts(mark) in ([views.EXPIRED], [None]), data
    await bot.send("an ordinary question?")
    assert latest(bot)["note"] is None


async def test_skip_after_the_note_was_given_keeps_it(bot: RunningBot, api: BotApiStub) -> None:
    await consent(bot)
    await answer_all(bot, CRAMP)
    [result] = outcomes(api)
    [prompt] = await bot.press(NOTE, message=result)
    await bot.send("it started after my new statin")
    mark = api.mark()
    await bot.press(CHAT_BOOK.text("note", "skip"), message=prompt)
    assert bot.toasts(mark) == [views.ALREADY]
    assert latest(bot)["note"] == "it started after my new statin"
