"""The terminal chat: the same triage, engine and store as Telegram, typed at a prompt.

Options are numbered; the person types a number or the option's words. `back`, `cancel`,
`help`, `check` and `quit` work at any time. Nothing typed leads to a traceback. Typed words
that name an emergency sign get that sign's emergency advice at once (spec v2 item 5); "go on"
returns to the open question, with nothing lost.

Spec v3: the country is asked once, before the first question (suggested from the locale), so
the first result already names the right numbers; other typed words get a kind reply; after a
result the person may type a note for their doctor. Lines wrap at word boundaries to the
terminal's width. The words are in dialogs/chat.yaml.

Languages (issue 17): the chat speaks the language it is given (`python -m bot --lang`, else
the locale: LC_ALL, LC_MESSAGES, LANG) and stores it for the person, so results, stored advice
and exports match. Everything it prints is from `dialogs/terminal.yaml` and `chat.yaml` in that
language; the words a person types are there too (a German types "hilfe"), and English's work
in every language. Typed danger words are read in the language and in English.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import textwrap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TextIO

from bot.services.flow import Back, Cancel, Choose, Done, FlowService, Reply, Resume, Start, Who
from dialogs import danger
from dialogs.advice import AdviceBook
from dialogs.chat import ChatBook, one_line
from dialogs.countries import Country, EmergencyNumbers
from dialogs.engine import Outcome, Prompt, Step
from dialogs.i18n import SOURCE, pick
from dialogs.records import CANCELLED
from dialogs.texts import Texts, texts

MAX_INPUT = 500
EMERGENCY_BANNER = "=" * 60
COMMANDS = ("back", "cancel", "check", "help", "quit", "skip", "done", "go_on")
"""The commands of `terminal.yaml`'s `commands` section."""
HELPED = ("back", "cancel", "check", "help", "quit")
"""The commands `help` lists, in its order."""
_SURROGATE = re.compile("[\ud800-\udfff]")
_HANGING = re.compile(r"^(\s*(?:• |\d+\. |\[[ x]\] )?)")


def locale_of(environ: Mapping[str, str]) -> str | None:
    """The locale the person's programs use, as POSIX reads it (LC_ALL, then LANG)."""
    return environ.get("LC_ALL") or environ.get("LANG") or None


def language_of(environ: Mapping[str, str]) -> str:
    """The language for the messages of the person's programs, as POSIX reads it (LC_ALL,
    then LC_MESSAGES, then LANG); English for none of ours ("C", "fr_FR", unset)."""
    return pick(environ.get("LC_ALL") or environ.get("LC_MESSAGES") or environ.get("LANG") or None)


def _words(text: str) -> list[str]:
    """A comma-separated list of typed words, as compared: lower case, spaces single."""
    return [w for w in (" ".join(part.lower().split()) for part in text.split(",")) if w]


@dataclass(frozen=True)
class Commands:
    """The words a person may type for each command in one language (its own and English's),
    and the word the texts name for each (the language's first)."""

    words: Mapping[str, frozenset[str]]
    first: Mapping[str, str]

    def means(self, command: str, text: str) -> bool:
        return " ".join(text.lower().split()) in self.words[command]

    def named(self) -> dict[str, str]:
        """The placeholders of `terminal.yaml`'s texts: {help}, {back}, ..."""
        return dict(self.first)


@cache
def commands(lang: str = SOURCE) -> Commands:
    own, english = texts(lang).terminal, texts(SOURCE).terminal
    words: dict[str, frozenset[str]] = {}
    first: dict[str, str] = {}
    for name in COMMANDS:
        mine = _words(own.text("commands", name)) or _words(english.text("commands", name))
        first[name] = mine[0]
        words[name] = frozenset(mine) | frozenset(_words(english.text("commands", name)))
    return Commands(words, first)


def help_text(lang: str = SOURCE) -> str:
    """The commands, one line each: the language's word for it and what it does."""
    words, named = texts(lang).terminal, commands(lang).first
    width = max(len(named[name]) for name in HELPED)
    lines = [f"  {named[name]:<{width}}  {words.text('help', name)}" for name in HELPED]
    return "\n".join([words.text("help", "lead"), *lines])


