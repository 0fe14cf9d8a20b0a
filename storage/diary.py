"""Night diary storage: check-in schedules, check-ins and entries, read and written as plain values.

`DiaryRepo` works inside the transaction of the `Repo` that hands it out (`Repo.diary`): it
flushes but never commits. "One check-in per user and night" rests on the database's
UNIQUE(user_id, night); status changes are conditional UPDATEs, so two dispatcher runs racing
for the same check-in cannot both claim it. Only `Schedule`, `CheckIn` and `Entry` values
leave; ORM rows never do.
The due-time rule itself is `dialogs.nights.next_due`, shared with the bot.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from dialogs.nights import next_due
from storage.base import Clock, NotFound
from storage.models import DiaryCheckin, DiaryEntry, DiarySchedule, User
from storage.sealing import Sealer

STALE_AFTER = timedelta(minutes=2)
"""A send attempt older than this was cut short (by a restart) and may be tried again."""


class CheckInStatus(StrEnum):
    """Where a check-in stands; `SENT` and `SNOOZED` ones can still be answered."""

    DUE = "due"
    SENDING = "sending"
    SENT = "sent"
    SNOOZED = "snoozed"
    ANSWERED = "answered"
    SKIPPED = "skipped"
    MISSED = "missed"
    FAILED = "failed"


_UNSENT = (CheckInStatus.DUE, CheckInStatus.SENDING)
_DELIVERED = (CheckInStatus.SENDING, CheckInStatus.SENT, CheckInStatus.SNOOZED)
"""Statuses in which the user may have the message and press its buttons."""
_ANSWERABLE = (CheckInStatus.SENT, CheckInStatus.SNOOZED)


@dataclass(frozen=True)
class Schedule:
    """When a user's check-ins are due; `next_due_at` and `next_night` are None when disabled."""

    user_id: int
    enabled: bool
    local_time: time
    zone: str
    next_due_at: datetime | None
    next_night: date | None
    paused_until: date | None


@dataclass(frozen=True)
class CheckIn:
    """The check-in about one night."""

    id: int
    user_id: int
    night: date
    due_at: datetime
    status: CheckInStatus
    sending_at: datetime | None
    sent_at: datetime | None
    remind_at: datetime | None
    message_id: int | None
    conversation_id: int | None
    backfill: bool
    """Opened by the user for a past night rather than by the schedule."""


@dataclass(frozen=True)
class Entry:
    """What the user told about one night."""

    id: int
    user_id: int
    night: date
    backfilled: bool
    values: dict[str, Any]
    findings: dict[str, bool]
    red_flags: tuple[str, ...]
    conversation_id: int | None
    created_at: datetime


def _schedule(row: DiarySchedule) -> Schedule:
    return Schedule(
        user_id=row.user_id,
        enabled=row.enabled,
        local_time=time.fromisoformat(row.local_time),
        zone=row.timezone,
        next_due_at=row.next_due_at,
        next_night=row.next_night,
        paused_until=row.paused_until,
    )


def _checkin(row: DiaryCheckin) -> CheckIn:
    return CheckIn(
        id=row.id,
        user_id=row.user_id,
        night=row.night,
        due_at=row.due_at,
        status=CheckInStatus(row.status),
        sending_at=row.sending_at,
        sent_at=row.sent_at,
        remind_at=row.remind_at,
        message_id=row.message_id,
        conversation_id=row.conversation_id,
        backfill=row.backfill,
    )


ENTRY = "diary_entries.sealed"
"""Where an entry's values are bound when sealed (`storage.sealing`)."""


def _entry(row: DiaryEntry, sealer: Sealer) -> Entry:
    values, findings, red_flags = sealer.open(row.user_id, ENTRY, row.sealed)
    return Entry(
        id=row.id,
        user_id=row.user_id,
        night=row.night,
        backfilled=row.backfilled,
        values=dict(values),
        findings=dict(findings),
        red_flags=tuple(red_flags),
        conversation_id=row.conversation_id,
        created_at=row.created_at,
    )


