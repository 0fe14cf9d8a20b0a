"""Tests of storage/diary.py and migration 0003: one check-in per night, whatever happens.

Every moment is passed in or read from a fake clock; nothing sleeps. "Restarts" open a new
Store on the same database file.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from dialogs.records import ConversationState
from storage import NotFound, Store, make_engine
from storage.db import alembic_config
from storage.diary import CheckIn, CheckInStatus, Entry, Schedule

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BERLIN = "Europe/Berlin"
EVENING = time(21, 30)
DIARY_TABLES = {"diary_schedules", "diary_checkins", "diary_entries"}


class FakeClock:
    """A clock that moves one second forward on every reading."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def url(database_url: str) -> str:
    """A new, empty database: each test runs on SQLite and on PostgreSQL."""
    return database_url


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    store = Store.open(url, clock=FakeClock())
    yield store
    store.dispose()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def new_user(store: Store, external_id: str = "42") -> int:
    with store.transaction() as repo:
        return repo.user("telegram", external_id).id


def scheduled_user(
    store: Store, *, at: time = EVENING, zone: str = BERLIN, now: datetime = START
) -> tuple[int, Schedule]:
    user_id = new_user(store)
    with store.transaction() as repo:
        schedule = repo.diary.set_schedule(user_id, local_time=at, zone=zone, now=now)
    return user_id, schedule


def dispatch(store: Store, now: datetime) -> list[CheckIn]:
    """What a dispatcher run does at `now`: open the check-ins of every due schedule."""
    opened = []
    with store.transaction() as repo:
        for schedule in repo.diary.due(now):
            assert schedule.next_night is not None and schedule.next_due_at is not None
            checkin = repo.diary.open_checkin(
                schedule.user_id, schedule.next_night, schedule.next_due_at, now
            )
            if checkin is not None:
                opened.append(checkin)
    return opened


def sent_checkin(store: Store, now: datetime, message_id: int = 500) -> CheckIn:
    """Open, claim and deliver the one check-in due at `now`."""
    [checkin] = dispatch(store, now)
    with store.transaction() as repo:
        assert repo.diary.mark_sending(checkin.id, now)
        repo.diary.mark_sent(checkin.id, message_id, now)
        delivered = repo.diary.checkin(checkin.id)
    assert delivered is not None
    return delivered


def test_set_schedule_computes_the_next_check_in_and_keeps_a_pause(store: Store) -> None:
    user_id, schedule = scheduled_user(store)
    assert schedule == Schedule(
        user_id=user_id,
        enabled=True,
        local_time=EVENING,
        zone=BERLIN,
        next_due_at=utc(2026, 3, 1, 20, 30),
        next_night=date(2026, 3, 1),
        paused_until=None,
    )
    with store.transaction() as repo:
        repo.diary.pause(user_id, date(2026, 3, 5))
        moved = repo.diary.set_schedule(
            user_id, local_time=time(7, 0), zone="Australia/Sydney", now=START
        )
        assert repo.diary.schedule(user_id) == moved
    assert (moved.next_due_at, moved.next_night) == (utc(2026, 3, 1, 20, 0), date(2026, 3, 1))
    assert moved.paused_until == date(2026, 3, 5)


def test_set_schedule_refuses_unknown_users_zones_and_seconds(store: Store) -> None:
    user_id = new_user(store)
    with store.transaction() as repo:
        assert repo.diary.schedule(user_id) is None
        with pytest.raises(NotFound):
            repo.diary.set_schedule(999, local_time=EVENING, zone=BERLIN, now=START)
        with pytest.raises(ZoneInfoNotFoundError):
            repo.diary.set_schedule(user_id, local_time=EVENING, zone="Mars/Olympus", now=START)
        with pytest.raises(ValueError, match="whole minutes"):
            repo.diary.set_schedule(user_id, local_time=time(21, 30, 5), zone=BERLIN, now=START)
        with pytest.raises(NotFound):
            repo.diary.pause(user_id, date(2026, 3, 5))
        repo.diary.disable(user_id)  # nothing to switch off: no error
        assert repo.diary.schedule(user_id) is None


