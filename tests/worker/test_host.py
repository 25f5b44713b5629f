"""workers.host: when periodic jobs run, a job that raises, one sweep across workers.

In process, on the session's real Redis (and, for Redis being away, a port where
nothing listens): the host's own behaviour, without waiting for the wall clock's
minutes. `test_worker_process.py` runs the real `relay worker`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

import pytest
from redis.asyncio import Redis

from relay.devtools.redis_server import free_port
from relay.store import keys
from support.waiting import eventually
from workers.host import At, Every, Job, Lock, run_once, run_until
from workers.worker import JOBS

SCHEDULE = {job.name: job for job in JOBS}


def utc(text: str) -> float:
    return datetime.fromisoformat(f"{text}+00:00").timestamp()


@dataclasses.dataclass
class Ctx:
    """What the host needs of a worker: a Redis and a name."""

    redis: Redis
    name: str


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-03-01T10:00:00", "2026-03-01T10:07:30"),
        ("2026-03-01T10:07:29.999", "2026-03-01T10:07:30"),
        ("2026-03-01T10:07:30", "2026-03-01T10:37:30"),  # strictly after: no second run
        ("2026-03-01T10:37:31", "2026-03-01T11:07:30"),
        ("2026-12-31T23:59:59", "2027-01-01T00:07:30"),
    ],
)
def test_the_sweep_runs_at_minutes_7_and_37_second_30(now: str, expected: str) -> None:
    assert SCHEDULE["sweep"].when.after(utc(now)) == utc(expected)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-03-01T10:00:00", "2026-03-01T10:01:00"),
        ("2026-03-01T10:00:59.5", "2026-03-01T10:01:00"),
        ("2026-03-01T10:59:00", "2026-03-01T11:00:00"),
    ],
)
def test_the_report_runs_every_minute_at_second_0(now: str, expected: str) -> None:
    assert SCHEDULE["report"].when.after(utc(now)) == utc(expected)
    assert SCHEDULE["report"].at_start, "the heartbeat is there as soon as the worker is"


@pytest.mark.parametrize(
    "fields", [{"seconds": ()}, {"seconds": (60,)}, {"seconds": (0,), "minutes": (60,)}]
)
def test_times_outside_a_minute_or_an_hour_are_refused(fields: dict[str, tuple[int, ...]]) -> None:
    with pytest.raises(ValueError, match="0-59"):
        At(**fields)


def test_only_the_sweep_is_locked_and_on_the_key_for_it() -> None:
    lock = SCHEDULE["sweep"].lock
    assert lock is not None and lock.key == keys.SWEEP_LOCK
    # Held past any clock skew, released well before the next time, 30 minutes later.
    assert 60 <= lock.hold < 30 * 60
    assert SCHEDULE["report"].lock is None


async def test_a_job_that_raises_runs_again_at_its_next_time_and_the_host_runs_on(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    away = Redis(port=free_port(), socket_connect_timeout=1)  # nothing listens there
    calls: dict[str, int] = {"boom": 0, "away": 0, "locked": 0, "fine": 0}

    def counted(name: str, body: Callable[[Ctx], Awaitable[object]]) -> Job[Ctx]:
        async def run(ctx: Ctx) -> None:
            calls[name] += 1
            await body(ctx)

        return Job(name, Every(0.01), run)

    async def boom(ctx: Ctx) -> None:
        raise RuntimeError("a bug in a job")

    async def fine(ctx: Ctx) -> None:
        await ctx.redis.incr("relay:test:fine")

    jobs = [
        counted("boom", boom),
        counted("away", lambda ctx: away.set("relay:test:away", "1")),
        counted("fine", fine),
    ]
    stopped: list[Ctx] = []
    ctx = Ctx(redis, "worker-a")

    async def startup() -> Ctx:
        return ctx

    async def shutdown(ctx: Ctx) -> None:
        stopped.append(ctx)

    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="relay.worker"):
        host = asyncio.create_task(run_until(stop, startup=startup, shutdown=shutdown, jobs=jobs))

        async def each_ran_again() -> bool:
            return min(calls["boom"], calls["away"], calls["fine"]) >= 3

        try:
            await eventually(each_ran_again, 10, f"every job ran three times: {calls}")
            assert not host.done(), "the host runs on"
        finally:
            stop.set()
            await asyncio.wait_for(host, 10)
            await away.aclose()
    assert stopped == [ctx], "shutdown ran once"
    assert int(await redis.get("relay:test:fine") or 0) >= 3
    messages = [r.getMessage() for r in caplog.records]
    assert any("job boom failed" in m for m in messages), messages
    assert any(r.exc_info for r in caplog.records if "job boom" in r.getMessage())
    assert any("job away failed, Redis unavailable" in m for m in messages), messages


async def test_a_locked_job_whose_lock_cannot_be_taken_is_skipped_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    away = Redis(port=free_port(), socket_connect_timeout=1)
    ran: list[str] = []

    async def sweep(ctx: Ctx) -> None:
        ran.append(ctx.name)

    job = dataclasses.replace(SCHEDULE["sweep"], run=sweep)
    try:
        with caplog.at_level(logging.WARNING, logger="relay.worker"):
            await run_once(job, Ctx(away, "worker-a"))
    finally:
        await away.aclose()
    assert ran == [], "no lock, no run"
    assert any("job sweep failed, Redis unavailable" in r.getMessage() for r in caplog.records)


async def test_two_workers_running_the_sweep_at_the_same_time_run_it_once(redis: Redis) -> None:
    ran: list[str] = []
    inside, finish = asyncio.Event(), asyncio.Event()

    async def sweep(ctx: Ctx) -> None:
        ran.append(ctx.name)
        inside.set()
        await finish.wait()

    job = dataclasses.replace(SCHEDULE["sweep"], run=sweep)  # the worker's own lock
    first = asyncio.create_task(run_once(job, Ctx(redis, "worker-a")))
    await asyncio.wait_for(inside.wait(), 5)
    # While worker-a's run is going on (bounded: a second run would wait for `finish`).
    await asyncio.wait_for(run_once(job, Ctx(redis, "worker-b")), 5)
    finish.set()
    await first
    # A worker whose clock is a little behind wakes for the same time after the run ended.
    await asyncio.wait_for(run_once(job, Ctx(redis, "worker-c")), 5)
    assert ran == ["worker-a"]
    assert await redis.get(keys.SWEEP_LOCK) == "worker-a", "the lock names who ran it"
    assert job.lock is not None
    assert 0 < await redis.pttl(keys.SWEEP_LOCK) <= job.lock.hold * 1000


async def test_the_lock_lets_the_next_time_run_once_its_hold_has_passed(redis: Redis) -> None:
    ran: list[str] = []

    async def sweep(ctx: Ctx) -> None:
        ran.append(ctx.name)

    job = Job("sweep", Every(60), sweep, lock=Lock(keys.SWEEP_LOCK, 0.2))
    await asyncio.gather(
        run_once(job, Ctx(redis, "worker-a")), run_once(job, Ctx(redis, "worker-b"))
    )
    assert len(ran) == 1, ran

    async def ran_again() -> bool:
        await run_once(job, Ctx(redis, "worker-b"))
        return len(ran) == 2

    await eventually(ran_again, 5, "a run after the hold", interval=0.05)
