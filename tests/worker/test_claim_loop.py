"""A claim loop ends only when asked to: anything else that ends it starts it again."""

from __future__ import annotations

import asyncio

import pytest

from support.waiting import eventually
from workers.claim_loop import BATCH, ClaimLoop


class Scripted(ClaimLoop[str, str]):
    """Claims what `due` holds; its first claims raise what `faults` holds."""

    name = "scripted"

    def __init__(self, faults: list[BaseException]) -> None:
        super().__init__(concurrency=4, call_timeout=1.0)
        self.faults = faults
        self.due: list[str] = []
        self.written: list[str] = []

    async def claim(self, limit: int) -> list[str]:
        if self.faults:
            raise self.faults.pop(0)
        taken, self.due = self.due[:limit], self.due[limit:]
        return taken

    async def handle(self, item: str) -> None:
        self.writer.add(item)

    async def write(self, batch: list[str]) -> None:
        self.written += batch


async def test_a_loop_cancelled_from_inside_starts_again_and_stops_when_asked() -> None:
    # A CancelledError not aimed at the loop's task (a library's stray one).
    loop = Scripted([asyncio.CancelledError()])
    loop.due = ["a", "b"]
    stopping = asyncio.Event()
    task = asyncio.create_task(loop.keep_running(stopping))

    async def both_written() -> bool:
        return sorted(loop.written) == ["a", "b"]

    await eventually(both_written, 5.0, "the loop started again and handled the items")
    assert not task.done()
    stopping.set()
    await asyncio.wait_for(task, 5.0)


async def test_an_exception_escaping_the_loop_starts_it_again() -> None:
    loop = Scripted([])
    stopping = asyncio.Event()

    async def idle_fails_once(_stopping: asyncio.Event) -> None:
        loop._idle = original  # type: ignore[method-assign]
        raise RuntimeError("boom")

    original = loop._idle
    loop._idle = idle_fails_once  # type: ignore[method-assign]
    task = asyncio.create_task(loop.keep_running(stopping))
    await asyncio.sleep(0.05)
    loop.due = ["c"]

    async def written() -> bool:
        return loop.written == ["c"]

    await eventually(written, 5.0, "the loop started again after the exception")
    stopping.set()
    await asyncio.wait_for(task, 5.0)


async def test_cancelling_the_loop_itself_ends_it() -> None:
    loop = Scripted([])
    task = asyncio.create_task(loop.keep_running(asyncio.Event()))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


class SlowWriter(Scripted):
    """Writes nothing until `release` is set: the writer falls behind."""

    def __init__(self) -> None:
        super().__init__([])
        self.release = asyncio.Event()
        self.handled = 0

    async def handle(self, item: str) -> None:
        self.handled += 1
        self.writer.add(item)

    async def write(self, batch: list[str]) -> None:
        await self.release.wait()
        self.written += batch


async def test_nothing_more_starts_while_the_writer_is_a_batch_behind() -> None:
    loop = SlowWriter()
    loop.due = [str(n) for n in range(BATCH + 200)]
    stopping = asyncio.Event()
    task = asyncio.create_task(loop.keep_running(stopping))

    async def behind() -> bool:
        return loop.handled >= BATCH

    await eventually(behind, 5.0, "the loop handled a batch")
    await asyncio.sleep(0.2)
    assert loop.handled < BATCH + loop.concurrency, "it went on while nothing was written"
    loop.release.set()

    async def all_written() -> bool:
        return sorted(loop.written) == sorted(str(n) for n in range(BATCH + 200))

    await eventually(all_written, 5.0, "the rest handled once the writer caught up")
    stopping.set()
    await asyncio.wait_for(task, 5.0)


class Ahead(Scripted):
    """Claims ahead; each item takes 10 ms; notes how many items it holds (in its
    slots and waiting for one) after each claim."""

    ahead = True

    def __init__(self) -> None:
        super().__init__([])
        self.held: list[int] = []

    async def claim(self, limit: int) -> list[str]:
        claimed = await super().claim(limit)
        self.held.append(self.in_flight + len(self.waiting) + len(claimed))
        return claimed

    async def handle(self, item: str) -> None:
        await asyncio.sleep(0.01)
        self.writer.add(item)


async def test_a_loop_claiming_ahead_claims_for_busy_slots_once_it_knows_its_pace() -> None:
    loop = Ahead()
    loop.due = [str(n) for n in range(2000)]
    stopping = asyncio.Event()
    task = asyncio.create_task(loop.keep_running(stopping))
    await asyncio.sleep(1.6)  # past the first second: the loop's pace is known
    stopping.set()
    await asyncio.wait_for(task, 5.0)
    assert max(loop.held) > loop.concurrency, "it claimed for busy slots too"
    # What waits is capped at the slots' count (a quarter second here would be 100).
    assert max(loop.held) <= 2 * loop.concurrency
    assert len(set(loop.written)) == len(loop.written), "each item handled once"
