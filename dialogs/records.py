"""Plain records that cross the engine's boundary: what storage saves and adapters show.

They hold only standard types, so storage can persist them and tests can build them without
the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from dialogs.vocabulary import Pattern, Urgency

# Final states of every flow. A conversation in one of these takes no more answers.
CONCLUDED = "concluded"
EMERGENCY = "emergency"
ESCALATED = "escalated"
"""A flow with `stop_when: red_flag` (the diary) stopped at a red flag."""
CANCELLED = "cancelled"
FINAL_STATES: frozenset[str] = frozenset({CONCLUDED, EMERGENCY, ESCALATED, CANCELLED})


@dataclass(frozen=True)
class Conclusion:
    """The spec's conclusion: pattern, urgency and the red flags that drove it."""

    pattern: Pattern
    urgency: Urgency
    red_flags: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    """Spec ids of the findings (or rule names) that led here, for the 'why' in the advice."""

    def as_dict(self) -> dict[str, object]:
        return {
            "pattern": str(self.pattern),
            "urgency": str(self.urgency),
            "red_flags": list(self.red_flags),
        }


@dataclass(frozen=True)
class AnswerRecord:
    """One answered question: which options were chosen (or the text typed), and when (UTC)."""

    question_id: str
    option_ids: tuple[str, ...]
    answered_at: datetime
    text: str | None = None


@dataclass
class ConversationState:
    """Everything needed to resume a conversation exactly where it was.

    `state` is the current question id, or one of FINAL_STATES. `pending` holds the options
    ticked so far on an open multi-answer question. `findings` is derived from `answers` and
    kept so that stored rows can be read and exported without the engine.
    """

    flow: str
    state: str
    answers: list[AnswerRecord] = field(default_factory=list)
    pending: tuple[str, ...] = ()
    findings: dict[str, bool] = field(default_factory=dict)
    conclusion: Conclusion | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    note: str | None = None
    """Spec v3 item 10: the person's note for their doctor, kept with the result. Stored
    apart from the engine's state (`Repo.set_note`): saving a step never changes it."""

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES
