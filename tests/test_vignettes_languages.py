"""The same decisions in every language: each vignette (and each of our own cases) answered
through the engine on every language's triage gives the same questions, urgency, pattern,
red flags and advice of the same shape as in English.

Decisions run on ids, so this holds by construction; the test keeps it so: a translated flow
that lost an option, or advice that lost a block, fails here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dialogs.advice import Advice
from dialogs.engine import Flow, Outcome
from dialogs.i18n import LANGUAGES
from dialogs.texts import texts
from tests.cases import CASES, v2_facts
from tests.walker import walk

VIGNETTES_PATH = Path(__file__).resolve().parents[2] / "shared/clinical/vignettes-dev.json"
VIGNETTES = json.loads(VIGNETTES_PATH.read_text("utf-8")) if VIGNETTES_PATH.exists() else []
PEOPLE = [(v["id"], v2_facts(v)) for v in VIGNETTES] + [(c["id"], c["facts"]) for c in CASES]
FLOWS = {lang: Flow(texts(lang).flow("triage")) for lang in LANGUAGES}
OTHERS = [lang for lang in LANGUAGES if lang != "en"]


def decision(lang: str, facts: dict[str, bool | None]) -> tuple[Any, ...]:
    result = walk(FLOWS[lang], facts)
    conclusion = result.outcome.conclusion
    assert conclusion is not None
    asked = tuple(plan.question_id for plan in result.plans)
    return asked, conclusion.urgency, conclusion.pattern, tuple(conclusion.red_flags)


def shape(advice: Advice) -> tuple[Any, ...]:
    """Everything about advice but its words."""
    return (
        advice.urgency,
        tuple((b.flag, b.kind, b.route, len(b.do)) for b in advice.red_flag_blocks),
        len(advice.why),
        len(advice.helps_now),
        len(advice.notes),
        tuple((g.level, len(g.signs)) for g in advice.safety_net),
        bool(advice.tell_staff),
        bool(advice.at_night),
        bool(advice.pattern_name),
    )


def advise(lang: str, outcome: Outcome, country: str | None) -> Advice:
    assert outcome.conclusion is not None
    return texts(lang).advice.advise(
        outcome.conclusion,
        outcome.findings,
        emergency_number="112" if country else None,
        urgent_care="116117" if country else None,
    )


def test_there_are_people_to_compare() -> None:
    assert len(PEOPLE) >= len(CASES) > 10


@pytest.mark.parametrize("lang", OTHERS)
@pytest.mark.parametrize(("person", "facts"), PEOPLE, ids=[p for p, _ in PEOPLE])
def test_every_language_decides_as_english(
    lang: str, person: str, facts: dict[str, bool | None]
) -> None:
    assert decision(lang, facts) == decision("en", facts), person


@pytest.mark.parametrize("lang", OTHERS)
@pytest.mark.parametrize(("person", "facts"), PEOPLE, ids=[p for p, _ in PEOPLE])
def test_every_language_advises_as_english(
    lang: str, person: str, facts: dict[str, bool | None]
) -> None:
    outcome = walk(FLOWS["en"], facts).outcome
    for country in ("DE", None):
        english = advise("en", outcome, country)
        translated = advise(lang, outcome, country)
        assert shape(translated) == shape(english), person
