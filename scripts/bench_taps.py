"""Benchmark: simulated people tapping through nightlegs, next to a bare PTB bot, over loopback.

Runs the tests' stand-in Bot API server (`tests/botapi_stub.py`) in this process and the bot
under test as a separate real process, `python -m bot` (default settings, rate limiting on,
a fresh SQLite database and a fresh stand-in per run). The baseline is
`scripts/bare_ptb_bot.py`: PTB's `ApplicationBuilder` + `AIORateLimiter()` at its defaults +
`run_polling`, answering every tap with answerCallbackQuery, editMessageText on the tapped
message and sendMessage with a new keyboard. Everything is measured from the outside, through
the Bot API calls the bot makes, so the same script measures today's bot and a rebuilt one.

    .venv/bin/python scripts/bench_taps.py                     # all four, ~5 min on 2 cores
    .venv/bin/python scripts/bench_taps.py --quick             # smoke run, under a minute
    .venv/bin/python scripts/bench_taps.py read fast --json out.json
    .venv/bin/python scripts/bench_taps.py seal                # CPU/tap, sealing on vs off
    .venv/bin/python scripts/bench_taps.py read fast --database postgresql --instances 2
    .venv/bin/python scripts/bench_taps.py read fast --skip-bare --database-url sqlite:////tmp/big.db

Databases and instances
-----------------------
--database sqlite (the default): one nightlegs process, polling, on a fresh SQLite file.
--database postgresql: nightlegs on a fresh database of a throwaway PostgreSQL server
(`tests/postgres.py`: initdb into a temporary folder, unix socket only, durability off),
in webhook mode: --instances N processes (default 1) on that one database, each listening on
a free loopback port (WEBHOOK_LISTEN, INSTANCE_NAME=instance-<n>), and the stand-in posting
every update to them in turn, as Telegram does behind a load balancer
(`BotApiStub.deliver_webhooks`; an answer other than 200 is posted again to the next one).
One instance runs in webhook mode too, so 1 against N instances compares like with like.
--database-url URL: nightlegs runs on that existing database (say one `scripts/fill_db.py`
filled with a million people; a `postgresql+psycopg://` URL means webhook mode) instead of a
fresh one. Its rows are kept; the simulated people of each run are new people on top of it
(fresh Telegram ids), and the stand-in numbers its updates after the highest update id the
database has processed. --skip-bare leaves out the bare PTB runs (for a big-against-empty
comparison, run the same scenarios with and without --database-url, back to back).
The bot counts as ready when all N have called setWebhook. With several instances, CPU per
tap is the sum over the instances, and peak RSS the largest instance's (the JSON also has
the sum); "DB CPU/tap" is the PostgreSQL server's own CPU (all its processes) per tap, which
SQLite spends inside the bot process. The bare baseline is the same in every setup: one
process, polling, no database. Each run's logs are scanned for ERROR/CRITICAL lines and
tracebacks (reported; --logs DIR keeps copies).

Simulated people
----------------
Each person has a private chat of their own. They send /start, then always press a button on
the latest bot message in their chat that has an inline keyboard: the consent button
"✅ OK, skip the country", "🔁 New check" / "🩺 New check" when a check has ended, otherwise
an answer (Back, Cancel, Export, Delete, settings and diary-menu buttons are never pressed).
Three in four times they pick "None of these" / "No" / "Neither" when offered (so most
checks run to the end), otherwise any answer at random (seeded per person). On a
multi-answer question ("▫️ …" ticks and a "… ➡️" Done button) they tick one and press Done.
A person waits for the bot to answer the tap (answerCallbackQuery) before the next one.

Figures
-------
tap latency  From feeding the callback update to the first chat-bound call (sendMessage,
             editMessageText/Caption/ReplyMarkup, sendDocument, sendPhoto, deleteMessage) to
             that chat after which the chat's latest message with an inline keyboard is a
             different message, or the same message with a different keyboard, than the one
             tapped: the moment the person can tap again. p50/p99 are nearest-rank.
read         50 people at once, each reading 2-4 s (uniform) before every tap, for --seconds:
             p50/p99 on nightlegs, on the bare bot, and for one person alone on nightlegs.
             The 50 come in at random over --arrival seconds (default 2: together, so their
             results land in the same few seconds) and are measured once all are in.
             Ratios: p99(50)/p99(1) (target <= 3) and p99(nightlegs)/p99(bare) (<= 0.5).
fast         50 people tapping as fast as the bot answers. Over the measured window: taps/s,
             Bot API calls per tap (every call but getUpdates), chat-bound calls per tap and
             30 / chat-bound calls per tap (the ceiling Telegram's ~30 messages/s allows),
             CPU ms per tap of the bot process (utime+stime from /proc/<pid>/stat over the
             window / taps completed in it) and peak RSS (VmHWM of /proc/<pid>/status).
             Ratio: CPU per tap nightlegs / bare (target <= 1.5); peak RSS target <= 80 MB.
export       One consented person with 90 nights of diary (seeded through the project's own
             storage API before the bot starts) asks again and again for the ZIP (/export,
             then the button starting "🗂 ZIP · 90") while another person taps (reading
             --tapper-read s): the tapper's p99 idle vs during the exports (target <= 2x).
first        --people new people, each making one whole first check, from /start to the result
             (as most people do), reading 2-4 s before each tap, arriving over --arrival s:
             taps, chat-bound calls (sends and edits to their chats; answering a button
             press is not one), chat-bound calls per tap and 30 / that, the calls above the
             taps per check (target <= 2), p50/p99 tap latency. Calls are counted until the
             bot has been quiet for 1 s after the last result.
fanout       --fanout-users consented people whose diary check-in is due now (seeded; the
             bot's dispatcher sends them at its first run, ~1 s after start), one person
             tapping (reading --tapper-read s) from the bot's first poll: check-ins sent (and
             chats that got two), when the first and the last went out, the rate between them,
             and the tapper's p99 over the whole fan-out, from the first poll to the last
             check-in (the dispatcher's preparing the rows counts: target <= 500 ms).
seal         (not in the default set) the fast crowd with sealing on and off, alternating.
languages    (not in the default set) the fast crowd with Telegram apps set to en, de, es,
             pt-br and ru, alternating, --seal-rounds runs each: CPU per tap, p99 and peak
             RSS, each over English's (target <= 1.10). People press the same buttons in
             every language: the labels they look for are looked up in the catalogs.

The bare baseline always runs with AIORateLimiter() unless --bare-no-limiter is given (the
issue's "214 taps/s" bare figure was without it; not the acceptance setup).

Every wait has a deadline (--tap-timeout per tap); a tap that gets no next question in time is
counted under "timeouts" and left out of the percentiles. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

os.environ.setdefault("PTB_TIMEDELTA", "true")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dialogs.i18n import pick, translations  # noqa: E402
from tests.botapi_stub import BotApiStub, Call, SentMessage  # noqa: E402

SCENARIOS = ("read", "fast", "export", "fanout", "first", "seal", "languages")
DEFAULT_SCENARIOS = SCENARIOS[:-2]
"""`seal` (sealing on against off) runs only when named."""
CHAT_BOUND = frozenset(
    {
        "sendMessage",
        "sendDocument",
        "sendPhoto",
        "editMessageText",
        "editMessageCaption",
        "editMessageReplyMarkup",
        "deleteMessage",
    }
)
TELEGRAM_PER_SECOND = 30
READ_RANGE = (2.0, 4.0)
BENIGN_SHARE = 0.75

# --- button labels the simulated people rely on ----------------------------------------------
START_LABELS = ("✅ OK, skip the country", "✅ OK, start the check", "🔁 New check", "🩺 New check")
RESULT_LABEL = "🔁 New check"
"""A message with this button is a result: a first check ends there."""
BENIGN_LABELS = frozenset({"None of these", "No", "Neither"})
UNTICKED, TICKED, DONE_SUFFIX = "▫️ ", "✅ ", "➡️"
NEVER_PREFIXES = (
    "⬅️",  # Back, Change answer
    "✖️",  # Cancel
    "📄",  # Export my data
    "🗂",  # ZIP export
    "🧾",  # JSON export
    "🩺 PDF",  # PDF export
    "🗑",  # Delete
    "⚙️",  # Settings
    "❓",  # Help
    "🌍",  # Change country / zone
    "🕘",  # Change check-in time
    "⏸",  # Pause diary
    "⏹",  # Stop diary
    "⌨️",  # Type a time
    "✍️",  # Log a past night
    "📊",  # Summary
    "📝",  # Add a note for the doctor
)
NEVER_LABELS = frozenset(
    {
        "Not now",
        "Keep it",
        "Choose another country",
        "My country is not listed",
        "✅ OK, choose my country",
        "Skip",
    }
)
ZIP_90_PREFIX = "🗂 ZIP · 90"

EXPORTER_CHAT = 7_000_001
TAPPER_CHAT = 7_000_002
FIRST_PERSON = 1_000_001
FIRST_FANOUT = 20_000_000
EXPORT_NIGHTS = 90
ZONE = "Europe/Berlin"

WEBHOOK_PATH = "/telegram/hook"
WEBHOOK_SECRET = "bench-taps-webhook-secret"
LOG_PROBLEMS = (" ERROR ", " CRITICAL ", "Traceback")


class Deployment:
    """How nightlegs runs in this invocation (set once from the command line)."""

    database = "sqlite"
    instances = 1
    postgres: Any = None  #: the tests' PostgresServer when --database postgresql
    logs_dir: Path | None = None
    runs = 0  #: runs so far, to name kept logs
    database_url: str | None = None  #: an existing database to run on (--database-url)
    skip_bare = False
    first_update_id = 1  #: of the next stand-in (above the ids the database processed)
    first_message_id = 1  #: of the next stand-in (above the ids the database recorded)
    people_blocks = 0  #: blocks of fresh Telegram ids handed out on an existing database

    @classmethod
    def first_person(cls) -> int:
        """The first simulated person's Telegram id for a run: on an existing database, a
        block no earlier run used (ids below 10**8, clear of `scripts/fill_db.py`'s)."""
        if cls.database_url is None:
            return FIRST_PERSON
        cls.people_blocks += 1
        return 30_000_000 + (int(time.time()) % 100_000) * 600 + cls.people_blocks * 100

    @classmethod
    def next_update_id(cls) -> int:
        """Above every update id the existing database has processed (1 on a fresh one)."""
        return cls._above("SELECT max(update_id) FROM processed_updates")

    @classmethod
    def next_message_id(cls) -> int:
        """Above every message id the existing database recorded (1 on a fresh one): Telegram
        numbers a bot's messages with one counter that only goes up."""
        return cls._above("SELECT max(message_id) FROM outbox")

    @classmethod
    def _above(cls, query: str) -> int:
        if cls.database_url is None:
            return 1
        from sqlalchemy import create_engine, text  # noqa: PLC0415

        engine = create_engine(cls.database_url.replace("postgresql://", "postgresql+psycopg://"))
        try:
            with engine.connect() as connection:
                return int(connection.execute(text(query)).scalar() or 0) + 1
        finally:
            engine.dispose()

    @classmethod
    def webhook(cls) -> bool:
        return cls.database == "postgresql"

    @classmethod
    def describe(cls) -> str:
        if cls.database_url is not None:
            where = cls.database_url.rsplit("@", 1)[-1]
            return f"nightlegs on the existing database {where}, one process"
        if cls.database == "sqlite":
            return "nightlegs on SQLite, one process, polling"
        if cls.instances == 1:
            return "nightlegs on PostgreSQL, 1 instance in webhook mode"
        return (
            f"nightlegs on PostgreSQL, {cls.instances} instances in webhook mode; "
            "CPU/tap summed over the instances, peak RSS the largest one"
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the stand-in, observed --------------------------------------------------------------------


def _chat_of(call: Call) -> int | None:
    try:
        return int(call.params["chat_id"])
    except (KeyError, TypeError, ValueError):
        return None


def _key(message: SentMessage | None) -> tuple[int, str] | None:
    """What a person sees to tap: the message and its keyboard."""
    if message is None:
        return None
    return message.message_id, json.dumps(message.reply_markup, sort_keys=True)


@dataclass
class _Waiter:
    check: Callable[[Call], bool]
    future: asyncio.Future[float]


class ObservedStub(BotApiStub):
    """The stand-in, plus completion hooks: futures resolved when a call finishes.

    The stub notifies on every state change; each completed call is looked at once, at the
    moment it was answered, so latencies end when the bot's request was done. It numbers
    messages as Telegram does (one counter across the bot's private chats) and answers each
    call `latency` seconds late (`--latency`; none by default).
    """

    latency: tuple[float, float] | None = None

    def __init__(self) -> None:
        self._seen = 0
        self._open: list[int] = []
        self._chat_waiters: dict[int, list[_Waiter]] = {}
        self._answer_waiters: dict[str, asyncio.Future[float]] = {}
        self.polled: asyncio.Future[float] | None = None
        #: resolved when `hooks_wanted` setWebhook calls succeeded (webhook mode's "ready")
        self.hooked: asyncio.Future[float] | None = None
        self.hooks_wanted = 1
        self.hooks_set = 0
        self.watch_chats: set[int] = set()
        #: chat -> completion times of sendMessage calls to watched chats
        self.watched_sends: dict[int, list[float]] = {}
        self.watch_target = 0
        self.watch_done: asyncio.Future[float] | None = None
        super().__init__(
            default_timeout=30.0,
            latency=type(self).latency,
            first_update_id=Deployment.first_update_id,
            first_message_id=Deployment.first_message_id,
        )

    def _notify(self) -> None:
        super()._notify()
        now = time.monotonic()
        calls = self.calls
        while self._seen < len(calls):
            call = calls[self._seen]
            if call.method == "getUpdates" and self.polled is not None and not self.polled.done():
                self.polled.set_result(now)
            self._open.append(self._seen)
            self._seen += 1
        still = []
        for index in self._open:
            call = calls[index]
            if call.status is None:
                still.append(index)
            else:
                self._completed(call, now)
        self._open = still

    def _completed(self, call: Call, now: float) -> None:
        if call.method == "setWebhook" and call.ok:
            self.hooks_set += 1
            hooked = self.hooked
            if hooked is not None and not hooked.done() and self.hooks_set >= self.hooks_wanted:
                hooked.set_result(now)
            return
        if call.method == "answerCallbackQuery":
            future = self._answer_waiters.pop(str(call.params.get("callback_query_id")), None)
            if future is not None and not future.done():
                future.set_result(now)
            return
        if call.method not in CHAT_BOUND or not call.ok:
            return
        chat = _chat_of(call)
        if chat is None:
            return
        if chat in self.watch_chats and call.method == "sendMessage":
            self.watched_sends.setdefault(chat, []).append(now)
            done = self.watch_done
            if (
                done is not None
                and not done.done()
                and len(self.watched_sends) >= self.watch_target
            ):
                done.set_result(now)
        waiters = self._chat_waiters.get(chat)
        if not waiters:
            return
        for waiter in list(waiters):
            if waiter.future.done():
                waiters.remove(waiter)
            elif waiter.check(call):
                waiter.future.set_result(now)
                waiters.remove(waiter)

    def latest_keyboard(self, chat: int) -> SentMessage | None:
        """The latest bot message of the chat that carries an inline keyboard."""
        return next((m for m in reversed(self.messages(chat)) if m.has_inline_keyboard), None)

    def expect_keyboard(
        self,
        chat: int,
        before: tuple[int, str] | None,
        want: Callable[[SentMessage], bool] | None = None,
    ) -> asyncio.Future[float]:
        """Resolves when a chat-bound call leaves a keyboard to tap other than `before`."""

        def check(_call: Call) -> bool:
            latest = self.latest_keyboard(chat)
            return latest is not None and _key(latest) != before and (want is None or want(latest))

        return self._expect(chat, check)

    def expect_method(self, chat: int, method: str) -> asyncio.Future[float]:
        return self._expect(chat, lambda call: call.method == method)

    def _expect(self, chat: int, check: Callable[[Call], bool]) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._chat_waiters.setdefault(chat, []).append(_Waiter(check, future))
        return future

    def expect_answer(self, query_id: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        if query_id in self.callback_answers:
            future.set_result(time.monotonic())
        else:
            self._answer_waiters[query_id] = future
        return future


async def _within(future: asyncio.Future[float], deadline: float) -> float | None:
    """The future's result, or None (and the future cancelled) once `deadline` passed."""
    try:
        return await asyncio.wait_for(future, max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        return None


# --- the bot process ---------------------------------------------------------------------------


class BotProcess:
    """`python -m bot` (or the bare baseline) as a child process talking to `api`.

    With `port`, a nightlegs instance in webhook mode listening on 127.0.0.1:`port`.
    """

    #: False: the bare baseline runs without AIORateLimiter (--bare-no-limiter)
    bare_limiter = True
    unsealed = False
    """Start nightlegs with sealing off (the `seal` scenario's baseline only)."""

    def __init__(
        self,
        kind: str,
        api: ObservedStub,
        workdir: Path,
        db_url: str | None = None,
        *,
        number: int | None = None,
        port: int | None = None,
    ) -> None:
        self.kind = kind
        self.api = api
        self.workdir = workdir
        self.db_url = db_url or f"sqlite:///{workdir}/bench.db"
        self.number = number
        self.port = port
        self.name = kind if number is None else f"{kind}-instance-{number}"
        self.log = workdir / f"{self.name}.log"
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def target(self) -> str:
        """Where the stand-in posts updates (webhook mode)."""
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TELEGRAM_", "DATABASE_", "TRANSCRIPT_", "WEBHOOK_", "INSTANCE_"))
        }
        env |= {
            "TELEGRAM_BOT_TOKEN": self.api.token,
            "TELEGRAM_API_URL": self.api.root,
            "DATABASE_URL": self.db_url,
            "PTB_TIMEDELTA": "true",
            "LOG_LEVEL": "WARNING",
            "BARE_RATE_LIMITER": "on" if self.bare_limiter else "off",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        }
        if self.port is not None:
            env |= {
                "WEBHOOK_URL": f"https://bot.test{WEBHOOK_PATH}",
                "WEBHOOK_SECRET": WEBHOOK_SECRET,
                "WEBHOOK_LISTEN": f"127.0.0.1:{self.port}",
                "INSTANCE_NAME": f"instance-{self.number}",
            }
        return env

    async def spawn(self) -> None:
        if self.kind == "nightlegs" and BotProcess.unsealed:
            argv = [sys.executable, "-c", UNSEALED_BOT]
        elif self.kind == "nightlegs":
            argv = [sys.executable, "-m", "bot"]
        else:
            argv = [sys.executable, str(ROOT / "scripts" / "bare_ptb_bot.py")]
        with self.log.open("wb") as log:
            # cwd is the run's own directory: no .env or data/ of a checkout is picked up.
            self.proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=self.workdir,
                env=self.env(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def problems(self) -> list[str]:
        """The log's ERROR/CRITICAL lines and tracebacks."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if any(p in line for p in LOG_PROBLEMS)]

    def cpu_seconds(self) -> float:
        """utime + stime of the process so far."""
        assert self.proc is not None
        return _cpu_of(self.proc.pid)

    def peak_rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    async def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 15.0)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def _stat_fields(pid: int) -> list[str]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()


def _cpu_of(pid: int, *, reaped: bool = False) -> float:
    """utime + stime of `pid` (plus cutime + cstime, its exited children's, if `reaped`)."""
    fields = _stat_fields(pid)
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def database_cpu_seconds() -> float | None:
    """CPU of the whole PostgreSQL server so far: the postmaster, its live children (backends,
    writers, autovacuum) and its exited ones; None on SQLite."""
    server = Deployment.postgres
    if server is None:
        return None
    try:
        postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
        total = _cpu_of(postmaster, reaped=True)
    except (OSError, ValueError, IndexError):
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = _stat_fields(int(entry.name))
            if int(fields[1]) == postmaster:
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


class Bots:
    """The bot under test: one process polling, or nightlegs instances in webhook mode."""

    def __init__(self, kind: str, api: ObservedStub, workdir: Path, db_url: str | None) -> None:
        self.api = api
        self.webhook = kind == "nightlegs" and Deployment.webhook()
        if self.webhook:
            self.processes = [
                BotProcess(kind, api, workdir, db_url, number=n, port=free_port())
                for n in range(Deployment.instances)
            ]
        else:
            self.processes = [BotProcess(kind, api, workdir, db_url)]
        self.log_problems: dict[str, list[str]] = {}

    async def start(self, timeout: float = 90.0) -> float:
        """Start the processes; returns the moment the last of them is ready: its first
        getUpdates (polling) or its setWebhook answered (webhook mode, listening by then)."""
        loop = asyncio.get_running_loop()
        if self.webhook:
            self.api.hooks_wanted = self.api.hooks_set + len(self.processes)
            ready = self.api.hooked = loop.create_future()
        else:
            ready = self.api.polled = loop.create_future()
        for process in self.processes:
            await process.spawn()
        exits = {asyncio.ensure_future(p.proc.wait()) for p in self.processes if p.proc is not None}
        try:
            done, _ = await asyncio.wait(
                {ready, *exits}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in exits:
                waiter.cancel()
        if ready in done:
            return ready.result()
        what = "set its webhook" if self.webhook else "start polling"
        tails = "\n".join(f"--- {p.name}\n{p.tail()}" for p in self.processes)
        raise RuntimeError(f"the bot did not {what} within {timeout:g}s\n{tails}")

    def cpu_seconds(self) -> float:
        return sum(p.cpu_seconds() for p in self.processes)

    def peak_rss_mb(self) -> float:
        """The largest process's peak RSS."""
        return max(p.peak_rss_mb() for p in self.processes)

    def peak_rss_total_mb(self) -> float:
        return sum(p.peak_rss_mb() for p in self.processes)

    async def stop(self) -> None:
        await asyncio.gather(*(p.stop() for p in self.processes))
        Deployment.runs += 1
        for process in self.processes:
            found = process.problems()
            if found:
                self.log_problems[process.name] = found
                print(
                    f"  ! {process.name}: {len(found)} error line(s) in its log, first: {found[0]}",
                    file=sys.stderr,
                )
            if Deployment.logs_dir is not None:
                Deployment.logs_dir.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(OSError):
                    shutil.copyfile(
                        process.log,
                        Deployment.logs_dir / f"{Deployment.runs:02d}-{process.name}.log",
                    )


# --- simulated people --------------------------------------------------------------------------


@dataclass
class Tap:
    chat: int
    label: str
    fed: float
    done: float | None  #: when the next keyboard was there (None: timed out)

    @property
    def latency(self) -> float | None:
        return None if self.done is None else self.done - self.fed


@dataclass(frozen=True)
class Labels:
    """The labels above in one language: each is a message of the catalogs, so a German
    person presses "Nichts davon" where an English one presses "None of these"."""

    start: tuple[str, ...] = START_LABELS
    result: str = RESULT_LABEL
    benign: frozenset[str] = BENIGN_LABELS
    never: frozenset[str] = NEVER_LABELS

    @classmethod
    def of(cls, lang: str) -> Labels:
        say = translations(lang).gettext
        return cls(
            tuple(say(x) for x in START_LABELS),
            say(RESULT_LABEL),
            frozenset(say(x) for x in BENIGN_LABELS),
            frozenset(say(x) for x in NEVER_LABELS),
        )


ENGLISH = Labels()


def choose(
    buttons: Sequence[tuple[str, str | None]], rng: random.Random, labels: Labels = ENGLISH
) -> tuple[str, str] | None:
    """The button a person presses on this keyboard, or None if there is none to press."""
    usable = [(text, data) for text, data in buttons if data is not None]
    for label in labels.start:
        for text, data in usable:
            if text == label:
                return text, data
    done = next(((t, d) for t, d in usable if t.endswith(DONE_SUFFIX)), None)
    if done is not None and any(t.startswith(TICKED) for t, _ in usable):
        return done
    answers = [
        (t, d)
        for t, d in usable
        if (t, d) != done and not t.startswith(NEVER_PREFIXES) and t not in labels.never
    ]
    if not answers:
        return None
    benign = [(t, d) for t, d in answers if t in labels.benign]
    if benign and rng.random() < BENIGN_SHARE:
        return rng.choice(benign)
    return rng.choice(answers)


@dataclass
class Crowd:
    """The simulated people of one run and what they measured."""

    api: ObservedStub
    tap_timeout: float
    language_code: str = "en"
    taps: list[Tap] = field(default_factory=list)
    stuck: int = 0
    unanswered: int = 0

    @property
    def labels(self) -> Labels:
        return Labels.of(pick(self.language_code))

    async def open_chat(self, chat: int, text: str = "/start") -> bool:
        """Send `text`; True once the chat shows a keyboard to tap."""
        before = _key(self.api.latest_keyboard(chat))
        future = self.api.expect_keyboard(chat, before)
        self.api.feed_message(chat, text, language_code=self.language_code)
        return await _within(future, time.monotonic() + self.tap_timeout) is not None

    async def tap(self, chat: int, message: SentMessage, label: str, data: str) -> Tap:
        future = self.api.expect_keyboard(chat, _key(message))
        fed = time.monotonic()
        update = self.api.feed_callback(
            chat, message.message_id, data, language_code=self.language_code
        )
        answered = self.api.expect_answer(str(update["callback_query"]["id"]))
        deadline = fed + self.tap_timeout
        tap = Tap(chat, label, fed, await _within(future, deadline))
        if await _within(answered, deadline) is None:
            self.unanswered += 1
        self.taps.append(tap)
        return tap

    async def person(
        self,
        chat: int,
        stop_at: float,
        read: tuple[float, float] | None,
        seed: int = 0,
        arrival: float = 0.0,
    ) -> None:
        rng = random.Random(chat * 1_000_003 + seed)
        if read is not None:  # people do not all arrive in the same millisecond
            await asyncio.sleep(rng.uniform(0.0, max(arrival, read[0])))
        if not await self.open_chat(chat):
            self.stuck += 1
            return
        recovered = False
        while time.monotonic() < stop_at:
            if read is not None:
                pause = rng.uniform(*read)
                if time.monotonic() + pause >= stop_at:
                    return
                await asyncio.sleep(pause)
            message = self.api.latest_keyboard(chat)
            choice = None if message is None else choose(message.buttons, rng, self.labels)
            if message is None or choice is None:
                if recovered or not await self.open_chat(chat):
                    self.stuck += 1
                    return
                recovered = True
                continue
            tap = await self.tap(chat, message, *choice)
            recovered = recovered and tap.done is None

    async def first_check(
        self, chat: int, read: tuple[float, float], arrival: float, max_taps: int = 60
    ) -> int | None:
        """One whole first check, /start to the result; the taps it took (None: stuck)."""
        rng = random.Random(chat * 1_000_003)
        await asyncio.sleep(rng.uniform(0.0, arrival))
        if not await self.open_chat(chat):
            self.stuck += 1
            return None
        for taps in range(max_taps + 1):
            message = self.api.latest_keyboard(chat)
            labels = [] if message is None else [t for t, _ in message.buttons]
            if self.labels.result in labels:
                return taps
            choice = None if message is None else choose(message.buttons, rng, self.labels)
            if message is None or choice is None or taps == max_taps:
                self.stuck += 1
                return None
            await asyncio.sleep(rng.uniform(*read))
            tap = await self.tap(chat, message, *choice)
            if tap.done is None:
                self.stuck += 1
                return None
        return None


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))]


LAG_EVERY = 0.005
LAGS: list[tuple[float, float]] = []
"""(when, seconds late) of this process's event loop: the stand-in and the people run in it,
so a late loop delays every latency measured; the figures say how late it got."""


async def watch_lag(stop: asyncio.Event) -> None:
    while not stop.is_set():
        asked = time.monotonic()
        await asyncio.sleep(LAG_EVERY)
        now = time.monotonic()
        LAGS.append((now, now - asked - LAG_EVERY))


async def with_lag_watch(scenario: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_lag(stop))
    try:
        return await scenario
    finally:
        stop.set()
        await watcher


def latency_stats(taps: Sequence[Tap], start: float, end: float) -> dict[str, Any]:
    """p50/p99 (ms) of the taps fed in [start, end), and how late this process's loop got."""
    chosen = [t for t in taps if start <= t.fed < end]
    lags = [lag for when, lag in LAGS if start <= when < end]
    done = [t.latency * 1000 for t in chosen if t.latency is not None]
    p50, p99 = percentile(done, 50), percentile(done, 99)
    return {
        "taps": len(done),
        "timeouts": len(chosen) - len(done),
        "p50_ms": None if p50 is None else round(p50, 1),
        "p99_ms": None if p99 is None else round(p99, 1),
        "max_ms": round(max(done), 1) if done else None,
        "slowest": [
            (t.label, round(t.latency * 1000, 1))
            for t in sorted(chosen, key=lambda t: -(t.latency or math.inf))[:8]
        ],
        "bench_loop_lag_max_ms": round(max(lags) * 1000, 1) if lags else None,
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 2)


# --- seeding through the project's storage API -----------------------------------------------


def _seed_settings(db_url: str) -> Any:
    from bot.settings import load_settings  # noqa: PLC0415 (only the seeded scenarios need it)

    return load_settings(
        _env_file=None,
        telegram_bot_token="123456789:AAHnightlegs-seed-token_0123456789",
        telegram_api_url="http://127.0.0.1:9",
        database_url=db_url,
    )


def seed_export_user(db_url: str, chat: int, nights: int = EXPORT_NIGHTS) -> None:
    """A consented person with `nights` nights of diary and a transcript, as the bot keeps."""
    from bot.app import build_core  # noqa: PLC0415

    core = build_core(_seed_settings(db_url))
    now = datetime.now(UTC)
    today = now.astimezone(ZoneInfo(ZONE)).date()
    rng = random.Random(90)
    try:
        with core.store.transaction() as repo:
            user = repo.user("telegram", str(chat))
            repo.update_user(
                user.id,
                consent_at=now - timedelta(days=nights + 5),
                country="DE",
                country_asked_at=now - timedelta(days=nights + 5),
            )
            # A check-in time half a day away: none is due while the benchmark runs.
            later = now.astimezone(ZoneInfo(ZONE)) + timedelta(hours=12)
            repo.diary.set_schedule(
                user.id, local_time=clock_time(later.hour, 0), zone=ZONE, now=now
            )
            for back in range(nights, 0, -1):
                night: date = today - timedelta(days=back)
                cramps = rng.random() < 0.6
                values: dict[str, Any] = {"cramps": cramps, "wakeups": rng.randint(0, 3)}
                if cramps:
                    values |= {"cramp_count": rng.randint(1, 4), "worst_pain": rng.randint(2, 9)}
                repo.diary.save_entry(
                    user.id,
                    night,
                    values=values,
                    findings={"muscle_hard_knot": cramps},
                    red_flags=[],
                    backfilled=False,
                    conversation_id=None,
                )
                repo.add_message(user.id, "out", f"How was the night of {night:%A %d %B}?")
                repo.add_message(user.id, "in", "Cramps" if cramps else "No cramps")
    finally:
        core.store.dispose()


def seed_fanout(db_url: str, users: int) -> None:
    """`users` consented people whose diary check-in came due a minute ago (real clock)."""
    from bot.app import build_core  # noqa: PLC0415

    core = build_core(_seed_settings(db_url))
    now = datetime.now(UTC)
    due = now.astimezone(ZoneInfo(ZONE)) - timedelta(minutes=1)
    try:
        with core.store.transaction() as repo:
            for i in range(users):
                user = repo.user("telegram", str(FIRST_FANOUT + i))
                repo.update_user(user.id, consent_at=now - timedelta(days=1))
                repo.diary.set_schedule(
                    user.id,
                    local_time=clock_time(due.hour, due.minute),
                    zone=ZONE,
                    now=now - timedelta(hours=1),
                )
    finally:
        core.store.dispose()


# --- runs --------------------------------------------------------------------------------------


@dataclass
class Window:
    """Bot process figures over a measured window."""

    start: float = 0.0
    end: float = 0.0
    cpu_start: float = 0.0
    cpu_end: float = 0.0
    db_cpu_start: float | None = None
    db_cpu_end: float | None = None


async def _measure(bot: Bots, window: Window, start: float, end: float) -> None:
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    window.db_cpu_start = database_cpu_seconds() if bot.webhook else None
    window.start, window.cpu_start = time.monotonic(), bot.cpu_seconds()
    await asyncio.sleep(max(0.0, end - time.monotonic()))
    window.end, window.cpu_end = time.monotonic(), bot.cpu_seconds()
    window.db_cpu_end = database_cpu_seconds() if bot.webhook else None


@contextlib.contextmanager
def _database(kind: str, workdir: Path) -> Any:
    """A fresh database for nightlegs: a SQLite file in `workdir`, or a new, empty database
    on the PostgreSQL server (dropped afterwards). None for the bare bot, which has none."""
    if kind != "nightlegs":
        yield None
    elif Deployment.database_url is not None:
        yield Deployment.database_url
    elif Deployment.postgres is not None:
        with Deployment.postgres.database() as url:
            yield url
    else:
        yield f"sqlite:///{workdir}/bench.db"


@contextlib.asynccontextmanager
async def running(kind: str, seed: Callable[[str], None] | None = None) -> Any:
    """A fresh stand-in, a fresh database (seeded if asked) and the bot's process(es) on them;
    in webhook mode, the stand-in delivering updates to the instances until the run ends."""
    Deployment.first_update_id = Deployment.next_update_id() if kind == "nightlegs" else 1
    Deployment.first_message_id = Deployment.next_message_id() if kind == "nightlegs" else 1
    async with ObservedStub() as api:
        with (
            tempfile.TemporaryDirectory(prefix="bench_taps_") as tmp,
            _database(kind, Path(tmp)) as db_url,
        ):
            if seed is not None:
                seed(db_url)
            bot = Bots(kind, api, Path(tmp), db_url)
            stop = asyncio.Event()
            delivery: asyncio.Task[None] | None = None
            try:
                ready = await bot.start()
                if bot.webhook:
                    targets = [p.target for p in bot.processes]
                    delivery = asyncio.create_task(
                        api.deliver_webhooks(targets, secret=WEBHOOK_SECRET, stop=stop)
                    )
                yield api, bot, ready
            finally:
                stop.set()
                if delivery is not None:
                    try:
                        await asyncio.wait_for(delivery, 15.0)
                    except TimeoutError:
                        print("  ! webhook delivery did not stop within 15 s", file=sys.stderr)
                await bot.stop()
                if api.internal_errors:
                    print(f"  ! stand-in errors: {api.internal_errors[:2]}", file=sys.stderr)


async def run_crowd(
    kind: str,
    people: int,
    *,
    read: tuple[float, float] | None,
    warmup: float,
    seconds: float,
    tap_timeout: float,
    arrival: float = 0.0,
    language_code: str = "en",
) -> dict[str, Any]:
    """`people` at once for `seconds` after `warmup`; latency, calls, CPU and RSS figures.
    `arrival`: people come in over this many seconds (measuring starts once all are in);
    `language_code`: what their Telegram apps are set to."""
    async with running(kind) as (api, bot, ready):
        crowd = Crowd(api, tap_timeout, language_code)
        first = Deployment.first_person()
        start = ready + arrival + warmup
        end = start + seconds
        window = Window()
        meter = asyncio.create_task(_measure(bot, window, start, end))
        await asyncio.gather(
            *(crowd.person(first + i, end, read, arrival=arrival) for i in range(people))
        )
        await meter
        rss, rss_total = bot.peak_rss_mb(), bot.peak_rss_total_mb()
        violations = len(api.violations)
    completed = [
        t for t in crowd.taps if t.done is not None and window.start <= t.done < window.end
    ]
    in_window = [c for c in api.calls if window.start <= c.at < window.end]
    taps = len(completed)
    chat_bound = sum(1 for c in in_window if c.method in CHAT_BOUND)
    api_calls = sum(1 for c in in_window if c.method != "getUpdates")
    elapsed = window.end - window.start
    per_tap_chat = chat_bound / taps if taps else None
    result = latency_stats(crowd.taps, start, end) | {
        "people": people,
        "seconds": round(elapsed, 1),
        "taps_per_s": round(taps / elapsed, 1) if elapsed else None,
        "api_calls_per_tap": round(api_calls / taps, 2) if taps else None,
        "chat_bound_calls_per_tap": round(per_tap_chat, 2) if per_tap_chat else None,
        "ceiling_taps_per_s": round(TELEGRAM_PER_SECOND / per_tap_chat, 1)
        if per_tap_chat
        else None,
        "cpu_ms_per_tap": round((window.cpu_end - window.cpu_start) * 1000 / taps, 2)
        if taps
        else None,
        "peak_rss_mb": round(rss, 1),
        "processes": len(bot.processes),
        "peak_rss_total_mb": round(rss_total, 1),
        "db_cpu_ms_per_tap": round((window.db_cpu_end - window.db_cpu_start) * 1000 / taps, 2)
        if taps and window.db_cpu_start is not None and window.db_cpu_end is not None
        else None,
        "webhook_posts": len(api.webhook_attempts) if bot.webhook else None,
        "webhook_posts_not_200": sum(1 for *_, status in api.webhook_attempts if status != 200)
        if bot.webhook
        else None,
        "log_error_lines": sum(len(v) for v in bot.log_problems.values()),
        "log_errors_first": next(iter(bot.log_problems.values()), [None])[0],
        "stuck_people": crowd.stuck,
        "unanswered_callbacks": crowd.unanswered,
        "violations": violations,
    }
    return result


_SKIPPED = {
    key: None
    for key in ("people", "taps", "p50_ms", "p99_ms", "timeouts", "taps_per_s", "peak_rss_mb")
} | {"api_calls_per_tap": None, "chat_bound_calls_per_tap": None, "ceiling_taps_per_s": None}


async def run_bare(people: int, **kwargs: Any) -> dict[str, Any]:
    """The bare PTB baseline, or empty figures with --skip-bare."""
    if Deployment.skip_bare:
        return dict(_SKIPPED, cpu_ms_per_tap=None)
    return await run_crowd("bare", people, **kwargs)


UNSEALED_BOT = (
    "import runpy, storage.sealing as s; s.UNSEALED_FOR_BENCHMARK = True; "
    "runpy.run_module('bot', run_name='__main__')"
)
"""`python -m bot` with sealing off: the baseline of the `seal` scenario, and nothing else."""


async def scenario_seal(args: argparse.Namespace) -> dict[str, Any]:
    """The `fast` crowd on nightlegs with sealing on and off, alternating, `--seal-rounds`
    times each: the CPU a tap spends on sealing."""
    common = {"read": None, "warmup": args.warmup, "tap_timeout": args.tap_timeout}
    runs: dict[str, list[dict[str, Any]]] = {"sealed": [], "unsealed": []}
    for _ in range(args.seal_rounds):
        for name in ("unsealed", "sealed"):
            BotProcess.unsealed = name == "unsealed"
            try:
                runs[name].append(
                    await run_crowd("nightlegs", args.people, seconds=args.fast_seconds, **common)
                )
            finally:
                BotProcess.unsealed = False
    cpu = {
        name: round(sum(r["cpu_ms_per_tap"] for r in found) / len(found), 2)
        for name, found in runs.items()
    }
    return {
        "runs": runs,
        "cpu_ms_per_tap": cpu,
        "cpu_per_tap_sealed_over_unsealed": ratio(cpu["sealed"], cpu["unsealed"]),
    }


LANGUAGE_CODES = ("en", "de", "es", "pt-br", "ru")


async def scenario_languages(args: argparse.Namespace) -> dict[str, Any]:
    """The `fast` crowd on nightlegs in each language, `--seal-rounds` times each,
    alternating: CPU per tap, p99 and peak RSS against English's."""
    common = {"read": None, "warmup": args.warmup, "tap_timeout": args.tap_timeout}
    runs: dict[str, list[dict[str, Any]]] = {code: [] for code in LANGUAGE_CODES}
    for _ in range(args.seal_rounds):
        for code in LANGUAGE_CODES:
            runs[code].append(
                await run_crowd(
                    "nightlegs",
                    args.people,
                    seconds=args.fast_seconds,
                    language_code=code,
                    **common,
                )
            )

    def mean(code: str, key: str) -> float:
        return round(sum(r[key] for r in runs[code]) / len(runs[code]), 2)

    figures = {
        code: {key: mean(code, key) for key in ("cpu_ms_per_tap", "p99_ms", "peak_rss_mb")}
        for code in LANGUAGE_CODES
    }
    return {
        "runs": runs,
        "figures": figures,
        "over_english": {
            code: {key: ratio(value, figures["en"][key]) for key, value in f.items()}
            for code, f in figures.items()
            if code != "en"
        },
    }


async def scenario_read(args: argparse.Namespace) -> dict[str, Any]:
    common = {"read": READ_RANGE, "warmup": args.warmup, "tap_timeout": args.tap_timeout}
    many = common | {"seconds": args.seconds, "arrival": args.arrival}
    crowd = await run_crowd("nightlegs", args.people, **many)
    bare = await run_bare(args.people, **many)
    alone = await run_crowd("nightlegs", 1, seconds=args.solo_seconds, **common)
    return {
        "nightlegs": crowd,
        "bare": bare,
        "nightlegs_alone": alone,
        "p99_crowd_over_alone": ratio(crowd["p99_ms"], alone["p99_ms"]),
        "p99_nightlegs_over_bare": ratio(crowd["p99_ms"], bare["p99_ms"]),
    }


async def scenario_fast(args: argparse.Namespace) -> dict[str, Any]:
    common = {"read": None, "warmup": args.warmup, "tap_timeout": args.tap_timeout}
    nightlegs = await run_crowd("nightlegs", args.people, seconds=args.fast_seconds, **common)
    bare = await run_bare(args.people, seconds=args.fast_seconds, **common)
    return {
        "nightlegs": nightlegs,
        "bare": bare,
        "cpu_per_tap_nightlegs_over_bare": ratio(
            nightlegs["cpu_ms_per_tap"], bare["cpu_ms_per_tap"]
        ),
    }


async def scenario_first(args: argparse.Namespace) -> dict[str, Any]:
    """New people, each making one whole first check: chat-bound calls per tap."""
    async with running("nightlegs") as (api, bot, ready):
        crowd = Crowd(api, args.tap_timeout)
        chats = [FIRST_PERSON + i for i in range(args.people)]
        taken = await asyncio.gather(
            *(crowd.first_check(chat, READ_RANGE, args.arrival) for chat in chats)
        )
        # Whatever trails a result counts too: wait until the bot has been quiet for 1 s.
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            count = len(api.calls)
            await asyncio.sleep(1.0)
            if len(api.calls) == count:
                break
        violations = len(api.violations)
        per_chat: dict[int, int] = dict.fromkeys(chats, 0)
        for call in api.calls:
            chat = _chat_of(call)
            if call.method in CHAT_BOUND and chat in per_chat:
                per_chat[chat] += 1
        started = ready
    done = [(chat, taps) for chat, taps in zip(chats, taken, strict=True) if taps is not None]
    taps = sum(t for _, t in done)
    calls = sum(per_chat[chat] for chat, _ in done)
    extra = [per_chat[chat] - t for chat, t in done]
    per_tap = calls / taps if taps else None
    return latency_stats(crowd.taps, started, time.monotonic()) | {
        "people": args.people,
        "checks_completed": len(done),
        "taps": taps,
        "taps_per_check_mean": round(taps / len(done), 1) if done else None,
        "chat_bound_calls": calls,
        "chat_bound_calls_per_tap": round(per_tap, 3) if per_tap else None,
        "ceiling_taps_per_s": round(TELEGRAM_PER_SECOND / per_tap, 1) if per_tap else None,
        "calls_above_taps_per_check_max": max(extra) if extra else None,
        "calls_above_taps_per_check_mean": round(sum(extra) / len(extra), 2) if extra else None,
        "log_error_lines": sum(len(v) for v in bot.log_problems.values()),
        "log_errors_first": next(iter(bot.log_problems.values()), [None])[0],
        "stuck_people": crowd.stuck,
        "unanswered_callbacks": crowd.unanswered,
        "violations": violations,
    }


async def _exporter(crowd: Crowd, stop_at: float) -> list[float]:
    """/export, then the 90-day ZIP, again and again; returns seconds from tap to document."""
    api, durations = crowd.api, []

    def has_zip(message: SentMessage) -> bool:
        return any(text.startswith(ZIP_90_PREFIX) for text, _ in message.buttons)

    while time.monotonic() < stop_at:
        menu = api.expect_keyboard(EXPORTER_CHAT, _key(api.latest_keyboard(EXPORTER_CHAT)), has_zip)
        api.feed_message(EXPORTER_CHAT, "/export")
        if await _within(menu, time.monotonic() + crowd.tap_timeout) is None:
            crowd.stuck += 1
            return durations
        message = api.latest_keyboard(EXPORTER_CHAT)
        assert message is not None
        data = next(d for t, d in message.buttons if t.startswith(ZIP_90_PREFIX) and d)
        document = api.expect_method(EXPORTER_CHAT, "sendDocument")
        fed = time.monotonic()
        update = api.feed_callback(EXPORTER_CHAT, message.message_id, data)
        answered = api.expect_answer(str(update["callback_query"]["id"]))
        sent = await _within(document, fed + 4 * crowd.tap_timeout)
        if sent is None:
            crowd.stuck += 1
            return durations
        durations.append(sent - fed)
        await _within(answered, fed + 4 * crowd.tap_timeout)
    return durations


async def scenario_export(args: argparse.Namespace) -> dict[str, Any]:
    def seed(db_url: str) -> None:
        seed_export_user(db_url, EXPORTER_CHAT)

    async with running("nightlegs", seed) as (api, bot, ready):
        crowd = Crowd(api, args.tap_timeout)
        idle_start = ready + args.warmup
        export_start = idle_start + args.idle_seconds
        end = export_start + args.export_seconds
        tapper = asyncio.create_task(crowd.person(TAPPER_CHAT, end, args.tapper_read))
        await asyncio.sleep(max(0.0, export_start - time.monotonic()))
        durations = await _exporter(crowd, end)
        await tapper
        zips = [c for c in api.calls_of("sendDocument") if c.ok and _chat_of(c) == EXPORTER_CHAT]
        size = len(zips[-1].files["document"].data) if zips and zips[-1].files else 0
    tapper_taps = [t for t in crowd.taps if t.chat == TAPPER_CHAT]
    idle = latency_stats(tapper_taps, idle_start, export_start)
    during = latency_stats(tapper_taps, export_start, end)
    return {
        "tapper_idle": idle,
        "tapper_during_exports": during,
        "p99_during_over_idle": ratio(during["p99_ms"], idle["p99_ms"]),
        "exports": len(durations),
        "export_mean_s": round(sum(durations) / len(durations), 2) if durations else None,
        "zip_kb": round(size / 1024, 1),
        "stuck": crowd.stuck,
        "log_error_lines": sum(len(v) for v in bot.log_problems.values()),
    }


async def scenario_fanout(args: argparse.Namespace) -> dict[str, Any]:
    users = args.fanout_users

    def seed(db_url: str) -> None:
        seed_fanout(db_url, users)

    started = time.monotonic()
    async with running("nightlegs", seed) as (api, bot, ready):
        seeded_s = ready - started
        api.watch_chats = set(range(FIRST_FANOUT, FIRST_FANOUT + users))
        api.watch_target = users
        api.watch_done = asyncio.get_running_loop().create_future()
        crowd = Crowd(api, args.tap_timeout)
        deadline = ready + 60.0 + 2.0 * users / TELEGRAM_PER_SECOND
        tapper = asyncio.create_task(crowd.person(TAPPER_CHAT, deadline, args.tapper_read))
        finished = await _within(api.watch_done, deadline)
        tapper.cancel()  # the tapper stops with the fan-out
        with contextlib.suppress(asyncio.CancelledError):
            await tapper
        sends = {chat: times for chat, times in api.watched_sends.items()}
    firsts = [times[0] for times in sends.values()]
    first = min(firsts) if firsts else ready
    last = max(firsts) if firsts else ready
    # The check-ins are due before the bot starts: the fan-out runs from its first poll (the
    # dispatcher's first run is part of it) to the last check-in sent.
    tapper = latency_stats(crowd.taps, ready, last if finished else deadline)
    duration = last - first
    return {
        "users": users,
        "checkins_sent": len(sends),
        "chats_with_two": sum(1 for times in sends.values() if len(times) > 1),
        "first_checkin_after_ready_s": round(first - ready, 1) if firsts else None,
        "last_checkin_after_ready_s": round(last - ready, 1) if firsts else None,
        "fanout_s": round(duration, 1),
        "checkins_per_s": round(len(sends) / duration, 1) if duration > 0 else None,
        "tapper": tapper,
        "complete": finished is not None,
        "stuck": crowd.stuck,
        "setup_s": round(seeded_s, 1),
        "log_error_lines": sum(len(v) for v in bot.log_problems.values()),
    }


# --- report ------------------------------------------------------------------------------------


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:,.2f}" if abs(value) < 10 else f"{value:,.0f}"
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    return text + unit


def _table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [f"\n{title}"]
    for row in [header, ["-" * w for w in widths], *rows]:
        lines.append("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


def _log_line(run: dict[str, Any], name: str) -> str | None:
    if not run.get("log_error_lines"):
        return None
    first = run.get("log_errors_first")
    return f"  ! {name}: {run['log_error_lines']} ERROR/traceback line(s) in the logs" + (
        f", first: {first}" if first else ""
    )


def _webhook_line(run: dict[str, Any], name: str) -> str | None:
    if run.get("webhook_posts") is None:
        return None
    return (
        f"  {name}: {run['webhook_posts']:,} webhook posts, "
        f"{run['webhook_posts_not_200']} answered other than 200 (posted again)"
    )


def _languages_report(r: dict[str, Any]) -> list[str]:
    out = [f"\nlanguages: the fast crowd in each language, {len(r['runs']['en'])} runs each"]
    for code, f in r["figures"].items():
        over = r["over_english"].get(code)
        tail = (
            ""
            if over is None
            else f"   over English: CPU {_fmt(over['cpu_ms_per_tap'])}, p99 "
            f"{_fmt(over['p99_ms'])}, RSS {_fmt(over['peak_rss_mb'])}"
        )
        out.append(
            f"  {code:6} CPU/tap {_fmt(f['cpu_ms_per_tap'], ' ms')}, p99 "
            f"{_fmt(f['p99_ms'], ' ms')}, peak RSS {_fmt(f['peak_rss_mb'], ' MB')}{tail}"
        )
    out.append("  (target: each within 1.10 of English)")
    return out


def report(results: dict[str, Any]) -> str:
    out = [f"\n{results.get('deployment', '')}"]
    if "read" in results:
        r = results["read"]
        rows = [
            [
                name,
                _fmt(r[key]["people"]),
                _fmt(r[key]["taps"]),
                _fmt(r[key]["p50_ms"], " ms"),
                _fmt(r[key]["p99_ms"], " ms"),
                _fmt(r[key]["timeouts"]),
            ]
            for name, key in (
                ("nightlegs, crowd", "nightlegs"),
                ("bare PTB, crowd", "bare"),
                ("nightlegs, alone", "nightlegs_alone"),
            )
        ]
        out.append(
            _table(
                "read: people reading 2-4 s before each tap",
                ["bot", "people", "taps", "p50", "p99", "timeouts"],
                rows,
            )
        )
        out.append(
            f"  p99(crowd) / p99(alone)    = {_fmt(r['p99_crowd_over_alone'])}   (target <= 3)"
        )
        out.append(
            f"  p99(nightlegs) / p99(bare) = {_fmt(r['p99_nightlegs_over_bare'])}   (target <= 0.5)"
        )
        lags = ", ".join(
            f"{key} {_fmt(r[key].get('bench_loop_lag_max_ms'), ' ms')}"
            for key in ("nightlegs", "bare", "nightlegs_alone")
        )
        out.append(f"  this process's event loop late by at most: {lags}")
        for key in ("nightlegs", "bare", "nightlegs_alone"):
            out.extend(filter(None, [_webhook_line(r[key], key), _log_line(r[key], key)]))
    if "fast" in results:
        r = results["fast"]
        rows = [
            [
                name,
                _fmt(r[key]["taps_per_s"]),
                _fmt(r[key]["p50_ms"], " ms"),
                _fmt(r[key]["p99_ms"], " ms"),
                _fmt(r[key]["api_calls_per_tap"]),
                _fmt(r[key]["chat_bound_calls_per_tap"]),
                _fmt(r[key]["ceiling_taps_per_s"]),
                _fmt(r[key]["cpu_ms_per_tap"], " ms"),
                _fmt(r[key].get("db_cpu_ms_per_tap"), " ms"),
                _fmt(r[key]["peak_rss_mb"], " MB"),
            ]
            for name, key in (("nightlegs", "nightlegs"), ("bare PTB", "bare"))
        ]
        out.append(
            _table(
                f"fast: {r['nightlegs']['people']} people tapping as fast as the bot answers",
                [
                    "bot",
                    "taps/s",
                    "p50",
                    "p99",
                    "calls/tap",
                    "chat-bound/tap",
                    "30÷chat-bound",
                    "CPU/tap",
                    "DB CPU/tap",
                    "peak RSS",
                ],
                rows,
            )
        )
        out.append(
            f"  CPU per tap nightlegs / bare = {_fmt(r['cpu_per_tap_nightlegs_over_bare'])}"
            "   (target <= 1.5; peak RSS target <= 80 MB)"
        )
        n = r["nightlegs"]
        if n.get("processes", 1) > 1:
            out.append(
                f"  {n['processes']} instances: CPU/tap is their sum, peak RSS the largest "
                f"({_fmt(n['peak_rss_total_mb'], ' MB')} together)"
            )
        if n.get("db_cpu_ms_per_tap") is not None:
            out.append(
                f"  nightlegs + PostgreSQL server CPU per tap = "
                f"{_fmt(n['cpu_ms_per_tap'] + n['db_cpu_ms_per_tap'], ' ms')}"
            )
        for key in ("nightlegs", "bare"):
            out.extend(filter(None, [_webhook_line(r[key], key), _log_line(r[key], key)]))
    if "export" in results:
        r = results["export"]
        rows = [
            [
                name,
                _fmt(r[key]["taps"]),
                _fmt(r[key]["p50_ms"], " ms"),
                _fmt(r[key]["p99_ms"], " ms"),
                _fmt(r[key]["timeouts"]),
            ]
            for name, key in (
                ("idle", "tapper_idle"),
                ("during ZIP exports", "tapper_during_exports"),
            )
        ]
        out.append(
            _table(
                f"export: one person taps while another downloads the {EXPORT_NIGHTS}-night ZIP",
                ["tapper", "taps", "p50", "p99", "timeouts"],
                rows,
            )
        )
        out.append(
            f"  exports: {r['exports']} (mean {_fmt(r['export_mean_s'], ' s')} from tap "
            f"to document, {_fmt(r['zip_kb'], ' kB')})"
        )
        out.append(f"  p99 during / idle = {_fmt(r['p99_during_over_idle'])}   (target <= 2)")
    if "fanout" in results:
        r = results["fanout"]
        t = r["tapper"]
        out.append(
            f"\nfanout: {r['users']:,} check-ins due at the first dispatch, one person tapping"
        )
        out.append(
            f"  check-ins sent: {r['checkins_sent']:,} of {r['users']:,}, the first "
            f"{_fmt(r['first_checkin_after_ready_s'], ' s')} and the last "
            f"{_fmt(r['last_checkin_after_ready_s'], ' s')} after the bot began polling "
            f"({_fmt(r['checkins_per_s'])}/s from first to last; chats with two: "
            f"{r['chats_with_two']})"
        )
        out.append(
            f"  tapper until the last check-in: {t['taps']} taps, p50 {_fmt(t['p50_ms'], ' ms')}"
            f", p99 {_fmt(t['p99_ms'], ' ms')}, max {_fmt(t['max_ms'], ' ms')}, timeouts "
            f"{t['timeouts']}   (target p99 <= 500 ms)"
        )
    if "seal" in results:
        r = results["seal"]
        cpu = r["cpu_ms_per_tap"]
        out.append(
            f"\nseal: the fast crowd with sealing on and off, {len(r['runs']['sealed'])} runs each"
        )
        for name in ("sealed", "unsealed"):
            each = ", ".join(_fmt(x["cpu_ms_per_tap"], " ms") for x in r["runs"][name])
            out.append(f"  {name}: CPU/tap {_fmt(cpu[name], ' ms')} (runs: {each})")
        out.append(
            f"  CPU per tap sealed / unsealed = {_fmt(r['cpu_per_tap_sealed_over_unsealed'])}"
            "   (target <= 1.10)"
        )
    if "languages" in results:
        out.extend(_languages_report(results["languages"]))
    if "first" in results:
        r = results["first"]
        out.append(
            f"\nfirst: {r['people']} new people, each one whole first check from /start to the"
            " result"
        )
        out.append(
            f"  checks completed {r['checks_completed']}, {r['taps']} taps "
            f"({_fmt(r['taps_per_check_mean'])} a check), {r['chat_bound_calls']} chat-bound calls"
        )
        out.append(
            f"  chat-bound calls per tap {_fmt(r['chat_bound_calls_per_tap'])}, "
            f"30 ÷ that = {_fmt(r['ceiling_taps_per_s'])} taps/s"
        )
        out.append(
            f"  calls above taps per check: mean {_fmt(r['calls_above_taps_per_check_mean'])}, "
            f"max {_fmt(r['calls_above_taps_per_check_max'])}   (target <= 2)"
        )
        out.append(
            f"  tap latency p50 {_fmt(r['p50_ms'], ' ms')}, p99 {_fmt(r['p99_ms'], ' ms')}; "
            f"stuck {r['stuck_people']}, unanswered {r['unanswered_callbacks']}, "
            f"violations {r['violations']}"
        )
        out.extend(filter(None, [_log_line(r, "nightlegs")]))
    return "\n".join(out)


def parse_range(text: str) -> tuple[float, float]:
    low, _, high = text.partition(",")
    return float(low), float(high or low)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help=f"any of {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run (< 1 minute)")
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="nightlegs' database: a SQLite file (polling), or a throwaway PostgreSQL server "
        "(webhook mode)",
    )
    parser.add_argument(
        "--instances",
        type=int,
        default=1,
        help="nightlegs processes on the one database (2 or more need --database postgresql)",
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="run nightlegs on this existing database (kept; new people on top of its rows)",
    )
    parser.add_argument("--skip-bare", action="store_true", help="leave out the bare PTB runs")
    parser.add_argument("--logs", type=Path, help="keep a copy of every process's log here")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--people", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0, help="read: measured seconds")
    parser.add_argument(
        "--solo-seconds",
        type=float,
        default=30.0,
        help="read: measured seconds for the person alone",
    )
    parser.add_argument(
        "--arrival",
        type=float,
        default=2.0,
        help="read: the people come in at random over this many seconds; measuring starts"
        " once all are in. 2 (the issue's 'at once'): their results land in the same few"
        " seconds; 20 (about one check) spreads them as people who do not know each other",
    )
    parser.add_argument("--fast-seconds", type=float, default=15.0)
    parser.add_argument(
        "--seal-rounds",
        type=int,
        default=2,
        help="seal: runs with sealing on and off, each; languages: runs in each language",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=8.0,
        help="seconds after the bot polls before measuring (50 people starting at the same"
        " instant make a burst Telegram's 30 a second spreads over about 6 s)",
    )
    parser.add_argument("--idle-seconds", type=float, default=15.0)
    parser.add_argument("--export-seconds", type=float, default=20.0)
    parser.add_argument(
        "--tapper-read",
        type=parse_range,
        default=(0.3, 1.0),
        help="export/fanout: the tapper's reading time, LOW,HIGH seconds",
    )
    parser.add_argument(
        "--latency",
        type=parse_range,
        default=None,
        help="the stand-in answers each call LOW,HIGH seconds late, uniformly at random (e.g."
        " 0.05,0.3: a bot far from Telegram's servers); default: at once",
    )
    parser.add_argument("--fanout-users", type=int, default=2000)

    parser.add_argument("--tap-timeout", type=float, default=30.0)
    parser.add_argument(
        "--bare-no-limiter",
        action="store_true",
        help="run the bare baseline without AIORateLimiter (not the acceptance setup)",
    )
    args = parser.parse_args()
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    if args.instances < 1:
        parser.error("--instances must be at least 1")
    if args.instances > 1 and args.database != "postgresql":
        parser.error("several instances need --database postgresql (SQLite has one writer)")
    if args.quick:
        args.people = min(args.people, 20)
        args.seconds = args.solo_seconds = 4.0
        args.fast_seconds = 3.0
        args.warmup = 1.0
        args.idle_seconds, args.export_seconds = 3.0, 4.0
        args.fanout_users = min(args.fanout_users, 60)
        args.tap_timeout = min(args.tap_timeout, 15.0)
    return args


def main() -> None:
    args = parse_args()
    BotProcess.bare_limiter = not args.bare_no_limiter
    ObservedStub.latency = args.latency
    Deployment.database, Deployment.instances = args.database, args.instances
    Deployment.logs_dir = args.logs
    Deployment.database_url, Deployment.skip_bare = args.database_url, args.skip_bare
    if args.database_url is not None and args.database_url.startswith("postgres"):
        Deployment.database = "postgresql"  # webhook mode, on that server
    chosen = [s for s in SCENARIOS if s in args.scenarios] or list(DEFAULT_SCENARIOS)
    runners = {
        "read": scenario_read,
        "fast": scenario_fast,
        "export": scenario_export,
        "fanout": scenario_fanout,
        "first": scenario_first,
        "seal": scenario_seal,
        "languages": scenario_languages,
    }
    results: dict[str, Any] = {
        "cores": os.cpu_count(),
        "quick": args.quick,
        "bare_rate_limiter": not args.bare_no_limiter,
        "database": args.database,
        "instances": args.instances,
        "deployment": Deployment.describe(),
        "settings": {
            k: str(v) if isinstance(v, Path) else v
            for k, v in vars(args).items()
            if k not in ("json", "scenarios")
        },
    }
    began = time.monotonic()
    load_before = round(os.getloadavg()[0], 2)
    if args.database == "postgresql" and args.database_url is None:
        from tests.postgres import PostgresServer  # noqa: PLC0415 (only for PostgreSQL)

        Deployment.postgres = PostgresServer.start_new()
    try:
        for name in chosen:
            print(f"running {name} ...", end=" ", file=sys.stderr, flush=True)
            started = time.monotonic()
            results[name] = asyncio.run(with_lag_watch(runners[name](args)))
            print(f"{time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    finally:
        if Deployment.postgres is not None:
            Deployment.postgres.stop()
    results["total_s"] = round(time.monotonic() - began, 1)
    results["load_average_1m_before_after"] = [load_before, round(os.getloadavg()[0], 2)]
    print(report(results))
    print(
        f"\n(total {results['total_s']:.0f} s on {results['cores']} cores; 1-minute load "
        f"average {load_before} before, {os.getloadavg()[0]:.2f} after: anything else busy on "
        "the machine skews the figures)"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
