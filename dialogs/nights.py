"""Diary check-in times: which night a check-in asks about and when the next one is due.

Pure functions over `datetime` and `zoneinfo`: no Telegram, no database. A user picks a wall
clock time and an IANA zone; `next_due` turns that into one UTC moment per local calendar
date, across daylight-saving changes. `parse_time`, `parse_zone` and `zone_from_local_now`
read what people type; `describe` says the schedule back in words and `night_name` names a
night, both in the person's language (`dialogs/checkins.yaml`, CLDR dates and times).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from babel.dates import format_skeleton, get_timezone_location

from dialogs.i18n import CLDR, SOURCE, clock
from dialogs.words import words

NOON = time(12, 0)
"""Check-ins at or after noon ask about the coming night, before noon about the last one."""

COMMON_ZONES = (
    "Pacific/Honolulu",
    "America/Anchorage",
    "America/Los_Angeles",
    "America/Denver",
    "America/Chicago",
    "America/Mexico_City",
    "America/New_York",
    "America/Bogota",
    "America/Halifax",
    "America/Santiago",
    "America/Sao_Paulo",
    "America/Argentina/Buenos_Aires",
    "Europe/London",
    "Africa/Lagos",
    "Europe/Berlin",
    "Africa/Johannesburg",
    "Europe/Athens",
    "Africa/Cairo",
    "Europe/Moscow",
    "Africa/Nairobi",
    "Asia/Dubai",
    "Asia/Karachi",
    "Asia/Kolkata",
    "Asia/Bangkok",
    "Asia/Shanghai",
    "Australia/Perth",
    "Asia/Tokyo",
    "Australia/Adelaide",
    "Australia/Sydney",
    "Pacific/Auckland",
)
"""Zones to try when a user tells the time instead of naming a zone: every inhabited
continent, both hemispheres (so both kinds of daylight-saving season), west to east."""

MATCH_WINDOW = timedelta(minutes=10)
"""How far a zone's clock may be from the time the user reads off theirs."""

_REGIONS = frozenset(
    {
        "Africa",
        "America",
        "Antarctica",
        "Arctic",
        "Asia",
        "Atlantic",
        "Australia",
        "Europe",
        "Indian",
        "Pacific",
    }
)
"""Top-level IANA areas searched by city name (the country aliases such as US/ are not)."""

_TIME = re.compile(
    r"(?P<hour>\d{1,2})(?:[:.h]?(?P<minute>\d{2}))?\s*(?:(?P<half>[ap])\.?\s*m\.?)?",
    re.ASCII,
)


def night_for(local_dt: datetime) -> date:
    """The night a check-in at this local moment asks about: tonight from noon, else last night."""
    if local_dt.time() >= NOON:
        return local_dt.date()
    return local_dt.date() - timedelta(days=1)


def next_due(local_time: time, zone: ZoneInfo, after: datetime) -> tuple[date, datetime]:
    """The first moment strictly after `after` when the clock in `zone` reads `local_time`.

    Returns (night asked about, due moment in UTC). There is exactly one candidate per local
    date: a wall time that does not exist (spring forward) maps as `fold=0` does, to the
    instant before the gap's offset change; a wall time that happens twice (fall back) counts
    only its first occurrence.
    """
    if after.tzinfo is None or after.utcoffset() is None:
        raise ValueError(f"naive datetime {after!r}: pass a timezone-aware one")
    wall = local_time.replace(tzinfo=None, fold=0)
    day = after.astimezone(zone).date() - timedelta(days=1)
    while True:
        due = datetime.combine(day, wall, tzinfo=zone).astimezone(UTC)
        if due > after:
            return night_for(datetime.combine(day, wall)), due
        day += timedelta(days=1)


def parse_time(text: str) -> time | None:
    """A wall time from "21:30", "9:05", "2130", "21.30", "9pm", "9:30 pm"; None if not one."""
    match = _TIME.fullmatch(text.strip().lower())
    if match is None:
        return None
    hour = int(match["hour"])
    minute = int(match["minute"] or 0)
    if match["half"] is not None:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if match["half"] == "p" else 0)
    if hour > 23 or minute > 59:
        return None
    return time(hour, minute)


def _key(name: str) -> str:
    """A zone or city name folded for comparison: case, "_", "-" and spacing ignored."""
    return " ".join(name.replace("_", " ").replace("-", " ").lower().split())


@cache
def _zone_names() -> tuple[dict[str, str], dict[str, str]]:
    """Zones that follow a place's rules, by folded full name and by folded city.

    Only "Area/Location" names count: Etc/GMT-1 and bare abbreviations such as EST are
    fixed offsets or legacy aliases. Deeper names go first, so a city maps to the current
    name ("America/Argentina/Buenos_Aires") rather than its older alias.
    """
    names = (n for n in available_timezones() if "/" in n and not n.startswith("Etc/"))
    by_name: dict[str, str] = {}
    by_city: dict[str, str] = {}
    for name in sorted(names, key=lambda n: (-n.count("/"), n)):
        by_name[_key(name)] = name
        if name.split("/")[0] in _REGIONS:
            by_city.setdefault(_key(name.rsplit("/", 1)[1]), name)
    return by_name, by_city


def parse_zone(text: str) -> ZoneInfo | None:
    """An IANA zone from its name in any case ("europe/berlin") or a city ("new york").

    "Berlin, Germany" is read as "Berlin". UTC offsets and fixed-offset names ("UTC+2",
    "Etc/GMT-1", "EST") are refused: they would drift by an hour at every daylight-saving change.
    """
    key = _key(text.split(",", maxsplit=1)[0])
    if not key:
        return None
    by_name, by_city = _zone_names()
    name = by_name.get(key) or by_city.get(key)
    return None if name is None else ZoneInfo(name)


def zone_from_local_now(local_now: time, utc_now: datetime, hint_zones: list[str]) -> list[str]:
    """Zones whose clock now reads within 10 minutes of `local_now`.

    Tries `hint_zones` (for example the zones of the user's country) first, then
    `COMMON_ZONES`, keeping that order without repeats.
    """
    said = timedelta(hours=local_now.hour, minutes=local_now.minute)
    day = timedelta(days=1)
    found = []
    for name in dict.fromkeys([*hint_zones, *COMMON_ZONES]):
        clock = utc_now.astimezone(ZoneInfo(name))
        gap = (timedelta(hours=clock.hour, minutes=clock.minute) - said) % day
        if min(gap, day - gap) <= MATCH_WINDOW:
            found.append(name)
    return found


def describe(local_time: time, zone: ZoneInfo, lang: str = SOURCE) -> str:
    """The schedule in words, e.g. "every evening at 21:30 (Europe/Berlin time), about ..."."""
    when = "evening" if local_time >= NOON else "morning"
    return words("checkins", lang).text(
        "schedule", when, time=clock(local_time, lang), zone=zone.key
    )


def night_name(night: date, lang: str = SOURCE) -> str:
    """A night by its date with the weekday, as the language writes it: "Wednesday 18
    November", "Mi., 18. Nov."."""
    return format_skeleton("MMMMEEEEd", night, locale=CLDR[lang])


def city_name(zone: str, lang: str = SOURCE) -> str:
    """A zone's city for a button: "New York", in Russian "Нью-Йорк" (CLDR). English keeps
    the zone's own spelling."""
    city = zone.rsplit("/", maxsplit=1)[-1].replace("_", " ")
    if lang == SOURCE:
        return city
    try:
        return get_timezone_location(ZoneInfo(zone), locale=CLDR[lang], return_city=True)
    except (LookupError, ValueError):
        return city
