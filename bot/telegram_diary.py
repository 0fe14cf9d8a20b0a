"""The diary in Telegram: /diary settings, check-in messages, snooze, /summary, and dispatch.

Check-ins are rows in the database (see `DiaryService`); a JobQueue job only wakes the
dispatcher, which creates due check-ins, claims them and sends them through the bot's rate
limiter. A missed or slow run is harmless: the next one finds the same rows.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date, time
from html import escape
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import Forbidden, TelegramError
from telegram.ext import ContextTypes

from bot import telegram_views as views
from bot.diary_chart import render_chart
from bot.diary_service import DiaryService, Outgoing
from bot.diary_trends import render_text
from bot.service import Resume
from bot.telegram_handlers import plain
from bot.telegram_keys import MenuKey, SnoozeKey, encode
from dialogs.engine import Prompt
from dialogs.nights import COMMON_ZONES, parse_time, parse_zone, zone_from_local_now

if TYPE_CHECKING:
    from telegram import Bot

    from bot.telegram_handlers import TelegramBot

logger = logging.getLogger(__name__)

EVENING = ("20:00", "21:00", "22:00", "23:00")
MORNING = ("07:00", "08:00", "09:00")
PAUSES = (3, 7)
SEND_AT_ONCE = 20
"""Concurrent sends per dispatch; the rate limiter keeps the overall pace within Telegram's."""
AWAITING = "diary_awaiting"


def _button(label: str, action: str, arg: str = "") -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=encode(MenuKey(action, arg)))


def _night(night: date) -> str:
    return night.strftime("%A %-d %B")


def _hhmm(value: time) -> str:
    return value.strftime("%H%M")


