"""Trends in the night diary: counts over the last nights, signs of worsening, a short text.

Pure functions over plain values: no Telegram, no database, no plotting. The caller turns its
stored diary rows into `Night` values; `summarize` counts a window of nights, `worsening` says
in plain words why running the check again may be worth it, and `render_text` writes the lot
for a phone screen.

A night that was asked about but not answered is "missed": it is never counted as a night
without symptoms, only as a night asked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

LOGGED = "logged"
MISSED = "missed"
SKIPPED = "skipped"
NOT_ASKED = "not_asked"
# Which record wins when one night comes more than once (a missed night back-filled later).
_STATUS_RANK = {NOT_ASKED: 0, MISSED: 1, SKIPPED: 2, LOGGED: 3}

SYMPTOMS = ("cramps", "restless", "foot_pain", "other")
SYMPTOM_LABELS = {
    "cramps": "Cramps",
    "restless": "Restless legs",
    "foot_pain": "Foot pain",
    "other": "Other leg symptoms",
}
NOTHING_HELPED = "nothing"
_HELP_LABELS = {"massage_warmth": "massage or warmth"}

WEEK = 7
BASELINE_WEEKS = 3
MIN_LOGGED_PER_WEEK = 3
PAIN_RISE = 2
CRAMP_NIGHTS_RISE = 2
WAKEUPS_RISE = 1.0


@dataclass(frozen=True)
class Night:
    """One night of the diary as the caller has it.

    `values` is only read when `status` is "logged": the booleans "cramps", "restless",
    "foot_pain", "other"; the numbers "cramp_count", "worst_pain" (0-10), "wakeups" (each may
    be None); "helped", a list such as ["stretching", "walking"] or ["nothing"].
    """

    night: date
    status: str
    values: Mapping[str, object]
    backfilled: bool = False

    def __post_init__(self) -> None:
        if self.status not in _STATUS_RANK:
            raise ValueError(f"unknown night status {self.status!r}")


@dataclass(frozen=True)
class NightPoint:
    """One column of the chart: what is known about one night of the window."""

    night: date
    status: str
    symptoms: tuple[str, ...]
    worst_pain: int | None
    wakeups: int | None
    backfilled: bool


@dataclass(frozen=True)
class Summary:
    """Counts over the nights from `start` to `end` inclusive; `series` has one point a night."""

    start: date
    end: date
    nights_asked: int
    nights_logged: int
    nights_missed: int
    nights_skipped: int
    symptom_nights: dict[str, int]
    symptom_free_nights: int
    wakeups_total: int
    wakeups_average: float | None
    worst_pain: int | None
    cramp_episodes: int
    helped: tuple[tuple[str, int], ...]
    backfilled: int
    series: tuple[NightPoint, ...]

    @property
    def days(self) -> int:
        return len(self.series)


def summarize(nights: Iterable[Night], *, today: date, days: int) -> Summary:
    """Count the `days` nights ending with the night of `today`.

    Nights outside the window are ignored and nights absent from `nights` count as not asked.
    A night given more than once is counted once: logged beats skipped beats missed beats not
    asked, and between equals the later record wins.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    start = today - timedelta(days=days - 1)
    by_night = _one_per_night(nights, start, today)
    series = tuple(
        _point(by_night.get(day, Night(day, NOT_ASKED, {})))
        for day in (start + timedelta(days=offset) for offset in range(days))
    )
    logged = [by_night[point.night] for point in series if point.status == LOGGED]
    statuses = Counter(point.status for point in series)
    wakeups = [point.wakeups for point in series if point.wakeups is not None]
    pains = [point.worst_pain for point in series if point.worst_pain is not None]
    helped: Counter[str] = Counter()
    for night in logged:
        helped.update(set(_strings(night.values.get("helped"))))
    return Summary(
        start=start,
        end=today,
        nights_asked=statuses[LOGGED] + statuses[MISSED] + statuses[SKIPPED],
        nights_logged=statuses[LOGGED],
        nights_missed=statuses[MISSED],
        nights_skipped=statuses[SKIPPED],
        symptom_nights={s: sum(s in point.symptoms for point in series) for s in SYMPTOMS},
        symptom_free_nights=sum(point.status == LOGGED and not point.symptoms for point in series),
        wakeups_total=sum(wakeups),
        wakeups_average=sum(wakeups) / len(wakeups) if wakeups else None,
        worst_pain=max(pains, default=None),
        cramp_episodes=sum(
            _number(night.values, "cramp_count") or 0
            for night in logged
            if night.values.get("cramps") is True
        ),
        helped=tuple(sorted(helped.items(), key=lambda item: (-item[1], item[0]))),
        backfilled=sum(night.backfilled for night in logged),
        series=series,
    )


class Reason(str):
    """A reason to run the check again: its wording, plus a stable `kind` ("new:cramps",
    "cramps", "pain", "wakeups") so the same trend can be recognised from night to night while
    its numbers change."""

    kind: str

    def __new__(cls, text: str, kind: str) -> Reason:
        reason = super().__new__(cls, text)
        reason.kind = kind
        return reason


