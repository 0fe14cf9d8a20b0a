"""Diary use cases over a real SQLite store, with an injected clock (never slept on)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.services.diary import DiaryService
from bot.services.flow import Choose, Done, Resume, Text, Who
from dialogs.advice import AdviceBook
from dialogs.engine import Flow, Outcome, Prompt
from dialogs.records import ESCALATED
from dialogs.vocabulary import Urgency
from storage import Store
from storage.diary import CheckInStatus
from tests.clock import Clock

BERLIN = ZoneInfo("Europe/Berlin")
SYDNEY = ZoneInfo("Australia/Sydney")
ANNA = Who("telegram", "101")
BEN = Who("telegram", "202")


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 20, 12, 0, tzinfo=UTC))


@pytest.fixture
def db(database_url: str) -> str:
    """The database URL: each test runs on SQLite and on PostgreSQL."""
    return database_url


@pytest.fixture
def diary(db: str, clock: Clock) -> Iterator[DiaryService]:
    store = Store.open(db, clock=clock)
    yield DiaryService(store, Flow.load("diary"), AdviceBook.load(), clock=clock)
    store.dispose()


def consent(diary: DiaryService, who: Who) -> None:
    with diary.store.transaction() as repo:
        user = repo.user(who.channel, who.external_id)
        repo.update_user(user.id, consent_at=diary.clock())


def run_dispatcher(diary: DiaryService) -> list[tuple[str, date]]:
    """One dispatcher run: create due check-ins, claim them, 'send' them (as the bot would)."""
    diary.open_due()
    sent = []
    for outgoing in diary.claim_outgoing():
        diary.sent(outgoing.checkin.id, 1000 + outgoing.checkin.id)
        sent.append((outgoing.who.external_id, outgoing.checkin.night))
    return sent


def tonights_check_in(diary: DiaryService, clock: Clock) -> None:
    """Anna keeps a diary at 21:00 Berlin time; it is 21:05 on 20 November and it was sent."""
    consent(diary, ANNA)
    clock.at(BERLIN, 2026, 11, 20, 12, 0)
    diary.set_schedule(ANNA, time(21, 0), BERLIN)
    clock.at(BERLIN, 2026, 11, 20, 21, 5)
    run_dispatcher(diary)


def checkins(diary: DiaryService, who: Who) -> list[tuple[date, str]]:
    with diary.store.transaction() as repo:
        user = repo.find_user(who.channel, who.external_id)
        assert user is not None
        return [(c.night, str(c.status)) for c in repo.diary.checkins(user.id)]


def test_one_check_in_per_night_at_the_local_time_across_a_dst_change(
    diary: DiaryService, clock: Clock
) -> None:
    consent(diary, ANNA)
    clock.at(BERLIN, 2026, 10, 23, 12, 0)
    diary.set_schedule(ANNA, time(21, 30), BERLIN)
    sent: list[tuple[str, date]] = []
    # Tick every 10 minutes for four days around the autumn change (25 Oct), two runs a tick.
    start = clock.now
    for minutes in range(0, 4 * 24 * 60, 10):
        clock.now = start + timedelta(minutes=minutes)
        sent += run_dispatcher(diary)
        sent += run_dispatcher(diary)
    nights = [night for _, night in sent]
    assert nights == [
        date(2026, 10, 23),
        date(2026, 10, 24),
        date(2026, 10, 25),
        date(2026, 10, 26),
    ]


def test_a_late_dispatcher_sends_tonight_once_and_skips_nothing_twice(
    diary: DiaryService, clock: Clock
) -> None:
    consent(diary, ANNA)
    clock.at(SYDNEY, 2026, 10, 3, 8, 0)
    diary.set_schedule(ANNA, time(7, 0), SYDNEY)  # a morning check-in: about the night before
    clock.at(SYDNEY, 2026, 10, 4, 11, 45)  # the spring-forward day, hours late
    assert run_dispatcher(diary) == [("101", date(2026, 10, 3))]
    assert run_dispatcher(diary) == []


def test_a_restart_between_due_and_sent_still_sends_once(
    db: str, diary: DiaryService, clock: Clock
) -> None:
    consent(diary, ANNA)
    clock.at(BERLIN, 2026, 11, 20, 12, 0)
    diary.set_schedule(ANNA, time(21, 0), BERLIN)
    clock.at(BERLIN, 2026, 11, 20, 21, 1)
    diary.open_due()
    claimed = diary.claim_outgoing()
    assert len(claimed) == 1  # ... and the process dies before the message goes out
    diary.store.dispose()
    restarted = DiaryService(
        Store.open(db, clock=clock),
        Flow.load("diary"),
        AdviceBook.load(),
        clock=clock,
    )
    assert run_dispatcher(restarted) == [], "a fresh claim waits out the stale window"
    clock.now += timedelta(minutes=3)
    assert run_dispatcher(restarted) == [("101", date(2026, 11, 20))]
    assert run_dispatcher(restarted) == []
    restarted.store.dispose()


def test_an_unanswered_check_in_becomes_missed_when_the_next_one_comes(
    diary: DiaryService, clock: Clock
) -> None:
    tonights_check_in(diary, clock)
    clock.at(BERLIN, 2026, 11, 21, 21, 5)
    run_dispatcher(diary)
    assert checkins(diary, ANNA) == [
        (date(2026, 11, 20), "missed"),
        (date(2026, 11, 21), "sent"),
    ]


def test_answering_a_check_in_saves_the_night_with_its_numbers(
    diary: DiaryService, clock: Clock
) -> None:
    tonights_check_in(diary, clock)
    q = diary.questions
    step = q.handle(ANNA, Resume()).step
    assert isinstance(step, Prompt) and step.question.id == "symptoms"
    q.handle(ANNA, Choose("cramps", tick=True))
    q.handle(ANNA, Done())
    q.handle(ANNA, Choose("none"))
    q.handle(ANNA, Choose("once"))
    q.handle(ANNA, Choose("moderate"))
    q.handle(ANNA, Choose("one"))
    q.handle(ANNA, Choose("stretching", tick=True))
    q.handle(ANNA, Done())
    reply = q.handle(ANNA, Text("calf, left side"))
    assert isinstance(reply.step, Outcome)
    with diary.store.transaction() as repo:
        user = repo.find_user("telegram", "101")
        assert user is not None
        (entry,) = repo.diary.entries(user.id)
    assert entry.night == date(2026, 11, 20) and not entry.backfilled
    assert entry.values["cramp_count"] == 1 and entry.values["worst_pain"] == 5
    assert entry.values["note"] == "calf, left side"
    assert checkins(diary, ANNA) == [(date(2026, 11, 20), "answered")]


def test_a_red_flag_in_a_check_in_stops_it_and_is_stored(diary: DiaryService, clock: Clock) -> None:
    tonights_check_in(diary, clock)
    q = diary.questions
    q.handle(ANNA, Choose("foot_pain", tick=True))
    q.handle(ANNA, Done())
    q.handle(ANNA, Choose("none"))
    reply = q.handle(ANNA, Choose("yes"))
    assert isinstance(reply.step, Outcome) and reply.step.state == ESCALATED
    assert reply.advice is not None and reply.advice.urgency is Urgency.URGENT
    with diary.store.transaction() as repo:
        user = repo.find_user("telegram", "101")
        assert user is not None
        (entry,) = repo.diary.entries(user.id)
    assert entry.red_flags == ("dangling_relief",)


def test_snooze_reminds_later_and_skip_tonight_is_not_missed(
    diary: DiaryService, clock: Clock
) -> None:
    tonights_check_in(diary, clock)
    with diary.store.transaction() as repo:
        user = repo.find_user("telegram", "101")
        assert user is not None
        checkin_id = repo.diary.checkins(user.id)[0].id
    assert diary.snooze(BEN, checkin_id, 30) is None, "only the owner can snooze"
    snoozed = diary.snooze(ANNA, checkin_id, 30)
    assert snoozed is not None and snoozed.status == CheckInStatus.SNOOZED
    clock.now += timedelta(minutes=29)
    assert run_dispatcher(diary) == []
    clock.now += timedelta(minutes=2)
    assert run_dispatcher(diary) == [("101", date(2026, 11, 20))]
    skipped = diary.snooze(ANNA, checkin_id, 0)
    assert skipped is not None and skipped.status == CheckInStatus.SKIPPED
    assert diary.questions.handle(ANNA, Resume()).step is None, "skipped: nothing left to answer"


def test_a_paused_diary_asks_nothing_until_the_pause_ends(
    diary: DiaryService, clock: Clock
) -> None:
    consent(diary, ANNA)
    clock.at(BERLIN, 2026, 11, 20, 12, 0)
    diary.set_schedule(ANNA, time(21, 0), BERLIN)
    until = diary.pause(ANNA, 2)
    assert until == date(2026, 11, 21), "exactly the next two nights: the 20th and the 21st"
    sent = []
    for day in range(20, 25):
        clock.at(BERLIN, 2026, 11, day, 21, 5)
        sent += run_dispatcher(diary)
    assert [night for _, night in sent] == [date(2026, 11, d) for d in (22, 23, 24)]


def test_the_last_two_nights_can_be_back_filled_and_are_marked(
    diary: DiaryService, clock: Clock
) -> None:
    consent(diary, ANNA)
    clock.at(BERLIN, 2026, 11, 20, 12, 0)
    diary.set_schedule(ANNA, time(21, 0), BERLIN)
    clock.at(BERLIN, 2026, 11, 22, 10, 0)  # morning of the 22nd: tonight is still the 21st
    assert diary.backfill_nights(ANNA) == [date(2026, 11, 20), date(2026, 11, 19)]
    assert diary.start_backfill(ANNA, date(2026, 11, 1)) is None
    outgoing = diary.start_backfill(ANNA, date(2026, 11, 20))
    assert outgoing is not None
    reply = diary.questions.handle(ANNA, Choose("nothing"))
    assert isinstance(reply.step, Outcome)
    with diary.store.transaction() as repo:
        user = repo.find_user("telegram", "101")
        assert user is not None
        (entry,) = repo.diary.entries(user.id)
    assert entry.backfilled and entry.night == date(2026, 11, 20)
    assert diary.backfill_nights(ANNA) == [date(2026, 11, 19)]


def test_a_blocked_user_has_check_ins_switched_off(diary: DiaryService, clock: Clock) -> None:
    consent(diary, ANNA)
    clock.at(BERLIN, 2026, 11, 20, 12, 0)
    diary.set_schedule(ANNA, time(21, 0), BERLIN)
    clock.at(BERLIN, 2026, 11, 20, 21, 5)
    diary.open_due()
    (outgoing,) = diary.claim_outgoing()
    diary.undeliverable(outgoing)
    schedule = diary.schedule(ANNA)
    assert schedule is not None and not schedule.enabled
    for day in range(21, 24):
        clock.at(BERLIN, 2026, 11, day, 21, 5)
        assert run_dispatcher(diary) == []
    assert checkins(diary, ANNA) == [(date(2026, 11, 20), "failed")]


def test_summary_after_a_simulated_month_counts_what_was_logged(
    diary: DiaryService, clock: Clock
) -> None:
    consent(diary, ANNA)
    clock.at(BERLIN, 2026, 10, 27, 12, 0)
    diary.set_schedule(ANNA, time(21, 0), BERLIN)
    logged = cramps = 0
    for i in range(30):
        day = date(2026, 10, 27) + timedelta(days=i)
        clock.at(BERLIN, day.year, day.month, day.day, 21, 5)
        run_dispatcher(diary)
        if i % 5 == 4:
            continue  # missed
        q = diary.questions
        logged += 1
        if i % 2:
            cramps += 1
            q.handle(ANNA, Choose("cramps", tick=True))
            q.handle(ANNA, Done())
            q.handle(ANNA, Choose("none"))
            q.handle(ANNA, Choose("few"))
            q.handle(ANNA, Choose("severe" if i == 21 else "mild"))
            q.handle(ANNA, Choose("two"))
            q.handle(ANNA, Choose("nothing"))
            q.handle(ANNA, Choose("skip"))
        else:
            q.handle(ANNA, Choose("nothing"))
    trends = diary.trends(ANNA)
    assert trends is not None
    thirty = trends.thirty
    assert (thirty.nights_asked, thirty.nights_logged) == (29, logged)  # today's still open
    assert thirty.symptom_nights["cramps"] == cramps
    assert thirty.worst_pain == 8
    assert thirty.nights_missed == 5


def test_one_dispatch_opens_every_due_check_in_beyond_one_batch(
    diary: DiaryService, clock: Clock
) -> None:
    clock.at(BERLIN, 2026, 11, 20, 12, 0)
    with diary.store.transaction() as repo:
        for i in range(1200):
            user = repo.user("telegram", str(5000 + i))
            repo.diary.set_schedule(
                user.id, local_time=time(21, 0), zone="Europe/Berlin", now=clock()
            )
    clock.at(BERLIN, 2026, 11, 20, 21, 1)
    assert diary.open_due() == 1200
    assert diary.open_due() == 0
    assert len(diary.claim_outgoing()) == 1200


def test_a_worsening_trend_is_pointed_out_on_the_night_it_appears_not_every_night(
    diary: DiaryService, clock: Clock
) -> None:
    consent(diary, ANNA)
    clock.at(BERLIN, 2026, 10, 27, 12, 0)
    diary.set_schedule(ANNA, time(21, 0), BERLIN)
    found: dict[date, list[str]] = {}
    for i in range(28):
        day = date(2026, 10, 27) + timedelta(days=i)
        clock.at(BERLIN, day.year, day.month, day.day, 21, 5)
        run_dispatcher(diary)
        q = diary.questions
        if i < 25:  # three and a half quiet weeks
            q.handle(ANNA, Choose("nothing"))
        else:  # then cramps, night after night
            for action in (
                Choose("cramps", tick=True),
                Done(),
                Choose("none"),
                Choose("once"),
                Choose("mild"),
                Choose("one"),
                Choose("nothing"),
                Choose("skip"),
            ):
                q.handle(ANNA, action)
        found[day] = [r.kind for r in diary.new_worsening(ANNA, day)]
    first_cramps = date(2026, 10, 27) + timedelta(days=25)
    assert found[first_cramps] == ["new:cramps"]
    assert found[first_cramps + timedelta(days=1)] == []
    assert found[first_cramps + timedelta(days=2)] == []
    assert all(kinds == [] for day, kinds in found.items() if day < first_cramps)
