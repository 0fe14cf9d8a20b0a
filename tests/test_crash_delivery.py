"""Crash acceptance (issue 8): kill -9 the real bot process at 20 moments while 20 people tap.

"Kill -9 at 20 random points in 20 conversations, including between commit and send. Result:
0 lost or duplicated replies, 0 stranded people (the next question arrives by itself after the
restart), 0 answers applied twice."

`python -m bot` runs as a subprocess against the stand-in Bot API, on SQLite and PostgreSQL.
The stand-in numbers messages as Telegram does (one counter for all the bot's private chats)
and answers each call `LATENCY` late (50-300 ms, as Telegram answers a bot that is not next
door), so a kill often comes while Telegram has applied a call whose answer is on its way.
Twenty people, each in their own chat, /start, agree and answer a triage check by pressing the
buttons they see (five stop half-way, as people do). A check is one message: the introduction
(a send), which agreeing turns into the first question and each answer edits on, into the
result at last. So that kills land around sends too, some who reach a result tap its "New
check" (a send) and answer the new check's first question, then stop there. Each waits for
the bot's reply to a tap before the next one, and never types anything to get unstuck.
Meanwhile the bot is killed 20 times and restarted each time. Four kinds of kill point, in a
seeded random order (the last is always ``held``):

* ``held`` (6): between commit and send, deterministically. The stand-in holds back (neither
  applies nor answers) one person's next ``editMessageText``/``sendMessage``: the bot has
  committed the answer and queued the reply, and is waiting for Telegram. The bot is killed
  then; after the restart the same reply must arrive by itself, before that person taps again.
* ``unconfirmed`` (5): the stand-in holds the ``getUpdates`` that would confirm newly committed
  updates: they are handled, Telegram does not know, so they all come again after the restart
  and must not be applied twice.
* ``fetched`` (5): as soon as the bot has fetched the k-th batch holding a button press (k
  random, 1-3): updates being handled, transactions open or just committed.
* ``timed`` (4): a random moment 20-400 ms into the run.

Then, with nobody tapping: every stored answer as pressed and once, every press logged once,
every press answered (a repeat only as "query is too old"), each chat's messages sent once
and in order, each check's one message through exactly the states its person saw (a
finished one ends as the result), the outbox empty, and for those who stopped half-way (or
in the new check) the newest message with buttons is the question the database has open.

The seed is in every failure message; ``NIGHTLEGS_CRASH_SEED=<seed>`` replays its choices (the
timing of a real process is not replayable).

What repeat is tolerated, and why: a kill after Telegram applied a call but before the bot
committed "delivered" makes the bot make that call again after the restart. For an edit that
is harmless (Telegram answers "message is not modified"), for a button answer too ("query is
too old"). A ``sendMessage`` is not repeated: the bot first probes, with an edit to the same
text, the ids it does not know between the highest id it knew as that send left and the
first id of a send it made since (``bot/telegram/delivery.py``), and "not modified" tells
it the send is there. Kills at busy moments hit that window a few times a run, so the
probes' own refusals ("message to edit not found", "message can't be edited") are expected,
each carrying the text of a send to its chat. A send shown twice is an error; if it has the
signature of that window (the first copy is the chat's last delivered call before a kill,
within `WINDOW` of it, the second its first call after it) the message says the probe missed
it. `test_a_send_applied_but_not_acknowledged_shows_once` forces that window.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import Engine, select

from bot.telegram.keys import AnswerKey, DoneKey, MenuKey, decode
from dialogs.engine import Flow
from dialogs.vocabulary import Urgency
from storage import Store
from storage.models import OutboxMessage
from tests.botapi_stub import BotApiStub, Call, Hold, SentMessage
from tests.cases import CASES
from tests.test_telegram_restart import BotProcess
from tests.walker import Plan, walk

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

FLOW = Flow.load("triage")
PEOPLE = 20
STOPPERS = 5
"""People who answer part of the check and then put the phone away."""
AGAIN = 8
"""People who, after their result, tap "New check" and answer the new check's first question."""
KILL_KINDS = ["held"] * 6 + ["unconfirmed"] * 5 + ["fetched"] * 5 + ["timed"] * 4
FIRST_CHAT = 810_001
WINDOW = 1.0
"""A send repeated after a kill is put down to the kill only if Telegram got the first copy
less than this many seconds before it (measured: 1-75 ms on a busy 2-core machine)."""
STEP_TIMEOUT = 45.0
"""How long a person waits for the reply to one tap (several restarts may come between)."""
WHOLE_RUN = 300.0
REPLY_METHODS = ("editMessageText", "sendMessage")
CHAT_BOUND = frozenset(
    {"sendMessage", "editMessageText", "editMessageCaption", "editMessageReplyMarkup"}
)
NOT_MODIFIED = "message is not modified"
PROBE_MISSES = ("message to edit not found", "message can't be edited")
"""What the sender's probe for a lost send hears where the send is not."""
QUERY_TOO_OLD = "query is too old"
SEED_VARIABLE = "NIGHTLEGS_CRASH_SEED"
LATENCY = (0.05, 0.3)
"""Seconds the stand-in takes to answer each call, uniformly at random."""
NEW = MenuKey("new")
"""The result's "New check" button."""


