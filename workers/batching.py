"""Collect results from many concurrent calls and write them to Redis in batches."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
logger = logging.getLogger("relay.worker")


class BatchWriter(Generic[Item]):
    """Items added from any coroutine are flushed by one writer task, many per round trip.

    A failed flush (Redis away) keeps the items and tries again, so nothing
    decided is dropped while the process lives; if it dies, the leases of
    the unwritten claims run out and the work is simply done again.
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
                logger.exception("batch write failed; retrying")
                await asyncio.sleep(0.5)
                continue
            del self._items[: len(batch)]

    async def drained(self) -> None:
        await self._idle.wait()

    def __len__(self) -> int:
        return len(self._items)
