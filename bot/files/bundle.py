"""The export bundle: a person's data as a ZIP of files they can keep or hand to a doctor.

Pure functions over the export dict that `storage.export.export_user` returns (schema:
docs/export.schema.json), with no Telegram and no database: `within` limits the dict to a
period, `diary_csv`, `transcript_text` and `readme_text` write one file each, and
`build_zip` puts them together with the doctor summary (`bot.files.pdf`) and, when the
caller has one, a FHIR bundle.

Dates of timestamps (when a conversation started, when a message was sent) are taken in the
person's time zone, as are all times printed; diary nights are already local dates.

Every file is in the person's language (`bot.files.language.lang_of`): the README, the
transcript's labels and times, the CSV's header row, the PDF. Ids, codes and the JSON stay
language-neutral. The CSV's header names the columns in words for whoever reads the table;
its cells are codes that are the same in every language (the README says so), and the JSON
is the file for programs.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Mapping
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from bot.files.language import documents, lang_of, stamp
from bot.files.pdf import doctor_pdf, local_time

JSON_FILE = "nightlegs-export.json"
CSV_FILE = "diary-nights.csv"
TRANSCRIPT_FILE = "transcript.txt"
PDF_FILE = "doctor-summary.pdf"
FHIR_FILE = "fhir-bundle.json"
README_FILE = "README.txt"

FILE_KEYS: dict[str, str] = {
    JSON_FILE: "json",
    CSV_FILE: "csv",
    TRANSCRIPT_FILE: "transcript",
    PDF_FILE: "pdf",
    FHIR_FILE: "fhir",
    README_FILE: "readme",
}
"""Each file's description in documents.yaml (`files`). File names stay the same in every
language, so a helper can find them."""
BOT = "nightlegs"
"""Who the bot is in the transcript: its name, the same in every language."""

CSV_COLUMNS = (
    "night",
    "status",
    "backfilled",
    "cramps",
    "restless",
    "foot_pain",
    "other",
    "cramp_count",
    "worst_pain",
    "restless_severity",
    "wakeups",
    "helped",
    "red_flags",
    "note",
    "timezone",
)
_VALUE_COLUMNS = (*CSV_COLUMNS[3:12], "note")
"""Columns read from an entry's `values`."""
_UNANSWERED = ("missed", "skipped")
"""Check-in statuses that make a row without an entry; skipped wins over missed."""


def within(data: Mapping[str, Any], *, since: date | None, zone: str = "UTC") -> dict[str, Any]:
    """`data` limited to `since` onwards (None: everything), still schema-valid.

    Keeps the conversations started on or after `since`, the diary check-ins and entries of
    nights from `since` on, the follow-ups offered and the messages sent from `since` on, dates
    taken in `zone`.
    Profile and diary schedule are kept as they are. The dict and the lists are new, the rows
    in them shared: neither is changed (a deep copy of two years took 0.3 s of an export).
    """
    limited = dict(data)
    if since is None:
        return limited
    tz = ZoneInfo(zone)

    def recent(stamp: str) -> bool:
        return local_time(stamp, tz).date() >= since

    limited["conversations"] = [c for c in limited["conversations"] if recent(c["started_at"])]
    limited["transcript"] = [m for m in limited["transcript"] if recent(m["at"])]
    limited["followups"] = [f for f in limited.get("followups", ()) if recent(f["offered_at"])]
    limited["diary"] = diary = dict(limited["diary"])
    for key in ("checkins", "entries"):
        diary[key] = [row for row in diary[key] if date.fromisoformat(row["night"]) >= since]
    return limited


def csv_header(lang: str) -> list[str]:
    """The CSV's header row: each column's name in `lang` (`CSV_COLUMNS` in that order)."""
    words = documents(lang)
    return [words.text("csv", column) for column in CSV_COLUMNS]


