"""The dialog engine, driven directly: synchronous, one flow built once, no database."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from dialogs import rules
from dialogs.content import Question
from dialogs.engine import (
    AnswerError,
    Conversation,
    Flow,
    NothingTicked,
    Outcome,
    Prompt,
    StaleAnswer,
    Step,
)
from dialogs.records import CANCELLED, CONCLUDED, EMERGENCY, AnswerRecord, ConversationState
from dialogs.vocabulary import RED_FLAG_MINIMUM, RED_FLAGS, Urgency

FLOW = Flow.load("triage")
NOW = datetime(2025, 3, 1, 3, 0, tzinfo=UTC)
QUESTIONS: dict[str, Question] = {q.id: q for q in FLOW.content.questions}
ORDER = [q.id for q in FLOW.content.questions]
EMERGENCY_OPTIONS = {
    "chest": "chest_pain_or_breathless",
    "weakness": "sudden_weakness",
    "calf_swollen": "calf_swelling_warm_red",
    "skin_changes": "tissue_changes",
}
RED_FLAG_QUESTIONS = [
    q.id for q in FLOW.content.questions if any(f in o.sets for o in q.options for f in RED_FLAGS)
]
# An answer to every question that raises no red flag and fits no pattern.
QUIET: dict[str, tuple[str, ...]] = {
    "emergency_signs": ("none",),
    "dangling": ("no",),
    "new_medicine": ("no",),
    "feeling": ("none",),
    "where": ("calf",),
    "sides": ("both",),
    "timing": ("none",),
    "relief": ("nothing",),
    "legs_raised": ("no",),
    "walking": ("no",),
    "cramp_course": ("neither",),
    "health": ("none",),
    "medicines_life": ("none",),
}


def play(
    conversation: Conversation,
    answers: Mapping[str, Sequence[str]] | None = None,
    *,
    until: str | None = None,
) -> tuple[Step, list[str]]:
    """Answer each question asked (from `answers`, else QUIET) until `until` or the end."""
    answers = answers or {}
    asked: list[str] = []
    step = conversation.step()
    for _ in range(len(ORDER) + 1):
        if not isinstance(step, Prompt) or step.question.id == until:
            return step, asked
        asked.append(step.question.id)
        step = conversation.answer(answers.get(step.question.id, QUIET[step.question.id]), NOW)
    raise AssertionError(f"no end after {asked}")


def prompt(step: Step) -> Prompt:
    assert isinstance(step, Prompt), step
    return step


def outcome(step: Step) -> Outcome:
    assert isinstance(step, Outcome), step
    return step


def test_the_quiet_path_fits_the_flow() -> None:
    assert set(QUIET) == set(ORDER)
    for qid, ids in QUIET.items():
        assert all(QUESTIONS[qid].option(i) is not None for i in ids)


# --- Start and the red-flag screen --------------------------------------------------------------


def test_the_first_question_is_the_red_flag_screen() -> None:
    step = prompt(FLOW.start(NOW).step())
    assert step.question.id == "emergency_signs"
    assert step.question.multi
    assert step.number == 1
    assert not step.can_go_back
    assert step.selected == frozenset()
    set_here = {f for o in step.question.options for f in o.sets}
    assert set_here == {f for f, u in RED_FLAG_MINIMUM.items() if u is Urgency.EMERGENCY}


@pytest.mark.parametrize(("option_id", "flag"), EMERGENCY_OPTIONS.items())
def test_an_emergency_red_flag_ends_the_triage_at_once(option_id: str, flag: str) -> None:
    conversation = FLOW.start(NOW)
    assert prompt(conversation.choose(option_id, NOW)).selected == {option_id}
    end = outcome(conversation.done(NOW))
    assert end.state == EMERGENCY
    assert end.conclusion is not None
    assert end.conclusion.urgency is Urgency.EMERGENCY
    assert flag in end.conclusion.red_flags
    assert end.findings[flag] is True
    assert conversation.finished
    assert conversation.snapshot().finished_at == NOW
    with pytest.raises(AnswerError):
        conversation.choose("none", NOW)


def test_several_emergency_signs_together_end_the_triage_at_once() -> None:
    conversation = FLOW.start(NOW)
    end = outcome(conversation.answer(["chest", "calf_swollen"], NOW))
    assert end.state == EMERGENCY
    assert end.conclusion is not None
    assert end.conclusion.red_flags == ("calf_swelling_warm_red", "chest_pain_or_breathless")


def test_none_of_these_answers_a_multi_question_in_one_tap() -> None:
    conversation = FLOW.start(NOW)
    step = prompt(conversation.choose("none", NOW))
    assert step.question.id == "dangling"
    assert step.number == 2
    assert conversation.snapshot().answers[-1].option_ids == ("none",)
    assert conversation.findings == dict.fromkeys(EMERGENCY_OPTIONS.values(), False)


def test_an_exclusive_option_replaces_the_ticks_made_before_it() -> None:
    conversation = FLOW.start(NOW)
    conversation.choose("chest", NOW)
    prompt(conversation.choose("unsure", NOW))
    assert conversation.snapshot().answers[-1].option_ids == ("unsure",)
    assert conversation.snapshot().pending == ()
    assert conversation.findings == {}


def test_not_sure_on_the_safety_screen_carries_on_but_ends_at_least_urgent() -> None:
    conversation = FLOW.start(NOW)
    assert prompt(conversation.choose("unsure", NOW)).question.id == "dangling"
    end = outcome(play(conversation)[0])
    assert end.state == CONCLUDED
    assert end.conclusion is not None
    assert end.conclusion.urgency is Urgency.URGENT


# --- Ticks and Done -------------------------------------------------------------------------------


def test_ticks_toggle_and_show_as_selected() -> None:
    conversation = FLOW.start(NOW)
    assert prompt(conversation.choose("chest", NOW)).selected == {"chest"}
    step = prompt(conversation.choose("weakness", NOW))
    assert step.selected == {"chest", "weakness"}
    assert step.can_go_back
    step = prompt(conversation.choose("chest", NOW))
    assert step.selected == {"weakness"}
    assert step.question.id == "emergency_signs"
    assert conversation.snapshot().answers == []
    assert conversation.findings == {}


def test_an_explicit_tick_or_untick_repeated_changes_nothing() -> None:
    conversation = FLOW.start(NOW)
    conversation.choose("chest", NOW, tick=True)
    assert prompt(conversation.choose("chest", NOW, tick=True)).selected == {"chest"}
    assert prompt(conversation.choose("chest", NOW, tick=False)).selected == frozenset()
    assert prompt(conversation.choose("chest", NOW, tick=False)).selected == frozenset()
    assert conversation.snapshot().answers == []


def test_ticks_are_kept_in_the_order_of_the_options() -> None:
    conversation = FLOW.start(NOW)
    conversation.choose("skin_changes", NOW)
    conversation.choose("chest", NOW)
    assert conversation.snapshot().pending == ("chest", "skin_changes")


def test_done_with_nothing_ticked_is_not_an_answer() -> None:
    conversation = FLOW.start(NOW)
    with pytest.raises(NothingTicked):
        conversation.done(NOW)
    conversation.choose("chest", NOW)
    conversation.choose("chest", NOW)
    with pytest.raises(NothingTicked):
        conversation.done(NOW)
    assert prompt(conversation.step()).question.id == "emergency_signs"
    assert conversation.snapshot().answers == []


def test_done_on_a_single_answer_question_is_refused() -> None:
    conversation = FLOW.start(NOW)
    conversation.choose("none", NOW)
    with pytest.raises(AnswerError):
        conversation.done(NOW)


def test_answer_refuses_an_exclusive_option_combined_with_others() -> None:
    conversation = FLOW.start(NOW)
    with pytest.raises(AnswerError):
        conversation.answer(["chest", "none"], NOW)
    with pytest.raises(AnswerError):
        conversation.answer([], NOW)
    assert conversation.snapshot().answers == []


# --- Back -------------------------------------------------------------------------------------


def test_back_undoes_the_last_answer_and_recomputes_the_findings() -> None:
    conversation = FLOW.start(NOW)
    conversation.choose("none", NOW)
    conversation.choose("yes", NOW)  # dangling relief: a red flag
    assert conversation.findings["dangling_relief"] is True
    step = prompt(conversation.back())
    assert step.question.id == "dangling"
    assert step.number == 2
    assert "dangling_relief" not in conversation.findings
    assert [a.question_id for a in conversation.snapshot().answers] == ["emergency_signs"]
    step = prompt(conversation.back())
    assert step.question.id == "emergency_signs"
    assert conversation.findings == {}


def test_back_clears_the_ticks_before_undoing_an_answer() -> None:
    conversation = FLOW.start(NOW)
    play(conversation, until="feeling")
    conversation.choose("knot", NOW)
    conversation.choose("urge", NOW)
    step = prompt(conversation.back())
    assert step.question.id == "feeling"
    assert step.selected == frozenset()
    assert len(conversation.snapshot().answers) == 3
    assert prompt(conversation.back()).question.id == "new_medicine"


def test_back_at_the_first_question_does_nothing() -> None:
    conversation = FLOW.start(NOW)
    step = prompt(conversation.back())
    assert step.question.id == "emergency_signs"
    assert not step.can_go_back
    assert conversation.snapshot().answers == []


def test_back_reopens_a_concluded_conversation() -> None:
    conversation = FLOW.start(NOW)
    end = outcome(play(conversation)[0])
    assert end.state == CONCLUDED
    step = prompt(conversation.back())
    assert step.question.id == "medicines_life"
    assert not conversation.finished
    assert conversation.snapshot().conclusion is None
    assert conversation.snapshot().finished_at is None
    conversation.choose("diuretic_statin", NOW)
    again = outcome(conversation.done(NOW))
    assert again.state == CONCLUDED
    assert again.findings["takes_diuretic_or_statin"] is True


def test_back_reopens_the_screen_after_an_emergency() -> None:
    conversation = FLOW.start(NOW)
    conversation.answer(["chest"], NOW)
    step = prompt(conversation.back())
    assert step.question.id == "emergency_signs"
    assert conversation.findings == {}
    assert prompt(conversation.choose("none", NOW)).question.id == "dangling"


# --- Cancel, stale and unknown answers --------------------------------------------------------


def test_cancel_ends_the_conversation_and_refuses_further_answers() -> None:
    conversation = FLOW.start(NOW)
    conversation.choose("none", NOW)
    end = outcome(conversation.cancel(NOW))
    assert end.state == CANCELLED
    assert end.conclusion is None
    assert conversation.snapshot().finished_at == NOW
    with pytest.raises(AnswerError):
        conversation.choose("no", NOW)
    with pytest.raises(AnswerError):
        conversation.done(NOW)
    with pytest.raises(AnswerError):
        conversation.back()
    with pytest.raises(AnswerError):
        conversation.cancel(NOW)
    assert outcome(conversation.step()).state == CANCELLED


def test_cancel_drops_the_ticks_made() -> None:
    conversation = FLOW.start(NOW)
    conversation.choose("chest", NOW)
    outcome(conversation.cancel(NOW))
    assert conversation.snapshot().pending == ()


def test_an_answer_to_a_question_no_longer_open_is_stale() -> None:
    conversation = FLOW.start(NOW)
    conversation.choose("none", NOW, question_id="emergency_signs")
    with pytest.raises(StaleAnswer):
        conversation.choose("chest", NOW, question_id="emergency_signs")
    with pytest.raises(StaleAnswer):
        conversation.done(NOW, question_id="emergency_signs")
    assert prompt(conversation.step()).question.id == "dangling"
    assert len(conversation.snapshot().answers) == 1


def test_an_unknown_option_is_refused_without_changing_anything() -> None:
    conversation = FLOW.start(NOW)
    with pytest.raises(AnswerError) as info:
        conversation.choose("maybe", NOW)
    assert not isinstance(info.value, StaleAnswer)
    assert prompt(conversation.step()).selected == frozenset()
    assert conversation.snapshot().answers == []


def test_an_answer_after_the_end_is_stale() -> None:
    conversation = FLOW.start(NOW)
    play(conversation)
    with pytest.raises(StaleAnswer):
        conversation.choose("none", NOW)


# --- Questions that are skipped, and those that never are --------------------------------------


@pytest.mark.parametrize(
    ("answers", "asked"),
    [
        pytest.param({}, False, id="no foot pain"),
        pytest.param({"feeling": ("burning",)}, True, id="burning foot"),
        pytest.param({"where": ("foot",)}, True, id="worst in the foot"),
        pytest.param({"dangling": ("yes",)}, True, id="eased by dangling"),
        pytest.param({"feeling": ("knot", "urge")}, False, id="cramp and urge only"),
    ],
)
def test_legs_raised_is_asked_only_about_foot_pain(
    answers: dict[str, tuple[str, ...]], asked: bool
) -> None:
    end, questions = play(FLOW.start(NOW), answers)
    assert isinstance(end, Outcome)
    assert ("legs_raised" in questions) is asked
    if not asked:
        assert "worse_legs_raised" not in end.findings


@pytest.mark.parametrize(
    ("answers", "asked"),
    [
        pytest.param({}, False, id="no cramp features"),
        pytest.param({"feeling": ("knot",)}, True, id="knotted muscle"),
        pytest.param({"feeling": ("toes",)}, True, id="toes pulled"),
        pytest.param({"relief": ("stretch",)}, True, id="eased by stretching"),
        pytest.param({"feeling": ("urge", "crawling")}, False, id="restless feelings"),
    ],
)
def test_cramp_course_is_asked_only_about_cramps(
    answers: dict[str, tuple[str, ...]], asked: bool
) -> None:
    _end, questions = play(FLOW.start(NOW), answers)
    assert ("cramp_course" in questions) is asked


def test_the_quiet_path_asks_every_unconditional_question_in_order() -> None:
    end, asked = play(FLOW.start(NOW))
    assert outcome(end).state == CONCLUDED
    assert asked == [q.id for q in FLOW.content.questions if q.ask_if is None]
    assert set(RED_FLAG_QUESTIONS) <= set(asked)


def test_no_question_that_sets_a_red_flag_is_ever_skipped() -> None:
    assert RED_FLAG_QUESTIONS == ["emergency_signs", "dangling", "new_medicine"]
    for qid in RED_FLAG_QUESTIONS:
        assert QUESTIONS[qid].ask_if is None


def test_an_urgent_red_flag_does_not_stop_the_questions() -> None:
    end, asked = play(FLOW.start(NOW), {"dangling": ("yes",), "new_medicine": ("yes",)})
    end = outcome(end)
    assert end.state == CONCLUDED
    assert asked[-1] == "medicines_life"
    assert end.conclusion is not None
    assert end.conclusion.urgency is Urgency.URGENT
    assert end.conclusion.red_flags == ("dangling_relief", "new_medicine_cramps")


def test_the_prompt_number_counts_the_answers_given() -> None:
    conversation = FLOW.start(NOW)
    play(conversation, until="timing")
    step = prompt(conversation.step())
    assert step.number == len(conversation.snapshot().answers) + 1 == 7


# --- Snapshot, restore and the shared machine -----------------------------------------------


def test_a_snapshot_restores_at_the_same_question_with_the_same_findings_and_ticks() -> None:
    conversation = FLOW.start(NOW)
    play(conversation, {"feeling": ("knot", "toes")}, until="timing")
    conversation.choose("sudden", NOW)
    conversation.choose("evening", NOW)
    stored = copy.deepcopy(conversation.snapshot())

    resumed = FLOW.restore(stored)
    assert resumed.step() == conversation.step()
    assert resumed.findings == conversation.findings
    assert prompt(resumed.step()).selected == {"sudden", "evening"}

    assert resumed.done(NOW) == conversation.done(NOW)
    assert outcome(play(resumed)[0]) == outcome(play(conversation)[0])


def test_restore_recomputes_the_findings_from_the_answers() -> None:
    conversation = FLOW.start(NOW)
    play(conversation, {"dangling": ("yes",)}, until="feeling")
    stored = copy.deepcopy(conversation.snapshot())
    stored.findings = {"tissue_changes": True}  # a stale copy must not win over the answers
    assert FLOW.restore(stored).findings == conversation.findings


def test_a_finished_conversation_restores_as_finished() -> None:
    conversation = FLOW.start(NOW)
    end = play(conversation)[0]
    resumed = FLOW.restore(copy.deepcopy(conversation.snapshot()))
    assert resumed.finished
    assert resumed.step() == end


def test_restoring_a_state_at_a_missing_question_is_refused() -> None:
    with pytest.raises(AnswerError):
        FLOW.restore(ConversationState(flow="triage", state="no_such_question"))


def test_restoring_an_answer_to_a_missing_question_or_option_is_refused() -> None:
    ghost_question = ConversationState(
        flow="triage",
        state="dangling",
        answers=[AnswerRecord("removed_question", ("none",), NOW)],
    )
    with pytest.raises(AnswerError):
        FLOW.restore(ghost_question)
    ghost_option = ConversationState(
        flow="triage",
        state="dangling",
        answers=[AnswerRecord("emergency_signs", ("removed_option",), NOW)],
    )
    with pytest.raises(AnswerError):
        FLOW.restore(ghost_option)


def test_restoring_another_flows_conversation_is_refused() -> None:
    with pytest.raises(AnswerError):
        FLOW.restore(ConversationState(flow="other", state="emergency_signs"))


def test_restoring_ticks_that_are_not_options_of_the_open_question_is_refused() -> None:
    stored = ConversationState(flow="triage", state="emergency_signs", pending=("removed",))
    with pytest.raises(AnswerError):
        FLOW.restore(stored)


def test_the_machine_is_shared_and_keeps_no_conversations() -> None:
    machine = FLOW.machine
    first, second = FLOW.start(NOW), FLOW.start(NOW)
    play(first, until="feeling")
    play(second)
    first.cancel(NOW)
    assert first.flow.machine is second.flow.machine is machine
    assert first not in machine.models
    assert second not in machine.models
    assert machine.models == []


def test_a_conversation_answers_after_a_refused_step_and_the_machine_stays_empty() -> None:
    conversation = FLOW.start(NOW)
    with pytest.raises(AnswerError):
        conversation.choose("maybe", NOW)
    assert prompt(conversation.choose("none", NOW)).question.id == "dangling"
    assert FLOW.machine.models == []


def test_stepping_one_conversation_many_times_logs_no_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conversation = FLOW.start(NOW)
    with caplog.at_level(logging.WARNING, logger="transitions"):
        play(conversation, until="feeling")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


# --- Random walks: every path ends, and never below what its red flags demand -----------------

MAX_BACKS = 4
MAX_TOGGLES = 6  # per question visit; then the walk must answer it
MAX_ACTIONS = (MAX_BACKS + 1) * len(ORDER) * (MAX_TOGGLES + 3)


def replay(answers: list[tuple[str, tuple[str, ...]]]) -> dict[str, bool]:
    """Findings from the options' `sets`, later answers winning."""
    findings: dict[str, bool] = {}
    for qid, option_ids in answers:
        for option_id in option_ids:
            option = QUESTIONS[qid].option(option_id)
            assert option is not None
            findings.update(option.sets)
    return findings