class DiaryRepo:
    """Diary reads and writes within one Session; it never commits."""

    def __init__(self, session: Session, clock: Clock, sealer: Sealer) -> None:
        self._session = session
        self._sealer = sealer
        self._clock = clock

    def _schedule_row(self, user_id: int) -> DiarySchedule | None:
        return self._session.get(DiarySchedule, user_id)

    def _require_user(self, user_id: int) -> None:
        if self._session.get(User, user_id) is None:
            raise NotFound(f"no user {user_id}")

    def _checkin_row(self, user_id: int, night: date) -> DiaryCheckin | None:
        return self._session.scalars(
            select(DiaryCheckin).where(DiaryCheckin.user_id == user_id, DiaryCheckin.night == night)
        ).one_or_none()

    def _entry_row(self, user_id: int, night: date) -> DiaryEntry | None:
        return self._session.scalars(
            select(DiaryEntry).where(DiaryEntry.user_id == user_id, DiaryEntry.night == night)
        ).one_or_none()

    def _set_status(
        self,
        checkin_id: int,
        status: CheckInStatus,
        allowed: Collection[CheckInStatus],
        *,
        also: ColumnElement[bool] | None = None,
        **values: Any,
    ) -> bool:
        """Move one check-in to `status` if it is in `allowed` (and `also` holds); True if so."""
        query = update(DiaryCheckin).where(
            DiaryCheckin.id == checkin_id, DiaryCheckin.status.in_(allowed)
        )
        if also is not None:
            query = query.where(also)
        result = self._session.execute(query.values(status=status, **values))
        return result.rowcount == 1

    # Schedules

    def schedule(self, user_id: int) -> Schedule | None:
        """The user's schedule, enabled or not; None if they never set one."""
        row = self._schedule_row(user_id)
        return None if row is None else _schedule(row)

    def set_schedule(self, user_id: int, *, local_time: time, zone: str, now: datetime) -> Schedule:
        """Enable check-ins at `local_time` (whole minutes) in IANA `zone`, next due after `now`.

        A pause stays as it was. Raises NotFound for an unknown user, ValueError for a time
        with seconds or a tzinfo, ZoneInfoNotFoundError for an unknown zone name.
        """
        self._require_user(user_id)
        if local_time.second or local_time.microsecond or local_time.tzinfo is not None:
            raise ValueError(f"{local_time!r}: pass a wall time in whole minutes, without a zone")
        zone_info = ZoneInfo(zone)
        night, due_at = next_due(local_time, zone_info, now)
        row = self._schedule_row(user_id)
        if row is None:
            row = DiarySchedule(user_id=user_id, paused_until=None, created_at=now)
            self._session.add(row)
        row.enabled = True
        row.local_time = f"{local_time:%H:%M}"
        row.timezone = zone_info.key
        row.next_due_at = due_at
        row.next_night = night
        row.updated_at = now
        self._session.flush()
        return _schedule(row)

    def disable(self, user_id: int) -> None:
        """Switch the user's check-ins off (kept for re-enabling); no-op without a schedule."""
        row = self._schedule_row(user_id)
        if row is None:
            return
        row.enabled = False
        row.next_due_at = None
        row.next_night = None
        row.updated_at = self._clock()
        self._session.flush()

    def pause(self, user_id: int, until: date | None) -> Schedule:
        """Ask about no night up to and including `until`; None ends a pause."""
        row = self._schedule_row(user_id)
        if row is None:
            raise NotFound(f"no diary schedule for user {user_id}")
        row.paused_until = until
        row.updated_at = self._clock()
        self._session.flush()
        return _schedule(row)

    def due(self, now: datetime, limit: int = 500) -> list[Schedule]:
        """Enabled schedules whose next check-in is due at `now`, the most overdue first."""
        rows = self._session.scalars(
            select(DiarySchedule)
            .where(DiarySchedule.enabled.is_(True), DiarySchedule.next_due_at <= now)
            .order_by(DiarySchedule.next_due_at, DiarySchedule.user_id)
            .limit(limit)
        )
        return [_schedule(row) for row in rows]

    # Check-ins

    def open_checkin(
        self, user_id: int, night: date, due_at: datetime, now: datetime | None = None
    ) -> CheckIn | None:
        """Create the 'due' check-in for the schedule's next night and advance the schedule.

        `night` and `due_at` are the `Schedule.next_night` / `next_due_at` the caller read; if
        the schedule no longer says so (another run advanced it, the user changed or disabled
        it) nothing happens and None is returned. Otherwise the schedule moves to its first due
        moment after `now` (default: the clock), so a late run creates one check-in, not one
        per missed day. No check-in is created (None) while paused, or when that night already
        has a check-in or an entry. A new check-in makes older unanswered ones missed.
        """
        # Locked and read afresh: of several processes opening it at once, one takes it and
        # the others skip it, or find it moved on (PostgreSQL; SQLite has one writer).
        row = self._session.scalars(
            select(DiarySchedule)
            .where(DiarySchedule.user_id == user_id)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        ).one_or_none()
        if row is None or not row.enabled or (row.next_night, row.next_due_at) != (night, due_at):
            return None
        now = self._clock() if now is None else now
        zone = ZoneInfo(row.timezone)
        local_time = time.fromisoformat(row.local_time)
        # After downtime that spanned later due moments, ask about the latest night due, not
        # a stale one: a late check-in is sent once, and nights that passed unasked stay so.
        while (later := next_due(local_time, zone, due_at))[1] <= now:
            night, due_at = later
        row.next_night, row.next_due_at = next_due(local_time, zone, max(now, due_at))
        row.updated_at = now
        paused = row.paused_until is not None and night <= row.paused_until
        if (
            paused
            or self._checkin_row(user_id, night) is not None
            or self._entry_row(user_id, night) is not None
        ):
            self._session.flush()
            return None
        self.mark_missed_before(user_id, night)
        checkin = DiaryCheckin(
            user_id=user_id, night=night, due_at=due_at, status=CheckInStatus.DUE, backfill=False
        )
        self._session.add(checkin)
        self._session.flush()
        return _checkin(checkin)

    def backfill_checkin(self, user_id: int, night: date, now: datetime) -> CheckIn:
        """A 'sent' check-in for a past night the user asked to fill in, marked `backfill`.

        An existing check-in for that night (say a missed one) is reopened, since a night has
        only one; the caller attaches the conversation that asks the questions.
        """
        self._require_user(user_id)
        row = self._checkin_row(user_id, night)
        if row is None:
            row = DiaryCheckin(user_id=user_id, night=night, due_at=now)
            self._session.add(row)
        row.status = CheckInStatus.SENT
        row.backfill = True
        row.sent_at = now
        row.sending_at = None
        row.remind_at = None
        row.message_id = None
        row.conversation_id = None
        self._session.flush()
        return _checkin(row)

    def attach(self, checkin_id: int, conversation_id: int) -> None:
        """Link the diary conversation that asks the check-in's questions."""
        self._session.execute(
            update(DiaryCheckin)
            .where(DiaryCheckin.id == checkin_id)
            .values(conversation_id=conversation_id)
        )

    def mark_sending(
        self, checkin_id: int, now: datetime, stale_after: timedelta = STALE_AFTER
    ) -> bool:
        """Claim a check-in for sending; send only if True.

        Claimable: 'due', 'snoozed' whose reminder time has come, or 'sending' for longer
        than `stale_after` (a restart cut the attempt short).
        """
        claimable = or_(
            DiaryCheckin.status == CheckInStatus.DUE,
            (DiaryCheckin.status == CheckInStatus.SNOOZED) & (DiaryCheckin.remind_at <= now),
            (DiaryCheckin.status == CheckInStatus.SENDING)
            & (DiaryCheckin.sending_at <= now - stale_after),
        )
        return self._set_status(
            checkin_id,
            CheckInStatus.SENDING,
            (CheckInStatus.DUE, CheckInStatus.SNOOZED, CheckInStatus.SENDING),
            also=claimable,
            sending_at=now,
        )

    def mark_sent(self, checkin_id: int, message_id: int, now: datetime) -> None:
        """Record the delivered message; 'due'/'sending' become 'sent'.

        A button the user already pressed on the message (snooze, skip, answer) is kept.
        """
        self._session.execute(
            update(DiaryCheckin)
            .where(DiaryCheckin.id == checkin_id)
            .values(message_id=message_id, sent_at=now)
        )
        self._set_status(checkin_id, CheckInStatus.SENT, _UNSENT, remind_at=None)

    def set_message(self, checkin_id: int, message_id: int) -> None:
        """Record Telegram's id of the delivered check-in message."""
        self._session.execute(
            update(DiaryCheckin).where(DiaryCheckin.id == checkin_id).values(message_id=message_id)
        )

    def mark_failed(self, checkin_id: int) -> None:
        """The send failed for good: 'due'/'sending' become 'failed' and are not retried."""
        self._set_status(checkin_id, CheckInStatus.FAILED, _UNSENT)

    def mark_undelivered(self, checkin_id: int) -> None:
        """A queued check-in could not be delivered (the bot was blocked): 'failed'."""
        self._set_status(checkin_id, CheckInStatus.FAILED, (*_UNSENT, CheckInStatus.SENT))

    def snooze(self, checkin_id: int, until: datetime) -> bool:
        """Send the check-in again at `until`; False if it is no longer open."""
        return self._set_status(checkin_id, CheckInStatus.SNOOZED, _DELIVERED, remind_at=until)

    def skip(self, checkin_id: int) -> bool:
        """No answer tonight, by the user's choice; False if it is no longer open."""
        return self._set_status(checkin_id, CheckInStatus.SKIPPED, _DELIVERED, remind_at=None)

    def answered(self, checkin_id: int, conversation_id: int | None) -> bool:
        """The check-in was answered in `conversation_id`; False if it is no longer open."""
        return self._set_status(
            checkin_id,
            CheckInStatus.ANSWERED,
            _DELIVERED,
            remind_at=None,
            conversation_id=conversation_id,
        )

    def mark_missed_before(self, user_id: int, night: date) -> int:
        """Open check-ins for nights before `night` become 'missed': unanswered ones, and ones
        whose sending never succeeded (so a failing send is not retried past its night)."""
        result = self._session.execute(
            update(DiaryCheckin)
            .where(
                DiaryCheckin.user_id == user_id,
                DiaryCheckin.night < night,
                DiaryCheckin.status.in_((*_ANSWERABLE, *_UNSENT)),
            )
            .values(status=CheckInStatus.MISSED, remind_at=None)
        )
        return result.rowcount

    def unsent(self, now: datetime, stale_after: timedelta = STALE_AFTER) -> list[CheckIn]:
        """Check-ins to send: 'due', or 'sending' for longer than `stale_after`; oldest first."""
        rows = self._session.scalars(
            select(DiaryCheckin)
            .where(
                or_(
                    DiaryCheckin.status == CheckInStatus.DUE,
                    (DiaryCheckin.status == CheckInStatus.SENDING)
                    & (DiaryCheckin.sending_at <= now - stale_after),
                )
            )
            .order_by(DiaryCheckin.due_at, DiaryCheckin.id)
        )
        return [_checkin(row) for row in rows]

    def reminders_due(self, now: datetime) -> list[CheckIn]:
        """Snoozed check-ins whose reminder time has come, oldest first."""
        rows = self._session.scalars(
            select(DiaryCheckin)
            .where(DiaryCheckin.status == CheckInStatus.SNOOZED, DiaryCheckin.remind_at <= now)
            .order_by(DiaryCheckin.remind_at, DiaryCheckin.id)
        )
        return [_checkin(row) for row in rows]

    def current_checkin(self, user_id: int) -> CheckIn | None:
        """The user's newest check-in that can still be answered ('sent' or 'snoozed')."""
        row = self._session.scalars(
            select(DiaryCheckin)
            .where(DiaryCheckin.user_id == user_id, DiaryCheckin.status.in_(_ANSWERABLE))
            .order_by(DiaryCheckin.night.desc())
            .limit(1)
        ).first()
        return None if row is None else _checkin(row)

    def checkin(self, checkin_id: int) -> CheckIn | None:
        """One check-in by id (as carried in a button), or None."""
        row = self._session.get(DiaryCheckin, checkin_id)
        return None if row is None else _checkin(row)

    def checkin_for_conversation(self, conversation_id: int) -> CheckIn | None:
        """The check-in whose questions `conversation_id` asks, or None."""
        row = self._session.scalars(
            select(DiaryCheckin)
            .where(DiaryCheckin.conversation_id == conversation_id)
            .order_by(DiaryCheckin.id.desc())
            .limit(1)
        ).first()
        return None if row is None else _checkin(row)

    def checkins(self, user_id: int, since: date | None = None) -> list[CheckIn]:
        """The user's check-ins, by night, from `since` on if given."""
        query = select(DiaryCheckin).where(DiaryCheckin.user_id == user_id)
        if since is not None:
            query = query.where(DiaryCheckin.night >= since)
        return [_checkin(row) for row in self._session.scalars(query.order_by(DiaryCheckin.night))]

    # Entries

    def save_entry(
        self,
        user_id: int,
        night: date,
        *,
        values: Mapping[str, Any],
        findings: Mapping[str, bool],
        red_flags: Sequence[str],
        backfilled: bool,
        conversation_id: int | None,
    ) -> Entry:
        """Store what the user told about `night`, replacing an earlier entry for it."""
        self._require_user(user_id)
        row = self._entry_row(user_id, night)
        if row is None:
            row = DiaryEntry(user_id=user_id, night=night, created_at=self._clock())
            self._session.add(row)
        row.sealed = self._sealer.seal(
            user_id, ENTRY, [dict(values), dict(findings), list(red_flags)]
        )
        row.backfilled = backfilled
        row.conversation_id = conversation_id
        self._session.flush()
        return _entry(row, self._sealer)

    def entries(self, user_id: int, since: date | None = None) -> list[Entry]:
        """The user's entries, by night, from `since` on if given."""
        query = select(DiaryEntry).where(DiaryEntry.user_id == user_id)
        if since is not None:
            query = query.where(DiaryEntry.night >= since)
        rows = self._session.scalars(query.order_by(DiaryEntry.night))
        return [_entry(row, self._sealer) for row in rows]
