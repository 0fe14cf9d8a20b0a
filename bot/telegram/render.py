"""What the bot shows in Telegram: steps turned into HTML text plus inline keyboards.

Every function here is pure (no network, no database), so messages can be checked in tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape, unescape

from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import MessageLimit

from bot.telegram.keys import AnswerKey, DoneKey, MenuKey, NavKey, encode
from dialogs.advice import Advice
from dialogs.chat import ChatBook, chat_book
from dialogs.content import FlowContent
from dialogs.countries import Country
from dialogs.engine import Prompt
from dialogs.records import AnswerRecord

MAX_TEXT = MessageLimit.MAX_TEXT_LENGTH
_TAG = re.compile(r"<[^>]+>")
TICKED, UNTICKED = "✅ ", "▫️ "
TWO_PER_ROW_UP_TO = 16
"""Labels this short sit two to a row; longer ones get a row each, so phones don't cut them."""


@dataclass(frozen=True)
class Screen:
    text: str
    markup: InlineKeyboardMarkup | None = None


def _button(label: str, key: AnswerKey | DoneKey | NavKey | MenuKey) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=encode(key))


def _rows(buttons: list[InlineKeyboardButton]) -> list[list[InlineKeyboardButton]]:
    rows: list[list[InlineKeyboardButton]] = []
    for button in buttons:
        short = len(button.text) <= TWO_PER_ROW_UP_TO
        if short and rows and len(rows[-1]) == 1 and len(rows[-1][0].text) <= TWO_PER_ROW_UP_TO:
            rows[-1].append(button)
        else:
            rows.append([button])
    return rows


def question(prompt: Prompt, conversation_id: int) -> Screen:
    """A question with one button per option, ticks on multi-answer ones, and Back / Cancel."""
    q = prompt.question
    buttons = []
    for option in q.options:
        if q.multi and not option.exclusive:
            ticked = option.id in prompt.selected
            label = (TICKED if ticked else UNTICKED) + option.label
            key = AnswerKey(conversation_id, q.id, option.id, tick=not ticked)
        else:
            label, key = option.label, AnswerKey(conversation_id, q.id, option.id)
        buttons.append(_button(label, key))
    rows = _rows(buttons)
    if q.multi and q.done_label:
        rows.append([_button(f"{q.done_label} ➡️", DoneKey(conversation_id, q.id))])
    nav = []
    if prompt.can_go_back:
        nav.append(_button("⬅️ Back", NavKey("back", conversation_id)))
    nav.append(_button("✖️ Cancel", NavKey("cancel", conversation_id)))
    rows.append(nav)
    return Screen(escape(q.text), InlineKeyboardMarkup(rows))


def answer_lines(content: FlowContent, answers: tuple[AnswerRecord, ...]) -> list[str]:
    """What the person answered so far, one line per question, as the check's message shows."""
    lines = []
    for record in answers:
        question = content.question(record.question_id)
        if question is None:
            continue
        labels = [o.label for o in question.options if o.id in record.option_ids]
        if record.text:
            labels.append(f"“{record.text}”")
        answer = ", ".join(labels) or "(skipped)"
        lines.append(f"☑️ {escape(question.text)} <b>{escape(answer)}</b>")
    return lines


def living(lines: list[str], screen: Screen) -> Screen:
    """One message per check: the answered lines above the question that is open now.

    Each tap edits this one message (one Bot API call), instead of editing the answered
    question and sending the next one (two calls). Older lines give way first when the
    whole would not fit one Telegram message.
    """
    while lines and len("\n".join(lines)) + len(screen.text) + 2 > MAX_TEXT - 64:
        lines = lines[1:]
    if not lines:
        return screen
    return Screen("\n".join(lines) + "\n\n" + screen.text, screen.markup)


def transcript(lines: list[str], note: str) -> str:
    """The check's message once it is over: the answers, and how it ended, without buttons."""
    return "\n".join([*lines, f"<i>{escape(note)}</i>"]) if lines else f"<i>{escape(note)}</i>"


