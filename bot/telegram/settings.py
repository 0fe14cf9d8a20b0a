"""/settings in Telegram: the person's country, for the emergency number the advice shows."""

from __future__ import annotations

from bot.services.flow import FlowService
from bot.telegram import render
from bot.telegram.turn import Turn
from dialogs.countries import EmergencyNumbers
from storage import Repo


class Settings:
    def __init__(self, service: FlowService, numbers: EmergencyNumbers) -> None:
        self.service = service
        self.numbers = numbers

    def on_settings(self, turn: Turn, repo: Repo) -> None:
        if not turn.require_consent(repo):
            return
        turn.log_in(repo, "/settings")
        self.show(turn, repo)

    def show(self, turn: Turn, repo: Repo) -> None:
        info = turn.info(repo)
        country = self.numbers.countries.get(info.country or "") if info else None
        turn.say(render.settings_screen(country))

    def on_countries(self, turn: Turn) -> None:
        screen = render.country_list(sorted(self.numbers.countries.values(), key=lambda c: c.name))
        tapped = turn.tapped
        turn.edit(tapped.message_id if tapped else None, screen)

    def on_country(self, turn: Turn, code: str) -> None:
        country = self.numbers.countries.get(code.upper())
        if code != "none" and country is None:
            turn.toast(render.EXPIRED)
            return
        self.service.set_country(turn.who, country.code if country else None)
        turn.forget_info()
        text = (
            f"Saved: {country.name}. Emergency number: <b>{country.number}</b>. "
            "/settings changes it."
            if country
            else "OK. I'll show the common emergency numbers. /settings sets a country later."
        )
        tapped = turn.tapped
        turn.edit(tapped.message_id if tapped else None, text)