def test_due_lists_enabled_schedules_whose_moment_has_come(store: Store) -> None:
    early, late, off = (new_user(store, name) for name in ("early", "late", "off"))
    with store.transaction() as repo:
        repo.diary.set_schedule(late, local_time=time(22, 0), zone=BERLIN, now=START)
        repo.diary.set_schedule(early, local_time=time(20, 0), zone=BERLIN, now=START)
        repo.diary.set_schedule(off, local_time=time(19, 0), zone=BERLIN, now=START)
        repo.diary.disable(off)
    with store.transaction() as repo:
        assert repo.diary.due(utc(2026, 3, 1, 18, 59)) == []
        assert [s.user_id for s in repo.diary.due(utc(2026, 3, 1, 19, 0))] == [early]
        assert [s.user_id for s in repo.diary.due(utc(2026, 3, 1, 23, 0))] == [early, late]
        assert [s.user_id for s in repo.diary.due(utc(2026, 3, 1, 23, 0), limit=1)] == [early]
        disabled = repo.diary.schedule(off)
    assert disabled is not None
    assert (disabled.enabled, disabled.next_due_at, disabled.next_night) == (False, None, None)


def test_duplicate_dispatcher_runs_open_one_check_in_per_night(store: Store) -> None:
    user_id, schedule = scheduled_user(store)
    assert schedule.next_night is not None and schedule.next_due_at is not None
    now = schedule.next_due_at + timedelta(seconds=5)
    first = dispatch(store, now)
    assert [c.night for c in first] == [date(2026, 3, 1)]
    assert dispatch(store, now) == []
    with store.transaction() as repo:
        # A run that read the schedule before the first one advanced it changes nothing.
        again = repo.diary.open_checkin(user_id, schedule.next_night, schedule.next_due_at, now)
        assert again is None
        assert len(repo.diary.checkins(user_id)) == 1
        advanced = repo.diary.schedule(user_id)
    assert advanced is not None
    assert (advanced.next_night, advanced.next_due_at) == (
        date(2026, 3, 2),
        utc(2026, 3, 2, 20, 30),
    )
    assert first[0].status is CheckInStatus.DUE
    assert first[0].due_at == schedule.next_due_at


def test_the_database_refuses_a_second_check_in_for_a_night(store: Store) -> None:
    user_id, _ = scheduled_user(store)
    dispatch(store, utc(2026, 3, 1, 21))
    with store.engine.connect() as connection, pytest.raises(IntegrityError, match=r"(?i)unique"):
        connection.execute(
            text(
                "INSERT INTO diary_checkins (user_id, night, due_at, status, backfill)"
                " VALUES (:user_id, '2026-03-01', '2026-03-01 20:30:00', 'due', false)"
            ),
            {"user_id": user_id},
        )


def test_the_database_refuses_an_unknown_status(store: Store) -> None:
    user_id = new_user(store)
    with store.engine.connect() as connection, pytest.raises(IntegrityError, match=r"(?i)check"):
        connection.execute(
            text(
                "INSERT INTO diary_checkins (user_id, night, due_at, status, backfill)"
                " VALUES (:user_id, '2026-03-01', '2026-03-01 20:30:00', 'lost', false)"
            ),
            {"user_id": user_id},
        )


def test_a_late_dispatcher_sends_once_and_resumes_after_now(store: Store) -> None:
    user_id, _ = scheduled_user(store)
    three_days_late = utc(2026, 3, 4, 9, 0)
    opened = dispatch(store, three_days_late)
    assert [c.night for c in opened] == [date(2026, 3, 3)], "the latest night due, not a stale one"
    assert dispatch(store, three_days_late) == []
    with store.transaction() as repo:
        schedule = repo.diary.schedule(user_id)
        assert [c.id for c in repo.diary.unsent(three_days_late)] == [opened[0].id]
    assert schedule is not None
    assert (schedule.next_night, schedule.next_due_at) == (
        date(2026, 3, 4),
        utc(2026, 3, 4, 20, 30),
    )


def test_a_restart_between_due_and_sent_sends_the_check_in_after_all(url: str) -> None:
    before = Store.open(url, clock=FakeClock())
    scheduled_user(before)
    now = utc(2026, 3, 1, 20, 30)
    [checkin] = dispatch(before, now)
    with before.transaction() as repo:
        assert repo.diary.mark_sending(checkin.id, now)
    before.dispose()  # the process dies before the send is recorded

    after = Store.open(url, clock=FakeClock())
    try:
        with after.transaction() as repo:
            assert repo.diary.unsent(now + timedelta(minutes=1)) == []  # maybe still sending
            assert not repo.diary.mark_sending(checkin.id, now + timedelta(minutes=1))
            [stale] = repo.diary.unsent(now + timedelta(minutes=2))
            assert (stale.id, stale.status, stale.sending_at) == (
                checkin.id,
                CheckInStatus.SENDING,
                now,
            )
            retry = now + timedelta(minutes=3)
            assert repo.diary.mark_sending(checkin.id, retry)
            assert not repo.diary.mark_sending(checkin.id, retry), "claimed once"
            repo.diary.mark_sent(checkin.id, 777, retry)
            assert repo.diary.unsent(retry + timedelta(hours=1)) == []
            sent = repo.diary.checkin(checkin.id)
    finally:
        after.dispose()
    assert sent is not None
    assert (sent.status, sent.message_id, sent.sent_at) == (CheckInStatus.SENT, 777, retry)