def worsening(nights: Iterable[Night], *, today: date) -> list[Reason]:
    """Plain-language reasons to run the check again, from the last 7 nights against the 3
    weeks before.

    The baseline is the average over those earlier weeks that have at least 3 logged nights;
    with no such week, or fewer than 3 logged nights this week, there is nothing to say.
    Reasons: a symptom logged this week and on no logged night of the 3 weeks before; cramps
    on at least 2 more nights than the baseline share of nights predicts; worst pain at least 2
    points above the baseline; at least 1 more wake-up a night. Shares and averages are over
    logged nights only, so a missed night never counts as a calm one.
    """
    nights = list(nights)
    this_week = summarize(nights, today=today, days=WEEK)
    before = summarize(nights, today=today - timedelta(days=WEEK), days=WEEK * BASELINE_WEEKS)
    baseline = [
        week
        for week in (
            summarize(nights, today=today - timedelta(days=WEEK * n), days=WEEK)
            for n in range(1, BASELINE_WEEKS + 1)
        )
        if week.nights_logged >= MIN_LOGGED_PER_WEEK
    ]
    if this_week.nights_logged < MIN_LOGGED_PER_WEEK or not baseline:
        return []

    new = [s for s in SYMPTOMS if this_week.symptom_nights[s] and not before.symptom_nights[s]]
    reasons = [Reason(f"{SYMPTOM_LABELS[s]} appeared this week.", f"new:{s}") for s in new]

    cramp_share = sum(week.symptom_nights["cramps"] / week.nights_logged for week in baseline)
    cramp_share /= len(baseline)
    cramps = this_week.symptom_nights["cramps"]
    if "cramps" not in new and cramps >= cramp_share * this_week.nights_logged + CRAMP_NIGHTS_RISE:
        reasons.append(
            Reason(
                f"Cramps on {cramps} of the {this_week.nights_logged} nights you logged this "
                f"week, up from about {cramp_share:.0%} of logged nights in the 3 weeks before.",
                "cramps",
            )
        )

    pain = _mean([week.worst_pain for week in baseline if week.worst_pain is not None])
    if (
        this_week.worst_pain is not None
        and pain is not None
        and this_week.worst_pain >= pain + PAIN_RISE
    ):
        reasons.append(
            Reason(
                f"Worst pain reached {this_week.worst_pain}/10 this week, "
                f"against about {pain:.0f}/10 in the 3 weeks before.",
                "pain",
            )
        )

    wake = _mean([week.wakeups_average for week in baseline if week.wakeups_average is not None])
    now = this_week.wakeups_average
    if now is not None and wake is not None and now >= wake + WAKEUPS_RISE:
        reasons.append(
            Reason(
                f"More wake-ups: {now:.1f} a night this week, "
                f"against about {wake:.1f} in the 3 weeks before.",
                "wakeups",
            )
        )
    return reasons


def render_text(summary7: Summary, summary30: Summary, reasons: Iterable[str]) -> str:
    """A short plain-text report for a phone: the last 7 and 30 nights, what helped, reasons."""
    parts = [_block(summary7), _block(summary30)]
    if summary30.helped:
        parts.append(_helped(summary30))
    reasons = list(reasons)
    if reasons:
        parts.append(
            "Some things have changed lately:\n"
            + "\n".join(f"• {reason}" for reason in reasons)
            + "\nIt may be worth running the check again: send /check."
        )
    return "\n\n".join(parts)


def _help_label(key: str) -> str:
    """How one of the "helped" keys reads in a sentence."""
    return _HELP_LABELS.get(key, key.replace("_", " "))


def _one_per_night(nights: Iterable[Night], start: date, end: date) -> dict[date, Night]:
    chosen: dict[date, Night] = {}
    for night in nights:
        if not start <= night.night <= end:
            continue
        kept = chosen.get(night.night)
        if kept is None or _STATUS_RANK[night.status] >= _STATUS_RANK[kept.status]:
            chosen[night.night] = night
    return chosen


def _point(night: Night) -> NightPoint:
    if night.status != LOGGED:
        return NightPoint(night.night, night.status, (), None, None, night.backfilled)
    return NightPoint(
        night=night.night,
        status=LOGGED,
        symptoms=tuple(s for s in SYMPTOMS if night.values.get(s) is True),
        worst_pain=_number(night.values, "worst_pain"),
        wakeups=_number(night.values, "wakeups"),
        backfilled=night.backfilled,
    )


def _number(values: Mapping[str, object], key: str) -> int | None:
    value = values.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _strings(value: object) -> list[str]:
    return (
        [item for item in value if isinstance(item, str)] if isinstance(value, list | tuple) else []
    )


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _nights(count: int) -> str:
    return f"{count} night" if count == 1 else f"{count} nights"


def _block(summary: Summary) -> str:
    heading = f"Last {summary.days} nights"
    if not summary.nights_asked:
        return f"{heading}\nNo nights asked about yet."
    later = f" ({summary.backfilled} added later)" if summary.backfilled else ""
    lines = [
        heading,
        f"Logged {summary.nights_logged} of {_nights(summary.nights_asked)} asked{later}.",
    ]
    if not summary.nights_logged:
        return "\n".join(lines)
    counts = ", ".join(f"{SYMPTOM_LABELS[s].lower()} {summary.symptom_nights[s]}" for s in SYMPTOMS)
    lines.append(f"Nights with {counts}, no symptoms {summary.symptom_free_nights}.")
    if summary.cramp_episodes:
        lines.append(f"Cramp episodes: {summary.cramp_episodes}.")
    if summary.wakeups_average is not None:
        lines.append(
            f"Wake-ups: {summary.wakeups_total}, about {summary.wakeups_average:.1f} a night."
        )
    if summary.worst_pain is not None:
        lines.append(f"Worst pain: {summary.worst_pain}/10.")
    return "\n".join(lines)


def _helped(summary: Summary) -> str:
    helped = [(key, count) for key, count in summary.helped if key != NOTHING_HELPED]
    nothing = dict(summary.helped).get(NOTHING_HELPED, 0)
    lines = []
    if helped:
        listed = ", ".join(f"{_help_label(key)} {_nights(count)}" for key, count in helped)
        lines.append(f"What helped (last {summary.days} nights): {listed}.")
    if nothing:
        lines.append(f"Nothing helped on {_nights(nothing)}.")
    return "\n".join(lines)
