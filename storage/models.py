"""The ORM tables: users, their conversations, answers, transcript and night diary.

Every datetime is timezone-aware UTC in Python and naive UTC in the database (`UTCDateTime`).
Constraint names follow `NAMING_CONVENTION`, so migrations can name them exactly.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

DIRECTIONS = frozenset({"in", "out"})
"""Values of `Message.direction`, also enforced by a CHECK constraint."""


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python, naive UTC in the database; naive input is an error."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware one")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Declarative base holding the shared metadata."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    """One person on one channel (Telegram, terminal, ...)."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("channel", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(64))
    language_code: Mapped[str | None] = mapped_column(String(35))
    """The language the person's Telegram app is set to (as Telegram sends it)."""
    language: Mapped[str | None] = mapped_column(String(8))
    """The language the person chose with /language (`dialogs.i18n.LANGUAGES`); None: follow
    their app's."""
    country: Mapped[str | None] = mapped_column(String(2))
    """ISO 3166-1 alpha-2."""
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    country_asked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When the person was asked for their country (asked once; /settings changes it)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    conversations: Mapped[list[Conversation]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )
    messages: Mapped[list[Message]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )


class Conversation(Base):
    """One run through a flow, with where it stands and how it ended."""

    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    flow: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(64))
    """The current question id, or a final state."""
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    """Sealed (`storage.sealing`): the questions still to ask, the findings, the conclusion
    (pattern, urgency, red flags) and the note for the doctor."""
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """None while the conversation is open."""
    note_asked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When the bot asked for the note and is waiting for it; None when not waiting."""

    user: Mapped[User] = relationship(back_populates="conversations")
    answers: Mapped[list[Answer]] = relationship(
        back_populates="conversation",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Answer.seq",
    )


class Answer(Base):
    """One answered question of a conversation, `seq` counting from 0."""

    __tablename__ = "answers"
    __table_args__ = (UniqueConstraint("conversation_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    """Sealed: the question id, the options chosen, and what was typed for a question that
    takes text (the diary note)."""

    conversation: Mapped[Conversation] = relationship(back_populates="answers")


class Message(Base):
    """One message in or out, the transcript the user can have deleted."""

    __tablename__ = "messages"
    __table_args__ = (CheckConstraint("direction IN ('in', 'out')", name="direction"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    direction: Mapped[str] = mapped_column(String(3))
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    """Sealed: the message's text and its meta (e.g. the button pressed)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)

    user: Mapped[User] = relationship(back_populates="messages")


