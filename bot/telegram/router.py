"""Routing only: which feature handles a command, a typed message or a button.

Every handler runs inside its update's transaction (see `lanes.py`) and gets the update's
`Turn` and `Repo`. A button's data is decoded once, here, and handed to the feature that owns
it; an old, forged or foreign button gets a short notice. Features never call each other.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from telegram import Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.telegram import render
from bot.telegram.consent import Consent
from bot.telegram.conversation import Conversations
from bot.telegram.diary import Diary
from bot.telegram.export import Export
from bot.telegram.followups import FollowUps
from bot.telegram.keys import DIARY_ACTIONS, FollowUpKey, MenuKey, SnoozeKey, decode
from bot.telegram.settings import Settings
from bot.telegram.triage import Triage
from bot.telegram.turn import Turn, current
from dialogs import danger
from dialogs.texts import texts
from storage import Repo, Store

logger = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE
Handler = Callable[[Turn, Repo, Update, Context], None]


@dataclass
class Router:
    store: Store
    conversations: Conversations
    consent: Consent
    triage: Triage
    diary: Diary
    export: Export
    settings: Settings
    followups: FollowUps

    def install(self, application: Application) -> None:  # type: ignore[type-arg]
        private = filters.ChatType.PRIVATE
        message = filters.UpdateType.MESSAGE
        application.add_handler(MessageHandler(~private, self.wrap(self.on_group)))
        commands: dict[str, Handler] = {
            "start": lambda t, r, u, c: self.consent.on_start(t, r),
            "check": lambda t, r, u, c: self.triage.on_check(t, r),
            "back": lambda t, r, u, c: self.triage.on_back(t, r),
            "cancel": lambda t, r, u, c: self.triage.on_cancel(t, r),
            "help": lambda t, r, u, c: self.consent.on_help(t, r),
            "settings": lambda t, r, u, c: self.settings.on_settings(t, r),
            "language": lambda t, r, u, c: self.settings.on_language(t, r),
            "export": lambda t, r, u, c: self.export.on_export(t, r),
            "delete": lambda t, r, u, c: self.export.on_delete(t, r),
            "diary": lambda t, r, u, c: self.diary.on_diary(t, r, c),
            "summary": lambda t, r, u, c: self.diary.on_summary(t, r),
        }
        for name, handler in commands.items():
            application.add_handler(
                CommandHandler(name, self.wrap(handler), filters=private & message)
            )
        application.add_handler(
            MessageHandler(private & filters.UpdateType.EDITED_MESSAGE, self.wrap(self.on_edited))
        )
        application.add_handler(
            MessageHandler(private & filters.COMMAND & message, self.wrap(self.on_unknown))
        )
        application.add_handler(
            MessageHandler(private & filters.TEXT & message, self.wrap(self.on_text))
        )
        application.add_handler(MessageHandler(private & message, self.wrap(self.on_other)))
        application.add_handler(CallbackQueryHandler(self.wrap(self.on_button)))
        application.add_error_handler(self.on_error)

    def wrap(self, handler: Handler) -> Callable[[Update, Context], object]:
        """A PTB callback that runs `handler` with the update's turn, in its transaction, and
        in the person's language (their app's, as this update says, until they choose one)."""

        async def callback(update: Update, context: Context) -> None:
            with self.store.transaction() as repo:
                turn = current()
                turn.follow_app(repo)
                token = render.LANGUAGE.set(turn.lang(repo))
                try:
                    handler(turn, repo, update, context)
                finally:
                    render.LANGUAGE.reset(token)

        return callback

    # --- messages -------------------------------------------------------------------------

    def on_group(self, turn: Turn, repo: Repo, update: Update, context: Context) -> None:
        self.triage.on_group(turn)

    def on_unknown(self, turn: Turn, repo: Repo, update: Update, context: Context) -> None:
        message = update.effective_message
        self.triage.on_unknown_command(turn, repo, message.text if message else None)

    def read_for_danger(self, turn: Turn, repo: Repo, text: str | None) -> bool:
        """Typed words naming an emergency sign get its advice, wherever they are typed (an
        edit, a photo's caption), before anything else (spec v3 item 10)."""
        flags = danger.read(text or "", turn.lang(repo))
        if flags:
            self.triage.on_danger(turn, repo, text or "", flags)
        return bool(flags)

    def on_edited(self, turn: Turn, repo: Repo, update: Update, context: Context) -> None:
        message = update.effective_message
        if not self.read_for_danger(turn, repo, message.text if message else None):
            self.triage.on_edited(turn, repo)

    def on_other(self, turn: Turn, repo: Repo, update: Update, context: Context) -> None:
        """Stickers, photos, voice notes: a photo's caption is read for danger too."""
        message = update.effective_message
        if not self.read_for_danger(turn, repo, message.caption if message else None):
            self.triage.on_other_message(turn, repo)

    def on_text(self, turn: Turn, repo: Repo, update: Update, context: Context) -> None:
        """Typed words: danger first, always (spec v3 item 10); then diary settings, a typed
        answer, the note for the doctor, or a kind reply."""
        text = (update.effective_message.text if update.effective_message else None) or ""
        flags = danger.read(text, turn.lang(repo))
        if flags:  # an emergency is never answered with "use the buttons", consent or not
            self.triage.on_danger(turn, repo, text, flags)
            return
        if not turn.require_consent(repo):
            return
        if self.diary.on_text(turn, text, context):
            return
        if self.conversations.on_text_input(turn, text):
            return
        if self.triage.on_note_text(turn, repo, text):
            return
        self.triage.on_text(turn, repo, text)

    # --- buttons --------------------------------------------------------------------------

    def on_button(self, turn: Turn, repo: Repo, update: Update, context: Context) -> None:
        """Every button press: always answered (the turn queues the answer), so the phone
        stops its spinner."""
        query = update.callback_query
        assert query is not None
        key = decode(query.data)
        if not turn.private:
            turn.toast(render.notice("GROUP", texts(turn.app_lang)))
        elif key is None:
            turn.toast(render.notice("EXPIRED", turn.texts(repo)))
        elif isinstance(key, MenuKey) and key.action in DIARY_ACTIONS:
            if turn.consented(repo):
                self.diary.on_menu(turn, key, context)
            else:
                turn.toast(render.notice("EXPIRED", turn.texts(repo)))
        elif isinstance(key, MenuKey):
            self.on_menu(turn, repo, key)
        elif not turn.consented(repo):
            turn.toast(render.notice("EXPIRED", turn.texts(repo)))
        elif isinstance(key, SnoozeKey):
            self.diary.on_snooze(turn, key)
        elif isinstance(key, FollowUpKey):
            self.followups.on_button(turn, repo, key)
        else:
            self.conversations.on_answer(turn, key, repo)

    def on_menu(self, turn: Turn, repo: Repo, key: MenuKey) -> None:
        if key.action == "decline":
            self.consent.on_decline(turn, repo)
            return
        if key.action == "consent":
            self.consent.on_agree(turn, repo, key.arg)
            return
        if not turn.consented(repo):
            turn.say(self.consent.intro(turn, repo))
            return
        match key.action:
            case "new":
                self.triage.on_new(turn, repo)
            case "resume":
                self.triage.on_resume(turn, repo)
            case "goon":
                self.triage.on_go_on(turn, repo)
            case "help":
                turn.say(render.help_screen(turn.texts(repo)))
            case "settings":
                self.settings.show(turn, repo)
            case "countries":
                self.settings.on_countries(turn, repo)
            case "country":
                self.settings.on_country(turn, repo, key.arg)
            case "lang":
                self.settings.on_language_button(turn, repo, key.arg)
            case "export" if key.arg:
                self.export.on_choice(turn, repo, key.arg)
            case "export":
                self.export.show_menu(turn, repo)
            case "delete":
                turn.say(render.delete_confirm(turn.texts(repo)))
            case "keep":
                self.export.on_keep(turn)
            case "erase":
                self.export.on_erase(turn)
            case "note":
                self.triage.on_note(turn, repo, key.arg)
            case "nskip":
                self.triage.on_note_skip(turn, repo, key.arg)

    # --- errors ---------------------------------------------------------------------------

    async def on_error(self, update: object, context: Context) -> None:
        """Log the failure (no message text, no token); the update's effects are undone and
        the person is told how to go on (see `lanes.py`)."""
        update_id = update.update_id if isinstance(update, Update) else None
        logger.error("update %s failed", update_id, exc_info=context.error)
        # Outside an update (a job), logging is all there is to do.
        with contextlib.suppress(RuntimeError):
            current().failed = True
