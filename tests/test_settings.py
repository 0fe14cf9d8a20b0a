"""Settings come from arguments, the environment and `.env`, in that order, and a malformed
one stops the bot with one line that names it and never echoes a secret."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bot.settings import CHECKS, Settings, SettingsError, load_settings

TOKEN = "123456:" + "A" * 35


def test_every_setting_has_a_check() -> None:
    assert set(CHECKS) == {f.name for f in dataclasses.fields(Settings)}


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CHECKS:
        monkeypatch.delenv(name.upper(), raising=False)
    settings = load_settings(_env_file=None)
    assert settings.telegram_bot_token is None
    assert settings.database_url == "sqlite:///data/nightlegs.db"
    assert settings.api_root == "https://api.telegram.org"
    assert settings.log_level == "INFO" and settings.transcript_retention_days is None
    assert settings.instance_name  # the host's name


def test_arguments_over_environment_over_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        f"TELEGRAM_BOT_TOKEN={TOKEN}\nlog_level=debug\nDATABASE_URL=sqlite:///from-file.db\n"
        "TRANSCRIPT_RETENTION_DAYS=30\nSOMETHING_ELSE=ignored\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("DATABASE_URL", "sqlite:///from-env.db")
    monkeypatch.setenv("log_level", "warning")
    settings = load_settings(_env_file=env_file, transcript_retention_days=7)
    assert settings.telegram_bot_token is not None
    assert settings.telegram_bot_token.get_secret_value() == TOKEN
    assert settings.database_url == "sqlite:///from-env.db"
    assert settings.log_level == "WARNING"
    assert settings.transcript_retention_days == 7


def test_the_token_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    settings = load_settings(_env_file=None, telegram_bot_token=TOKEN)
    assert TOKEN not in repr(settings) and TOKEN not in str(dataclasses.asdict(settings))
    typo = TOKEN.replace(":", ";")
    with pytest.raises(SettingsError, match="TELEGRAM_BOT_TOKEN does not look like") as refused:
        load_settings(_env_file=None, telegram_bot_token=typo)
    assert typo not in str(refused.value)


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"database_url": "not a url"}, "DATABASE_URL is not a SQLAlchemy database URL"),
        ({"log_level": "loud"}, "LOG_LEVEL must be one of DEBUG, INFO"),
        ({"transcript_retention_days": "0"}, "TRANSCRIPT_RETENTION_DAYS must be a whole number"),
        ({"transcript_retention_days": "a week"}, "TRANSCRIPT_RETENTION_DAYS must be"),
        ({"telegram_api_url": "ftp://example.test"}, "TELEGRAM_API_URL must be an http"),
        ({"instance_name": "x" * 65}, "INSTANCE_NAME must be at most 64"),
        ({"transcript_retention_days": "²"}, "TRANSCRIPT_RETENTION_DAYS must be a whole"),
        ({"webhook_listen": "0.0.0.0:²"}, "WEBHOOK_LISTEN must be host:port"),
    ],
)
def test_malformed_settings_are_named(settings: dict[str, str], says: str) -> None:
    with pytest.raises(SettingsError, match=says):
        load_settings(_env_file=None, **settings)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(_env_file=None, log_level="loud", transcript_retention_days="-1")
    assert "LOG_LEVEL" in str(refused.value) and "TRANSCRIPT_RETENTION_DAYS" in str(refused.value)


def test_blank_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    settings = load_settings(
        _env_file=None, telegram_bot_token=" ", transcript_retention_days="", instance_name=" "
    )
    assert settings.telegram_bot_token is None and settings.transcript_retention_days is None
    assert settings.instance_name.strip()


def test_an_unknown_argument_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="telegram_token"):
        load_settings(_env_file=None, telegram_token=TOKEN)


def test_a_bad_database_url_never_shows_its_password() -> None:
    with pytest.raises(SettingsError, match="DATABASE_URL is not a SQLAlchemy") as refused:
        load_settings(_env_file=None, database_url="postgresql://bot:p@ss:Hunter2word@db/night")
    assert "Hunter2" not in str(refused.value)


def test_an_argument_of_none_means_the_default_whatever_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRANSCRIPT_RETENTION_DAYS", "5")
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    settings = load_settings(_env_file=None, transcript_retention_days=None, log_level=None)
    assert settings.transcript_retention_days is None and settings.log_level == "INFO"
