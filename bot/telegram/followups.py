"""Follow-ups in Telegram (spec v2 item 6): the offer after an `urgent` or `soon` result, the
follow-up message when it is due, and the answers to it.

Follow-ups are rows in the database (see `FollowUpService`); the dispatcher, woken by a
JobQueue job, claims each due one and queues its message in the outbox's bulk lane in the same
transaction, so it is sent exactly once, paced behind people's replies like the diary's
check-ins. A missed or slow run is harmless: the next one finds the same rows.

The words are `dialogs/followup.yaml`'s in the person's language (the service picks them: the
stored person's for a follow-up sent by the job).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from html import escape

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.ext import ContextTypes

from bot.services.flow import Reply
from bot.services.followups import FollowUpService
from bot.telegram import render
from bot.telegram.keys import FollowUpKey, MenuKey, decode, encode
from bot.telegram.turn import BULK, Turn, message_payload, plain
from dialogs.followups import FollowUpQuestion
from dialogs.vocabulary import Urgency
from storage import Repo
from storage.outbox import Outgoing

logger = logging.getLogger(__name__)

REF = "followup"
"""The outbox payload's `ref` key naming the follow-up a queued message asks."""


def _button(label: str, key: FollowUpKey | MenuKey) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=encode(key))


def question_screen(followup_id: int, question: FollowUpQuestion) -> render.Screen:
    """The follow-up: "were you seen?" with one button per answer."""
    rows = [[_button(label, FollowUpKey(followup_id, key))] for key, label in question.options]
    return render.Screen(escape(question.text, quote=False), InlineKeyboardMarkup(rows))


def _answered(text: str, label: str) -> str:
    """A follow-up message once answered: what it asked and the answer, no buttons."""
    return f"{escape(text, quote=False)}\n\n<b>➡️ {escape(label)}</b>"


def _without_offer(message: Message) -> InlineKeyboardMarkup | None:
    """The message's buttons without the follow-up offer's."""
    markup = message.reply_markup
    if markup is None:
        return None
    rows = []
    for row in markup.inline_keyboard:
        kept = [
            button
            for button in row
            if not (
                isinstance(button.callback_data, str)
                and isinstance(decode(button.callback_data), FollowUpKey)
            )
        ]
        if kept:
            rows.append(kept)
    return InlineKeyboardMarkup(rows) if rows else None


class FollowUps:
    def __init__(self, service: FollowUpService) -> None:
        self.service = service
        self.wake: Callable[..., None] = lambda _chats, **_how: None
        """Starts delivery of queued follow-ups (the sender's)."""

    # --- after a result -------------------------------------------------------------------

    def on_result(self, turn: Turn, reply: Reply) -> render.Extra | None:
        """After an `urgent` or `soon` result: offer to follow up (yes / no), as a line and
        two buttons on the result's own message."""
        if reply.advice is None or reply.conversation_id is None:
            return None
        offered = self.service.offer(turn.who, reply.conversation_id, reply.advice.urgency)
        if offered is None:
            return None
        followup_id, offer = offered.followup.id, offered.offer
        return render.Extra(
            offer.text,
            (
                _button(offer.yes_label, FollowUpKey(followup_id, "yes")),
                _button(offer.no_label, FollowUpKey(followup_id, "no")),
            ),
        )

    # --- buttons --------------------------------------------------------------------------

    def on_button(self, turn: Turn, repo: Repo, key: FollowUpKey) -> None:
        if key.action in ("yes", "no"):
            self.on_offer(turn, repo, key)
        else:
            self.on_answer(turn, repo, key)

    def on_offer(self, turn: Turn, repo: Repo, key: FollowUpKey) -> None:
        """Yes or no to the offer: the offer's message then reads as answered."""
        book = self.service.book_of(turn.who)
        accepted = key.action == "yes"
        decide = self.service.accept if accepted else self.service.decline
        followup = decide(turn.who, key.followup_id)
        if followup is None:
            turn.toast(render.EXPIRED)
            return
        offer = book.offer(Urgency(followup.urgency))
        asked = offer.text if offer is not None else ""
        label, said = (
            (book.yes_label, book.accepted) if accepted else (book.no_label, book.declined)
        )
        turn.log_in(repo, label)
        tapped = turn.tapped
        message_id = tapped.message_id if tapped is not None else None
        if tapped is not None and tapped.text_html and asked and tapped.text != asked:
            # The offer sits on the result's message: the result stays as it was, the offer
            # line reads as answered, and its buttons go (the others stay).
            text = render.without_last_line(tapped.text_html, asked)
            screen = render.Screen(f"{text}\n\n<i>{escape(said)}</i>", _without_offer(tapped))
        else:  # an offer sent as a message of its own (before results carried it)
            screen = render.Screen(f"{_answered(asked, label)}\n\n{escape(said)}")
        turn.edit(message_id, screen, log=said, conversation_id=followup.conversation_id)

    def on_answer(self, turn: Turn, repo: Repo, key: FollowUpKey) -> None:
        """An answer to the follow-up: recorded once; thanks, the advice again, or a new check."""
        answered = self.service.answer(turn.who, key.followup_id, key.action)
        if answered is None:
            turn.toast(render.EXPIRED)
            return
        if answered.reply is None:
            turn.toast(render.ALREADY)
            return
        turn.log_in(repo, answered.label)
        message_id = turn.tapped.message_id if turn.tapped is not None else None
        cid = answered.followup.conversation_id
        turn.edit(
            message_id,
            render.Screen(_answered(answered.question.text, answered.label)),
            conversation_id=cid,
        )
        reply = answered.reply
        markup = (
            InlineKeyboardMarkup([[_button(reply.new_check_label, MenuKey("new"))]])
            if reply.new_check_label
            else None
        )
        turn.say(render.Screen(escape(reply.text), markup), conversation_id=cid)

    # --- sending when due -----------------------------------------------------------------

    def dispatch(self) -> int:
        """Queue every follow-up due now in the bulk lane, each claimed in the transaction
        that queues it; returns how many."""
        self.service.retime_unzoned()
        chats: list[int] = []
        seen: set[int] = set()
        while batch := [f for f in self.service.due(channel="telegram") if f.id not in seen]:
            seen.update(f.id for f in batch)
            for followup in batch:
                with self.service.store.transaction() as repo:
                    claimed = self.service.claim(followup.id)
                    if claimed is None:
                        continue  # claimed by another run, or no longer due
                    screen = question_screen(followup.id, claimed.question)
                    chat_id = int(claimed.who.external_id)
                    payload = message_payload(screen, ref={REF: followup.id})
                    repo.outbox.add(chat_id, "send", payload, lane=BULK)
                    repo.add_message(
                        claimed.user_id,
                        "out",
                        plain(screen.text),
                        conversation_id=followup.conversation_id,
                    )
                chats.append(chat_id)
        self.wake(chats, bulk=True)
        return len(chats)

    async def on_dispatch_job(self, _context: ContextTypes.DEFAULT_TYPE) -> None:
        self.dispatch()

    def blocked(self, repo: Repo, _chat_id: int, dropped: list[Outgoing]) -> None:
        """The person blocked the bot: their queued follow-ups failed (no retries)."""
        for row in dropped:
            followup_id = (row.payload.get("ref") or {}).get(REF)
            if followup_id is not None:
                repo.followups.undelivered(int(followup_id))
