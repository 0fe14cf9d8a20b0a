"""Follow-up storage on SQLite and PostgreSQL: one per result, claimed exactly once, answered,
erased with the person. And the service: offer, accept in the person's zone, due, claim."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from bot.services.flow import Who
from bot.services.followups import FollowUpService
from dialogs.advice import AdviceBook
from dialogs.countries import EmergencyNumbers
from dialogs.followups import FollowUpBook
from dialogs.records import CONCLUDED, Conclusion, ConversationState
from dialogs.vocabulary import Pattern, Urgency
from storage import Store
from storage.followups import FollowUpStatus
from tests.clock import Clock

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 18, 21, 0, tzinfo=UTC)  # 22:00 in Berlin
NUMBERS = EmergencyNumbers.load()


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def store(database_url: str, clock: Clock) -> Iterator[Store]:
    store = Store.open(database_url, clock=clock)
    yield store
    store.dispose()


@pytest.fixture
def service(store: Store, clock: Clock) -> FollowUpService:
    return FollowUpService(
        store,
        FollowUpBook.load(),
        AdviceBook.load(),
        clock=clock,
        zones=NUMBERS.zones,
        emergency_number=NUMBERS.number,
        urgent_care=NUMBERS.urgent_care,
    )


def concluded(store: Store, urgency: Urgency, external_id: str = "42") -> tuple[int, int]:
    """A person with a check concluded at `urgency`: (user id, conversation id)."""
    state = ConversationState(
        flow="triage",
        state=CONCLUDED,
        findings={"foot_burning_ache": True},
        conclusion=Conclusion(Pattern.PAD_REST_PAIN, urgency),
        started_at=NOW,
        finished_at=NOW,
    )
    with store.transaction() as repo:
        user = repo.user("telegram", external_id)
        return user.id, repo.create_conversation(user.id, state)


# --- the repository ----------------------------------------------------------------------------


def test_one_follow_up_per_result(store: Store) -> None:
    user_id, conversation_id = concluded(store, Urgency.URGENT)
    with store.transaction() as repo:
        first = repo.followups.offer(conversation_id, "urgent", NOW)
        again = repo.followups.offer(conversation_id, "urgent", NOW + timedelta(minutes=1))
    assert again.id == first.id and first.status is FollowUpStatus.OFFERED
    assert first.user_id == user_id
    with store.engine.connect() as connection, pytest.raises(IntegrityError):
        connection.execute(
            text(
                "INSERT INTO followups (user_id, conversation_id, status, offered_at)"
                f" VALUES ({user_id}, {conversation_id}, 'offered', '2026-11-18 21:00:00')"
            )
        )


def test_the_database_refuses_an_unknown_status_and_the_repository_an_unknown_answer(
    store: Store,
) -> None:
    user_id, conversation_id = concluded(store, Urgency.SOON)
    with store.engine.connect() as connection, pytest.raises(IntegrityError):
        connection.execute(
            text(
                "INSERT INTO followups (user_id, conversation_id, status, offered_at)"
                f" VALUES ({user_id}, {conversation_id}, 'maybe', '2026-11-18 21:00:00')"
            )
        )
    with store.transaction() as repo:
        followup = repo.followups.offer(conversation_id, "soon", NOW)
        with pytest.raises(ValueError, match="perhaps"):
            repo.followups.answer(followup.id, "perhaps", NOW)


def test_the_urgency_and_the_answer_are_sealed(store: Store) -> None:
    """What a follow-up says about health ("urgent", "changed") is stored only sealed."""
    _, conversation_id = concluded(store, Urgency.URGENT)
    due_at = NOW + timedelta(hours=11)
    with store.transaction() as repo:
        followup = repo.followups.offer(conversation_id, "urgent", NOW)
        assert repo.followups.accept(followup.id, due_at=due_at, zone="UTC", now=NOW)
        assert repo.followups.claim(followup.id, due_at)
        assert repo.followups.answer(followup.id, "changed", due_at)
    with store.engine.connect() as connection:
        columns = {c["name"] for c in inspect(connection).get_columns("followups")}
        rows = connection.execute(text("SELECT * FROM followups")).all()
    assert not {"urgency", "answer"} & columns
    stored = b"".join(
        bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode()
        for row in rows
        for value in row
    )
    assert b"urgent" not in stored and b"changed" not in stored
    with store.transaction() as repo:
        found = repo.followups.get(followup.id)
    assert found is not None and (found.urgency, found.answer) == ("urgent", "changed")


def test_an_accepted_follow_up_is_due_then_claimed_exactly_once(store: Store) -> None:
    _, conversation_id = concluded(store, Urgency.URGENT)
    due_at = NOW + timedelta(hours=11)
    with store.transaction() as repo:
        followup = repo.followups.offer(conversation_id, "urgent", NOW)
        assert repo.followups.accept(followup.id, due_at=due_at, zone="Europe/Berlin", now=NOW)
        assert not repo.followups.accept(followup.id, due_at=due_at, zone="UTC", now=NOW)
        assert not repo.followups.decline(followup.id, NOW), "already accepted"
    with store.transaction() as repo:
        assert repo.followups.due(due_at - timedelta(seconds=1)) == []
        assert not repo.followups.claim(followup.id, due_at - timedelta(seconds=1))
        assert [f.id for f in repo.followups.due(due_at)] == [followup.id]
        assert [f.id for f in repo.followups.due(due_at, channel="telegram")] == [followup.id]
        assert repo.followups.due(due_at, channel="terminal") == []
        assert repo.followups.claim(followup.id, due_at)
        assert not repo.followups.claim(followup.id, due_at)
    with store.transaction() as repo:
        assert repo.followups.due(due_at + timedelta(days=3)) == []
        sent = repo.followups.get(followup.id)
    assert sent is not None
    assert (sent.status, sent.sent_at, sent.zone) == (FollowUpStatus.SENT, due_at, "Europe/Berlin")


def test_a_claim_rolled_back_with_its_message_is_claimed_again(store: Store) -> None:
    _, conversation_id = concluded(store, Urgency.URGENT)
    with store.transaction() as repo:
        followup = repo.followups.offer(conversation_id, "urgent", NOW)
        repo.followups.accept(followup.id, due_at=NOW, zone="UTC", now=NOW)
    with pytest.raises(RuntimeError), store.transaction() as repo:
        assert repo.followups.claim(followup.id, NOW)
        repo.outbox.add(42, "send", {"text": "Checking in"}, lane="bulk")
        raise RuntimeError("the process died before the commit")
    with store.transaction() as repo:
        assert repo.outbox.pending() == 0
        assert repo.followups.claim(followup.id, NOW)


def test_two_dispatchers_racing_claim_a_follow_up_once(store: Store, database_url: str) -> None:
    """Two processes' transactions: the second waits for the first's lock, then finds the
    follow-up no longer accepted."""
    _, conversation_id = concluded(store, Urgency.URGENT)
    with store.transaction() as repo:
        followup = repo.followups.offer(conversation_id, "urgent", NOW)
        repo.followups.accept(followup.id, due_at=NOW, zone="UTC", now=NOW)
    other = Store.open(database_url)
    results: list[bool] = []
    try:
        with store.transaction() as repo:
            results.append(repo.followups.claim(followup.id, NOW))

            def race() -> None:
                with other.transaction() as theirs:
                    results.append(theirs.followups.claim(followup.id, NOW))

            racer = threading.Thread(target=race)
            racer.start()
            racer.join(timeout=0.5)  # blocked on our uncommitted claim until we commit
            assert racer.is_alive()
        racer.join(timeout=10)
    finally:
        other.dispose()
    assert results == [True, False]


def test_answers_are_recorded_once(store: Store) -> None:
    _, conversation_id = concluded(store, Urgency.SOON)
    with store.transaction() as repo:
        followup = repo.followups.offer(conversation_id, "soon", NOW)
        assert not repo.followups.answer(followup.id, "seen", NOW), "not sent yet"
        repo.followups.accept(followup.id, due_at=NOW, zone="UTC", now=NOW)
        repo.followups.claim(followup.id, NOW)
        later = NOW + timedelta(hours=1)
        assert repo.followups.answer(followup.id, "not_yet", later)
        assert not repo.followups.answer(followup.id, "seen", later + timedelta(minutes=1))
        with pytest.raises(ValueError, match="not a follow-up answer"):
            repo.followups.answer(followup.id, "perhaps", later)
        found = repo.followups.get(followup.id)
    assert found is not None
    assert (found.status, found.answer, found.answered_at) == (
        FollowUpStatus.ANSWERED,
        "not_yet",
        later,
    )


def test_a_newer_accepted_follow_up_replaces_an_unsent_one(store: Store) -> None:
    _, first_check = concluded(store, Urgency.SOON)
    _, second_check = concluded(store, Urgency.URGENT)
    with store.transaction() as repo:
        first = repo.followups.offer(first_check, "soon", NOW)
        repo.followups.accept(first.id, due_at=NOW + timedelta(days=3), zone="UTC", now=NOW)
        second = repo.followups.offer(second_check, "urgent", NOW)
        repo.followups.accept(second.id, due_at=NOW + timedelta(hours=12), zone="UTC", now=NOW)
        statuses = [f.status for f in repo.followups.of_user(first.user_id)]
    assert statuses == [FollowUpStatus.CANCELLED, FollowUpStatus.ACCEPTED]


def test_a_result_changed_to_self_care_withdraws_its_follow_up(store: Store) -> None:
    _, conversation_id = concluded(store, Urgency.URGENT)
    with store.transaction() as repo:
        followup = repo.followups.offer(conversation_id, "urgent", NOW)
        repo.followups.accept(followup.id, due_at=NOW, zone="UTC", now=NOW)
        assert repo.followups.withdraw(conversation_id)
        assert repo.followups.due(NOW) == []
        # concluded urgent again: offered afresh
        assert repo.followups.offer(conversation_id, "urgent", NOW).status == "offered"


def test_erasing_the_person_erases_their_follow_ups(store: Store) -> None:
    user_id, conversation_id = concluded(store, Urgency.URGENT)
    _, others = concluded(store, Urgency.URGENT, external_id="43")
    with store.transaction() as repo:
        repo.followups.offer(conversation_id, "urgent", NOW)
        repo.followups.offer(others, "urgent", NOW)
        assert repo.user_row_counts(user_id)["followups"] == 1
        repo.delete_user(user_id)
    with store.transaction() as repo:
        assert repo.user_row_counts(user_id)["followups"] == 0
        assert repo.followups.for_conversation(conversation_id) is None
        assert repo.followups.for_conversation(others) is not None


# --- the service -------------------------------------------------------------------------------


def test_only_urgent_and_soon_results_are_offered(store: Store, service: FollowUpService) -> None:
    who = Who("telegram", "42")
    for urgency in Urgency:
        _, conversation_id = concluded(store, urgency)
        offered = service.offer(who, conversation_id, urgency)
        assert (offered is not None) == (urgency in (Urgency.URGENT, Urgency.SOON)), urgency
    assert service.offer(Who("telegram", "43"), conversation_id, Urgency.SOON) is None


def test_accepting_times_it_in_the_diary_zone_then_the_country_then_utc(
    store: Store, service: FollowUpService, clock: Clock
) -> None:
    who = Who("telegram", "42")
    user_id, conversation_id = concluded(store, Urgency.URGENT)
    offered = service.offer(who, conversation_id, Urgency.URGENT)
    assert offered is not None
    accepted = service.accept(who, offered.followup.id)
    assert accepted is not None and accepted.zone is None
    assert accepted.due_at == datetime(2026, 11, 19, 9, 0, tzinfo=UTC)
    assert service.retime_unzoned() == 0, "still no zone known"

    with store.transaction() as repo:
        repo.update_user(user_id, country="AU")  # Australia/Sydney first
    assert service.retime_unzoned() == 1
    [followup] = service.followups(who)
    assert followup.zone == "Australia/Sydney"
    # accepted 08:00 on the 19th in Sydney: 09:00 is not 3 hours away, so the 20th
    assert followup.due_at == datetime(2026, 11, 20, 9, 0, tzinfo=ZoneInfo("Australia/Sydney"))

    with store.transaction() as repo:
        repo.diary.set_schedule(
            user_id, local_time=datetime(2026, 1, 1, 21, 30).time(), zone="Europe/Berlin", now=NOW
        )
    _, second_check = concluded(store, Urgency.URGENT)
    offered = service.offer(who, second_check, Urgency.URGENT)
    assert offered is not None
    accepted = service.accept(who, offered.followup.id)
    assert accepted is not None and accepted.zone == "Europe/Berlin"
    assert accepted.due_at == datetime(2026, 11, 19, 9, 0, tzinfo=BERLIN)


def test_the_follow_up_asks_about_the_advice_given_and_restates_it(
    store: Store, service: FollowUpService
) -> None:
    who = Who("telegram", "42")
    user_id, conversation_id = concluded(store, Urgency.URGENT)
    with store.transaction() as repo:
        repo.update_user(user_id, country="DE")
    offered = service.offer(who, conversation_id, Urgency.URGENT)
    assert offered is not None and service.accept(who, offered.followup.id) is not None
    assert service.answer(who, offered.followup.id, "seen") is None, "not sent yet"
    [due] = service.due(datetime(2026, 11, 19, 8, 0, tzinfo=UTC))
    with store.transaction():
        claimed = service.claim(due.id, datetime(2026, 11, 19, 8, 0, tzinfo=UTC))
    assert claimed is not None and claimed.who == who
    advice = service.advice.advise(
        Conclusion(Pattern.PAD_REST_PAIN, Urgency.URGENT),
        {"foot_burning_ache": True},
        emergency_number="112",
        urgent_care=NUMBERS.urgent_care("DE"),
    )
    assert advice.headline in claimed.question.text
    answered = service.answer(who, due.id, "not_yet")
    assert answered is not None and answered.reply is not None
    assert advice.action in answered.reply.text and advice.at_night in answered.reply.text
    assert "116117" in answered.reply.text, "the country's out-of-hours line, named again"
    again = service.answer(who, due.id, "seen")
    assert again is not None and again.reply is None
    assert service.answer(Who("telegram", "43"), due.id, "seen") is None


def test_two_bot_processes_dispatching_together_send_each_follow_up_once(
    store: Store, service: FollowUpService, database_url: str
) -> None:
    """The Telegram dispatcher itself, run at once by two processes (two Stores, two threads)
    over 120 due follow-ups: 120 queued messages, one per follow-up."""
    from bot.telegram.followups import REF, FollowUps  # noqa: PLC0415 - the adapter under test

    people = 120
    for n in range(people):
        who = Who("telegram", str(1000 + n))
        _, conversation_id = concluded(store, Urgency.URGENT, external_id=who.external_id)
        offered = service.offer(who, conversation_id, Urgency.URGENT)
        assert offered is not None and service.accept(who, offered.followup.id) is not None
    morning = Clock(datetime(2026, 11, 19, 9, 0, tzinfo=UTC))
    stores = [Store.open(database_url, clock=morning) for _ in range(2)]
    dispatchers = [
        FollowUps(
            FollowUpService(s, service.book, service.advice, clock=morning, zones=NUMBERS.zones)
        )
        for s in stores
    ]
    counts: list[int] = []
    try:
        threads = [
            threading.Thread(target=lambda d=d: counts.append(d.dispatch())) for d in dispatchers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        for s in stores:
            s.dispose()
    assert sum(counts) == people, counts
    with store.transaction() as repo:
        queued = [
            repo.outbox.claim_next(1000 + n, "check", timedelta(seconds=15)) for n in range(people)
        ]
        assert repo.outbox.pending() == people
    assert sorted(row.payload["ref"][REF] for row in queued if row is not None) == sorted(
        f.id for n in range(people) for f in service.followups(Who("telegram", str(1000 + n)))
    )