# --- what a person sees -------------------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """The check's living message as it looks: the open question and what is ticked on it."""

    message_id: int
    question_id: str
    ticked: frozenset[str]


def _keys(markup: dict[str, Any] | None) -> list[tuple[str, object]]:
    return [(text, decode(data)) for text, data in BotApiStub.buttons(markup)]


def question_of(markup: dict[str, Any] | None) -> tuple[str, frozenset[str]] | None:
    """(question id, ticked options) a keyboard shows, or None if it asks nothing."""
    keys = [k for _, k in _keys(markup) if isinstance(k, AnswerKey | DoneKey)]
    if not keys:
        return None
    [question_id] = {k.question_id for k in keys}
    ticked = frozenset(k.option_id for k in keys if isinstance(k, AnswerKey) and k.tick is False)
    return question_id, ticked


def view(api: BotApiStub, chat: int, living: int | None = None) -> View | None:
    """The check's message as the person sees it now: `living` once known, else the first
    bot message that asks a question (None: nothing asked, or the check ended)."""
    if living is not None:
        shown = question_of(api.message(chat, living).reply_markup)
        return None if shown is None else View(living, *shown)
    for message in api.messages(chat):
        shown = question_of(message.reply_markup)
        if shown is not None:
            return View(message.message_id, *shown)
    return None


def kind_of(message: SentMessage) -> str:
    """What a bot message is, by its buttons: the flow's sends are told apart by them."""
    keys = [k for _, k in _keys(message.reply_markup)]
    if any(isinstance(k, AnswerKey | DoneKey) for k in keys):
        return "question"
    menu = {k.action for k in keys if isinstance(k, MenuKey)}
    if "consent" in menu:
        return "intro"
    if "new" in menu:
        return "outcome"
    return f"other: {(message.plain_text or '')[:60]!r}"


def button_data(message: SentMessage, wanted: Callable[[object], bool]) -> str:
    for _label, data in message.buttons:
        if wanted(decode(data)):
            assert data is not None
            return data
    raise LookupError(f"no such button on message {message.message_id}: {message.buttons}")


# --- the people ----------------------------------------------------------------------------------


@dataclass
class Person:
    chat: int
    case_id: str
    urgency: Urgency
    plans: list[Plan]
    """Every question the person answers, in asking order (stoppers: the first few)."""
    finishes: bool
    taps: list[str] = field(default_factory=list)
    """The callback query id of every button press, in order."""
    tapped_at: list[int] = field(default_factory=list)
    """`api.mark()` at each press: the calls the bot had made by then."""
    again: bool = False
    """After the result, taps "New check" and answers its first question (`plans[0]`)."""
    views: list[View | None] = field(default_factory=list)
    """Each state of the check's message the person saw (None: the check ended)."""
    living: int | None = None
    """The check's one message, once it asks: the person answers there."""
    earlier: list[tuple[int, list[View | None]]] = field(default_factory=list)
    """(message, views) of the check before the new one, for those who start again."""
    done: bool = False

    @property
    def planned_taps(self) -> int:
        """Agreeing, then one tap per answer, or one per tick and "Done" (and, starting
        again, "New check" and the first answer)."""
        again = 1 + _taps(self.plans[:1]) if self.again else 0
        return 1 + _taps(self.plans) + again

    @property
    def taps_left(self) -> int:
        return self.planned_taps - len(self.taps)

    def expected_sends(self) -> list[str]:
        """The introduction (edited into the check, then its result); starting again, the
        new check's message."""
        return ["intro", "question"] if self.again else ["intro"]

    def checks(self) -> list[tuple[int | None, list[View | None]]]:
        """(message, views) of each check, oldest first."""
        return [*self.earlier, (self.living, self.views)]


def _taps(plans: list[Plan]) -> int:
    return sum(len(p.option_ids) + 1 if p.ticks else 1 for p in plans)


def make_people(rng: random.Random) -> list[Person]:
    people = []
    stoppers = set(rng.sample(range(PEOPLE), STOPPERS))
    for i in range(PEOPLE):
        case = rng.choice(CASES)
        plans = walk(FLOW, case["facts"]).plans
        finishes = i not in stoppers or len(plans) < 2
        if not finishes:
            plans = plans[: rng.randint(1, len(plans) - 1)]
        people.append(Person(FIRST_CHAT + i, case["id"], Urgency(case["urgency"]), plans, finishes))
    # The new check stays open after its first answer (an emergency sign would end it).
    finishers = [p for p in people if p.finishes and len(p.plans) > 1]
    for person in rng.sample(finishers, min(AGAIN, len(finishers))):
        person.again = True
    return people


