"""Your data in Telegram: /export (a doctor PDF, a ZIP or JSON per period) and /delete.

Choosing a file queues a recipe in the outbox; the sender builds the file when it delivers
it (from the person's own rows only, in a worker process) and uploads it. So a heavy ZIP
never holds up anyone's tap, and a crash before the upload still delivers it afterwards.

Every screen, button, notice and caption is in the person's language (`UserInfo.lang`; before
anything is stored, their app's), from `dialogs/documents.yaml` (`telegram`); the files are in
the language stored with the person's data (`bot.files.language`).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.files import pool
from bot.services.flow import FlowService, Who
from bot.telegram import render
from bot.telegram.delivery import BuiltFile
from bot.telegram.keys import MenuKey, encode
from bot.telegram.turn import Turn
from dialogs.countries import EmergencyNumbers
from dialogs.i18n import pick
from dialogs.texts import texts
from dialogs.words import Words
from storage import Repo, UserInfo

PERIODS = {"30": 30, "90": 90, "all": None}
CHOICE = re.compile(r"^(pdf|zip|json|named)(30|90|all)$")
DAYS = (30, 90)
"""The periods a file can cover besides everything, in days."""


def _words(lang: str) -> Words:
    return texts(lang).documents


def _choice(label: str, arg: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=encode(MenuKey("export", arg)))


def menu(lang: str) -> render.Screen:
    """What /export offers: a doctor summary, everything or the data, per period."""
    words = _words(lang)

    def row(kind: str) -> list[InlineKeyboardButton]:
        buttons = [
            _choice(words.plural("telegram", f"{kind}_days", n=days), f"{kind}{days}")
            for days in DAYS
        ]
        return [*buttons, _choice(words.text("telegram", f"{kind}_all"), f"{kind}all")]

    return render.Screen(
        words.text("telegram", "menu"),
        InlineKeyboardMarkup(
            [
                row("pdf"),
                row("zip"),
                [_choice(words.text("telegram", "json_all"), "jsonall")],
                [_choice(words.text("telegram", "named_all"), "namedall")],
            ]
        ),
    )


MENU = menu("en")
"""The English menu (as it always was)."""


def delete_confirm(lang: str) -> render.Screen:
    """/delete asks once more, with the buttons that erase or keep."""
    words = _words(lang)
    return render.Screen(
        words.text("telegram", "delete_confirm"),
        InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(
                        words.text("telegram", "erase"), callback_data=encode(MenuKey("erase"))
                    ),
                    InlineKeyboardButton(
                        words.text("telegram", "keep"), callback_data=encode(MenuKey("keep"))
                    ),
                ]
            ]
        ),
    )


def lang_of(turn: Turn, info: UserInfo | None) -> str:
    """The person's language: the stored one, else their app's."""
    return info.lang if info is not None else pick(turn.user.language_code)


class Export:
    def __init__(self, service: FlowService, numbers: EmergencyNumbers) -> None:
        self.service = service
        self.numbers = numbers

    # --- /export --------------------------------------------------------------------------

    def on_export(self, turn: Turn, repo: Repo) -> None:
        turn.log_in(repo, "/export")
        self.show_menu(turn, repo)

    def show_menu(self, turn: Turn, repo: Repo) -> None:
        info = turn.info(repo)
        lang = lang_of(turn, info)
        turn.say(
            menu(lang) if info is not None else _words(lang).text("telegram", "nothing_stored")
        )

    def on_choice(self, turn: Turn, repo: Repo, choice: str) -> None:
        """Queue the chosen file; it is built and sent by the sender."""
        info = turn.info(repo)
        words = _words(lang_of(turn, info))
        if CHOICE.match(choice) is None:
            turn.toast(words.text("telegram", "expired"))
            return
        if info is None:
            turn.say(words.text("telegram", "nothing_stored"))
            return
        recipe: dict[str, Any] = {"kind": "export", "choice": choice, "lang": info.lang}
        if choice.startswith("named"):
            recipe["name"] = turn.user.full_name
        turn.toast(words.text("telegram", "preparing"))
        turn.file(recipe)

    def zone_of(self, data: dict[str, Any]) -> str:
        """Where the person lives, for local times: the diary's zone, else their country's."""
        schedule = data.get("diary", {}).get("schedule")
        if schedule:
            return str(schedule["timezone"])
        country = self.numbers.countries.get(data["user"].get("country") or "")
        return country.zones[0] if country and country.zones else "UTC"

    async def make_file(self, chat_id: int, recipe: dict[str, Any]) -> BuiltFile | str:
        """Build the file a recipe asks for, from this chat's person's own data."""
        from bot.files.exports import build_file  # noqa: PLC0415 - loads nothing heavy itself

        match = CHOICE.match(str(recipe.get("choice", "")))
        assert match is not None, "recipes are checked when queued"
        kind, period = match.groups()
        who = Who("telegram", str(chat_id))
        data = self.service.export(who)
        if data is None:
            lang = str(recipe.get("lang", ""))
            return _words(pick(lang)).text("telegram", "nothing_stored")
        zone = self.zone_of(data)
        today = self.service.clock().astimezone(ZoneInfo(zone)).date()
        days = PERIODS[period]
        since = None if days is None else today - timedelta(days=days)
        name = recipe.get("name") if kind == "named" else None
        payload, filename, caption = await pool.run(
            build_file, kind, data, since=since, zone=zone, name=name, today=today
        )
        self.service.log_out(who, f"[sent {filename}]")
        return BuiltFile(payload, filename, caption)

    # --- /delete --------------------------------------------------------------------------

    @staticmethod
    def on_delete(turn: Turn, repo: Repo) -> None:
        turn.log_in(repo, "/delete")
        Export.confirm_delete(turn, repo)

    @staticmethod
    def confirm_delete(turn: Turn, repo: Repo) -> None:
        """The question before erasing (for /delete and the menu's delete button)."""
        turn.say(delete_confirm(lang_of(turn, turn.info(repo))))

    def _lang(self, turn: Turn, repo: Repo | None) -> str:
        info = turn.info(repo) if repo is not None else self.service.find_user(turn.who)
        return lang_of(turn, info)

    def on_keep(self, turn: Turn, repo: Repo | None = None) -> None:
        words = _words(self._lang(turn, repo))
        tapped = turn.tapped
        turn.edit(tapped.message_id if tapped else None, words.text("telegram", "kept"))

    def on_erase(self, turn: Turn, repo: Repo | None = None) -> None:
        words = _words(self._lang(turn, repo))  # read before the person's row is gone
        deleted = self.service.delete(turn.who)
        turn.forget_info()
        tapped = turn.tapped
        turn.edit(
            tapped.message_id if tapped else None,
            words.text("telegram", "deleted" if deleted else "nothing_stored"),
        )
