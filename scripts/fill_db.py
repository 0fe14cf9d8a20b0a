"""Fill a nightlegs database with many people, to measure the bot on big tables (issue 18).

    .venv/bin/python scripts/fill_db.py sqlite:////tmp/big.db                 # 1,000,000 people
    .venv/bin/python scripts/fill_db.py sqlite:////tmp/small.db --people 20000
    .venv/bin/python scripts/fill_db.py postgresql+psycopg://...  --people 100000

The database is brought to the newest schema first (`Store.open`, as the bot does) and
filled with bulk Core inserts into the models' own tables, in batches of many rows
(executemany), one transaction per chunk of people. On SQLite the fill alone runs with
`synchronous=OFF` and a large page cache; the file stays in WAL mode for the bot.

What the rows look like: every answer, finding and conclusion comes from walking the real
flows (`dialogs/triage.yaml`, `dialogs/diary.yaml`) with the engine, a few hundred walks per
flow, reused with each person's own times. Shapes, per person (seeded, so a fill is the same
every time):

- 95% consented; a country; created at some moment of the last two years;
- triage checks: 80% one, 15% two, 5% three or four (about 7 answers each); a follow-up offer
  on most `urgent`/`soon` results (declined, answered, or a few still due);
- a transcript: one message in per answer (the button's label) and one out per check;
- 1% keep a nightly diary of 10 to 120 nights (check-ins, entries, the diary conversation
  with its answers, transcript), half of them still scheduled (due within the next day);
- the outbox row the sender keeps per chat after pruning (the last message id);
- the last 36 hours of processed update ids (100 a minute);
- and one person with two years (730 nights) of nightly diary, Telegram id
  `TWO_YEAR_ID`, for the export and erasure measurements.

Each person gets a data key wrapped by the master key `Store.open` finds (`MASTER_KEY`, or the
key file next to the SQLite database), and every value the bot seals is sealed under it, as
the repositories seal it (`storage.sealing.seal_with`).

Telegram ids of the filled people start at `FIRST_ID`, far from the ids the benchmarks use.
Only an empty database is filled (run it once per database); `--check` then opens the result
with the bot's `Store` and exports the two-year person, which proves the rows are ones the
bot's own code reads.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import JSON, Boolean, Connection, Date, Engine, Table, event, func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dialogs.engine import Conversation as Walker  # noqa: E402
from dialogs.engine import Flow, Outcome, Prompt  # noqa: E402
from dialogs.records import CONCLUDED  # noqa: E402
from storage import Store  # noqa: E402
from storage.diary import ENTRY  # noqa: E402
from storage.followups import FOLLOWUP  # noqa: E402
from storage.models import (  # noqa: E402
    Answer,
    Conversation,
    DiaryCheckin,
    DiaryEntry,
    DiarySchedule,
    FollowUp,
    Message,
    OutboxMessage,
    PersonKey,
    ProcessedUpdate,
    User,
    UTCDateTime,
)
from storage.sealing import MasterKey, seal_with  # noqa: E402
from storage.store import ANSWER, CONVERSATION, MESSAGE  # noqa: E402

FIRST_ID = 5_000_000_000
"""Telegram id of the first filled person (bench_taps uses ids below 10**8)."""
TWO_YEAR_ID = 4_999_999_999
"""The person with two years of nightly diary."""
TWO_YEARS = 730
MESSAGE_RATE = 20
"""Messages a second, all chats together, that the filled ids of the bot's messages advance by."""
COUNTRIES = ("DE", "GB", "US", "FR", "NL", "ES", "IT", "PL", "SE", "AT")
ZONES = ("Europe/Berlin", "Europe/London", "America/New_York", "Europe/Paris", "Europe/Madrid")
NOTES = ("left calf again", "after a long walk", "woke at 3", "better than last week")
TRIAGE_WALKS = 400
DIARY_WALKS = 300
CHUNK = 20_000
"""People per transaction."""


@dataclass(frozen=True)
class Walk:
    """One walk through a flow: the rows a finished conversation leaves, with times as
    offsets from its start."""

    state: str
    findings: dict[str, bool]
    pattern: str | None
    urgency: str | None
    red_flags: list[str] | None
    answers: list[tuple[str, list[str], str | None, float, str]]
    """(question id, option ids, typed text, seconds after the start, what the person tapped)."""
    values: dict[str, Any]
    result: str


