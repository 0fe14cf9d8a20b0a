"""Spec v3, "it listens": every story has words, and every line fits the person.

One test per situation in issue 16's "Why" list (each fails on the spec v2 wording), the
spec v3 acceptance cases, and properties over every reachable outcome of the triage.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialogs import rules
from dialogs.advice import Advice, AdviceBook
from dialogs.engine import Flow, Outcome, Prompt
from dialogs.records import Conclusion
from dialogs.vocabulary import FINDINGS, RED_FLAGS, Pattern, Urgency
from tests.cases import CLASSIC_CRAMP, NO_RED_FLAGS
from tests.walker import random_path, walk

FLOW = Flow.load("triage")
BOOK = AdviceBook.load()
NOW = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)
SCREEN = FLOW.content.questions[0]
NO_CRAMP = {"muscle_hard_knot": False, "toes_pulled": False}
QUIET = {**NO_CRAMP, "urge_to_move": False, "crawling_feeling": False, "foot_burning_ache": False}


def advise(findings: dict[str, bool | None], **kwargs: str) -> tuple[Conclusion, Advice]:
    known = {k: v for k, v in findings.items() if v is not None}
    conclusion = rules.conclude(known)
    return conclusion, BOOK.advise(conclusion, known, **kwargs)  # type: ignore[arg-type]


def option(question_id: str, option_id: str):  # type: ignore[no-untyped-def]
    question = FLOW.content.question(question_id)
    assert question is not None
    found = question.option(option_id)
    assert found is not None, (question_id, option_id)
    return found


def answer_through(answers: dict[str, tuple[str, ...]]) -> Outcome:
    """Tap through the triage with the given answers; "None of these" (or the first option)
    wherever no answer is given."""
    conversation = FLOW.start(NOW)
    step = conversation.step()
    while isinstance(step, Prompt):
        question = step.question
        ids = answers.get(question.id)
        if ids is None:
            fallback = [o.id for o in question.options if o.exclusive and o.id in ("none",)]
            ids = tuple(fallback) or (question.options[0].id,)
        step = conversation.answer(ids, NOW)
    assert isinstance(step, Outcome)
    return step


# --- A weak foot is not a cold foot (spec v3 item 1) ------------------------------------------


def test_the_screen_asks_a_suddenly_weak_leg_or_foot_apart_from_stroke_and_cold_feet() -> None:
    weak = option("emergency_signs", "leg_weak")
    stroke = option("emergency_signs", "stroke")
    assert weak.sets == {"leg_weakness_sudden": True, "sudden_weakness": True}
    assert stroke.sets == {"stroke_signs": True, "sudden_weakness": True}
    assert "weak" in weak.label.lower() and "foot" in weak.label.lower()
    for words in ("flops", "drags", "lift your toes", "tiptoe", "gives way"):
        assert words in SCREEN.text
    # The v2 screen told people a numb foot belongs to the cold-foot item; now a weak foot
    # goes with weakness, numb or not.
    assert "belongs to the last one, not to weakness" not in SCREEN.text
    assert "numb or not" in SCREEN.text


def test_a_suddenly_weak_foot_without_numbness_is_an_emergency_about_a_nerve_or_blood() -> None:
    outcome = answer_through({"emergency_signs": ("leg_weak",)})
    assert outcome.conclusion is not None
    assert outcome.conclusion.urgency is Urgency.EMERGENCY
    assert outcome.findings["tissue_changes"] is False  # nothing about a cold foot was said
    advice = BOOK.advise(outcome.conclusion, outcome.findings, emergency_number="999")
    text = advice.as_text()
    assert "nerve" in text and "blood supply" in text
    assert "cold, pale, dark or numb foot may be short of blood" not in text
    assert "stroke" not in advice.red_flag_blocks[0].title.lower()
    assert advice.action.startswith("Go to an emergency department now")


def test_stroke_signs_are_named_a_possible_stroke_with_an_ambulance() -> None:
    _c, advice = advise({**NO_RED_FLAGS, "stroke_signs": True, "sudden_weakness": True})
    assert "stroke" in advice.red_flag_blocks[0].title.lower()
    assert advice.action.startswith("Call your local emergency number now")
    assert "time it started" in advice.as_text()


def test_why_names_what_was_said_not_the_whole_screen_item() -> None:
    # The woman whose leg and hand were weak was told she had a drooping face and trouble
    # speaking.
    _c, advice = advise({**NO_RED_FLAGS, "stroke_signs": True, "sudden_weakness": True})
    why = " ".join(advice.why)
    assert "drooping face" not in why and "trouble speaking" not in why
    assert "stroke sign" in why


# --- Sciatica and the spine (spec v3 items 2 and 3) -------------------------------------------


SCIATICA = {
    **NO_RED_FLAGS,
    **QUIET,
    "shooting_down_leg": True,
    "back_pain": True,
    "loc_buttock_hip": True,
    "loc_thigh": True,
    "loc_calf": True,
    "walking_calf_pain": False,
}


def test_classic_sciatica_has_words_and_its_own_pattern_and_safety_net() -> None:
    result = walk(FLOW, SCIATICA)
    conclusion = result.outcome.conclusion
    assert conclusion is not None
    assert conclusion.pattern is Pattern.NERVE_ROOT_PAIN
    assert conclusion.urgency is Urgency.SOON
    where = next(p for p in result.plans if p.question_id == "where")
    assert {"buttock_hip", "thigh", "calf", "back"} <= set(where.option_ids)  # it runs along
    advice = BOOK.advise(conclusion, result.outcome.findings, emergency_number="112")
    go_now = next(g for g in advice.safety_net if "emergency department at once" in g.heading)
    signs = " ".join(s.text for s in go_now.signs)
    assert "numbness between your legs" in signs and "urine" in signs and "weak" in signs
    assert any("active" in h for h in advice.helps_now)
    assert any("pharmacist" in h for h in advice.helps_now)


def test_numbness_when_wiping_or_bladder_trouble_is_an_emergency_to_go_to_now() -> None:
    assert option("emergency_signs", "saddle").sets == {"cauda_equina_signs": True}
    assert "wipe" in SCREEN.text and "urine" in SCREEN.text
    outcome = answer_through({"emergency_signs": ("saddle",)})
    assert outcome.conclusion is not None
    assert outcome.conclusion.urgency is Urgency.EMERGENCY
    assert outcome.conclusion.red_flags == ("cauda_equina_signs",)
    advice = BOOK.advise(outcome.conclusion, outcome.findings)
    assert "spine" in advice.as_text()
    assert "do not drive yourself" in advice.action
    assert "ambulance is usually not needed" in advice.action


def test_a_weak_leg_with_sciatica_names_the_nerve_not_the_blood_supply_as_its_pattern() -> None:
    findings = {**SCIATICA, "leg_weakness_sudden": True, "sudden_weakness": True}
    conclusion, advice = advise(findings)
    assert conclusion.urgency is Urgency.EMERGENCY
    assert conclusion.pattern is Pattern.NERVE_ROOT_PAIN
    assert "nerve" in advice.red_flag_blocks[0].title


# --- A medicine's harm (spec v3 item 4) --------------------------------------------------------


MEDICINE_CRAMPS = {
    **NO_RED_FLAGS,
    **CLASSIC_CRAMP,
    "new_medicine_cramps": True,
    "male": True,
    "age_over_50": True,
}


def test_cramps_after_a_new_medicine_are_not_harmless_nor_an_ed_visit_for_want_of_a_slot() -> None:
    conclusion, advice = advise(
        MEDICINE_CRAMPS, emergency_number="999 (or 112)", urgent_care="NHS 111"
    )
    assert conclusion.urgency is Urgency.URGENT
    text = advice.as_text()
    assert "usually harmless" not in text
    assert "nobody can see you today" not in text
    assert "cannot reach anyone" not in text
    assert "midwife" not in text
    assert "dark like cola" in text and "weak" in text  # the signs of harm are named
    assert "NHS 111" in advice.at_night and "tonight" in advice.at_night
    assert "prescribed" in advice.action or "prescriber" in advice.action
    assert "Do not stop a prescribed medicine on your own." in text
    harm = next(
        g for g in advice.safety_net if "dark like cola" in " ".join(s.text for s in g.signs)
    )
    assert "emergency department" in harm.heading


def test_dark_urine_or_weak_muscles_after_a_new_medicine_is_an_emergency() -> None:
    outcome = answer_through({"emergency_signs": ("muscle_harm",)})
    assert outcome.conclusion is not None
    assert outcome.conclusion.urgency is Urgency.EMERGENCY
    assert outcome.conclusion.red_flags == ("muscle_breakdown_signs",)
    advice = BOOK.advise(outcome.conclusion, outcome.findings)
    assert "Take your medicines, or a list of them, with you." in advice.as_text()
    assert advice.action.startswith("Go to an emergency department now")


# --- Options that mean one thing (spec v3 item 7) ----------------------------------------------


def test_walking_pain_eased_by_standing_still_never_sets_dangling_relief() -> None:
    stopping = option("relief", "stopping")
    foot_down = option("relief", "foot_down")
    assert stopping.sets == {"walking_calf_pain": True}
    assert "standing" not in foot_down.label.lower()
    for relief in (("stopping",), ("stretch",), ("nothing",)):
        outcome = answer_through(
            {"feeling": ("walking_ache",), "where": ("calf",), "relief": relief}
        )
        assert outcome.findings.get("dangling_relief") is not True
        assert outcome.findings["walking_calf_pain"] is True  # an unticked box takes no yes back
        assert outcome.conclusion is not None
        assert outcome.conclusion.pattern is Pattern.PAD_CLAUDICATION
        assert outcome.conclusion.urgency is Urgency.SOON


def test_new_cramps_never_set_cramps_worsening_and_stay_self_care() -> None:
    outcome = answer_through(
        {
            "feeling": ("knot", "toes"),
            "where": ("calf",),
            "timing": ("sudden", "sore_after", "recent"),
            "relief": ("stretch",),
            "cramp_course": ("first_few",),
            "about_you": ("woman_under_50",),
        }
    )
    assert outcome.findings["cramps_worsening"] is False
    assert outcome.findings["onset_recent"] is True
    assert outcome.conclusion is not None
    assert outcome.conclusion.urgency is Urgency.SELF_CARE
    worse = answer_through(
        {
            "feeling": ("knot", "toes"),
            "where": ("calf",),
            "timing": ("sudden",),
            "relief": ("stretch",),
            "cramp_course": ("worsening",),
        }
    )
    assert worse.findings["cramps_worsening"] is True


def test_lying_down_sitting_still_water_tablets_and_statins_are_each_their_own_answer() -> None:
    assert option("timing", "lying").label != option("timing", "sitting").label
    assert "lie" in option("timing", "lying").label.lower()
    assert "sit" in option("timing", "sitting").label.lower()
    assert "water tablet" in option("health", "diuretic").label.lower()
    assert "statin" in option("health", "statin").label.lower()
    assert "statin" not in option("health", "diuretic").label.lower()


def test_what_it_feels_like_has_a_heavy_walking_ache_and_shooting_pain() -> None:
    assert option("feeling", "walking_ache").sets == {"walking_calf_pain": True}
    assert option("feeling", "shooting").sets == {"shooting_down_leg": True}


# --- The questions people expected (spec v3 item 8) -------------------------------------------


def test_how_long_one_leg_or_both_and_a_lump_behind_the_knee_can_be_said() -> None:
    assert option("timing", "recent").sets == {"onset_recent": True}
    assert option("sides", "one").sets == {"one_leg": True, "both_legs": False}
    assert option("where", "lump").sets == {"loc_knee_back": True, "lump_behind_knee": True}


def test_a_lump_behind_the_knee_is_examined_and_its_danger_named() -> None:
    outcome = answer_through({"where": ("lump",), "feeling": ("none",)})
    assert outcome.conclusion is not None
    assert outcome.conclusion.urgency is Urgency.SOON
    advice = BOOK.advise(outcome.conclusion, outcome.findings)
    text = advice.as_text()
    assert "lump behind the knee" in text
    assert "one calf becomes swollen, warm and red" in advice.watch_for


def test_restless_feelings_in_one_leg_only_get_a_word_about_the_nerves() -> None:
    facts = {**NO_RED_FLAGS, "urge_to_move": True, "movement_relief": True, "one_leg": True}
    _c, advice = advise(facts)
    assert any("only one leg" in note for note in advice.notes)


# --- Lines that fit (spec v3 item 6) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "expected", "never"),
    [
        ("stroke_signs", "speech", "swelling, redness"),
        ("chest_pain_or_breathless", "breath", "swelling, redness"),
        ("calf_swelling_warm_red", "chest pain", "speech"),
    ],
)
def test_each_emergency_says_its_own_call_again_signs(flag: str, expected: str, never: str) -> None:
    findings = {**NO_RED_FLAGS, flag: True}
    if flag == "stroke_signs":
        findings["sudden_weakness"] = True
    _c, advice = advise(findings)
    again = " ".join(advice.watch_for)
    assert expected in again
    assert never not in again
    assert "pain, swelling, redness or weakness gets worse" not in advice.as_text()


def test_the_disclaimer_says_examine_you_not_your_leg() -> None:
    _c, advice = advise({**NO_RED_FLAGS, "stroke_signs": True, "sudden_weakness": True})
    assert "examine you" in advice.not_a_diagnosis
    assert "examine your leg" not in advice.as_text()


def test_rest_pain_says_nothing_twice() -> None:
    findings = {**NO_RED_FLAGS, "dangling_relief": True, "foot_burning_ache": True}
    _c, advice = advise(findings)
    lines = advice.lines()
    assert len(lines) == len(set(lines))
    assert sum("heat" in line for line in lines) == 1
    assert sum("hang" in line and "ease" in line for line in lines if "Why" not in line) <= 2


def test_a_suspected_clot_says_go_now_and_what_to_tell_the_staff() -> None:
    _c, advice = advise({**NO_RED_FLAGS, "calf_swelling_warm_red": True})
    assert advice.action.startswith("Go to an emergency department now")
    assert "ambulance is usually not needed" in advice.action
    assert "long journey" in advice.tell_staff and "operation" in advice.tell_staff


def test_cramp_self_care_names_the_sleeping_position() -> None:
    _c, advice = advise({**NO_RED_FLAGS, **CLASSIC_CRAMP})
    assert advice.urgency is Urgency.SELF_CARE
    assert any("face down" in h and "toes" in h for h in advice.helps_now)
    assert "usually harmless" in advice.looks_like


def test_a_midwife_is_named_only_in_pregnancy() -> None:
    base = {**NO_RED_FLAGS, **CLASSIC_CRAMP, "takes_diuretic_or_statin": True}
    _c, not_pregnant = advise({**base, "pregnant": False})
    _c, pregnant = advise({**base, "pregnant": True, "female": True})
    assert "midwife" not in not_pregnant.as_text()
    assert "midwife" in pregnant.as_text()


def test_without_a_country_the_common_numbers_are_listed_once() -> None:
    for facts in (
        {**NO_RED_FLAGS, "stroke_signs": True, "sudden_weakness": True},
        {**NO_RED_FLAGS, "dangling_relief": True, "foot_burning_ache": True},
        {**NO_RED_FLAGS, **CLASSIC_CRAMP},
    ):
        _c, advice = advise(facts)
        text = advice.as_text()
        assert text.count("911") == 1, text
        assert "(112, 911, 999 or 000)" not in text


# --- Properties over every reachable outcome (issue 16 item 11) -------------------------------


HEADINGS_BY_LEVEL = {
    Urgency.EMERGENCY: ("at once", "straight away"),
    Urgency.URGENT: ("same day", "emergency department if"),
    Urgency.SOON: ("sooner",),
}


@settings(max_examples=400, deadline=None)
@given(random_path(FLOW), st.sampled_from([None, "112", "999 (or 112)"]), st.booleans())
def test_every_reachable_outcome_reads_right(
    path: tuple[Outcome, int], number: str | None, night_line: bool
) -> None:
    outcome, asked = path
    assert asked <= 10  # no path asks more than ten questions
    conclusion = outcome.conclusion
    assert conclusion is not None
    findings = outcome.findings
    advice = BOOK.advise(
        conclusion, findings, emergency_number=number, urgent_care="NHS 111" if night_line else None
    )
    text = advice.as_text()
    lines = advice.lines()
    # no line said twice
    assert len(lines) == len(set(lines)), [x for x in lines if lines.count(x) > 1]
    # "usually harmless" only in a self-care result
    if conclusion.urgency is not Urgency.SELF_CARE:
        assert "harmless" not in text
    # a midwife only where pregnancy applies
    if findings.get("pregnant") is not True:
        assert "midwife" not in text
    # every sign under the heading of its own level
    for group in advice.safety_net:
        for sign in group.signs:
            assert sign.level is group.level
        assert any(words in group.heading for words in HEADINGS_BY_LEVEL[group.level])
    # every red flag has its own block, and in an emergency its own "call again" sign
    said = {f for f, v in findings.items() if v}
    for flag in conclusion.red_flags:
        blocks = [b for b in advice.red_flag_blocks if b.flag == flag]
        assert blocks, flag
        assert all(b.title in text for b in blocks)
        if conclusion.urgency is Urgency.EMERGENCY:
            for block in blocks:
                own = [BOOK.signs[s] for s in block.call_again]
                shown = [s for s in own if not set(s.about) & said]
                assert not shown or shown[0].text in advice.watch_for, (
                    block.kind,
                    advice.watch_for,
                )
    # the weak-foot rule: a leg gone weak is never explained by the blood supply alone
    if findings.get("leg_weakness_sudden") is True:
        assert "nerve" in text
    # the number: named once the country is known, else the common ones listed once
    if number is None:
        assert text.count("911") == 1
    else:
        assert "911" not in text
    assert not re.search(r"\{\w+\}", text)


def test_red_flags_are_all_on_the_screen_or_asked_always() -> None:
    asked = {
        f for q in FLOW.content.questions if q.ask_if is None for o in q.options for f in o.sets
    }
    assert set(RED_FLAGS) <= asked


def test_the_export_schema_knows_every_spec_v3_id() -> None:
    schema = json.loads(
        (Path(__file__).resolve().parents[1] / "docs" / "export.schema.json").read_text("utf-8")
    )
    enums: list[list[str]] = []

    def collect(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "enum" and isinstance(value, list):
                    enums.append(value)
                else:
                    collect(value)
        elif isinstance(node, list):
            for item in node:
                collect(item)

    collect(schema)
    findings = [e for e in enums if "worse_legs_raised" in e]
    patterns = [e for e in enums if "possible_dvt" in e]
    flags = [e for e in enums if "dangling_relief" in e and "loc_calf" not in e]
    assert findings and patterns and flags
    assert all(set(e) == set(FINDINGS) for e in findings)
    assert all(set(e) == {str(p) for p in Pattern} for e in patterns)
    assert all(set(e) == set(RED_FLAGS) for e in flags)