async def tap(api: BotApiStub, person: Person, message_id: int, data: str) -> None:
    """Press a button and wait until the check's message changes (the reply arrived)."""
    before = view(api, person.chat, person.living)
    mark = api.mark()
    update = api.feed_callback(person.chat, message_id, data)
    person.taps.append(update["callback_query"]["id"])
    person.tapped_at.append(mark)
    try:
        await api.wait_for_message(
            person.chat,
            lambda _m: view(api, person.chat, person.living) != before,
            after=mark,
            timeout=STEP_TIMEOUT,
        )
    except TimeoutError as exc:
        raise AssertionError(
            f"stranded: chat {person.chat} pressed {data!r} and saw no reply in "
            f"{STEP_TIMEOUT:g} s\n{calls_to(api, person.chat)}\n{api.transcript(person.chat)}"
        ) from exc
    shown = view(api, person.chat, person.living)
    if person.living is None and shown is not None:
        person.living = shown.message_id
    person.views.append(shown)


def next_press(shown: View, plan: Plan, message: SentMessage) -> str:
    if not plan.ticks:
        return button_data(
            message,
            lambda k: isinstance(k, AnswerKey) and k.option_id == plan.option_id and k.tick is None,
        )
    for option_id in plan.option_ids:
        if option_id not in shown.ticked:
            return button_data(
                message,
                lambda k, o=option_id: isinstance(k, AnswerKey) and k.option_id == o and k.tick,
            )
    return button_data(message, lambda k: isinstance(k, DoneKey))


async def converse(api: BotApiStub, person: Person) -> None:
    """/start, agree, answer the planned questions by their buttons; never type to get unstuck."""
    mark = api.mark()
    api.feed_message(person.chat, "/start")
    try:
        intro = await api.wait_for_message(
            person.chat, lambda m: kind_of(m) == "intro", after=mark, timeout=STEP_TIMEOUT
        )
    except TimeoutError as exc:
        raise AssertionError(
            f"stranded: chat {person.chat} sent /start and saw no introduction in "
            f"{STEP_TIMEOUT:g} s\n{calls_to(api, person.chat)}"
        ) from exc
    consent = button_data(intro, lambda k: k == MenuKey("consent"))
    await tap(api, person, intro.message_id, consent)
    await answer(api, person, person.plans)
    if person.again:
        assert person.living is not None
        result = api.message(person.chat, person.living)
        assert kind_of(result) == "outcome", f"chat {person.chat}: no result to start again on"
        person.earlier.append((person.living, person.views))
        person.living, person.views = None, []
        await tap(api, person, result.message_id, button_data(result, lambda k: k == NEW))
        await answer(api, person, person.plans[:1])
    person.done = True


async def answer(api: BotApiStub, person: Person, plans: list[Plan]) -> None:
    """Answer `plans` on the check's message by its buttons."""
    for plan in plans:
        while True:
            shown = view(api, person.chat, person.living)
            assert shown is not None and shown.question_id == plan.question_id, (
                f"chat {person.chat} expected {plan.question_id!r}, sees {shown}"
            )
            message = api.message(person.chat, shown.message_id)
            data = next_press(shown, plan, message)
            await tap(api, person, shown.message_id, data)
            key = decode(data)
            if not (isinstance(key, AnswerKey) and key.tick):
                break


# --- the chaos -----------------------------------------------------------------------------------


@dataclass
class Kill:
    number: int
    kind: str
    chat: int | None = None
    held: Call | None = None
    taps_then: int = 0
    at: int = 0
    """`api.mark()` once the process was dead: calls before it came from earlier runs."""
    when: float = 0.0
    """`time.monotonic()` as SIGKILL was sent."""
    restart: float = 0.0
    """Seconds from the kill until the new process was polling."""
    redelivered: int = 0
    """Updates committed but not yet confirmed to Telegram at the kill: they come again."""

    def __str__(self) -> str:
        where = f" chat {self.chat} {self.held.method}" if self.held is not None else ""
        return f"#{self.number} {self.kind}{where} (at call {self.at})"


def batch_with_a_press(call: Call) -> bool:
    return call.ok and any("callback_query" in u for u in call.result)