def walk(flow: Flow, rng: random.Random, calm: float) -> Walk:
    """Answer `flow` at random like a person (mostly "no" to red flags when `calm` is high)."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    now = start
    conversation: Walker = flow.start(start)
    step = conversation.step()
    tapped: list[str] = []
    while isinstance(step, Prompt):
        question = step.question
        now += timedelta(seconds=rng.uniform(3, 20))
        options = list(question.options)
        if not options and question.input_field:
            step = conversation.enter_text(rng.choice(NOTES), now)
            tapped.append("(typed)")
            continue
        quiet = [o for o in options if o.exclusive or not any(o.sets.values())]
        if quiet and rng.random() < calm:
            choice = [rng.choice(quiet)]
        elif question.multi:
            tickable = [o for o in options if not o.exclusive] or options
            choice = rng.sample(tickable, k=min(len(tickable), rng.choice((1, 1, 2))))
        else:
            choice = [rng.choice(options)]
        if question.input_field and rng.random() < 0.1:
            step = conversation.enter_text(rng.choice(NOTES), now)
            tapped.append("(typed)")
            continue
        step = conversation.answer([o.id for o in choice], now)
        tapped.append(", ".join(o.label for o in choice))
    assert isinstance(step, Outcome)
    data = conversation.data
    conclusion = data.conclusion
    answers = [
        (a.question_id, list(a.option_ids), a.text, (a.answered_at - start).total_seconds(), said)
        for a, said in zip(data.answers, tapped, strict=True)
    ]
    return Walk(
        state=data.state,
        findings=dict(data.findings),
        pattern=None if conclusion is None else str(conclusion.pattern),
        urgency=None if conclusion is None else str(conclusion.urgency),
        red_flags=None if conclusion is None else list(conclusion.red_flags),
        answers=answers,
        values=conversation.values(),
        result="Your result" if conclusion is None else f"Result: {conclusion.pattern}",
    )


class Ids:
    """The next free id of each table (so rows can name their parents without RETURNING)."""

    def __init__(self, connection: Connection, tables: list[Table]) -> None:
        self._next = {
            t.name: (connection.execute(select(func.max(t.c.id))).scalar() or 0) + 1 for t in tables
        }

    def take(self, table: Table) -> int:
        value = self._next[table.name]
        self._next[table.name] = value + 1
        return value


T_USERS: Table = User.__table__  # type: ignore[assignment]
T_CONV: Table = Conversation.__table__  # type: ignore[assignment]
T_ANS: Table = Answer.__table__  # type: ignore[assignment]
T_MSG: Table = Message.__table__  # type: ignore[assignment]
T_SCHED: Table = DiarySchedule.__table__  # type: ignore[assignment]
T_CHECKIN: Table = DiaryCheckin.__table__  # type: ignore[assignment]
T_ENTRY: Table = DiaryEntry.__table__  # type: ignore[assignment]
T_FOLLOW: Table = FollowUp.__table__  # type: ignore[assignment]
T_OUTBOX: Table = OutboxMessage.__table__  # type: ignore[assignment]
T_UPDATES: Table = ProcessedUpdate.__table__  # type: ignore[assignment]
T_KEYS: Table = PersonKey.__table__  # type: ignore[assignment]
ORDER = [T_USERS, T_KEYS, T_CONV, T_ANS, T_MSG, T_SCHED, T_CHECKIN, T_ENTRY, T_FOLLOW, T_OUTBOX]
"""Insert order within a chunk: parents before children."""


def _converters(table: Table, dialect: str) -> list[tuple[str, Any]]:
    """Each column's name and how its Python value is stored, as the model's type stores it
    (checked by `--check`, which reads the rows back through the ORM): the fill passes
    values straight to the driver, since SQLAlchemy's per-value processing would cost most
    of the time."""
    sqlite = dialect == "sqlite"
    found: list[tuple[str, Any]] = []
    for column in table.c:
        kind = column.type
        convert: Any = None
        if isinstance(kind, UTCDateTime):
            convert = _utc_text if sqlite else _utc_naive
        elif isinstance(kind, Date) and sqlite:
            convert = _day_text
        elif isinstance(kind, Boolean) and sqlite:
            convert = int
        elif isinstance(kind, JSON):
            convert = _json
        found.append((column.name, convert))
    return found


def _utc_naive(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None)


def _utc_text(value: datetime | None) -> str | None:
    """SQLAlchemy's SQLite DATETIME text: "YYYY-MM-DD HH:MM:SS.ffffff", naive UTC."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _day_text(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


_STATEMENTS: dict[str, tuple[str, list[tuple[str, Any]]]] = {}


