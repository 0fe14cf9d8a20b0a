"""Emergency numbers, urgent-care lines and time zones by country, from
`dialogs/emergency_numbers.yaml`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from dialogs.content import DIALOGS_DIR, ContentError


@dataclass(frozen=True)
class Country:
    code: str
    name: str
    number: str
    zones: tuple[str, ...] = ()
    urgent_care: str | None = None
    """Spec v2 item 3: the out-of-hours or urgent-care line, where the country has one."""


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
                str(code).upper(): Country(
                    str(code).upper(),
                    str(c["name"]),
                    str(c["number"]),
                    tuple(str(z) for z in c.get("zones", ())),
                    str(c["urgent_care"]) if c.get("urgent_care") else None,
                )
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
        return cls(countries, suggestions, aliases)

    def number(self, country: str | None) -> str | None:
        found = self.countries.get((country or "").upper())
        return found.number if found else None

    def urgent_care(self, country: str | None) -> str | None:
        """The country's out-of-hours or urgent-care line, or None where it has none listed."""
        found = self.countries.get((country or "").upper())
        return found.urgent_care if found else None

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
