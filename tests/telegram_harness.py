"""Runs the real nightlegs Telegram application in-process against the Bot API stand-in."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.app import Core, build_core
from bot.services.flow import utc_now
from bot.settings import Settings, load_settings
from bot.telegram.app import serve, wiring
from tests.botapi_stub import BotApiStub, SentMessage

CHAT = 4242


def bot_settings(api: BotApiStub, db: Path | str) -> Settings:
    """Settings for the stand-in; `db` is a database URL, or a SQLite file's path."""
    return load_settings(
        _env_file=None,
        telegram_bot_token=api.token,
        telegram_api_url=api.root,
        database_url=db if isinstance(db, str) else f"sqlite:///{db}",
    )


@dataclass
class RunningBot:
    """One bot process (in this event loop); `restart()` gives a fresh one on the same data."""

    api: BotApiStub
    db: Path | str
    """The database URL (the `database_url` fixture's), or a SQLite file's path."""
    clock: Callable[[], datetime] = utc_now
    core: Core | None = None
    application: Any = None
    _task: asyncio.Task[None] | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> RunningBot:
        mark = self.api.mark()
        settings = bot_settings(self.api, self.db)
        self.core = build_core(settings, clock=self.clock)
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(
            serve(settings, self.core, self._stop, poll_timeout=1, on_ready=self._ready)
        )
        # The command menu goes in every language, English (no language_code) last.
        await self.api.wait_for_call(
            "setMyCommands", lambda c: not c.params.get("language_code"), after=mark
        )
        return self

    def _ready(self, application: Any) -> None:
        self.application = application

    async def dispatch_diary(self) -> int:
        """Run the diary dispatcher once, now (by the injected clock), as its job would, and
        wait until what it queued is delivered."""
        sent = await wiring(self.application).diary.dispatch()
        await self.settled()
        return sent

    async def dispatch_followups(self) -> int:
        """Run the follow-up dispatcher once, now (by the injected clock), as its job would,
        and wait until what it queued is delivered."""
        sent = wiring(self.application).followups.dispatch()
        await self.settled()
        return sent

    async def settled(self) -> None:
        """Wait until the outbox sender has delivered everything queued so far."""
        await asyncio.wait_for(wiring(self.application).sender.settled(), timeout=10)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, timeout=10)
        if self.core is not None:
            self.core.store.dispose()

    async def kill(self) -> None:
        """Stop without any clean-up, as close to SIGKILL as an in-process bot gets."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.core is not None:
            self.core.store.dispose()

    async def send(self, text: str, *, chat: int = CHAT, **kwargs: Any) -> list[SentMessage]:
        """Type a message and return what the bot sent or edited in reply."""
        mark = self.api.mark()
        update = self.api.feed_message(chat, text, **kwargs)
        await self.api.wait_until_confirmed(update)
        await self.settled()
        return self.since(mark, chat)

    async def press(self, label: str, *, chat: int = CHAT, **kwargs: Any) -> list[SentMessage]:
        mark = self.api.mark()
        update = await self.api.press(chat, label, **kwargs)
        await self.api.wait_until_confirmed(update)
        await self.settled()
        return self.since(mark, chat)

    async def feed(self, update: dict[str, Any], chat: int = CHAT) -> list[SentMessage]:
        mark = self.api.mark()
        await self.api.wait_until_confirmed(update)
        await self.settled()
        return self.since(mark, chat)

    def since(self, mark: int, chat: int) -> list[SentMessage]:
        ids: list[int] = []
        for call in self.api.calls[mark:]:
            result = call.result if call.ok else None
            is_ours = isinstance(result, dict) and result.get("chat", {}).get("id") == chat
            if is_ours and result["message_id"] not in ids:
                ids.append(result["message_id"])
        return [self.api.message(chat, i) for i in ids]

    def toasts(self, mark: int = 0) -> list[str | None]:
        return [
            c.params.get("text") for c in self.api.calls[mark:] if c.method == "answerCallbackQuery"
        ]