async def kill_point(
    api: BotApiStub, kill: Kill, people: list[Person], rng: random.Random, started: int
) -> None:
    """Wait for the moment to kill, by kind."""
    if kill.kind == "held":
        candidates = [p for p in people if p.taps_left >= 2]
        if not candidates:
            kill.kind = "held (nobody left to hold: timed)"
            return
        person = rng.choice(candidates)
        hold = api.hold_next(*REPLY_METHODS, chat_id=person.chat)
        try:
            kill.held = await api.wait_for_hold(hold, timeout=STEP_TIMEOUT)
        except TimeoutError:
            api.cancel_hold(hold)
            kill.kind = "held (no reply came: timed)"
            return
        kill.chat, kill.taps_then = person.chat, len(person.taps)
    elif kill.kind == "unconfirmed":
        await committed_not_confirmed(api, kill)
    elif kill.kind == "fetched":
        position = started
        for _ in range(rng.randint(1, 3)):
            try:
                call = await api.wait_for_call(
                    "getUpdates", batch_with_a_press, after=position, timeout=5
                )
            except TimeoutError:
                kill.kind = "fetched (idle)"
                return
            position = call.index + 1
    else:
        await asyncio.sleep(rng.uniform(0.02, 0.4))  # a random moment, not a wait for a result


async def committed_not_confirmed(api: BotApiStub, kill: Kill) -> None:
    """Hold the getUpdates that would confirm newly committed updates: the bot asks for it
    only once the batch before is committed, so they are handled but Telegram will send them
    again. Getting there may take a few polls; each that confirms nothing new goes on."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        hold = api.hold_next("getUpdates")
        try:
            call = await api.wait_for_hold(hold, timeout=max(deadline - loop.time(), 0.1))
        except TimeoutError:
            api.cancel_hold(hold)
            kill.kind = "unconfirmed (idle)"
            return
        offset = int(call.params.get("offset") or 0)
        if offset > api.confirmed_offset:
            kill.redelivered = offset - max(api.confirmed_offset, 1)
            return
        hold.release()
        if loop.time() > deadline:
            kill.kind = "unconfirmed (idle)"
            return


async def chaos(
    api: BotApiStub, bot: BotProcess, people: list[Person], rng: random.Random
) -> list[Kill]:
    kinds = list(KILL_KINDS)
    rng.shuffle(kinds)
    kinds.remove("held")
    kinds.append("held")  # the last restart, too, must deliver a reply by itself
    kills = []
    for number, kind in enumerate(kinds, 1):
        kill = Kill(number, kind)
        await kill_point(api, kill, people, rng, api.mark())
        kill.when = time.monotonic()
        await bot.kill()
        kill.at = api.mark()
        kills.append(kill)
        await bot.start()
        kill.restart = time.monotonic() - kill.when
        if kill.held is not None:
            await arrives_by_itself(api, kill, people)
    return kills


async def arrives_by_itself(api: BotApiStub, kill: Kill, people: list[Person]) -> None:
    """The reply held back at the kill is delivered after the restart, nobody tapping."""
    held = kill.held
    assert held is not None and kill.chat is not None
    assert held.status in (None, 499), f"the held {held.method} was applied: {held.status}"

    def same(call: Call) -> bool:
        # "Not modified": the held call was itself a repeat of one Telegram had applied, or a
        # probe found the lost send of this text.
        return (
            (applied(call) or NOT_MODIFIED in (call.description or ""))
            and str(call.params.get("chat_id")) == str(kill.chat)
            and call.params.get("text") == held.params.get("text")
            and call.params.get("reply_markup") == held.params.get("reply_markup")
        )

    # The held edit may have been a probe for a send (same text): then the send itself comes.
    waits = [
        asyncio.create_task(api.wait_for_call(method, same, after=kill.at, timeout=STEP_TIMEOUT))
        for method in REPLY_METHODS
    ]
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        again = min((t.result() for t in done), key=lambda c: c.index)
    except TimeoutError as exc:
        raise AssertionError(
            f"stranded: the {held.method} held at kill {kill} never came after the restart"
            f"\n{calls_to(api, kill.chat)}"
        ) from exc
    finally:
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
    [person] = [p for p in people if p.chat == kill.chat]
    pressed = [at for at in person.tapped_at[kill.taps_then :] if at <= again.index]
    assert not pressed, f"chat {kill.chat} pressed again before the reply came ({kill})"


def calls_to(api: BotApiStub, chat: int) -> str:
    """The Bot API calls about one chat, one a line, for failure messages."""
    lines = []
    for call in api.calls:
        query = str(call.params.get("callback_query_id", ""))
        ours = str(call.params.get("chat_id")) == str(chat) or any(
            u.get("callback_query", {}).get("id") == query
            and u["callback_query"]["message"]["chat"]["id"] == chat
            for u in api.updates
            if query
        )
        if ours:
            shown = question_of(call.params.get("reply_markup"))
            text = (call.params.get("text") or "")[:40].replace("\n", " ")
            lines.append(
                f"#{call.index} {call.method} {call.status} {call.description or ''} "
                f"held={call.held} shows={shown} {text!r}"
            )
    return "\n".join(lines)


# --- checking the result -------------------------------------------------------------------------


@dataclass
class Findings:
    send_repeats: list[str] = field(default_factory=list)
    """Sends shown twice in the kill window: the probe missed them (each is an error too)."""
    repeated: set[tuple[int, int]] = field(default_factory=set)
    """(chat, message id) of each second copy."""
    copies: list[tuple[int, int, int]] = field(default_factory=list)
    """(chat, first copy, second copy) message ids: the outbox must have sent only one."""
    edit_repeats: int = 0
    probes: int = 0
    """Edits refused as "not found" or "can't be edited": the sender's probes for a send."""
    toast_repeats: int = 0
    errors: list[str] = field(default_factory=list)


