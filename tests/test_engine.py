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
    machine_config,
)
from dialogs.records import CANCELLED, CONCLUDED, EMERGENCY, AnswerRecord, ConversationState
from dialogs.vocabulary import RED_FLAG_MINIMUM, RED_FLAGS, Urgency

FLOW = Flow.load("triage")
NOW = datetime(2025, 3, 1, 3, 0, tzinfo=UTC)
QUESTIONS: dict[str, Question] = {q.id: q for q in FLOW.content.questions}
ORDER = [q.id for q in FLOW.content.questions]
EMERGENCY_OPTIONS = {
    "chest": "chest_pain_or_breathless",
    "stroke": "sudden_weakness",
    "leg_weak": "sudden_weakness",
    "saddle": "cauda_equina_signs",
    "muscle_harm": "muscle_breakdown_signs",
    "calf_swollen": "calf_swelling_warm_red",
    "skin_changes": "tissue_changes",
    "infection": "infection_signs",
}
RED_FLAG_QUESTIONS = [
    q.id for q in FLOW.content.questions if any(f in o.sets for o in q.options for f in RED_FLAGS)
]
# An answer to every question that raises no red flag and fits no pattern.
QUIET: dict[str, tuple[str, ...]] = {
    "emergency_signs": ("none",),
    "feeling": ("none",),
    "where": ("calf",),
    "timing": ("none",),
    "relief": ("nothing",),
    "legs_raised": ("no",),
    "sides": ("both",),
    "cramp_course": ("neither",),
    "about_you": ("rather_not",),
    "health": ("none",),
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
    emergency = {f for f, u in RED_FLAG_MINIMUM.items() if u is Urgency.EMERGENCY}
    assert set_here == emergency | {"stroke_signs", "leg_weakness_sudden"}  # spec v3 item 1


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
    assert step.question.id == "feeling"
    assert step.number == 2
    assert conversation.snapshot().answers[-1].option_ids == ("none",)
    kinds = {"stroke_signs": False, "leg_weakness_sudden": False}
    assert conversation.findings == dict.fromkeys(EMERGENCY_OPTIONS.values(), False) | kinds


def test_an_exclusive_option_replaces_the_ticks_made_before_it() -> None:
    conversation = FLOW.start(NOW)
    conversation.choose("chest", NOW)
    prompt(conversation.choose("unsure", NOW))
    assert conversation.snapshot().answers[-1].option_ids == ("unsure",)
    assert conversation.snapshot().pending == ()
    assert conversation.findings == {}


def test_not_sure_on_the_safety_screen_carries_on_but_ends_at_least_urgent() -> None:
    conversation = FLOW.start(NOW)
    assert prompt(conversation.choose("unsure", NOW)).question.id == "feeling"
    end = outcome(play(conversation)[0])
    assert end.state == CONCLUDED
    assert end.conclusion is not None
    assert end.conclusion.urgency is Urgency.URGENT


# --- Ticks and Done -------------------------------------------------------------------------------


def test_ticks_toggle_and_show_as_selected() -> None:
    conversation = FLOW.start(NOW)
    assert prompt(conversation.choose("chest", NOW)).selected == {"chest"}
    step = prompt(conversation.choose("stroke", NOW))
    assert step.selected == {"chest", "stroke"}
    assert step.can_go_back
    step = prompt(conversation.choose("chest", NOW))
    assert step.selected == {"stroke"}
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
    conversation.answer(["burning"], NOW)
    assert conversation.findings["foot_burning_ache"] is True
    assert conversation.findings["muscle_hard_knot"] is False  # left unticked: a no
    step = prompt(conversation.back())
    assert step.question.id == "feeling"
    assert step.number == 2
    assert "foot_burning_ache" not in conversation.findings
    assert [a.question_id for a in conversation.snapshot().answers] == ["emergency_signs"]
    step = prompt(conversation.back())
    assert step.question.id == "emergency_signs"
    assert conversation.findings == {}


def test_back_clears_the_ticks_before_undoing_an_answer() -> None:
    conversation = FLOW.start(NOW)
    play(conversation, until="timing")
    conversation.choose("sudden", NOW)
    conversation.choose("evening", NOW)
    step = prompt(conversation.back())
    assert step.question.id == "timing"
    assert step.selected == frozenset()
    assert len(conversation.snapshot().answers) == 3
    assert prompt(conversation.back()).question.id == "where"


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
    assert step.question.id == "health"
    assert not conversation.finished
    assert conversation.snapshot().conclusion is None
    assert conversation.snapshot().finished_at is None
    conversation.choose("statin", NOW)
    again = outcome(conversation.done(NOW))
    assert again.state == CONCLUDED
    assert again.findings["takes_diuretic_or_statin"] is True


def test_back_reopens_the_screen_after_an_emergency() -> None:
    conversation = FLOW.start(NOW)
    conversation.answer(["chest"], NOW)
    step = prompt(conversation.back())
    assert step.question.id == "emergency_signs"
    assert conversation.findings == {}
    assert prompt(conversation.choose("none", NOW)).question.id == "feeling"


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
    assert prompt(conversation.step()).question.id == "feeling"
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
        pytest.param(
            {"feeling": ("burning",), "relief": ("foot_down",)},
            False,
            id="already eased by hanging the foot down",
        ),
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
        pytest.param({"feeling": ("unsure",)}, True, id="not sure what it feels like"),
        pytest.param({"relief": ("stretch",)}, False, id="stretching, but no knot or pulled toes"),
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
    assert asked == [q.id for q in FLOW.content.questions if not q.gate]
    assert {q for q in RED_FLAG_QUESTIONS if QUESTIONS[q].skip_if is None} <= set(asked)


def test_no_question_that_sets_a_red_flag_is_ever_skipped_on_doubt() -> None:
    assert RED_FLAG_QUESTIONS == ["emergency_signs", "relief", "cramp_course"]
    for qid in RED_FLAG_QUESTIONS:
        question = QUESTIONS[qid]
        assert question.ask_if is None
        assert question.skip_if is None or question.skip_if.only_no_answers()
        if any(
            RED_FLAG_MINIMUM[f] is Urgency.EMERGENCY
            for o in question.options
            for f in o.sets
            if f in RED_FLAG_MINIMUM
        ):
            assert question.skip_if is None


def test_the_new_medicine_question_is_skipped_only_after_a_no_to_cramps() -> None:
    cramp = QUESTIONS["cramp_course"]
    assert cramp.applies({})  # nothing known: asked
    assert cramp.applies({"muscle_hard_knot": False})  # pulled toes not ruled out: asked
    assert not cramp.applies({"muscle_hard_knot": False, "toes_pulled": False})


def test_an_urgent_red_flag_does_not_stop_the_questions() -> None:
    answers = {"feeling": ("knot",), "relief": ("foot_down",), "cramp_course": ("new_medicine",)}
    end, asked = play(FLOW.start(NOW), answers)
    end = outcome(end)
    assert end.state == CONCLUDED
    assert asked[-1] == "health"
    assert end.conclusion is not None
    assert end.conclusion.urgency is Urgency.URGENT
    assert end.conclusion.red_flags == ("dangling_relief", "new_medicine_cramps")


def test_the_prompt_number_counts_the_answers_given() -> None:
    conversation = FLOW.start(NOW)
    play(conversation, until="timing")
    step = prompt(conversation.step())
    assert step.number == len(conversation.snapshot().answers) + 1 == 4


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
    play(conversation, {"feeling": ("knot",)}, until="where")
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
        state="feeling",
        answers=[AnswerRecord("removed_question", ("none",), NOW)],
    )
    with pytest.raises(AnswerError):
        FLOW.restore(ghost_question)
    ghost_option = ConversationState(
        flow="triage",
        state="feeling",
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
    assert prompt(conversation.choose("none", NOW)).question.id == "feeling"
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
    """Findings from the options' `sets`, later answers winning (worked out apart from the
    engine): options not offered set nothing; on an `unticked_means_no` checklist, a tick
    makes each offered option left unticked a no, unless an earlier answer said yes to it."""
    findings: dict[str, bool] = {}
    for qid, option_ids in answers:
        question = QUESTIONS[qid]
        offered = [o for o in question.options if o.offer_if is None or o.offer_if(findings)]
        offered_ids = {o.id for o in offered}
        not_offered = {f for o in question.options if o.id not in offered_ids for f in o.sets}
        answer: dict[str, bool] = {}
        chosen = [question.option(i) for i in option_ids]
        assert all(o is not None and o.id in offered_ids for o in chosen)
        if question.unticked_means_no and not any(o.exclusive for o in chosen):  # type: ignore[union-attr]
            for option in offered:
                if not option.exclusive and option.id not in option_ids:
                    answer |= {
                        f: False for f, v in option.sets.items() if v and not findings.get(f)
                    }
        for option in chosen:
            assert option is not None
            answer |= {f: v for f, v in option.sets.items() if f not in not_offered}
        findings |= answer
    return findings


def expected_next(answers: list[tuple[str, tuple[str, ...]]]) -> str:
    """The question (or end state) the flow should open next, worked out from the content."""
    if not answers:
        return ORDER[0]
    findings = replay(answers)
    if rules.conclude(findings).urgency is Urgency.EMERGENCY:
        return EMERGENCY
    for question in FLOW.content.questions[ORDER.index(answers[-1][0]) + 1 :]:
        if question.applies(findings):
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
        always = {q for q in RED_FLAG_QUESTIONS if QUESTIONS[q].skip_if is None}
        assert always <= {qid for qid, _ in answers}
        if "cramp_course" not in {qid for qid, _ in answers}:
            assert findings.get("muscle_hard_knot") is False  # skipped only after a no
            assert findings.get("toes_pulled") is False
    assert len(answers) <= MAX_QUESTIONS  # issue 9: no path asks more than 10 questions
    assert FLOW.machine.models == []


MAX_QUESTIONS = 10


def test_the_flow_cannot_ask_more_than_ten_questions() -> None:
    # Each question is asked at most once on a path (the machine only moves forward), so the
    # number of questions bounds every path; the random walks above check real paths.
    assert len(ORDER) == len(set(ORDER)) <= MAX_QUESTIONS
    forward = [
        (ORDER.index(t["source"]), ORDER.index(t["dest"]))
        for t in machine_config(FLOW.content)["transitions"]
        if t["trigger"] == "advance" and t["dest"] in ORDER
    ]
    assert all(a < b for a, b in forward)


def test_a_pregnancy_option_goes_only_to_people_who_could_be_pregnant() -> None:
    def health_options(about: str) -> set[str]:
        conversation = FLOW.start(NOW)
        step = prompt(play(conversation, {"about_you": (about,)}, until="health")[0])
        return {o.id for o in step.question.options}

    assert "pregnant" not in health_options("man_over_50")
    assert "pregnant" not in health_options("man_under_50")
    assert "pregnant" in health_options("woman_under_50")
    assert "pregnant" in health_options("rather_not")


def test_an_option_not_offered_cannot_be_chosen_and_sets_nothing() -> None:
    conversation = FLOW.start(NOW)
    play(conversation, {"about_you": ("man_under_50",)}, until="health")
    with pytest.raises(AnswerError):
        conversation.choose("pregnant", NOW)
    end = outcome(conversation.choose("none", NOW))
    assert "pregnant" not in end.findings
    assert end.findings["smoker"] is False