def diary_csv(data: Mapping[str, Any], zone: str, lang: str | None = None) -> str:
    """One row a night, oldest first: logged nights from entries, then missed or skipped ones.

    The header row names the columns in `lang` (default: the export's language). Booleans
    are "yes"/"no", lists are joined with ";", and an empty cell means the night did not
    record that field: codes, the same in every language.
    """
    lang = lang or lang_of(data)
    diary = data["diary"]
    entries = {e["night"]: e for e in diary["entries"]}
    unanswered: dict[str, str] = {}
    for checkin in diary["checkins"]:
        night, status = checkin["night"], checkin["status"]
        if status in _UNANSWERED and unanswered.get(night) != "skipped":
            unanswered[night] = status
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    csv.writer(out, lineterminator="\r\n").writerow(csv_header(lang))
    for night in sorted(entries.keys() | unanswered.keys()):
        row = dict.fromkeys(CSV_COLUMNS, "") | {"night": night, "timezone": zone}
        entry = entries.get(night)
        if entry is None:
            row["status"] = unanswered[night]
        else:
            row |= {
                "status": "logged",
                "backfilled": _cell(entry["backfilled"]),
                "red_flags": _cell(entry["red_flags"]),
            }
            row |= {key: _cell(entry["values"].get(key)) for key in _VALUE_COLUMNS}
        writer.writerow(row)
    return out.getvalue()


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ";".join(str(item) for item in value)
    return str(value)


def transcript_text(data: Mapping[str, Any], zone: str, lang: str | None = None) -> str:
    """Every message in stored order: when (in `zone`), who, and what was said or pressed.

    A button press is logged with the label the person saw as its text, so it is shown as
    the button they pressed. Labels and times are in `lang` (default: the export's).
    """
    lang = lang or lang_of(data)
    words = documents(lang)
    tz = ZoneInfo(zone)
    you = words.text("transcript", "you")
    parts = [
        f"{words.text('transcript', 'title')}\n"
        f"{words.text('transcript', 'times', zone=zone, you=you, bot=BOT)}"
    ]
    for message in data["transcript"]:
        when = f"{stamp(local_time(message['at'], tz), lang)} ({zone})"
        if message["direction"] == "out":
            who = BOT
        elif (message["meta"] or {}).get("button") is not None:
            who = words.text("transcript", "pressed")
        else:
            who = you
        parts.append(f"[{when}] {who}:\n{message['text']}")
    if not data["transcript"]:
        parts.append(words.text("transcript", "no_messages"))
    return "\n\n".join(parts) + "\n"


def readme_text(files: list[str], lang: str = "en") -> str:
    """What each of `files` holds, and what the bundle is and is not, in `lang`."""
    unknown = [name for name in files if name not in FILE_KEYS]
    if unknown:
        raise ValueError(f"no description for {unknown}")
    words = documents(lang)

    def about(name: str) -> str:
        text = words.text("files", FILE_KEYS[name])
        if name == CSV_FILE:
            text += "\n  " + words.text("files", "csv_codes")
        return text

    listing = "\n\n".join(f"{name}\n  {about(name)}" for name in files)
    return (
        f"{words.text('readme', 'title')}\n\n"
        f"{words.text('readme', 'about')}\n\n"
        f"{words.text('readme', 'files')}\n\n{listing}\n\n"
        f"{words.text('readme', 'private')}\n"
    )


def build_zip(
    data: Mapping[str, Any],
    *,
    since: date | None,
    zone: str,
    name: str | None,
    fhir: Mapping[str, Any] | None,
) -> bytes:
    """The bundle for the period from `since` (None: everything), times in `zone`.

    `name` is printed on the doctor summary only when given; `fhir`, a ready FHIR bundle,
    is added as its own file only when given. The summary's "today" is the export date.
    Every file is in the export's language.
    """
    limited = within(data, since=since, zone=zone)
    lang = lang_of(limited)
    exported = local_time(limited["exported_at"], ZoneInfo(zone))
    files: dict[str, bytes] = {
        JSON_FILE: _json(limited),
        CSV_FILE: diary_csv(limited, zone, lang).encode("utf-8-sig"),
        TRANSCRIPT_FILE: transcript_text(limited, zone, lang).encode(),
        PDF_FILE: doctor_pdf(limited, since=since, zone=zone, name=name, today=exported.date()),
    }
    if fhir is not None:
        files[FHIR_FILE] = _json(fhir)
    files[README_FILE] = readme_text([*files, README_FILE], lang).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for file_name, content in files.items():
            info = zipfile.ZipInfo(file_name, date_time=exported.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return buffer.getvalue()


def _json(value: Mapping[str, Any]) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode()
