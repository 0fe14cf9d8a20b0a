"""The storage interface adapters use: `Store` opens transactions, `Repo` reads and writes.

Callers own the transaction: everything done through one `Repo` commits or rolls back
together when `Store.transaction()` ends. Only plain values (`UserInfo`, `MessageInfo`,
`ConversationState`) leave a transaction; ORM objects never do.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, bindparam, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, selectinload, sessionmaker

from dialogs.i18n import LANGUAGES, pick
from dialogs.records import AnswerRecord, Conclusion, ConversationState
from dialogs.vocabulary import Pattern, Urgency
from storage.base import Clock, NotFound, utc_now
from storage.db import NAMING_TABLES, POSTGRES_POOL_SIZE, erase_traces, make_engine, migrate
from storage.models import (
    DIRECTIONS,
    Answer,
    Conversation,
    DiaryCheckin,
    DiaryEntry,
    DiarySchedule,
    FollowUp,
    Message,
    ProcessedUpdate,
    User,
)
from storage.sealing import Keyring, MasterKey, Sealer, keyring_from_environment

if TYPE_CHECKING:
    from storage.diary import DiaryRepo
    from storage.followups import FollowUpRepo
    from storage.outbox import OutboxRepo


class _Unset(Enum):
    UNSET = "unset"


_UNSET = _Unset.UNSET


@dataclass(frozen=True)
class UserInfo:
    """A user row as plain values."""

    id: int
    channel: str
    external_id: str
    language_code: str | None
    country: str | None
    consent_at: datetime | None
    created_at: datetime
    country_asked_at: datetime | None = None
    language: str | None = None
    """Chosen with /language; None: follow the app's (`lang`)."""

    @property
    def lang(self) -> str:
        """The language to write to this person in: the one they chose, else their app's."""
        return self.language or pick(self.language_code)


@dataclass(frozen=True)
class MessageInfo:
    """A transcript message as plain values."""

    id: int
    user_id: int
    conversation_id: int | None
    direction: str
    text: str
    meta: dict[str, Any] | None
    created_at: datetime


# Statements of every update, built once (see `storage.outbox` on why Core).
_CLAIM_UPDATE = {
    dialect: insert(ProcessedUpdate.__table__)
    .values(update_id=bindparam("update_id"), processed_at=bindparam("now"))
    .on_conflict_do_nothing(index_elements=["update_id"])
    .returning(ProcessedUpdate.__table__.c.update_id)
    for dialect, insert in (("sqlite", sqlite_insert), ("postgresql", postgresql_insert))
}
_USER_BY_NAME = select(User).where(
    User.channel == bindparam("channel"), User.external_id == bindparam("external")
)
_NEWEST = (
    select(Conversation)
    .where(Conversation.user_id == bindparam("user"), Conversation.flow == bindparam("flow"))
    .order_by(Conversation.started_at.desc(), Conversation.id.desc())
    .limit(1)
)
_NEWEST_OPEN = _NEWEST.where(Conversation.finished_at.is_(None))
_FLOW_OF = select(Conversation.flow).where(Conversation.id == bindparam("conversation"))
_ADD_MESSAGE = Message.__table__.insert().values(
    user_id=bindparam("user"),
    conversation_id=bindparam("conversation"),
    direction=bindparam("direction"),
    sealed=bindparam("sealed"),
    created_at=bindparam("now"),
)


def _user_info(user: User) -> UserInfo:
    return UserInfo(
        id=user.id,
        channel=user.channel,
        external_id=user.external_id,
        language_code=user.language_code,
        country=user.country,
        consent_at=user.consent_at,
        created_at=user.created_at,
        country_asked_at=user.country_asked_at,
        language=user.language,
    )


# Where each sealed column's values are bound (the associated data, with the person's id).
CONVERSATION, ANSWER, MESSAGE = "conversations.sealed", "answers.sealed", "messages.sealed"


