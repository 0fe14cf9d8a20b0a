"""The dialog engine: a `transitions` machine per flow, built once, driving many conversations.

A conversation is a plain model object. For each step it is added to the flow's shared
machine, moved by the `advance` trigger (whose conditions skip questions that do not apply,
and stop at once when the rules reach `emergency`), then removed again, so the machine never
holds on to conversations. The engine is synchronous and pure: no Telegram, no database.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from transitions import EventData, Machine, MachineError

from dialogs import rules
from dialogs.content import Condition, FlowContent, Question, load_flow
from dialogs.records import (
    CANCELLED,
    CONCLUDED,
    EMERGENCY,
    ESCALATED,
    FINAL_STATES,
    AnswerRecord,
    Conclusion,
    ConversationState,
)
from dialogs.vocabulary import RED_FLAGS, Urgency


class AnswerError(ValueError):
    """An answer that does not fit the conversation: unknown, or after the end."""


class NothingTicked(AnswerError):
    """ "Done" on a multi-answer question before anything was ticked."""


class StaleAnswer(AnswerError):
    """An answer to a question that is no longer the open one (an old button)."""


@dataclass(frozen=True)
class Prompt:
    """The question to show now, with ticks already made on a multi-answer question."""

    question: Question
    selected: frozenset[str] = frozenset()
    number: int = 1
    can_go_back: bool = False


@dataclass(frozen=True)
class Outcome:
    """The end of a conversation: `concluded`, `emergency` or `cancelled`."""

    state: str
    conclusion: Conclusion | None
    findings: dict[str, bool] = field(default_factory=dict)


Step = Prompt | Outcome


class _When:
    """A transition condition with a readable name, so diagrams show the YAML's `ask_if`."""

    def __init__(self, name: str, test: Callable[[dict[str, bool]], bool]) -> None:
        self.__name__ = name
        self._test = test

    def __call__(self, event: EventData) -> bool:
        return self._test(event.model.facts)


def _is_emergency(facts: dict[str, bool]) -> bool:
    return rules.conclude(facts).urgency is Urgency.EMERGENCY


def _has_red_flag(facts: dict[str, bool]) -> bool:
    return any(facts.get(flag) is True for flag in RED_FLAGS)


# What `stop_when` in a flow's YAML means: the final state, and the test that sends it there.
STOPS: dict[str, tuple[str, Callable[[dict[str, bool]], bool]]] = {
    "emergency": (EMERGENCY, _is_emergency),
    "red_flag": (ESCALATED, _has_red_flag),
}


def machine_config(content: FlowContent) -> dict[str, Any]:
    """The `transitions` configuration for a flow: states, and `advance` in asking order."""
    stop_state, stop_test = STOPS[content.stop_when]
    stop = _When(content.stop_when, stop_test)
    states: list[dict[str, Any]] = [{"name": q.id} for q in content.questions]
    states += [{"name": s, "final": True} for s in (CONCLUDED, stop_state, CANCELLED)]
    transitions: list[dict[str, Any]] = []
    for i, q in enumerate(content.questions):
        transitions.append(
            {"trigger": "advance", "source": q.id, "dest": stop_state, "conditions": [stop]}
        )
        for later in content.questions[i + 1 :]:
            if not later.gate:
                transitions.append({"trigger": "advance", "source": q.id, "dest": later.id})
                break
            when = _When(later.gate, later.applies)
            transitions.append(
                {"trigger": "advance", "source": q.id, "dest": later.id, "conditions": [when]}
            )
        else:
            transitions.append({"trigger": "advance", "source": q.id, "dest": CONCLUDED})
    transitions.append(
        {"trigger": "abandon", "source": [q.id for q in content.questions], "dest": CANCELLED}
    )
    return {
        "states": states,
        "transitions": transitions,
        "initial": content.questions[0].id,
        "auto_transitions": False,
        "send_event": True,
        "model": None,
    }


class Flow:
    """A question flow and its shared state machine."""

    def __init__(self, content: FlowContent) -> None:
        self.content = content
        self.name = content.name
        self.machine = Machine(**machine_config(content))

    @classmethod
    def load(cls, name: str) -> Flow:
        """The flow's machine, on its English content (decisions never depend on a language:
        each language's texts come from `dialogs.texts`)."""
        return cls(load_flow(name))

    def start(self, now: datetime) -> Conversation:
        first = self.content.questions[0].id
        return Conversation(self, ConversationState(self.name, first, started_at=now))

    def restore(self, state: ConversationState) -> Conversation:
        """Resume a stored conversation; `AnswerError` if the content no longer fits it."""
        if state.flow != self.name:
            raise AnswerError(f"conversation belongs to flow {state.flow!r}, not {self.name!r}")
        if state.state not in FINAL_STATES:
            question = self.content.question(state.state)
            if question is None:
                raise AnswerError(f"stored question {state.state!r} no longer exists")
            tickable = {o.id for o in question.options if question.multi and not o.exclusive}
            if not set(state.pending) <= tickable:
                raise AnswerError(f"stored ticks {state.pending!r} no longer fit {question.id!r}")
        conversation = Conversation(self, state)
        conversation.recompute()
        return conversation


