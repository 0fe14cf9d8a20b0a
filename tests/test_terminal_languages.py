"""The terminal chat in the person's language (issue 17): `python -m bot --lang`, else the
locale; everything printed and every word typed in that language, English words still typed.

Tests that need a language's translations are expected to fail while its catalog is empty
(`dialogs.i18n.translations(lang)` has no entries); those that need its typed danger phrases,
while `dialogs/danger_phrases.<lang>.yaml` is missing.
"""

from __future__ import annotations

import getpass
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.services.flow import FlowService, Who
from bot.terminal import (
    COMMANDS,
    EMERGENCY_BANNER,
    TerminalChat,
    commands,
    help_text,
    language_of,
)
from dialogs import danger
from dialogs.advice import Advice
from dialogs.engine import Prompt
from dialogs.i18n import LANGUAGES, SOURCE
from dialogs.texts import texts
from storage import Store
from tests.test_terminal import (
    BOOK,
    CRAMP_WALK,
    FIXED,
    FLOW,
    NONE,
    NUMBERS,
    REPO,
    WIDE,
    by_numbers,
)
from tests.walker import Walk

OTHERS = tuple(lang for lang in LANGUAGES if lang != SOURCE)
WHO = Who("terminal", "polyglot")


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
    lang: str | None,
    locale: str | None = None,
    country: str | None = "",
) -> str:
    """Run the chat in `lang`; a new person first answers the country question with
    `country` (Enter: the locale's suggestion, or none; None: `lines` answer it)."""
    asked = (found := service.find_user(WHO)) is not None and found.country_asked_at is not None
    first = [] if asked or country is None else [country]
    out = io.StringIO()
    chat = TerminalChat(
        service,
        lines=iter([*first, *lines]),
        out=out,
        who=WHO,
        numbers=NUMBERS,
        locale=locale,
        width=WIDE,
        lang=lang,
    )
    assert chat.run() == 0
    return out.getvalue()


def advice_for(result: Walk, lang: str, country: str | None) -> Advice:
    """The result of a check in `lang`, as FlowService gives it."""
    assert result.outcome.conclusion is not None
    return texts(lang).advice.advise(
        result.outcome.conclusion,
        result.outcome.findings,
        emergency_number=NUMBERS.number(country),
        urgent_care=NUMBERS.urgent_care(country),
    )


def questions_and_result(result: Walk, lang: str, country: str | None) -> list[str]:
    """What a whole check shows in `lang`: each question with its number, then the result."""
    words = texts(lang)
    shown = [
        words.terminal.text(
            "question",
            "numbered",
            number=n,
            question=words.question("triage", plan.question_id).text,
        )
        for n, plan in enumerate(result.plans, start=1)
    ]
    return [*shown, advice_for(result, lang, country).as_text()]


def test_a_localized_question_keeps_only_the_options_offered() -> None:
    """Numbers typed in another language must pick the answers shown (`Texts.localize`)."""
    step = FLOW.start(FIXED).step()
    assert isinstance(step, Prompt)
    fewer = replace(step, question=replace(step.question, options=step.question.options[1:]))
    for lang in OTHERS:
        localized = texts(lang).localize("triage", fewer)
        assert isinstance(localized, Prompt)
        assert [o.id for o in localized.question.options] == [o.id for o in fewer.question.options]


# --- python -m bot ------------------------------------------------------------------------------


