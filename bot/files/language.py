"""The language of an export: whose words (`dialogs/documents.yaml`) and how dates are written.

An export is in the person's language: the one they chose (the export's `user.language`),
else their app's (`user.language_code`), as `storage.UserInfo.lang` picks it. Ids and codes
stay language-neutral; dates, times and numbers follow the language (CLDR through Babel).
English keeps the formats it always had ("22 Oct 2026", "2026-10-22 03:05").
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from babel.dates import format_skeleton
from babel.numbers import format_decimal

from dialogs.i18n import CLDR, LANGUAGES, SOURCE, clock, pick
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
    "short_day",
    "stamp",
]
