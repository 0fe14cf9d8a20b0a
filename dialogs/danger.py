"""Typed words read for danger (spec v2 item 5), from `dialogs/danger_phrases.yaml` and one
`dialogs/danger_phrases.<lang>.yaml` per language.

`read(text)` returns the red flags (spec ids, in the spec's order) that free text names, such
as "chest pain", "cant breath" or "my calf is swollen and hot", and not "no chest pain" or
"my calf is not swollen"; then the kinds of a red flag it names ("my face is drooping" is
`sudden_weakness` of the kind `stroke_signs`), so the advice names the right danger.
The phrases are content: this module only reads them. They are loaded and compiled once;
reading is pure and allocation-light, fit for every message.

Each language has its own phrases, negations and ways of writing (they are not
translations). A person's text is read with their language's phrases and with English's:
people mix languages ("heart attack" in a German sentence), and a missed sign costs more
than a false alarm.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from dialogs.content import DIALOGS_DIR, ContentError, Where
from dialogs.i18n import SOURCE
from dialogs.vocabulary import IMPLIES, RED_FLAGS

READ_IDS: tuple[str, ...] = (*RED_FLAGS, *IMPLIES)
"""What typed words can name: red flags, and the kinds of a red flag (spec v3 item 1)."""

MAX_TEXT = 1000
"""Longer text is read only this far: a chat message naming an emergency says so early."""
BREAK = "|"
"""The token a clause break becomes."""
_WORD = re.compile(r"[^\W_]+(?:\*)?~?")
_PUNCTUATION = re.compile(r"[.,;:!?()\[\]\n¡¿«»„“”]+")
_OTHER = re.compile(r"[^\w| ]+|_")

Matcher = Callable[[str], bool]


def slips(a: str, b: str) -> int:
    """Edit distance with swaps of neighbours (optimal string alignment), capped at 2."""
    if abs(len(a) - len(b)) > 1:
        return 2
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        row = [i]
        for j, cb in enumerate(b, start=1):
            cost = 0 if ca == cb else 1
            best = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                best = min(best, previous2[j - 2] + 1)
            row.append(best)
        previous2, previous = previous, row
    return min(previous[-1], 2)


def near(token: str, word: str) -> bool:
    """One slip at most; a 4-letter word may not have a letter changed ("calf" is not "half")."""
    if token == word:
        return True
    if len(word) < 4 or slips(token, word) > 1:
        return False
    return len(word) > 4 or len(token) != len(word) or sorted(token) == sorted(word)


def _alternative(spec: str) -> Matcher:
    fuzzy = spec.endswith("~")
    stem = spec.rstrip("~")
    if stem.endswith("*"):
        stem = stem[:-1]
        if not fuzzy:
            return lambda token: token.startswith(stem)
        lengths = (len(stem) - 1, len(stem), len(stem) + 1)
        return lambda token: (
            token.startswith(stem)
            or any(len(token) >= k and near(token[:k], stem) for k in lengths)
        )
    if fuzzy:
        return lambda token: near(token, stem)
    return lambda token: token == stem


def _word(spec: str) -> Matcher:
    alternatives = [_alternative(a) for a in spec.split("|")]
    return lambda token: token != BREAK and any(m(token) for m in alternatives)


@dataclass(frozen=True)
class Phrase:
    """Words in order, each a matcher; `text` is the phrase as written, for messages."""

    text: str
    words: tuple[Matcher, ...]


@dataclass(frozen=True)
class Rule:
    """A red flag is read when every phrase of the rule is found, not negated."""

    flag: str
    phrases: tuple[Phrase, ...]


class DangerReader:
    """Compiled danger phrases; `read` is the whole interface."""

    def __init__(self, raw: Mapping[str, Any], source: str = "danger_phrases.yaml") -> None:
        where = Where(source)
        if not isinstance(raw, dict):
            raise where.error("the file must be a mapping with `flags`")
        try:
            self.max_gap = int(raw.get("max_gap", 2))
            self.window = int(raw.get("negation_window", 3))
            negations = raw["negations"]
            if not all(isinstance(w, str) for w in negations):  # e.g. an unquoted no
                raise where.at("negations").error("every word must be a quoted string")
            self.negations = frozenset(fold(w) for w in negations)
            self.breaks = frozenset(fold(str(w)) for w in raw.get("clause_breaks", ()))
            same = {fold(str(k)): fold(str(v)) for k, v in raw.get("same_words", {}).items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise where.error(f"malformed: {exc!r}") from exc
        self.same = sorted(
            ((tuple(k.split()), tuple(v.split())) for k, v in same.items()),
            key=lambda kv: -len(kv[0]),
        )
        flags = raw.get("flags")
        if not isinstance(flags, dict) or not flags:
            raise where.error("`flags` must map red flag ids to lists of phrases")
        rules: list[Rule] = []
        for flag, entries in flags.items():
            here = where.at(f"flags.{flag}")
            if flag not in READ_IDS:
                raise here.error(f"{flag!r} is not a red flag of the spec, nor a kind of one")
            if not isinstance(entries, list) or not entries:
                raise here.error("needs a list of phrases")
            for i, entry in enumerate(entries):
                parts = entry.get("all") if isinstance(entry, dict) else [entry]
                if not isinstance(parts, list) or not parts:
                    raise here.at(f"[{i}]").error("a phrase, or `all: [phrases]`")
                phrases = tuple(self._phrase(p, here.at(f"[{i}]")) for p in parts)
                rules.append(Rule(flag, phrases))
        self.rules = tuple(rules)

    @classmethod
    def load(cls, path: Path = DIALOGS_DIR / "danger_phrases.yaml") -> DangerReader:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ContentError(f"{path.name}: cannot read: {exc}") from exc
        return cls(raw, path.name)

    @staticmethod
    def _phrase(raw: Any, where: Where) -> Phrase:
        if not isinstance(raw, str) or not raw.split():
            raise where.error("a phrase must be words")
        words = fold(raw).split()
        for word in words:
            for alternative in word.split("|"):
                if raw != raw.lower() or not _WORD.fullmatch(alternative):
                    raise where.error(
                        f"{alternative!r} in {raw!r}: use lowercase letters, `|`, `*` and `~`"
                    )
        return Phrase(raw, tuple(_word(w) for w in words))

    # --- reading ----------------------------------------------------------------------------

    def tokens(self, text: str) -> list[str]:
        """Lowercase words without accents or apostrophes; clause breaks as `BREAK`."""
        folded = _PUNCTUATION.sub(f" {BREAK} ", fold(text[:MAX_TEXT]))
        words = [BREAK if w in self.breaks else w for w in _OTHER.sub(" ", folded).split()]
        return self._rewrite(words)

    def _rewrite(self, words: list[str]) -> list[str]:
        out: list[str] = []
        i = 0
        while i < len(words):
            for before, after in self.same:
                if tuple(words[i : i + len(before)]) == before:
                    out.extend(after)
                    i += len(before)
                    break
            else:
                out.append(words[i])
                i += 1
        return out

    def read(self, text: str) -> tuple[str, ...]:
        """The red flags the text names in the spec's order, then their kinds (empty: none)."""
        tokens = self.tokens(text)
        found = {
            rule.flag
            for rule in self.rules
            if all(self._found(phrase, tokens) for phrase in rule.phrases)
        }
        found |= {IMPLIES[kind] for kind in found & IMPLIES.keys()}
        return tuple(i for i in READ_IDS if i in found)

    def _found(self, phrase: Phrase, tokens: Sequence[str]) -> bool:
        for start, token in enumerate(tokens):
            if not phrase.words[0](token):
                continue
            for positions in self._spans(phrase.words[1:], tokens, [start]):
                if not self._negated(tokens, positions):
                    return True
        return False

    def _spans(self, rest: Sequence[Matcher], tokens: Sequence[str], at: list[int]):  # type: ignore[no-untyped-def]
        """Every way to place the remaining words within the gap, in the same clause."""
        if not rest:
            yield at
            return
        last = at[-1]
        for nxt in range(last + 1, min(len(tokens), last + 2 + self.max_gap)):
            if tokens[nxt] == BREAK:
                return
            if rest[0](tokens[nxt]):
                yield from self._spans(rest[1:], tokens, [*at, nxt])

    def _negated(self, tokens: Sequence[str], positions: list[int]) -> bool:
        inside = [tokens[i] for i in range(positions[0], positions[-1] + 1) if i not in positions]
        before: list[str] = []
        for i in range(positions[0] - 1, max(-1, positions[0] - 1 - self.window), -1):
            if tokens[i] == BREAK:
                break
            before.append(tokens[i])
        return any(t in self.negations for t in (*inside, *before))


def fold(text: str) -> str:
    """Lowercase, without accents (ä is a, й is и) or apostrophes: how text and phrases are
    compared, so "Schwäche", "schwache" and "can't", "cant" read the same."""
    folded = unicodedata.normalize("NFKD", text.lower())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return folded.replace("'", "").replace("\u2019", "").replace("`", "")


def phrases_path(lang: str = SOURCE) -> Path:
    """English: `danger_phrases.yaml`; another language: `danger_phrases.<lang>.yaml`."""
    suffix = "" if lang == SOURCE else f".{lang}"
    return DIALOGS_DIR / f"danger_phrases{suffix}.yaml"


@cache
def reader(lang: str = SOURCE) -> DangerReader:
    """A language's reader, loaded and compiled once (English for a language without one)."""
    path = phrases_path(lang)
    return DangerReader.load(path if path.exists() else phrases_path())


def read(text: str, lang: str = SOURCE) -> tuple[str, ...]:
    """The red flags that free text names in the spec's order, then their kinds (empty:
    none), read in the person's language and in English."""
    found = set(reader(lang).read(text))
    if lang != SOURCE:
        found |= set(reader().read(text))
    return tuple(i for i in READ_IDS if i in found)
