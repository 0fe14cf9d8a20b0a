"""Follow-up use cases (spec v2 item 6): offer after an `urgent` or `soon` result, accept or
decline, find and claim the due ones, record the answer. No Telegram.

The words and the due moment come from `dialogs.followups.FollowUpBook`; the rows live in
`storage.followups`. Every method runs in one transaction, joining the caller's if there is
one (`Store.transaction`): so an adapter claims a follow-up and queues its message together,
and a follow-up is sent exactly once.

Local time is the person's zone: their diary's, else their country's first zone, else UTC. A
follow-up accepted while no zone was known (timezone None) is timed in UTC and re-timed in
the person's zone once one is known (`retime_unzoned`, run before each dispatch).

The words are in the person's language (`UserInfo.lang`), the stored person's when a job sends
the follow-up: the offer, the question (with the advice's headline in that language) and the
reply. When it is due does not depend on the language.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.metrics import DISCARD, Metrics
from bot.services.flow import Clock, Who, utc_now
from dialogs.advice import Advice, AdviceBook
from dialogs.followups import FollowUpBook, FollowUpQuestion, FollowUpReply, Offer
from dialogs.i18n import SOURCE
from dialogs.records import Conclusion
from dialogs.texts import texts
from dialogs.vocabulary import Pattern, Urgency
from storage import Repo, Store, UserInfo
from storage.followups import FollowUp, FollowUpStatus

logger = logging.getLogger(__name__)

DUE_BATCH = 500


@dataclass(frozen=True)
class Offered:
    """A follow-up offered after a result, and the words of the offer."""

    followup: FollowUp
    offer: Offer


@dataclass(frozen=True)
class Claimed:
    """A due follow-up claimed for sending: to whom, and what to ask."""

    followup: FollowUp
    who: Who
    user_id: int
    question: FollowUpQuestion


@dataclass(frozen=True)
class Answered:
    """An answer to a follow-up: `reply` is None when it was answered before (not recorded)."""

    followup: FollowUp
    question: FollowUpQuestion
    label: str
    """The label of the answer the person chose."""
    reply: FollowUpReply | None


class FollowUpService:
    metrics: Metrics = DISCARD

    def __init__(
        self,
        store: Store,
        book: FollowUpBook,
        advice: AdviceBook,
        *,
        clock: Clock = utc_now,
        zones: Callable[[str | None], tuple[str, ...]] = lambda _country: (),
        emergency_number: Callable[[str | None], str | None] = lambda _country: None,
        urgent_care: Callable[[str | None], str | None] = lambda _country: None,
    ) -> None:
        self.store = store
        self.book = book
        self.advice = advice
        self.clock = clock
        self.zones = zones
        """The IANA zones of a country code, the main one first (empty when unknown)."""
        self.emergency_number = emergency_number
        self.urgent_care = urgent_care

    # --- after a result -----------------------------------------------------------------------

    def offer(self, who: Who, conversation_id: int, urgency: Urgency) -> Offered | None:
        """The offer to show after a result, or None: the urgency gets no follow-up (an unsent
        one of this conversation is withdrawn), or the person already chose."""
        with self.store.transaction() as repo:
            user = repo.find_user(who.channel, who.external_id)
            found = repo.load_conversation(conversation_id)
            if user is None or found is None or found[0] != user.id:
                return None
            offer = self.book_for(user).offer(urgency)
            if offer is None:
                repo.followups.withdraw(conversation_id)
                return None
            followup = repo.followups.offer(conversation_id, str(urgency), self.clock())
        if followup.status is not FollowUpStatus.OFFERED:
            return None
        return Offered(followup, offer)

    def accept(self, who: Who, followup_id: int) -> FollowUp | None:
        """The person wants the follow-up: due the next morning (urgent) or a few days later
        (soon), their local time. None if it is not theirs or no longer offered."""
        now = self.clock()
        with self.store.transaction() as repo:
            followup = self._own(repo, who, followup_id)
            if followup is None:
                return None
            user = repo.user_by_id(followup.user_id)
            zone = self.zone_of(repo, user)
            due_at = self._due(followup, now, zone)
            if not repo.followups.accept(
                followup_id, due_at=due_at, zone=zone.key if zone else None, now=now
            ):
                return None
            return repo.followups.get(followup_id)

    def decline(self, who: Who, followup_id: int) -> FollowUp | None:
        """No follow-up, thanks. None if it is not theirs or no longer offered."""
        with self.store.transaction() as repo:
            followup = self._own(repo, who, followup_id)
            if followup is None or not repo.followups.decline(followup_id, self.clock()):
                return None
            return repo.followups.get(followup_id)

    # --- sending ------------------------------------------------------------------------------

    def retime_unzoned(self, now: datetime | None = None) -> int:
        """Accepted follow-ups timed in UTC for want of a zone, whose person has one now, are
        timed again in it (from when they were accepted); returns how many."""
        now = now or self.clock()
        moved = 0
        with self.store.transaction() as repo:
            for followup in repo.followups.unzoned():
                zone = self.zone_of(repo, repo.user_by_id(followup.user_id))
                if zone is None:
                    continue
                due_at = self._due(followup, followup.decided_at or now, zone)
                moved += repo.followups.retime(followup.id, due_at=due_at, zone=zone.key)
        return moved

    def due(
        self, now: datetime | None = None, *, channel: str | None = None, limit: int = DUE_BATCH
    ) -> list[FollowUp]:
        """Accepted follow-ups due at `now` (default: the clock), most overdue first; only of
        people on `channel` if given."""
        now = now or self.clock()
        with self.store.transaction() as repo:
            return repo.followups.due(now, channel=channel, limit=limit)

    def claim(self, followup_id: int, now: datetime | None = None) -> Claimed | None:
        """Claim a due follow-up and say what to ask; None if it is not due or was claimed.

        Call it inside the transaction that queues the message: the claim and the message
        commit together or not at all, so the follow-up is sent exactly once.
        """
        now = now or self.clock()
        with self.store.transaction() as repo:
            if not repo.followups.claim(followup_id, now):
                return None
            followup = repo.followups.get(followup_id)
            assert followup is not None
            user = repo.user_by_id(followup.user_id)
            advice = self._advice(repo, user, followup)
            self.metrics.followups_sent.inc()
            return Claimed(
                followup,
                Who(user.channel, user.external_id),
                user.id,
                self.book_for(user).question(advice),
            )

    def undelivered(self, followup_id: int) -> None:
        """The follow-up could not be delivered (the bot was blocked)."""
        with self.store.transaction() as repo:
            repo.followups.undelivered(followup_id)

    # --- the answer ---------------------------------------------------------------------------

    def answer(self, who: Who, followup_id: int, answer: str) -> Answered | None:
        """Record the answer to a sent follow-up and say what to reply; None if the follow-up
        is not theirs, was never sent, or `answer` is unknown."""
        with self.store.transaction() as repo:
            followup = self._own(repo, who, followup_id)
            if followup is None or followup.status not in (
                FollowUpStatus.SENT,
                FollowUpStatus.ANSWERED,
            ):
                return None
            user = repo.user_by_id(followup.user_id)
            advice = self._advice(repo, user, followup)
            book = self.book_for(user)
            question = book.question(advice)
            labels = dict(question.options)
            if answer not in labels:
                return None
            if not repo.followups.answer(followup_id, answer, self.clock()):
                return Answered(followup, question, labels[answer], None)
            recorded = repo.followups.get(followup_id)
            assert recorded is not None
            return Answered(recorded, question, labels[answer], book.reply(answer, advice))

    # --- the person's language -----------------------------------------------------------------

    def book_for(self, user: UserInfo) -> FollowUpBook:
        """The follow-up words in the person's language (English: this service's own book)."""
        return self.book if user.lang == SOURCE else texts(user.lang).followups

    def advice_for(self, user: UserInfo) -> AdviceBook:
        """The advice in the person's language (English: this service's own book)."""
        return self.advice if user.lang == SOURCE else texts(user.lang).advice

    def book_of(self, who: Who) -> FollowUpBook:
        """The follow-up words for a person (English when they are unknown)."""
        with self.store.transaction() as repo:
            user = repo.find_user(who.channel, who.external_id)
            return self.book if user is None else self.book_for(user)

    # --- reading ------------------------------------------------------------------------------

    def followups(self, who: Who) -> list[FollowUp]:
        """The person's follow-ups, oldest first."""
        with self.store.transaction() as repo:
            user = repo.find_user(who.channel, who.external_id)
            return [] if user is None else repo.followups.of_user(user.id)

    def zone_of(self, repo: Repo, user: UserInfo) -> ZoneInfo | None:
        """The person's zone: their diary's, else their country's first; None if unknown."""
        schedule = repo.diary.schedule(user.id)
        names = [schedule.zone] if schedule is not None else []
        names += list(self.zones(user.country))[:1]
        for name in names:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                logger.warning("unknown time zone %r ignored", name)
        return None

    # --- internals ----------------------------------------------------------------------------

    def _due(self, followup: FollowUp, since: datetime, zone: ZoneInfo | None) -> datetime:
        due_at = self.book.due(Urgency(followup.urgency), since, zone or ZoneInfo("UTC"))
        assert due_at is not None, "only urgent and soon results are followed up"
        return due_at

    def _advice(self, repo: Repo, user: UserInfo, followup: FollowUp) -> Advice:
        """The advice the result gave (with today's numbers for the person's country)."""
        found = repo.load_conversation(followup.conversation_id)
        state = found[1] if found is not None else None
        conclusion = state.conclusion if state is not None else None
        if conclusion is None or str(conclusion.urgency) != followup.urgency:
            conclusion = Conclusion(Pattern.UNCLEAR, Urgency(followup.urgency))
        return self.advice_for(user).advise(
            conclusion,
            state.findings if state is not None else {},
            emergency_number=self.emergency_number(user.country),
            urgent_care=self.urgent_care(user.country),
        )

    @staticmethod
    def _own(repo: Repo, who: Who, followup_id: int) -> FollowUp | None:
        user = repo.find_user(who.channel, who.external_id)
        followup = repo.followups.get(followup_id)
        if user is None or followup is None or followup.user_id != user.id:
            return None
        return followup


__all__ = ["Answered", "Claimed", "FollowUpService", "Offered"]
