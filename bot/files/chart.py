"""The diary chart: one column per night, symptoms stacked, worst pain above, as a PNG.

Drawn with matplotlib's object API on an Agg canvas, so it never touches pyplot's global
figures or the process-wide backend and is safe to call from any thread of the bot. Sized for
a phone screen: 1080 x 1080 pixels.

Colours are the Okabe-Ito palette, which stays distinct with the common colour-vision
deficiencies, and every symptom also has its own hatching so the chart reads in greyscale.
Missed nights (asked, not answered) get a grey band and a grey cross, never an empty column
that could pass for a night without symptoms.

Title, axes, legend and dates are in the person's language (`dialogs/documents.yaml`, `chart`);
matplotlib's DejaVu Sans draws Latin and Cyrillic alike.
"""

from __future__ import annotations

import io
import math

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from bot.files.language import documents, short_day
from dialogs.i18n import SOURCE
from dialogs.trends import LOGGED, MISSED, SKIPPED, SYMPTOMS, Summary
from dialogs.words import Words

SIZE_INCHES = 7.2
DPI = 150  # 7.2 in x 150 dpi = 1080 px a side
FONT = 12
SYMPTOM_STYLE = {  # colour, hatch
    "cramps": ("#D55E00", "//"),
    "restless": ("#0072B2", ".."),
    "foot_pain": ("#009E73", "\\\\"),
    "other": ("#CC79A7", "xx"),
}
PAIN_COLOUR = "black"
MISSED_COLOUR = "#777777"
MISSED_BAND = "#E4E4E4"
# One marker at mid-height of the first block says what an empty column means.
NO_SYMPTOMS_MARK = {
    "marker": "o",
    "markersize": 9,
    "markerfacecolor": "white",
    "markeredgecolor": "black",
    "markeredgewidth": 2,
}
MISSED_MARK = {"marker": "X", "markersize": 10, "color": MISSED_COLOUR}
SKIPPED_MARK = {"marker": "_", "markersize": 12, "markeredgewidth": 2.5, "color": MISSED_COLOUR}
LABEL_EVERY = 7  # nights between date labels, counted back from the last night


def render_chart(summary30: Summary, lang: str = SOURCE) -> bytes:
    """The PNG of the nights in `summary30`, oldest on the left, its words in `lang`."""
    figure = Figure(figsize=(SIZE_INCHES, SIZE_INCHES), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    try:
        _draw(figure, summary30, lang)
        png = io.BytesIO()
        figure.savefig(png, format="png")
        return png.getvalue()
    finally:
        figure.clear()


def _draw(figure: Figure, summary: Summary, lang: str) -> None:
    words = documents(lang)
    pain_axes, symptom_axes = figure.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 3]}
    )
    series = summary.series
    columns = range(len(series))

    for column, point in zip(columns, series, strict=True):
        if point.status == MISSED:
            for axes in (pain_axes, symptom_axes):
                axes.axvspan(column - 0.5, column + 0.5, color=MISSED_BAND, zorder=0)

    # Worst pain: dots, joined only between consecutive nights that have a value.
    pain = [math.nan if p.worst_pain is None else p.worst_pain for p in series]
    pain_axes.plot(
        columns, pain, color=PAIN_COLOUR, marker="o", markersize=6, markerfacecolor="white"
    )
    pain_axes.set_ylim(-0.5, 10.5)
    pain_axes.set_yticks(range(0, 11, 2))
    pain_axes.set_ylabel(words.text("chart", "worst_pain_axis"), fontsize=FONT)

    stacked = [0] * len(series)
    for symptom in SYMPTOMS:
        present = [c for c, p in zip(columns, series, strict=True) if symptom in p.symptoms]
        colour, hatch = SYMPTOM_STYLE[symptom]
        symptom_axes.bar(
            present,
            [1] * len(present),
            bottom=[stacked[c] for c in present],
            width=0.8,
            color=colour,
            hatch=hatch,
            edgecolor="black",
            linewidth=0.6,
        )
        for column in present:
            stacked[column] += 1

    marks = (
        (lambda p: p.status == LOGGED and not p.symptoms, NO_SYMPTOMS_MARK),
        (lambda p: p.status == MISSED, MISSED_MARK),
        (lambda p: p.status == SKIPPED, SKIPPED_MARK),
    )
    for wanted, style in marks:
        marked = [c for c, p in zip(columns, series, strict=True) if wanted(p)]
        symptom_axes.plot(marked, [0.5] * len(marked), linestyle="none", **style)
    symptom_axes.set_ylim(0, len(SYMPTOMS) + 0.3)
    symptom_axes.set_yticks(range(len(SYMPTOMS) + 1))
    symptom_axes.set_ylabel(words.text("chart", "symptoms_axis"), fontsize=FONT)
    if not summary.nights_logged:
        symptom_axes.text(
            0.5,
            0.6,
            words.text("chart", "nothing_logged"),
            transform=symptom_axes.transAxes,
            ha="center",
            va="center",
            fontsize=FONT + 2,
            color=MISSED_COLOUR,
        )

    labelled = list(range(len(series) - 1, -1, -LABEL_EVERY))[::-1]
    days = [short_day(series[c].night, lang) for c in labelled]
    symptom_axes.set_xticks(labelled, days, fontsize=FONT)
    symptom_axes.set_xticks(columns, minor=True)
    symptom_axes.set_xlim(-0.6, len(series) - 0.4)
    symptom_axes.set_xlabel(words.text("chart", "night_of"), fontsize=FONT)
    for axes in (pain_axes, symptom_axes):
        axes.tick_params(axis="y", labelsize=FONT)
        axes.grid(axis="y", color="#DDDDDD", linewidth=0.8)
        axes.set_axisbelow(True)

    figure.suptitle(
        words.plural("chart", "title", n=summary.days), fontsize=FONT + 6, fontweight="bold"
    )
    figure.legend(
        handles=_legend(words),
        loc="outside lower center",
        ncols=4,
        fontsize=FONT - 1,
        frameon=False,
        handlelength=1.6,
        columnspacing=1.0,
        handleheight=1.2,
    )


def _legend(words: Words) -> list[Patch | Line2D]:
    symptoms: list[Patch | Line2D] = [
        Patch(
            facecolor=colour,
            hatch=hatch,
            edgecolor="black",
            label=words.text("symptoms", symptom),
        )
        for symptom, (colour, hatch) in SYMPTOM_STYLE.items()
    ]
    pain = words.text("chart", "worst_pain")
    return [
        *symptoms,
        Line2D([], [], color=PAIN_COLOUR, marker="o", markerfacecolor="white", label=pain),
        Line2D(
            [], [], linestyle="none", label=words.text("chart", "no_symptoms"), **NO_SYMPTOMS_MARK
        ),
        Line2D([], [], linestyle="none", label=words.text("chart", "missed"), **MISSED_MARK),
        Line2D([], [], linestyle="none", label=words.text("chart", "skipped"), **SKIPPED_MARK),
    ]
