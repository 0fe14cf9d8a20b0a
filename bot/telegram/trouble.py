"""Database faults, told once: a full disk or a database that cannot be reached.

While the database is away or its disk is full every update fails and comes again (a second
later when polling, at once by webhook), and every delivery fails until the sweep retries it.
A traceback for each would bury the one thing an operator needs to read. So the first failure
of a kind writes one line naming it (no traceback, no message text), repeats go to DEBUG, and
the first success afterwards says the database works again. Other errors are not this
module's: callers log them as before.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

logger = logging.getLogger(__name__)

FULL = "full"
AWAY = "away"

_FULL_WORDS = ("database or disk is full", "no space left on device", "disk full", "diskfull")
_SAID = {
    FULL: "the database's disk is full: nothing new can be saved, so updates are not "
    "confirmed (Telegram sends them again) and replies wait in the outbox; free some space",
    AWAY: "the database is unreachable or refuses work (%s): updates are not confirmed "
    "(Telegram sends them again) and replies wait in the outbox until it is back",
}


def kind(exc: BaseException) -> str | None:
    """FULL or AWAY for a database fault of that kind (the cause chain is searched), else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current).lower()
        if any(word in text for word in _FULL_WORDS) or type(current).__name__ == "DiskFull":
            return FULL
        if isinstance(current, OperationalError | InterfaceError) or (
            isinstance(current, DBAPIError) and current.connection_invalidated
        ):
            return AWAY
        current = current.__cause__ or current.__context__
    return None


class Trouble:
    """The database's state as this process last saw it; one line when it changes."""

    def __init__(self) -> None:
        self.now: str | None = None
        self.since = 0.0
        """When the current trouble was first seen (monotonic)."""

    def failed(self, exc: BaseException) -> bool:
        """Tell a database fault once; False (nothing logged) for any other error."""
        found = kind(exc)
        if found is None:
            return False
        if found != self.now:
            self.now, self.since = found, time.monotonic()
            logger.error(_SAID[found].replace("%s", type(exc).__name__))
        else:
            logger.debug("database still %s (%s)", found, type(exc).__name__)
        return True

    def worked(self, began: float) -> None:
        """Work begun at `began` (monotonic) committed: say so once if the database was in
        trouble. Work begun before the trouble was seen proves nothing (it may have committed
        just before)."""
        if self.now is not None and began > self.since:
            was, self.now = self.now, None
            logger.warning("the database works again (it was %s)", was)


TROUBLE = Trouble()
"""One per process: the lanes and the sender report to the same."""
