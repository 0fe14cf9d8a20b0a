"""Languages kept whole: every language has every text, with the same placeholders and
markup, none stale, the compiled catalogs match their sources, and plurals read right."""

from __future__ import annotations

import io
import re
import string

import pytest
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from dialogs import i18n
from dialogs.i18n import LANGUAGES, LOCALE_DIR, SOURCE

TRANSLATED = [lang for lang in LANGUAGES if lang != SOURCE]
_TAG = re.compile(r"</?[a-z]+[^>]*>")


def po_path(lang: str):  # type: ignore[no-untyped-def]
    return LOCALE_DIR / lang / "LC_MESSAGES" / "nightlegs.po"


def catalog(lang: str):  # type: ignore[no-untyped-def]
    with po_path(lang).open("rb") as f:
        return read_po(f, locale=i18n.CLDR[lang])


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def markup(text: str) -> list[str]:
    return sorted(_TAG.findall(text))


def problems(lang: str, sources: dict | None = None) -> list[str]:
    """What keeps a language from being whole: a source text with no current translation
    (new, or changed since it was translated), or a translation whose placeholders or
    markup differ from its source."""
    sources = i18n.messages() if sources is None else sources
    cat = catalog(lang)
    found = []
    for msgid, places in sources.items():
        key = msgid[0] if isinstance(msgid, tuple) else msgid
        message = cat.get(key)
        where = places[0]
        if message is None or not message.string or message.fuzzy:
            found.append(f"{lang}: {where}: not translated (new or changed): {key[:60]!r}")
            continue
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        english = msgid if isinstance(msgid, tuple) else (msgid,)
        if not all(forms):
            found.append(f"{lang}: {where}: a plural form is empty")
        for form in forms:
            if placeholders(form) != placeholders(english[-1]):
                found.append(f"{lang}: {where}: placeholders {sorted(placeholders(form))}")
            if markup(form) != markup(english[-1]):
                found.append(f"{lang}: {where}: markup {markup(form)}")
    return found


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_text_is_translated_with_its_placeholders_and_markup(lang: str) -> None:
    assert problems(lang) == []


@pytest.mark.parametrize("lang", TRANSLATED)
def test_a_changed_english_line_is_found_until_translated(lang: str) -> None:
    sources = i18n.messages()
    line = next(m for m, places in sources.items() if places[0].startswith("advice.yaml"))
    changed = {**{m: p for m, p in sources.items() if m != line}, line + " Changed.": ["x"]}
    assert any("not translated" in p for p in problems(lang, changed))


def _key(value: object) -> object:
    """A plural message's id and forms come as lists."""
    return tuple(value) if isinstance(value, list) else value


@pytest.mark.parametrize("lang", TRANSLATED)
def test_the_compiled_catalog_is_the_source_catalog(lang: str) -> None:
    mo = po_path(lang).with_suffix(".mo")
    expected = io.BytesIO()
    write_mo(expected, catalog(lang))
    with mo.open("rb") as f:
        shipped = read_mo(f)
    got = {_key(m.id): _key(m.string) for m in shipped if m.id}
    want = {_key(m.id): _key(m.string) for m in read_mo(io.BytesIO(expected.getvalue())) if m.id}
    assert got == want, "run: pybabel compile -d dialogs/locales -D nightlegs"


def test_the_template_lists_every_source_text() -> None:
    with (LOCALE_DIR / "nightlegs.pot").open("rb") as f:
        template = {m.id for m in read_po(f) if m.id}
    assert template == set(i18n.messages()), "run: pybabel extract (see README, languages)"


@pytest.mark.parametrize(
    ("code", "lang"),
    [
        ("de", "de"),
        ("de-AT", "de"),
        ("pt-br", "pt"),
        ("pt-BR", "pt"),
        ("es-419", "es"),
        ("ru", "ru"),
        ("uk", "en"),
        ("fr", "en"),
        (None, "en"),
        ("", "en"),
        ("ru_RU.UTF-8", "ru"),
    ],
)
def test_a_language_code_picks_a_language(code: str | None, lang: str) -> None:
    assert i18n.pick(code) == lang


@pytest.mark.parametrize(("n", "form"), [(1, 0), (2, 1), (5, 2), (21, 0), (11, 2), (22, 1), (0, 2)])
def test_russian_has_three_plural_forms(n: int, form: int) -> None:
    plural = i18n.translations("ru").plural  # type: ignore[attr-defined]
    assert plural(n) == form
