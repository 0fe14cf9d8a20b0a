"""The terminal chat through its real input and output, on a real SQLite database."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.services.flow import FlowService, Who
from bot.terminal import EMERGENCY_BANNER, TerminalChat, help_text, wrap
from dialogs.advice import AdviceBook
from dialogs.chat import chat_book, one_line
from dialogs.countries import EmergencyNumbers
from dialogs.engine import Flow
from dialogs.records import CANCELLED, CONCLUDED
from storage import Store
from tests.cases import CLASSIC_CRAMP, NO_RED_FLAGS
from tests.walker import Plan, Walk, walk

REPO = Path(__file__).resolve().parents[1]
FIXED = datetime(2025, 3, 1, 3, 15, tzinfo=UTC)
FLOW = Flow.load("triage")
BOOK = AdviceBook.load()
WHO = Who("terminal", "tester")
CHAT_BOOK = chat_book()
HINT = CHAT_BOOK.text("typed", "terminal_in_question")
"""The kind reply to words typed inside a question (spec v3 item 10)."""
NUMBERS = EmergencyNumbers.load()
WIDE = 10_000
"""Columns for tests that match whole texts: nothing wraps."""
CRAMP_FACTS = {**NO_RED_FLAGS, **CLASSIC_CRAMP, "both_legs": False, "pregnant": False}
CRAMP_WALK = walk(FLOW, CRAMP_FACTS)


def number_of(question_id: str, option_id: str) -> str:
    question = FLOW.content.question(question_id)
    assert question is not None
    return str([o.id for o in question.options].index(option_id) + 1)


NONE = number_of("emergency_signs", "none")
"""What a person types for "None of these" on the safety screen."""


def number_lines(plan: Plan) -> list[str]:
    """What a person types to give `plan` by numbers (of the options shown to them)."""
    numbers = {o: str(i) for i, o in enumerate(plan.offered, start=1)}
    lines = [numbers[o] for o in plan.option_ids]
    return [*lines, str(len(plan.offered) + 1)] if plan.ticks else lines


def label_lines(plan: Plan) -> list[str]:
    """What a person types to give `plan` by the options' words (in any case)."""
    question = FLOW.content.question(plan.question_id)
    assert question is not None
    labels = [question.option(o).label.upper() for o in plan.option_ids]  # type: ignore[union-attr]
    return [*labels, str(question.done_label).lower()] if plan.ticks else labels


def by_numbers(result: Walk) -> list[str]:
    return [line for plan in result.plans for line in number_lines(plan)]


def conclusion_text(result: Walk, country: str | None = None) -> str:
    assert result.outcome.conclusion is not None
    return BOOK.advise(
        result.outcome.conclusion,
        result.outcome.findings,
        emergency_number=NUMBERS.number(country),
        urgent_care=NUMBERS.urgent_care(country),
    ).as_text()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(f"sqlite:///{tmp_path}/t.db", clock=lambda: FIXED)
    yield store
    store.dispose()


@pytest.fixture
def service(store: Store) -> FlowService:
    return FlowService(
        store,
        FLOW,
        BOOK,
        clock=lambda: FIXED,
        emergency_number=NUMBERS.number,
        urgent_care=NUMBERS.urgent_care,
    )


def chat(
    service: FlowService,
    lines: list[str],
    *,
    locale: str | None = None,
    width: int = WIDE,
    country: str | None = "",
) -> str:
    """Run the chat on `lines`; a new person first answers the country question with
    `country` (Enter: the locale's suggestion, or none; None: `lines` answer it)."""
    asked = (found := service.find_user(WHO)) is not None and found.country_asked_at is not None
    first = [] if asked or country is None else [country]
    out = io.StringIO()
    code = TerminalChat(
        service,
        lines=iter([*first, *lines]),
        out=out,
        who=WHO,
        numbers=NUMBERS,
        locale=locale,
        width=width,
    ).run()
    assert code == 0
    return out.getvalue()


def latest(service: FlowService):  # type: ignore[no-untyped-def]
    with service.store.transaction() as repo:
        user = repo.user(WHO.channel, WHO.external_id)
        found = repo.latest_conversation(user.id, FLOW.name)
    assert found is not None
    return found[1]


