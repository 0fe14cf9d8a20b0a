"""Entry point: `python -m bot` starts Telegram when a token is set, else the terminal chat."""

from __future__ import annotations

import logging
import os
import sys

from bot.app import build_core, migrate_apart
from bot.logs import configure_logging
from bot.settings import Settings, SettingsError, load_settings
from bot.terminal import TerminalChat, locale_of
from dialogs.content import ContentError

logger = logging.getLogger("bot")


def run(settings: Settings) -> int:
    if settings.telegram_bot_token is not None:
        migrate_apart(settings.database_url, settings)  # the long-running bot never loads alembic
    core = build_core(settings)
    try:
        if settings.telegram_bot_token is None:
            print(
                "No TELEGRAM_BOT_TOKEN is set, so nightlegs runs as a chat in this terminal "
                "(same questions, same database). Type 'help' for commands.\n"
            )
            return TerminalChat(
                core.service,
                lines=iter(_stdin_lines()),
                out=sys.stdout,
                numbers=core.numbers,
                locale=locale_of(os.environ),
            ).run()
        from bot.telegram.app import run as run_telegram  # noqa: PLC0415 (terminal needs none)

        return run_telegram(settings, core)
    finally:
        core.store.dispose()


def _stdin_lines():  # type: ignore[no-untyped-def]
    while True:
        try:
            print("> ", end="", flush=True)
            yield input()
        except EOFError:
            print()
            return


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"nightlegs: {exc}", file=sys.stderr)
        return 2
    secrets = [s.get_secret_value() for s in (settings.telegram_bot_token,) if s is not None]
    hook = settings.webhook_secret
    if hook is not None and len(hook.get_secret_value()) >= 8:  # shorter would blank out words
        secrets.append(hook.get_secret_value())
    configure_logging(settings.log_level, secrets=secrets, fmt=settings.log_format)
    try:
        return run(settings)
    except ContentError as exc:
        print(f"nightlegs: dialog content is invalid: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nBye. Your answers are saved.")
        return 0


if __name__ == "__main__":
    sys.exit(main())
