"""Tests of dialogs/trends.py and bot/files/chart.py over a hand-counted month of nights.

The month (nights of 2 to 31 March 2025, today being the 31st) is written out night by night
so every expected number below can be checked by reading the table.
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from bot.files.chart import render_chart
from dialogs.trends import (
    LOGGED,
    MISSED,
    NOT_ASKED,
    SKIPPED,
    Night,
    Summary,
    render_text,
    summarize,
    worsening,
)

TODAY = date(2025, 3, 31)
ROOT = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SIZE = 1080


def logged(
    night: date,
    *symptoms: str,
    pain: int | None = None,
    wakeups: int | None = None,
    cramp_count: int | None = None,
    helped: Sequence[str] = (),
    backfilled: bool = False,
) -> Night:
    values: dict[str, object] = {
        s: s in symptoms for s in ("cramps", "restless", "foot_pain", "other")
    }
    values |= {
        "cramp_count": cramp_count,
        "worst_pain": pain,
        "restless_severity": "moderate" if "restless" in symptoms else None,
        "wakeups": wakeups,
        "helped": list(helped),
        "note": None,
    }
    return Night(night, LOGGED, values, backfilled=backfilled)


def other(night: date, status: str) -> Night:
    return Night(night, status, {})


def march(day: int) -> date:
    return date(2025, 3, day)


MONTH = [
    logged(march(1), "cramps", pain=10, wakeups=9, cramp_count=9),  # before the window
    logged(march(2), "cramps", pain=3, wakeups=1, cramp_count=2, helped=["stretching"]),
    other(march(3), MISSED),
    logged(march(4), wakeups=0),
    logged(march(5), "restless", pain=2, wakeups=2, helped=["walking"]),
    other(march(6), SKIPPED),
    other(march(7), NOT_ASKED),
    logged(
        march(8),
        "cramps",
        "foot_pain",
        pain=6,
        wakeups=3,
        cramp_count=1,
        helped=["stretching", "massage_warmth"],
    ),
    other(march(9), MISSED),
    other(march(10), MISSED),  # ...then back-filled: one logged night
    logged(
        march(10),
        "cramps",
        pain=5,
        wakeups=1,
        cramp_count=3,
        helped=["stretching"],
        backfilled=True,
    ),
    # 11 March: nothing stored, so not asked
    logged(march(12), helped=["nothing"]),
    logged(march(13), "other", pain=1, wakeups=1, helped=["nothing"]),
    other(march(14), MISSED),
    logged(march(15), "cramps", pain=4, wakeups=2, helped=["walking", "stretching"]),
    logged(march(16), wakeups=0),
    other(march(17), SKIPPED),
    logged(march(18), "restless", "other", pain=3, wakeups=2, helped=["massage_warmth"]),
    # 19 March: not asked
    logged(march(20), "cramps", pain=7, wakeups=4, cramp_count=2, helped=["stretching"]),
    other(march(21), MISSED),
    logged(march(22), wakeups=1),
    # 23 March: not asked
    logged(march(24), "foot_pain", pain=2, wakeups=1, helped=["walking"]),
    # the last 7 nights
    logged(march(25), "cramps", pain=8, wakeups=2, cramp_count=1, helped=["stretching"]),
    other(march(26), MISSED),
    logged(march(27), wakeups=0, helped=["nothing"]),
    logged(march(28), "cramps", "restless", pain=9, wakeups=3, cramp_count=2, helped=["walking"]),
    other(march(29), SKIPPED),
    logged(march(30), "restless", pain=4, wakeups=1, helped=["massage_warmth"], backfilled=True),
    other(march(30), MISSED),  # a stale "missed" after the back-fill does not undo it
    logged(march(31), "cramps", pain=6, wakeups=2, helped=["stretching", "walking"]),
    logged(date(2025, 4, 1), "cramps", pain=10, wakeups=9),  # after today
]


@pytest.fixture(scope="module")
def month30() -> Summary:
    return summarize(MONTH, today=TODAY, days=30)


@pytest.fixture(scope="module")
def month7() -> Summary:
    return summarize(MONTH, today=TODAY, days=7)


# ---- summarize -------------------------------------------------------------------------


def test_thirty_nights_every_count(month30: Summary) -> None:
    s = month30
    assert (s.start, s.end, s.days) == (march(2), TODAY, 30)
    assert s.nights_logged == 18
    assert s.nights_missed == 5
    assert s.nights_skipped == 3
    assert s.nights_asked == 26  # logged + missed + skipped; 4 nights were not asked
    assert s.symptom_nights == {"cramps": 8, "restless": 4, "foot_pain": 2, "other": 2}
    assert s.symptom_free_nights == 5
    assert s.wakeups_total == 26
    assert s.wakeups_average == pytest.approx(26 / 17)  # 12 March logged no wake-up count
    assert s.worst_pain == 9  # the 10s fall outside the window
    assert s.cramp_episodes == 11
    assert s.helped == (("stretching", 7), ("walking", 5), ("massage_warmth", 3), ("nothing", 3))
    assert s.backfilled == 2


def test_seven_nights_every_count(month7: Summary) -> None:
    s = month7
    assert (s.start, s.end, s.days) == (march(25), TODAY, 7)
    assert (s.nights_asked, s.nights_logged, s.nights_missed, s.nights_skipped) == (7, 5, 1, 1)
    assert s.symptom_nights == {"cramps": 3, "restless": 2, "foot_pain": 0, "other": 0}
    assert s.symptom_free_nights == 1
    assert s.wakeups_total == 8
    assert s.wakeups_average == pytest.approx(1.6)
    assert s.worst_pain == 9
    assert s.cramp_episodes == 3
    assert s.helped == (("stretching", 2), ("walking", 2), ("massage_warmth", 1), ("nothing", 1))
    assert s.backfilled == 1


def test_series_has_one_point_per_night(month30: Summary) -> None:
    series = month30.series
    assert [p.night for p in series] == [march(2) + timedelta(days=n) for n in range(30)]
    by_day = {p.night.day: p for p in series}
    assert by_day[2].symptoms == ("cramps",)
    assert (by_day[2].worst_pain, by_day[2].wakeups) == (3, 1)
    assert by_day[8].symptoms == ("cramps", "foot_pain")
    assert by_day[18].symptoms == ("restless", "other")
    assert (by_day[10].status, by_day[10].backfilled) == (LOGGED, True)
    assert (by_day[30].status, by_day[30].symptoms) == (LOGGED, ("restless",))
    assert by_day[11].status == NOT_ASKED
    assert by_day[7].status == NOT_ASKED
    assert by_day[6].status == SKIPPED
    assert (by_day[4].status, by_day[4].symptoms, by_day[4].worst_pain) == (LOGGED, (), None)


def test_missed_is_not_no_symptoms(month30: Summary) -> None:
    missed = [p for p in month30.series if p.status == MISSED]
    assert [p.night.day for p in missed] == [3, 9, 14, 21, 26]
    assert all(p.symptoms == () and p.worst_pain is None for p in missed)

    only_missed = summarize(
        [other(TODAY - timedelta(days=n), MISSED) for n in range(7)], today=TODAY, days=7
    )
    assert (only_missed.nights_asked, only_missed.nights_logged) == (7, 0)
    assert only_missed.symptom_free_nights == 0
    assert only_missed.wakeups_average is None
    assert only_missed.worst_pain is None


def test_backfilled_night_counted_once_whatever_the_order() -> None:
    night = march(31)
    filled = logged(night, "cramps", pain=5, wakeups=2, cramp_count=1, backfilled=True)
    for records in ([other(night, MISSED), filled], [filled, other(night, MISSED)]):
        s = summarize(records, today=TODAY, days=1)
        assert (s.nights_asked, s.nights_logged, s.nights_missed) == (1, 1, 0)
        assert (s.backfilled, s.symptom_nights["cramps"], s.cramp_episodes) == (1, 1, 1)


def test_cramp_episodes_only_on_cramp_nights() -> None:
    nights = [logged(TODAY, "cramps", cramp_count=2), logged(march(30), "restless", cramp_count=5)]
    assert summarize(nights, today=TODAY, days=2).cramp_episodes == 2


def test_empty_window() -> None:
    s = summarize([], today=TODAY, days=30)
    assert (s.nights_asked, s.nights_logged, s.symptom_free_nights) == (0, 0, 0)
    assert (s.wakeups_total, s.wakeups_average, s.worst_pain, s.helped) == (0, None, None, ())
    assert {p.status for p in s.series} == {NOT_ASKED}


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="status"):
        Night(TODAY, "done", {})
    with pytest.raises(ValueError, match="days"):
        summarize([], today=TODAY, days=0)


# ---- worsening -------------------------------------------------------------------------

Spec = dict[str, object] | None  # keyword arguments of `logged`, or None for a missed night
# A steady week: 5 nights logged, 2 missed; cramps on 1 of 5, worst pain 4, 1 wake-up a night.
STEADY: list[Spec] = [
    {"symptoms": ("cramps",), "pain": 4, "wakeups": 1},
    {"pain": 2, "wakeups": 1},
    None,
    {"pain": 2, "wakeups": 1},
    {"pain": 2, "wakeups": 1},
    None,
    {"pain": 2, "wakeups": 1},
]
SPARSE: list[Spec] = [{"pain": 2, "wakeups": 1}, None, None, {"pain": 2, "wakeups": 1}]


def week(specs: list[Spec], last: date) -> list[Night]:
    first = last - timedelta(days=len(specs) - 1)
    nights = []
    for n, spec in enumerate(specs):
        night = first + timedelta(days=n)
        if spec is None:
            nights.append(other(night, MISSED))
        else:
            kwargs = dict(spec)
            symptoms = kwargs.pop("symptoms", ())
            nights.append(logged(night, *symptoms, **kwargs))  # type: ignore[arg-type]
    return nights


def history(this_week: list[Spec], earlier: Sequence[list[Spec]] = (STEADY,) * 3) -> list[Night]:
    """This week's nights ending today, after `earlier` weeks (the most recent first)."""
    nights = week(this_week, TODAY)
    for n, specs in enumerate(earlier, start=1):
        nights += week(specs, TODAY - timedelta(days=7 * n))
    return nights


