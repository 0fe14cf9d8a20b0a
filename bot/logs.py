"""Logging set-up that keeps secrets and people's words out of every log line.

The bot token sits in every Bot API URL, which `httpx` logs at INFO and PTB at DEBUG; PTB's
DEBUG lines also carry message texts. So those loggers never go below INFO/WARNING, and a
formatter blanks the token out of whatever is written, tracebacks included.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

REDACTED = "[redacted]"
# Loggers whose lower levels carry request URLs (with the token) or message texts.
CLAMPED = {
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "telegram": logging.INFO,
    "alembic": logging.WARNING,
    "transitions": logging.WARNING,
    "apscheduler": logging.INFO,
}


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then replaces every secret in the finished line."""

    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__(fmt)
        # The whole token, and its secret half on its own (it may be logged split).
        parts: set[str] = set()
        for secret in secrets:
            if secret:
                parts.add(secret)
                parts.update(p for p in secret.split(":")[1:] if len(p) >= 8)
        self.secrets = sorted(parts, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text


def configure_logging(level: str, *, secrets: Iterable[str] = ()) -> None:
    """Log to stderr at `level`, with secrets redacted and chatty libraries held back."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    wanted = logging.getLevelName(level)
    for name, floor in CLAMPED.items():
        logging.getLogger(name).setLevel(max(floor, wanted))
