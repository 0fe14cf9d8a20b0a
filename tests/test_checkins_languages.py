"""The diary and the follow-ups in the person's language.

A German or Russian person's check-in and follow-up are written in their language, also when a
job sends them (no update to read a language from: the stored person's). Each test checks the
words come from the person's language's texts; whether those texts are translated yet depends
on the catalogs, so the part that needs a translation is an expected failure while the catalog
lacks it. Russian plurals (1, 2, 5, 21 nights) are tested through a tiny catalog made here and,
when it has them, the real one. English is what the other diary and follow-up tests expect.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo

from bot.services.flow import Who
from bot.telegram.turn import plain
from dialogs import i18n, trends
from dialogs.advice import AdviceBook
from dialogs.nights import describe, night_name
from dialogs.records import Conclusion
from dialogs.texts import texts
from dialogs.trends import LOGGED, Night, count_nights, render_text, summarize
from dialogs.vocabulary import Pattern, Urgency
from dialogs.words import words
from tests.botapi_stub import BotApiStub, SentMessage
from tests.cases import CASES
from tests.clock import Clock
from tests.telegram_harness import CHAT, RunningBot
from tests.test_telegram_e2e import answer_all

BERLIN = ZoneInfo("Europe/Berlin")
CONSENT = "✅ OK, skip the country"
URGENT = {c["id"]: c for c in CASES}["rest_pain_burning_worse_raised"]["facts"]
LANGS = ("de", "ru")
TONIGHT = date(2026, 11, 18)


def translated(lang: str, english: str) -> bool:
    """Whether the language's catalog has a translation of an English text."""
    return i18n.translations(lang).gettext(english) != english


def needs(lang: str, english: str) -> None:
    """The rest of the test reads this text in the language: it must be translated."""
    assert translated(lang, english), f"{lang}: not translated: {english[:50]!r}"


# --- the bot ------------------------------------------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    """Wednesday 18 November 2026, noon in Berlin."""
    return Clock(datetime(2026, 11, 18, 11, 0, tzinfo=UTC))


@pytest.fixture
async def api() -> AsyncIterator[BotApiStub]:
    async with BotApiStub() as stub:
        yield stub


@pytest.fixture
async def bot(api: BotApiStub, database_url: str, clock: Clock) -> AsyncIterator[RunningBot]:
    mark = api.mark()
    running = await RunningBot(api, database_url, clock=clock).start()
    await api.wait_for_call("deleteWebhook", after=mark)
    assert running.application is not None and running.application.job_queue is not None
    for name in ("diary-dispatch", "followup-dispatch"):
        [job] = running.application.job_queue.get_jobs_by_name(name)
        job.enabled = False  # the tests run the dispatchers at the clock's "now"
    try:
        yield running
    finally:
        await running.stop()
        assert api.unanswered_callbacks() == [], "a button press was left spinning"
        api.assert_no_violations()


def speaks(bot: RunningBot, lang: str) -> None:
    """The person chose `lang` (as /language stores it)."""
    assert bot.core is not None
    assert bot.core.service.set_language(Who("telegram", str(CHAT)), lang) is not None


def sent_since(api: BotApiStub, mark: int) -> list[str]:
    """The messages sent to the person after `mark`, as they read them."""
    return [
        plain(c.params["text"])
        for c in api.calls[mark:]
        if c.method == "sendMessage" and c.ok and str(c.params.get("chat_id")) == str(CHAT)
    ]


def with_button(api: BotApiStub, label: str) -> SentMessage:
    found = [m for m in api.messages(CHAT) if label in [text for text, _ in m.buttons]]
    assert found, f"no button {label!r}\n{api.transcript(CHAT)}"
    return found[-1]


# --- the diary ----------------------------------------------------------------------------------


async def a_diary_at_half_past_nine(bot: RunningBot) -> None:
    """A person who agreed, left the check, and set their check-in to 21:30 in Berlin."""
    await bot.send("/start")
    await bot.press(CONSENT)
    await bot.send("/cancel")
    await bot.send("/diary 21:30 Europe/Berlin")