def with_changes(base: list[Spec], **changes: object) -> list[Spec]:
    return [None if spec is None else {**spec, **changes} for spec in base]


def test_steady_weeks_say_nothing() -> None:
    assert worsening(history(STEADY), today=TODAY) == []


def test_more_cramp_nights() -> None:
    three = [
        {**spec, "symptoms": ("cramps",)} if n in (1, 3) else spec for n, spec in enumerate(STEADY)
    ]
    assert worsening(history(three), today=TODAY) == [
        "Cramps on 3 of the 5 nights you logged this week, "
        "up from about 20% of logged nights in the 3 weeks before."
    ]
    two = [{**spec, "symptoms": ("cramps",)} if n == 1 else spec for n, spec in enumerate(STEADY)]
    assert worsening(history(two), today=TODAY) == []


def test_higher_worst_pain_by_two_points() -> None:
    six = [{"pain": 6, "wakeups": 1}, *STEADY[1:]]
    assert worsening(history(six), today=TODAY) == [
        "Worst pain reached 6/10 this week, against about 4/10 in the 3 weeks before."
    ]
    five = [{"pain": 5, "wakeups": 1}, *STEADY[1:]]
    assert worsening(history(five), today=TODAY) == []


def test_more_wakeups_per_night() -> None:
    assert worsening(history(with_changes(STEADY, wakeups=2)), today=TODAY) == [
        "More wake-ups: 2.0 a night this week, against about 1.0 in the 3 weeks before."
    ]
    almost = [*with_changes(STEADY[:4], wakeups=2), *STEADY[4:]]  # 1.6 a night
    assert worsening(history(almost), today=TODAY) == []


