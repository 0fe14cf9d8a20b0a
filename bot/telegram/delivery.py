"""The outbox sender: turns queued rows into Bot API calls, in order per chat.

One worker per chat with something to deliver takes that chat's oldest row, sends it and
marks it delivered; chats are served side by side, and `pacing.LanePacer` keeps the overall
pace and puts replies before bulk sends. After a crash, the rows that were committed but not
delivered are still there: the sweep at start (and every few seconds) picks them up, so a
person gets the next question without typing anything.

A kill between Telegram applying a call and the "delivered" commit (or an answer lost on the
way, or an instance whose lease ran out) makes the call again. For an edit that is harmless
(Telegram answers "message is not modified"). A send would show twice, so a text send that
may have been made before (the row was claimed before and is still undelivered, see
`OutboxMessage.claims`) is probed first. In a private chat both sides' messages share one
increasing id counter. Let F be the highest id the bot knows in the chat: the newest id the
outbox recorded, or the person's message that caused the row. Only one bot message can come
after F unrecorded: this row's own lost send, because a chat's rows go out strictly in order
and each sent id is recorded before the next row goes. So the sender edits F+1, F+2, ... (at
most `PROBE_IDS`) to exactly the row's text and buttons: "message is not modified" means the
lost send is there (recorded as delivered, nothing sent); "message can't be edited" is the
person's own message (the next id is tried); anything else ends the probe and the row is sent.

What is left at-least-once: file rows (never probed: a document repeated after a kill shows
twice); a send with no known F (no earlier id recorded and no message that caused it, as a
check-in to a chat with no delivered row); a lost send more than `PROBE_IDS` ids past F, or
behind a message the person deleted (the probe stops at "not found"); and a call still in
flight when its lease (`LEASE`) runs out, so that another instance probes too early and sends.
A normal first try costs no extra call: only rows with `claims > 1` are probed, and a 429 (a
definite "not applied") does not count as a claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from telegram import Bot, InlineKeyboardMarkup, InputFile, Message
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot.metrics import DISCARD, Metrics
from bot.services.flow import Clock
from storage import Repo, Store
from storage.outbox import Outgoing

logger = logging.getLogger(__name__)

SWEEP_EVERY = 5.0
"""Seconds between looks for rows no worker has (after a restart, or waiting out a 429)."""
KEEP_DELIVERED = timedelta(days=2)
MAX_BACKOFF = timedelta(minutes=5)
LEASE = timedelta(seconds=15)
"""How long a row stays with the instance sending it; if that instance dies, another takes the
chat over after this (longer than any wait a worker does itself)."""
BULK_WORKERS = 16
"""Chats of a bulk wake delivered at once; more only wait on the pacer (30 a second)."""
CLOSE_GRACE = 10.0
"""Seconds a stopping bot gives the calls it has already made to come back."""
MAX_WAIT_IN_WORKER = 10.0
"""A chat's worker waits out shorter retries itself (keeping the chat's order); longer ones
are left to the sweep."""
NOT_MODIFIED = "message is not modified"
CANT_EDIT = "message can't be edited"
PROBE_IDS = 5
"""Message ids after the last known one that a send which may have been made is looked for
at; more than a few people rarely type between a tap and its reply."""


@dataclass(frozen=True)
class BuiltFile:
    """A file made from an outbox recipe, ready to upload."""

    content: bytes
    filename: str
    caption: str | None = None
    photo: bool = False
    log: str | None = None


MakeFile = Callable[[int, dict[str, Any]], Awaitable[BuiltFile | str | None]]
"""Builds the file a recipe describes for a chat; a str is sent as a message instead."""
Delivered = Callable[[Repo, Outgoing, int | None], None]
Blocked = Callable[[Repo, int, list[Outgoing]], None]


class Sender:
    metrics: Metrics = DISCARD

    def __init__(
        self,
        bot: Bot,
        store: Store,
        *,
        clock: Clock,
        make_file: MakeFile | None = None,
        on_delivered: Delivered | None = None,
        on_blocked: Blocked | None = None,
        instance: str = "nightlegs",
    ) -> None:
        self.bot = bot
        self.store = store
        self.clock = clock
        self.make_file = make_file
        self.on_delivered = on_delivered
        self.on_blocked = on_blocked
        self.instance = instance
        """Who leases outbox rows: several instances may share one database."""
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._ahead: dict[int, Outgoing | None] = {}
        self._closing = False
        self._backlog: deque[int] = deque()
        self._bulk_running = 0
        self._settled = asyncio.Event()
        self._settled.set()

    # --- starting work ------------------------------------------------------------------------

    def wake(self, chats: Iterable[int], *, bulk: bool = False) -> None:
        """Deliver what these chats have waiting (call after the rows are committed).

        `bulk`: thousands of chats at once (check-ins, the sweep after a restart). They wait
        in a backlog served by a few workers, so starting them never holds up the event loop
        (and with it someone's tap); the pacer sends at most 30 a second anyway.
        """
        if self._closing:
            return
        if bulk:
            self._backlog.extend(chats)
            self._settled.clear()
            self._feed_backlog()
            return
        for chat_id in chats:
            self._start(chat_id)

    def _start(self, chat_id: int, *, from_backlog: bool = False) -> bool:
        if chat_id in self._workers:
            return False
        self._settled.clear()
        task = asyncio.create_task(self._drain(chat_id), name=f"outbox-{chat_id}")
        self._workers[chat_id] = task
        if from_backlog:
            self._bulk_running += 1
            task.add_done_callback(self._bulk_done)
        return True

    def _feed_backlog(self) -> None:
        while self._backlog and self._bulk_running < BULK_WORKERS and not self._closing:
            self._start(self._backlog.popleft(), from_backlog=True)
        self._maybe_settled()

    def _bulk_done(self, _task: asyncio.Task[None]) -> None:
        self._bulk_running -= 1
        self._feed_backlog()

    def _maybe_settled(self) -> None:
        if not self._workers and not self._backlog:
            self._settled.set()

    def claim(self, repo: Repo, chats: Iterable[int]) -> None:
        """In the transaction that queued rows for `chats`: lease each idle chat's oldest row
        now, so its worker starts sending at once after the commit instead of opening a
        transaction to read it. Only once the commit succeeds is the row handed over."""
        for chat_id in chats:
            if chat_id in self._workers or chat_id in self._ahead or self._closing:
                continue  # a worker reads the chat's rows itself, in order
            row = repo.outbox.claim_next(chat_id, self.instance, LEASE)
            if row is not None:
                repo.after_commit(functools.partial(self._ahead.__setitem__, chat_id, row))

    async def answer(self, query_id: str, text: str | None) -> None:
        """Answer a button press now (it only stops the spinner: no outbox row needed).

        Awaited before the update counts as handled, so a kill before the answer leaves the
        update unconfirmed: it comes again and is answered then.
        """
        try:
            await self.bot.answer_callback_query(query_id, text=text)
        except TelegramError as exc:  # too old, or Telegram is away: nothing to keep
            logger.debug("button answer skipped: %s", type(exc).__name__)

    def sweep(self) -> int:
        """Wake every chat with deliverable rows; returns how many."""
        with self.store.transaction() as repo:
            chats = repo.outbox.waiting_chats(self.clock())
        self.wake(chats, bulk=True)
        return len(chats)

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep now and every few seconds, and forget old delivered rows, until `stop`."""
        pruned_at: datetime | None = None
        while not stop.is_set():
            try:
                self.sweep()
                now = self.clock()
                if pruned_at is None or now - pruned_at > timedelta(hours=1):
                    with self.store.transaction() as repo:
                        repo.outbox.prune(now - KEEP_DELIVERED)
                    pruned_at = now
            except Exception:  # the database is away: try again at the next sweep
                logger.exception("outbox sweep failed; trying again in %s s", SWEEP_EVERY)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=SWEEP_EVERY)

    async def settled(self) -> None:
        """Wait until no chat has a delivery in progress."""
        await self._settled.wait()

    async def close(self, grace: float = CLOSE_GRACE) -> None:
        """Let calls already made finish (up to `grace` seconds), start no new ones, then stop.

        A call Telegram has applied must be recorded as delivered: cut off, it would be
        made again after the restart, and a send would show twice. Rows not yet started stay
        in the outbox for the next start.
        """
        self._closing = True
        self._backlog.clear()
        workers = list(self._workers.values())
        if workers:
            await asyncio.wait(workers, timeout=grace)
        for task in workers:
            task.cancel()
        for task in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- one chat ---------------------------------------------------------------------------

    async def _drain(self, chat_id: int) -> None:
        waited_for: int | None = None
        try:
            while not self._closing:
                if chat_id in self._ahead:  # read with the last "delivered", one transaction
                    row = self._ahead.pop(chat_id)
                else:
                    with self.store.transaction() as repo:
                        row = repo.outbox.claim_next(chat_id, self.instance, LEASE)
                if row is None or (row.id != waited_for and not self._due(row)):
                    return  # no await since the read: a row committed later wakes a new worker
                wait = await self._deliver(row)
                if wait is not None:
                    if wait > MAX_WAIT_IN_WORKER:
                        return  # a long wait: the sweep comes back for it
                    waited_for = row.id
                    await asyncio.sleep(wait)
        except Exception:
            logger.exception("delivery to a chat failed; the sweep will try again")
        finally:
            self._ahead.pop(chat_id, None)
            del self._workers[chat_id]
            self._maybe_settled()

    def _due(self, row: Outgoing) -> bool:
        return row.not_before is None or row.not_before <= self.clock()

    async def _deliver(self, row: Outgoing) -> float | None:
        """Make the call for one row; None when done with it (sent or given up), else how
        many seconds to wait before trying it again (the row records it too)."""
        try:
            message_id = await self._call(row)
        except Forbidden:
            with self.store.transaction() as repo:
                dropped = repo.outbox.drop_chat(row.chat_id, "blocked")
                if self.on_blocked is not None:
                    self.on_blocked(repo, row.chat_id, dropped)
            logger.info("chat %s blocked the bot; its queued messages were dropped", row.chat_id)
            return None
        except RetryAfter as exc:  # nothing was applied: not a claim that may have been shown
            return self._later(row, _seconds(exc.retry_after), unsent=True)
        except BadRequest as exc:
            logger.warning("Telegram refused a %s (%s); skipped", row.kind, exc.message)
            self._done(row, None, "refused")
            return None
        except TelegramError as exc:  # network trouble or a 5xx: try again a little later
            logger.warning("%s not delivered (%s); will retry", row.kind, type(exc).__name__)
            backoff = min(MAX_BACKOFF.total_seconds(), 0.25 * 2 ** min(row.attempts, 12))
            return self._later(row, backoff)
        self._done(row, message_id, "sent")
        return None

    def _done(self, row: Outgoing, message_id: int | None, outcome: str) -> None:
        """Mark the row delivered and, in the same transaction, read the chat's next one."""
        with self.store.transaction() as repo:
            repo.outbox.delivered(row.id, message_id=message_id, outcome=outcome)
            if outcome == "sent" and self.on_delivered is not None:
                self.on_delivered(repo, row, message_id)
            if not self._closing:  # a stopping sender takes nothing more
                self._ahead[row.chat_id] = repo.outbox.claim_next(row.chat_id, self.instance, LEASE)
        self.metrics.delivered_row(row.chat_id, row.lane, row.kind, outcome)

    def _later(self, row: Outgoing, seconds: float, *, unsent: bool = False) -> float:
        with self.store.transaction() as repo:
            until = self.clock() + timedelta(seconds=seconds)
            repo.outbox.retry_later(row.id, until, unsent=unsent)
        return seconds

    async def _call(self, row: Outgoing) -> int | None:
        limits = {"lane": row.lane}
        match row.kind:
            case "send":
                return await self._send(row, limits)
            case "edit":
                return await self._edit(row, limits)
            case "file":
                return await self._file(row, limits)
        raise ValueError(f"unknown outbox kind {row.kind!r}")

    async def _edit(self, row: Outgoing, limits: dict[str, Any]) -> int | None:
        payload = row.payload
        try:
            result = await self.bot.edit_message_text(
                payload["text"],
                chat_id=row.chat_id,
                message_id=payload["message_id"],
                parse_mode=ParseMode.HTML,
                reply_markup=_markup(payload.get("markup")),
                rate_limit_args=limits,
            )
        except BadRequest as exc:
            if NOT_MODIFIED in exc.message.lower():
                return int(payload["message_id"])
            # Too old or gone: the person still needs to see it, so send it as a new message.
            logger.debug("edit refused (%s); sending instead", exc.message)
            return await self._send(row, limits)
        return result.message_id if isinstance(result, Message) else int(payload["message_id"])

    async def _send(self, row: Outgoing, limits: dict[str, Any]) -> int:
        """Send the row's text as a new message, unless an earlier try already did."""
        payload = row.payload
        markup = _markup(payload.get("markup"))
        if row.claims > 1:
            found = await self._sent_before(row, markup, limits)
            if found is not None:
                logger.info("a send to chat %s had reached Telegram already", row.chat_id)
                return found
        message = await self.bot.send_message(
            row.chat_id,
            payload["text"],
            parse_mode=ParseMode.HTML,
            reply_markup=markup,
            rate_limit_args=limits,
        )
        return message.message_id

    async def _sent_before(
        self, row: Outgoing, markup: InlineKeyboardMarkup | None, limits: dict[str, Any]
    ) -> int | None:
        """The id of the message an earlier try of this row made, if the probe finds it (see
        the module's docstring); None: send it. Errors other than Bad Request (a 429, the
        network) propagate: the row waits and is probed again, never sent blind."""
        with self.store.transaction() as repo:
            recorded = repo.outbox.last_message_id(row.chat_id)
        known = [i for i in (recorded, row.payload.get("after")) if i is not None]
        if not known:
            return None
        floor = int(max(known))
        for message_id in range(floor + 1, floor + 1 + PROBE_IDS):
            try:
                await self.bot.edit_message_text(
                    row.payload["text"],
                    chat_id=row.chat_id,
                    message_id=message_id,
                    parse_mode=ParseMode.HTML,
                    reply_markup=markup,
                    rate_limit_args=limits,
                )
            except BadRequest as exc:
                reason = exc.message.lower()
                if NOT_MODIFIED in reason:
                    return message_id
                if CANT_EDIT not in reason:  # "not found": nothing sent past the person's
                    logger.debug("probe of chat %s ends: %s", row.chat_id, exc.message)
                    return None
            else:  # a bot message past the floor that was not this row's: should not be
                logger.warning("probe of chat %s edited message %s", row.chat_id, message_id)
                return None
        return None

    async def _file(self, row: Outgoing, limits: dict[str, Any]) -> int | None:
        if self.make_file is None:
            raise ValueError("no file maker configured")
        built = await self.make_file(row.chat_id, row.payload["recipe"])
        if built is None:
            return None
        if isinstance(built, str):
            message = await self.bot.send_message(
                row.chat_id, built, parse_mode=ParseMode.HTML, rate_limit_args=limits
            )
            return message.message_id
        upload = InputFile(io.BytesIO(built.content), filename=built.filename)
        if built.photo:
            message = await self.bot.send_photo(
                row.chat_id, upload, caption=built.caption, rate_limit_args=limits
            )
        else:
            message = await self.bot.send_document(
                row.chat_id, upload, caption=built.caption, rate_limit_args=limits
            )
        return message.message_id


def _markup(data: dict[str, Any] | None) -> InlineKeyboardMarkup | None:
    return None if data is None else InlineKeyboardMarkup.de_json(data, None)


def _seconds(value: object) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)  # type: ignore[arg-type]
