"""The batch writer: failed flushes tried again while the process lives, not past its stop."""

from __future__ import annotations

import asyncio

from workers import batching
from workers.batching import BatchWriter


class Flaky:
    """A flush failing its first `failures` calls, then writing."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.written: list[int] = []
        self.calls = 0

    async def __call__(self, batch: list[int]) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("Redis away")
        self.written += batch


async def test_a_failing_flush_is_tried_again_until_it_writes() -> None:
    flush = Flaky(failures=4)
    writer: BatchWriter[int] = BatchWriter(flush)
    stopping = asyncio.Event()
    task = asyncio.create_task(writer.run(stopping))
    writer.add(1)
    writer.add(2)
    await asyncio.wait_for(writer.drained(), 5 * batching.RETRY_SLEEP + 2)
    assert flush.written == [1, 2] and flush.calls == 5
    stopping.set()
    await asyncio.wait_for(task, 1)


async def test_once_stopping_a_few_failures_in_a_row_leave_the_rest_to_the_leases() -> None:
    flush = Flaky(failures=1_000)
    writer: BatchWriter[int] = BatchWriter(flush)
    stopping = asyncio.Event()
    writer.add(1)
    stopping.set()
    await asyncio.wait_for(writer.run(stopping), batching.STOP_TRIES * batching.RETRY_SLEEP + 2)
    assert flush.calls == batching.STOP_TRIES and flush.written == [] and len(writer) == 0


async def test_once_stopping_a_flush_that_recovers_still_writes() -> None:
    flush = Flaky(failures=batching.STOP_TRIES - 1)
    writer: BatchWriter[int] = BatchWriter(flush)
    stopping = asyncio.Event()
    writer.add(7)
    stopping.set()
    await asyncio.wait_for(writer.run(stopping), batching.STOP_TRIES * batching.RETRY_SLEEP + 2)
    assert flush.written == [7]
