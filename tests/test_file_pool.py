"""Files are built in a worker process that yields the CPU to the bot (issue 8: an export
must not slow down anyone else's tap)."""

from __future__ import annotations

import os

import pytest

from bot.files import pool

pytestmark = pytest.mark.skipif(not hasattr(os, "nice"), reason="POSIX priorities")


async def test_the_file_worker_runs_at_a_lower_priority_than_the_bot() -> None:
    try:
        worker = await pool.run(os.nice, 0)
        assert worker >= min(19, os.nice(0) + pool.WORKER_NICENESS)
        assert await pool.run(os.getpid) != os.getpid()
    finally:
        pool.shutdown()
