"""Advice: turns a conclusion into what the person reads, from `dialogs/advice.yaml`.

The wording is content; this module only picks the pieces that apply and fills in the
emergency number. It is pure: adapters lay out the `sections()` of an `Advice`.

Spec v2 ("what the person reads must match what the rules decided"):
- every red flag that drove a result gets its own block (what it can mean, what to do now);
  when a red flag is the message, the pattern does not lead;
- the safety net is grouped by each sign's own level, under that level's heading, and never
  offers as a future trigger what the person has already said yes to;
- an `urgent` result says what to do now if it is night.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from dialogs.content import DIALOGS_DIR, Condition, ContentError, Where, parse_condition
from dialogs.records import Conclusion
from dialogs.vocabulary import FINDINGS, RED_FLAG_MINIMUM, RED_FLAGS, Pattern, Urgency


@dataclass(frozen=True)
class FlagBlock:
    """What one red flag can mean and what to do while help comes (spec v2 item 1)."""

    flag: str
    title: str
    means: str
    do: tuple[str, ...]


@dataclass(frozen=True)
class Sign:
    """A safety-net sign: what would call for more, and how much more (`level`)."""

    id: str
    text: str
    level: Urgency
    about: tuple[str, ...] = ()
    slow: bool = False
    """It takes days to show (a sore that does not heal): never an "at once" sign."""


@dataclass(frozen=True)
class SignGroup:
    """Signs of one level under that level's heading."""

    level: Urgency
    heading: str
    signs: tuple[Sign, ...]


@dataclass(frozen=True)
class Section:
    """One block of a message: an optional title line, a lead-in and text, and bullets."""

    title: str = ""
    lead: str = ""
    text: str = ""
    bullets: tuple[str, ...] = ()
    fine_print: bool = False

    def as_text(self) -> str:
        lines = [self.title] if self.title else []
        body = " ".join(part for part in (self.lead, self.text) if part)
        lines += [body] if body else []
        lines += [f"• {item}" for item in self.bullets]
        return "\n".join(lines)


@dataclass(frozen=True)
class Advice:
    """The parts of a conclusion message; `sections()` gives them in reading order."""

    urgency: Urgency
    headline: str
    action: str
    pattern_name: str
    """Empty when a red flag is the message (spec v2 item 1)."""
    looks_like: str
    why: tuple[str, ...]
    helps_now: tuple[str, ...]
    notes: tuple[str, ...]
    safety_net: tuple[SignGroup, ...]
    where_to_get_help: str
    not_a_diagnosis: str
    red_flag_blocks: tuple[FlagBlock, ...] = ()
    at_night: str = ""
    intro: str = ""
    """For advice on typed words: says why it is shown before any question is finished."""

    @property
    def helps_heading(self) -> str:
        if self.urgency is Urgency.EMERGENCY:
            return "While you wait for help:"
        return "What can help right now:"

    @property
    def watch_for(self) -> tuple[str, ...]:
        """Every safety-net sign shown, in order (all groups)."""
        return tuple(s.text for g in self.safety_net for s in g.signs)

    def sections(self) -> tuple[Section, ...]:
        parts = [Section(text=self.intro)] if self.intro else []
        parts += [Section(title=self.headline, text=self.action)]
        if self.at_night:
            parts.append(Section(text=self.at_night))
        parts += [Section(lead=b.title, text=b.means, bullets=b.do) for b in self.red_flag_blocks]
        if self.pattern_name:
            parts.append(
                Section(
                    lead="What this looks like:", text=f"{self.pattern_name}. {self.looks_like}"
                )
            )
        if self.why:
            parts.append(Section(lead="Why:", text="; ".join(self.why) + "."))
        if self.helps_now:
            parts.append(Section(title=self.helps_heading, bullets=self.helps_now))
        parts += [Section(text=note) for note in self.notes]
        parts += [
            Section(title=g.heading, bullets=tuple(s.text for s in g.signs))
            for g in self.safety_net
        ]
        parts.append(Section(text=self.where_to_get_help))
        parts.append(Section(text=self.not_a_diagnosis, fine_print=True))
        return tuple(parts)

    def as_text(self) -> str:
        """Plain text for any adapter: short paragraphs and bullet lists."""
        return "\n\n".join(section.as_text() for section in self.sections())


