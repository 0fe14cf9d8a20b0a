"""Export: everything stored about one user, as a JSON-ready dict (schema: docs/export.schema.json).

A function over rows, so `/export` and an operator's command line share it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from storage.store import Repo

SCHEMA_VERSION = 1


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def export_user(repo: Repo, user_id: int, *, exported_at: datetime) -> dict[str, Any]:
    """The user's profile, conversations (answers, findings, conclusion) and transcript."""
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
    return {
        "schema_version": SCHEMA_VERSION,
        "exported_at": _iso(exported_at),
        "user": {
            "channel": user.channel,
            "external_id": user.external_id,
            "language_code": user.language_code,
            "country": user.country,
            "consent_at": _iso(user.consent_at),
            "created_at": _iso(user.created_at),
        },
        "conversations": conversations,
        "transcript": transcript,
    }
