"""Clinical vignettes answered through the engine: gold urgency exactly, never under-triage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dialogs import rules
from dialogs.engine import Flow
from dialogs.vocabulary import FINDINGS, Pattern, Urgency
from tests.cases import CASES, v2_facts
from tests.walker import walk

VIGNETTES_PATH = Path(__file__).resolve().parents[2] / "shared/clinical/vignettes-dev.json"
if not VIGNETTES_PATH.exists():
    pytest.skip(f"no vignettes at {VIGNETTES_PATH}", allow_module_level=True)

VIGNETTES: list[dict[str, Any]] = json.loads(VIGNETTES_PATH.read_text("utf-8"))
FLOW = Flow.load("triage")
MEAN_QUESTIONS_AT_MOST = 8  # issue 9 acceptance


def check(case_id: str, conclusion: Any, gold_urgency: str, patterns: list[str], how: str) -> None:
    gold = Urgency(gold_urgency)
    assert conclusion.urgency >= gold, (
        f"UNDER-TRIAGE {case_id} ({how}): advised {conclusion.urgency}, gold is {gold}; "
        f"reasons {conclusion.reasons}"
    )
    assert conclusion.urgency is gold, (
        f"{case_id} ({how}): advised {conclusion.urgency}, gold is {gold} (over-triage); "
        f"reasons {conclusion.reasons}"
    )
    assert str(conclusion.pattern) in patterns, (
        f"{case_id} ({how}): pattern {conclusion.pattern}, acceptable {patterns}"
    )


def known(facts: dict[str, bool | None]) -> dict[str, bool]:
    return {k: v for k, v in facts.items() if v is not None}


def test_the_vignettes_speak_the_spec_ids() -> None:
    assert len(VIGNETTES) >= 10
    for vignette in VIGNETTES:
        assert set(vignette["facts"]) <= FINDINGS, vignette["id"]
        Urgency(vignette["gold"]["urgency"])
        for pattern in vignette["acceptable_patterns"]:
            Pattern(pattern)


@pytest.mark.parametrize("vignette", VIGNETTES, ids=lambda v: v["id"])
def test_a_vignette_answered_through_the_engine_gets_the_gold_urgency(
    vignette: dict[str, Any],
) -> None:
    result = walk(FLOW, v2_facts(vignette))
    assert result.outcome.conclusion is not None
    check(
        vignette["id"],
        result.outcome.conclusion,
        vignette["gold"]["urgency"],
        vignette["acceptable_patterns"],
        f"engine, asked {result.asked}",
    )


@pytest.mark.parametrize("vignette", VIGNETTES, ids=lambda v: v["id"])
def test_a_vignette_given_straight_to_the_rules_gets_the_gold_urgency(
    vignette: dict[str, Any],
) -> None:
    conclusion = rules.conclude(known(v2_facts(vignette)))
    check(
        vignette["id"],
        conclusion,
        vignette["gold"]["urgency"],
        vignette["acceptable_patterns"],
        "rules",
    )
    assert set(vignette["gold"]["red_flags"]) == set(conclusion.red_flags)


def test_the_vignettes_take_at_most_eight_questions_on_average() -> None:
    asked = [len(walk(FLOW, v2_facts(v)).asked) for v in VIGNETTES]
    assert sum(asked) / len(asked) <= MEAN_QUESTIONS_AT_MOST, asked
    assert max(asked) <= 10, asked


def test_a_v1_vignette_keeps_its_facts_under_the_v2_adapter() -> None:
    for vignette in VIGNETTES:
        facts = v2_facts(vignette)
        assert {k: facts[k] for k in vignette["facts"]} == vignette["facts"]


# --- Our own cases -------------------------------------------------------------------------------


def test_our_cases_cover_every_pattern_and_red_flag() -> None:
    assert len(CASES) >= 12
    assert {p for c in CASES for p in c["patterns"]} >= {str(p) for p in Pattern}
    assert {c["urgency"] for c in CASES} == {str(u) for u in Urgency}
    flagged = {f for c in CASES for f, v in c["facts"].items() if v is True}
    assert flagged >= set(rules.RED_FLAGS)
    for case in CASES:
        assert set(case["facts"]) <= FINDINGS, case["id"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["id"])
def test_our_case_answered_through_the_engine_gets_its_urgency(case: dict[str, Any]) -> None:
    result = walk(FLOW, case["facts"])
    assert result.outcome.conclusion is not None
    check(
        case["id"],
        result.outcome.conclusion,
        case["urgency"],
        case["patterns"],
        f"engine, asked {result.asked}",
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["id"])
def test_our_case_given_straight_to_the_rules_gets_its_urgency(case: dict[str, Any]) -> None:
    conclusion = rules.conclude(known(case["facts"]))
    check(case["id"], conclusion, case["urgency"], case["patterns"], "rules")
