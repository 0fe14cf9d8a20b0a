"""The Telegram bot: PTB application wiring, the outbox sender, and how updates come in:
durable long polling, or a webhook when WEBHOOK_URL is set.

update → polling or webhook → ChatLanes (lock per chat, one transaction) → router → feature
       → Turn queues replies as outbox rows → commit → Sender → LanePacer → Bot API
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from telegram import BotCommand
from telegram.error import Forbidden, InvalidToken, TelegramError
from telegram.ext import Application, ApplicationBuilder

from bot.app import Core
from bot.files import pool
from bot.metrics import Metrics
from bot.settings import Settings
from bot.telegram.completion import Completions
from bot.telegram.consent import Consent
from bot.telegram.conversation import Conversations
from bot.telegram.delivery import BuiltFile, Sender
from bot.telegram.diary import Diary
from bot.telegram.export import Export
from bot.telegram.followups import FollowUps
from bot.telegram.lanes import ChatLanes
from bot.telegram.pacing import PER_SECOND, LanePacer
from bot.telegram.polling import DurablePolling
from bot.telegram.router import Router
from bot.telegram.settings import Settings as SettingsFeature
from bot.telegram.triage import Triage
from dialogs.i18n import LANGUAGES, SOURCE
from dialogs.texts import texts
from storage.db import RETENTION_TABLES

if TYPE_CHECKING:
    from bot.telegram.webhook import Webhook

logger = logging.getLogger(__name__)

COMMAND_NAMES = (
    "check",
    "back",
    "cancel",
    "diary",
    "summary",
    "settings",
    "language",
    "export",
    "delete",
    "help",
)
"""The command menu, in order; each description is in screens.yaml (`commands`)."""


def commands(lang: str = SOURCE) -> list[BotCommand]:
    """The command menu in a language."""
    words = texts(lang).screens
    return [BotCommand(name, words.text("commands", name)) for name in COMMAND_NAMES]


COMMANDS = commands()
RETENTION_EVERY = 24 * 3600.0
DISPATCH_EVERY = 30.0
"""Seconds between dispatcher runs; the database, not the job, decides what is due."""
WIRING = "nightlegs"
STOP_WITHIN = 15.0
"""Seconds the update receiver gets to finish on stop (the webhook's requests in flight)."""


@dataclass
class Wiring:
    """The parts of a running bot that tests and benchmarks reach for."""

    lanes: ChatLanes
    sender: Sender
    router: Router
    diary: Diary
    followups: FollowUps
    webhook: Webhook | None = None
    """In webhook mode, once serving: its `port` is the one listened on."""
    metrics: Metrics | None = None
    """This bot's metrics (its own registry), served at /metrics."""


def build_application(settings: Settings, core: Core, *, rate_limit: bool = True) -> Application:  # type: ignore[type-arg]
    """The PTB application: per-chat lanes, the two-lane pacer, handlers, jobs, outbox sender.

    `rate_limit=False` exists only for a benchmark's baseline run.
    """
    assert settings.telegram_bot_token is not None
    lanes = ChatLanes(core.store)
    metrics = lanes.metrics = core.diary.metrics = core.followups.metrics = Metrics()
    builder = (
        ApplicationBuilder()
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(f"{settings.api_root}/bot")
        .base_file_url(f"{settings.api_root}/file/bot")
        .updater(None)
        .concurrent_updates(lanes)
    )
    if rate_limit:
        pacer = LanePacer(shared=_shared_budget(core))
        pacer.metrics = metrics
        builder = builder.rate_limiter(pacer)
    application = builder.build()

    numbers = core.numbers
    conversations = Conversations(core.service, numbers)
    export = Export(core.service, numbers)
    diary = Diary(core.diary, _zones(core))
    conversations.add_flow(core.diary.questions, screen=diary.screen, ending=diary.logged)
    followups = FollowUps(core.followups)
    conversations.after_result.append(followups.on_result)

    async def make_file(chat_id: int, recipe: dict[str, Any]) -> BuiltFile | str | None:
        if recipe.get("kind") == "chart":
            return await diary.make_chart(chat_id, recipe)
        return await export.make_file(chat_id, recipe)

    sender = Sender(
        application.bot,
        core.store,
        clock=core.service.clock,
        make_file=make_file,
        on_delivered=diary.delivered,
        on_blocked=_each(diary.blocked, followups.blocked),
        instance=settings.instance_name,
    )
    sender.metrics = metrics
    metrics.with_process().watch(core.store, core.service.clock)
    lanes.wake = diary.wake = followups.wake = sender.wake
    lanes.answer = sender.answer
    lanes.claim = sender.claim
    router = Router(
        core.store,
        conversations,
        Consent(core.service, conversations),
        Triage(conversations),
        diary,
        export,
        SettingsFeature(core.service, numbers, conversations),
        followups,
    )
    application.add_error_handler(lanes.on_error)  # before the router's: database faults
    router.install(application)
    application.bot_data[WIRING] = Wiring(lanes, sender, router, diary, followups, metrics=metrics)

    # A run that comes late or is skipped loses nothing: the next one finds the same rows.
    assert application.job_queue is not None
    application.job_queue.run_repeating(
        diary.on_dispatch_job,
        interval=DISPATCH_EVERY,
        first=1.0,
        name="diary-dispatch",
        job_kwargs={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
    )
    application.job_queue.run_repeating(
        followups.on_dispatch_job,
        interval=DISPATCH_EVERY,
        first=1.0,
        name="followup-dispatch",
        job_kwargs={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
    )
    if settings.transcript_retention_days:
        application.job_queue.run_repeating(
            _retention_job(core, settings.transcript_retention_days),
            interval=RETENTION_EVERY,
            first=60.0,
            name="transcript-retention",
        )
    return application


def _shared_budget(core: Core) -> Callable[[], float] | None:
    """On PostgreSQL, where several instances may share the database, every chat-bound send
    also takes a slot of one budget kept there; a SQLite bot is the only one on its file."""
    if core.store.engine.dialect.name != "postgresql":
        return None
    interval = timedelta(seconds=1 / PER_SECOND)

    def reserve() -> float:
        with core.store.transaction() as repo:
            return repo.outbox.reserve_send(interval)

    return reserve


def _each(*hooks: Callable[..., None]) -> Callable[..., None]:
    """One sender hook that runs each feature's in turn."""

    def run(*args: Any) -> None:
        for hook in hooks:
            hook(*args)

    return run


def _zones(core: Core) -> Callable[[str | None], tuple[str, ...]]:
    def zones(code: str | None) -> tuple[str, ...]:
        country = core.numbers.countries.get(code or "")
        return country.zones if country is not None else ()

    return zones


def wiring(application: Application) -> Wiring:  # type: ignore[type-arg]
    found = application.bot_data[WIRING]
    assert isinstance(found, Wiring)
    return found


def _retention_job(core: Core, days: int) -> Callable[[object], Awaitable[None]]:
    """Daily: delete transcript messages older than `days` and leave no copy behind."""

    async def run(_context: object) -> None:
        with core.store.transaction() as repo:
            removed = repo.prune_messages(core.service.clock() - timedelta(days=days))
        core.store.erase_traces(RETENTION_TABLES)
        logger.info("retention: %s transcript messages older than %s days removed", removed, days)

    return run


async def register_commands(application: Application) -> None:  # type: ignore[type-arg]
    """Show the command menu in Telegram, in each language for the apps set to it, English for
    every other (last: once it is there, the whole menu is); a failure here must not keep the
    bot from running."""
    try:
        for lang in (*(lang for lang in LANGUAGES if lang != SOURCE), SOURCE):
            code = None if lang == SOURCE else lang
            await application.bot.set_my_commands(commands(lang), language_code=code)
    except InvalidToken:
        raise
    except TelegramError as exc:
        logger.warning("could not register the command menu: %s", type(exc).__name__)


async def serve(
    settings: Settings,
    core: Core,
    stop: asyncio.Event,
    *,
    poll_timeout: int = 30,
    on_ready: Callable[[Application], None] | None = None,  # type: ignore[type-arg]
) -> None:
    """Run the bot until `stop` is set: by webhook when WEBHOOK_URL is set, else by long
    polling. `on_ready` gets the started application (tests)."""
    application = build_application(settings, core)
    parts = wiring(application)
    async with application:
        await application.start()
        parts.sender.sweep()  # replies committed before a crash go out first
        if on_ready is not None:
            on_ready(application)
        await register_commands(application)
        receiving: Callable[[asyncio.Event], Awaitable[None]]
        if settings.webhook_url is not None:
            assert settings.webhook_secret is not None  # the settings require it
            completions = Completions()
            parts.lanes.finished = completions.finished
            host, port = settings.webhook_address
            # starlette and uvicorn load only in webhook mode
            from bot.telegram.webhook import Webhook  # noqa: PLC0415

            parts.webhook = Webhook(
                application,
                core.store,
                completions,
                url=str(settings.webhook_url),
                path=settings.webhook_path,
                secret=settings.webhook_secret.get_secret_value(),
                host=host,
                port=port,
                metrics=parts.metrics,
            )
            receiving = parts.webhook.run
        else:
            receiving = DurablePolling(
                application,
                core.store,
                parts.lanes,
                clock=core.service.clock,
                poll_timeout=poll_timeout,
            ).run
        sending = asyncio.create_task(parts.sender.run(stop), name="outbox-sweep")
        task = asyncio.create_task(receiving(stop), name="updates")
        stopper = asyncio.create_task(stop.wait())
        scraping: asyncio.Task[None] | None = None
        try:
            if settings.metrics_address is not None and parts.metrics is not None:
                listening = parts.metrics.listen(*settings.metrics_address)  # OSError: taken
                scraping = asyncio.create_task(parts.metrics.serve(listening, stop), name="metrics")
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if parts.webhook is not None and not task.done():
                # Requests in flight finish (polling's are simply fetched again next time).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(task), timeout=STOP_WITHIN)
        finally:
            for pending in (task, stopper, sending):
                pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task  # re-raises what stopped the receiver, e.g. InvalidToken
            with contextlib.suppress(asyncio.CancelledError):
                await sending
            if scraping is not None:
                scraping.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await scraping
            await parts.sender.close()
            await application.stop()
            pool.shutdown()


def run(settings: Settings, core: Core) -> int:
    """Start the bot (webhook if WEBHOOK_URL is set, else polling) until SIGINT or SIGTERM."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        mode = "webhook" if settings.webhook_url is not None else "polling"
        logger.info("nightlegs is running in Telegram (%s); Ctrl+C stops it", mode)
        await serve(settings, core, stop)

    try:
        asyncio.run(main())
    except InvalidToken:
        logger.error("Telegram refused the bot token: check TELEGRAM_BOT_TOKEN")
        return 2
    except Forbidden:
        logger.error("Telegram refused access: check TELEGRAM_BOT_TOKEN")
        return 2
    except OSError as exc:
        where = f"WEBHOOK_LISTEN={settings.webhook_listen}" if settings.webhook_url else ""
        if settings.metrics_listen is not None:
            where = f"{where} or METRICS_LISTEN={settings.metrics_listen}".removeprefix(" or ")
        logger.error("could not listen on %s: %s", where, exc)
        return 2
    return 0


run_polling = run
"""The former name: `run` picks polling or webhook by the settings."""
