"""/settings and /language in Telegram: the person's country (for the emergency number the
advice shows) and the language the bot writes in."""

from __future__ import annotations

from bot.services.flow import FlowService
from bot.telegram import render
from bot.telegram.conversation import Conversations
from bot.telegram.turn import Turn
from dialogs.countries import EmergencyNumbers
from dialogs.i18n import LANGUAGES, NAMES
from dialogs.texts import texts
from storage import Repo


class Settings:
    def __init__(
        self,
        service: FlowService,
        numbers: EmergencyNumbers,
        conversations: Conversations | None = None,
    ) -> None:
        self.service = service
        self.numbers = numbers
        self.conversations = conversations
        """To show the open check again in a newly chosen language."""

    def on_settings(self, turn: Turn, repo: Repo) -> None:
        if not turn.require_consent(repo):
            return
        turn.log_in(repo, "/settings")
        self.show(turn, repo)

    def show(self, turn: Turn, repo: Repo) -> None:
        info = turn.info(repo)
        country = self.numbers.countries.get(info.country or "") if info else None
        turn.say(render.settings_screen(country, turn.texts(repo)))

    def on_countries(self, turn: Turn, repo: Repo) -> None:
        t = turn.texts(repo)
        screen = render.country_list(self.numbers.by_name(t.lang), t)
        tapped = turn.tapped
        turn.edit(tapped.message_id if tapped else None, screen)

    def on_country(self, turn: Turn, repo: Repo, code: str) -> None:
        t = turn.texts(repo)
        country = self.numbers.countries.get(code.upper())
        if code != "none" and country is None:
            turn.toast(render.notice("EXPIRED", t))
            return
        self.service.set_country(turn.who, country.code if country else None)
        turn.forget_info()
        tapped = turn.tapped
        turn.edit(tapped.message_id if tapped else None, render.country_saved(country, t))

    # --- the language ---------------------------------------------------------------------

    def on_language(self, turn: Turn, repo: Repo) -> None:
        """/language: the five languages, each in its own name."""
        if not turn.require_consent(repo):
            return
        turn.log_in(repo, "/language")
        turn.say(render.language_list(turn.lang(repo), turn.texts(repo)))

    def on_language_button(self, turn: Turn, repo: Repo, code: str) -> None:
        """The settings' language button (no code: the list, in that message) or a language
        of the list: stored, confirmed in it, and the open check shown again in it."""
        tapped = turn.tapped
        message_id = tapped.message_id if tapped else None
        if not code:
            turn.edit(message_id, render.language_list(turn.lang(repo), turn.texts(repo)))
            return
        if code not in LANGUAGES:
            turn.toast(render.notice("EXPIRED", turn.texts(repo)))
            return
        turn.log_in(repo, NAMES[code])
        self.service.set_language(turn.who, code)
        turn.forget_info()
        render.LANGUAGE.set(code)  # what this update still says, it says in the new language
        t = texts(code)
        turn.edit(message_id, render.language_changed(t))
        if self.conversations is None:
            return
        found = self.conversations.open_step(turn)
        if found is not None:
            service, reply = found
            self.conversations.show(turn, reply, service)
