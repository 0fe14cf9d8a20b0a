"""Onboarding: the introduction, agreeing to it (nothing is stored before), /start and /help.

Agreeing gives the country in the same tap (spec v3 item 9: suggested from the person's
Telegram language, another one from a list, or none), and edits the introduction into the
check's first question: from /start to the first question costs one message and one edit.
"""

from __future__ import annotations

from bot.services.flow import FlowService
from bot.telegram import render
from bot.telegram.conversation import Conversations
from bot.telegram.turn import Turn
from storage import Repo

PICK, BACK = "pick", "back"
"""The consent button's argument: show the country list, or the introduction again. A country
code agrees in that country; none (an introduction's "skip", or one older than spec v3)
agrees without one."""


class Consent:
    def __init__(self, triage: FlowService, conversations: Conversations) -> None:
        self.triage = triage
        self.conversations = conversations

    def intro(self, turn: Turn) -> render.Screen:
        """The introduction, suggesting the country of the person's Telegram language."""
        return render.intro(self.conversations.numbers.suggest(turn.user.language_code))

    def on_start(self, turn: Turn, repo: Repo) -> None:
        if not turn.consented(repo):
            turn.say(self.intro(turn))
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

    def on_agree(self, turn: Turn, repo: Repo, arg: str = "") -> None:
        """An "OK" button: store the person (with the country it names, if any) and turn the
        introduction into the check's first question. An old copy never discards a check."""
        tapped = turn.tapped
        message_id = tapped.message_id if tapped is not None else None
        if turn.consented(repo):
            if not self.show_open(turn, lead="You have a check open; here is where you are."):
                self.conversations.start(turn, said="[agreed to the terms]")
            return
        numbers = self.conversations.numbers
        if arg in (PICK, BACK):
            countries = sorted(numbers.countries.values(), key=lambda c: c.name)
            screen = render.intro_countries(countries) if arg == PICK else self.intro(turn)
            turn.edit(message_id, screen)
            return
        country = numbers.countries.get(arg.upper()) if arg else None
        if arg and country is None:
            turn.toast(render.EXPIRED)
            return
        self.triage.consent(turn.who, language_code=turn.user.language_code)
        # Asked and answered, or skipped: results show that country's numbers, or the
        # common ones listed once; /settings changes it.
        self.triage.set_country(turn.who, country.code if country else None)
        turn.forget_info()
        self.conversations.start(
            turn,
            said="[agreed to the terms]",
            message_id=message_id,
            lead=render.agreed(country),
        )

    @staticmethod
    def on_decline(turn: Turn) -> None:
        tapped = turn.tapped
        turn.edit(tapped.message_id if tapped else None, render.DECLINED.text)
