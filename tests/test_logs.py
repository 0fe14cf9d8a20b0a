"""Logs, as text and as JSON lines (`LOG_FORMAT`): the token is redacted from every line,
tracebacks included, and the libraries whose low levels carry message texts or the token are
held back, whatever the format."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from bot.logs import CLAMPED, REDACTED, configure_logging
from bot.settings import SettingsError, load_settings

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
WORDS = "my left calf is swollen and hot"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in CLAMPED}
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        for name, saved in levels.items():
            logging.getLogger(name).setLevel(saved)


def write_lines(fmt: str) -> None:
    """What the bot's libraries and the bot itself log around one update, at DEBUG."""
    configure_logging("DEBUG", secrets=[TOKEN], fmt=fmt)
    url = f"https://api.telegram.org/bot{TOKEN}/sendMessage"
    logging.getLogger("httpx").info('HTTP Request: POST %s "HTTP/1.1 200 OK"', url)
    logging.getLogger("telegram.ext.Application").debug("Processing update %s", {"text": WORDS})
    logging.getLogger("telegram._bot").debug("Calling Bot API endpoint with %s", WORDS)
    logging.getLogger("bot.telegram.lanes").info("update %s handled", 17)
    logging.getLogger("bot.telegram.delivery").warning("token %s leaked", TOKEN)
    try:
        raise RuntimeError(f"request to {url} failed")
    except RuntimeError:
        logging.getLogger("bot.telegram.app").exception("update could not be committed")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_format_writes_the_token_or_what_people_write(
    fmt: str, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    write_lines(fmt)
    written = capsys.readouterr().err
    secret_half = TOKEN.split(":")[1]
    assert TOKEN not in written and secret_half not in written
    assert WORDS not in written
    assert "update 17 handled" in written  # the bot's own lines are there
    assert written.count(REDACTED) == 2  # the warning, and the exception in the traceback


def test_json_lines_are_one_object_each_with_level_logger_and_traceback(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    write_lines("json")
    lines = capsys.readouterr().err.splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert [e["logger"] for e in entries] == [
        "bot.telegram.lanes",
        "bot.telegram.delivery",
        "bot.telegram.app",
    ]
    handled, leaked, failed = entries
    assert handled["level"] == "INFO" and handled["message"] == "update 17 handled"
    assert leaked["message"] == f"token {REDACTED} leaked"
    assert failed["level"] == "ERROR"
    assert "RuntimeError" in failed["exc"] and REDACTED in failed["exc"]
    assert handled["time"].endswith("+00:00")
    assert "exc" not in handled


def test_text_stays_the_default_and_log_format_is_checked() -> None:
    assert load_settings(_env_file=None).log_format == "text"
    assert load_settings(_env_file=None, log_format="JSON").log_format == "json"
    with pytest.raises(SettingsError, match="LOG_FORMAT"):
        load_settings(_env_file=None, log_format="xml")