def wrap(text: str, width: int) -> str:
    """`text` with every line broken at spaces to fit `width`, never inside a word; a bullet
    or numbered line's next lines start under its text."""
    out = []
    for line in text.split("\n"):
        if len(line) <= width:
            out.append(line)
            continue
        hanging = " " * len(_HANGING.match(line).group(1))  # type: ignore[union-attr]
        out.append(
            textwrap.fill(
                line,
                width=max(width, 20),
                subsequent_indent=hanging,
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    return "\n".join(out)


class TerminalChat:
    """A line-based chat over any text input and output (stdin/stdout when run for real)."""

    def __init__(
        self,
        service: FlowService,
        *,
        lines: Iterator[str],
        out: TextIO,
        who: Who | None = None,
        numbers: EmergencyNumbers | None = None,
        locale: str | None = None,
        width: int | None = None,
        book: ChatBook | None = None,
        lang: str | None = None,
    ) -> None:
        self.service = service
        self.lines = lines
        self.out = out
        self.who = who or Who("terminal", getpass.getuser() or "local")
        self.numbers = numbers or EmergencyNumbers.load()
        self.suggested: Country | None = self.numbers.suggest_from_locale(locale)
        self.width = width
        """Columns to wrap at; None: the terminal's width at each message (see `columns`)."""
        self.given_book = book
        self.chosen = lang
        """The language asked for (stored for the person when the chat runs); None: the one
        stored for them (English for someone new)."""
        self.reply: Reply | None = None
        self.shown: Step | None = None
        self.danger_shown = False
        self.asking_country = False
        self.note_for: int | None = None
        """The check whose note for the doctor the next line is (asked after its result)."""
        self.speak(lang or SOURCE)

    def speak(self, lang: str) -> None:
        """Use `lang` for everything said and read from now on."""
        self.texts: Texts = texts(lang)
        self.lang = self.texts.lang
        self.words = self.texts.terminal
        self.book = self.given_book or self.texts.chat
        self.commands = commands(self.lang)

    @property
    def advice(self) -> AdviceBook:
        """The advice in the chat's language (as `FlowService.advice_for` gives it)."""
        return self.service.advice if self.lang == SOURCE else self.texts.advice

    def text(self, section: str, key: str, **values: object) -> str:
        """A text of `terminal.yaml`; its {help}, {check}, ... name the commands' words."""
        return self.words.text(section, key, **{**self.commands.named(), **values})

    def run(self) -> int:
        self.settle_language()
        self.say(self.words.text("intro"))
        reply = self.service.handle(self.who, Resume())
        if reply.user.country_asked_at is None:
            self.ask_country()
        else:
            self.begin(reply)
        for raw in self.lines:
            # A lone surrogate (undecodable input) cannot be stored: it becomes U+FFFD.
            text = _SURROGATE.sub("\ufffd", raw.strip()[:MAX_INPUT])
            if self.commands.means("quit", text):
                break
            self.on_text(text)
        self.say(self.text("bye", "saved"))
        return 0

    def settle_language(self) -> None:
        """Store the chat's language for the person (their results and stored advice are in
        it); with none given, take the one stored for them."""
        user = self.service.find_user(self.who)
        if user is None:
            user = self.service.handle(self.who, Resume()).user  # the person's record
        if self.chosen is None:
            self.speak(user.lang)
        elif user.language != self.chosen:
            self.service.set_language(self.who, self.chosen)

    def begin(self, reply: Reply) -> None:
        """Carry on with the open check, or start one."""
        if reply.step is not None:
            self.say(self.text("resume", "welcome_back"))
            self.show(reply)
        else:
            self.show(self.act(Start(), None))

    # --- the country, before the first question (spec v3 item 9) ---------------------------

    def country_name(self, country: Country) -> str:
        return self.texts.country(country.code)

    def ask_country(self) -> None:
        self.asking_country = True
        how = (
            self.book.text(
                "terminal", "country_suggested", country=self.country_name(self.suggested)
            )
            if self.suggested is not None
            else self.book.text("terminal", "country_unsuggested")
        )
        self.say(f"{self.book.text('terminal', 'country')}\n{how}")

    def find_country(self, text: str) -> Country | None:
        """A country typed by its English name, code or other name, or its name in the
        chat's language ("Deutschland", "Германия")."""
        found = self.numbers.find(text)
        if found is not None or self.lang == SOURCE:
            return found
        typed = " ".join(text.lower().split())
        for country in self.numbers.countries.values():
            if typed == self.country_name(country).lower():
                return country
        return None

    def on_country(self, text: str) -> None:
        """The answer to the country question: Enter takes the suggestion (or skips)."""
        if self.commands.means("skip", text):
            country = None
        elif not text:
            country = self.suggested
        else:
            country = self.find_country(text)
            if country is None:
                self.say(self.book.text("terminal", "country_unknown"))
                return
        self.service.set_country(self.who, country.code if country else None)
        self.asking_country = False
        self.say(
            self.book.text(
                "terminal",
                "country_saved",
                country=self.country_name(country),
                number=country.number,
            )
            if country
            else self.book.text("terminal", "country_skipped")
        )
        self.begin(self.service.handle(self.who, Resume()))

    # --- typed words ------------------------------------------------------------------------

    def on_text(self, text: str) -> None:
        actions: dict[str, Callable[[], None]] = {
            "help": lambda: self.say(help_text(self.lang)),
            "back": lambda: self.show(self.act(Back(), text)),
            "cancel": lambda: self.show(self.act(Cancel(), text)),
            "check": lambda: self.show(self.act(Start(), text)),
        }
        if self.asking_country:
            if not self.warn_of_danger(text):
                self.on_country(text)
            return
        command = next((name for name in actions if self.commands.means(name, text)), None)
        if command is not None:
            self.note_for = None
            actions[command]()
            return
        if self.note_for is not None and not self.went_on(text):
            if not self.warn_of_danger(text):
                self.on_note(text)
            return
        reply = self.reply
        if self.went_on(text):
            return
        action = None
        if reply is not None and isinstance(reply.step, Prompt):
            action = self.parse_answer(reply.step, text)
        if action is None and self.warn_of_danger(text):
            return
        if reply is None or not isinstance(reply.step, Prompt):
            self.service.log_in(self.who, text)
            if self.has_result():
                self.after_result(text)
            else:
                self.say(self.book.text("typed", "terminal_no_check"))
            return
        if action is None:
            self.service.log_in(self.who, text)
            self.say(self.book.text("typed", "terminal_in_question"))
            self.shown = None  # the whole question again, not just its options
            self.show(reply, repeat=True)
            return
        self.show(self.act(action, text))

    def has_result(self) -> bool:
        reply = self.reply
        return (
            reply is not None
            and isinstance(reply.step, Outcome)
            and reply.step.state != CANCELLED
            and reply.advice is not None
        )

    def after_result(self, text: str) -> None:
        """A typed question after a result: the bot cannot answer it; the result in one
        line; who can (spec v3 item 10)."""
        assert self.reply is not None and self.reply.advice is not None
        line = self.numbers.urgent_care(self.reply.user.country)
        who = (
            self.book.text("typed", "who_with_line", line=line)
            if line
            else self.book.text("typed", "who_without_line")
        )
        result = one_line(self.reply.advice)
        self.say(
            self.book.text("typed", "after_result", result=result, who=who),
            conversation_id=self.reply.conversation_id,
            log=True,
        )

    def on_note(self, text: str) -> None:
        """The line after the note prompt: kept with the result (Enter or 'skip': none)."""
        conversation_id, self.note_for = self.note_for, None
        assert conversation_id is not None
        if not text or self.commands.means("skip", text):
            self.service.skip_note(self.who, conversation_id)
            self.say(self.book.text("note", "terminal_skipped"))
            return
        self.service.log_in(self.who, text, conversation_id=conversation_id)
        note = self.service.keep_note(self.who, conversation_id, text)
        if note is None:
            self.say(self.book.text("typed", "terminal_no_check"))
            return
        self.say(
            self.book.text("note", "saved", note=note), conversation_id=conversation_id, log=True
        )
        if "?" in text and self.has_result():
            self.after_result(text)

    def warn_of_danger(self, text: str) -> bool:
        """Emergency advice at once for typed words that name an emergency sign (read in the
        chat's language and in English)."""
        flags = danger.read(text, self.lang)
        if not flags:
            return False
        book = self.advice
        user = self.reply.user if self.reply is not None else self.service.find_user(self.who)
        country = user.country if user is not None else None
        advice = book.advise_typed(flags, emergency_number=self.service.emergency_number(country))
        conversation_id = self.reply.conversation_id if self.reply is not None else None
        self.say(
            f"{EMERGENCY_BANNER}\n{advice.as_text()}\n{EMERGENCY_BANNER}",
            conversation_id=conversation_id,
            log=True,
        )
        self.danger_shown = True
        self.say(f"{book.go_on_hint}\n  {self.text('after', 'go_on', label=book.go_on_label)}")
        return True

    def went_on(self, text: str) -> bool:
        """ "That's not me, go on" after typed-danger advice: back to the open question."""
        if not self.danger_shown:
            return False
        typed = " ".join(text.lower().strip(" .!").split())
        labels = {self.advice.go_on_label.lower(), self.service.advice.go_on_label.lower()}
        if typed not in labels and not self.commands.means("go_on", typed):
            return False
        self.danger_shown = False
        if self.reply is not None and isinstance(self.reply.step, Prompt):
            self.say(self.text("resume", "carrying_on"))
            self.shown = None  # show the whole question again, not just its options
            self.show(self.reply, repeat=True)
        else:
            self.say(self.text("after", "no_check"))
        return True

    def parse_answer(self, prompt: Prompt, text: str) -> Choose | Done | None:
        """A number or the words of an option (or of the done button), in the chat's language
        or in English."""
        question = prompt.question
        index: int | None = None
        if text.isascii() and text.isdigit():
            index = int(text) - 1
        else:
            english = self.service.flow.content.question(question.id)
            for shown in (question, english) if english is not None else (question,):
                labels = [o.label.lower() for o in shown.options]
                if shown.multi and shown.done_label:
                    labels.append(shown.done_label.lower())
                if text.lower() in labels:
                    index = labels.index(text.lower())
                    break
            if index is None and question.multi and self.commands.means("done", text):
                index = len(question.options)
        count = len(question.options) + (1 if question.multi and question.done_label else 0)
        if index is None or not 0 <= index < count:
            return None
        if index == len(question.options):
            return Done(question_id=question.id)
        return Choose(question.options[index].id, question_id=question.id)

    def act(self, action: object, text: str | None) -> Reply:
        return self.service.handle(self.who, action, said=text)  # type: ignore[arg-type]

    def show(self, reply: Reply, *, repeat: bool = False) -> None:
        self.reply = reply
        if reply.refused == "no_open_check":
            self.say(self.text("after", "no_open_check"))
            return
        if reply.refused == "nothing_ticked":
            self.say(self.text("question", "nothing_ticked"))
        if reply.refused == "invalid" and isinstance(reply.step, Prompt):
            self.say(self.text("question", "invalid"))
            if not reply.step.question.multi:
                return
        step, before = reply.step, self.shown
        if isinstance(step, Prompt):
            brief = isinstance(before, Prompt) and before.question.id == step.question.id
            self.shown = step
            self.say(
                render_prompt(step, brief=brief, lang=self.lang),
                conversation_id=reply.conversation_id,
                log=not repeat,
            )
            return
        self.shown = step
        if isinstance(step, Outcome):
            if step.state == CANCELLED:
                self.say(
                    self.text("after", "cancelled"),
                    conversation_id=reply.conversation_id,
                    log=True,
                )
                return
            if reply.advice is not None:
                text = reply.advice.as_text()
                if step.state == "emergency":
                    text = f"{EMERGENCY_BANNER}\n{text}\n{EMERGENCY_BANNER}"
                self.say(text, conversation_id=reply.conversation_id, log=True)
            self.say(self.text("after", "result"))
            cid = reply.conversation_id
            if (
                reply.advice is not None
                and cid is not None
                and self.service.ask_note(self.who, cid)
            ):
                self.note_for = cid
                self.say(self.book.text("note", "terminal_prompt"))

    def columns(self) -> int | None:
        """Where to wrap: the width given, else the terminal's (COLUMNS first, as
        `shutil.get_terminal_size` reads it); None for output that is no terminal (a pipe, a
        file), which keeps its lines whole."""
        if self.width:
            return self.width
        isatty = getattr(self.out, "isatty", None)
        if os.environ.get("COLUMNS") or (isatty is not None and isatty()):
            return shutil.get_terminal_size().columns
        return None

    def say(self, text: str, *, conversation_id: int | None = None, log: bool = False) -> None:
        width = self.columns()
        self.out.write((wrap(text, width - 1) if width else text) + "\n\n")
        self.out.flush()
        if log:
            self.service.log_out(self.who, text, conversation_id=conversation_id)


def render_prompt(prompt: Prompt, *, brief: bool = False, lang: str = SOURCE) -> str:
    """A question with numbered options; ticks shown as [x] on multi-answer questions.

    `brief` leaves out the question text, for a redraw after a tick.
    """
    question = prompt.question
    numbered = texts(lang).terminal.text(
        "question", "numbered", number=prompt.number, question=question.text
    )
    lines = [] if brief else [numbered, ""]
    for i, option in enumerate(question.options, start=1):
        tick = ""
        if question.multi and not option.exclusive:
            tick = "[x] " if option.id in prompt.selected else "[ ] "
        lines.append(f"  {i}. {tick}{option.label}")
    if question.multi and question.done_label:
        lines.append(f"  {len(question.options) + 1}. {question.done_label}")
    return "\n".join(lines)
