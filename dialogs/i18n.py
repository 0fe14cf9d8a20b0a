"""Languages: which one a person gets, their catalogs, and the content YAML in each.

The English YAML is the source a clinician reads. Every text in it (any string that is not
an id) is a gettext message: `pybabel extract` collects them with `extract_yaml` (see
`babel.cfg`) into `dialogs/locales/nightlegs.pot`, translators fill one `.po` per language,
and `pybabel compile` makes the `.mo` files read here. The English text itself is the msgid,
so when a source line changes its old translation no longer matches: the tests find it
missing (and `pybabel update` keeps it as fuzzy, which is never compiled or shipped).

A text under `one:` and `other:` keys is a plural message (`ngettext`); Babel's CLDR rules
give each language its forms (Russian has three). Dates and times are CLDR's too.

Pure: no Telegram, no database.
"""

from __future__ import annotations

import gettext
import re
from collections.abc import Iterator, Mapping
from datetime import date, time
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from babel import Locale
from babel.dates import format_skeleton, format_time

DIALOGS_DIR = Path(__file__).resolve().parent
LOCALE_DIR = DIALOGS_DIR / "locales"
DOMAIN = "nightlegs"
SOURCE = "en"
LANGUAGES: tuple[str, ...] = ("en", "de", "es", "pt", "ru")
"""The languages a person can have, English (the source) first."""
NAMES: Mapping[str, str] = {
    "en": "English",
    "de": "Deutsch",
    "es": "Español",
    "pt": "Português",
    "ru": "Русский",
}
"""Each language in its own words, for the language picker."""
CLDR: Mapping[str, str] = {"en": "en_GB", "de": "de", "es": "es", "pt": "pt_BR", "ru": "ru"}
"""The CLDR locale for dates, times and numbers: British English writes a 24-hour clock
and "Tue 8 Dec"; nightlegs' Portuguese is Brazil's, as Telegram's is."""
TRANSLATED_FILES: tuple[str, ...] = (
    "triage.yaml",
    "diary.yaml",
    "advice.yaml",
    "followup.yaml",
    "chat.yaml",
    "screens.yaml",
    "checkins.yaml",
    "terminal.yaml",
    "documents.yaml",
)
"""The content files whose texts are translated (`danger_phrases*.yaml` are per language,
and `emergency_numbers.yaml` holds names of services, which stay as each country writes them)."""

_ID = re.compile(r"[a-z0-9_.:+-]*")
"""What an id looks like: no capital, no space. Ids are never translated."""
PLURAL_KEYS = frozenset({"one", "other"})


def pick(code: str | None) -> str:
    """The language for a Telegram `language_code` or a POSIX locale ("pt-BR", "de_AT.UTF-8",
    "ru"), English for any other."""
    if not code:
        return SOURCE
    base = re.split(r"[-_.@]", code.strip().lower(), maxsplit=1)[0]
    return base if base in LANGUAGES else SOURCE


def is_text(value: object) -> bool:
    """Whether a YAML string is words a person reads (translated), not an id."""
    return isinstance(value, str) and bool(value.strip()) and not _ID.fullmatch(value)


def is_plural(value: object) -> bool:
    return (
        isinstance(value, dict)
        and set(value) == PLURAL_KEYS
        and all(is_text(v) for v in value.values())
    )


# --- extraction (pybabel extract) ---------------------------------------------------------


def texts_in(node: yaml.Node, path: str = "") -> Iterator[tuple[int, str, str | tuple[str, str]]]:
    """Every text in a composed YAML document: (line, where, msgid or (one, other))."""
    if isinstance(node, yaml.MappingNode):
        keys = {k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
        if keys == PLURAL_KEYS:
            values = {k.value: v for k, v in node.value}
            one, other = values["one"], values["other"]
            if all(isinstance(v, yaml.ScalarNode) and is_text(v.value) for v in (one, other)):
                yield one.start_mark.line + 1, path, (one.value, other.value)
                return
        for key, value in node.value:
            yield from texts_in(value, f"{path}.{key.value}" if path else str(key.value))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from texts_in(item, f"{path}[{i}]")
    elif isinstance(node, yaml.ScalarNode) and node.tag.endswith(":str") and is_text(node.value):
        yield node.start_mark.line + 1, path, node.value


def extract_yaml(fileobj, keywords, comment_tags, options):  # type: ignore[no-untyped-def]
    """Babel extractor for the content YAML (`babel.cfg`): each text, with where it is as a
    comment for the translator."""
    node = yaml.compose(fileobj.read().decode("utf-8"))
    if node is None:
        return
    for line, where, message in texts_in(node):
        yield line, ("ngettext" if isinstance(message, tuple) else None), message, [where]


def messages(directory: Path = DIALOGS_DIR) -> dict[str | tuple[str, str], list[str]]:
    """Every message of the translated files, with the places it is used (what `pybabel
    extract` puts in the template)."""
    found: dict[str | tuple[str, str], list[str]] = {}
    for name in TRANSLATED_FILES:
        path = directory / name
        if not path.exists():
            continue
        node = yaml.compose(path.read_text(encoding="utf-8"))
        for _, where, message in texts_in(node) if node is not None else ():
            found.setdefault(message, []).append(f"{name}: {where}")
    return found


# --- translation at load time ---------------------------------------------------------------


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalog of a language, read once (English: the source itself)."""
    if lang == SOURCE:
        return gettext.NullTranslations()
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}")
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang])


def localize(raw: Any, lang: str) -> Any:
    """A copy of loaded YAML data with every text in `lang`. Plural messages stay as their
    English `one`/`other` pair; `ngettext` picks the form at use (`Plural`)."""
    if lang == SOURCE:
        return raw
    catalog = translations(lang)
    return _localize(raw, catalog)


def _localize(raw: Any, catalog: gettext.NullTranslations) -> Any:
    if is_plural(raw):
        return Plural(raw["one"], raw["other"], catalog)
    if isinstance(raw, dict):
        return {k: _localize(v, catalog) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_localize(v, catalog) for v in raw]
    if is_text(raw):
        return catalog.gettext(raw)
    return raw


class Plural:
    """A plural message in one language: `plural(n)` is the form for `n`."""

    def __init__(self, one: str, other: str, catalog: gettext.NullTranslations) -> None:
        self.one, self.other, self.catalog = one, other, catalog

    def __call__(self, n: int) -> str:
        return self.catalog.ngettext(self.one, self.other, n)


def load_yaml(path: Path, lang: str = SOURCE) -> Any:
    """A content file read and put in `lang` (`OSError`/`yaml.YAMLError` as reading raises)."""
    return localize(yaml.safe_load(path.read_text(encoding="utf-8")), lang)


# --- CLDR: dates, times, countries ----------------------------------------------------------


def day(d: date, lang: str) -> str:
    """A short day with its weekday, as the language writes it ("Di., 8. Dez.")."""
    return format_skeleton("MMMEd", d, locale=CLDR[lang])


def clock(t: time, lang: str) -> str:
    """A time of day as the language writes it (24-hour where usual)."""
    return format_time(t, "short", locale=CLDR[lang])


def country_name(code: str, lang: str) -> str:
    """A country's name in `lang` (CLDR), e.g. "DE" in Russian: "Германия"."""
    return Locale.parse(CLDR[lang]).territories.get(code.upper(), code.upper())


__all__ = [
    "CLDR",
    "LANGUAGES",
    "NAMES",
    "SOURCE",
    "Plural",
    "clock",
    "country_name",
    "day",
    "extract_yaml",
    "is_text",
    "load_yaml",
    "localize",
    "messages",
    "pick",
    "translations",
]
