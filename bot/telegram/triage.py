"""The triage in Telegram: /check, /back, /cancel, the result's "New check", and what to do
with typed words and other messages while a check is open."""

from __future__ import annotations

from html import escape

from bot.services.flow import Back, Cancel, Resume
from bot.telegram import render
from bot.telegram.conversation import Conversations
from bot.telegram.turn import Turn
from dialogs.chat import one_line
from dialogs.engine import Prompt
from dialogs.texts import texts
from storage import Repo


class Triage:
    def __init__(self, conversations: Conversations) -> None:
        self.conversations = conversations

    def on_check(self, turn: Turn, repo: Repo) -> None:
        if turn.require_consent(repo):
            self.conversations.start(turn, said="/check")

    def on_back(self, turn: Turn, repo: Repo) -> None:
        if turn.require_consent(repo):
            self.conversations.command(turn, Back(), "/back")

    def on_cancel(self, turn: Turn, repo: Repo) -> None:
        if turn.require_consent(repo):
            self.conversations.command(turn, Cancel(), "/cancel")

    def on_new(self, turn: Turn, repo: Repo) -> None:
        """A "New check" button. An old one never discards an open check: it shows where the
        person is (/check always starts afresh)."""
        triage = self.conversations.triage
        t = turn.texts(repo)
        reply = triage.handle(turn.who, Resume())
        if isinstance(reply.step, Prompt):
            turn.toast(render.notice("OPEN_CHECK", t))
            self.conversations.show(turn, reply, triage)
            return
        self.conversations.start(turn, said=t.screens.text("check", "said_new"))

    def on_resume(self, turn: Turn, repo: Repo) -> None:
        found = self.conversations.open_step(turn)
        if found is None:
            turn.say(render.said("NO_CHECK", turn.texts(repo)))
            return
        self.conversations.show(turn, found[1], found[0])

    def on_text(self, turn: Turn, repo: Repo, text: str) -> None:
        """Typed words that name no danger (spec v3 item 10), never brushed off: inside a
        question, a kind word above the question again; after a result, the result in one
        line and who can answer; with no check, what the bot does."""
        turn.log_in(repo, text)
        t = turn.texts(repo)
        book = t.chat
        found = self.conversations.open_step(turn)
        if found is not None:
            service, reply = found
            if service is not self.conversations.triage:  # a check-in: no note at its end
                turn.say(render.said("USE_BUTTONS", t))
                self.conversations.show(turn, reply, service)
                return
            lead = f"<i>{escape(book.text('typed', 'in_question'))}</i>"
            self.conversations.show(turn, reply, service, lead=lead)
            return
        result = self.conversations.triage.last_result(turn.who)
        if result is None:
            turn.say(render.typed_no_check(t))
            return
        conversation_id, advice = result
        info = turn.info(repo)
        line = self.conversations.numbers.urgent_care(info.country if info else None, t.lang)
        who = (
            book.text("typed", "who_with_line", line=line)
            if line
            else book.text("typed", "who_without_line")
        )
        turn.say(
            render.typed_after_result(one_line(advice), who, conversation_id, t),
            conversation_id=conversation_id,
        )

    # --- the note for the doctor (spec v3 item 10) -----------------------------------------

    def on_note(self, turn: Turn, repo: Repo, arg: str) -> None:
        """The note button under a result: ask for the person's words (or skip)."""
        service = self.conversations.triage
        t = turn.texts(repo)
        if not arg.isdigit() or not service.ask_note(turn.who, int(arg)):
            turn.toast(render.notice("EXPIRED", t))
            return
        turn.log_in(repo, t.chat.text("note", "button"))
        turn.say(render.note_prompt(int(arg), t), conversation_id=int(arg))

    def on_note_skip(self, turn: Turn, repo: Repo, arg: str) -> None:
        service = self.conversations.triage
        t = turn.texts(repo)
        if arg.isdigit() and service.awaiting_note(turn.who) != int(arg):
            turn.toast(render.notice("ALREADY", t))  # the note was given (or skipped) already
            return
        if not arg.isdigit() or not service.skip_note(turn.who, int(arg)):
            turn.toast(render.notice("EXPIRED", t))
            return
        book = t.chat
        turn.log_in(repo, book.text("note", "skip"))
        tapped = turn.tapped
        turn.edit(
            tapped.message_id if tapped else None,
            escape(book.text("note", "skipped")),
            log=book.text("note", "skipped"),
            conversation_id=int(arg),
        )

    def on_note_text(self, turn: Turn, repo: Repo, text: str) -> bool:
        """Words typed when the bot asked for the note: kept with the result; False if the
        bot was not waiting for a note."""
        service = self.conversations.triage
        conversation_id = service.awaiting_note(turn.who)
        if conversation_id is None:
            return False
        turn.log_in(repo, text)
        note = service.keep_note(turn.who, conversation_id, text)
        if note is None:
            return False
        saved = turn.texts(repo).chat.text("note", "saved", note=note)
        turn.say(escape(saved), conversation_id=conversation_id)
        return True

    def on_danger(self, turn: Turn, repo: Repo, text: str, flags: tuple[str, ...]) -> None:
        """Typed words that name an emergency sign: that sign's emergency advice at once
        (spec v2 item 5). Nothing about the open check changes; "go on" shows it again."""
        turn.log_in(repo, text)
        service = self.conversations.triage
        info = turn.info(repo)
        country = info.country if info is not None else None
        t = turn.texts(repo)
        emergency_number, urgent_care = service.numbers(country, t.lang)
        book = t.advice
        advice = book.advise_typed(
            flags, emergency_number=emergency_number, urgent_care=urgent_care
        )
        turn.say(render.typed_danger(advice, book.go_on_label, book.go_on_hint))

    def on_go_on(self, turn: Turn, repo: Repo) -> None:
        """ "That's not me, go on": back to where the person was, nothing lost."""
        tapped = turn.tapped
        if tapped is not None:  # the advice stays readable; its button goes
            turn.edit(tapped.message_id, render.Screen(tapped.text_html or "", None))
        found = self.conversations.open_step(turn)
        if found is None:
            turn.say(render.said("NO_CHECK", turn.texts(repo)))
            return
        self.conversations.show(turn, found[1], found[0])

    @staticmethod
    def on_unknown_command(turn: Turn, repo: Repo, text: str | None) -> None:
        turn.log_in(repo, text)
        t = turn.texts(repo)
        turn.say(f"{render.said('UNKNOWN_COMMAND', t)} {render.said('NO_CHECK', t)}")

    @staticmethod
    def on_other_message(turn: Turn, repo: Repo) -> None:
        """Stickers, photos, voice notes and the like."""
        turn.log_in(repo, turn.texts(repo).screens.text("transcript", "unreadable"))
        turn.say(render.said("NOT_TEXT", turn.texts(repo)))

    @staticmethod
    def on_edited(turn: Turn, repo: Repo) -> None:
        turn.say(render.said("EDITED", turn.texts(repo)))

    @staticmethod
    def on_group(turn: Turn) -> None:
        """Groups and channels: no health conversations there, and nothing stored (so the
        language is the sender's app's)."""
        turn.say(render.said("GROUP", texts(turn.app_lang)))
