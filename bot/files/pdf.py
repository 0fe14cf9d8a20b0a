"""The doctor summary: one or two A4 pages a clinician can read in a minute, as PDF bytes.

A pure function over the export dict (`storage/export.py`, docs/export.schema.json): the
triages of the period with their pattern, urgency and warning signs in plain words, the
diary's numbers and 30-night chart, the background answers that matter for night leg
symptoms, and questions the person may want to ask, chosen by what was found.

Drawn with fpdf2 in DejaVu Sans as bundled with matplotlib, so it needs no system fonts and
no network. Nothing identifies the person unless the caller passes a name: the Telegram id
in the export is never printed.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import matplotlib
import yaml
from fpdf import FPDF
from fpdf.fonts import FontFace

from bot.files.chart import render_chart
from dialogs.content import DIALOGS_DIR, load_flow
from dialogs.trends import (
    LOGGED,
    MISSED,
    NOT_ASKED,
    NOTHING_HELPED,
    SKIPPED,
    SYMPTOM_LABELS,
    SYMPTOMS,
    Night,
    Summary,
    summarize,
)

TITLE = "Night leg symptoms: patient self-report"
SELF_REPORT = (
    "Everything below is what the person answered in nightlegs, a self-report chat tool for "
    "night leg symptoms. It is not a diagnosis and no clinician has reviewed it."
)
FOOTER = "nightlegs self-report, not a diagnosis."
NOTES_HEADING = "In their own words, for the doctor"
MAX_TRIAGES = 8
"""Most recent triages listed; older ones are only counted, so the summary stays two pages."""
CHART_NIGHTS = 30
CHART_SIZE = 70.0
"""Width and height of the chart on the page, in mm."""
HEADING_HEIGHT = 9.0
FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
FONT = "DejaVuSans"

RED_FLAG_WORDS: dict[str, str] = {
    "calf_swelling_warm_red": "one calf swollen, warm and red",
    "chest_pain_or_breathless": "chest pain or breathlessness",
    "sudden_weakness": "sudden weakness or numbness",
    "tissue_changes": "sores, dark or pale skin, cold toes",
    "dangling_relief": "foot pain eased by dangling the leg",
    "new_medicine_cramps": "cramps since a new medicine",
    "infection_signs": "spreading redness with fever or shivers",
    "cauda_equina_signs": "saddle numbness or new bladder or bowel trouble",
    "muscle_breakdown_signs": "dark urine or weak, tender muscles after a new medicine",
}
"""The spec's red flags as a clinician reads them (advice.yaml words them for the person)."""

BACKGROUND_WORDS: dict[str, str] = {
    "takes_diuretic_or_statin": "takes a diuretic or statin",
    "takes_antihistamine_or_antidepressant": "takes an antihistamine or antidepressant",
    "kidney_disease": "kidney disease",
    "pregnant": "pregnant",
    "smoker": "smokes or used to smoke",
    "diabetes": "diabetes",
    "high_blood_pressure": "high blood pressure",
    "high_cholesterol": "high cholesterol",
    "heart_or_stroke_history": "heart disease or stroke",
    "low_iron_known": "told their iron is low",
    "family_history_rls": "restless legs in the family",
}
"""Background findings that bear on cramps, restless legs or leg arteries, in print order."""

CIRCULATION_PATTERNS = frozenset({"pad_claudication", "pad_rest_pain", "critical_limb_ischemia"})
_CHECKIN_STATUS = {"missed": MISSED, "skipped": SKIPPED, "failed": NOT_ASKED}
"""Check-ins that count for the diary without an entry; answered nights come from entries."""
_TABLE_HEADINGS = FontFace(emphasis="BOLD", fill_color=(230, 230, 230))


def local_time(stamp: str, zone: ZoneInfo) -> datetime:
    """An exported ISO timestamp in `zone`; one without an offset is taken as UTC."""
    moment = datetime.fromisoformat(stamp)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone)


def _diary_nights(data: Mapping[str, Any]) -> list[Night]:
    """The export's diary as the trend module's nights (answered, missed, skipped, failed)."""
    diary = data["diary"]
    nights = [
        Night(date.fromisoformat(c["night"]), _CHECKIN_STATUS[c["status"]], {})
        for c in diary["checkins"]
        if c["status"] in _CHECKIN_STATUS
    ]
    nights += [
        Night(date.fromisoformat(e["night"]), LOGGED, e["values"], e["backfilled"])
        for e in diary["entries"]
    ]
    return nights


