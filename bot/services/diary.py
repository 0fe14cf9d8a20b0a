"""Diary use cases: the schedule, check-ins as diary conversations, entries and summaries.

Channel-free like `FlowService` (which runs the diary's questions); the Telegram layer
decides how check-ins look and sends them, in the person's language (`UserInfo.lang`, also
for check-ins sent by a job: `lang_of`); the questions and a red flag's advice come in it from
`FlowService`. Every step that matters for "exactly one check-in
per night" happens in one database transaction with its claim.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.metrics import DISCARD, Metrics
from bot.services.flow import Clock, FlowService, Start, Who, utc_now
from dialogs.advice import AdviceBook
from dialogs.engine import Conversation, Flow
from dialogs.i18n import SOURCE
from dialogs.nights import describe, night_for
from dialogs.trends import (
    LOGGED,
    MISSED,
    NOT_ASKED,
    SKIPPED,
    Night,
    Reason,
    Summary,
    summarize,
    worsening,
)
from storage import Repo, Store, UserInfo
from storage.diary import CheckIn, CheckInStatus, Entry, Schedule

logger = logging.getLogger(__name__)

SUMMARY_NIGHTS = 30
DUE_BATCH = 500
BACKFILL_NIGHTS = 2
"""How many past nights may be filled in afterwards (marked as back-filled)."""


@dataclass(frozen=True)
class Outgoing:
    """A check-in claimed for sending: who, which night, and its diary conversation."""

    checkin: CheckIn
    who: Who
    conversation_id: int
    reminder: bool


@dataclass(frozen=True)
class Trends:
    seven: Summary
    thirty: Summary
    reasons: list[str]
    """In the person's language (`lang`)."""
    lang: str = SOURCE