@dataclass(frozen=True)
class Extra:
    """What a feature adds to a result's message (e.g. the follow-up offer): a line under
    the advice and a row of buttons, so it costs no message of its own."""

    text: str
    row: tuple[InlineKeyboardButton, ...]


def outcome(
    advice: Advice,
    conversation_id: int,
    *,
    extras: tuple[Extra, ...] = (),
    answers: list[str] | None = None,
    book: ChatBook | None = None,
) -> Screen:
    """The conclusion: what to do and how fast first, each red flag's own block, why, what
    helps, then the safety net grouped by level (the sections of `Advice`, in order).

    One message holds all that follows a result (spec v3 item 10: no more messages than
    taps): the answers given, folded, if they fit; then the features' lines (the follow-up
    offer) with their buttons; the note for the doctor; new check, change answer, export.
    """
    book = book or chat_book()
    rows: list[list[InlineKeyboardButton]] = [list(extra.row) for extra in extras if extra.row]
    rows += [
        [_button(book.text("note", "button"), MenuKey("note", str(conversation_id)))],
        [
            _button("🔁 New check", MenuKey("new")),
            _button("⬅️ Change answer", NavKey("back", conversation_id)),
        ],
        [_button("📄 Export my data", MenuKey("export"))],
    ]
    text = advice_html(advice)
    tail = "".join(f"\n\n<i>{escape(extra.text)}</i>" for extra in extras)
    lines = "\n".join(answers or ())
    folded = f"\n\n<blockquote expandable>{lines}</blockquote>" if lines else ""
    if len(text) + len(folded) + len(tail) > MAX_TEXT:
        folded = ""
    if len(text) + len(tail) > MAX_TEXT:
        text = fit(text, MAX_TEXT - len(tail))
    return Screen(text + folded + tail, InlineKeyboardMarkup(rows))


def without_last_line(html: str, plain_line: str) -> str:
    """A result's message without its last paragraph if that reads `plain_line` (the offer
    once answered), so the rest of the result stays as it was."""
    head, _, last = html.rpartition("\n\n")
    if head and unescape(_TAG.sub("", last)).strip() == plain_line.strip():
        return head
    return html


def typed_danger(advice: Advice, go_on_label: str, go_on_hint: str) -> Screen:
    """Emergency advice for typed words that name a danger sign, with a one-tap way back."""
    text = advice_html(advice) + f"\n\n<i>{escape(go_on_hint)}</i>"
    return Screen(fit(text), InlineKeyboardMarkup([[_button(go_on_label, MenuKey("goon"))]]))


def advice_html(advice: Advice) -> str:
    """Advice as Telegram HTML: titles and lead-ins in bold, the disclaimer in italics."""
    parts = []
    for section in advice.sections():
        lines = [f"<b>{escape(section.title)}</b>"] if section.title else []
        lead = f"<b>{escape(section.lead)}</b>" if section.lead else ""
        body = " ".join(p for p in (lead, escape(section.text)) if p)
        if body:
            lines.append(f"<i>{body}</i>" if section.fine_print else body)
        if section.bullets:
            lines.append(_bullets(section.bullets))
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _bullets(items: tuple[str, ...]) -> str:
    return "\n".join(f"• {escape(item)}" for item in items)


def fit(text: str, limit: int = MAX_TEXT) -> str:
    """Keep a message under Telegram's length limit without cutting an HTML tag in half."""
    if len(text) <= limit:
        return text
    cut = text.rfind("\n\n", 0, limit - 2)
    return text[: cut if cut > 0 else limit - 2] + "\n…"


# --- fixed screens ------------------------------------------------------------------------------

INTRO_TEXT = (
    "Hi, I'm <b>nightlegs</b>. When your legs wake you at night, I help you tell a cramp from "
    "restless legs from a circulation warning sign, and say how fast to act.\n"
    "It takes a minute of taps. I'm not a doctor, and this is <b>not a diagnosis</b>.\n"
    "I keep your answers and this chat so you can look back; /export sends you a copy and "
    "/delete erases it all.\n\n"
    "Is that OK with you?"
)


