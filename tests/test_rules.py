"""The clinical rules, read next to shared/clinical/spec.md: its tables, row by row."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialogs import rules
from dialogs.vocabulary import FINDINGS, RED_FLAG_MINIMUM, RED_FLAGS, Pattern, Urgency

# The spec's fixed ids, copied from its tables (not from vocabulary.py) so a drift shows here.
SPEC_URGENCIES = ("self_care", "soon", "urgent", "emergency")  # lowest first
SPEC_PATTERNS = {
    "leg_cramps",
    "restless_legs",
    "pad_claudication",
    "pad_rest_pain",
    "critical_limb_ischemia",
    "possible_dvt",
    "nerve_root_pain",  # spec v3
    "unclear",
}
SPEC_RED_FLAG_MINIMUM = {
    "calf_swelling_warm_red": "emergency",
    "chest_pain_or_breathless": "emergency",
    "sudden_weakness": "emergency",
    "tissue_changes": "emergency",
    "dangling_relief": "urgent",
    "new_medicine_cramps": "urgent",
    "infection_signs": "emergency",  # spec v2
    "cauda_equina_signs": "emergency",  # spec v3
    "muscle_breakdown_signs": "emergency",  # spec v3
}
# Spec v3 item 1: these findings each imply `sudden_weakness`.
SPEC_KINDS = {"stroke_signs": "sudden_weakness", "leg_weakness_sudden": "sudden_weakness"}
EMERGENCY_SIGNS = tuple(f for f, u in SPEC_RED_FLAG_MINIMUM.items() if u == "emergency")

NO_RED_FLAGS = dict.fromkeys(SPEC_RED_FLAG_MINIMUM, False)

# Pictures from the spec's pattern table, each with every red flag answered "no".
CLASSIC_CRAMP = {
    "muscle_hard_knot": True,
    "toes_pulled": True,
    "sudden_brief": True,
    "soreness_after": True,
    "stretch_relief": True,
    "loc_calf": True,
}
RESTLESS_LEGS = {
    "urge_to_move": True,
    "crawling_feeling": True,
    "worse_at_rest": True,
    "movement_relief": True,
    "evening_worse": True,
    "both_legs": True,
}
CLAUDICATION = {"walking_calf_pain": True, "loc_calf": True}
REST_PAIN = {"foot_burning_ache": True, "worse_legs_raised": True, "loc_foot_toes": True}


def at(urgency: str) -> Urgency:
    return Urgency(urgency)


def conclude(*parts: dict[str, bool], **more: bool):  # type: ignore[no-untyped-def]
    findings: dict[str, bool] = {**NO_RED_FLAGS}
    for part in (*parts, more):
        findings.update(part)
    return rules.conclude(findings)


def test_the_vocabulary_speaks_the_spec_ids() -> None:
    assert [str(u) for u in sorted(Urgency)] == list(SPEC_URGENCIES)
    assert {str(p) for p in Pattern} == SPEC_PATTERNS
    assert {f: str(u) for f, u in RED_FLAG_MINIMUM.items()} == SPEC_RED_FLAG_MINIMUM
    assert tuple(SPEC_RED_FLAG_MINIMUM) == RED_FLAGS


def test_urgencies_order_as_the_spec_says() -> None:
    ordered = [Urgency(u) for u in SPEC_URGENCIES]
    for lower, higher in itertools.pairwise(ordered):
        assert lower < higher
        assert higher > lower
        assert lower <= higher
        assert not higher <= lower
    assert max(ordered) is Urgency.EMERGENCY
    assert min(ordered) is Urgency.SELF_CARE


# --- Red flags: each alone forces at least its minimum --------------------------------------


@pytest.mark.parametrize(("flag", "minimum"), SPEC_RED_FLAG_MINIMUM.items())
def test_a_red_flag_alone_forces_its_minimum_urgency(flag: str, minimum: str) -> None:
    conclusion = conclude({flag: True})
    assert conclusion.urgency >= at(minimum)
    assert conclusion.red_flags == (flag,)
    assert flag in conclusion.reasons


@pytest.mark.parametrize(("flag", "minimum"), SPEC_RED_FLAG_MINIMUM.items())
def test_a_red_flag_on_top_of_a_classic_cramp_still_forces_its_minimum(
    flag: str, minimum: str
) -> None:
    conclusion = conclude(CLASSIC_CRAMP, {flag: True})
    assert conclusion.urgency >= at(minimum)
    assert flag in conclusion.red_flags


@pytest.mark.parametrize("flag", EMERGENCY_SIGNS)
def test_an_emergency_sign_is_never_reassured(flag: str) -> None:
    for picture in (CLASSIC_CRAMP, RESTLESS_LEGS, CLAUDICATION, REST_PAIN, {}):
        assert conclude(picture, {flag: True}).urgency is Urgency.EMERGENCY


def test_no_red_flags_are_listed_when_every_screen_answer_is_no() -> None:
    assert conclude(CLASSIC_CRAMP).red_flags == ()


# --- Patterns: each picture from the spec gives that pattern and its urgency ----------------

PICTURES = [
    pytest.param(CLASSIC_CRAMP, "leg_cramps", "self_care", id="classic cramps"),
    pytest.param(
        {**CLASSIC_CRAMP, "cramps_worsening": True}, "leg_cramps", "soon", id="worsening cramps"
    ),
    pytest.param(
        {**CLASSIC_CRAMP, "weakness_numbness_back_pain": True},
        "leg_cramps",
        "soon",
        id="cramps with weakness, numbness or back pain",
    ),
    pytest.param(
        {"muscle_hard_knot": True, "stretch_relief": True},
        "leg_cramps",
        "self_care",
        id="a knotted muscle eased by stretching",
    ),
    pytest.param(RESTLESS_LEGS, "restless_legs", "soon", id="restless legs"),
    pytest.param(
        {**RESTLESS_LEGS, "both_legs": False}, "restless_legs", "soon", id="restless legs, one leg"
    ),
    pytest.param(CLAUDICATION, "pad_claudication", "soon", id="claudication"),
    pytest.param(
        {**CLAUDICATION, "smoker": True, "diabetes": True, "age_over_50": True},
        "pad_claudication",
        "soon",
        id="claudication with risk factors",
    ),
    pytest.param(REST_PAIN, "pad_rest_pain", "urgent", id="rest pain worse with legs raised"),
    pytest.param(
        {"foot_burning_ache": True, "loc_foot_toes": True, "dangling_relief": True},
        "pad_rest_pain",
        "urgent",
        id="rest pain eased by dangling",
    ),
    pytest.param(
        {**REST_PAIN, "tissue_changes": True},
        "critical_limb_ischemia",
        "emergency",
        id="rest pain with tissue changes",
    ),
    pytest.param(
        {"tissue_changes": True}, "critical_limb_ischemia", "emergency", id="tissue changes"
    ),
    pytest.param(
        {"calf_swelling_warm_red": True, "loc_calf": True, "both_legs": False},
        "possible_dvt",
        "emergency",
        id="swollen warm red calf",
    ),
    pytest.param(
        {**CLASSIC_CRAMP, **RESTLESS_LEGS}, "unclear", "soon", id="cramps and restless legs"
    ),
    pytest.param(
        {**CLASSIC_CRAMP, **CLAUDICATION}, "unclear", "soon", id="cramps and claudication"
    ),
    pytest.param({}, "unclear", "soon", id="nothing answered beyond the screen"),
    pytest.param({"loc_thigh": True, "most_nights": True}, "unclear", "soon", id="nothing fitting"),
    pytest.param(
        {"muscle_hard_knot": True}, "unclear", "soon", id="one cramp feature is not enough"
    ),
    pytest.param(
        {"urge_to_move": True, "worse_at_rest": True},
        "unclear",
        "soon",
        id="an urge without relief from moving is not restless legs",
    ),
    pytest.param(
        {"foot_burning_ache": True, "loc_foot_toes": True, "worse_legs_raised": False},
        "unclear",
        "soon",
        id="burning feet not worse raised, not eased by dangling",
    ),
    pytest.param(
        {"calf_swelling_warm_red": True, "tissue_changes": True},
        "unclear",
        "emergency",
        id="a clot and tissue changes together",
    ),
    pytest.param(
        {**CLASSIC_CRAMP, "chest_pain_or_breathless": True},
        "unclear",
        "emergency",
        id="cramp with chest pain",
    ),
]


@pytest.mark.parametrize(("picture", "pattern", "urgency"), PICTURES)
def test_each_spec_picture_gives_its_pattern_and_urgency(
    picture: dict[str, bool], pattern: str, urgency: str
) -> None:
    conclusion = conclude(picture)
    assert (str(conclusion.pattern), str(conclusion.urgency)) == (pattern, urgency)


def test_cramps_that_worsen_name_why_they_need_a_doctor() -> None:
    conclusion = conclude(CLASSIC_CRAMP, cramps_worsening=True, weakness_numbness_back_pain=True)
    assert conclusion.reasons == ("cramps_worsening", "weakness_numbness_back_pain")


def test_missing_answers_never_count_as_yes_for_a_pattern() -> None:
    # Only "no" and "not sure" to the cramp features: no cramp is concluded.
    findings = {**NO_RED_FLAGS, "muscle_hard_knot": False, "toes_pulled": False}
    assert rules.conclude(findings).pattern is Pattern.UNCLEAR
    assert not rules.fits_leg_cramps({"sudden_brief": True, "soreness_after": True})


# --- The highest urgency wins ----------------------------------------------------------------

HIGHEST_WINS = [
    pytest.param(CLASSIC_CRAMP, {"dangling_relief": True}, "urgent", id="cramp + dangling"),
    pytest.param(CLASSIC_CRAMP, {"new_medicine_cramps": True}, "urgent", id="cramp + new medicine"),
    pytest.param(
        {**CLASSIC_CRAMP, "cramps_worsening": True},
        {"new_medicine_cramps": True},
        "urgent",
        id="worsening cramp + new medicine",
    ),
    pytest.param(RESTLESS_LEGS, {"dangling_relief": True}, "urgent", id="restless + dangling"),
    pytest.param(
        CLAUDICATION, {"tissue_changes": True}, "emergency", id="claudication + tissue changes"
    ),
    pytest.param(
        REST_PAIN, {"sudden_weakness": True}, "emergency", id="rest pain + sudden weakness"
    ),
    pytest.param(
        {"dangling_relief": True},
        {"new_medicine_cramps": True},
        "urgent",
        id="two urgent flags stay urgent",
    ),
]


@pytest.mark.parametrize(("picture", "flags", "urgency"), HIGHEST_WINS)
def test_the_highest_urgency_any_rule_reaches_wins(
    picture: dict[str, bool], flags: dict[str, bool], urgency: str
) -> None:
    assert conclude(picture, flags).urgency is at(urgency)


def test_the_reasons_name_what_reached_the_final_urgency() -> None:
    conclusion = conclude(CLASSIC_CRAMP, dangling_relief=True, new_medicine_cramps=True)
    assert conclusion.urgency is Urgency.URGENT
    assert set(conclusion.reasons) >= {"dangling_relief", "new_medicine_cramps"}
    assert "leg_cramps" not in conclusion.reasons


# --- "Not sure" on a red-flag question escalates, as doubt_escalations says -----------------


@pytest.mark.parametrize("flag", EMERGENCY_SIGNS)
def test_not_sure_about_an_emergency_sign_means_get_seen_today(flag: str) -> None:
    findings = {**NO_RED_FLAGS, **CLASSIC_CRAMP}
    del findings[flag]
    conclusion = rules.conclude(findings)
    assert conclusion.urgency is Urgency.URGENT
    assert f"{flag}_unsure" in conclusion.reasons
    assert conclusion.red_flags == ()
    assert (Urgency.URGENT, f"{flag}_unsure") in rules.doubt_escalations(findings)


def test_not_sure_on_the_whole_safety_screen_means_get_seen_today() -> None:
    findings = {"dangling_relief": False, "new_medicine_cramps": False, **CLASSIC_CRAMP}
    conclusion = rules.conclude(findings)
    assert conclusion.urgency is Urgency.URGENT
    assert {f"{flag}_unsure" for flag in EMERGENCY_SIGNS} <= set(conclusion.reasons)


@pytest.mark.parametrize("foot_pain", rules.FOOT_PAIN)
def test_foot_pain_unsure_whether_dangling_helps_is_treated_as_rest_pain(foot_pain: str) -> None:
    findings = {**NO_RED_FLAGS, foot_pain: True}
    del findings["dangling_relief"]
    conclusion = rules.conclude(findings)
    assert conclusion.urgency is Urgency.URGENT
    assert "dangling_relief_unsure" in conclusion.reasons


def test_unsure_about_dangling_without_foot_pain_does_not_escalate() -> None:
    findings = {**NO_RED_FLAGS, **CLASSIC_CRAMP}
    del findings["dangling_relief"]
    assert rules.doubt_escalations(findings) == []
    assert rules.conclude(findings).urgency is Urgency.SELF_CARE


def test_statin_cramps_unsure_whether_they_came_with_it_need_a_doctor_soon() -> None:
    findings = {**NO_RED_FLAGS, **CLASSIC_CRAMP, "takes_diuretic_or_statin": True}
    del findings["new_medicine_cramps"]
    conclusion = rules.conclude(findings)
    assert conclusion.urgency is Urgency.SOON
    assert conclusion.reasons == ("new_medicine_unsure",)


def test_unsure_about_a_new_medicine_without_one_does_not_escalate() -> None:
    findings = {**NO_RED_FLAGS, **CLASSIC_CRAMP}
    del findings["new_medicine_cramps"]
    assert rules.conclude(findings).urgency is Urgency.SELF_CARE


def test_a_plain_no_to_every_red_flag_raises_no_doubt() -> None:
    assert rules.doubt_escalations({**NO_RED_FLAGS, **REST_PAIN, "diabetes": True}) == []


# --- Properties over any answers --------------------------------------------------------------

any_findings = st.dictionaries(st.sampled_from(sorted(FINDINGS)), st.booleans())


@settings(max_examples=500, deadline=None)
@given(any_findings)
def test_no_answers_ever_under_triage_a_red_flag(findings: dict[str, bool]) -> None:
    conclusion = rules.conclude(findings)
    said = {f for f, v in findings.items() if v} | {
        SPEC_KINDS[k] for k, v in findings.items() if v and k in SPEC_KINDS
    }
    true_flags = [flag for flag in SPEC_RED_FLAG_MINIMUM if flag in said]
    assert conclusion.red_flags == tuple(true_flags)
    for flag in true_flags:
        assert conclusion.urgency >= at(SPEC_RED_FLAG_MINIMUM[flag])
    if conclusion.pattern is Pattern.UNCLEAR:
        assert conclusion.urgency >= Urgency.SOON
    assert str(conclusion.pattern) in SPEC_PATTERNS
    assert str(conclusion.urgency) in SPEC_URGENCIES
    assert set(conclusion.red_flags) <= set(SPEC_RED_FLAG_MINIMUM)


@settings(max_examples=300, deadline=None)
@given(any_findings)
def test_doubt_on_the_safety_screen_never_ends_below_urgent(findings: dict[str, bool]) -> None:
    if any(flag not in findings for flag in EMERGENCY_SIGNS):
        assert rules.conclude(findings).urgency >= Urgency.URGENT


@settings(max_examples=300, deadline=None)
@given(any_findings, st.sampled_from(sorted(SPEC_RED_FLAG_MINIMUM)))
def test_saying_yes_to_a_red_flag_never_lowers_the_urgency(
    findings: dict[str, bool], flag: str
) -> None:
    before = rules.conclude({**findings, flag: False}).urgency
    after = rules.conclude({**findings, flag: True}).urgency
    assert after >= before
    assert after >= at(SPEC_RED_FLAG_MINIMUM[flag])


@settings(max_examples=300, deadline=None)
@given(any_findings)
def test_every_conclusion_gives_a_reason_at_its_urgency(findings: dict[str, bool]) -> None:
    conclusion = rules.conclude(findings)
    assert conclusion.reasons
    assert len(set(conclusion.reasons)) == len(conclusion.reasons)
