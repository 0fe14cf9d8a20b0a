"""Onboarding: the introduction, agreeing to it (nothing is stored before), /start and /help.

Agreeing gives the country in the same tap (spec v3 item 9: suggested from the person's
Telegram language, another one from a list, or none), and edits the introduction into the
check's first question: from /start to the first question costs one message and one edit.
Everything is written in the person's language: their app's until they choose one.
"""

from __future__ import annotations

from html import escape

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

    def intro(self, turn: Turn, repo: Repo) -> render.Screen:
        """The introduction, suggesting the country of the person's Telegram language."""
        suggested = self.conversations.numbers.suggest(turn.user.language_code)
        return render.intro(suggested, turn.texts(repo))

    def on_start(self, turn: Turn, repo: Repo) -> None:
        if not turn.consented(repo):
            turn.say(self.intro(turn, repo))
            return
        turn.log_in(repo, "/start")
        t = turn.texts(repo)
        if not self.show_open(turn, repo, lead=t.screens.text("menu", "in_progress")):
            turn.say(render.welcome_back(t))

    def show_open(self, turn: Turn, repo: Repo, *, lead: str) -> bool:
        """Show the open check or check-in as a new message (`lead`, plain text, above it);
        False if there is none."""
        found = self.conversations.open_step(turn)
        if found is None:
            return False
        service, reply = found
        turn.say(render.Screen(escape(lead, quote=False)))
        self.conversations.show(turn, reply, service)
        return True

    @staticmethod
    def on_help(turn: Turn, repo: Repo) -> None:
        turn.log_in(repo, "/help")
        turn.say(render.help_screen(turn.texts(repo)))

    def on_agree(self, turn: Turn, repo: Repo, arg: str = "") -> None:
        """An "OK" button: store the person (with the country it names, if any) and turn the
        introduction into the check's first question. An old copy never discards a check."""
        tapped = turn.tapped
        message_id = tapped.message_id if tapped is not None else None
        t = turn.texts(repo)
        if turn.consented(repo):
            if not self.show_open(turn, repo, lead=t.screens.text("menu", "open_here")):
                self.conversations.start(turn, said=t.screens.text("transcript", "agreed"))
            return
        numbers = self.conversations.numbers
        if arg in (PICK, BACK):
            screen = (
                render.intro_countries(numbers.by_name(t.lang), t)
                if arg == PICK
                else self.intro(turn, repo)
            )
            turn.edit(message_id, screen)
            return
        country = numbers.countries.get(arg.upper()) if arg else None
        if arg and country is None:
            turn.toast(render.notice("EXPIRED", t))
            return
        self.triage.consent(turn.who, language_code=turn.user.language_code)
        # Asked and answered, or skipped: results show that country's numbers, or the
        # common ones listed once; /settings changes it.
        self.triage.set_country(turn.who, country.code if country else None)
        turn.forget_info()
        self.conversations.start(
            turn,
            said=t.screens.text("transcript", "agreed"),
            message_id=message_id,
            lead=render.agreed(country, t),
        )

    @staticmethod
    def on_decline(turn: Turn, repo: Repo) -> None:
        tapped = turn.tapped
        turn.edit(tapped.message_id if tapped else None, render.declined(turn.texts(repo)).text)