@pytest.mark.parametrize("lang", LANGS)
async def test_a_check_in_is_in_the_persons_language(
    bot: RunningBot, api: BotApiStub, clock: Clock, lang: str
) -> None:
    await a_diary_at_half_past_nine(bot)
    speaks(bot, lang)
    words_ = texts(lang).checkins

    [settings] = await bot.send("/diary")
    schedule = describe(datetime(2026, 1, 1, 21, 30).time(), BERLIN, lang)
    assert words_.text("settings", "enabled", schedule=schedule) in (settings.text or "")
    assert words_.text("settings", "stop") in [t for t, _ in settings.buttons]

    mark = api.mark()
    clock.at(BERLIN, 2026, 11, 18, 21, 30)
    assert await bot.dispatch_diary() == 1  # sent by the job: no update, the stored language
    [checkin] = sent_since(api, mark)
    header = words_.text("checkin", "header", night=night_name(TONIGHT, lang))
    assert checkin.startswith(header)
    assert night_name(TONIGHT, lang) in checkin  # the date as the language writes it
    question = texts(lang).question("diary", "symptoms").text
    assert question in checkin
    snooze = words_.text("checkin", "snooze_30")
    assert snooze in [t for t, _ in with_button(api, snooze).buttons]

    [snoozed] = await bot.press(snooze, message=with_button(api, snooze))
    assert snoozed.plain_text == words_.plural("checkin", "snoozed", n=30)

    needs(lang, words("checkins").text("checkin", "header"))
    english = words("checkins").text("checkin", "header", night=night_name(TONIGHT, "en"))
    assert not checkin.startswith(english[:10])
    assert snoozed.plain_text != words("checkins").plural("checkin", "snoozed", n=30)


@pytest.mark.parametrize("lang", LANGS)
async def test_the_summary_is_in_the_persons_language(
    bot: RunningBot, api: BotApiStub, clock: Clock, lang: str
) -> None:
    await a_diary_at_half_past_nine(bot)
    clock.at(BERLIN, 2026, 11, 18, 21, 30)
    assert await bot.dispatch_diary() == 1
    skip = words("checkins").text("checkin", "skip")
    await bot.press(skip, message=with_button(api, skip))
    speaks(bot, lang)

    mark = api.mark()
    await bot.send("/summary")
    [summary] = sent_since(api, mark)
    heading = words("checkins", lang).plural("trends", "heading", n=7)
    assert summary.startswith(heading)
    logged = words("checkins", lang).plural("trends", "logged", n=1, logged=0)
    assert logged in summary

    needs(lang, "Last {n} night")
    assert not summary.startswith("Last 7 nights")


# --- follow-ups ---------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
async def test_a_follow_up_is_in_the_persons_language(
    bot: RunningBot, api: BotApiStub, clock: Clock, lang: str
) -> None:
    clock.at(BERLIN, 2026, 11, 18, 22, 0)
    english = texts("en").followups
    await bot.send("/start")
    await bot.press(CONSENT)
    await bot.send("/diary 21:30 Europe/Berlin")
    await bot.send("/check")
    await answer_all(bot, URGENT)
    await bot.press(english.yes_label, message=with_button(api, english.yes_label))
    speaks(bot, lang)

    book = texts(lang).followups
    advice: AdviceBook = texts(lang).advice
    urgent = advice.advise(Conclusion(Pattern.UNCLEAR, Urgency.URGENT), {})
    mark = api.mark()
    clock.at(BERLIN, 2026, 11, 19, 9, 0)
    assert await bot.dispatch_followups() == 1  # sent by the job, in the stored language
    [asked] = sent_since(api, mark)
    question_text = book.question(urgent).text
    assert question_text.splitlines()[-1] in asked
    labels = dict(book.question(urgent).options)
    assert [t for t, _ in with_button(api, labels["not_yet"]).buttons] == list(labels.values())

    shown = await bot.press(labels["not_yet"], message=with_button(api, labels["not_yet"]))
    reply = shown[-1].plain_text or ""
    assert reply.startswith(book.reply("not_yet", urgent).text.splitlines()[0])
    assert book.new_check_label in [t for t, _ in shown[-1].buttons]

    needs(lang, english.question(urgent).text.replace(urgent.headline, "{headline}"))
    assert english.question(urgent).text.splitlines()[-1] not in asked


