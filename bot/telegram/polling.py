"""Long polling that confirms an update to Telegram only once its effects are committed.

PTB's own polling confirms updates (the next getUpdates offset) as soon as they are queued in
memory, so a hard kill would drop taps that were fetched but not handled. Here each batch is
handed to PTB's update queue, handled concurrently by chat (`lanes.ChatLanes`), and the
offset moves past an update only when it and every update before it are committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from telegram import Update
from telegram.error import InvalidToken, RetryAfter, TelegramError
from telegram.ext import Application

from bot.services.flow import Clock
from bot.telegram.completion import Completions
from bot.telegram.lanes import ChatLanes
from storage import Store

logger = logging.getLogger(__name__)

KEEP_PROCESSED = timedelta(days=2)
"""Telegram keeps undelivered updates for 24 hours, so older ids can never come back."""
MAX_BACKOFF = 30.0


class DurablePolling:
    def __init__(
        self,
        application: Application,  # type: ignore[type-arg]
        store: Store,
        lanes: ChatLanes,
        *,
        clock: Clock,
        poll_timeout: int = 30,
    ) -> None:
        self.application = application
        self.store = store
        self.clock = clock
        self.poll_timeout = poll_timeout
        self.offset: int | None = None
        self._waiting = Completions()
        lanes.finished = self._waiting.finished

    async def run(self, stop: asyncio.Event) -> None:
        bot = self.application.bot
        await bot.delete_webhook()
        self._prune(self.clock())
        failures = 0
        while not stop.is_set():
            try:
                updates = await bot.get_updates(
                    offset=self.offset,
                    timeout=self.poll_timeout,
                    allowed_updates=Update.ALL_TYPES,
                )
                failures = 0
            except InvalidToken:
                raise
            except RetryAfter as exc:
                await self._pause(stop, _seconds(exc.retry_after))
                continue
            except TelegramError as exc:
                failures += 1
                logger.warning("getUpdates failed (%s); retrying", type(exc).__name__)
                await self._pause(stop, min(MAX_BACKOFF, 0.5 * 2**failures))
                continue
            if updates and not await self.handle(updates):
                failures += 1
                await self._pause(stop, min(MAX_BACKOFF, 0.5 * 2**failures))

    async def handle(self, updates: tuple[Update, ...] | list[Update]) -> bool:
        """Handle a batch concurrently; move the offset past the committed prefix.

        False when an update could not be committed: it and those after it come again.
        """
        results: list[asyncio.Future[BaseException | None]] = []
        for update in updates:
            results.append(self._waiting.expect(update.update_id))
            await self.application.update_queue.put(update)
        errors = await asyncio.gather(*results)
        for update, error in zip(updates, errors, strict=True):
            if error is not None:
                return False
            self.offset = update.update_id + 1
        return True

    def _prune(self, now: datetime) -> None:
        with self.store.transaction() as repo:
            repo.prune_updates(now - KEEP_PROCESSED)

    @staticmethod
    async def _pause(stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)


def _seconds(value: object) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)  # type: ignore[arg-type]
