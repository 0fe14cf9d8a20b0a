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
FORGET = "forget"
"""Payload key of a row to an erased chat: delete the row once delivered (see `forget_chat`)."""
_ERASED = "nightlegs.erased_chats"
"""`Session.info` key: chats erased in this transaction."""
PRUNE_LOOKBACK = timedelta(days=1)
"""`OutboxRepo.prune` looks at the chats with a row delivered this long before its moment."""


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
    """Sends of the row that may have reached Telegram (see `OutboxMessage.claims`)."""
    probe_floor: int | None = None
    """The highest message id the sender knew (in any chat) as the last of those sends left:
    it has a higher id (see `OutboxMessage.probe_floor`)."""
    probed: str | None = None
    """The ids the probe asked about, in every run (`OutboxMessage.probed`)."""

    @property
    def probed_ids(self) -> frozenset[int]:
        """Ids found not to be the row's lost send."""
        return frozenset(int(i) for i in (self.probed or "").split(",") if i and i[0] != "+")

    @property
    def probed_above(self) -> tuple[int, ...]:
        """Ids asked while above every known id: not known, but each ask counts."""
        return tuple(int(i[1:]) for i in (self.probed or "").split(",") if i[:1] == "+")

    @property
    def probe_tries(self) -> int:
        """Edits the probe made for this row so far, in all runs."""
        return len(self.probed_ids) + len(self.probed_above)


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
    after_id=bindparam("after_id"),
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
        )
        .returning(*(getattr(_T.c, name) for name in Outgoing.__dataclass_fields__))
    )


