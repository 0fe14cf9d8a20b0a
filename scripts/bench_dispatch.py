"""Benchmark: dispatch due diary check-ins for many users through the real bot.

Runs the real PTB application (its two-lane pacer and outbox sender) against the stand-in Bot API
server on 127.0.0.1, with N consented users whose check-ins are all due at once, and reports:
messages sent, how many chats got more than one check-in (must be 0), the busiest one-second
window and the mean rate (Telegram allows about 30 messages a second overall), and the time
as a ratio against a baseline run in the same session without the rate limiter.

    python scripts/bench_dispatch.py --users 10000      # about six minutes at 30 msg/s
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from datetime import time as clock_time
from pathlib import Path
from zoneinfo import ZoneInfo

os.environ.setdefault("PTB_TIMEDELTA", "true")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.app import build_core  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from bot.telegram.app import build_application, wiring  # noqa: E402
from tests.botapi_stub import BotApiStub  # noqa: E402

BERLIN = ZoneInfo("Europe/Berlin")
DUE = datetime(2026, 11, 26, 21, 0, tzinfo=BERLIN)
FIRST_CHAT = 10_000_000


def seed(core, users: int) -> None:  # type: ignore[no-untyped-def]
    """N consented users with a 21:00 Berlin check-in, set up the afternoon before."""
    with core.store.transaction() as repo:
        for i in range(users):
            user = repo.user("telegram", str(FIRST_CHAT + i))
            repo.update_user(user.id, consent_at=DUE.astimezone(UTC))
            repo.diary.set_schedule(
                user.id,
                local_time=clock_time(21, 0),
                zone="Europe/Berlin",
                now=DUE.replace(hour=12).astimezone(UTC),
            )


async def run(users: int, *, limited: bool) -> dict[str, float]:
    async with BotApiStub() as api:
        with tempfile.TemporaryDirectory() as tmp:
            settings = load_settings(
                _env_file=None,
                telegram_bot_token=api.token,
                telegram_api_url=api.root,
                database_url=f"sqlite:///{tmp}/bench.db",
            )
            now = DUE.replace(minute=1).astimezone(UTC)
            core = build_core(settings, clock=lambda: now)
            seed(core, users)
            application = build_application(settings, core, rate_limit=limited)
            parts = wiring(application)
            async with application:
                mark = api.mark()
                started = time.perf_counter()
                sent = await parts.diary.dispatch()
                again = await parts.diary.dispatch()  # a second run queues nothing
                await parts.sender.settled()
                elapsed = time.perf_counter() - started
            core.store.dispose()
            calls = [c for c in api.calls[mark:] if c.method == "sendMessage" and c.ok]
            per_chat = Counter(c.params["chat_id"] for c in calls)
            per_second = Counter(int(c.at - calls[0].at) for c in calls) if calls else Counter()
            return {
                "claimed": sent + again,
                "messages": len(calls),
                "chats_with_two": sum(1 for n in per_chat.values() if n > 1),
                "seconds": elapsed,
                "peak_per_second": max(per_second.values(), default=0),
                "mean_per_second": len(calls) / elapsed if elapsed else 0.0,
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument(
        "--baseline-users",
        type=int,
        default=None,
        help="users for the no-limiter baseline (default: same as --users)",
    )
    args = parser.parse_args()
    baseline_users = args.baseline_users or args.users
    baseline = asyncio.run(run(baseline_users, limited=False))
    real = asyncio.run(run(args.users, limited=True))
    print(f"baseline (no rate limiter, {baseline_users} users): {baseline}")
    print(f"with the pacer ({args.users} users):            {real}")
    per_user_base = baseline["seconds"] / baseline_users
    per_user_real = real["seconds"] / args.users
    print(f"time per check-in vs baseline: {per_user_real / per_user_base:.1f}x")
    print(f"mean rate vs Telegram's 30/s: {real['mean_per_second'] / 30:.2f}")
    print(f"peak one-second window vs 30/s: {real['peak_per_second'] / 30:.2f}")
    ok = (
        real["messages"] == args.users
        and real["chats_with_two"] == 0
        and real["peak_per_second"] <= 31
    )
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