def expected_next(answers: list[tuple[str, tuple[str, ...]]]) -> str:
    """The question (or end state) the flow should open next, worked out from the content."""
    if not answers:
        return ORDER[0]
    findings = replay(answers)
    if rules.conclude(findings).urgency is Urgency.EMERGENCY:
        return EMERGENCY
    for question in FLOW.content.questions[ORDER.index(answers[-1][0]) + 1 :]:
        if question.ask_if is None or question.ask_if(findings):
            return question.id
    return CONCLUDED


class RandomPath:
    """A person tapping at random, with our own record of what the engine should hold."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data
        self.conversation = FLOW.start(NOW)
        self.answers: list[tuple[str, tuple[str, ...]]] = []
        self.pending: set[str] = set()
        self.backs = 0
        self.toggles = 0

    def moves(self, question: Question) -> list[str]:
        moves = [o.id for o in question.options if o.exclusive or not question.multi]
        if question.multi:
            if self.toggles < MAX_TOGGLES:
                moves += [o.id for o in question.options if not o.exclusive]
            if self.pending:
                moves.append("<done>")
        if self.backs < MAX_BACKS:
            moves.append("<back>")
        return moves

    def back(self) -> Step:
        self.backs += 1
        if self.pending:
            self.pending.clear()
        elif self.answers:
            self.answers.pop()
        return self.conversation.back()

    def answered(self, question: Question, option_ids: tuple[str, ...]) -> None:
        self.answers.append((question.id, option_ids))
        self.pending.clear()
        self.toggles = 0

    def tap(self, step: Prompt) -> Step:
        """Check the open question against our record, then make one random move."""
        assert step.question.id == expected_next(self.answers)
        assert step.selected == self.pending
        assert step.number == len(self.answers) + 1
        question = step.question
        move = self.data.draw(st.sampled_from(self.moves(question)), label=question.id)
        if move == "<back>":
            return self.back()
        if move == "<done>":
            self.answered(question, tuple(o.id for o in question.options if o.id in self.pending))
            return self.conversation.done(NOW, question_id=question.id)
        option = question.option(move)
        assert option is not None
        if question.multi and not option.exclusive:
            self.toggles += 1
            self.pending ^= {move}
        else:
            self.answered(question, (move,))
        return self.conversation.choose(move, NOW, question_id=question.id)

    def run(self) -> Outcome:
        step = self.conversation.step()
        for _ in range(MAX_ACTIONS):
            if isinstance(step, Prompt):
                step = self.tap(step)
                continue
            assert step.state == expected_next(self.answers)
            if self.backs < MAX_BACKS and self.data.draw(st.booleans(), label="back at the end"):
                step = self.back()
                continue
            return outcome(step)
        pytest.fail(f"no conclusion within {MAX_ACTIONS} actions")


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_answer_path_concludes_without_under_triage(data: st.DataObject) -> None:
    path = RandomPath(data)
    end = path.run()
    event(f"ends {end.state} at {end.conclusion and end.conclusion.urgency}")
    event(f"went back {path.backs} times")
    assert end.conclusion is not None
    answers = path.answers
    assert [(a.question_id, a.option_ids) for a in path.conversation.snapshot().answers] == answers
    findings = replay(answers)
    assert end.findings == findings
    chosen_flags = [flag for flag in RED_FLAGS if findings.get(flag) is True]
    minimum = max((RED_FLAG_MINIMUM[f] for f in chosen_flags), default=Urgency.SELF_CARE)
    assert end.conclusion.urgency >= minimum, (answers, end.conclusion)
    assert end.conclusion.red_flags == tuple(chosen_flags)
    if any(findings.get(f) is None for f in EMERGENCY_OPTIONS.values()):
        assert end.conclusion.urgency >= Urgency.URGENT  # unsure on the screen: seen today
    assert (end.state == EMERGENCY) == (end.conclusion.urgency is Urgency.EMERGENCY)
    if end.state == CONCLUDED:
        assert set(RED_FLAG_QUESTIONS) <= {qid for qid, _ in answers}
    assert FLOW.machine.models == []
