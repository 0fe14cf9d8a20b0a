"""The shape of the house: imports flow one way, there is no import cycle anywhere, features
don't know each other, and the bot does not load heavy file libraries until a file is built."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "dialogs", "storage")
FEATURES = {"consent", "triage", "diary", "export", "settings", "followups"}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules `name` imports anywhere in the file (TYPE_CHECKING blocks included)."""
    tree = ast.parse(path.read_text("utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
    return {t for t in targets if t in known and t != name}


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(name, path, known) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_anywhere_in_the_project() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_flow_down_from_adapters_to_the_pure_core() -> None:
    edges = graph()
    for name, targets in edges.items():
        if name.startswith("dialogs"):
            assert not {t for t in targets if not t.startswith("dialogs")}, name
        if name.startswith("storage"):
            assert not {t for t in targets if t.startswith("bot")}, name
        if name.startswith("bot.services"):
            assert not {t for t in targets if t.startswith("bot.telegram")}, name


def test_the_pure_core_imports_no_telegram_and_no_database() -> None:
    for name, path in modules().items():
        if not name.startswith("dialogs"):
            continue
        tree = ast.parse(path.read_text("utf-8"))
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not {n for n in names if n.split(".")[0] in {"telegram", "sqlalchemy"}}, name


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_a_telegram_feature_imports_no_other_feature(feature: str) -> None:
    targets = graph()[f"bot.telegram.{feature}"]
    others = {f"bot.telegram.{f}" for f in FEATURES - {feature}}
    assert not targets & others


def test_the_running_bot_loads_no_heavy_library_it_does_not_need() -> None:
    """matplotlib and fpdf2 load in the file worker; alembic in a migration child process."""
    code = (
        "import sys, os; os.environ['PTB_TIMEDELTA'] = 'true'\n"
        "import bot.telegram.app, bot.__main__, bot.admin\n"
        "heavy = [m for m in ('matplotlib', 'fpdf', 'alembic', 'bot.files.pdf', 'bot.files.fhir',"
        " 'bot.files.chart', 'bot.files.bundle') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == ""
