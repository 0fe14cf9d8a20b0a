"""Webhook mode end to end: the real PTB application serving its webhook on 127.0.0.1, posted
to as Telegram would (aiohttp, or raw HTTP where the exact bytes matter), with the Bot API
stand-in for what the bot sends. Every test runs on SQLite and on PostgreSQL.

The stand-in does not deliver webhooks itself: its `feed_*` and `press` only build the update
(and make its button answerable); the test posts it. A 200 means committed, so the database
is checked right after each answer, with no waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from bot.app import Core, build_core
from bot.settings import SettingsError, load_settings
from bot.telegram import render as views
from bot.telegram.app import serve, wiring
from bot.telegram.keys import MenuKey, encode
from bot.telegram.turn import plain
from bot.telegram.webhook import MAX_BODY, SECRET_HEADER
from storage.models import ProcessedUpdate
from tests.botapi_stub import BotApiStub, SentMessage

CHAT = 4242
SECRET = "nightlegs-Webhook_secret-0123456789"
PATH = "/telegram/nightlegs-hook"
PUBLIC_URL = f"https://bot.example.test{PATH}"
DEADLINE = 10.0


def _label(screen: views.Screen, key: MenuKey) -> str:
    assert screen.markup is not None
    data = encode(key)
    for row in screen.markup.inline_keyboard:
        for button in row:
            if button.callback_data == data:
                return button.text
    raise LookupError(data)


CONSENT = _label(views.INTRO, MenuKey("consent"))


@dataclass
class WebhookBot:
    """The bot in webhook mode, in this event loop, listening on a free port of 127.0.0.1."""

    api: BotApiStub
    database_url: str
    core: Core | None = None
    application: Any = None
    session: aiohttp.ClientSession | None = None
    _task: asyncio.Task[None] | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> WebhookBot:
        mark = self.api.mark()
        settings = load_settings(
            _env_file=None,
            telegram_bot_token=self.api.token,
            telegram_api_url=self.api.root,
            database_url=self.database_url,
            webhook_url=PUBLIC_URL,
            webhook_secret=SECRET,
            webhook_listen="127.0.0.1:0",
        )
        self.core = build_core(settings)
        self._task = asyncio.create_task(
            serve(settings, self.core, self._stop, on_ready=self._ready)
        )
        # setWebhook comes once the server listens: from then on, posts are answered.
        await self.api.wait_for_call("setWebhook", after=mark, timeout=DEADLINE)
        self.session = aiohttp.ClientSession()
        return self

    def _ready(self, application: Any) -> None:
        self.application = application

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, timeout=DEADLINE)
        if self.core is not None:
            self.core.store.dispose()

    @property
    def port(self) -> int:
        webhook = wiring(self.application).webhook
        assert webhook is not None
        return webhook.port

    def url(self, path: str = PATH) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def post(self, update: dict[str, Any], *, headers: dict[str, str] | None = None) -> int:
        """Post an update as Telegram does; the HTTP status."""
        assert self.session is not None
        sent = {SECRET_HEADER: SECRET} if headers is None else headers
        async with self.session.post(
            self.url(), json=update, headers=sent, timeout=aiohttp.ClientTimeout(DEADLINE)
        ) as response:
            await response.read()
            return response.status

    async def request(self, method: str, path: str = PATH, **kwargs: Any) -> int:
        assert self.session is not None
        async with self.session.request(
            method, self.url(path), timeout=aiohttp.ClientTimeout(DEADLINE), **kwargs
        ) as response:
            await response.read()
            return response.status

    async def settled(self) -> None:
        """Wait until the outbox sender has delivered everything committed so far."""
        await asyncio.wait_for(wiring(self.application).sender.settled(), timeout=DEADLINE)

    def processed(self, update: dict[str, Any]) -> bool:
        assert self.core is not None
        with self.core.store.transaction() as repo:
            return repo.is_processed(int(update["update_id"]))

    def user_id(self, chat: int = CHAT) -> int | None:
        assert self.core is not None
        with self.core.store.transaction() as repo:
            info = repo.find_user("telegram", str(chat))
            return None if info is None else info.id


@pytest.fixture
async def api() -> AsyncIterator[BotApiStub]:
    async with BotApiStub() as stub:
        yield stub


@pytest.fixture
async def hook(api: BotApiStub, database_url: str) -> AsyncIterator[WebhookBot]:
    running = await WebhookBot(api, database_url).start()
    try:
        yield running
    finally:
        await running.stop()
    assert api.unanswered_callbacks() == [], "a button press was left spinning"
    api.assert_no_violations()


def sent_since(api: BotApiStub, mark: int) -> list[str]:
    return [c.method for c in api.calls[mark:] if c.method.startswith(("send", "edit", "answer"))]


def texts(api: BotApiStub, chat: int = CHAT) -> list[str]:
    return [m.plain_text or "" for m in api.messages(chat)]


# --- start ---------------------------------------------------------------------------------------


async def test_start_sets_the_webhook_with_the_secret(hook: WebhookBot, api: BotApiStub) -> None:
    [call] = api.calls_of("setWebhook")
    assert call.ok
    assert call.params["url"] == PUBLIC_URL
    assert call.params["secret_token"] == SECRET
    assert "message" in call.params["allowed_updates"]
    assert "callback_query" in call.params["allowed_updates"]
    assert api.calls_of("getUpdates") == [] and api.calls_of("deleteWebhook") == []


# --- an update in, its reply out -----------------------------------------------------------------


async def test_a_tap_is_committed_before_the_200_and_its_reply_delivered(
    hook: WebhookBot, api: BotApiStub
) -> None:
    start = api.feed_message(CHAT, "/start")
    assert await hook.post(start) == 200
    assert hook.processed(start), "answered 200 before the update was committed"
    await hook.settled()
    assert texts(api) == [plain(views.INTRO.text)]

    mark = api.mark()
    tap = await api.press(CHAT, CONSENT)
    assert await hook.post(tap) == 200
    assert hook.processed(tap) and hook.user_id() is not None  # the consent is committed
    await hook.settled()
    assert "answerCallbackQuery" in sent_since(api, mark)
    shown: list[SentMessage] = api.messages(CHAT)
    assert len(shown) == 2
    assert "Agreed" in (shown[0].plain_text or "")  # the introduction, edited
    assert shown[1].has_inline_keyboard  # the first question of the check


async def test_a_redelivered_update_is_applied_once(hook: WebhookBot, api: BotApiStub) -> None:
    start = api.feed_message(CHAT, "/start")
    assert await hook.post(start) == 200
    await hook.settled()
    tap = await api.press(CHAT, CONSENT)
    # Telegram resends when it saw no answer: at once (both in flight) and later.
    assert await asyncio.gather(hook.post(tap), hook.post(tap)) == [200, 200]
    assert await hook.post(tap) == 200
    await hook.settled()
    answers = api.calls_of("answerCallbackQuery")
    # Answered once; a redelivery is answered again in case a kill came before the first
    # answer, which Telegram refuses harmlessly when it had one.
    assert [c.ok for c in answers].count(True) == 1
    assert all("query is too old" in (c.description or "") for c in answers if not c.ok)
    api.violations[:] = [v for v in api.violations if "query is too old" not in v]
    assert len(api.calls_of("editMessageText")) == 1  # the introduction, to "Agreed"
    assert len(api.messages(CHAT)) == 2  # that, and the first question


async def test_an_update_that_cannot_commit_gets_500_and_its_resend_is_applied(
    hook: WebhookBot, api: BotApiStub
) -> None:
    start = api.feed_message(CHAT, "/start")

    def database_away(session: Session) -> None:
        """Only the commit of this update fails (the sender's own commits go through)."""
        if session.get(ProcessedUpdate, start["update_id"]) is not None:
            raise OperationalError("COMMIT", {}, ConnectionError("the database went away"))

    event.listen(Session, "before_commit", database_away)
    try:
        assert await hook.post(start) == 500
    finally:
        event.remove(Session, "before_commit", database_away)
    assert not hook.processed(start)
    await hook.settled()
    assert texts(api) == []
    # Telegram sends it again, and this time it is applied.
    assert await hook.post(start) == 200
    await hook.settled()
    assert texts(api) == [plain(views.INTRO.text)]


# --- security ------------------------------------------------------------------------------------

REFUSED_SECRETS: list[tuple[str, dict[str, str]]] = [
    ("missing", {}),
    ("wrong", {SECRET_HEADER: "nightlegs-Webhook_secret-0123456788"}),
    ("empty", {SECRET_HEADER: ""}),
    ("a prefix of it", {SECRET_HEADER: SECRET[:-1]}),
    ("it and more", {SECRET_HEADER: SECRET + "0"}),
    ("too long", {SECRET_HEADER: SECRET + "x" * 300}),
    ("other case", {SECRET_HEADER: SECRET.upper()}),
]


async def test_a_wrong_missing_or_too_long_secret_gets_403_and_changes_nothing(
    hook: WebhookBot, api: BotApiStub
) -> None:
    start = api.feed_message(CHAT, "/start")
    mark = api.mark()
    for name, headers in REFUSED_SECRETS:
        assert await hook.post(start, headers=headers) == 403, name
        assert not hook.processed(start), name
    # Two headers, one of them right, are not "the exact header" either.
    status = await raw_request(
        hook.port,
        f"POST {PATH} HTTP/1.1\r\nHost: x\r\n{SECRET_HEADER}: wrong\r\n"
        f"{SECRET_HEADER}: {SECRET}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(json.dumps(start))}\r\n\r\n{json.dumps(start)}".encode(),
    )
    assert status == 403
    # Nothing changed: no claim, no user, nothing queued or sent ...
    assert not hook.processed(start) and hook.user_id() is None
    await hook.settled()
    assert sent_since(api, mark) == []
    # ... so Telegram's delivery with the right secret is applied in full.
    assert await hook.post(start) == 200
    await hook.settled()
    assert texts(api) == [plain(views.INTRO.text)]


async def test_a_body_over_the_limit_gets_413(hook: WebhookBot, api: BotApiStub) -> None:
    start = api.feed_message(CHAT, "/start")
    head = f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    secret = f"{SECRET_HEADER}: {SECRET}\r\n"
    # Declared too long: refused on the header, before a byte of the body is read.
    too_long = f"Content-Length: {MAX_BODY + 1}\r\n\r\n"
    assert await raw_request(hook.port, (head + secret + too_long).encode()) == 413
    # Not declared (chunked): refused once the bytes read pass the limit.
    chunk = b" " * 65536
    body = [chunk] * (MAX_BODY // len(chunk)) + [b"{}"]
    chunked = (head + secret + "Transfer-Encoding: chunked\r\n\r\n").encode()
    assert await raw_request(hook.port, chunked, chunks=body) == 413
    # The secret is checked first: no secret and a huge body is a 403.
    assert await raw_request(hook.port, (head + too_long).encode()) == 403
    # Exactly at the limit is read (and is an update, padded with spaces).
    padded = json.dumps(start).encode().ljust(MAX_BODY)
    assert len(padded) == MAX_BODY
    at_limit = f"Content-Length: {len(padded)}\r\n\r\n".encode()
    assert await raw_request(hook.port, (head + secret).encode() + at_limit + padded) == 200
    assert hook.processed(start)


async def test_only_post_on_the_path(hook: WebhookBot, api: BotApiStub) -> None:
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        assert await hook.request(method, headers={SECRET_HEADER: SECRET}) == 405, method
    assert await hook.request("POST", "/elsewhere", json={}) == 404
    assert await hook.request("POST", PATH + "/", json={}) == 404
    assert await hook.post({"not": "an update"}) == 400
    assert (
        await hook.request(
            "POST", data=b"{not json", headers={SECRET_HEADER: SECRET, "Content-Type": "x"}
        )
        == 400
    )


# --- health --------------------------------------------------------------------------------------


@contextlib.contextmanager
def database_away_from_the_health_check(hook: WebhookBot) -> Iterator[None]:
    """New connections made off the event loop's thread (where the health check runs its
    `SELECT 1`) fail, as if the server were gone; the bot's own work on the loop is left alone,
    so nothing else fails while the check is looked at."""
    assert hook.core is not None
    engine = hook.core.store.engine
    loop_thread = threading.current_thread()

    def refuse(*_args: Any) -> None:
        if threading.current_thread() is not loop_thread:
            raise ConnectionRefusedError("the database server is gone")

    event.listen(engine, "do_connect", refuse)
    engine.dispose()  # no pooled connection to fall back on
    try:
        yield
    finally:
        event.remove(engine, "do_connect", refuse)


async def test_healthz_says_whether_the_database_answers(hook: WebhookBot) -> None:
    assert await hook.request("GET", "/healthz") == 200
    with database_away_from_the_health_check(hook):
        assert await hook.request("GET", "/healthz") == 503
    assert await hook.request("GET", "/healthz") == 200
    assert await hook.request("POST", "/healthz") == 405


# --- settings ------------------------------------------------------------------------------------


def test_webhook_settings() -> None:
    polling = load_settings(_env_file=None)
    assert polling.webhook_url is None and polling.webhook_address == ("0.0.0.0", 8080)
    hook = load_settings(_env_file=None, webhook_url=PUBLIC_URL, webhook_secret=SECRET)
    assert hook.webhook_path == PATH and hook.webhook_address == ("0.0.0.0", 8080)
    assert SECRET not in repr(hook) and SECRET not in str(dataclasses.asdict(hook))
    six = load_settings(
        _env_file=None, webhook_url=PUBLIC_URL, webhook_secret="x", webhook_listen="[::1]:8443"
    )
    assert six.webhook_address == ("::1", 8443)
    assert load_settings(_env_file=None, webhook_url="", webhook_secret="").webhook_url is None


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"webhook_url": PUBLIC_URL}, "WEBHOOK_SECRET is required when WEBHOOK_URL is set"),
        ({"webhook_url": PUBLIC_URL, "webhook_secret": " "}, "WEBHOOK_SECRET is required"),
        ({"webhook_url": PUBLIC_URL, "webhook_secret": "has space"}, "WEBHOOK_SECRET must be"),
        ({"webhook_url": PUBLIC_URL, "webhook_secret": "é" * 8}, "WEBHOOK_SECRET must be"),
        ({"webhook_url": PUBLIC_URL, "webhook_secret": "x" * 257}, "WEBHOOK_SECRET must be"),
        ({"webhook_url": "http://bot.example.test/h", "webhook_secret": "x"}, "https"),
        ({"webhook_url": "https://bot.example.test/healthz", "webhook_secret": "x"}, "path"),
        ({"webhook_listen": "8080"}, "WEBHOOK_LISTEN must be host:port"),
        ({"webhook_listen": "::1:8080"}, "WEBHOOK_LISTEN must put an IPv6 address in brackets"),
    ],
)
def test_webhook_settings_refused(settings: dict[str, str], says: str) -> None:
    with pytest.raises(SettingsError, match=says) as refused:
        load_settings(_env_file=None, **settings)
    secret = settings.get("webhook_secret", "").strip()
    assert not secret or secret not in str(refused.value), "the secret was echoed"


def test_the_longest_secret_telegram_allows_is_accepted() -> None:
    longest = "aZ0_-" * 51 + "x"
    assert len(longest) == 256
    settings = load_settings(_env_file=None, webhook_url=PUBLIC_URL, webhook_secret=longest)
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == longest


# --- raw HTTP ------------------------------------------------------------------------------------


async def raw_request(port: int, head: bytes, *, chunks: list[bytes] | None = None) -> int:
    """Send bytes exactly as given (then `chunks` in chunked encoding); the response status.

    Used where a client library would not send the request under test (a declared length with
    no body, two secret headers); the server reads all that is sent before it answers, so the
    answer is never lost to a reset.
    """
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port), timeout=DEADLINE
    )
    try:
        writer.write(head)
        for chunk in chunks or []:
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            await asyncio.wait_for(writer.drain(), timeout=DEADLINE)
        await asyncio.wait_for(writer.drain(), timeout=DEADLINE)
        status_line = await asyncio.wait_for(reader.readline(), timeout=DEADLINE)
        return int(status_line.split()[1])
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
