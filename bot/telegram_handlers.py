"""Telegram handlers: parse the update, call the service, render, send. Routing only.

State lives in the database through `FlowService`, never in PTB's memory, so handlers can
run in any process that shares the store. Each state-changing handler claims the update's id
in the same transaction as its effects, so a redelivered update changes nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from functools import wraps
from html import unescape
from typing import TYPE_CHECKING

from telegram import InlineKeyboardMarkup, Message, Update, User
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

from bot import telegram_views as views
from bot.service import (
    Action,
    Back,
    Cancel,
    Choose,
    Done,
    Duplicate,
    FlowService,
    Reply,
    Resume,
    Start,
    Text,
    Who,
)
from bot.telegram_export import ExportBot
from bot.telegram_keys import DIARY_ACTIONS, AnswerKey, DoneKey, MenuKey, NavKey, SnoozeKey, decode
from dialogs.countries import EmergencyNumbers
from dialogs.engine import Outcome, Prompt
from dialogs.records import CANCELLED
from dialogs.vocabulary import Urgency

if TYPE_CHECKING:
    from bot.telegram_diary import DiaryBot

logger = logging.getLogger(__name__)

Handler = Callable[[Update, ContextTypes.DEFAULT_TYPE], Awaitable[None]]
MAX_LOGGED_TEXT = 4096
_TAG = re.compile(r"<[^>]+>")


def plain(html: str) -> str:
    """The transcript keeps what the person read, without markup."""
    return unescape(_TAG.sub("", html))


class TelegramBot:
    """The handlers, bound to the service and content they need."""

    def __init__(self, service: FlowService, numbers: EmergencyNumbers) -> None:
        self.service = service
        self.numbers = numbers
        self.services: dict[str, FlowService] = {service.flow.name: service}
        self.export = ExportBot(self)
        self.diary: DiaryBot | None = None

    def attach_diary(self, diary: DiaryBot) -> None:
        """Route the diary's buttons, note and settings to `diary`."""
        self.diary = diary
        self.services[diary.diary.flow.name] = diary.diary.questions

    def question_screen(self, step: Prompt, conversation_id: int) -> views.Screen:
        """How a question looks: a diary one carries its check-in header and snooze row."""
        if self.diary is not None and self.service_for(conversation_id) is not self.service:
            return self.diary.screen(step, conversation_id)
        return views.question(step, conversation_id)

    def service_for(self, conversation_id: int) -> FlowService:
        """The service of the flow a button's conversation belongs to (triage by default)."""
        return self.services.get(self.service.flow_of(conversation_id) or "", self.service)

    # --- helpers ------------------------------------------------------------------------------

    @staticmethod
    def who(user: User) -> Who:
        return Who("telegram", str(user.id))

    async def send(
        self,
        update: Update,
        screen: views.Screen | str,
        *,
        conversation_id: int | None = None,
    ) -> Message | None:
        if isinstance(screen, str):
            screen = views.Screen(screen)
        chat = update.effective_chat
        if chat is None:
            return None
        message = await chat.send_message(
            screen.text, parse_mode=ParseMode.HTML, reply_markup=screen.markup
        )
        if update.effective_user is not None and chat.type == ChatType.PRIVATE:
            self.service.log_out(
                self.who(update.effective_user),
                plain(screen.text),
                conversation_id=conversation_id,
            )
        return message

    async def edit(
        self, message: Message | None, text: str, markup: InlineKeyboardMarkup | None = None
    ) -> None:
        """Edit a bot message in place; a message that cannot be edited is left as it is."""
        if message is None:
            return
        try:
            await message.edit_text(text, parse_mode=ParseMode.HTML, reply_markup=markup)
        except BadRequest as exc:  # "message is not modified", or too old to edit
            logger.debug("edit skipped: %s", exc.message)
        except TelegramError as exc:  # a cosmetic edit must not keep the next step from showing
            logger.warning("edit failed (%s); going on", type(exc).__name__)

    def consented(self, user: User) -> bool:
        info = self.service.find_user(self.who(user))
        return info is not None and info.consent_at is not None

    async def require_consent(self, update: Update) -> bool:
        """No health question before consent: show the introduction instead."""
        assert update.effective_user is not None
        if self.consented(update.effective_user):
            return True
        await self.send(update, views.NEED_CONSENT)
        await self.send(update, views.INTRO)
        return False

    def claim_only(self, update: Update, said: str | None = None) -> None:
        """Log an incoming message for a consented person, claiming the update with it."""
        user = update.effective_user
        if user is None:
            return
        with self.service.unit(update.update_id) as repo:
            info = repo.find_user("telegram", str(user.id))
            if info is not None and info.consent_at is not None and said is not None:
                repo.add_message(info.id, "in", said[:MAX_LOGGED_TEXT])

    async def show_reply(self, update: Update, reply: Reply) -> None:
        """Send what a triage step looks like: a question, the advice, or a note."""
        if reply.refused == "restarted":
            await self.send(update, views.RESTARTED)
            await self.start_check(update, said=None)
            return
        step = reply.step
        if step is None:
            await self.send(update, views.NO_CHECK)
        elif isinstance(step, Prompt):
            assert reply.conversation_id is not None
            await self.send(
                update,
                self.question_screen(step, reply.conversation_id),
                conversation_id=reply.conversation_id,
            )
        elif isinstance(step, Outcome) and step.state == CANCELLED:
            await self.send(update, views.CANCELLED, conversation_id=reply.conversation_id)
        elif reply.advice is None and self.diary is not None and reply.conversation_id:
            await self.diary.logged(update, reply.conversation_id)
        elif reply.advice is not None:
            assert reply.conversation_id is not None
            await self.send(
                update,
                views.outcome(reply.advice, reply.conversation_id),
                conversation_id=reply.conversation_id,
            )
            await self.maybe_ask_country(update, reply)

    async def maybe_ask_country(self, update: Update, reply: Reply) -> None:
        """After the first result, ask once for the country so the right number shows next.

        Not after emergency advice: then the person should be calling for help, not tapping.
        """
        if reply.user.country is not None or reply.user.country_asked_at is not None:
            return
        if reply.advice is None or reply.advice.urgency is Urgency.EMERGENCY:
            return
        suggested = self.numbers.suggest(
            update.effective_user.language_code if update.effective_user else None
        )
        await self.send(
            update,
            views.country_question(
                suggested,
                reason="One more thing, asked only once: which country are you in? Then I can "
                "show the right emergency number.",
            ),
        )

    async def start_check(self, update: Update, *, said: str | None) -> None:
        assert update.effective_user is not None
        reply = self.service.handle(
            self.who(update.effective_user), Start(), said=said, update_id=update.update_id
        )
        await self.show_reply(update, reply)

    # --- commands -----------------------------------------------------------------------------

    async def on_start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        user = update.effective_user
        assert user is not None
        if not self.consented(user):
            await self.send(update, views.INTRO)
            return
        self.claim_only(update, "/start")
        reply = self.service.handle(self.who(user), Resume())
        if isinstance(reply.step, Prompt):
            await self.send(update, "You have a check in progress; here is where we were.")
            await self.show_reply(update, reply)
        else:
            await self.send(update, views.WELCOME_BACK)

    async def on_check(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if await self.require_consent(update):
            await self.start_check(update, said="/check")

    async def on_back(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self.triage_command(update, Back(), "/back")

    async def on_cancel(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self.triage_command(update, Cancel(), "/cancel")

    async def triage_command(self, update: Update, action: Action, said: str) -> None:
        if not await self.require_consent(update):
            return
        assert update.effective_user is not None
        reply = self.service.handle(
            self.who(update.effective_user), action, said=said, update_id=update.update_id
        )
        await self.show_reply(update, reply)

    async def on_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.claim_only(update, "/help")
        await self.send(update, views.HELP)

    async def on_settings(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if not await self.require_consent(update):
            return
        self.claim_only(update, "/settings")
        await self.show_settings(update)

    async def show_settings(self, update: Update) -> None:
        assert update.effective_user is not None
        info = self.service.find_user(self.who(update.effective_user))
        country = self.numbers.countries.get(info.country or "") if info else None
        await self.send(update, views.settings_screen(country))

    async def on_export(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.claim_only(update, "/export")
        await self.export.show_menu(update)

    async def on_delete(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.claim_only(update, "/delete")
        await self.send(update, views.delete_confirm())

    async def on_unknown_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.claim_only(update, update.effective_message.text if update.effective_message else None)
        await self.send(update, "I don't know that command. " + views.NO_CHECK)

    # --- other messages -----------------------------------------------------------------------

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Free text: the bot works with buttons, so remind and show the open question again."""
        user, message = update.effective_user, update.effective_message
        assert user is not None and message is not None
        if not await self.require_consent(update):
            return
        if self.diary is not None and await self.diary.on_text(update, context):
            return
        if await self.diary_note(update):
            return
        self.claim_only(update, message.text or "")
        for service in self.services.values():  # the open check, or else the open check-in
            reply = service.handle(self.who(user), Resume())
            if isinstance(reply.step, Prompt):
                await self.send(update, views.USE_BUTTONS)
                await self.show_reply(update, reply)
                return
        await self.send(update, views.NO_CHECK)

    async def diary_note(self, update: Update) -> bool:
        """Text typed while the open diary question takes a note: that is the answer."""
        if self.diary is None:
            return False
        user, message = update.effective_user, update.effective_message
        assert user is not None and message is not None
        questions = self.diary.diary.questions
        reply = questions.handle(self.who(user), Resume())
        step = reply.step
        if not isinstance(step, Prompt) or step.question.input_field is None:
            return False
        text = (message.text or "")[:MAX_LOGGED_TEXT]
        reply = questions.handle(
            self.who(user),
            Text(text, conversation_id=reply.conversation_id),
            said=text,
            update_id=update.update_id,
        )
        await self.show_reply(update, reply)
        return True

    async def on_other_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Stickers, photos, voice notes and the like."""
        self.claim_only(update, "[a message the bot cannot read]")
        await self.send(update, views.NOT_TEXT)

    async def on_edited(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.claim_only(update)
        await self.send(update, views.EDITED)

    async def on_group(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Groups and channels: no health conversations there, and nothing stored."""
        chat = update.effective_chat
        if chat is not None:
            await chat.send_message(views.GROUP)

    # --- buttons ------------------------------------------------------------------------------

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Every button press: always answered, so the phone stops its spinner."""
        query = update.callback_query
        assert query is not None
        toast: str | None = None
        try:
            key = decode(query.data)
            chat = update.effective_chat
            if chat is not None and chat.type != ChatType.PRIVATE:
                toast = views.GROUP
            elif key is None:
                toast = views.EXPIRED
            elif isinstance(key, MenuKey) and key.action in DIARY_ACTIONS and self.diary:
                toast = (
                    await self.diary.on_menu(update, key, context)
                    if self.consented(query.from_user)
                    else views.EXPIRED
                )
            elif isinstance(key, MenuKey):
                toast = await self.on_menu(update, key)
            elif not self.consented(query.from_user):
                toast = views.EXPIRED
            elif isinstance(key, SnoozeKey):
                toast = await self.diary.on_snooze(update, key) if self.diary else views.EXPIRED
            else:
                toast = await self.on_answer(update, key)
        finally:
            try:
                await query.answer(toast)
            except TelegramError as exc:  # too old to answer: nothing the person can see
                logger.debug("callback answer skipped: %s", exc)

    async def on_answer(self, update: Update, key: AnswerKey | DoneKey | NavKey) -> str | None:
        query = update.callback_query
        assert query is not None
        message = query.message if isinstance(query.message, Message) else None
        service = self.service_for(key.conversation_id)
        before = service.flow.content.question(getattr(key, "question_id", ""))
        action: Action
        match key:
            case AnswerKey(cid, qid, oid, tick):
                action = Choose(oid, question_id=qid, conversation_id=cid, tick=tick)
                said = self.label(service, qid, oid)
            case DoneKey(cid, qid):
                action, said = Done(question_id=qid, conversation_id=cid), "Done"
            case NavKey("back", cid):
                action, said = Back(conversation_id=cid), "Back"
            case NavKey(_, cid):
                action, said = Cancel(conversation_id=cid), "Cancel"
        reply = service.handle(
            self.who(query.from_user),
            action,
            said=said,
            meta={"button": query.data},
            update_id=update.update_id,
        )
        if reply.refused in ("stale", "no_open_check"):
            answered = [a.question_id for a in reply.answers]
            if (
                isinstance(key, AnswerKey | DoneKey)
                and answered
                and answered[-1] == key.question_id
            ):
                return views.ALREADY
            if reply.step is not None and not isinstance(reply.step, Outcome):
                await self.show_reply(update, reply)
            return views.STALE
        if reply.refused == "nothing_ticked":
            return views.TICK_FIRST
        if reply.refused is not None:
            return views.EXPIRED
        step = reply.step
        if (
            isinstance(key, AnswerKey)
            and key.tick is not None
            and isinstance(step, Prompt)
            and before is not None
            and step.question.id == before.id
        ):
            assert reply.conversation_id is not None
            screen = self.question_screen(step, reply.conversation_id)
            await self.edit(message, screen.text, screen.markup)
            return None
        if before is not None and isinstance(key, AnswerKey | DoneKey):
            record = reply.answers[-1] if reply.answers else None
            await self.edit(message, views.answered(Prompt(before), record))
        elif message is not None:
            await self.edit(message, message.text_html or "", None)
        await self.show_reply(update, reply)
        return None

    @staticmethod
    def label(service: FlowService, question_id: str, option_id: str) -> str:
        question = service.flow.content.question(question_id)
        option = question.option(option_id) if question else None
        return option.label if option else option_id

    async def on_menu(self, update: Update, key: MenuKey) -> str | None:
        query = update.callback_query
        assert query is not None and query.from_user is not None
        user = query.from_user
        message = query.message if isinstance(query.message, Message) else None
        who = self.who(user)
        if key.action == "decline":
            await self.edit(message, views.DECLINED.text)
            return None
        if key.action == "consent":
            self.service.consent(who, language_code=user.language_code, update_id=update.update_id)
            await self.edit(message, views.INTRO.text.rsplit("\n\n", 1)[0] + "\n\n✅ Agreed")
            reply = self.service.handle(who, Start(), said="[agreed to the terms]")
            await self.show_reply(update, reply)
            return None
        if not self.consented(user):
            await self.send(update, views.INTRO)
            return None
        match key.action:
            case "new":
                if message is not None:
                    await self.edit(message, message.text_html or "", None)
                await self.start_check(update, said="New check")
            case "resume":
                await self.show_reply(update, self.service.handle(who, Resume()))
            case "help":
                await self.send(update, views.HELP)
            case "settings":
                await self.show_settings(update)
            case "countries":
                screen = views.country_list(
                    sorted(self.numbers.countries.values(), key=lambda c: c.name)
                )
                await self.edit(message, screen.text, screen.markup)
            case "country":
                return await self.on_country(update, key.arg, message)
            case "export" if key.arg:
                return await self.export.send(update, key.arg)
            case "export":
                await self.export.show_menu(update)
            case "delete":
                await self.send(update, views.delete_confirm())
            case "keep":
                await self.edit(message, "Kept: nothing was deleted.")
            case "erase":
                deleted = self.service.delete(who, update_id=update.update_id)
                await self.edit(message, views.DELETED if deleted else views.NOTHING_STORED)
        return None

    async def on_country(self, update: Update, code: str, message: Message | None) -> str | None:
        assert update.effective_user is not None
        country = self.numbers.countries.get(code.upper())
        if code != "none" and country is None:
            return views.EXPIRED
        self.service.set_country(
            self.who(update.effective_user),
            country.code if country else None,
            update_id=update.update_id,
        )
        text = (
            f"Saved: {country.name}. Emergency number: <b>{country.number}</b>. "
            "/settings changes it."
            if country
            else "OK. I'll show the common emergency numbers. /settings sets a country later."
        )
        await self.edit(message, text)
        return None

    # --- errors -------------------------------------------------------------------------------

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log the failure (no message text, no token) and tell the person how to go on."""
        if isinstance(context.error, Duplicate):
            return
        update_id = update.update_id if isinstance(update, Update) else None
        logger.error("update %s failed", update_id, exc_info=context.error)
        if (
            isinstance(update, Update)
            and update.effective_chat is not None
            and update.effective_chat.type == ChatType.PRIVATE
        ):
            try:
                await update.effective_chat.send_message(views.ERROR)
            except TelegramError as exc:
                logger.warning("could not tell the user about the failure: %s", type(exc).__name__)


def skip_duplicates(handler: Handler) -> Handler:
    """A redelivered update whose effects are already committed is dropped without a word."""

    @wraps(handler)
    async def wrapper(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        try:
            await handler(update, context)
        except Duplicate:
            logger.info("update %s was already handled", update.update_id)

    return wrapper


__all__ = ["TelegramBot", "plain", "skip_duplicates"]
