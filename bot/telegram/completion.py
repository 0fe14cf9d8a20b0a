"""Waiting for an update to be committed: what polling and the webhook confirm to Telegram.

An update handed to PTB's update queue is handled later, in its chat's lane
(`lanes.ChatLanes`), which reports each update once its transaction has committed (error
None; a redelivered update that was committed before counts too) or could not commit (the
error). `Completions.finished` is that report; `expect` gives a future for one update id,
made before the update is queued so that the report cannot come first.
"""

from __future__ import annotations

import asyncio


class Completions:
    """Futures of updates in flight, keyed by update id, resolved by `finished`.

    Several waiters may expect one id (Telegram redelivering a webhook update whose first
    delivery is still being handled): the first report resolves them all, and a later copy of
    the update finds it claimed and changes nothing.
    """

    def __init__(self) -> None:
        self._waiting: dict[int, list[asyncio.Future[BaseException | None]]] = {}

    def expect(self, update_id: int) -> asyncio.Future[BaseException | None]:
        """A future that gets the update's result: None once committed, else the error."""
        future: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(update_id, []).append(future)
        return future

    def forget(self, update_id: int, future: asyncio.Future[BaseException | None]) -> None:
        """Stop waiting (the waiter gave up); a no-op once the update has been reported."""
        futures = self._waiting.get(update_id)
        if futures is None:
            return
        if future in futures:
            futures.remove(future)
        if not futures:
            del self._waiting[update_id]

    def finished(self, update_id: int, error: BaseException | None) -> None:
        """`ChatLanes.finished`: the update is committed (error None) or could not be."""
        for future in self._waiting.pop(update_id, []):
            if not future.done():
                future.set_result(error)

    def __len__(self) -> int:
        return sum(len(futures) for futures in self._waiting.values())