def applied(call: Call) -> bool:
    """Telegram applied the call (the person sees it), whether or not the bot heard back."""
    return call.applied is not None


def result(call: Call) -> Any:
    """What Telegram answered to an applied call (the bot may never have got it)."""
    assert call.applied is not None
    return call.applied["result"]


def chat_calls(api: BotApiStub, chat: int) -> list[Call]:
    """Chat-bound calls to `chat` that Telegram applied, in order."""
    return [
        c
        for c in api.calls
        if c.method in CHAT_BOUND and applied(c) and str(c.params.get("chat_id")) == str(chat)
    ]


def check_sends(api: BotApiStub, person: Person, kills: list[Kill], found: Findings) -> None:
    """Each expected message sent once and in order."""
    calls = chat_calls(api, person.chat)
    sent_by = {result(c)["message_id"]: c for c in calls if c.method == "sendMessage"}
    kinds = []
    for message in api.messages(person.chat):
        call = sent_by.get(message.message_id)
        if call is None:
            found.errors.append(f"chat {person.chat}: message {message.message_id} not by a send")
            continue
        kind = kind_sent(call)
        position = calls.index(call)
        previous = calls[position - 1] if position else None
        repeat = (
            previous is not None
            and previous.method == "sendMessage"
            and previous.params.get("text") == call.params.get("text")
            and previous.params.get("reply_markup") == call.params.get("reply_markup")
        )
        killed = None
        if repeat and previous is not None:
            # the first kill after the first copy: the second must come from a later run
            killed = next((k for k in kills if k.at > previous.index), None)
        if (
            previous is not None
            and killed is not None
            and killed.at <= call.index
            and killed.when - previous.at < WINDOW
        ):
            found.send_repeats.append(
                f"chat {person.chat}: {kind} sent again after kill {killed}, which came "
                f"{(killed.when - previous.at) * 1000:.1f} ms after Telegram got the first "
                f"(calls #{previous.index} and #{call.index}): the probe missed it"
            )
            found.errors.append(found.send_repeats[-1])
            found.repeated.add((person.chat, message.message_id))
            found.copies.append((person.chat, result(previous)["message_id"], message.message_id))
            continue
        if repeat:
            found.errors.append(
                f"chat {person.chat}: {kind} sent twice (calls #{call.index} and before)"
            )
        kinds.append(kind)
    if kinds != person.expected_sends():
        found.errors.append(
            f"chat {person.chat} ({person.case_id}): sent {kinds}, "
            f"expected {person.expected_sends()}\n{api.transcript(person.chat)}"
        )


def check_living_message(api: BotApiStub, person: Person, found: Findings) -> None:
    """Each check's one message went through exactly the states the person saw, in order: the
    introduction, turned into the first question, each answer, and (finished) the result."""
    for number, (living, views) in enumerate(person.checks()):
        if living is None:
            found.errors.append(f"chat {person.chat}: check {number + 1} never asked")
            continue
        message = api.message(person.chat, living)
        versions = [markup for _, markup in message.history] + [message.reply_markup]
        states: list[tuple[str, frozenset[str]] | None] = []
        for markup in versions:
            state = question_of(markup)
            if not states or states[-1] != state:
                states.append(state)
        if number == 0 and states and states[0] is None:
            states = states[1:]  # the introduction, before it asked
        seen: list[tuple[str, frozenset[str]] | None] = []
        for shown in views:
            state = None if shown is None else (shown.question_id, shown.ticked)
            if not seen or seen[-1] != state:
                seen.append(state)
        if states != seen:
            found.errors.append(
                f"chat {person.chat}: check {number + 1}'s message went {states}, the person "
                f"saw {seen}"
            )
        if person.finishes and number == 0 and kind_of(message) != "outcome":
            found.errors.append(
                f"chat {person.chat}: the check's message ends as {kind_of(message)!r}, "
                "not its result"
            )


def _asks(call: Call) -> bool:
    return question_of(call.params.get("reply_markup")) is not None


def kind_sent(call: Call) -> str:
    shown = result(call)
    message = SentMessage(
        shown["chat"]["id"], shown["message_id"], "text", True, shown["date"], shown
    )
    message.reply_markup = call.params.get("reply_markup")
    message.plain_text = str(call.params.get("text") or "")
    return kind_of(message)


