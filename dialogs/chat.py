"""The words around a check (spec v3 items 9 and 10), from `dialogs/chat.yaml`: the country
at the start, kind replies to typed words, and the note for the doctor.

`ChatBook.load()` checks the file at start-up: every text is there, each uses only the
placeholders it may, and button labels are short. Adapters ask for a text by section and
key, with its placeholders filled in: `book.text("note", "saved", note="...")`.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from dialogs.advice import Advice
from dialogs.content import DIALOGS_DIR, ContentError
from dialogs.i18n import SOURCE, load_yaml

MAX_LABEL = 40
"""Button labels longer than this are cut by phones."""
MAX_NOTE = 1000
"""A note for the doctor is kept up to this many characters."""

# section -> key -> (placeholders it may use, is it a button label)
_SCHEMA: dict[str, dict[str, tuple[frozenset[str], bool]]] = {
    "consent": {
        "agree_in": (frozenset({"country"}), True),
        "agree_choose": (frozenset(), True),
        "agree_skip": (frozenset(), True),
        "decline": (frozenset(), True),
        "why_country": (frozenset(), False),
        "choose": (frozenset(), False),
        "not_listed": (frozenset(), True),
        "back": (frozenset(), True),
        "agreed": (frozenset(), False),
        "agreed_in": (frozenset({"country", "number"}), False),
    },
    "typed": {
        "in_question": (frozenset(), False),
        "after_result": (frozenset({"result", "who"}), False),
        "who_with_line": (frozenset({"line"}), False),
        "who_without_line": (frozenset(), False),
        "after_result_note": (frozenset(), False),
        "no_check": (frozenset(), False),
        "start_check": (frozenset(), True),
        "terminal_in_question": (frozenset(), False),
        "terminal_no_check": (frozenset(), False),
    },
    "note": {
        "button": (frozenset(), True),
        "prompt": (frozenset(), False),
        "skip": (frozenset(), True),
        "saved": (frozenset({"note"}), False),
        "skipped": (frozenset(), False),
        "terminal_prompt": (frozenset(), False),
        "terminal_skipped": (frozenset(), False),
    },
    "tap": {
        "old_copy": (frozenset(), False),
    },
    "terminal": {
        "country": (frozenset(), False),
        "country_suggested": (frozenset({"country"}), False),
        "country_unsuggested": (frozenset(), False),
        "country_unknown": (frozenset(), False),
        "country_saved": (frozenset({"country", "number"}), False),
        "country_skipped": (frozenset(), False),
    },
}


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


@dataclass(frozen=True)
class ChatBook:
    """The texts of `chat.yaml`, checked."""

    texts: Mapping[str, Mapping[str, str]]

    @classmethod
    def from_dict(cls, raw: Any, source: str = "chat.yaml") -> ChatBook:
        if not isinstance(raw, dict):
            raise ContentError(f"{source}: expected a mapping of sections")
        unknown = sorted(set(raw) - set(_SCHEMA))
        if unknown:
            raise ContentError(f"{source}: unknown sections {unknown}")
        texts: dict[str, dict[str, str]] = {}
        for section, keys in _SCHEMA.items():
            given = raw.get(section)
            if not isinstance(given, dict):
                raise ContentError(f"{source}: section {section!r} is missing")
            extra = sorted(set(given) - set(keys))
            if extra:
                raise ContentError(f"{source}: {section}: unknown keys {extra}")
            texts[section] = {}
            for key, (allowed, label) in keys.items():
                where = f"{source}: {section}.{key}"
                value = given.get(key)
                if not isinstance(value, str) or not value.strip():
                    raise ContentError(f"{where}: a text is required")
                try:
                    used = _placeholders(value)
                except ValueError as exc:
                    raise ContentError(f"{where}: broken braces: {exc}") from exc
                if used - allowed:
                    raise ContentError(
                        f"{where}: unknown placeholders {sorted(used - allowed)}; "
                        f"it may use {sorted(allowed) or 'none'}"
                    )
                if label and len(value.format(country="United Kingdom")) > MAX_LABEL:
                    raise ContentError(f"{where}: a button label over {MAX_LABEL} characters")
                texts[section][key] = value.strip()
        return cls(texts)

    @classmethod
    def load(cls, path: Path = DIALOGS_DIR / "chat.yaml", lang: str = SOURCE) -> ChatBook:
        """Read and check the file, its texts in `lang`."""
        try:
            raw = load_yaml(path, lang)
        except (OSError, yaml.YAMLError) as exc:
            raise ContentError(f"{path.name}: unreadable: {exc!r}") from exc
        return cls.from_dict(raw, path.name)

    def text(self, section: str, key: str, **values: str) -> str:
        """A text with its placeholders filled in (a missing value is an error)."""
        return self.texts[section][key].format(**values)


@cache
def chat_book(lang: str = SOURCE) -> ChatBook:
    """The bot's own `chat.yaml` in `lang`, loaded and checked once."""
    return ChatBook.load(lang=lang)


def one_line(advice: Advice) -> str:
    """A result in one line: its headline, then its first danger's title or else what it
    looks like ("⚠️ Get seen by a doctor today. Foot pain that eases when ...")."""
    head = advice.headline.strip()
    blocks = advice.red_flag_blocks
    tail = (blocks[0].title if blocks else advice.pattern_name).strip()
    if not tail:
        return head
    joiner = " " if head.endswith((".", "!", ":")) else ": "
    return f"{head}{joiner}{tail[:1].upper()}{tail[1:]}"


__all__ = ["MAX_LABEL", "MAX_NOTE", "ChatBook", "chat_book", "one_line"]
