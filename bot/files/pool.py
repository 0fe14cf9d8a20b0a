"""Run CPU-heavy file building in a worker process, so it never delays another person's tap.

The pool is made on first use (a bot that never exports never starts it) and holds one
worker: files are built one at a time, on the other core, while the event loop keeps
answering taps. `spawn` gives the worker a clean interpreter (no copy of the bot's threads
or sockets); it pays the import of matplotlib and fpdf2 once, not the bot. The worker runs at
a lower priority: on a busy machine a file may take a little longer, but the bot itself (and
with it everyone's taps) gets the CPU first.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_pool: ProcessPoolExecutor | None = None


def _get() -> ProcessPoolExecutor:
    global _pool  # noqa: PLW0603 - one pool per process, made lazily
    if _pool is None:
        _pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_lower_priority,
        )
    return _pool


async def run(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`func(*args, **kwargs)` in the worker process; `func` must be importable by name."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_get(), _call, func, args, kwargs)


WORKER_NICENESS = 10


def _lower_priority() -> None:
    if hasattr(os, "nice"):  # POSIX; elsewhere the worker keeps the bot's priority
        os.nice(WORKER_NICENESS)


def _call(func: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
    return func(*args, **kwargs)


def shutdown() -> None:
    """Stop the worker (at the bot's stop); a later `run` starts a new one."""
    global _pool  # noqa: PLW0603
    if _pool is not None:
        _pool.shutdown(wait=True, cancel_futures=True)
        _pool = None