WINDOWS = (utc(2026, 3, 26), utc(2026, 4, 2), utc(2026, 10, 1), utc(2026, 10, 22))
"""Five days around each change: Berlin spring and fall, Sydney fall (April) and spring."""


def test_dispatching_through_dst_changes_restarts_and_double_runs_asks_once_a_night(
    url: str,
) -> None:
    """Every 30 minutes, twice, with a fresh process every 6 hours, around every change."""
    store = Store.open(url, clock=FakeClock())
    zones = {new_user(store, zone): zone for zone in (BERLIN, "Australia/Sydney")}
    with store.transaction() as repo:
        for user_id, zone in zones.items():
            repo.diary.set_schedule(user_id, local_time=time(2, 30), zone=zone, now=WINDOWS[0])
    for start in WINDOWS:
        for step in range(5 * 48):
            now = start + timedelta(minutes=30 * step)
            if step % 12 == 0:
                store.dispose()
                store = Store.open(url, clock=FakeClock())
            dispatch(store, now)
            dispatch(store, now)
    with store.transaction() as repo:
        checkins = {user_id: repo.diary.checkins(user_id) for user_id in zones}
    store.dispose()
    due = {}
    for user_id, zone in zones.items():
        nights = [c.night for c in checkins[user_id]]
        assert len(nights) == len(set(nights)), "one check-in per night"
        for start in WINDOWS:
            inside = [
                c.night for c in checkins[user_id] if start <= c.due_at < start + timedelta(days=5)
            ]
            assert len(inside) >= 4
            assert inside == [inside[0] + timedelta(days=n) for n in range(len(inside))]
        local_dates = [c.due_at.astimezone(ZoneInfo(zone)).date() for c in checkins[user_id]]
        assert local_dates == [night + timedelta(days=1) for night in nights], "morning check-ins"
        due[zone] = {c.night: c.due_at for c in checkins[user_id]}
    assert due[BERLIN][date(2026, 3, 28)] == utc(2026, 3, 29, 1, 30)  # 02:30 does not exist
    assert due[BERLIN][date(2026, 10, 24)] == utc(2026, 10, 25, 0, 30)  # first of two 02:30s
    assert due[BERLIN][date(2026, 10, 25)] == utc(2026, 10, 26, 1, 30)
    assert due["Australia/Sydney"][date(2026, 4, 4)] == utc(2026, 4, 4, 15, 30)  # first 02:30
    assert due["Australia/Sydney"][date(2026, 10, 3)] == utc(2026, 10, 3, 16, 30)  # no 02:30


def test_a_pause_advances_the_schedule_without_check_ins(store: Store) -> None:
    user_id, _ = scheduled_user(store)
    with store.transaction() as repo:
        repo.diary.pause(user_id, date(2026, 3, 2))
    assert dispatch(store, utc(2026, 3, 1, 20, 30)) == []
    assert dispatch(store, utc(2026, 3, 2, 20, 30)) == []
    assert [c.night for c in dispatch(store, utc(2026, 3, 3, 20, 30))] == [date(2026, 3, 3)]
    with store.transaction() as repo:
        repo.diary.pause(user_id, None)
        schedule = repo.diary.schedule(user_id)
        assert [c.night for c in repo.diary.checkins(user_id)] == [date(2026, 3, 3)]
    assert schedule is not None
    assert (schedule.paused_until, schedule.next_night) == (None, date(2026, 3, 4))


def test_a_night_with_an_entry_already_gets_no_check_in(store: Store) -> None:
    user_id, _ = scheduled_user(store, at=time(7, 0))
    with store.transaction() as repo:
        repo.diary.save_entry(
            user_id,
            date(2026, 3, 1),
            values={"cramps": True},
            findings={},
            red_flags=[],
            backfilled=False,
            conversation_id=None,
        )
    assert dispatch(store, utc(2026, 3, 2, 6, 0)) == []
    assert [c.night for c in dispatch(store, utc(2026, 3, 3, 6, 0))] == [date(2026, 3, 2)]


