"""Tests of dialogs/nights.py: nights, due moments across DST in both hemispheres, parsing."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialogs.nights import (
    COMMON_ZONES,
    describe,
    next_due,
    night_for,
    parse_time,
    parse_zone,
    zone_from_local_now,
)

BERLIN = ZoneInfo("Europe/Berlin")
SYDNEY = ZoneInfo("Australia/Sydney")
NEW_YORK = ZoneInfo("America/New_York")
SANTIAGO = ZoneInfo("America/Santiago")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("local", "night"),
    [
        (datetime(2026, 5, 10, 21, 30), date(2026, 5, 10)),
        (datetime(2026, 5, 10, 12, 0), date(2026, 5, 10)),
        (datetime(2026, 5, 10, 11, 59), date(2026, 5, 9)),
        (datetime(2026, 5, 10, 0, 0), date(2026, 5, 9)),
        (datetime(2027, 1, 1, 7, 0), date(2026, 12, 31)),
        (datetime(2026, 12, 31, 23, 0), date(2026, 12, 31)),
        (datetime(2028, 3, 1, 7, 0), date(2028, 2, 29)),
        (datetime(2027, 3, 1, 7, 0), date(2027, 2, 28)),
    ],
)
def test_a_check_in_from_noon_asks_about_tonight_before_noon_about_last_night(
    local: datetime, night: date
) -> None:
    assert night_for(local) == night
    assert night_for(local.replace(tzinfo=SYDNEY)) == night


@pytest.mark.parametrize(
    ("zone", "local_time", "after", "night", "due"),
    [
        # Spring forward: 02:30 does not exist; it maps as fold=0 does (the old offset).
        (BERLIN, time(2, 30), utc(2026, 3, 28, 12), date(2026, 3, 28), utc(2026, 3, 29, 1, 30)),
        (SYDNEY, time(2, 30), utc(2026, 10, 3, 0), date(2026, 10, 3), utc(2026, 10, 3, 16, 30)),
        (NEW_YORK, time(2, 30), utc(2026, 3, 8, 0), date(2026, 3, 7), utc(2026, 3, 8, 7, 30)),
        # Fall back: 02:30 happens twice; the first occurrence counts.
        (BERLIN, time(2, 30), utc(2026, 10, 24, 12), date(2026, 10, 24), utc(2026, 10, 25, 0, 30)),
        (SYDNEY, time(2, 30), utc(2026, 4, 4, 0), date(2026, 4, 4), utc(2026, 4, 4, 15, 30)),
        (NEW_YORK, time(1, 30), utc(2026, 11, 1, 0), date(2026, 10, 31), utc(2026, 11, 1, 5, 30)),
        # Ordinary times on the change days keep their wall clock time.
        (BERLIN, time(21, 30), utc(2026, 3, 29, 0), date(2026, 3, 29), utc(2026, 3, 29, 19, 30)),
        (BERLIN, time(7, 0), utc(2026, 10, 25, 0), date(2026, 10, 24), utc(2026, 10, 25, 6, 0)),
        (SYDNEY, time(21, 30), utc(2026, 4, 5, 0), date(2026, 4, 5), utc(2026, 4, 5, 11, 30)),
        (SYDNEY, time(7, 0), utc(2026, 10, 3, 12), date(2026, 10, 3), utc(2026, 10, 3, 20, 0)),
    ],
)
def test_next_due_on_daylight_saving_change_days(
    zone: ZoneInfo, local_time: time, after: datetime, night: date, due: datetime
) -> None:
    assert next_due(local_time, zone, after) == (night, due)


@pytest.mark.parametrize(
    ("zone", "first", "second"),
    [
        (BERLIN, utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)),
        (SYDNEY, utc(2026, 4, 4, 15, 30), utc(2026, 4, 5, 16, 30)),
    ],
)
def test_the_repeated_hour_is_due_once_not_twice(
    zone: ZoneInfo, first: datetime, second: datetime
) -> None:
    """From the first 02:30, the next one is the following day's, not the second 02:30."""
    assert next_due(time(2, 30), zone, first)[1] == second
    # Even from inside the repeated hour, after the first 02:30 has passed.
    assert next_due(time(2, 30), zone, first + timedelta(minutes=45))[1] == second


def test_after_is_strict_and_must_be_aware() -> None:
    night, due = next_due(time(21, 30), BERLIN, utc(2026, 6, 1, 19, 30))
    assert (night, due) == (date(2026, 6, 2), utc(2026, 6, 2, 19, 30))
    assert next_due(time(21, 30), BERLIN, due - timedelta(microseconds=1)) == (night, due)
    with pytest.raises(ValueError, match="naive"):
        next_due(time(21, 30), BERLIN, datetime(2026, 6, 1))


