"""Consistency of the content: triage.yaml, advice.yaml, the loader's errors, import boundaries."""

from __future__ import annotations

import ast
import copy
import itertools
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dialogs import rules
from dialogs.advice import AdviceBook
from dialogs.content import (
    DIALOGS_DIR,
    MAX_LABEL,
    Condition,
    ContentError,
    load_flow,
    parse_flow,
)
from dialogs.engine import Flow, machine_config
from dialogs.records import CANCELLED, CONCLUDED, EMERGENCY, FINAL_STATES, Conclusion
from dialogs.vocabulary import FINDINGS, RED_FLAG_MINIMUM, RED_FLAGS, Pattern, Urgency
from tests.walker import walk

REPO = Path(__file__).resolve().parents[1]
CONTENT = load_flow("triage")
FLOW = Flow(CONTENT)
BOOK = AdviceBook.load()
ADVICE_RAW: dict[str, Any] = yaml.safe_load((DIALOGS_DIR / "advice.yaml").read_text("utf-8"))
OPTIONS = [(q, o) for q in CONTENT.questions for o in q.options]
SET_BY_OPTIONS = {f for _, o in OPTIONS for f in o.sets}
NO_RED_FLAGS = dict.fromkeys(RED_FLAGS, False)


def sets_red_flag(question: Any) -> bool:
    return any(f in RED_FLAGS for o in question.options for f in o.sets)


# --- triage.yaml ------------------------------------------------------------------------------


def test_every_finding_an_option_sets_is_in_the_vocabulary() -> None:
    assert SET_BY_OPTIONS <= FINDINGS
    for question in CONTENT.questions:
        if question.ask_if is not None:
            assert question.ask_if.findings() <= FINDINGS, question.id