_CLAIM = {"sqlite": _claim(shared=False), "postgresql": _claim(shared=True)}
_FORGET = _T.delete().where(_T.c.id == bindparam("row_id"))
_PROBED = (
    _T.update()
    .where(_T.c.id == bindparam("row_id"), _T.c.delivered_at.is_(None))
    .values(probed=bindparam("probed"))
)
_GOING = (
    _T.update()
    .where(
        _T.c.id == bindparam("row_id"),
        _T.c.delivered_at.is_(None),
        _T.c.claimed_by == bindparam("instance"),
    )
    .values(claims=_T.c.claims + 1, probe_floor=bindparam("floor"), probed=None)
)
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
            row.probe_floor,
            row.probed,
        )

    def add(self, chat_id: int, kind: str, payload: dict[str, Any], *, lane: str = REPLY) -> int:
        if lane not in LANES:
            raise ValueError(f"unknown lane {lane!r}")
        if chat_id in self._session.info.get(_ERASED, ()):  # "your data is erased", say
            payload = {**payload, FORGET: True}
        result = self._execute(
            _ADD,
            {
                "chat_id": chat_id,
                "lane": lane,
                "kind": kind,
                "payload": self._sealer.seal_if_known(self._person(chat_id), PAYLOAD, payload),
                "now": self._now,
                "after_id": payload.get("after"),
            },
        )
        return int(result.inserted_primary_key[0])

    def _execute(self, statement: Any, params: Mapping[str, Any]) -> Any:
        return self._session.connection().execute(statement, params)

    def claim_next(self, chat_id: int, instance: str, lease: timedelta) -> Outgoing | None:
        """The chat's oldest undelivered row, leased to `instance`; None when there is none or
        another instance holds the chat (its lease has not run out; PostgreSQL only, where
        several instances may share the database). Rows of a chat go out one
        at a time and in order, whichever instance sends them."""
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

    def probed(self, row_id: int, ids: frozenset[int], above: tuple[int, ...] = ()) -> None:
        """Remember the ids the probe tried for an undelivered row: `ids` found not to be its
        send, `above` asked above every known id (see `Outgoing.probed`)."""
        kept = [str(i) for i in sorted(ids)] + [f"+{i}" for i in above]
        value = ",".join(kept) or None
        self._execute(_PROBED, {"row_id": row_id, "probed": value})

    def going(self, row_id: int, floor: int | None, instance: str) -> bool:
        """A send of the row is about to leave for Telegram (committed before it does): it
        counts in `claims`, and takes an id above `floor`, the highest id known now (None:
        none is), so a later probe for it looks above that, with a fresh count of edits.
        False: `instance` does not hold the row any more (its lease ran out and another took
        it, or it was delivered): the send must not go."""
        params = {"row_id": row_id, "floor": floor, "instance": instance}
        return bool(self._execute(_GOING, params).rowcount)

    def delivered(
        self, row_id: int, *, message_id: int | None, outcome: str = "sent", forget: bool = False
    ) -> None:
        """Mark a row done and forget its payload (the words live on only in Telegram).
        `forget`: delete the row instead (its chat was erased, see `forget_chat`)."""
        if forget:
            self._execute(_FORGET, {"row_id": row_id})
            return
        self._execute(
            _DELIVERED,
            {"row_id": row_id, "now": self._now, "message_id": message_id, "outcome": outcome},
        )

    def retry_later(self, row_id: int, until: datetime, *, unsent: bool = False) -> None:
        """Try the row again at `until`. `unsent`: Telegram said this try was not applied
        (a 429 for a send), so it does not count among the sends that may have reached
        Telegram."""
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

    def last_edited(self, chat_id: int) -> int | None:
        """The message the chat's newest edit is of (delivered or not): in a check, its one
        message as the bot last showed it."""
        row = self._session.execute(
            select(OutboxMessage.message_id, OutboxMessage.payload)
            .where(OutboxMessage.chat_id == chat_id, OutboxMessage.kind == "edit")
            .order_by(OutboxMessage.id.desc())
            .limit(1)
        ).first()
        if row is None:
            return None
        message_id, sealed = row
        if message_id is None and sealed:
            payload = self._sealer.open(self._person(chat_id), PAYLOAD, sealed) or {}
            message_id = payload.get("message_id")
        return None if message_id is None else int(message_id)

    def highest_message_id(self) -> int | None:
        """The highest Telegram message id the outbox recorded, in any chat."""
        return self._session.scalar(select(func.max(OutboxMessage.message_id)))

    def known_ids(self, above: int) -> tuple[set[int], dict[int, int]]:
        """The message ids above `above` the outbox knows, in any chat (a bot's private chats
        take ids from one counter, so each is taken by exactly one chat): the bot's own it
        recorded, and the ids of the messages rows reply to, with their chat (a person's
        message, or the message whose button they pressed)."""
        sent = self._session.scalars(
            select(OutboxMessage.message_id).where(OutboxMessage.message_id > above)
        )
        replied = self._session.execute(
            select(OutboxMessage.after_id, OutboxMessage.chat_id).where(
                OutboxMessage.after_id > above
            )
        )
        return set(sent), {int(after): int(chat) for after, chat in replied}

    def uncertain_sends(self) -> list[int]:
        """Undelivered sends (and files) a sender let go: each may have reached Telegram
        unrecorded. Oldest first."""
        return list(
            self._session.scalars(
                select(OutboxMessage.id)
                .where(
                    OutboxMessage.delivered_at.is_(None),
                    OutboxMessage.claims > 0,
                    OutboxMessage.kind.in_(("send", "file")),
                )
                .order_by(OutboxMessage.id)
            )
        )

    def drop_chat(self, chat_id: int, outcome: str) -> list[Outgoing]:
        """Give up on every undelivered row of a chat (the person blocked the bot)."""
        rows = self._session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.chat_id == chat_id, OutboxMessage.delivered_at.is_(None)
            )
        ).all()
        dropped = [self._outgoing(row) for row in rows]
        for row in dropped:
            self.delivered(row.id, message_id=None, outcome=outcome, forget=FORGET in row.payload)
        return dropped

    def forget_chat(self, chat_id: int) -> int:
        """Delete every row of a chat, delivered or not (the person erased their data). Rows
        this transaction queues to the chat afterwards (the confirmation that all is erased)
        are deleted once delivered, instead of kept: no row names the chat then."""
        self._sealer.keyring.chats.pop(chat_id, None)
        result = self._session.execute(
            delete(OutboxMessage).where(OutboxMessage.chat_id == chat_id)
        )
        self._session.info.setdefault(_ERASED, set()).add(chat_id)
        return int(result.rowcount or 0)

    def prune(self, before: datetime) -> int:
        """Delete delivered rows older than `before`: they only held ids by then. Each chat's
        row with the highest message id stays, whatever its age: the sender needs that id to
        tell whether a send it is unsure of already reached Telegram.

        Only chats with a row delivered in the `PRUNE_LOOKBACK` before `before` are looked
        at (all their old rows): every chat keeps a row for good, so looking at every chat
        made each hourly prune read them all (a million with a million people, about
        10 s that no tap could use). A row is pruned by any prune in the day after it comes
        of age; one that a downtime of over a day let pass goes with its chat's next one."""
        newer = aliased(OutboxMessage)
        keeper = (  # one row per chat, also when several edits recorded the same id
            select(newer.id)
            .where(newer.chat_id == OutboxMessage.chat_id, newer.message_id.is_not(None))
            .order_by(newer.message_id.desc(), newer.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        recent = aliased(OutboxMessage)
        came_of_age = select(recent.chat_id).where(
            recent.delivered_at >= before - PRUNE_LOOKBACK, recent.delivered_at < before
        )
        result = self._session.execute(
            delete(OutboxMessage)
            .where(
                OutboxMessage.chat_id.in_(came_of_age),
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