class ProcessedUpdate(Base):
    """A Telegram update whose effects are committed, so a redelivery changes nothing.

    Holds only the update id and when it was handled: nothing about the person or their words.
    """

    __tablename__ = "processed_updates"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class DiarySchedule(Base):
    """When a user's diary check-ins are due: a wall time in a zone, and the next UTC moment."""

    __tablename__ = "diary_schedules"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    enabled: Mapped[bool] = mapped_column(Boolean)
    local_time: Mapped[str] = mapped_column(String(5))
    """Wall clock time, "HH:MM"."""
    timezone: Mapped[str] = mapped_column(String(64))
    """IANA zone name."""
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    """None while disabled."""
    next_night: Mapped[date | None] = mapped_column(Date)
    """The night the check-in at `next_due_at` asks about; None while disabled."""
    paused_until: Mapped[date | None] = mapped_column(Date)
    """Nights up to and including this one get no check-in."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DiaryCheckin(Base):
    """The check-in about one night; at most one per user and night."""

    __tablename__ = "diary_checkins"
    __table_args__ = (
        UniqueConstraint("user_id", "night"),
        CheckConstraint(
            "status IN ('due', 'sending', 'sent', 'snoozed', 'answered', 'skipped', 'missed',"
            " 'failed')",
            name="status",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    night: Mapped[date] = mapped_column(Date)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), index=True)
    """One of storage.diary.CheckInStatus, also enforced by a CHECK constraint."""
    sending_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When the latest send attempt began, to find attempts a restart cut short."""
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    remind_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When a snoozed check-in is sent again."""
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    """The Telegram message that asked, the latest one after a reminder."""
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )
    """The diary conversation that asks the questions."""
    backfill: Mapped[bool] = mapped_column(Boolean, default=False)
    """Opened by the user for a past night, not by the schedule."""


class DiaryEntry(Base):
    """What the user told about one night; at most one per user and night."""

    __tablename__ = "diary_entries"
    __table_args__ = (UniqueConstraint("user_id", "night"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    night: Mapped[date] = mapped_column(Date)
    backfilled: Mapped[bool] = mapped_column(Boolean)
    """Entered later for a past night rather than in answer to its check-in."""
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    """Sealed: the values (field -> value, e.g. {"cramps": true, "worst_pain": 8}), findings
    and red flags."""
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OutboxMessage(Base):
    """Something the bot will send, edit or answer in a chat, written in the same transaction
    as the change that caused it; the sender delivers rows of a chat in id order.

    `payload` holds what to send (text, buttons, or the recipe of a file) and is cleared once
    delivered, so no copy of a health message outlives its delivery; `message_id` is
    Telegram's id of what was sent. `lane` is "reply" (a person's own tap) or "bulk"
    (check-ins, summaries, follow-ups), which yields to replies.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(BigInteger, index=True)
    lane: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(16))
    payload: Mapped[bytes | None] = mapped_column(LargeBinary)
    """What to send, sealed for the chat's person (plain only when no person is stored)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    message_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    outcome: Mapped[str | None] = mapped_column(String(16))
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    """The instance sending this row now; others leave the chat to it until the lease ends."""
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claims: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Sends of the row that may have reached Telegram, each counted just before it left: above
    0 on an undelivered row, one may have been applied unheard of (a kill, a lost answer)."""
    after_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    """The id of the person's message this row replies to, if any: kept after delivery, as
    `message_id` is, so that the probe knows the ids people's messages took."""
    probe_floor: Mapped[int | None] = mapped_column(BigInteger)
    """The highest Telegram message id the sender knew, in any chat, as the row's last send
    left: that send took a higher id from the bot's one counter."""
    probed: Mapped[str | None] = mapped_column(Text)
    """Ids the probe already tried in the row's chat (comma-separated): plain, one found not to
    be its lost send; with a leading "+", one asked while it was above every id known (the
    answer may change, so it is asked again, but the ask counts). A probe cut short by a
    restart goes on where it stopped, and ends within `MAX_PROBES` edits in all however often
    the bot restarts."""


class PersonKey(Base):
    """A person's data key, wrapped by the master key `key_id` names (`storage.sealing`).

    Deleting this row first (crypto-shredding) makes every sealed value of the person, in
    every copy of the database, unreadable."""

    __tablename__ = "person_keys"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    key_id: Mapped[str] = mapped_column(String(32))
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)


class SendBudget(Base):
    """The next free moment for a chat-bound send, shared by every instance (one row), so
    together they stay within Telegram's overall rate."""

    __tablename__ = "send_budget"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    next_slot: Mapped[datetime] = mapped_column(UTCDateTime)


class FollowUp(Base):
    """The follow-up of one result (spec v2 item 6): offered, accepted or declined, sent when
    due, answered. At most one per conversation."""

    __tablename__ = "followups"
    __table_args__ = (
        UniqueConstraint("conversation_id"),
        CheckConstraint(
            "status IN ('offered', 'accepted', 'declined', 'sent', 'answered', 'cancelled',"
            " 'failed')",
            name="status",
        ),
        # The dispatcher's two reads every 30 s, accepted ones that are due and accepted ones
        # timed without a zone, each a range of one index (migration 0017).
        Index("ix_followups_status_due_at", "status", "due_at"),
        Index("ix_followups_status_timezone", "status", "timezone"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    """The check whose result is followed up."""
    status: Mapped[str] = mapped_column(String(16))
    """One of storage.followups.FollowUpStatus, also enforced by a CHECK constraint."""
    offered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When the person accepted or declined."""
    timezone: Mapped[str | None] = mapped_column(String(64))
    """The IANA zone whose local time `due_at` was chosen in."""
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When the follow-up was queued for sending (claimed, exactly once)."""
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    """Sealed: the result's urgency when offered (`urgent` or `soon`) and the person's answer
    (`seen`, `not_yet`, `changed` or None)."""