def string_literals(path: Path) -> set[str]:
    """String constants in code, leaving out docstrings and f-string fragments."""
    tree = ast.parse(path.read_text("utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef) and ast.get_docstring(
            node, clean=False
        ):
            skip.add(id(node.body[0].value))  # type: ignore[attr-defined]
        if isinstance(node, ast.JoinedStr):
            skip |= {id(v) for v in node.values}
    return {
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in skip
    }


def test_every_finding_the_rules_read_is_set_by_some_option() -> None:
    literals = string_literals(REPO / "dialogs" / "rules.py")
    read = literals & FINDINGS
    assert len(read) >= 15  # the ast walk really found the rules' findings
    assert read <= SET_BY_OPTIONS, sorted(read - SET_BY_OPTIONS)
    assert set(RED_FLAGS) <= SET_BY_OPTIONS


def test_every_other_word_in_the_rules_is_a_reason_the_advice_explains() -> None:
    # A typo in a finding id would land here instead of in FINDINGS.
    others = {s for s in string_literals(REPO / "dialogs" / "rules.py") if s.isidentifier()}
    others -= FINDINGS
    assert others, "expected the doubt reasons"
    assert others <= set(ADVICE_RAW["reasons"]), sorted(others - set(ADVICE_RAW["reasons"]))


def test_every_red_flag_is_asked_by_exactly_one_question() -> None:
    for flag in RED_FLAGS:
        askers = {q.id for q, o in OPTIONS if flag in o.sets}
        assert len(askers) == 1, (flag, askers)


def test_every_state_that_is_not_final_is_a_question_with_options() -> None:
    config = machine_config(CONTENT)
    names = [s["name"] for s in config["states"]]
    assert (
        {CONCLUDED, EMERGENCY, CANCELLED}
        <= set(names)
        <= set(FINAL_STATES) | {q.id for q in CONTENT.questions}
    )
    sources = {t["source"] for t in config["transitions"] if t["trigger"] == "advance"}
    for name in names:
        if name in FINAL_STATES:
            assert name not in sources
            continue
        question = CONTENT.question(name)
        assert question is not None, name
        assert len(question.options) >= 2
        assert name in sources, f"{name} has no way on"


def test_every_option_label_fits_on_a_button() -> None:
    for question, option in OPTIONS:
        assert 0 < len(option.label) <= MAX_LABEL, (question.id, option.label)
    for question in CONTENT.questions:
        if question.multi:
            assert question.done_label
            assert len(question.done_label) <= MAX_LABEL


def test_every_multi_question_has_an_exclusive_way_out() -> None:
    multi = [q for q in CONTENT.questions if q.multi]
    assert multi
    for question in multi:
        assert any(o.exclusive for o in question.options), question.id
        assert any(not o.exclusive for o in question.options), question.id


def test_every_not_sure_answer_sets_nothing() -> None:
    for question, option in OPTIONS:
        if option.label.lower() in {"not sure", "hard to say", "it varies"}:
            assert option.sets == {}, (question.id, option.id)


EMERGENCY_FLAGS = {f for f, u in RED_FLAG_MINIMUM.items() if u is Urgency.EMERGENCY}


def test_every_emergency_sign_is_asked_first_on_the_safety_screen() -> None:
    first = CONTENT.questions[0]
    kinds = {"stroke_signs", "leg_weakness_sudden"}  # spec v3 item 1: both set sudden_weakness
    assert {f for o in first.options for f in o.sets} == EMERGENCY_FLAGS | kinds
    assert first.ask_if is None and first.skip_if is None


def test_red_flag_questions_are_never_skipped_on_doubt() -> None:
    # Spec v2 item 4: a red flag below emergency may be skipped only after a plain "no" to
    # what it is about (the new-medicine question after "no" to cramps), never on "not sure".
    for question in CONTENT.questions:
        if not sets_red_flag(question):
            continue
        assert question.ask_if is None, question.id
        if question.skip_if is not None:
            assert question.skip_if.only_no_answers(), question.id
            flags = {f for o in question.options for f in o.sets if f in RED_FLAGS}
            assert not flags & EMERGENCY_FLAGS, question.id
        assert all(o.offer_if is None for o in question.options if set(o.sets) & set(RED_FLAGS))


def satisfying(condition: Condition) -> dict[str, bool]:
    """Some assignment of the condition's findings that makes it true."""
    names = sorted(condition.findings())
    for values in itertools.product((True, False), repeat=len(names)):
        assignment = dict(zip(names, values, strict=True))
        if condition(assignment):
            return assignment
    raise AssertionError(f"no answers satisfy {condition}")


@pytest.mark.parametrize("question", CONTENT.questions, ids=lambda q: q.id)
def test_every_question_is_asked_under_some_answers(question: Any) -> None:
    facts: dict[str, bool | None] = {**NO_RED_FLAGS}
    if question.ask_if is not None:
        facts.update(satisfying(question.ask_if))
    if question.skip_if is not None:
        facts.update(dict.fromkeys(question.skip_if.findings()))  # not known: asked
    assert question.id in walk(FLOW, facts).asked


# --- The loader's errors name the place -----------------------------------------------------


def minimal() -> dict[str, Any]:
    return {
        "flow": "mini",
        "questions": [
            {
                "id": "screen",
                "text": "Any of these?",
                "multi": True,
                "done_label": "Done",
                "options": [
                    {
                        "id": "chest",
                        "label": "Chest pain",
                        "sets": {"chest_pain_or_breathless": True},
                    },
                    {
                        "id": "none",
                        "label": "None of these",
                        "exclusive": True,
                        "sets": {"chest_pain_or_breathless": False},
                    },
                ],
            },
            {
                "id": "feeling",
                "text": "What is it like?",
                "options": [
                    {"id": "knot", "label": "A knot", "sets": {"muscle_hard_knot": True}},
                    {"id": "no", "label": "No", "sets": {"muscle_hard_knot": False}},
                ],
            },
            {
                "id": "course",
                "text": "Worse lately?",
                "ask_if": "muscle_hard_knot",
                "options": [
                    {"id": "yes", "label": "Yes", "sets": {"cramps_worsening": True}},
                    {"id": "unsure", "label": "Not sure"},
                ],
            },
        ],
    }


def test_the_minimal_flow_is_valid() -> None:
    content = parse_flow(minimal(), source="mini.yaml")
    assert [q.id for q in content.questions] == ["screen", "feeling", "course"]
    assert content.question("course").ask_if({"muscle_hard_knot": True})  # type: ignore[union-attr]


def broken(change: str) -> dict[str, Any]:
    raw = minimal()
    qs = raw["questions"]
    if change == "unknown finding":
        qs[1]["options"][0]["sets"] = {"muscle_rock_hard": True}
    elif change == "duplicate question id":
        qs[2]["id"] = "feeling"
    elif change == "duplicate option id":
        qs[1]["options"][1]["id"] = "knot"
    elif change == "multi without done_label":
        del qs[0]["done_label"]
    elif change == "ask_if on a red-flag question":
        qs[2]["options"][0]["sets"] = {"dangling_relief": True}
    elif change == "ask_if on a finding set only later":
        qs[2]["ask_if"] = "walking_calf_pain"
        qs.append(copy.deepcopy(qs[1]))
        qs[3]["id"] = "walking"
        qs[3]["options"][0]["sets"] = {"walking_calf_pain": True}
    elif change == "ask_if on an unknown finding":
        qs[2]["ask_if"] = {"any": ["muscle_hard_knot", "muscle_rock_hard"]}
    elif change == "label too long":
        qs[1]["options"][1]["label"] = "x" * (MAX_LABEL + 1)
    elif change == "a value that is not true or false":
        qs[1]["options"][0]["sets"] = {"muscle_hard_knot": "yes"}
    elif change == "exclusive on a single question":
        qs[1]["options"][1]["exclusive"] = True
    else:
        raise AssertionError(change)
    return raw


@pytest.mark.parametrize(
    ("change", "place", "names"),
    [
        ("unknown finding", "questions[1] (feeling).options[0]", "muscle_rock_hard"),
        ("duplicate question id", "mini.yaml", "feeling"),
        ("duplicate option id", "questions[1] (feeling)", "knot"),
        ("multi without done_label", "questions[0] (screen)", "done_label"),
        ("ask_if on a red-flag question", "questions[2] (course)", "red flag"),
        ("ask_if on a finding set only later", "course", "walking_calf_pain"),
        ("ask_if on an unknown finding", "questions[2] (course).ask_if", "muscle_rock_hard"),
        ("label too long", "questions[1] (feeling).options[1]", str(MAX_LABEL)),
        ("a value that is not true or false", "questions[1] (feeling).options[0]", "true"),
        ("exclusive on a single question", "questions[1] (feeling)", "exclusive"),
    ],
)
def test_the_loader_names_the_place_of_each_mistake(change: str, place: str, names: str) -> None:
    with pytest.raises(ContentError) as info:
        parse_flow(broken(change), source="mini.yaml")
    message = str(info.value)
    assert message.startswith("mini.yaml")
    assert place in message
    assert names in message


def test_a_label_of_exactly_the_limit_is_accepted() -> None:
    raw = minimal()
    raw["questions"][1]["options"][1]["label"] = "x" * MAX_LABEL
    assert parse_flow(raw, source="mini.yaml").questions[1].options[1].label == "x" * MAX_LABEL


def test_a_done_button_label_that_is_too_long_is_refused() -> None:
    raw = minimal()
    raw["questions"][0]["done_label"] = "d" * (MAX_LABEL + 1)
    with pytest.raises(ContentError, match="screen"):
        parse_flow(raw, source="mini.yaml")


def test_a_missing_flow_file_is_a_content_error(tmp_path: Path) -> None:
    with pytest.raises(ContentError, match=r"nothere\.yaml"):
        load_flow("nothere", tmp_path)


# --- advice.yaml ------------------------------------------------------------------------------

ALL_CONCLUSIONS = [(p, u) for p in Pattern for u in Urgency]


@pytest.mark.parametrize(("pattern", "urgency"), ALL_CONCLUSIONS, ids=str)
def test_every_conclusion_gets_full_advice(pattern: Pattern, urgency: Urgency) -> None:
    advice = BOOK.advise(Conclusion(pattern, urgency), {})
    assert advice.urgency is urgency
    assert advice.headline and advice.action and advice.pattern_name and advice.looks_like
    assert (1 if urgency is Urgency.EMERGENCY else 2) <= len(advice.watch_for) <= 4
    assert all(group.heading and group.signs for group in advice.safety_net)
    text = advice.as_text()
    assert "not a diagnosis" in text
    assert text.rstrip().endswith(advice.not_a_diagnosis)
    assert "{emergency_number}" not in text


def test_the_advice_book_refuses_content_missing_a_pattern() -> None:
    raw = copy.deepcopy(ADVICE_RAW)
    del raw["patterns"]["possible_dvt"]
    with pytest.raises(ContentError, match="possible_dvt"):
        AdviceBook(raw)


@pytest.mark.parametrize("number", ["112", "911", "999", "000"])
@pytest.mark.parametrize("urgency", list(Urgency), ids=str)
def test_a_known_emergency_number_is_named_and_no_other(number: str, urgency: Urgency) -> None:
    text = BOOK.advise(Conclusion(Pattern.UNCLEAR, urgency), {}, emergency_number=number).as_text()
    assert number in text
    for other in {"112", "911", "999"} - {number}:
        assert other not in text


@pytest.mark.parametrize("urgency", list(Urgency), ids=str)
def test_an_unknown_country_lists_the_common_numbers(urgency: Urgency) -> None:
    text = BOOK.advise(Conclusion(Pattern.UNCLEAR, urgency), {}).as_text()
    for number in ("112", "911", "999", "000"):
        assert number in text


def test_emergency_advice_says_call_the_number_now() -> None:
    advice = BOOK.advise(
        Conclusion(Pattern.POSSIBLE_DVT, Urgency.EMERGENCY), {}, emergency_number="112"
    )
    assert "Call 112" in advice.action
    assert advice.helps_heading.startswith("While you wait")


def test_urgent_advice_says_today() -> None:
    advice = BOOK.advise(Conclusion(Pattern.PAD_REST_PAIN, Urgency.URGENT), {})
    assert "today" in advice.action
    assert "night" in advice.at_night


@pytest.mark.parametrize("pattern", list(Pattern), ids=str)
def test_emergency_advice_has_no_home_remedies(pattern: Pattern) -> None:
    advice = BOOK.advise(Conclusion(pattern, Urgency.EMERGENCY), {"muscle_hard_knot": True})
    remedies = {s.strip() for s in ADVICE_RAW["patterns"][str(pattern)].get("helps_now", [])}
    assert advice.helps_now
    assert not set(advice.helps_now) & remedies
    waiting = ADVICE_RAW["safety_net"]["emergency_result"]["watch"]  # no red flag known
    assert set(advice.watch_for) == {ADVICE_RAW["signs"][s]["text"] for s in waiting}
    assert advice.tell_staff


def test_the_new_medicine_block_says_not_to_stop_a_medicine_on_your_own() -> None:
    conclusion = rules.conclude({**NO_RED_FLAGS, "new_medicine_cramps": True})
    advice = BOOK.advise(conclusion, {"new_medicine_cramps": True})
    (block,) = advice.red_flag_blocks
    words = " ".join((advice.action, block.title, block.means, *block.do)).lower()
    assert "do not stop" in words
    assert "medicine" in words
    assert "today" in words
    assert "pharmacist" in words


@pytest.mark.parametrize("risk", ["smoker", "diabetes", "age_over_50"])
def test_claudication_with_a_risk_factor_mentions_heart_attack_and_stroke(risk: str) -> None:
    findings = {**NO_RED_FLAGS, "walking_calf_pain": True, risk: True}
    conclusion = rules.conclude(findings)
    assert conclusion.pattern is Pattern.PAD_CLAUDICATION
    text = BOOK.advise(conclusion, findings).as_text().lower()
    assert "heart attack" in text
    assert "stroke" in text


def test_claudication_without_risk_factors_has_no_heart_note() -> None:
    findings = {**NO_RED_FLAGS, "walking_calf_pain": True}
    text = BOOK.advise(rules.conclude(findings), findings).as_text().lower()
    assert "heart attack" not in text


def test_restless_legs_advice_asks_for_an_iron_check() -> None:
    findings = {
        **NO_RED_FLAGS,
        "urge_to_move": True,
        "movement_relief": True,
        "worse_at_rest": True,
    }
    conclusion = rules.conclude(findings)
    assert conclusion.pattern is Pattern.RESTLESS_LEGS
    text = BOOK.advise(conclusion, findings).as_text().lower()
    assert "ferritin" in text


def test_advice_resting_on_a_not_sure_answer_says_so() -> None:
    findings = {"dangling_relief": False, "new_medicine_cramps": False}
    conclusion = rules.conclude(findings)
    advice = BOOK.advise(conclusion, findings)
    assert any("not sure" in note for note in advice.notes)
    assert any("not sure" in why for why in advice.why)


def test_the_why_names_the_red_flags_in_plain_words() -> None:
    findings = {**NO_RED_FLAGS, "dangling_relief": True, "foot_burning_ache": True}
    advice = BOOK.advise(rules.conclude(findings), findings)
    assert ADVICE_RAW["reasons"]["dangling_relief"] in advice.why
    assert all("_" not in why for why in advice.why)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(FINDINGS)), st.booleans()))
