"""Follow-ups after an `urgent` or `soon` result (spec v2 item 6): their words and when.

Pure: no storage, no sending. `FollowUpBook.due` turns a result's time into the moment the
follow-up is due, in UTC, from the person's local time: the next morning for `urgent`, a few
days later for `soon`, across daylight-saving changes (as `dialogs.nights` does for the diary).
The adapter stores the due moment, sends `question()` then, and answers with `reply()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from dialogs.advice import Advice
from dialogs.content import DIALOGS_DIR, MAX_LABEL, ContentError, Where
from dialogs.i18n import SOURCE, load_yaml
from dialogs.nights import next_due
from dialogs.vocabulary import Urgency

FOLLOWED_UP = (Urgency.URGENT, Urgency.SOON)
ANSWERS = ("seen", "not_yet", "changed")


@dataclass(frozen=True)
class Offer:
    """The question after a result: shall I follow up? With its two buttons."""

    text: str
    yes_label: str
    no_label: str


@dataclass(frozen=True)
class FollowUpQuestion:
    """The follow-up itself: "were you seen?" with its answers as (id, label)."""

    text: str
    options: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class FollowUpReply:
    """What to say to an answer; `new_check_label` is set when a new check is offered."""

    text: str
    new_check_label: str | None = None


class FollowUpBook:
    """The follow-up content of `dialogs/followup.yaml`, validated once."""

    def __init__(self, raw: Mapping[str, Any], source: str = "followup.yaml") -> None:
        where = Where(source)
        try:
            due = raw["due"]
            self.urgent_at = _clock(due["urgent"]["at"], where.at("due.urgent.at"))
            self.urgent_gap = timedelta(hours=float(due["urgent"]["at_least_hours"]))
            self.soon_at = _clock(due["soon"]["at"], where.at("due.soon.at"))
            self.soon_days = int(due["soon"]["after_days"])
            offer = raw["offer"]
            self._offers = {u: str(offer[str(u)]).strip() for u in FOLLOWED_UP}
            self.yes_label = str(offer["yes_label"]).strip()
            self.no_label = str(offer["no_label"]).strip()
            self.accepted = str(offer["accepted"]).strip()
            self.declined = str(offer["declined"]).strip()
            question = raw["question"]
            self._question = str(question["text"]).strip()
            self._options = tuple(
                (str(o["id"]), str(o["label"]).strip()) for o in question["options"]
            )
            replies = raw["replies"]
            self._seen = str(replies["seen"]).strip()
            self._not_yet = {u: str(replies["not_yet"][str(u)]).strip() for u in FOLLOWED_UP}
            self._changed = str(replies["changed"]).strip()
            self.new_check_label = str(replies["new_check_label"]).strip()
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ContentError(f"{source}: malformed follow-up content: {exc!r}") from exc
        if not 1 <= self.soon_days <= 14:
            raise where.at("due.soon.after_days").error("a few days: between 1 and 14")
        if not timedelta(0) <= self.urgent_gap < timedelta(hours=24):
            raise where.at("due.urgent.at_least_hours").error("between 0 and 24 hours")
        ids = tuple(i for i, _ in self._options)
        if sorted(ids) != sorted(ANSWERS):
            raise where.at("question.options").error(f"the answers are {list(ANSWERS)}")
        labels = [self.yes_label, self.no_label, self.new_check_label]
        labels += [label for _, label in self._options]
        too_long = [label for label in labels if not 0 < len(label) <= MAX_LABEL]
        if too_long:
            raise where.error(f"labels must be 1 to {MAX_LABEL} characters: {too_long}")

    @classmethod
    def load(cls, path: Path = DIALOGS_DIR / "followup.yaml", lang: str = SOURCE) -> FollowUpBook:
        """Read and check the file, its texts in `lang`."""
        try:
            raw = load_yaml(path, lang)
        except (OSError, yaml.YAMLError) as exc:
            raise ContentError(f"{path.name}: cannot read: {exc}") from exc
        return cls(raw, path.name)

    def offer(self, urgency: Urgency) -> Offer | None:
        """The opt-in offer after a result, or None when the urgency gets no follow-up."""
        if urgency not in FOLLOWED_UP:
            return None
        return Offer(self._offers[urgency], self.yes_label, self.no_label)

    def due(self, urgency: Urgency, concluded_at: datetime, zone: ZoneInfo) -> datetime | None:
        """When the follow-up of a result at `concluded_at` is due (UTC), or None.

        `urgent`: the first local `due.urgent.at` at least `at_least_hours` later (the next
        morning). `soon`: `after_days` local days later at `due.soon.at`. A wall time that does
        not exist that day (spring forward) maps as `fold=0` does; one that happens twice
        (fall back) counts its first occurrence.
        """
        if concluded_at.tzinfo is None or concluded_at.utcoffset() is None:
            raise ValueError(f"naive datetime {concluded_at!r}: pass a timezone-aware one")
        if urgency is Urgency.URGENT:
            # In UTC: aware arithmetic in a zone is wall-clock time, and across a daylight
            # saving change "3 hours later" would be 2 or 4 real hours.
            earliest = concluded_at.astimezone(UTC) + self.urgent_gap
            return next_due(self.urgent_at, zone, earliest)[1]
        if urgency is Urgency.SOON:
            day = concluded_at.astimezone(zone).date() + timedelta(days=self.soon_days)
            wall = datetime.combine(day, self.soon_at.replace(fold=0), tzinfo=zone)
            return wall.astimezone(UTC)
        return None

    def question(self, advice: Advice) -> FollowUpQuestion:
        """The follow-up question about the advice the person was given."""
        return FollowUpQuestion(self._question.format(headline=advice.headline), self._options)

    def reply(self, answer: str, advice: Advice) -> FollowUpReply:
        """What to say to an answer: the advice again when not yet seen; a new check offered
        when things changed (and when not yet seen, in case things changed too)."""
        if answer == "seen":
            return FollowUpReply(self._seen)
        if answer == "not_yet":
            template = self._not_yet.get(advice.urgency, self._not_yet[Urgency.SOON])
            parts = template.format(headline=advice.headline, action=advice.action)
            if advice.at_night:
                parts += "\n" + advice.at_night
            return FollowUpReply(parts, self.new_check_label)
        if answer == "changed":
            return FollowUpReply(self._changed, self.new_check_label)
        raise ValueError(f"{answer!r} is not a follow-up answer ({list(ANSWERS)})")


def _clock(raw: Any, where: Where) -> time:
    try:
        hours, minutes = str(raw).split(":")
        return time(int(hours), int(minutes))
    except ValueError as exc:
        raise where.error(f"{raw!r} is not a time like 09:00") from exc
