"""The nightly check-in flow: quick, button-only, and escalating exactly as the triage does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dialogs import rules
from dialogs.engine import AnswerError, Flow, Outcome, Prompt
from dialogs.records import CONCLUDED, EMERGENCY, ESCALATED
from dialogs.vocabulary import RED_FLAG_MINIMUM, RED_FLAGS, Urgency
from tests.walker import walk

DIARY = Flow.load("diary")
TRIAGE = Flow.load("triage")
NOW = datetime(2026, 11, 26, 21, 30, tzinfo=UTC)


def test_nothing_tonight_finishes_the_check_in_in_one_tap() -> None:
    conversation = DIARY.start(NOW)
    step = conversation.choose("nothing", NOW)
    assert isinstance(step, Outcome) and step.state == CONCLUDED
    assert step.conclusion is None, "a quiet night is logged, not diagnosed"
    assert conversation.values() == {
        "cramps": False,
        "restless": False,
        "foot_pain": False,
        "other": False,
        "wakeups": 0,
    }


def test_a_cramp_night_records_counts_pain_wakeups_what_helped_and_a_note() -> None:
    conversation = DIARY.start(NOW)
    conversation.answer(["cramps"], NOW)
    conversation.answer(["none"], NOW)  # red-flag re-check
    conversation.choose("few", NOW)
    conversation.choose("severe", NOW)
    conversation.choose("two", NOW)
    conversation.answer(["stretching", "walking"], NOW)
    step = conversation.enter_text("  worse after   the long walk  ", NOW)
    assert isinstance(step, Outcome) and step.state == CONCLUDED
    assert conversation.values() == {
        "cramps": True,
        "cramp_count": 2,
        "worst_pain": 8,
        "wakeups": 2,
        "helped": ["stretching", "walking"],
        "note": "worse after the long walk",
    }


def test_a_note_is_cut_to_its_length_and_empty_text_is_refused() -> None:
    conversation = DIARY.start(NOW)
    conversation.answer(["other"], NOW)
    conversation.answer(["none"], NOW)
    conversation.choose("zero", NOW)
    conversation.answer(["nothing"], NOW)
    with pytest.raises(AnswerError):
        conversation.enter_text("   ", NOW)
    conversation.enter_text("x" * 1000, NOW)
    assert conversation.values()["note"] == "x" * 300


def test_text_is_refused_where_buttons_are_expected() -> None:
    conversation = DIARY.start(NOW)
    with pytest.raises(AnswerError):
        conversation.enter_text("my legs hurt", NOW)


EMERGENCY_OPTIONS = ["chest", "stroke", "leg_weak", "saddle", "calf_swollen", "skin_changes"]


@pytest.mark.parametrize("option", [*EMERGENCY_OPTIONS, "muscle_harm"])
def test_an_emergency_sign_in_the_check_in_stops_it_at_once_with_emergency(option: str) -> None:
    conversation = DIARY.start(NOW)
    conversation.answer(["restless"], NOW)
    step = conversation.answer([option], NOW)
    assert isinstance(step, Outcome) and step.state == ESCALATED
    assert step.conclusion is not None and step.conclusion.urgency is Urgency.EMERGENCY


def test_foot_pain_eased_by_dangling_stops_the_check_in_with_the_triage_urgency() -> None:
    conversation = DIARY.start(NOW)
    conversation.answer(["foot_pain"], NOW)
    conversation.answer(["none"], NOW)
    step = conversation.choose("yes", NOW)
    assert isinstance(step, Outcome) and step.state == ESCALATED
    assert step.conclusion is not None
    assert step.conclusion.red_flags == ("dangling_relief",)
    # The triage, told the same (no emergency signs, foot pain eased by dangling), agrees.
    triage = rules.conclude(
        {**dict.fromkeys(RED_FLAGS, False), "foot_burning_ache": True, "dangling_relief": True}
    )
    assert (step.conclusion.urgency, step.conclusion.pattern) == (triage.urgency, triage.pattern)


def test_unsure_whether_dangling_helps_a_burning_foot_escalates_as_in_the_triage() -> None:
    conversation = DIARY.start(NOW)
    conversation.answer(["foot_pain"], NOW)
    conversation.answer(["none"], NOW)
    conversation.choose("unsure", NOW)
    for question in ("wakeups", "helped"):
        step = conversation.step()
        assert isinstance(step, Prompt) and step.question.id == question
        conversation.answer([step.question.options[-1].id], NOW)
    step = conversation.choose("skip", NOW)
    assert isinstance(step, Outcome) and step.state == CONCLUDED
    assert rules.conclude(conversation.facts_for_rules()).urgency is Urgency.URGENT


DIARY_FLAGS = sorted(
    {f for q in DIARY.content.questions for o in q.options for f, v in o.sets.items() if v}
    & set(RED_FLAGS)
)


def test_the_diary_rechecks_every_emergency_sign_and_dangling_relief() -> None:
    assert set(DIARY_FLAGS) == set(rules.EMERGENCY_FLAGS) | {"dangling_relief"}


@pytest.mark.parametrize("flag", DIARY_FLAGS)
def test_every_red_flag_the_diary_can_raise_gets_at_least_the_triage_minimum(flag: str) -> None:
    options = [
        (q, o) for q in DIARY.content.questions for o in q.options if o.sets.get(flag) is True
    ]
    kinds = ("stroke_signs", "leg_weakness_sudden")  # spec v3 item 1: how weakness is said
    facts = dict.fromkeys((*RED_FLAGS, *kinds), False) | {flag: True, "foot_burning_ache": True}
    if flag == "sudden_weakness":
        facts |= {"stroke_signs": True}
    path = walk(DIARY, facts)
    assert {q.id for q, _ in options} & set(path.asked)
    assert path.outcome.state in (ESCALATED, EMERGENCY)
    assert path.outcome.conclusion is not None
    assert path.outcome.conclusion.urgency >= RED_FLAG_MINIMUM[flag]
    assert flag in path.outcome.conclusion.red_flags


def test_the_diary_shares_the_triage_red_flag_screen_options() -> None:
    triage = {o.id: dict(o.sets) for o in TRIAGE.content.questions[0].options if o.sets}
    diary = {o.id: dict(o.sets) for o in DIARY.content.question("red_flags").options if o.sets}
    assert diary == triage
