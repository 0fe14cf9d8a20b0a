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
from dialogs.countries import EmergencyNumbers
from dialogs.engine import Flow, Prompt
from dialogs.records import CANCELLED, FINAL_STATES, AnswerRecord, Conclusion
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
SKIP_COUNTRY = label(views.country_question(None, reason="?"), MenuKey("country", "none"))
OTHER_COUNTRY = label(views.country_question(None, reason="?"), MenuKey("countries"))


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
            await tap(bot, message, option_label(current, option_id), chat=chat)
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
    assert [text for text, _ in shown[-1].buttons] == [CONSENT, DECLINE]
    for said in ("/check", "my calf hurts", "/export", "/help", "/settings", "/back"):
        await bot.send(said)
    assert user_id(bot) is None, "a row was stored before consent"


async def test_no_question_is_asked_before_consent(bot: RunningBot) -> None:
    shown = await bot.send("/check")
    assert not any(is_question(m) for m in shown)
    assert texts(shown)[0] == views.NEED_CONSENT
    assert shown[-1].buttons[0][0] == CONSENT
    assert user_id(bot) is None


async def test_declining_stores_nothing_and_start_asks_again(bot: RunningBot) -> None:
    await bot.send("/start")
    shown = await bot.press(DECLINE)
    assert texts(shown) == [views.DECLINED.text]
    assert not shown[-1].has_inline_keyboard
    assert user_id(bot) is None
    shown = await bot.send("/start")
    assert shown[-1].buttons[0][0] == CONSENT


async def test_consent_starts_the_check_at_the_safety_screen(bot: RunningBot) -> None:
    shown = await consent(bot)
    assert "Agreed" in (shown[0].plain_text or "") and not shown[0].has_inline_keyboard
    assert question_id(shown[-1]) == FLOW.content.questions[0].id
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
    assert shown[-1].buttons[0][0] == CONSENT
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
    assert texts(shown) == [views.NO_CHECK]


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


async def test_a_result_goes_first_and_the_rest_of_the_reply_trails_it(
    bot: RunningBot, api: BotApiStub
) -> None:
    await consent(bot)
    await answer_all(bot, CRAMP)  # the first result: the country question comes too
    assert bot.core is not None
    with bot.core.store.engine.connect() as connection:
        last = connection.execute(
            select(OutboxMessage.kind, OutboxMessage.lane)
            .where(OutboxMessage.chat_id == CHAT)
            .order_by(OutboxMessage.id.desc())
            .limit(3)
        ).all()
    # The result (what the person taps next) is the reply; closing the check's message and
    # asking the country trail it, so they never hold up another person's next question.
    assert [tuple(row) for row in reversed(last)] == [
        ("send", "reply"),
        ("edit", "trail"),
        ("send", "trail"),
    ]
    [result] = outcomes(api)
    assert api.messages(CHAT)[-1].message_id > result.message_id  # the country question


# === 5. bad input ================================================================================


async def test_free_text_during_a_question_reminds_and_asks_again(
    bot: RunningBot, api: BotApiStub
) -> None:
    await consent(bot)
    await answer_open_question(bot, CRAMP)
    before = state(bot)
    shown = await bot.send("my left calf, I think?")
    assert texts(shown)[0] == views.USE_BUTTONS
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
    assert views.USE_BUTTONS not in (advice.plain_text or "")
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
        assert texts(shown)[0] == views.USE_BUTTONS, text
    assert state(bot) == before, "typing changed nothing about the open check"


@pytest.mark.parametrize("text", TYPED_HARMLESS)
async def test_ordinary_or_negated_words_get_the_usual_reminder(bot: RunningBot, text: str) -> None:
    await consent(bot)
    await answer_open_question(bot, CRAMP)
    shown = await bot.send(text)
    assert texts(shown)[0] == views.USE_BUTTONS
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
    for data in [*GARBAGE, "a:1:dangling:no", "t:1:feeling:knot:1", "back:1", "m:new"]:
        await bot.feed(api.feed_callback(CHAT, shown[-1].message_id, data))
    assert len(bot.toasts(mark)) == len(GARBAGE) + 4
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
    assert texts(shown)[0] == views.USE_BUTTONS
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
        pressed = await api.press(CHAT, "Calf", message=question)
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
    """Messages that asked for the country (now or before an edit), settings screens aside."""

    def asks(markup: dict[str, Any] | None) -> bool:
        actions = {
            key.action
            for _, data in api.buttons(markup)
            if isinstance(key := decode(data), MenuKey)
        }
        return "countries" in actions and "export" not in actions

    return [
        m
        for m in api.messages(chat)
        if asks(m.reply_markup) or any(asks(markup) for _, markup in m.history)
    ]


async def test_the_country_is_asked_once_after_the_first_result(
    bot: RunningBot, api: BotApiStub
) -> None:
    await consent(bot)
    assert country_questions(api) == []
    await answer_all(bot, CRAMP, language_code="de")
    [asked] = country_questions(api)
    germany = NUMBERS.countries["DE"]
    assert f"📍 {germany.name}" in [t for t, _ in asked.buttons]
    shown = await bot.press(f"📍 {germany.name}", message=asked)
    assert germany.number in (shown[-1].plain_text or "")
    assert not api.message(CHAT, asked.message_id).has_inline_keyboard
    assert state(bot)["user"]["country"] == "DE"  # type: ignore[index]

    await bot.send("/check")
    await answer_all(bot, CRAMP)
    assert len(outcomes(api)) == 2
    assert len(country_questions(api)) == 1, "asked again"


async def test_skipping_the_country_is_not_asked_again(bot: RunningBot, api: BotApiStub) -> None:
    await consent(bot)
    await answer_all(bot, CRAMP)
    [asked] = country_questions(api)
    await bot.press(SKIP_COUNTRY, message=asked)
    assert state(bot)["user"]["country"] is None  # type: ignore[index]
    await bot.send("/check")
    await answer_all(bot, CRAMP)
    assert len(country_questions(api)) == 1


async def test_a_chosen_country_puts_its_number_in_the_emergency_advice(
    bot: RunningBot, api: BotApiStub
) -> None:
    await consent(bot)
    await answer_all(bot, CRAMP)
    [asked] = country_questions(api)
    await bot.press(OTHER_COUNTRY, message=asked)
    await bot.press(NUMBERS.countries["NZ"].name, message=asked)
    assert state(bot)["user"]["country"] == "NZ"  # type: ignore[index]
    await bot.send("/check")
    await answer_all(bot, CASE["swollen_warm_red_calf_after_a_flight"]["facts"])
    emergency = outcomes(api)[-1]
    assert headline_of(emergency) is Urgency.EMERGENCY
    expected = BOOK.emergency_line(NUMBERS.countries["NZ"].number)
    assert expected in (emergency.plain_text or ""), emergency.plain_text


async def test_without_a_country_the_emergency_advice_names_the_common_numbers(
    bot: RunningBot, api: BotApiStub
) -> None:
    await consent(bot)
    await answer_all(bot, CASE["swollen_warm_red_calf_after_a_flight"]["facts"])
    [emergency] = outcomes(api)
    assert BOOK.emergency_line(None) in (emergency.plain_text or "")


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
