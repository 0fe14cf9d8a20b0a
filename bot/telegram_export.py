"""/export in Telegram: a doctor summary (PDF) or everything (ZIP), for a chosen period.

The files are built from the person's own export (`FlowService.export`, which reads only
their rows) by pure functions; this module only offers the choice and sends the file.
"""

from __future__ import annotations

import io
import json
import re
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Update

from bot import telegram_views as views
from bot.doctor_pdf import doctor_pdf
from bot.export_bundle import build_zip, within
from bot.fhir_export import fhir_bundle
from bot.telegram_keys import MenuKey, encode

if TYPE_CHECKING:
    from bot.telegram_handlers import TelegramBot

PERIODS = {"30": 30, "90": 90, "all": None}
CHOICE = re.compile(r"^(pdf|zip|json|named)(30|90|all)$")
PERIOD_LABELS = (("30", "30 days"), ("90", "90 days"), ("all", "all"))


def _choice(label: str, arg: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=encode(MenuKey("export", arg)))


MENU = views.Screen(
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


class ExportBot:
    def __init__(self, tg: TelegramBot) -> None:
        self.tg = tg

    async def show_menu(self, update: Update) -> None:
        assert update.effective_user is not None
        if self.tg.service.find_user(self.tg.who(update.effective_user)) is None:
            await self.tg.send(update, views.NOTHING_STORED)
            return
        await self.tg.send(update, MENU)

    def zone_of(self, data: dict[str, Any]) -> str:
        """Where the person lives, for local times: the diary's zone, else their country's."""
        schedule = data.get("diary", {}).get("schedule")
        if schedule:
            return str(schedule["timezone"])
        country = self.tg.numbers.countries.get(data["user"].get("country") or "")
        return country.zones[0] if country and country.zones else "UTC"

    async def send(self, update: Update, choice: str) -> str | None:
        """Build and send the chosen file; a toast text when the choice is not valid."""
        user, chat = update.effective_user, update.effective_chat
        match = CHOICE.match(choice)
        if user is None or chat is None or match is None:
            return views.EXPIRED
        kind, period = match.groups()
        data = self.tg.service.export(self.tg.who(user))
        if data is None:
            await self.tg.send(update, views.NOTHING_STORED)
            return None
        zone = self.zone_of(data)
        today = self.tg.service.clock().astimezone(ZoneInfo(zone)).date()
        days = PERIODS[period]
        since = None if days is None else today - timedelta(days=days)
        name = user.full_name if kind == "named" else None
        payload, filename, caption = build_file(
            kind, data, since=since, zone=zone, name=name, today=today
        )
        await chat.send_document(InputFile(io.BytesIO(payload), filename=filename), caption=caption)
        self.tg.service.log_out(self.tg.who(user), f"[sent {filename}]")
        return None


def build_file(
    kind: str,
    data: dict[str, Any],
    *,
    since: date | None,
    zone: str,
    name: str | None,
    today: date,
) -> tuple[bytes, str, str]:
    """The chosen export as (bytes, file name, caption)."""
    stamp = today.strftime("%Y%m%d")
    if kind == "json":
        text = json.dumps(within(data, since=since, zone=zone), ensure_ascii=False, indent=2)
        return (
            text.encode("utf-8"),
            f"nightlegs-export-{stamp}.json",
            "Everything I store about you, as JSON (the schema is in the project's docs).",
        )
    if kind == "zip":
        bundle = build_zip(
            data,
            since=since,
            zone=zone,
            name=None,
            fhir=fhir_bundle(within(data, since=since, zone=zone)),
        )
        return bundle, f"nightlegs-export-{stamp}.zip", "Everything I store about you."
    return (
        doctor_pdf(data, since=since, zone=zone, name=name, today=today),
        f"nightlegs-doctor-summary-{stamp}.pdf",
        "A summary to show your doctor. It is a self-report, not a diagnosis.",
    )