def intro(suggested: Country | None, book: ChatBook | None = None) -> Screen:
    """The introduction: agreeing and giving the country is one tap (spec v3 item 9), the
    country suggested from the person's language; another country, or none, also agree."""
    book = book or chat_book()
    rows = []
    if suggested is not None:
        label = book.text("consent", "agree_in", country=suggested.name)
        rows.append([_button(label, MenuKey("consent", suggested.code))])
    rows.append([_button(book.text("consent", "agree_choose"), MenuKey("consent", "pick"))])
    rows.append([_button(book.text("consent", "agree_skip"), MenuKey("consent"))])
    rows.append([_button(book.text("consent", "decline"), MenuKey("decline"))])
    why = escape(book.text("consent", "why_country"))
    head, _, ask = INTRO_TEXT.rpartition("\n\n")
    return Screen(f"{head}\n{why}\n\n{ask}", InlineKeyboardMarkup(rows))


def intro_countries(countries: list[Country], book: ChatBook | None = None) -> Screen:
    """The consent's country list: tapping a country agrees and starts the check."""
    book = book or chat_book()
    buttons = [_button(c.name, MenuKey("consent", c.code)) for c in countries]
    rows = [buttons[i : i + 3] for i in range(0, len(buttons), 3)]
    rows.append([_button(book.text("consent", "not_listed"), MenuKey("consent"))])
    rows.append([_button(book.text("consent", "back"), MenuKey("consent", "back"))])
    return Screen(escape(book.text("consent", "choose")), InlineKeyboardMarkup(rows))


INTRO = intro(None)
"""The introduction for a person whose language suggests no country."""


def agreed(country: Country | None, book: ChatBook | None = None) -> str:
    """The line above the first question once the person agreed."""
    book = book or chat_book()
    if country is None:
        return escape(book.text("consent", "agreed"))
    return escape(book.text("consent", "agreed_in", country=country.name, number=country.number))


def with_lead(lead: str, screen: Screen) -> Screen:
    """A screen with a line (already HTML) above it."""
    return Screen(f"{lead}\n\n{screen.text}", screen.markup)


def note_prompt(conversation_id: int, book: ChatBook | None = None) -> Screen:
    book = book or chat_book()
    markup = InlineKeyboardMarkup(
        [[_button(book.text("note", "skip"), MenuKey("nskip", str(conversation_id)))]]
    )
    return Screen(escape(book.text("note", "prompt")), markup)


def typed_after_result(
    result: str, who: str, conversation_id: int, book: ChatBook | None = None
) -> Screen:
    """A typed question after a result: the bot cannot answer it; the result in one line;
    who can; and the note for the doctor."""
    book = book or chat_book()
    text = escape(book.text("typed", "after_result", result=result, who=who))
    note = escape(book.text("typed", "after_result_note"))
    markup = InlineKeyboardMarkup(
        [
            [_button(book.text("note", "button"), MenuKey("note", str(conversation_id)))],
            [_button("🔁 New check", MenuKey("new"))],
        ]
    )
    return Screen(f"{text}\n\n<i>{note}</i>", markup)


def typed_no_check(book: ChatBook | None = None) -> Screen:
    book = book or chat_book()
    markup = InlineKeyboardMarkup([[_button(book.text("typed", "start_check"), MenuKey("new"))]])
    return Screen(escape(book.text("typed", "no_check")), markup)


