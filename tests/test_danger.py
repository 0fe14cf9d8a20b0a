"""Typed words read for danger (spec v2 item 5): a table of what must and must not be read."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from dialogs.advice import AdviceBook
from dialogs.content import DIALOGS_DIR, ContentError
from dialogs.danger import DangerReader, near, read, reader
from dialogs.vocabulary import RED_FLAG_MINIMUM, Urgency

BOOK = AdviceBook.load()
RAW: dict[str, Any] = yaml.safe_load((DIALOGS_DIR / "danger_phrases.yaml").read_text("utf-8"))

CHEST = "chest_pain_or_breathless"
STROKE = "sudden_weakness"
CLOT = "calf_swelling_warm_red"
INFECTION = "infection_signs"
FOOT = "tissue_changes"
STROKE_KIND = (STROKE, "stroke_signs")
LEG_WEAK = (STROKE, "leg_weakness_sudden")
SPINE = "cauda_equina_signs"
MUSCLE = "muscle_breakdown_signs"

POSITIVE = [
    ("chest pain", (CHEST,)),
    ("Chest pain!!", (CHEST,)),
    ("CHEST PAIN", (CHEST,)),
    ("chest pian", (CHEST,)),
    ("chset pain", (CHEST,)),
    ("a pain in my chest", (CHEST,)),
    ("my chest feels tight", (CHEST,)),
    ("i cant breathe", (CHEST,)),
    ("cant breath", (CHEST,)),
    ("I can't breathe properly", (CHEST,)),
    ("I cannot breathe", (CHEST,)),
    ("I'm short of breath", (CHEST,)),
    ("struggling to breathe", (CHEST,)),
    ("my face is drooping", STROKE_KIND),
    ("face droopy on one side", STROKE_KIND),
    ("my speech is slurred", STROKE_KIND),
    ("I can't move my leg", (STROKE,)),
    ("sudden weakness in my arm", (STROKE,)),
    ("numb down one side", STROKE_KIND),
    ("I think I'm having a stroke", STROKE_KIND),
    ("my calf is swollen and hot", (CLOT,)),
    ("swolen calf", (CLOT,)),
    ("Calf swollen, red.", (CLOT,)),
    ("hot red swollen calf", (CLOT,)),
    ("my leg is swollen and hot", (CLOT,)),
    ("could it be a blood clot", (CLOT,)),
    ("the redness is spreading and I have a fever", (INFECTION,)),
    ("spreading redness up my leg, shivering", (INFECTION,)),
    ("I have a temperature and the red patch is spreading", (INFECTION,)),
    ("cellulitis?", (INFECTION,)),
    ("my toes are black", (FOOT,)),
    ("toes have gone blue", (FOOT,)),
    ("black toe", (FOOT,)),
    ("I can't feel my foot", (FOOT,)),
    ("my foot is cold and numb", (FOOT,)),
    ("my foot went white, cold and numb", (FOOT,)),
    ("a sore on my foot that won't heal", (FOOT,)),
    ("no chest pain but my calf is swollen", (CLOT,)),
    ("my leg is not swollen but my calf is hot and red", (CLOT,)),
    ("chest pain and my calf is swollen", (CLOT, CHEST)),
    ("I'm not sure if it's chest pain", (CHEST,)),
    # spec v3
    ("my foot is flopping and I can't lift my toes", LEG_WEAK),
    ("my foot drags when I walk", LEG_WEAK),
    ("my leg gave way under me", LEG_WEAK),
    ("my left leg is weak", LEG_WEAK),
    ("my hand is clumsy", STROKE_KIND),
    ("it feels numb when I wipe", (SPINE,)),
    ("numbness between my legs", (SPINE,)),
    ("I can't pee since this morning", (SPINE,)),
    ("trouble passing urine", (SPINE,)),
    ("my pee is dark like cola", (MUSCLE,)),
    ("dark urine since the statin", (MUSCLE,)),
]

NEGATIVE = [
    "no chest pain",
    "No chest pain, no breathlessness",
    "I have no chest pain and I can breathe fine",
    "not short of breath",
    "without any chest pain",
    "I don't have chest pain",
    "my calf is not swollen",
    "calf isn't swollen or red",
    "no swelling or redness in my calf",
    "the redness is spreading, no fever",
    "no fever",
    "my toes curl while I sleep",
    "the cramp is in my calf",
    "it hurts when I walk",
    "a hot bath helps my calf",
    "I put a hot water bottle on my calf",
    "my feet get cold at night",
    "I had a stroke years ago",
    "half swollen",
    "the pain is behind my knee",
    "restless legs again",
    "my legs feel heavy at night",
    "my leg goes dead when I sit on it",
    "no numbness between my legs",
    "my urine is not dark",
    "a pain in my bottom when I sit",
    "",
    "   ",
    "🦵🌙",
]


@pytest.mark.parametrize(("text", "flags"), POSITIVE, ids=[t for t, _ in POSITIVE])
def test_typed_words_that_name_an_emergency_sign_are_read(
    text: str, flags: tuple[str, ...]
) -> None:
    assert read(text) == flags


@pytest.mark.parametrize("text", NEGATIVE)
def test_negated_or_ordinary_words_are_not_read_as_danger(text: str) -> None:
    assert read(text) == ()


def test_every_flag_read_from_words_is_an_emergency_sign() -> None:
    flags = {rule.flag for rule in reader().rules}
    kinds = {"stroke_signs", "leg_weakness_sudden"}
    assert flags == {f for f, u in RED_FLAG_MINIMUM.items() if u is Urgency.EMERGENCY} | kinds


def test_the_reader_is_loaded_and_compiled_once() -> None:
    assert reader() is reader()


@pytest.mark.parametrize(
    ("token", "word", "close"),
    [
        ("pian", "pain", True),  # swapped
        ("pai", "pain", True),  # missing
        ("paain", "pain", True),  # extra
        ("rain", "pain", False),  # a changed letter in a short word
        ("half", "calf", False),
        ("chess", "chest", True),  # a changed letter in a longer word
        ("chst", "chest", True),
        ("cheese", "chest", False),
    ],
)
def test_one_slip_of_the_keyboard_is_forgiven(token: str, word: str, close: bool) -> None:
    assert near(token, word) is close


@given(st.text(max_size=300))
def test_any_text_is_read_without_error(text: str) -> None:
    found = read(text)
    assert isinstance(found, tuple)
    assert len(set(found)) == len(found)


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ("unknown flag", "not_a_flag"),
        ("bad word", "Chest"),
        ("unquoted no", "negations"),
        ("empty list", "flags.sudden_weakness"),
    ],
)
def test_the_phrase_file_is_checked_with_named_errors(change: str, names: str) -> None:
    raw = copy.deepcopy(RAW)
    if change == "unknown flag":
        raw["flags"]["not_a_flag"] = ["chest pain"]
    elif change == "bad word":
        raw["flags"][CHEST].append("Chest pain")
    elif change == "unquoted no":
        raw["negations"].append(False)
    else:
        raw["flags"][STROKE] = []
    with pytest.raises(ContentError, match=r"danger_phrases\.yaml") as info:
        DangerReader(raw)
    assert names in str(info.value)


@pytest.mark.parametrize("text", [t for t, _ in POSITIVE])
def test_typed_danger_gets_the_emergency_advice_of_its_own_red_flag(text: str) -> None:
    flags = read(text)
    advice = BOOK.advise_typed(flags, emergency_number="112")
    assert advice.urgency is Urgency.EMERGENCY
    assert [b.flag for b in advice.red_flag_blocks] == [f for f in flags if f in RED_FLAG_MINIMUM]
    kinds = [f for f in flags if f not in RED_FLAG_MINIMUM]
    assert [b.kind for b in advice.red_flag_blocks if b.kind in kinds] == kinds
    assert not advice.pattern_name
    assert advice.intro
    assert "Call 112" in advice.as_text()
