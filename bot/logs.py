"""Logging set-up that keeps secrets and people's words out of every log line.

The bot token sits in every Bot API URL, which `httpx` logs at INFO and PTB at DEBUG; PTB's
DEBUG lines also carry message texts. So those loggers never go below INFO/WARNING, and a
formatter blanks the token out of whatever is written, tracebacks included.

`LOG_FORMAT=json` writes one JSON object per line instead of text (for a log shipper), with
the same level limits and the same redaction: each field is redacted before it is encoded.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

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
        return self.redact(super().format(record))

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text


class JsonFormatter(RedactingFormatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, and the
    traceback as `exc` when there is one. Secrets are redacted in each field."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__("%(message)s", secrets)

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": self.redact(record.getMessage()),
        }
        if record.exc_info:
            entry["exc"] = self.redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exc"] = self.redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = self.redact(self.formatStack(record.stack_info))
        # Redact the encoded line too: a secret split by escaping is still caught whole.
        return self.redact(json.dumps(entry, ensure_ascii=False))


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str, *, secrets: Iterable[str] = (), fmt: str = "text") -> None:
    """Log to stderr at `level` as text or JSON lines (`fmt`), with secrets redacted and
    chatty libraries held back."""
    handler = logging.StreamHandler(sys.stderr)
    secrets = list(secrets)
    formatter: logging.Formatter
    if fmt == "json":
        formatter = JsonFormatter(secrets)
    else:
        formatter = RedactingFormatter(TEXT_FORMAT, secrets)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    wanted = logging.getLevelName(level)
    for name, floor in CLAMPED.items():
        logging.getLogger(name).setLevel(max(floor, wanted))