def transcript(service: FlowService) -> list[tuple[str, str]]:
    with service.store.transaction() as repo:
        user = repo.user(WHO.channel, WHO.external_id)
        return [(m.direction, m.text) for m in repo.messages(user.id)]


def test_the_cramp_walk_is_a_self_care_conclusion() -> None:
    assert CRAMP_WALK.outcome.state == CONCLUDED
    assert CRAMP_WALK.outcome.conclusion is not None
    assert str(CRAMP_WALK.outcome.conclusion.pattern) == "leg_cramps"
    assert any(plan.ticks for plan in CRAMP_WALK.plans)


# --- Whole conversations -------------------------------------------------------------------------


def test_a_conversation_typed_by_numbers_ends_with_the_conclusion(
    service: FlowService,
) -> None:
    output = chat(service, by_numbers(CRAMP_WALK))
    assert conclusion_text(CRAMP_WALK) in output
    assert "[x]" in output  # ticks are shown
    assert output.rstrip().endswith("carry on or start anew.")
    assert HINT not in output
    state = latest(service)
    assert state.state == CONCLUDED
    assert [a.question_id for a in state.answers] == CRAMP_WALK.asked


def test_a_conversation_typed_by_labels_ends_with_the_conclusion(
    service: FlowService,
) -> None:
    lines = [line for plan in CRAMP_WALK.plans for line in label_lines(plan)]
    output = chat(service, lines)
    assert conclusion_text(CRAMP_WALK) in output
    assert HINT not in output
    assert latest(service).state == CONCLUDED


def test_an_emergency_answer_ends_at_once_with_the_emergency_banner(
    service: FlowService,
) -> None:
    facts = {**NO_RED_FLAGS, "calf_swelling_warm_red": True}
    result = walk(FLOW, facts)
    output = chat(service, by_numbers(result))
    assert f"{EMERGENCY_BANNER}\n{conclusion_text(result)}\n{EMERGENCY_BANNER}" in output
    assert "Get emergency help now" in output
    assert "Q2." not in output
    assert latest(service).state == "emergency"


# --- Commands ------------------------------------------------------------------------------------


def test_back_reopens_the_previous_question(service: FlowService) -> None:
    output = chat(service, [NONE, "back"])
    assert output.count("Q1. First, a quick safety check") == 2
    assert "Q2." in output
    state = latest(service)
    assert state.state == "emergency_signs"
    assert state.answers == []


def test_back_after_the_conclusion_reopens_the_last_question(service: FlowService) -> None:
    output = chat(service, [*by_numbers(CRAMP_WALK), "back"])
    last = FLOW.content.question(CRAMP_WALK.asked[-1])
    assert last is not None
    reopened = output.rindex(f"Q{len(CRAMP_WALK.asked)}. {last.text}")
    assert reopened > output.index(conclusion_text(CRAMP_WALK))
    assert latest(service).state == last.id


def test_cancel_ends_the_check_and_later_answers_get_a_hint(service: FlowService) -> None:
    output = chat(service, [NONE, "cancel", "1"])
    assert "Check cancelled." in output
    assert CHAT_BOOK.text("typed", "terminal_no_check") in output
    assert output.count("Q2.") == 1
    assert latest(service).state == CANCELLED


def test_help_shows_the_commands_and_keeps_the_question(service: FlowService) -> None:
    output = chat(service, ["help", NONE])
    assert help_text() in output
    assert "Q2." in output
    assert len(latest(service).answers) == 1


def test_check_starts_a_new_check_and_closes_the_open_one(service: FlowService) -> None:
    output = chat(service, [NONE, "2", "check"])
    assert output.count("Q1. First, a quick safety check") == 2
    with service.store.transaction() as repo:
        user = repo.user(WHO.channel, WHO.external_id)
        open_ = repo.open_conversation(user.id, FLOW.name)
        assert repo.user_row_counts(user.id)["conversations"] == 2
    assert open_ is not None
    assert open_[1].answers == []


def test_done_with_nothing_ticked_asks_for_a_tick(service: FlowService) -> None:
    output = chat(service, ["done"])
    assert "Tick at least one answer first" in output
    assert latest(service).state == "emergency_signs"


def test_quit_stops_reading_the_input(service: FlowService) -> None:
    output = chat(service, ["quit", NONE])
    assert "Q2." not in output
    assert latest(service).answers == []


