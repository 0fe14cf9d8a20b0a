"""Metrics: the real bot scraped during traffic, in webhook mode (`/metrics` on the webhook
server) and in polling mode (`METRICS_LISTEN`), against the Bot API stand-in; and the parts on
their own (the outbox collector, database errors, check-in lateness, labels)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from bot.app import build_core
from bot.metrics import (
    DISCARD,
    LATE_AFTER,
    Metrics,
    OutboxCollector,
    api_error_code,
    database_error,
    update_kind,
)
from bot.services.diary import DiaryService
from bot.services.flow import Who
from bot.settings import SettingsError, load_settings
from bot.telegram.app import serve, wiring
from dialogs.advice import AdviceBook
from dialogs.engine import Flow
from storage import Store
from tests.botapi_stub import BotApiStub
from tests.clock import Clock
from tests.telegram_harness import CHAT, RunningBot
from tests.test_webhook import CONSENT, SECRET, WebhookBot

ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 10.0
T = TypeVar("T")
Figures = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def figures(text: str) -> Figures:
    """Every sample of a scrape, by name and labels."""
    found: Figures = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: Figures, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def label_values(found: Figures) -> set[str]:
    return {v for _name, labels in found for _k, v in labels}


async def until(check: Callable[[], T | None], what: str, timeout: float = DEADLINE) -> T:
    """Poll `check` until it gives something, or fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (found := check()) is None:
        if loop.time() > deadline:
            raise TimeoutError(f"waited {timeout} s for {what}")
        await asyncio.sleep(0.01)
    return found


async def scrape(port: int) -> tuple[Figures, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"http://127.0.0.1:{port}/metrics", timeout=aiohttp.ClientTimeout(DEADLINE)
        ) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    return figures(text), text


@pytest.fixture
async def api() -> AsyncIterator[BotApiStub]:
    async with BotApiStub() as stub:
        yield stub


# --- the real bot, scraped during traffic -------------------------------------------------------


async def test_webhook_mode_serves_metrics_that_move_with_taps(
    api: BotApiStub, database_url: str
) -> None:
    hook = await WebhookBot(api, database_url).start()
    try:
        before, _ = await scrape(hook.port)
        assert value(before, "nightlegs_updates_total", kind="command") == 0
        assert value(before, "nightlegs_outbox_backlog", lane="reply") == 0
        assert value(before, "nightlegs_database_up") == 1

        # The reply is committed but held on its way to Telegram: the backlog shows it.
        hold = api.hold_next("sendMessage", chat_id=CHAT)
        assert await hook.post(api.feed_message(CHAT, "/start")) == 200
        await api.wait_for_hold(hold)
        during, _ = await scrape(hook.port)
        assert value(during, "nightlegs_updates_total", kind="command") == 1
        assert value(during, "nightlegs_outbox_backlog", lane="reply") == 1
        assert value(during, "nightlegs_outbox_oldest_age_seconds") >= 0
        assert value(during, "nightlegs_tap_to_reply_seconds_count") == 0

        hold.release()
        await hook.settled()
        after, _ = await scrape(hook.port)
        assert value(after, "nightlegs_outbox_backlog", lane="reply") == 0
        assert value(after, "nightlegs_tap_to_reply_seconds_count") == 1
        assert value(after, "nightlegs_tap_to_reply_seconds_sum") > 0
        sent = value(
            after, "nightlegs_outbox_delivered_total", lane="reply", kind="send", outcome="sent"
        )
        assert sent == 1

        # A tap whose reply Telegram first answers with 429: the wait is counted.
        api.rate_limit_next("editMessageText", retry_after=1)
        assert await hook.post(await api.press(CHAT, CONSENT)) == 200
        await hook.settled()
        tapped, text = await scrape(hook.port)
        assert value(tapped, "nightlegs_updates_total", kind="callback") == 1
        assert value(tapped, "nightlegs_tap_to_reply_seconds_count") == 2
        assert value(tapped, "nightlegs_botapi_retry_after_total") == 1
        assert value(tapped, "nightlegs_botapi_retry_after_seconds_total") == 1
        code = {"method": "editMessageText", "code": "429"}
        assert value(tapped, "nightlegs_botapi_errors_total", **code) == 1
        assert value(tapped, "nightlegs_database_errors_total", error="OperationalError") == 0
        assert "process_resident_memory_bytes" in text
        assert str(CHAT) not in label_values(tapped), "a chat id became a label"
    finally:
        await hook.stop()


