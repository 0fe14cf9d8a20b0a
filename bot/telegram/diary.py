"""The diary in Telegram: /diary settings, check-in messages, snooze, /summary, and dispatch.

Check-ins are rows in the database (see `DiaryService`); a JobQueue job only wakes the
dispatcher, which opens due check-ins and queues them in the outbox's bulk lane, in the same
transaction that marks them sent. The sender paces them (≤30 a second overall, ≤1 a second per
chat) behind people's replies. A missed or slow run is harmless: the next one finds the same
rows.

Everything here is in the person's language (`UserInfo.lang`): the words are
`dialogs/checkins.yaml`'s, dates and times CLDR's. A check-in sent by the job has no update to
read a language from, so it uses the stored person's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import date, time
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.ext import ContextTypes

from bot.files import pool
from bot.services.diary import DiaryService
from bot.services.diary import Outgoing as Claimed
from bot.services.flow import Reply, Resume, Who
from bot.telegram import render
from bot.telegram.delivery import BuiltFile
from bot.telegram.keys import MenuKey, SnoozeKey, encode
from bot.telegram.turn import BULK, Turn, message_payload, plain
from dialogs.engine import Prompt
from dialogs.i18n import clock, pick
from dialogs.nights import (
    COMMON_ZONES,
    city_name,
    night_name,
    parse_time,
    parse_zone,
    zone_from_local_now,
)
from dialogs.texts import texts
from dialogs.trends import render_text
from dialogs.words import Words
from storage import Repo
from storage.outbox import Outgoing

logger = logging.getLogger(__name__)

EVENING = ("20:00", "21:00", "22:00", "23:00")
MORNING = ("07:00", "08:00", "09:00")
PAUSES = (3, 7)
AWAITING = "diary_awaiting"
DISPATCH_BATCH = 5
"""Check-ins opened or queued between two looks at the event loop."""
DISPATCH_PAUSE = 0.002
"""Seconds between batches: long enough for a tap in progress to take its next step."""


def _button(label: str, action: str, arg: str = "") -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=encode(MenuKey(action, arg)))


def _hhmm(value: time) -> str:
    return value.strftime("%H%M")


def _tapped_id(turn: Turn) -> int | None:
    return turn.tapped.message_id if turn.tapped is not None else None


class Diary:
    def __init__(
        self,
        diary: DiaryService,
        countries: Callable[[str | None], tuple[str, ...]],
    ) -> None:
        self.diary = diary
        self.countries = countries
        """The time zones of a country code (empty when unknown)."""
        self.wake: Callable[..., None] = lambda _chats, **_how: None
        """Starts delivery of queued check-ins (the sender's)."""

    # --- the person's language ------------------------------------------------------------

    def lang(self, turn: Turn) -> str:
        """The person's language: chosen or their app's (before they are stored: the app's)."""
        with self.diary.store.transaction() as repo:
            info = turn.info(repo)
        return info.lang if info is not None else pick(turn.user.language_code)

    def words(self, turn: Turn) -> Words:
        return texts(self.lang(turn)).checkins

    # --- /diary ---------------------------------------------------------------------------

    def on_diary(self, turn: Turn, repo: Repo, context: ContextTypes.DEFAULT_TYPE) -> None:
        if not turn.require_consent(repo):
            return
        turn.log_in(repo, "/diary " + " ".join(context.args or []))
        if context.args:
            self.set_from_text(turn, " ".join(context.args))
            return
        self.show_settings(turn)

    def show_settings(self, turn: Turn) -> None:
        w = self.words(turn)
        schedule = self.diary.schedule(turn.who)
        if schedule is None or not schedule.enabled:
            turn.say(render.Screen(w.text("settings", "intro"), self.times_markup(w)))
            return
        lines = [
            w.text("settings", "enabled", schedule=escape(self.diary.describe(schedule, w.lang)))
        ]
        if schedule.next_night:
            lines.append(w.text("settings", "next", night=night_name(schedule.next_night, w.lang)))
        if schedule.paused_until:
            night = night_name(schedule.paused_until, w.lang)
            lines.append(w.text("settings", "paused", night=night))
        rows = [
            [
                _button(w.text("settings", "change_time"), "dtimes"),
                _button(w.text("settings", "change_zone"), "dzones"),
            ],
            [_button(w.plural("settings", "pause", n=n), "dpause", str(n)) for n in PAUSES],
            [
                _button(w.text("settings", "backfill"), "dfill"),
                _button(w.text("settings", "summary"), "summary"),
            ],
            [_button(w.text("settings", "stop"), "dstop")],
        ]
        turn.say(render.Screen("\n".join(lines), InlineKeyboardMarkup(rows)))

    @staticmethod
    def times_markup(w: Words) -> InlineKeyboardMarkup:
        rows = [
            [_button(f"🌙 {t}", "dtime", t.replace(":", "")) for t in EVENING],
            [_button(f"☀️ {t}", "dtime", t.replace(":", "")) for t in MORNING],
            [_button(w.text("settings", "type_time"), "dtime", "type")],
        ]
        return InlineKeyboardMarkup(rows)

    def zones_markup(self, turn: Turn, repo: Repo, at: time, w: Words) -> InlineKeyboardMarkup:
        """Zones of the person's country when known, else a short list across the world."""
        info = turn.info(repo)
        zones = self.countries(info.country if info else None)
        names = list(zones) if zones else list(COMMON_ZONES[:9])
        now = self.diary.clock()
        buttons = [
            _button(
                f"{city_name(name, w.lang)} ({now.astimezone(ZoneInfo(name)):%H:%M})",
                "dzone",
                f"{_hhmm(at)}/{name}",
            )
            for name in names
        ]
        rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
        rows.append([_button(w.text("settings", "type_zone"), "dzone", f"{_hhmm(at)}/type")])
        return InlineKeyboardMarkup(rows)

    def ask_zone(self, turn: Turn, at: time) -> None:
        w = self.words(turn)
        with self.diary.store.transaction() as repo:
            markup = self.zones_markup(turn, repo, at, w)
        turn.say(render.Screen(w.text("settings", "ask_zone", time=clock(at, w.lang)), markup))

    def set_from_text(self, turn: Turn, text: str) -> None:
        """`/diary 21:30 Europe/Berlin` (or a city) sets time and zone in one go."""
        first, _, rest = text.strip().partition(" ")
        at = parse_time(first)
        zone = parse_zone(rest) if rest else None
        if at is None:
            turn.say(self.words(turn).text("typed", "no_time"))
            return
        if zone is None:
            schedule = self.diary.schedule(turn.who)
            if schedule is not None and not rest:
                self.confirm(turn, at, ZoneInfo(schedule.zone))
                return
            self.ask_zone(turn, at)
            return
        self.confirm(turn, at, zone)

    def confirm(self, turn: Turn, at: time, zone: ZoneInfo) -> None:
        w = self.words(turn)
        schedule = self.diary.set_schedule(turn.who, at, zone)
        said = {
            "schedule": escape(self.diary.describe(schedule, w.lang)),
            "now": clock(self.diary.clock().astimezone(zone).time(), w.lang),
        }
        if schedule.next_night:
            night = night_name(schedule.next_night, w.lang)
            text = w.text("settings", "confirmed_first", night=night, **said)
        else:
            text = w.text("settings", "confirmed", **said)
        turn.say(render.Screen(f"{text}\n{w.text('settings', 'confirmed_hint')}"))

    # --- buttons --------------------------------------------------------------------------

    def on_menu(self, turn: Turn, key: MenuKey, context: ContextTypes.DEFAULT_TYPE) -> None:
        who = turn.who
        match key.action:
            case "diary":
                self.show_settings(turn)
            case "dtimes":
                w = self.words(turn)
                turn.say(render.Screen(w.text("settings", "pick_time"), self.times_markup(w)))
            case "dtime" if key.arg == "type":
                context.user_data[AWAITING] = "time"  # type: ignore[index]
                turn.say(self.words(turn).text("typed", "ask_time"))
            case "dtime":
                at = parse_time(key.arg)
                if at is None:
                    turn.toast(render.EXPIRED)
                    return
                schedule = self.diary.schedule(who)
                if schedule is not None and schedule.enabled:
                    self.confirm(turn, at, ZoneInfo(schedule.zone))
                else:
                    self.ask_zone(turn, at)
            case "dzones":
                schedule = self.diary.schedule(who)
                self.ask_zone(turn, schedule.local_time if schedule else time(21, 0))
            case "dzone":
                self.on_zone(turn, key.arg, context)
            case "dpause":
                until = self.diary.pause(who, int(key.arg or "0"))
                if until is None:
                    turn.toast(render.EXPIRED)
                    return
                w = self.words(turn)
                turn.say(w.text("settings", "paused_until", night=night_name(until, w.lang)))
            case "dstop":
                self.diary.stop(who)
                turn.say(self.words(turn).text("settings", "stopped"))
            case "dfill":
                self.on_backfill(turn, key.arg)
            case "summary":
                self.send_summary(turn)

    def on_zone(self, turn: Turn, arg: str, context: ContextTypes.DEFAULT_TYPE) -> None:
        hhmm, _, name = arg.partition("/")
        at = parse_time(hhmm)
        if at is None:
            turn.toast(render.EXPIRED)
            return
        if name == "type":
            context.user_data[AWAITING] = f"zone {hhmm}"  # type: ignore[index]
            turn.say(self.words(turn).text("typed", "ask_place"))
            return
        zone = parse_zone(name)
        if zone is None:
            turn.toast(render.EXPIRED)
            return
        self.confirm(turn, at, zone)

    def on_snooze(self, turn: Turn, key: SnoozeKey) -> None:
        checkin = self.diary.snooze(turn.who, key.checkin_id, key.minutes)
        if checkin is None:
            turn.toast(render.EXPIRED)
            return
        w = self.words(turn)
        if key.minutes:
            turn.edit(_tapped_id(turn), w.plural("checkin", "snoozed", n=key.minutes))
            return
        night = night_name(checkin.night, w.lang)
        turn.edit(_tapped_id(turn), w.text("checkin", "skipped", night=night))

    def on_backfill(self, turn: Turn, arg: str) -> None:
        who = turn.who
        w = self.words(turn)
        if not arg:
            nights = self.diary.backfill_nights(who)
            if not nights:
                turn.say(w.text("backfill", "none"))
                return
            rows = [[_button(night_name(n, w.lang), "dfill", n.isoformat())] for n in nights]
            turn.say(render.Screen(w.text("backfill", "which"), InlineKeyboardMarkup(rows)))
            return
        try:
            night = date.fromisoformat(arg)
        except ValueError:
            turn.toast(render.EXPIRED)
            return
        outgoing = self.diary.start_backfill(who, night)
        if outgoing is None:
            turn.say(w.text("backfill", "too_late"))
            return
        reply = self.diary.questions.handle(who, Resume())
        if isinstance(reply.step, Prompt) and reply.conversation_id is not None:
            turn.say(
                self.screen(reply.step, reply.conversation_id),
                conversation_id=reply.conversation_id,
            )

    # --- typed input ----------------------------------------------------------------------

    def on_text(self, turn: Turn, text: str, context: ContextTypes.DEFAULT_TYPE) -> bool:
        """Typed diary settings (time, zone). True when the text was for the diary."""
        awaiting = context.user_data.pop(AWAITING, None) if context.user_data is not None else None
        if not awaiting or not text:
            return False
        text = text.strip()[:64]
        w = self.words(turn)
        if awaiting == "time":
            at = parse_time(text)
            if at is None:
                context.user_data[AWAITING] = "time"  # type: ignore[index]
                turn.say(w.text("typed", "time_again"))
                return True
            schedule = self.diary.schedule(turn.who)
            if schedule is not None and schedule.enabled:
                self.confirm(turn, at, ZoneInfo(schedule.zone))
            else:
                self.ask_zone(turn, at)
            return True
        at = parse_time(awaiting.split(" ", 1)[1]) or time(21, 0)
        zone = parse_zone(text)
        if zone is None and (local_now := parse_time(text)) is not None:
            matches = zone_from_local_now(local_now, self.diary.clock(), list(COMMON_ZONES))
            zone = ZoneInfo(matches[0]) if len(matches) == 1 else None
            if len(matches) > 1:
                rows = [[_button(m, "dzone", f"{_hhmm(at)}/{m}")] for m in matches[:8]]
                turn.say(render.Screen(w.text("typed", "zones_fit"), InlineKeyboardMarkup(rows)))
                return True
        if zone is None:
            context.user_data[AWAITING] = awaiting  # type: ignore[index]
            turn.say(w.text("typed", "unknown_place"))
            return True
        self.confirm(turn, at, zone)
        return True

    # --- check-ins ------------------------------------------------------------------------

    def screen(self, step: Prompt, conversation_id: int) -> render.Screen:
        """A diary question as a check-in: which night it is about, and snooze while open.
        In the stored person's language: a check-in is sent by a job, with no update."""
        screen = render.question(step, conversation_id)
        checkin = self.diary.night_of(conversation_id)
        if checkin is None:
            return screen
        w = texts(self.diary.lang_of_user(checkin.user_id)).checkins
        night = night_name(checkin.night, w.lang)
        rows = list(screen.markup.inline_keyboard) if screen.markup else []
        if checkin.backfill:
            header = w.text("checkin", "backfill", night=night)
        else:
            lead = "reminder" if checkin.remind_at else "header"
            header = w.text("checkin", lead, night=night)
            rows.append(
                [
                    InlineKeyboardButton(
                        w.text("checkin", label),
                        callback_data=encode(SnoozeKey(checkin.id, minutes)),
                    )
                    for label, minutes in (("snooze_30", 30), ("snooze_60", 60), ("skip", 0))
                ]
            )
        return render.Screen(
            f"<b>{escape(header)}</b>\n\n{screen.text}", InlineKeyboardMarkup(rows)
        )

    async def dispatch(self) -> int:
        """Open every check-in due now and queue it in the bulk lane; returns how many.

        Works in small batches and lets the event loop run between them, so a fan-out of
        thousands of check-ins never holds up anyone's tap for long.
        """
        while self.diary.open_due(limit=DISPATCH_BATCH):
            await asyncio.sleep(DISPATCH_PAUSE)
        queued = 0
        while batch := self.diary.claim_outgoing(limit=DISPATCH_BATCH):
            chats = self.queue_checkins(batch)
            self.wake(chats, bulk=True)
            queued += len(chats)
            await asyncio.sleep(DISPATCH_PAUSE)
        return queued

    def queue_checkins(self, batch: list[Claimed]) -> list[int]:
        """Queue claimed check-ins in the bulk lane, each in the transaction that marks it
        sent; returns the chats to wake."""
        chats: list[int] = []
        for item in batch:
            with self.diary.store.transaction() as repo:
                reply = self.diary.questions.handle(item.who, Resume())
                if not isinstance(reply.step, Prompt) or reply.conversation_id is None:
                    repo.diary.mark_sent(item.checkin.id, 0, self.diary.clock())
                    continue  # answered meanwhile: nothing to ask
                screen = self.screen(reply.step, reply.conversation_id)  # before: a reminder?
                repo.diary.mark_sent(item.checkin.id, 0, self.diary.clock())
                chat_id = int(item.who.external_id)
                payload = message_payload(screen, ref={"checkin": item.checkin.id})
                repo.outbox.add(chat_id, "send", payload, lane=BULK)
                repo.add_message(
                    reply.user.id, "out", plain(screen.text), conversation_id=reply.conversation_id
                )
            chats.append(chat_id)
        return chats

    async def on_dispatch_job(self, _context: ContextTypes.DEFAULT_TYPE) -> None:
        await self.dispatch()

    def delivered(self, repo: Repo, row: Outgoing, message_id: int | None) -> None:
        """A check-in reached the person: remember its message."""
        checkin = (row.payload.get("ref") or {}).get("checkin")
        if checkin is not None and message_id is not None:
            repo.diary.set_message(int(checkin), message_id)

    def blocked(self, repo: Repo, chat_id: int, dropped: list[Outgoing]) -> None:
        """The person blocked the bot: switch their check-ins off, no retries."""
        for row in dropped:
            checkin = (row.payload.get("ref") or {}).get("checkin")
            if checkin is not None:
                repo.diary.mark_undelivered(int(checkin))
        user = repo.find_user("telegram", str(chat_id))
        if user is not None:
            repo.diary.disable(user.id)
            logger.info("check-ins switched off for user %s: the bot was blocked", user.id)

    def logged(self, turn: Turn, reply: Reply) -> None:
        """After a check-in is answered: thanks, and on a Sunday night the week's summary."""
        assert reply.conversation_id is not None
        w = self.words(turn)
        checkin = self.diary.night_of(reply.conversation_id)
        if checkin is not None:
            night = night_name(checkin.night, w.lang)
            turn.say(w.text("checkin", "logged", night=night))
        else:
            turn.say(w.text("checkin", "logged_unknown"))
        if checkin is None or checkin.backfill:
            return
        if checkin.night.weekday() == 6:  # the week's summary, which names any worsening
            self.send_summary(turn, lane=BULK)
            return
        reasons = self.diary.new_worsening(turn.who, checkin.night)
        if reasons:
            said = escape(" ".join(reasons))
            turn.say(render.Screen(w.text("checkin", "worsening", reasons=said)))

    # --- trends ---------------------------------------------------------------------------

    def on_summary(self, turn: Turn, repo: Repo) -> None:
        if not turn.require_consent(repo):
            return
        turn.log_in(repo, "/summary")
        self.send_summary(turn)

    def send_summary(self, turn: Turn, *, lane: str = "reply") -> None:
        trends = self.diary.trends(turn.who)
        if trends is None or trends.thirty.nights_asked == 0:
            turn.say(self.words(turn).text("diary", "no_nights"))
            return
        text = render_text(trends.seven, trends.thirty, trends.reasons, lang=trends.lang)
        turn.say(render.Screen(escape(text)), lane=lane)
        turn.file({"kind": "chart"}, lane=lane)

    async def make_chart(self, chat_id: int, _recipe: dict[str, Any]) -> BuiltFile | None:
        """The 30-night chart, drawn in the worker process; its caption in the person's
        language."""
        from bot.files.exports import build_chart  # noqa: PLC0415 - loads nothing heavy itself

        trends = self.diary.trends(Who("telegram", str(chat_id)))
        if trends is None:
            return None
        png = await pool.run(build_chart, trends.thirty, trends.lang)
        caption = texts(trends.lang).checkins.plural("diary", "chart_caption", n=trends.thirty.days)
        return BuiltFile(png, "diary.png", caption=caption, photo=True)
