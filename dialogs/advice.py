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

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from dialogs.content import DIALOGS_DIR, Condition, ContentError, Where, parse_condition
from dialogs.i18n import SOURCE, load_yaml
from dialogs.records import Conclusion
from dialogs.vocabulary import (
    FINDINGS,
    IMPLIES,
    KINDS_OF,
    RED_FLAG_MINIMUM,
    RED_FLAGS,
    Pattern,
    Urgency,
)


@dataclass(frozen=True)
class FlagBlock:
    """What one red flag can mean and what to do while help comes (spec v2 item 1).

    `kind` is the content key: the flag itself, or the kind of it the person told
    (`stroke_signs` for `sudden_weakness`, spec v3 item 1).
    """

    flag: str
    title: str
    means: str
    do: tuple[str, ...]
    kind: str = ""
    route: str = "call"
    """An emergency's way to go (spec v3 item 5): "call" an ambulance, or "go" to one now."""
    call_again: tuple[str, ...] = ()
    watch: tuple[str, ...] | None = None
    action: str = ""
    at_night: Mapping[str, str] | None = None
    tell: str = "default"
    """Which `tell_staff` line an emergency gives (a clot is asked about journeys)."""


@dataclass(frozen=True)
class Sign:
    """A safety-net sign: what would call for more, and how much more (`level`)."""

    id: str
    text: str
    level: Urgency
    about: tuple[str, ...] = ()
    slow: bool = False
    """It takes days to show (a sore that does not heal): never an "at once" sign."""
    route: str = "call"
    """For an emergency sign: call an ambulance, or go to an emergency department."""


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
    tell_staff: str = ""
    """For an emergency: what to tell whoever sees the person (spec v3 item 6)."""
    leads: Mapping[str, str] = field(default_factory=dict)
    """The lead-ins of the parts, in the advice's language (`leads` in advice.yaml)."""

    @property
    def helps_heading(self) -> str:
        return self.leads["while_waiting" if self.urgency is Urgency.EMERGENCY else "helps_now"]

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
                    lead=self.leads["looks_like"], text=f"{self.pattern_name}. {self.looks_like}"
                )
            )
        if self.why:
            parts.append(Section(lead=self.leads["why"], text="; ".join(self.why) + "."))
        if self.helps_now:
            parts.append(Section(title=self.helps_heading, bullets=self.helps_now))
        if self.tell_staff:
            parts.append(Section(text=self.tell_staff))
        parts += [Section(text=note) for note in self.notes]
        parts += [
            Section(title=g.heading, bullets=tuple(s.text for s in g.signs))
            for g in self.safety_net
        ]
        if self.where_to_get_help:
            parts.append(Section(text=self.where_to_get_help))
        parts.append(Section(text=self.not_a_diagnosis, fine_print=True))
        return tuple(parts)

    def lines(self) -> tuple[str, ...]:
        """Every sentence-carrying line, for checks that no line is said twice."""
        out: list[str] = []
        for section in self.sections():
            body = " ".join(p for p in (section.lead, section.text) if p)
            out += [line for line in (section.title, body, *section.bullets) if line]
        return tuple(out)

    def as_text(self) -> str:
        """Plain text for any adapter: short paragraphs and bullet lists."""
        return "\n\n".join(section.as_text() for section in self.sections())


@dataclass(frozen=True)
class _Note:
    when: Condition
    text: str


ROUTES = ("call", "go")
MOST_FULL_BLOCKS = 3
"""With more red flags than this, each block keeps its title and steps, not its explanation,
so the whole result still fits one Telegram message."""
MOST_SIGNS = 4
"""Spec: two to four named signs; with several red flags, each flag's first sign comes first."""


def _route(raw: Mapping[str, Any], where: Where) -> str:
    route = str(raw.get("route", "call"))
    if route not in ROUTES:
        raise where.error(f"`route` is one of {list(ROUTES)}, not {route!r}")
    return route


