"""Every person in their own language, end to end: the real Telegram application against the
Bot API stand-in, used by a person whose app is set to German, Spanish, Brazilian Portuguese
or Russian.

They agree (the country of their language suggested, named in it), go through a whole check
to its result, and switch language with /language; everything the bot sent them (texts,
buttons, notices) is in their language, with no English word in it. Until a language's
catalog is translated its tests are expected to fail (they pass once it lands).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from bot.telegram import render as views
from bot.telegram.app import COMMAND_NAMES
from bot.telegram.keys import AnswerKey, DoneKey, MenuKey, decode, encode
from bot.telegram.turn import plain
from dialogs import i18n
from dialogs.countries import EmergencyNumbers
from dialogs.engine import Flow
from dialogs.i18n import NAMES, pick
from dialogs.texts import texts
from storage import UserInfo
from tests.botapi_stub import BotApiStub, SentMessage
from tests.cases import CASES
from tests.telegram_harness import CHAT, RunningBot
from tests.test_telegram_e2e import open_question, question_id, state
from tests.walker import Facts, plan_answer

FLOW = Flow.load("triage")
NUMBERS = EmergencyNumbers.load()
CASE = {c["id"]: c for c in CASES}
URGENT = CASE["rest_pain_burning_worse_raised"]["facts"]
"""A check whose result is urgent: it names the emergency number and more."""

PEOPLE = [("de", "DE"), ("es", "ES"), ("pt-br", "BR"), ("ru", "RU")]
"""Telegram's language_code of each person, and the country it suggests."""

_COMMON = (
    "the and you your to of with is are pain leg legs night doctor check yes no not please "
    "what when call help now tap answer if it this that for from can have has don't "
    "i'm i'll can't here there which who how before after again start stop back cancel "
    "country number emergency result note keep skip choose language settings"
)
ENGLISH = frozenset(_COMMON.split())
"""Common English words: none of them appears, as a whole word, in what a person reads."""
LOANWORDS = {
    "de": {"check", "start", "restless", "legs"},
    "es": {"no"},
    "pt": {"no", "for"},
    "ru": set(),
}
"""Words that are the language's own too ("no" in Spanish, "for" in Portuguese), or a loanword
it uses ("Restless Legs" is the usual German name)."""
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
_IGNORED = re.compile(r"https?://\S+|/[a-z_]+|\bnightlegs\b")
"""The bot's name, /commands and URLs are the same in every language."""


def other_language(lang: str) -> str:
    """A language to switch to and back from: Russian, or for a Russian reader, German."""
    return "de" if lang == "ru" else "ru"


# --- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
async def api() -> AsyncIterator[BotApiStub]:
    async with BotApiStub() as stub:
        yield stub


@pytest.fixture
async def bot(api: BotApiStub, database_url: str) -> AsyncIterator[RunningBot]:
    running = await RunningBot(api, database_url).start()
    try:
        yield running
    finally:
        await running.stop()
    assert api.unanswered_callbacks() == [], "a button press was left spinning"
    api.assert_no_violations()


async def tap(
    bot: RunningBot, message: SentMessage, data: str, code: str, chat: int = CHAT
) -> list[SentMessage]:
    """Press the button carrying `data` on `message`, from an app set to `code`."""
    current = bot.api.message(chat, message.message_id)
    assert data in [d for _, d in current.buttons], current.buttons
    update = bot.api.feed_callback(chat, message.message_id, data, language_code=code)
    return await bot.feed(update, chat)


def data_with(message: SentMessage, key: object) -> str:
    data = encode(key)  # type: ignore[arg-type]
    assert data in [d for _, d in message.buttons], (data, message.buttons)
    return data


def person(bot: RunningBot, chat: int = CHAT) -> UserInfo:
    assert bot.core is not None
    with bot.core.store.transaction() as repo:
        found = repo.find_user("telegram", str(chat))
    assert found is not None
    return found


def label_of(message: SentMessage, data: str) -> str:
    return next(text for text, d in message.buttons if d == data)


