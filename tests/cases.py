"""Our own triage cases: facts as a person would give them, and what the spec expects.

Each case is a dict: `id`, `facts` (finding -> True / False / None, missing means "don't
know"), `urgency` (the exact spec urgency) and `patterns` (acceptable pattern ids). Facts start
from NO_RED_FLAGS unless a case is about doubt on the safety screen.
"""

from __future__ import annotations

from typing import Any

NO_EMERGENCY_SIGNS: dict[str, bool | None] = {
    "calf_swelling_warm_red": False,
    "chest_pain_or_breathless": False,
    "sudden_weakness": False,
    "tissue_changes": False,
    "infection_signs": False,
}
V2_ABSENT_IN_V1: dict[str, bool | None] = {"infection_signs": False}
"""The dev vignettes speak spec v1: each narrative names every sign of the v1 safety screen,
so a sign spec v2 added and the narrative does not mention is absent, not "not sure"."""


def v2_facts(vignette: dict[str, Any]) -> dict[str, bool | None]:
    """A v1 vignette as a person answers the v2 questions: v2 signs absent, sex as told."""
    sex = vignette.get("sex")
    told = {"female": sex == "female", "male": sex == "male"} if sex in ("female", "male") else {}
    return {**V2_ABSENT_IN_V1, **told, **vignette["facts"]}


NO_RED_FLAGS: dict[str, bool | None] = {
    **NO_EMERGENCY_SIGNS,
    "dangling_relief": False,
    "new_medicine_cramps": False,
}
CLASSIC_CRAMP: dict[str, bool | None] = {
    "muscle_hard_knot": True,
    "toes_pulled": True,
    "sudden_brief": True,
    "soreness_after": True,
    "stretch_relief": True,
    "urge_to_move": False,
    "crawling_feeling": False,
    "foot_burning_ache": False,
    "movement_relief": False,
    "loc_calf": True,
    "cramps_worsening": False,
    "weakness_numbness_back_pain": False,
}
CLASSIC_RLS: dict[str, bool | None] = {
    "urge_to_move": True,
    "crawling_feeling": True,
    "worse_at_rest": True,
    "evening_worse": True,
    "movement_relief": True,
    "both_legs": True,
    "muscle_hard_knot": False,
    "toes_pulled": False,
    "foot_burning_ache": False,
    "stretch_relief": False,
    "loc_whole_leg": True,
}


def case(
    case_id: str,
    urgency: str,
    patterns: list[str],
    *parts: dict[str, bool | None],
    **facts: bool | None,
) -> dict[str, Any]:
    """A case whose facts are `parts` merged in order, then `facts` (later ones win)."""
    merged: dict[str, bool | None] = {}
    for part in (*parts, facts):
        merged.update(part)
    return {"id": case_id, "facts": merged, "urgency": urgency, "patterns": patterns}


