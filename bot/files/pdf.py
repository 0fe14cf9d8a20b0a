"""The doctor summary: one or two A4 pages a clinician can read in a minute, as PDF bytes.

A pure function over the export dict (`storage/export.py`, docs/export.schema.json): the
triages of the period with their pattern, urgency and warning signs in plain words, the
diary's numbers and 30-night chart, the background answers that matter for night leg
symptoms, and questions the person may want to ask, chosen by what was found.

Drawn with fpdf2 in DejaVu Sans as bundled with matplotlib, so it needs no system fonts and
no network; DejaVu covers Latin and Cyrillic. Nothing identifies the person unless the caller
passes a name: the Telegram id in the export is never printed.

Everything is in the person's language (the export's, `bot.files.language.lang_of`): the
headings and labels from `dialogs/documents.yaml`, patterns and urgencies from the advice,
what helped from the diary flow, dates as the language writes them.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import matplotlib
from fpdf import FPDF
from fpdf.fonts import FontFace

from bot.files.chart import render_chart
from bot.files.language import (
    decimal,
    documents,
    lang_of,
    long_day,
    pattern_words,
    urgency_words,
)
from dialogs.texts import texts
from dialogs.trends import (
    LOGGED,
    MISSED,
    NOT_ASKED,
    NOTHING_HELPED,
    SKIPPED,
    SYMPTOMS,
    Night,
    Summary,
    summarize,
)
from dialogs.vocabulary import RED_FLAGS

MAX_TRIAGES = 8
"""Most recent triages listed; older ones are only counted, so the summary stays two pages."""
CHART_NIGHTS = 30
CHART_SIZE = 70.0
"""Width and height of the chart on the page, in mm."""
HEADING_HEIGHT = 9.0
FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
FONT = "DejaVuSans"

BACKGROUND_FINDINGS: tuple[str, ...] = (
    "takes_diuretic_or_statin",
    "takes_antihistamine_or_antidepressant",
    "kidney_disease",
    "pregnant",
    "smoker",
    "diabetes",
    "high_blood_pressure",
    "high_cholesterol",
    "heart_or_stroke_history",
    "low_iron_known",
    "family_history_rls",
)
"""Background findings that bear on cramps, restless legs or leg arteries, in print order.
Their words, and the red flags', are the clinician's (documents.yaml, `findings`)."""
RED_FLAG_FINDINGS: tuple[str, ...] = RED_FLAGS

CIRCULATION_PATTERNS = frozenset({"pad_claudication", "pad_rest_pain", "critical_limb_ischemia"})
_CHECKIN_STATUS = {"missed": MISSED, "skipped": SKIPPED, "failed": NOT_ASKED}
"""Check-ins that count for the diary without an entry; answered nights come from entries."""
TABLE_COLUMNS = ("column_date", "column_pattern", "column_urgency", "column_signs")
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

    pdf = _Pdf(zone, today, lang_of(data))
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
    """What the person may want to ask their doctor, from the patterns and answers found: the
    keys of their words in documents.yaml (`questions`)."""
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
        asks.append("iron")
        if said("takes_antihistamine_or_antidepressant"):
            asks.append("antihistamine")
    if circulation:
        asks.append("ankle_brachial")
        asks.append("heart_risk")
        if said("smoker"):
            asks.append("smoking")
    if "new_medicine_cramps" in red_flags or (cramps and said("takes_diuretic_or_statin")):
        asks.append("medicines")
    if said("cramps_worsening") or said("weakness_numbness_back_pain"):
        asks.append("worsening")
    if cramps:
        kidney, pregnant = said("kidney_disease"), said("pregnant")
        asks.append(
            "magnesium_both"
            if kidney and pregnant
            else "magnesium_kidney"
            if kidney
            else "magnesium_pregnancy"
            if pregnant
            else "magnesium"
        )
    if "possible_dvt" in patterns:
        asks.append("clot")
    if "nerve_root_pain" in patterns:
        asks.append("nerve")
    if "unclear" in patterns:
        asks.append("unclear")
    asks.append("sooner")
    return asks


@cache
def _helped_labels(lang: str) -> dict[str, str]:
    """The diary's "what helped" keys with the button label the person tapped, in `lang`."""
    question = texts(lang).question("diary", "helped")
    return {str(o.records["helped"]): o.label for o in question.options}


