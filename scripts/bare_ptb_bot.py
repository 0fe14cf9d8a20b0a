"""The bare python-telegram-bot baseline that `scripts/bench_taps.py` compares nightlegs with.

No logic, no database: `/start` sends one question with inline buttons; every button press is
answered with the same three Bot API calls nightlegs made per tap before the rebuild:

1. `answerCallbackQuery`,
2. `editMessageText` on the tapped message (the question with the chosen answer, no buttons),
3. `sendMessage` with the next question and a new inline keyboard.

Built the standard way: `ApplicationBuilder` with `AIORateLimiter()` at its defaults and
`Application.run_polling()` (updates handled one at a time, PTB's default). Run it as a process:

    TELEGRAM_BOT_TOKEN=123:abc... TELEGRAM_API_URL=http://127.0.0.1:PORT \\
        python scripts/bare_ptb_bot.py
"""

from __future__ import annotations

import logging
import os

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    AIORateLimiter,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
)

OPTIONS = (("y", "Yes"), ("n", "No"), ("u", "Not sure"))


def question(number: int) -> tuple[str, InlineKeyboardMarkup]:
    """Question `number`: its text and a keyboard whose callback data names the question."""
    rows = [
        [InlineKeyboardButton(label, callback_data=f"q:{number}:{key}") for key, label in OPTIONS],
        [InlineKeyboardButton("✖️ Cancel", callback_data=f"q:{number}:c")],
    ]
    return f"Question {number}: does it hurt tonight?", InlineKeyboardMarkup(rows)


async def on_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    chat = update.effective_chat
    if chat is None:
        return
    text, markup = question(1)
    await chat.send_message(text, reply_markup=markup)


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    chat = update.effective_chat
    if query is None or chat is None:
        return
    _, number_text, key = (query.data or "q:0:c").split(":", 2)
    number = int(number_text)
    label = dict(OPTIONS).get(key, "Cancel")
    await query.answer()
    await query.edit_message_text(f"Question {number}: does it hurt tonight?\n\n➡️ {label}")
    text, markup = question(number + 1)
    await chat.send_message(text, reply_markup=markup)


def main() -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "WARNING"))
    root = os.environ["TELEGRAM_API_URL"].rstrip("/")
    builder = (
        ApplicationBuilder()
        .token(os.environ["TELEGRAM_BOT_TOKEN"])
        .base_url(f"{root}/bot")
        .base_file_url(f"{root}/file/bot")
    )
    if os.environ.get("BARE_RATE_LIMITER", "on") != "off":
        builder = builder.rate_limiter(AIORateLimiter())
    application = builder.build()
    application.add_handler(CommandHandler("start", on_start))
    application.add_handler(CallbackQueryHandler(on_button))
    application.run_polling()


if __name__ == "__main__":
    main()