def write(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` (the model's column names and Python values) with executemany."""
    if not rows:
        return
    dialect = connection.dialect
    if table.name not in _STATEMENTS:
        compiled = table.insert().compile(dialect=dialect, column_keys=[c.key for c in table.c])
        _STATEMENTS[table.name] = (str(compiled), _converters(table, dialect.name))
    statement, converters = _STATEMENTS[table.name]
    if dialect.name == "sqlite":
        params: list[Any] = [
            tuple(
                row.get(name) if convert is None else convert(row.get(name))
                for name, convert in converters
            )
            for row in rows
        ]
    else:
        params = [
            {
                name: row.get(name) if convert is None else convert(row.get(name))
                for name, convert in converters
            }
            for row in rows
        ]
    for start in range(0, len(params), 50_000):
        connection.exec_driver_sql(statement, params[start : start + 50_000])


class Filler:
    """Builds the rows of a chunk of people and writes them table by table."""

    def __init__(self, connection: Connection, now: datetime, seed: int, master: MasterKey) -> None:
        self.now = now
        self.master = master
        self.key = AESGCM(AESGCM.generate_key(bit_length=256))
        """The data key of the person being filled (each has their own, as the bot makes)."""
        self.user_id = 0
        self.origin = now - timedelta(days=TWO_YEARS + 30)
        self.rng = random.Random(seed)
        self.ids = Ids(connection, [t for t in ORDER if "id" in t.c])
        triage, diary = Flow.load("triage"), Flow.load("diary")
        walks = random.Random(seed + 1)
        self.triage = [walk(triage, walks, calm=0.75) for _ in range(TRIAGE_WALKS)]
        self.diary = [walk(diary, walks, calm=0.5) for _ in range(DIARY_WALKS)]
        self.rows: dict[str, list[dict[str, Any]]] = {t.name: [] for t in ORDER}
        self.counts: dict[str, int] = {t.name: 0 for t in ORDER}

    def message_id_at(self, at: datetime) -> int:
        """The id Telegram's one counter of the bot's messages had reached at `at`: ids grow
        with time, so the newest are the highest, as they are for a real bot."""
        return 1 + int((at - self.origin).total_seconds() * MESSAGE_RATE)

    def seal(self, where: str, value: Any) -> bytes:
        """`value` sealed for the person being filled, as the repositories seal it."""
        return seal_with(self.key, self.user_id, where, value)

    def flush(self, connection: Connection) -> None:
        for table in ORDER:
            rows = self.rows[table.name]
            write(connection, table, rows)
            self.counts[table.name] += len(rows)
            rows.clear()

    def conversation(
        self, user_id: int, flow: str, template: Walk, started: datetime, *, say: bool = True
    ) -> int:
        conversation_id = self.ids.take(T_CONV)
        last = started + timedelta(seconds=template.answers[-1][3] if template.answers else 0)
        self.rows["conversations"].append(
            {
                "id": conversation_id,
                "user_id": user_id,
                "flow": flow,
                "state": template.state,
                "sealed": self.seal(
                    CONVERSATION,
                    {
                        "pending": [],
                        "findings": template.findings,
                        "conclusion": None
                        if template.pattern is None or template.urgency is None
                        else [template.pattern, template.urgency, list(template.red_flags or ())],
                        "note": None,
                    },
                ),
                "started_at": started,
                "updated_at": last,
                "finished_at": last,
            }
        )
        for seq, (question_id, option_ids, text, offset, said) in enumerate(template.answers):
            at = started + timedelta(seconds=offset)
            self.rows["answers"].append(
                {
                    "id": self.ids.take(T_ANS),
                    "conversation_id": conversation_id,
                    "seq": seq,
                    "sealed": self.seal(ANSWER, [question_id, list(option_ids), text]),
                    "answered_at": at,
                }
            )
            if say:
                self.message(user_id, conversation_id, "in", text or said, at)
        if say:
            self.message(user_id, conversation_id, "out", template.result, last)
        return conversation_id

    def message(
        self, user_id: int, conversation_id: int | None, direction: str, text: str, at: datetime
    ) -> None:
        self.rows["messages"].append(
            {
                "id": self.ids.take(T_MSG),
                "user_id": user_id,
                "conversation_id": conversation_id,
                "direction": direction,
                "sealed": self.seal(MESSAGE, [text, None]),
                "created_at": at,
            }
        )

    def person(self, telegram_id: int, *, diary_nights: int = 0, checks: int | None = None) -> int:
        rng, now = self.rng, self.now
        user_id = self.ids.take(T_USERS)
        age = diary_nights + 2 + rng.uniform(0, TWO_YEARS - diary_nights)
        created = now - timedelta(days=age)
        created = min(created, now - timedelta(hours=1))
        consented = rng.random() < 0.95
        data_key = AESGCM.generate_key(bit_length=256)
        self.key, self.user_id = AESGCM(data_key), user_id
        self.rows["person_keys"].append(
            {
                "user_id": user_id,
                "key_id": self.master.key_id,
                "wrapped": self.master.wrap(data_key, user_id),
            }
        )
        self.rows["users"].append(
            {
                "id": user_id,
                "channel": "telegram",
                "external_id": str(telegram_id),
                "language_code": "en",
                "country": rng.choice(COUNTRIES) if consented else None,
                "consent_at": created + timedelta(seconds=20) if consented else None,
                "country_asked_at": created + timedelta(minutes=3) if consented else None,
                "created_at": created,
            }
        )
        last = created
        if consented:
            if checks is None:
                draw = rng.random()
                checks = 1 if draw < 0.8 else 2 if draw < 0.95 else rng.choice((3, 4))
            for _ in range(checks):
                started = (
                    last + timedelta(seconds=30)
                    if last == created
                    else last + timedelta(days=rng.uniform(1, 60))
                )
                started = min(started, now - timedelta(minutes=30))
                template = rng.choice(self.triage)
                conversation_id = self.conversation(user_id, "triage", template, started)
                last = started + timedelta(minutes=3)
                self.followup(user_id, conversation_id, template, last)
            if diary_nights:
                last = max(last, self.diary_of(user_id, diary_nights))
        self.rows["outbox"].append(
            {
                "id": self.ids.take(T_OUTBOX),
                "chat_id": telegram_id,
                "lane": "reply",
                "kind": "edit",
                "payload": None,
                "created_at": last,
                "not_before": None,
                "attempts": 0,
                "delivered_at": last,
                "message_id": self.message_id_at(last),
                "outcome": "sent",
                "claimed_by": None,
                "claimed_until": None,
                "claims": 1,
            }
        )
        return user_id

    def followup(self, user_id: int, conversation_id: int, template: Walk, at: datetime) -> None:
        if template.state != CONCLUDED or template.urgency not in ("urgent", "soon"):
            return
        rng = self.rng
        if rng.random() < 0.2:
            return
        draw = rng.random()
        status = "declined" if draw < 0.35 else "answered" if draw < 0.8 else "sent"
        if at > self.now - timedelta(days=3) and rng.random() < 0.5:
            status = "accepted"
        due = at + timedelta(days=1 if template.urgency == "urgent" else 3)
        answer = rng.choice(("seen", "not_yet", "changed")) if status == "answered" else None
        self.rows["followups"].append(
            {
                "id": self.ids.take(T_FOLLOW),
                "user_id": user_id,
                "conversation_id": conversation_id,
                "sealed": self.seal(FOLLOWUP, {"urgency": template.urgency, "answer": answer}),
                "status": status,
                "offered_at": at,
                "decided_at": at + timedelta(seconds=10),
                "timezone": rng.choice(ZONES) if status != "declined" else None,
                "due_at": None
                if status == "declined"
                else max(due, self.now + timedelta(hours=rng.uniform(1, 72)))
                if status == "accepted"
                else due,
                "sent_at": due if status in ("sent", "answered") else None,
                "answered_at": due + timedelta(hours=2) if status == "answered" else None,
            }
        )

    def diary_of(self, user_id: int, nights: int) -> datetime:
        """`nights` nights up to last night; returns the last activity."""
        rng, now = self.rng, self.now
        zone = rng.choice(ZONES)
        hour = rng.choice((20, 21, 22, 7, 8))
        scheduled = nights >= TWO_YEARS or rng.random() < 0.5
        last = now - timedelta(days=nights + 1)
        for back in range(nights, 0, -1):
            night = (now - timedelta(days=back)).date()
            due = datetime.combine(night, datetime.min.time(), UTC) + timedelta(hours=hour + 24)
            draw = rng.random()
            status = "answered" if draw < 0.85 else "missed" if draw < 0.95 else "skipped"
            conversation_id = None
            if status == "answered":
                template = rng.choice(self.diary)
                started = due + timedelta(minutes=rng.uniform(1, 90))
                conversation_id = self.conversation(user_id, "diary", template, started)
                self.message(user_id, conversation_id, "out", "How was the night?", due)
                self.rows["diary_entries"].append(
                    {
                        "id": self.ids.take(T_ENTRY),
                        "user_id": user_id,
                        "night": night,
                        "backfilled": False,
                        "sealed": self.seal(
                            ENTRY,
                            [
                                dict(template.values),
                                dict(template.findings),
                                list(template.red_flags or ()),
                            ],
                        ),
                        "conversation_id": conversation_id,
                        "created_at": started + timedelta(minutes=1),
                    }
                )
                last = started
            self.rows["diary_checkins"].append(
                {
                    "id": self.ids.take(T_CHECKIN),
                    "user_id": user_id,
                    "night": night,
                    "due_at": due,
                    "status": status,
                    "sending_at": due,
                    "sent_at": due,
                    "remind_at": None,
                    "message_id": self.message_id_at(due),
                    "conversation_id": conversation_id,
                    "backfill": False,
                }
            )
        next_due = now + timedelta(minutes=rng.uniform(30, 24 * 60))
        self.rows["diary_schedules"].append(
            {
                "user_id": user_id,
                "enabled": scheduled,
                "local_time": f"{hour:02d}:00",
                "timezone": zone,
                "next_due_at": next_due if scheduled else None,
                "next_night": next_due.date() if scheduled else None,
                "paused_until": None,
                "created_at": now - timedelta(days=nights + 1),
                "updated_at": last,
            }
        )
        return last


def sqlite_fill_pragmas(engine: Engine) -> None:
    """Faster bulk writes for this process only: a crash mid-fill may lose the file."""

    @event.listens_for(engine, "connect")
    def _fast(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in ("synchronous=OFF", "cache_size=-1000000", "temp_store=MEMORY"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()


def advance_sequences(engine: Engine) -> None:
    """PostgreSQL: the rows were given their ids, so move each id sequence past them (else
    the bot's next insert would take id 1 again)."""
    with engine.begin() as connection:
        for table in ORDER:
            if "id" not in table.c or not table.c.id.autoincrement:
                continue
            connection.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                f"(SELECT coalesce(max(id), 0) + 1 FROM {table.name}), false)"
            )


def chunks(total: int, size: int) -> Iterator[range]:
    for start in range(0, total, size):
        yield range(start, min(total, start + size))


def fill(url: str, people: int, seed: int) -> dict[str, int]:
    store = Store.open(url)
    engine = store.engine
    if engine.dialect.name == "sqlite":
        engine.dispose()
        sqlite_fill_pragmas(engine)
    now = datetime.now(UTC)
    began = time.monotonic()
    with engine.begin() as connection:
        if connection.execute(select(func.count()).select_from(T_USERS)).scalar():
            raise SystemExit("the database already holds people: fill an empty one")
        filler = Filler(connection, now, seed, store.keyring.master)
        filler.person(TWO_YEAR_ID, diary_nights=TWO_YEARS, checks=3)
        updates = [
            {"update_id": 900_000_000 + i, "processed_at": now - timedelta(seconds=i * 0.6)}
            for i in range(36 * 60 * 100)
        ]
        write(connection, T_UPDATES, updates)
        filler.flush(connection)
    rng = filler.rng
    for chunk in chunks(people - 1, CHUNK):
        with engine.begin() as connection:
            for i in chunk:
                nights = rng.randint(10, 120) if rng.random() < 0.01 else 0
                filler.person(FIRST_ID + i, diary_nights=nights)
            filler.flush(connection)
        done = chunk.stop + 1
        rate = done / (time.monotonic() - began)
        print(
            f"\r{done:,} people, {filler.counts['answers']:,} answers, "
            f"{filler.counts['messages']:,} messages ({rate:,.0f} people/s)",
            end="",
            file=sys.stderr,
            flush=True,
        )
    print(file=sys.stderr)
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    elif engine.dialect.name == "postgresql":
        advance_sequences(engine)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")  # as autovacuum would have by now
    store.dispose()
    counts = dict(filler.counts) | {"processed_updates": len(updates)}
    counts["seconds"] = round(time.monotonic() - began)
    return counts


def check(url: str) -> str:
    """Open the filled database as the bot does and export the two-year person."""
    from storage.export import export_user  # noqa: PLC0415

    store = Store.open(url)
    try:
        with store.transaction() as repo:
            user = repo.find_user("telegram", str(TWO_YEAR_ID))
            assert user is not None, "the two-year person is missing"
            data = export_user(repo, user.id, exported_at=datetime.now(UTC))
    finally:
        store.dispose()
    diary = data["diary"]
    return (
        f"export of Telegram id {TWO_YEAR_ID}: {len(data['conversations'])} conversations, "
        f"{len(diary['checkins'])} check-ins, {len(diary['entries'])} diary entries, "
        f"{len(data['transcript'])} transcript messages, {len(data['followups'])} follow-ups"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("url", help="SQLAlchemy URL of an empty (or new) database")
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--check", action="store_true", help="afterwards, export the two-year one")
    args = parser.parse_args()
    counts = fill(args.url, args.people, args.seed)
    print(", ".join(f"{name} {count:,}" for name, count in counts.items()))
    if args.check:
        print(check(args.url))


if __name__ == "__main__":
    main()