def run_bot(tmp_path: Path, args: list[str], stdin: str, **env: str) -> str:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TELEGRAM_", "LC_")) and k not in {"DATABASE_URL", "LOG_LEVEL", "LANG"}
    }
    clean |= {
        "PYTHONPATH": str(REPO),
        "PYTHONIOENCODING": "utf-8",
        "TELEGRAM_BOT_TOKEN": "",
        "DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
        "COLUMNS": "",  # a pipe: lines are printed whole
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=tmp_path,
        env=clean,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def stored_language(tmp_path: Path) -> str | None:
    store = Store.open(f"sqlite:///{tmp_path}/x.db")
    try:
        with store.transaction() as repo:
            user = repo.find_user("terminal", getpass.getuser() or "local")
            assert user is not None
            return user.language
    finally:
        store.dispose()


def whole_check(tmp_path: Path, args: list[str], **env: str) -> str:
    """A cramp check typed by numbers, the country question answered with Enter."""
    return run_bot(tmp_path, args, "\n".join(["", *by_numbers(CRAMP_WALK)]) + "\n", **env)


def assert_all_in(lang: str, output: str, country: str | None) -> None:
    words = texts(lang).terminal
    named = commands(lang).named()
    english = texts(SOURCE).terminal
    assert words.text("startup", **named) in output
    assert words.text("intro") in output
    for text in questions_and_result(CRAMP_WALK, lang, country):
        assert text in output
    assert words.text("bye", "saved") in output
    # nothing of the English is left
    assert english.text("intro") not in output
    assert english.text("bye", "saved") not in output
    assert texts(SOURCE).chat.text("note", "terminal_prompt") not in output


def test_a_whole_check_with_lang_ru_is_in_russian(tmp_path: Path) -> None:
    output = whole_check(tmp_path, ["--lang", "ru"])
    assert_all_in("ru", output, None)
    assert texts("ru").chat.text("note", "terminal_prompt") in output
    assert stored_language(tmp_path) == "ru"


def test_a_whole_check_with_lang_de_in_the_environment_is_in_german(tmp_path: Path) -> None:
    output = whole_check(tmp_path, [], LANG="de_DE.UTF-8")
    assert_all_in("de", output, "DE")
    saved = texts("de").chat.text(
        "terminal", "country_saved", country="Deutschland", number=NUMBERS.number("DE") or ""
    )
    assert saved in output
    assert stored_language(tmp_path) == "de"


def test_lang_beats_the_environment(tmp_path: Path) -> None:
    output = run_bot(tmp_path, ["--lang", "ru"], "\nquit\n", LC_ALL="de_DE.UTF-8")
    assert stored_language(tmp_path) == "ru"
    assert texts("ru").terminal.text("startup", **commands("ru").named()) in output
    russian_question = texts("ru").question("triage", FLOW.content.questions[0].id).text
    assert russian_question in output


def test_the_environment_sets_the_language_without_lang(tmp_path: Path) -> None:
    run_bot(tmp_path, [], "\nquit\n", LANG="es_ES.UTF-8")
    assert stored_language(tmp_path) == "es"


def test_help_names_the_option(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert "--lang" in done.stdout
    for lang in LANGUAGES:
        assert lang in done.stdout
    assert "LANG" in done.stdout


@pytest.mark.parametrize(
    ("environ", "lang"),
    [
        ({}, "en"),
        ({"LANG": "C.UTF-8"}, "en"),
        ({"LANG": "fr_FR.UTF-8"}, "en"),
        ({"LANG": "pt_BR.UTF-8"}, "pt"),
        ({"LANG": "ru_RU.UTF-8", "LC_MESSAGES": "de_AT.UTF-8"}, "de"),
        ({"LANG": "ru_RU.UTF-8", "LC_MESSAGES": "de_AT", "LC_ALL": "es_MX.UTF-8"}, "es"),
        ({"LANG": "de_DE.UTF-8", "LC_ALL": ""}, "de"),
    ],
)
def test_the_locale_is_read_as_posix_reads_it(environ: dict[str, str], lang: str) -> None:
    assert language_of(environ) == lang


# --- typed words ----------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", OTHERS)
def test_the_language_s_own_words_are_typed(service: FlowService, lang: str) -> None:
    own = commands(lang).first
    english = commands(SOURCE).first
    assert own["help"] != english["help"] and own["quit"] != english["quit"]
    output = chat(service, [own["help"], NONE, own["back"], own["quit"], NONE], lang=lang)
    assert help_text(lang) in output
    first = texts(lang).terminal.text(
        "question", "numbered", number=1, question=texts(lang).flow("triage").questions[0].text
    )
    assert output.count(first) == 2, "back reopened the first question"
    state = service.find_user(WHO)
    assert state is not None and state.language == lang
    assert texts(lang).terminal.text("bye", "saved") in output


@pytest.mark.parametrize("lang", LANGUAGES)
def test_english_words_work_in_every_language(service: FlowService, lang: str) -> None:
    output = chat(service, ["help", NONE, "back", "quit", NONE], lang=lang)
    assert help_text(lang) in output
    with service.store.transaction() as repo:
        user = repo.user(WHO.channel, WHO.external_id)
        found = repo.latest_conversation(user.id, FLOW.name)
    assert found is not None and found[1].answers == [], "back undid it; quit stopped reading"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_no_typed_word_means_two_commands(lang: str) -> None:
    words = commands(lang).words
    for a in COMMANDS:
        for b in COMMANDS:
            if a < b:
                assert not words[a] & words[b], (lang, a, b)


@pytest.mark.parametrize(
    ("lang", "typed", "code"),
    [("de", "Deutschland", "DE"), ("ru", "Германия", "DE"), ("es", "alemania", "DE")],
)
def test_a_country_is_typed_in_the_language(
    service: FlowService, lang: str, typed: str, code: str
) -> None:
    output = chat(service, [], lang=lang, country=typed)
    user = service.find_user(WHO)
    assert user is not None and user.country == code
    saved = texts(lang).chat.text(
        "terminal", "country_saved", country=texts(lang).country(code), number=NUMBERS.number(code)
    )
    assert saved in output


DANGER = [
    ("de", "Ich habe starke Schmerzen in der Brust"),
    ("ru", "сильная боль в груди"),
]


@pytest.mark.parametrize(("lang", "text"), DANGER)
def test_typed_danger_words_of_the_language_get_emergency_advice(
    service: FlowService, lang: str, text: str
) -> None:
    go_on = commands(lang).first["go_on"]
    output = chat(service, [NONE, text, go_on], lang=lang)
    flags = danger.read(text, lang)
    assert "chest_pain_or_breathless" in flags
    advice = texts(lang).advice.advise_typed(flags)
    assert f"{EMERGENCY_BANNER}\n{advice.as_text()}\n{EMERGENCY_BANNER}" in output
    assert texts(lang).terminal.text("resume", "carrying_on") in output
    with service.store.transaction() as repo:
        user = repo.user(WHO.channel, WHO.external_id)
        found = repo.latest_conversation(user.id, FLOW.name)
    assert found is not None and [a.question_id for a in found[1].answers] == ["emergency_signs"]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_english_danger_words_are_read_in_every_language(service: FlowService, lang: str) -> None:
    output = chat(service, [NONE, "chest pain", "go on"], lang=lang)
    advice = texts(lang).advice.advise_typed(danger.read("chest pain", lang))
    assert advice.as_text() in output
    assert texts(lang).terminal.text("resume", "carrying_on") in output


# --- the language is kept; English unchanged ------------------------------------------------------


def test_the_language_is_kept_and_a_later_run_without_one_speaks_it(
    service: FlowService,
) -> None:
    first = chat(service, [*by_numbers(CRAMP_WALK), ""], lang="pt")
    user = service.find_user(WHO)
    assert user is not None and user.language == "pt"
    assert advice_for(CRAMP_WALK, "pt", None).as_text() in first
    last = service.last_result(WHO)
    assert last is not None
    assert last[1].headline == advice_for(CRAMP_WALK, "pt", None).headline
    again = chat(service, ["quit"], lang=None)
    assert texts("pt").terminal.text("intro") in again


def test_english_is_unchanged(service: FlowService) -> None:
    assert help_text() == (
        "Commands: type the number of an answer (or its words), or\n"
        "  back    undo your last answer\n"
        "  cancel  stop this check\n"
        "  check   start a new check\n"
        "  help    show this help\n"
        "  quit    leave (your answers are saved; you can carry on later)"
    )
    output = chat(service, [*by_numbers(CRAMP_WALK), ""], lang="en")
    for text in questions_and_result(CRAMP_WALK, "en", None):
        assert text in output
    assert output.startswith("nightlegs: a quick check for legs that wake you at night.\n")
    assert "Q1. First, a quick safety check" in output
    assert "Type 'back' to change your last answer, 'check' to start again, or 'quit'." in output
    assert output.rstrip().endswith(
        "Bye. Your answers are saved; run nightlegs again to carry on or start anew."
    )
    user = service.find_user(WHO)
    assert user is not None and user.language == "en"
