"""Exports in the person's language: a Russian and a German export, file by file.

The export carries the chosen language, the FHIR record says which language its texts are in
while its codes stay the same, a Russian note prints in Cyrillic in the doctor's PDF, no file
loses a column or an item, and the files, FHIR texts and captions read in the language.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from pypdf import PdfReader

from bot.files.bundle import (
    CSV_COLUMNS,
    build_zip,
    csv_header,
    readme_text,
    transcript_text,
)
from bot.files.chart import render_chart
from bot.files.exports import build_file
from bot.files.fhir import PATTERN_SYSTEM, fhir_bundle
from bot.files.language import FHIR_LANGUAGE, documents, lang_of
from bot.files.pdf import doctor_pdf
from dialogs.trends import summarize
from storage import Store
from storage.export import export_user
from tests.test_export_bundle import (
    TODAY,
    ZONE,
    assert_valid,
    csv_rows,
    export,
    message,
    month,
    pdf_text,
    stamp,
    triage,
    unzip,
)

LANGS = ("ru", "de")
RUSSIAN_NOTE = "Судорога в левой икре, проснулась дважды"


def person(lang: str, *, note: str | None = None) -> dict[str, Any]:
    """A month of diary, two checks (one with a note) and a short chat, in `lang`."""
    checkins, entries = month()
    cramps = triage(2, date(2026, 11, 15), "leg_cramps", "self_care", findings={"smoker": False})
    cramps["note"] = note
    data = export(
        conversations=[
            triage(1, date(2026, 11, 2), "restless_legs", "soon", findings={"smoker": True}),
            cramps,
        ],
        checkins=checkins,
        entries=entries,
        transcript=[
            message(stamp(date(2026, 11, 2), 22, 10), "in", "/check"),
            message(stamp(date(2026, 11, 2), 22, 11), "in", "Икра", meta={"button": "a:1"}),
        ],
    )
    data["user"]["language"] = lang
    return data


# --- what holds in every language, now --------------------------------------------------------


def test_the_stored_choice_is_in_the_export_and_valid(database_url: str) -> None:
    store = Store.open(database_url)
    try:
        with store.transaction() as repo:
            user = repo.user("telegram", "4242")
            repo.update_user(user.id, language_code="de-AT")
            chosen = repo.update_user(user.id, language="ru")
            data = export_user(repo, chosen.id, exported_at=datetime(2026, 11, 20, tzinfo=UTC))
            other = repo.user("telegram", "4343")
            repo.update_user(other.id, language_code="pt-br")
            follows = export_user(repo, other.id, exported_at=datetime(2026, 11, 20, tzinfo=UTC))
    finally:
        store.dispose()

    assert data["schema_version"] == 5
    assert (data["user"]["language"], data["user"]["language_code"]) == ("ru", "de-AT")
    assert follows["user"]["language"] is None
    assert_valid(data)
    assert_valid(follows)
    assert lang_of(data) == "ru"
    assert lang_of(follows) == "pt", "no choice: the app's language"


def test_an_unknown_language_in_an_export_is_refused_by_the_schema() -> None:
    data = person("ru")
    data["user"]["language"] = "fr"
    with pytest.raises(AssertionError):
        assert_valid(data)


@pytest.mark.parametrize("lang", [*LANGS, "pt"])
def test_fhir_says_its_language_and_keeps_its_codes(lang: str) -> None:
    data = person(lang)
    bundle = fhir_bundle(data)
    english = fhir_bundle(person("en"))

    assert bundle["language"] == FHIR_LANGUAGE[lang]
    assert {e["resource"]["language"] for e in bundle["entry"]} == {FHIR_LANGUAGE[lang]}
    if lang == "pt":
        assert bundle["language"] == "pt-BR"

    def codes(found: dict[str, Any]) -> list[Any]:
        return [
            (i["linkId"], [a.get("valueCoding", {}).get("code") for a in i["answer"]])
            for e in found["entry"]
            for i in e["resource"].get("item", [])
        ]

    assert codes(bundle) == codes(english)
    assert all("text" in i for e in bundle["entry"] for i in e["resource"].get("item", []))


def test_a_russian_note_prints_in_cyrillic_in_the_pdf() -> None:
    data = person("ru", note=RUSSIAN_NOTE)
    pdf = doctor_pdf(data, since=None, zone=ZONE, name="Анна Иванова", today=TODAY)
    _, text = pdf_text(pdf)

    assert RUSSIAN_NOTE in text
    assert "Анна Иванова" in text
    fonts = {
        str(font["/BaseFont"])
        for page in PdfReader(io.BytesIO(pdf)).pages
        for font in (f.get_object() for f in page["/Resources"]["/Font"].values())
    }
    assert fonts and all("DejaVuSans" in f for f in fonts)


@pytest.mark.parametrize("lang", LANGS)
def test_a_bundle_in_another_language_keeps_every_file_row_and_column(lang: str) -> None:
    data = person(lang, note=RUSSIAN_NOTE)
    english = unzip(build_zip(person("en"), since=None, zone=ZONE, name=None, fhir=None))
    files = unzip(build_zip(data, since=None, zone=ZONE, name=None, fhir=fhir_bundle(data)))

    assert set(files) == {*english, "fhir-bundle.json"}
    exported = json.loads(files["nightlegs-export.json"])
    assert exported["user"]["language"] == lang
    assert_valid(exported)
    rows = csv_rows(files["diary-nights.csv"].decode("utf-8-sig"), lang)
    assert rows == csv_rows(english["diary-nights.csv"].decode("utf-8-sig"))
    assert len(csv_header(lang)) == len(CSV_COLUMNS)
    assert RUSSIAN_NOTE in pdf_text(files["doctor-summary.pdf"])[1]
    assert "Икра" in files["transcript.txt"].decode()
    readme = files["README.txt"].decode()
    assert all(name in readme for name in files)


@pytest.mark.parametrize("lang", LANGS)
def test_the_chart_draws_in_every_language(lang: str) -> None:
    png = render_chart(summarize([], today=TODAY, days=30), lang)
    assert png.startswith(b"\x89PNG")


@pytest.mark.parametrize("lang", LANGS)
def test_dates_follow_the_language(lang: str) -> None:
    text = transcript_text(person(lang), ZONE)
    # 2 Nov 2026, 22:10 in Berlin: the date as the language writes it, never ISO.
    assert "2026-11-02" not in text
    assert "02.11.2026" in text or "2.11.2026" in text


# --- the words themselves: in the language once the catalog has them ----------------------------


def english_words() -> set[str]:
    """Every text of documents.yaml in English, longer than a word or two."""
    words = documents("en")
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, str) and len(node.split()) >= 3:
            found.add(node.split("{")[0].strip())

    walk(dict(words.raw))
    return {w for w in found if len(w.split()) >= 3}


@pytest.mark.parametrize("lang", LANGS)
def test_the_bundle_files_are_in_the_language(lang: str) -> None:
    data = person(lang)
    files = unzip(build_zip(data, since=None, zone=ZONE, name=None, fhir=fhir_bundle(data)))
    english = english_words()

    readme = files["README.txt"].decode()
    transcript = files["transcript.txt"].decode()
    header = files["diary-nights.csv"].decode("utf-8-sig").splitlines()[0]
    _, pdf = pdf_text(files["doctor-summary.pdf"])
    for text in (readme, transcript, pdf):
        assert not [w for w in english if w in text]
    assert readme == readme_text(list(files), lang)
    assert "You pressed the button" not in transcript
    assert header != ",".join(csv_header("en"))
    assert documents(lang).text("pdf", "title") in pdf


@pytest.mark.parametrize("lang", LANGS)
def test_fhir_texts_are_in_the_language(lang: str) -> None:
    bundle = fhir_bundle(person(lang))
    english = fhir_bundle(person("en"))

    def displays(found: dict[str, Any]) -> list[str]:
        return [
            a["valueCoding"]["display"]
            for e in found["entry"]
            for i in e["resource"].get("item", [])
            for a in i["answer"]
            if a.get("valueCoding", {}).get("system") == PATTERN_SYSTEM
        ]

    def texts(found: dict[str, Any]) -> list[str]:
        return [i["text"] for e in found["entry"] for i in e["resource"].get("item", [])]

    assert displays(bundle) and not set(displays(bundle)) & set(displays(english))
    assert not set(texts(bundle)) & set(texts(english))


@pytest.mark.parametrize("lang", LANGS)
def test_captions_are_in_the_language(lang: str) -> None:
    data = person(lang)
    english = {
        build_file(k, person("en"), since=None, zone=ZONE, name=None, today=TODAY)[2]
        for k in ("json", "zip", "pdf")
    }
    for kind in ("json", "zip", "pdf"):
        _, _, caption = build_file(kind, data, since=None, zone=ZONE, name=None, today=TODAY)
        assert caption not in english
