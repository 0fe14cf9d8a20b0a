"""Start several nightlegs instances on one database, in webhook mode, to try running at scale.

    # N instances for a real deployment: each listens on its own port, behind your proxy
    DATABASE_URL=postgresql+psycopg://... TELEGRAM_BOT_TOKEN=... \\
    WEBHOOK_URL=https://bot.example.org/telegram/hook WEBHOOK_SECRET=... \\
        .venv/bin/python scripts/run_instances.py 3 --first-port 8081

    # Or all on this machine, against the tests' stand-in Bot API, which delivers webhooks to
    # the instances like Telegram behind a load balancer, while simulated people tap:
    DATABASE_URL=postgresql+psycopg://... .venv/bin/python scripts/run_instances.py 3 --stand-in

Each instance gets `INSTANCE_NAME=instance-<n>` and `WEBHOOK_LISTEN=127.0.0.1:<port>`; its
output goes to `instance-<n>.log` in the current folder. Ctrl+C stops them all. Several
instances need PostgreSQL: a SQLite file has one writer, so this refuses a SQLite URL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PTB_TIMEDELTA", "true")

SECRET = "run-instances-stand-in"
PATH = "/telegram/hook"


async def start(number: int, port: int, env: dict[str, str]) -> asyncio.subprocess.Process:
    log = Path(f"instance-{number}.log").open("wb")  # noqa: SIM115 - the child keeps it
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        env={**env, "INSTANCE_NAME": f"instance-{number}", "WEBHOOK_LISTEN": f"127.0.0.1:{port}"},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )


async def main(count: int, first_port: int, stand_in: bool, people: int) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    url = env.get("DATABASE_URL", "")
    if not url.startswith(("postgresql", "postgres:")):
        print("Several instances need DATABASE_URL=postgresql+psycopg://...", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    ports = [first_port + n for n in range(count)]
    async with contextlib.AsyncExitStack() as stack:
        api = None
        if stand_in:
            from tests.botapi_stub import BotApiStub  # noqa: PLC0415 - only for --stand-in

            api = await stack.enter_async_context(BotApiStub())
            env |= {
                "TELEGRAM_BOT_TOKEN": api.token,
                "TELEGRAM_API_URL": api.root,
                "WEBHOOK_URL": f"https://bot.test{PATH}",
                "WEBHOOK_SECRET": SECRET,
            }
        processes = [await start(n, port, env) for n, port in enumerate(ports)]
        print(f"{count} instances on ports {ports[0]}-{ports[-1]}; logs in instance-*.log")
        tasks = []
        if api is not None:
            from tests.test_crash_delivery import converse, make_people  # noqa: PLC0415

            targets = [f"http://127.0.0.1:{port}{PATH}" for port in ports]
            tasks.append(
                asyncio.create_task(api.deliver_webhooks(targets, secret=SECRET, stop=stop))
            )
            await api.wait_for_call("setWebhook", timeout=30)
            crowd = make_people(random.Random(1))[:people]
            talks = asyncio.gather(*(converse(api, person) for person in crowd))
            done = await talks
            print(f"{len(done)} simulated people went through a check; Ctrl+C stops")
        await stop.wait()
        for process in processes:
            process.send_signal(signal.SIGTERM)
        await asyncio.gather(*(p.wait() for p in processes))
        for task in tasks:
            await task
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, nargs="?", default=3)
    parser.add_argument("--first-port", type=int, default=8081)
    parser.add_argument("--stand-in", action="store_true", help="the tests' Bot API, locally")
    parser.add_argument("--people", type=int, default=10, help="simulated people (--stand-in)")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.count, args.first_port, args.stand_in, args.people)))