def doctor_pdf(
    data: Mapping[str, Any], *, since: date | None, zone: str, name: str | None, today: date
) -> bytes:
    """The summary of the period from `since` (or the first record) to `today`, in `zone`."""
    tz = ZoneInfo(zone)
    started = sorted(
        (
            (local_time(c["started_at"], tz), c)
            for c in data["conversations"]
            if c["flow"] == "triage"
        ),
        key=lambda item: item[0],
    )
    triages = [(moment.date(), c) for moment, c in started]
    nights = _diary_nights(data)
    start = since or min(
        [day for day, _ in triages] + [n.night for n in nights if n.status != NOT_ASKED],
        default=today,
    )
    start = min(start, today)
    triages = [(day, c) for day, c in triages if start <= day <= today]
    nights = [n for n in nights if n.night >= start]
    summary = summarize(nights, today=today, days=(today - start).days + 1)
    findings: dict[str, bool] = {}
    for _, conversation in triages:
        findings.update(conversation["findings"])
    concluded = [(day, c["conclusion"]) for day, c in triages if c["conclusion"] is not None]
    entries = [
        e for e in data["diary"]["entries"] if start <= date.fromisoformat(e["night"]) <= today
    ]
    red_flags = {flag for _, c in concluded for flag in c["red_flags"]}
    red_flags |= {flag for e in entries for flag in e["red_flags"]}

    pdf = _Pdf(zone, today)
    pdf.title_block(name, start, today, summary.days)
    pdf.triage_table(concluded[::-1], unfinished=len(triages) - len(concluded))
    pdf.notes([(day, c["note"]) for day, c in triages if c.get("note")][::-1])
    pdf.background(findings)
    pdf.diary(summary, entries, nights, today)
    pdf.questions(
        _questions(
            patterns={c["pattern"] for _, c in concluded},
            findings=findings,
            red_flags=red_flags,
            symptom_nights=summary.symptom_nights,
        )
    )
    pdf.closing()
    return bytes(pdf.output())


def _questions(
    *,
    patterns: Iterable[str],
    findings: Mapping[str, bool],
    red_flags: Iterable[str],
    symptom_nights: Mapping[str, int],
) -> list[str]:
    """What the person may want to ask their doctor, from the patterns and answers found."""
    patterns, red_flags = set(patterns), set(red_flags)

    def said(finding: str) -> bool:
        return findings.get(finding) is True

    cramps = (
        "leg_cramps" in patterns
        or said("muscle_hard_knot")
        or said("toes_pulled")
        or symptom_nights.get("cramps", 0) > 0
    )
    restless = (
        "restless_legs" in patterns or said("urge_to_move") or symptom_nights.get("restless", 0) > 0
    )
    circulation = (
        bool(patterns & CIRCULATION_PATTERNS)
        or said("walking_calf_pain")
        or "dangling_relief" in red_flags
    )
    asks = []
    if restless:
        asks.append("Should my iron stores be checked, for example with a ferritin blood test?")
        if said("takes_antihistamine_or_antidepressant"):
            asks.append(
                "Could my antihistamine or antidepressant be making the restlessness worse?"
            )
    if circulation:
        asks.append(
            "Would an ankle-brachial index test (blood pressure at the ankle against the arm) "
            "show how well blood reaches my legs?"
        )
        asks.append("What is my overall risk of heart attack and stroke, and how can I lower it?")
        if said("smoker"):
            asks.append("What help is there for me to stop smoking?")
    if "new_medicine_cramps" in red_flags or (cramps and said("takes_diuretic_or_statin")):
        asks.append(
            "Could one of my medicines be causing the cramps? Can we review them together? "
            "I will not stop any on my own."
        )
    if said("cramps_worsening") or said("weakness_numbness_back_pain"):
        asks.append(
            "The cramps are getting worse or come with weakness, numbness or back pain: "
            "should a nerve, spine or metabolic cause be looked for?"
        )
    if cramps:
        conditions = [
            words
            for finding, words in (("kidney_disease", "kidney disease"), ("pregnant", "pregnancy"))
            if said(finding)
        ]
        caution = f" This matters with my {' and '.join(conditions)}." if conditions else ""
        asks.append(
            "Is magnesium worth trying for the cramps, and is it safe for me? "
            f"I will only take it on your advice.{caution}"
        )
    if "possible_dvt" in patterns:
        asks.append("Has a blood clot in a leg vein been ruled out?")
    if "nerve_root_pain" in patterns:
        asks.append("Could a nerve in my back cause this, and which changes need me seen at once?")
    if "unclear" in patterns:
        asks.append("What else could explain my symptoms, and what would help tell them apart?")
    asks.append("Which changes should make me come back sooner?")
    return asks


@cache
def _advice() -> dict[str, Any]:
    return yaml.safe_load((DIALOGS_DIR / "advice.yaml").read_text(encoding="utf-8"))


@cache
def _helped_labels() -> dict[str, str]:
    """The diary's "what helped" keys with the button label the person tapped."""
    question = load_flow("diary").question("helped")
    assert question is not None
    return {str(o.records["helped"]): o.label for o in question.options}


