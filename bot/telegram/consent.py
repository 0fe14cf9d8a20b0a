"""Onboarding: the introduction, agreeing to it (nothing is stored before), /start and /help."""

from __future__ import annotations

from bot.services.flow import FlowService
from bot.telegram import render
from bot.telegram.conversation import Conversations
from bot.telegram.turn import Turn
from storage import Repo

AGREED = "\n\n✅ Agreed"


class Consent:
    def __init__(self, triage: FlowService, conversations: Conversations) -> None:
        self.triage = triage
        self.conversations = conversations

    def on_start(self, turn: Turn, repo: Repo) -> None:
        if not turn.consented(repo):
            turn.say(render.INTRO)
            return
        turn.log_in(repo, "/start")
        if not self.show_open(turn, lead="You have a check in progress; here is where we were."):
            turn.say(render.WELCOME_BACK)

    def show_open(self, turn: Turn, *, lead: str) -> bool:
        """Show the open check or check-in as a new message; False if there is none."""
        found = self.conversations.open_step(turn)
        if found is None:
            return False
        service, reply = found
        turn.say(lead)
        self.conversations.show(turn, reply, service)
        return True

    @staticmethod
    def on_help(turn: Turn, repo: Repo) -> None:
        turn.log_in(repo, "/help")
        turn.say(render.HELP)

    def on_agree(self, turn: Turn, repo: Repo) -> None:
        """ "I agree": store the person and start the check; an old copy never discards one."""
        if turn.consented(repo):
            if not self.show_open(turn, lead="You have a check open; here is where you are."):
                self.conversations.start(turn, said="[agreed to the terms]")
            return
        self.triage.consent(turn.who, language_code=turn.user.language_code)
        turn.forget_info()
        tapped = turn.tapped
        if tapped is not None:
            turn.edit(tapped.message_id, render.INTRO.text.rsplit("\n\n", 1)[0] + AGREED)
        self.conversations.start(turn, said="[agreed to the terms]")

    @staticmethod
    def on_decline(turn: Turn) -> None:
        tapped = turn.tapped
        turn.edit(tapped.message_id if tapped else None, render.DECLINED.text)