def test_snooze_reminds_once_and_skip_closes_the_check_in(store: Store) -> None:
    user_id, _ = scheduled_user(store)
    sent_at = utc(2026, 3, 1, 20, 30)
    checkin = sent_checkin(store, sent_at)
    remind = sent_at + timedelta(minutes=30)
    with store.transaction() as repo:
        assert repo.diary.snooze(checkin.id, remind)
        assert repo.diary.current_checkin(user_id) == repo.diary.checkin(checkin.id)
        assert repo.diary.reminders_due(remind - timedelta(seconds=1)) == []
        assert not repo.diary.mark_sending(checkin.id, remind - timedelta(seconds=1))
        [due] = repo.diary.reminders_due(remind)
        assert (due.id, due.status, due.remind_at) == (checkin.id, CheckInStatus.SNOOZED, remind)
        assert repo.diary.mark_sending(checkin.id, remind)
        repo.diary.mark_sent(checkin.id, 501, remind)
        assert repo.diary.reminders_due(remind + timedelta(hours=1)) == []
        reminded = repo.diary.checkin(checkin.id)
        assert reminded is not None
        assert (reminded.status, reminded.message_id, reminded.remind_at) == (
            CheckInStatus.SENT,
            501,
            None,
        )
        assert repo.diary.skip(checkin.id)
        assert not repo.diary.skip(checkin.id)
        assert not repo.diary.snooze(checkin.id, remind + timedelta(hours=1))
        assert not repo.diary.answered(checkin.id, None)
        assert repo.diary.current_checkin(user_id) is None
        [skipped] = repo.diary.checkins(user_id)
    assert skipped.status is CheckInStatus.SKIPPED


def test_a_button_pressed_before_the_send_is_recorded_is_kept(store: Store) -> None:
    scheduled_user(store)
    now = utc(2026, 3, 1, 20, 30)
    [checkin] = dispatch(store, now)
    with store.transaction() as repo:
        assert repo.diary.mark_sending(checkin.id, now)
        assert repo.diary.snooze(checkin.id, now + timedelta(hours=1))  # the user was quick
        repo.diary.mark_sent(checkin.id, 502, now)
        repo.diary.mark_failed(checkin.id)  # too late to fail: it was delivered
        kept = repo.diary.checkin(checkin.id)
    assert kept is not None
    assert (kept.status, kept.message_id, kept.remind_at) == (
        CheckInStatus.SNOOZED,
        502,
        now + timedelta(hours=1),
    )


def test_an_unanswered_check_in_is_answerable_until_the_next_one_then_missed(
    store: Store,
) -> None:
    user_id, _ = scheduled_user(store)
    first = sent_checkin(store, utc(2026, 3, 1, 20, 30))
    with store.transaction() as repo:
        assert repo.diary.current_checkin(user_id) == first
        assert repo.diary.mark_missed_before(user_id, date(2026, 3, 1)) == 0
    second = sent_checkin(store, utc(2026, 3, 2, 20, 30), message_id=600)
    with store.transaction() as repo:
        assert repo.diary.current_checkin(user_id) == second
        assert not repo.diary.answered(first.id, None), "too late: back-fill instead"
        statuses = [(c.night, c.status) for c in repo.diary.checkins(user_id)]
        since = repo.diary.checkins(user_id, since=date(2026, 3, 2))
    assert statuses == [
        (date(2026, 3, 1), CheckInStatus.MISSED),
        (date(2026, 3, 2), CheckInStatus.SENT),
    ]
    assert since == [second]


def test_answering_links_the_conversation_and_survives_its_deletion(store: Store) -> None:
    user_id, _ = scheduled_user(store)
    checkin = sent_checkin(store, utc(2026, 3, 1, 20, 30))
    with store.transaction() as repo:
        conversation_id = repo.create_conversation(
            user_id, ConversationState(flow="diary", state="q", started_at=START)
        )
        assert repo.diary.answered(checkin.id, conversation_id)
        assert not repo.diary.answered(checkin.id, conversation_id)
        entry = repo.diary.save_entry(
            user_id,
            checkin.night,
            values={"cramps": True, "cramp_count": 2},
            findings={"muscle_hard_knot": True},
            red_flags=[],
            backfilled=False,
            conversation_id=conversation_id,
        )
        assert repo.diary.current_checkin(user_id) is None
        answered = repo.diary.checkin(checkin.id)
    assert answered is not None
    assert (answered.status, answered.conversation_id) == (CheckInStatus.ANSWERED, conversation_id)
    with store.engine.begin() as connection:
        connection.execute(text("DELETE FROM conversations"))
    with store.transaction() as repo:
        after_checkin = repo.diary.checkin(checkin.id)
        [after_entry] = repo.diary.entries(user_id)
    assert after_checkin is not None and after_checkin.conversation_id is None
    assert after_entry.conversation_id is None
    assert after_entry.values == entry.values


