"""The pacer keeps Telegram's overall rate: replies before bulk, bulk strictly paced, replies
ahead of the schedule by a small burst only. Spacing is checked as a lower bound (a busy
machine only makes calls later), and order by what was granted first."""

from __future__ import annotations

import asyncio
from itertools import pairwise

from bot.telegram.pacing import BULK, REPLY, LanePacer

RATE = 50.0


async def granted(pacer: LanePacer, lanes: list[str]) -> list[tuple[str, float]]:
    loop = asyncio.get_running_loop()
    order: list[tuple[str, float]] = []

    async def one(lane: str, chat: int) -> None:
        await pacer.slot(lane, chat)
        order.append((lane, loop.time()))

    await asyncio.gather(*(one(lane, n) for n, lane in enumerate(lanes)))
    return order


async def test_replies_go_before_bulk_waiting_at_the_same_time() -> None:
    pacer = LanePacer(RATE, burst=0)
    await pacer.initialize()
    try:
        order = await granted(pacer, [BULK, BULK, BULK, REPLY, REPLY])
    finally:
        await pacer.shutdown()
    lanes = [lane for lane, _ in order]
    # The first bulk call may have been granted before the replies asked; after that, both
    # replies go before any other bulk call.
    assert lanes[1:3] == [REPLY, REPLY] or lanes[:2] == [REPLY, REPLY], lanes


async def test_bulk_is_paced_strictly_and_replies_only_run_a_burst_ahead() -> None:
    burst = 3
    pacer = LanePacer(RATE, burst=burst)
    await pacer.initialize()
    try:
        bulk = await granted(pacer, [BULK] * 6)
        replies = await granted(pacer, [REPLY] * 12)
    finally:
        await pacer.shutdown()
    gap = 1 / RATE
    times = [t for _, t in bulk]
    assert min(b - a for a, b in pairwise(times)) >= gap * 0.95
    reply_times = [t for _, t in replies]
    # Over the whole run, never more than the pace allows plus the burst.
    for i, start in enumerate(reply_times):
        within = [t for t in reply_times[i:] if t - start < 10 * gap]
        assert len(within) <= 10 + burst + 1
