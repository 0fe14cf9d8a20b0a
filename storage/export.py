"""Export: everything stored about one user, as a JSON-ready dict (schema: docs/export.schema.json).

A function over rows, so `/export` and an operator's command line share it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from storage.store import Repo

SCHEMA_VERSION = 5
"""2 added the diary (schedule, check-ins, entries) and typed answers; 3 the follow-ups; 4 the
note for the doctor kept with a check's result; 5 the language the person chose."""


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def export_user(repo: Repo, user_id: int, *, exported_at: datetime) -> dict[str, Any]:
    """The user's profile, conversations (answers, findings, conclusion), diary, follow-ups
    and transcript."""
    user = repo.user_by_id(user_id)
    conversations = []
    for conversation_id, state in repo.conversations(user_id):
        conversations.append(
            {
                "id": conversation_id,
                "flow": state.flow,
                "state": state.state,
                "started_at": _iso(state.started_at),
                "finished_at": _iso(state.finished_at),
                "answers": [
                    {
                        "question_id": a.question_id,
                        "option_ids": list(a.option_ids),
                        "answered_at": _iso(a.answered_at),
                        "text": a.text,
                    }
                    for a in state.answers
                ],
                "pending": list(state.pending),
                "findings": dict(sorted(state.findings.items())),
                "conclusion": None if state.conclusion is None else state.conclusion.as_dict(),
                "note": state.note,
            }
        )
    transcript = [
        {
            "at": _iso(m.created_at),
            "direction": m.direction,
            "text": m.text,
            "conversation_id": m.conversation_id,
            "meta": m.meta,
        }
        for m in repo.messages(user_id)
    ]
    schedule = repo.diary.schedule(user_id)
    diary = {
        "schedule": None
        if schedule is None
        else {
            "enabled": schedule.enabled,
            "local_time": schedule.local_time.strftime("%H:%M"),
            "timezone": schedule.zone,
            "next_night": _day(schedule.next_night),
            "paused_until": _day(schedule.paused_until),
        },
        "checkins": [
            {
                "night": c.night.isoformat(),
                "status": str(c.status),
                "due_at": _iso(c.due_at),
                "sent_at": _iso(c.sent_at),
                "backfill": c.backfill,
                "conversation_id": c.conversation_id,
            }
            for c in repo.diary.checkins(user_id)
        ],
        "entries": [
            {
                "night": e.night.isoformat(),
                "backfilled": e.backfilled,
                "values": e.values,
                "findings": dict(sorted(e.findings.items())),
                "red_flags": list(e.red_flags),
                "conversation_id": e.conversation_id,
                "created_at": _iso(e.created_at),
            }
            for e in repo.diary.entries(user_id)
        ],
    }
    followups = [
        {
            "conversation_id": f.conversation_id,
            "urgency": f.urgency,
            "status": str(f.status),
            "offered_at": _iso(f.offered_at),
            "decided_at": _iso(f.decided_at),
            "timezone": f.zone,
            "due_at": _iso(f.due_at),
            "sent_at": _iso(f.sent_at),
            "answer": f.answer,
            "answered_at": _iso(f.answered_at),
        }
        for f in repo.followups.of_user(user_id)
    ]
    return {
        "schema_version": SCHEMA_VERSION,
        "exported_at": _iso(exported_at),
        "user": {
            "channel": user.channel,
            "external_id": user.external_id,
            "language_code": user.language_code,
            "language": user.language,
            "country": user.country,
            "consent_at": _iso(user.consent_at),
            "created_at": _iso(user.created_at),
        },
        "conversations": conversations,
        "diary": diary,
        "followups": followups,
        "transcript": transcript,
    }
