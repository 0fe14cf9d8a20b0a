"""Tests of bot/files/bundle.py and bot/files/pdf.py: every exported file, read back.

The doctor summary is opened with pypdf and its text compared with the data it was built
from; the ZIP is unpacked and each file re-read (the JSON against docs/export.schema.json,
the CSV with csv.DictReader, the transcript as text). Export dicts are built here directly,
except in one test that goes through a real store and `storage.export.export_user`.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
import zipfile
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker
from pypdf import PdfReader

from bot.files.bundle import (
    CSV_COLUMNS,
    build_zip,
    csv_header,
    diary_csv,
    readme_text,
    transcript_text,
    within,
)
from bot.files.language import documents
from bot.files.pdf import BACKGROUND_FINDINGS, RED_FLAG_FINDINGS, doctor_pdf
from dialogs.records import AnswerRecord, Conclusion, ConversationState
from dialogs.vocabulary import BACKGROUND, FINDINGS, RED_FLAGS, Pattern, Urgency
from storage import Store
from storage.export import export_user

ROOT = Path(__file__).resolve().parent.parent
VALIDATOR = Draft202012Validator(
    json.loads((ROOT / "docs" / "export.schema.json").read_text(encoding="utf-8")),
    format_checker=FormatChecker(),
)
ZONE = "Europe/Berlin"
TZ = ZoneInfo(ZONE)
TODAY = date(2026, 11, 20)
TELEGRAM_ID = "731942658"
BASE_FILES = [
    "nightlegs-export.json",
    "diary-nights.csv",
    "transcript.txt",
    "doctor-summary.pdf",
]
FHIR = {"resourceType": "Bundle", "type": "collection", "entry": []}

# The month of diary: night index (0 = 29 nights before TODAY) -> how it went.
MISSED_NIGHTS = {4, 11, 18}
SKIPPED_NIGHTS = {7, 22}
BACKFILLED_NIGHTS = {12, 25}
AWKWARD_NOTE = 'Woke at 3, "left" calf;\nagain at 5'


# --- building export dicts ------------------------------------------------------------------


def stamp(day: date, hour: int, minute: int = 0) -> str:
    """The UTC ISO timestamp the export writes for a wall-clock time in Berlin."""
    local = datetime.combine(day, time(hour, minute), tzinfo=TZ)
    return local.astimezone(UTC).isoformat()


def triage(
    conversation_id: int,
    day: date,
    pattern: str,
    urgency: str,
    *,
    red_flags: Sequence[str] = (),
    findings: dict[str, bool] | None = None,
) -> dict[str, Any]:
    return {
        "id": conversation_id,
        "flow": "triage",
        "state": "concluded",
        "started_at": stamp(day, 22, 10),
        "finished_at": stamp(day, 22, 14),
        "answers": [
            {
                "question_id": "emergency_signs",
                "option_ids": ["none"],
                "answered_at": stamp(day, 22, 11),
                "text": None,
            }
        ],
        "pending": [],
        "findings": dict(sorted((findings or {}).items())),
        "conclusion": {"pattern": pattern, "urgency": urgency, "red_flags": list(red_flags)},
    }


def checkin(night: date, status: str, *, backfill: bool = False) -> dict[str, Any]:
    return {
        "night": night.isoformat(),
        "status": status,
        "due_at": stamp(night, 21, 30),
        "sent_at": stamp(night, 21, 30),
        "backfill": backfill,
        "conversation_id": None,
    }


def entry(
    night: date, values: dict[str, Any], *, backfilled: bool = False, red_flags: Sequence[str] = ()
) -> dict[str, Any]:
    return {
        "night": night.isoformat(),
        "backfilled": backfilled,
        "values": values,
        "findings": {},
        "red_flags": list(red_flags),
        "conversation_id": None,
        "created_at": stamp(night, 21, 35),
    }


def message(
    at: str,
    direction: str,
    text: str,
    *,
    conversation_id: int | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "at": at,
        "direction": direction,
        "text": text,
        "conversation_id": conversation_id,
        "meta": meta,
    }


def export(
    *,
    conversations: Sequence[dict[str, Any]] = (),
    checkins: Sequence[dict[str, Any]] = (),
    entries: Sequence[dict[str, Any]] = (),
    transcript: Sequence[dict[str, Any]] = (),
    external_id: str = TELEGRAM_ID,
) -> dict[str, Any]:
    data = {
        "schema_version": 5,
        "exported_at": stamp(TODAY, 22, 30),
        "user": {
            "channel": "telegram",
            "external_id": external_id,
            "language_code": "en",
            "language": None,
            "country": "DE",
            "consent_at": stamp(date(2026, 10, 1), 20, 0),
            "created_at": stamp(date(2026, 10, 1), 20, 0),
        },
        "conversations": list(conversations),
        "diary": {
            "schedule": {
                "enabled": True,
                "local_time": "21:30",
                "timezone": ZONE,
                "next_night": (TODAY + timedelta(days=1)).isoformat(),
                "paused_until": None,
            },
            "checkins": list(checkins),
            "entries": list(entries),
        },
        "followups": [],
        "transcript": list(transcript),
    }
    assert_valid(data)
    return data


def assert_valid(data: dict[str, Any]) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(data)]
    assert not errors, errors


def night_values(i: int) -> dict[str, Any]:
    """What the diary records for night `i` of the month: a spread of every field."""
    cramps, restless, foot_pain = i % 3 == 0, i % 4 == 1, i % 9 == 2
    if not (cramps or restless or foot_pain):
        return {
            "cramps": False,
            "restless": False,
            "foot_pain": False,
            "other": False,
            "wakeups": 0,
        }
    values: dict[str, Any] = {
        "cramps": cramps,
        "restless": restless,
        "foot_pain": foot_pain,
        "other": i == 10,
        "wakeups": i % 4,
        "helped": ["nothing"] if i % 5 == 0 else ["stretching", "walking"][: 1 + i % 2],
        "note": AWKWARD_NOTE if i == 0 else f"night {i}",
    }
    if cramps:
        values["cramp_count"] = (1, 2, 4)[i // 3 % 3]
        values["worst_pain"] = (2, 5, 8, 7)[i // 3 % 4]
    if restless:
        values["restless_severity"] = ("mild", "moderate", "severe")[i % 3]
    return values


def month() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Thirty nights up to TODAY: check-ins for all, entries for the logged ones."""
    checkins, entries = [], []
    for i in range(30):
        night = TODAY - timedelta(days=29 - i)
        if i in MISSED_NIGHTS | SKIPPED_NIGHTS:
            checkins.append(checkin(night, "missed" if i in MISSED_NIGHTS else "skipped"))
            continue
        backfilled = i in BACKFILLED_NIGHTS
        checkins.append(checkin(night, "answered", backfill=backfilled))
        entries.append(entry(night, night_values(i), backfilled=backfilled))
    return checkins, entries


