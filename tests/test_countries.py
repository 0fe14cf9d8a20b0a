"""Emergency numbers by country (dialogs/emergency_numbers.yaml), in every language: each
number is there, written with the words of the person's language around it, and the
country's name is CLDR's in that language."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

import pytest

from dialogs import i18n
from dialogs.countries import EmergencyNumbers
from dialogs.i18n import LANGUAGES, SOURCE

NUMBERS = EmergencyNumbers.load()
OTHERS = [lang for lang in LANGUAGES if lang != SOURCE]

EXPECTED = {
    # the countries of nightlegs' languages, and their ambulance numbers
    "DE": ("112", None),
    "AT": ("144", "112"),
    "CH": ("144", "112"),
    "ES": ("112", None),
    "MX": ("911", None),
    "AR": ("107", None),
    "CO": ("123", None),
    "CL": ("131", None),
    "PE": ("106", None),
    "BR": ("192", None),
    "PT": ("112", None),
    "RU": ("103", "112"),
    "KZ": ("103", "112"),
    "BY": ("103", None),
    "UA": ("103", "112"),
    "GB": ("999", "112"),
    "US": ("911", None),
}
LINES = {
    "GB": "NHS 111",
    "DE": "116117",
    "AT": "1450",
    "PT": "808 24 24 24",
    "AU": "1800 022 222",
    "NZ": "0800 611 116",
    "SE": "1177",
}


def translated(lang: str) -> bool:
    return any(key for key in getattr(i18n.translations(lang), "_catalog", {}) if key)


@pytest.mark.parametrize(("code", "numbers"), EXPECTED.items())
@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_number_is_there_in_every_language(
    code: str, numbers: tuple[str, str | None], lang: str
) -> None:
    dial, also = numbers
    country = NUMBERS.countries[code]
    assert (country.dial, country.also) == (dial, also)
    written = NUMBERS.number(code, lang)
    assert written is not None and written.startswith(dial)
    if also is not None:
        assert also in written


@pytest.mark.parametrize(("code", "line"), LINES.items())
@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_out_of_hours_line_is_there_in_every_language(
    code: str, line: str, lang: str
) -> None:
    assert line in (NUMBERS.urgent_care(code, lang) or "")


def test_english_reads_as_it_always_did() -> None:
    assert NUMBERS.number("AT") == "144 (or 112)"
    assert NUMBERS.urgent_care("AT") == "1450 (health advice line)"
    assert NUMBERS.urgent_care("AU") == "healthdirect on 1800 022 222"
    assert NUMBERS.urgent_care("GB") == (
        "NHS 111 (in Northern Ireland: your GP out-of-hours service)"
    )
    assert NUMBERS.urgent_care("DE") == "116117 (ärztlicher Bereitschaftsdienst)"
    assert NUMBERS.urgent_care("PT") == "SNS 24 on 808 24 24 24"


@pytest.mark.parametrize(
    "lang",
    [
        pytest.param(lang, marks=pytest.mark.xfail(not translated(lang), reason="catalog empty"))
        for lang in OTHERS
    ],
)
def test_no_english_word_around_a_number(lang: str) -> None:
    english = re.compile(r"\b(or|on|in|your|health|advice|line|service)\b")
    for code in NUMBERS.countries:
        for written in (NUMBERS.number(code, lang), NUMBERS.urgent_care(code, lang)):
            assert not english.search(written or ""), (code, written)


@pytest.mark.parametrize(
    ("language_code", "country"),
    [
        ("pt-br", "BR"),
        ("pt", "BR"),
        ("pt-pt", "PT"),
        ("es", "ES"),
        ("es-mx", "MX"),
        ("es-AR", "AR"),
        ("ru", "RU"),
        ("de", "DE"),
        ("uk", "UA"),
        ("en", None),
    ],
)
def test_the_language_suggests_its_country(language_code: str, country: str | None) -> None:
    found = NUMBERS.suggest(language_code)
    assert (found.code if found else None) == country


@pytest.mark.parametrize("lang", LANGUAGES)
def test_country_names_are_in_the_language_and_sorted_in_it(lang: str) -> None:
    names = [c.name_in(lang) for c in NUMBERS.by_name(lang)]
    assert len(set(names)) == len(NUMBERS.countries)
    assert NUMBERS.countries["DE"].name_in(lang) == i18n.country_name("DE", lang)
    if lang == SOURCE:
        assert all(c.name_in(lang) == c.name for c in NUMBERS.countries.values())


def test_every_zone_is_known() -> None:
    for country in NUMBERS.countries.values():
        assert country.zones, country.code
        for zone in country.zones:
            ZoneInfo(zone)
