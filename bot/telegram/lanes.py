"""Everyone in their own lane: PTB's update processor, one lock per chat, one transaction per
update.

Updates of different chats run side by side; updates of one chat wait for each other, in the
order they came. Each update is handled in one database transaction that claims its update
id, applies its effects and queues its replies in the outbox; the sender is woken only after
the commit. A handler that fails rolls all of that back, and the person gets a short apology
instead (committed with the claim, so a redelivery is not retried forever).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from telegram import Update
from telegram.ext import ApplicationHandlerStop, BaseUpdateProcessor

from bot.metrics import DISCARD, Metrics
from bot.telegram import render
from bot.telegram.trouble import TROUBLE, kind
from bot.telegram.turn import Turn, begin, end
from storage import Repo, Store

logger = logging.getLogger(__name__)

MAX_CONCURRENT = 256


class _Failed(Exception):
    """A handler raised: PTB's error handler has logged it; undo the update's effects."""


def chat_key(update: object) -> int | None:
    """Which lane an update waits in: its chat (or, without one, its sender)."""
    if not isinstance(update, Update):
        return None
    if update.effective_chat is not None:
        return update.effective_chat.id
    return update.effective_user.id if update.effective_user is not None else None


class ChatLanes(BaseUpdateProcessor):
    metrics: Metrics = DISCARD

    def __init__(self, store: Store, *, max_concurrent: int = MAX_CONCURRENT) -> None:
        super().__init__(max_concurrent)
        self.store = store
        self.wake: Callable[[Iterable[int]], None] = lambda _chats: None
        """Starts delivery for chats whose replies were just committed (the sender's)."""
        self.claim: Callable[[Repo, list[int]], None] = lambda _repo, _chats: None
        """Hands the sender the first rows to deliver, read in the update's own transaction
        (the sender's): a tap then costs no transaction of its own to start delivery."""
        self.answer: Callable[[str, str | None], Awaitable[None]] = _no_answer
        """Answers a button press once its update is committed (the sender's)."""
        self.finished: Callable[[int, BaseException | None], None] | None = None
        """Told when an update's effects are committed (or could not be): polling moves its
        offset, a webhook answers Telegram."""
        self._locks: dict[int | None, asyncio.Lock] = {}
        self._users: dict[int | None, int] = {}
        self._faulted: dict[int, BaseException] = {}
        """Updates whose handler hit a database fault: retried, never apologised for."""

    async def initialize(self) -> None:
        """Nothing to set up: locks are made as chats appear."""

    async def shutdown(self) -> None:
        """Nothing to tear down."""

    async def on_error(self, update: object, context: Any) -> None:
        """PTB's first error handler: a database fault (full disk, database away) is told once
        and ends the update unapplied, so it comes again; other errors go on to the router's.

        Without this, the router's handler would log a traceback and the lane would commit an
        apology with the update's claim: the tap would be lost once the database is back.
        """
        error = getattr(context, "error", None)
        if error is None or kind(error) is None:
            return
        if isinstance(update, Update):
            self._faulted[update.update_id] = error
        else:
            TROUBLE.failed(error)  # a job: its next run finds the same rows
        raise ApplicationHandlerStop

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = chat_key(update)
        self.metrics.arrived(update)
        began = time.monotonic()
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        error: BaseException | None = None
        try:
            async with lock:
                await self._handle(update, coroutine)
        except Exception as exc:
            error = exc
            if not TROUBLE.failed(exc):  # a full disk or a lost database: told once
                logger.exception("update could not be committed; it will come again")
        else:
            TROUBLE.worked(began)
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]
            self.metrics.handled(update, error)
            if self.finished is not None and isinstance(update, Update):
                self.finished(update.update_id, error)

    async def _handle(self, update: object, coroutine: Awaitable[Any]) -> None:
        if not isinstance(update, Update):
            await coroutine
            return
        logger.debug("handling update %s", update.update_id)
        turn, token = begin(update)
        try:
            chats = await self._in_transaction(update, turn, coroutine)
        except _Failed:
            turn.toast(None)
            chats = self._apologise(update)
        finally:
            end(token)
        self.metrics.replying(update, chats)
        self.wake(chats)
        query = update.callback_query
        if query is not None:  # again on a redelivery: a kill may have come before the answer
            await self.answer(query.id, turn.toast_text)

    async def _in_transaction(
        self, update: Update, turn: Turn, coroutine: Awaitable[Any]
    ) -> list[int]:
        try:
            return await self._apply(update, turn, coroutine)
        finally:
            _discard(coroutine)  # never started (the database failed first): close it
            self._faulted.pop(update.update_id, None)

    async def _apply(self, update: Update, turn: Turn, coroutine: Awaitable[Any]) -> list[int]:
        # Handlers make no network calls (replies go to the outbox), so nothing else runs on
        # the event loop while this transaction is open.
        with self.store.transaction() as repo:
            key = chat_key(update)
            if key is not None:  # other processes on the same database wait for this chat
                repo.lock_chat(key)
            if not repo.claim_update(update.update_id):
                logger.info("update %s was handled before; not applied again", update.update_id)
                return [] if key is None else [key]  # its replies may still be waiting
            await coroutine
            fault = self._faulted.pop(update.update_id, None)
            if fault is not None:  # rolled back; Telegram sends the update again
                raise fault
            if turn.failed:
                raise _Failed
            chats = turn.queue(repo)
            self.claim(repo, chats)
            return chats

    def _apologise(self, update: Update) -> list[int]:
        turn = Turn(update)
        with self.store.transaction() as repo:
            if turn.private:
                turn.say(render.said("ERROR", turn.texts(repo)))
            repo.claim_update(update.update_id)
            return turn.queue(repo)


async def _no_answer(_query: str, _text: str | None) -> None:
    """Until the sender is wired in."""


def _discard(coroutine: Awaitable[Any]) -> None:
    close = getattr(coroutine, "close", None)
    if close is not None:
        close()