DECLINED = Screen(
    "No problem: nothing about you has been stored. Send /start whenever you want to begin."
)
WELCOME_BACK = Screen(
    "Welcome back. What would you like to do?",
    InlineKeyboardMarkup(
        [
            [_button("🩺 New check", MenuKey("new"))],
            [_button("⚙️ Settings", MenuKey("settings")), _button("❓ Help", MenuKey("help"))],
        ]
    ),
)
HELP = Screen(
    "<b>What I do</b>: a short check of night leg symptoms with buttons, then what it looks "
    "like and how fast to get help. Red flags come first.\n\n"
    "/check start a new check\n"
    "/back undo your last answer\n"
    "/cancel stop the current check\n"
    "/diary a short nightly check-in at a time you choose\n"
    "/summary your last 7 and 30 nights, with a chart\n"
    "/settings your country (for the emergency number)\n"
    "/export get a copy of everything I store about you\n"
    "/delete erase everything I store about you\n"
    "/help this message\n\n"
    "In an emergency, call your local emergency number: do not wait for a chat bot."
)
GROUP = "I only run health checks in a private chat: please message me directly."
USE_BUTTONS = (
    "Please use the buttons under the question. /back undoes your last answer, /cancel stops."
)
NO_CHECK = "Send /check to start a check, or /help to see what I can do."
NOT_TEXT = "I can only follow the buttons and commands like /check and /help."
EDITED = "I can't act on edited messages. Please use the buttons, or send the command again."
NEED_CONSENT = "Before any health questions, please read this and say if it's OK."
CANCELLED = "Check cancelled. Nothing more will be asked. Send /check to start again."
STALE = "That button is from an earlier question."
OPEN_CHECK = "You have a check open: here is where you are."
ALREADY = "Got it already ✓"


def old_copy(book: ChatBook | None = None) -> str:
    """The notice for a press on an older copy of a question already answered."""
    return (book or chat_book()).text("tap", "old_copy")


EXPIRED = "That button doesn't work any more."
TICK_FIRST = "Tick at least one answer first, or choose 'None of these' or 'Not sure'."
ERROR = (
    "Sorry, something went wrong on my side. Your answers so far are saved: send /start to "
    "carry on where you left off."
)
DELETED = (
    "Done: everything I stored about you is erased. Messages already in this chat stay until "
    "you clear the chat in Telegram. Send /start to begin again."
)
NOTHING_STORED = "I have nothing stored about you."
RESTARTED = "The questions were updated since your last visit, so let's start a fresh check."


def delete_confirm() -> Screen:
    return Screen(
        "Erase <b>everything</b> I store about you: your answers, results and this chat's "
        "record? This cannot be undone.",
        InlineKeyboardMarkup(
            [
                [
                    _button("🗑 Yes, erase it all", MenuKey("erase")),
                    _button("Keep it", MenuKey("keep")),
                ]
            ]
        ),
    )


def country_question(suggested: Country | None, *, reason: str) -> Screen:
    rows = []
    if suggested is not None:
        rows.append([_button(f"📍 {suggested.name}", MenuKey("country", suggested.code))])
    rows.append([_button("Choose another country", MenuKey("countries"))])
    rows.append([_button("Skip for now", MenuKey("country", "none"))])
    return Screen(escape(reason), InlineKeyboardMarkup(rows))


def country_list(countries: list[Country]) -> Screen:
    buttons = [_button(c.name, MenuKey("country", c.code)) for c in countries]
    rows = [buttons[i : i + 3] for i in range(0, len(buttons), 3)]
    rows.append([_button("My country is not listed", MenuKey("country", "none"))])
    return Screen("Which country are you in?", InlineKeyboardMarkup(rows))


def settings_screen(country: Country | None) -> Screen:
    where = (
        f"Country: <b>{escape(country.name)}</b> (emergency number {escape(country.number)})"
        if country
        else "Country: not set, so I show the common emergency numbers."
    )
    return Screen(
        f"<b>Settings</b>\n{where}",
        InlineKeyboardMarkup(
            [
                [_button("🌍 Change country", MenuKey("countries"))],
                [
                    _button("📄 Export my data", MenuKey("export")),
                    _button("🗑 Delete my data", MenuKey("delete")),
                ],
            ]
        ),
    )
