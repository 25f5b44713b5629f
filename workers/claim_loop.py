"""The loop both the poller and the deliverer run: claim due work, handle it, write back."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from typing import Generic, TypeVar

from workers.batching import BatchWriter

Item = TypeVar("Item")
Written = TypeVar("Written")

logger = logging.getLogger("relay.worker")

BATCH = 500  # items claimed per round trip at most
ERROR_SLEEP = 1.0  # after Redis failed to answer a claim
AHEAD_SECONDS = 0.25  # claimed items wait this long at most, at the loop's pace (`ahead`)


class ClaimLoop(Generic[Item, Written]):
    """Claims due items in batches, handles each concurrently (at most `concurrency` at
    once), and writes what the handlers decided in batches through one writer.

    Subclasses say how to claim, handle and write. A handler that fails loses
    nothing: its claim's lease runs out and the item comes due again.

    A loop with `ahead` set also claims items for slots still busy: they wait
    in order and the first slot to free takes the next. Claims are then fewer
    and larger (each claim costs a round trip and a call per shard, however
    few it takes), bounded by time: no more wait than the loop finishes in
    AHEAD_SECONDS at its current pace.

    Nothing new is claimed or started while the writer is a whole batch
    behind (`backlogged`): in a busy process the work would otherwise run
    ahead of its own results, and the results are what clients wait for.
    """

    name = "loop"
    idle_sleep = 0.05  # seconds between claims when nothing is due
    ahead = False  # claim for busy slots too (see above)
    full_claim = 1  # with `ahead`: a claim waits until this many fit, unless a slot is idle

    def __init__(self, *, concurrency: int, call_timeout: float) -> None:
        self.concurrency = concurrency
        self.call_timeout = call_timeout  # how long one handler may take, at most
        self.in_flight = 0  # slots busy
        self.waiting: collections.deque[Item] = collections.deque()  # claimed, no slot yet
        self.writer: BatchWriter[Written] = BatchWriter(self.write)
        # Set by whoever just made work for this loop in this process: ends an idle sleep.
        self.wake = asyncio.Event()
        self._pace = Pace()

    async def claim(self, limit: int) -> list[Item]:
        raise NotImplementedError

    async def handle(self, item: Item) -> None:
        raise NotImplementedError

    async def write(self, batch: list[Written]) -> None:
        raise NotImplementedError

    def backlogged(self) -> bool:
        """More handled than the writer has written, by a whole batch: what is written is
        the news, so no more is started until the writer catches up (a busy process
        would otherwise keep starting work while its results wait)."""
        return len(self.writer) >= BATCH

    def room(self) -> int:
        """How many items the next claim may take now; 0 to wait for a slot first."""
        if self.backlogged():
            return 0
        ahead = min(self.concurrency, self._pace.per_second(AHEAD_SECONDS)) if self.ahead else 0
        room = min(self.concurrency + ahead - self.in_flight - len(self.waiting), BATCH)
        idle_slot = self.in_flight < self.concurrency  # and so nothing waits
        if room <= 0 or (room < self.full_claim and not idle_slot):
            return 0
        return room

    async def run(self, stopping: asyncio.Event) -> None:
        # The writer has its own stop: it must outlive the calls still in flight.
        writer_stop = asyncio.Event()
        writer = asyncio.create_task(self.writer.run(writer_stop))
        slots: set[asyncio.Task[None]] = set()
        try:
            while not stopping.is_set():
                self._start(slots)  # what waits, in the slots left by a backlog
                limit = self.room()
                if limit <= 0:
                    await asyncio.sleep(0.005)
                    continue
                try:
                    claimed = await self.claim(limit)
                except Exception as exc:  # Redis away: wait and try again
                    logger.warning("%s: claim failed: %s", self.name, exc)
                    await sleep_unless(stopping, ERROR_SLEEP)
                    continue
                self.waiting.extend(claimed)
                self._start(slots)
                if len(claimed) < limit:
                    await self._idle(stopping)
        finally:
            # Finish what was started and what waits for it (bounded by the call
            # timeout: the rest comes back when its lease ends), then write it.
            if slots:
                await asyncio.wait(slots, timeout=self.call_timeout + 1)
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

    def _start(self, slots: set[asyncio.Task[None]]) -> None:
        """Waiting items into free slots, unless the writer is behind."""
        while self.waiting and self.in_flight < self.concurrency and not self.backlogged():
            self.in_flight += 1
            slot = asyncio.create_task(self._slot(self.waiting.popleft()))
            slots.add(slot)
            slot.add_done_callback(slots.discard)

    async def _slot(self, item: Item) -> None:
        """One slot: handles its item, then whatever waits, until nothing does (or the
        writer is a batch behind: the loop starts the rest once it has caught up)."""
        try:
            while True:
                try:
                    await self.handle(item)
                except Exception:
                    logger.exception(
                        "%s: handling %r failed; its lease will bring it back", self.name, item
                    )
                self._pace.count()
                if not self.waiting or self.backlogged():
                    return
                item = self.waiting.popleft()
        finally:
            self.in_flight -= 1


class Pace:
    """How many items a loop finishes per second, over the last second or so."""

    def __init__(self) -> None:
        self._count = 0
        self._since = time.monotonic()
        self._rate = 0.0

    def count(self) -> None:
        self._count += 1

    def per_second(self, seconds: float) -> int:
        """About how many items the loop finishes in `seconds`, at its current pace."""
        now = time.monotonic()
        if now - self._since >= 1.0:
            self._rate = self._count / (now - self._since)
            self._count, self._since = 0, now
        return int(self._rate * seconds)


async def sleep_unless(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
