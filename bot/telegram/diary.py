"""The diary in Telegram: /diary settings, check-in messages, snooze, /summary, and dispatch.

Check-ins are rows in the database (see `DiaryService`); a JobQueue job only wakes the
dispatcher, which opens due check-ins and queues them in the outbox's bulk lane, in the same
transaction that marks them sent. The sender paces them (≤30 a second overall, ≤1 a second per
chat) behind people's replies. A missed or slow run is harmless: the next one finds the same
rows.
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
from dialogs.nights import COMMON_ZONES, parse_time, parse_zone, zone_from_local_now
from dialogs.trends import render_text
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


def _night(night: date) -> str:
    return night.strftime("%A %-d %B")


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
        schedule = self.diary.schedule(turn.who)
        if schedule is None or not schedule.enabled:
            turn.say(
                render.Screen(
                    "<b>Nightly diary</b>\nI can ask a few quick taps about your legs each night, "
                    "at a time you choose, so you and your doctor can see the pattern.\n\n"
                    "Pick a time. An evening time asks about that night; a morning time asks "
                    "about the night before. You can also send e.g. <code>/diary 21:30 "
                    "Europe/Berlin</code>.",
                    self.times_markup(),
                )
            )
            return
        paused = f"\nPaused until {_night(schedule.paused_until)}." if schedule.paused_until else ""
        upcoming = (
            f"\nNext check-in: night of {_night(schedule.next_night)}."
            if schedule.next_night
            else ""
        )
        rows = [
            [_button("🕘 Change time", "dtimes"), _button("🌍 Change zone", "dzones")],
            [_button(f"⏸ Pause {n} nights", "dpause", str(n)) for n in PAUSES],
            [_button("✍️ Log a past night", "dfill"), _button("📊 Summary", "summary")],
            [_button("⏹ Stop check-ins", "dstop")],
        ]
        turn.say(
            render.Screen(
                f"<b>Nightly diary</b>: on, {escape(self.diary.describe(schedule))}."
                f"{upcoming}{paused}",
                InlineKeyboardMarkup(rows),
            )
        )

    @staticmethod
    def times_markup() -> InlineKeyboardMarkup:
        rows = [
            [_button(f"🌙 {t}", "dtime", t.replace(":", "")) for t in EVENING],
            [_button(f"☀️ {t}", "dtime", t.replace(":", "")) for t in MORNING],
            [_button("⌨️ Type another time", "dtime", "type")],
        ]
        return InlineKeyboardMarkup(rows)

    def zones_markup(self, turn: Turn, repo: Repo, at: time) -> InlineKeyboardMarkup:
        """Zones of the person's country when known, else a short list across the world."""
        info = turn.info(repo)
        zones = self.countries(info.country if info else None)
        names = list(zones) if zones else list(COMMON_ZONES[:9])
        now = self.diary.clock()
        buttons = [
            _button(
                f"{name.split('/')[-1].replace('_', ' ')} ({now.astimezone(ZoneInfo(name)):%H:%M})",
                "dzone",
                f"{_hhmm(at)}/{name}",
            )
            for name in names
        ]
        rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
        rows.append([_button("⌨️ Type a city or your local time", "dzone", f"{_hhmm(at)}/type")])
        return InlineKeyboardMarkup(rows)

    def ask_zone(self, turn: Turn, at: time) -> None:
        with self.diary.store.transaction() as repo:
            markup = self.zones_markup(turn, repo, at)
        turn.say(
            render.Screen(
                f"Check-ins at <b>{at:%H:%M}</b>. Which time zone are you in? "
                "(The time in brackets is the time there now.)",
                markup,
            )
        )

    def set_from_text(self, turn: Turn, text: str) -> None:
        """`/diary 21:30 Europe/Berlin` (or a city) sets time and zone in one go."""
        first, _, rest = text.strip().partition(" ")
        at = parse_time(first)
        zone = parse_zone(rest) if rest else None
        if at is None:
            turn.say("I didn't catch a time there. Try e.g. /diary 21:30 Europe/Berlin.")
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
        schedule = self.diary.set_schedule(turn.who, at, zone)
        local_now = self.diary.clock().astimezone(zone)
        nxt = (
            f" The first one is for the night of {_night(schedule.next_night)}."
            if (schedule.next_night)
            else ""
        )
        turn.say(
            render.Screen(
                f"✅ Diary on: {escape(self.diary.describe(schedule))}. It is {local_now:%H:%M} "
                f"there now.{nxt}\n/diary changes it, /summary shows your trends.",
            )
        )

    # --- buttons --------------------------------------------------------------------------

    def on_menu(self, turn: Turn, key: MenuKey, context: ContextTypes.DEFAULT_TYPE) -> None:
        who = turn.who
        match key.action:
            case "diary":
                self.show_settings(turn)
            case "dtimes":
                turn.say(render.Screen("Pick a time:", self.times_markup()))
            case "dtime" if key.arg == "type":
                context.user_data[AWAITING] = "time"  # type: ignore[index]
                turn.say("Type the time, e.g. 21:30 or 7am.")
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
                turn.say(f"Paused: no check-ins up to and including the night of {_night(until)}.")
            case "dstop":
                self.diary.stop(who)
                turn.say("Check-ins stopped. Your diary is kept; /diary turns them on again.")
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
            turn.say(
                "Type your city (e.g. Berlin, New York) or the time it is where you "
                "are now (e.g. 23:10)."
            )
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
        if key.minutes:
            turn.edit(_tapped_id(turn), f"⏰ OK, I'll ask again in {key.minutes} minutes.")
            return
        turn.edit(_tapped_id(turn), f"Skipped the night of {_night(checkin.night)}. Sleep well.")

    def on_backfill(self, turn: Turn, arg: str) -> None:
        who = turn.who
        if not arg:
            nights = self.diary.backfill_nights(who)
            if not nights:
                turn.say("The last two nights are already in your diary.")
                return
            rows = [[_button(_night(n), "dfill", n.isoformat())] for n in nights]
            turn.say(
                render.Screen("Which night would you like to add?", InlineKeyboardMarkup(rows))
            )
            return
        try:
            night = date.fromisoformat(arg)
        except ValueError:
            turn.toast(render.EXPIRED)
            return
        outgoing = self.diary.start_backfill(who, night)
        if outgoing is None:
            turn.say("That night can't be added any more.")
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
        if awaiting == "time":
            at = parse_time(text)
            if at is None:
                context.user_data[AWAITING] = "time"  # type: ignore[index]
                turn.say("Please type a time like 21:30 or 7am.")
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
                turn.say(
                    render.Screen(
                        "A few zones fit that time. Which one?", InlineKeyboardMarkup(rows)
                    )
                )
                return True
        if zone is None:
            context.user_data[AWAITING] = awaiting  # type: ignore[index]
            turn.say("I couldn't place that. Try a bigger city nearby, e.g. Berlin or Chicago.")
            return True
        self.confirm(turn, at, zone)
        return True

    # --- check-ins ------------------------------------------------------------------------

    def screen(self, step: Prompt, conversation_id: int) -> render.Screen:
        """A diary question as a check-in: which night it is about, and snooze while open."""
        screen = render.question(step, conversation_id)
        checkin = self.diary.night_of(conversation_id)
        if checkin is None:
            return screen
        night = _night(checkin.night)
        rows = list(screen.markup.inline_keyboard) if screen.markup else []
        if checkin.backfill:
            header = f"✍️ Adding the night of {night}."
        else:
            lead = "⏰ Reminder: check-in" if checkin.remind_at else "🌙 Check-in"
            header = f"{lead} for the night of {night}."
            rows.append(
                [
                    InlineKeyboardButton(
                        label, callback_data=encode(SnoozeKey(checkin.id, minutes))
                    )
                    for label, minutes in (
                        ("⏰ 30 min", 30),
                        ("⏰ 1 hour", 60),
                        ("Skip tonight", 0),
                    )
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
        checkin = self.diary.night_of(reply.conversation_id)
        night = _night(checkin.night) if checkin else "that night"
        turn.say(f"✅ Logged for the night of {night}. Thank you, sleep well.")
        if checkin is None or checkin.backfill:
            return
        if checkin.night.weekday() == 6:  # the week's summary, which names any worsening
            self.send_summary(turn, lane=BULK)
            return
        reasons = self.diary.new_worsening(turn.who, checkin.night)
        if reasons:
            turn.say(
                render.Screen(
                    "📈 Looking at your diary: "
                    + escape(" ".join(reasons))
                    + "\nIt may be worth running the check again (/check), so the advice fits "
                    "how things are now."
                )
            )

    # --- trends ---------------------------------------------------------------------------

    def on_summary(self, turn: Turn, repo: Repo) -> None:
        if not turn.require_consent(repo):
            return
        turn.log_in(repo, "/summary")
        self.send_summary(turn)

    def send_summary(self, turn: Turn, *, lane: str = "reply") -> None:
        trends = self.diary.trends(turn.who)
        if trends is None or trends.thirty.nights_asked == 0:
            turn.say("No diary nights yet. /diary sets up a short nightly check-in.")
            return
        text = render_text(trends.seven, trends.thirty, trends.reasons)
        turn.say(render.Screen(escape(text)), lane=lane)
        turn.file({"kind": "chart"}, lane=lane)

    async def make_chart(self, chat_id: int, _recipe: dict[str, Any]) -> BuiltFile | None:
        """The 30-night chart, drawn in the worker process."""
        from bot.files.exports import build_chart  # noqa: PLC0415 - loads nothing heavy itself

        trends = self.diary.trends(Who("telegram", str(chat_id)))
        if trends is None:
            return None
        png = await pool.run(build_chart, trends.thirty)
        return BuiltFile(png, "diary.png", caption="Your last 30 nights", photo=True)
