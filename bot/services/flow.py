"""The question-flow use cases every adapter shares: load, step the engine, save, in one
transaction. One `FlowService` runs the triage, another the diary check-in.

Adapters (terminal, Telegram) parse their input into an `Action`, call `FlowService.handle`
and render the `Reply`. The service keeps no state between calls: the database is the truth,
so a restarted process picks every conversation up where it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dialogs.advice import Advice, AdviceBook
from dialogs.chat import MAX_NOTE
from dialogs.engine import (
    AnswerError,
    Conversation,
    Flow,
    NothingTicked,
    Outcome,
    Prompt,
    StaleAnswer,
    Step,
)
from dialogs.i18n import SOURCE
from dialogs.records import CANCELLED, AnswerRecord, ConversationState
from dialogs.texts import FLOWS, texts
from storage import Repo, Store, UserInfo
from storage.export import export_user

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
NumberOf = Callable[..., str | None]
"""A country's emergency number or out-of-hours line: `(country)` in English, or
`(country, lang)` as that language writes it (`EmergencyNumbers.number`)."""


class Duplicate(Exception):
    """This update's effects were committed before (a redelivery): do nothing again."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Who:
    """Which person, on which channel ("telegram" with their chat id, "terminal" with a name)."""

    channel: str
    external_id: str


@dataclass(frozen=True)
class Start:
    """Begin a new check (an unfinished one is closed as cancelled)."""


@dataclass(frozen=True)
class Resume:
    """Show where the open check is, without changing it."""


@dataclass(frozen=True)
class Choose:
    option_id: str
    question_id: str | None = None
    conversation_id: int | None = None
    tick: bool | None = None


@dataclass(frozen=True)
class Done:
    question_id: str | None = None
    conversation_id: int | None = None


@dataclass(frozen=True)
class Text:
    """Typed text for a question that takes it (the diary's note)."""

    text: str
    conversation_id: int | None = None


@dataclass(frozen=True)
class Back:
    conversation_id: int | None = None


@dataclass(frozen=True)
class Cancel:
    conversation_id: int | None = None


Action = Start | Resume | Choose | Done | Text | Back | Cancel
FinishHook = Callable[[Repo, UserInfo, int, Conversation], None]


@dataclass(frozen=True)
class Reply:
    """What to show after an action.

    `step` is None when the person has no check open. `refused` says why an answer was not
    taken ("stale" button, "nothing_ticked" before Done, "invalid" answer, "no_open_check",
    "restarted" after a content change); the step is then the current one.
    """

    user: UserInfo
    conversation_id: int | None
    step: Step | None
    advice: Advice | None = None
    refused: str | None = None
    changed: bool = False
    answers: tuple[AnswerRecord, ...] = ()