@pytest.mark.parametrize(
    ("zone", "local_time", "after", "night", "due"),
    [
        (BERLIN, time(21, 30), utc(2026, 12, 31, 21), date(2027, 1, 1), utc(2027, 1, 1, 20, 30)),
        (BERLIN, time(7, 0), utc(2026, 12, 31, 21), date(2026, 12, 31), utc(2027, 1, 1, 6, 0)),
        (SYDNEY, time(7, 0), utc(2028, 2, 28, 21), date(2028, 2, 29), utc(2028, 2, 29, 20, 0)),
        (SYDNEY, time(21, 30), utc(2028, 2, 28, 11), date(2028, 2, 29), utc(2028, 2, 29, 10, 30)),
        (NEW_YORK, time(21, 30), utc(2028, 2, 29, 3), date(2028, 2, 29), utc(2028, 3, 1, 2, 30)),
        (NEW_YORK, time(7, 0), utc(2028, 2, 29, 13), date(2028, 2, 29), utc(2028, 3, 1, 12, 0)),
        (NEW_YORK, time(7, 0), utc(2027, 2, 28, 13), date(2027, 2, 28), utc(2027, 3, 1, 12, 0)),
    ],
)
def test_next_due_across_year_and_month_ends(
    zone: ZoneInfo, local_time: time, after: datetime, night: date, due: datetime
) -> None:
    assert next_due(local_time, zone, after) == (night, due)


@pytest.mark.parametrize("zone", [BERLIN, SYDNEY, NEW_YORK, SANTIAGO], ids=str)
@pytest.mark.parametrize("local_time", [time(2, 30), time(21, 30), time(7, 0), time(0, 0)], ids=str)
def test_walking_400_days_gives_one_due_moment_per_local_date(
    zone: ZoneInfo, local_time: time
) -> None:
    after = utc(2026, 1, 1)
    first_night, previous = next_due(local_time, zone, after)
    dates = [previous.astimezone(zone).date()]
    for _ in range(400):
        night, due = next_due(local_time, zone, previous)
        local = due.astimezone(zone)
        assert timedelta(hours=23) <= due - previous <= timedelta(hours=25)
        assert local.date() == dates[-1] + timedelta(days=1), "one per date, none skipped"
        assert night == night_for(datetime.combine(local.date(), local_time))
        # The wall clock reads the chosen time, except where that time does not exist.
        assert due == datetime.combine(local.date(), local_time, tzinfo=zone).astimezone(UTC)
        dates.append(local.date())
        previous = due
    assert first_night == night_for(datetime.combine(dates[0], local_time))
    assert len(set(dates)) == 401


@given(
    after=st.datetimes(datetime(2020, 1, 1), datetime(2035, 1, 1), timezones=st.just(UTC)),
    local_time=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
    zone=st.sampled_from([BERLIN, SYDNEY, NEW_YORK, SANTIAGO, ZoneInfo("Asia/Kolkata")]),
)
def test_next_due_is_the_first_matching_moment_after(
    after: datetime, local_time: time, zone: ZoneInfo
) -> None:
    night, due = next_due(local_time, zone, after)
    assert after < due <= after + timedelta(hours=25)
    assert next_due(local_time, zone, due - timedelta(microseconds=1)) == (night, due)
    day = due.astimezone(zone).date()
    earlier = datetime.combine(day - timedelta(days=1), local_time, tzinfo=zone)
    assert earlier.astimezone(UTC) <= after


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("21:30", time(21, 30)),
        ("9:05", time(9, 5)),
        ("09:05", time(9, 5)),
        ("2130", time(21, 30)),
        ("930", time(9, 30)),
        ("21.30", time(21, 30)),
        ("9pm", time(21, 0)),
        ("9 PM", time(21, 0)),
        ("9:30 pm", time(21, 30)),
        ("9.30p.m.", time(21, 30)),
        ("7am", time(7, 0)),
        ("12am", time(0, 0)),
        ("12pm", time(12, 0)),
        (" 22 ", time(22, 0)),
        ("0:00", time(0, 0)),
        ("23:59", time(23, 59)),
    ],
)
def test_parse_time_reads_common_ways_of_writing_a_time(text: str, parsed: time) -> None:
    assert parse_time(text) == parsed


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "24:00",
        "25:00",
        "12:60",
        "9:5",
        "13pm",
        "0am",
        "21:30:00",
        "-1",
        "9 o'clock",
        "\uff11\uff12:00",  # full-width digits
        "21:30 tomorrow",
        "pm",
    ],
)
def test_parse_time_rejects_junk_and_out_of_range(text: str) -> None:
    assert parse_time(text) is None


