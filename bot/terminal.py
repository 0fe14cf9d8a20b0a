"""The terminal chat: the same triage, engine and store as Telegram, typed at a prompt.

Options are numbered; the person types a number or the option's words. `back`, `cancel`,
`help`, `check` and `quit` work at any time. Nothing typed leads to a traceback. Typed words
that name an emergency sign get that sign's emergency advice at once (spec v2 item 5); "go on"
returns to the open question, with nothing lost.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterator
from typing import TextIO

from bot.services.flow import Back, Cancel, Choose, Done, FlowService, Reply, Resume, Start, Who
from dialogs import danger
from dialogs.engine import Outcome, Prompt, Step
from dialogs.records import CANCELLED

MAX_INPUT = 500
HELP = """\
Commands: type the number of an answer (or its words), or
  back    undo your last answer
  cancel  stop this check
  check   start a new check
  help    show this help
  quit    leave (your answers are saved; you can carry on later)"""
INTRO = """\
nightlegs: a quick check for legs that wake you at night.
It asks a few questions, then says what it looks like and how fast to get help.
It is not a diagnosis. Your answers are kept in a local database on this computer."""
EMERGENCY_BANNER = "=" * 60
GO_ON = {"go on", "not me", "that's not me", "thats not me"}


class TerminalChat:
    """A line-based chat over any text input and output (stdin/stdout when run for real)."""

    def __init__(
        self,
        service: FlowService,
        *,
        lines: Iterator[str],
        out: TextIO,
        who: Who | None = None,
    ) -> None:
        self.service = service
        self.lines = lines
        self.out = out
        self.who = who or Who("terminal", getpass.getuser() or "local")
        self.reply: Reply | None = None
        self.shown: Step | None = None
        self.danger_shown = False

    def run(self) -> int:
        self.say(INTRO)
        reply = self.service.handle(self.who, Resume())
        if reply.step is not None:
            self.say("Welcome back: carrying on with your check where you left off.")
            self.show(reply)
        else:
            self.show(self.act(Start(), None))
        for raw in self.lines:
            text = raw.strip()[:MAX_INPUT]
            if text.lower() in {"quit", "exit", "q"}:
                break
            self.on_text(text)
        self.say("Bye. Your answers are saved; run nightlegs again to carry on or start anew.")
        return 0

    def on_text(self, text: str) -> None:
        command = text.lower()
        commands: dict[str, Callable[[], None]] = {
            "help": lambda: self.say(HELP),
            "?": lambda: self.say(HELP),
            "back": lambda: self.show(self.act(Back(), text)),
            "cancel": lambda: self.show(self.act(Cancel(), text)),
            "check": lambda: self.show(self.act(Start(), text)),
            "start": lambda: self.show(self.act(Start(), text)),
        }
        if command in commands:
            commands[command]()
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
            self.say("Type 'check' to start a new check, 'help' for help, or 'quit' to leave.")
            return
        if action is None:
            self.say("Please answer with one of the numbers shown (or type 'help').")
            self.show(reply, repeat=True)
            return
        self.show(self.act(action, text))

    def warn_of_danger(self, text: str) -> bool:
        """Emergency advice at once for typed words that name an emergency sign."""
        flags = danger.read(text)
        if not flags:
            return False
        book = self.service.advice
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
        self.say(f"{book.go_on_hint}\n  Type: {book.go_on_label}")
        return True

    def went_on(self, text: str) -> bool:
        """ "That's not me, go on" after typed-danger advice: back to the open question."""
        label = self.service.advice.go_on_label.lower()
        if not self.danger_shown or text.lower().strip(" .!") not in GO_ON | {label}:
            return False
        self.danger_shown = False
        if self.reply is not None and isinstance(self.reply.step, Prompt):
            self.say("Carrying on where you left off.")
            self.shown = None  # show the whole question again, not just its options
            self.show(self.reply, repeat=True)
        else:
            self.say("Type 'check' to start a check, or 'quit' to leave.")
        return True

    def parse_answer(self, prompt: Prompt, text: str) -> Choose | Done | None:
        """A number or the words of an option (or of the done button)."""
        question = prompt.question
        labels = [o.label for o in question.options]
        if question.multi and question.done_label:
            labels.append(question.done_label)
        index: int | None = None
        if text.isascii() and text.isdigit():
            index = int(text) - 1
        else:
            matches = [i for i, label in enumerate(labels) if label.lower() == text.lower()]
            index = matches[0] if matches else None
        if index is None or not 0 <= index < len(labels):
            return None
        if index == len(question.options):
            return Done(question_id=question.id)
        return Choose(question.options[index].id, question_id=question.id)

    def act(self, action: object, text: str | None) -> Reply:
        return self.service.handle(self.who, action, said=text)  # type: ignore[arg-type]

    def show(self, reply: Reply, *, repeat: bool = False) -> None:
        self.reply = reply
        if reply.refused == "no_open_check":
            self.say("There is no check open. Type 'check' to start one.")
            return
        if reply.refused == "nothing_ticked":
            self.say("Tick at least one answer first, or choose 'None of these' or 'Not sure'.")
        if reply.refused == "invalid" and isinstance(reply.step, Prompt):
            self.say("That answer does not fit this question.")
            if not reply.step.question.multi:
                return
        step, before = reply.step, self.shown
        if isinstance(step, Prompt):
            brief = isinstance(before, Prompt) and before.question.id == step.question.id
            self.shown = step
            self.say(
                render_prompt(step, brief=brief),
                conversation_id=reply.conversation_id,
                log=not repeat,
            )
            return
        self.shown = step
        if isinstance(step, Outcome):
            if step.state == CANCELLED:
                self.say(
                    "Check cancelled. Type 'check' to start again, or 'quit'.",
                    conversation_id=reply.conversation_id,
                    log=True,
                )
                return
            if reply.advice is not None:
                text = reply.advice.as_text()
                if step.state == "emergency":
                    text = f"{EMERGENCY_BANNER}\n{text}\n{EMERGENCY_BANNER}"
                self.say(text, conversation_id=reply.conversation_id, log=True)
            self.say("Type 'back' to change your last answer, 'check' to start again, or 'quit'.")

    def say(self, text: str, *, conversation_id: int | None = None, log: bool = False) -> None:
        self.out.write(text + "\n\n")
        self.out.flush()
        if log:
            self.service.log_out(self.who, text, conversation_id=conversation_id)


def render_prompt(prompt: Prompt, *, brief: bool = False) -> str:
    """A question with numbered options; ticks shown as [x] on multi-answer questions.

    `brief` leaves out the question text, for a redraw after a tick.
    """
    question = prompt.question
    lines = [] if brief else [f"Q{prompt.number}. {question.text}", ""]
    for i, option in enumerate(question.options, start=1):
        tick = ""
        if question.multi and not option.exclusive:
            tick = "[x] " if option.id in prompt.selected else "[ ] "
        lines.append(f"  {i}. {tick}{option.label}")
    if question.multi and question.done_label:
        lines.append(f"  {len(question.options) + 1}. {question.done_label}")
    return "\n".join(lines)
