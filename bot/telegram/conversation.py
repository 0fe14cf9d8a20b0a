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
from dialogs.records import CANCELLED, AnswerRecord
from dialogs.texts import FLOWS, Texts, texts
from storage import Repo

logger = logging.getLogger(__name__)

QuestionScreen = Callable[[Prompt, int], render.Screen]
"""A flow's own look for a question (its texts in the language of the update, `render`)."""
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
        t = texts(reply.user.lang)
        look = self.screens.get(service.flow.name)
        screen = (
            look(step, reply.conversation_id)
            if look is not None
            else render.question(step, reply.conversation_id, t)
        )
        done = tuple(a for a in reply.answers if a.question_id != step.question.id)
        return render.living(self.answer_lines(service, reply, done), screen)

    @staticmethod
    def answer_lines(
        service: FlowService, reply: Reply, answers: tuple[AnswerRecord, ...]
    ) -> list[str]:
        """The answered lines, in the person's language (the flow's questions in it)."""
        t = texts(reply.user.lang)
        name = service.flow.name
        content = t.flow(name) if name in FLOWS else service.flow.content
        return render.answer_lines(content, answers, t)

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
        t = texts(reply.user.lang)
        if reply.refused == "restarted":
            turn.say(render.said("RESTARTED", t))
            self.start(turn, said=None)
            return
        step = reply.step
        lines = self.answer_lines(service, reply, reply.answers)
        cid = reply.conversation_id
        if step is None:
            turn.say(render.said("NO_CHECK", t))
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
                ended = t.screens.text("check", "cancelled")
                turn.edit(message_id, render.transcript(lines, ended))
            turn.say(render.said("CANCELLED", t), conversation_id=cid)
        elif reply.advice is None:
            if message_id is not None:
                turn.edit(message_id, render.transcript(lines, t.screens.text("check", "done")))
            ending = self.endings.get(service.flow.name)
            if ending is not None:
                ending(turn, reply)
        else:
            assert cid is not None
            # The check's message becomes the result, with all that follows a result on its
            # buttons: one call for the last tap, as for every other (spec v3 item 10).
            extras = tuple(e for after in self.after_result if (e := after(turn, reply)))
            screen = render.outcome(reply.advice, cid, extras=extras, answers=lines, t=t)
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
        t = turn.texts(repo)
        words = t.screens
        action: Action
        match key:
            case AnswerKey(cid, qid, oid, tick):
                action = Choose(oid, question_id=qid, conversation_id=cid, tick=tick)
                said = _label(service, qid, oid, t)
            case DoneKey(cid, qid):
                action = Done(question_id=qid, conversation_id=cid)
                said = words.text("check", "said_done")
            case NavKey("back", cid):
                action, said = Back(conversation_id=cid), words.text("check", "said_back")
            case NavKey(_, cid):
                action, said = Cancel(conversation_id=cid), words.text("check", "said_cancel")
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
                    turn.toast(render.notice("ALREADY", t))  # a second press on its own message
                    return
                # An older copy of the question (say, a send Telegram shows twice): the
                # answer stands, and that copy shows the open question (issue 18).
                turn.toast(render.old_copy(t))
                self.show(turn, reply, service, message_id=message_id)
                return
            turn.toast(render.notice("STALE", t))
            if isinstance(reply.step, Prompt):
                self.show(turn, reply, service)  # where the person really is
            return
        if reply.refused == "nothing_ticked":
            turn.toast(render.notice("TICK_FIRST", t))
            return
        if reply.refused is not None:
            turn.toast(render.notice("EXPIRED", t))
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


def _label(service: FlowService, question_id: str, option_id: str, t: Texts) -> str:
    """The label of the button pressed, as the person read it."""
    name = service.flow.name
    content = t.flow(name) if name in FLOWS else service.flow.content
    question = content.question(question_id)
    option = question.option(option_id) if question else None
    return option.label if option else option_id


__all__ = ["Conversations"]