def _in_a_list(label: str, lang: str) -> str:
    """A button label inside a sentence: its first letter small, except in German, where
    nouns keep their capital."""
    return label if lang == "de" else label[:1].lower() + label[1:]


class _Pdf(FPDF):
    """An A4 page layout with the summary's sections and a footer on every page."""

    def __init__(self, zone: str, today: date, lang: str) -> None:
        super().__init__(format="A4")
        self.zone = zone
        self.lang = lang
        self.words = documents(lang)
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(True, margin=16)
        self.add_font(FONT, "", FONT_DIR / "DejaVuSans.ttf")
        self.add_font(FONT, "B", FONT_DIR / "DejaVuSans-Bold.ttf")
        self.set_title(self.words.text("pdf", "title"))
        self.set_lang(lang)
        self.set_creator("nightlegs")
        self.set_creation_date(datetime.combine(today, time(), ZoneInfo(zone)))
        self.add_page()

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, size=7.5)
        self.set_text_color(100)
        footer = self.words.text("pdf", "footer", page=self.page_no(), pages="{nb}")
        self.cell(0, 4, footer, align="C")
        self.set_text_color(0)

    def day(self, day: date) -> str:
        return long_day(day, self.lang)

    def nights(self, count: int) -> str:
        return self.words.plural("pdf", "nights", n=count)

    def finding(self, finding: str) -> str:
        return self.words.text("findings", finding)

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
        words = self.words
        self.cell(0, 9, words.text("pdf", "title"), new_x="LMARGIN", new_y="NEXT")
        lines = [words.text("pdf", "name", name=name)] if name else []
        lines += [
            words.text(
                "pdf",
                "period",
                start=self.day(start),
                end=self.day(end),
                nights=self.nights(nights),
                zone=self.zone,
            )
        ]
        self.paragraph("\n".join(lines), size=10)
        self.ln(1)
        self.set_fill_color(245, 240, 225)
        self.set_font(FONT, size=9)
        self.multi_cell(0, 4.4, words.text("pdf", "self_report"), align="L", fill=True, padding=1.5)
        self.set_fill_color(255)

    def triage_table(
        self, concluded: list[tuple[date, Mapping[str, Any]]], unfinished: int
    ) -> None:
        """The most recent triages first, each with pattern, urgency and warning signs."""
        words = self.words
        self.heading(words.text("pdf", "triage_heading"))
        if not concluded:
            self.paragraph(words.text("pdf", "no_triage"))
        else:
            with self.table(
                col_widths=(23, 48, 39, 70),
                text_align="LEFT",
                line_height=3.8,
                headings_style=_TABLE_HEADINGS,
                padding=1,
            ) as table:
                self.set_font(FONT, size=8.5)
                table.row([words.text("pdf", column) for column in TABLE_COLUMNS])
                for day, conclusion in concluded[:MAX_TRIAGES]:
                    flags = [self.finding(f) for f in conclusion["red_flags"]]
                    table.row(
                        [
                            self.day(day),
                            pattern_words(conclusion["pattern"], self.lang),
                            urgency_words(conclusion["urgency"], self.lang),
                            "; ".join(flags) if flags else words.text("pdf", "no_signs"),
                        ]
                    )
        notes = []
        older = concluded[MAX_TRIAGES:]
        if older:
            notes.append(words.plural("pdf", "older", n=len(older), day=self.day(older[-1][0])))
        if unfinished:
            notes.append(words.plural("pdf", "unfinished", n=unfinished))
        if notes:
            self.ln(1)
            self.paragraph(" ".join(notes), size=8.5)

    def notes(self, notes: list[tuple[date, str]]) -> None:
        """Spec v3 item 10: what the person wanted their doctor to know, in their own words."""
        if not notes:
            return
        self.heading(self.words.text("pdf", "notes_heading"))
        self.set_font(FONT, size=9)
        cmap = self.current_font.cmap  # type: ignore[union-attr]
        for day, note in notes[:MAX_TRIAGES]:
            # Characters the font cannot draw (emoji, some scripts) become "?": fpdf2 would
            # otherwise log them, and logs never hold what people wrote.
            printable = "".join(c if ord(c) in cmap else ("\n" if c == "\n" else "?") for c in note)
            self.paragraph(f"{self.day(day)}: \u201c{printable}\u201d")

    def background(self, findings: Mapping[str, bool]) -> None:
        """The latest background answers, split into yes, no and not answered."""
        words = self.words
        self.heading(words.text("pdf", "background_heading"))
        said: dict[bool | None, list[str]] = {True: [], False: [], None: []}
        for finding in BACKGROUND_FINDINGS:
            said[findings.get(finding)].append(self.finding(finding))
        if not said[True] and not said[False]:
            self.paragraph(words.text("pdf", "no_background"))
            return
        lines = [
            words.text("pdf", key, items=", ".join(items))
            for key, items in (
                ("said_yes", said[True]),
                ("said_no", said[False]),
                ("not_said", said[None]),
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
            self.heading(self.words.text("pdf", "diary_heading"))
            self.paragraph(self.words.text("pdf", "no_diary"))
            return
        rows = self._diary_rows(summary, entries)
        with self.offset_rendering() as trial:
            trial.ln(HEADING_HEIGHT)
            self._diary_table(trial, rows)
        if trial.page_break_triggered or self.will_page_break(HEADING_HEIGHT + CHART_SIZE):
            self.add_page()
        self.heading(self.words.text("pdf", "diary_heading"))
        top = self.get_y()
        chart = render_chart(summarize(nights, today=today, days=CHART_NIGHTS), self.lang)
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

    def _diary_rows(
        self, summary: Summary, entries: list[Mapping[str, Any]]
    ) -> list[tuple[str, str]]:
        words, lang, nights = self.words, self.lang, self.nights

        def label(key: str) -> str:
            return words.text("pdf", key)

        rows = [
            (
                label("nights_logged"),
                words.text(
                    "pdf",
                    "logged_of_asked",
                    logged=summary.nights_logged,
                    asked=summary.nights_asked,
                ),
            ),
            (
                label("not_answered"),
                words.text(
                    "pdf",
                    "missed_skipped",
                    missed=summary.nights_missed,
                    skipped=summary.nights_skipped,
                ),
            ),
        ]
        if summary.backfilled:
            rows.append((label("backfilled"), nights(summary.backfilled)))
        for symptom in SYMPTOMS:
            rows.append((words.text("symptoms", symptom), nights(summary.symptom_nights[symptom])))
        rows.append((label("no_symptoms"), nights(summary.symptom_free_nights)))
        if summary.cramp_episodes:
            rows.append(
                (label("cramp_episodes"), words.text("pdf", "at_least", n=summary.cramp_episodes))
            )
        if summary.wakeups_average is not None:
            rows.append(
                (
                    label("woken"),
                    words.plural(
                        "pdf",
                        "woken_times",
                        n=summary.wakeups_total,
                        average=decimal(summary.wakeups_average, lang),
                    ),
                )
            )
        if summary.worst_pain is not None:
            rows.append((label("worst_pain"), f"{summary.worst_pain}/10"))
        labels = _helped_labels(lang)
        helped = [(key, n) for key, n in summary.helped if key != NOTHING_HELPED]
        if helped:
            rows.append(
                (
                    label("helped"),
                    ", ".join(
                        words.text(
                            "pdf",
                            "helped_item",
                            what=_in_a_list(labels.get(k, k), lang),
                            nights=nights(n),
                        )
                        for k, n in helped
                    ),
                )
            )
        nothing = dict(summary.helped).get(NOTHING_HELPED)
        if nothing:
            rows.append((label("nothing_helped"), nights(nothing)))
        flagged = [e for e in entries if e["red_flags"]]
        if flagged:
            signs = sorted({self.finding(f) for e in flagged for f in e["red_flags"]})
            rows.append(
                (
                    label("warning_signs"),
                    words.text(
                        "pdf", "warning_nights", nights=nights(len(flagged)), signs="; ".join(signs)
                    ),
                )
            )
        return rows

    def questions(self, asks: list[str]) -> None:
        self.heading(self.words.text("pdf", "questions_heading"))
        for ask in asks:
            self.cell(4, 4.4, "•")
            text = self.words.text("questions", ask)
            self.multi_cell(0, 4.4, text, align="L", new_x="LMARGIN", new_y="NEXT")

    def closing(self) -> None:
        self.ln(2)
        self.paragraph(self.words.text("pdf", "closing"), size=8)
