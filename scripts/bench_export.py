"""Time `/export` and `/delete` of one person on a given (big) database.

    .venv/bin/python scripts/bench_export.py sqlite:////tmp/big.db              # export only
    .venv/bin/python scripts/bench_export.py sqlite:////tmp/big.db --delete     # then erase

The person defaults to `scripts/fill_db.py`'s two-year diary keeper. Export runs the code
`/export` runs: `storage.export.export_user` in one transaction (the database read, which
the bot does in its own process), then `bot.files.exports.build_file` for the JSON, the ZIP
and the doctor PDF of everything ("· all"), in this process (the bot builds them in its
worker process, one at a time). Each is timed --repeat times (the best and the median are
printed); the first build's library imports are timed apart. --delete then erases the person
as `/delete` and `python -m bot.admin delete-user` do: the row deletion with its cascades, the
commit, and `Store.erase_person_traces()` (SQLite: WAL checkpoint; PostgreSQL: the rewrite
of the tables that name the person or hold their key). It cannot be undone: run it on a copy
when you need the database again.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storage import Store  # noqa: E402
from storage.export import export_user  # noqa: E402

TWO_YEAR_ID = "4999999999"


def timed(action: Callable[[], Any], repeat: int) -> tuple[Any, list[float]]:
    times, result = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - began)
    return result, times


def line(name: str, times: list[float]) -> str:
    return (
        f"  {name:<34} best {min(times) * 1000:8.0f} ms   median "
        f"{statistics.median(times) * 1000:8.0f} ms   ({len(times)} runs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--telegram-id", default=TWO_YEAR_ID)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--delete", action="store_true", help="then erase the person (for good)")
    parser.add_argument("--no-files", action="store_true", help="time the database read only")
    args = parser.parse_args()
    store = Store.open(args.url)
    try:
        with store.transaction() as repo:
            user = repo.find_user("telegram", args.telegram_id)
            if user is None:
                raise SystemExit(f"no person with Telegram id {args.telegram_id}")
            counts = repo.user_row_counts(user.id)
        print(f"person {args.telegram_id}: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))

        def read() -> dict[str, Any]:
            with store.transaction() as repo:
                return export_user(repo, user.id, exported_at=datetime.now(UTC))

        data, read_times = timed(read, args.repeat)
        print(line("export_user (database read)", read_times))
        if not args.no_files:
            from bot.files.exports import build_file  # noqa: PLC0415

            zone = (data["diary"]["schedule"] or {}).get("timezone") or "UTC"
            today = datetime.now(ZoneInfo(zone)).date()
            began = time.perf_counter()
            import fpdf  # noqa: F401, PLC0415
            import matplotlib  # noqa: F401, PLC0415

            from bot.files import bundle, fhir, pdf  # noqa: F401, PLC0415

            imports = time.perf_counter() - began
            print(f"  {'(library imports, once per worker)':<34} {imports:.2f} s")
            for kind in ("json", "zip", "pdf"):
                built, times = timed(
                    lambda kind=kind: build_file(
                        kind, data, since=None, zone=zone, name=None, today=today
                    ),
                    args.repeat,
                )
                print(line(f"build {kind} · all ({len(built[0]) / 1024:,.0f} kB)", times))
                total = min(read_times) + min(times)
                print(f"  {'':<34} read + build: {total:.2f} s (best)")
        if args.delete:
            began = time.perf_counter()
            with store.transaction() as repo:
                repo.delete_user(user.id)
                deleted = time.perf_counter()
            committed = time.perf_counter()
            store.erase_person_traces()
            erased = time.perf_counter()
            print(
                f"  delete: rows {deleted - began:.2f} s, commit {committed - deleted:.2f} s, "
                f"erase_person_traces {erased - committed:.2f} s, total {erased - began:.2f} s"
            )
    finally:
        store.dispose()


if __name__ == "__main__":
    main()
