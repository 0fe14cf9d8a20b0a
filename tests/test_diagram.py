"""The committed flow diagram is the one the YAML and machine draw today."""

from dialogs.diagram import DOCS, FLOWS, mermaid
from dialogs.engine import Flow


def test_the_committed_flow_diagrams_are_up_to_date() -> None:
    for name in FLOWS:
        committed = (DOCS / f"{name}.mmd").read_text(encoding="utf-8")
        assert committed == mermaid(Flow.load(name)), (
            f"docs/flows/{name}.mmd is stale: run `python -m dialogs.diagram` and commit it"
        )


def test_the_diagram_shows_every_question_and_the_emergency_exit() -> None:
    flow = Flow.load("triage")
    drawn = mermaid(flow)
    for question in flow.content.questions:
        assert f'state "{question.id}"' in drawn
    assert "emergency_signs --> emergency" in drawn


def test_the_triage_diagram_names_where_every_spec_v3_finding_is_asked() -> None:
    drawn = mermaid(Flow.load("triage"))
    v3 = ["stroke_signs", "leg_weakness_sudden", "cauda_equina_signs", "muscle_breakdown_signs"]
    v3 += ["shooting_down_leg", "back_pain", "onset_recent", "one_leg", "lump_behind_knee"]
    notes = [line for line in drawn.splitlines() if line.strip().startswith("note right of")]
    for finding in v3:
        assert any(finding in note for note in notes), finding
