"""The pacer keeps Telegram's overall rate: at most `per_second` calls in any one second,
replies before bulk, bulk evenly spaced and leaving room for replies. Spacing is checked as a
lower bound (a busy machine only makes calls later), and order by what was granted first."""

from __future__ import annotations

import asyncio
from itertools import pairwise

from bot.telegram.pacing import BULK, REPLY, TRAIL, WINDOW, LanePacer

RATE = 20.0
HEADROOM = 4


async def granted(pacer: LanePacer, lanes: list[str]) -> list[tuple[str, float]]:
    loop = asyncio.get_running_loop()
    order: list[tuple[str, float]] = []

    async def one(lane: str, chat: int) -> None:
        await pacer.slot(lane, chat)
        order.append((lane, loop.time()))

    await asyncio.gather(*(one(lane, n) for n, lane in enumerate(lanes)))
    return order


def most_in_a_window(times: list[float]) -> int:
    return max(
        sum(1 for t in times[i:] if t - start < WINDOW * 0.99) for i, start in enumerate(times)
    )


async def test_replies_go_before_bulk_waiting_at_the_same_time() -> None:
    pacer = LanePacer(RATE, headroom=HEADROOM)
    await pacer.initialize()
    try:
        order = await granted(pacer, [BULK, BULK, BULK, REPLY, REPLY])
    finally:
        await pacer.shutdown()
    lanes = [lane for lane, _ in order]
    # The first bulk call may have been granted before the replies asked; after that, both
    # replies go before any other bulk call.
    assert lanes[1:3] == [REPLY, REPLY] or lanes[:2] == [REPLY, REPLY], lanes


async def test_what_trails_a_reply_goes_after_replies_and_before_bulk() -> None:
    pacer = LanePacer(RATE, headroom=HEADROOM)
    await pacer.initialize()
    try:
        order = await granted(pacer, [BULK, BULK, BULK, TRAIL, TRAIL, REPLY])
    finally:
        await pacer.shutdown()
    lanes = [lane for lane, _ in order]
    rest = lanes[1:] if lanes[0] == BULK else lanes  # the first bulk call may have gone first
    assert rest[: rest.index(BULK)] == [REPLY, TRAIL, TRAIL], lanes


async def test_a_burst_of_replies_goes_at_once_but_never_over_the_rate_in_any_second() -> None:
    pacer = LanePacer(RATE, headroom=HEADROOM)
    await pacer.initialize()
    try:
        replies = [t for _, t in await granted(pacer, [REPLY] * 50)]
    finally:
        await pacer.shutdown()
    first = replies[0]
    assert sum(1 for t in replies if t - first < WINDOW / 2) == RATE  # no waiting for slots
    assert most_in_a_window(replies) <= RATE


async def test_bulk_is_evenly_spaced_and_leaves_room_for_replies() -> None:
    pacer = LanePacer(RATE, headroom=HEADROOM)
    await pacer.initialize()
    try:
        bulk = [t for _, t in await granted(pacer, [BULK] * 30)]
        replies = [t for _, t in await granted(pacer, [REPLY] * HEADROOM)]
    finally:
        await pacer.shutdown()
    assert min(b - a for a, b in pairwise(bulk)) >= (1 / RATE) * 0.95
    assert most_in_a_window(bulk) <= RATE - HEADROOM
    assert most_in_a_window(sorted(bulk + replies)) <= RATE
