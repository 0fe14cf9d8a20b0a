"""Typed danger in every language: a table of positive and negative examples per language
(`tests/danger_examples/<lang>.yaml`), read with the person's language."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dialogs import danger
from dialogs.i18n import LANGUAGES

EXAMPLES = Path(__file__).parent / "danger_examples"


def table(kind: str) -> list[tuple[str, str, object]]:
    rows = []
    for lang in LANGUAGES:
        path = EXAMPLES / f"{lang}.yaml"
        if not path.exists():
            continue
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        for entry in raw.get(kind, []):
            if kind == "names":
                rows.append((lang, entry["text"], tuple(entry["flags"])))
            else:
                rows.append((lang, entry, ()))
    return rows


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != "en"])
def test_every_language_has_its_phrases_and_examples(lang: str) -> None:
    assert danger.phrases_path(lang).exists()
    raw = yaml.safe_load((EXAMPLES / f"{lang}.yaml").read_text(encoding="utf-8"))
    assert len(raw["names"]) >= 20 and len(raw["not_danger"]) >= 10


@pytest.mark.parametrize(("lang", "text", "flags"), table("names"))
def test_typed_danger_is_read(lang: str, text: str, flags: tuple[str, ...]) -> None:
    read = danger.read(text, lang)
    assert set(flags) <= set(read), read


@pytest.mark.parametrize(("lang", "text", "flags"), table("not_danger"))
def test_negated_or_harmless_words_are_not_read(lang: str, text: str, flags: object) -> None:
    assert danger.read(text, lang) == ()