@pytest.mark.parametrize(
    ("symptom", "reason"),
    [
        ("restless", "Restless legs appeared this week."),
        ("foot_pain", "Foot pain appeared this week."),
        ("other", "Other leg symptoms appeared this week."),
    ],
)
def test_new_symptom(symptom: str, reason: str) -> None:
    this_week = [{**STEADY[0], "symptoms": ("cramps", symptom)}, *STEADY[1:]]
    assert worsening(history(this_week), today=TODAY) == [reason]


def test_new_cramps_said_once() -> None:
    calm = [None if spec is None else {**spec, "symptoms": ()} for spec in STEADY]
    cramps = with_changes(STEADY, symptoms=("cramps",))
    assert worsening(history(cramps, (calm,) * 3), today=TODAY) == ["Cramps appeared this week."]


def test_symptom_seen_in_a_sparse_week_is_not_new() -> None:
    restless_sparse = [{**SPARSE[0], "symptoms": ("restless",)}, *SPARSE[1:]]
    this_week = [{**STEADY[0], "symptoms": ("restless",)}, *STEADY[1:]]
    assert worsening(history(this_week, (STEADY, STEADY, restless_sparse)), today=TODAY) == []


def test_sparse_weeks_left_out_of_the_baseline() -> None:
    painful_sparse = with_changes(SPARSE, pain=10)
    six = [{"pain": 6, "wakeups": 1}, *STEADY[1:]]
    # Averaged in, the sparse week would lift the baseline to 6/10 and hide the rise.
    assert worsening(history(six, (STEADY, painful_sparse, STEADY)), today=TODAY) == [
        "Worst pain reached 6/10 this week, against about 4/10 in the 3 weeks before."
    ]


