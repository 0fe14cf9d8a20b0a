"""Entry point: `python -m bot` starts Telegram when a token is set, else the terminal chat.

The terminal chat speaks the language of `--lang`, else of the locale (LC_ALL, LC_MESSAGES,
LANG); Telegram speaks each person's own.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from bot.app import build_core, migrate_apart
from bot.logs import configure_logging
from bot.settings import Settings, SettingsError, load_settings
from bot.terminal import TerminalChat, commands, language_of, locale_of
from dialogs.content import ContentError
from dialogs.i18n import LANGUAGES, NAMES, SOURCE
from dialogs.texts import texts

logger = logging.getLogger("bot")


def arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description=(
            "nightlegs: a quick check for legs that wake you at night. With "
            "TELEGRAM_BOT_TOKEN set it runs the Telegram bot; without, a chat in this terminal "
            "(same questions, same database)."
        ),
    )
    parser.add_argument(
        "--lang",
        choices=LANGUAGES,
        help=(
            "the language of the terminal chat: "
            + ", ".join(f"{code} ({NAMES[code]})" for code in LANGUAGES)
            + ". Default: your locale's (LC_ALL, LC_MESSAGES, LANG), else English. "
            "It is kept for your results. (Telegram: each person's own language.)"
        ),
    )
    return parser.parse_args(argv)


def run(settings: Settings, lang: str = SOURCE) -> int:
    if settings.telegram_bot_token is not None:
        migrate_apart(settings.database_url, settings)  # the long-running bot never loads alembic
    core = build_core(settings)
    try:
        if settings.telegram_bot_token is None:
            named = commands(lang).named()
            print(texts(lang).terminal.text("startup", **named) + "\n")
            return TerminalChat(
                core.service,
                lines=iter(_stdin_lines()),
                out=sys.stdout,
                numbers=core.numbers,
                locale=locale_of(os.environ),
                lang=lang,
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


def main(argv: Sequence[str] | None = None) -> int:
    lang = arguments(argv).lang or language_of(os.environ)
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
        return run(settings, lang)
    except ContentError as exc:
        print(f"nightlegs: dialog content is invalid: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\n" + texts(lang).terminal.text("bye", "interrupted"))
        return 0


if __name__ == "__main__":
    sys.exit(main())