def test_every_reason_the_rules_give_has_plain_words(findings: dict[str, bool]) -> None:
    conclusion = rules.conclude(findings)
    for reason in (*conclusion.reasons, *conclusion.red_flags):
        assert reason in ADVICE_RAW["reasons"], reason
    advice = BOOK.advise(conclusion, findings)
    # two to four signs; in an emergency, each red flag's own first sign however many flags
    assert 1 <= len(advice.watch_for) <= max(4, len(advice.red_flag_blocks))
    assert advice.not_a_diagnosis in advice.as_text()


# --- Import boundaries ------------------------------------------------------------------------


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


DIALOGS_FILES = sorted((REPO / "dialogs").glob("*.py"))
STORAGE_FILES = sorted((REPO / "storage").rglob("*.py"))


def test_the_import_walk_sees_every_module() -> None:
    assert {p.name for p in DIALOGS_FILES} >= {"engine.py", "rules.py", "content.py"}
    assert {p.name for p in STORAGE_FILES} >= {"store.py", "db.py", "models.py"}
    assert "transitions" in imported_roots(REPO / "dialogs" / "engine.py")
    assert "sqlalchemy" in imported_roots(REPO / "storage" / "store.py")


@pytest.mark.parametrize("path", DIALOGS_FILES, ids=lambda p: p.name)
def test_dialogs_import_no_adapter_or_database(path: Path) -> None:
    roots = imported_roots(path)
    assert not roots & {"telegram", "sqlalchemy", "storage", "bot"}, sorted(roots)
    allowed = set(sys.stdlib_module_names) | {"yaml", "transitions", "babel", "dialogs"}
    assert roots <= allowed, sorted(roots - allowed)


@pytest.mark.parametrize("path", STORAGE_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_storage_imports_no_adapter(path: Path) -> None:
    roots = imported_roots(path)
    assert not roots & {"telegram", "bot"}, sorted(roots)
