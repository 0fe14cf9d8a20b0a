"""What every storage module shares: the clock they are given, and the one lookup error."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class NotFound(LookupError):
    """A user or conversation id that is not in the database."""
