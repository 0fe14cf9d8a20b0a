"""Entry point: `python -m bot` starts Telegram when a token is set, else the terminal chat."""

from __future__ import annotations

import logging
import sys

from bot.app import build_core, migrate_apart
from bot.logs import configure_logging
from bot.settings import Settings, SettingsError, load_settings
from bot.terminal import TerminalChat
from dialogs.content import ContentError

logger = logging.getLogger("bot")


def run(settings: Settings) -> int:
    if settings.telegram_bot_token is not None:
        migrate_apart(settings.database_url)  # the long-running bot never loads alembic
    core = build_core(settings)
    try:
        if settings.telegram_bot_token is None:
            print(
                "No TELEGRAM_BOT_TOKEN is set, so nightlegs runs as a chat in this terminal "
                "(same questions, same database). Type 'help' for commands.\n"
            )
            return TerminalChat(core.service, lines=iter(_stdin_lines()), out=sys.stdout).run()
        from bot.telegram.app import run_polling  # noqa: PLC0415 (terminal needs no Telegram)

        return run_polling(settings, core)
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
    token = settings.telegram_bot_token
    configure_logging(settings.log_level, secrets=[token.get_secret_value()] if token else [])
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
