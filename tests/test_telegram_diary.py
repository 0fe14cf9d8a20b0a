"""End to end: the nightly diary in Telegram, from /diary to check-ins, snoozes and /summary.

The real application runs in-process against the Bot API stand-in (loopback only) with an
injected clock that the tests move by hand: nothing is slept on. The dispatcher's repeating
job runs on wall-clock time, so it is switched off here and each test runs the dispatcher
itself (`RunningBot.dispatch_diary`) at the clock's "now", as the job would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

import pytest

from bot.services.flow import Who
from bot.telegram import render as views
from bot.telegram.delivery import PROBE_IDS
from bot.telegram.keys import MenuKey, encode
from dialogs.advice import AdviceBook
from dialogs.engine import Flow
from dialogs.records import Conclusion
from dialogs.vocabulary import Pattern, Urgency
from storage.diary import CheckIn, CheckInStatus, Entry, Schedule
from tests.botapi_stub import BotApiStub, Call, SentMessage
from tests.clock import Clock
from tests.telegram_harness import CHAT, RunningBot

BERLIN = ZoneInfo("Europe/Berlin")
SYDNEY = ZoneInfo("Australia/Sydney")
NEW_YORK = ZoneInfo("America/New_York")
OTHER_CHAT = 5353

DIARY = Flow.load("diary").content
BOOK = AdviceBook.load()
HEADLINES = {u: BOOK.advise(Conclusion(Pattern.UNCLEAR, u), {}).headline for u in Urgency}

SNOOZE_ROW = ["⏰ 30 min", "⏰ 1 hour", "Skip tonight"]
DONE = "Done ➡️"
NOTHING = "Nothing tonight 🌙"
TYPE_TIME = "⌨️ Type another time"
TYPE_ZONE = "⌨️ Type a city or your local time"
LOG_PAST = "✍️ Log a past night"
TICK = "▫️ "


def _menu_label(screen: views.Screen, key: MenuKey) -> str:
    assert screen.markup is not None
    data = encode(key)
    return next(
        b.text for row in screen.markup.inline_keyboard for b in row if b.callback_data == data
    )


CONSENT = _menu_label(views.INTRO, MenuKey("consent"))
ERASE = _menu_label(views.delete_confirm(), MenuKey("erase"))


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    """Wednesday 18 November 2026, noon in Berlin."""
    return Clock(datetime(2026, 11, 18, 11, 0, tzinfo=UTC))


@pytest.fixture
async def api() -> AsyncIterator[BotApiStub]:
    async with BotApiStub() as stub:
        yield stub


async def start_bot(api: BotApiStub, db: str, clock: Clock) -> RunningBot:
    """A started bot whose dispatcher runs only when the test says so."""
    mark = api.mark()
    running = await RunningBot(api, db, clock=clock).start()
    await api.wait_for_call("deleteWebhook", after=mark)  # on_ready has run by then
    assert running.application is not None and running.application.job_queue is not None
    [job] = running.application.job_queue.get_jobs_by_name("diary-dispatch")
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


def who(chat: int = CHAT) -> Who:
    return Who("telegram", str(chat))


def texts(messages: list[SentMessage]) -> list[str]:
    return [m.plain_text or "" for m in messages]


def labels(message: SentMessage) -> list[str]:
    return [text for text, _ in message.buttons]


def night_name(night: date) -> str:
    return night.strftime("%A %-d %B")


def schedule(bot: RunningBot, chat: int = CHAT) -> Schedule | None:
    assert bot.core is not None
    return bot.core.diary.schedule(who(chat))


def user_id(bot: RunningBot, chat: int = CHAT) -> int:
    assert bot.core is not None
    with bot.core.store.transaction() as repo:
        info = repo.find_user("telegram", str(chat))
        assert info is not None
        return info.id


def checkins(bot: RunningBot, chat: int = CHAT) -> list[CheckIn]:
    assert bot.core is not None
    uid = user_id(bot, chat)
    with bot.core.store.transaction() as repo:
        return repo.diary.checkins(uid)


def entries(bot: RunningBot, chat: int = CHAT) -> list[Entry]:
    assert bot.core is not None
    uid = user_id(bot, chat)
    with bot.core.store.transaction() as repo:
        return repo.diary.entries(uid)


def sends_to(api: BotApiStub, chat: int, mark: int = 0, method: str = "sendMessage") -> list[Call]:
    """Every attempt to send `method` to `chat` after `mark`, failed ones included."""
    return [
        c
        for c in api.calls[mark:]
        if c.method == method and str(c.params.get("chat_id")) == str(chat)
    ]


def checkins_sent(api: BotApiStub, chat: int = CHAT, mark: int = 0) -> list[str]:
    """The check-in messages (new or reminders) delivered to `chat`, as sent."""
    return [
        c.params["text"]
        for c in sends_to(api, chat, mark)
        if c.ok and "heck-in for the night of" in c.params["text"]
    ]


# --- acting like a person ----------------------------------------------------------------------


async def consent(bot: RunningBot, chat: int = CHAT) -> None:
    """Agree to the terms, then cancel the check that starts, so only the diary is open."""
    await bot.send("/start", chat=chat)
    await bot.press(CONSENT, chat=chat)
    shown = await bot.send("/cancel", chat=chat)
    assert texts(shown) == [views.CANCELLED]


async def diary_user(
    bot: RunningBot, setting: str = "21:30 Europe/Berlin", chat: int = CHAT
) -> Schedule:
    await consent(bot, chat)
    shown = await bot.send(f"/diary {setting}", chat=chat)
    assert texts(shown)[0].startswith("✅ Diary on"), texts(shown)
    found = schedule(bot, chat)
    assert found is not None and found.enabled
    return found


async def taps(bot: RunningBot, *labels_: str, chat: int = CHAT) -> list[SentMessage]:
    """Press each button on the newest message that has buttons; returns the last reply."""
    shown: list[SentMessage] = []
    for text in labels_:
        shown = await bot.press(text, chat=chat)
    return shown


CRAMP_NIGHT = (
    TICK + "Cramps",
    DONE,
    "None of these",
    "2 or 3 times",
    DIARY.question("cramp_pain").option("severe").label,  # type: ignore[union-attr]
    "Twice",
    TICK + "Stretching",
    DONE,
    "No note",
)


async def dispatch_at(bot: RunningBot, clock: Clock, zone: ZoneInfo, *args: int) -> int:
    clock.at(zone, *args)
    return await bot.dispatch_diary()


# === 1. setting the schedule ====================================================================


async def test_diary_without_a_schedule_offers_times_then_zones_and_sets_both(
    bot: RunningBot, clock: Clock
) -> None:
    await consent(bot)
    [screen] = await bot.send("/diary")
    assert "Nightly diary" in (screen.plain_text or "")
    assert "🌙 21:00" in labels(screen) and "☀️ 07:00" in labels(screen)
    assert TYPE_TIME in labels(screen)
    assert schedule(bot) is None

    [zones] = await bot.press("🌙 21:00")
    assert "21:00" in (zones.plain_text or "")
    new_york_now = clock.now.astimezone(NEW_YORK)
    button = f"New York ({new_york_now:%H:%M})"  # the time there by the bot's clock
    assert button in labels(zones), labels(zones)
    assert schedule(bot) is None, "nothing is set before a zone is chosen"

    [confirmed] = await bot.press(button)
    text = confirmed.plain_text or ""
    assert text.startswith("✅ Diary on")
    assert "America/New_York" in text and "night" in text
    assert f"It is {new_york_now:%H:%M} there now" in text
    found = schedule(bot)
    assert found is not None and found.enabled
    assert (found.local_time, found.zone) == (time(21, 0), "America/New_York")
    assert found.next_night == date(2026, 11, 18)
    assert found.next_due_at == datetime(2026, 11, 18, 21, 0, tzinfo=NEW_YORK)


async def test_diary_with_time_and_zone_sets_both_in_one_go(bot: RunningBot) -> None:
    await consent(bot)
    [confirmed] = await bot.send("/diary 21:30 Europe/Berlin")
    text = confirmed.plain_text or ""
    assert "Europe/Berlin" in text and "every evening at 21:30" in text
    assert "about the night of that day" in text
    assert "night of Wednesday 18 November" in text
    found = schedule(bot)
    assert found is not None
    assert (found.enabled, found.local_time, found.zone) == (True, time(21, 30), "Europe/Berlin")


async def test_a_morning_time_asks_about_the_night_before(bot: RunningBot) -> None:
    await consent(bot)
    [confirmed] = await bot.send("/diary 7am Australia/Sydney")
    text = confirmed.plain_text or ""
    assert "every morning at 07:00" in text and "Australia/Sydney" in text
    assert "night before" in text
    found = schedule(bot)
    assert found is not None
    assert (found.local_time, found.zone) == (time(7, 0), "Australia/Sydney")
    # Thursday 19 Nov, 07:00 in Sydney asks about the night of Wednesday 18 Nov
    assert found.next_due_at == datetime(2026, 11, 19, 7, 0, tzinfo=SYDNEY)
    assert found.next_night == date(2026, 11, 18)


async def test_a_typed_time_and_a_typed_city_set_the_schedule(bot: RunningBot) -> None:
    await consent(bot)
    await bot.send("/diary")
    [asked] = await bot.press(TYPE_TIME)
    assert "Type the time" in (asked.plain_text or "")
    [zones] = await bot.send("22:15")
    assert "22:15" in (zones.plain_text or "") and TYPE_ZONE in labels(zones)
    [asked] = await bot.press(TYPE_ZONE)
    assert "Type your city" in (asked.plain_text or "")
    [confirmed] = await bot.send("Chicago")
    assert "America/Chicago" in (confirmed.plain_text or "")
    found = schedule(bot)
    assert found is not None
    assert (found.local_time, found.zone) == (time(22, 15), "America/Chicago")


async def test_a_diary_setting_it_cannot_read_gets_a_hint_and_changes_nothing(
    bot: RunningBot,
) -> None:
    await consent(bot)
    [hint] = await bot.send("/diary soon")
    assert "/diary 21:30 Europe/Berlin" in (hint.plain_text or "")
    assert schedule(bot) is None
    await bot.send("/diary 21:30 Europe/Berlin")
    before = schedule(bot)
    assert before is not None
    [hint] = await bot.send("/diary soon")
    assert "didn't catch a time" in (hint.plain_text or "")
    assert schedule(bot) == before


# === 2. a check-in at the local time, answered by buttons ========================================


async def test_a_check_in_arrives_once_at_the_local_time_and_is_answered_in_nine_taps(
    bot: RunningBot, api: BotApiStub, clock: Clock
) -> None:
    await diary_user(bot, "21:30 Europe/Berlin")
    mark = api.mark()
    assert await dispatch_at(bot, clock, BERLIN, 2026, 11, 18, 21, 29) == 0
    assert checkins_sent(api, mark=mark) == []

    assert await dispatch_at(bot, clock, BERLIN, 2026, 11, 18, 21, 31) == 1
    [sent] = checkins_sent(api, mark=mark)
    assert "Check-in for the night of Wednesday 18 November" in sent
    message = api.last_message(CHAT)
    assert message is not None
    first = DIARY.questions[0]
    symptom_buttons = [(TICK if not o.exclusive else "") + o.label for o in first.options]
    assert labels(message)[: len(symptom_buttons)] == symptom_buttons
    assert DONE in labels(message)
    keyboard = message.reply_markup["inline_keyboard"]  # type: ignore[index]
    assert [b["text"] for b in keyboard[-1]] == SNOOZE_ROW

    for _ in range(2):  # again at once, and a little later: nothing more that night
        await bot.dispatch_diary()
    clock.now += timedelta(hours=2)
    assert await bot.dispatch_diary() == 0
    assert len(checkins_sent(api, mark=mark)) == 1

    taps_before = len(api.calls_of("answerCallbackQuery"))
    shown = await taps(bot, *CRAMP_NIGHT)
    assert len(api.calls_of("answerCallbackQuery")) - taps_before == len(CRAMP_NIGHT) < 10
    assert texts(shown)[-1].startswith("✅ Logged for the night of Wednesday 18 November")
    [entry] = entries(bot)
    assert entry.night == date(2026, 11, 18) and not entry.backfilled
    assert entry.values == {
        "cramps": True,
        "cramp_count": 2,
        "worst_pain": 8,
        "wakeups": 2,
        "helped": ["stretching"],
    }
    assert entry.red_flags == ()
    [checkin] = checkins(bot)
    assert checkin.status is CheckInStatus.ANSWERED


async def test_after_a_day_without_dispatching_the_check_in_asks_about_tonight(
    bot: RunningBot, api: BotApiStub, clock: Clock
) -> None:
    await diary_user(bot, "21:30 Europe/Berlin")  # Wednesday noon
    mark = api.mark()
    # the bot was down from Wednesday noon to Thursday night
    assert await dispatch_at(bot, clock, BERLIN, 2026, 11, 19, 21, 31) == 1
    [sent] = checkins_sent(api, mark=mark)
    assert "night of Thursday 19 November" in sent
    assert [c.night for c in checkins(bot)] == [date(2026, 11, 19)]


async def test_nothing_tonight_logs_the_night_in_one_tap(
    bot: RunningBot, api: BotApiStub, clock: Clock
) -> None:
    await diary_user(bot)
    assert await dispatch_at(bot, clock, BERLIN, 2026, 11, 18, 21, 31) == 1
    shown = await bot.press(NOTHING)
    assert texts(shown)[-1].startswith("✅ Logged for the night of Wednesday 18 November")
    [entry] = entries(bot)
    assert entry.values == {
        "cramps": False,
        "restless": False,
        "foot_pain": False,
        "other": False,
        "wakeups": 0,
    }
    assert [c.status for c in checkins(bot)] == [CheckInStatus.ANSWERED]


# === 3. red flags in a check-in =================================================================


async def test_a_red_flag_in_a_check_in_gets_the_triages_urgent_advice(
    bot: RunningBot, api: BotApiStub, clock: Clock
) -> None:
    await diary_user(bot)
    await dispatch_at(bot, clock, BERLIN, 2026, 11, 18, 21, 31)
    shown = await taps(
        bot, TICK + "Burning or aching foot", DONE, "None of these", "Yes, hanging it down helped"
    )
    advice = [m for m in shown if (m.plain_text or "").startswith(HEADLINES[Urgency.URGENT])]
    assert len(advice) == 1, api.transcript(CHAT)
    assert not any("Logged" in t for t in texts(shown))
    [entry] = entries(bot)
    assert list(entry.red_flags) == ["dangling_relief"]
    assert entry.values.get("foot_pain") is True
    assert "wakeups" not in entry.values, "the check-in went on after a red flag"
    assert [c.status for c in checkins(bot)] == [CheckInStatus.ANSWERED]


async def test_an_emergency_sign_in_a_check_in_gets_the_emergency_advice(
    bot: RunningBot, api: BotApiStub, clock: Clock
) -> None:
    await diary_user(bot)
    await dispatch_at(bot, clock, BERLIN, 2026, 11, 18, 21, 31)
    shown = await taps(bot, TICK + "Cramps", DONE, TICK + "Chest pain or breathless", DONE)
    headline = HEADLINES[Urgency.EMERGENCY]
    assert any((m.plain_text or "").startswith(headline) for m in shown), api.transcript(CHAT)
    [entry] = entries(bot)
    assert list(entry.red_flags) == ["chest_pain_or_breathless"]
    assert entry.findings.get("chest_pain_or_breathless") is True
    assert [c.status for c in checkins(bot)] == [CheckInStatus.ANSWERED]


# === 4. typed text during a check-in =============================================================


async def test_a_typed_note_is_saved_with_the_night_and_ends_the_check_in(
    bot: RunningBot, clock: Clock
) -> None:
    await diary_user(bot)
    await dispatch_at(bot, clock, BERLIN, 2026, 11, 18, 21, 31)
    shown = await taps(bot, *CRAMP_NIGHT[:-1])
    assert "Type a short note" in texts(shown)[-1]
    note = "Left calf, after a long walk"
    shown = await bot.send(note)
    assert texts(shown)[-1].startswith("✅ Logged for the night of Wednesday 18 November")
    [entry] = entries(bot)
    assert entry.values["note"] == note
    assert entry.values["cramp_count"] == 2
    assert [c.status for c in checkins(bot)] == [CheckInStatus.ANSWERED]


async def test_free_text_at_a_button_question_of_a_check_in_gets_the_buttons_reminder(
    bot: RunningBot, clock: Clock
) -> None:
    await diary_user(bot)
    await dispatch_at(bot, clock, BERLIN, 2026, 11, 18, 21, 31)
    shown = await bot.send("my calves were awful")
    assert texts(shown)[0] == views.USE_BUTTONS
    assert DIARY.questions[0].text in texts(shown)[-1]
    assert entries(bot) == []


# === 5. snooze, skip, missed ======================================================================


async def test_snooze_edits_the_check_in_and_a_reminder_comes_30_minutes_later(
    bot: RunningBot, api: BotApiStub, clock: Clock
) -> None:
    await diary_user(bot)
    await dispatch_at(bot, clock, BERLIN, 2026, 11, 18, 21, 31)
    checkin_message = api.last_message(CHAT)
    assert checkin_message is not None
    shown = await bot.press("⏰ 30 min")
    assert [m.message_id for m in shown] == [checkin_message.message_id]  # edited, not new
    assert texts(shown) == ["⏰ OK, I'll ask again in 30 minutes."]
    assert not shown[0].has_inline_keyboard
    [checkin] = checkins(bot)
    assert checkin.status is CheckInStatus.SNOOZED

    mark = api.mark()
    assert await dispatch_at(bot, clock, BERLIN, 2026, 11, 18, 22, 0) == 0
    assert await dispatch_at(bot, clock, BERLIN, 2026, 11, 18, 22, 2) == 1
    [reminder] = checkins_sent(api, mark=mark)
    assert "Reminder" in reminder and "night of Wednesday 18 November" in reminder
    assert await bot.dispatch_diary() == 0
    shown = await bot.press(NOTHING)
    assert texts(shown)[-1].startswith("✅ Logged")
    assert [c.status for c in checkins(bot)] == [CheckInStatus.ANSWERED]


async def test_skip_tonight_marks_the_night_skipped_not_missed(
    bot: RunningBot, api: BotApiStub, clock: Clock
) -> None:
    await diary_user(bot)
    await dispatch_at(bot, clock, BERLIN, 2026, 11, 18, 21, 31)
    shown = await bot.press("Skip tonight")
    assert texts(shown) == ["Skipped the night of Wednesday 18 November. Sleep well."]
    assert [c.status for c in checkins(bot)] == [CheckInStatus.SKIPPED]
    mark = api.mark()
    assert await dispatch_at(bot, clock, BERLIN, 2026, 11, 19, 21, 31) == 1
    assert len(checkins_sent(api, mark=mark)) == 1
    assert [c.status for c in checkins(bot)] == [CheckInStatus.SKIPPED, CheckInStatus.SENT]
    assert entries(bot) == []


async def test_an_unanswered_check_in_becomes_missed_when_the_next_one_is_sent(
    bot: RunningBot, api: BotApiStub, clock: Clock
) -> None:
    await diary_user(bot)
    await dispatch_at(bot, clock, BERLIN, 2026, 11, 18, 21, 31)
    await dispatch_at(bot, clock, BERLIN, 2026, 11, 19, 12, 0)
    assert [c.status for c in checkins(bot)] == [CheckInStatus.SENT]
    await dispatch_at(bot, clock, BERLIN, 2026, 11, 19, 21, 31)
    assert [(c.night, c.status) for c in checkins(bot)] == [
        (date(2026, 11, 18), CheckInStatus.MISSED),
        (date(2026, 11, 19), CheckInStatus.SENT),
    ]


async def test_a_check_in_that_could_not_be_sent_is_tried_again_once(
    bot: RunningBot, api: BotApiStub, clock: Clock
) -> None:
    await diary_user(bot)
    api.fail_next("sendMessage", status=500)
    mark = api.mark()
    await dispatch_at(bot, clock, BERLIN, 2026, 11, 18, 21, 31)
    assert [c.status for c in sends_to(api, CHAT, mark)] == [500, 200], "the outbox retried"
    # A 500 may hide an applied send: the retry first looked past the chat's last message.
    # a quiet bot tries a few ids above the highest it knows (delivery.PROBE_IDS)
    probes = [c for c in api.calls[mark:] if c.method == "editMessageText"]
    assert 1 <= len(probes) <= PROBE_IDS
    for probe in probes:
        assert probe.description == "Bad Request: message to edit not found"
        api.violations.remove(f"editMessageText: {probe.description}")
    assert await bot.dispatch_diary() == 0, "queued once, not again"
    clock.now += timedelta(minutes=3)
    await bot.dispatch_diary()
    await bot.dispatch_diary()
    assert [c.status for c in sends_to(api, CHAT, mark)] == [500, 200]
    assert len(checkins_sent(api, mark=mark)) == 1
    assert [c.status for c in checkins(bot)] == [CheckInStatus.SENT]


async def test_pause_and_stop_hold_back_check_ins_as_announced(
    bot: RunningBot, api: BotApiStub, clock: Clock
) -> None:
    await diary_user(bot, "21:30 Europe/Berlin")
    await bot.send("/diary")
    [paused] = await bot.press("⏸ Pause 3 nights")
    found = schedule(bot)
    assert found is not None and found.paused_until is not None
    until = found.paused_until
    assert until == date(2026, 11, 20)  # the next three nights: the 18th, 19th and 20th
    assert texts([paused]) == [
        f"Paused: no check-ins up to and including the night of {night_name(until)}."
    ]
    mark = api.mark()
    for day in range(18, 24):
        await dispatch_at(bot, clock, BERLIN, 2026, 11, day, 21, 31)
    nights = [c.night for c in checkins(bot)]
    assert nights[0] == until + timedelta(days=1), nights
    assert len(checkins_sent(api, mark=mark)) == len(nights)

    await bot.send("/diary")
    [stopped] = await bot.press("⏹ Stop check-ins")
    assert "Check-ins stopped" in (stopped.plain_text or "")
    found = schedule(bot)
    assert found is not None and not found.enabled
    mark = api.mark()
    for day in range(24, 27):
        await dispatch_at(bot, clock, BERLIN, 2026, 11, day, 21, 31)
    assert checkins_sent(api, mark=mark) == []
    [settings] = await bot.send("/diary")  # off: the time picker again
    assert "🌙 21:00" in labels(settings)


# === 6. daylight-saving changes and a restart =====================================================


class DstChange(NamedTuple):
    start: datetime
    restart_at: datetime
    """The bot is stopped and a new one started on the same data at this moment."""
    expected: list[tuple[date, datetime]]
    """(night asked about, when its check-in arrives), in order."""


SPRING_GAP = DstChange(  # 29 March: 02:00 CET -> 03:00 CEST, so 02:30 does not exist
    datetime(2026, 3, 27, 12, 0, tzinfo=BERLIN),
    datetime(2026, 3, 29, 0, 45, tzinfo=UTC),  # just before the missing 02:30
    [
        (date(2026, 3, 27), datetime(2026, 3, 28, 2, 30, tzinfo=BERLIN)),
        (date(2026, 3, 28), datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),  # 02:30 at the CET offset
        (date(2026, 3, 29), datetime(2026, 3, 30, 2, 30, tzinfo=BERLIN)),
    ],
)
AUTUMN_REPEAT = DstChange(  # 25 October: 03:00 CEST -> 02:00 CET, so 02:30 comes twice
    datetime(2026, 10, 23, 12, 0, tzinfo=BERLIN),
    datetime(2026, 10, 25, 0, 45, tzinfo=UTC),  # between the two 02:30s
    [
        (date(2026, 10, 23), datetime(2026, 10, 24, 2, 30, tzinfo=BERLIN)),
        (date(2026, 10, 24), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),  # the first 02:30
        (date(2026, 10, 25), datetime(2026, 10, 26, 2, 30, tzinfo=BERLIN)),
    ],
)


@pytest.mark.parametrize(
    "change",
    [pytest.param(SPRING_GAP, id="spring-gap"), pytest.param(AUTUMN_REPEAT, id="autumn-repeat")],
)
async def test_one_check_in_per_night_across_a_dst_change_and_a_restart(
    api: BotApiStub, database_url: str, clock: Clock, change: DstChange
) -> None:
    start, restart_at, expected = change
    db = database_url
    clock.now = start.astimezone(UTC)
    running = await start_bot(api, db, clock)
    try:
        await diary_user(running, "02:30 Europe/Berlin")
        arrived: list[tuple[str, datetime]] = []
        restarted = False
        end = clock.now + timedelta(days=3, hours=12)
        while clock.now < end:
            if not restarted and clock.now >= restart_at:
                await running.stop()
                running = await start_bot(api, db, clock)
                restarted = True
            mark = api.mark()
            await running.dispatch_diary()
            await running.dispatch_diary()
            arrived += [(text, clock.now) for text in checkins_sent(api, mark=mark)]
            clock.now += timedelta(minutes=15)
        assert restarted
    finally:
        await finish(running, api)
    assert len(arrived) == len(expected), arrived
    for (text, at), (night, due) in zip(arrived, expected, strict=True):
        assert f"Check-in for the night of {night_name(night)}." in text
        assert at == due, (night, at.astimezone(BERLIN))


# === 7. a person who blocked the bot =============================================================


async def test_a_blocked_bot_switches_check_ins_off_and_stops_trying(
    bot: RunningBot, api: BotApiStub, clock: Clock
) -> None:
    await diary_user(bot)
    await diary_user(bot, "21:30 Europe/Berlin", chat=OTHER_CHAT)
    api.block_user(CHAT)
    mark = api.mark()
    await dispatch_at(bot, clock, BERLIN, 2026, 11, 18, 21, 31)
    attempts = sends_to(api, CHAT, mark)
    assert [c.status for c in attempts] == [403]
    found = schedule(bot)
    assert found is not None and not found.enabled and found.next_due_at is None
    assert [c.status for c in checkins(bot)] == [CheckInStatus.FAILED]
    assert len(checkins_sent(api, OTHER_CHAT, mark)) == 1, "others still get theirs"

    for day in (19, 20, 21):
        await dispatch_at(bot, clock, BERLIN, 2026, 11, day, 21, 31)
        await bot.dispatch_diary()
    assert len(sends_to(api, CHAT, mark)) == 1, "tried again after a block"
    assert len(checkins_sent(api, OTHER_CHAT, mark)) == 4


# === 8. /summary =================================================================================


async def test_summary_after_a_month_reports_what_the_diary_holds_with_a_png_chart(
    bot: RunningBot, api: BotApiStub, clock: Clock
) -> None:
    await diary_user(bot, "21:00 Europe/Berlin")
    first = date(2026, 11, 18)
    plan = {}
    for i in range(30):
        night = first + timedelta(days=i)
        if i in (3, 7, 13, 17, 23, 27):
            plan[night] = "missed"
        elif i in (5, 15, 25):
            plan[night] = "skipped"
        elif i % 3 == 0:
            plan[night] = "cramps"
        else:
            plan[night] = "nothing"
    month_mark = api.mark()
    for night, what in plan.items():
        assert await dispatch_at(bot, clock, BERLIN, night.year, night.month, night.day, 21, 5) == 1
        clock.now += timedelta(minutes=10)
        if what == "cramps":
            await taps(bot, *CRAMP_NIGHT)
        elif what == "nothing":
            await bot.press(NOTHING)
        elif what == "skipped":
            await bot.press("Skip tonight")

    morning_after = first + timedelta(days=30)
    clock.at(BERLIN, morning_after.year, morning_after.month, morning_after.day, 9, 0)
    stored = entries(bot)
    statuses = [c.status for c in checkins(bot)]
    logged, cramp_nights = len(stored), sum(e.values.get("cramps") is True for e in stored)
    asked = logged + statuses.count(CheckInStatus.MISSED) + statuses.count(CheckInStatus.SKIPPED)
    assert (logged, asked, cramp_nights) == (21, 30, 7)  # what the plan says
    assert sorted(e.night for e in stored) == [
        n for n, w in plan.items() if w in ("cramps", "nothing")
    ]

    # an answered Sunday night also gets the week's summary
    sundays = [n for n, w in plan.items() if n.weekday() == 6 and w in ("cramps", "nothing")]
    assert len(sundays) == 3
    assert len(sends_to(api, CHAT, month_mark, "sendPhoto")) == len(sundays)

    mark = api.mark()
    shown = await bot.send("/summary")
    text = shown[0].plain_text or ""
    month = text[text.index("Last 30 nights") :]
    assert f"Logged {logged} of {asked} nights asked." in month, text
    assert f"cramps {cramp_nights}," in month, text
    assert f"no symptoms {logged - cramp_nights}." in month, text
    assert f"Cramp episodes: {2 * cramp_nights}." in month, text
    [photo] = sends_to(api, CHAT, mark, "sendPhoto")
    assert photo.ok
    upload = photo.files.get("photo") or photo.params["photo"]
    assert upload.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert shown[-1].kind == "photo" and shown[-1].plain_text == "Your last 30 nights"


async def test_summary_with_nothing_logged_says_so(bot: RunningBot, api: BotApiStub) -> None:
    await consent(bot)
    mark = api.mark()
    shown = await bot.send("/summary")
    assert texts(shown) == ["No diary nights yet. /diary sets up a short nightly check-in."]
    assert sends_to(api, CHAT, mark, "sendPhoto") == []
    await diary_user(bot, "21:00 Europe/Berlin", chat=OTHER_CHAT)
    shown = await bot.send("/summary", chat=OTHER_CHAT)
    assert texts(shown) == ["No diary nights yet. /diary sets up a short nightly check-in."]


# === 9. back-fill ================================================================================


async def test_a_past_night_can_be_added_and_is_marked_backfilled(
    bot: RunningBot, api: BotApiStub, clock: Clock
) -> None:
    await diary_user(bot, "21:00 Europe/Berlin")
    clock.at(BERLIN, 2026, 11, 20, 12, 30)  # Friday: the last two nights are Wed and Thu
    [settings] = await bot.send("/diary")
    assert LOG_PAST in labels(settings)
    [offer] = await bot.press(LOG_PAST)
    thursday, wednesday = night_name(date(2026, 11, 19)), night_name(date(2026, 11, 18))
    assert labels(offer) == [thursday, wednesday]

    shown = await bot.press(wednesday)
    [question] = shown
    assert (question.plain_text or "").startswith(f"✍️ Adding the night of {wednesday}.")
    assert not any(label in labels(question) for label in SNOOZE_ROW)
    shown = await bot.press(NOTHING)
    assert texts(shown)[-1].startswith(f"✅ Logged for the night of {wednesday}")
    [entry] = entries(bot)
    assert entry.night == date(2026, 11, 18) and entry.backfilled

    await bot.send("/diary")
    [offer] = await bot.press(LOG_PAST)
    assert labels(offer) == [thursday]


# === 10. /delete =================================================================================


async def test_delete_erases_the_diary_and_no_check_in_follows(
    bot: RunningBot, api: BotApiStub, clock: Clock
) -> None:
    await diary_user(bot)
    await dispatch_at(bot, clock, BERLIN, 2026, 11, 18, 21, 31)
    await bot.press(NOTHING)
    await dispatch_at(bot, clock, BERLIN, 2026, 11, 19, 21, 31)  # one left open
    uid = user_id(bot)
    assert bot.core is not None
    with bot.core.store.transaction() as repo:
        counts = repo.user_row_counts(uid)
    assert min(counts["diary_schedules"], counts["diary_checkins"], counts["diary_entries"]) > 0

    await bot.send("/delete")
    shown = await bot.press(ERASE)
    assert texts(shown) == [views.DELETED]
    with bot.core.store.transaction() as repo:
        counts = repo.user_row_counts(uid)
    assert {"diary_schedules", "diary_checkins", "diary_entries"} <= set(counts)
    assert not any(counts.values()), counts
    assert schedule(bot) is None

    mark = api.mark()
    for day in (20, 21):
        await dispatch_at(bot, clock, BERLIN, 2026, 11, day, 21, 31)
    assert sends_to(api, CHAT, mark) == []
