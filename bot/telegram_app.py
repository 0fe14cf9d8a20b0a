"""The Telegram bot: PTB application wiring and durable long polling.

PTB's own polling confirms updates to Telegram (the next getUpdates offset) as soon as they are
queued in memory, so a hard kill drops taps that were fetched but not handled. Here the offset
moves only after an update was handled; a handled update is recorded in the same transaction
as its effects, so one fetched again after a restart is skipped instead of applied twice.
Updates are handled one at a time, which also keeps each chat's taps in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import timedelta

from telegram import BotCommand, Update
from telegram.error import Forbidden, InvalidToken, RetryAfter, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot.app import Core
from bot.settings import Settings
from bot.telegram_diary import DiaryBot
from bot.telegram_handlers import TelegramBot, skip_duplicates

logger = logging.getLogger(__name__)

COMMANDS = [
    BotCommand("check", "Start a new check of your night leg symptoms"),
    BotCommand("back", "Undo your last answer"),
    BotCommand("cancel", "Stop the current check"),
    BotCommand("diary", "Nightly check-ins: time, zone, pause, stop"),
    BotCommand("summary", "Your last 7 and 30 nights, with a chart"),
    BotCommand("settings", "Your country, for the emergency number"),
    BotCommand("export", "Get a copy of everything stored about you"),
    BotCommand("delete", "Erase everything stored about you"),
    BotCommand("help", "What this bot does"),
]
KEEP_PROCESSED = timedelta(days=2)
"""Telegram keeps undelivered updates for 24 hours, so older ids can never come back."""
MAX_BACKOFF = 30.0
TELEGRAM_PER_SECOND = 30
"""Telegram's overall limit. Paced one message per 1/30 s: the limiter's bucket starts full,
so the default (30 per second) lets a burst of 30 on top of 30 a second through."""
RETENTION_EVERY = 24 * 3600.0
DISPATCH_EVERY = 30.0
"""Seconds between dispatcher runs; the database, not the job, decides what is due."""


def build_application(settings: Settings, core: Core, *, rate_limit: bool = True) -> Application:  # type: ignore[type-arg]
    """The PTB application: handlers, rate limiter with retries on 429, error handler.

    `rate_limit=False` exists only for the dispatch benchmark's baseline run.
    """
    assert settings.telegram_bot_token is not None
    builder = (
        ApplicationBuilder()
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(f"{settings.api_root}/bot")
        .base_file_url(f"{settings.api_root}/file/bot")
        .updater(None)
    )
    if rate_limit:
        builder = builder.rate_limiter(
            AIORateLimiter(
                overall_max_rate=1, overall_time_period=1 / TELEGRAM_PER_SECOND, max_retries=3
            )
        )
    application = builder.build()
    bot = TelegramBot(core.service, core.numbers)
    diary = DiaryBot(bot, core.diary)
    bot.attach_diary(diary)
    application.bot_data["diary"] = diary
    add_handlers(application, bot)
    # A run that comes late or is skipped loses nothing: the next one finds the same rows.
    assert application.job_queue is not None
    application.job_queue.run_repeating(
        diary.on_dispatch_job,
        interval=DISPATCH_EVERY,
        first=1.0,
        name="diary-dispatch",
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


def _retention_job(core: Core, days: int) -> Callable[[object], Awaitable[None]]:
    """Daily: delete transcript messages older than `days` and leave no copy behind."""

    async def run(_context: object) -> None:
        with core.store.transaction() as repo:
            removed = repo.prune_messages(core.service.clock() - timedelta(days=days))
        core.store.erase_traces()
        logger.info("retention: %s transcript messages older than %s days removed", removed, days)

    return run


async def register_commands(application: Application) -> None:  # type: ignore[type-arg]
    """Show the command menu in Telegram; a failure here must not keep the bot from running."""
    try:
        await application.bot.set_my_commands(COMMANDS)
    except InvalidToken:
        raise
    except TelegramError as exc:
        logger.warning("could not register the command menu: %s", type(exc).__name__)


def add_handlers(application: Application, bot: TelegramBot) -> None:  # type: ignore[type-arg]
    private = filters.ChatType.PRIVATE
    groups = ~filters.ChatType.PRIVATE
    on = skip_duplicates
    application.add_handler(MessageHandler(groups, bot.on_group))
    commands = {
        "start": bot.on_start,
        "check": bot.on_check,
        "back": bot.on_back,
        "cancel": bot.on_cancel,
        "help": bot.on_help,
        "settings": bot.on_settings,
        "export": bot.on_export,
        "delete": bot.on_delete,
    }
    if bot.diary is not None:
        commands |= {"diary": bot.diary.on_diary, "summary": bot.diary.on_summary}
    for name, handler in commands.items():
        application.add_handler(
            CommandHandler(name, on(handler), filters=private & filters.UpdateType.MESSAGE)
        )
    application.add_handler(
        MessageHandler(private & filters.UpdateType.EDITED_MESSAGE, on(bot.on_edited))
    )
    application.add_handler(
        MessageHandler(
            private & filters.COMMAND & filters.UpdateType.MESSAGE, on(bot.on_unknown_command)
        )
    )
    application.add_handler(
        MessageHandler(private & filters.TEXT & filters.UpdateType.MESSAGE, on(bot.on_text))
    )
    application.add_handler(
        MessageHandler(private & filters.UpdateType.MESSAGE, on(bot.on_other_message))
    )
    application.add_handler(CallbackQueryHandler(on(bot.on_button)))
    application.add_error_handler(bot.on_error)


class DurablePolling:
    """Long polling that acknowledges an update only after it has been handled."""

    def __init__(self, application: Application, core: Core, *, poll_timeout: int = 30) -> None:  # type: ignore[type-arg]
        self.application = application
        self.core = core
        self.poll_timeout = poll_timeout
        self.offset: int | None = None

    async def run(self, stop: asyncio.Event) -> None:
        bot = self.application.bot
        await bot.delete_webhook()
        self._prune()
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
            for update in updates:
                await self.handle(update)
                self.offset = update.update_id + 1

    async def handle(self, update: Update) -> None:
        """Handle one update unless its effects were committed before, then record it."""
        with self.core.store.transaction() as repo:
            if repo.is_processed(update.update_id):
                logger.info("update %s was handled before a restart; skipped", update.update_id)
                return
        logger.debug("handling update %s", update.update_id)
        await self.application.process_update(update)
        with self.core.store.transaction() as repo:
            repo.claim_update(update.update_id)

    def _prune(self) -> None:
        with self.core.store.transaction() as repo:
            repo.prune_updates(self.core.service.clock() - KEEP_PROCESSED)

    @staticmethod
    async def _pause(stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)


def _seconds(value: object) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)  # type: ignore[arg-type]


async def serve(
    settings: Settings,
    core: Core,
    stop: asyncio.Event,
    *,
    poll_timeout: int = 30,
    on_ready: Callable[[Application], None] | None = None,  # type: ignore[type-arg]
) -> None:
    """Run the bot until `stop` is set; `on_ready` gets the started application (tests)."""
    application = build_application(settings, core)
    async with application:
        await application.start()
        if on_ready is not None:
            on_ready(application)
        await register_commands(application)
        poller = DurablePolling(application, core, poll_timeout=poll_timeout)
        task = asyncio.create_task(poller.run(stop))
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (task, stopper):
                pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task  # re-raises what stopped the poller, e.g. InvalidToken
            await application.stop()


def run_polling(settings: Settings, core: Core) -> int:
    """Start the bot in polling mode until SIGINT or SIGTERM."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        logger.info("nightlegs is running in Telegram (polling); Ctrl+C stops it")
        await serve(settings, core, stop)

    try:
        asyncio.run(main())
    except InvalidToken:
        logger.error("Telegram refused the bot token: check TELEGRAM_BOT_TOKEN")
        return 2
    except Forbidden:
        logger.error("Telegram refused access: check TELEGRAM_BOT_TOKEN")
        return 2
    return 0
