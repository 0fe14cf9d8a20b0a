"""Answer the triage like a person who knows the facts: the shared walker for vignette tests.

The choice of answers depends only on each option's `sets`, so the same plan can drive the
engine directly (here) or the Telegram adapter (end-to-end tests press the same buttons).

A fact is True, False or None/missing (the person does not know). An option agrees with the
facts when every finding it sets has exactly that value in the facts; an option that sets
nothing ("Not sure") agrees with anything. A box is ticked for something the person has: an
option that only says no ("New to me, only the first few" says the cramps are not worsening)
is left to the people it describes, whom the facts cannot tell apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hypothesis import strategies as st

from dialogs.content import Option, Question
from dialogs.engine import Flow, Outcome, Prompt

Facts = Mapping[str, bool | None]
WALK_START = datetime(2025, 1, 1, 2, 30, tzinfo=UTC)


def agrees(option: Option, facts: Facts) -> bool:
    """Every finding the option sets has that very value in the facts."""
    return all(facts.get(finding) is value for finding, value in option.sets.items())


@dataclass(frozen=True)
class Plan:
    """How to answer one question: tick `option_ids` then Done, or tap the single option."""

    question_id: str
    option_ids: tuple[str, ...]
    ticks: bool
    offered: tuple[str, ...] = ()
    """The options shown, in order (spec v2: some options are offered only when they apply)."""

    @property
    def option_id(self) -> str:
        """The one option to tap when `ticks` is False."""
        assert not self.ticks and len(self.option_ids) == 1, self
        return self.option_ids[0]


def _most_specific(options: list[Option], question: Question) -> Option:
    if not options:
        raise AssertionError(f"no option of {question.id!r} agrees with the facts")
    return max(options, key=lambda o: len(o.sets))  # first one wins a tie


def plan_answer(question: Question, facts: Facts) -> Plan:
    """The answer a person knowing `facts` gives to `question`."""
    offered = tuple(o.id for o in question.options)
    if not question.multi:
        best = _most_specific([o for o in question.options if agrees(o, facts)], question)
        return Plan(question.id, (best.id,), ticks=False, offered=offered)
    ticks = tuple(
        o.id
        for o in question.options
        if not o.exclusive and any(o.sets.values()) and agrees(o, facts)
    )
    if ticks:
        return Plan(question.id, ticks, ticks=True, offered=offered)
    exclusive = [o for o in question.options if o.exclusive and agrees(o, facts)]
    return Plan(
        question.id, (_most_specific(exclusive, question).id,), ticks=False, offered=offered
    )


@dataclass
class Walk:
    """The end of a walk, and the plans that led there in asking order."""

    outcome: Outcome
    plans: list[Plan] = field(default_factory=list)

    @property
    def asked(self) -> list[str]:
        return [p.question_id for p in self.plans]


def walk(flow: Flow, facts: Facts, *, now: datetime = WALK_START) -> Walk:
    """Answer every question the engine asks until it concludes (bounded: no loops)."""
    conversation = flow.start(now)
    step = conversation.step()
    plans: list[Plan] = []
    for _ in range(len(flow.content.questions) + 1):
        if isinstance(step, Outcome):
            return Walk(step, plans)
        assert isinstance(step, Prompt)
        plan = plan_answer(step.question, facts)
        plans.append(plan)
        if plan.ticks:
            for option_id in plan.option_ids:
                step = conversation.choose(option_id, now, question_id=plan.question_id)
            step = conversation.done(now, question_id=plan.question_id)
        else:
            step = conversation.choose(plan.option_id, now, question_id=plan.question_id)
    raise AssertionError(f"the triage did not conclude after {len(plans)} answers: {plans}")


@st.composite
def random_path(draw: st.DrawFn, flow: Flow, *, most_ticks: int = 5) -> tuple[Outcome, int]:
    """An outcome reached by tapping through a flow at random, and how many questions it took."""
    conversation = flow.start(WALK_START)
    step = conversation.step()
    asked = 0
    while isinstance(step, Prompt):
        asked += 1
        question = step.question
        if question.multi:
            tickable = [o.id for o in question.options if not o.exclusive]
            exclusive = [o.id for o in question.options if o.exclusive]
            ticks = draw(st.lists(st.sampled_from(tickable), unique=True, max_size=most_ticks))
            ids = ticks or [draw(st.sampled_from(exclusive))]
        else:
            ids = [draw(st.sampled_from([o.id for o in question.options]))]
        step = conversation.answer(ids, WALK_START)
    assert isinstance(step, Outcome)
    return step, asked