@pytest.mark.parametrize(
    ("text", "zone"),
    [
        ("Europe/Berlin", "Europe/Berlin"),
        ("europe/berlin", "Europe/Berlin"),
        (" AMERICA/NEW_YORK ", "America/New_York"),
        ("Berlin", "Europe/Berlin"),
        ("berlin, germany", "Europe/Berlin"),
        ("new york", "America/New_York"),
        ("New_York", "America/New_York"),
        ("Sydney", "Australia/Sydney"),
        ("buenos aires", "America/Argentina/Buenos_Aires"),
        ("port au prince", "America/Port-au-Prince"),
        ("US/Eastern", "US/Eastern"),
    ],
)
def test_parse_zone_reads_iana_names_and_cities(text: str, zone: str) -> None:
    parsed = parse_zone(text)
    assert parsed is not None
    assert parsed.key == zone


@pytest.mark.parametrize(
    "text",
    ["", "  ", "Atlantis", "UTC+2", "+02:00", "GMT-5", "Etc/GMT-1", "UTC", "EST", "CET", "2"],
)
def test_parse_zone_rejects_offsets_and_unknown_places(text: str) -> None:
    assert parse_zone(text) is None


def summer_shift(zone: ZoneInfo) -> timedelta:
    """July's UTC offset minus January's: ahead in northern summer time, behind in southern."""
    january = datetime(2026, 1, 15, tzinfo=zone).utcoffset() or timedelta(0)
    july = datetime(2026, 7, 15, tzinfo=zone).utcoffset() or timedelta(0)
    return july - january


def test_common_zones_span_the_continents_and_both_hemispheres() -> None:
    assert 20 <= len(COMMON_ZONES) <= 35
    assert len(set(COMMON_ZONES)) == len(COMMON_ZONES)
    for name in COMMON_ZONES:
        parsed = parse_zone(name)
        assert parsed is not None and parsed.key == name
    areas = {name.split("/")[0] for name in COMMON_ZONES}
    assert {"Africa", "America", "Asia", "Australia", "Europe", "Pacific"} <= areas
    changes = [summer_shift(ZoneInfo(name)) for name in COMMON_ZONES]
    assert any(change > timedelta(0) for change in changes), "a northern daylight-saving zone"
    assert any(change < timedelta(0) for change in changes), "a southern daylight-saving zone"


def test_zone_from_local_now_matches_within_ten_minutes_hints_first() -> None:
    winter = utc(2026, 1, 15, 20, 0)  # 21:00 in Berlin and Lagos, 20:00 in London
    found = zone_from_local_now(time(21, 10), winter, ["Europe/Paris", "Europe/Berlin"])
    assert found[:3] == ["Europe/Paris", "Europe/Berlin", "Africa/Lagos"]
    assert found.count("Europe/Berlin") == 1
    assert "Europe/London" not in found
    assert "Europe/Berlin" not in zone_from_local_now(time(21, 11), winter, [])
    assert "Europe/Berlin" in zone_from_local_now(time(20, 50), winter, [])


def test_zone_from_local_now_follows_the_season_and_wraps_midnight() -> None:
    # 21:00 in Sydney is 10:00 UTC in January (summer time) but 11:00 UTC in July.
    assert "Australia/Sydney" in zone_from_local_now(time(21, 0), utc(2026, 1, 15, 10), [])
    assert "Australia/Sydney" not in zone_from_local_now(time(21, 0), utc(2026, 7, 15, 10), [])
    assert "Australia/Sydney" in zone_from_local_now(time(21, 0), utc(2026, 7, 15, 11), [])
    # 23:58 in Berlin is within ten minutes of 00:05.
    assert "Europe/Berlin" in zone_from_local_now(time(0, 5), utc(2026, 1, 15, 22, 58), [])
    assert zone_from_local_now(time(0, 5), utc(2026, 1, 15, 22, 58), ["Asia/Tokyo"]) == [
        "Africa/Lagos",
        "Europe/Berlin",
    ]


def test_describe_says_when_and_which_night() -> None:
    assert describe(time(21, 30), BERLIN) == (
        "every evening at 21:30 (Europe/Berlin time), about the night of that day"
    )
    assert describe(time(7, 0), SYDNEY) == (
        "every morning at 07:00 (Australia/Sydney time), about the night before"
    )
