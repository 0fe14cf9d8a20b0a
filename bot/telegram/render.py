"""What the bot shows in Telegram: steps turned into HTML text plus inline keyboards.

Every function here is pure (no network, no database), so messages can be checked in tests.
Every word comes from the content YAML in the person's language: a function takes that
language's `Texts` (`t`). Without one it writes in the language of the update being handled
(`LANGUAGE`, set per update by the router), which is English outside an update. The short
notices (`render.EXPIRED`, `render.HELP`, ...) are read the same way, when used.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass
from html import escape, unescape
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import MessageLimit

from bot.telegram.keys import AnswerKey, DoneKey, MenuKey, NavKey, encode
from dialogs.advice import Advice
from dialogs.content import FlowContent
from dialogs.countries import Country
from dialogs.engine import Prompt
from dialogs.i18n import NAMES, SOURCE
from dialogs.records import AnswerRecord
from dialogs.texts import Texts, texts

MAX_TEXT = MessageLimit.MAX_TEXT_LENGTH
_TAG = re.compile(r"<[^>]+>")
TICKED, UNTICKED = "✅ ", "▫️ "
TWO_PER_ROW_UP_TO = 16
"""Labels this short sit two to a row; longer ones get a row each, so phones don't cut them."""
LANGUAGE: ContextVar[str] = ContextVar("language", default=SOURCE)
"""The language of the person whose update is being handled (set by the router)."""


def _t(t: Texts | None) -> Texts:
    """The texts to write with: the ones given, else the current person's language."""
    return t if t is not None else texts(LANGUAGE.get())


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


def question(prompt: Prompt, conversation_id: int, t: Texts | None = None) -> Screen:
    """A question with one button per option, ticks on multi-answer ones, and Back / Cancel."""
    words = _t(t).screens
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
        nav.append(_button(words.text("check", "back"), NavKey("back", conversation_id)))
    nav.append(_button(words.text("check", "cancel"), NavKey("cancel", conversation_id)))
    rows.append(nav)
    return Screen(escape(q.text), InlineKeyboardMarkup(rows))