@dataclass
class PollingBot(RunningBot):
    """The harness's polling bot with `METRICS_LISTEN=127.0.0.1:0`."""

    async def start(self) -> PollingBot:
        mark = self.api.mark()
        settings = load_settings(
            _env_file=None,
            telegram_bot_token=self.api.token,
            telegram_api_url=self.api.root,
            database_url=self.db if isinstance(self.db, str) else f"sqlite:///{self.db}",
            metrics_listen="127.0.0.1:0",
        )
        self.core = build_core(settings, clock=self.clock)
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(
            serve(settings, self.core, self._stop, poll_timeout=1, on_ready=self._ready)
        )
        await self.api.wait_for_call("setMyCommands", after=mark)
        return self

    async def metrics_port(self) -> int:
        metrics = wiring(self.application).metrics
        assert metrics is not None
        return await until(lambda: metrics.port, "the metrics server to listen")


async def test_polling_mode_serves_metrics_on_metrics_listen(
    api: BotApiStub, database_url: str
) -> None:
    bot = await PollingBot(api, database_url).start()
    try:
        port = await bot.metrics_port()
        hold = api.hold_next("sendMessage", chat_id=CHAT)
        api.feed_message(CHAT, "/start")
        await api.wait_for_hold(hold)
        during, _ = await scrape(port)
        assert value(during, "nightlegs_updates_total", kind="command") == 1
        assert value(during, "nightlegs_outbox_backlog", lane="reply") == 1
        assert value(during, "nightlegs_tap_to_reply_seconds_count") == 0

        hold.release()
        await bot.settled()
        await bot.press(CONSENT)
        await bot.send("hello")
        after, _ = await scrape(port)
        assert value(after, "nightlegs_updates_total", kind="callback") == 1
        assert value(after, "nightlegs_updates_total", kind="message") == 1
        assert value(after, "nightlegs_tap_to_reply_seconds_count") == 3
        assert value(after, "nightlegs_outbox_backlog", lane="reply") == 0
        assert value(after, "nightlegs_database_up") == 1
        assert str(CHAT) not in label_values(after)
    finally:
        await bot.stop()
    with pytest.raises(aiohttp.ClientConnectionError):  # the server stops with the bot
        await scrape(port)


async def test_polling_mode_without_metrics_listen_opens_no_port(
    api: BotApiStub, tmp_path: Path
) -> None:
    bot = await RunningBot(api, tmp_path / "bot.db").start()
    try:
        await bot.send("/start")
        metrics = wiring(bot.application).metrics
        assert metrics is not None and metrics.port is None
        assert value(figures(metrics.scrape().decode()), "nightlegs_updates_total", kind="command")
    finally:
        await bot.stop()


async def test_metrics_need_no_webhook_secret_and_a_refused_update_counts_nothing(
    api: BotApiStub, tmp_path: Path
) -> None:
    hook = await WebhookBot(api, f"sqlite:///{tmp_path / 'bot.db'}").start()
    try:
        assert await hook.request("GET", "/metrics") == 200
        assert await hook.request("POST", "/metrics") == 405
        update = api.feed_message(CHAT, "/start")
        assert await hook.post(update, headers={"X-Other": SECRET}) == 403
        found, _ = await scrape(hook.port)
        assert value(found, "nightlegs_updates_total", kind="command") == 0
    finally:
        await hook.stop()


# --- the parts ----------------------------------------------------------------------------------