def derive_values(content: FlowContent, answers: Iterable[AnswerRecord]) -> dict[str, object]:
    """Replay the answers' `records` (and typed text) into the flow's fields."""
    values: dict[str, object] = {}
    for record in answers:
        question = content.question(record.question_id)
        if question is None:
            continue
        if record.text is not None and question.input_field:
            values[question.input_field] = record.text
        for option_id in record.option_ids:
            option = question.option(option_id)
            for name, value in (option.records if option else {}).items():
                if content.fields.get(name) == "list":
                    values.setdefault(name, [])
                    values[name].append(value)  # type: ignore[attr-defined]
                else:
                    values[name] = value
    return values


class _Traveller:
    """The model the shared machine moves for one step: a state and the findings it tests.

    A fresh one each step, so the machine's bound triggers never stick to a conversation.
    """

    state: str

    def __init__(self, facts: dict[str, bool]) -> None:
        self.facts = facts


class Conversation:
    """One person's walk through a flow. Methods return the next `Step`."""

    def __init__(self, flow: Flow, state: ConversationState) -> None:
        self.flow = flow
        self.data = state

    @property
    def findings(self) -> dict[str, bool]:
        return self.data.findings

    @property
    def finished(self) -> bool:
        return self.data.state in FINAL_STATES

    @property
    def facts(self) -> dict[str, bool]:
        """What conditions test: the findings, and the flow's yes/no fields."""
        booleans = {k: v for k, v in self.values().items() if isinstance(v, bool)}
        return {**booleans, **self.findings}

    def facts_for_rules(self) -> dict[str, bool]:
        """Findings for the clinical rules.

        A flow whose emergency screen can be skipped (the diary) asks it whenever there were
        symptoms, so emergency signs not reported count as absent, not as "not sure".
        """
        if self.flow.content.red_flags_always_asked:
            return dict(self.findings)
        return {**dict.fromkeys(rules.EMERGENCY_FLAGS, False), **self.findings}

    def values(self) -> dict[str, object]:
        """The flow's recorded fields (diary numbers, what helped, the note), from the answers."""
        return derive_values(self.flow.content, self.data.answers)

    def snapshot(self) -> ConversationState:
        """A copy of the state to store; later steps do not change it."""
        return copy.deepcopy(self.data)

    # --- reading ------------------------------------------------------------------------------

    def step(self) -> Step:
        if self.finished:
            return Outcome(self.data.state, self.data.conclusion, dict(self.findings))
        question = self._question().offered_to(self.findings)
        return Prompt(
            question=question,
            selected=frozenset(self.data.pending),
            number=len(self.data.answers) + 1,
            can_go_back=bool(self.data.answers or self.data.pending),
        )

    # --- answering ----------------------------------------------------------------------------

    def choose(
        self,
        option_id: str,
        now: datetime,
        *,
        question_id: str | None = None,
        tick: bool | None = None,
    ) -> Step:
        """Tap an option: answers a single question, ticks or unticks on a multi-answer one.

        `question_id`, when given, must be the open question (a stale button is refused).
        `tick` sets the tick rather than toggling it, so a repeated tap changes nothing.
        """
        question = self._open_question(question_id)
        option = question.option(option_id)
        if option is None:
            raise AnswerError(f"{option_id!r} is not an answer to {question.id!r}")
        if not question.multi or option.exclusive:
            return self._record(question, (option.id,), now)
        ticked = set(self.data.pending)
        if tick is None:
            tick = option.id not in ticked
        ticked = ticked | {option.id} if tick else ticked - {option.id}
        self.data.pending = tuple(o.id for o in question.options if o.id in ticked)
        return self.step()

    def enter_text(self, text: str, now: datetime, *, question_id: str | None = None) -> Step:
        """Answer a question that takes typed text (cut to its `max_length`)."""
        question = self._open_question(question_id)
        if question.input_field is None:
            raise AnswerError(f"{question.id!r} takes buttons, not text")
        cleaned = " ".join(text.split())[: question.max_length]
        if not cleaned:
            raise AnswerError("empty text")
        return self._record(question, (), now, text=cleaned)

    def done(self, now: datetime, *, question_id: str | None = None) -> Step:
        """Finish a multi-answer question with the ticks made; no ticks is not an answer."""
        question = self._open_question(question_id)
        if not question.multi:
            raise AnswerError(f"{question.id!r} takes one answer, not a done")
        if not self.data.pending:
            raise NothingTicked("nothing ticked yet")
        return self._record(question, self.data.pending, now)

    def answer(self, option_ids: Iterable[str], now: datetime) -> Step:
        """Answer the open question in one go (used by tests and replays)."""
        question = self._open_question(None)
        ids = tuple(option_ids)
        if not question.multi:
            if len(ids) != 1:
                raise AnswerError(f"{question.id!r} takes exactly one answer")
            return self.choose(ids[0], now)
        if any(question.option(i) is None for i in ids) or not ids:
            raise AnswerError(f"{ids!r} is not an answer to {question.id!r}")
        exclusive = [i for i in ids if question.option(i).exclusive]  # type: ignore[union-attr]
        if exclusive and len(ids) > 1:
            raise AnswerError(f"{exclusive[0]!r} cannot be combined with other answers")
        self.data.pending = ()
        return self._record(question, ids, now)

    def back(self) -> Step:
        """Undo the last answer (or clear the ticks on the open question)."""
        if self.data.state == CANCELLED:
            raise AnswerError("this conversation was cancelled")
        if self.data.pending:
            self.data.pending = ()
            return self.step()
        if not self.data.answers:
            return self.step()
        last = self.data.answers.pop()
        self._move_to(last.question_id)
        self.data.conclusion = None
        self.data.finished_at = None
        self.recompute()
        return self.step()

    def cancel(self, now: datetime) -> Step:
        if self.finished:
            raise AnswerError("this conversation has already ended")
        self._fire("abandon")
        self.data.pending = ()
        self.data.finished_at = now
        return self.step()

    # --- internals ------------------------------------------------------------------------------

    def recompute(self) -> None:
        """Derive findings from the answers, replayed in order (later answers win)."""
        self.data.findings = self._derive(self.data.answers)

    def _derive(self, answers: Iterable[AnswerRecord]) -> dict[str, bool]:
        findings: dict[str, bool] = {}
        for record in answers:
            question = self.flow.content.question(record.question_id)
            if question is None:
                raise AnswerError(f"stored answer to unknown question {record.question_id!r}")
            findings.update(answer_sets(question, record.option_ids, findings))
        return findings

    def _record(
        self,
        question: Question,
        option_ids: tuple[str, ...],
        now: datetime,
        *,
        text: str | None = None,
    ) -> Step:
        answers = [*self.data.answers, AnswerRecord(question.id, option_ids, now, text)]
        findings = self._derive(answers)  # raises before anything changes
        self.data.answers, self.data.findings, self.data.pending = answers, findings, ()
        self._fire("advance")
        if self.finished:
            if self.data.state != CONCLUDED or self.flow.content.concludes:
                self.data.conclusion = rules.conclude(self.facts_for_rules())
            self.data.finished_at = now
        return self.step()

    def _fire(self, trigger: str) -> None:
        """Attach to the shared machine, pull the trigger, detach (never rebuild the machine)."""
        machine = self.flow.machine
        traveller = _Traveller(self.facts)
        machine.add_model(traveller, initial=self.data.state)
        try:
            if not getattr(traveller, trigger)():
                raise AnswerError(f"no way on from {self.data.state!r}")
        except MachineError as exc:
            raise AnswerError(str(exc)) from exc
        finally:
            machine.remove_model(traveller)
        self.data.state = traveller.state

    def _move_to(self, question_id: str) -> None:
        self.data.state = question_id

    def _question(self) -> Question:
        question = self.flow.content.question(self.data.state)
        if question is None:  # restore() rules this out; kept as a clear error, not a KeyError
            raise AnswerError(f"unknown question {self.data.state!r}")
        return question

    def _open_question(self, question_id: str | None) -> Question:
        """The open question as offered to this person (options that do not apply are gone)."""
        if self.finished:
            raise StaleAnswer("this conversation has already ended")
        question = self._question().offered_to(self.findings)
        if question_id is not None and question_id != question.id:
            raise StaleAnswer(f"{question_id!r} is not the open question")
        return question


