"""An HL7 FHIR R4 view of one person's export, for taking their answers to a clinician's system.

`fhir_bundle` turns the dict of `storage.export.export_user` (docs/export.schema.json) into a
Bundle of type "collection", as plain JSON: one QuestionnaireResponse per triage conversation
and one per diary night. Item linkIds speak the clinical spec's ids:

- a finding's own id (`dialogs.vocabulary.FINDINGS`), answered with valueBoolean;
- "conclusion.pattern", "conclusion.urgency", "conclusion.red_flags": valueCoding in the
  nightlegs code systems, the spec ids as codes;
- "note.for_doctor" (valueString): the person's own words for their doctor, kept with the
  result (spec v3 item 10);
- for a diary night, "diary.night" (valueDate), "diary.backfilled" (valueBoolean) and
  "diary.<field>" for the fields of dialogs/diary.yaml (valueBoolean, valueInteger or
  valueString; a list field gives one answer per element).

Codes and linkIds are language-neutral; what a person reads is in their language (the export's,
`bot.files.language.lang_of`): each item's `text` (a finding in a clinician's words, a diary
field's name), each coding's `display` (the pattern and urgency as the advice words them, a red
flag's words), and every resource's `language` ("de", "pt-BR", ...).

Nobody is named: there is no subject and no Telegram id. Each fullUrl is a uuid5 of the user's
record (channel, id and creation time, so the id cannot be found again by trying every
Telegram id) and the conversation or night, so exporting the same data twice gives the same
URLs.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from functools import cache
from typing import Any

from bot.files.language import (
    FHIR_LANGUAGE,
    documents,
    lang_of,
    pattern_words,
    urgency_words,
)
from dialogs.content import load_flow
from dialogs.records import CANCELLED, FINAL_STATES
from dialogs.vocabulary import FINDINGS, RED_FLAGS, Pattern, Urgency
from dialogs.words import Words

BASE_URL = "https://nightlegs.invalid/fhir"
PATTERN_SYSTEM = f"{BASE_URL}/CodeSystem/pattern"
URGENCY_SYSTEM = f"{BASE_URL}/CodeSystem/urgency"
RED_FLAG_SYSTEM = f"{BASE_URL}/CodeSystem/red-flag"
NOTE_LINK_ID = "note.for_doctor"
"""The item holding the person's note for their doctor (spec v3 item 10)."""
TRIAGE = "triage"
DIARY = "diary"

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, BASE_URL)

Json = dict[str, Any]


@cache
def questionnaire_url(flow: str) -> str:
    """The versioned canonical URL of a dialog flow, e.g. ".../Questionnaire/triage|1"."""
    return f"{BASE_URL}/Questionnaire/{flow}|{load_flow(flow).version}"


def fhir_bundle(data: Mapping[str, Any]) -> Json:
    """A FHIR R4 Bundle (type "collection") of QuestionnaireResponses for one user's export.

    Triage conversations come first, oldest first, then diary nights by date. Raises
    ValueError for an id outside the spec's vocabulary or a diary value FHIR cannot carry.
    """
    user = data["user"]
    lang = lang_of(data)
    texts = _Texts(lang)
    user_key = f"{user['channel']}/{user['external_id']}/{user['created_at']}"
    conversations = data["conversations"]
    conclusions = {c["id"]: c["conclusion"] for c in conversations}
    entries = [
        _entry(user_key, f"conversation/{c['id']}", _triage_response(c, texts))
        for c in conversations
        if c["flow"] == TRIAGE
    ]
    entries += [
        _entry(
            user_key,
            f"night/{e['night']}",
            _night_response(e, conclusions.get(e["conversation_id"]), texts),
        )
        for e in data["diary"]["entries"]
    ]
    return _without_empty(
        {
            "resourceType": "Bundle",
            "language": texts.code,
            "type": "collection",
            "timestamp": data["exported_at"],
            "entry": entries,
        }
    )