def _conversation_body(state: ConversationState) -> dict[str, Any]:
    conclusion = state.conclusion
    return {
        "pending": list(state.pending),
        "findings": dict(state.findings),
        "conclusion": None
        if conclusion is None
        else [str(conclusion.pattern), str(conclusion.urgency), list(conclusion.red_flags)],
        "note": state.note,
    }


def _answer_body(record: AnswerRecord) -> list[Any]:
    return [record.question_id, list(record.option_ids), record.text]


def _check_country(country: str | None) -> str | None:
    if country is None:
        return None
    if len(country) != 2 or not country.isascii() or not country.isalpha():
        raise ValueError(f"country {country!r} is not an ISO 3166-1 alpha-2 code")
    return country.upper()


CHAT_LOCK_BIT = 1 << 62
"""Set in every chat's advisory lock key: chat ids stay below 2**53 (negative for groups)."""
_Row = TypeVar("_Row", bound="User | Conversation | None")


class Repo:
    """Reads and writes within one Session; it never commits (the Store's transaction does).

    Each method flushes, so database errors surface at the call. A naive datetime (passed in
    or read from the clock) raises SQLAlchemy's StatementError wrapping a ValueError.
    """

    def __init__(self, session: Session, clock: Clock, keyring: Keyring | None = None) -> None:
        self._session = session
        self._clock = clock
        self._held: list[object] = []
        """Rows read in this transaction, kept alive: the Session's identity map holds them
        only weakly, and without this every repeated read would go to the database again."""
        self.committed: list[Callable[[], None]] = []
        """Run after this transaction commits (e.g. wiping the traces of a deletion)."""
        self.sealer = Sealer(session, keyring if keyring is not None else _EPHEMERAL)
        """Seals and opens this transaction's values (`storage.sealing`); storage only."""
        self._opened: WeakKeyDictionary[object, Any] = WeakKeyDictionary()
        """Each sealed row's plain value as last read or written, so an unchanged value is
        not sealed again (a new nonce would rewrite the row)."""

    def after_commit(self, action: Callable[[], None]) -> None:
        self.committed.append(action)

    @property
    def diary(self) -> DiaryRepo:
        """The night diary's reads and writes, in this same transaction."""
        from storage.diary import DiaryRepo  # noqa: PLC0415 - storage.diary imports this module

        return DiaryRepo(self._session, self._clock, self.sealer)

    @property
    def followups(self) -> FollowUpRepo:
        """Follow-ups after a result, in this same transaction."""
        from storage.followups import FollowUpRepo  # noqa: PLC0415 - as for the outbox

        return FollowUpRepo(self._session, self.sealer)

    @property
    def outbox(self) -> OutboxRepo:
        """What the bot will send, queued in this same transaction."""
        from storage.outbox import OutboxRepo  # noqa: PLC0415 - keeps this module's imports small

        return OutboxRepo(self._session, self._clock(), self.sealer)

    def _body(self, row: Conversation | Answer) -> Any:
        """A conversation's or answer row's sealed value, opened (once per transaction)."""
        if row in self._opened:
            return self._opened[row]
        if isinstance(row, Conversation):
            body = self.sealer.open(row.user_id, CONVERSATION, row.sealed)
        else:
            body = self.sealer.open(row.conversation.user_id, ANSWER, row.sealed)
        self._opened[row] = body
        return body

    def _reseal(self, row: Conversation | Answer, user_id: int, where: str, body: Any) -> None:
        """Seal `body` onto the row unless it already holds exactly that."""
        if row in self._opened and self._opened[row] == body:
            return
        row.sealed = self.sealer.seal(user_id, where, body)
        self._opened[row] = body

    def _state(self, conversation: Conversation) -> ConversationState:
        body = self._body(conversation) or {}
        found = body.get("conclusion")
        conclusion = None
        if found is not None:
            pattern, urgency, red_flags = found
            conclusion = Conclusion(Pattern(pattern), Urgency(urgency), tuple(red_flags))
        answers = []
        for row in conversation.answers:
            question_id, option_ids, typed = self._body(row)
            answers.append(AnswerRecord(question_id, tuple(option_ids), row.answered_at, typed))
        return ConversationState(
            flow=conversation.flow,
            state=conversation.state,
            answers=answers,
            pending=tuple(body.get("pending", ())),
            findings=dict(body.get("findings", {})),
            conclusion=conclusion,
            started_at=conversation.started_at,
            finished_at=conversation.finished_at,
            note=body.get("note"),
        )

    def _message_info(self, message: Message) -> MessageInfo:
        text, meta = self.sealer.open(message.user_id, MESSAGE, message.sealed)
        return MessageInfo(
            id=message.id,
            user_id=message.user_id,
            conversation_id=message.conversation_id,
            direction=message.direction,
            text=text,
            meta=meta,
            created_at=message.created_at,
        )

    def _hold(self, row: _Row) -> _Row:
        if row is not None:
            self._held.append(row)
        return row

    def _user(self, user_id: int) -> User:
        user = self._hold(self._session.get(User, user_id))
        if user is None:
            raise NotFound(f"no user {user_id}")
        return user

    def _conversation(self, conversation_id: int) -> Conversation:
        conversation = self._hold(self._session.get(Conversation, conversation_id))
        if conversation is None:
            raise NotFound(f"no conversation {conversation_id}")
        return conversation

    def _find_user(self, channel: str, external_id: str) -> User | None:
        for held in self._held:  # the same person is asked for several times per update
            if isinstance(held, User) and (held.channel, held.external_id) == (
                channel,
                external_id,
            ):
                return held
        found = self._session.scalars(_USER_BY_NAME, {"channel": channel, "external": external_id})
        return self._hold(found.one_or_none())

    def user(self, channel: str, external_id: str) -> UserInfo:
        """The user known by `external_id` on `channel`, created if new."""
        user = self._find_user(channel, external_id)
        if user is None:
            user = User(channel=channel, external_id=external_id, created_at=self._clock())
            self._session.add(user)
            self._session.flush()
            if self.sealer.keyring.enabled:
                self.sealer.create_key(user.id)
        return _user_info(user)

    def user_ids(self) -> list[int]:
        """Every user's id, oldest first (for an operator's export of all users)."""
        return list(self._session.scalars(select(User.id).order_by(User.id)))

    def find_user_by_id(self, user_id: int) -> UserInfo | None:
        user = self._session.get(User, user_id)
        return None if user is None else _user_info(user)

    def user_by_id(self, user_id: int) -> UserInfo:
        return _user_info(self._user(user_id))

    def find_user(self, channel: str, external_id: str) -> UserInfo | None:
        """The user known by `external_id` on `channel`, or None."""
        user = self._find_user(channel, external_id)
        return None if user is None else _user_info(user)

    def update_user(
        self,
        user_id: int,
        *,
        country: str | _Unset | None = _UNSET,
        language_code: str | _Unset | None = _UNSET,
        consent_at: datetime | _Unset | None = _UNSET,
        country_asked_at: datetime | _Unset | None = _UNSET,
        language: str | _Unset | None = _UNSET,
    ) -> UserInfo:
        """Change only the fields passed (None clears one); `country` is ISO alpha-2,
        `language` one of `dialogs.i18n.LANGUAGES`."""
        user = self._user(user_id)
        if country is not _UNSET:
            user.country = _check_country(country)
        if language_code is not _UNSET:
            user.language_code = language_code
        if consent_at is not _UNSET:
            user.consent_at = consent_at
        if country_asked_at is not _UNSET:
            user.country_asked_at = country_asked_at
        if language is not _UNSET:
            if language is not None and language not in LANGUAGES:
                raise ValueError(f"language {language!r} is not one of {LANGUAGES}")
            user.language = language
        self._session.flush()
        return _user_info(user)

    def create_conversation(self, user_id: int, state: ConversationState) -> int:
        """Store a new conversation for the user and return its id."""
        now = self._clock()
        conversation = Conversation(
            user=self._user(user_id),
            flow=state.flow,
            started_at=state.started_at or now,
        )
        self._write(conversation, state, now)
        self._session.add(conversation)
        self._session.flush()
        return conversation.id

    def _newest(self, user_id: int, flow: str, *, open_only: bool) -> Conversation | None:
        query = _NEWEST_OPEN if open_only else _NEWEST
        return self._hold(self._session.scalars(query, {"user": user_id, "flow": flow}).first())

    def open_conversation(self, user_id: int, flow: str) -> tuple[int, ConversationState] | None:
        """The user's newest unfinished conversation in `flow`, as (id, state)."""
        conversation = self._newest(user_id, flow, open_only=True)
        return None if conversation is None else (conversation.id, self._state(conversation))

    def latest_conversation(self, user_id: int, flow: str) -> tuple[int, ConversationState] | None:
        """The user's newest conversation in `flow`, finished or not, as (id, state)."""
        conversation = self._newest(user_id, flow, open_only=False)
        return None if conversation is None else (conversation.id, self._state(conversation))

    def conversations(self, user_id: int) -> list[tuple[int, ConversationState]]:
        """Every conversation of the user, oldest first, as (id, state)."""
        rows = self._session.scalars(
            select(Conversation)
            .where(Conversation.user_id == user_id)
            .order_by(Conversation.started_at, Conversation.id)
            # Every conversation's answers in one more query, not one query per conversation
            # (730 for two years of diary).
            .options(selectinload(Conversation.answers))
        )
        return [(row.id, self._state(row)) for row in rows]

    def flow_of(self, conversation_id: int) -> str | None:
        """The flow a conversation belongs to, or None if there is no such conversation."""
        return self._session.scalar(_FLOW_OF, {"conversation": conversation_id})

    def load_conversation(self, conversation_id: int) -> tuple[int, ConversationState] | None:
        """A conversation as (owner's user id, state), or None."""
        conversation = self._session.get(Conversation, conversation_id)
        return None if conversation is None else (conversation.user_id, self._state(conversation))

    def save_conversation(self, conversation_id: int, state: ConversationState) -> None:
        """Make the stored conversation, and its answer rows, equal `state`."""
        self._write(self._conversation(conversation_id), state, self._clock())
        self._session.flush()

    def _write(self, conversation: Conversation, state: ConversationState, now: datetime) -> None:
        """Copy `state` onto the row; a final state without `finished_at` is stamped `now`."""
        conversation.state = state.state
        user_id = conversation.user_id if conversation.user_id is not None else conversation.user.id
        body = _conversation_body(state)
        if conversation.sealed is not None:
            body["note"] = self._body(conversation).get("note")  # the note has its own setter
        self._reseal(conversation, user_id, CONVERSATION, body)
        conversation.finished_at = (state.finished_at or now) if state.finished else None
        conversation.updated_at = now
        rows = conversation.answers
        del rows[len(state.answers) :]
        for seq, record in enumerate(state.answers):
            if seq == len(rows):
                rows.append(Answer(seq=seq))
            row = rows[seq]
            row.answered_at = record.answered_at
            self._reseal(row, user_id, ANSWER, _answer_body(record))

    # --- the note for the doctor (spec v3 item 10) ----------------------------------------------

    def ask_note(self, conversation_id: int) -> None:
        """The bot asked for a note for this conversation's result: the next words typed are it."""
        self._conversation(conversation_id).note_asked_at = self._clock()
        self._session.flush()

    def set_note(self, conversation_id: int, note: str | None) -> None:
        """Keep `note` with the conversation's result (None removes it); no longer waiting."""
        conversation = self._conversation(conversation_id)
        body = dict(self._body(conversation) or {})
        body["note"] = note
        self._reseal(conversation, conversation.user_id, CONVERSATION, body)
        conversation.note_asked_at = None
        self._session.flush()

    def skip_note(self, conversation_id: int) -> None:
        """No note (or no more): stop waiting for one, keeping any note already given."""
        self._conversation(conversation_id).note_asked_at = None
        self._session.flush()

    def note_awaited(self, user_id: int, flow: str) -> int | None:
        """The user's newest conversation in `flow` if the bot is waiting for its note."""
        conversation = self._newest(user_id, flow, open_only=False)
        if conversation is None or conversation.note_asked_at is None:
            return None
        return conversation.id

    def add_message(
        self,
        user_id: int,
        direction: str,
        text: str,
        *,
        conversation_id: int | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        """Append a message, `direction` "in" (from the user) or "out" (from the bot)."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'in' or 'out', not {direction!r}")
        self._user(user_id)  # raises NotFound; the row itself only needs the id
        # A Core insert, not an ORM object: one per message in and out of every tap, and
        # nothing in the transaction reads the object back.
        self._session.connection().execute(
            _ADD_MESSAGE,
            {
                "user": user_id,
                "conversation": conversation_id,
                "direction": direction,
                "sealed": self.sealer.seal(user_id, MESSAGE, [text, meta]),
                "now": self._clock(),
            },
        )

    def messages(self, user_id: int) -> list[MessageInfo]:
        """The user's transcript, oldest first."""
        rows = self._session.scalars(
            select(Message).where(Message.user_id == user_id).order_by(Message.id)
        )
        return [self._message_info(row) for row in rows]

    def shred_key(self, user_id: int) -> bool:
        """Destroy the person's data key (crypto-shredding): every sealed value of theirs, in
        every copy of the database, can no longer be opened. Commit it on its own, before
        `delete_user`; False if the person had no key."""
        return self.sealer.shred(user_id)

    def delete_user(self, user_id: int) -> None:
        """Remove the user and, by cascade, every row about them; unknown ids are a no-op.

        Callers erasing a person shred their key first, in a transaction of its own
        (`Store.erase_user` does both)."""
        user = self._session.get(User, user_id)
        if user is not None:
            self.shred_key(user_id)  # first; `Store.erase_user` commits it on its own
            if user.channel == "telegram" and user.external_id.lstrip("-").isdigit():
                self.outbox.forget_chat(int(user.external_id))
            self._held = [
                row
                for row in self._held
                if row is not user and getattr(row, "user_id", None) != user_id
            ]
            self._session.delete(user)
            self._session.flush()
            self.sealer.keyring.forget(user_id)

    def prune_messages(self, before: datetime) -> int:
        """Delete transcript messages older than `before` (the data-retention setting).

        One DELETE on the `created_at` index: the rows are never loaded (nothing in a
        transaction holds a transcript row as an object; see `add_message`)."""
        result = self._session.execute(
            delete(Message)
            .where(Message.created_at < before)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)

    def lock_chat(self, chat_id: int) -> None:
        """Hold the chat's lock until this transaction ends, so that several processes on one
        PostgreSQL handle one chat's updates one at a time (SQLite has one writer anyway)."""
        if self._session.get_bind().dialect.name == "postgresql":
            key = chat_id | CHAT_LOCK_BIT  # never a migration's lock key
            self._session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})

    def claim_update(self, update_id: int) -> bool:
        """Record that an update is being handled; False if its effects were committed before.

        One statement (an insert that does nothing on a duplicate), so two processes handed
        the same update cannot both claim it.
        """
        dialect = self._session.get_bind().dialect.name
        claimed = self._session.connection().execute(
            _CLAIM_UPDATE[dialect], {"update_id": update_id, "now": self._clock()}
        )
        return claimed.first() is not None

    def is_processed(self, update_id: int) -> bool:
        return self._session.get(ProcessedUpdate, update_id) is not None

    def prune_updates(self, before: datetime) -> int:
        """Forget processed updates older than `before` (Telegram redelivers for 24 h at most)."""
        result = self._session.execute(
            delete(ProcessedUpdate)
            .where(ProcessedUpdate.processed_at < before)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)

    def user_row_counts(self, user_id: int) -> dict[str, int]:
        """How many rows of each table belong to the user."""
        conversation_ids = select(Conversation.id).where(Conversation.user_id == user_id)
        queries = {
            "users": select(func.count()).where(User.id == user_id),
            "conversations": select(func.count()).where(Conversation.user_id == user_id),
            "answers": select(func.count()).where(Answer.conversation_id.in_(conversation_ids)),
            "messages": select(func.count()).where(Message.user_id == user_id),
            "diary_schedules": select(func.count()).where(DiarySchedule.user_id == user_id),
            "diary_checkins": select(func.count()).where(DiaryCheckin.user_id == user_id),
            "diary_entries": select(func.count()).where(DiaryEntry.user_id == user_id),
            "followups": select(func.count()).where(FollowUp.user_id == user_id),
        }
        return {table: self._session.scalar(query) or 0 for table, query in queries.items()}