# --- Anything typed gives a hint, never a traceback ------------------------------------------

GARBAGE = [
    pytest.param("", id="empty line"),
    pytest.param("   \t ", id="blank line"),
    pytest.param("banana", id="a word"),
    pytest.param("0", id="zero"),
    pytest.param("99", id="out of range"),
    pytest.param("-1", id="negative"),
    pytest.param("1.5", id="decimal"),
    pytest.param("1 2", id="two numbers"),
    pytest.param("x" * 10_000, id="10k characters"),
    pytest.param("9" * 10_000, id="10k digits"),
    pytest.param("🦵🌙😴", id="emoji"),
    pytest.param("Äpfel ß 腿 ساق", id="unicode words"),
    pytest.param("a\x00b\x1b[2J", id="control characters"),
    pytest.param("\udcff", id="lone surrogate"),
    pytest.param("'; DROP TABLE messages; --", id="sql"),
    pytest.param(
        "²",
        id="superscript two",
    ),
    pytest.param(
        "①",
        id="circled one",
    ),
]


@pytest.mark.parametrize("garbage", GARBAGE)
def test_anything_that_is_not_an_answer_gets_a_one_line_hint(
    service: FlowService, garbage: str
) -> None:
    output = chat(service, [garbage])
    assert output.count(HINT) == 1
    assert "\n" not in HINT
    assert "Traceback" not in output
    state = latest(service)
    assert state.state == "emergency_signs"
    assert state.answers == []
    assert state.pending == ()


@pytest.mark.parametrize("garbage", ["", "banana", "🦵", "x" * 10_000])
def test_garbage_on_a_single_answer_question_keeps_it_open(
    service: FlowService, garbage: str
) -> None:
    to_about_you = [
        NONE,
        number_of("feeling", "none"),
        number_of("where", "unsure"),
        number_of("timing", "none"),
        number_of("relief", "nothing"),
    ]
    output = chat(service, [*to_about_you, garbage, "1"])
    assert output.count(HINT) == 1
    assert "Q7." in output
    answered = [a.question_id for a in latest(service).answers]
    assert answered == ["emergency_signs", "feeling", "where", "timing", "relief", "about_you"]


# --- Resuming and the transcript ----------------------------------------------------------------


def test_a_conversation_quit_midway_resumes_at_the_same_question(
    service: FlowService,
) -> None:
    lines = by_numbers(CRAMP_WALK)
    three = sum(len(number_lines(plan)) for plan in CRAMP_WALK.plans[:3])
    first = chat(service, [*lines[:three], "quit"])
    assert "Q4." in first
    assert "Welcome back" not in first

    again = FlowService(service.store, Flow.load("triage"), BOOK, clock=lambda: FIXED)
    second = chat(again, lines[three:])
    assert "Welcome back" in second
    fourth = FLOW.content.question(CRAMP_WALK.asked[3])
    assert fourth is not None
    assert f"Q4. {fourth.text}" in second
    assert "Q1." not in second
    assert conclusion_text(CRAMP_WALK) in second


def test_ticks_survive_quitting_and_show_on_return(service: FlowService) -> None:
    chat(service, ["1", "quit"])
    second = chat(service, [])
    assert "Welcome back" in second
    assert "[x] Chest pain or breathless" in second


def test_the_transcript_holds_the_inputs_and_questions_in_order(
    service: FlowService,
) -> None:
    lines = by_numbers(CRAMP_WALK)
    chat(service, lines)
    expected: list[tuple[str, str]] = []
    for n, plan in enumerate(CRAMP_WALK.plans, start=1):
        question = FLOW.content.question(plan.question_id)
        assert question is not None
        expected.append(("out", f"Q{n}. {question.text}"))
        expected += [("in", line) for line in number_lines(plan)]
    messages = transcript(service)
    questions_and_inputs = [
        (d, text.split("\n\n  1. ")[0] if d == "out" else text)
        for d, text in messages
        if d == "in" or text.startswith("Q")
    ]
    assert questions_and_inputs[-len(expected) :] == expected
    assert [t for d, t in messages if d == "in"][-len(lines) :] == lines


