"""Advice: turns a conclusion into what the person reads, from `dialogs/advice.yaml`.

The wording is content; this module only picks the pieces that apply and fills in the
emergency number. It is pure: adapters decide how to lay the text out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dialogs.content import DIALOGS_DIR, Condition, ContentError, Where, parse_condition
from dialogs.records import Conclusion
from dialogs.vocabulary import RED_FLAGS, Pattern, Urgency


@dataclass(frozen=True)
class Advice:
    """The parts of a conclusion message, in reading order."""

    urgency: Urgency
    headline: str
    action: str
    pattern_name: str
    looks_like: str
    why: tuple[str, ...]
    helps_now: tuple[str, ...]
    notes: tuple[str, ...]
    watch_heading: str
    watch_for: tuple[str, ...]
    where_to_get_help: str
    not_a_diagnosis: str

    @property
    def helps_heading(self) -> str:
        if self.urgency is Urgency.EMERGENCY:
            return "While you wait for help:"
        return "What can help right now:"

    def as_text(self) -> str:
        """Plain text for any adapter: short paragraphs and bullet lists."""
        parts = [
            self.headline,
            self.action,
            f"What this looks like: {self.pattern_name}. {self.looks_like}",
        ]
        if self.why:
            parts.append("Why: " + "; ".join(self.why) + ".")
        if self.helps_now:
            parts.append(self.helps_heading + "\n" + _bullets(self.helps_now))
        parts.extend(self.notes)
        if self.watch_for:
            parts.append(self.watch_heading + "\n" + _bullets(self.watch_for))
        parts += [self.where_to_get_help, self.not_a_diagnosis]
        return "\n\n".join(parts)


def _bullets(items: tuple[str, ...]) -> str:
    return "\n".join(f"• {item}" for item in items)


@dataclass(frozen=True)
class _Note:
    when: Condition
    text: str


class AdviceBook:
    """All advice content, validated once at start-up."""

    def __init__(self, raw: Mapping[str, Any], source: str = "advice.yaml") -> None:
        try:
            self._urgency = {Urgency(k): v for k, v in raw["urgency"].items()}
            self._patterns = {Pattern(k): v for k, v in raw["patterns"].items()}
            self._reasons: dict[str, str] = dict(raw["reasons"])
            self._notes = [
                _Note(parse_condition(n["when"], Where(source, f"notes[{i}]")), n["text"].strip())
                for i, n in enumerate(raw.get("notes", []))
            ]
            self._help = raw["where_to_get_help"]
            self._disclaimer: str = raw["not_a_diagnosis"].strip()
            self._unsure_hint: str = raw["unsure_hint"].strip()
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ContentError(f"{source}: malformed advice content: {exc!r}") from exc
        missing = [str(u) for u in Urgency if u not in self._urgency]
        missing += [str(p) for p in Pattern if p not in self._patterns]
        missing += [
            f"reasons.{r}" for r in (*RED_FLAGS, *map(str, Pattern)) if r not in self._reasons
        ]
        if missing:
            raise ContentError(f"{source}: missing advice for {missing}")

    @classmethod
    def load(cls, path: Path = DIALOGS_DIR / "advice.yaml") -> AdviceBook:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ContentError(f"{path.name}: cannot read: {exc}") from exc
        return cls(raw, path.name)

    def reason_text(self, reason: str) -> str:
        return self._reasons.get(reason, reason.replace("_", " "))

    def emergency_line(self, emergency_number: str | None) -> str:
        if emergency_number:
            return self._help["known_country"].format(emergency_number=emergency_number).strip()
        return self._help["unknown_country"].strip()

    def advise(
        self,
        conclusion: Conclusion,
        findings: Mapping[str, bool],
        *,
        emergency_number: str | None = None,
    ) -> Advice:
        """The advice for a conclusion, with notes that match the findings."""
        number = emergency_number or "your local emergency number (112, 911, 999 or 000)"
        level = self._urgency[conclusion.urgency]
        pattern = self._patterns[conclusion.pattern]
        notes = [n.text for n in self._notes if n.when(findings)]
        if any(r.endswith("_unsure") for r in conclusion.reasons):
            notes.append(self._unsure_hint)
        emergency = conclusion.urgency is Urgency.EMERGENCY
        helps = level["while_waiting"] if emergency else pattern.get("helps_now", [])
        return Advice(
            urgency=conclusion.urgency,
            headline=level["headline"].strip(),
            action=level["action"].strip().format(emergency_number=number),
            pattern_name=pattern["name"].strip(),
            looks_like=pattern["looks_like"].strip(),
            why=self._why(conclusion),
            helps_now=tuple(s.strip() for s in helps),
            notes=tuple(notes),
            watch_heading=level.get("watch_heading", "").format(emergency_number=number),
            watch_for=tuple(s.strip() for s in (level if emergency else pattern)["watch_for"]),
            where_to_get_help=self.emergency_line(emergency_number),
            not_a_diagnosis=self._disclaimer,
        )

    def _why(self, conclusion: Conclusion) -> tuple[str, ...]:
        reasons = list(conclusion.red_flags) + [
            r for r in conclusion.reasons if not (conclusion.red_flags and r in set(Pattern))
        ]
        return tuple(dict.fromkeys(self.reason_text(r) for r in reasons))