async def answer_all(bot: RunningBot, facts: Facts, code: str) -> list[str]:
    """Answer every question by its buttons (by ids, whatever their labels say)."""
    asked: list[str] = []
    for _ in range(len(FLOW.content.questions) + 1):
        message = open_question(bot)
        if message is None:
            return asked
        question = FLOW.content.question(question_id(message))
        assert question is not None
        plan = plan_answer(question, facts)
        if plan.ticks:
            for option_id in plan.option_ids:
                current = bot.api.message(CHAT, message.message_id)
                ticks = [
                    d
                    for _, d in current.buttons
                    if isinstance(k := decode(d), AnswerKey) and k.option_id == option_id
                ]
                await tap(bot, message, ticks[0], code)
            current = bot.api.message(CHAT, message.message_id)
            done = next(d for _, d in current.buttons if isinstance(decode(d), DoneKey))
            await tap(bot, message, done or "", code)
        else:
            option = next(
                d
                for _, d in message.buttons
                if isinstance(k := decode(d), AnswerKey) and k.option_id == plan.option_id
            )
            await tap(bot, message, option or "", code)
        asked.append(question.id)
    raise AssertionError(f"the check never ended: {asked}\n{bot.api.transcript(CHAT)}")


def everything_read(api: BotApiStub, mark: int = 0, chat: int = CHAT) -> list[str]:
    """Every text and button label the bot sent to the chat (each version of each message),
    and every notice it answered a press with."""
    read: list[str] = []
    for message in api.messages(chat):
        if not message.from_bot:
            continue
        versions = [*message.history, (message.text or message.caption, message.reply_markup)]
        for text, markup in versions:
            read.append(plain(text or ""))
            read.extend(label for label, _ in BotApiStub.buttons(markup))
    read.extend(
        str(c.params.get("text"))
        for c in api.calls[mark:]
        if c.method == "answerCallbackQuery" and c.params.get("text")
    )
    return read


def english_in(lines: list[str], *langs: str) -> list[tuple[str, str]]:
    """(word, where) for each common English word found as a whole word in what was read in
    `langs` (their own words aside)."""
    allowed = set().union(*(LOANWORDS.get(lang, set()) for lang in langs))
    found = []
    for line in lines:
        for word in _WORD.findall(_IGNORED.sub(" ", line)):
            lowered = word.lower()
            if lowered in ENGLISH and lowered not in allowed:
                found.append((word, line[:80]))
    return found


# --- a whole check in each language ----------------------------------------------------------


async def whole_check(bot: RunningBot, api: BotApiStub, code: str, country: str) -> None:
    """Consent with the suggested country, a whole check to its result, /help and /settings,
    and /language to another language and back, with a check open."""
    lang = pick(code)
    t = texts(lang)
    [intro] = await bot.send("/start", language_code=code)
    name = NUMBERS.countries[country].name_in(lang)
    agree = data_with(intro, MenuKey("consent", country))
    assert label_of(intro, agree) == t.chat.text("consent", "agree_in", country=name)
    assert plain(intro.text or "") == plain(views.intro(NUMBERS.countries[country], t).text)
    await tap(bot, intro, agree, code)
    assert state(bot)["user"]["country"] == country  # type: ignore[index]
    await answer_all(bot, URGENT, code)
    data = state(bot)
    assert data is not None and data["conversations"][-1]["conclusion"] is not None
    result = api.messages(CHAT)[-1]
    number = NUMBERS.countries[country].number_in(lang)
    assert number in (result.plain_text or ""), result.plain_text

    await bot.send("/help", language_code=code)
    [settings] = await bot.send("/settings", language_code=code)
    languages = data_with(settings, MenuKey("lang"))
    assert label_of(settings, languages) == t.screens.text("language", "button")
    await tap(bot, settings, languages, code)
    listed = api.message(CHAT, settings.message_id)
    assert [label.removeprefix(views.TICKED) for label, _ in listed.buttons] == list(NAMES.values())

    # With a check open, to another language: confirmed in it, the question shown again in it.
    await bot.send("/check", language_code=code)
    other = other_language(lang)
    [chooser] = await bot.send("/language", language_code=code)
    shown = await tap(bot, chooser, data_with(chooser, MenuKey("lang", other)), code)
    assert plain(shown[0].text or "") == texts(other).screens.text("language", "changed")
    question = open_question(bot)
    assert question is not None and question.message_id == shown[-1].message_id
    asked = texts(other).question("triage", question_id(question)).text
    assert asked in (question.plain_text or "")
    assert person(bot).language == other

    # And back: the rest of the check in the person's own language.
    [chooser] = await bot.send("/language", language_code=code)
    await tap(bot, chooser, data_with(chooser, MenuKey("lang", lang)), code)
    await answer_all(bot, URGENT, code)


