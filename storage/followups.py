"""Follow-up storage (spec v2 item 6): one follow-up per result, read and written as plain values.

The result's urgency and the person's answer say something about their health, so they are
sealed (`storage.sealing`) in `followups.sealed`; status and times stay plain, as the
dispatcher queries them.

`FollowUpRepo` works inside the transaction of the `Repo` that hands it out (`Repo.followups`):
it flushes but never commits. "One follow-up per result" rests on UNIQUE(conversation_id);
"sent exactly once" on `claim`, a conditional UPDATE from 'accepted' to 'sent' made in the
transaction that queues the message: two dispatcher runs racing for the same follow-up cannot
both claim it, and a claim whose transaction rolls back leaves it 'accepted' for the next run.
Only `FollowUp` values leave; ORM rows never do.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from storage.base import NotFound
from storage.models import Conversation, User
from storage.models import FollowUp as FollowUpRow
from storage.sealing import Sealer

FOLLOWUP = "followups.sealed"
"""Where a follow-up's sealed urgency and answer live (bound into their associated data)."""


class FollowUpStatus(StrEnum):
    """Where a follow-up stands."""

    OFFERED = "offered"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    SENT = "sent"
    ANSWERED = "answered"
    CANCELLED = "cancelled"
    """Replaced by a newer accepted follow-up, or its result changed (the check was reopened)."""
    FAILED = "failed"
    """Could not be delivered (the person blocked the bot)."""


ANSWERS = ("seen", "not_yet", "changed")
_UNSENT = (FollowUpStatus.OFFERED, FollowUpStatus.ACCEPTED, FollowUpStatus.DECLINED)


@dataclass(frozen=True)
class FollowUp:
    """One follow-up as plain values."""

    id: int
    user_id: int
    conversation_id: int
    urgency: str
    status: FollowUpStatus
    offered_at: datetime
    decided_at: datetime | None
    zone: str | None
    due_at: datetime | None
    sent_at: datetime | None
    answer: str | None
    answered_at: datetime | None


_BY_CONVERSATION = select(FollowUpRow).where(
    FollowUpRow.conversation_id == bindparam("conversation")
)


def _followup(row: FollowUpRow, sealer: Sealer) -> FollowUp:
    body = sealer.open(row.user_id, FOLLOWUP, row.sealed) or {}
    return FollowUp(
        id=row.id,
        user_id=row.user_id,
        conversation_id=row.conversation_id,
        urgency=body["urgency"],
        status=FollowUpStatus(row.status),
        offered_at=row.offered_at,
        decided_at=row.decided_at,
        zone=row.timezone,
        due_at=row.due_at,
        sent_at=row.sent_at,
        answer=body.get("answer"),
        answered_at=row.answered_at,
    )


