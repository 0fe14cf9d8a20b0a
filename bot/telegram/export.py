"""Your data in Telegram: /export (a doctor PDF, a ZIP or JSON per period) and /delete.

Choosing a file queues a recipe in the outbox; the sender builds the file when it delivers
it (from the person's own rows only, in a worker process) and uploads it. So a heavy ZIP
never holds up anyone's tap, and a crash before the upload still delivers it afterwards.
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
from storage import Repo

PERIODS = {"30": 30, "90": 90, "all": None}
CHOICE = re.compile(r"^(pdf|zip|json|named)(30|90|all)$")
PERIOD_LABELS = (("30", "30 days"), ("90", "90 days"), ("all", "all"))


def _choice(label: str, arg: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=encode(MenuKey("export", arg)))


MENU = render.Screen(
    "<b>Export</b>: what would you like?\n"
    "🩺 <b>Doctor summary</b>: one or two pages to show your doctor (PDF).\n"
    "🗂 <b>Everything</b>: all I store about you as files: data (JSON), diary table (CSV), "
    "conversation transcript, the summary PDF and a FHIR record (ZIP).\n"
    "🧾 <b>Data</b>: everything as one JSON file (for other apps).\n"
    "Your name is left out unless you choose the button that adds it.",
    InlineKeyboardMarkup(
        [
            [_choice(f"🩺 PDF · {label}", f"pdf{key}") for key, label in PERIOD_LABELS],
            [_choice(f"🗂 ZIP · {label}", f"zip{key}") for key, label in PERIOD_LABELS],
            [_choice("🧾 Data (JSON) · all", "jsonall")],
            [_choice("🩺 PDF with my name · all", "namedall")],
        ]
    ),
)


class Export:
    def __init__(self, service: FlowService, numbers: EmergencyNumbers) -> None:
        self.service = service
        self.numbers = numbers

    # --- /export --------------------------------------------------------------------------

    def on_export(self, turn: Turn, repo: Repo) -> None:
        turn.log_in(repo, "/export")
        self.show_menu(turn, repo)

    def show_menu(self, turn: Turn, repo: Repo) -> None:
        turn.say(MENU if turn.info(repo) is not None else render.NOTHING_STORED)

    def on_choice(self, turn: Turn, repo: Repo, choice: str) -> None:
        """Queue the chosen file; it is built and sent by the sender."""
        if CHOICE.match(choice) is None:
            turn.toast(render.EXPIRED)
            return
        if turn.info(repo) is None:
            turn.say(render.NOTHING_STORED)
            return
        recipe: dict[str, Any] = {"kind": "export", "choice": choice}
        if choice.startswith("named"):
            recipe["name"] = turn.user.full_name
        turn.toast("Preparing your file…")
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
            return render.NOTHING_STORED
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
        turn.say(render.delete_confirm())

    @staticmethod
    def on_keep(turn: Turn) -> None:
        tapped = turn.tapped
        turn.edit(tapped.message_id if tapped else None, "Kept: nothing was deleted.")

    def on_erase(self, turn: Turn) -> None:
        deleted = self.service.delete(turn.who)
        turn.forget_info()
        tapped = turn.tapped
        turn.edit(
            tapped.message_id if tapped else None,
            render.DELETED if deleted else render.NOTHING_STORED,
        )
