"""The fixed ids of shared/clinical/spec.md: urgencies, patterns, red flags, findings.

Dialog YAML, rules, stored conclusions and exports speak only these ids; the loader rejects
any other.
"""

from __future__ import annotations

from enum import StrEnum


class Urgency(StrEnum):
    """How fast to act, lowest first so that comparisons follow the spec's order."""

    SELF_CARE = "self_care"
    SOON = "soon"
    URGENT = "urgent"
    EMERGENCY = "emergency"

    @property
    def rank(self) -> int:
        return _URGENCY_ORDER.index(self)

    def __lt__(self, other: object) -> bool:  # type: ignore[override]
        if not isinstance(other, Urgency):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:  # type: ignore[override]
        if not isinstance(other, Urgency):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:  # type: ignore[override]
        if not isinstance(other, Urgency):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:  # type: ignore[override]
        if not isinstance(other, Urgency):
            return NotImplemented
        return self.rank >= other.rank


_URGENCY_ORDER = (Urgency.SELF_CARE, Urgency.SOON, Urgency.URGENT, Urgency.EMERGENCY)


class Pattern(StrEnum):
    LEG_CRAMPS = "leg_cramps"
    RESTLESS_LEGS = "restless_legs"
    PAD_CLAUDICATION = "pad_claudication"
    PAD_REST_PAIN = "pad_rest_pain"
    CRITICAL_LIMB_ISCHEMIA = "critical_limb_ischemia"
    POSSIBLE_DVT = "possible_dvt"
    NERVE_ROOT_PAIN = "nerve_root_pain"
    """Spec v3 item 3: sciatica, a nerve pressed or irritated in the lower back."""
    UNCLEAR = "unclear"


# Spec table "Red flags and the minimum urgency each forces".
RED_FLAG_MINIMUM: dict[str, Urgency] = {
    "calf_swelling_warm_red": Urgency.EMERGENCY,
    "chest_pain_or_breathless": Urgency.EMERGENCY,
    "sudden_weakness": Urgency.EMERGENCY,
    "tissue_changes": Urgency.EMERGENCY,
    "dangling_relief": Urgency.URGENT,
    "new_medicine_cramps": Urgency.URGENT,
    # Spec v2: spreading redness or heat with fever, shivers or feeling very unwell.
    "infection_signs": Urgency.EMERGENCY,
    # Spec v3 items 2 and 4: the nerves at the bottom of the spine squeezed; a muscle reaction
    # to a new medicine.
    "cauda_equina_signs": Urgency.EMERGENCY,
    "muscle_breakdown_signs": Urgency.EMERGENCY,
}
RED_FLAGS: tuple[str, ...] = tuple(RED_FLAG_MINIMUM)

KINDS_OF: dict[str, tuple[str, ...]] = {"sudden_weakness": ("stroke_signs", "leg_weakness_sudden")}
"""Spec v3 item 1: findings that each imply a red flag and tell which danger it is."""
IMPLIES: dict[str, str] = {kind: flag for flag, kinds in KINDS_OF.items() for kind in kinds}

EPISODE: tuple[str, ...] = (
    "muscle_hard_knot",
    "toes_pulled",
    "sudden_brief",
    "soreness_after",
    "stretch_relief",
    "urge_to_move",
    "crawling_feeling",
    "worse_at_rest",
    "movement_relief",
    "evening_worse",
    "both_legs",
    "foot_burning_ache",
    "worse_legs_raised",
    "most_nights",
    "walking_calf_pain",
    # Spec v3
    "shooting_down_leg",
    "back_pain",
    "onset_recent",
    "one_leg",
    "lump_behind_knee",
)
LOCATION: tuple[str, ...] = (
    "loc_calf",
    "loc_foot_toes",
    "loc_thigh",
    "loc_whole_leg",
    # Spec v2
    "loc_knee_back",
    "loc_shin",
    "loc_buttock_hip",
)
SEX: tuple[str, ...] = ("male", "female")
"""Spec v2: asked so that a pregnancy option goes only to people who could be pregnant."""
BACKGROUND: tuple[str, ...] = (
    "age_over_50",
    "smoker",
    "diabetes",
    "high_blood_pressure",
    "high_cholesterol",
    "kidney_disease",
    "heart_or_stroke_history",
    "pregnant",
    "takes_diuretic_or_statin",
    "takes_antihistamine_or_antidepressant",
    "low_iron_known",
    "family_history_rls",
    "stands_all_day",
    "hard_exercise",
    "cramps_worsening",
    "weakness_numbness_back_pain",
)
FINDINGS: frozenset[str] = frozenset(
    RED_FLAGS + tuple(IMPLIES) + EPISODE + LOCATION + SEX + BACKGROUND
)
