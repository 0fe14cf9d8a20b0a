"""Wiring shared by every adapter: settings in, store + flow + advice + service out."""

from __future__ import annotations

from dataclasses import dataclass

from bot.service import Clock, TriageService, utc_now
from bot.settings import Settings
from dialogs.advice import AdviceBook
from dialogs.engine import Flow
from storage import Store


@dataclass(frozen=True)
class Core:
    store: Store
    flow: Flow
    advice: AdviceBook
    service: TriageService


def build_core(settings: Settings, *, clock: Clock = utc_now) -> Core:
    """Load and validate content, open (and migrate) the database."""
    flow = Flow.load("triage")
    advice = AdviceBook.load()
    store = Store.open(settings.database_url, clock=clock)
    return Core(store, flow, advice, TriageService(store, flow, advice, clock=clock))