class DiaryService:
    metrics: Metrics = DISCARD

    def __init__(
        self,
        store: Store,
        flow: Flow,
        advice: AdviceBook,
        *,
        clock: Clock = utc_now,
        emergency_number: Callable[[str | None], str | None] = lambda _country: None,
        urgent_care: Callable[[str | None], str | None] = lambda _country: None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.flow = flow
        self.questions = FlowService(
            store,
            flow,
            advice,
            clock=clock,
            emergency_number=emergency_number,
            urgent_care=urgent_care,
            on_finish=self._save_entry,
        )

    # --- settings -----------------------------------------------------------------------------

    def schedule(self, who: Who) -> Schedule | None:
        with self.store.transaction() as repo:
            user = repo.find_user(who.channel, who.external_id)
            return None if user is None else repo.diary.schedule(user.id)

    def set_schedule(self, who: Who, local_time: time, zone: ZoneInfo) -> Schedule:
        with self.store.transaction() as repo:
            user = repo.user(who.channel, who.external_id)
            return repo.diary.set_schedule(
                user.id, local_time=local_time, zone=zone.key, now=self.clock()
            )

    def stop(self, who: Who) -> None:
        with self.store.transaction() as repo:
            user = repo.find_user(who.channel, who.external_id)
            if user is not None:
                repo.diary.disable(user.id)

    def pause(self, who: Who, days: int) -> date | None:
        """Skip the next `days` nightly check-ins; returns the last night skipped."""
        with self.store.transaction() as repo:
            user = repo.find_user(who.channel, who.external_id)
            schedule = None if user is None else repo.diary.schedule(user.id)
            if user is None or schedule is None:
                return None
            # The next `days` check-ins are skipped, whether or not tonight's was sent yet.
            first = schedule.next_night or self.clock().astimezone(ZoneInfo(schedule.zone)).date()
            until = first + timedelta(days=days - 1)
            repo.diary.pause(user.id, until)
            return until

    @staticmethod
    def describe(schedule: Schedule, lang: str = SOURCE) -> str:
        return describe(schedule.local_time, ZoneInfo(schedule.zone), lang)

    def lang_of(self, who: Who) -> str | None:
        """The person's language (chosen, else their app's); None if they are unknown."""
        with self.store.transaction() as repo:
            user = repo.find_user(who.channel, who.external_id)
            return None if user is None else user.lang

    def lang_of_user(self, user_id: int) -> str:
        """The language of a stored person, for what a job sends them (no update to read)."""
        with self.store.transaction() as repo:
            return repo.user_by_id(user_id).lang

    # --- dispatching --------------------------------------------------------------------------

    def open_due(self, now: datetime | None = None, *, limit: int | None = None) -> int:
        """Create the check-ins that have come due (one per user and night); returns how many.

        With `limit`, at most that many schedules are looked at (call again until it returns
        0), so a caller on an event loop can let other work run between batches.
        """
        now = now or self.clock()
        created = handled = 0
        seen: set[int] = set()
        while limit is None or handled < limit:
            batch = DUE_BATCH if limit is None else min(DUE_BATCH, limit - handled)
            with self.store.transaction() as repo:
                due = [s for s in repo.diary.due(now, limit=batch) if s.user_id not in seen]
            if not due:  # every due schedule moved past `now`, or was already handled
                return created
            seen.update(s.user_id for s in due)
            for schedule in due:
                handled += 1
                assert schedule.next_night is not None and schedule.next_due_at is not None
                with self.store.transaction() as repo:
                    checkin = repo.diary.open_checkin(
                        schedule.user_id, schedule.next_night, schedule.next_due_at, now
                    )
                    if checkin is not None:
                        self._cancel_open_diary(repo, schedule.user_id, now)
                        created += 1
                        self.metrics.checkins_due.inc()
        return created

    def claim_outgoing(
        self, now: datetime | None = None, *, limit: int | None = None
    ) -> list[Outgoing]:
        """Check-ins to send now (new, cut short by a restart, or snoozed until now), claimed;
        at most `limit` of them (call again for the next ones)."""
        now = now or self.clock()
        with self.store.transaction() as repo:
            candidates = repo.diary.unsent(now) + repo.diary.reminders_due(now)
        claimed = []
        for checkin in candidates:
            if limit is not None and len(claimed) >= limit:
                break
            with self.store.transaction() as repo:
                if not repo.diary.mark_sending(checkin.id, now):
                    continue
                user = repo.user_by_id(checkin.user_id)
                conversation_id = checkin.conversation_id
                if conversation_id is None:
                    conversation_id = repo.create_conversation(
                        user.id, self.flow.start(now).snapshot()
                    )
                    repo.diary.attach(checkin.id, conversation_id)
                claimed.append(
                    Outgoing(
                        checkin,
                        Who(user.channel, user.external_id),
                        conversation_id,
                        reminder=checkin.status == CheckInStatus.SNOOZED,
                    )
                )
            self.metrics.checkin_queued(checkin.due_at, now, reminder=claimed[-1].reminder)
        return claimed

    def sent(self, checkin_id: int, message_id: int) -> None:
        with self.store.transaction() as repo:
            repo.diary.mark_sent(checkin_id, message_id, self.clock())

    def undeliverable(self, outgoing: Outgoing) -> None:
        """The person blocked the bot: switch their check-ins off, no retries."""
        with self.store.transaction() as repo:
            repo.diary.mark_failed(outgoing.checkin.id)
            repo.diary.disable(outgoing.checkin.user_id)
        logger.info(
            "check-ins switched off for user %s: the bot was blocked", outgoing.checkin.user_id
        )

    def snooze(self, who: Who, checkin_id: int, minutes: int) -> CheckIn | None:
        """Remind later (minutes > 0) or skip tonight (0); None if the check-in is not theirs."""
        with self.store.transaction() as repo:
            checkin = self._own_checkin(repo, who, checkin_id)
            if checkin is None:
                return None
            ok = (
                repo.diary.snooze(checkin_id, self.clock() + timedelta(minutes=minutes))
                if minutes
                else repo.diary.skip(checkin_id)
            )
            if ok and not minutes and checkin.conversation_id is not None:
                self._cancel(repo, checkin.conversation_id, self.clock())
            return repo.diary.checkin(checkin_id) if ok else None

    # --- back-filling ---------------------------------------------------------------------------

    def backfill_nights(self, who: Who) -> list[date]:
        """Past nights (up to two) that have no entry yet and can be filled in."""
        with self.store.transaction() as repo:
            user = repo.find_user(who.channel, who.external_id)
            if user is None:
                return []
            schedule = repo.diary.schedule(user.id)
            zone = ZoneInfo(schedule.zone) if schedule else ZoneInfo("UTC")
            tonight = night_for(self.clock().astimezone(zone))
            logged = {e.night for e in repo.diary.entries(user.id, tonight - timedelta(days=3))}
        candidates = [tonight - timedelta(days=i) for i in range(1, BACKFILL_NIGHTS + 1)]
        return [night for night in candidates if night not in logged]

    def start_backfill(self, who: Who, night: date) -> Outgoing | None:
        """Open a check-in for a past night, marked as back-filled once answered."""
        if night not in self.backfill_nights(who):
            return None
        now = self.clock()
        with self.store.transaction() as repo:
            user = repo.user(who.channel, who.external_id)
            self._cancel_open_diary(repo, user.id, now)
            checkin = repo.diary.backfill_checkin(user.id, night, now)
            conversation_id = repo.create_conversation(user.id, self.flow.start(now).snapshot())
            repo.diary.attach(checkin.id, conversation_id)
            repo.diary.mark_sent(checkin.id, 0, now)
            return Outgoing(checkin, who, conversation_id, reminder=False)

    # --- answers --------------------------------------------------------------------------------

    def night_of(self, conversation_id: int) -> CheckIn | None:
        with self.store.transaction() as repo:
            return repo.diary.checkin_for_conversation(conversation_id)

    def _save_entry(
        self, repo: Repo, user: UserInfo, conversation_id: int, conversation: Conversation
    ) -> None:
        checkin = repo.diary.checkin_for_conversation(conversation_id)
        if checkin is None:
            logger.warning("diary conversation %s has no check-in; not saved", conversation_id)
            return
        conclusion = conversation.data.conclusion
        repo.diary.save_entry(
            user.id,
            checkin.night,
            values=conversation.values(),
            findings=dict(conversation.findings),
            red_flags=list(conclusion.red_flags) if conclusion else [],
            backfilled=checkin.backfill,
            conversation_id=conversation_id,
        )
        repo.diary.answered(checkin.id, conversation_id)

    def _cancel_open_diary(self, repo: Repo, user_id: int, now: datetime) -> None:
        found = repo.open_conversation(user_id, self.flow.name)
        if found is not None:
            self._cancel(repo, found[0], now)

    def _cancel(self, repo: Repo, conversation_id: int, now: datetime) -> None:
        found = repo.load_conversation(conversation_id)
        if found is None or found[1].finished:
            return
        conversation = self.flow.restore(found[1])
        conversation.cancel(now)
        repo.save_conversation(conversation_id, conversation.snapshot())

    @staticmethod
    def _own_checkin(repo: Repo, who: Who, checkin_id: int) -> CheckIn | None:
        user = repo.find_user(who.channel, who.external_id)
        checkin = repo.diary.checkin(checkin_id)
        if user is None or checkin is None or checkin.user_id != user.id:
            return None
        return checkin

    # --- trends ---------------------------------------------------------------------------------

    def trends(self, who: Who) -> Trends | None:
        """The last 7 and 30 nights, and any reasons to run the triage again (in the person's
        language)."""
        found = self._nights(who)
        if found is None:
            return None
        nights, today, lang = found
        return Trends(
            summarize(nights, today=today, days=7),
            summarize(nights, today=today, days=SUMMARY_NIGHTS),
            worsening(nights, today=today, lang=lang),
            lang,
        )

    def new_worsening(self, who: Who, night: date) -> list[Reason]:
        """Reasons to run the triage again that appear with `night` (not the night before), so
        a worsening trend is pointed out once, not every night it lasts; in the person's
        language."""
        found = self._nights(who)
        if found is None:
            return []
        nights, _, lang = found
        before = {reason.kind for reason in worsening(nights, today=night - timedelta(days=1))}
        return [r for r in worsening(nights, today=night, lang=lang) if r.kind not in before]

    def _nights(self, who: Who) -> tuple[list[Night], date, str] | None:
        """The person's recent nights for the trends, tonight's date in their zone, and their
        language."""
        with self.store.transaction() as repo:
            user = repo.find_user(who.channel, who.external_id)
            if user is None:
                return None
            schedule = repo.diary.schedule(user.id)
            zone = ZoneInfo(schedule.zone) if schedule else ZoneInfo("UTC")
            today = night_for(self.clock().astimezone(zone))
            since = today - timedelta(days=SUMMARY_NIGHTS + 28)
            nights = nights_from(
                repo.diary.entries(user.id, since), repo.diary.checkins(user.id, since)
            )
        return nights, today, user.lang


def nights_from(entries: list[Entry], checkins: list[CheckIn]) -> list[Night]:
    """Turn stored check-ins and entries into the trend module's nights."""
    status_of = {
        CheckInStatus.MISSED: MISSED,
        CheckInStatus.SKIPPED: SKIPPED,
        CheckInStatus.FAILED: NOT_ASKED,
    }
    nights = [Night(c.night, status_of[c.status], {}) for c in checkins if c.status in status_of]
    nights += [Night(e.night, LOGGED, e.values, e.backfilled) for e in entries]
    return nights


__all__ = ["DiaryService", "Outgoing", "Start", "Trends"]
