"""Tests of bot/files/fhir.py: a real export, turned into FHIR and checked by a FHIR validator.

The validator is `fhir.resources` 8 with its R4B models (`fhir.resources.R4B`). R4B is a
technical correction of R4 (4.0.1): Bundle and QuestionnaireResponse have the same elements,
cardinalities and value[x] choices in both, so a Bundle that R4B accepts and that uses only R4
elements (checked against R4's element lists below) is valid R4. The models check structure,
types and primitive formats but not required code bindings, so the statuses are checked here.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from pydantic import ValidationError

from bot.files.fhir import (
    PATTERN_SYSTEM,
    RED_FLAG_SYSTEM,
    URGENCY_SYSTEM,
    fhir_bundle,
    questionnaire_url,
)
from dialogs.records import CANCELLED, CONCLUDED, ESCALATED, Conclusion, ConversationState
from dialogs.vocabulary import FINDINGS, Pattern, Urgency
from storage import Store
from storage.export import export_user

T0 = datetime(2026, 3, 1, 2, 30, tzinfo=UTC)
TELEGRAM_ID = "987654321"

# R4 (4.0.1) elements of the resources and backbone elements the export may use.
R4_BUNDLE = {"id", "meta", "implicitRules", "language", "identifier", "type", "timestamp"}
R4_BUNDLE |= {"total", "link", "entry", "signature", "resourceType"}
R4_BUNDLE_ENTRY = {"id", "extension", "link", "fullUrl", "resource", "search", "request"}
R4_BUNDLE_ENTRY |= {"response"}
R4_RESPONSE = {"id", "meta", "implicitRules", "language", "text", "contained", "extension"}
R4_RESPONSE |= {"identifier", "basedOn", "partOf", "questionnaire", "status", "subject"}
R4_RESPONSE |= {"encounter", "authored", "author", "source", "item", "resourceType"}
R4_ITEM = {"id", "extension", "linkId", "definition", "text", "answer", "item"}
R4_ANSWER_VALUES = {"valueBoolean", "valueDecimal", "valueInteger", "valueDate"}
R4_ANSWER_VALUES |= {"valueDateTime", "valueTime", "valueString", "valueUri"}
R4_ANSWER_VALUES |= {"valueAttachment", "valueCoding", "valueQuantity", "valueReference"}
R4_RESPONSE_STATUS = {"in-progress", "completed", "amended", "entered-in-error", "stopped"}

TRIAGE_FINDINGS = {"muscle_hard_knot": True, "toes_pulled": True, "loc_calf": True}
TRIAGE_FINDINGS |= {"smoker": False, "chest_pain_or_breathless": False}
NIGHT_VALUES = {"cramps": True, "restless": False, "cramp_count": 2, "worst_pain": 8}
NIGHT_VALUES |= {"helped": ["stretching", "walking"], "note": "right calf, 3 am"}


class Clock:
    """A clock that moves one minute forward on every reading."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store.open(database_url, clock=Clock())
    yield store
    store.dispose()


def triage(
    state: str, findings: dict[str, bool], conclusion: Conclusion | None = None
) -> ConversationState:
    return ConversationState(
        flow="triage", state=state, findings=findings, conclusion=conclusion, started_at=T0
    )


def export(store: Store, external_id: str = TELEGRAM_ID) -> dict[str, Any]:
    """A user with three triages (concluded, cancelled, open) and two diary nights."""
    with store.transaction() as repo:
        user = repo.user("telegram", external_id)
        if not repo.conversations(user.id):
            cramps = Conclusion(Pattern.LEG_CRAMPS, Urgency.SELF_CARE)
            repo.create_conversation(user.id, triage(CONCLUDED, TRIAGE_FINDINGS, cramps))
            repo.create_conversation(user.id, triage(CANCELLED, {"smoker": True}))
            repo.create_conversation(user.id, triage("feeling", {}))
            flag = "chest_pain_or_breathless"
            escalated = ConversationState(
                flow="diary",
                state=ESCALATED,
                findings={"urge_to_move": True, flag: True},
                conclusion=Conclusion(Pattern.UNCLEAR, Urgency.EMERGENCY, (flag,)),
            )
            escalated_id = repo.create_conversation(user.id, escalated)
            repo.diary.save_entry(
                user.id,
                date(2026, 2, 27),
                values={"restless": True},
                findings={"urge_to_move": True, flag: True},
                red_flags=[flag],
                backfilled=False,
                conversation_id=escalated_id,
            )
            repo.diary.save_entry(
                user.id,
                date(2026, 2, 28),
                values=NIGHT_VALUES,
                findings={"muscle_hard_knot": True},
                red_flags=[],
                backfilled=True,
                conversation_id=None,
            )
        return export_user(repo, user.id, exported_at=datetime.now(UTC))