@pytest.mark.parametrize("lang", LANGS)
def test_the_offer_and_its_answers_come_from_the_persons_book(lang: str) -> None:
    book = texts(lang).followups
    offer = book.offer(Urgency.URGENT)
    assert offer is not None and offer.yes_label == book.yes_label
    needs(lang, texts("en").followups.yes_label)
    assert book.yes_label != texts("en").followups.yes_label


# --- plurals: Russian has three forms ----------------------------------------------------------

RUSSIAN_NIGHTS = {1: "1 ночь", 2: "2 ночи", 5: "5 ночей", 21: "21 ночь"}


@pytest.fixture
def tiny_russian(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A Russian catalog with only the diary's "{n} nights" and the summary's heading."""
    catalog = Catalog(locale="ru")
    catalog.add(("{n} night", "{n} nights"), ("{n} ночь", "{n} ночи", "{n} ночей"))
    catalog.add(
        ("Last {n} night", "Last {n} nights"),
        ("Последняя {n} ночь", "Последние {n} ночи", "Последние {n} ночей"),
    )
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    fake = gettext.GNUTranslations(buffer)
    real = i18n.translations
    monkeypatch.setattr(i18n, "translations", lambda lang: fake if lang == "ru" else real(lang))
    words.cache_clear()
    yield
    words.cache_clear()


@pytest.mark.parametrize(("n", "expected"), RUSSIAN_NIGHTS.items())
def test_russian_nights_take_three_forms(tiny_russian: None, n: int, expected: str) -> None:
    assert count_nights(n, "ru") == expected


def test_the_russian_summary_heading_agrees_with_its_number(tiny_russian: None) -> None:
    night = Night(TONIGHT, LOGGED, {"cramps": True})
    week = summarize([night], today=TONIGHT, days=7)
    month = summarize([night], today=TONIGHT, days=30)
    lines = render_text(week, month, [], lang="ru").splitlines()
    assert "Последние 7 ночей" in lines
    assert "Последние 30 ночей" in lines
    assert trends.count_nights(21, "ru") == "21 ночь"


@pytest.mark.parametrize(("n", "expected"), RUSSIAN_NIGHTS.items())
def test_russian_nights_in_the_real_catalog(n: int, expected: str) -> None:
    needs("ru", "{n} night")
    word = count_nights(n, "ru").split()[-1]
    assert count_nights(n, "ru").startswith(f"{n} ")
    forms = {count_nights(k, "ru").split()[-1] for k in RUSSIAN_NIGHTS}
    assert len(forms) == 3, forms
    assert (word == count_nights(1, "ru").split()[-1]) == (n % 10 == 1 and n % 100 != 11)


# --- English stays as it was ------------------------------------------------------------------


def test_english_words_are_as_before() -> None:
    assert night_name(TONIGHT) == "Wednesday 18 November"
    assert count_nights(1) == "1 night" and count_nights(5) == "5 nights"
    assert describe(datetime(2026, 1, 1, 21, 30).time(), BERLIN) == (
        "every evening at 21:30 (Europe/Berlin time), about the night of that day"
    )
    w = words("checkins")
    assert w.text("checkin", "header", night="Wednesday 18 November") == (
        "🌙 Check-in for the night of Wednesday 18 November."
    )
    assert w.plural("checkin", "snoozed", n=30) == "⏰ OK, I'll ask again in 30 minutes."