_EPHEMERAL = Keyring(MasterKey.generate())
"""For a Repo made without a keyring (tests of one repository): keys live in memory only."""


class Store:
    """The database of one bot process: opens transactions and hands out `Repo`s."""

    def __init__(
        self, engine: Engine, *, clock: Clock = utc_now, keyring: Keyring | None = None
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._keyring = keyring if keyring is not None else Keyring(MasterKey.generate())
        self._sessions = sessionmaker(engine)
        self._current: ContextVar[Repo | None] = ContextVar(f"transaction-{id(self)}", default=None)

    @classmethod
    def open(
        cls,
        url: str,
        *,
        clock: Clock = utc_now,
        pool_size: int = POSTGRES_POOL_SIZE,
        keyring: Keyring | None = None,
    ) -> Store:
        """Connect to `url`, bring its schema to head, and return the Store.

        `pool_size` is PostgreSQL's connection pool per process (see `make_engine`).
        `keyring` holds the master key; by default `MASTER_KEY`, else `MASTER_KEY_FILE`, else
        the key file next to a SQLite database (`storage.sealing.keyring_from_environment`),
        as the bot's settings and the migrations find it.
        """
        if keyring is None:
            keyring = keyring_from_environment(url)
        engine = make_engine(url, pool_size=pool_size)
        migrate(engine, keyring)
        return cls(engine, clock=clock, keyring=keyring)

    @property
    def keyring(self) -> Keyring:
        return self._keyring

    @property
    def engine(self) -> Engine:
        """The Engine the transactions run on."""
        return self._engine

    @contextmanager
    def transaction(self) -> Iterator[Repo]:
        """One Session: commit when the block ends, roll back if it raises.

        Inside another transaction of this store (in the same task or thread) it joins that
        one instead of opening a second: the outer block commits everything together. This is
        how one Telegram update becomes one transaction, whatever the services it calls.
        """
        outer = self._current.get()
        if outer is not None:
            yield outer
            return
        with self._sessions.begin() as session:
            repo = Repo(session, self._clock, self._keyring)
            token = self._current.set(repo)
            try:
                yield repo
            finally:
                self._current.reset(token)
        repo.sealer.committed()
        for action in repo.committed:
            action()

    def erase_user(self, user_id: int) -> bool:
        """Erase a person: first destroy their key in a transaction of its own (so every copy
        of their sealed data is unreadable even if what follows fails), then delete every row
        about them, then wipe the deleted rows' traces. False if there was no such person."""
        with self.transaction() as repo:
            repo.shred_key(user_id)
        with self.transaction() as repo:
            if repo.find_user_by_id(user_id) is None:
                return False
            repo.delete_user(user_id)
        self.erase_person_traces()
        return True

    def erase_traces(self, tables: Collection[str] | None = None) -> None:
        """Call after a deletion commits: no copy of deleted rows stays in the database files.

        On PostgreSQL this rewrites `tables` (None: every table; VACUUM FULL, see
        `storage.db.erase_traces`).
        """
        erase_traces(self._engine, tables)

    def erase_person_traces(self) -> None:
        """Call after a person's deletion commits. With sealing on, their sealed values are
        unreadable once their key's row is gone, so on PostgreSQL only the tables that name
        them in plain or hold that key are rewritten (`storage.db.NAMING_TABLES`), not the big
        ones of answers and transcript; with it off (the benchmark's baseline), every table."""
        self.erase_traces(NAMING_TABLES if self._keyring.enabled else None)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()
