"""Emergency numbers, urgent-care lines and time zones by country, from
`dialogs/emergency_numbers.yaml`, written in each person's language.

A number is written as its country writes it; the words around it ("144 (or 112)",
"healthdirect on 1800 022 222", a note such as "health advice line") come from screens.yaml
(`numbers`), so they are translated like every other text. Country names are CLDR's.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dialogs.content import DIALOGS_DIR, ContentError
from dialogs.i18n import SOURCE, country_name
from dialogs.words import words


@dataclass(frozen=True)
class Line:
    """An out-of-hours or advice line: its number (or the service as it is called, "NHS 111"),
    with the service's name as its country writes it, or a translated note (an id)."""

    line: str
    name: str | None = None
    note: str | None = None

    def text(self, lang: str = SOURCE) -> str:
        numbers = words("screens", lang)
        if self.name:
            return numbers.text("numbers", "named", name=self.name, line=self.line)
        if self.note:
            note = numbers.text("numbers", "notes", self.note)
            return numbers.text("numbers", "noted", line=self.line, note=note)
        return self.line


@dataclass(frozen=True)
class Country:
    code: str
    name: str
    """The English name (CLDR's, as the YAML writes it); `name_in` gives it in a language."""
    dial: str
    """The emergency number to call, as written ("144")."""
    zones: tuple[str, ...] = ()
    line: Line | None = None
    """Spec v2 item 3: the out-of-hours or urgent-care line, where the country has one."""
    also: str | None = None
    """Another emergency number that works too ("112")."""

    def name_in(self, lang: str = SOURCE) -> str:
        return country_name(self.code, lang)

    def number_in(self, lang: str = SOURCE) -> str:
        """The emergency number as the language writes it: "144 (oder 112)"."""
        if self.also is None:
            return self.dial
        return words("screens", lang).text("numbers", "also", number=self.dial, also=self.also)

    def urgent_care_in(self, lang: str = SOURCE) -> str | None:
        return self.line.text(lang) if self.line is not None else None

    @property
    def number(self) -> str:
        """The emergency number in English ("144 (or 112)")."""
        return self.number_in(SOURCE)

    @property
    def urgent_care(self) -> str | None:
        """The out-of-hours line in English, or None where the country has none listed."""
        return self.urgent_care_in(SOURCE)


def _line(raw: Any) -> Line | None:
    if not raw:
        return None
    if isinstance(raw, Mapping):
        name, note = raw.get("name"), raw.get("note")
        return Line(str(raw["line"]), str(name) if name else None, str(note) if note else None)
    return Line(str(raw))


def _country(code: str, raw: Mapping[str, Any]) -> Country:
    return Country(
        code,
        str(raw["name"]),
        str(raw["number"]),
        tuple(str(z) for z in raw.get("zones", ())),
        _line(raw.get("urgent_care")),
        str(raw["also"]) if raw.get("also") else None,
    )


class EmergencyNumbers:
    """Look up a country's number; unknown countries get None (the advice then lists several)."""

    def __init__(
        self,
        countries: dict[str, Country],
        suggestions: dict[str, str],
        aliases: dict[str, str] | None = None,
    ) -> None:
        self.countries = countries
        self._suggestions = suggestions
        self._aliases = aliases or {}

    @classmethod
    def load(cls, path: Path = DIALOGS_DIR / "emergency_numbers.yaml") -> EmergencyNumbers:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            countries = {
                str(code).upper(): _country(str(code).upper(), c)
                for code, c in raw["countries"].items()
            }
            suggestions = {
                str(lang).lower(): str(code).upper()
                for lang, code in raw.get("suggest_from_language", {}).items()
            }
            aliases = {
                " ".join(str(name).lower().split()): str(code).upper()
                for name, code in (raw.get("aliases") or {}).items()
            }
        except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
            raise ContentError(f"{path.name}: malformed: {exc!r}") from exc
        bad = sorted(code for code in countries if len(code) != 2 or not code.isalpha())
        if bad:  # e.g. an unquoted NO (Norway) that YAML reads as false
            raise ContentError(f"{path.name}: country codes must be two letters: {bad}")
        unknown = sorted(set(suggestions.values()) - set(countries))
        if unknown:
            raise ContentError(f"{path.name}: suggestions name unlisted countries {unknown}")
        unknown = sorted(set(aliases.values()) - set(countries))
        if unknown:
            raise ContentError(f"{path.name}: aliases name unlisted countries {unknown}")
        notes = words("screens").section("numbers", "notes")
        noted = {c.code: c.line.note for c in countries.values() if c.line and c.line.note}
        unknown = sorted(code for code, note in noted.items() if note not in notes)
        if unknown:
            raise ContentError(f"{path.name}: notes not in screens.yaml (numbers.notes): {unknown}")
        return cls(countries, suggestions, aliases)

    def number(self, country: str | None, lang: str = SOURCE) -> str | None:
        """The country's emergency number as `lang` writes it, or None when it is unknown."""
        found = self.countries.get((country or "").upper())
        return found.number_in(lang) if found else None

    def urgent_care(self, country: str | None, lang: str = SOURCE) -> str | None:
        """The country's out-of-hours or urgent-care line (in `lang`), or None where it has
        none listed."""
        found = self.countries.get((country or "").upper())
        return found.urgent_care_in(lang) if found else None

    def by_name(self, lang: str = SOURCE) -> list[Country]:
        """Every country, in the alphabetical order of their names in `lang`."""
        return sorted(self.countries.values(), key=lambda c: _collation(c.name_in(lang)))

    def zones(self, country: str | None) -> tuple[str, ...]:
        """The country's IANA time zones, the main one first; empty when unknown."""
        found = self.countries.get((country or "").upper())
        return found.zones if found else ()

    def find(self, typed: str) -> Country | None:
        """The country a person typed: its name, its two-letter code or a common other name
        ("UK", "England"), in any case; None if it is not listed."""
        words = " ".join(typed.lower().replace(".", " ").split())
        if not words:
            return None
        for country in self.countries.values():
            if words in (country.name.lower(), country.code.lower()):
                return country
        code = self._aliases.get(words)
        return self.countries.get(code) if code else None

    def suggest_from_locale(self, locale: str | None) -> Country | None:
        """A country to offer for a POSIX locale such as "en_GB.UTF-8" (LC_ALL or LANG)."""
        if not locale:
            return None
        tag = locale.split(".")[0].split("@")[0]
        if tag.upper() in ("C", "POSIX"):
            return None
        return self.suggest(tag)

    def suggest(self, language_code: str | None) -> Country | None:
        """A country to offer for a Telegram `language_code` such as "de" or "en-GB"."""
        if not language_code:
            return None
        tag = language_code.lower().replace("_", "-")
        code = self._suggestions.get(tag) or self._suggestions.get(tag.split("-")[0])
        return self.countries.get(code) if code else None


def _collation(name: str) -> str:
    """A sort key that puts "Österreich" with the O's (accents aside)."""
    return "".join(
        ch for ch in unicodedata.normalize("NFKD", name.casefold()) if not unicodedata.combining(ch)
    )
