"""Follow-up content and timing (spec v2 item 6): pure, in the person's local time, DST-safe."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from dialogs.advice import AdviceBook
from dialogs.content import DIALOGS_DIR, ContentError
from dialogs.followups import FollowUpBook
from dialogs.records import Conclusion
from dialogs.vocabulary import Pattern, Urgency

BOOK = FollowUpBook.load()
ADVICE = AdviceBook.load()
RAW: dict[str, Any] = yaml.safe_load((DIALOGS_DIR / "followup.yaml").read_text("utf-8"))
BERLIN = ZoneInfo("Europe/Berlin")
SYDNEY = ZoneInfo("Australia/Sydney")


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)  # type: ignore[misc]


def advice(urgency: Urgency) -> Any:
    return ADVICE.advise(Conclusion(Pattern.PAD_REST_PAIN, urgency), {})


@pytest.mark.parametrize("urgency", [Urgency.URGENT, Urgency.SOON])
def test_urgent_and_soon_results_are_offered_a_follow_up(urgency: Urgency) -> None:
    offer = BOOK.offer(urgency)
    assert offer is not None
    assert offer.text and offer.yes_label and offer.no_label


@pytest.mark.parametrize("urgency", [Urgency.EMERGENCY, Urgency.SELF_CARE])
def test_other_results_get_no_follow_up(urgency: Urgency) -> None:
    assert BOOK.offer(urgency) is None
    assert BOOK.due(urgency, datetime(2025, 1, 1, tzinfo=UTC), BERLIN) is None


@pytest.mark.parametrize(
    ("concluded", "due"),
    [
        pytest.param((2025, 3, 10, 2, 0), (2025, 3, 10, 9, 0), id="2 am: that same morning"),
        pytest.param((2025, 3, 10, 7, 30), (2025, 3, 11, 9, 0), id="7:30: the next morning"),
        pytest.param((2025, 3, 10, 22, 0), (2025, 3, 11, 9, 0), id="evening: next morning"),
    ],
)
def test_an_urgent_follow_up_is_due_the_next_morning_local_time(
    concluded: tuple[int, ...], due: tuple[int, ...]
) -> None:
    found = BOOK.due(Urgency.URGENT, local(BERLIN, *concluded), BERLIN)
    assert found == local(BERLIN, *due).astimezone(UTC)
    assert found is not None and found.tzinfo is UTC


def test_a_soon_follow_up_is_due_a_few_days_later_in_the_evening() -> None:
    found = BOOK.due(Urgency.SOON, local(BERLIN, 2025, 3, 10, 2, 0), BERLIN)
    assert found == local(BERLIN, 2025, 3, 13, 18, 0).astimezone(UTC)


def test_follow_ups_keep_the_local_clock_across_daylight_saving_changes() -> None:
    # Berlin springs forward on 30 March 2025 and falls back on 26 October 2025.
    spring = BOOK.due(Urgency.URGENT, local(BERLIN, 2025, 3, 29, 23, 0), BERLIN)
    assert spring == datetime(2025, 3, 30, 7, 0, tzinfo=UTC)  # 09:00 CEST
    autumn = BOOK.due(Urgency.SOON, local(BERLIN, 2025, 10, 24, 12, 0), BERLIN)
    assert autumn == datetime(2025, 10, 27, 17, 0, tzinfo=UTC)  # 18:00 CET
    southern = BOOK.due(Urgency.URGENT, local(SYDNEY, 2025, 4, 5, 22, 0), SYDNEY)
    assert southern == datetime(2025, 4, 5, 23, 0, tzinfo=UTC)  # 09:00 AEST, after fall back


@given(
    st.datetimes(
        min_value=datetime(2024, 1, 1),
        max_value=datetime(2027, 1, 1),
        timezones=st.sampled_from([UTC, BERLIN, SYDNEY, ZoneInfo("America/New_York")]),
    ),
    st.sampled_from([BERLIN, SYDNEY, ZoneInfo("America/New_York")]),
)
def test_a_follow_up_is_always_later_and_at_its_local_time(
    concluded: datetime, zone: ZoneInfo
) -> None:
    urgent = BOOK.due(Urgency.URGENT, concluded, zone)
    soon = BOOK.due(Urgency.SOON, concluded, zone)
    assert urgent is not None and soon is not None
    assert timedelta(hours=3) <= urgent - concluded <= timedelta(hours=28)
    assert urgent.astimezone(zone).strftime("%H:%M") == "09:00"
    assert soon > urgent
    assert (soon.astimezone(zone).date() - concluded.astimezone(zone).date()).days == 3


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        BOOK.due(Urgency.URGENT, datetime(2025, 1, 1), BERLIN)


def test_the_follow_up_asks_whether_they_were_seen_about_their_own_advice() -> None:
    question = BOOK.question(advice(Urgency.URGENT))
    assert advice(Urgency.URGENT).headline in question.text
    assert [i for i, _ in question.options] == ["seen", "not_yet", "changed"]


@pytest.mark.parametrize("urgency", [Urgency.URGENT, Urgency.SOON])
def test_not_yet_seen_restates_the_advice_and_offers_a_new_check(urgency: Urgency) -> None:
    given_advice = advice(urgency)
    reply = BOOK.reply("not_yet", given_advice)
    assert given_advice.headline in reply.text
    assert given_advice.action in reply.text
    assert reply.new_check_label
    if urgency is Urgency.URGENT:
        assert given_advice.at_night in reply.text


def test_things_changed_offers_a_new_check_and_seen_does_not() -> None:
    assert BOOK.reply("changed", advice(Urgency.SOON)).new_check_label
    assert BOOK.reply("seen", advice(Urgency.SOON)).new_check_label is None
    with pytest.raises(ValueError):
        BOOK.reply("maybe", advice(Urgency.SOON))


@pytest.mark.parametrize(
    ("change", "names"),
    [("bad time", "due.urgent.at"), ("too many days", "after_days"), ("answers", "options")],
)
def test_the_follow_up_file_is_checked_with_named_errors(change: str, names: str) -> None:
    raw = copy.deepcopy(RAW)
    if change == "bad time":
        raw["due"]["urgent"]["at"] = "nine"
    elif change == "too many days":
        raw["due"]["soon"]["after_days"] = 30
    else:
        raw["question"]["options"].pop()
    with pytest.raises(ContentError, match=r"followup\.yaml") as info:
        FollowUpBook(raw)
    assert names in str(info.value)


def test_the_urgent_gap_is_real_hours_across_a_daylight_saving_change() -> None:
    # New York springs forward at 02:00 on 10 March 2024: 00:30 plus three wall-clock hours
    # would be only two real hours later, before Berlin's 09:00 (08:00 UTC) that day.
    new_york = ZoneInfo("America/New_York")
    concluded = datetime(2024, 3, 10, 0, 30, tzinfo=new_york)
    found = BOOK.due(Urgency.URGENT, concluded, BERLIN)
    assert found is not None and found - concluded >= timedelta(hours=3)
    assert found == datetime(2024, 3, 11, 8, 0, tzinfo=UTC)