def test_a_past_night_can_be_back_filled_once_even_after_it_was_missed(store: Store) -> None:
    user_id, _ = scheduled_user(store)
    missed = sent_checkin(store, utc(2026, 3, 1, 20, 30))
    sent_checkin(store, utc(2026, 3, 2, 20, 30))
    now = utc(2026, 3, 3, 9, 0)
    with store.transaction() as repo:
        with pytest.raises(NotFound):
            repo.diary.backfill_checkin(999, date(2026, 3, 1), now)
        reopened = repo.diary.backfill_checkin(user_id, date(2026, 3, 1), now)
        conversation_id = repo.create_conversation(
            user_id, ConversationState(flow="diary", state="q", started_at=now)
        )
        repo.diary.attach(reopened.id, conversation_id)
        repo.diary.mark_sent(reopened.id, 0, now)
        found = repo.diary.checkin_for_conversation(conversation_id)
        assert repo.diary.checkin_for_conversation(conversation_id + 1) is None
        assert found is not None and repo.diary.answered(found.id, conversation_id)
        entry = repo.diary.save_entry(
            user_id,
            found.night,
            values={"cramps": False},
            findings={},
            red_flags=[],
            backfilled=found.backfill,
            conversation_id=conversation_id,
        )
        older = repo.diary.backfill_checkin(user_id, date(2026, 2, 27), now)
        nights = [(c.night, c.status, c.backfill) for c in repo.diary.checkins(user_id)]
    assert reopened.id == missed.id
    assert (reopened.status, reopened.backfill, reopened.conversation_id) == (
        CheckInStatus.SENT,
        True,
        None,
    )
    assert (found.id, found.conversation_id, found.message_id) == (missed.id, conversation_id, 0)
    assert entry.backfilled
    assert (older.due_at, older.sent_at, older.backfill) == (now, now, True)
    assert nights == [
        (date(2026, 2, 27), CheckInStatus.SENT, True),
        (date(2026, 3, 1), CheckInStatus.ANSWERED, True),
        (date(2026, 3, 2), CheckInStatus.SENT, False),
    ]


def test_a_blocked_user_is_failed_and_switched_off_without_retries(store: Store) -> None:
    user_id, _ = scheduled_user(store)
    now = utc(2026, 3, 1, 20, 30)
    [checkin] = dispatch(store, now)
    with store.transaction() as repo:
        assert repo.diary.mark_sending(checkin.id, now)
        repo.diary.mark_failed(checkin.id)  # Telegram said: blocked by the user
        repo.diary.disable(user_id)
    later = now + timedelta(days=3)
    assert dispatch(store, later) == []
    with store.transaction() as repo:
        assert repo.diary.unsent(later) == []
        assert not repo.diary.mark_sending(checkin.id, later)
        [failed] = repo.diary.checkins(user_id)
        assert repo.diary.due(later) == []
    assert failed.status is CheckInStatus.FAILED


def test_entries_are_upserted_per_night_and_backfills_are_marked(store: Store) -> None:
    user_id = new_user(store)
    with store.transaction() as repo:
        with pytest.raises(NotFound):
            repo.diary.save_entry(
                999,
                date(2026, 3, 1),
                values={},
                findings={},
                red_flags=[],
                backfilled=False,
                conversation_id=None,
            )
        tonight = repo.diary.save_entry(
            user_id,
            date(2026, 3, 3),
            values={"cramps": False, "wakeups": 0},
            findings={},
            red_flags=[],
            backfilled=False,
            conversation_id=None,
        )
        backfilled = repo.diary.save_entry(
            user_id,
            date(2026, 3, 1),
            values={"restless": True, "helped": ["walking"], "note": "bad"},
            findings={"urge_to_move": True},
            red_flags=["calf_swelling_warm_red"],
            backfilled=True,
            conversation_id=None,
        )
        corrected = repo.diary.save_entry(
            user_id,
            date(2026, 3, 3),
            values={"cramps": True, "cramp_count": 1, "worst_pain": 8},
            findings={},
            red_flags=[],
            backfilled=False,
            conversation_id=None,
        )
        entries = repo.diary.entries(user_id)
        recent = repo.diary.entries(user_id, since=date(2026, 3, 2))
    assert corrected.id == tonight.id and corrected.created_at == tonight.created_at
    assert entries == [backfilled, corrected]
    assert recent == [corrected]
    assert backfilled == Entry(
        id=backfilled.id,
        user_id=user_id,
        night=date(2026, 3, 1),
        backfilled=True,
        values={"restless": True, "helped": ["walking"], "note": "bad"},
        findings={"urge_to_move": True},
        red_flags=("calf_swelling_warm_red",),
        conversation_id=None,
        created_at=backfilled.created_at,
    )
    assert not corrected.backfilled


