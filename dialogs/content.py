"""Question-flow content: the typed form of `dialogs/<flow>.yaml`, and its validating loader.

Content is checked once, at start-up: an unknown finding, a duplicate id or a condition on a
finding no question sets is a `ContentError` that names the file and the place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from dialogs.i18n import SOURCE, load_yaml
from dialogs.vocabulary import FINDINGS, IMPLIES, RED_FLAG_MINIMUM, RED_FLAGS, Urgency

DIALOGS_DIR = Path(__file__).resolve().parent
MAX_LABEL = 36
"""Longest button label: about what a phone shows on one inline button without cutting it."""


class ContentError(ValueError):
    """The YAML content is malformed; the message says which file and where."""


@dataclass(frozen=True)
class Condition:
    """A test on findings: `any`, `all`, `not`, `no` (YAML `said_no`), or a finding id (yes)."""

    op: str
    args: tuple[Condition | str, ...]

    def __call__(self, findings: Mapping[str, bool]) -> bool:
        if self.op == "no":
            return findings.get(str(self.args[0])) is False
        results = (
            findings.get(a) is True if isinstance(a, str) else a(findings) for a in self.args
        )
        if self.op == "any":
            return any(results)
        if self.op == "all":
            return all(results)
        return not next(iter(results))  # "not"

    def only_no_answers(self) -> bool:
        """True when the condition can hold only on explicit "no" answers (never on "not sure")."""
        if self.op == "no":
            return True
        if self.op == "not":
            return False
        return all(isinstance(a, Condition) and a.only_no_answers() for a in self.args)

    def findings(self) -> set[str]:
        out: set[str] = set()
        for a in self.args:
            out |= {a} if isinstance(a, str) else a.findings()
        return out

    def __str__(self) -> str:
        parts = [a if isinstance(a, str) else f"({a})" for a in self.args]
        if self.op == "not":
            return f"not {parts[0]}"
        if self.op == "no":
            return f"no {parts[0]}"
        return f" {'or' if self.op == 'any' else 'and'} ".join(parts)


FIELD_TYPES: dict[str, type] = {"bool": bool, "int": int, "str": str, "list": str}
"""Diary field types; a `list` field collects one string per chosen option."""
STOP_WHEN = ("emergency", "red_flag")


@dataclass(frozen=True)
class Option:
    id: str
    label: str
    sets: Mapping[str, bool]
    exclusive: bool = False
    records: Mapping[str, object] = field(default_factory=dict)
    offer_if: Condition | None = None
    """Spec v2: an option shown only when earlier answers make it apply (e.g. pregnancy)."""

    def offered(self, findings: Mapping[str, bool]) -> bool:
        return self.offer_if is None or self.offer_if(findings)


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    options: tuple[Option, ...]
    multi: bool = False
    done_label: str | None = None
    ask_if: Condition | None = None
    input_field: str | None = None
    """For a question that also takes typed text: the field the text is recorded in."""
    max_length: int = 0
    skip_if: Condition | None = None
    """Skip the question when this holds; on a red-flag question only explicit "no" answers."""
    unticked_means_no: bool = False
    """On a multi-answer question: once something is ticked, an offered option left unticked
    counts as "no" (a checklist read as a whole). "Not sure" still sets nothing."""

    def option(self, option_id: str) -> Option | None:
        return next((o for o in self.options if o.id == option_id), None)

    def applies(self, facts: Mapping[str, bool]) -> bool:
        """Whether the question is asked, given the answers so far."""
        if self.ask_if is not None and not self.ask_if(facts):
            return False
        return self.skip_if is None or not self.skip_if(facts)

    @property
    def gate(self) -> str:
        """The question's conditions in words, for diagrams ("" when always asked)."""
        parts = [f"ask_if {self.ask_if}"] if self.ask_if else []
        parts += [f"skip_if {self.skip_if}"] if self.skip_if else []
        return "; ".join(parts)

    def offered_to(self, findings: Mapping[str, bool]) -> Question:
        """The question as shown to this person: only the options that apply to them."""
        options = tuple(o for o in self.options if o.offered(findings))
        if len(options) == len(self.options):
            return self
        return replace(self, options=options)


