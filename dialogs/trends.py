"""Trends in the night diary: counts over the last nights, signs of worsening, a short text.

Pure functions over plain values: no Telegram, no database, no plotting. The caller turns its
stored diary rows into `Night` values; `summarize` counts a window of nights, `worsening` says
in plain words why running the check again may be worth it, and `render_text` writes the lot
for a phone screen. Every function that writes words takes the person's language (`lang`);
the words are `dialogs/checkins.yaml`'s `trends` section, numbers are written as the language
writes them (CLDR).

A night that was asked about but not answered is "missed": it is never counted as a night
without symptoms, only as a night asked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from babel.numbers import format_decimal, format_percent

from dialogs.i18n import CLDR, SOURCE
from dialogs.words import Words, words

LOGGED = "logged"
MISSED = "missed"
SKIPPED = "skipped"
NOT_ASKED = "not_asked"
# Which record wins when one night comes more than once (a missed night back-filled later).
_STATUS_RANK = {NOT_ASKED: 0, MISSED: 1, SKIPPED: 2, LOGGED: 3}

SYMPTOMS = ("cramps", "restless", "foot_pain", "other")
NOTHING_HELPED = "nothing"

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


def worsening(nights: Iterable[Night], *, today: date, lang: str = SOURCE) -> list[Reason]:
    """Plain-language reasons to run the check again, from the last 7 nights against the 3
    weeks before.

    The baseline is the average over those earlier weeks that have at least 3 logged nights;
    with no such week, or fewer than 3 logged nights this week, there is nothing to say.
    Reasons: a symptom logged this week and on no logged night of the 3 weeks before; cramps
    on at least 2 more nights than the baseline share of nights predicts; worst pain at least 2
    points above the baseline; at least 1 more wake-up a night. Shares and averages are over
    logged nights only, so a missed night never counts as a calm one. The wording is in `lang`.
    """
    w = _words(lang)
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
    reasons = [Reason(w.text("trends", "reasons", "new", s), f"new:{s}") for s in new]

    cramp_share = sum(week.symptom_nights["cramps"] / week.nights_logged for week in baseline)
    cramp_share /= len(baseline)
    cramps = this_week.symptom_nights["cramps"]
    if "cramps" not in new and cramps >= cramp_share * this_week.nights_logged + CRAMP_NIGHTS_RISE:
        reasons.append(
            Reason(
                w.plural(
                    "trends",
                    "reasons",
                    "cramps",
                    n=this_week.nights_logged,
                    cramps=cramps,
                    share=format_percent(cramp_share, locale=CLDR[lang]),
                ),
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
                w.text(
                    "trends",
                    "reasons",
                    "pain",
                    pain=this_week.worst_pain,
                    before=_decimal(pain, "0", lang),
                ),
                "pain",
            )
        )

    wake = _mean([week.wakeups_average for week in baseline if week.wakeups_average is not None])
    now = this_week.wakeups_average
    if now is not None and wake is not None and now >= wake + WAKEUPS_RISE:
        reasons.append(
            Reason(
                w.text(
                    "trends",
                    "reasons",
                    "wakeups",
                    now=_decimal(now, "0.0", lang),
                    before=_decimal(wake, "0.0", lang),
                ),
                "wakeups",
            )
        )
    return reasons


def render_text(
    summary7: Summary, summary30: Summary, reasons: Iterable[str], *, lang: str = SOURCE
) -> str:
    """A short plain-text report for a phone, in `lang`: the last 7 and 30 nights, what
    helped, and the reasons to run the check again (from `worsening` in the same language)."""
    w = _words(lang)
    parts = [_block(summary7, w), _block(summary30, w)]
    if summary30.helped:
        parts.append(_helped(summary30, w))
    reasons = list(reasons)
    if reasons:
        parts.append(
            w.text("trends", "changed")
            + "\n"
            + "\n".join(f"• {reason}" for reason in reasons)
            + "\n"
            + w.text("trends", "check_again")
        )
    return "\n\n".join(parts)


def symptom_label(symptom: str, lang: str = SOURCE) -> str:
    """A symptom ("cramps", one of `SYMPTOMS`) as a label in `lang`: "Cramps", "Krämpfe"."""
    return _words(lang).text("trends", "symptoms", symptom)


def symptom_labels(lang: str = SOURCE) -> dict[str, str]:
    """Every symptom's label in `lang`, in the order of `SYMPTOMS` (for a chart's legend)."""
    return {symptom: symptom_label(symptom, lang) for symptom in SYMPTOMS}


def count_nights(count: int, lang: str = SOURCE) -> str:
    """A number of nights in `lang`, its plural form right: "1 night", "5 nights"."""
    return _words(lang).plural("trends", "nights", n=count)


def helped_count(key: str, count: int, lang: str = SOURCE) -> str:
    """One of the "helped" keys with its number of nights: "stretching 7 nights"."""
    w = _words(lang)
    if key in w.section("trends", "helped_count"):
        return w.plural("trends", "helped_count", key, n=count)
    return f"{key.replace('_', ' ')} {count_nights(count, lang)}"


def _words(lang: str) -> Words:
    return words("checkins", lang)


def _decimal(value: float, pattern: str, lang: str) -> str:
    """A number rounded as `pattern` says ("0.0"), with the language's decimal mark."""
    return format_decimal(value, pattern, locale=CLDR[lang])


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


def _block(summary: Summary, w: Words) -> str:
    heading = w.plural("trends", "heading", n=summary.days)
    if not summary.nights_asked:
        return f"{heading}\n{w.text('trends', 'none_asked')}"
    if summary.backfilled:
        later = w.plural("trends", "added_later", n=summary.backfilled)
        logged = w.plural(
            "trends",
            "logged_later",
            n=summary.nights_asked,
            logged=summary.nights_logged,
            later=later,
        )
    else:
        logged = w.plural("trends", "logged", n=summary.nights_asked, logged=summary.nights_logged)
    lines = [heading, logged]
    if not summary.nights_logged:
        return "\n".join(lines)
    counts = ", ".join(
        w.text("trends", "symptom_count", s, n=summary.symptom_nights[s]) for s in SYMPTOMS
    )
    lines.append(
        w.text("trends", "symptom_nights", counts=counts, free=summary.symptom_free_nights)
    )
    if summary.cramp_episodes:
        lines.append(w.text("trends", "cramp_episodes", n=summary.cramp_episodes))
    if summary.wakeups_average is not None:
        average = _decimal(summary.wakeups_average, "0.0", w.lang)
        lines.append(w.text("trends", "wakeups", total=summary.wakeups_total, average=average))
    if summary.worst_pain is not None:
        lines.append(w.text("trends", "worst_pain", pain=summary.worst_pain))
    return "\n".join(lines)


def _helped(summary: Summary, w: Words) -> str:
    helped = [(key, count) for key, count in summary.helped if key != NOTHING_HELPED]
    nothing = dict(summary.helped).get(NOTHING_HELPED, 0)
    lines = []
    if helped:
        listed = ", ".join(helped_count(key, count, w.lang) for key, count in helped)
        lines.append(w.plural("trends", "helped", n=summary.days, listed=listed))
    if nothing:
        lines.append(w.plural("trends", "nothing_helped", n=nothing))
    return "\n".join(lines)


SYMPTOM_LABELS: Mapping[str, str] = symptom_labels(SOURCE)
"""The symptoms' English labels (`symptom_labels(lang)` gives them in a language)."""