@dataclass(frozen=True)
class _Note:
    when: Condition
    text: str


class AdviceBook:
    """All advice content, validated once at start-up."""

    def __init__(self, raw: Mapping[str, Any], source: str = "advice.yaml") -> None:
        where = Where(source)
        try:
            self._urgency = {Urgency(k): v for k, v in raw["urgency"].items()}
            self._patterns = {Pattern(k): v for k, v in raw["patterns"].items()}
            self._reasons: dict[str, str] = dict(raw["reasons"])
            self._notes = [
                _Note(parse_condition(n["when"], where.at(f"notes[{i}]")), n["text"].strip())
                for i, n in enumerate(raw.get("notes", []))
            ]
            self._help = raw["where_to_get_help"]
            self._any_number: str = raw["any_emergency_number"].strip()
            self._disclaimer: str = raw["not_a_diagnosis"].strip()
            self._unsure_hint: str = raw["unsure_hint"].strip()
            self._flags = {
                flag: FlagBlock(
                    flag,
                    str(b["title"]).strip(),
                    str(b["means"]).strip(),
                    tuple(str(d).strip() for d in b["do"]),
                )
                for flag, b in raw["red_flags"].items()
            }
            self._signs = {
                sid: Sign(
                    sid,
                    str(s["text"]).strip(),
                    Urgency(s["level"]),
                    tuple(s.get("about", ())),
                    bool(s.get("slow", False)),
                )
                for sid, s in raw["signs"].items()
            }
            net = raw["safety_net"]
            self._headings = {Urgency(k): str(v) for k, v in net["headings"].items()}
            self._urgent_result = (
                str(net["urgent_result"]["heading"]),
                net["urgent_result"]["watch"],
            )
            self._emergency_result = (
                str(net["emergency_result"]["heading"]),
                net["emergency_result"]["watch"],
            )
            self._flag_watch: dict[str, list[str]] = dict(net.get("flag_watch", {}))
            self._typed: dict[str, str] = {k: str(v).strip() for k, v in raw["typed"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ContentError(f"{source}: malformed advice content: {exc!r}") from exc
        self._check(source)

    def _check(self, source: str) -> None:
        """Named errors for content that would break a spec v2 rule."""
        where = Where(source)
        missing = [str(u) for u in Urgency if u not in self._urgency]
        missing += [str(p) for p in Pattern if p not in self._patterns]
        missing += [
            f"reasons.{r}" for r in (*RED_FLAGS, *map(str, Pattern)) if r not in self._reasons
        ]
        missing += [f"red_flags.{f}" for f in RED_FLAGS if f not in self._flags]
        missing += [
            f"safety_net.headings.{u}"
            for u in Urgency
            if u is not Urgency.SELF_CARE and u not in self._headings
        ]
        missing += [
            f"typed.{k}" for k in ("intro", "go_on_label", "go_on_hint") if k not in self._typed
        ]
        if "at_night" not in self._urgency.get(Urgency.URGENT, {"at_night": None}):
            missing.append("urgency.urgent.at_night")
        if missing:
            raise ContentError(f"{source}: missing advice for {missing}")
        unknown_flags = sorted(set(self._flags) - set(RED_FLAGS))
        if unknown_flags:
            raise where.at("red_flags").error(f"not red flags of the spec: {unknown_flags}")
        for sid, sign in self._signs.items():
            here = where.at(f"signs.{sid}")
            if sign.level is Urgency.SELF_CARE:
                raise here.error("a sign's level is emergency, urgent or soon")
            unknown = sorted(set(sign.about) - FINDINGS)
            if unknown:
                raise here.error(f"`about` names unknown findings {unknown}")
            if sign.slow and sign.level is Urgency.EMERGENCY:
                raise here.error("a sign that takes days to show is never an 'at once' sign")
            for finding in sign.about:
                emergency_flag = RED_FLAG_MINIMUM.get(finding) is Urgency.EMERGENCY
                if emergency_flag and not sign.slow and sign.level is not Urgency.EMERGENCY:
                    raise here.error(
                        f"a sign about the emergency red flag {finding!r} is `emergency`"
                    )
        lists = {f"patterns.{p}.watch": v.get("watch", []) for p, v in self._patterns.items()}
        lists["safety_net.urgent_result.watch"] = self._urgent_result[1]
        lists["safety_net.emergency_result.watch"] = self._emergency_result[1]
        lists |= {f"safety_net.flag_watch.{f}": v for f, v in self._flag_watch.items()}
        for place, ids in lists.items():
            unknown = sorted(set(ids) - set(self._signs))
            if unknown:
                raise where.at(place).error(f"unknown signs {unknown}")
        for sid in self._urgent_result[1]:
            if self._signs[sid].level is not Urgency.URGENT:
                raise where.at("safety_net.urgent_result").error(f"sign {sid!r} is not `urgent`")
        waiting = [sid for ids in self._flag_watch.values() for sid in ids]
        for sid in [*self._emergency_result[1], *waiting]:
            if self._signs[sid].level is not Urgency.EMERGENCY:
                raise where.at("safety_net").error(f"sign {sid!r} while waiting is not `emergency`")
        for pattern, content in self._patterns.items():
            told_by = content.get("told_by")
            if told_by is not None and told_by not in RED_FLAGS:
                raise where.at(f"patterns.{pattern}.told_by").error(
                    f"{told_by!r} is not a red flag"
                )

    @classmethod
    def load(cls, path: Path = DIALOGS_DIR / "advice.yaml") -> AdviceBook:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ContentError(f"{path.name}: cannot read: {exc}") from exc
        return cls(raw, path.name)

    # --- reading ----------------------------------------------------------------------------

    @property
    def signs(self) -> Mapping[str, Sign]:
        return self._signs

    @property
    def go_on_label(self) -> str:
        """The button that dismisses advice on typed words ("That's not me, go on")."""
        return self._typed["go_on_label"]

    @property
    def go_on_hint(self) -> str:
        return self._typed["go_on_hint"]

    def heading(self, level: Urgency, result: Urgency) -> str:
        """The safety-net heading for signs of `level` in a result of urgency `result`."""
        if result is Urgency.EMERGENCY:
            return self._emergency_result[0]
        if result is Urgency.URGENT and level is Urgency.URGENT:
            return self._urgent_result[0]
        return self._headings[level]

    def reason_text(self, reason: str) -> str:
        return self._reasons.get(reason, reason.replace("_", " "))

    def emergency_line(self, emergency_number: str | None) -> str:
        if emergency_number:
            return self._help["known_country"].format(emergency_number=emergency_number).strip()
        return self._help["unknown_country"].strip()

    def flag_block(self, flag: str, emergency_number: str | None = None) -> FlagBlock:
        block = self._flags[flag]
        number = emergency_number or self._any_number
        return replace(block, do=tuple(d.format(emergency_number=number) for d in block.do))

    # --- advising ---------------------------------------------------------------------------

    def advise(
        self,
        conclusion: Conclusion,
        findings: Mapping[str, bool],
        *,
        emergency_number: str | None = None,
        urgent_care: str | None = None,
    ) -> Advice:
        """The advice for a conclusion, with notes that match the findings.

        `urgent_care` is the country's out-of-hours line (`EmergencyNumbers.urgent_care`).
        """
        number = emergency_number or self._any_number
        urgency = conclusion.urgency
        level = self._urgency[urgency]
        pattern = self._patterns[conclusion.pattern]
        notes = [n.text for n in self._notes if n.when(findings)]
        if any(r.endswith("_unsure") for r in conclusion.reasons):
            notes.append(self._unsure_hint)
        emergency = urgency is Urgency.EMERGENCY
        if emergency:  # an emergency message stays short: what to do now, nothing for later
            notes = []
        helps = level["while_waiting"] if emergency else pattern.get("helps_now", [])
        flags = conclusion.red_flags
        hide_pattern = bool(flags) and (
            emergency or conclusion.pattern is Pattern.UNCLEAR or pattern.get("told_by") in flags
        )
        at_night = ""
        where = self.emergency_line(emergency_number)
        if urgency is Urgency.URGENT:
            night = level["at_night"]
            at_night = (
                night["with_line"].format(urgent_care=urgent_care)
                if urgent_care
                else night["without_line"]
            ).strip()
            if urgent_care:
                where += " " + self._help["urgent_care"].format(urgent_care=urgent_care).strip()
        return Advice(
            urgency=urgency,
            headline=level["headline"].strip(),
            action=level["action"].strip().format(emergency_number=number),
            pattern_name="" if hide_pattern else pattern["name"].strip(),
            looks_like="" if hide_pattern else pattern["looks_like"].strip(),
            why=self._why(conclusion),
            helps_now=tuple(s.strip() for s in helps),
            notes=tuple(notes),
            safety_net=self._safety_net(conclusion, findings, number),
            where_to_get_help=where,
            not_a_diagnosis=self._disclaimer,
            red_flag_blocks=tuple(self.flag_block(f, emergency_number) for f in flags),
            at_night=at_night,
        )

    def advise_typed(
        self,
        flags: Iterable[str],
        *,
        emergency_number: str | None = None,
        urgent_care: str | None = None,
    ) -> Advice:
        """Emergency advice for red flags read in typed words (`dialogs.danger.read`)."""
        found = tuple(f for f in RED_FLAGS if f in set(flags))
        if not found:
            raise ValueError("advice on typed words needs at least one red flag")
        urgency = max(RED_FLAG_MINIMUM[f] for f in found)
        conclusion = Conclusion(Pattern.UNCLEAR, urgency, red_flags=found, reasons=found)
        advice = self.advise(
            conclusion,
            dict.fromkeys(found, True),
            emergency_number=emergency_number,
            urgent_care=urgent_care,
        )
        return replace(advice, intro=self._typed["intro"], why=(), notes=())

    def _safety_net(
        self, conclusion: Conclusion, findings: Mapping[str, bool], number: str
    ) -> tuple[SignGroup, ...]:
        """The signs that apply, grouped by level, highest first (spec v2 item 2)."""
        result = conclusion.urgency
        if result is Urgency.EMERGENCY:
            ids = [w for f in conclusion.red_flags for w in self._flag_watch.get(f, [])]
            ids += self._emergency_result[1]
        else:
            pattern_ids = self._patterns[conclusion.pattern].get("watch", [])
            ids = [
                sid
                for sid in pattern_ids
                if self._signs[sid].level > result
                or self._signs[sid].level is result is Urgency.SOON
            ]
            if result is Urgency.URGENT:
                ids += self._urgent_result[1]
        signs = [
            self._signs[sid]
            for sid in dict.fromkeys(ids)
            if not any(findings.get(f) is True for f in self._signs[sid].about)
        ]
        groups = []
        for level in sorted({s.level for s in signs}, reverse=True):
            heading = self.heading(level, result).format(emergency_number=number)
            groups.append(SignGroup(level, heading, tuple(s for s in signs if s.level is level)))
        return tuple(groups)

    def _why(self, conclusion: Conclusion) -> tuple[str, ...]:
        reasons = list(conclusion.red_flags) + [
            r for r in conclusion.reasons if not (conclusion.red_flags and r in set(Pattern))
        ]
        return tuple(dict.fromkeys(self.reason_text(r) for r in reasons))