@dataclass(frozen=True)
class FlowContent:
    name: str
    version: int
    title: str
    questions: tuple[Question, ...]
    source: str
    fields: Mapping[str, str] = field(default_factory=dict)
    stop_when: str = "emergency"
    """"emergency": stop at once when the rules reach emergency; "red_flag": at any red flag."""
    red_flags_always_asked: bool = True
    concludes: bool = True
    """Whether finishing normally gives a clinical conclusion (a diary night does not)."""

    def question(self, question_id: str) -> Question | None:
        return next((q for q in self.questions if q.id == question_id), None)


def load_flow(name: str, directory: Path = DIALOGS_DIR, lang: str = SOURCE) -> FlowContent:
    """Read and validate `<directory>/<name>.yaml`, its texts in `lang`."""
    path = directory / f"{name}.yaml"
    try:
        raw = load_yaml(path, lang)
    except (OSError, yaml.YAMLError) as exc:
        raise ContentError(f"{path.name}: cannot read: {exc}") from exc
    return parse_flow(raw, source=path.name)


def parse_flow(raw: Any, *, source: str) -> FlowContent:
    """Turn loaded YAML into `FlowContent`, or raise a `ContentError` that says where."""
    where = Where(source)
    if not isinstance(raw, dict):
        raise where.error("the file must be a mapping with `flow` and `questions`")
    fields = _parse_fields(raw.get("fields", {}), where.at("fields"))
    stop_when = raw.get("stop_when", "emergency")
    if stop_when not in STOP_WHEN:
        raise where.error(f"`stop_when` must be one of {list(STOP_WHEN)}")
    always = raw.get("red_flags_always_asked", True)
    questions_raw = raw.get("questions")
    if not isinstance(questions_raw, list) or not questions_raw:
        raise where.error("`questions` must be a non-empty list")
    questions = tuple(
        _parse_question(q, where.at(f"questions[{i}]"), fields, red_flags_always_asked=always)
        for i, q in enumerate(questions_raw)
    )
    _check_flow(questions, where)
    return FlowContent(
        name=str(raw.get("flow") or where.fail("`flow` is missing")),
        version=int(raw.get("version", 1)),
        title=str(raw.get("title", "")),
        questions=questions,
        source=source,
        fields=fields,
        stop_when=stop_when,
        red_flags_always_asked=bool(always),
        concludes=bool(raw.get("concludes", True)),
    )


class Where:
    """A place in a content file, for error messages."""

    def __init__(self, source: str, path: str = "") -> None:
        self.source, self.path = source, path

    def at(self, part: str) -> Where:
        return Where(self.source, f"{self.path}.{part}" if self.path else part)

    def error(self, message: str) -> ContentError:
        place = f" at {self.path}" if self.path else ""
        return ContentError(f"{self.source}{place}: {message}")

    def fail(self, message: str) -> str:
        raise self.error(message)


def _parse_fields(raw: Any, where: Where) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise where.error("`fields` must map field names to a type")
    for name, kind in raw.items():
        if not isinstance(name, str) or not name.isidentifier() or name in FINDINGS:
            raise where.error(f"field {name!r} must be a new snake_case name (not a finding)")
        if kind not in FIELD_TYPES:
            raise where.error(f"field {name!r} has unknown type {kind!r} ({sorted(FIELD_TYPES)})")
    return dict(raw)


