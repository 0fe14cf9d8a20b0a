"""Configuration, read once from the environment and `.env`; everything else gets plain values."""

from __future__ import annotations

import re
import socket
from typing import Literal, Self
from urllib.parse import unquote

from pydantic import (
    AnyHttpUrl,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

TOKEN_SHAPE = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{20,}$")
WEBHOOK_SECRET_SHAPE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
"""What Telegram accepts as setWebhook's `secret_token`: 1-256 of A-Z, a-z, 0-9, _ and -."""
HEALTH_PATH = "/healthz"


class SettingsError(ValueError):
    """A setting is malformed; the message is one line naming it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    telegram_bot_token: SecretStr | None = None
    telegram_api_url: AnyHttpUrl = Field(default=AnyHttpUrl("https://api.telegram.org"))
    database_url: str = "sqlite:///data/nightlegs.db"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    transcript_retention_days: int | None = Field(default=None, ge=1)
    webhook_url: AnyHttpUrl | None = None
    """Set: webhook mode (Telegram posts updates to this HTTPS URL); empty: long polling."""
    webhook_secret: SecretStr | None = None
    webhook_listen: str = "0.0.0.0:8080"
    instance_name: str = Field(default_factory=socket.gethostname, min_length=1, max_length=64)
    """Names this process among several on one database (default: the host's name). A
    restarted process with the same name at once takes over what it was sending when it
    stopped; two processes running at the same time need different names."""

    @field_validator("instance_name", mode="before")
    @classmethod
    def _blank_is_the_host(cls, value: object) -> object:
        return socket.gethostname() if isinstance(value, str) and not value.strip() else value

    @field_validator("transcript_retention_days", "webhook_url", mode="before")
    @classmethod
    def _blank_is_off(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: AnyHttpUrl | None) -> AnyHttpUrl | None:
        if value is None:
            return None
        if value.scheme != "https":
            raise ValueError("must be an https:// URL (Telegram posts only to HTTPS)")
        path = unquote(value.path or "/")
        if path == HEALTH_PATH or "{" in path or "}" in path:
            raise ValueError(f"needs a path of its own (not {HEALTH_PATH}, no braces)")
        return value

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _webhook_secret(cls, value: object) -> object:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        if not isinstance(raw, str) or not WEBHOOK_SECRET_SHAPE.match(raw):
            # Never echo the value.
            raise ValueError("must be 1-256 characters, each A-Z, a-z, 0-9, _ or -")
        return raw

    @field_validator("webhook_listen")
    @classmethod
    def _webhook_listen(cls, value: str) -> str:
        _host_port(value)
        return value.strip()

    @model_validator(mode="after")
    def _webhook_needs_a_secret(self) -> Self:
        if self.webhook_url is not None and self.webhook_secret is None:
            raise ValueError(
                "WEBHOOK_SECRET is required when WEBHOOK_URL is set: Telegram sends it with "
                "every update, and requests without it are refused "
                "(1-256 characters, each A-Z, a-z, 0-9, _ or -)"
            )
        return self

    @field_validator("telegram_bot_token", mode="before")
    @classmethod
    def _token_shape(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str) or not TOKEN_SHAPE.match(value.strip()):
            # Never echo the value: it may be a real token with a typo.
            raise ValueError("does not look like a bot token from @BotFather (digits:letters)")
        return value.strip()

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        try:
            make_url(value)
        except ArgumentError as exc:
            raise ValueError(
                "is not a SQLAlchemy database URL (e.g. sqlite:///data/nightlegs.db)"
            ) from exc
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @property
    def api_root(self) -> str:
        """Bot API root without a trailing slash: requests go to `<root>/bot<token>/<method>`."""
        return str(self.telegram_api_url).rstrip("/")

    @property
    def webhook_path(self) -> str:
        """The path Telegram posts to: the path of WEBHOOK_URL (decoded), "/" when it has none."""
        assert self.webhook_url is not None
        return unquote(self.webhook_url.path or "/")

    @property
    def webhook_address(self) -> tuple[str, int]:
        """WEBHOOK_LISTEN as (host, port); port 0 picks a free one."""
        return _host_port(self.webhook_listen)


def _host_port(value: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` (all addresses) as (host, port)."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError("must be host:port, e.g. 0.0.0.0:8080 or [::]:8080")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("must put an IPv6 address in brackets, e.g. [::1]:8080")
    return host or "0.0.0.0", int(port)


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning validation errors into one readable `SettingsError` line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            message = str(error["msg"]).removeprefix("Value error, ")
            name = str(error["loc"][0]).upper() if error["loc"] else ""
            problems.append(f"{name} {message}" if name else message)
        raise SettingsError("invalid setting: " + "; ".join(problems)) from None