def check_toasts(api: BotApiStub, people: list[Person], found: Findings) -> None:
    """Every press answered once; a repeat only after the answer, refused as too old."""
    answers: dict[str, list[Call]] = {}
    for call in api.calls_of("answerCallbackQuery"):
        if call.status in (None, 499) and not applied(call):
            continue  # the bot died waiting for the answer: nothing happened
        answers.setdefault(str(call.params.get("callback_query_id")), []).append(call)
    for person in people:
        for query_id in person.taps:
            calls = answers.get(query_id, [])
            if not calls or not applied(calls[0]):
                found.errors.append(f"chat {person.chat}: press {query_id} was not answered")
                continue
            for again in calls[1:]:
                if applied(again) or QUERY_TOO_OLD not in (again.description or ""):
                    found.errors.append(f"chat {person.chat}: press {query_id} answered twice")
                else:
                    found.toast_repeats += 1


def check_violations(api: BotApiStub, found: Findings) -> None:
    for violation in api.violations:
        if NOT_MODIFIED in violation:
            found.edit_repeats += 1  # an edit repeated, or a probe finding its send: harmless
        elif any(miss in violation for miss in PROBE_MISSES):
            found.probes += 1  # checked by check_probes
        elif QUERY_TOO_OLD not in violation:  # counted by check_toasts
            found.errors.append(f"Bot API rule broken: {violation}")
    found.errors += api.internal_errors
    check_probes(api, found)


def check_probes(api: BotApiStub, found: Findings) -> None:
    """An edit of a message that is not there, or is the person's, is only ever a probe for a
    send: it carries the text and buttons of a send made to that chat."""
    sent = {
        (str(c.params.get("chat_id")), c.params.get("text"), str(c.params.get("reply_markup")))
        for c in api.calls_of("sendMessage")
        if applied(c)
    }
    for call in api.calls_of("editMessageText"):
        if any(miss in (call.description or "") for miss in PROBE_MISSES):
            params = call.params
            key = (str(params.get("chat_id")), params.get("text"), str(params.get("reply_markup")))
            if key not in sent:
                found.errors.append(f"call #{call.index}: an edit of no message of the bot's")


def check_database(
    api: BotApiStub, database_url: str, people: list[Person], found: Findings
) -> None:
    """Every answer stored once, as pressed; each press logged once (no update applied twice)."""
    store = Store.open(database_url)
    try:
        check_one_row_per_copy(store.engine, found)
        with store.transaction() as repo:
            if waiting := repo.outbox.pending():
                found.errors.append(f"{waiting} replies still in the outbox, never delivered")
            for person in people:
                user = repo.find_user("telegram", str(person.chat))
                if user is None:
                    found.errors.append(f"chat {person.chat}: no user stored")
                    continue
                conversations = repo.conversations(user.id)
                checks = [(person.plans, person.finishes)]
                if person.again:
                    checks.append((person.plans[:1], False))
                if len(conversations) != len(checks):
                    found.errors.append(f"chat {person.chat}: {len(conversations)} checks")
                    continue
                for (_, state), (plans, finishes) in zip(conversations, checks, strict=True):
                    stored = [(a.question_id, tuple(sorted(a.option_ids))) for a in state.answers]
                    pressed = [(p.question_id, tuple(sorted(p.option_ids))) for p in plans]
                    asked = [q for q, _ in stored]
                    if len(set(asked)) != len(asked):
                        found.errors.append(
                            f"chat {person.chat}: a question answered twice {asked}"
                        )
                    if stored != pressed:
                        found.errors.append(
                            f"chat {person.chat}: stored {stored}, pressed {pressed}"
                        )
                    if finishes != state.finished or (finishes and state.conclusion is None):
                        found.errors.append(f"chat {person.chat}: check state {state.state!r}")
                logged = [m for m in repo.messages(user.id) if m.direction == "in"]
                if len(logged) != len(person.taps):
                    found.errors.append(
                        f"chat {person.chat}: {len(logged)} presses logged, "
                        f"{len(person.taps)} made: {[m.text for m in logged]}"
                    )
                if not person.finishes or person.again:
                    check_not_stranded(api, person, state.state, state.pending, found)
    finally:
        store.dispose()


def check_one_row_per_copy(engine: Engine, found: Findings) -> None:
    """A send repeated after a kill is one outbox row delivered twice (the second copy's id
    is recorded), not an update applied twice (two rows, each with its own message)."""
    query = select(OutboxMessage.chat_id, OutboxMessage.message_id).where(
        OutboxMessage.kind == "send"
    )
    with engine.connect() as connection:
        sent = {(chat, message) for chat, message in connection.execute(query)}
    for chat, first, second in found.copies:
        if (chat, first) in sent or (chat, second) not in sent:
            found.errors.append(
                f"chat {chat}: messages {first} and {second} come from two outbox rows: "
                "an update was applied twice"
            )