def _parse_question(
    raw: Any, where: Where, fields: Mapping[str, str], *, red_flags_always_asked: bool
) -> Question:
    if not isinstance(raw, dict):
        raise where.error("a question must be a mapping")
    qid = raw.get("id")
    if not isinstance(qid, str) or not qid.isidentifier():
        raise where.error("`id` must be a snake_case identifier")
    where = Where(where.source, f"{where.path} ({qid})")
    text = raw.get("text")
    if not isinstance(text, str) or not text.strip():
        raise where.error("`text` is missing")
    input_field, max_length = None, 0
    if "input" in raw:
        input_field = raw.get("field")
        if raw["input"] != "text" or fields.get(str(input_field)) != "str":
            raise where.error("`input: text` needs `field:` naming a `str` field")
        max_length = int(raw.get("max_length", 300))
    options_raw = raw.get("options")
    fewest = 1 if input_field else 2
    if not isinstance(options_raw, list) or len(options_raw) < fewest:
        raise where.error(f"a question needs at least {fewest} `options`")
    options = tuple(
        _parse_option(o, where.at(f"options[{i}]"), fields) for i, o in enumerate(options_raw)
    )
    if sum(o.offer_if is None for o in options) < fewest:
        raise where.error(f"at least {fewest} options must be offered to everyone (no `offer_if`)")
    ids = [o.id for o in options]
    if len(set(ids)) != len(ids):
        raise where.error(f"duplicate option ids: {sorted({i for i in ids if ids.count(i) > 1})}")
    multi = bool(raw.get("multi", False))
    done_label = raw.get("done_label")
    if multi and not (isinstance(done_label, str) and done_label.strip()):
        raise where.error("a `multi: true` question needs a `done_label`")
    if multi and len(done_label) > MAX_LABEL:
        raise where.error(f"done_label {done_label!r} is longer than {MAX_LABEL} characters")
    if not multi and any(o.exclusive for o in options):
        raise where.error("`exclusive` only makes sense on a `multi: true` question")
    ask_if = skip_if = None
    if "ask_if" in raw:
        ask_if = parse_condition(raw["ask_if"], where.at("ask_if"), known=FINDINGS | set(fields))
    if "skip_if" in raw:
        skip_if = parse_condition(raw["skip_if"], where.at("skip_if"), known=FINDINGS | set(fields))
    unticked_means_no = bool(raw.get("unticked_means_no", False))
    if unticked_means_no and not multi:
        raise where.error("`unticked_means_no` only makes sense on a `multi: true` question")
    flags = {flag for o in options for flag in o.sets if flag in RED_FLAGS}
    if flags and red_flags_always_asked:
        _check_red_flag_question(options, flags, ask_if, skip_if, where)
    return Question(
        qid,
        text.strip(),
        options,
        multi,
        done_label if multi else None,
        ask_if,
        input_field,
        max_length,
        skip_if,
        unticked_means_no,
    )


def _check_red_flag_question(
    options: tuple[Option, ...],
    flags: set[str],
    ask_if: Condition | None,
    skip_if: Condition | None,
    where: Where,
) -> None:
    """Red-flag questions are never skipped on doubt (spec v2 item 4).

    An emergency red flag is always asked. Another red flag may be skipped (`skip_if`) only
    when the person has said no to what it is about, so "not sure" never skips it.
    """
    if ask_if is not None:
        raise where.error("a question that asks about a red flag must never be skipped (`ask_if`)")
    if skip_if is not None:
        emergency = sorted(f for f in flags if RED_FLAG_MINIMUM[f] is Urgency.EMERGENCY)
        if emergency:
            raise where.error(
                f"an emergency red flag {emergency} must never be skipped (`skip_if`)"
            )
        if not skip_if.only_no_answers():
            raise where.error(
                "a red-flag question may be skipped only on explicit no answers "
                "(`skip_if` with `said_no:` conditions), never on not sure"
            )
    for option in options:
        if option.offer_if is not None and any(f in RED_FLAGS for f in option.sets):
            raise where.error(f"option {option.id!r} asks about a red flag: it is always offered")