TRIAGE_RESTLESS = triage(
    1,
    date(2026, 11, 2),
    "restless_legs",
    "soon",
    findings={
        "urge_to_move": True,
        "movement_relief": True,
        "takes_antihistamine_or_antidepressant": True,
        "low_iron_known": False,
    },
)
TRIAGE_CRAMPS = triage(
    2,
    date(2026, 11, 15),
    "leg_cramps",
    "urgent",
    red_flags=["new_medicine_cramps"],
    findings={
        "muscle_hard_knot": True,
        "new_medicine_cramps": True,
        "kidney_disease": True,
        "smoker": False,
    },
)


@pytest.fixture
def month_data() -> dict[str, Any]:
    """A month of diary, two triages and a short chat."""
    checkins, entries = month()
    return export(
        conversations=[TRIAGE_RESTLESS, TRIAGE_CRAMPS],
        checkins=checkins,
        entries=entries,
        transcript=[
            message(stamp(date(2026, 11, 2), 22, 10), "in", "/check"),
            message(
                stamp(date(2026, 11, 2), 22, 10),
                "out",
                "First, a quick safety check.\n\n• chest pain",
                conversation_id=1,
            ),
            message(
                stamp(date(2026, 11, 2), 22, 11),
                "in",
                "None of these",
                conversation_id=1,
                meta={"button": "a:1:emergency_signs:none:0"},
            ),
        ],
    )


