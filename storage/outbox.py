"""The outbox's reads and writes: queue what the bot will say, hand it to the sender in
order per chat, and record what Telegram answered.

Rows are written in the transaction of the change that caused them (see `Store.transaction`),
so a committed change always has its replies queued, and a rolled-back one has none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, or_, select, text, update
from sqlalchemy.orm import Session, aliased

from storage.models import OutboxMessage, User
from storage.sealing import Sealer, SealingError

REPLY, TRAIL, BULK = "reply", "trail", "bulk"
"""A tap's reply (up to the message the person taps next), what trails it (the rest of the
same reply), and bulk sends nobody is waiting for (check-ins, summaries, follow-ups)."""
LANES = (REPLY, TRAIL, BULK)


@dataclass(frozen=True)
class Outgoing:
    """One queued row as plain values."""

    id: int
    chat_id: int
    lane: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    not_before: datetime | None = None
    claims: int = 0
    """Times handed to a sender, this one included (see `OutboxMessage.claims`)."""


PAYLOAD = "outbox.payload"
"""Where payloads are bound when sealed (`storage.sealing`)."""
_PERSON_OF_CHAT = select(User.id).where(
    User.channel == "telegram", User.external_id == bindparam("external")
)


# The sender's statements run for every message, so they are built once and executed as Core
# statements on the session's connection: the ORM's bulk-update path costs several times the
# statement itself (issue 8, CPU per tap).
_T = OutboxMessage.__table__
_ADD = _T.insert().values(
    chat_id=bindparam("chat_id"),
    lane=bindparam("lane"),
    kind=bindparam("kind"),
    payload=bindparam("payload"),
    created_at=bindparam("now"),
    attempts=0,
)
_OLDEST = (
    select(_T.c.id)
    .where(_T.c.chat_id == bindparam("chat"), _T.c.delivered_at.is_(None))
    .order_by(_T.c.id)
    .limit(1)
    .scalar_subquery()
)


def _claim(*, shared: bool) -> Any:
    """Lease the chat's oldest undelivered row and return it. `shared`: several processes
    may share the database (PostgreSQL), so another one's live lease keeps the chat; on
    SQLite (one process per file) a lease left by a kill is its own."""
    # `delivered_at IS NULL` again: on PostgreSQL a claim that waited for another instance's
    # "delivered" re-checks only these conditions, not the subquery's.
    where = [_T.c.id == _OLDEST, _T.c.delivered_at.is_(None)]
    if shared:
        where.append(
            or_(
                _T.c.claimed_until.is_(None),
                _T.c.claimed_until < bindparam("now"),
                _T.c.claimed_by == bindparam("instance"),
            )
        )
    return (
        _T.update()
        .where(*where)
        .values(
            claimed_by=bindparam("instance"),
            claimed_until=bindparam("until"),
            claims=_T.c.claims + 1,
        )
        .returning(*(getattr(_T.c, name) for name in Outgoing.__dataclass_fields__))
    )


_CLAIM = {"sqlite": _claim(shared=False), "postgresql": _claim(shared=True)}
_DELIVERED = (
    _T.update()
    .where(_T.c.id == bindparam("row_id"))
    .values(
        delivered_at=bindparam("now"),
        message_id=bindparam("message_id"),
        outcome=bindparam("outcome"),
        payload=None,
        claimed_by=None,
        claimed_until=None,
    )
)


class OutboxRepo:
    """Outbox rows within the caller's Session; never commits."""

    def __init__(self, session: Session, now: datetime, sealer: Sealer) -> None:
        self._session = session
        self._now = now
        self._sealer = sealer

    def _person(self, chat_id: int) -> int | None:
        """The stored person of a private chat (whose key seals its payloads), or None."""
        people = self._sealer.keyring.chats
        if chat_id in people:
            return people[chat_id]
        found = self._session.scalar(_PERSON_OF_CHAT, {"external": str(chat_id)})
        if found is not None:  # only people are remembered: one may appear later in a chat
            people[chat_id] = found
        return found

    def _outgoing(self, row: OutboxMessage | Any) -> Outgoing:
        """From an ORM row or a Core result row (same attribute names)."""
        try:
            payload = self._sealer.open(self._person(row.chat_id), PAYLOAD, row.payload)
        except SealingError:
            # Another instance may have erased the person since this one remembered the chat
            # (and the chat may have a new person now): ask the database again, once.
            self._sealer.keyring.chats.pop(row.chat_id, None)
            payload = self._sealer.open(self._person(row.chat_id), PAYLOAD, row.payload)
        return Outgoing(
            row.id,
            row.chat_id,
            row.lane,
            row.kind,
            dict(payload or {}),
            row.attempts,
            row.not_before,
            row.claims,
        )

    def add(self, chat_id: int, kind: str, payload: dict[str, Any], *, lane: str = REPLY) -> int:
        if lane not in LANES:
            raise ValueError(f"unknown lane {lane!r}")
        result = self._execute(
            _ADD,
            {
                "chat_id": chat_id,
                "lane": lane,
                "kind": kind,
                "payload": self._sealer.seal_if_known(self._person(chat_id), PAYLOAD, payload),
                "now": self._now,
            },
        )
        return int(result.inserted_primary_key[0])

    def _execute(self, statement: Any, params: Mapping[str, Any]) -> Any:
        return self._session.connection().execute(statement, params)

    def claim_next(self, chat_id: int, instance: str, lease: timedelta) -> Outgoing | None:
        """The chat's oldest undelivered row, leased to `instance`; None when there is none or
        another instance holds the chat (its lease has not run out; PostgreSQL only, where
        several instances may share the database). Rows of a chat go out one
        at a time and in order, whichever instance sends them. Each claim counts in `claims`,
        in the same statement."""
        dialect = self._session.get_bind().dialect.name
        claimed = self._execute(
            _CLAIM[dialect],
            {
                "chat": chat_id,
                "instance": instance,
                "now": self._now,
                "until": self._now + lease,
            },
        ).first()
        return None if claimed is None else self._outgoing(claimed)

    def reserve_send(self, interval: timedelta) -> float:
        """Take the next free moment of the send budget all instances share (PostgreSQL);
        returns how many seconds to wait for it. Timed by the database's own clock, which
        every instance shares."""
        self._session.execute(
            text(
                "INSERT INTO send_budget (id, next_slot) VALUES (1, timezone('utc', now())) "
                "ON CONFLICT (id) DO NOTHING"
            )
        )
        wait = self._session.execute(
            text(
                "UPDATE send_budget SET next_slot = GREATEST(next_slot, "
                "timezone('utc', clock_timestamp())) + make_interval(secs => :gap) "
                "WHERE id = 1 RETURNING EXTRACT(EPOCH FROM next_slot - "
                "timezone('utc', clock_timestamp())) - :gap"
            ),
            {"gap": interval.total_seconds()},
        ).scalar_one()
        return float(wait)

    def waiting_chats(self, now: datetime, limit: int = 5000) -> list[int]:
        """Chats with undelivered rows that may be sent now, the longest-waiting first."""
        first = func.min(OutboxMessage.id)
        rows = self._session.execute(
            select(OutboxMessage.chat_id, first)
            .where(
                OutboxMessage.delivered_at.is_(None),
                or_(OutboxMessage.not_before.is_(None), OutboxMessage.not_before <= now),
            )
            .group_by(OutboxMessage.chat_id)
            .order_by(first)
            .limit(limit)
        )
        return [chat_id for chat_id, _ in rows]

    def delivered(self, row_id: int, *, message_id: int | None, outcome: str = "sent") -> None:
        """Mark a row done and forget its payload (the words live on only in Telegram)."""
        self._execute(
            _DELIVERED,
            {"row_id": row_id, "now": self._now, "message_id": message_id, "outcome": outcome},
        )

    def retry_later(self, row_id: int, until: datetime, *, unsent: bool = False) -> None:
        """Try the row again at `until`. `unsent`: Telegram said this try was not applied
        (a 429), so it does not count among the claims that may have reached Telegram."""
        values: dict[str, Any] = {"not_before": until, "attempts": OutboxMessage.attempts + 1}
        if unsent:
            values["claims"] = OutboxMessage.claims - 1
        self._session.execute(
            update(OutboxMessage).where(OutboxMessage.id == row_id).values(**values)
        )

    def last_message_id(self, chat_id: int) -> int | None:
        """The highest Telegram message id the outbox recorded in a chat (`prune` keeps it)."""
        return self._session.scalar(
            select(func.max(OutboxMessage.message_id)).where(OutboxMessage.chat_id == chat_id)
        )

    def drop_chat(self, chat_id: int, outcome: str) -> list[Outgoing]:
        """Give up on every undelivered row of a chat (the person blocked the bot)."""
        rows = self._session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.chat_id == chat_id, OutboxMessage.delivered_at.is_(None)
            )
        ).all()
        dropped = [self._outgoing(row) for row in rows]
        for row_id in (row.id for row in rows):
            self.delivered(row_id, message_id=None, outcome=outcome)
        return dropped

    def forget_chat(self, chat_id: int) -> int:
        """Delete every row of a chat, delivered or not (the person erased their data)."""
        self._sealer.keyring.chats.pop(chat_id, None)
        result = self._session.execute(
            delete(OutboxMessage).where(OutboxMessage.chat_id == chat_id)
        )
        return int(result.rowcount or 0)

    def prune(self, before: datetime) -> int:
        """Delete delivered rows older than `before`: they only held ids by then. Each chat's
        row with the highest message id stays, whatever its age: the sender needs that id to
        tell whether a send it is unsure of already reached Telegram."""
        newer = aliased(OutboxMessage)
        keeper = (  # one row per chat, also when several edits recorded the same id
            select(newer.id)
            .where(newer.chat_id == OutboxMessage.chat_id, newer.message_id.is_not(None))
            .order_by(newer.message_id.desc(), newer.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        result = self._session.execute(
            delete(OutboxMessage)
            .where(
                OutboxMessage.delivered_at.is_not(None),
                OutboxMessage.delivered_at < before,
                or_(OutboxMessage.message_id.is_(None), OutboxMessage.id != keeper),
            )
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)

    def pending(self, chat_ids: Iterable[int] | None = None) -> int:
        """How many rows wait to be delivered (in these chats)."""
        query = select(func.count()).where(OutboxMessage.delivered_at.is_(None))
        if chat_ids is not None:
            query = query.where(OutboxMessage.chat_id.in_(list(chat_ids)))
        return int(self._session.scalar(query) or 0)