CASES: list[dict[str, Any]] = [
    # --- each pattern in its plain form
    case("classic_cramp", "self_care", ["leg_cramps"], NO_RED_FLAGS, CLASSIC_CRAMP),
    case(
        "classic_restless_legs",
        "soon",
        ["restless_legs"],
        NO_RED_FLAGS,
        CLASSIC_RLS,
        family_history_rls=True,
    ),
    case(
        "claudication_in_a_smoker_over_50",
        "soon",
        ["pad_claudication"],
        NO_RED_FLAGS,
        walking_calf_pain=True,
        loc_calf=True,
        smoker=True,
        age_over_50=True,
        muscle_hard_knot=False,
        toes_pulled=False,
        stretch_relief=False,
        urge_to_move=False,
    ),
    case(
        "rest_pain_burning_worse_raised",
        "urgent",
        ["pad_rest_pain"],
        NO_RED_FLAGS,
        foot_burning_ache=True,
        loc_foot_toes=True,
        worse_legs_raised=True,
        worse_at_rest=True,
        diabetes=True,
    ),
    case(
        "nothing_fits_dull_thigh_ache",
        "soon",
        ["unclear"],
        NO_RED_FLAGS,
        loc_thigh=True,
        muscle_hard_knot=False,
        toes_pulled=False,
        urge_to_move=False,
        crawling_feeling=False,
        foot_burning_ache=False,
        walking_calf_pain=False,
    ),
    # --- each red flag
    case(
        "chest_pain_with_a_cramp",
        "emergency",
        ["unclear"],
        CLASSIC_CRAMP,
        NO_RED_FLAGS,
        {"chest_pain_or_breathless": True},
    ),
    case(
        "sudden_weakness_with_leg_pain",
        "emergency",
        ["unclear"],
        NO_RED_FLAGS,
        {"sudden_weakness": True},
        loc_whole_leg=True,
    ),
    case(
        "swollen_warm_red_calf_after_a_flight",
        "emergency",
        ["possible_dvt"],
        NO_RED_FLAGS,
        {"calf_swelling_warm_red": True},
        loc_calf=True,
        both_legs=False,
    ),
    case(
        "black_toes_with_night_foot_pain",
        "emergency",
        ["critical_limb_ischemia"],
        NO_RED_FLAGS,
        {"tissue_changes": True},
        foot_burning_ache=True,
        smoker=True,
    ),
    case(
        "foot_pain_eased_by_dangling",
        "urgent",
        ["pad_rest_pain"],
        NO_RED_FLAGS,
        {"dangling_relief": True},
        foot_burning_ache=True,
        loc_foot_toes=True,
        worse_legs_raised=True,
        age_over_50=True,
    ),
    case(
        "new_medicine_cramps_on_a_statin",
        "urgent",
        ["leg_cramps"],
        NO_RED_FLAGS,
        {"new_medicine_cramps": True},
        CLASSIC_CRAMP,
        takes_diuretic_or_statin=True,
    ),
    # --- spec v2
    case(
        "spreading_redness_from_a_scrape_with_fever",
        "emergency",
        ["unclear"],
        NO_RED_FLAGS,
        {"infection_signs": True},
        loc_shin=True,
        female=True,
        male=False,
    ),
    case(
        "buttock_and_thigh_pain_on_walking",
        "soon",
        ["pad_claudication"],
        NO_RED_FLAGS,
        walking_calf_pain=True,
        loc_buttock_hip=True,
        muscle_hard_knot=False,
        toes_pulled=False,
        urge_to_move=False,
        crawling_feeling=False,
        foot_burning_ache=False,
        smoker=True,
        male=True,
        female=False,
        age_over_50=True,
    ),
    case(
        "cramps_since_a_new_inhaler",
        "urgent",
        ["leg_cramps"],
        NO_RED_FLAGS,
        CLASSIC_CRAMP,
        {"new_medicine_cramps": True},
        female=True,
        male=False,
    ),
    case(
        "pain_behind_the_knee_nothing_fits",
        "soon",
        ["unclear"],
        NO_RED_FLAGS,
        loc_knee_back=True,
        muscle_hard_knot=False,
        toes_pulled=False,
        urge_to_move=False,
        crawling_feeling=False,
        foot_burning_ache=False,
        walking_calf_pain=False,
    ),
    # --- tricky mixes
    case(
        "cramp_with_walking_calf_pain",
        "soon",
        ["unclear", "pad_claudication"],
        NO_RED_FLAGS,
        CLASSIC_CRAMP,
        walking_calf_pain=True,
        age_over_50=True,
    ),
    case(
        "restless_legs_in_one_leg",
        "soon",
        ["restless_legs", "unclear"],
        NO_RED_FLAGS,
        CLASSIC_RLS,
        {"both_legs": False},
    ),
    case(
        "diabetic_burning_feet_not_eased_by_dangling",
        "soon",
        ["unclear"],
        NO_RED_FLAGS,
        foot_burning_ache=True,
        crawling_feeling=True,
        loc_foot_toes=True,
        worse_legs_raised=False,
        worse_at_rest=True,
        evening_worse=True,
        both_legs=True,
        movement_relief=False,
        stretch_relief=False,
        urge_to_move=False,
        diabetes=True,
    ),
    case(
        "pregnancy_cramps", "self_care", ["leg_cramps"], NO_RED_FLAGS, CLASSIC_CRAMP, pregnant=True
    ),
    case(
        "cramps_getting_worse",
        "soon",
        ["leg_cramps"],
        NO_RED_FLAGS,
        CLASSIC_CRAMP,
        {"cramps_worsening": True},
    ),
    case(
        "cramps_with_back_pain_and_numbness",
        "soon",
        ["leg_cramps"],
        NO_RED_FLAGS,
        CLASSIC_CRAMP,
        {"weakness_numbness_back_pain": True},
    ),
    case(
        "cramps_and_restless_legs_equally",
        "soon",
        ["unclear"],
        NO_RED_FLAGS,
        CLASSIC_RLS,
        {k: v for k, v in CLASSIC_CRAMP.items() if v},
    ),
    case(
        "clot_and_tissue_changes_together",
        "emergency",
        ["unclear", "possible_dvt", "critical_limb_ischemia"],
        NO_RED_FLAGS,
        {"calf_swelling_warm_red": True, "tissue_changes": True},
    ),
    # --- "not sure" answers to red-flag questions
    case(
        "not_sure_on_the_safety_screen",
        "urgent",
        ["leg_cramps"],
        CLASSIC_CRAMP,
        dangling_relief=False,
        new_medicine_cramps=False,
    ),
    case(
        "burning_foot_unsure_whether_dangling_helps",
        "urgent",
        ["unclear"],
        NO_RED_FLAGS,
        {"dangling_relief": None},
        foot_burning_ache=True,
        loc_foot_toes=True,
        worse_legs_raised=False,
        diabetes=True,
    ),
    case(
        "statin_cramps_unsure_whether_they_came_with_it",
        "soon",
        ["leg_cramps"],
        NO_RED_FLAGS,
        {"new_medicine_cramps": None},
        CLASSIC_CRAMP,
        takes_diuretic_or_statin=True,
    ),
]
