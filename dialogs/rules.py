"""Clinical rules: findings in, conclusion {pattern, urgency, red_flags} out.

Read this next to shared/clinical/spec.md; each rule names the spec line it implements.
A finding is True (the person said yes), False (said no) or missing (not asked, or "not sure").
Missing never counts as yes for a pattern, and where it hides a possible red flag the rules
escalate (spec: "when in doubt, the rules escalate").
"""

from __future__ import annotations

from collections.abc import Mapping

from dialogs.records import Conclusion
from dialogs.vocabulary import IMPLIES, KINDS_OF, RED_FLAG_MINIMUM, RED_FLAGS, Pattern, Urgency

Findings = Mapping[str, bool]

# Spec "Other rules from the guide": the usual urgency of each pattern.
PATTERN_URGENCY: dict[Pattern, Urgency] = {
    Pattern.LEG_CRAMPS: Urgency.SELF_CARE,
    Pattern.RESTLESS_LEGS: Urgency.SOON,
    Pattern.PAD_CLAUDICATION: Urgency.SOON,
    Pattern.PAD_REST_PAIN: Urgency.URGENT,
    Pattern.CRITICAL_LIMB_ISCHEMIA: Urgency.EMERGENCY,
    Pattern.POSSIBLE_DVT: Urgency.EMERGENCY,
    Pattern.NERVE_ROOT_PAIN: Urgency.SOON,  # spec v3 item 3
    Pattern.UNCLEAR: Urgency.SOON,
}

CRAMP_CORE = ("muscle_hard_knot", "toes_pulled")
CRAMP_SUPPORT = ("sudden_brief", "soreness_after", "stretch_relief")
EMERGENCY_FLAGS = tuple(f for f, u in RED_FLAG_MINIMUM.items() if u is Urgency.EMERGENCY)
FOOT_PAIN = ("foot_burning_ache", "loc_foot_toes", "worse_legs_raised")
CRAMPS_RAISED = ("cramps_worsening", "weakness_numbness_back_pain", "back_pain")
"""Spec: cramps that are worsening, or come with weakness, numbness or back pain: `soon`."""


def yes(findings: Findings, *ids: str) -> bool:
    """True when any of the findings was answered yes."""
    return any(findings.get(i) is True for i in ids)


def unknown(findings: Findings, finding: str) -> bool:
    return findings.get(finding) is None


def cramps_ruled_out(f: Findings) -> bool:
    """The person said no to both core cramp features (spec v2: gate cramp questions on it)."""
    return all(f.get(i) is False for i in CRAMP_CORE)


# --- Patterns -------------------------------------------------------------------------------


def fits_leg_cramps(f: Findings) -> bool:
    """Spec `leg_cramps`: a hard, knotted muscle or pulled toes, plus one more cramp feature."""
    return yes(f, *CRAMP_CORE) and sum(yes(f, i) for i in CRAMP_CORE + CRAMP_SUPPORT) >= 2


def fits_restless_legs(f: Findings) -> bool:
    """Spec `restless_legs`: urge to move, eased only while moving, at rest or in the evening."""
    return (
        yes(f, "urge_to_move")
        and yes(f, "movement_relief")
        and yes(f, "worse_at_rest", "evening_worse", "crawling_feeling")
    )


def fits_pad_claudication(f: Findings) -> bool:
    """Spec `pad_claudication`: calf pain on walking that stops within minutes of rest."""
    return yes(f, "walking_calf_pain")


def fits_nerve_root_pain(f: Findings) -> bool:
    """Spec v3 `nerve_root_pain`: shooting or burning pain running down the leg (sciatica)."""
    return yes(f, "shooting_down_leg")


def stroke_like(f: Findings) -> bool:
    """Sudden weakness of the stroke kind, or of a kind not told (then it may be a stroke)."""
    return yes(f, "stroke_signs") or (
        yes(f, "sudden_weakness") and not yes(f, "leg_weakness_sudden")
    )


def fits_pad_rest_pain(f: Findings) -> bool:
    """Spec `pad_rest_pain`: foot pain eased by dangling, or burning foot pain worse raised."""
    return yes(f, "dangling_relief") or (
        yes(f, "foot_burning_ache") and yes(f, "worse_legs_raised")
    )