def answer_sets(
    question: Question, option_ids: Iterable[str], before: dict[str, bool]
) -> dict[str, bool]:
    """The findings one answer sets, given the findings before it.

    Options not offered to this person (`offer_if`) set nothing, not even through "None of
    these". On an `unticked_means_no` question, ticking something makes every offered option
    left unticked a "no" to what it would have set, unless an earlier answer said yes to it:
    an unticked box never takes back a yes (the rules escalate on what was said).
    """
    ids = tuple(option_ids)
    chosen = [question.option(i) for i in ids]
    if any(o is None for o in chosen):
        raise AnswerError(f"stored answer {ids!r} no longer fits {question.id!r}")
    hidden = {f for o in question.options if not o.offered(before) for f in o.sets}
    shown = {f for o in question.options if o.offered(before) and not o.exclusive for f in o.sets}
    out: dict[str, bool] = {}
    if question.unticked_means_no and any(o is not None and not o.exclusive for o in chosen):
        for option in question.options:
            if option.offered(before) and not option.exclusive and option.id not in ids:
                out.update(
                    {f: False for f, v in option.sets.items() if v is True and not before.get(f)}
                )
    for option in chosen:
        assert option is not None
        out.update({f: v for f, v in option.sets.items() if f not in hidden or f in shown})
    return out


__all__ = [
    "AnswerError",
    "Condition",
    "Conversation",
    "Flow",
    "NothingTicked",
    "Outcome",
    "Prompt",
    "StaleAnswer",
    "Step",
]
