"""Rendering without a network: button data within Telegram's limits, messages under 4096
characters and valid HTML, and button keys that survive a round trip (or are refused)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.telegram import render as views
from bot.telegram.keys import (
    MAX_BYTES,
    MENU_ACTIONS,
    AnswerKey,
    DoneKey,
    Key,
    MenuKey,
    NavKey,
    decode,
    encode,
)
from dialogs.advice import AdviceBook
from dialogs.content import Question
from dialogs.countries import EmergencyNumbers
from dialogs.engine import Flow, Prompt
from dialogs.followups import FollowUpBook
from dialogs.records import AnswerRecord, Conclusion
from dialogs.vocabulary import FINDINGS, RED_FLAG_MINIMUM, RED_FLAGS, Pattern, Urgency
from tests.botapi_stub import MAX_CALLBACK_DATA_BYTES, MAX_MESSAGE_LENGTH, _HtmlParser

FLOW = Flow.load("triage")
BOOK = AdviceBook.load()
NUMBERS = EmergencyNumbers.load()
LONGEST_URGENT_CARE = max((c.urgent_care or "" for c in NUMBERS.countries.values()), key=len)
LARGE_IDS = [10**11, 10**12 - 1]
"""A large conversation id, and the largest the button keys accept (12 digits)."""


def plain_text(html: str) -> str:
    """What Telegram shows for `html` (raises like Telegram on malformed markup)."""
    text, _entities = _HtmlParser(html).parse()
    return text


def all_data(screen: views.Screen) -> list[str]:
    assert screen.markup is not None
    return [
        button.callback_data  # type: ignore[misc]
        for row in screen.markup.inline_keyboard
        for button in row
    ]


def prompts(question: Question) -> list[Prompt]:
    """The question fresh, and with every tick set and Back offered (the longest labels)."""
    ticked = frozenset(o.id for o in question.options if not o.exclusive)
    return [Prompt(question), Prompt(question, selected=ticked, number=9, can_go_back=True)]


def test_the_bot_keeps_to_telegrams_callback_data_limit() -> None:
    assert MAX_BYTES == MAX_CALLBACK_DATA_BYTES == 64


@pytest.mark.parametrize("conversation_id", LARGE_IDS)
@pytest.mark.parametrize("question", FLOW.content.questions, ids=lambda q: q.id)
def test_every_question_fits_telegram_for_a_large_conversation_id(
    question: Question, conversation_id: int
) -> None:
    for prompt in prompts(question):
        screen = views.question(prompt, conversation_id)
        data = all_data(screen)
        for item in data:
            assert len(item.encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES, item
            key = decode(item)
            assert key is not None, item
            assert encode(key) == item
            assert getattr(key, "conversation_id", None) == conversation_id
        assert len(set(data)) == len(data), "two buttons with the same data"
        answers = [decode(d) for d in data if isinstance(decode(d), AnswerKey)]
        assert {k.option_id for k in answers} == {o.id for o in question.options}  # type: ignore[union-attr]
        assert len(plain_text(screen.text)) <= MAX_MESSAGE_LENGTH


@pytest.mark.parametrize("question", [q for q in FLOW.content.questions if q.multi])
def test_a_tick_button_sets_the_opposite_of_what_it_shows(question: Question) -> None:
    some = next(o for o in question.options if not o.exclusive)
    screen = views.question(Prompt(question, selected=frozenset({some.id})), 7)
    assert screen.markup is not None
    for button in itertools.chain.from_iterable(screen.markup.inline_keyboard):
        key = decode(button.callback_data)  # type: ignore[arg-type]
        if isinstance(key, AnswerKey) and key.tick is not None:
            shown_ticked = button.text.startswith(views.TICKED)
            assert button.text.startswith(views.TICKED if key.option_id == some.id else "▫️")
            assert key.tick is not shown_ticked


@pytest.mark.parametrize("urgency", list(Urgency))
@pytest.mark.parametrize("pattern", list(Pattern))
def test_every_outcome_fits_one_message_whole(pattern: Pattern, urgency: Urgency) -> None:
    # The longest advice there can be: every red flag the urgency allows (the rules never give
    # a red flag above its conclusion's urgency), every reason and note, a long number.
    flags = tuple(f for f in RED_FLAGS if RED_FLAG_MINIMUM[f] <= urgency)
    conclusion = Conclusion(pattern, urgency, red_flags=flags, reasons=(*flags, *map(str, Pattern)))
    longest_number = max((c.number for c in NUMBERS.countries.values()), key=len)
    for findings, number in (({f: True for f in FINDINGS}, longest_number), ({}, None)):
        advice = BOOK.advise(
            conclusion, findings, emergency_number=number, urgent_care=LONGEST_URGENT_CARE
        )
        screen = views.outcome(advice, LARGE_IDS[-1])
        assert len(screen.text) <= MAX_MESSAGE_LENGTH
        assert not screen.text.endswith("\n…"), "the advice was cut to fit"
        shown = plain_text(screen.text)
        assert shown.startswith(advice.headline)
        assert advice.not_a_diagnosis in shown
        for item in all_data(screen):
            assert len(item.encode()) <= MAX_CALLBACK_DATA_BYTES
            assert decode(item) is not None


def test_fixed_screens_are_valid_html_with_valid_buttons() -> None:
    countries = sorted(NUMBERS.countries.values(), key=lambda c: c.name)
    screens = [
        views.INTRO,
        views.DECLINED,
        views.WELCOME_BACK,
        views.HELP,
        views.delete_confirm(),
        views.country_question(countries[0], reason="Which <country>?"),
        views.country_list(countries),
        views.settings_screen(None),
        views.settings_screen(countries[-1]),
        views.intro(countries[0]),
        views.intro_countries(countries),
        views.note_prompt(LARGE_IDS[-1]),
        views.typed_after_result("⚠️ <Result> & more", "NHS 111 & a pharmacist", LARGE_IDS[-1]),
        views.typed_no_check(),
    ]
    for screen in screens:
        assert 0 < len(plain_text(screen.text)) <= MAX_MESSAGE_LENGTH
        if screen.markup is not None:
            for item in all_data(screen):
                assert isinstance(decode(item), MenuKey), item
    assert "&lt;country&gt;" in screens[5].text
    assert "&lt;Result&gt; &amp; more" in screens[-2].text


@pytest.mark.parametrize("urgency", list(Urgency))
def test_a_result_with_its_offer_and_many_answers_still_fits_and_keeps_the_advice_whole(
    urgency: Urgency,
) -> None:
    flags = tuple(f for f in RED_FLAGS if RED_FLAG_MINIMUM[f] <= urgency)
    conclusion = Conclusion(Pattern.UNCLEAR, urgency, red_flags=flags, reasons=flags)
    advice = BOOK.advise(conclusion, {f: True for f in FINDINGS}, urgent_care=LONGEST_URGENT_CARE)
    offered = FollowUpBook.load().offer(urgency)  # urgent and soon results carry an offer
    offer = views.Extra(offered.text if offered else "", ())
    few = ["☑️ A question? <b>An answer</b>"] * 3
    many = ["☑️ A question that is long enough? <b>An answer, and another</b>"] * 120
    for answers in (few, many):
        extras = (offer,) if offer.text else ()
        screen = views.outcome(advice, LARGE_IDS[-1], extras=extras, answers=answers)
        assert len(screen.text) <= MAX_MESSAGE_LENGTH
        shown = plain_text(screen.text)
        assert shown.startswith(advice.headline) and advice.not_a_diagnosis in shown
        assert shown.rstrip().endswith(offer.text.strip()), "the offer (if any) is the last line"
        folded = "An answer" in shown
        if answers is many:
            assert not folded, "answers that do not fit are left out, the advice kept whole"
        else:  # in, unless the advice with its offer is itself near the limit
            assert folded or len(screen.text) + 120 > MAX_MESSAGE_LENGTH
        for item in all_data(screen):
            assert decode(item) is not None


# --- keys --------------------------------------------------------------------------------------

ids = st.from_regex(r"[a-z][a-z0-9_]{0,23}", fullmatch=True)
conversation_ids = st.integers(min_value=0, max_value=10**12 - 1)
keys: st.SearchStrategy[Key] = st.one_of(
    st.builds(AnswerKey, conversation_ids, ids, ids, st.none() | st.booleans()),
    st.builds(DoneKey, conversation_ids, ids),
    st.builds(NavKey, st.sampled_from(["back", "cancel"]), conversation_ids),
    st.builds(
        MenuKey,
        st.sampled_from(sorted(MENU_ACTIONS)),
        st.just("") | st.from_regex(r"[A-Za-z0-9_]{1,16}", fullmatch=True),
    ),
)


@given(keys)
def test_decode_inverts_encode(key: Key) -> None:
    try:
        data = encode(key)
    except ValueError as exc:  # only refused when Telegram would refuse it
        assert f"over {MAX_BYTES} bytes" in str(exc)
        return
    assert len(data.encode()) <= MAX_BYTES
    assert decode(data) == key


@given(st.text())
def test_decode_of_any_text_never_raises(data: str) -> None:
    key = decode(data)
    if key is not None:
        assert decode(encode(key)) == key


@given(keys, st.text(max_size=3))
def test_decode_of_mangled_data_never_raises(key: Key, junk: str) -> None:
    try:
        data = encode(key)
    except ValueError:
        return
    for mangled in (data + junk, junk + data, data[: len(data) // 2], data.upper()):
        decode(mangled)


def test_decode_of_a_lone_surrogate_is_refused_not_raised() -> None:
    assert decode("\ud800") is None
    assert decode("a:1:feeling:knot\udfff") is None


def test_decode_accepts_only_ascii_digits_as_ids() -> None:
    # A forged key with other Unicode digits is no key at all, not another conversation.
    for data in ("a:\u0663:feeling:knot", "back:\uff11", "d:\u0661\u0662:feeling"):
        key = decode(data)
        assert key is None or encode(key) == data, (data, key)


def _record(question_id: str, *option_ids: str) -> AnswerRecord:
    return AnswerRecord(question_id, option_ids, datetime(2026, 11, 30, 2, 0, tzinfo=UTC))


def test_the_living_message_shows_the_answers_above_the_open_question() -> None:
    first, second = FLOW.content.questions[:2]
    answers = (_record(first.id, first.options[0].id),)
    lines = views.answer_lines(FLOW.content, answers)
    screen = views.living(lines, views.question(Prompt(second), 1))
    text = _HtmlParser(screen.text).parse()[0]
    assert text.index(first.options[0].label) < text.index(second.text)
    assert screen.markup is not None and screen.markup.inline_keyboard


def test_the_living_message_drops_the_oldest_answers_rather_than_overflow() -> None:
    question = FLOW.content.questions[1]
    lines = [f"☑️ line {n} " + "x" * 300 for n in range(40)]
    screen = views.living(lines, views.question(Prompt(question), 1))
    assert len(screen.text) <= MAX_MESSAGE_LENGTH
    assert "line 39" in screen.text and "line 0 " not in screen.text
