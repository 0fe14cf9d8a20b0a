"""dialogs/chat.yaml: the words around a check, checked at start-up like every content file."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from dialogs.advice import AdviceBook
from dialogs.chat import MAX_LABEL, ChatBook, chat_book, one_line
from dialogs.content import DIALOGS_DIR, ContentError
from dialogs.records import Conclusion
from dialogs.vocabulary import Pattern, Urgency

RAW: dict[str, Any] = yaml.safe_load((DIALOGS_DIR / "chat.yaml").read_text("utf-8"))


def broken(section: str, key: str, value: object) -> dict[str, Any]:
    raw = copy.deepcopy(RAW)
    raw[section][key] = value
    return raw


def test_the_bots_chat_words_load_and_fill_their_placeholders() -> None:
    book = chat_book()
    assert "Germany" in book.text("consent", "agree_in", country="Germany")
    assert "my words" in book.text("note", "saved", note="my words")
    text = book.text("typed", "after_result", result="R", who="W")
    assert "R" in text and "W" in text


@pytest.mark.parametrize(
    ("section", "key", "value", "says"),
    [
        ("note", "saved", "Kept: {words}", "unknown placeholders ['words']"),
        ("note", "prompt", "", "a text is required"),
        ("note", "button", "x" * (MAX_LABEL + 1), "button label"),
        ("typed", "no_check", "Hello {", "broken braces"),
        ("typed", "surprise", "Hello", "unknown keys ['surprise']"),
    ],
)
def test_a_mistake_is_named_with_its_place(section: str, key: str, value: str, says: str) -> None:
    with pytest.raises(ContentError) as error:
        ChatBook.from_dict(broken(section, key, value))
    assert f"chat.yaml: {section}" in str(error.value) and says in str(error.value)


def test_a_missing_section_is_named() -> None:
    raw = copy.deepcopy(RAW)
    del raw["terminal"]
    with pytest.raises(ContentError, match="section 'terminal' is missing"):
        ChatBook.from_dict(raw)


def test_a_result_in_one_line_is_its_headline_and_first_danger_or_pattern() -> None:
    book = AdviceBook.load()
    cramp = book.advise(Conclusion(Pattern.LEG_CRAMPS, Urgency.SELF_CARE), {})
    line = one_line(cramp)
    assert line.startswith(cramp.headline) and "\n" not in line
    assert cramp.pattern_name.lower() in line.lower()
    flagged = book.advise(
        Conclusion(Pattern.PAD_REST_PAIN, Urgency.URGENT, ("dangling_relief",)), {}
    )
    assert flagged.red_flag_blocks
    assert one_line(flagged).endswith(flagged.red_flag_blocks[0].title)