def test_each_bot_counts_on_a_registry_of_its_own() -> None:
    one, two = Metrics(), Metrics()
    one.updates.labels(kind="message").inc()
    assert value(figures(one.scrape().decode()), "nightlegs_updates_total", kind="message") == 1
    assert value(figures(two.scrape().decode()), "nightlegs_updates_total", kind="message") == 0
    assert one.registry is not two.registry is not DISCARD.registry


def test_the_outbox_collector_reads_backlog_and_age_when_scraped(tmp_path: Path) -> None:
    start = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    now = [start]
    store = Store.open(f"sqlite:///{tmp_path / 'bot.db'}", clock=lambda: now[0])
    try:
        collector = OutboxCollector(store.engine, lambda: now[0])
        with store.transaction() as repo:
            first = repo.outbox.add(1, "send", {"text": "a"}, lane="bulk")
        now[0] = start + timedelta(seconds=30)
        with store.transaction() as repo:
            repo.outbox.add(2, "send", {"text": "b"})
        now[0] = start + timedelta(seconds=90)
        found = _collected(collector)
        assert found["backlog"] == {"reply": 1, "trail": 0, "bulk": 1}
        assert found["age"] == 90
        with store.transaction() as repo:
            repo.outbox.delivered(first, message_id=7)
        assert _collected(collector)["age"] == 60  # the reply, queued 30 s later
    finally:
        store.dispose()


def test_the_outbox_collector_says_when_the_database_is_away(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'missing' / 'bot.db'}")
    try:
        found = _collected(OutboxCollector(engine, lambda: datetime.now(UTC)))
        assert found == {"up": 0}
    finally:
        engine.dispose()


def _collected(collector: OutboxCollector) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for family in collector.collect():
        if family.name == "nightlegs_outbox_backlog":
            found["backlog"] = {s.labels["lane"]: s.value for s in family.samples}
        elif family.name == "nightlegs_outbox_oldest_age_seconds":
            found["age"] = family.samples[0].value
        elif family.name == "nightlegs_database_up":
            found["up"] = family.samples[0].value
    return found


def test_database_errors_are_counted_by_their_pep_249_class(tmp_path: Path) -> None:
    metrics = Metrics()
    store = Store.open(f"sqlite:///{tmp_path / 'bot.db'}")
    try:
        metrics.watch(store)
        with pytest.raises(OperationalError), store.engine.connect() as connection:
            connection.exec_driver_sql("SELECT * FROM no_such_table")
        found = figures(metrics.scrape().decode())
        assert value(found, "nightlegs_database_errors_total", error="OperationalError") == 1
        assert value(found, "nightlegs_database_up") == 1
    finally:
        metrics.unwatch(store)
        store.dispose()
    assert database_error(ValueError()) == "other"


def test_a_check_in_queued_long_after_its_moment_is_late() -> None:
    metrics = Metrics()
    due = datetime(2026, 12, 1, 21, 0, tzinfo=UTC)
    metrics.checkin_queued(due, due + timedelta(seconds=20), reminder=False)
    metrics.checkin_queued(due, due + LATE_AFTER + timedelta(seconds=1), reminder=False)
    metrics.checkin_queued(due, due + timedelta(hours=2), reminder=True)  # snoozed: its own time
    found = figures(metrics.scrape().decode())
    assert value(found, "nightlegs_checkins_sent_total", reminder="no") == 2
    assert value(found, "nightlegs_checkins_sent_total", reminder="yes") == 1
    assert value(found, "nightlegs_checkins_late_total") == 1
    assert value(found, "nightlegs_checkin_delay_seconds_count") == 2


