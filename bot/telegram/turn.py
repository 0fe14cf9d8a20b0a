"""One update being handled: who sent it, and everything the bot will say back.

Features never call the Bot API. They tell the `Turn` what to send, edit or answer; when the
handler is done, `Turn.queue` writes it all as outbox rows in the update's own transaction,
next to its effects and its processed update id. The sender (`delivery.py`) delivers them.
So a crash can lose neither an answer nor its reply: either both are committed or neither.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cached_property
from html import unescape
from typing import Any

from telegram import InlineKeyboardMarkup, Message, Update, User
from telegram.constants import ChatType

from bot.services.flow import Who
from bot.telegram import render
from bot.telegram.render import Screen, fit
from dialogs.i18n import SOURCE, pick
from dialogs.texts import Texts, texts
from storage import Repo, UserInfo
from storage.outbox import BULK, REPLY, TRAIL

MAX_LOGGED_TEXT = 4096
_TAG = re.compile(r"<[^>]+>")
_current: ContextVar[Turn | None] = ContextVar("turn", default=None)


def plain(html: str) -> str:
    """The transcript keeps what the person read, without markup."""
    return unescape(_TAG.sub("", html))


def who(user: User) -> Who:
    return Who("telegram", str(user.id))


def _markup(markup: InlineKeyboardMarkup | None) -> dict[str, Any] | None:
    return None if markup is None else markup.to_dict()


def message_payload(screen: Screen, **extra: Any) -> dict[str, Any]:
    """An outbox "send" or "edit" payload for a screen."""
    return {"text": fit(screen.text), "markup": _markup(screen.markup), **extra}


@dataclass
class Queued:
    """One thing to deliver: its outbox kind and payload, and what the transcript keeps."""

    kind: str
    payload: dict[str, Any]
    log: str | None = None
    conversation_id: int | None = None
    lane: str = REPLY


@dataclass
class Turn:
    """The update in hand and the replies it has queued so far."""

    update: Update
    queued: list[Queued] = field(default_factory=list)
    toast_text: str | None = None
    failed: bool = False
    _user_info: UserInfo | None = None
    _user_known: bool = False

    # --- who and where --------------------------------------------------------------------

    @property
    def chat_id(self) -> int | None:
        chat = self.update.effective_chat
        return chat.id if chat is not None else None

    @property
    def private(self) -> bool:
        chat = self.update.effective_chat
        return chat is not None and chat.type == ChatType.PRIVATE

    @property
    def user(self) -> User:
        user = self.update.effective_user
        assert user is not None, "every handled update has a sender"
        return user

    @cached_property
    def who(self) -> Who:
        return who(self.user)

    @property
    def tapped(self) -> Message | None:
        """The bot message whose button was pressed (None for typed messages)."""
        query = self.update.callback_query
        return query.message if query is not None and isinstance(query.message, Message) else None

    @property
    def latest_id(self) -> int | None:
        """The id of the message this update is about (the person's, or the one whose button
        they pressed): every reply comes after it, which lets the sender look for a send it
        is unsure of (`delivery.Sender._sent_before`)."""
        query = self.update.callback_query
        if query is not None:
            return None if query.message is None else query.message.message_id
        message = self.update.effective_message
        return None if message is None else message.message_id

    def info(self, repo: Repo) -> UserInfo | None:
        """The person's row, read once per update; None before they agreed to anything."""
        if not self._user_known:
            self._user_info = repo.find_user(self.who.channel, self.who.external_id)
            self._user_known = True
        return self._user_info

    @property
    def app_lang(self) -> str:
        """The language of the person's Telegram app, as this update says (English if none)."""
        user = self.update.effective_user
        return pick(user.language_code) if user is not None else SOURCE

    def lang(self, repo: Repo) -> str:
        """The language to write in: the one the person chose (/language), else their app's,
        as this very update says (so a person who never chose follows their app)."""
        info = self.info(repo) if self.update.effective_user is not None else None
        if info is not None and info.language:
            return info.language
        return self.app_lang

    def texts(self, repo: Repo) -> Texts:
        """Everything the bot says, in the person's language."""
        return texts(self.lang(repo))

    def follow_app(self, repo: Repo) -> None:
        """Keep the stored app language current for a person who never chose one: scheduled
        messages (the diary, follow-ups) and the flows write in it."""
        user = self.update.effective_user
        if user is None or not user.language_code:
            return
        info = self.info(repo)
        if info is None or info.language or info.consent_at is None:
            return
        if info.language_code != user.language_code:
            self._user_info = repo.update_user(info.id, language_code=user.language_code)

    def forget_info(self) -> None:
        """The person's row changed (consent, country, erasure): read it again when asked."""
        self._user_known = False

    def consented(self, repo: Repo) -> bool:
        info = self.info(repo)
        return info is not None and info.consent_at is not None

    def require_consent(self, repo: Repo) -> bool:
        """No health question before consent: show the introduction instead."""
        if self.consented(repo):
            return True
        t = self.texts(repo)
        self.say(render.need_consent(t))
        self.say(render.intro(None, t))
        return False

    def log_in(self, repo: Repo, said: str | None) -> None:
        """Keep what a consented person sent in their transcript (nothing before consent)."""
        info = self.info(repo)
        if info is not None and info.consent_at is not None and said is not None:
            repo.add_message(info.id, "in", said[:MAX_LOGGED_TEXT])

    # --- what to say ----------------------------------------------------------------------

    def say(
        self,
        screen: Screen | str,
        *,
        conversation_id: int | None = None,
        lane: str = REPLY,
        ref: dict[str, Any] | None = None,
    ) -> None:
        """Send a new message."""
        screen = Screen(screen) if isinstance(screen, str) else screen
        payload = message_payload(screen, **({"ref": ref} if ref else {}))
        self.queued.append(Queued("send", payload, plain(screen.text), conversation_id, lane))

    def edit(
        self,
        message_id: int | None,
        screen: Screen | str,
        *,
        log: str | None = None,
        conversation_id: int | None = None,
    ) -> None:
        """Replace a bot message's text and buttons; sent anew if Telegram can't edit it."""
        screen = Screen(screen) if isinstance(screen, str) else screen
        if message_id is None:
            self.say(screen, conversation_id=conversation_id)
            return
        payload = message_payload(screen, message_id=message_id)
        self.queued.append(Queued("edit", payload, log, conversation_id))

    def file(self, recipe: dict[str, Any], *, lane: str = REPLY) -> None:
        """A file built when it is delivered (off the event loop), from `recipe`."""
        self.queued.append(Queued("file", {"recipe": recipe}, lane=lane))

    def toast(self, text: str | None) -> None:
        """The short notice that answers a button press (one per press)."""
        self.toast_text = text

    # --- into the outbox --------------------------------------------------------------------

    def queue(self, repo: Repo) -> list[int]:
        """Write the replies as outbox rows (and the transcript), in the caller's transaction;
        returns the chats that now have something to deliver.

        The answer to a button press is not queued: it only stops the phone's spinner, and
        Telegram forgets it after a while. It is made right after the commit (`lanes.py`),
        and again when the update comes back after a kill (Telegram refuses a second answer,
        harmlessly).
        """
        chats: list[int] = []
        chat_id = self.chat_id
        if chat_id is None or not self.queued:
            return chats
        user = self.info(repo) if self.private else None
        logged = user is not None and user.consent_at is not None
        after = self.latest_id
        answered = False  # once the message with the next buttons is queued, the rest trails
        for item in self.queued:
            if after is not None and item.kind != "file":
                item.payload["after"] = after
            lane = TRAIL if answered and item.lane == REPLY else item.lane
            repo.outbox.add(chat_id, item.kind, item.payload, lane=lane)
            answered = answered or (lane == REPLY and bool(item.payload.get("markup")))
            if logged and item.log:
                assert user is not None
                repo.add_message(user.id, "out", item.log, conversation_id=item.conversation_id)
        if chat_id not in chats:
            chats.append(chat_id)
        return chats


def current() -> Turn:
    """The turn of the update this task is handling."""
    turn = _current.get()
    if turn is None:
        raise RuntimeError("no update is being handled in this task")
    return turn


def begin(update: Update) -> tuple[Turn, object]:
    turn = Turn(update)
    return turn, _current.set(turn)


def end(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


__all__ = [
    "BULK",
    "MAX_LOGGED_TEXT",
    "REPLY",
    "Turn",
    "current",
    "message_payload",
    "plain",
    "who",
]
