"""The language of an export: whose words (`dialogs/documents.yaml`) and how dates are written.

An export is in the person's language: the one they chose (the export's `user.language`),
else their app's (`user.language_code`), as `storage.UserInfo.lang` picks it. Ids and codes
stay language-neutral; dates, times and numbers follow the language (CLDR through Babel).
English keeps the formats it always had ("22 Oct 2026", "2026-10-22 03:05").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from functools import cache
from typing import Any

import yaml
from babel.dates import format_skeleton
from babel.numbers import format_decimal

from dialogs.content import DIALOGS_DIR
from dialogs.i18n import CLDR, LANGUAGES, SOURCE, clock, localize, pick
from dialogs.texts import texts
from dialogs.words import Words

FHIR_LANGUAGE: Mapping[str, str] = {"en": "en", "de": "de", "es": "es", "pt": "pt-BR", "ru": "ru"}
"""Each language as a BCP-47 code for FHIR's `language` (nightlegs' Portuguese is Brazil's)."""


def lang_of(data: Mapping[str, Any]) -> str:
    """The language an export is written in, from its `user` record."""
    user = data.get("user") or {}
    chosen = user.get("language")
    return chosen if chosen in LANGUAGES else pick(user.get("language_code"))


def documents(lang: str) -> Words:
    """The export's words in `lang`."""
    return texts(lang).documents


@cache
def _advice_source() -> dict[str, Any]:
    return yaml.safe_load((DIALOGS_DIR / "advice.yaml").read_text(encoding="utf-8"))


@cache
def _advice(lang: str) -> dict[str, Any]:
    """advice.yaml in `lang`: the patterns' names and urgencies' headlines the person read."""
    return localize(_advice_source(), lang)


def pattern_words(pattern: str, lang: str) -> str:
    """A conclusion's pattern in plain words, from advice.yaml ("A night leg cramp")."""
    words = _advice(lang)["patterns"][pattern]["name"].strip()
    return words[:1].upper() + words[1:]


def urgency_words(urgency: str, lang: str) -> str:
    """A conclusion's urgency as its advice.yaml headline, without the symbol and full stop."""
    headline = _advice(lang)["urgency"][urgency]["headline"]
    return re.sub(r"^\W+", "", headline).strip().rstrip(".")


def long_day(day: date, lang: str) -> str:
    """A date with its year: "22 Oct 2026", "22. Okt. 2026"."""
    if lang == SOURCE:
        return f"{day.day} {day:%b %Y}"
    return format_skeleton("yMMMd", day, locale=CLDR[lang])


def short_day(day: date, lang: str) -> str:
    """A date without its year, for the chart's axis: "22 Oct", "22. Okt."."""
    if lang == SOURCE:
        return f"{day.day} {day:%b}"
    return format_skeleton("MMMd", day, locale=CLDR[lang])


def stamp(moment: datetime, lang: str) -> str:
    """A local date and time for the transcript: "2026-10-22 03:05", "22.10.2026 03:05"."""
    if lang == SOURCE:
        return f"{moment:%Y-%m-%d %H:%M}"
    return f"{format_skeleton('yMd', moment, locale=CLDR[lang])} {clock(moment.time(), lang)}"


def decimal(value: float, lang: str) -> str:
    """A number with one decimal: "1.5", "1,5"."""
    if lang == SOURCE:
        return f"{value:.1f}"
    return format_decimal(value, "0.0", locale=CLDR[lang])


__all__ = [
    "FHIR_LANGUAGE",
    "decimal",
    "documents",
    "lang_of",
    "long_day",
    "pattern_words",
    "short_day",
    "stamp",
    "urgency_words",
]
