"""Button data: short tokens within Telegram's 64-byte limit, built and parsed in one place.

Answers carry the conversation and question they belong to, so a tap on an old message is
recognised as stale instead of answering whatever question is open now. Ticks carry the state
they set (not "toggle"), so two quick taps on the same button count once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from telegram.constants import InlineKeyboardButtonLimit

from dialogs.followups import ANSWERS

MAX_BYTES = InlineKeyboardButtonLimit.MAX_CALLBACK_DATA
_ID = r"[a-z][a-z0-9_]{0,23}"


@dataclass(frozen=True)
class AnswerKey:
    conversation_id: int
    question_id: str
    option_id: str
    tick: bool | None = None  # None: a single answer; True/False: set the tick on a multi one


@dataclass(frozen=True)
class DoneKey:
    conversation_id: int
    question_id: str


@dataclass(frozen=True)
class NavKey:
    """back / cancel on a conversation."""

    action: str
    conversation_id: int


@dataclass(frozen=True)
class SnoozeKey:
    """On a check-in: remind in `minutes`, or skip tonight (0)."""

    checkin_id: int
    minutes: int


@dataclass(frozen=True)
class FollowUpKey:
    """On a follow-up offer ("yes", "no") or on the follow-up itself (its answers)."""

    followup_id: int
    action: str


FOLLOWUP_ACTIONS = ("yes", "no", *ANSWERS)


@dataclass(frozen=True)
class MenuKey:
    """Buttons that are not part of a question: consent (its argument: a country code, "none"
    to skip the country, "pick" for the list, "back" from it), new check, country, export,
    delete, the note for the doctor ("note" and "nskip", the conversation's id), the language
    ("lang": the list, or with a language's code, that language)."""

    action: str
    arg: str = ""


Key = AnswerKey | DoneKey | NavKey | SnoozeKey | FollowUpKey | MenuKey

DIARY_ACTIONS = frozenset(
    {"diary", "dtime", "dtimes", "dzone", "dzones", "dpause", "dstop", "dfill", "summary"}
)
MENU_ACTIONS = DIARY_ACTIONS | {
    "consent",
    "decline",
    "new",
    "resume",
    "country",
    "countries",
    "export",
    "delete",
    "keep",
    "erase",
    "settings",
    "help",
    "goon",
    "note",
    "nskip",
    "lang",
}
_PATTERNS: list[tuple[re.Pattern[str], type]] = [
    (re.compile(rf"^a:([0-9]{{1,12}}):({_ID}):({_ID})$"), AnswerKey),
    (re.compile(rf"^t:([0-9]{{1,12}}):({_ID}):({_ID}):([01])$"), AnswerKey),
    (re.compile(rf"^d:([0-9]{{1,12}}):({_ID})$"), DoneKey),
    (re.compile(r"^(back|cancel):([0-9]{1,12})$"), NavKey),
    (re.compile(r"^z:([0-9]{1,12}):(0|30|60)$"), SnoozeKey),
    (re.compile(rf"^f:([0-9]{{1,12}}):({'|'.join(FOLLOWUP_ACTIONS)})$"), FollowUpKey),
    # The argument may be an IANA zone name, e.g. "America/Argentina/Buenos_Aires".
    (re.compile(r"^m:([a-z]{1,12})(?::([A-Za-z0-9_/+-]{1,40}))?$"), MenuKey),
]


def encode(key: Key) -> str:
    match key:
        case AnswerKey(cid, qid, oid, None):
            data = f"a:{cid}:{qid}:{oid}"
        case AnswerKey(cid, qid, oid, tick):
            data = f"t:{cid}:{qid}:{oid}:{int(bool(tick))}"
        case DoneKey(cid, qid):
            data = f"d:{cid}:{qid}"
        case NavKey(action, cid):
            data = f"{action}:{cid}"
        case SnoozeKey(checkin_id, minutes):
            data = f"z:{checkin_id}:{minutes}"
        case FollowUpKey(followup_id, action) if action in FOLLOWUP_ACTIONS:
            data = f"f:{followup_id}:{action}"
        case FollowUpKey(_, action):
            raise ValueError(f"unknown follow-up action {action!r}")
        case MenuKey(action, ""):
            data = f"m:{action}"
        case MenuKey(action, arg):
            data = f"m:{action}:{arg}"
    if len(data.encode()) > MAX_BYTES:
        raise ValueError(f"callback data over {MAX_BYTES} bytes: {data!r}")
    return data


def decode(data: str | None) -> Key | None:
    """The key a button carries, or None for anything forged, foreign or malformed."""
    if not data or len(data.encode(errors="replace")) > MAX_BYTES:
        return None
    for pattern, kind in _PATTERNS:
        match = pattern.fullmatch(data)
        if match is None:
            continue
        groups = match.groups()
        if kind is AnswerKey and len(groups) == 4:
            return AnswerKey(int(groups[0]), groups[1], groups[2], groups[3] == "1")
        if kind is AnswerKey:
            return AnswerKey(int(groups[0]), groups[1], groups[2])
        if kind is DoneKey:
            return DoneKey(int(groups[0]), groups[1])
        if kind is NavKey:
            return NavKey(groups[0], int(groups[1]))
        if kind is SnoozeKey:
            return SnoozeKey(int(groups[0]), int(groups[1]))
        if kind is FollowUpKey:
            return FollowUpKey(int(groups[0]), groups[1])
        if groups[0] in MENU_ACTIONS:
            return MenuKey(groups[0], groups[1] or "")
    return None
