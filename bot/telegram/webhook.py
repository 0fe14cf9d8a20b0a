"""Webhook mode: Telegram posts each update to us; we answer 200 only once it is committed.

A thin Starlette app served by uvicorn inside the bot's own event loop:

- `POST <path of WEBHOOK_URL>`: the secret header is checked first, in constant time (a
  missing, wrong, repeated or overlong one gets 403 before the body is read, and nothing
  changes); then the body, at most `MAX_BODY` bytes (413 on Content-Length and while reading);
  then JSON (400). The update goes on PTB's update queue and is handled in its chat's lane
  (`lanes.ChatLanes`) like a polled one. The response waits for the lane's report
  (`completion.Completions`): 200 once the update's effects, its claim and its outbox rows
  are committed (or it was committed before: a redelivery changes nothing), 500 if the
  transaction failed and 503 if it took too long, so that Telegram delivers it again.
- Any other method on that path: 405.
- `GET /healthz`: 200 when `SELECT 1` goes through the store, 503 when it does not.
- `GET /metrics`: the bot's Prometheus metrics (`bot.metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import uvicorn
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from telegram import Update
from telegram.ext import Application

from bot.metrics import Metrics
from bot.settings import HEALTH_PATH, METRICS_PATH
from bot.telegram.completion import Completions
from storage import Store

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_SECRET = 256
"""Telegram's longest secret_token; a longer header is refused without comparing it."""
MAX_BODY = 1024 * 1024
"""Bytes of one update's JSON: Telegram's updates are a few kilobytes."""
ANSWER_WITHIN = 50.0
"""Seconds an update may take to commit before we answer 503 (Telegram then sends it again)."""
HEALTH_WITHIN = 5.0
"""Seconds the health check waits for the database."""
GRACEFUL_SHUTDOWN = 10.0
"""Seconds requests in flight get to finish when the bot stops."""


class _TooLarge(Exception):
    pass


def ping(store: Store) -> None:
    """`SELECT 1` on a connection of the store's pool; raises when the database is away."""
    with store.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def webhook_app(
    *,
    path: str,
    secret: str,
    handle: Callable[[Update], Awaitable[BaseException | None]],
    parse: Callable[[dict[str, Any]], Update],
    healthy: Callable[[], Awaitable[bool]],
    max_body: int = MAX_BODY,
    metrics: Metrics | None = None,
) -> Starlette:
    """The ASGI app. `handle` queues an update and returns its lane's result (None: committed);
    it raises TimeoutError when the update took too long."""
    expected = secret.encode("ascii")

    def authorised(request: Request) -> bool:
        given = request.headers.getlist(SECRET_HEADER)
        if len(given) != 1 or len(given[0]) > MAX_SECRET:
            return False
        return hmac.compare_digest(given[0].encode("latin-1"), expected)

    async def receive_update(request: Request) -> Response:
        if not authorised(request):
            return PlainTextResponse("Forbidden", status_code=403)
        try:
            body = await _read_body(request, max_body)
        except _TooLarge:
            return PlainTextResponse("Payload Too Large", status_code=413)
        except ValueError:
            return PlainTextResponse("Bad Request: Content-Length", status_code=400)
        except ClientDisconnect:
            return PlainTextResponse("Bad Request: incomplete body", status_code=400)
        try:
            data = json.loads(body)
        except ValueError:
            return PlainTextResponse("Bad Request: not JSON", status_code=400)
        update_id = data.get("update_id") if isinstance(data, dict) else None
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            return PlainTextResponse("Bad Request: not an update", status_code=400)
        try:
            update = parse(data)
        except Exception:
            logger.warning("update %s could not be read; refused", update_id)
            return PlainTextResponse("Bad Request: not an update", status_code=400)
        try:
            error = await handle(update)
        except TimeoutError:
            logger.warning("update %s not committed in time; Telegram will resend it", update_id)
            return PlainTextResponse("Service Unavailable", status_code=503)
        if error is not None:
            return PlainTextResponse("Internal Server Error", status_code=500)
        return Response(status_code=200)

    async def health(_request: Request) -> Response:
        if await healthy():
            return PlainTextResponse("ok")
        return PlainTextResponse("database unreachable", status_code=503)

    app = Starlette(
        routes=[
            Route(path, receive_update, methods=["POST"]),
            Route(HEALTH_PATH, health, methods=["GET"]),
        ]
    )
    if metrics is not None:
        app.router.routes.append(Route(METRICS_PATH, metrics.endpoint, methods=["GET"]))
    app.router.redirect_slashes = False
    return app


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing more than `limit` bytes: by Content-Length, and while reading."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise ValueError("bad Content-Length")
        if int(declared) > limit:
            raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class _Server(uvicorn.Server):
    """uvicorn, minus its signal handlers (the bot's own stop event ends it)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class Webhook:
    """Receives updates over HTTP for one PTB application until its stop event is set."""

    def __init__(
        self,
        application: Application,  # type: ignore[type-arg]
        store: Store,
        completions: Completions,
        *,
        url: str,
        path: str,
        secret: str,
        host: str,
        port: int,
        max_body: int = MAX_BODY,
        answer_within: float = ANSWER_WITHIN,
        metrics: Metrics | None = None,
    ) -> None:
        self.application = application
        self.store = store
        self.completions = completions
        self.url = url
        self.secret = secret
        self.host = host
        self.port = port
        """The port listened on (the one picked, once bound, when asked for port 0)."""
        self.answer_within = answer_within
        self.app = webhook_app(
            path=path,
            secret=secret,
            handle=self.handle,
            parse=self.parse,
            healthy=self.healthy,
            max_body=max_body,
            metrics=metrics,
        )

    def parse(self, data: dict[str, Any]) -> Update:
        update = Update.de_json(data, self.application.bot)
        assert update is not None
        return update

    async def handle(self, update: Update) -> BaseException | None:
        """Queue the update; wait until its lane reports it committed (None) or failed."""
        future = self.completions.expect(update.update_id)
        try:
            await self.application.update_queue.put(update)
            return await asyncio.wait_for(asyncio.shield(future), timeout=self.answer_within)
        finally:
            self.completions.forget(update.update_id, future)

    async def healthy(self) -> bool:
        try:
            await asyncio.wait_for(asyncio.to_thread(ping, self.store), timeout=HEALTH_WITHIN)
        except Exception as exc:
            logger.warning("health check: the database is unreachable (%s)", type(exc).__name__)
            return False
        return True

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.create_server((self.host, self.port), family=family, backlog=2048)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        return sock

    async def run(self, stop: asyncio.Event) -> None:
        """Listen, point Telegram at WEBHOOK_URL, serve until `stop`, then finish what is in
        flight (for up to `GRACEFUL_SHUTDOWN` seconds)."""
        sock = self._bind()
        config = uvicorn.Config(
            self.app,
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,  # the bot's logging (with its redaction) stays as it is
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
        )
        server = _Server(config)
        serving = asyncio.create_task(server.serve(sockets=[sock]), name="webhook-server")
        try:
            logger.info("webhook: listening on %s:%s", self.host, self.port)
            # Listening first, so that Telegram's first post finds us.
            await self.application.bot.set_webhook(
                self.url, secret_token=self.secret, allowed_updates=Update.ALL_TYPES
            )
            stopping = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
        finally:
            server.should_exit = True
            try:
                await serving  # re-raises what ended the server early
            finally:
                sock.close()
