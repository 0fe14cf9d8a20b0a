"""A clock for time-dependent code under test: moved by the test, never slept on."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo


class Clock:
    """Injected wherever the code asks for "now" (`clock=`)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def at(self, zone: ZoneInfo, *args: int) -> None:
        """Set "now" to a wall-clock moment in `zone`: `at(BERLIN, 2026, 11, 20, 21, 30)`."""
        self.now = datetime(*args, tzinfo=zone).astimezone(UTC)  # type: ignore[misc]