class FollowUpRepo:
    """Follow-up reads and writes within one Session; it never commits."""

    def __init__(self, session: Session, sealer: Sealer) -> None:
        self._session = session
        self._sealer = sealer

    def _seal(self, user_id: int, urgency: str, answer: str | None = None) -> bytes:
        return self._sealer.seal(user_id, FOLLOWUP, {"urgency": urgency, "answer": answer})

    def _value(self, row: FollowUpRow) -> FollowUp:
        return _followup(row, self._sealer)

    def _set_status(
        self, followup_id: int, status: FollowUpStatus, allowed: Collection[str], **values: Any
    ) -> bool:
        """Move one follow-up to `status` if it is in `allowed`; True if so."""
        result = self._session.execute(
            update(FollowUpRow)
            .where(FollowUpRow.id == followup_id, FollowUpRow.status.in_(list(allowed)))
            .values(status=status, **values)
        )
        return result.rowcount == 1

    def _row_for(self, conversation_id: int) -> FollowUpRow | None:
        return self._session.scalars(
            _BY_CONVERSATION, {"conversation": conversation_id}
        ).one_or_none()

    def offer(self, conversation_id: int, urgency: str, now: datetime) -> FollowUp:
        """The follow-up offered after the result of `conversation_id`, created if new.

        A result shown again (the check was reopened and concluded anew) keeps an accepted or
        declined follow-up of the same urgency as it is; with another urgency it is offered
        afresh, unless it was already sent.
        """
        conversation = self._session.get(Conversation, conversation_id)
        if conversation is None:
            raise NotFound(f"no conversation {conversation_id}")
        row = self._row_for(conversation_id)
        if row is None:
            row = FollowUpRow(
                user_id=conversation.user_id,
                conversation_id=conversation_id,
                sealed=self._seal(conversation.user_id, urgency),
                status=FollowUpStatus.OFFERED,
                offered_at=now,
            )
            self._session.add(row)
        elif row.status == FollowUpStatus.CANCELLED or (
            row.status in _UNSENT and self._value(row).urgency != urgency
        ):
            row.sealed = self._seal(row.user_id, urgency)
            row.status = FollowUpStatus.OFFERED
            row.offered_at = now
            row.decided_at = row.due_at = row.timezone = None
        self._session.flush()
        return self._value(row)

    def withdraw(self, conversation_id: int) -> bool:
        """The result of `conversation_id` no longer gets a follow-up; an unsent one is
        cancelled. True if one was."""
        row = self._row_for(conversation_id)
        if row is None:
            return False
        return self._set_status(row.id, FollowUpStatus.CANCELLED, _UNSENT)

    def accept(
        self, followup_id: int, *, due_at: datetime, zone: str | None, now: datetime
    ) -> bool:
        """The person wants the follow-up, due at `due_at` (chosen in `zone`'s local time).

        Other accepted, unsent follow-ups of the same person are cancelled: one check-in
        about the latest result, not one per result. False if this one is no longer offered.
        """
        row = self._session.get(FollowUpRow, followup_id)
        if row is None or row.status != FollowUpStatus.OFFERED:
            return False
        self._session.execute(
            update(FollowUpRow)
            .where(
                FollowUpRow.user_id == row.user_id,
                FollowUpRow.id != followup_id,
                FollowUpRow.status == FollowUpStatus.ACCEPTED,
            )
            .values(status=FollowUpStatus.CANCELLED)
        )
        return self._set_status(
            followup_id,
            FollowUpStatus.ACCEPTED,
            (FollowUpStatus.OFFERED,),
            decided_at=now,
            due_at=due_at,
            timezone=zone,
        )

    def decline(self, followup_id: int, now: datetime) -> bool:
        """The person wants no follow-up; False if it is no longer offered."""
        return self._set_status(
            followup_id, FollowUpStatus.DECLINED, (FollowUpStatus.OFFERED,), decided_at=now
        )

    def due(self, now: datetime, *, channel: str | None = None, limit: int = 500) -> list[FollowUp]:
        """Accepted follow-ups due at `now`, the most overdue first (not yet claimed); only of
        people on `channel` if given."""
        query = select(FollowUpRow).where(
            FollowUpRow.status == FollowUpStatus.ACCEPTED, FollowUpRow.due_at <= now
        )
        if channel is not None:
            query = query.join(User, User.id == FollowUpRow.user_id).where(User.channel == channel)
        rows = self._session.scalars(
            query.order_by(FollowUpRow.due_at, FollowUpRow.id).limit(limit)
        )
        return [self._value(row) for row in rows]

    def unzoned(self) -> list[FollowUp]:
        """Accepted follow-ups timed in UTC because no zone of the person was known."""
        rows = self._session.scalars(
            select(FollowUpRow)
            .where(FollowUpRow.status == FollowUpStatus.ACCEPTED, FollowUpRow.timezone.is_(None))
            .order_by(FollowUpRow.id)
        )
        return [self._value(row) for row in rows]

    def retime(self, followup_id: int, *, due_at: datetime, zone: str) -> bool:
        """Time an accepted, unsent follow-up anew in `zone`; False if it is no longer so."""
        return self._set_status(
            followup_id,
            FollowUpStatus.ACCEPTED,
            (FollowUpStatus.ACCEPTED,),
            due_at=due_at,
            timezone=zone,
        )

    def claim(self, followup_id: int, now: datetime) -> bool:
        """Claim a due follow-up for sending; send (in this same transaction) only if True."""
        result = self._session.execute(
            update(FollowUpRow)
            .where(
                FollowUpRow.id == followup_id,
                FollowUpRow.status == FollowUpStatus.ACCEPTED,
                FollowUpRow.due_at <= now,
            )
            .values(status=FollowUpStatus.SENT, sent_at=now)
        )
        return result.rowcount == 1

    def answer(self, followup_id: int, answer: str, now: datetime) -> bool:
        """Record the person's answer to a sent follow-up; False if it is not open to one."""
        if answer not in ANSWERS:
            raise ValueError(f"{answer!r} is not a follow-up answer ({list(ANSWERS)})")
        row = self._session.get(FollowUpRow, followup_id)
        if row is None:
            return False
        return self._set_status(
            followup_id,
            FollowUpStatus.ANSWERED,
            (FollowUpStatus.SENT,),
            sealed=self._seal(row.user_id, self._value(row).urgency, answer),
            answered_at=now,
        )

    def undelivered(self, followup_id: int) -> bool:
        """A queued follow-up could not be delivered (the bot was blocked): 'failed'."""
        return self._set_status(followup_id, FollowUpStatus.FAILED, (FollowUpStatus.SENT,))

    def get(self, followup_id: int) -> FollowUp | None:
        """One follow-up by id (as carried in a button), or None."""
        row = self._session.get(FollowUpRow, followup_id)
        return None if row is None else self._value(row)

    def for_conversation(self, conversation_id: int) -> FollowUp | None:
        row = self._row_for(conversation_id)
        return None if row is None else self._value(row)

    def of_user(self, user_id: int) -> list[FollowUp]:
        """The user's follow-ups, oldest first."""
        rows = self._session.scalars(
            select(FollowUpRow)
            .where(FollowUpRow.user_id == user_id)
            .order_by(FollowUpRow.offered_at, FollowUpRow.id)
        )
        return [self._value(row) for row in rows]