def _pattern_words(pattern: str) -> str:
    """A conclusion's pattern in plain words, from advice.yaml."""
    words = _advice()["patterns"][pattern]["name"].strip()
    return words[:1].upper() + words[1:]


def _urgency_words(urgency: str) -> str:
    """A conclusion's urgency as its advice.yaml headline, without the symbol and full stop."""
    headline = _advice()["urgency"][urgency]["headline"]
    return re.sub(r"^\W+", "", headline).strip().rstrip(".")


def _day(day: date) -> str:
    return f"{day.day} {day:%b %Y}"


def _nights(count: int) -> str:
    return f"{count} night" if count == 1 else f"{count} nights"


class _Pdf(FPDF):
    """An A4 page layout with the summary's sections and a footer on every page."""

    def __init__(self, zone: str, today: date) -> None:
        super().__init__(format="A4")
        self.zone = zone
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(True, margin=16)
        self.add_font(FONT, "", FONT_DIR / "DejaVuSans.ttf")
        self.add_font(FONT, "B", FONT_DIR / "DejaVuSans-Bold.ttf")
        self.set_title(TITLE)
        self.set_creator("nightlegs")
        self.set_creation_date(datetime.combine(today, time(), ZoneInfo(zone)))
        self.add_page()

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, size=7.5)
        self.set_text_color(100)
        self.cell(0, 4, f"{FOOTER} Page {self.page_no()} of {{nb}}", align="C")
        self.set_text_color(0)

    def heading(self, text: str) -> None:
        self.ln(HEADING_HEIGHT - 6)
        self.set_font(FONT, "B", 11)
        self.cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
        self.set_font(FONT, size=9)

    def paragraph(self, text: str, *, size: float = 9) -> None:
        self.set_font(FONT, size=size)
        self.multi_cell(0, 4.4, text, align="L", new_x="LMARGIN", new_y="NEXT")

    def title_block(self, name: str | None, start: date, end: date, nights: int) -> None:
        self.set_font(FONT, "B", 16)
        self.cell(0, 9, TITLE, new_x="LMARGIN", new_y="NEXT")
        lines = [f"Name: {name}"] if name else []
        lines += [
            f"Period covered: {_day(start)} to {_day(end)} ({_nights(nights)}), "
            f"times in {self.zone}.",
        ]
        self.paragraph("\n".join(lines), size=10)
        self.ln(1)
        self.set_fill_color(245, 240, 225)
        self.set_font(FONT, size=9)
        self.multi_cell(0, 4.4, SELF_REPORT, align="L", fill=True, padding=1.5)
        self.set_fill_color(255)

    def triage_table(
        self, concluded: list[tuple[date, Mapping[str, Any]]], unfinished: int
    ) -> None:
        """The most recent triages first, each with pattern, urgency and warning signs."""
        self.heading("Symptom checks (triage), most recent first")
        if not concluded:
            self.paragraph("No completed symptom check in this period.")
        else:
            with self.table(
                col_widths=(23, 48, 39, 70),
                text_align="LEFT",
                line_height=3.8,
                headings_style=_TABLE_HEADINGS,
                padding=1,
            ) as table:
                self.set_font(FONT, size=8.5)
                table.row(["Date", "What it looked like", "Urgency given", "Warning signs"])
                for day, conclusion in concluded[:MAX_TRIAGES]:
                    flags = [RED_FLAG_WORDS[f] for f in conclusion["red_flags"]]
                    table.row(
                        [
                            _day(day),
                            _pattern_words(conclusion["pattern"]),
                            _urgency_words(conclusion["urgency"]),
                            "; ".join(flags) if flags else "none",
                        ]
                    )
        notes = []
        older = concluded[MAX_TRIAGES:]
        if older:
            notes.append(
                f"{len(older)} older completed check{'s' if len(older) > 1 else ''} not listed "
                f"(the first on {_day(older[-1][0])})."
            )
        if unfinished:
            notes.append(
                f"{unfinished} check{'s' if unfinished > 1 else ''} started but not finished."
            )
        if notes:
            self.ln(1)
            self.paragraph(" ".join(notes), size=8.5)

    def notes(self, notes: list[tuple[date, str]]) -> None:
        """Spec v3 item 10: what the person wanted their doctor to know, in their own words."""
        if not notes:
            return
        self.heading(NOTES_HEADING)
        self.set_font(FONT, size=9)
        cmap = self.current_font.cmap  # type: ignore[union-attr]
        for day, note in notes[:MAX_TRIAGES]:
            # Characters the font cannot draw (emoji, some scripts) become "?": fpdf2 would
            # otherwise log them, and logs never hold what people wrote.
            printable = "".join(c if ord(c) in cmap else ("\n" if c == "\n" else "?") for c in note)
            self.paragraph(f"{_day(day)}: \u201c{printable}\u201d")

    def background(self, findings: Mapping[str, bool]) -> None:
        """The latest background answers, split into yes, no and not answered."""
        self.heading("Background (latest answers in the checks)")
        said: dict[bool | None, list[str]] = {True: [], False: [], None: []}
        for finding, words in BACKGROUND_WORDS.items():
            said[findings.get(finding)].append(words)
        if not said[True] and not said[False]:
            self.paragraph("No background questions answered in this period.")
            return
        lines = [
            f"{label}: {', '.join(items)}."
            for label, items in (
                ("Yes", said[True]),
                ("No", said[False]),
                ("Not answered or not sure", said[None]),
            )
            if items
        ]
        self.paragraph("\n".join(lines))

    def diary(
        self,
        summary: Summary,
        entries: list[Mapping[str, Any]],
        nights: list[Night],
        today: date,
    ) -> None:
        """The diary's numbers for the period, with the last 30 nights' chart beside them.

        Numbers and chart go on one page: on the next one if they do not fit on this one.
        """
        if not summary.nights_asked:
            self.heading("Nightly diary")
            self.paragraph("No diary nights were asked about in this period.")
            return
        rows = self._diary_rows(summary, entries)
        with self.offset_rendering() as trial:
            trial.ln(HEADING_HEIGHT)
            self._diary_table(trial, rows)
        if trial.page_break_triggered or self.will_page_break(HEADING_HEIGHT + CHART_SIZE):
            self.add_page()
        self.heading("Nightly diary")
        top = self.get_y()
        chart = render_chart(summarize(nights, today=today, days=CHART_NIGHTS))
        self.image(io.BytesIO(chart), x=self.w - self.r_margin - CHART_SIZE, y=top, w=CHART_SIZE)
        self._diary_table(self, rows)
        self.set_y(max(self.get_y(), top + CHART_SIZE) + 1)

    @staticmethod
    def _diary_table(pdf: FPDF, rows: list[tuple[str, str]]) -> None:
        """The diary's numbers as label and value, left of the chart."""
        with pdf.table(
            width=pdf.epw - CHART_SIZE - 4,
            align="LEFT",
            col_widths=(36, 70),
            text_align="LEFT",
            line_height=3.8,
            first_row_as_headings=False,
            padding=1,
        ) as table:
            for row in rows:
                table.row(row)

    @staticmethod
    def _diary_rows(summary: Summary, entries: list[Mapping[str, Any]]) -> list[tuple[str, str]]:
        unanswered = f"{summary.nights_missed} missed, {summary.nights_skipped} skipped"
        rows = [
            ("Nights logged", f"{summary.nights_logged} of {summary.nights_asked} asked"),
            ("Not answered", unanswered),
        ]
        if summary.backfilled:
            rows.append(("Filled in later", _nights(summary.backfilled)))
        for symptom in SYMPTOMS:
            rows.append((SYMPTOM_LABELS[symptom], _nights(summary.symptom_nights[symptom])))
        rows.append(("No symptoms", _nights(summary.symptom_free_nights)))
        if summary.cramp_episodes:
            rows.append(("Cramp episodes", f"at least {summary.cramp_episodes}"))
        if summary.wakeups_average is not None:
            rows.append(
                (
                    "Woken by the legs",
                    f"{summary.wakeups_total} times, {summary.wakeups_average:.1f} a night",
                )
            )
        if summary.worst_pain is not None:
            rows.append(("Worst cramp pain", f"{summary.worst_pain}/10"))
        labels = _helped_labels()
        helped = [(key, n) for key, n in summary.helped if key != NOTHING_HELPED]
        if helped:
            rows.append(
                (
                    "What helped",
                    ", ".join(f"{labels.get(k, k).lower()} {_nights(n)}" for k, n in helped),
                )
            )
        nothing = dict(summary.helped).get(NOTHING_HELPED)
        if nothing:
            rows.append(("Nothing helped", _nights(nothing)))
        flagged = [e for e in entries if e["red_flags"]]
        if flagged:
            words = sorted({RED_FLAG_WORDS[f] for e in flagged for f in e["red_flags"]})
            rows.append(("Warning signs", f"{_nights(len(flagged))}: {'; '.join(words)}"))
        return rows

    def questions(self, asks: list[str]) -> None:
        self.heading("Questions the person may want to ask")
        for ask in asks:
            self.cell(4, 4.4, "•")
            self.multi_cell(0, 4.4, ask, align="L", new_x="LMARGIN", new_y="NEXT")

    def closing(self) -> None:
        self.ln(2)
        self.paragraph(
            "Wording of patterns and urgency is the tool's own, from fixed rules over the "
            "person's answers. The diary counts only nights the person answered; missed nights "
            "are not counted as nights without symptoms.",
            size=8,
        )