class FlowService:
    def __init__(
        self,
        store: Store,
        flow: Flow,
        advice: AdviceBook,
        *,
        clock: Clock = utc_now,
        emergency_number: NumberOf = lambda _country, _lang=SOURCE: None,
        urgent_care: NumberOf = lambda _country, _lang=SOURCE: None,
        on_finish: FinishHook | None = None,
    ) -> None:
        self.store = store
        self.flow = flow
        self.advice = advice
        self.clock = clock
        self.emergency_number = emergency_number
        self.urgent_care = urgent_care
        """The country's out-of-hours line, named in urgent advice (spec v2 item 3)."""
        self.on_finish = on_finish
        """Runs in the same transaction when a conversation of this flow finishes."""

    @contextmanager
    def unit(self, update_id: int | None = None) -> Iterator[Repo]:
        """One transaction that also claims `update_id`; raises `Duplicate` on a redelivery."""
        with self.store.transaction() as repo:
            if update_id is not None and not repo.claim_update(update_id):
                raise Duplicate(update_id)
            yield repo

    def handle(
        self,
        who: Who,
        action: Action,
        *,
        said: str | None = None,
        meta: dict[str, object] | None = None,
        update_id: int | None = None,
    ) -> Reply:
        """Apply one action in one transaction; `said` is logged to the transcript with it."""
        with self.unit(update_id) as repo:
            user = repo.user(who.channel, who.external_id)
            reply = self._apply(repo, user, action)
            if said is not None:
                repo.add_message(
                    user.id, "in", said, conversation_id=reply.conversation_id, meta=meta
                )
            return reply

    def log_in(self, who: Who, text: str, *, conversation_id: int | None = None) -> None:
        """Add what the person typed to the transcript (only for people who consented)."""
        with self.store.transaction() as repo:
            user = repo.find_user(who.channel, who.external_id)
            if user is not None:
                repo.add_message(user.id, "in", text, conversation_id=conversation_id)

    def log_out(
        self,
        who: Who,
        text: str,
        *,
        conversation_id: int | None = None,
        meta: dict[str, object] | None = None,
    ) -> None:
        """Add a message the bot sent to the transcript (only for people who consented)."""
        with self.store.transaction() as repo:
            user = repo.find_user(who.channel, who.external_id)
            if user is not None:
                repo.add_message(user.id, "out", text, conversation_id=conversation_id, meta=meta)

    # --- the person's own data ------------------------------------------------------------------

    def flow_of(self, conversation_id: int) -> str | None:
        """Which flow a conversation (from a button) belongs to, or None if it is gone."""
        with self.store.transaction() as repo:
            return repo.flow_of(conversation_id)

    def find_user(self, who: Who) -> UserInfo | None:
        with self.store.transaction() as repo:
            return repo.find_user(who.channel, who.external_id)

    def consent(
        self, who: Who, *, language_code: str | None, update_id: int | None = None
    ) -> UserInfo:
        """Create the person's record; nothing about them is stored before this."""
        with self.unit(update_id) as repo:
            user = repo.user(who.channel, who.external_id)
            return repo.update_user(
                user.id, consent_at=user.consent_at or self.clock(), language_code=language_code
            )

    def set_language(
        self, who: Who, language: str | None, *, update_id: int | None = None
    ) -> UserInfo | None:
        """Store the language the person chose (None: follow their app's again)."""
        with self.unit(update_id) as repo:
            user = repo.find_user(who.channel, who.external_id)
            if user is None:
                return None
            return repo.update_user(user.id, language=language)

    def set_country(
        self, who: Who, country: str | None, *, update_id: int | None = None
    ) -> UserInfo | None:
        """Store the chosen country (None: not listed / skipped); it is not asked again."""
        with self.unit(update_id) as repo:
            user = repo.find_user(who.channel, who.external_id)
            if user is None:
                return None
            return repo.update_user(user.id, country=country, country_asked_at=self.clock())

    def export(self, who: Who) -> dict[str, Any] | None:
        """Everything stored about this person (and only them), or None if nothing is."""
        with self.store.transaction() as repo:
            user = repo.find_user(who.channel, who.external_id)
            if user is None:
                return None
            return export_user(repo, user.id, exported_at=self.clock())

    def delete(self, who: Who, *, update_id: int | None = None) -> bool:
        """Erase every row about this person, leaving no readable copy; False if nothing."""
        with self.unit(update_id) as repo:
            user = repo.find_user(who.channel, who.external_id)
            if user is None:
                return False
            repo.delete_user(user.id)
            repo.after_commit(self.store.erase_person_traces)
        return True

    # --- after a result: its one line, and the note for the doctor (spec v3 item 10) ------------

    def last_result(self, who: Who) -> tuple[int, Advice] | None:
        """The person's newest check if it ended with a result: (its id, the advice, with the
        numbers of their country as it is now). None if there is none or it was cancelled."""
        with self.store.transaction() as repo:
            user = repo.find_user(who.channel, who.external_id)
            found = None if user is None else repo.latest_conversation(user.id, self.flow.name)
            if user is None or found is None:
                return None
            conversation_id, state = found
            if not state.finished or state.state == CANCELLED or state.conclusion is None:
                return None
            emergency_number, urgent_care = self.numbers(user.country, user.lang)
            advice = self.advice_for(user).advise(
                state.conclusion,
                state.findings,
                emergency_number=emergency_number,
                urgent_care=urgent_care,
            )
            return conversation_id, advice

    def ask_note(self, who: Who, conversation_id: int) -> bool:
        """Wait for the person's note for the result of their check; False if it is not theirs
        or has no result."""
        with self.store.transaction() as repo:
            user = repo.find_user(who.channel, who.external_id)
            found = repo.load_conversation(conversation_id)
            if user is None or found is None or found[0] != user.id:
                return False
            if found[1].conclusion is None or found[1].flow != self.flow.name:
                return False
            repo.ask_note(conversation_id)
            return True

    def awaiting_note(self, who: Who) -> int | None:
        """The check whose note the next typed words are, if the bot asked for one."""
        with self.store.transaction() as repo:
            user = repo.find_user(who.channel, who.external_id)
            return None if user is None else repo.note_awaited(user.id, self.flow.name)

    def keep_note(self, who: Who, conversation_id: int, text: str) -> str | None:
        """Add the person's words to the note kept with their check's result; the words kept
        (None if the check is not theirs). A second note is added below the first."""
        words = " ".join(text.split())[:MAX_NOTE]
        with self.store.transaction() as repo:
            user = repo.find_user(who.channel, who.external_id)
            found = repo.load_conversation(conversation_id)
            if user is None or found is None or found[0] != user.id or not words:
                return None
            before = found[1].note
            note = f"{before}\n{words}" if before else words
            repo.set_note(conversation_id, note[: MAX_NOTE * 4])
            return words

    def skip_note(self, who: Who, conversation_id: int) -> bool:
        """No note (or no more): stop waiting; False if the check is not theirs."""
        with self.store.transaction() as repo:
            user = repo.find_user(who.channel, who.external_id)
            found = repo.load_conversation(conversation_id)
            if user is None or found is None or found[0] != user.id:
                return False
            repo.skip_note(conversation_id)
            return True

    def advice_for(self, user: UserInfo) -> AdviceBook:
        """The advice in the person's language (English: this service's own book)."""
        return self.advice if user.lang == SOURCE else texts(user.lang).advice

    def localize(self, user: UserInfo, step: Step) -> Step:
        """The engine's step with its question in the person's language. Decisions are made
        on the English flow, so every language gives the same result."""
        if user.lang == SOURCE or self.flow.name not in FLOWS:
            return step
        return texts(user.lang).localize(self.flow.name, step)

    def numbers(self, country: str | None, lang: str = SOURCE) -> tuple[str | None, str | None]:
        """The country's emergency number and out-of-hours line, as `lang` writes them."""
        if lang == SOURCE:
            return self.emergency_number(country), self.urgent_care(country)
        return self.emergency_number(country, lang), self.urgent_care(country, lang)

    def advise(self, user: UserInfo, outcome: Outcome) -> Advice | None:
        if outcome.conclusion is None:
            return None
        emergency_number, urgent_care = self.numbers(user.country, user.lang)
        return self.advice_for(user).advise(
            outcome.conclusion,
            outcome.findings,
            emergency_number=emergency_number,
            urgent_care=urgent_care,
        )

    # --- internals ----------------------------------------------------------------------------

    def _apply(self, repo: Repo, user: UserInfo, action: Action) -> Reply:
        now = self.clock()
        open_ = repo.open_conversation(user.id, self.flow.name)
        if isinstance(action, Start):
            if open_ is not None:
                old = self._restore(open_[1])
                if old is not None:
                    old.cancel(now)
                    repo.save_conversation(open_[0], old.snapshot())
            conversation = self.flow.start(now)
            conversation_id = repo.create_conversation(user.id, conversation.snapshot())
            return self._reply(user, conversation_id, conversation, changed=True)
        if open_ is None:
            return self._closed(repo, user, action)
        conversation_id, state = open_
        conversation = self._restore(state)
        if conversation is None:
            # Content changed under a stored conversation: close it rather than guess.
            state.state = CANCELLED
            state.finished_at = now
            repo.save_conversation(conversation_id, state)
            return Reply(user, None, None, refused="restarted")
        stale = getattr(action, "conversation_id", None)
        if stale is not None and stale != conversation_id:
            return self._reply(user, conversation_id, conversation, refused="stale")
        try:
            step = self._step(conversation, action, now)
        except AnswerError as exc:
            logger.debug("answer refused: %s", exc)
            reason = (
                "stale"
                if isinstance(exc, StaleAnswer)
                else "nothing_ticked"
                if isinstance(exc, NothingTicked)
                else "invalid"
            )
            return self._reply(user, conversation_id, conversation, refused=reason)
        changed = not isinstance(action, Resume)
        if changed:
            repo.save_conversation(conversation_id, conversation.snapshot())
            finished = conversation.finished and conversation.data.state != CANCELLED
            if finished and self.on_finish is not None:
                self.on_finish(repo, user, conversation_id, conversation)
        return self._reply(user, conversation_id, conversation, step=step, changed=changed)

    def _closed(self, repo: Repo, user: UserInfo, action: Action) -> Reply:
        """No check is open: a Back re-opens the last one; anything else is stale."""
        latest = repo.latest_conversation(user.id, self.flow.name)
        if isinstance(action, Back) and latest is not None:
            conversation_id, state = latest
            if action.conversation_id in (None, conversation_id) and state.state != CANCELLED:
                conversation = self._restore(state)
                if conversation is not None:
                    step = conversation.back()
                    repo.save_conversation(conversation_id, conversation.snapshot())
                    return self._reply(user, conversation_id, conversation, step=step, changed=True)
        if isinstance(action, Resume):
            return Reply(user, None, None)
        answers = tuple(latest[1].answers) if latest is not None else ()
        return Reply(user, None, None, refused="no_open_check", answers=answers)

    def _step(self, conversation: Conversation, action: Action, now: datetime) -> Step:
        match action:
            case Choose(option_id, question_id, _, tick):
                return conversation.choose(option_id, now, question_id=question_id, tick=tick)
            case Done(question_id, _):
                return conversation.done(now, question_id=question_id)
            case Text(text, _):
                return conversation.enter_text(text, now)
            case Back():
                return conversation.back()
            case Cancel():
                return conversation.cancel(now)
            case _:
                return conversation.step()

    def _restore(self, state: ConversationState) -> Conversation | None:
        try:
            return self.flow.restore(state)
        except AnswerError as exc:
            logger.warning("stored conversation no longer fits the flow: %s", exc)
            return None

    def _reply(
        self,
        user: UserInfo,
        conversation_id: int,
        conversation: Conversation,
        *,
        step: Step | None = None,
        refused: str | None = None,
        changed: bool = False,
    ) -> Reply:
        step = step if step is not None else conversation.step()
        advice = self.advise(user, step) if isinstance(step, Outcome) else None
        step = self.localize(user, step)
        answers = tuple(conversation.data.answers)
        return Reply(user, conversation_id, step, advice, refused, changed, answers)


__all__ = [
    "Action",
    "Back",
    "Cancel",
    "Choose",
    "Done",
    "Duplicate",
    "FlowService",
    "Prompt",
    "Reply",
    "Resume",
    "Start",
    "Text",
    "Who",
]