def _lines(raw: Any) -> tuple[str, ...]:
    """A list of lines as shown, one space between words (a mapping here is a YAML slip:
    an unquoted "a: b" line)."""
    if not all(isinstance(line, str) for line in raw or ()):
        raise ValueError(f"every line is text (quote lines with a colon): {raw!r}")
    return tuple(" ".join(line.split()) for line in raw or ())


LEADS = ("looks_like", "why", "helps_now", "while_waiting")
"""The lead-ins every result's parts may use (`leads` in advice.yaml)."""


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
            self._leads = {k: str(raw["leads"][k]).strip() for k in LEADS}
            emergency = self._urgency[Urgency.EMERGENCY]
            self._routes = {r: str(emergency["routes"][r]).strip() for r in ROUTES}
            self._while_waiting = {r: _lines(emergency["while_waiting"][r]) for r in ROUTES}
            self._tell_staff = {
                k: " ".join(str(v).split()) for k, v in emergency["tell_staff"].items()
            }
            self._tell_default = self._tell_staff["default"]
            self._blocks = {
                key: FlagBlock(
                    IMPLIES.get(key, key),
                    str(b["title"]).strip(),
                    str(b["means"]).strip(),
                    _lines(b.get("do")),
                    kind=key,
                    route=_route(b, where.at(f"red_flags.{key}")),
                    call_again=tuple(b.get("call_again", ())),
                    watch=tuple(b["watch"]) if "watch" in b else None,
                    action=" ".join(str(b.get("action", "")).split()),
                    at_night=b.get("at_night"),
                    tell=str(b.get("tell", "default")),
                )
                for key, b in raw["red_flags"].items()
            }
            self._signs = {
                sid: Sign(
                    sid,
                    str(s["text"]).strip(),
                    Urgency(s["level"]),
                    tuple(s.get("about", ())),
                    bool(s.get("slow", False)),
                    _route(s, where.at(f"signs.{sid}")),
                )
                for sid, s in raw["signs"].items()
            }
            net = raw["safety_net"]
            self._headings = {str(k): str(v) for k, v in net["headings"].items()}
            self._urgent_result = (
                str(net["urgent_result"]["heading"]),
                net["urgent_result"]["watch"],
            )
            self._emergency_headings = {r: str(net["emergency_result"][r]) for r in ROUTES}
            self._emergency_result_watch = tuple(net["emergency_result"]["watch"])
            self._typed: dict[str, str] = {k: str(v).strip() for k, v in raw["typed"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ContentError(f"{source}: malformed advice content: {exc!r}") from exc
        self._check(source)

    def _check(self, source: str) -> None:
        """Named errors for content that would break a spec v2 or v3 rule."""
        where = Where(source)
        missing = [str(u) for u in Urgency if u not in self._urgency]
        missing += [str(p) for p in Pattern if p not in self._patterns]
        missing += [
            f"reasons.{r}"
            for r in (*RED_FLAGS, *IMPLIES, *map(str, Pattern))
            if r not in self._reasons
        ]
        missing += [f"red_flags.{f}" for f in (*RED_FLAGS, *IMPLIES) if f not in self._blocks]
        missing += [
            f"safety_net.headings.{h}"
            for h in ("emergency", "emergency_go", "urgent", "soon")
            if h not in self._headings
        ]
        missing += [
            f"typed.{k}" for k in ("intro", "go_on_label", "go_on_hint") if k not in self._typed
        ]
        if "at_night" not in self._urgency.get(Urgency.URGENT, {"at_night": None}):
            missing.append("urgency.urgent.at_night")
        if missing:
            raise ContentError(f"{source}: missing advice for {missing}")
        unknown_flags = sorted(set(self._blocks) - set(RED_FLAGS) - set(IMPLIES))
        if unknown_flags:
            raise where.at("red_flags").error(f"not red flags of the spec: {unknown_flags}")
        self._check_signs(where)
        self._check_lists(where)

    def _check_signs(self, where: Where) -> None:
        for sid, sign in self._signs.items():
            here = where.at(f"signs.{sid}")
            if sign.level is Urgency.SELF_CARE:
                raise here.error("a sign's level is emergency, urgent or soon")
            unknown = sorted(set(sign.about) - FINDINGS)
            if unknown:
                raise here.error(f"`about` names unknown findings {unknown}")
            if sign.slow and sign.level is Urgency.EMERGENCY:
                raise here.error("a sign that takes days to show is never an 'at once' sign")
            if sign.route != "call" and sign.level is not Urgency.EMERGENCY:
                raise here.error("only an emergency sign has a `route`")
            for finding in sign.about:
                emergency_flag = RED_FLAG_MINIMUM.get(finding) is Urgency.EMERGENCY
                if emergency_flag and not sign.slow and sign.level is not Urgency.EMERGENCY:
                    raise here.error(
                        f"a sign about the emergency red flag {finding!r} is `emergency`"
                    )

    def _check_lists(self, where: Where) -> None:
        """Signs named in lists exist and have the level their place needs."""
        lists = {f"patterns.{p}.watch": v.get("watch", []) for p, v in self._patterns.items()}
        lists["safety_net.urgent_result.watch"] = self._urgent_result[1]
        lists["safety_net.emergency_result.watch"] = list(self._emergency_result_watch)
        for key, block in self._blocks.items():
            lists[f"red_flags.{key}.call_again"] = list(block.call_again)
            lists[f"red_flags.{key}.watch"] = list(block.watch or ())
        for place, ids in lists.items():
            unknown = sorted(set(ids) - set(self._signs))
            if unknown:
                raise where.at(place).error(f"unknown signs {unknown}")
        for sid in self._urgent_result[1]:
            if self._signs[sid].level is not Urgency.URGENT:
                raise where.at("safety_net.urgent_result").error(f"sign {sid!r} is not `urgent`")
        for key, block in self._blocks.items():
            here = where.at(f"red_flags.{key}")
            emergency = RED_FLAG_MINIMUM[block.flag] is Urgency.EMERGENCY
            if emergency and not block.call_again:
                raise here.error("an emergency red flag says what to call again about")
            for sid in block.call_again:
                if self._signs[sid].level is not Urgency.EMERGENCY:
                    raise here.error(f"sign {sid!r} while waiting is not `emergency`")
            if emergency and (block.action or block.at_night or block.watch is not None):
                raise here.error("`action`, `at_night` and `watch` are for urgent red flags")
            if block.tell not in self._tell_staff:
                raise here.error(f"`tell: {block.tell}` names no `tell_staff` line")
        for pattern, content in self._patterns.items():
            told_by = content.get("told_by")
            if told_by is not None and told_by not in RED_FLAGS:
                raise where.at(f"patterns.{pattern}.told_by").error(
                    f"{told_by!r} is not a red flag"
                )

    @classmethod
    def load(cls, path: Path = DIALOGS_DIR / "advice.yaml", lang: str = SOURCE) -> AdviceBook:
        """Read and check the file, its texts in `lang`."""
        try:
            raw = load_yaml(path, lang)
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

    def heading(self, level: Urgency, result: Urgency, route: str = "call") -> str:
        """The safety-net heading for signs of `level` (and `route`) in a `result` result."""
        if result is Urgency.EMERGENCY:
            return self._emergency_headings[route]
        if result is Urgency.URGENT and level is Urgency.URGENT:
            return self._urgent_result[0]
        if level is Urgency.EMERGENCY and route == "go":
            return self._headings["emergency_go"]
        return self._headings[str(level)]

    def reason_text(self, reason: str) -> str:
        return self._reasons.get(reason, reason.replace("_", " "))

    def emergency_line(self, emergency_number: str | None) -> str:
        if emergency_number:
            return self._help["known_country"].format(emergency_number=emergency_number).strip()
        return self._help["unknown_country"].strip()

    def blocks_for(
        self, conclusion: Conclusion, findings: Mapping[str, bool]
    ) -> tuple[FlagBlock, ...]:
        """One block per red flag, told by the kinds of it the person said (spec v3 item 1)."""
        keys: list[str] = []
        for flag in conclusion.red_flags:
            kinds = [k for k in KINDS_OF.get(flag, ()) if findings.get(k) is True]
            keys += kinds or [flag]
        return tuple(self._blocks[k] for k in keys)

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
        emergency = urgency is Urgency.EMERGENCY
        blocks = self.blocks_for(conclusion, findings)
        flags = conclusion.red_flags
        hide_pattern = bool(flags) and (
            emergency or conclusion.pattern is Pattern.UNCLEAR or pattern.get("told_by") in flags
        )
        route = "call" if any(b.route == "call" for b in blocks) or not blocks else "go"
        # An urgent flag standing alone may say what to do itself (spec v3 item 4).
        own = blocks[0] if len(blocks) == 1 and not emergency else None
        action = (
            self._routes[route]
            if emergency
            else (own.action if own is not None and own.action else str(level["action"]))
        )
        notes = [] if emergency else [n.text for n in self._notes if n.when(findings)]
        if any(r.endswith("_unsure") for r in conclusion.reasons) and not emergency:
            notes.append(self._unsure_hint)
        if emergency:  # an emergency message stays short: what to do now, nothing for later
            helps: tuple[str, ...] = self._while_waiting[route]
        elif hide_pattern:  # the red flag's block says what to do
            helps = ()
        else:
            helps = _lines(pattern.get("helps_now"))
        looks_like = " ".join(str(pattern["looks_like"]).split())
        if urgency is Urgency.SELF_CARE and pattern.get("reassure"):
            looks_like += " " + str(pattern["reassure"]).strip()
        at_night = ""
        if urgency is Urgency.URGENT:
            night = own.at_night if own is not None and own.at_night else level["at_night"]
            at_night = (
                night["with_line"].format(urgent_care=urgent_care)
                if urgent_care
                else night["without_line"]
            )
            at_night = " ".join(at_night.split())
        # Spec v3 item 6: no line twice. Lines several blocks share are written once in the
        # YAML (anchors); each is shown the first time only.
        seen: set[str] = set()
        shown_blocks = []
        compact = len(blocks) > MOST_FULL_BLOCKS  # many dangers at once: name each, say what to do
        for block in blocks:
            do = tuple(d.format(emergency_number=number) for d in block.do)
            shown_blocks.append(
                replace(
                    block,
                    means="" if compact else block.means,
                    do=tuple(d for d in do if _first(d, seen)),
                )
            )
        helps = tuple(h for h in helps if _first(h, seen))
        return Advice(
            urgency=urgency,
            headline=level["headline"].strip(),
            action=" ".join(action.split()).format(emergency_number=number),
            pattern_name="" if hide_pattern else pattern["name"].strip(),
            looks_like="" if hide_pattern else looks_like,
            why=self._why(conclusion, blocks),
            helps_now=helps,
            notes=tuple(notes),
            safety_net=self._safety_net(conclusion, findings, blocks, number, route),
            where_to_get_help=self._where(urgency, emergency_number),
            not_a_diagnosis=self._disclaimer,
            red_flag_blocks=tuple(shown_blocks),
            at_night=at_night,
            tell_staff=self._tell(blocks) if emergency else "",
            leads=self._leads,
        )

    def _tell(self, blocks: tuple[FlagBlock, ...]) -> str:
        """What to tell whoever sees the person: the first red flag's own line wins."""
        special = [b.tell for b in blocks if b.tell != "default"]
        return self._tell_staff[special[0]] if special else self._tell_default

    def _where(self, urgency: Urgency, emergency_number: str | None) -> str:
        """The emergency number line: left out where the advice has just named it."""
        if emergency_number and urgency is Urgency.EMERGENCY:
            return ""
        return self.emergency_line(emergency_number)

    def advise_typed(
        self,
        flags: Iterable[str],
        *,
        emergency_number: str | None = None,
        urgent_care: str | None = None,
    ) -> Advice:
        """Emergency advice for red flags read in typed words (`dialogs.danger.read`).

        `flags` may name kinds of a red flag too (`stroke_signs`): their blocks speak.
        """
        said = set(flags)
        said |= {IMPLIES[k] for k in said if k in IMPLIES}
        found = tuple(f for f in RED_FLAGS if f in said)
        if not found:
            raise ValueError("advice on typed words needs at least one red flag")
        urgency = max(RED_FLAG_MINIMUM[f] for f in found)
        conclusion = Conclusion(Pattern.UNCLEAR, urgency, red_flags=found, reasons=found)
        advice = self.advise(
            conclusion,
            dict.fromkeys(said, True),
            emergency_number=emergency_number,
            urgent_care=urgent_care,
        )
        return replace(advice, intro=self._typed["intro"], why=(), notes=())

    def _safety_net(
        self,
        conclusion: Conclusion,
        findings: Mapping[str, bool],
        blocks: tuple[FlagBlock, ...],
        number: str,
        route: str,
    ) -> tuple[SignGroup, ...]:
        """The signs that apply, grouped by level and way to go, highest first."""
        result = conclusion.urgency
        if result is Urgency.EMERGENCY:  # each red flag's own "call again if" (spec v3 item 6)
            ids = _take_turns([list(b.call_again) for b in blocks], MOST_SIGNS)
            ids = ids or list(self._emergency_result_watch)
        else:
            pattern_ids = self._patterns[conclusion.pattern].get("watch", [])
            ids = [
                sid
                for sid in pattern_ids
                if self._signs[sid].level > result
                or self._signs[sid].level is result is Urgency.SOON
            ]
            own = [sid for b in blocks if b.watch is not None for sid in b.watch]
            ids += own
            if result is Urgency.URGENT and not own:
                ids += self._urgent_result[1]
        signs = [
            self._signs[sid]
            for sid in dict.fromkeys(ids)
            if not any(findings.get(f) is True for f in self._signs[sid].about)
        ]
        groups: dict[str, list[Sign]] = {}
        for sign in sorted(signs, key=lambda s: (-s.level.rank, s.route != "call")):
            sign_route = route if result is Urgency.EMERGENCY else sign.route
            heading = self.heading(sign.level, result, sign_route).format(emergency_number=number)
            groups.setdefault(heading, []).append(sign)
        return tuple(
            SignGroup(members[0].level, heading, tuple(members))
            for heading, members in groups.items()
        )

    def _why(self, conclusion: Conclusion, blocks: tuple[FlagBlock, ...]) -> tuple[str, ...]:
        """Every red flag in the words of what was said, then the rules' other reasons."""
        reasons = [b.kind for b in blocks] + [
            r
            for r in conclusion.reasons
            if r not in KINDS_OF and not (conclusion.red_flags and r in set(Pattern))
        ]
        return tuple(dict.fromkeys(self.reason_text(r) for r in reasons))


def _take_turns(lists: list[list[str]], most: int) -> list[str]:
    """Items taken one from each list in turn, without repeats: every list's first item,
    then the rest while fewer than `most`."""
    out: list[str] = []
    for row in itertools.zip_longest(*lists):
        out += [item for item in row if item is not None and item not in out]
    firsts = len({row[0] for row in lists if row})
    return out[: max(most, firsts)]


def _first(line: str, seen: set[str]) -> bool:
    """True the first time a line is met (and remember it)."""
    if line in seen:
        return False
    seen.add(line)
    return True
