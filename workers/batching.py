"""Collect results from many concurrent calls and write them to Redis in batches."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
logger = logging.getLogger("relay.worker")

RETRY_SLEEP = 0.5  # seconds between two tries of a failed flush
STOP_TRIES = 3  # failed flushes in a row, once stopping, before the rest is left


class BatchWriter(Generic[Item]):
    """Items added from any coroutine are flushed by one writer task, many per round trip.

    A failed flush (Redis away) keeps the items and tries again, so nothing
    decided is dropped while the process lives; if it dies, the leases of
    the unwritten claims run out and the work is simply done again. Once the
    process stops, STOP_TRIES failures in a row leave the rest to those leases
    as a death would, rather than hold the exit until its grace runs out.
    """

    def __init__(
        self, flush: Callable[[list[Item]], Awaitable[object]], *, max_batch: int = 500
    ) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._items: list[Item] = []
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, item: Item) -> None:
        self._items.append(item)
        self._idle.clear()
        self._ready.set()

    async def run(self, stopping: asyncio.Event) -> None:
        failed_stopping = 0  # flushes failed in a row once `stopping` is set
        while True:
            if not self._items:
                self._idle.set()
                if stopping.is_set():
                    return
                self._ready.clear()
                waiter = asyncio.ensure_future(self._ready.wait())
                stopper = asyncio.ensure_future(stopping.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                continue
            batch = self._items[: self._max_batch]
            try:
                await self._flush(batch)
            except Exception:
                failed_stopping = failed_stopping + 1 if stopping.is_set() else 0
                if failed_stopping >= STOP_TRIES:
                    # Redis is away as the process stops (as when both get a SIGTERM):
                    # retrying until the grace runs out would only delay the exit.
                    logger.error(
                        "%d results not written as the worker stops; their claims' "
                        "leases bring the work back",
                        len(self._items),
                    )
                    self._items.clear()
                    self._idle.set()
                    return
                logger.exception("batch write failed; retrying")
                await asyncio.sleep(RETRY_SLEEP)
                continue
            del self._items[: len(batch)]

    async def drained(self) -> None:
        await self._idle.wait()

    def __len__(self) -> int:
        return len(self._items)