def test_the_transcript_holds_the_conclusion_the_bot_gave(service: FlowService) -> None:
    chat(service, by_numbers(CRAMP_WALK))
    outs = [text for direction, text in transcript(service) if direction == "out"]
    assert any(conclusion_text(CRAMP_WALK) in text for text in outs)


# --- python -m bot ------------------------------------------------------------------------------


def run_bot(tmp_path: Path, stdin: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TELEGRAM_") and k not in {"DATABASE_URL", "LOG_LEVEL"}
    }
    clean |= {"PYTHONPATH": str(REPO), "PYTHONIOENCODING": "utf-8", **env}
    return subprocess.run(
        [sys.executable, "-m", "bot"],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=tmp_path,
        env=clean,
        timeout=120,
        check=False,
    )


def words(text: str) -> str:
    return " ".join(text.split())


def test_python_m_bot_without_a_token_runs_the_terminal_triage(tmp_path: Path) -> None:
    done = run_bot(
        tmp_path,
        "\n".join(["", *by_numbers(CRAMP_WALK)]) + "\n",  # Enter: the locale's country
        TELEGRAM_BOT_TOKEN="",
        DATABASE_URL=f"sqlite:///{tmp_path}/x.db",
        LANG="en_GB.UTF-8",
        LC_ALL="",
        COLUMNS="72",
    )
    assert done.returncode == 0, done.stderr
    assert "No TELEGRAM_BOT_TOKEN" in done.stdout
    assert words(conclusion_text(CRAMP_WALK, "GB")) in words(done.stdout)
    body = done.stdout.split("\n", 1)[1]  # the line about the token is printed as it is
    assert max(len(line) for line in body.splitlines()) <= 72
    assert "Traceback" not in done.stderr
    assert (tmp_path / "x.db").exists()


