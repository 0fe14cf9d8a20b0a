"""Prometheus metrics: what an operator needs to see without reading logs.

Each running bot owns one `Metrics` with its own `CollectorRegistry` (never the global
default), so tests and benchmarks can run several bots in one process. The parts that do the
work (the lanes, the sender, the pacer, the diary and follow-up services) hold a `metrics`
attribute, `DISCARD` until the application wires its own in; each instrumentation point is one
call. Labels are few and fixed (update kinds, lanes, Bot API methods and error codes): never a
chat id, a user id or a text.

The outbox backlog and its oldest row's age are read from the database when scraped (one
indexed query), so they are right across restarts and across instances sharing a database.
Scraping runs in a worker thread: a slow or absent database never holds up the event loop.
`serve` is a small HTTP server for `/metrics` in polling mode (`METRICS_LISTEN`); in webhook
mode the webhook server answers `/metrics` too (`endpoint`). starlette and uvicorn load only
when one of them is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Generator, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine

from bot.settings import METRICS_PATH
from storage.models import OutboxMessage
from storage.outbox import LANES, REPLY

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from storage import Store

logger = logging.getLogger(__name__)

SCRAPE_WITHIN = 10.0
"""Seconds a scrape may take (the database included) before it is answered 503."""
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
DELAY_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, 4 * 3600.0)
LATE_AFTER = timedelta(minutes=5)
"""A check-in queued later than this after its due moment counts as late (the dispatcher
runs every 30 s, so on a healthy bot none is)."""
PENDING_TAPS = 10_000
"""Taps waiting for their first reply that are remembered; past that the oldest are dropped
(a reply that never comes, e.g. to a chat that blocked the bot, must not grow memory)."""
DBAPI_ERRORS = (
    "OperationalError",
    "IntegrityError",
    "ProgrammingError",
    "DataError",
    "InternalError",
    "NotSupportedError",
    "InterfaceError",
    "DatabaseError",
)
"""PEP 249's error classes: the `error` label of database errors is one of these or "other"."""


def update_kind(update: object) -> str:
    """The only label an update gets: "command", "message", "callback" or "other"."""
    callback = getattr(update, "callback_query", None)
    if callback is not None:
        return "callback"
    message = getattr(update, "message", None)
    if message is not None:
        text = getattr(message, "text", None) or ""
        return "command" if text.startswith("/") else "message"
    return "other"


def api_error_code(exc: BaseException) -> str:
    """The Bot API's error as a low-cardinality code: the HTTP status PTB's exception stands
    for, "timeout" or "network" (which includes Telegram's 5xx answers)."""
    from telegram import error  # noqa: PLC0415 - bot.services import this module too

    for kind, code in (
        (error.RetryAfter, "429"),
        (error.InvalidToken, "401"),
        (error.Forbidden, "403"),
        (error.Conflict, "409"),
        (error.BadRequest, "400"),
        (error.TimedOut, "timeout"),
        (error.NetworkError, "network"),
    ):
        if isinstance(exc, kind):
            return code
    return "other"


def database_error(exc: BaseException | None) -> str:
    """The PEP 249 class of a database error (by name, so any driver's), else "other"."""
    for cls in type(exc).__mro__ if exc is not None else ():
        if cls.__name__ in DBAPI_ERRORS:
            return cls.__name__
    return "other"


