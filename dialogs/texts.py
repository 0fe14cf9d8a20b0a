"""Everything a person reads, in their language: one `Texts` per language, built once.

Decisions never see a language: the engine and rules run on ids over the English flows, so
a check gives the same urgency, pattern and red flags in every language. Adapters turn what
the engine returns into a person's language here (`localize`), just before showing it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache

from dialogs.advice import AdviceBook
from dialogs.chat import ChatBook, chat_book
from dialogs.content import FlowContent, Question, load_flow
from dialogs.engine import Prompt, Step
from dialogs.followups import FollowUpBook
from dialogs.i18n import LANGUAGES, SOURCE, country_name
from dialogs.words import Words, words

FLOWS = ("triage", "diary")


@dataclass(frozen=True)
class Texts:
    """One language's flows, advice, follow-ups and the words around them."""

    lang: str
    flows: dict[str, FlowContent]
    advice: AdviceBook
    followups: FollowUpBook
    chat: ChatBook
    screens: Words
    checkins: Words
    terminal: Words
    documents: Words

    def flow(self, name: str) -> FlowContent:
        return self.flows[name]

    def question(self, flow: str, question_id: str) -> Question:
        found = self.flows[flow].question(question_id)
        if found is None:
            raise KeyError(f"{flow}: no question {question_id!r}")
        return found

    def localize(self, flow: str, step: Step) -> Step:
        """The engine's step with its question in this language (an outcome is all ids).
        Only the options the engine offered stay, in its order: some are offered only when
        they apply to this person."""
        if not isinstance(step, Prompt):
            return step
        whole = self.question(flow, step.question.id)
        by_id = {o.id: o for o in whole.options}
        options = tuple(by_id[o.id] for o in step.question.options)
        return replace(step, question=replace(whole, options=options))

    def country(self, code: str) -> str:
        return country_name(code, self.lang)


@cache
def texts(lang: str = SOURCE) -> Texts:
    """A language's texts, loaded and checked once (an unknown language: English)."""
    lang = lang if lang in LANGUAGES else SOURCE
    return Texts(
        lang=lang,
        flows={name: load_flow(name, lang=lang) for name in FLOWS},
        advice=AdviceBook.load(lang=lang),
        followups=FollowUpBook.load(lang=lang),
        chat=chat_book(lang),
        screens=words("screens", lang),
        checkins=words("checkins", lang),
        terminal=words("terminal", lang),
        documents=words("documents", lang),
    )


__all__ = ["FLOWS", "Texts", "texts"]
