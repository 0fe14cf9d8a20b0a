"""Wiring shared by every adapter: settings in, store + flow + advice + service out."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from bot.services.diary import DiaryService
from bot.services.flow import Clock, FlowService, utc_now
from bot.services.followups import FollowUpService
from bot.settings import Settings
from dialogs.advice import AdviceBook
from dialogs.countries import EmergencyNumbers
from dialogs.engine import Flow
from dialogs.followups import FollowUpBook
from storage import Store, make_engine
from storage.db import at_head


def migrate_apart(url: str, settings: Settings | None = None) -> None:
    """Bring the schema to head in a child process, so a long-running bot never loads
    alembic; nothing to do (and no child) when it is already there. The child gets the
    master key setting too: an upgrade may seal rows written before sealing (0010)."""
    engine = make_engine(url)
    try:
        if at_head(engine):
            return
    finally:
        engine.dispose()
    env = {**os.environ, "DATABASE_URL": url}
    if settings is not None and settings.master_key is not None:
        env["MASTER_KEY"] = settings.master_key.get_secret_value()
    elif settings is not None and settings.master_key_file is not None:
        env["MASTER_KEY_FILE"] = str(settings.master_key_file)
    subprocess.run([sys.executable, "-m", "storage", "migrate"], env=env, check=True)


@dataclass(frozen=True)
class Core:
    store: Store
    flow: Flow
    advice: AdviceBook
    numbers: EmergencyNumbers
    service: FlowService
    diary: DiaryService
    followups: FollowUpService


def build_core(settings: Settings, *, clock: Clock = utc_now) -> Core:
    """Load and validate content, open (and migrate) the database."""
    flow = Flow.load("triage")
    advice = AdviceBook.load()
    numbers = EmergencyNumbers.load()
    store = Store.open(settings.database_url, clock=clock, keyring=settings.keyring())
    service = FlowService(
        store,
        flow,
        advice,
        clock=clock,
        emergency_number=numbers.number,
        urgent_care=numbers.urgent_care,
    )
    diary = DiaryService(
        store,
        Flow.load("diary"),
        advice,
        clock=clock,
        emergency_number=numbers.number,
        urgent_care=numbers.urgent_care,
    )
    followups = FollowUpService(
        store,
        FollowUpBook.load(),
        advice,
        clock=clock,
        zones=numbers.zones,
        emergency_number=numbers.number,
        urgent_care=numbers.urgent_care,
    )
    return Core(store, flow, advice, numbers, service, diary, followups)