@pytest.mark.parametrize(
    ("code", "country"),
    [pytest.param(c, k, id=pick(c)) for c, k in PEOPLE],
)
async def test_a_whole_check_in_the_persons_language_has_no_english_word(
    bot: RunningBot, api: BotApiStub, code: str, country: str
) -> None:
    await whole_check(bot, api, code, country)
    lang = pick(code)
    read = everything_read(api)
    assert english_in(read, lang, other_language(lang)) == []
    commands = api.commands(language_code=lang)
    assert english_in([d for _, d in commands], lang) == []


# --- the plumbing, in every language (whether translated or not) ------------------------------


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
async def test_the_command_menu_is_registered_in_every_language(
    bot: RunningBot, api: BotApiStub, lang: str
) -> None:
    t = texts(lang)
    expected = [(name, t.screens.text("commands", name)) for name in COMMAND_NAMES]
    assert api.commands(language_code="" if lang == "en" else lang) == expected


async def test_language_stores_the_choice_and_the_app_language_is_followed_until_then(
    bot: RunningBot, api: BotApiStub
) -> None:
    [intro] = await bot.send("/start", language_code="en")
    await tap(bot, intro, data_with(intro, MenuKey("consent")), "en")
    assert person(bot).language_code == "en"
    # The app switched to Russian: the bot follows it (and remembers it for later messages).
    await bot.send("/help", language_code="ru")
    assert person(bot).language_code == "ru"
    assert api.messages(CHAT)[-1].plain_text == plain(views.help_screen(texts("ru")).text)
    # Chosen with /language: kept, whatever the app says.
    [chooser] = await bot.send("/language", language_code="ru")
    assert [b.removeprefix(views.TICKED) for b, _ in chooser.buttons] == list(NAMES.values())
    assert chooser.buttons[list(NAMES).index("ru")][0].startswith(views.TICKED)
    done, *_ = await tap(bot, chooser, data_with(chooser, MenuKey("lang", "es")), "ru")
    assert done.plain_text == texts("es").screens.text("language", "changed")
    assert person(bot).language == "es"
    await bot.send("/help", language_code="de")
    assert api.messages(CHAT)[-1].plain_text == plain(views.help_screen(texts("es")).text)
    assert person(bot).language_code == "ru", "a chosen language is not followed"


async def test_a_forged_language_gets_a_notice_and_changes_nothing(
    bot: RunningBot, api: BotApiStub
) -> None:
    [intro] = await bot.send("/start")
    await tap(bot, intro, data_with(intro, MenuKey("consent")), "en")
    [chooser] = await bot.send("/language")
    mark = api.mark()
    update = api.feed_callback(CHAT, chooser.message_id, encode(MenuKey("lang", "fr")))
    await bot.feed(update)
    assert bot.toasts(mark) == [views.notice("EXPIRED")]
    assert person(bot).language is None


@pytest.mark.parametrize(("code", "country"), [("pt-br", "BR"), ("pt-PT", "PT"), ("es-MX", "MX")])
async def test_the_country_of_the_language_is_suggested_in_its_name(
    bot: RunningBot, code: str, country: str
) -> None:
    [intro] = await bot.send("/start", language_code=code)
    lang = pick(code)
    agree = data_with(intro, MenuKey("consent", country))
    name = i18n.country_name(country, lang)
    assert label_of(intro, agree) == texts(lang).chat.text("consent", "agree_in", country=name)
