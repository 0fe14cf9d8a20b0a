"""Telegram's rate limits as a PTB rate limiter with two lanes: replies first, bulk after.

Assumed limits (Telegram's bot FAQ): about 30 messages a second across all chats, and no more
than about one a second in one chat for long. Every chat-bound call (a send or an edit) counts
against the 30; answering a button press does not. The pacer hands out one slot per 1/30 s,
strictly (no initial burst), and always to a waiting reply before any bulk send; bulk sends
(check-ins, summaries, follow-ups) also keep one second between two to the same chat. A 429
`retry_after` pauses every chat-bound call for that long, then the call is tried again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

logger = logging.getLogger(__name__)

PER_SECOND = 30
REPLY_BURST = 5
"""Replies may go this many slots ahead of the strict schedule, so the several messages of a
result don't queue behind each other; the long-run pace stays the same."""
BULK_CHAT_GAP = 1.0
"""Seconds between two bulk messages to one chat."""
CHAT_BOUND = frozenset(
    {
        "sendMessage",
        "editMessageText",
        "editMessageReplyMarkup",
        "editMessageCaption",
        "sendDocument",
        "sendPhoto",
    }
)
REPLY, BULK = "reply", "bulk"
JSONResult = bool | dict[str, Any] | list[dict[str, Any]]


class LanePacer(BaseRateLimiter[dict[str, Any]]):
    """Pass `rate_limit_args={"lane": "bulk"}` to a bot call to send it in the bulk lane."""

    def __init__(
        self,
        per_second: float = PER_SECOND,
        *,
        max_retries: int = 3,
        shared: Callable[[], float] | None = None,
        burst: int = REPLY_BURST,
    ) -> None:
        self.interval = 1 / per_second
        self.burst = burst
        self.shared = shared
        """With several instances: reserves a slot of the budget they share (kept in the
        database) and says how many seconds to wait for it."""
        self.max_retries = max_retries
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {REPLY: deque(), BULK: deque()}
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._last_bulk: dict[int | str, float] = {}
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def initialize(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._grant(), name="lane-pacer")

    async def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def process_request(  # noqa: PLR0917 - PTB's signature
        self,
        callback: Callable[..., Coroutine[Any, Any, JSONResult]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: dict[str, Any] | None,
    ) -> JSONResult:
        lane = (rate_limit_args or {}).get("lane", REPLY)
        chat = data.get("chat_id")
        for attempt in range(self.max_retries + 1):
            if endpoint in CHAT_BOUND:
                await self.slot(lane, chat)
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                wait = _seconds(exc.retry_after)
                loop = asyncio.get_running_loop()
                self._paused_until = max(self._paused_until, loop.time() + wait)
                if attempt == self.max_retries:
                    raise
                logger.info("Telegram asked to wait %.1f s (429); waiting", wait)
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def slot(self, lane: str, chat: int | str | None) -> None:
        """Wait for this call's turn: replies first, at most `per_second` calls a second."""
        loop = asyncio.get_running_loop()
        if lane == BULK and chat is not None:
            gap = self._last_bulk.get(chat, -BULK_CHAT_GAP) + BULK_CHAT_GAP - loop.time()
            if gap > 0:
                await asyncio.sleep(gap)
        future: asyncio.Future[None] = loop.create_future()
        self._waiting[BULK if lane == BULK else REPLY].append(future)
        assert self._wake is not None, "the pacer is used before PTB initialized it"
        self._wake.set()
        await future
        if self.shared is not None:
            wait = self.shared()
            if wait > 0:
                await asyncio.sleep(wait)
        if lane == BULK and chat is not None:
            self._last_bulk[chat] = loop.time()
            if len(self._last_bulk) > 10_000:
                self._forget_old(loop.time())

    def _forget_old(self, now: float) -> None:
        self._last_bulk = {c: t for c, t in self._last_bulk.items() if now - t < BULK_CHAT_GAP}

    def _first_waiting(self) -> tuple[str, asyncio.Future[None]] | None:
        """The caller whose turn is next: replies first; cancelled callers give up their place."""
        for lane in (REPLY, BULK):
            queue = self._waiting[lane]
            while queue and queue[0].done():
                queue.popleft()
            if queue:
                return lane, queue[0]
        return None

    async def _grant(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            first = self._first_waiting()
            if first is None:
                self._wake.clear()
                continue
            lane, future = first
            # A reply may run up to `burst` slots ahead of the schedule (a result is several
            # messages at once); bulk only takes a slot that has come. Over any longer stretch
            # the pace is `per_second` either way.
            ahead = self.burst * self.interval if lane == REPLY else 0.0
            now = loop.time()
            allowed = max(self._next_slot - ahead, self._paused_until)
            if allowed > now:
                await asyncio.sleep(allowed - now)
                continue  # look again: a reply may have come meanwhile
            self._waiting[lane].popleft()
            future.set_result(None)
            self._next_slot = max(now, self._next_slot) + self.interval


def _seconds(value: object) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)  # type: ignore[arg-type]