def test_silent_with_sparse_data() -> None:
    bad = with_changes(STEADY, symptoms=("cramps", "restless"), pain=10, wakeups=5)
    assert worsening(history(SPARSE), today=TODAY) == []
    assert worsening(history(with_changes(SPARSE, pain=10)), today=TODAY) == []
    assert worsening(history(bad, (SPARSE,) * 3), today=TODAY) == []
    assert worsening(history(bad, ()), today=TODAY) == []
    assert worsening([], today=TODAY) == []


def test_month_reasons() -> None:
    assert worsening(MONTH, today=TODAY) == [
        "Worst pain reached 9/10 this week, against about 6/10 in the 3 weeks before."
    ]


# ---- render_text -----------------------------------------------------------------------

FORBIDDEN = ("*", "_", "`", "[", "<", "streak", "missed", "forgot", "failed", "only ", "should")


def assert_plain(text: str) -> None:
    assert len(text) <= 1500
    assert not [word for word in FORBIDDEN if word in text.lower()]


def test_text_of_the_month(month7: Summary, month30: Summary) -> None:
    text = render_text(month7, month30, worsening(MONTH, today=TODAY))
    assert_plain(text)
    for line in (
        "Last 7 nights",
        "Logged 5 of 7 nights asked (1 added later).",
        "Nights with cramps 3, restless legs 2, foot pain 0, other leg symptoms 0, no symptoms 1.",
        "Cramp episodes: 3.",
        "Wake-ups: 8, about 1.6 a night.",
        "Worst pain: 9/10.",
        "Last 30 nights",
        "Logged 18 of 26 nights asked (2 added later).",
        "Nights with cramps 8, restless legs 4, foot pain 2, other leg symptoms 2, no symptoms 5.",
        "Cramp episodes: 11.",
        "Wake-ups: 26, about 1.5 a night.",
        "What helped (last 30 nights): stretching 7 nights, walking 5 nights, "
        "massage or warmth 3 nights.",
        "Nothing helped on 3 nights.",
        "• Worst pain reached 9/10 this week, against about 6/10 in the 3 weeks before.",
        "It may be worth running the check again: send /check.",
    ):
        assert line in text.splitlines()


def test_text_with_every_reason_stays_short(month30: Summary) -> None:
    everything = with_changes(
        STEADY, symptoms=("cramps", "restless", "foot_pain", "other"), pain=10, wakeups=4
    )
    reasons = worsening(history(everything), today=TODAY)
    assert len(reasons) == 6
    this_week = summarize(history(everything), today=TODAY, days=7)
    text = render_text(this_week, month30, reasons)
    assert_plain(text)
    assert all(reason in text for reason in reasons)


def test_text_without_reasons_or_entries() -> None:
    empty = summarize([], today=TODAY, days=30)
    text = render_text(summarize([], today=TODAY, days=7), empty, [])
    assert_plain(text)
    assert "No nights asked about yet." in text
    assert "/check" not in text
    assert "What helped" not in text

    unanswered = summarize([other(TODAY, MISSED), other(march(30), SKIPPED)], today=TODAY, days=7)
    text = render_text(unanswered, unanswered, [])
    assert_plain(text)
    assert "Logged 0 of 2 nights asked." in text
    assert "no symptoms" not in text.lower()


# ---- render_chart ----------------------------------------------------------------------


def decode(png: bytes) -> np.ndarray:
    assert png.startswith(PNG_SIGNATURE)
    return imread(io.BytesIO(png), format="png")


def test_chart_is_a_phone_sized_png(month30: Summary) -> None:
    height, width, _ = decode(render_chart(month30)).shape
    assert abs(height - SIZE) <= 2
    assert abs(width - SIZE) <= 2


def test_different_months_different_charts(month30: Summary) -> None:
    shifted = summarize(MONTH, today=march(24), days=30)
    assert not np.array_equal(decode(render_chart(month30)), decode(render_chart(shifted)))


def test_missed_and_symptom_free_nights_look_different() -> None:
    nights = [TODAY - timedelta(days=n) for n in range(30)]
    missed = summarize([other(n, MISSED) for n in nights], today=TODAY, days=30)
    calm = summarize([logged(n, wakeups=0) for n in nights], today=TODAY, days=30)
    assert not np.array_equal(decode(render_chart(missed)), decode(render_chart(calm)))


def test_empty_month_renders() -> None:
    height, width, _ = decode(render_chart(summarize([], today=TODAY, days=30))).shape
    assert abs(height - SIZE) <= 2
    assert abs(width - SIZE) <= 2


def test_chart_leaves_pyplot_alone() -> None:
    script = (
        "import sys\n"
        "from datetime import date\n"
        "from bot.files.chart import render_chart\n"
        "from dialogs.trends import summarize\n"
        "render_chart(summarize([], today=date(2025, 3, 31), days=30))\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=120)
