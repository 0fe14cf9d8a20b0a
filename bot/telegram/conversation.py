"""Question flows in Telegram (the triage and the diary check-in alike): the living message,
answers from buttons and typed notes, and what ends a conversation.

A check is one message. Each answer edits it to show the answered lines above the next
question, so a tap costs one Bot API call and the person still reads what they answered. The
last answer edits it into the result (the answers folded under it), whose buttons carry what
follows a result: the follow-up offer, the note for the doctor, a new check. So a whole check
costs one call per tap (spec v3 item 10). Flow-specific looks (a check-in's header and snooze
row), endings (the diary's "logged") and what a result offers (the follow-up) are registered
by their features, so this module knows no feature.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.services.flow import (
    Action,
    Back,
    Cancel,
    Choose,
    Done,
    FlowService,
    Reply,
    Resume,
    Start,
    Text,
)
from bot.telegram import render
from bot.telegram.keys import AnswerKey, DoneKey, NavKey
from bot.telegram.turn import MAX_LOGGED_TEXT, Turn, plain
from dialogs.countries import EmergencyNumbers
from dialogs.engine import Prompt
from dialogs.records import CANCELLED
from storage import Repo

logger = logging.getLogger(__name__)

QuestionScreen = Callable[[Prompt, int], render.Screen]
Ending = Callable[[Turn, Reply], None]
AfterResult = Callable[[Turn, Reply], "render.Extra | None"]


class Conversations:
    """The flows' services, and how their steps are shown."""

    def __init__(self, triage: FlowService, numbers: EmergencyNumbers) -> None:
        self.triage = triage
        self.numbers = numbers
        self.services: dict[str, FlowService] = {triage.flow.name: triage}
        self.screens: dict[str, QuestionScreen] = {}
        self.endings: dict[str, Ending] = {}
        self.after_result: list[AfterResult] = []
        """Asked, in order, what a result's message offers besides (e.g. the follow-up)."""

    def add_flow(
        self,
        service: FlowService,
        *,
        screen: QuestionScreen | None = None,
        ending: Ending | None = None,
    ) -> None:
        """Another flow (the diary check-in), with its own question look and ending."""
        name = service.flow.name
        self.services[name] = service
        if screen is not None:
            self.screens[name] = screen
        if ending is not None:
            self.endings[name] = ending

    def service_for(self, conversation_id: int) -> FlowService:
        """The service of the flow a button's conversation belongs to (triage by default)."""
        return self.services.get(self.triage.flow_of(conversation_id) or "", self.triage)

    # --- showing a step -------------------------------------------------------------------

    def question(self, service: FlowService, reply: Reply, step: Prompt) -> render.Screen:
        assert reply.conversation_id is not None
        look = self.screens.get(service.flow.name)
        screen = (
            look(step, reply.conversation_id)
            if look is not None
            else render.question(step, reply.conversation_id)
        )
        done = tuple(a for a in reply.answers if a.question_id != step.question.id)
        return render.living(render.answer_lines(service.flow.content, done), screen)

    def show(
        self,
        turn: Turn,
        reply: Reply,
        service: FlowService,
        *,
        message_id: int | None = None,
        lead: str | None = None,
    ) -> None:
        """Show where a conversation is: in the tapped message if there is one, else anew;
        `lead` (HTML) goes above a question."""
        if reply.refused == "restarted":
            turn.say(render.RESTARTED)
            self.start(turn, said=None)
            return
        step = reply.step
        lines = render.answer_lines(service.flow.content, reply.answers)
        cid = reply.conversation_id
        if step is None:
            turn.say(render.NO_CHECK)
        elif isinstance(step, Prompt):
            screen = self.question(service, reply, step)
            if lead:
                screen = render.with_lead(lead, screen)
            if message_id is None:
                turn.say(screen, conversation_id=cid)
            else:
                turn.edit(message_id, screen, log=plain(step.question.text), conversation_id=cid)
        elif step.state == CANCELLED:
            if message_id is not None:
                turn.edit(message_id, render.transcript(lines, "Cancelled"))
            turn.say(render.CANCELLED, conversation_id=cid)
        elif reply.advice is None:
            if message_id is not None:
                turn.edit(message_id, render.transcript(lines, "Done"))
            ending = self.endings.get(service.flow.name)
            if ending is not None:
                ending(turn, reply)
        else:
            assert cid is not None
            # The check's message becomes the result, with all that follows a result on its
            # buttons: one call for the last tap, as for every other (spec v3 item 10).
            extras = tuple(e for after in self.after_result if (e := after(turn, reply)))
            screen = render.outcome(reply.advice, cid, extras=extras, answers=lines)
            turn.edit(message_id, screen, log=plain(screen.text), conversation_id=cid)

    # --- starting and stepping ------------------------------------------------------------

    def start(
        self,
        turn: Turn,
        *,
        said: str | None,
        message_id: int | None = None,
        lead: str | None = None,
    ) -> None:
        """A new check (an open one is closed as cancelled), in `message_id` if given."""
        reply = self.triage.handle(turn.who, Start(), said=said)
        self.show(turn, reply, self.triage, message_id=message_id, lead=lead)

    def open_step(self, turn: Turn) -> tuple[FlowService, Reply] | None:
        """The open check, or else the open check-in, if a question is waiting."""
        for service in self.services.values():
            reply = service.handle(turn.who, Resume())
            if isinstance(reply.step, Prompt):
                return service, reply
        return None

    def command(self, turn: Turn, action: Action, said: str) -> None:
        """/back and /cancel on the open check."""
        reply = self.triage.handle(turn.who, action, said=said)
        self.show(turn, reply, self.triage)

    def on_answer(self, turn: Turn, key: AnswerKey | DoneKey | NavKey, repo: Repo) -> None:
        """A button of a question: answer, tick, done, back or cancel."""
        tapped = turn.tapped
        message_id = tapped.message_id if tapped is not None else None
        service = self.service_for(key.conversation_id)
        before = service.flow.content.question(getattr(key, "question_id", ""))
        action: Action
        match key:
            case AnswerKey(cid, qid, oid, tick):
                action = Choose(oid, question_id=qid, conversation_id=cid, tick=tick)
                said = _label(service, qid, oid)
            case DoneKey(cid, qid):
                action, said = Done(question_id=qid, conversation_id=cid), "Done"
            case NavKey("back", cid):
                action, said = Back(conversation_id=cid), "Back"
            case NavKey(_, cid):
                action, said = Cancel(conversation_id=cid), "Cancel"
        reply = service.handle(turn.who, action, said=said, meta={"button": key_data(turn)})
        if reply.refused in ("stale", "no_open_check"):
            answered = [a.question_id for a in reply.answers]
            if (
                isinstance(key, AnswerKey | DoneKey)
                and answered
                and answered[-1] == key.question_id
            ):
                chat = turn.chat_id
                current = repo.outbox.last_edited(chat) if chat is not None else None
                if (
                    not isinstance(reply.step, Prompt)
                    or message_id is None
                    or message_id == current
                ):
                    turn.toast(render.ALREADY)  # a second press on the check's own message
                    return
                # An older copy of the question (say, a send Telegram shows twice): the
                # answer stands, and that copy shows the open question (issue 18).
                turn.toast(render.old_copy())
                self.show(turn, reply, service, message_id=message_id)
                return
            turn.toast(render.STALE)
            if isinstance(reply.step, Prompt):
                self.show(turn, reply, service)  # where the person really is
            return
        if reply.refused == "nothing_ticked":
            turn.toast(render.TICK_FIRST)
            return
        if reply.refused is not None:
            turn.toast(render.EXPIRED)
            return
        step = reply.step
        if isinstance(step, Prompt) and before is not None and step.question.id == before.id:
            # A tick on a multi-answer question: the same question, ticks updated.
            turn.edit(message_id, self.question(service, reply, step))
            return
        self.show(turn, reply, service, message_id=message_id)

    def on_text_input(self, turn: Turn, text: str) -> bool:
        """Text typed while the open question takes a note: that is the answer."""
        for service in self.services.values():
            reply = service.handle(turn.who, Resume())
            step = reply.step
            if isinstance(step, Prompt) and step.question.input_field is not None:
                typed = text[:MAX_LOGGED_TEXT]
                reply = service.handle(
                    turn.who, Text(typed, conversation_id=reply.conversation_id), said=typed
                )
                self.show(turn, reply, service)
                return True
        return False


def key_data(turn: Turn) -> str | None:
    query = turn.update.callback_query
    return query.data if query is not None else None


def _label(service: FlowService, question_id: str, option_id: str) -> str:
    question = service.flow.content.question(question_id)
    option = question.option(option_id) if question else None
    return option.label if option else option_id


__all__ = ["Conversations"]
