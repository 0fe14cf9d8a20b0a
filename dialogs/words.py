"""Texts by section and key from a content file (`screens.yaml`, `documents.yaml`), in one
language: the words around the flows that adapters and exports show.

The file's English is the source; each language is the same tree with its texts translated
(`dialogs.i18n`), so every key is there in every language. A key's placeholders are the
English text's: `words.text("menu", "welcome")`, `words.plural("trends", "nights", 3)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from dialogs.content import DIALOGS_DIR, ContentError
from dialogs.i18n import SOURCE, Plural, load_yaml


class Words:
    """One content file's texts in one language."""

    def __init__(self, raw: Mapping[str, Any], source: str, lang: str = SOURCE) -> None:
        if not isinstance(raw, Mapping):
            raise ContentError(f"{source}: the file must be a mapping of sections")
        self.raw, self.source, self.lang = raw, source, lang

    @classmethod
    def load(cls, name: str, lang: str = SOURCE, directory: Path = DIALOGS_DIR) -> Words:
        path = directory / f"{name}.yaml"
        try:
            raw = load_yaml(path, lang)
        except (OSError, yaml.YAMLError) as exc:
            raise ContentError(f"{path.name}: unreadable: {exc!r}") from exc
        return cls(raw, path.name, lang)

    def _at(self, keys: tuple[str, ...]) -> Any:
        node: Any = self.raw
        for key in keys:
            if not isinstance(node, Mapping) or key not in node:
                raise KeyError(f"{self.source}: no text at {'.'.join(keys)}")
            node = node[key]
        return node

    def text(self, *keys: str, **values: object) -> str:
        """The text at `keys`, its placeholders filled in (a missing value is an error)."""
        node = self._at(keys)
        if isinstance(node, Plural) or not isinstance(node, str):
            raise KeyError(f"{self.source}: {'.'.join(keys)} is not a single text")
        return node.format(**values) if values else node

    def plural(self, *keys: str, n: int, **values: object) -> str:
        """The form of the plural text at `keys` for `n` (`{n}` is filled in too)."""
        node = self._at(keys)
        if isinstance(node, Plural):
            form = node(n)
        elif isinstance(node, Mapping) and set(node) == {"one", "other"}:  # English source
            form = node["one"] if n == 1 else node["other"]
        else:
            raise KeyError(f"{self.source}: {'.'.join(keys)} is not a plural text")
        return form.format(n=n, **values)

    def section(self, *keys: str) -> Mapping[str, Any]:
        """A whole section (e.g. a table of labels by id)."""
        node = self._at(keys)
        if not isinstance(node, Mapping):
            raise KeyError(f"{self.source}: {'.'.join(keys)} is not a section")
        return node


@cache
def words(name: str, lang: str = SOURCE) -> Words:
    """`dialogs/<name>.yaml` in `lang`, loaded once."""
    return Words.load(name, lang)


__all__ = ["Words", "words"]
