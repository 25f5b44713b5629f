"""The loop both the poller and the deliverer run: claim due work, handle it, write back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Generic, TypeVar

from workers.batching import BatchWriter

Item = TypeVar("Item")
Written = TypeVar("Written")

logger = logging.getLogger("relay.worker")

BATCH = 500  # items claimed per round trip at most
ERROR_SLEEP = 1.0  # after Redis failed to answer a claim


class ClaimLoop(Generic[Item, Written]):
    """Claims due items in batches, handles each concurrently (at most `concurrency` at
    once), and writes what the handlers decided in batches through one writer.

    Subclasses say how to claim, handle and write. A handler that fails loses
    nothing: its claim's lease runs out and the item comes due again.
    """

    name = "loop"
    idle_sleep = 0.05  # seconds between claims when nothing is due

    def __init__(self, *, concurrency: int, call_timeout: float) -> None:
        self.concurrency = concurrency
        self.call_timeout = call_timeout  # how long one handler may take, at most
        self.in_flight = 0
        self.writer: BatchWriter[Written] = BatchWriter(self.write)
        # Set by whoever just made work for this loop in this process: ends an idle sleep.
        self.wake = asyncio.Event()

    async def claim(self, limit: int) -> list[Item]:
        raise NotImplementedError

    async def handle(self, item: Item) -> None:
        raise NotImplementedError

    async def write(self, batch: list[Written]) -> None:
        raise NotImplementedError

    async def run(self, stopping: asyncio.Event) -> None:
        # The writer has its own stop: it must outlive the calls still in flight.
        writer_stop = asyncio.Event()
        writer = asyncio.create_task(self.writer.run(writer_stop))
        tasks: set[asyncio.Task[None]] = set()
        try:
            while not stopping.is_set():
                free = min(self.concurrency - self.in_flight, BATCH)
                if free <= 0:
                    await asyncio.sleep(0.005)
                    continue
                try:
                    claimed = await self.claim(free)
                except Exception as exc:  # Redis away: wait and try again
                    logger.warning("%s: claim failed: %s", self.name, exc)
                    await sleep_unless(stopping, ERROR_SLEEP)
                    continue
                for item in claimed:
                    self.in_flight += 1
                    task = asyncio.create_task(self._handle(item))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                if len(claimed) < free:
                    await self._idle(stopping)
        finally:
            # Finish what was started (bounded by the call timeout), then write it.
            if tasks:
                await asyncio.wait(tasks, timeout=self.call_timeout + 1)
            writer_stop.set()
            await writer

    async def keep_running(self, stopping: asyncio.Event) -> None:
        """`run` until `stopping`, started again whenever it ends before: a worker must not
        live on, heartbeat and all, without polling or delivering. A CancelledError that
        is not this task's own (a library's stray one) counts as such an end."""
        while True:
            try:
                await self.run(stopping)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if stopping.is_set() or (task is not None and task.cancelling()):
                    raise
                logger.error("%s: the loop was cancelled from inside; starting it again", self.name)
            except Exception:
                logger.exception("%s: the loop failed; starting it again", self.name)
            if stopping.is_set():
                return
            await sleep_unless(stopping, ERROR_SLEEP)

    async def _idle(self, stopping: asyncio.Event) -> None:
        if not self.wake.is_set():
            waiters = {
                asyncio.ensure_future(stopping.wait()),
                asyncio.ensure_future(self.wake.wait()),
            }
            _, pending = await asyncio.wait(
                waiters, timeout=self.idle_sleep, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending:
                waiter.cancel()
        self.wake.clear()

    async def _handle(self, item: Item) -> None:
        try:
            await self.handle(item)
        except Exception:
            logger.exception(
                "%s: handling %r failed; its lease will bring it back", self.name, item
            )
        finally:
            self.in_flight -= 1


async def sleep_unless(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