def check_not_stranded(
    api: BotApiStub, person: Person, open_id: str, pending: tuple[str, ...], found: Findings
) -> None:
    """Someone who stopped half-way sees, as the newest message with buttons, the question
    the database says is open, with its ticks (a tolerated second copy of a send aside)."""
    latest = next(
        (
            m
            for m in reversed(api.messages(person.chat))
            if m.has_inline_keyboard and (person.chat, m.message_id) not in found.repeated
        ),
        None,
    )
    shown = None if latest is None else question_of(latest.reply_markup)
    if shown != (open_id, frozenset(pending)):
        found.errors.append(
            f"chat {person.chat}: stranded, {open_id!r} is open but the newest buttons show "
            f"{shown}\n{api.transcript(person.chat)}"
        )


async def outbox_empty(database_url: str, timeout: float) -> None:
    """Poll the outbox (every 20 ms, up to `timeout`) until every row is delivered."""
    store = Store.open(database_url)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with store.transaction() as repo:
                waiting = repo.outbox.pending()
            if not waiting:
                return
            if loop.time() > deadline:
                raise TimeoutError(f"{waiting} outbox rows still undelivered after {timeout:g} s")
            await asyncio.sleep(0.02)
    finally:
        store.dispose()


async def first_failure(tasks: list[asyncio.Task[Any]], timeout: float) -> None:
    """Wait for all tasks; raise the first failure at once, or say who was still going."""
    done, pending = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_EXCEPTION)
    for task in done:
        if task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    if pending:
        names = sorted(task.get_name() for task in pending)
        raise TimeoutError(f"not done after {timeout:g} s: {names}")


# --- the test ------------------------------------------------------------------------------------


def seed() -> int:
    given = os.environ.get(SEED_VARIABLE)
    return int(given) if given else random.SystemRandom().randrange(2**32)


async def test_kill_9_at_20_points_loses_and_repeats_no_reply_and_strands_nobody(
    tmp_path: Path, database_url: str
) -> None:
    chosen = seed()
    rng = random.Random(chosen)
    replay = f"seed {chosen} ({SEED_VARIABLE}={chosen} replays its choices)"
    people = make_people(rng)
    began = time.monotonic()
    async with BotApiStub(latency=LATENCY, seed=chosen) as api:
        bot = BotProcess(api, tmp_path, database_url)
        try:
            await bot.start()
            talks = [asyncio.create_task(converse(api, p), name=f"chat-{p.chat}") for p in people]
            killing = asyncio.create_task(chaos(api, bot, people, rng), name="chaos")
            try:
                await first_failure([killing, *talks], WHOLE_RUN)
                kills = killing.result()
                # No Bot API call tells that the last "delivered" is committed: ask the
                # database (a SIGTERM now would cancel a delivery in flight, see below).
                await outbox_empty(database_url, STEP_TIMEOUT)
            except (AssertionError, TimeoutError) as exc:
                raise AssertionError(f"{replay}: {type(exc).__name__}: {exc}") from exc
            finally:
                for task in [killing, *talks]:
                    task.cancel()
                await asyncio.gather(killing, *talks, return_exceptions=True)
            assert await bot.terminate() == 0, replay
        finally:
            if bot.process is not None and bot.process.returncode is None:
                await bot.kill()

    found = Findings()
    for person in people:
        check_sends(api, person, kills, found)
        check_living_message(api, person, found)
    check_toasts(api, people, found)
    check_violations(api, found)
    check_database(api, database_url, people, found)
    elapsed = time.monotonic() - began
    kinds = Counter(k.kind.split(" ")[0] for k in kills)
    summary = (
        f"{replay}: {len(kills)} kills {dict(kinds)}, {sum(len(p.taps) for p in people)} presses "
        f"({sum(k.redelivered for k in kills)} redelivered after being handled) "
        f"in {elapsed:.1f} s (restarts {sum(k.restart for k in kills):.1f} s, chaos until "
        f"{kills[-1].when - began:.1f} s); repeats after a kill: {found.edit_repeats} edits "
        f"(not modified), {found.toast_repeats} button answers (too old), {found.probes} probe "
        "misses, "
        f"{len(found.send_repeats)} sends; lost sends found by the probe: "
        f"{bot.logs().count('had reached Telegram already')}"
    )
    print(summary, *found.send_repeats, sep="\n  ")
    assert not found.errors, summary + "\n" + "\n".join(found.errors)
    assert "Traceback" not in bot.logs(), replay


# --- the hold itself, and the window no outbox can close -----------------------------------------