class DiaryBot:
    """Diary handlers; `tg` supplies sending, consent and the shared triage rendering."""

    def __init__(self, tg: TelegramBot, diary: DiaryService) -> None:
        self.tg = tg
        self.diary = diary

    # --- /diary ---------------------------------------------------------------------------------

    async def on_diary(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if not await self.tg.require_consent(update):
            return
        self.tg.claim_only(update, "/diary " + " ".join(context.args or []))
        if context.args:
            await self.set_from_text(update, " ".join(context.args))
            return
        await self.show_settings(update)

    async def show_settings(self, update: Update) -> None:
        assert update.effective_user is not None
        schedule = self.diary.schedule(self.tg.who(update.effective_user))
        if schedule is None or not schedule.enabled:
            await self.tg.send(
                update,
                views.Screen(
                    "<b>Nightly diary</b>\nI can ask a few quick taps about your legs each night, "
                    "at a time you choose, so you and your doctor can see the pattern.\n\n"
                    "Pick a time. An evening time asks about that night; a morning time asks "
                    "about the night before. You can also send e.g. <code>/diary 21:30 "
                    "Europe/Berlin</code>.",
                    self.times_markup(),
                ),
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
        await self.tg.send(
            update,
            views.Screen(
                f"<b>Nightly diary</b>: on, {escape(self.diary.describe(schedule))}."
                f"{upcoming}{paused}",
                InlineKeyboardMarkup(rows),
            ),
        )

    @staticmethod
    def times_markup() -> InlineKeyboardMarkup:
        rows = [
            [_button(f"🌙 {t}", "dtime", t.replace(":", "")) for t in EVENING],
            [_button(f"☀️ {t}", "dtime", t.replace(":", "")) for t in MORNING],
            [_button("⌨️ Type another time", "dtime", "type")],
        ]
        return InlineKeyboardMarkup(rows)

    def zones_markup(self, update: Update, at: time) -> InlineKeyboardMarkup:
        """Zones of the person's country when known, else a short list across the world."""
        assert update.effective_user is not None
        info = self.tg.service.find_user(self.tg.who(update.effective_user))
        country = self.tg.numbers.countries.get(info.country or "") if info else None
        names = list(country.zones) if country and country.zones else list(COMMON_ZONES[:9])
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

    async def ask_zone(self, update: Update, at: time) -> None:
        await self.tg.send(
            update,
            views.Screen(
                f"Check-ins at <b>{at:%H:%M}</b>. Which time zone are you in? "
                "(The time in brackets is the time there now.)",
                self.zones_markup(update, at),
            ),
        )

    async def set_from_text(self, update: Update, text: str) -> None:
        """`/diary 21:30 Europe/Berlin` (or a city) sets time and zone in one go."""
        first, _, rest = text.strip().partition(" ")
        at = parse_time(first)
        zone = parse_zone(rest) if rest else None
        if at is None:
            await self.tg.send(
                update, "I didn't catch a time there. Try e.g. /diary 21:30 Europe/Berlin."
            )
            return
        if zone is None:
            schedule = self.diary.schedule(self.tg.who(update.effective_user))  # type: ignore[arg-type]
            if schedule is not None and not rest:
                await self.confirm(update, at, ZoneInfo(schedule.zone))
                return
            await self.ask_zone(update, at)
            return
        await self.confirm(update, at, zone)

    async def confirm(self, update: Update, at: time, zone: ZoneInfo) -> None:
        assert update.effective_user is not None
        schedule = self.diary.set_schedule(self.tg.who(update.effective_user), at, zone)
        local_now = self.diary.clock().astimezone(zone)
        nxt = (
            f" The first one is for the night of {_night(schedule.next_night)}."
            if (schedule.next_night)
            else ""
        )
        await self.tg.send(
            update,
            views.Screen(
                f"✅ Diary on: {escape(self.diary.describe(schedule))}. It is {local_now:%H:%M} "
                f"there now.{nxt}\n/diary changes it, /summary shows your trends.",
            ),
        )

    # --- buttons --------------------------------------------------------------------------------

    async def on_menu(
        self, update: Update, key: MenuKey, context: ContextTypes.DEFAULT_TYPE
    ) -> str | None:
        assert update.effective_user is not None
        who = self.tg.who(update.effective_user)
        match key.action:
            case "diary":
                await self.show_settings(update)
            case "dtimes":
                await self.tg.send(update, views.Screen("Pick a time:", self.times_markup()))
            case "dtime" if key.arg == "type":
                context.user_data[AWAITING] = "time"  # type: ignore[index]
                await self.tg.send(update, "Type the time, e.g. 21:30 or 7am.")
            case "dtime":
                at = parse_time(key.arg)
                if at is None:
                    return views.EXPIRED
                schedule = self.diary.schedule(who)
                if schedule is not None and schedule.enabled:
                    await self.confirm(update, at, ZoneInfo(schedule.zone))
                else:
                    await self.ask_zone(update, at)
            case "dzones":
                schedule = self.diary.schedule(who)
                await self.ask_zone(update, schedule.local_time if schedule else time(21, 0))
            case "dzone":
                hhmm, _, name = key.arg.partition("/")
                at = parse_time(hhmm)
                if at is None:
                    return views.EXPIRED
                if name == "type":
                    context.user_data[AWAITING] = f"zone {hhmm}"  # type: ignore[index]
                    await self.tg.send(
                        update,
                        "Type your city (e.g. Berlin, New York) or the time it is where you "
                        "are now (e.g. 23:10).",
                    )
                    return None
                zone = parse_zone(name)
                if zone is None:
                    return views.EXPIRED
                await self.confirm(update, at, zone)
            case "dpause":
                until = self.diary.pause(who, int(key.arg or "0"))
                if until is None:
                    return views.EXPIRED
                await self.tg.send(
                    update,
                    f"Paused: no check-ins up to and including the night of {_night(until)}.",
                )
            case "dstop":
                self.diary.stop(who)
                await self.tg.send(
                    update, "Check-ins stopped. Your diary is kept; /diary turns them on again."
                )
            case "dfill":
                await self.on_backfill(update, key.arg)
            case "summary":
                await self.send_summary(update)
        return None

    async def on_snooze(self, update: Update, key: SnoozeKey) -> str | None:
        assert update.effective_user is not None
        checkin = self.diary.snooze(self.tg.who(update.effective_user), key.checkin_id, key.minutes)
        if checkin is None:
            return views.EXPIRED
        query = update.callback_query
        message = query.message if query is not None else None
        if key.minutes:
            await self.tg.edit(message, f"⏰ OK, I'll ask again in {key.minutes} minutes.")  # type: ignore[arg-type]
            return None
        await self.tg.edit(message, f"Skipped the night of {_night(checkin.night)}. Sleep well.")  # type: ignore[arg-type]
        return None

    async def on_backfill(self, update: Update, arg: str) -> None:
        assert update.effective_user is not None
        who = self.tg.who(update.effective_user)
        if not arg:
            nights = self.diary.backfill_nights(who)
            if not nights:
                await self.tg.send(update, "The last two nights are already in your diary.")
                return
            rows = [[_button(_night(n), "dfill", n.isoformat())] for n in nights]
            await self.tg.send(
                update,
                views.Screen("Which night would you like to add?", InlineKeyboardMarkup(rows)),
            )
            return
        try:
            night = date.fromisoformat(arg)
        except ValueError:
            return
        outgoing = self.diary.start_backfill(who, night)
        if outgoing is None:
            await self.tg.send(update, "That night can't be added any more.")
            return
        await self.send_checkin(update.get_bot(), outgoing)

    # --- typed input ----------------------------------------------------------------------------

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
        """Typed diary settings (time, zone). True when the text was for the diary."""
        awaiting = context.user_data.pop(AWAITING, None) if context.user_data is not None else None
        message = update.effective_message
        if not awaiting or message is None or not message.text:
            return False
        text = message.text.strip()[:64]
        if awaiting == "time":
            at = parse_time(text)
            if at is None:
                context.user_data[AWAITING] = "time"  # type: ignore[index]
                await self.tg.send(update, "Please type a time like 21:30 or 7am.")
                return True
            schedule = self.diary.schedule(self.tg.who(update.effective_user))  # type: ignore[arg-type]
            if schedule is not None and schedule.enabled:
                await self.confirm(update, at, ZoneInfo(schedule.zone))
            else:
                await self.ask_zone(update, at)
            return True
        at = parse_time(awaiting.split(" ", 1)[1]) or time(21, 0)
        zone = parse_zone(text)
        if zone is None and (local_now := parse_time(text)) is not None:
            matches = zone_from_local_now(local_now, self.diary.clock(), list(COMMON_ZONES))
            zone = ZoneInfo(matches[0]) if len(matches) == 1 else None
            if len(matches) > 1:
                rows = [[_button(m, "dzone", f"{_hhmm(at)}/{m}")] for m in matches[:8]]
                await self.tg.send(
                    update,
                    views.Screen(
                        "A few zones fit that time. Which one?", InlineKeyboardMarkup(rows)
                    ),
                )
                return True
        if zone is None:
            context.user_data[AWAITING] = awaiting  # type: ignore[index]
            await self.tg.send(
                update, "I couldn't place that. Try a bigger city nearby, e.g. Berlin or Chicago."
            )
            return True
        await self.confirm(update, at, zone)
        return True

    # --- check-ins ------------------------------------------------------------------------------

    def screen(self, step: Prompt, conversation_id: int) -> views.Screen:
        """A diary question as a check-in: which night it is about, and snooze while open."""
        screen = views.question(step, conversation_id)
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
        return views.Screen(f"<b>{escape(header)}</b>\n\n{screen.text}", InlineKeyboardMarkup(rows))

    async def send_checkin(self, bot: Bot, outgoing: Outgoing) -> None:
        """Send (or re-send, after a snooze) a check-in: the diary's open question + snooze."""
        reply = self.diary.questions.handle(outgoing.who, Resume())
        if not isinstance(reply.step, Prompt) or reply.conversation_id is None:
            self.diary.sent(outgoing.checkin.id, 0)  # answered meanwhile: nothing to ask
            return
        screen = self.screen(reply.step, reply.conversation_id)
        try:
            message = await bot.send_message(
                chat_id=int(outgoing.who.external_id),
                text=screen.text,
                parse_mode=ParseMode.HTML,
                reply_markup=screen.markup,
            )
        except Forbidden:
            self.diary.undeliverable(outgoing)
            return
        except TelegramError as exc:
            logger.warning(
                "check-in %s not sent (%s); it will be tried again",
                outgoing.checkin.id,
                type(exc).__name__,
            )
            return
        self.diary.sent(outgoing.checkin.id, message.message_id)
        self.tg.service.log_out(
            outgoing.who, plain(screen.text), conversation_id=reply.conversation_id
        )

    async def dispatch(self, bot: Bot) -> int:
        """Create and send every check-in that is due now; returns how many were sent."""
        self.diary.open_due()
        outgoing = self.diary.claim_outgoing()
        gate = asyncio.Semaphore(SEND_AT_ONCE)

        async def one(item: Outgoing) -> None:
            async with gate:
                await self.send_checkin(bot, item)

        await asyncio.gather(*(one(item) for item in outgoing))
        return len(outgoing)

    async def on_dispatch_job(self, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self.dispatch(context.bot)

    async def logged(self, update: Update, conversation_id: int) -> None:
        """After a check-in is answered: thanks, and on a Sunday night the week's summary."""
        checkin = self.diary.night_of(conversation_id)
        night = _night(checkin.night) if checkin else "that night"
        await self.tg.send(update, f"✅ Logged for the night of {night}. Thank you, sleep well.")
        if checkin is None or checkin.backfill:
            return
        if checkin.night.weekday() == 6:  # the week's summary, which names any worsening
            await self.send_summary(update)
            return
        assert update.effective_user is not None
        reasons = self.diary.new_worsening(self.tg.who(update.effective_user), checkin.night)
        if reasons:
            await self.tg.send(
                update,
                views.Screen(
                    "📈 Looking at your diary: "
                    + escape(" ".join(reasons))
                    + "\nIt may be worth running the check again (/check), so the advice fits "
                    "how things are now."
                ),
            )

    # --- trends ---------------------------------------------------------------------------------

    async def on_summary(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if not await self.tg.require_consent(update):
            return
        self.tg.claim_only(update, "/summary")
        await self.send_summary(update)

    async def send_summary(self, update: Update) -> None:
        assert update.effective_user is not None and update.effective_chat is not None
        trends = self.diary.trends(self.tg.who(update.effective_user))
        if trends is None or trends.thirty.nights_asked == 0:
            await self.tg.send(
                update, "No diary nights yet. /diary sets up a short nightly check-in."
            )
            return
        text = render_text(trends.seven, trends.thirty, trends.reasons)
        await self.tg.send(update, views.Screen(escape(text)))
        await update.effective_chat.send_photo(
            render_chart(trends.thirty), caption="Your last 30 nights"
        )


__all__ = ["DiaryBot"]