class Metrics:
    """One bot's metrics, on a registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.updates = Counter(
            "nightlegs_updates",
            "Telegram updates handled, by kind (command, message, callback, other).",
            ["kind"],
            registry=r,
        )
        self.updates_failed = Counter(
            "nightlegs_updates_failed",
            "Updates whose transaction failed (Telegram delivers them again).",
            registry=r,
        )
        self.tap_latency = Histogram(
            "nightlegs_tap_to_reply_seconds",
            "From an update's arrival to its first reply delivered to Telegram.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.delivered = Counter(
            "nightlegs_outbox_delivered",
            "Outbox rows done with, by lane, kind (send, edit, file) and outcome (sent, refused).",
            ["lane", "kind", "outcome"],
            registry=r,
        )
        self.api_errors = Counter(
            "nightlegs_botapi_errors",
            "Bot API calls that failed, by method and code (400, 401, 403, 409, 429, "
            "timeout, network, other).",
            ["method", "code"],
            registry=r,
        )
        self.retry_after = Counter(
            "nightlegs_botapi_retry_after",
            "429 answers: Telegram asked the bot to wait.",
            registry=r,
        )
        self.retry_after_seconds = Counter(
            "nightlegs_botapi_retry_after_seconds",
            "Seconds Telegram's 429 answers asked the bot to wait, in all.",
            registry=r,
        )
        self.checkins_due = Counter(
            "nightlegs_checkins_due",
            "Diary check-ins opened because their moment came.",
            registry=r,
        )
        self.checkins_sent = Counter(
            "nightlegs_checkins_sent",
            "Diary check-ins queued for sending (reminder: a snoozed one asked again).",
            ["reminder"],
            registry=r,
        )
        self.checkins_late = Counter(
            "nightlegs_checkins_late",
            f"Check-ins queued more than {int(LATE_AFTER.total_seconds())} s after their "
            "due moment.",
            registry=r,
        )
        self.checkin_delay = Histogram(
            "nightlegs_checkin_delay_seconds",
            "From a check-in's due moment to its being queued for sending.",
            buckets=DELAY_BUCKETS,
            registry=r,
        )
        self.followups_sent = Counter(
            "nightlegs_followups_sent",
            "Follow-ups claimed and queued for sending.",
            registry=r,
        )
        self.database_errors = Counter(
            "nightlegs_database_errors",
            "Errors raised by the database driver, by PEP 249 class.",
            ["error"],
            registry=r,
        )
        self._arrivals: dict[int, float] = {}
        self._pending: dict[int, float] = {}
        self.port: int | None = None
        """The port `serve` listens on, once bound."""

    # --- updates and the time to their reply ------------------------------------------------

    def arrived(self, update: object) -> None:
        """An update reached its lane (before it waits for the chat's earlier ones)."""
        update_id = getattr(update, "update_id", None)
        if isinstance(update_id, int):
            self._arrivals[update_id] = time.monotonic()

    def replying(self, update: object, chats: Iterable[int]) -> None:
        """The update's replies to `chats` are committed: the clock runs until the first of
        them is delivered (an earlier unanswered tap of the chat keeps its own start)."""
        started = self._arrivals.pop(getattr(update, "update_id", None), None)  # type: ignore[arg-type]
        if started is None:
            return
        for chat in chats:
            self._pending.setdefault(chat, started)
        while len(self._pending) > PENDING_TAPS:
            del self._pending[next(iter(self._pending))]

    def handled(self, update: object, error: BaseException | None) -> None:
        """The update is done with: count it (and its failure)."""
        self._arrivals.pop(getattr(update, "update_id", None), None)  # type: ignore[arg-type]
        self.updates.labels(kind=update_kind(update)).inc()
        if error is not None:
            self.updates_failed.inc()

    def delivered_row(self, chat_id: int, lane: str, kind: str, outcome: str) -> None:
        """An outbox row is done with; a reply's delivery ends its tap's wait."""
        self.delivered.labels(lane=lane, kind=kind, outcome=outcome).inc()
        if lane == REPLY and outcome == "sent":
            started = self._pending.pop(chat_id, None)
            if started is not None:
                self.tap_latency.observe(time.monotonic() - started)

    # --- the Bot API -------------------------------------------------------------------------

    def api_error(self, method: str, exc: BaseException) -> None:
        self.api_errors.labels(method=method, code=api_error_code(exc)).inc()

    def waited(self, method: str, exc: BaseException, seconds: float) -> None:
        """A 429: counted as an error of its method, and as a wait of `seconds`."""
        self.api_error(method, exc)
        self.retry_after.inc()
        self.retry_after_seconds.inc(max(seconds, 0.0))

    # --- check-ins and follow-ups ------------------------------------------------------------

    def checkin_queued(self, due_at: datetime, now: datetime, *, reminder: bool) -> None:
        self.checkins_sent.labels(reminder="yes" if reminder else "no").inc()
        if reminder:
            return  # a snoozed check-in is due again at its own moment, not `due_at`
        delay = now - due_at
        self.checkin_delay.observe(max(delay.total_seconds(), 0.0))
        if delay > LATE_AFTER:
            self.checkins_late.inc()

    # --- the database ------------------------------------------------------------------------

    def watch(self, store: Store, clock: Callable[[], datetime] | None = None) -> None:
        """Count the database errors of `store`'s engine and report its outbox when scraped."""
        event.listen(store.engine, "handle_error", self._on_database_error)
        self.registry.register(OutboxCollector(store.engine, clock or _utc_now))

    def _on_database_error(self, context: Any) -> None:
        self.database_errors.labels(error=database_error(context.original_exception)).inc()

    def unwatch(self, store: Store) -> None:
        with contextlib.suppress(Exception):
            event.remove(store.engine, "handle_error", self._on_database_error)

    # --- serving -----------------------------------------------------------------------------

    def with_process(self) -> Metrics:
        """Add the process's CPU, memory and Python version (Linux; read when scraped)."""
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        return self

    def scrape(self) -> bytes:
        """The text exposition of every metric (blocking: the outbox is read)."""
        return generate_latest(self.registry)

    async def endpoint(self, _request: Request) -> Response:
        """The starlette endpoint for `GET /metrics`."""
        from starlette.responses import PlainTextResponse, Response  # noqa: PLC0415

        try:
            body = await asyncio.wait_for(asyncio.to_thread(self.scrape), SCRAPE_WITHIN)
        except TimeoutError:
            return PlainTextResponse("metrics took too long", status_code=503)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    def listen(self, host: str, port: int) -> socket.socket:
        """Bind host:port for `serve` (raises OSError when it is taken); `self.port` is the
        port bound (port 0 picks a free one)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        logger.info("metrics: listening on %s:%s%s", host, self.port, METRICS_PATH)
        return sock

    async def serve(self, sock: socket.socket, stop: asyncio.Event) -> None:
        """Answer `GET /metrics` on a socket from `listen` until `stop` (METRICS_LISTEN)."""
        import uvicorn  # noqa: PLC0415 - loaded only when metrics are served
        from starlette.applications import Starlette  # noqa: PLC0415
        from starlette.routing import Route  # noqa: PLC0415

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Generator[None, None, None]:
                yield  # the bot's own stop event ends it

        app = Starlette(routes=[Route(METRICS_PATH, self.endpoint, methods=["GET"])])
        config = uvicorn.Config(
            app,
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=2,
        )
        server = Server(config)
        serving = asyncio.create_task(server.serve(sockets=[sock]), name="metrics-server")
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            server.should_exit = True
            try:
                await serving
            finally:
                sock.close()


class OutboxCollector(Collector):
    """Reads, when scraped, how many outbox rows wait in each lane and how old the oldest is;
    `nightlegs_database_up` says whether that read worked."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.clock = clock

    def describe(self) -> list[GaugeMetricFamily]:
        return list(self._families())

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "nightlegs_outbox_backlog",
                "Outbox rows not delivered yet, by lane (read from the database when scraped).",
                labels=["lane"],
            ),
            GaugeMetricFamily(
                "nightlegs_outbox_oldest_age_seconds",
                "Age of the oldest undelivered outbox row (0 when there is none).",
            ),
            GaugeMetricFamily(
                "nightlegs_database_up",
                "1 when the scrape could read the database, else 0.",
            ),
        )

    def collect(self) -> Iterable[GaugeMetricFamily]:
        backlog, oldest, up = self._families()
        table = OutboxMessage.__table__
        query = (
            select(table.c.lane, func.count(), func.min(table.c.created_at))
            .where(table.c.delivered_at.is_(None))
            .group_by(table.c.lane)
        )
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(query).all()
        except Exception as exc:
            logger.warning("metrics: the outbox could not be read (%s)", type(exc).__name__)
            up.add_metric([], 0)
            return [up]
        counts = dict.fromkeys(LANES, 0)
        first: datetime | None = None
        for lane, count, created in rows:
            counts[lane] = counts.get(lane, 0) + int(count)
            if created is not None and (first is None or created < first):
                first = created
        for lane, count in counts.items():
            backlog.add_metric([lane], count)
        age = 0.0 if first is None else max((self.clock() - first).total_seconds(), 0.0)
        oldest.add_metric([], age)
        up.add_metric([], 1)
        return [backlog, oldest, up]


def _utc_now() -> datetime:
    return datetime.now(UTC)


DISCARD = Metrics()
"""What the parts count into until an application wires its own: nobody scrapes it."""