def _parse_option(raw: Any, where: Where, fields: Mapping[str, str]) -> Option:
    if not isinstance(raw, dict):
        raise where.error("an option must be a mapping")
    oid, label = raw.get("id"), raw.get("label")
    if not isinstance(oid, str) or not oid.isidentifier():
        raise where.error("`id` must be a snake_case identifier (quote yes/no in YAML)")
    if not isinstance(label, str) or not label.strip():
        raise where.error("`label` is missing")
    if len(label) > MAX_LABEL:
        raise where.error(f"label {label!r} is longer than {MAX_LABEL} characters")
    sets = raw.get("sets", {})
    if not isinstance(sets, dict):
        raise where.error("`sets` must map finding ids to true or false")
    for finding, value in sets.items():
        if finding not in FINDINGS:
            raise where.error(f"unknown finding {finding!r} (see the spec's findings vocabulary)")
        if not isinstance(value, bool):
            raise where.error(f"finding {finding!r} must be set to true or false")
        flag = IMPLIES.get(finding)
        if value and flag is not None and sets.get(flag) is not True:
            raise where.error(f"an option that sets {finding!r} also sets {flag!r}: true")
    records = raw.get("records", {})
    if not isinstance(records, dict):
        raise where.error("`records` must map diary fields to values")
    for name, value in records.items():
        kind = fields.get(name)
        if kind is None:
            raise where.error(f"`records` names {name!r}, which `fields` does not declare")
        expected = FIELD_TYPES[kind]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise where.error(f"field {name!r} takes a {kind} value, not {value!r}")
    exclusive = bool(raw.get("exclusive", False))
    offer_if = None
    if "offer_if" in raw:
        if exclusive:
            raise where.error("an `exclusive` option is always offered (no `offer_if`)")
        offer_if = parse_condition(raw["offer_if"], where.at("offer_if"))
    return Option(oid, label.strip(), dict(sets), exclusive, records, offer_if)


def parse_condition(
    raw: Any, where: Where, *, known: frozenset[str] | set[str] = FINDINGS
) -> Condition:
    """An `ask_if`/`when` condition over findings (and a flow's bool fields)."""
    if isinstance(raw, str):
        if raw not in known:
            raise where.error(f"unknown finding {raw!r}")
        return Condition("any", (raw,))
    if isinstance(raw, dict) and len(raw) == 1:
        ((op, args),) = raw.items()
        if op == "not":
            return Condition("not", (parse_condition(args, where.at("not"), known=known),))
        if op == "said_no" and isinstance(args, str):  # (a bare `no:` key is false in YAML)
            if args not in known:
                raise where.at("said_no").error(f"unknown finding {args!r}")
            return Condition("no", (args,))
        if op in ("any", "all") and isinstance(args, list) and args:
            return Condition(op, tuple(_leaf(a, where.at(op), known) for a in args))
    raise where.error(
        "a condition is a finding id, or one of `any: [...]`, `all: [...]`, `not:`, `said_no: <id>`"
    )


def _leaf(raw: Any, where: Where, known: frozenset[str] | set[str]) -> Condition | str:
    if isinstance(raw, str):
        if raw not in known:
            raise where.error(f"unknown finding {raw!r}")
        return raw
    return parse_condition(raw, where, known=known)


def _check_flow(questions: tuple[Question, ...], where: Where) -> None:
    ids = [q.id for q in questions]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise where.error(f"duplicate question ids: {duplicates}")
    set_before: set[str] = set()
    for q in questions:
        for condition in (q.ask_if, q.skip_if):
            dangling = condition.findings() - set_before if condition else set()
            if dangling:
                raise where.error(
                    f"question {q.id!r} depends on {sorted(dangling)}, which no earlier "
                    "question sets, so it could never be asked"
                )
        for o in q.options:
            dangling = o.offer_if.findings() - set_before if o.offer_if else set()
            if dangling:
                raise where.error(
                    f"option {o.id!r} of question {q.id!r} depends on {sorted(dangling)}, "
                    "which no earlier question sets"
                )
        set_before |= {f for o in q.options for f in (*o.sets, *o.records)}
