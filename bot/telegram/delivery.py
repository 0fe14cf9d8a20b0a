"""The outbox sender: turns queued rows into Bot API calls, in order per chat.

One worker per chat with something to deliver takes that chat's oldest row, sends it and
marks it delivered; chats are served side by side, and `pacing.LanePacer` keeps the overall
pace and puts replies before bulk sends. After a crash, the rows that were committed but not
delivered are still there: the sweep at start (and every few seconds) picks them up, so a
person gets the next question without typing anything.

A kill between Telegram applying a call and the "delivered" commit (or an answer lost on the
way, or an instance whose lease ran out) makes the call again. For an edit that is harmless
(Telegram answers "message is not modified"). A send would show twice, so just before a send
leaves, once its turn with the pacer has come, the row commits that it is going
(`OutboxRepo.going`: `claims` goes up, and the highest id known then is its `probe_floor`).
A row taken again with `claims` above 0 may have been applied unheard of, and is probed
first; one a kill cut off while it waited its turn (under load most of them: sends queue
behind everyone's calls) never left, and is sent without a probe.

A bot's private chats share one counter of message ids: the person's messages and the bot's,
in every chat, take the next number. So a lost send X has an id above F, the floor its row
committed as it left (or the id of the person's message it replies to, or the chat's last
recorded id), and below U, the id of any send this process started after the probe began
(Telegram numbers in order). Ids the bot knows are not X: every id the outbox recorded, in
any chat, and the people's messages rows reply to in other chats (one of the row's own chat
may be the lost send itself, whose button the person pressed: it is tried first). The
sender edits the other ids, in this chat, to exactly the row's text and buttons (a file's
caption with editMessageCaption): "message is not modified" is the lost send, recorded as
delivered and not sent again; "not found" is an id of another chat, or none; "can't be
edited" the person's own message. Until a send of this process comes back with U, the
window ends as many unknown ids above the highest known one as there are uncertain sends
(`OutboxRepo.uncertain_sends`), plus `PROBE_IDS`; ids are tried from the row's place among
the uncertain sends outwards, as sends lost in one kill took ids in about their queue order.
Each id found not to be the send, among those given out before the probe began, is kept with
the row (`Outgoing.probed`): a probe cut short by a restart goes on where it stopped, so
however often the bot restarts, it asks about each such id once (ids above, at most
`PROBE_IDS` plus the uncertain sends, are asked again: a call applied late may take one).
Every ask is counted with the row, so a row makes at most `MAX_PROBES` edits in all, across
restarts, before it is sent; that send commits a new floor and a fresh count as it leaves.
The probe asks the likeliest id alone, then `PROBE_BATCH` at once.

What is left at-least-once: a send with no known F (a row first sent before any id was
known, as on a new database, and not a reply to a message); a lost send past that window
while this process sends nothing else, or behind more than `MAX_PROBES` unknown ids; an
answer lost after a timeout whose call Telegram applies later still, after the probe has
passed (a late call can take an id above U); and a call still in flight when its lease
(`LEASE`) runs out, so that another instance probes too early and sends. A normal first
try costs no extra call, and one commit: only rows with a send gone before are probed, and
a 429 (a definite "not applied") takes its count back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from telegram import Bot, InlineKeyboardMarkup, InputFile, Message
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot.metrics import DISCARD, Metrics
from bot.services.flow import Clock
from bot.telegram.pacing import GOING, LanePacer
from bot.telegram.trouble import TROUBLE
from storage import Repo, Store
from storage.outbox import FORGET, Outgoing

logger = logging.getLogger(__name__)

SWEEP_EVERY = 5.0
"""Seconds between looks for rows no worker has (after a restart, or waiting out a 429)."""
KEEP_DELIVERED = timedelta(days=2)
MAX_BACKOFF = timedelta(seconds=8)
"""Longest wait between tries of a row the Bot API failed (5xx, timeout, network): a reply
goes out at most this long after Telegram is back (tests/test_faults.py). It was 5 minutes,
so replies queued during a 30 s outage waited 20 s more after it."""
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
PROBE_IDS = 5
"""Unknown ids above every known one the probe tries before it sends, while no send of this
process has come back since it began (which bounds it)."""
PROBE_BATCH = 10
"""Ids the probe asks about at once after the likeliest one: asked one by one, each waiting
its turn among everyone's paced calls and a far-away Telegram's answer, a search of 30 took
15 s, and under kills every few seconds a person's introduction waited past 45 s; in rounds
of 5 it still took several short-lived processes."""
MAX_PROBES = 30
"""At most this many edits look for one lost send; then it is sent."""
REMEMBERED = 4096
"""Recent message ids (and sends) the sender keeps in memory for probes."""


class Taken(Exception):
    """The row's lease ran out while its send waited, and another instance took it over (or
    delivered it): this one must not send it too."""


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
        self._highest: int | None = None
        """The highest message id known, in any chat (None: not read from the database yet)."""
        self._seen: deque[int] = deque(maxlen=REMEMBERED)
        """Message ids seen since the start, newest last: sends, edits, people's messages."""
        self._loaded = False
        self._sends_started = 0
        self._sent: deque[tuple[int, int]] = deque(maxlen=REMEMBERED)
        """(number of the send, its message id) of this process's sends, in order of answer."""
        self._gone: set[int] = set()
        """Rows with a send on its way now (`_going`): a 429 for one takes its count back."""

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
                self._heard(row.payload.get("after"))
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
            except Exception as exc:  # the database is away: try again at the next sweep
                if not TROUBLE.failed(exc):
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
                    if row is not None:
                        self._heard(row.payload.get("after"))
                if row is None or (row.id != waited_for and not self._due(row)):
                    return  # no await since the read: a row committed later wakes a new worker
                wait = await self._deliver(row)
                if wait is not None:
                    if wait > MAX_WAIT_IN_WORKER:
                        return  # a long wait: the sweep comes back for it
                    waited_for = row.id
                    await asyncio.sleep(wait)
        except Exception as exc:
            if not TROUBLE.failed(exc):
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
        except RetryAfter as exc:  # nothing was applied: a send made is not one that may show
            return self._later(row, _seconds(exc.retry_after), unsent=row.id in self._gone)
        except Taken:
            logger.info("a %s to chat %s was left to another instance", row.kind, row.chat_id)
            return None
        except Forbidden:
            with self.store.transaction() as repo:
                dropped = repo.outbox.drop_chat(row.chat_id, "blocked")
                if self.on_blocked is not None:
                    self.on_blocked(repo, row.chat_id, dropped)
            logger.info("chat %s blocked the bot; its queued messages were dropped", row.chat_id)
            return None
        except BadRequest as exc:
            logger.warning("Telegram refused a %s (%s); skipped", row.kind, exc.message)
            self._done(row, None, "refused")
            return None
        except TelegramError as exc:  # network trouble or a 5xx: try again a little later
            logger.warning("%s not delivered (%s); will retry", row.kind, type(exc).__name__)
            backoff = min(MAX_BACKOFF.total_seconds(), 0.25 * 2 ** min(row.attempts, 12))
            return self._later(row, backoff)
        finally:
            self._gone.discard(row.id)
        self._done(row, message_id, "sent")
        return None

    def _done(self, row: Outgoing, message_id: int | None, outcome: str) -> None:
        """Mark the row delivered and, in the same transaction, read the chat's next one."""
        self._saw(message_id)
        with self.store.transaction() as repo:
            repo.outbox.delivered(
                row.id, message_id=message_id, outcome=outcome, forget=FORGET in row.payload
            )
            if outcome == "sent" and self.on_delivered is not None:
                self.on_delivered(repo, row, message_id)
            if not self._closing:  # a stopping sender takes nothing more
                ahead = repo.outbox.claim_next(row.chat_id, self.instance, LEASE)
                if ahead is not None:
                    self._heard(ahead.payload.get("after"))
                self._ahead[row.chat_id] = ahead
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
        return await self._text(row, limits, payload["text"], _markup(payload.get("markup")))

    async def _text(
        self,
        row: Outgoing,
        limits: dict[str, Any],
        text: str,
        markup: InlineKeyboardMarkup | None = None,
    ) -> int:
        return await self._once(
            row,
            limits,
            lambda message_id: self.bot.edit_message_text(
                text,
                chat_id=row.chat_id,
                message_id=message_id,
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
                rate_limit_args=limits,
            ),
            lambda going: self.bot.send_message(
                row.chat_id,
                text,
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
                rate_limit_args=going,
            ),
        )

    async def _once(
        self,
        row: Outgoing,
        limits: dict[str, Any],
        probe: Callable[[int], Awaitable[object]],
        send: Callable[[dict[str, Any]], Awaitable[Message]],
    ) -> int:
        """Make `row`'s send, unless a send that left before is found (`_sent_before` with
        `probe`): only a row with one gone is probed."""
        if row.claims > 0:
            found = await self._sent_before(row, probe)
            if found is not None:
                return found
        return await self._numbered(row, limits, send)

    # --- the probe for a send an earlier try may have made (see the module's docstring) ---

    def _floor(self, repo: Repo) -> int | None:
        """The highest message id known, in any chat: a floor for a send about to be made."""
        if not self._loaded:
            self._loaded = True
            known = [repo.outbox.highest_message_id(), self._highest]
            self._highest = max((i for i in known if i is not None), default=None)
        return self._highest

    def _saw(self, message_id: object) -> None:
        """Remember an id of a message of the bot's (a send, an edit, one a probe found)."""
        if isinstance(message_id, int) and not isinstance(message_id, bool):
            self._seen.append(message_id)
            self._heard(message_id)

    def _heard(self, message_id: object) -> None:
        """An id Telegram gave out before now (the bot's, or the person's a row replies to)."""
        if not isinstance(message_id, int) or isinstance(message_id, bool):
            return
        if self._highest is None or message_id > self._highest:
            self._highest = message_id

    async def _numbered(
        self,
        row: Outgoing,
        limits: dict[str, Any],
        send: Callable[[dict[str, Any]], Awaitable[Message]],
    ) -> int:
        """Make a send for `row`, which counts as one that may have reached Telegram from
        just before it leaves (`_going`), numbered in the order sends start: a probe that
        began before a send started knows that its id is above any id taken before (see
        `_bound`). `send(limits)` makes the call with those `rate_limit_args`."""
        self._sends_started += 1
        number = self._sends_started
        going = functools.partial(self._going, row)
        if isinstance(getattr(self.bot, "rate_limiter", None), LanePacer):
            limits = {**limits, GOING: going}  # the pacer calls it once the call's turn comes
        else:
            going()
        message = await send(limits)
        self._sent.append((number, message.message_id))
        self._saw(message.message_id)
        return message.message_id

    def _going(self, row: Outgoing) -> None:
        """Commit that a send of `row` may reach Telegram, with the floor of its id, before
        it leaves: a send a kill cut off while it waited its turn was never made, so it is
        sent after the restart without a probe; one that left is probed for, above that
        floor, with a fresh count of edits (a send made after a probe found none is the one
        a later probe must find)."""
        with self.store.transaction() as repo:
            if not repo.outbox.going(row.id, self._floor(repo), self.instance):
                raise Taken(row.id)
        self._gone.add(row.id)

    def _bound(self, began: int) -> int | None:
        """The lowest id of a send that started after the `began`-th: a send Telegram applied
        before that has a lower one (None: none has come back yet)."""
        return min((i for number, i in self._sent if number > began), default=None)

    async def _sent_before(
        self, row: Outgoing, probe: Callable[[int], Awaitable[object]]
    ) -> int | None:
        """The id of the message an earlier try of this row made, if the probe finds it; None:
        send it. `probe(id)` edits that id in the row's chat to the row's very content. Errors
        other than Bad Request (a 429, the network) propagate: the row waits and is probed
        again, never sent blind."""
        chat = row.chat_id
        with self.store.transaction() as repo:
            last = repo.outbox.last_message_id(chat)
            floors = [row.probe_floor, row.payload.get("after"), last]
            floor = max((int(i) for i in floors if i is not None), default=None)
            if floor is None:
                logger.info("a send to chat %s may show twice: no id known before it", chat)
                return None
            sent, replied = repo.outbox.known_ids(floor)
            unsure = repo.outbox.uncertain_sends()
        began = self._sends_started
        probed = set(row.probed_ids)  # tried by an earlier run of this probe: not the send
        above_asked = list(row.probed_above)  # asked by an earlier run above its top: counted

        def known(i: int) -> bool:
            # A message of this chat a row replies to stays a candidate: the person may have
            # pressed a button on the lost send itself.
            return i in sent or i in self._seen or i in probed or replied.get(i, chat) != chat

        top = max([floor, *sent, *replied, *(i for i in self._seen if i > floor)])
        self._heard(top)  # given out already: the floor of the send made if none is found
        window = [i for i in range(floor + 1, top + 1) if not known(i)]
        above, beyond = top, PROBE_IDS + max(len(unsure) - 1, 0)
        while beyond:  # as many unknown ids above as there are lost sends to share them
            above += 1
            if not known(above):
                window.append(above)
                beyond -= 1
        # Sends lost in one kill took ids in about the order their rows were queued: try this
        # row's place among them first, then outwards; a message of this chat before all.
        rank = unsure.index(row.id) if row.id in unsure else 0
        place = {i: n for n, i in enumerate(window)}
        order = sorted(
            window, key=lambda i: (replied.get(i) != chat, abs(place[i] - rank), place[i])
        )

        def candidates() -> Iterator[int]:
            for candidate in itertools.chain(order, itertools.count(above + 1)):
                bound = self._bound(began)
                if candidate > above and (bound is None or candidate >= bound):
                    return  # past the window, and no send of this process bounds the search
                if (bound is not None and candidate >= bound) or known(candidate):
                    continue  # another chat's probe may have found it meanwhile
                yield candidate

        tries, pending = row.probe_tries, candidates()
        while tries < MAX_PROBES:
            # A new search asks the likeliest id alone (most end there), then many at once; a
            # search cut short goes on in full rounds, as a process may live only seconds.
            size = 1 if tries == 0 else PROBE_BATCH
            batch = list(itertools.islice(pending, min(size, MAX_PROBES - tries)))
            if not batch:
                break
            tries += len(batch)
            answers = await asyncio.gather(*(probe(i) for i in batch), return_exceptions=True)
            found = self._probed(
                row, batch, answers, top=top, probed=probed, above_asked=above_asked
            )
            if found is not None:
                return found
        logger.debug("probe of chat %s: not sent before (%s tries)", chat, tries)
        return None

    def _probed(
        self,
        row: Outgoing,
        batch: list[int],
        answers: list[object],
        *,
        top: int,
        probed: set[int],
        above_asked: list[int],
    ) -> int | None:
        """Read one round of probe edits: the id of the row's lost send if one answered "not
        modified" (or was edited: an unrecorded message of this chat), else None; the misses
        are kept with the row. An error other than Bad Request (a 429, the network) is raised
        after that: the row waits and is probed again, never sent blind."""
        found, error = None, None
        for candidate, answer in zip(batch, answers, strict=True):
            if isinstance(answer, BadRequest) and NOT_MODIFIED in answer.message.lower():
                logger.info("a send to chat %s had reached Telegram already", row.chat_id)
                found = candidate if found is None else found
            elif isinstance(answer, BadRequest):
                # "not found": another chat's id (or none yet); "can't be edited": the
                # person's own message; "no text/caption": a message of another kind.
                # An id at most `top` was given out before this probe began, so the answer
                # stays true: kept, a probe cut short by a restart goes on from here. One
                # above may be given out later still (to a call applied late): asked again,
                # but counted, so that the probe ends within MAX_PROBES edits in all.
                (probed.add if candidate <= top else above_asked.append)(candidate)
            elif isinstance(answer, BaseException):
                error = answer if error is None else error
            else:  # an unrecorded bot message of this chat: it shows this row's content now
                logger.warning("probe of chat %s edited message %s", row.chat_id, candidate)
                found = candidate if found is None else found
        with self.store.transaction() as repo:
            repo.outbox.probed(row.id, frozenset(probed), tuple(above_asked))
        if found is not None:
            self._saw(found)
            return found
        if error is not None:
            raise error
        return None

    async def _file(self, row: Outgoing, limits: dict[str, Any]) -> int | None:
        if self.make_file is None:
            raise ValueError("no file maker configured")
        built = await self.make_file(row.chat_id, row.payload["recipe"])
        if built is None:
            return None
        if isinstance(built, str):
            return await self._text(row, limits, built)
        upload = InputFile(io.BytesIO(built.content), filename=built.filename)
        upload_with = self.bot.send_photo if built.photo else self.bot.send_document
        return await self._once(  # a document or photo is found by its caption, as a text is
            row,
            limits,
            lambda message_id: self.bot.edit_message_caption(
                chat_id=row.chat_id,
                message_id=message_id,
                caption=built.caption,
                rate_limit_args=limits,
            ),
            lambda going: upload_with(
                row.chat_id, upload, caption=built.caption, rate_limit_args=going
            ),
        )


def _markup(data: dict[str, Any] | None) -> InlineKeyboardMarkup | None:
    return None if data is None else InlineKeyboardMarkup.de_json(data, None)


def _seconds(value: object) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)  # type: ignore[arg-type]