def test_python_m_bot_refuses_a_bad_api_url_in_one_line(tmp_path: Path) -> None:
    done = run_bot(
        tmp_path,
        "",
        TELEGRAM_API_URL="notaurl",
        DATABASE_URL=f"sqlite:///{tmp_path}/x.db",
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "TELEGRAM_API_URL" in lines[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "x.db").exists()


# --- Spec v3: the country first, lines that wrap, typed words heard, a note for the doctor -------

URGENT_WALK = walk(
    FLOW,
    {
        **NO_RED_FLAGS,
        "foot_burning_ache": True,
        "worse_legs_raised": True,
        "dangling_relief": True,
        "loc_foot_toes": True,
        "age_over_50": True,
        "smoker": True,
    },
)


def test_the_urgent_walk_is_an_urgent_result() -> None:
    assert URGENT_WALK.outcome.conclusion is not None
    assert str(URGENT_WALK.outcome.conclusion.urgency) == "urgent"


def test_the_locale_suggests_the_country_and_enter_takes_it_before_the_first_question(
    service: FlowService,
) -> None:
    output = chat(service, by_numbers(URGENT_WALK), locale="en_GB.UTF-8")
    uk = NUMBERS.countries["GB"]
    asked = output.index(CHAT_BOOK.text("terminal", "country"))
    assert CHAT_BOOK.text("terminal", "country_suggested", country=uk.name) in output
    assert asked < output.index("Q1.")
    assert service.find_user(WHO).country == "GB"  # type: ignore[union-attr]
    result = conclusion_text(URGENT_WALK, "GB")
    assert result in output, "the first result names the UK's numbers"
    assert uk.number in result and "111" in result
    assert "911" not in result and "000" not in result


@pytest.mark.parametrize(
    ("typed", "country"), [("Germany", "DE"), ("uk", "GB"), ("skip", None), ("no", None)]
)
def test_a_country_can_be_typed_by_name_or_skipped(
    service: FlowService, typed: str, country: str | None
) -> None:
    output = chat(service, [], locale="C.UTF-8", country=typed)
    user = service.find_user(WHO)
    assert user is not None and user.country == country
    assert user.country_asked_at is not None
    assert "Q1." in output
    again = chat(service, ["quit"])
    assert CHAT_BOOK.text("terminal", "country") not in again, "asked only once"


def test_an_unknown_country_is_asked_again_and_danger_is_read_first(
    service: FlowService,
) -> None:
    output = chat(service, ["Narnia", "chest pain", "Ireland"], country=None)
    assert CHAT_BOOK.text("terminal", "country_unknown") in output
    assert EMERGENCY_BANNER in output and "Get emergency help now" in output
    assert service.find_user(WHO).country == "IE"  # type: ignore[union-attr]
    assert output.index(EMERGENCY_BANNER) < output.index("Q1.")


def test_long_lines_wrap_at_spaces_and_never_inside_a_word(service: FlowService) -> None:
    output = chat(service, by_numbers(CRAMP_WALK), width=40)
    lines = output.splitlines()
    assert max(len(line) for line in lines) <= 40
    # every word the bot said is whole on some line (the long ones too)
    for word in conclusion_text(CRAMP_WALK).split():
        assert any(word in line.split() for line in lines), word
    assert words(conclusion_text(CRAMP_WALK)) in words(output)


def test_wrap_hangs_bullets_and_keeps_a_word_longer_than_the_line_whole() -> None:
    text = "• letting the foot hang down eases it " + "x" * 30
    wrapped = wrap(text, 20)
    assert wrapped.splitlines()[1].startswith("  ")
    assert "  " + "x" * 30 in wrapped.splitlines()
    assert "hang do\nwn" not in wrapped and "hang\ndown" not in wrapped.replace("  ", "")


def test_words_typed_inside_a_question_get_a_kind_reply_and_the_question_again(
    service: FlowService,
) -> None:
    output = chat(service, [NONE, "stopping and standing still helps, a bit"])
    assert output.count(HINT) == 1
    assert "note" in HINT and "doctor" in HINT
    assert output.count("Q2.") == 2, "the question is shown again"
    assert ("in", "stopping and standing still helps, a bit") in transcript(service)


def test_a_typed_question_after_a_result_gets_the_result_in_one_line_and_who_can_answer(
    service: FlowService,
) -> None:
    lines = [*by_numbers(URGENT_WALK), "", "can it wait till the GP opens?"]
    output = chat(service, lines, locale="en_GB")
    after = output[output.index(CHAT_BOOK.text("note", "terminal_prompt")) :]
    assert "can't answer typed questions" in after
    assert URGENT_WALK.outcome.conclusion is not None
    advice = BOOK.advise(URGENT_WALK.outcome.conclusion, URGENT_WALK.outcome.findings)
    assert one_line(advice) in after
    assert NUMBERS.urgent_care("GB") in after and "pharmacist" in after
    assert "Type 'check' to start" not in after


def test_text_with_no_check_open_gets_a_helpful_reply(service: FlowService) -> None:
    output = chat(service, [NONE, "cancel", "hello?"])
    reply = CHAT_BOOK.text("typed", "terminal_no_check")
    assert reply in output and "'check'" in reply


def test_a_note_typed_after_the_result_is_kept_with_it_and_in_the_transcript(
    service: FlowService,
) -> None:
    note = "Had a hip operation 9 days ago; flew back from Spain on Monday."
    output = chat(service, [*by_numbers(CRAMP_WALK), note])
    assert CHAT_BOOK.text("note", "terminal_prompt") in output
    assert CHAT_BOOK.text("note", "saved", note=note) in output
    assert latest(service).note == note
    assert ("in", note) in transcript(service)
    data = service.export(WHO)
    assert data is not None and data["conversations"][-1]["note"] == note


def test_enter_after_the_result_skips_the_note(service: FlowService) -> None:
    output = chat(service, [*by_numbers(CRAMP_WALK), "", "is it my back?"])
    assert CHAT_BOOK.text("note", "terminal_skipped") in output
    assert latest(service).note is None
    assert "can't answer typed questions" in output


def test_output_that_is_no_terminal_keeps_its_lines_whole(
    service: FlowService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    out = io.StringIO()
    TerminalChat(service, lines=iter([""]), out=out, who=WHO, numbers=NUMBERS).run()
    question = FLOW.content.questions[0].text
    assert question in out.getvalue(), "a file or pipe gets no line breaks of the bot's"
    monkeypatch.setenv("COLUMNS", "40")
    out = io.StringIO()
    TerminalChat(service, lines=iter([]), out=out, who=WHO, numbers=NUMBERS).run()
    assert max(len(line) for line in out.getvalue().splitlines()) <= 40