def test_delete_user_removes_every_diary_row(store: Store) -> None:
    def diary_history(external_id: str) -> int:
        user_id = new_user(store, external_id)
        with store.transaction() as repo:
            repo.diary.set_schedule(user_id, local_time=EVENING, zone=BERLIN, now=START)
            conversation_id = repo.create_conversation(
                user_id, ConversationState(flow="diary", state="q", started_at=START)
            )
            repo.diary.save_entry(
                user_id,
                date(2026, 2, 28),
                values={"cramps": True},
                findings={},
                red_flags=[],
                backfilled=True,
                conversation_id=conversation_id,
            )
        return user_id

    doomed, kept = diary_history("1"), diary_history("2")
    assert len(dispatch(store, utc(2026, 3, 1, 20, 30))) == 2
    with store.transaction() as repo:
        before = repo.user_row_counts(kept)
        repo.delete_user(doomed)
    with store.transaction() as repo:
        counts = repo.user_row_counts(doomed)
        assert counts == dict.fromkeys(counts, 0)
        assert counts.keys() >= DIARY_TABLES
        assert repo.user_row_counts(kept) == before
        assert repo.diary.schedule(doomed) is None
        assert repo.diary.checkins(doomed) == []
        assert [c.user_id for c in repo.diary.checkins(kept)] == [kept]
    assert {t: before[t] for t in DIARY_TABLES} == dict.fromkeys(DIARY_TABLES, 1)


def test_migration_0003_keeps_the_data_of_a_0002_database(url: str) -> None:
    engine = make_engine(url)
    config = alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0002")
            connection.execute(
                text(
                    "INSERT INTO users (id, channel, external_id, country, created_at,"
                    " country_asked_at) VALUES (7, 'telegram', '4242', 'DE',"
                    " '2026-01-02 03:04:05', '2026-01-02 03:05:00')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO conversations (id, user_id, flow, state, pending, findings,"
                    " started_at, updated_at) VALUES (3, 7, 'triage', 'q_episode', '[]',"
                    " '{\"urge_to_move\": true}', '2026-01-02 03:06:00', '2026-01-02 03:07:00')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO messages (user_id, conversation_id, direction, text, created_at)"
                    " VALUES (7, 3, 'in', '/start', '2026-01-02 03:06:00')"
                )
            )
            connection.execute(
                text("INSERT INTO processed_updates VALUES (99, '2026-01-02 03:06:00')")
            )
        assert not DIARY_TABLES & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()

    store = Store.open(url, clock=FakeClock())  # upgrades to head
    try:
        with store.transaction() as repo:
            user = repo.find_user("telegram", "4242")
            assert user is not None
            assert (user.id, user.country, user.created_at) == (7, "DE", utc(2026, 1, 2, 3, 4, 5))
            assert repo.user_row_counts(7) == {
                "users": 1,
                "conversations": 1,
                "answers": 0,
                "messages": 1,
                "diary_schedules": 0,
                "diary_checkins": 0,
                "diary_entries": 0,
                "followups": 0,
            }
            [(conversation_id, state)] = repo.conversations(7)
            assert (conversation_id, state.findings) == (3, {"urge_to_move": True})
            assert repo.is_processed(99)
            schedule = repo.diary.set_schedule(7, local_time=EVENING, zone=BERLIN, now=START)
        assert schedule.enabled
        assert set(inspect(store.engine).get_table_names()) >= DIARY_TABLES
        with store.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0002")
        assert not DIARY_TABLES & set(inspect(store.engine).get_table_names())
        # Read as 0002 knew the table (today's model has columns added later).
        with store.engine.connect() as connection:
            row = connection.execute(
                text("SELECT id, channel, country FROM users WHERE external_id = '4242'")
            ).one()
        assert tuple(row) == (user.id, user.channel, user.country)
    finally:
        store.dispose()