async def test_a_held_request_is_applied_on_release_and_never_when_its_client_dies() -> None:
    async with BotApiStub() as api, aiohttp.ClientSession() as http:
        api.feed_message(1, "/start")
        api.feed_message(2, "/start")
        url = f"{api.base_url}{api.token}/sendMessage"

        async def send(chat: int, text: str) -> int:
            async with http.post(url, json={"chat_id": chat, "text": text}) as response:
                return response.status

        hold = api.hold_next("sendMessage", chat_id=1)
        assert await send(2, "another chat") == 200  # not held
        dying = asyncio.create_task(send(1, "never shown"))
        call = await api.wait_for_hold(hold)
        assert call.held and call.status is None and api.messages(1) == []
        dying.cancel()  # the client goes away, as a killed bot does
        await api.wait_for_call("sendMessage", lambda c: c.status == 499)
        assert api.messages(1) == []

        hold = api.hold_next("sendMessage", "editMessageText")
        waiting = asyncio.create_task(send(1, "shown once released"))
        await api.wait_for_hold(hold)
        assert api.messages(1) == []
        hold.release()
        assert await waiting == 200
        assert [m.text for m in api.messages(1)] == ["shown once released"]

        hold = api.hold_next("sendMessage", chat_id=1, after_applying=True)
        dying = asyncio.create_task(send(1, "applied, never acknowledged"))
        await api.wait_for_hold(hold)
        assert api.messages(1)[-1].text == "applied, never acknowledged"
        dying.cancel()
        await api.wait_for_call("sendMessage", lambda c: c.status == 499)
    assert api.violations == [] and api.internal_errors == []


async def start_while_the_intro_is_held(
    api: BotApiStub, chat: int, *, after_applying: bool
) -> tuple[Hold, Call]:
    """/start: the introduction is sent (the check's one message from then on), and Telegram's
    answer to the bot is held, `after_applying` it or before."""
    hold = api.hold_next("sendMessage", chat_id=chat, after_applying=after_applying)
    api.feed_message(chat, "/start")
    return hold, await api.wait_for_hold(hold)


async def restart_and_see_the_queue_worked(api: BotApiStub, bot: BotProcess, chat: int) -> None:
    """Start the bot again and stop it once /help is answered: rows of one chat go out in
    order, so by then whatever was queued before has been worked."""
    mark = api.mark()
    await bot.start()
    api.feed_message(chat, "/help")
    await api.wait_for_message(
        chat, lambda m: (m.plain_text or "").startswith("What I do"), after=mark
    )
    assert await bot.terminate() == 0


async def test_a_send_applied_but_not_acknowledged_shows_once(tmp_path: Path) -> None:
    chat = FIRST_CHAT
    async with BotApiStub() as api:
        bot = BotProcess(api, tmp_path, f"sqlite:///{tmp_path / 'nightlegs.db'}")
        try:
            await bot.start()
            # Telegram shows the introduction, and the bot is killed before it hears so.
            _hold, held = await start_while_the_intro_is_held(api, chat, after_applying=True)
            await bot.kill()
            await restart_and_see_the_queue_worked(api, bot, chat)
        finally:
            if bot.process is not None and bot.process.returncode is None:
                await bot.kill()
    intros = [m for m in api.messages(chat) if kind_of(m) == "intro"]
    assert len(intros) == 1, api.transcript(chat)
    [lost] = intros
    probe = api.calls_of("editMessageText")[-1]
    assert probe.index > held.index and probe.params["message_id"] == lost.message_id
    assert NOT_MODIFIED in (probe.description or ""), "found by the probe, not sent again"
    store = Store.open(f"sqlite:///{tmp_path / 'nightlegs.db'}")
    try:
        with store.engine.connect() as connection:
            recorded = connection.scalars(
                select(OutboxMessage.message_id).where(
                    OutboxMessage.chat_id == chat, OutboxMessage.kind == "send"
                )
            ).all()
    finally:
        store.dispose()
    assert lost.message_id in recorded, "the row is recorded with the lost send's id"


async def test_a_graceful_stop_lets_a_send_in_flight_finish(tmp_path: Path) -> None:
    chat = FIRST_CHAT
    async with BotApiStub() as api:
        bot = BotProcess(api, tmp_path, f"sqlite:///{tmp_path / 'nightlegs.db'}")
        try:
            await bot.start()
            # The introduction is on its way to Telegram; the answer is pending.
            hold, held = await start_while_the_intro_is_held(api, chat, after_applying=False)
            stopping = asyncio.create_task(bot.terminate())
            # A bot that drains keeps waiting for the answer; one that cancels hangs up (499).
            with contextlib.suppress(TimeoutError):
                await api.wait_for_call(
                    "sendMessage", lambda c: c is held and c.status == 499, timeout=3
                )
            hold.release()
            assert await stopping == 0
            await restart_and_see_the_queue_worked(api, bot, chat)
        finally:
            if bot.process is not None and bot.process.returncode is None:
                await bot.kill()
    intros = [m for m in api.messages(chat) if kind_of(m) == "intro"]
    assert len(intros) == 1, api.transcript(chat)
