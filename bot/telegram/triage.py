"""The triage in Telegram: /check, /back, /cancel, the result's "New check", and what to do
with typed words and other messages while a check is open."""

from __future__ import annotations

from bot.services.flow import Back, Cancel, Resume
from bot.telegram import render
from bot.telegram.conversation import Conversations
from bot.telegram.turn import Turn
from dialogs.engine import Prompt
from storage import Repo


class Triage:
    def __init__(self, conversations: Conversations) -> None:
        self.conversations = conversations

    def on_check(self, turn: Turn, repo: Repo) -> None:
        if turn.require_consent(repo):
            self.conversations.start(turn, said="/check")

    def on_back(self, turn: Turn, repo: Repo) -> None:
        if turn.require_consent(repo):
            self.conversations.command(turn, Back(), "/back")

    def on_cancel(self, turn: Turn, repo: Repo) -> None:
        if turn.require_consent(repo):
            self.conversations.command(turn, Cancel(), "/cancel")

    def on_new(self, turn: Turn) -> None:
        """A "New check" button. An old one never discards an open check: it shows where the
        person is (/check always starts afresh)."""
        triage = self.conversations.triage
        reply = triage.handle(turn.who, Resume())
        if isinstance(reply.step, Prompt):
            turn.toast(render.OPEN_CHECK)
            self.conversations.show(turn, reply, triage)
            return
        self.conversations.start(turn, said="New check")

    def on_resume(self, turn: Turn) -> None:
        found = self.conversations.open_step(turn)
        if found is None:
            turn.say(render.NO_CHECK)
            return
        self.conversations.show(turn, found[1], found[0])

    def on_text(self, turn: Turn, repo: Repo, text: str) -> None:
        """Free text: the bot works with buttons, so remind and show the open question again."""
        turn.log_in(repo, text)
        found = self.conversations.open_step(turn)
        if found is None:
            turn.say(render.NO_CHECK)
            return
        turn.say(render.USE_BUTTONS)
        self.conversations.show(turn, found[1], found[0])

    def on_danger(self, turn: Turn, repo: Repo, text: str, flags: tuple[str, ...]) -> None:
        """Typed words that name an emergency sign: that sign's emergency advice at once
        (spec v2 item 5). Nothing about the open check changes; "go on" shows it again."""
        turn.log_in(repo, text)
        service = self.conversations.triage
        info = turn.info(repo)
        country = info.country if info is not None else None
        advice = service.advice.advise_typed(
            flags,
            emergency_number=service.emergency_number(country),
            urgent_care=service.urgent_care(country),
        )
        book = service.advice
        turn.say(render.typed_danger(advice, book.go_on_label, book.go_on_hint))

    def on_go_on(self, turn: Turn) -> None:
        """ "That's not me, go on": back to where the person was, nothing lost."""
        tapped = turn.tapped
        if tapped is not None:  # the advice stays readable; its button goes
            turn.edit(tapped.message_id, render.Screen(tapped.text_html or "", None))
        found = self.conversations.open_step(turn)
        if found is None:
            turn.say(render.NO_CHECK)
            return
        self.conversations.show(turn, found[1], found[0])

    @staticmethod
    def on_unknown_command(turn: Turn, repo: Repo, text: str | None) -> None:
        turn.log_in(repo, text)
        turn.say("I don't know that command. " + render.NO_CHECK)

    @staticmethod
    def on_other_message(turn: Turn, repo: Repo) -> None:
        """Stickers, photos, voice notes and the like."""
        turn.log_in(repo, "[a message the bot cannot read]")
        turn.say(render.NOT_TEXT)

    @staticmethod
    def on_edited(turn: Turn) -> None:
        turn.say(render.EDITED)

    @staticmethod
    def on_group(turn: Turn) -> None:
        """Groups and channels: no health conversations there, and nothing stored."""
        turn.say(render.GROUP)