def answer_lines(
    content: FlowContent, answers: tuple[AnswerRecord, ...], t: Texts | None = None
) -> list[str]:
    """What the person answered so far, one line per question, as the check's message shows
    (`content` in the person's language)."""
    skipped = _t(t).screens.text("check", "skipped")
    lines = []
    for record in answers:
        question = content.question(record.question_id)
        if question is None:
            continue
        labels = [o.label for o in question.options if o.id in record.option_ids]
        if record.text:
            labels.append(f"“{record.text}”")
        answer = ", ".join(labels) or skipped
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
    t: Texts | None = None,
) -> Screen:
    """The conclusion: what to do and how fast first, each red flag's own block, why, what
    helps, then the safety net grouped by level (the sections of `Advice`, in order).

    One message holds all that follows a result (spec v3 item 10: no more messages than
    taps): the answers given, folded, if they fit; then the features' lines (the follow-up
    offer) with their buttons; the note for the doctor; new check, change answer, export.
    """
    t = _t(t)
    words = t.screens
    rows: list[list[InlineKeyboardButton]] = [list(extra.row) for extra in extras if extra.row]
    rows += [
        [_button(t.chat.text("note", "button"), MenuKey("note", str(conversation_id)))],
        [
            _button(words.text("check", "new_check"), MenuKey("new")),
            _button(words.text("check", "change_answer"), NavKey("back", conversation_id)),
        ],
        [_button(words.text("check", "export"), MenuKey("export"))],
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


def intro(suggested: Country | None, t: Texts | None = None) -> Screen:
    """The introduction: agreeing and giving the country is one tap (spec v3 item 9), the
    country suggested from the person's language; another country, or none, also agree."""
    t = _t(t)
    book, words = t.chat, t.screens
    rows = []
    if suggested is not None:
        label = book.text("consent", "agree_in", country=suggested.name_in(t.lang))
        rows.append([_button(label, MenuKey("consent", suggested.code))])
    rows.append([_button(book.text("consent", "agree_choose"), MenuKey("consent", "pick"))])
    rows.append([_button(book.text("consent", "agree_skip"), MenuKey("consent"))])
    rows.append([_button(book.text("consent", "decline"), MenuKey("decline"))])
    why = escape(book.text("consent", "why_country"))
    head, ask = words.text("intro", "head"), escape(words.text("intro", "ask"))
    return Screen(f"{head}\n{why}\n\n{ask}", InlineKeyboardMarkup(rows))


def _country_rows(
    countries: list[Country], action: str, t: Texts
) -> list[list[InlineKeyboardButton]]:
    buttons = [_button(c.name_in(t.lang), MenuKey(action, c.code)) for c in countries]
    return [buttons[i : i + 3] for i in range(0, len(buttons), 3)]


def intro_countries(countries: list[Country], t: Texts | None = None) -> Screen:
    """The consent's country list: tapping a country agrees and starts the check."""
    t = _t(t)
    book = t.chat
    rows = _country_rows(countries, "consent", t)
    rows.append([_button(book.text("consent", "not_listed"), MenuKey("consent"))])
    rows.append([_button(book.text("consent", "back"), MenuKey("consent", "back"))])
    return Screen(escape(book.text("consent", "choose")), InlineKeyboardMarkup(rows))


def agreed(country: Country | None, t: Texts | None = None) -> str:
    """The line above the first question once the person agreed."""
    t = _t(t)
    if country is None:
        return escape(t.chat.text("consent", "agreed"))
    name, number = country.name_in(t.lang), country.number_in(t.lang)
    return escape(t.chat.text("consent", "agreed_in", country=name, number=number))


def with_lead(lead: str, screen: Screen) -> Screen:
    """A screen with a line (already HTML) above it."""
    return Screen(f"{lead}\n\n{screen.text}", screen.markup)


def note_prompt(conversation_id: int, t: Texts | None = None) -> Screen:
    book = _t(t).chat
    markup = InlineKeyboardMarkup(
        [[_button(book.text("note", "skip"), MenuKey("nskip", str(conversation_id)))]]
    )
    return Screen(escape(book.text("note", "prompt")), markup)


def typed_after_result(
    result: str, who: str, conversation_id: int, t: Texts | None = None
) -> Screen:
    """A typed question after a result: the bot cannot answer it; the result in one line;
    who can; and the note for the doctor."""
    t = _t(t)
    book = t.chat
    text = escape(book.text("typed", "after_result", result=result, who=who))
    note = escape(book.text("typed", "after_result_note"))
    markup = InlineKeyboardMarkup(
        [
            [_button(book.text("note", "button"), MenuKey("note", str(conversation_id)))],
            [_button(t.screens.text("check", "new_check"), MenuKey("new"))],
        ]
    )
    return Screen(f"{text}\n\n<i>{note}</i>", markup)


def typed_no_check(t: Texts | None = None) -> Screen:
    book = _t(t).chat
    markup = InlineKeyboardMarkup([[_button(book.text("typed", "start_check"), MenuKey("new"))]])
    return Screen(escape(book.text("typed", "no_check")), markup)


def declined(t: Texts | None = None) -> Screen:
    return Screen(escape(_t(t).screens.text("intro", "declined")))


def welcome_back(t: Texts | None = None) -> Screen:
    words = _t(t).screens
    return Screen(
        escape(words.text("menu", "welcome_back")),
        InlineKeyboardMarkup(
            [
                [_button(words.text("menu", "new_check"), MenuKey("new"))],
                [
                    _button(words.text("menu", "settings"), MenuKey("settings")),
                    _button(words.text("menu", "help"), MenuKey("help")),
                ],
            ]
        ),
    )


def help_screen(t: Texts | None = None) -> Screen:
    """/help: what the bot does and its commands (the text is HTML)."""
    return Screen(_t(t).screens.text("help", "text"))


NOTICES: dict[str, tuple[str, str]] = {
    "GROUP": ("notices", "group"),
    "USE_BUTTONS": ("notices", "use_buttons"),
    "NO_CHECK": ("notices", "no_check"),
    "UNKNOWN_COMMAND": ("notices", "unknown_command"),
    "NOT_TEXT": ("notices", "not_text"),
    "EDITED": ("notices", "edited"),
    "NEED_CONSENT": ("intro", "need_consent"),
    "CANCELLED": ("check", "cancelled_notice"),
    "STALE": ("notices", "stale"),
    "OPEN_CHECK": ("notices", "open_check"),
    "ALREADY": ("notices", "already"),
    "EXPIRED": ("notices", "expired"),
    "TICK_FIRST": ("notices", "tick_first"),
    "ERROR": ("notices", "error"),
    "DELETED": ("delete", "deleted"),
    "NOTHING_STORED": ("delete", "nothing_stored"),
    "RESTARTED": ("check", "restarted"),
}
"""The short notices and replies (plain text), by the name code uses (`render.EXPIRED`)."""


def notice(name: str, t: Texts | None = None) -> str:
    """A short notice or reply in the person's language, e.g. `notice("EXPIRED", t)`."""
    section, key = NOTICES[name]
    return _t(t).screens.text(section, key)


def said(name: str, t: Texts | None = None) -> str:
    """A notice as a message of its own (HTML)."""
    return escape(notice(name, t), quote=False)


def need_consent(t: Texts | None = None) -> str:
    return said("NEED_CONSENT", t)


def old_copy(t: Texts | None = None) -> str:
    """The notice for a press on an older copy of a question already answered."""
    return _t(t).chat.text("tap", "old_copy")


def delete_confirm(t: Texts | None = None) -> Screen:
    words = _t(t).screens
    return Screen(
        words.text("delete", "confirm"),
        InlineKeyboardMarkup(
            [
                [
                    _button(words.text("delete", "erase"), MenuKey("erase")),
                    _button(words.text("delete", "keep"), MenuKey("keep")),
                ]
            ]
        ),
    )


def country_question(suggested: Country | None, *, reason: str, t: Texts | None = None) -> Screen:
    t = _t(t)
    words = t.screens
    rows = []
    if suggested is not None:
        label = f"📍 {suggested.name_in(t.lang)}"
        rows.append([_button(label, MenuKey("country", suggested.code))])
    rows.append([_button(words.text("country", "another"), MenuKey("countries"))])
    rows.append([_button(words.text("country", "skip"), MenuKey("country", "none"))])
    return Screen(escape(reason), InlineKeyboardMarkup(rows))


def country_list(countries: list[Country], t: Texts | None = None) -> Screen:
    t = _t(t)
    words = t.screens
    rows = _country_rows(countries, "country", t)
    rows.append([_button(words.text("country", "not_listed"), MenuKey("country", "none"))])
    return Screen(escape(words.text("country", "which")), InlineKeyboardMarkup(rows))


def country_saved(country: Country | None, t: Texts | None = None) -> str:
    """The country list's message once a country is chosen (or none)."""
    t = _t(t)
    if country is None:
        return escape(t.screens.text("country", "saved_none"))
    name, number = escape(country.name_in(t.lang)), escape(country.number_in(t.lang))
    return t.screens.text("country", "saved", country=name, number=number)


def settings_screen(country: Country | None, t: Texts | None = None) -> Screen:
    t = _t(t)
    words = t.screens
    if country is not None:
        name, number = escape(country.name_in(t.lang)), escape(country.number_in(t.lang))
        where = words.text("settings", "country", country=name, number=number)
    else:
        where = escape(words.text("settings", "no_country"))
    return Screen(
        f"<b>{escape(words.text('settings', 'title'))}</b>\n{where}",
        InlineKeyboardMarkup(
            [
                [_button(words.text("settings", "change_country"), MenuKey("countries"))],
                [_button(words.text("language", "button"), MenuKey("lang"))],
                [
                    _button(words.text("settings", "export"), MenuKey("export")),
                    _button(words.text("settings", "delete"), MenuKey("delete")),
                ],
            ]
        ),
    )


def language_list(current: str, t: Texts | None = None) -> Screen:
    """The language picker: each language in its own name, the current one ticked."""
    rows = [
        [_button((TICKED if code == current else "") + name, MenuKey("lang", code))]
        for code, name in NAMES.items()
    ]
    return Screen(escape(_t(t).screens.text("language", "choose")), InlineKeyboardMarkup(rows))


def language_changed(t: Texts) -> str:
    """The language picker's message once a language is chosen: in that language."""
    return escape(t.screens.text("language", "changed"))


_SCREENS = {
    "INTRO": lambda t: intro(None, t),
    "HELP": help_screen,
    "WELCOME_BACK": welcome_back,
    "DECLINED": declined,
}


def __getattr__(name: str) -> Any:
    """`render.EXPIRED`, `render.HELP`, ...: the notice or screen in the language of the
    update being handled (English outside one)."""
    if name in NOTICES:
        return notice(name)
    if name in _SCREENS:
        return _SCREENS[name](_t(None))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