def choose_pattern(f: Findings) -> Pattern:
    """The one pattern that fits; `unclear` when none or several fit equally."""
    # Circulation emergencies come first: they explain the night and decide the action.
    clot = yes(f, "calf_swelling_warm_red")
    limb = yes(f, "tissue_changes")
    infection = yes(f, "infection_signs")
    if clot + limb + infection > 1:  # two explanations at once: each red flag speaks for itself
        return Pattern.UNCLEAR
    if clot:
        return Pattern.POSSIBLE_DVT
    if limb:
        return Pattern.CRITICAL_LIMB_ISCHEMIA
    if fits_pad_rest_pain(f):
        return Pattern.PAD_REST_PAIN
    # Chest pain, breathlessness, a stroke or a spreading infection (spec v2) are not
    # explained by a night leg pattern.
    if yes(f, "chest_pain_or_breathless", "infection_signs") or stroke_like(f):
        return Pattern.UNCLEAR
    # Spec v3 items 1-3: a leg gone weak or the spine's red flag is a nerve danger; sciatica
    # explains it when the pain shoots down the leg, and nothing else does.
    if yes(f, "leg_weakness_sudden", "cauda_equina_signs"):
        return Pattern.NERVE_ROOT_PAIN if fits_nerve_root_pain(f) else Pattern.UNCLEAR
    fitting = [
        pattern
        for pattern, fits in (
            (Pattern.LEG_CRAMPS, fits_leg_cramps),
            (Pattern.RESTLESS_LEGS, fits_restless_legs),
            (Pattern.PAD_CLAUDICATION, fits_pad_claudication),
            (Pattern.NERVE_ROOT_PAIN, fits_nerve_root_pain),
        )
        if fits(f)
    ]
    # The guide: cramps can come from a nerve irritated in the lower spine, so sciatica
    # with cramps is sciatica (the same urgency or higher, and its own safety net).
    if fitting == [Pattern.LEG_CRAMPS, Pattern.NERVE_ROOT_PAIN]:
        return Pattern.NERVE_ROOT_PAIN
    return fitting[0] if len(fitting) == 1 else Pattern.UNCLEAR


# --- Urgency --------------------------------------------------------------------------------


def pattern_urgency(pattern: Pattern, f: Findings) -> tuple[Urgency, tuple[str, ...]]:
    """Urgency the pattern itself calls for, with the findings that raised it."""
    if pattern is Pattern.LEG_CRAMPS:
        # Spec: cramps that are worsening, or come with weakness, numbness or back pain: soon.
        raised = tuple(i for i in CRAMPS_RAISED if yes(f, i))
        return (Urgency.SOON, raised) if raised else (Urgency.SELF_CARE, ())
    return PATTERN_URGENCY[pattern], ()


def doubt_escalations(f: Findings) -> list[tuple[Urgency, str]]:
    """Red-flag questions answered "not sure" where the rest of the picture points at them."""
    raised: list[tuple[Urgency, str]] = []
    # The safety screen answered "not sure": a bot cannot look at the leg, so get it seen today.
    raised += [(Urgency.URGENT, f"{flag}_unsure") for flag in EMERGENCY_FLAGS if unknown(f, flag)]
    # A foot that burns at night may be rest pain; without knowing whether dangling helps,
    # treat it as the `dangling_relief` red flag would be treated.
    if unknown(f, "dangling_relief") and yes(f, *FOOT_PAIN):
        raised.append((Urgency.URGENT, "dangling_relief_unsure"))
    # Cramps on a diuretic or statin, unsure whether they came with it: have it checked soon.
    # (Spec v2: the question is not put to people who said they have no cramps.)
    if (
        unknown(f, "new_medicine_cramps")
        and yes(f, "takes_diuretic_or_statin")
        and not cramps_ruled_out(f)
    ):
        raised.append((Urgency.SOON, "new_medicine_unsure"))
    return raised


def flag_reasons(f: Findings, flag: str) -> tuple[str, ...]:
    """What the person said that raised a red flag: its kinds when told (spec v3 item 6)."""
    kinds = tuple(kind for kind in KINDS_OF.get(flag, ()) if yes(f, kind))
    return kinds or (flag,)


def with_implied_flags(findings: Findings) -> dict[str, bool]:
    """A kind said yes to (`stroke_signs`) raises the red flag it is a kind of."""
    implied = {flag: True for kind, flag in IMPLIES.items() if yes(findings, kind)}
    return {**findings, **implied}


def conclude(findings: Findings) -> Conclusion:
    """Apply the spec: the highest urgency any rule reaches wins."""
    findings = with_implied_flags(findings)
    red_flags = tuple(flag for flag in RED_FLAGS if yes(findings, flag))
    pattern = choose_pattern(findings)
    urgency, reasons = pattern_urgency(pattern, findings)
    candidates = [(urgency, r) for r in reasons] or [(urgency, str(pattern))]
    candidates += [
        (RED_FLAG_MINIMUM[flag], reason)
        for flag in red_flags
        for reason in flag_reasons(findings, flag)
    ]
    # A lump behind the knee wants examining (a cyst, or a swollen artery), whatever else.
    if yes(findings, "lump_behind_knee"):
        candidates.append((Urgency.SOON, "lump_behind_knee"))
    candidates += doubt_escalations(findings)
    final = max(u for u, _ in candidates)
    why = tuple(dict.fromkeys(r for u, r in candidates if u == final))
    return Conclusion(pattern=pattern, urgency=final, red_flags=red_flags, reasons=why)