def responses(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in bundle["entry"]]


def answers(response: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {item["linkId"]: item["answer"] for item in response.get("item", [])}


def test_the_bundle_is_valid_fhir_and_uses_only_r4_elements(store: Store) -> None:
    bundle = fhir_bundle(export(store))

    parsed = Bundle.model_validate(bundle)

    assert parsed.type == "collection"
    assert all(isinstance(e.resource, QuestionnaireResponse) for e in parsed.entry)
    assert json.loads(json.dumps(bundle)) == bundle, "plain JSON"
    assert set(bundle) <= R4_BUNDLE
    for entry in bundle["entry"]:
        assert set(entry) <= R4_BUNDLE_ENTRY
        assert set(entry["resource"]) <= R4_RESPONSE
        assert entry["resource"]["status"] in R4_RESPONSE_STATUS
        for item in entry["resource"].get("item", []):
            assert set(item) <= R4_ITEM
            for answer in item["answer"]:
                assert len(answer) == 1
                assert set(answer) <= R4_ANSWER_VALUES


def test_one_response_per_triage_and_per_diary_night_with_every_finding(store: Store) -> None:
    data = export(store)
    bundle = fhir_bundle(data)

    triages = [c for c in data["conversations"] if c["flow"] == "triage"]
    nights = data["diary"]["entries"]
    found = responses(bundle)
    assert len(found) == len(triages) + len(nights) == 5
    for response, source in zip(found, [*triages, *nights], strict=True):
        finding_items = {
            link_id: answer
            for link_id, answer in answers(response).items()
            if not link_id.startswith(("conclusion.", "diary."))
        }
        assert set(finding_items) <= FINDINGS
        assert finding_items == {k: [{"valueBoolean": v}] for k, v in source["findings"].items()}
    assert [r["questionnaire"] for r in found] == [questionnaire_url("triage")] * 3 + [
        questionnaire_url("diary")
    ] * 2
    assert questionnaire_url("triage") == "https://nightlegs.invalid/fhir/Questionnaire/triage|3"


def test_triage_status_authored_and_conclusion(store: Store) -> None:
    data = export(store)
    concluded, cancelled, open_ = responses(fhir_bundle(data))[:3]
    conversations = data["conversations"]

    assert [concluded["status"], cancelled["status"], open_["status"]] == [
        "completed",
        "stopped",
        "in-progress",
    ]
    assert concluded["authored"] == conversations[0]["finished_at"]
    assert open_["authored"] == conversations[2]["started_at"]
    assert "item" not in open_, "FHIR JSON has no empty arrays"
    items = answers(concluded)
    assert items["conclusion.pattern"] == [
        {
            "valueCoding": {
                "system": PATTERN_SYSTEM,
                "code": "leg_cramps",
                "display": "A night leg cramp",
            }
        }
    ]
    assert items["conclusion.urgency"] == [
        {
            "valueCoding": {
                "system": URGENCY_SYSTEM,
                "code": "self_care",
                "display": "This can usually be handled at home",
            }
        }
    ]
    assert "conclusion.red_flags" not in items
    assert not any(link_id.startswith("conclusion.") for link_id in answers(cancelled))


def test_diary_nights_carry_their_fields_and_the_red_flag_conclusion(store: Store) -> None:
    data = export(store)
    flagged, plain = responses(fhir_bundle(data))[3:]

    assert plain["status"] == "completed"
    assert plain["authored"] == data["diary"]["entries"][1]["created_at"]
    items = answers(plain)
    assert items["diary.night"] == [{"valueDate": "2026-02-28"}]
    assert items["diary.backfilled"] == [{"valueBoolean": True}]
    assert items["diary.cramps"] == [{"valueBoolean": True}]
    assert items["diary.restless"] == [{"valueBoolean": False}]
    assert items["diary.worst_pain"] == [{"valueInteger": 8}]
    assert items["diary.helped"] == [{"valueString": "stretching"}, {"valueString": "walking"}]
    assert items["diary.note"] == [{"valueString": "right calf, 3 am"}]
    assert not any(link_id.startswith("conclusion.") for link_id in items)

    items = answers(flagged)
    assert items["conclusion.urgency"] == [
        {
            "valueCoding": {
                "system": URGENCY_SYSTEM,
                "code": "emergency",
                "display": "Get emergency help now",
            }
        }
    ]
    assert items["conclusion.red_flags"] == [
        {
            "valueCoding": {
                "system": RED_FLAG_SYSTEM,
                "code": "chest_pain_or_breathless",
                "display": "chest pain or breathlessness",
            }
        }
    ]


def test_no_telegram_id_and_deterministic_full_urls(store: Store) -> None:
    first = fhir_bundle(export(store))
    again = fhir_bundle(export(store))
    other = fhir_bundle(export(store, external_id="123456789"))

    assert TELEGRAM_ID not in json.dumps(first)
    assert all("subject" not in r and "source" not in r for r in responses(first))
    urls = [e["fullUrl"] for e in first["entry"]]
    assert urls == [e["fullUrl"] for e in again["entry"]]
    assert len(set(urls)) == len(urls)
    assert all(url.startswith("urn:uuid:") for url in urls)
    assert not set(urls) & {e["fullUrl"] for e in other["entry"]}


def test_the_validator_rejects_malformed_responses(store: Store) -> None:
    bundle = fhir_bundle(export(store))

    two_values = copy.deepcopy(bundle)
    two_values["entry"][0]["resource"]["item"][0]["answer"][0]["valueString"] = "yes"
    bad_date = copy.deepcopy(bundle)
    answers(bad_date["entry"][4]["resource"])["diary.night"][0]["valueDate"] = "2026-13-01"
    unknown_element = copy.deepcopy(bundle)
    unknown_element["entry"][0]["resource"]["telegramId"] = TELEGRAM_ID

    for malformed in (two_values, bad_date, unknown_element):
        with pytest.raises(ValidationError):
            Bundle.model_validate(malformed)


def test_ids_outside_the_vocabulary_are_refused(store: Store) -> None:
    data = export(store)
    data["conversations"][0]["findings"]["made_up"] = True
    with pytest.raises(ValueError, match="made_up"):
        fhir_bundle(data)


def test_a_user_with_nothing_gives_an_empty_collection(store: Store) -> None:
    with store.transaction() as repo:
        user = repo.user("telegram", "5")
        data = export_user(repo, user.id, exported_at=datetime.now(UTC))

    bundle = fhir_bundle(data)

    assert bundle == {
        "resourceType": "Bundle",
        "language": "en",
        "type": "collection",
        "timestamp": data["exported_at"],
    }
    Bundle.model_validate(bundle)


def one_emergency_check(findings: set[str], pattern: str, red_flags: list[str]) -> dict[str, Any]:
    """The FHIR items of a bundle holding one emergency check with these findings said yes."""
    data = {
        "exported_at": "2025-03-01T03:00:00+00:00",
        "user": {"channel": "telegram", "external_id": "1", "created_at": "2025-03-01T02:00:00"},
        "conversations": [
            {
                "id": 1,
                "flow": "triage",
                "state": "emergency",
                "started_at": "2025-03-01T02:00:00+00:00",
                "finished_at": "2025-03-01T02:01:00+00:00",
                "findings": dict.fromkeys(sorted(findings), True),
                "conclusion": {"pattern": pattern, "urgency": "emergency", "red_flags": red_flags},
            }
        ],
        "diary": {"entries": []},
    }
    [entry] = fhir_bundle(data)["entry"]
    return {i["linkId"]: i["answer"] for i in entry["resource"]["item"]}


def test_the_spec_v2_findings_are_link_ids_and_infection_a_red_flag_code() -> None:
    v2 = {"infection_signs", "loc_knee_back", "loc_shin", "loc_buttock_hip", "male", "female"}
    items = one_emergency_check(v2, "unclear", ["infection_signs"])
    assert v2 <= set(items)
    assert items["conclusion.red_flags"][0]["valueCoding"]["code"] == "infection_signs"


def test_the_spec_v3_findings_are_link_ids_and_sciatica_a_pattern_code() -> None:
    v3 = {"stroke_signs", "leg_weakness_sudden", "cauda_equina_signs", "muscle_breakdown_signs"}
    v3 |= {"shooting_down_leg", "back_pain", "onset_recent", "one_leg", "lump_behind_knee"}
    flags = ["cauda_equina_signs", "muscle_breakdown_signs"]
    items = one_emergency_check(v3, "nerve_root_pain", flags)
    assert v3 <= set(items)
    assert [a["valueCoding"]["code"] for a in items["conclusion.red_flags"]] == flags
    assert items["conclusion.pattern"][0]["valueCoding"]["code"] == "nerve_root_pain"


def test_items_and_codings_say_what_they_are_in_english(store: Store) -> None:
    bundle = fhir_bundle(export(store))
    concluded, *_, plain = responses(bundle)

    assert bundle["language"] == "en"
    assert {r["language"] for r in responses(bundle)} == {"en"}
    texts = {item["linkId"]: item.get("text") for item in concluded["item"]}
    assert texts["muscle_hard_knot"] == "muscle rock-hard or knotted during it"
    assert texts["conclusion.pattern"] == "What it looked like"
    texts = {item["linkId"]: item.get("text") for item in plain["item"]}
    assert texts["diary.night"] == "Night"
    assert texts["diary.worst_pain"] == "Worst pain (0-10)"
    assert all(texts.values()), "every item says what it is"
