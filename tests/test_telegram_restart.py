"""The bot as a real process, killed with SIGKILL while taps are in flight, then restarted.

Acceptance (issue "The Telegram bot"): a process killed mid-triage and restarted continues at
the same question, and no tap that reached the bot before the kill is lost or applied twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from storage import Store
from tests.botapi_stub import BotApiStub

REPO = Path(__file__).resolve().parents[1]
CHAT = 5151
# Taps fed in quick bursts, each answering the question the previous one leads to.
NEXT_QUESTION = "Do any of these apply to you?"
BURSTS = [
    [("feeling", "none"), ("where", "unsure")],
    [("timing", "none"), ("relief", "nothing")],
    [("about_you", "rather_not")],
]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")


class BotProcess:
    def __init__(self, api: BotApiStub, tmp: Path, database_url: str) -> None:
        self.api, self.tmp = api, tmp
        self.env = {
            **os.environ,
            "TELEGRAM_BOT_TOKEN": api.token,
            "TELEGRAM_API_URL": api.root,
            "DATABASE_URL": database_url,
            "LOG_LEVEL": "DEBUG",
            "PYTHONPATH": str(REPO),
            "PTB_TIMEDELTA": "true",
        }
        self.process: asyncio.subprocess.Process | None = None
        self.runs = 0
        self.health: str | None = None
        """This process's `/healthz` (webhook mode): with several instances on one stand-in,
        another one's setMyCommands says nothing about this one being up."""

    async def start(self) -> None:
        mark = self.api.mark()
        self.runs += 1
        with (self.tmp / f"run{self.runs}.log").open("wb") as log:  # the child keeps its copy
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                cwd=self.tmp,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        if self.health is None:
            await self.api.wait_for_call("setMyCommands", after=mark, timeout=30)
        else:
            await self._healthy(30)

    async def _healthy(self, timeout: float) -> None:
        """Poll `health` until it answers 200 (the process is up and handles signals)."""
        assert self.health is not None and self.process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with aiohttp.ClientSession() as http:
            while loop.time() < deadline:
                if self.process.returncode is not None:
                    raise AssertionError(f"the bot exited with {self.process.returncode}")
                try:
                    async with http.get(self.health) as answer:
                        if answer.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass  # not listening yet
                await asyncio.sleep(0.05)  # polling with a deadline
        raise TimeoutError(f"{self.health} did not answer 200 in {timeout:g} s")

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), timeout=20)

    def logs(self) -> str:
        return "".join(
            (self.tmp / f"run{i}.log").read_text(errors="replace") for i in range(1, self.runs + 1)
        )


def stored_answers(database_url: str) -> list[tuple[str, tuple[str, ...]]]:
    store = Store.open(database_url)
    try:
        with store.transaction() as repo:
            user = repo.find_user("telegram", str(CHAT))
            assert user is not None
            found = repo.latest_conversation(user.id, "triage")
            assert found is not None
            return [(a.question_id, a.option_ids) for a in found[1].answers]
    finally:
        store.dispose()


async def test_taps_in_flight_at_a_sigkill_are_applied_exactly_once_after_restart(
    tmp_path: Path, database_url: str
) -> None:
    async with BotApiStub() as api:
        bot = BotProcess(api, tmp_path, database_url)
        await bot.start()
        await api.wait_until_confirmed(api.feed_message(CHAT, "/start"), timeout=20)
        await api.wait_for_message(CHAT, lambda m: m.has_inline_keyboard)  # the introduction
        mark = api.mark()
        await api.wait_until_confirmed(await api.press(CHAT, "✅ OK, skip the country"))
        first = await api.wait_for_message(
            CHAT, lambda m: "safety check" in (m.plain_text or ""), after=mark
        )
        conversation_id = next(
            data.split(":")[1] for _, data in api.buttons(first) if data and data.startswith("a:")
        )
        await api.wait_until_confirmed(await api.press(CHAT, "None of these"))
        expected = [("emergency_signs", ("none",))]

        for burst in BURSTS:
            updates = [
                api.feed_callback(CHAT, first.message_id, f"a:{conversation_id}:{q}:{o}")
                for q, o in burst
            ]
            expected += [(q, (o,)) for q, o in burst]
            ids = {u["update_id"] for u in updates}
            # Kill once the bot has fetched the burst: it is handling it, or about to.
            await api.wait_for_call(
                "getUpdates",
                lambda call, ids=ids: (
                    call.ok
                    and call.response is not None
                    and ids <= {u["update_id"] for u in call.result}
                ),
            )
            await bot.kill()
            await bot.start()
            await api.wait_until_confirmed(updates[-1], timeout=30)
            assert stored_answers(database_url) == expected

        # The check's message shows the right next question by itself after the last restart,
        # and /start shows it again.
        await api.wait_for_message(
            CHAT,
            lambda m: m.message_id == first.message_id and NEXT_QUESTION in (m.plain_text or ""),
            timeout=30,
        )
        mark = api.mark()
        await api.wait_until_confirmed(api.feed_message(CHAT, "/start"))
        question = await api.wait_for_message(
            CHAT, lambda m: NEXT_QUESTION in (m.plain_text or ""), after=mark
        )
        assert question.message_id != first.message_id
        assert await bot.terminate() == 0

    logs = bot.logs()
    assert "Traceback" not in logs
    assert api.token not in logs
    assert api.token.split(":")[1] not in logs
