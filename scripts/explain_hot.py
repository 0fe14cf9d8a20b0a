"""The query plans and times of the statements a running bot repeats, on a given database.

    .venv/bin/python scripts/explain_hot.py sqlite:////tmp/big.db
    .venv/bin/python scripts/explain_hot.py sqlite:////tmp/big.db --only outbox.prune

Each hot operation (a tap's lookups and writes, the outbox sender's claims, the dispatchers'
due queries, the periodic prunes, the lookups behind `/delete`'s cascades) runs through the
bot's own `Repo`, once and then --repeat times more for its median time, inside one
transaction that is rolled back at the end, so the database is left as it was. Every SQL
statement of its first run is caught on its way to the driver and printed with its time
and its plan (`EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN` on
PostgreSQL), so the plans are those of the very statements the bot runs. A plan that reads a
whole big table ("SCAN <table>" without an index, "Seq Scan") is marked `<-- full scan`.

The person it acts as is `scripts/fill_db.py`'s two-year diary keeper (any person with
--telegram-id). Nothing is committed; prunes delete nothing that a running bot would keep.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storage import Repo, Store  # noqa: E402
from storage.models import Base  # noqa: E402

TWO_YEAR_ID = "4999999999"


def operations(repo: Repo, user_id: int, chat: int, now: datetime) -> dict[str, Callable[[], Any]]:
    """Name -> one hot operation of a running bot, as the bot calls it."""
    last = repo.latest_conversation(user_id, "diary") or repo.latest_conversation(user_id, "triage")
    conversation_id = last[0] if last else 1
    lease = timedelta(seconds=15)
    return {
        "tap: person by Telegram id": lambda: repo.find_user("telegram", str(chat)),
        "tap: claim the update id": lambda: repo.claim_update(2**40 + 7),
        "tap: newest open triage": lambda: repo.open_conversation(user_id, "triage"),
        "tap: newest triage": lambda: repo.latest_conversation(user_id, "triage"),
        "tap: newest open diary": lambda: repo.open_conversation(user_id, "diary"),
        "tap: flow of a button's conversation": lambda: repo.flow_of(conversation_id),
        "tap: transcript write": lambda: repo.add_message(user_id, "in", "No"),
        "tap: queue a reply": lambda: repo.outbox.add(chat, "send", {"text": "x"}),
        "sender: claim the chat's next row": lambda: repo.outbox.claim_next(chat, "bench", lease),
        "sender: a send is going": lambda: repo.outbox.going(1, 7, "bench"),
        "sender: last message id of a chat": lambda: repo.outbox.last_message_id(chat),
        "sender: sweep for waiting chats": lambda: repo.outbox.waiting_chats(now),
        "metrics: outbox backlog": repo.outbox.pending,
        "diary: schedules due": lambda: repo.diary.due(now),
        "diary: unsent check-ins": lambda: repo.diary.unsent(now),
        "diary: reminders due": lambda: repo.diary.reminders_due(now),
        "diary: person's open check-in": lambda: repo.diary.current_checkin(user_id),
        "diary: check-in of a conversation": lambda: repo.diary.checkin_for_conversation(
            conversation_id
        ),
        "diary: older check-ins missed": lambda: repo.diary.mark_missed_before(
            user_id, (now - timedelta(days=3)).date()
        ),
        "diary: last 30 nights (summary)": lambda: repo.diary.entries(
            user_id, (now - timedelta(days=30)).date()
        ),
        "followups: due": lambda: repo.followups.due(now, channel="telegram"),
        "followups: timed in UTC": repo.followups.unzoned,
        "export: conversations": lambda: repo.conversations(user_id),
        "export: transcript": lambda: repo.messages(user_id),
        "export: check-ins": lambda: repo.diary.checkins(user_id),
        "export: follow-ups": lambda: repo.followups.of_user(user_id),
        "prune: processed updates (polling start)": lambda: repo.prune_updates(
            now - timedelta(days=2)
        ),
        "prune: delivered outbox rows (hourly)": lambda: repo.outbox.prune(now - timedelta(days=2)),
        "retention: transcript older than N days": lambda: repo.prune_messages(
            now - timedelta(days=3 * 365)
        ),
    }


def foreign_key_lookups(connection: Connection) -> dict[str, str]:
    """The lookup a cascade (or SET NULL) does in each child table per deleted parent row."""
    found = {}
    for table in Base.metadata.sorted_tables:
        for key in table.foreign_keys:
            column = key.parent.name
            found[f"/delete cascade: {table.name}.{column}"] = (
                f"SELECT 1 FROM {table.name} WHERE {column} = 1"
            )
    return found


def explain(connection: Connection, statement: str, params: Any) -> list[str]:
    if connection.dialect.name == "sqlite":
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
        return [str(row[-1]) for row in rows]
    rows = connection.exec_driver_sql(f"EXPLAIN {statement}", params)
    return [str(row[0]) for row in rows]


def full_scan(line: str) -> bool:
    words = line.replace("-", " ").split()
    return (
        len(words) >= 2 and words[0] == "SCAN" and "INDEX" not in words and "CONSTANT" not in line
    ) or "Seq Scan" in line


def print_plans(connection: Connection, statements: list[tuple[str, Any, float]]) -> None:
    """Each distinct statement once, with how often it ran, its time and its plan."""
    seen: dict[str, list[Any]] = {}  # statement -> [params, times, seconds]
    for statement, params, seconds in statements:
        entry = seen.setdefault(statement, [params, 0, 0.0])
        entry[1] += 1
        entry[2] += seconds
    for statement, (params, times, seconds) in seen.items():
        repeat = f" x{times}" if times > 1 else ""
        print(f"  {' '.join(statement.split())[:160]}  ({seconds * 1000:.1f} ms{repeat})")
        for line in explain(connection, statement, params):
            mark = "   <-- full scan" if full_scan(line) else ""
            print(f"      {line}{mark}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--telegram-id", default=TWO_YEAR_ID)
    parser.add_argument("--only", help="only operations whose name contains this")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each operation")
    args = parser.parse_args()
    store = Store.open(args.url)
    caught: list[tuple[str, Any, float]] = []
    started: list[float] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def _before(*_args: Any) -> None:
        started.append(time.perf_counter())

    @event.listens_for(store.engine, "after_cursor_execute")
    def _after(_conn: Any, _cursor: Any, statement: str, params: Any, *_rest: Any) -> None:
        caught.append((statement, params, time.perf_counter() - started.pop()))

    now = datetime.now(UTC)
    session = Session(store.engine)  # one transaction, rolled back at the end
    try:
        repo = Repo(session, lambda: now)
        user = repo.find_user("telegram", args.telegram_id)
        if user is None:
            raise SystemExit(f"no person with Telegram id {args.telegram_id}")
        chat = int(args.telegram_id)
        for name, operation in operations(repo, user.id, chat, now).items():
            if args.only and args.only not in name:
                continue
            caught.clear()
            operation()  # the statements of one run, compiled and cached as in a running bot
            session.flush()
            statements = list(caught)
            took = []
            for _ in range(args.repeat):
                began = time.perf_counter()
                operation()
                session.flush()
                took.append((time.perf_counter() - began) * 1000)
            print(f"\n## {name}: {statistics.median(took):.2f} ms (median of {args.repeat})")
            print_plans(session.connection(), statements)
        connection = session.connection()
        for name, statement in foreign_key_lookups(connection).items():
            if args.only and args.only not in name:
                continue
            print(f"\n## {name}")
            for line in explain(connection, statement, ()):
                mark = "   <-- full scan" if full_scan(line) else ""
                print(f"      {line}{mark}")
    finally:
        session.rollback()
        session.close()
        store.dispose()


if __name__ == "__main__":
    main()
