"""The flow drawn as a Mermaid state diagram, from the same machine the bot runs.

`python -m dialogs.diagram` rewrites `docs/flows/<flow>.mmd`; a test fails when the committed
file is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

from transitions.extensions import GraphMachine

from dialogs.engine import Flow, machine_config

DOCS = Path(__file__).resolve().parent.parent / "docs" / "flows"
FLOWS = ("triage", "diary")


class _Drawing:
    """A stand-in model: GraphMachine draws per model, and the flow's models are transient."""


def mermaid(flow: Flow) -> str:
    config = machine_config(flow.content)
    drawing = _Drawing()
    config.update(
        model=drawing,
        graph_engine="mermaid",
        show_conditions=True,
        title=f"{flow.content.title} ({flow.name}.yaml v{flow.content.version})",
    )
    GraphMachine(**config)
    text = drawing.get_graph().draw(None)  # type: ignore[attr-defined]
    # Drop the "current state" styling: the diagram documents the flow, not one conversation.
    lines = [
        line.rstrip()
        for line in text.splitlines()
        if "Class " not in line and "classDef" not in line
    ]
    return "\n".join(lines).strip() + "\n\n" + "\n".join(_notes(flow)) + "\n"


def _notes(flow: Flow) -> list[str]:
    """A note on each question: the findings (spec ids) its answers set, so a reviewer sees
    where each finding is asked."""
    notes = []
    for question in flow.content.questions:
        found = dict.fromkeys(f for o in question.options for f in o.sets)
        if found:
            notes.append(f"  note right of {question.id} : sets {', '.join(found)}")
    return notes


def write_all() -> list[Path]:
    DOCS.mkdir(parents=True, exist_ok=True)
    written = []
    for name in FLOWS:
        path = DOCS / f"{name}.mmd"
        path.write_text(mermaid(Flow.load(name)), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_all():
        sys.stdout.write(f"wrote {written_path}\n")