# --- reading files back ---------------------------------------------------------------------


def pdf_text(pdf: bytes) -> tuple[int, str]:
    """Page count and all text, whitespace collapsed so table cells read as one line."""
    reader = PdfReader(io.BytesIO(pdf))
    text = " ".join(page.extract_text() for page in reader.pages)
    return len(reader.pages), " ".join(text.split())


def unzip(bundle: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        assert archive.testzip() is None
        return {name: archive.read(name) for name in archive.namelist()}


def csv_rows(text: str, lang: str = "en") -> list[dict[str, str]]:
    """The rows keyed by column id, after checking the header names the columns in `lang`."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    assert next(reader) == csv_header(lang)
    return [dict(zip(CSV_COLUMNS, row, strict=True)) for row in reader]


def logged(entries: list[dict[str, Any]], key: str) -> list[Any]:
    return [e["values"][key] for e in entries if key in e["values"]]


def nights(count: int) -> str:
    return f"{count} night" if count == 1 else f"{count} nights"


# --- the doctor summary ---------------------------------------------------------------------


def test_pdf_numbers_match_the_diary_and_the_triages(month_data: dict[str, Any]) -> None:
    pdf = doctor_pdf(month_data, since=None, zone=ZONE, name=None, today=TODAY)
    pages, text = pdf_text(pdf)
    entries = month_data["diary"]["entries"]
    cramp_nights = sum(logged(entries, "cramps"))

    assert 1 <= pages <= 2
    assert text.startswith("Night leg symptoms: patient self-report")
    assert "Period covered: 22 Oct 2026 to 20 Nov 2026 (30 nights)" in text
    assert f"Nights logged {len(entries)} of 30 asked" in text
    assert f"Not answered {len(MISSED_NIGHTS)} missed, {len(SKIPPED_NIGHTS)} skipped" in text
    assert f"Filled in later {nights(len(BACKFILLED_NIGHTS))}" in text
    assert f"Cramps {nights(cramp_nights)}" in text
    assert f"Restless legs {nights(sum(logged(entries, 'restless')))}" in text
    assert f"Cramp episodes at least {sum(logged(entries, 'cramp_count'))}" in text
    assert f"Woken by the legs {sum(logged(entries, 'wakeups'))} times" in text
    assert f"Worst cramp pain {max(logged(entries, 'worst_pain'))}/10" in text
    # Each triage, most recent first: its date, then its urgency and warning signs in words.
    assert re.search(
        r"15 Nov 2026 A night leg cramp Get seen by a doctor today cramps since a new medicine"
        r".*2 Nov 2026 Restless legs Book a visit with your own doctor None",
        text,
    ), text
    assert "Yes: takes an antihistamine or antidepressant, kidney disease." in text
    assert "No: smokes or used to smoke, told their iron is low." in text
    assert "ferritin" in text
    assert "review them" in text
    assert "magnesium" in text and "This matters with my kidney disease." in text
    assert "ankle-brachial" not in text
    assert "self-report" in text and "not a diagnosis" in text
    assert TELEGRAM_ID not in text and TELEGRAM_ID.encode() not in pdf
    assert "Name:" not in text


def test_pdf_prints_a_name_only_when_given(month_data: dict[str, Any]) -> None:
    pdf = doctor_pdf(month_data, since=None, zone=ZONE, name="Anna Beispiel", today=TODAY)
    assert "Name: Anna Beispiel" in pdf_text(pdf)[1]


def test_pdf_with_many_triages_lists_the_latest_eight_on_two_pages(
    month_data: dict[str, Any],
) -> None:
    days = [TODAY - timedelta(days=2 * n) for n in range(12)]
    month_data["conversations"] = [
        triage(
            n + 1,
            day,
            "critical_limb_ischemia",
            "emergency",
            red_flags=RED_FLAGS,
            findings={"smoker": True},
        )
        for n, day in enumerate(reversed(days))
    ]
    assert_valid(month_data)

    pages, text = pdf_text(doctor_pdf(month_data, since=None, zone=ZONE, name=None, today=TODAY))

    assert 1 <= pages <= 2
    for day in days[:8]:
        assert re.search(rf"(?<!\d){day.day} {day:%b %Y} A possible serious blockage", text)
    for day in days[8:11]:
        assert not re.search(rf"(?<!\d){day.day} {day:%b %Y}", text)
    assert "4 older completed checks not listed (the first on 29 Oct 2026)." in text
    assert text.count("Get emergency help now") == 8
    assert "ankle-brachial" in text and "stop smoking" in text


def test_pdf_period_starts_at_since(month_data: dict[str, Any]) -> None:
    since = date(2026, 11, 10)
    _, text = pdf_text(doctor_pdf(month_data, since=since, zone=ZONE, name=None, today=TODAY))
    kept = [e for e in month_data["diary"]["entries"] if e["night"] >= since.isoformat()]

    assert "Period covered: 10 Nov 2026 to 20 Nov 2026 (11 nights)" in text
    assert f"Nights logged {len(kept)} of 11 asked" in text
    assert "15 Nov 2026 A night leg cramp" in text
    assert "2 Nov 2026" not in text


def test_pdf_without_any_data_still_says_what_it_is() -> None:
    pages, text = pdf_text(doctor_pdf(export(), since=None, zone=ZONE, name=None, today=TODAY))

    assert pages == 1
    assert "No completed symptom check in this period." in text
    assert "No diary nights were asked about in this period." in text
    assert "not a diagnosis" in text


def test_every_red_flag_and_background_finding_has_plain_words() -> None:
    assert set(RED_FLAG_FINDINGS) == set(RED_FLAGS)
    assert set(BACKGROUND_FINDINGS) <= set(BACKGROUND)
    words = documents("en").section("findings")
    assert set(words) == set(FINDINGS)


# --- the ZIP --------------------------------------------------------------------------------


@pytest.mark.parametrize("fhir", [None, FHIR], ids=["without-fhir", "with-fhir"])
def test_zip_holds_exactly_the_promised_files(
    month_data: dict[str, Any], fhir: dict[str, Any] | None
) -> None:
    files = unzip(build_zip(month_data, since=None, zone=ZONE, name=None, fhir=fhir))
    expected = [*BASE_FILES, *(["fhir-bundle.json"] if fhir else []), "README.txt"]

    assert list(files) == expected
    readme = files["README.txt"].decode()
    assert readme == readme_text(expected)
    for name in expected:
        assert name in readme
    assert "not a diagnosis" in readme and "self-report tool" in readme
    if fhir:
        assert json.loads(files["fhir-bundle.json"]) == FHIR
    assert pdf_text(files["doctor-summary.pdf"])[0] <= 2


def test_json_in_the_zip_is_the_period_limited_export_and_valid(
    month_data: dict[str, Any],
) -> None:
    since = date(2026, 11, 10)
    files = unzip(build_zip(month_data, since=since, zone=ZONE, name=None, fhir=None))
    exported = json.loads(files["nightlegs-export.json"])

    assert_valid(exported)
    assert exported == within(month_data, since=since, zone=ZONE)
    assert [c["id"] for c in exported["conversations"]] == [2]
    assert exported["transcript"] == []


def test_csv_rereads_to_the_diary_numbers(month_data: dict[str, Any]) -> None:
    files = unzip(build_zip(month_data, since=None, zone=ZONE, name=None, fhir=None))
    text = files["diary-nights.csv"].decode("utf-8-sig")
    rows = csv_rows(text)
    entries = {e["night"]: e for e in month_data["diary"]["entries"]}

    assert text == diary_csv(month_data, ZONE)
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [r["night"] for r in rows] == sorted(c["night"] for c in month_data["diary"]["checkins"])
    assert [r["status"] for r in rows].count("missed") == len(MISSED_NIGHTS)
    assert [r["status"] for r in rows].count("skipped") == len(SKIPPED_NIGHTS)
    assert {r["timezone"] for r in rows} == {ZONE}
    for row in rows:
        if row["status"] != "logged":
            assert row["night"] not in entries
            assert all(row[key] == "" for key in CSV_COLUMNS[2:-1])
            continue
        found = entries[row["night"]]
        values = found["values"]
        assert row["backfilled"] == ("yes" if found["backfilled"] else "no")
        for key in ("cramps", "restless", "foot_pain", "other"):
            assert row[key] == ("yes" if values[key] else "no")
        for key in ("cramp_count", "worst_pain", "wakeups"):
            assert (int(row[key]) if row[key] else None) == values.get(key)
        assert (row["helped"].split(";") if row["helped"] else []) == values.get("helped", [])
        assert row["restless_severity"] == values.get("restless_severity", "")
        assert row["note"] == values.get("note", "")
        assert row["red_flags"] == ";".join(found["red_flags"])
    assert sum(int(r["wakeups"]) for r in rows if r["wakeups"]) == sum(
        logged(list(entries.values()), "wakeups")
    )
    assert sum(r["cramps"] == "yes" for r in rows) == sum(logged(list(entries.values()), "cramps"))


def test_csv_keeps_warning_signs_and_a_missed_night_answered_later() -> None:
    night = date(2026, 11, 3)
    data = export(
        checkins=[checkin(night, "missed"), checkin(night + timedelta(days=1), "skipped")],
        entries=[
            entry(night, {"restless": True}, backfilled=True, red_flags=RED_FLAGS[:2]),
        ],
    )
    rows = csv_rows(diary_csv(data, ZONE))

    assert [(r["night"], r["status"]) for r in rows] == [
        ("2026-11-03", "logged"),
        ("2026-11-04", "skipped"),
    ]
    assert rows[0]["red_flags"] == "calf_swelling_warm_red;chest_pain_or_breathless"
    assert rows[0]["backfilled"] == "yes"


def test_transcript_holds_every_message_in_order_with_local_times() -> None:
    summer = datetime(2026, 7, 1, 19, 31, tzinfo=UTC).isoformat()
    winter = datetime(2026, 11, 20, 20, 31, tzinfo=UTC).isoformat()
    transcript = [
        message(summer, "in", "/start"),
        message(summer, "out", "First, a quick safety check.\n\n• chest pain", conversation_id=1),
        message(winter, "in", "Calf", conversation_id=1, meta={"button": "a:1:where:calf:0"}),
        message(winter, "in", "my left leg, mostly"),
        message(winter, "out", "Thank you.", conversation_id=1, meta={"kind": "reply"}),
    ]
    text = transcript_text(export(transcript=transcript), ZONE)
    blocks = [
        "[2026-07-01 21:31 (Europe/Berlin)] You:\n/start",
        "[2026-07-01 21:31 (Europe/Berlin)] nightlegs:\n"
        "First, a quick safety check.\n\n• chest pain",
        "[2026-11-20 21:31 (Europe/Berlin)] You pressed the button:\nCalf",
        "[2026-11-20 21:31 (Europe/Berlin)] You:\nmy left leg, mostly",
        "[2026-11-20 21:31 (Europe/Berlin)] nightlegs:\nThank you.",
    ]

    positions = [text.index(block) for block in blocks]
    assert positions == sorted(positions)
    assert "a:1:where:calf:0" not in text
    assert "Europe/Berlin" in text.splitlines()[1]


# --- the period -----------------------------------------------------------------------------


def test_within_drops_only_what_is_before_the_period() -> None:
    since = date(2026, 11, 10)
    before, after = since - timedelta(days=1), since
    # 23:45 and 00:15 Berlin time: both on 9 November in UTC.
    late = stamp(before, 23, 45)
    early = stamp(after, 0, 15)
    data = export(
        conversations=[
            {**triage(1, before, "leg_cramps", "self_care"), "started_at": late},
            {**triage(2, after, "restless_legs", "soon"), "started_at": early},
        ],
        checkins=[checkin(before, "missed"), checkin(after, "skipped")],
        entries=[entry(before, {"cramps": True}), entry(after, {"restless": True})],
        transcript=[message(late, "in", "before"), message(early, "in", "after")],
    )

    limited = within(data, since=since, zone=ZONE)

    assert_valid(limited)
    assert limited["conversations"] == data["conversations"][1:]
    assert limited["diary"]["checkins"] == data["diary"]["checkins"][1:]
    assert limited["diary"]["entries"] == data["diary"]["entries"][1:]
    assert limited["transcript"] == data["transcript"][1:]
    unchanged = ("schema_version", "exported_at", "user")
    assert {k: limited[k] for k in unchanged} == {k: data[k] for k in unchanged}
    assert limited["diary"]["schedule"] == data["diary"]["schedule"]


def test_within_leaves_what_it_is_given_as_it_was(month_data: dict[str, Any]) -> None:
    """No deep copy (0.3 s of a two-year export): new dicts and lists, the rows shared."""
    before = copy.deepcopy(month_data)
    assert within(month_data, since=None) == month_data
    limited = within(
        month_data, since=date.fromisoformat(month_data["diary"]["entries"][-1]["night"])
    )
    assert len(limited["diary"]["entries"]) == 1 < len(month_data["diary"]["entries"])
    assert month_data == before


# --- several people -------------------------------------------------------------------------


@st.composite
def people(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Two to four people's exports, every note and message text a sentinel of its owner."""
    result = []
    for k in range(draw(st.integers(min_value=2, max_value=4))):
        logged_nights = draw(st.sets(st.integers(min_value=0, max_value=40), max_size=6))
        missed = draw(st.sets(st.integers(min_value=41, max_value=45), max_size=2))
        said = draw(st.integers(min_value=0, max_value=3))
        entries = [
            entry(
                TODAY - timedelta(days=i),
                {"cramps": True, "cramp_count": 1, "worst_pain": i % 11, "note": f"QnoteU{k}N{i}Q"},
            )
            for i in sorted(logged_nights, reverse=True)
        ]
        triages = (
            [triage(100 * k + 1, TODAY - timedelta(days=k), "leg_cramps", "self_care")]
            if draw(st.booleans())
            else []
        )
        result.append(
            export(
                conversations=triages,
                checkins=[checkin(TODAY - timedelta(days=i), "missed") for i in sorted(missed)],
                entries=entries,
                transcript=[
                    message(stamp(TODAY, 20, j), "in", f"QsaidU{k}M{j}Q") for j in range(said)
                ],
                external_id=f"QidU{k}Q",
            )
        )
    return result


def sentinels(data: dict[str, Any]) -> set[str]:
    """The strings only this person's data holds."""
    return (
        {e["values"]["note"] for e in data["diary"]["entries"]}
        | {m["text"] for m in data["transcript"]}
        | {data["user"]["external_id"]}
    )


def readable(files: dict[str, bytes]) -> Iterator[tuple[str, str]]:
    for name, content in files.items():
        text = pdf_text(content)[1] if name.endswith(".pdf") else content.decode("utf-8-sig")
        yield name, text


@settings(max_examples=6, deadline=None)
@given(people())
def test_no_bundle_holds_anything_of_another_person(everyone: list[dict[str, Any]]) -> None:
    bundles = [
        dict(readable(unzip(build_zip(d, since=None, zone=ZONE, name=None, fhir=None))))
        for d in everyone
    ]
    for mine, files in zip(everyone, bundles, strict=True):
        assert all(s in files["nightlegs-export.json"] for s in sentinels(mine))
        for note in (e["values"]["note"] for e in mine["diary"]["entries"]):
            assert note in files["diary-nights.csv"]
        for said in (m["text"] for m in mine["transcript"]):
            assert said in files["transcript.txt"]
        for other in everyone:
            if other is mine:
                continue
            for name, text in files.items():
                leaked = [s for s in sentinels(other) if s in text]
                assert not leaked, (name, leaked)


# --- through the real store -----------------------------------------------------------------


class Clock:
    """A clock that moves one minute forward on every reading, from 2026-11-18 20:00 UTC."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 18, 20, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


def test_a_stored_user_exports_to_a_valid_bundle(database_url: str) -> None:
    store = Store.open(database_url, clock=Clock())
    try:
        with store.transaction() as repo:
            user_id = repo.user("telegram", TELEGRAM_ID).id
            repo.diary.set_schedule(user_id, local_time=time(21, 30), zone=ZONE, now=Clock()())
            started = datetime(2026, 11, 18, 21, 0, tzinfo=UTC)
            conversation_id = repo.create_conversation(
                user_id,
                ConversationState(
                    flow="triage",
                    state="concluded",
                    answers=[AnswerRecord("where", ("calf",), started)],
                    findings={"loc_calf": True, "muscle_hard_knot": True},
                    conclusion=Conclusion(Pattern.LEG_CRAMPS, Urgency.SELF_CARE),
                    started_at=started,
                ),
            )
            repo.add_message(user_id, "in", "/check")
            repo.add_message(
                user_id, "in", "Calf", conversation_id=conversation_id, meta={"button": "x"}
            )
            for offset, pain in ((3, 5), (2, 8)):
                repo.diary.save_entry(
                    user_id,
                    TODAY - timedelta(days=offset),
                    values={"cramps": True, "cramp_count": 2, "worst_pain": pain, "wakeups": 1},
                    findings={"muscle_hard_knot": True},
                    red_flags=[],
                    backfilled=False,
                    conversation_id=None,
                )
            skipped = repo.diary.backfill_checkin(user_id, TODAY - timedelta(days=1), Clock()())
            assert repo.diary.skip(skipped.id)
            data = export_user(repo, user_id, exported_at=datetime(2026, 11, 20, 21, 0, tzinfo=UTC))
    finally:
        store.dispose()
    assert_valid(data)

    files = unzip(build_zip(data, since=None, zone=ZONE, name=None, fhir=None))

    assert_valid(json.loads(files["nightlegs-export.json"]))
    rows = csv_rows(files["diary-nights.csv"].decode("utf-8-sig"))
    assert [(r["night"], r["status"], r["worst_pain"]) for r in rows] == [
        ("2026-11-17", "logged", "5"),
        ("2026-11-18", "logged", "8"),
        ("2026-11-19", "skipped", ""),
    ]
    transcript = files["transcript.txt"].decode()
    assert "You:\n/check" in transcript and "You pressed the button:\nCalf" in transcript
    pages, text = pdf_text(files["doctor-summary.pdf"])
    assert 1 <= pages <= 2
    assert "Nights logged 2 of 3 asked" in text and "Worst cramp pain 8/10" in text
    assert "18 Nov 2026 A night leg cramp This can usually be handled at home" in text
    assert TELEGRAM_ID not in text