class _Texts:
    """The words of one language for the bundle's items and codings."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.code = FHIR_LANGUAGE[lang]
        self.words: Words = documents(lang)

    def finding(self, finding: str) -> str:
        return self.words.text("findings", finding)

    def item(self, link_id: str) -> str | None:
        """The text of an item that is not a finding, or None."""
        section, _, key = link_id.partition(".")
        if link_id == NOTE_LINK_ID:
            return self.words.text("fhir", "note")
        if section == "conclusion":
            return self.words.text("fhir", key)
        if link_id in ("diary.night", "diary.backfilled"):
            return self.words.text("fhir", key)
        if section == DIARY and key in self.words.section("csv"):
            return self.words.text("csv", key)
        return None


def _entry(user_key: str, local_key: str, resource: Json) -> Json:
    return {
        "fullUrl": f"urn:uuid:{uuid.uuid5(_NAMESPACE, f'{user_key}/{local_key}')}",
        "resource": resource,
    }


def _status(state: str) -> str:
    if state == CANCELLED:
        return "stopped"
    return "completed" if state in FINAL_STATES else "in-progress"


def _triage_response(conversation: Mapping[str, Any], texts: _Texts) -> Json:
    conclusion = conversation["conclusion"] or {}
    items = _finding_items(conversation["findings"], texts) + _conclusion_items(
        conclusion.get("pattern"),
        conclusion.get("urgency"),
        conclusion.get("red_flags", ()),
        texts,
    )
    note = conversation.get("note")
    if note:
        items.append(_item(NOTE_LINK_ID, [{"valueString": note}], texts.item(NOTE_LINK_ID)))
    return _without_empty(
        {
            "resourceType": "QuestionnaireResponse",
            "language": texts.code,
            "questionnaire": questionnaire_url(TRIAGE),
            "status": _status(conversation["state"]),
            "authored": conversation["finished_at"] or conversation["started_at"],
            "item": items,
        }
    )


def _night_response(
    entry: Mapping[str, Any], conclusion: Mapping[str, Any] | None, texts: _Texts
) -> Json:
    """A diary night; `conclusion` is that of its check-in conversation (set at a red flag)."""
    conclusion = conclusion or {}
    fields = [
        ("diary.night", [{"valueDate": entry["night"]}]),
        ("diary.backfilled", [{"valueBoolean": entry["backfilled"]}]),
    ]
    fields += [
        (f"diary.{name}", answers)
        for name, value in sorted(entry["values"].items())
        if (answers := _answers(value))
    ]
    items = [_item(link_id, answers, texts.item(link_id)) for link_id, answers in fields]
    items += _finding_items(entry["findings"], texts)
    items += _conclusion_items(
        conclusion.get("pattern"), conclusion.get("urgency"), entry["red_flags"], texts
    )
    return {
        "resourceType": "QuestionnaireResponse",
        "language": texts.code,
        "questionnaire": questionnaire_url(DIARY),
        "status": "completed",
        "authored": entry["created_at"],
        "item": items,
    }


def _finding_items(findings: Mapping[str, bool], texts: _Texts) -> list[Json]:
    return [
        _item(
            _known(finding, FINDINGS, "finding"),
            [{"valueBoolean": value}],
            texts.finding(finding),
        )
        for finding, value in sorted(findings.items())
    ]


def _conclusion_items(
    pattern: str | None, urgency: str | None, red_flags: Sequence[str], texts: _Texts
) -> list[Json]:
    lang = texts.lang
    answers = {
        "conclusion.pattern": []
        if pattern is None
        else [_coding(PATTERN_SYSTEM, Pattern(pattern), pattern_words(Pattern(pattern), lang))],
        "conclusion.urgency": []
        if urgency is None
        else [_coding(URGENCY_SYSTEM, Urgency(urgency), urgency_words(Urgency(urgency), lang))],
        "conclusion.red_flags": [
            _coding(
                RED_FLAG_SYSTEM,
                _known(flag, RED_FLAGS, "red flag"),
                texts.finding(flag),
            )
            for flag in red_flags
        ],
    }
    return [
        _item(link_id, values, texts.item(link_id)) for link_id, values in answers.items() if values
    ]


def _answers(value: object) -> list[Json]:
    """One answer per value (per element of a list); an empty string says nothing."""
    values = value if isinstance(value, list) else [value]
    return [_value(v) for v in values if v != ""]


def _value(value: object) -> Json:
    if isinstance(value, bool):
        return {"valueBoolean": value}
    if isinstance(value, int):
        return {"valueInteger": value}
    if isinstance(value, str):
        return {"valueString": value}
    raise ValueError(f"diary value {value!r} is not a boolean, integer or string")


def _coding(system: str, code: str, display: str) -> Json:
    return {"valueCoding": {"system": system, "code": str(code), "display": display}}


def _item(link_id: str, answers: list[Json], text: str | None = None) -> Json:
    item: Json = {"linkId": link_id}
    if text is not None:
        item["text"] = text
    item["answer"] = answers
    return item


def _known(value: str, known: Collection[str], what: str) -> str:
    if value not in known:
        raise ValueError(f"{value!r} is not a {what} id of the clinical spec")
    return value


def _without_empty(resource: Json) -> Json:
    """FHIR JSON has no empty arrays: leave such elements out."""
    return {key: value for key, value in resource.items() if value != []}
