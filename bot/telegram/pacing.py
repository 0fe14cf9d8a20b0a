"""Telegram's rate limits as a PTB rate limiter with three lanes: replies, then what trails
them, then bulk.

Assumed limits (Telegram's bot FAQ): about 30 messages a second across all chats, and no more
than about one a second in one chat for long. Every chat-bound call (a send or an edit) counts
against the 30; answering a button press does not. The pacer allows at most 30 calls in any
one second (a sliding window: the 31st waits until the first is a second old). A waiting
reply (a tap's answer, up to the message the person taps next) always goes first; then the
rest of a reply ("trail": a result's transcript line, a follow-up offer, the country
question), so the next person's question is not queued behind them; bulk last. Bulk sends
(check-ins, summaries, follow-ups) are also spaced 1/30 s apart, keep one second between two
to the same chat, and leave a few calls of every second to replies, so a tap during a fan-out
is not queued behind it. A 429
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

from telegram.error import RetryAfter, TelegramError
from telegram.ext import BaseRateLimiter

from bot.metrics import DISCARD, Metrics

logger = logging.getLogger(__name__)

PER_SECOND = 30
WINDOW = 1.0
"""Seconds over which at most `per_second` calls go (Telegram's "30 messages per second")."""
REPLY_HEADROOM = 5
"""Calls of every window bulk sends leave to replies."""
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
REPLY, TRAIL, BULK = "reply", "trail", "bulk"
GOING = "going"
"""`rate_limit_args` key of a callable the pacer calls once, when the call's turn has come and
just before it first leaves (the outbox commits there that a send may reach Telegram)."""
JSONResult = bool | dict[str, Any] | list[dict[str, Any]]


class LanePacer(BaseRateLimiter[dict[str, Any]]):
    """Pass `rate_limit_args={"lane": "trail"}` or `{"lane": "bulk"}` to a bot call to send it
    in that lane (default: reply), and `{GOING: callable}` to be told as it leaves."""

    metrics: Metrics = DISCARD

    def __init__(
        self,
        per_second: float = PER_SECOND,
        *,
        max_retries: int = 3,
        shared: Callable[[], float] | None = None,
        headroom: int = REPLY_HEADROOM,
    ) -> None:
        self.interval = 1 / per_second
        self.limit = int(per_second)
        if not 0 <= headroom < self.limit:
            raise ValueError(f"headroom must be 0 to {self.limit - 1}, not {headroom}")
        self.headroom = headroom
        self.shared = shared
        """With several instances: reserves a slot of the budget they share (kept in the
        database) and says how many seconds to wait for it."""
        self.max_retries = max_retries
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {
            lane: deque() for lane in (REPLY, TRAIL, BULK)
        }
        self._granted: deque[float] = deque(maxlen=self.limit)
        """When the last `limit` calls were let through, oldest first."""
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
        going = (rate_limit_args or {}).get(GOING)
        chat = data.get("chat_id")
        for attempt in range(self.max_retries + 1):
            if endpoint in CHAT_BOUND:
                await self.slot(lane, chat)
            if going is not None and attempt == 0:
                going()  # its error (the database is away) stops the call before it leaves
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                wait = _seconds(exc.retry_after)
                self.metrics.waited(endpoint, exc, wait)
                loop = asyncio.get_running_loop()
                self._paused_until = max(self._paused_until, loop.time() + wait)
                if attempt == self.max_retries:
                    raise
                logger.info("Telegram asked to wait %.1f s (429); waiting", wait)
                await asyncio.sleep(wait)
            except TelegramError as exc:
                self.metrics.api_error(endpoint, exc)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def slot(self, lane: str, chat: int | str | None) -> None:
        """Wait for this call's turn: replies first, at most `per_second` calls a second."""
        loop = asyncio.get_running_loop()
        if lane == BULK and chat is not None:
            gap = self._last_bulk.get(chat, -BULK_CHAT_GAP) + BULK_CHAT_GAP - loop.time()
            if gap > 0:
                await asyncio.sleep(gap)
        future: asyncio.Future[None] = loop.create_future()
        self._waiting[lane if lane in self._waiting else REPLY].append(future)
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
        """The caller whose turn is next: replies first, then what trails them, then bulk;
        cancelled callers give up their place."""
        for lane in (REPLY, TRAIL, BULK):
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
            first = self._first_waiting()
            if first is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            lane, future = first
            now = loop.time()
            allowed = self._free_at(lane)
            if allowed > now:
                # Wait for the moment, or for a reply that comes meanwhile and may go sooner.
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), allowed - now)
                continue
            self._waiting[lane].popleft()
            future.set_result(None)
            self._granted.append(now)

    def _free_at(self, lane: str) -> float:
        """The first moment a call of `lane` may go: a reply as soon as the last second has
        had fewer than `limit` calls; trail and bulk only while it had fewer than
        `limit - headroom` (so replies always find room), bulk also 1/`per_second` s after the
        call before it."""
        allowed = self._paused_until
        granted = self._granted
        cap = self.limit if lane == REPLY else self.limit - self.headroom
        if len(granted) >= cap:
            allowed = max(allowed, granted[len(granted) - cap] + WINDOW)
        if lane == BULK and granted:
            allowed = max(allowed, granted[-1] + self.interval)
        return allowed


def _seconds(value: object) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)  # type: ignore[arg-type]