def test_a_reply_ends_the_wait_of_its_chats_first_unanswered_tap_only() -> None:
    metrics = Metrics()

    @dataclass
    class Update:
        update_id: int

    metrics.arrived(Update(1))
    metrics.replying(Update(1), [10])
    metrics.delivered_row(10, "bulk", "send", "sent")  # a check-in: not the tap's reply
    metrics.delivered_row(11, "reply", "send", "sent")  # another chat's
    assert value(figures(metrics.scrape().decode()), "nightlegs_tap_to_reply_seconds_count") == 0
    metrics.delivered_row(10, "reply", "edit", "sent")
    metrics.delivered_row(10, "reply", "send", "sent")  # the same reply's next message
    assert value(figures(metrics.scrape().decode()), "nightlegs_tap_to_reply_seconds_count") == 1


def test_labels_are_a_few_fixed_words() -> None:
    class Message:
        def __init__(self, text: str | None) -> None:
            self.text = text

    class Update:
        def __init__(self, **parts: Any) -> None:
            self.callback_query = parts.get("callback_query")
            self.message = parts.get("message")

    assert update_kind(Update(callback_query=object())) == "callback"
    assert update_kind(Update(message=Message("/check"))) == "command"
    assert update_kind(Update(message=Message("my calf hurts"))) == "message"
    assert update_kind(Update(message=Message(None))) == "message"  # a sticker, a photo
    assert update_kind(Update()) == "other"
    assert api_error_code(RetryAfter(timedelta(seconds=3))) == "429"
    assert api_error_code(Forbidden("blocked")) == "403"
    assert api_error_code(BadRequest("message is not modified")) == "400"
    assert api_error_code(TimedOut()) == "timeout"
    assert api_error_code(NetworkError("Bad Gateway")) == "network"


def test_metrics_listen_is_host_and_port_and_off_by_default() -> None:
    assert load_settings(_env_file=None).metrics_address is None
    settings = load_settings(_env_file=None, metrics_listen="127.0.0.1:9464")
    assert settings.metrics_address == ("127.0.0.1", 9464)
    with pytest.raises(SettingsError, match="METRICS_LISTEN"):
        load_settings(_env_file=None, metrics_listen="9464")
    with pytest.raises(SettingsError, match="WEBHOOK_URL"):
        load_settings(
            _env_file=None, webhook_url="https://bot.example.test/metrics", webhook_secret="s"
        )


def test_the_sample_dashboard_asks_only_for_metrics_the_bot_serves(tmp_path: Path) -> None:
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text("utf-8"))
    asked = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(?:nightlegs|process)_[a-z_]+", target["expr"])
    }
    metrics = Metrics().with_process()
    store = Store.open(f"sqlite:///{tmp_path / 'bot.db'}")
    try:
        metrics.watch(store)
        families = list(metrics.registry.collect())
    finally:
        metrics.unwatch(store)
        store.dispose()
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
    names = {f.name + end for f in families for end in suffixes.get(f.type, [""])}
    assert asked and asked <= names, asked - names


def test_the_diary_service_counts_check_ins_due_sent_and_late(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    store = Store.open(f"sqlite:///{tmp_path / 'bot.db'}", clock=clock)
    diary = DiaryService(store, Flow.load("diary"), AdviceBook.load(), clock=clock)
    diary.metrics = metrics = Metrics()
    try:
        anna, ben = Who("telegram", "101"), Who("telegram", "202")
        for who in (anna, ben):
            with store.transaction() as repo:
                user = repo.user(who.channel, who.external_id)
                repo.update_user(user.id, consent_at=clock())
        diary.set_schedule(anna, time(21, 0), ZoneInfo("UTC"))
        diary.set_schedule(ben, time(20, 50), ZoneInfo("UTC"))
        clock.now = datetime(2026, 11, 20, 21, 1, tzinfo=UTC)  # Ben's is 11 minutes overdue
        assert diary.open_due() == 2
        assert len(diary.claim_outgoing()) == 2
        found = figures(metrics.scrape().decode())
        assert value(found, "nightlegs_checkins_due_total") == 2
        assert value(found, "nightlegs_checkins_sent_total", reminder="no") == 2
        assert value(found, "nightlegs_checkins_late_total") == 1
    finally:
        store.dispose()
