"""Configuration, read once from the environment and `.env`; everything else gets plain values.

A dataclass and a dozen checks rather than pydantic-settings: the bot's whole memory budget
is 80 MB (issue 8), and pydantic with pydantic-settings costs about 9 MB of it at start for
nine settings. `.env` is read with python-dotenv, as pydantic-settings did.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from dotenv import dotenv_values
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

if TYPE_CHECKING:
    from storage.sealing import Keyring

TOKEN_SHAPE = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{20,}$")
WEBHOOK_SECRET_SHAPE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
"""What Telegram accepts as setWebhook's `secret_token`: 1-256 of A-Z, a-z, 0-9, _ and -."""
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
MAX_INSTANCE_NAME = 64


class SettingsError(ValueError):
    """A setting is malformed; the message is one line naming it."""


class Secret:
    """A value that never shows in a repr, a log line or an error message."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    telegram_bot_token: Secret | None = None
    telegram_api_url: str = "https://api.telegram.org"
    database_url: str = "sqlite:///data/nightlegs.db"
    log_level: str = "INFO"
    transcript_retention_days: int | None = None
    webhook_url: str | None = None
    """Set: webhook mode (Telegram posts updates to this HTTPS URL); empty: long polling."""
    webhook_secret: Secret | None = None
    webhook_listen: str = "0.0.0.0:8080"
    instance_name: str = field(default_factory=socket.gethostname)
    """Names this process among several on one database (default: the host's name). A
    restarted process with the same name at once takes over what it was sending when it
    stopped; two processes running at the same time need different names."""
    metrics_listen: str | None = None
    """`host:port` of a server answering GET /metrics (polling mode; a webhook server answers
    /metrics itself); empty: off."""
    log_format: str = "text"
    """Either "text" (one readable line per record) or "json" (one JSON object per line)."""
    master_key: Secret | None = None
    """The master key (32 bytes, base64) that wraps each person's data key; never logged."""
    master_key_file: Path | None = None
    """Used when MASTER_KEY is empty: a file holding the key, created (mode 600) on first run.
    Default: `master.key` next to a SQLite database, `data/master.key` for PostgreSQL."""

    def keyring(self) -> Keyring:
        """The master key from MASTER_KEY, else from the key file (made on first run)."""
        from storage.sealing import (  # noqa: PLC0415
            Keyring,
            MasterKey,
            default_key_file,
        )

        if self.master_key is not None:
            return Keyring(MasterKey.from_base64(self.master_key.get_secret_value()))
        path = self.master_key_file or default_key_file(self.database_url)
        return Keyring(MasterKey.generate() if path is None else MasterKey.from_file(path))

    @property
    def api_root(self) -> str:
        """Bot API root without a trailing slash: requests go to `<root>/bot<token>/<method>`."""
        return self.telegram_api_url.rstrip("/")

    @property
    def webhook_path(self) -> str:
        """The path Telegram posts to: the path of WEBHOOK_URL (decoded), "/" when it has none."""
        assert self.webhook_url is not None
        return unquote(urlsplit(self.webhook_url).path or "/")

    @property
    def webhook_address(self) -> tuple[str, int]:
        """WEBHOOK_LISTEN as (host, port); port 0 picks a free one."""
        return _host_port(self.webhook_listen)

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """METRICS_LISTEN as (host, port), or None when metrics have no server of their own."""
        return None if self.metrics_listen is None else _host_port(self.metrics_listen)


# --- checks: each takes the raw text and returns the value, or raises ValueError -----------


def _blank(raw: str) -> bool:
    return not raw.strip()


def _token(raw: str) -> Secret | None:
    if _blank(raw):
        return None
    if not TOKEN_SHAPE.match(raw.strip()):
        # Never echo the value: it may be a real token with a typo.
        raise ValueError("does not look like a bot token from @BotFather (digits:letters)")
    return Secret(raw.strip())


def _http_url(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    return raw.strip()


def _database_url(raw: str) -> str:
    try:
        make_url(raw.strip())
    except (ArgumentError, ValueError) as exc:  # ValueError: a bad port; never echo the URL
        raise ValueError(
            "is not a SQLAlchemy database URL (e.g. sqlite:///data/nightlegs.db)"
        ) from exc
    return raw.strip()


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError("must be one of " + ", ".join(LOG_LEVELS))
    return level


def _retention(raw: str) -> int | None:
    if _blank(raw):
        return None
    try:
        days = int(raw.strip())
    except ValueError:
        days = 0
    if days < 1:
        raise ValueError("must be a whole number of days, 1 or more (or empty: keep)")
    return days


def _webhook_url(raw: str) -> str | None:
    if _blank(raw):
        return None
    url = _http_url(raw)
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise ValueError("must be an https:// URL (Telegram posts only to HTTPS)")
    path = unquote(parts.path or "/")
    if path in (HEALTH_PATH, METRICS_PATH) or "{" in path or "}" in path:
        raise ValueError(
            f"needs a path of its own (not {HEALTH_PATH} or {METRICS_PATH}, no braces)"
        )
    return url


def _webhook_secret(raw: str) -> Secret | None:
    if _blank(raw):
        return None
    if not WEBHOOK_SECRET_SHAPE.match(raw):
        # Never echo the value.
        raise ValueError("must be 1-256 characters, each A-Z, a-z, 0-9, _ or -")
    return Secret(raw)


def _webhook_listen(raw: str) -> str:
    _host_port(raw)
    return raw.strip()


def _metrics_listen(raw: str) -> str | None:
    if _blank(raw):
        return None
    _host_port(raw)
    return raw.strip()


def _log_format(raw: str) -> str:
    fmt = raw.strip().lower() or "text"
    if fmt not in LOG_FORMATS:
        raise ValueError("must be one of " + ", ".join(LOG_FORMATS))
    return fmt


def _master_key(raw: str) -> Secret | None:
    if _blank(raw):
        return None
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except binascii.Error:
        raise ValueError("must be base64 (e.g. from: openssl rand -base64 32)") from None
    if len(key) != 32:
        raise ValueError("must be 32 bytes in base64 (e.g. from: openssl rand -base64 32)")
    return Secret(raw.strip())


def _master_key_file(raw: str) -> Path | None:
    return None if _blank(raw) else Path(raw.strip())


def _instance_name(raw: str) -> str:
    name = raw.strip() or socket.gethostname()
    if len(name) > MAX_INSTANCE_NAME:
        raise ValueError(f"must be at most {MAX_INSTANCE_NAME} characters")
    return name


CHECKS: dict[str, Callable[[str], Any]] = {
    "telegram_bot_token": _token,
    "telegram_api_url": _http_url,
    "database_url": _database_url,
    "log_level": _log_level,
    "transcript_retention_days": _retention,
    "webhook_url": _webhook_url,
    "webhook_secret": _webhook_secret,
    "webhook_listen": _webhook_listen,
    "instance_name": _instance_name,
    "metrics_listen": _metrics_listen,
    "log_format": _log_format,
    "master_key": _master_key,
    "master_key_file": _master_key_file,
}


def _host_port(value: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` (all addresses) as (host, port)."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError("must be host:port, e.g. 0.0.0.0:8080 or [::]:8080")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("must put an IPv6 address in brackets, e.g. [::1]:8080")
    return host or "0.0.0.0", int(port)


def _raw_values(env_file: str | Path | None, overrides: Mapping[str, object]) -> dict[str, str]:
    """Each setting's text: arguments over the environment over `.env` (names in any case)."""
    raw: dict[str, str] = {}
    sources: list[Mapping[str, str | None]] = []
    if env_file is not None and Path(env_file).is_file():
        sources.append(dotenv_values(env_file, encoding="utf-8"))
    sources.append(os.environ)
    for source in sources:
        for name, value in source.items():
            if name.lower() in CHECKS and value is not None:
                raw[name.lower()] = value
    for name, value in overrides.items():
        if name not in CHECKS:
            raise TypeError(f"unknown setting {name!r}")
        if value is None:  # an argument of None: the default, whatever the environment says
            raw.pop(name, None)
        else:
            raw[name] = value.get_secret_value() if isinstance(value, Secret) else str(value)
    return raw


def load_settings(_env_file: str | Path | None = ".env", **overrides: object) -> Settings:
    """Read settings, turning every malformed one into one readable `SettingsError` line."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name, raw in _raw_values(_env_file, overrides).items():
        try:
            values[name] = CHECKS[name](raw)
        except ValueError as exc:
            problems.append(f"{name.upper()} {exc}")
    url, secret = values.get("webhook_url"), values.get("webhook_secret")
    if url is not None and secret is None and not any("WEBHOOK_SECRET" in p for p in problems):
        problems.append(
            "WEBHOOK_SECRET is required when WEBHOOK_URL is set: Telegram sends it with "
            "every update, and requests without it are refused "
            "(1-256 characters, each A-Z, a-z, 0-9, _ or -)"
        )
    if problems:
        raise SettingsError("invalid setting: " + "; ".join(problems))
    return Settings(**values)
